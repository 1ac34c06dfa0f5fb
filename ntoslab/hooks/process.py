"""The ntosebpfext `process` hook: events, the `process_md_t` context, helpers 65536-65538.

Facts (reference §1.3-1.6): the context is 144 bytes (the pre-0.7 72-byte layout is its prefix,
so old programs run unchanged); the command line is UTF-16LE "packet" memory between
`command_start` and `command_end`; on delete the parent/creator fields are 0 and there are no
strings; a negative 32-bit return denies a create with exactly that status and stops later
programs; returns on delete are ignored.

>>> ev = ProcessEvent.create(pid=4242, parent=1000, image=r"\\??\\C:\\Windows\\System32\\cmd.exe",
...                          command_line="cmd.exe /c whoami")
>>> ev.operation, len(ev.command_line.encode("utf-16-le"))
('create', 34)
"""
from __future__ import annotations

import ctypes
import functools
import math
import struct
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from ..filetime import ns_to_filetime, parse_time_ns
from ..isa.opcodes import sign32
from ..native import abi
from ..vm.memory import AddressSpace, Region, RegionKind
from .accounts import AccountTable

CONTEXT_SIZE = 144
LEGACY_CONTEXT_SIZE = 72
TOKEN_SID_MAX_SIZE = 68
PROCESS_OPERATION_CREATE = 0
PROCESS_OPERATION_DELETE = 1
HELPER_GET_IMAGE_PATH = 65536
HELPER_GET_ACCOUNT_NAME = 65537
HELPER_GET_ACCOUNT_DOMAIN = 65538
EINVAL = 22
ENOENT = 2
STATUS_ACCESS_DENIED = -1073741790  # 0xC0000022 as a signed 32-bit NTSTATUS
# process_md_t: command_start, command_end, pid, ppid, creating pid, creating tid, creation
# time, exit time, exit code, operation (8-bit field in a 4-byte unit), token_sid_size, token_sid
CONTEXT_FORMAT = "<QQQQQQQQIB3xI68s"
CONTEXT_STRUCT = struct.Struct(CONTEXT_FORMAT)
assert CONTEXT_STRUCT.size == CONTEXT_SIZE
# Every process sandbox maps the context, then the command line, first: windows 1 and 2.
CONTEXT_WINDOW_BASE = (abi.FIRST_WINDOW + 1) << abi.WINDOW_SHIFT
COMMAND_WINDOW_BASE = (abi.FIRST_WINDOW + 2) << abi.WINDOW_SHIFT
PROCESS_HELPERS = frozenset({HELPER_GET_IMAGE_PATH, HELPER_GET_ACCOUNT_NAME,
                             HELPER_GET_ACCOUNT_DOMAIN})


class EventError(ValueError):
    """An event field that cannot be turned into a process_md_t; names the field."""


@functools.lru_cache(maxsize=4096)
def sid_to_bytes(sid: str) -> bytes:
    """Binary form of a string SID ("S-1-5-21-...") as RtlCopySid would store it."""
    parts = sid.strip().split("-")
    if len(parts) < 3 or parts[0].upper() != "S":
        raise EventError(f"token_sid {sid!r} is not a SID string (S-R-I-S...)")
    try:
        revision = int(parts[1])
        authority = int(parts[2], 0)
        subs = [int(p) for p in parts[3:]]
    except ValueError:
        raise EventError(f"token_sid {sid!r} has a part that is not a number") from None
    if revision != 1 or len(subs) > 15 or authority >= 1 << 48 or any(s >= 1 << 32 for s in subs):
        raise EventError(f"token_sid {sid!r} is not a valid SID (revision 1, at most 15 "
                         f"sub-authorities of 32 bits)")
    return bytes([revision, len(subs)]) + authority.to_bytes(6, "big") + \
        b"".join(s.to_bytes(4, "little") for s in subs)


def sid_from_bytes(raw: bytes) -> str:
    """String form of a binary SID (the inverse of `sid_to_bytes`)."""
    if len(raw) < 8:
        raise ValueError(f"SID of {len(raw)} bytes is too short")
    count = raw[1]
    if len(raw) < 8 + 4 * count:
        raise ValueError(f"SID claims {count} sub-authorities but has {len(raw)} bytes")
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack_from(f"<{count}I", raw, 8)
    return "-".join(["S", str(raw[0]), str(authority)] + [str(s) for s in subs])


