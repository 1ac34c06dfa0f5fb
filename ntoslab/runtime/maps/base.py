"""What every map type shares: its spec, its handle in the sandbox, key/value checks, errors.

Programs see a map as a handle address (what lddw of the map loads) and values as addresses
inside regions the map owns; user code sees bytes.

Two sides, two error conventions (both follow eBPF for Windows, "EFW"):

* program side (what helpers call): ``lookup_address(key) -> int`` (0 = NULL),
  ``update(key, value, flags) -> int``, ``delete(key) -> int`` and, where the type supports it,
  ``lookup_and_delete_address(key) -> int``, ``push/pop/peek``, ``output``.  They return 0 or a
  **negated ebpf_result_t** (EFW's ebpf_core.c does ``return -ebpf_map_update_entry(...)``), never
  an errno and never raise for a runtime condition.
* user side (what libbpf callers see): ``lookup(key) -> bytes | None``, ``lookup_user(key)``,
  ``update_user(key, value, flags)``, ``delete_user(key)``; failures raise ``MapError`` whose
  ``errno`` is what EFW's ``ebpf_result_to_errno`` gives (Windows CRT values) and whose message
  names the map.  User-side reads never refresh LRU recency (EFW: only helper lookups do).

Values a program may hold a pointer to are not unmapped at once when their entry goes away:
they are *retired* and stay readable until ``end_epoch()`` (EFW frees them when the current
epoch ends, so ``p = lookup(k); delete(k); *p`` is still valid in the same program run).
The caller (the sandbox/hook) should call ``end_epoch()`` on every map after each program run.
"""
from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator

from ...elf.program import MapSpec
from ...vm.memory import AddressSpace, Region

# ebpf_result_t (EFW include/ebpf_result.h).  Helpers on Windows return the negated value.
EBPF_SUCCESS = 0
EBPF_INVALID_FD = 4
EBPF_INVALID_OBJECT = 5
EBPF_INVALID_ARGUMENT = 6
EBPF_OBJECT_NOT_FOUND = 7
EBPF_OBJECT_ALREADY_EXISTS = 8
EBPF_NO_MEMORY = 12
EBPF_OPERATION_NOT_SUPPORTED = 18
EBPF_KEY_NOT_FOUND = 19
EBPF_ARITHMETIC_OVERFLOW = 22
EBPF_NO_MORE_KEYS = 25
EBPF_KEY_ALREADY_EXISTS = 26
EBPF_NO_MORE_TAIL_CALLS = 27
EBPF_OUT_OF_SPACE = 29

# errno values and the result -> errno table live in one place: ntoslab/runtime/ebpf_result.py
from ..ebpf_result import (EACCES, EBADF, EEXIST, EFAULT, EINVAL, ENOBUFS, ENOENT, ENOMEM,  # noqa: E402
                           ENOSPC, ENOTSUP, EOTHER, EPERM)
from .. import ebpf_result as _result  # noqa: E402

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
PAGE_SIZE = 4096
RETIRED_LIMIT = 4096  # safety net when nobody calls end_epoch()


def pad8(n: int) -> int:
    """EFW's EBPF_PAD_8."""
    return (n + 7) & ~7


def result_name(code: int) -> str:
    return "EBPF_" + _result.name(code)


