"""Array maps (Windows type 2): max_entries fixed slots, keys are u32 indexes, never deleted.

All values live in one region, so an access past one value reads the next (as on Windows),
while an access past the last value faults.

EFW facts (ebpf_maps.c ``_find_array_map_entry`` / ``_update_array_map_entry`` /
``_delete_array_map_entry``): the key is read as a u32 index from its first 4 bytes; a lookup
past the end is NULL; update with BPF_NOEXIST or an index past the end -> EBPF_INVALID_ARGUMENT
(every other flags value, BPF_EXIST and unknown bits included, is accepted); delete zeroes the
slot and succeeds (past the end -> EBPF_INVALID_ARGUMENT); lookup_and_delete is refused (NULL).
``keys()`` yields every index 0..max_entries-1 in order.
"""
from __future__ import annotations

from typing import Iterator

from ...elf.program import MapSpec
from .base import BPF_NOEXIST, EBPF_INVALID_ARGUMENT, Map, MapEnv


class ArrayMap(Map):
    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        super().__init__(spec, env)
        memory = env.memory
        size = self.stored_size * spec.max_entries
        initial = spec.data if spec.data is not None else bytes(size)
        kind = "global data" if spec.is_global_data else "map value"
        label = f"global {spec.name}" if spec.is_global_data else f"map {spec.name} values"
        self.region = memory.add(label, bytearray(initial), writable=not spec.readonly, kind=kind)

    @property
    def stored_size(self) -> int:
        """Bytes per slot (per-CPU arrays: pad8(value_size) * ncpus)."""
        return self.spec.value_size

    def value_offset(self) -> int:
        return 0

    def _index(self, key: bytes) -> int:
        return int.from_bytes(key[:4], "little")

    def lookup_address(self, key: bytes) -> int:
        i = self._index(key)
        if i >= self.spec.max_entries:
            return 0
        return self.region.base + i * self.stored_size + self.value_offset()

    def store(self, key: bytes, data: bytes, flags: int) -> int:
        """EFW _update_array_map_entry on the whole slot."""
        i = self._index(key)
        if flags == BPF_NOEXIST or i >= self.spec.max_entries:
            return -EBPF_INVALID_ARGUMENT
        off = i * self.stored_size
        self.region.data[off:off + self.stored_size] = data
        return 0

    def update(self, key: bytes, value: bytes, flags: int = 0) -> int:
        return self.store(key, bytes(value), flags)

    def delete(self, key: bytes) -> int:
        """EFW zeroes the slot (every CPU's value) and succeeds."""
        i = self._index(key)
        if i >= self.spec.max_entries:
            return -EBPF_INVALID_ARGUMENT
        off = i * self.stored_size
        self.region.data[off:off + self.stored_size] = bytes(self.stored_size)
        return 0

    def keys(self) -> Iterator[bytes]:
        for i in range(self.spec.max_entries):
            yield i.to_bytes(self.spec.key_size, "little")  # the index in key_size bytes

    def count(self) -> int:
        return self.spec.max_entries

    def lookup(self, key: bytes) -> bytes | None:
        i = self._index(self.check_key(key))
        if i >= self.spec.max_entries:
            return None
        off = i * self.stored_size
        return bytes(self.region.data[off:off + self.stored_size])

    def user_store(self, key: bytes, data: bytes, flags: int) -> int:
        return self.store(key, data, flags)

    @property
    def address(self) -> int:
        return self.region.base
