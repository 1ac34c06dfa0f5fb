"""LRU per-CPU hash maps (Windows type 11): the LRU hash's eviction with per-CPU values.

Values are laid out as for type 4 (``pad8(value_size) * ncpus`` per entry).  Recency as in
lru_hash.py, with EFW's per-CPU detail: a program-side ``update`` of an existing key writes the
current CPU's value in place and does *not* refresh recency (EFW ``_update_entry_per_cpu`` looks
the entry up without EBPF_MAP_FLAG_HELPER); an update that inserts a new key makes it most recent
(evicting the least recent entry when full).  Program lookups and user updates refresh recency.
"""
from __future__ import annotations

from .lru_hash import LruHashMap
from .percpu_hash import PerCpuValues


class LruPerCpuHashMap(PerCpuValues, LruHashMap):
    pass