class MapError(Exception):
    """A user-space map operation failed; `errno` says why (as libbpf on Windows would), and
    `result` is the ebpf_result_t behind it when there is one."""

    def __init__(self, errno: int, message: str, result: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.result = result


class MapSpecError(MapError):
    """A map cannot be created from its spec (EFW's ebpf_map_create would fail)."""


@dataclass
class MapEnv:
    """What maps share with the run: the address space, the CPU count and the current CPU.

    `registry` holds every map created in this env by id (map-in-map user updates name inner
    maps by id) and `handles` by handle address (``map_at``); `bounded_hash` makes hash, percpu hash, LPM trie and hash-of-maps refuse new
    keys past max_entries with EBPF_OUT_OF_SPACE (Linux behaviour, and EFW's open PR #5543);
    EFW today (since PR #3348) treats max_entries of those types as a bucket-count hint only.
    """

    memory: AddressSpace = field(default_factory=AddressSpace)
    ncpus: int = 1
    cpu: int = 0
    bounded_hash: bool = False
    registry: dict = field(default_factory=dict)
    handles: dict = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def next_id(self) -> int:
        return next(self._ids)

    def map_at(self, address: int) -> "Map | None":
        """The map whose handle is at `address` (inner maps created at run time included)."""
        return self.handles.get(address)


class Map(ABC):
    """A map instance living in one address space."""

    # EFW ebpf_map_create: a zero key/value size is refused unless the type allows it
    ZERO_KEY_OK = False
    ZERO_VALUE_OK = False

    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        self.spec = spec
        self.env = env
        self.memory = env.memory
        self.name = spec.name
        if not spec.is_global_data:
            self.validate_spec()
        self.id = env.next_id()
        env.registry[self.id] = self
        self._retired: list[Region] = []
        self.handle: Region = env.memory.add(f"map {spec.name} (handle)", bytearray(0),
                                             writable=False, kind="map handle")
        env.handles[self.handle.base] = self

    # -- creation checks -------------------------------------------------------------------------
    def validate_spec(self) -> None:
        """Raise MapSpecError where EFW's ebpf_map_create refuses the definition."""
        s = self.spec
        if s.key_size == 0 and not self.ZERO_KEY_OK:
            self.spec_error("key_size 0 is not allowed for this map type")
        if s.value_size == 0 and not self.ZERO_VALUE_OK:
            self.spec_error("value_size 0 is not allowed for this map type")
        if s.max_entries == 0:
            self.spec_error("max_entries must not be 0")

    def spec_error(self, why: str, result: int = EBPF_INVALID_ARGUMENT):
        raise MapSpecError(_result.errno(result),
                           f"map {self.name} ({self.spec.type_name}): {why}", result)

    # -- program side (addresses) ----------------------------------------------------------------
    @abstractmethod
    def lookup_address(self, key: bytes) -> int:
        """Address of the value for `key`, or 0."""

    @abstractmethod
    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> int:
        """0 or a negated ebpf_result_t, as the helper returns it."""

    @abstractmethod
    def delete(self, key: bytes) -> int:
        """0 or a negated ebpf_result_t."""

    @abstractmethod
    def keys(self) -> Iterator[bytes]:
        """Every key, in iteration order."""

    # -- user side (bytes) -----------------------------------------------------------------------
    @property
    def user_value_size(self) -> int:
        """Size of a value as user mode reads and writes it (per-CPU maps: pad8 * ncpus)."""
        return self.spec.value_size

    def lookup(self, key: bytes) -> bytes | None:
        """The value bytes for `key`, or None."""
        addr = self.lookup_address(self.check_key(key))
        return None if addr == 0 else self.memory.read(addr, self.spec.value_size)

    def lookup_user(self, key: bytes) -> bytes:
        """Like `lookup`, but a missing key raises MapError(ENOENT)."""
        value = self.lookup(key)
        if value is None:
            self.fail(-EBPF_KEY_NOT_FOUND, "lookup", key)
        return value

    def user_value(self, value) -> bytes:
        """The bytes user mode stores for `value` (per-CPU maps also accept one value per CPU)."""
        return self.check_value(value)

    def user_store(self, key: bytes, data: bytes, flags: int) -> int:
        """How a user-mode update writes an entry (default: as a program's update would)."""
        return self.update(key, data, flags)

    def update_user(self, key: bytes, value, flags: int = BPF_ANY) -> None:
        """bpf_map_update_elem from user mode; raises MapError on failure."""
        key = self.check_key(key)
        code = self.user_store(key, self.user_value(value), flags)
        if code:
            self.fail(code, "update", key)

    def delete_user(self, key: bytes) -> None:
        """bpf_map_delete_elem from user mode; raises MapError on failure."""
        code = self.delete(self.check_key(key))
        if code:
            self.fail(code, "delete", key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for k in list(self.keys()):
            v = self.lookup(k)
            if v is not None:
                yield k, v

    def count(self) -> int:
        """Number of entries `keys()` yields."""
        return sum(1 for _ in self.keys())

    def check_key(self, key: bytes) -> bytes:
        key = bytes(key)
        if len(key) != self.spec.key_size:
            raise MapError(EINVAL, f"map {self.name}: key is {len(key)} bytes, expected "
                                   f"{self.spec.key_size}", EBPF_INVALID_ARGUMENT)
        return key

    def check_value(self, value: bytes) -> bytes:
        value = bytes(value)
        if len(value) != self.spec.value_size:
            raise MapError(EINVAL, f"map {self.name}: value is {len(value)} bytes, expected "
                                   f"{self.spec.value_size}", EBPF_INVALID_ARGUMENT)
        return value

    def fail(self, code: int, op: str, key: bytes | None = None):
        """Raise the MapError for a negated ebpf_result `code` from operation `op`."""
        result = abs(code)
        where = f" key {bytes(key).hex()}" if key else ""
        raise MapError(_result.errno(result),
                       f"map {self.name}: {op}{where} failed: {result_name(result)}", result)

    # -- value lifetime (EFW epochs) -------------------------------------------------------------
    def retire(self, region: Region) -> None:
        """Keep `region` readable until end_epoch() (a program may still hold a pointer)."""
        self._retired.append(region)
        if len(self._retired) > RETIRED_LIMIT:
            self.memory.remove(self._retired.pop(0))

    def end_epoch(self) -> None:
        """Unmap every value retired since the last call (call after each program run)."""
        for r in self._retired:
            self.memory.remove(r)
        self._retired.clear()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.spec.type_name}>"


class KeylessMap(Map):
    """Maps programs write to but cannot address by key (ring buffer, perf event array)."""

    def lookup_address(self, key: bytes) -> int:
        return 0

    def update(self, key: bytes, value: bytes, flags: int = 0) -> int:
        return -EBPF_OPERATION_NOT_SUPPORTED

    def delete(self, key: bytes) -> int:
        return -EBPF_OPERATION_NOT_SUPPORTED

    def keys(self) -> Iterator[bytes]:
        return iter(())

    def lookup(self, key: bytes) -> bytes | None:
        return None

    def update_user(self, key: bytes, value, flags: int = 0) -> None:
        self.fail(-EBPF_OPERATION_NOT_SUPPORTED, "update")

    def delete_user(self, key: bytes) -> None:
        self.fail(-EBPF_OPERATION_NOT_SUPPORTED, "delete")

    def count(self) -> int:
        return 0
