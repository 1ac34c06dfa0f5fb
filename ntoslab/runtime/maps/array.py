"""Array maps (Windows type 2): max_entries fixed slots, keys are u32 indexes, never deleted.

All values live in one region, so an access past one value reads the next (as on Windows),
while an access past the last value faults.
"""
from __future__ import annotations

from typing import Iterator

from ...elf.program import MapSpec
from .base import (MapEnv, BPF_EXIST, BPF_NOEXIST, EBPF_INVALID_ARGUMENT, EBPF_KEY_ALREADY_EXISTS,
                   EBPF_KEY_NOT_FOUND, EBPF_OUT_OF_SPACE, Map)


class ArrayMap(Map):
    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        super().__init__(spec, env)
        memory = env.memory
        size = spec.value_size * spec.max_entries
        initial = spec.data if spec.data is not None else bytes(size)
        kind = "global data" if spec.is_global_data else "map value"
        label = f"global {spec.name}" if spec.is_global_data else f"map {spec.name} values"
        self.region = memory.add(label, bytearray(initial), writable=not spec.readonly, kind=kind)

    def _index(self, key: bytes) -> int:
        return int.from_bytes(key[:4], "little")

    def lookup_address(self, key: bytes) -> int:
        i = self._index(key)
        if i >= self.spec.max_entries:
            return 0
        return self.region.base + i * self.spec.value_size

    def update(self, key: bytes, value: bytes, flags: int = 0) -> int:
        i = self._index(key)
        # EFW _update_array_map_entry: NOEXIST and out-of-range indexes are invalid arguments
        if flags > 2 or flags == BPF_NOEXIST or i >= self.spec.max_entries:
            return -EBPF_INVALID_ARGUMENT
        off = i * self.spec.value_size
        self.region.data[off:off + self.spec.value_size] = value
        return 0

    def delete(self, key: bytes) -> int:
        """EFW zeroes the slot and succeeds (an index past the end is an invalid argument)."""
        i = self._index(key)
        if i >= self.spec.max_entries:
            return -EBPF_INVALID_ARGUMENT
        off = i * self.spec.value_size
        self.region.data[off:off + self.spec.value_size] = bytes(self.spec.value_size)
        return 0

    def keys(self) -> Iterator[bytes]:
        for i in range(self.spec.max_entries):
            yield i.to_bytes(4, "little")

    @property
    def address(self) -> int:
        return self.region.base
