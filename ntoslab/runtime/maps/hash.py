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
  insertion order (an updated key keeps its place; an LRU map iterates least recent first).

Deliberate difference: EFW's update allocates a fresh value and retires the old one, so a
pointer a program obtained before an update keeps showing the old bytes; we update in place
(the pointer sees the new bytes).  Deletes do retire the old value as EFW does.
"""
from __future__ import annotations

from typing import Iterator

from ...elf.program import MapSpec
from ...vm.memory import Region
from .base import (BPF_EXIST, BPF_NOEXIST, EBPF_INVALID_ARGUMENT, EBPF_KEY_NOT_FOUND,
                   EBPF_OBJECT_ALREADY_EXISTS, EBPF_OUT_OF_SPACE, Map, MapEnv)


class HashMap(Map):
    """Keys -> values; program-side value pointers are addresses of one region per entry."""

    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        super().__init__(spec, env)
        self.entries: dict[bytes, Region] = {}

    # -- hooks for the variants ------------------------------------------------------------------
    @property
    def stored_size(self) -> int:
        """Bytes stored per entry (per-CPU variants store pad8(value_size) * ncpus)."""
        return self.spec.value_size

    def canonical(self, key: bytes) -> bytes:
        """The identity of a key (LPM tries ignore bits past the prefix)."""
        return key

    def bounded(self) -> bool:
        return self.env.bounded_hash

    def make_room(self) -> bool:
        """Called when max_entries keys exist and a new one comes; True if it may be inserted."""
        return not self.bounded()

    def touched(self, ck: bytes) -> None:
        """A program looked the entry up (LRU refreshes recency)."""

    def updated(self, ck: bytes) -> None:
        """The entry's value was replaced (EFW reallocates it; LRU refreshes recency)."""

    def value_offset(self) -> int:
        """Offset of the current CPU's value inside an entry (per-CPU variants)."""
        return 0

    def find(self, key: bytes) -> Region | None:
        """The entry for `key`, without side effects."""
        return self.entries.get(self.canonical(key))

    def store(self, key: bytes, data: bytes, flags: int) -> int:
        """EFW _update_hash_map_entry: insert or replace the whole stored value."""
        if flags not in (0, 1, 2):
            return -EBPF_INVALID_ARGUMENT
        ck = self.canonical(key)
        r = self.entries.get(ck)
        if r is not None:
            if flags == BPF_NOEXIST:
                return -EBPF_OBJECT_ALREADY_EXISTS
            r.data[:] = data
            self.updated(ck)
            return 0
        if flags == BPF_EXIST:
            return -EBPF_KEY_NOT_FOUND
        if len(self.entries) >= self.spec.max_entries and not self.make_room():
            return -EBPF_OUT_OF_SPACE
        self.entries[ck] = self.memory.add(f"map {self.name} value key={key.hex()}",
                                           bytearray(data), kind="map value")
        self.inserted(ck, key)
        return 0

    def inserted(self, ck: bytes, key: bytes) -> None:
        """A new entry was created for `key` (canonical `ck`)."""

    def remove(self, ck: bytes) -> Region | None:
        r = self.entries.pop(ck, None)
        if r is not None:
            self.retire(r)
        return r

    def original_key(self, ck: bytes) -> bytes:
        return ck

    # -- program side ----------------------------------------------------------------------------
    def lookup_address(self, key: bytes) -> int:
        ck = self.canonical(key)
        r = self.entries.get(ck)
        if r is None:
            return 0
        self.touched(ck)
        return r.base + self.value_offset()

    def update(self, key: bytes, value: bytes, flags: int = 0) -> int:
        return self.store(key, bytes(value), flags)

    def delete(self, key: bytes) -> int:
        return 0 if self.remove(self.canonical(key)) is not None else -EBPF_KEY_NOT_FOUND

    def lookup_and_delete_address(self, key: bytes) -> int:
        """Helper 4: the value's address (valid until end_epoch) after deleting it, or 0."""
        r = self.remove(self.canonical(key))
        return 0 if r is None else r.base + self.value_offset()

    def keys(self) -> Iterator[bytes]:
        return iter([self.original_key(ck) for ck in self.entries])

    # -- user side -------------------------------------------------------------------------------
    def lookup(self, key: bytes) -> bytes | None:
        """The stored value (never refreshes LRU recency)."""
        r = self.find(self.check_key(key))
        return None if r is None else bytes(r.data[:self.stored_size])

    def user_store(self, key: bytes, data: bytes, flags: int) -> int:
        return self.store(key, data, flags)

    def count(self) -> int:
        return len(self.entries)
