"""General helpers by their Windows ids (reference §3.1): their names, which ones the native
runtime implements, and the Python view of the state they answer from.

Every general helper eBPF for Windows' core implements (1-34 except 26) is native
(ntoslab/native/helpers.c), with EFW's semantics (`ebpf_core.c` / `ebpf_strings.c`): map
helpers return negated `ebpf_result_t` values, -EINVAL (-22) where the C runtime's `*_s` checks
fail, NTSTATUS values from the `RtlStringCb*` functions for strncpy_s/strncat_s; trace_printk
follows EFW's format rules. Helpers read and write program memory only through the sandbox's
address space, so a bad pointer is a contained fault naming the helper, whatever size it asks.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..native import abi, lib

if TYPE_CHECKING:
    from .maps import MapEnv

HELPER_NAMES = {
    1: "bpf_map_lookup_elem", 2: "bpf_map_update_elem", 3: "bpf_map_delete_elem",
    4: "bpf_map_lookup_and_delete_elem", 5: "bpf_tail_call", 6: "bpf_get_prandom_u32",
    7: "bpf_ktime_get_boot_ns", 8: "bpf_get_smp_processor_id", 9: "bpf_ktime_get_ns",
    10: "bpf_csum_diff", 11: "bpf_ringbuf_output", 12: "bpf_trace_printk2",
    13: "bpf_trace_printk3", 14: "bpf_trace_printk4", 15: "bpf_trace_printk5",
    16: "bpf_map_push_elem", 17: "bpf_map_pop_elem", 18: "bpf_map_peek_elem",
    19: "bpf_get_current_pid_tgid", 20: "bpf_get_current_logon_id", 21: "bpf_is_current_admin",
    22: "bpf_memcpy_s", 23: "bpf_memcmp_s", 24: "bpf_memset", 25: "bpf_memmove_s",
    26: "bpf_get_socket_cookie", 27: "bpf_strncpy_s", 28: "bpf_strncat_s", 29: "bpf_strnlen_s",
    30: "bpf_ktime_get_boot_ms", 31: "bpf_ktime_get_ms", 32: "bpf_perf_event_output",
    33: "bpf_get_current_process_start_key", 34: "bpf_get_current_thread_create_time",
    35: "bpf_redirect_map",
}
# EFW's core has no implementation of these; only a program type's extension can supply them.
NOT_IN_CORE = {26: "bpf_get_socket_cookie", 35: "bpf_redirect_map"}
NATIVE_GENERAL = frozenset(i for i in HELPER_NAMES if i not in NOT_IN_CORE)

EINVAL = 22
MAX_PRINTK_STRING_SIZE = 512
STATUS_BUFFER_OVERFLOW = -2147483643     # 0x80000005 as int32 (truncated copy)
STATUS_INVALID_PARAMETER = -1073741811   # 0xC000000D as int32
BPF_F_INDEX_MASK = 0xFFFF_FFFF
BPF_F_CTXLEN_MASK = 0xFFFFF << 32
_EXPECTED = {3: "a prog array", 13: "a ring buffer", 14: "a perf event array"}


@dataclass
class PrintkRecord:
    time: int
    program: str
    helper: str
    text: str


def format_printk(fmt: bytes, args: tuple[int, ...]) -> str | None:
    """Format as EFW's trace_printk does (the native formatter), or None when it would refuse.

    Only %d %i %u %x with an optional l or ll are allowed, plus %%; the number of specifiers must
    equal the number of arguments; a trailing newline is dropped. `fmt` is the whole format
    buffer the program passes (fmt_size bytes, normally ending in NUL): EFW puts its terminator
    over the last byte, or over a newline just before it. Windows is LLP64, so %ld and %lx print
    32 bits; only %lld/%llx print 64. An output longer than 553 characters gives None (-1).
    """
    out = ctypes.create_string_buffer(4 * MAX_PRINTK_STRING_SIZE + 64 * len(args) + len(fmt))
    a = (ctypes.c_uint64 * max(len(args), 1))(*[x & 0xFFFF_FFFF_FFFF_FFFF for x in args])
    n = lib().ntl_format_printk(bytes(fmt), len(fmt), a, len(args), out, len(out))
    return None if n < 0 else out.raw[:n].decode("latin-1")


def csum_diff(frm: bytes | None, to: bytes | None, seed: int) -> int:
    """EFW's csum_diff (helper 10) on two byte strings, run by the native helper itself."""
    from ..vm.engine import Machine
    machine = Machine(native_helpers=frozenset({10}))
    a = machine.memory.add("from", bytearray(frm or b"")).base if frm is not None else 0
    b = machine.memory.add("to", bytearray(to or b"")).base if to is not None else 0
    run = machine.native_run()
    r0 = lib().ntl_call_helper(ctypes.byref(run), 10, a, len(frm or b""), b, len(to or b""),
                               seed & 0xFFFF_FFFF)
    v = r0 & 0xFFFF_FFFF_FFFF_FFFF
    return v - (1 << 64) if v >> 63 else v


