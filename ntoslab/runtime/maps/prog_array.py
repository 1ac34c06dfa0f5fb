"""Program arrays (Windows type 3): u32 index → program, the targets of bpf_tail_call.

EFW facts (ebpf_maps.c prog array metadata, ``ebpf_map_find_entry``, ``_delete_array_map_entry_with_reference``):
programs cannot read entries (helper lookup -> NULL) nor store them (the type has no
``update_entry``: -EBPF_OPERATION_NOT_SUPPORTED); delete empties the slot and succeeds even when
it was empty, an index past the end -> -EBPF_OBJECT_NOT_FOUND.  User code fills slots with
``set_program``.
"""
from __future__ import annotations

from typing import Iterator

from ...elf.program import MapSpec
from .base import MapEnv, EBPF_OBJECT_NOT_FOUND, EBPF_OPERATION_NOT_SUPPORTED, Map


class ProgArrayMap(Map):
    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        super().__init__(spec, env)
        memory = env.memory
        self.slots: dict[int, object] = {}  # index -> Program

    def set_program(self, index: int, program: object | None) -> None:
        if not 0 <= index < self.spec.max_entries:
            raise IndexError(f"prog array {self.name}: index {index} outside 0..{self.spec.max_entries - 1}")
        if program is None:
            self.slots.pop(index, None)
        else:
            self.slots[index] = program

    def program_at(self, index: int):
        return self.slots.get(index)

    def lookup_address(self, key: bytes) -> int:
        return 0  # programs cannot read prog array entries

    def update(self, key: bytes, value: bytes, flags: int = 0) -> int:
        return -EBPF_OPERATION_NOT_SUPPORTED  # set from user space with set_program

    def delete(self, key: bytes) -> int:
        i = int.from_bytes(key[:4], "little")
        if i >= self.spec.max_entries:
            return -EBPF_OBJECT_NOT_FOUND
        self.slots.pop(i, None)
        return 0

    def keys(self) -> Iterator[bytes]:
        for i in sorted(self.slots):
            yield i.to_bytes(self.spec.key_size, "little")

    def lookup(self, key: bytes):
        prog = self.slots.get(int.from_bytes(self.check_key(key)[:4], "little"))
        return None if prog is None else getattr(prog, "name", "?").encode()
