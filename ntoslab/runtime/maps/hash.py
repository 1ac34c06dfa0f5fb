"""Hash maps (Windows type 1), and the machinery the other hash-table types build on.

EFW facts (libs/execution_context/ebpf_maps.c, libs/runtime/ebpf_hash_table.c):

* update flags: BPF_ANY / BPF_NOEXIST / BPF_EXIST; anything else -> EBPF_INVALID_ARGUMENT (6);
  NOEXIST on an existing key -> EBPF_OBJECT_ALREADY_EXISTS (8, *not* KEY_ALREADY_EXISTS);
  EXIST on a missing key -> EBPF_KEY_NOT_FOUND (19); delete of a missing key -> KEY_NOT_FOUND.
* max_entries does not bound a plain hash map: since EFW PR #3348 it only sizes the bucket
  array, so inserts never fail for being "full".  ``MapEnv.bounded_hash = True`` restores the
  Linux rule (EBPF_OUT_OF_SPACE (29) once max_entries keys exist).
* lookup_and_delete (helper 4) finds, deletes and returns the (epoch-retired) value.
* iteration: EFW walks buckets of a randomly seeded hash, so its order is unspecified; ours is
  insertion order (an updated key keeps its place; an LRU map iterates in eviction order).

Deliberate difference: EFW's update allocates a fresh value and retires the old one, so a
pointer a program obtained before an update keeps showing the old bytes; we update in place
(the pointer sees the new bytes).  Deletes do retire the old value as EFW does.

Storage: values live in the map's native slab (ntoslab/native/slab.c), which grows by segments
as keys arrive, up to ``HASH_ENTRY_LIMIT`` entries for an unbounded map.
"""
from __future__ import annotations

from .base import HASH_ENTRY_LIMIT, Map


class HashMap(Map):
    """Keys -> values, in native storage (the semantics: ntoslab/native/maps.c)."""

    def storage_bytes(self) -> int:
        return min(max(self.spec.max_entries, 16), 4096) * self.stored_size

    def entry_limit(self) -> int:
        if self.env.bounded_hash:
            return self.spec.max_entries + 4096  # room for values retired in one run
        return HASH_ENTRY_LIMIT

    def entry_name(self, entry: int) -> str:
        return f"map {self.name} value key={self.key_of(entry).hex()}"
