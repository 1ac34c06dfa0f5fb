"""Queue maps (Windows type 10): FIFO of at most max_entries values, no keys.

EFW facts (ebpf_maps.c ``ebpf_core_circular_map_t``, ``_ebpf_core_circular_map_push``,
``_ebpf_core_circular_map_peek_or_pop``, ``_update_circular_map_entry``, ``_create_queue_map``;
ebpf_core.c ``_ebpf_core_map_push_elem``):

* creation: key_size must be 0 (else EBPF_INVALID_ARGUMENT); value_size and max_entries > 0;
* push (helper 16, and helper 2 map_update_elem, which EFW routes to the same code with the key
  ignored): when full, ``flags & BPF_EXIST`` replaces: the *oldest* element (the slot at
  ``begin``) is dropped and the new value appended; without it -> -EBPF_OUT_OF_SPACE (29).
  Other flag bits are ignored;
* pop (helper 17) / peek (helper 18) on an empty map -> -EBPF_OBJECT_NOT_FOUND (7);
* helper 1 (lookup) peeks and returns the value's address, helper 4 (lookup_and_delete) pops
  and returns it (kept readable until end_epoch, as EFW epoch-frees it); helper 3 (delete) ->
  -EBPF_OPERATION_NOT_SUPPORTED (18).

Program-side methods: ``push(value, flags) -> int``, ``pop() -> (code, bytes | None)``,
``peek() -> (code, bytes | None)`` (code 0 or a negated ebpf_result; the helper copies the bytes
into the program's buffer when code == 0), ``lookup_address(key)``, ``lookup_and_delete_address(key)``.
User side: ``push_user``, ``pop_user``, ``peek_user`` (raise MapError), ``lookup(key=b"")`` (peek
or None), ``values_in_pop_order()`` (the order pops would return them).
"""
from __future__ import annotations

import ctypes
from typing import Iterator

from .base import Map


class QueueMap(Map):
    ZERO_KEY_OK = True

    def validate_spec(self) -> None:
        super().validate_spec()
        if self.spec.key_size != 0:
            self.spec_error(f"key_size is {self.spec.key_size}; queues and stacks have no key "
                            f"(key_size 0)")

    def storage_bytes(self) -> int:
        return (self.spec.max_entries + 16) * self.spec.value_size

    def entry_limit(self) -> int:
        return 2 * self.spec.max_entries + 64  # popped values stay readable until the run ends

    def entry_name(self, entry: int) -> str:
        return f"map {self.name} element"

    # -- program side ----------------------------------------------------------------------------
    def push(self, value: bytes, flags: int = 0) -> int:
        return self._lib.ntl_map_push(self.native, self._value(value), flags)

    def _pop(self, remove: bool) -> tuple[int, bytes | None]:
        out = ctypes.create_string_buffer(max(self.spec.value_size, 1))
        code = self._lib.ntl_map_pop(self.native, out, int(remove))
        return (code, None) if code else (0, out.raw[:self.spec.value_size])

    def pop(self) -> tuple[int, bytes | None]:
        return self._pop(True)

    def peek(self) -> tuple[int, bytes | None]:
        return self._pop(False)

    def lookup_address(self, key: bytes = b"") -> int:
        return super().lookup_address(key)

    def lookup_and_delete_address(self, key: bytes = b"") -> int:
        return super().lookup_and_delete_address(key)

    def delete(self, key: bytes = b"") -> int:
        return super().delete(key)

    def keys(self) -> Iterator[bytes]:
        return iter(())

    # -- user side -------------------------------------------------------------------------------
    def push_user(self, value: bytes, flags: int = 0) -> None:
        code = self.push(self.check_value(value), flags)
        if code:
            self.fail(code, "push")

    def pop_user(self) -> bytes:
        code, data = self.pop()
        if code or data is None:
            self.fail(code, "pop")
        return data

    def peek_user(self) -> bytes:
        code, data = self.peek()
        if code or data is None:
            self.fail(code, "peek")
        return data

    def lookup(self, key: bytes = b"") -> bytes | None:
        return self.peek()[1]

    def update_user(self, key: bytes, value, flags: int = 0) -> None:
        self.push_user(value, flags)

    def values_in_pop_order(self) -> list[bytes]:
        return [self.entry_bytes(e) for e in self._entries()]

    def items(self):
        return iter(())

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.values_in_pop_order())

