"""Program arrays (Windows type 3): u32 index → program, the targets of bpf_tail_call.

EFW facts (ebpf_maps.c prog array metadata, ``ebpf_map_find_entry``, ``_delete_array_map_entry_with_reference``):
programs cannot read entries (helper lookup -> NULL) nor store them (the type has no
``update_entry``: -EBPF_OPERATION_NOT_SUPPORTED); delete empties the slot and succeeds even when
it was empty, an index past the end -> -EBPF_OBJECT_NOT_FOUND.  User code fills slots with
``set_program``; the JIT gives each slot its compiled code (``set_native``).
"""
from __future__ import annotations

from typing import Iterator

from .base import Map


class ProgArrayMap(Map):
    def storage_bytes(self) -> int:
        return 16 * self.spec.max_entries

    def set_program(self, index: int, program: object | None) -> None:
        if not 0 <= index < self.spec.max_entries:
            raise IndexError(f"prog array {self.name}: index {index} outside 0..{self.spec.max_entries - 1}")
        pid = 0 if program is None else self.env.program_id(program)
        self._lib.ntl_map_set_prog(self.native, index, None, pid)

    def set_native(self, index: int, address: int) -> None:
        """Give slot `index` the native code of its program (the JIT does this)."""
        pid = self._lib.ntl_map_prog_id(self.native, index)
        if pid:
            self._lib.ntl_map_set_prog(self.native, index, address or None, pid)

    def program_at(self, index: int):
        if not 0 <= index < self.spec.max_entries:
            return None
        pid = self._lib.ntl_map_prog_id(self.native, index)
        return self.env.programs.get(pid) if pid else None

    def programs(self) -> dict[int, object]:
        """Slot -> program, for every filled slot."""
        out = {}
        for i in range(self.spec.max_entries):
            p = self.program_at(i)
            if p is not None:
                out[i] = p
        return out

    def keys(self) -> Iterator[bytes]:
        for i in self.programs():
            yield i.to_bytes(self.spec.key_size, "little")

    def count(self) -> int:
        return len(self.programs())

    def lookup(self, key: bytes):
        prog = self.program_at(int.from_bytes(self.check_key(key)[:4], "little"))
        return None if prog is None else getattr(prog, "name", "?").encode()
