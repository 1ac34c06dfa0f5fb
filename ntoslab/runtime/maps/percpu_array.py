"""Per-CPU arrays (Windows type 5): max_entries slots of ``pad8(value_size) * ncpus`` bytes.

Slot *i*, CPU *c* lives at ``i * pad8(value_size) * ncpus + c * pad8(value_size)`` of one region.

Program side: ``lookup_address(key)`` -> the current CPU's value (``env.cpu``) or 0 past the end;
``update(key, value, flags)`` follows EFW's ``_update_entry_per_cpu``: an index inside the array
is always found, so the current CPU's value is written and ``flags`` are ignored (BPF_NOEXIST
succeeds here, unlike a plain array); an index past the end -> -EBPF_INVALID_ARGUMENT;
``delete(key)`` zeroes every CPU's value of the slot.

User side: ``lookup(key)`` -> flat pad8*ncpus bytes; ``lookup_percpu(key)`` -> list of ncpus
values; ``update_user(key, flat_or_list, flags)`` with the array rules (BPF_NOEXIST -> EINVAL).
"""
from __future__ import annotations

from .array import ArrayMap
from .percpu_hash import PerCpuValues


class PerCpuArrayMap(PerCpuValues, ArrayMap):
    pass
