"""Per-CPU hash maps (Windows type 4): one value per CPU for every key.

Layout (EFW ebpf_map_create / _ebpf_adjust_value_pointer, reference section 3.2): an entry stores
``pad8(value_size) * ncpus`` bytes; CPU *c*'s value starts at ``c * pad8(value_size)``.  That flat
buffer is also what user mode reads and writes (libbpf's per-CPU value buffer).

Program side (the current CPU is ``env.cpu``):

* ``lookup_address(key)`` -> address of the current CPU's value, or 0.
* ``update(key, value, flags)`` follows EFW's ``_update_entry_per_cpu``: when the key exists the
  current CPU's value is overwritten and ``flags`` are **not checked at all** (so BPF_NOEXIST on an
  existing key succeeds); when it does not, a zeroed entry is inserted under ``flags`` (invalid
  flags -> -EBPF_INVALID_ARGUMENT, BPF_EXIST -> -EBPF_KEY_NOT_FOUND) and then the current CPU's
  value is written.  Other CPUs' values stay zero.
* ``delete(key)``, ``lookup_and_delete_address(key)`` as for a hash map.

User side: ``lookup(key)`` -> the flat buffer; ``lookup_percpu(key)`` -> list of ``ncpus`` values
(each value_size bytes); ``update_user(key, value, flags)`` takes the flat buffer or a list of
``ncpus`` values (each value_size or pad8(value_size) bytes) with hash-map flag rules.
"""
from __future__ import annotations

from typing import Callable

from ...elf.program import MapSpec
from .base import EBPF_INVALID_ARGUMENT, EINVAL, MapEnv, MapError, pad8
from .hash import HashMap


class PerCpuValues:
    """Mixin: per-CPU value layout and the user-side value forms."""

    env: MapEnv
    spec: MapSpec
    name: str
    lookup: Callable[[bytes], bytes | None]      # the map's own (the mixin comes first)

    @property
    def slot_size(self) -> int:
        return pad8(self.spec.value_size)

    @property
    def stored_size(self) -> int:
        return self.slot_size * self.env.ncpus

    def user_value(self, value) -> bytes:
        """Flat pad8(value_size)*ncpus bytes, or a list of ncpus per-CPU values."""
        n, size, slot = self.env.ncpus, self.spec.value_size, self.slot_size
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value)
            if len(value) != n * slot:
                raise MapError(EINVAL, f"map {self.name}: per-CPU value is {len(value)} bytes, "
                                       f"expected pad8({size}) * {n} CPUs = {n * slot}",
                               EBPF_INVALID_ARGUMENT)
            return value
        values = list(value)
        if len(values) != n:
            raise MapError(EINVAL, f"map {self.name}: {len(values)} per-CPU values given, "
                                   f"expected {n}", EBPF_INVALID_ARGUMENT)
        out = bytearray()
        for i, v in enumerate(values):
            v = bytes(v)
            if len(v) not in (size, slot):
                raise MapError(EINVAL, f"map {self.name}: CPU {i} value is {len(v)} bytes, "
                                       f"expected {size}", EBPF_INVALID_ARGUMENT)
            out += v.ljust(slot, b"\0")
        return bytes(out)

    def split(self, flat: bytes) -> list[bytes]:
        slot, size = self.slot_size, self.spec.value_size
        return [bytes(flat[i * slot:i * slot + size]) for i in range(self.env.ncpus)]

    def lookup_percpu(self, key: bytes) -> list[bytes] | None:
        """User side: one value per CPU, or None."""
        flat = self.lookup(key)
        return None if flat is None else self.split(flat)


class PerCpuHashMap(PerCpuValues, HashMap):
    pass
