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

from collections import deque
from typing import Iterator

from ...elf.program import MapSpec
from ...vm.memory import Region
from .base import (BPF_EXIST, EBPF_OBJECT_NOT_FOUND, EBPF_OPERATION_NOT_SUPPORTED,
                   EBPF_OUT_OF_SPACE, Map, MapEnv)


class QueueMap(Map):
    ZERO_KEY_OK = True

    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        super().__init__(spec, env)
        # oldest first; every element owns a region so helpers 1 and 4 can return its address
        self.items_: deque[Region] = deque()

    def validate_spec(self) -> None:
        super().validate_spec()
        if self.spec.key_size != 0:
            self.spec_error(f"key_size is {self.spec.key_size}; queues and stacks have no key "
                            f"(key_size 0)")

    # which end pop/peek take: queue -> oldest (left), stack -> newest (right)
    def _next(self) -> Region | None:
        return self.items_[0] if self.items_ else None

    def _take(self) -> Region:
        return self.items_.popleft()

    # -- program side ----------------------------------------------------------------------------
    def push(self, value: bytes, flags: int = 0) -> int:
        value = bytes(value)[:self.spec.value_size].ljust(self.spec.value_size, b"\0")
        if len(self.items_) >= self.spec.max_entries:
            if not flags & BPF_EXIST:
                return -EBPF_OUT_OF_SPACE
            self.retire(self.items_.popleft())  # both types drop the oldest (slot at `begin`)
        self.items_.append(self.memory.add(f"map {self.name} element", bytearray(value),
                                           kind="map value"))
        return 0

    def pop(self) -> tuple[int, bytes | None]:
        if not self.items_:
            return -EBPF_OBJECT_NOT_FOUND, None
        r = self._take()
        self.retire(r)
        return 0, bytes(r.data)

    def peek(self) -> tuple[int, bytes | None]:
        r = self._next()
        if r is None:
            return -EBPF_OBJECT_NOT_FOUND, None
        return 0, bytes(r.data)

    def lookup_address(self, key: bytes = b"") -> int:
        r = self._next()
        return 0 if r is None else r.base

    def lookup_and_delete_address(self, key: bytes = b"") -> int:
        if not self.items_:
            return 0
        r = self._take()
        self.retire(r)
        return r.base

    def update(self, key: bytes, value: bytes, flags: int = 0) -> int:
        return self.push(value, flags)

    def delete(self, key: bytes = b"") -> int:
        return -EBPF_OPERATION_NOT_SUPPORTED

    def keys(self) -> Iterator[bytes]:
        return iter(())

    # -- user side -------------------------------------------------------------------------------
    def push_user(self, value: bytes, flags: int = 0) -> None:
        code = self.push(self.check_value(value), flags)
        if code:
            self.fail(code, "push")

    def pop_user(self) -> bytes:
        code, data = self.pop()
        if code:
            self.fail(code, "pop")
        return data

    def peek_user(self) -> bytes:
        code, data = self.peek()
        if code:
            self.fail(code, "peek")
        return data

    def lookup(self, key: bytes = b"") -> bytes | None:
        return self.peek()[1]

    def update_user(self, key: bytes, value, flags: int = 0) -> None:
        self.push_user(value, flags)

    def values_in_pop_order(self) -> list[bytes]:
        return [bytes(r.data) for r in self.items_]

    def items(self):
        return iter(())

    def count(self) -> int:
        return len(self.items_)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.values_in_pop_order())