def _clean(value: Any) -> Any:
    """None for missing values coming from pandas (NaN, NaT, <NA>)."""
    if value is None:
        return None
    try:
        if value != value:  # NaN
            return None
    except (TypeError, ValueError):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def is_missing(value: Any) -> bool:
    """Whether `value` is missing as pandas leaves it (None, NaN, NaT, <NA>)."""
    return _clean(value) is None


@dataclass
class ProcessEvent:
    """One process create or delete, with every field of the trace schema.

    Times: `time` is UTC nanoseconds; `creation_time`/`exit_time` are FILETIME ticks.
    Emulator-only fields: `cpu` (which CPU the callback runs on), `logon_id`, `is_admin`,
    `process_start_key`, `thread_create_time` (answers for helpers 20, 21, 33, 34), and
    `exit_thread_id`: the thread whose exit ends the process, which runs the delete callback
    and so is the low half of `bpf_get_current_pid_tgid` there (see `exit_thread`).
    """

    operation: str
    process_id: int
    time: int = 0
    parent_process_id: int = 0
    creating_process_id: int = 0
    creating_thread_id: int = 0
    creation_time: int = 0
    exit_time: int = 0
    exit_code: int = 0
    image_path: str = ""
    command_line: str = ""
    token_sid: str | None = None
    account_name: str | None = None
    account_domain: str | None = None
    host: str | None = None
    source: str = "emulator"
    process_key: str | None = None
    parent_key: str | None = None
    cpu: int | None = None
    logon_id: int = 0
    is_admin: int | None = None
    process_start_key: int = 0
    thread_create_time: int = 0
    # kept from real logs (trace schema EXTRA_COLUMNS); not in process_md_t, carried for
    # analysis and shown with verdicts
    original_file_name: str | None = None
    description: str | None = None
    product: str | None = None
    company: str | None = None
    hashes: str | None = None
    integrity_level: str | None = None
    current_directory: str | None = None
    user: str | None = None
    token_elevation_type: str | None = None
    mandatory_label: str | None = None
    subject_logon_id: int | None = None
    exit_thread_id: int | None = None

    def __post_init__(self) -> None:
        if self.operation not in ("create", "delete"):
            raise EventError(f"operation {self.operation!r} is not 'create' or 'delete'")

    @classmethod
    def create(cls, pid: int, parent: int = 0, image: str = "", command_line: str = "", *,
               creator: int | None = None, creator_thread: int = 0, **kw: Any) -> "ProcessEvent":
        """A process creation; the creator defaults to the parent."""
        return cls("create", pid, parent_process_id=parent,
                   creating_process_id=parent if creator is None else creator,
                   creating_thread_id=creator_thread, image_path=image,
                   command_line=command_line, **kw)

    @classmethod
    def delete(cls, pid: int, exit_code: int = 0, **kw: Any) -> "ProcessEvent":
        """A process exit."""
        return cls("delete", pid, exit_code=exit_code, **kw)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], where: str = "") -> "ProcessEvent":
        """Build from a trace-schema mapping (a DataFrame row, a JSON object); unknown keys are
        ignored, missing ones take defaults; a bad value raises EventError naming the field."""
        names = {f.name: f for f in fields(cls)}
        kw: dict[str, Any] = {}
        for key, value in row.items():
            if key not in names:
                continue
            value = _clean(value)
            if value is None:
                continue
            kw[key] = _coerce(key, value, where)
        if "operation" not in kw or "process_id" not in kw:
            missing = "operation" if "operation" not in kw else "process_id"
            raise EventError(f"{where}field {missing!r} is required")
        if kw["operation"] == "create" and "creating_process_id" not in kw:
            # no log source records the creator: the parent is the best stand-in
            kw["creating_process_id"] = kw.get("parent_process_id", 0)
        return cls(**kw)

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_create(self) -> bool:
        return self.operation == "create"


INT_FIELDS = {"process_id", "time", "parent_process_id", "creating_process_id",
              "creating_thread_id", "creation_time", "exit_time", "exit_code", "cpu", "logon_id",
              "is_admin", "process_start_key", "thread_create_time"}
FILETIME_FIELDS = {"creation_time", "exit_time"}
INT_FIELDS.update(("subject_logon_id", "exit_thread_id"))


