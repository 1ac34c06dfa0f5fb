"""LRU per-CPU hash maps (Windows type 11): the LRU hash's eviction with per-CPU values.

Values are laid out as for type 4 (``pad8(value_size) * ncpus`` per entry).  Key history and
eviction as in lru_hash.py (EFW's generations by default, exact LRU with ``true_lru``), with
EFW's per-CPU detail (libs/execution_context/ebpf_maps.c ``_update_entry_per_cpu``): a
program-side ``update`` of an *existing* key finds the entry without EBPF_MAP_FLAG_HELPER and
writes the current CPU's value in place, so it touches no history and checks no flags; an
update of a missing key inserts a zeroed value under ``flags`` (a new value, as in lru_hash.py,
evicting when full; BPF_EXIST allocates a value the table then refuses), then writes it.
Program lookups touch history as in lru_hash.py; user-side updates store a whole new value.
"""
from __future__ import annotations

from .lru_hash import LruHashMap
from .percpu_hash import PerCpuValues


class LruPerCpuHashMap(PerCpuValues, LruHashMap):
    pass
