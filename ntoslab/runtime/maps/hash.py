"""Hash maps (Windows type 1): keys → values, at most max_entries, insertion-ordered iteration."""
from __future__ import annotations

from typing import Iterator

from ...elf.program import MapSpec
from ...vm.memory import Region
from .base import (MapEnv, BPF_EXIST, BPF_NOEXIST, EBPF_INVALID_ARGUMENT, EBPF_KEY_ALREADY_EXISTS,
                   EBPF_KEY_NOT_FOUND, EBPF_OUT_OF_SPACE, Map)


class HashMap(Map):
    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        super().__init__(spec, env)
        memory = env.memory
        self.entries: dict[bytes, Region] = {}

    def lookup_address(self, key: bytes) -> int:
        r = self.entries.get(key)
        return 0 if r is None else r.base

    def update(self, key: bytes, value: bytes, flags: int = 0) -> int:
        if flags > 2:
            return -EBPF_INVALID_ARGUMENT
        r = self.entries.get(key)
        if r is not None:
            if flags == BPF_NOEXIST:
                return -EBPF_KEY_ALREADY_EXISTS
            r.data[:] = value
            return 0
        if flags == BPF_EXIST:
            return -EBPF_KEY_NOT_FOUND
        if len(self.entries) >= self.spec.max_entries:
            return -EBPF_OUT_OF_SPACE
        self.entries[key] = self.memory.add(f"map {self.name} value key={key.hex()}",
                                            bytearray(value), kind="map value")
        return 0

    def delete(self, key: bytes) -> int:
        r = self.entries.pop(key, None)
        if r is None:
            return -EBPF_KEY_NOT_FOUND
        self.memory.remove(r)
        return 0

    def keys(self) -> Iterator[bytes]:
        return iter(list(self.entries))
