"""General helpers by their Windows ids (reference §3.1), bound to one `Sandbox`.

Semantics follow eBPF for Windows' `ebpf_core.c` / `ebpf_strings.c`: helpers return negated
`ebpf_result_t` values for map operations, -EINVAL (-22) where the C runtime's `*_s` checks
fail, NTSTATUS values from the `RtlStringCb*` functions for strncpy_s/strncat_s. Helpers read and
write program memory only through the sandbox's address space, so a bad pointer is a contained
fault naming the helper.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..vm.engine import Helper, HelperError, Machine, TailCall
from .maps import ProgArrayMap
from .maps.base import EBPF_INVALID_ARGUMENT, EBPF_NO_MORE_TAIL_CALLS

if TYPE_CHECKING:
    from .sandbox import Sandbox

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

EINVAL = 22
MAX_PRINTK_STRING_SIZE = 512
STATUS_BUFFER_OVERFLOW = -2147483643     # 0x80000005 as int32 (truncated copy)
STATUS_INVALID_PARAMETER = -1073741811   # 0xC000000D as int32
BPF_F_INDEX_MASK = 0xFFFF_FFFF
BPF_F_CTXLEN_MASK = 0xFFFFF << 32


@dataclass
class PrintkRecord:
    time: int
    program: str
    helper: str
    text: str


@dataclass
class HelperState:
    """What the "current" helpers answer; the hook sets it for each event and program."""

    pid_tgid: int = 0
    logon_id: int = 0
    is_admin: int = -1          # EFW's core returns -1 ("unknown") for every program type
    process_start_key: int = 0
    thread_create_time: int = 0
    boot_ns: int = 0            # time since boot, including suspend (ktime_get_boot_*)
    mono_ns: int = 0            # time since boot, excluding suspend (ktime_get_*)
    now: int = 0                # event time (UTC ns), stamped on printk records
    program: str = ""
    seed: int | None = 0
    rng: random.Random = field(default_factory=random.Random)
    printk: list[PrintkRecord] = field(default_factory=list)
    printk_enabled: bool = True

    def __post_init__(self) -> None:
        self.rng.seed(self.seed)


def format_printk(fmt: bytes, args: tuple[int, ...]) -> str | None:
    """Format as EFW's trace_printk does, or None when it would refuse (-1).

    Only %d %i %u %x with an optional l or ll are allowed, plus %%; the number of specifiers must
    equal the number of arguments; a trailing newline is dropped.
    """
    text = fmt.split(b"\0", 1)[0].decode("latin-1")
    if text.endswith("\n"):
        text = text[:-1]
    out = []
    i = n = 0
    spec = re.compile(r"%(l{0,2})([diux])")
    while i < len(text):
        ch = text[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        if text.startswith("%%", i):
            out.append("%")
            i += 2
            continue
        m = spec.match(text, i)
        if m is None or n >= len(args):
            return None
        value = args[n]
        width = 64 if m.group(1) else 32
        value &= (1 << width) - 1
        conv = m.group(2)
        if conv in "di":
            value = value - (1 << width) if value >> (width - 1) else value
            out.append(str(value))
        elif conv == "u":
            out.append(str(value))
        else:
            out.append(f"{value:x}")
        n += 1
        i = m.end()
    if n != len(args):
        return None
    return "".join(out)


def csum_diff(frm: bytes | None, to: bytes | None, seed: int) -> int:
    """EFW's csum_diff: seed + sum of `to` u16 words + sum of complemented `from` words."""
    total = seed
    for i in range(0, len(to or b""), 2):
        total += int.from_bytes(to[i:i + 2], "little")
    for i in range(0, len(frm or b""), 2):
        total += (~int.from_bytes(frm[i:i + 2], "little")) & 0xFFFF
    total = ((total + (1 << 31)) % (1 << 32)) - (1 << 31)  # the C int accumulator
    return -EINVAL if total < 0 else total


