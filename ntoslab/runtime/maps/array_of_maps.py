"""Array of maps (Windows type 7): max_entries slots, each empty or holding an inner Map.

EFW facts (ebpf_maps.c ``_create_object_array_map``, ``_find_object_array_map_entry``,
``_update_array_map_entry_with_handle``, ``_delete_array_map_entry_with_reference``):

* creation: value_size must be 4, else EBPF_INVALID_ARGUMENT; inner template = ``spec.inner``;
* program side: ``lookup_address(key)`` -> ``inner.handle.base``, or 0 for an empty slot or an
  index past the end; ``update`` -> -EBPF_OPERATION_NOT_SUPPORTED; ``delete(key)`` empties the
  slot and returns 0 (also for an empty slot), -EBPF_OBJECT_NOT_FOUND (7) past the end;
  ``lookup_and_delete_address`` -> 0;
* user side: value = inner map id (u32); ``update_user`` / ``set_inner``: BPF_NOEXIST or an index
  past the end -> EBPF_INVALID_ARGUMENT (EINVAL); an inner map unlike the template ->
  EBPF_INVALID_OBJECT (EINVAL); ``set_inner(key, None)`` empties the slot ("update to erase");
* ``keys()`` yields every index 0..max_entries-1 (``items()`` skips empty slots).
"""
from __future__ import annotations

from typing import Iterator

from .base import BPF_ANY, BPF_NOEXIST, EBPF_INVALID_ARGUMENT, Map
from .hash_of_maps import MapOfMaps


class ArrayOfMapsMap(MapOfMaps):
    def storage_bytes(self) -> int:
        return 8 * self.spec.max_entries

    @staticmethod
    def _index(key: bytes) -> int:
        return int.from_bytes(bytes(key)[:4], "little")

    def set_inner(self, key: bytes, inner: Map | None, flags: int = BPF_ANY) -> None:
        key = self.check_key(key)
        if flags == BPF_NOEXIST or self._index(key) >= self.spec.max_entries:
            self.fail(-EBPF_INVALID_ARGUMENT, "update", key)
        if inner is None:
            self._lib.ntl_map_set_inner(self.native, key, 0, flags)
            return
        self._store_inner(key, inner, flags)

    def keys(self) -> Iterator[bytes]:
        for i in range(self.spec.max_entries):
            yield i.to_bytes(self.spec.key_size, "little")

    def count(self) -> int:
        return self.spec.max_entries
