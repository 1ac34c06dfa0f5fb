"""What every map type shares: its spec, its handle in the sandbox, key/value checks.

Programs see a map as a handle address (what lddw of the map loads) and values as addresses
inside regions the map owns; user code sees bytes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator

from ...elf.program import MapSpec
from ...vm.memory import AddressSpace, Region

# Helpers on Windows return the negated ebpf_result_t (not an errno): e.g. the map update helper
# is `return -ebpf_map_update_entry(...)` in EFW's ebpf_core.c.
EBPF_INVALID_ARGUMENT = 6
EBPF_OPERATION_NOT_SUPPORTED = 18
EBPF_KEY_NOT_FOUND = 19
EBPF_KEY_ALREADY_EXISTS = 26
EBPF_NO_MORE_TAIL_CALLS = 27
EBPF_OUT_OF_SPACE = 29
EINVAL = 22
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2


class MapError(Exception):
    """A user-space map operation failed; `errno` says why (as libbpf would)."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass
class MapEnv:
    """What maps share with the run: the address space, the CPU count and the current CPU."""

    memory: AddressSpace = field(default_factory=AddressSpace)
    ncpus: int = 1
    cpu: int = 0


class Map(ABC):
    """A map instance living in one address space."""

    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        self.spec = spec
        self.env = env
        self.memory = env.memory
        memory = env.memory
        self.name = spec.name
        self.handle: Region = memory.add(f"map {spec.name} (handle)", bytearray(0), writable=False,
                                         kind="map handle")

    # -- program side (addresses) ----------------------------------------------------------------
    @abstractmethod
    def lookup_address(self, key: bytes) -> int:
        """Address of the value for `key`, or 0."""

    @abstractmethod
    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> int:
        """0 or a negative errno, as the helper returns it."""

    @abstractmethod
    def delete(self, key: bytes) -> int:
        """0 or a negative errno."""

    @abstractmethod
    def keys(self) -> Iterator[bytes]:
        """Every key, in iteration order."""

    # -- user side (bytes) -----------------------------------------------------------------------
    def lookup(self, key: bytes) -> bytes | None:
        """The value bytes for `key`, or None."""
        addr = self.lookup_address(self.check_key(key))
        return None if addr == 0 else self.memory.read(addr, self.spec.value_size)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for k in list(self.keys()):
            v = self.lookup(k)
            if v is not None:
                yield k, v

    def check_key(self, key: bytes) -> bytes:
        key = bytes(key)
        if len(key) != self.spec.key_size:
            raise MapError(EINVAL, f"map {self.name}: key is {len(key)} bytes, expected "
                                   f"{self.spec.key_size}")
        return key

    def check_value(self, value: bytes) -> bytes:
        value = bytes(value)
        if len(value) != self.spec.value_size:
            raise MapError(EINVAL, f"map {self.name}: value is {len(value)} bytes, expected "
                                   f"{self.spec.value_size}")
        return value

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.spec.type_name}>"
