"""Array maps (Windows type 2): max_entries fixed slots, keys are u32 indexes, never deleted.

Values live in native storage, each bounded on its own: EFW stores them back to back (so an
access past one value would read the next on Windows, where the verifier refuses such a
program); here any access past a value faults at that access.  Global data (.data, .rodata,
.bss) is an array of one value named ``global <section>``.

EFW facts (ebpf_maps.c ``_find_array_map_entry`` / ``_update_array_map_entry`` /
``_delete_array_map_entry``): the key is read as a u32 index from its first 4 bytes; a lookup
past the end is NULL; update with BPF_NOEXIST or an index past the end -> EBPF_INVALID_ARGUMENT
(every other flags value, BPF_EXIST and unknown bits included, is accepted); delete zeroes the
slot and succeeds (past the end -> EBPF_INVALID_ARGUMENT); lookup_and_delete is refused (NULL).
``keys()`` yields every index 0..max_entries-1 in order.
"""
from __future__ import annotations

import ctypes
from typing import Iterator

from ...elf.program import MapSpec
from .base import Map, MapEnv


class ArrayMap(Map):
    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        super().__init__(spec, env)
        if spec.data is not None:
            data = bytes(spec.data)[:self.stored_size * spec.max_entries]
            for i in range(spec.max_entries):
                chunk = data[i * self.stored_size:(i + 1) * self.stored_size]
                if chunk:
                    ctypes.memmove(self._lib.ntl_slab_host(self._slab, i), chunk, len(chunk))

    def storage_bytes(self) -> int:
        return self.spec.max_entries * self.stored_size

    def keys(self) -> Iterator[bytes]:
        for i in range(self.spec.max_entries):
            yield i.to_bytes(self.spec.key_size, "little")  # the index in key_size bytes

    def count(self) -> int:
        return self.spec.max_entries

    def entry_name(self, entry: int) -> str:
        if self.spec.is_global_data:
            return f"global {self.spec.name}"
        return f"map {self.name}[{entry}]"

    @property
    def address(self) -> int:
        """The address of value 0."""
        return self._lib.ntl_slab_address(self._slab, 0, 0)
