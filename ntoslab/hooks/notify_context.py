"""`process_notify_context_t`: the process type's `bpf_prog_test_run_opts` input and output.

ntosebpfext's test-run path (ntos_ebpf_ext_process.c `_ebpf_process_context_create` and
`_ebpf_process_context_destroy`) takes a 296-byte context and the UTF-16LE strings its four
UNICODE_STRINGs name, packed back to back in data_in, and gives both back after the run. The
Windows connector packs it for the real extension; the emulator's `LoadedObject.test_run`
accepts and returns the same bytes, with the extension's checks:

- ctx_in missing or shorter than 296 bytes: EINVAL;
- data_in missing (None) or shorter than the four Lengths together: EINVAL;
- a Length larger than its MaximumLength: EINVAL;
- the PEPROCESS and create-info pointers are forced NULL, command_start/command_end point at
  the copied command line; the account strings are used as given when account_lookup_done is
  set (both must be non-empty, else the account helpers return -ENOENT), otherwise the first
  account helper call resolves token_sid (size 0 or unknown: -ENOENT) and the resolved strings,
  with their lengths, are what ctx_out and data_out carry;
- ctx_out is the context with every pointer zeroed when the caller's buffer holds 296 bytes
  (else empty); data_out the four strings when the buffer holds them all (else empty).

>>> packed = pack_test_run_context(ProcessEvent.create(5, 4, "x.exe", "x.exe a"))
>>> len(packed.ctx), unpack_test_run_context(packed.ctx, packed.data)["command_line"]
(296, 'x.exe a')
"""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import Any

from .process import (
    CONTEXT_FORMAT,
    CONTEXT_SIZE,
    PROCESS_OPERATION_CREATE,
    PROCESS_OPERATION_DELETE,
    TOKEN_SID_MAX_SIZE,
    EventError,
    ProcessEvent,
    sid_from_bytes,
    sid_to_bytes,
)

# the layout (reference §1.7)
TEST_CONTEXT_SIZE = 296
CONTEXT_HEADER_SIZE = 64                 # uint64_t context_header[8]
MD_OFFSET = 64                           # process_md_t (144 bytes)
PROCESS_OFFSET = 208                     # PEPROCESS, forced NULL
CREATE_INFO_OFFSET = 216                 # PPS_CREATE_NOTIFY_INFO, forced NULL
STRING_OFFSETS = {"command_line": 224, "image_file_name": 240, "account_name": 256,
                  "account_domain": 272}  # UNICODE_STRING: USHORT Length, USHORT Max, pad, PWSTR
ACCOUNT_LOOKUP_DONE_OFFSET = 288         # BOOLEAN
UNICODE_STRING = struct.Struct("<HH4xQ")
assert MD_OFFSET + CONTEXT_SIZE == PROCESS_OFFSET
assert UNICODE_STRING.size == 16 and ACCOUNT_LOOKUP_DONE_OFFSET + 8 == TEST_CONTEXT_SIZE


@dataclass(frozen=True)
class TestRunInput:
    """ctx_in and data_in for one event, and the strings (UTF-16LE) they carry."""

    __test__ = False     # not a pytest test class

    ctx: bytes
    data: bytes
    strings: dict[str, bytes]


def _utf16(text: str | None, what: str) -> bytes:
    raw = (text or "").encode("utf-16-le")
    if len(raw) > 0xFFFF:
        raise EventError(f"{what} is {len(raw)} bytes in UTF-16; a UNICODE_STRING holds at "
                         f"most 65535")
    return raw


