"""General helpers by their Windows ids (reference §3.1), bound to one `Sandbox`.

Helpers receive the machine and r1..r5; they read and write program memory only through the
sandbox's address space, so a bad pointer is a contained fault.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

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


def general_helpers(box: "Sandbox") -> dict[int, Helper]:
    """The map and tail-call helpers (1-5) for programs of `box`."""

    def key_of(m, addr: int) -> bytes:
        return box.memory.read(addr, m.spec.key_size)

    def lookup(machine: Machine, map_addr: int, key: int, *_: int) -> int:
        m = box.map_at(map_addr, "bpf_map_lookup_elem")
        return m.lookup_address(key_of(m, key))

    def update(machine: Machine, map_addr: int, key: int, value: int, flags: int, *_: int) -> int:
        m = box.map_at(map_addr, "bpf_map_update_elem")
        return m.update(key_of(m, key), box.memory.read(value, m.spec.value_size), flags)

    def delete(machine: Machine, map_addr: int, key: int, *_: int) -> int:
        m = box.map_at(map_addr, "bpf_map_delete_elem")
        return m.delete(key_of(m, key))

    def tail_call(machine: Machine, ctx: int, map_addr: int, index: int, *_: int):
        m = box.map_at(map_addr, "bpf_tail_call")
        if not isinstance(m, ProgArrayMap):
            raise HelperError(f"map {m.name} is a {m.spec.type_name}, not a prog array")
        target = m.program_at(index & 0xFFFF_FFFF)
        if target is None:
            return -EBPF_INVALID_ARGUMENT
        return TailCall(target, ctx, failure=-EBPF_NO_MORE_TAIL_CALLS)

    table = {1: lookup, 2: update, 3: delete, 5: tail_call}
    for helper_id, fn in table.items():
        fn.__name__ = HELPER_NAMES[helper_id]
    return table