def _coerce(key: str, value: Any, where: str) -> Any:
    if key == "operation":
        text = str(value).strip().lower()
        if text not in ("create", "delete"):
            raise EventError(f"{where}field 'operation': {value!r} is not 'create' or 'delete'")
        return text
    if key in INT_FIELDS:
        if type(value).__name__ == "Timestamp":
            ns = int(value.value)
            return ns if key == "time" else ns_to_filetime(ns)
        if isinstance(value, str):
            number = _parse_int(value)
            if number is not None:
                return number
            if key in FILETIME_FIELDS:
                return iso_to_filetime(value, f"{where}field {key!r}")
            if key == "time":
                return iso_to_ns(value, f"{where}field 'time'")
            raise EventError(f"{where}field {key!r}: {value!r} is not an integer")
        if isinstance(value, float):
            if not math.isfinite(value) or value != int(value):
                raise EventError(f"{where}field {key!r}: {value!r} is not an integer")
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise EventError(f"{where}field {key!r}: {value!r} is not an integer") from None
    return str(value)


def _parse_int(text: str) -> int | None:
    """An integer written as decimal, 0x-hex, or an integral float ("1.0" from a float CSV column)."""
    text = text.strip()
    try:
        return int(text, 16) if text.lower().startswith(("0x", "-0x")) else int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number == int(number) else None


def iso_to_ns(text: str, what: str) -> int:
    try:
        return parse_time_ns(text)
    except ValueError:
        raise EventError(f"{what}: {text!r} is neither an integer nor an ISO-8601 time") from None


def iso_to_filetime(text: str, what: str) -> int:
    return ns_to_filetime(iso_to_ns(text, what))


class ProcessWindows:
    """The context and command-line regions of one sandbox, and the native event block the
    process helpers (65536-65538, ntoslab/native/process.c) read.

    A process sandbox maps both before anything else, so they sit at the same addresses in
    every sandbox (what lets batch replay pack one process_md_t for all attached programs);
    each event is written into them in place."""

    def __init__(self, memory: AddressSpace) -> None:
        self.memory = memory
        self._context_buffer = bytearray(CONTEXT_SIZE)
        self.context = memory.add("context (process_md_t)", self._context_buffer,
                                  writable=False, kind=RegionKind.CONTEXT)
        self.buffer = bytearray(0x10000)
        self.command = memory.add("command line", self.buffer, writable=False, kind=RegionKind.PACKET)
        memory.repoint(self.command, self.buffer, 0)
        self.event = abi.Event()
        self.event_address = ctypes.addressof(self.event)
        self.event.ctx_addr = self.context.base
        self.event.command = self.command.host
        self._keep: tuple = ()
        self.borrowed = False

    def resync(self) -> None:
        """Native code (batch replay) pointed the regions at its own buffers: follow it."""
        self.memory.resync(self.context)
        self.memory.resync(self.command)

    def hand_over(self) -> None:
        """Native code (a hook's chain) points the regions at its own buffers from now on."""
        self.memory.hand_over(self.context)
        self.memory.hand_over(self.command)
        self.borrowed = True

    def reset(self) -> None:
        """Point the regions at this object's own buffers again (after batch replay)."""
        self.borrowed = False
        self.memory.repoint(self.context, self._context_buffer)
        self.memory.repoint(self.command, self.buffer, 0)
        ev = self.event
        ev.image = ev.account_name = ev.account_domain = None
        ev.image_len = 0
        ev.account_name_len = ev.account_domain_len = -1
        ev.command = self.command.host
        ev.command_len = 0
        ev.ctx_addr = self.context.base

    def fill(self, event: "ProcessEvent", packed: tuple | None = None) -> "ProcessContext":
        """Write `event` (`packed` by pack_event, or packed here) into the regions; the helpers
        answer for it from now on."""
        raw, cmd, image, name, domain = packed or pack_event(event, self.command.base)
        if self.borrowed:
            self.reset()
        self._context_buffer[:] = raw
        if cmd:
            self.buffer[:len(cmd)] = cmd
        self.memory.repoint(self.command, self.buffer, len(cmd))
        ev = self.event
        ev.is_create = int(event.is_create)
        ev.command_len = len(cmd)
        keep = []
        for field, value in (("image", image), ("account_name", name),
                             ("account_domain", domain)):
            if value is None:
                setattr(ev, field, None)
                setattr(ev, field + "_len", -1)
            else:
                buf = ctypes.create_string_buffer(value, max(len(value), 1))
                keep.append(buf)
                setattr(ev, field, ctypes.addressof(buf))
                setattr(ev, field + "_len", len(value))
        if ev.image_len < 0:
            ev.image_len = 0
        self._keep = tuple(keep)
        return ProcessContext(event, self, image, name, domain)