def pack_test_run_context(event: ProcessEvent | dict, *, account_lookup_done: bool | None = None,
                          maximum_lengths: dict[str, int] | None = None) -> TestRunInput:
    """The 296-byte `process_notify_context_t` and packed strings for `event`.

    Layout: 64 zero header bytes; `process_md_t` at 64 (its two pointers zero: the extension
    points them into its copy of the command line); NULL process and create_info at 208/216;
    four UNICODE_STRINGs at 224/240/256/272 (Length = the string's UTF-16 bytes,
    MaximumLength = Length unless `maximum_lengths` says more, Buffer 0); account_lookup_done
    at 288. data_in = command line + image + account name + account domain, back to back.

    `account_lookup_done` defaults to True when the event names its account (so the extension
    uses those strings, as the emulator does) and False otherwise (it resolves the SID itself).
    A delete carries no strings; data_in is then two zero bytes, because the extension rejects
    a NULL data_in and a zero-length one may reach it as NULL.
    """
    if not isinstance(event, ProcessEvent):
        event = ProcessEvent.from_row(event)
    if event.is_create:
        sid = sid_to_bytes(event.token_sid) if event.token_sid else b""
        if len(sid) > TOKEN_SID_MAX_SIZE:
            raise EventError(f"token_sid is {len(sid)} bytes, more than {TOKEN_SID_MAX_SIZE}")
        strings = {"command_line": _utf16(event.command_line, "command_line"),
                   "image_file_name": _utf16(event.image_path, "image_path"),
                   "account_name": _utf16(event.account_name, "account_name"),
                   "account_domain": _utf16(event.account_domain, "account_domain")}
        md = (0, 0, event.process_id, event.parent_process_id, event.creating_process_id,
              event.creating_thread_id, event.creation_time, 0, 0, PROCESS_OPERATION_CREATE,
              len(sid), sid)
        if account_lookup_done is None:
            account_lookup_done = event.account_name is not None or \
                event.account_domain is not None
    else:
        strings = dict.fromkeys(STRING_OFFSETS, b"")
        md = (0, 0, event.process_id, 0, 0, 0, event.creation_time, event.exit_time,
              event.exit_code & 0xFFFF_FFFF, PROCESS_OPERATION_DELETE, 0, b"")
        account_lookup_done = bool(account_lookup_done)
    ctx = bytearray(TEST_CONTEXT_SIZE)
    try:
        struct.pack_into(CONTEXT_FORMAT, ctx, MD_OFFSET,
                         *[v & 0xFFFF_FFFF_FFFF_FFFF for v in md[:8]], *md[8:])
    except struct.error as exc:
        raise EventError(f"event for pid {event.process_id} does not fit process_md_t: "
                         f"{exc}") from None
    maximum_lengths = maximum_lengths or {}
    for name, off in STRING_OFFSETS.items():
        length = len(strings[name])
        maximum = maximum_lengths.get(name, length)
        if not length <= maximum <= 0xFFFF:
            raise EventError(f"{name}: MaximumLength {maximum} must be between Length "
                             f"({length}) and 65535")
        UNICODE_STRING.pack_into(ctx, off, length, maximum, 0)
    ctx[ACCOUNT_LOOKUP_DONE_OFFSET] = 1 if account_lookup_done else 0
    data = b"".join(strings[name] for name in STRING_OFFSETS) or b"\0\0"
    return TestRunInput(bytes(ctx), data, strings)


def unpack_test_run_context(ctx: bytes, data: bytes | None = None) -> dict[str, Any]:
    """Read a (mirrored) 296-byte context back: process_md_t fields, string lengths and,
    given data, the strings."""
    if len(ctx) < TEST_CONTEXT_SIZE:
        raise ValueError(f"context is {len(ctx)} bytes, the process type's is "
                         f"{TEST_CONTEXT_SIZE}")
    (cstart, cend, pid, ppid, cpid, ctid, ctime, etime, code, op, sid_size,
     sid) = struct.unpack_from(CONTEXT_FORMAT, ctx, MD_OFFSET)
    out: dict[str, Any] = {
        "operation": "create" if op == PROCESS_OPERATION_CREATE else "delete"
        if op == PROCESS_OPERATION_DELETE else f"op{op}",
        "process_id": pid, "parent_process_id": ppid, "creating_process_id": cpid,
        "creating_thread_id": ctid, "creation_time": ctime, "exit_time": etime,
        "exit_code": code, "command_start": cstart, "command_end": cend,
        "token_sid": sid_from_bytes(sid[:sid_size]) if 0 < sid_size <= TOKEN_SID_MAX_SIZE
        else None,
        "account_lookup_done": bool(ctx[ACCOUNT_LOOKUP_DONE_OFFSET])}
    pos = 0
    for name, off in STRING_OFFSETS.items():
        length, maximum, _buffer = UNICODE_STRING.unpack_from(ctx, off)
        out[f"{name}_length"], out[f"{name}_maximum"] = length, maximum
        if data is not None:
            out[name] = data[pos:pos + length].decode("utf-16-le", errors="replace")
            pos += length
    return out


class TestRunRefused(OSError):
    """The extension refused the test run's input (EINVAL), as `bpf_prog_test_run_opts` would
    fail; the message says which check."""

    __test__ = False

    def __init__(self, message: str) -> None:
        super().__init__(errno.EINVAL, message)


