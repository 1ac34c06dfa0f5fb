"""Hash of maps (Windows type 6): keys -> inner Map instances.

EFW facts (ebpf_maps.c ``_create_object_hash_map``, ``_find_map_hash_map_entry``,
``_update_hash_map_entry_with_handle``, ``_delete_map_hash_map_entry``, ``_check_value_type``):

* creation: value_size must be 4 (a map id), else EBPF_INVALID_ARGUMENT; the inner template
  is ``spec.inner`` (when the object gives none we accept any inner map);
* an inner map must match the template's type, key_size, value_size and max_entries, else
  EBPF_INVALID_OBJECT (user errno EINVAL);
* program side: ``lookup_address(key)`` -> the inner map's handle address
  (``inner.handle.base``, usable as a map argument of other helpers) or 0;
  ``update`` -> -EBPF_OPERATION_NOT_SUPPORTED (programs cannot store maps);
  ``delete(key)`` -> 0, or -EBPF_OBJECT_NOT_FOUND (7) when missing;
  ``lookup_and_delete_address`` -> 0 (refused);
* user side: the value is the inner map's id (u32 little-endian, ``Map.id``);
  ``update_user(key, id_or_map, flags)`` with hash flag rules (NOEXIST on existing -> EEXIST,
  EXIST on missing -> ENOENT, other flags -> EINVAL), ``set_inner(key, map, flags)``,
  ``inner(key) -> Map | None``, ``delete_user(key)``;
* unbounded like a hash map (``MapEnv.bounded_hash`` bounds it); ``keys()`` in insertion order.

Populating from the object's ``values`` initialiser: call ``resolve_initial_values(resolver)``
with ``resolver(name) -> Map`` once every map exists (slot n is key n as a key_size integer).
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Callable

from ...elf.program import MapSpec
from .base import (
    BPF_ANY,
    EBADF,
    EBPF_INVALID_ARGUMENT,
    EBPF_INVALID_FD,
    EBPF_INVALID_OBJECT,
    EINVAL,
    Map,
    MapError,
)


class MapOfMaps(Map):
    """What hash-of-maps and array-of-maps share (inner handles live in native storage)."""

    @abstractmethod
    def set_inner(self, key: bytes, inner: Map | None, flags: int = BPF_ANY) -> None:
        """Store `inner` (None: clear) at `key`, as bpf_map_update_elem from user space."""

    def validate_spec(self) -> None:
        super().validate_spec()
        if self.spec.value_size != 4:
            self.spec_error(f"value_size is {self.spec.value_size}; a map-in-map value is a "
                            f"4-byte map id")

    @property
    def template(self) -> MapSpec | None:
        return self.spec.inner

    def check_inner(self, inner: Map) -> int:
        """0, or the negated EFW result for an inner map that does not fit the template."""
        t = self.template
        if t is None:
            return 0
        s = inner.spec
        if (s.type, s.key_size, s.value_size, s.max_entries) != \
                (t.type, t.key_size, t.value_size, t.max_entries):
            return -EBPF_INVALID_OBJECT
        return 0

    def resolve(self, value) -> Map:
        """A Map from a Map, an int id or 4 id bytes (user-side update value)."""
        if isinstance(value, Map):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value)
            if len(value) != 4:
                raise MapError(EINVAL, f"map {self.name}: value is {len(value)} bytes, expected "
                                       f"a 4-byte map id", EBPF_INVALID_ARGUMENT)
            value = int.from_bytes(value, "little")
        inner = self.env.registry.get(int(value))
        if inner is None:
            raise MapError(EBADF, f"map {self.name}: no map with id {value}", EBPF_INVALID_FD)
        return inner

    def update_user(self, key: bytes, value, flags: int = BPF_ANY) -> None:
        self.set_inner(key, self.resolve(value), flags)

    def create_inner(self, key: bytes, name: str | None = None, flags: int = BPF_ANY) -> Map:
        """Create a map from the inner template and store it at `key`."""
        from . import create_map
        if self.template is None:
            raise MapError(EINVAL, f"map {self.name}: no inner map template", EBPF_INVALID_ARGUMENT)
        t = self.template
        spec = MapSpec(name or f"{self.name}[{bytes(key).hex()}]", t.type, t.key_size,
                       t.value_size, t.max_entries, flags=t.flags, inner=t.inner)
        inner = create_map(spec, self.env)
        self.set_inner(key, inner, flags)
        return inner

    def resolve_initial_values(self, resolver: Callable[[str], Map]) -> None:
        """Store the maps the object's `values` initialiser names (slot -> map name)."""
        for slot, name in sorted(self.spec.initial_values.items()):
            self.set_inner(slot.to_bytes(self.spec.key_size, "little"), resolver(name))

    def inner(self, key: bytes) -> Map | None:
        """The inner map stored at `key`, or None."""
        handle = self._lib.ntl_map_lookup(self.native, self._key(key), 0)
        return self.env.handles.get(handle) if handle else None

    def lookup(self, key: bytes) -> bytes | None:
        inner = self.inner(self.check_key(key))
        return None if inner is None else inner.id.to_bytes(4, "little")

    def items(self):
        for key in list(self.keys()):
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def _store_inner(self, key: bytes, inner: Map, flags: int) -> None:
        code = self.check_inner(inner)
        if code:
            self.fail(code, f"update with {inner.name} (not like the inner template)", key)
        code = self._lib.ntl_map_set_inner(self.native, key, inner.handle.base, flags)
        if code:
            self.fail(code, "update", key)


class HashOfMapsMap(MapOfMaps):
    def storage_bytes(self) -> int:
        return min(max(self.spec.max_entries, 16), 4096) * 8

    def entry_limit(self) -> int:
        from .base import HASH_ENTRY_LIMIT
        return HASH_ENTRY_LIMIT

    def set_inner(self, key: bytes, inner: Map | None, flags: int = BPF_ANY) -> None:
        """User-side store (EFW _update_hash_map_entry_with_handle); None deletes."""
        key = self.check_key(key)
        if inner is None:
            return self.delete_user(key)
        if flags not in (0, 1, 2):
            self.fail(-EBPF_INVALID_ARGUMENT, "update", key)
        self._store_inner(key, inner, flags)