def general_helpers(box: "Sandbox") -> dict[int, Helper]:
    """Every general helper EFW's core implements (1-34 except 26), bound to `box`."""
    mem = box.memory
    st = box.state

    def map_arg(addr: int, helper: str):
        return box.map_at(addr, helper)

    def key_of(m, addr: int) -> bytes:
        return mem.read(addr, m.spec.key_size)

    # -- maps ------------------------------------------------------------------------------------
    def lookup(machine, map_addr, key, *_):
        m = map_arg(map_addr, "bpf_map_lookup_elem")
        return m.lookup_address(key_of(m, key))

    def update(machine, map_addr, key, value, flags, *_):
        m = map_arg(map_addr, "bpf_map_update_elem")
        return m.update(key_of(m, key), mem.read(value, m.spec.value_size), flags)

    def delete(machine, map_addr, key, *_):
        m = map_arg(map_addr, "bpf_map_delete_elem")
        return m.delete(key_of(m, key))

    def lookup_and_delete(machine, map_addr, key, *_):
        m = map_arg(map_addr, "bpf_map_lookup_and_delete_elem")
        fn = getattr(m, "lookup_and_delete_address", None)
        if fn is None:
            return 0  # EFW: find with the delete flag fails for this map type -> NULL
        return fn(key_of(m, key))

    def tail_call(machine, ctx, map_addr, index, *_):
        m = map_arg(map_addr, "bpf_tail_call")
        if not isinstance(m, ProgArrayMap):
            raise HelperError(f"map {m.name} is a {m.spec.type_name}, not a prog array")
        target = m.program_at(index & 0xFFFF_FFFF)
        if target is None:
            return -EBPF_INVALID_ARGUMENT
        return TailCall(target, ctx, failure=-EBPF_NO_MORE_TAIL_CALLS)

    def push(machine, map_addr, value, flags, *_):
        m = map_arg(map_addr, "bpf_map_push_elem")
        if not hasattr(m, "push"):
            return -EBPF_INVALID_ARGUMENT
        return m.push(mem.read(value, m.spec.value_size), flags)

    def pop_or_peek(name: str, method: str):
        def helper(machine, map_addr, value, *_):
            m = map_arg(map_addr, name)
            if not hasattr(m, method):
                return -EBPF_INVALID_ARGUMENT
            code, data = getattr(m, method)()
            if code == 0 and data is not None:
                mem.write(value, data)
            return code
        return helper

    def ringbuf_output(machine, map_addr, data, size, flags, *_):
        m = map_arg(map_addr, "bpf_ringbuf_output")
        if not hasattr(m, "output"):
            raise HelperError(f"map {m.name} is a {m.spec.type_name}, not a ring buffer")
        return m.output(mem.read(data, size), flags)

    def perf_event_output(machine, ctx, map_addr, flags, data, size):
        m = map_arg(map_addr, "bpf_perf_event_output")
        if not hasattr(m, "perf_output"):
            raise HelperError(f"map {m.name} is a {m.spec.type_name}, not a perf event array")
        return m.perf_output(mem.read(data, size), flags, box.context_data(ctx))

    # -- time, randomness, identity ----------------------------------------------------------
    def prandom(machine, *_):
        return st.rng.getrandbits(32)

    def boot_ns(machine, *_):
        return st.boot_ns

    def mono_ns(machine, *_):
        return st.mono_ns

    def boot_ms(machine, *_):
        return st.boot_ns // 1_000_000

    def mono_ms(machine, *_):
        return st.mono_ns // 1_000_000

    def smp_id(machine, *_):
        return box.env.cpu

    def pid_tgid(machine, *_):
        return st.pid_tgid

    def logon_id(machine, *_):
        return st.logon_id

    def is_admin(machine, *_):
        return st.is_admin

    def start_key(machine, *_):
        return st.process_start_key

    def thread_time(machine, *_):
        return st.thread_create_time

    def checksum(machine, frm, from_size, to, to_size, seed):
        from_size, to_size = _int32(from_size), _int32(to_size)
        if from_size % 4 or to_size % 4 or from_size < 0 or to_size < 0:
            return -EINVAL
        a = mem.read(frm, from_size) if frm else None
        b = mem.read(to, to_size) if to else None
        return csum_diff(a, b, _int32(seed))

    def printk(n_args: int):
        def helper(machine, fmt, fmt_size, a3=0, a4=0, a5=0):
            fmt_size &= 0xFFFF_FFFF
            if fmt_size < 2 or fmt_size > MAX_PRINTK_STRING_SIZE - 1:
                return -1
            text = format_printk(mem.read(fmt, fmt_size), (a3, a4, a5)[:n_args])
            if text is None:
                return -1
            if st.printk_enabled:
                st.printk.append(PrintkRecord(st.now, st.program, HELPER_NAMES[12 + n_args], text))
            return len(text)
        return helper

    # -- memory and strings --------------------------------------------------------------------
    def memcpy_s(machine, dst, dst_size, src, src_size, *_):
        if src_size > dst_size:
            return -EINVAL
        mem.write(dst, mem.read(src, src_size))
        return 0

    def memmove_s(machine, dst, dst_size, src, src_size, *_):
        return memcpy_s(machine, dst, dst_size, src, src_size)

    def memcmp_s(machine, a, a_size, b, b_size, *_):
        n = min(a_size, b_size)
        x, y = mem.read(a, n), mem.read(b, n)
        if x != y:
            return -1 if x < y else 1
        return -1 if a_size < b_size else 1 if a_size > b_size else 0

    def memset(machine, dst, size, value, *_):
        mem.write(dst, bytes([value & 0xFF]) * size)
        return dst

    def strncpy_s(machine, dst, dst_size, src, count, *_):
        if dst_size == 0:
            return STATUS_INVALID_PARAMETER
        text = _cstring(mem.read(src, count))
        status = 0
        if len(text) > dst_size - 1:
            text, status = text[:dst_size - 1], STATUS_BUFFER_OVERFLOW
        mem.write(dst, text.ljust(dst_size, b"\0"))  # STRSAFE_FILL_BEHIND_NULL with 0
        return status

    def strncat_s(machine, dst, dst_size, src, count, *_):
        if dst_size == 0:
            return STATUS_INVALID_PARAMETER
        current = mem.read(dst, dst_size)
        end = current.find(b"\0")
        if end < 0:
            return STATUS_INVALID_PARAMETER
        text = current[:end] + _cstring(mem.read(src, count))
        status = 0
        if len(text) > dst_size - 1:
            text, status = text[:dst_size - 1], STATUS_BUFFER_OVERFLOW
        mem.write(dst, text.ljust(dst_size, b"\0"))
        return status

    def strnlen_s(machine, s, size, *_):
        if s == 0:
            return 0
        data = mem.read(s, size)
        end = data.find(b"\0")
        return size if end < 0 else end

    table: dict[int, Callable] = {
        1: lookup, 2: update, 3: delete, 4: lookup_and_delete, 5: tail_call, 6: prandom,
        7: boot_ns, 8: smp_id, 9: mono_ns, 10: checksum, 11: ringbuf_output,
        12: printk(0), 13: printk(1), 14: printk(2), 15: printk(3),
        16: push, 17: pop_or_peek("bpf_map_pop_elem", "pop"),
        18: pop_or_peek("bpf_map_peek_elem", "peek"), 19: pid_tgid, 20: logon_id, 21: is_admin,
        22: memcpy_s, 23: memcmp_s, 24: memset, 25: memmove_s, 27: strncpy_s, 28: strncat_s,
        29: strnlen_s, 30: boot_ms, 31: mono_ms, 32: perf_event_output, 33: start_key,
        34: thread_time,
    }
    for helper_id, fn in table.items():
        fn.__name__ = HELPER_NAMES[helper_id]
    return table


def _int32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v & 0x8000_0000 else v


def _cstring(data: bytes) -> bytes:
    end = data.find(b"\0")
    return data if end < 0 else data[:end]