@dataclass
class ProcessContext:
    """One event laid out in a sandbox's process regions, and the strings the helpers serve.
    `close()` unmaps the regions when they were made for this event alone (`build_context`)."""

    event: ProcessEvent
    windows: ProcessWindows
    image: bytes
    account_name: bytes | None
    account_domain: bytes | None
    owned: bool = False

    @property
    def context(self) -> Region:
        return self.windows.context

    @property
    def command(self) -> Region | None:
        return self.windows.command if self.event.is_create else None

    @property
    def memory(self) -> AddressSpace:
        return self.windows.memory

    @property
    def address(self) -> int:
        return self.windows.context.base

    def close(self) -> None:
        if self.owned:
            self.memory.remove(self.windows.context)
            self.memory.remove(self.windows.command)


# Without a hook's table: well-known SIDs only, and a create without a SID keeps none.
PLAIN_ACCOUNTS = AccountTable(default_sid=None, counting=False)


def pack_event(event: ProcessEvent, command_start: int = 0,
               accounts: AccountTable | None = None) -> tuple[bytes, bytes, bytes,
                                                             bytes | None, bytes | None]:
    """(process_md_t bytes, command line, image path, account name, account domain) of an
    event, the command line placed at `command_start` (0: the command-line window's address);
    `accounts` gives a create its token SID when it has none and resolves it for the account
    helpers (None: well-known SIDs only, and a create without a SID keeps none)."""
    if accounts is None:
        accounts = PLAIN_ACCOUNTS
    if event.is_create:
        cmd = event.command_line.encode("utf-16-le")
        if len(cmd) > 0xFFFF:
            raise EventError(f"command_line is {len(cmd)} bytes in UTF-16; a UNICODE_STRING holds "
                             f"at most 65535")
        start = command_start or COMMAND_WINDOW_BASE
        sid_text = accounts.token_sid(event.token_sid, event.account_name, event.account_domain,
                                      event.logon_id)
        sid = sid_to_bytes(sid_text) if sid_text else b""
        if len(sid) > TOKEN_SID_MAX_SIZE:
            raise EventError(f"token_sid is {len(sid)} bytes, more than {TOKEN_SID_MAX_SIZE}")
        image = event.image_path.encode("utf-16-le")
        name, domain = accounts.strings(sid_text, event.account_name, event.account_domain)
        values = (start, start + len(cmd), event.process_id, event.parent_process_id,
                  event.creating_process_id, event.creating_thread_id, event.creation_time, 0, 0,
                  PROCESS_OPERATION_CREATE, len(sid), sid)
    else:
        cmd, image, name, domain = b"", b"", None, None
        values = (0, 0, event.process_id, 0, 0, 0, event.creation_time, event.exit_time,
                  event.exit_code & 0xFFFF_FFFF, PROCESS_OPERATION_DELETE, 0, b"")
    try:
        raw = CONTEXT_STRUCT.pack(*[v & 0xFFFF_FFFF_FFFF_FFFF for v in values[:8]],
                                  values[8], values[9], values[10], values[11])
    except struct.error as exc:
        raise EventError(f"event for pid {event.process_id} does not fit process_md_t: {exc}") \
            from None
    return raw, cmd, image, name, domain


def build_context(event: ProcessEvent, memory: AddressSpace) -> ProcessContext:
    """Map `event` into `memory` as the extension would present it to programs (regions of
    its own, unmapped again by `close()`)."""
    windows = ProcessWindows(memory)
    ctx = windows.fill(event)
    ctx.owned = True
    return ctx


def exit_thread(process_id: int, exit_thread_id: int | None) -> int:
    """The thread `bpf_get_current_pid_tgid` names on a delete. Windows calls the exit callback
    on the process's last exiting thread (PsGetCurrentThreadId there is never 0), but no log
    records that thread: without `exit_thread_id` ntoslab uses `process_id + 4`, the client ID
    Windows often gives a process's first thread (a stand-in, not a Windows fact)."""
    return (process_id + 4 if exit_thread_id is None else exit_thread_id) & 0xFFFF_FFFF


def status_of(r0: int) -> int:
    """A program's r0 as the NTSTATUS the extension stores (signed 32-bit)."""
    return sign32(r0)


def denies(status: int) -> bool:
    """NT_SUCCESS is false for negative NTSTATUS values: those deny a create."""
    return status < 0