@dataclass
class OpenContext:
    """What context_create made of ctx_in and data_in: the 144-byte process_md_t (pointers not
    yet placed), the strings, their MaximumLengths, account_lookup_done, and the header."""

    ctx: bytearray                  # the 296 bytes, as copied from the caller
    md: bytes
    strings: dict[str, bytes]
    maximum: dict[str, int]
    lookup_done: bool

    @property
    def operation(self) -> int:
        return self.md[68]

    @property
    def token_sid(self) -> str | None:
        size = struct.unpack_from("<I", self.md, 72)[0]
        if not 0 < size <= TOKEN_SID_MAX_SIZE:
            return None
        try:
            return sid_from_bytes(self.md[76:76 + size])
        except ValueError:
            return None           # RtlValidSid fails: the lookup fails

    def event(self) -> ProcessEvent:
        """The md's fields as an event (what the emulator's event block needs)."""
        (_, _, pid, ppid, cpid, ctid, ctime, etime, code, op, _, _) = \
            struct.unpack(CONTEXT_FORMAT, self.md)
        if op == PROCESS_OPERATION_CREATE:
            return ProcessEvent("create", pid, parent_process_id=ppid, creating_process_id=cpid,
                                creating_thread_id=ctid, creation_time=ctime)
        return ProcessEvent("delete", pid, creation_time=ctime, exit_time=etime, exit_code=code)


def open_test_context(ctx_in: bytes | None, data_in: bytes | None) -> OpenContext:
    """context_create's checks and copies; raises TestRunRefused naming the failed check."""
    if ctx_in is None or len(ctx_in) < TEST_CONTEXT_SIZE:
        got = "no ctx_in" if ctx_in is None else f"ctx_in of {len(ctx_in)} bytes"
        raise TestRunRefused(f"{got}: the process type needs a process_notify_context_t of "
                             f"{TEST_CONTEXT_SIZE} bytes (\"Context is required\")")
    ctx = bytearray(ctx_in[:TEST_CONTEXT_SIZE])
    lengths, maximum = {}, {}
    for name, off in STRING_OFFSETS.items():
        lengths[name], maximum[name], _ = UNICODE_STRING.unpack_from(ctx, off)
    need = sum(lengths.values())
    if data_in is None or len(data_in) < need:
        got = "no data_in" if data_in is None else f"data_in of {len(data_in)} bytes"
        raise TestRunRefused(f"{got}: the four UNICODE_STRING lengths need {need} bytes "
                             f"(\"Insufficient data for variable-length fields\")")
    for name in STRING_OFFSETS:
        if lengths[name] > maximum[name]:
            raise TestRunRefused(f"{name}: Length {lengths[name]} exceeds MaximumLength "
                                 f"{maximum[name]}")
    strings, pos = {}, 0
    for name in STRING_OFFSETS:
        strings[name] = bytes(data_in[pos:pos + lengths[name]])
        pos += lengths[name]
    struct.pack_into("<QQ", ctx, PROCESS_OFFSET, 0, 0)       # kernel pointers forced NULL
    return OpenContext(ctx, bytes(ctx[MD_OFFSET:MD_OFFSET + CONTEXT_SIZE]), strings, maximum,
                       bool(ctx[ACCOUNT_LOOKUP_DONE_OFFSET]))


def close_test_context(opened: OpenContext, account: tuple[bytes, bytes] | None, resolved: bool,
                       ctx_out_size: int, data_out_size: int) -> tuple[bytes, bytes]:
    """context_destroy: (ctx_out, data_out). `resolved` says the lazy lookup ran (an account
    helper was called with account_lookup_done clear); `account` is what it found (None: it
    failed, and the strings are cleared)."""
    ctx = bytearray(opened.ctx)
    strings = dict(opened.strings)
    if resolved:
        ctx[ACCOUNT_LOOKUP_DONE_OFFSET] = 1
        for name, value in zip(("account_name", "account_domain"), account or (b"", b"")):
            strings[name] = value
            maximum = max(opened.maximum[name], len(value)) if account else 0
            UNICODE_STRING.pack_into(ctx, STRING_OFFSETS[name], len(value), maximum, 0)
    for off in STRING_OFFSETS.values():                        # every Buffer zeroed
        struct.pack_into("<Q", ctx, off + 8, 0)
    struct.pack_into("<QQ", ctx, MD_OFFSET, 0, 0)              # command_start/end zeroed
    ctx_out = bytes(ctx) if ctx_out_size >= TEST_CONTEXT_SIZE else b""
    data = b"".join(strings[name] for name in STRING_OFFSETS)
    data_out = data if data_out_size >= len(data) else b""
    return ctx_out, data_out