class HelperState:
    """What the "current" helpers answer, as the native environment holds it; the hook sets it
    for each event. `printk` lists what bpf_printk wrote (`program` names the program)."""

    _FIELDS = ("pid_tgid", "logon_id", "is_admin", "process_start_key", "thread_create_time",
               "boot_ns", "mono_ns", "now")

    def __init__(self, env: "MapEnv", program_name: Callable[[int], str]) -> None:
        object.__setattr__(self, "_env", env)
        object.__setattr__(self, "_values", env.values)
        object.__setattr__(self, "_name", program_name)
        object.__setattr__(self, "program", "")

    def __getattr__(self, name: str):
        if name in HelperState._FIELDS:
            return getattr(self._values, name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value) -> None:
        if name in HelperState._FIELDS:
            setattr(self._values, name, value)
        else:
            object.__setattr__(self, name, value)

    @property
    def printk_enabled(self) -> bool:
        return bool(self._values.printk_enabled)

    @printk_enabled.setter
    def printk_enabled(self, value: bool) -> None:
        self._values.printk_enabled = int(bool(value))

    @property
    def trace_session(self) -> bool:
        """Whether an ETW session listens for EFW's printk keyword. Without one, trace_printk
        returns 0 and records nothing (EFW checks this before validating the format)."""
        return bool(self._values.printk_session)

    @trace_session.setter
    def trace_session(self, value: bool) -> None:
        self._values.printk_session = int(bool(value))

    @property
    def printk(self) -> list[PrintkRecord]:
        v = self._values
        if not v.nprintk:
            return []
        text = ctypes.string_at(v.printk_text, v.printk_text_len)
        return [PrintkRecord(r.time, self._name(r.program), HELPER_NAMES.get(r.helper, "?"),
                             text[r.offset:r.offset + r.length].decode("latin-1"))
                for r in (v.printk[i] for i in range(v.nprintk))]

    def clear_printk(self) -> None:
        lib().ntl_env_clear_printk(self._env.native)


def describe_fault(env: "MapEnv") -> Callable[[int, int, int], str]:
    """The text of a native helper fault (code, arg, arg2), naming maps by their names."""

    def text(code: int, arg: int, arg2: int) -> str:
        if code == abi.HF_NOT_A_MAP:
            return f"argument {arg:#x} is not a map"
        if code == abi.HF_WRONG_MAP_TYPE:
            m = env.registry.get(arg)
            name, kind = (m.name, m.spec.type_name) if m is not None else (f"#{arg}", "?")
            return f"map {name} is a {kind}, not {_EXPECTED.get(arg2, f'map type {arg2}')}"
        if code == abi.HF_NOT_CONTEXT:
            return f"argument 1 ({arg:#x}) is not the program's context"
        if code == abi.HF_CPU:
            m = env.registry.get(arg2)
            return f"map {m.name if m else arg2}: current CPU {arg} is outside 0..{env.ncpus - 1}"
        if code == abi.HF_NO_MEMORY:
            return "the host ran out of memory"
        return f"native helper fault {code} ({arg:#x})"

    return text
