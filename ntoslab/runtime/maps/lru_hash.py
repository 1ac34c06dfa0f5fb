"""LRU hash maps (Windows type 8): a hash map bounded by max_entries that evicts the least
recently used entry to make room for a new key.

Our model is exact least-recently-used order:

* an insert of a new key places it as most recent; when max_entries keys exist, the least
  recent entry is evicted first (``evicted`` counts evictions); inserts never fail for space;
* a **program-side** lookup (``lookup_address``, helper 1) makes the entry most recent;
* an update of an existing key (program or user side) makes it most recent: EFW's hash table
  replaces the value with a newly allocated one, whose key history starts fresh;
* user-side reads (``lookup``, ``items``, ``keys``) never change the order, as in EFW, where only
  accesses carrying EBPF_MAP_FLAG_HELPER touch the key history;
* ``keys()`` yields least recent first (``lru_order()`` is the same list).

Flags and error codes are the hash map's (EBPF_INVALID_ARGUMENT, EBPF_OBJECT_ALREADY_EXISTS,
EBPF_KEY_NOT_FOUND); delete and lookup_and_delete as for a hash map.

Where EFW orders differently (ebpf_maps.c, "BPF_MAP_TYPE_LRU_HASH" comment, ``_insert_into_hot_list``,
``_merge_hot_into_cold_list_if_needed``, ``_reap_lru_cold_lists``):

1. EFW approximates LRU with *generations*.  Each partition (one per CPU, at most 8) has a hot list
   and a cold list; ``hot_list_limit = max(max_entries // partitions // 10, 1)``.  An access to an
   entry already in the current generation's hot list does **nothing**; when the hot list grows
   past its limit it is appended, in first-touch order, to the tail of the cold list and a new
   generation starts.  Eviction takes the head of the cold list.  So with one CPU EFW evicts by
   (generation of last touch, then *first* touch within that generation), where we evict by last
   touch: the two differ exactly when an entry is touched again within the generation in which
   it was already touched after other entries were touched - EFW keeps it at its earlier place.
   Example, one CPU, max_entries 20 (hot limit 2): after touching 2, 3 and then 2 again within
   one generation, EFW will still evict 2 before 3 (2 entered that hot list first); we evict 3
   first.  With one CPU and max_entries < 20 the hot limit is 1: the hot list only ever holds the
   most recently touched entry, and the two orders coincide.
2. Entries still in the hot list are never evicted while the cold list has entries.
3. With several CPUs (partitions) EFW compares approximate last-use timestamps of the cold-list
   heads of each partition (coarse clock: ties resolve by partition number), and one key may sit
   in several partitions' lists; we keep one global order regardless of ``env.cpu``.
4. LRU per-CPU maps: a program-side update of an *existing* key writes the current CPU's value
   without refreshing recency in EFW (``_update_entry_per_cpu`` finds the entry without the helper
   flag); we follow that (see lru_percpu_hash.py).
"""
from __future__ import annotations

from .hash import HashMap


class LruHashMap(HashMap):
    def storage_bytes(self) -> int:
        return (self.spec.max_entries + 16) * self.stored_size

    def entry_limit(self) -> int:
        return 2 * self.spec.max_entries + 64  # evicted values stay readable until the run ends

    @property
    def evicted(self) -> int:
        """Entries evicted to make room so far."""
        return self._lib.ntl_map_evicted(self.native)

    def lru_order(self) -> list[bytes]:
        """Keys, least recently used first (the next eviction victim first)."""
        return list(self.keys())
