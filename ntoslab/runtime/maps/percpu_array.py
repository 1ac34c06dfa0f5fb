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
from .base import EBPF_INVALID_ARGUMENT
from .percpu_hash import PerCpuValues


class PerCpuArrayMap(PerCpuValues, ArrayMap):
    def update(self, key: bytes, value: bytes, flags: int = 0) -> int:
        i = self._index(key)
        if i >= self.spec.max_entries:
            return -EBPF_INVALID_ARGUMENT
        off = i * self.stored_size + self.value_offset()
        self.region.data[off:off + self.spec.value_size] = bytes(value)[:self.spec.value_size]
        return 0

    def lookup_percpu(self, key: bytes) -> list[bytes] | None:
        flat = self.lookup(key)
        return None if flat is None else self.split(flat)
