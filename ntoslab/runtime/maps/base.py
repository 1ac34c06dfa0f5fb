"""What every map type shares: its spec, its native storage, key/value checks, errors.

Every map lives in the native runtime (ntoslab/native/maps.c): one implementation of each
type's semantics serves both engines and user code. Programs see a map as a handle address
(what lddw of the map loads) and values as addresses in the map's long-lived storage windows;
user code sees bytes.

Two sides, two error conventions (both follow eBPF for Windows, "EFW"):

* program side (what helpers call): ``lookup_address(key) -> int`` (0 = NULL),
  ``update(key, value, flags) -> int``, ``delete(key) -> int`` and, where the type supports it,
  ``lookup_and_delete_address(key) -> int``, ``push/pop/peek``, ``output``.  They return 0 or a
  **negated ebpf_result_t** (EFW's ebpf_core.c does ``return -ebpf_map_update_entry(...)``), never
  an errno and never raise for a runtime condition.
* user side (what libbpf callers see): ``lookup(key) -> bytes | None``, ``lookup_user(key)``,
  ``update_user(key, value, flags)``, ``delete_user(key)``; failures raise ``MapError`` whose
  ``errno`` is what EFW's ``ebpf_result_to_errno`` gives (Windows CRT values) and whose message
  names the map.  User-side reads never touch LRU key history (EFW: only helper lookups do).

Values a program may hold a pointer to are not freed at once when their entry goes away:
they are *retired* and stay readable until ``end_epoch()`` (EFW frees them when the current
epoch ends, so ``p = lookup(k); delete(k); *p`` is still valid in the same program run); after
that an access through the stale pointer faults. The sandbox ends every map's epoch after each
program run.

Every access to a value is bounded by the value itself: reading or writing past the end of a
value faults (also for arrays, whose values EFW stores back to back: its verifier refuses such
a program, ours stops it at the access).
"""
from __future__ import annotations

import ctypes
import itertools
import os
import weakref
from abc import ABC
from typing import Iterator, NoReturn

from ...elf.program import MapSpec
from ...native import lib
from ...native.abi import MAPF_BOUNDED_HASH, MAPF_READONLY, Env
from ...vm.engine import ProgramRegistry
from ...vm.memory import AddressSpace, Region, RegionKind, host_view

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
from .. import ebpf_result as _result  # noqa: E402
from ..ebpf_result import (  # noqa: E402,F401
    EACCES,
    EBADF,
    EEXIST,
    EFAULT,
    EINVAL,
    ENOBUFS,
    ENOENT,
    ENOMEM,
    ENOSPC,
    ENOTSUP,
    EOTHER,
    EPERM,
)

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
PAGE_SIZE = 4096
DEFAULT_MAX_MAP_BYTES = 4 << 30      # storage a map may take when it is created (MapEnv)
HASH_ENTRY_LIMIT = 1 << 28           # entries an unbounded (EFW) hash map may grow to


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
    """A map cannot be created from its spec (EFW's ebpf_map_create would fail, or the spec
    asks for more memory than the environment allows)."""


class MapEnv:
    """What maps share with the run: the address space, the CPU count and the current CPU, and
    the native helper environment (time, identity, randomness, printk) of the sandbox.

    `registry` holds every map created in this env by id (map-in-map user updates name inner
    maps by id) and `handles` by handle address (``map_at``); `bounded_hash` makes hash, percpu
    hash, LPM trie and hash-of-maps refuse new keys past max_entries with EBPF_OUT_OF_SPACE
    (Linux behaviour, and EFW's open PR #5543); EFW today (since PR #3348) treats max_entries of
    those types as a bucket-count hint only. `true_lru` makes LRU maps created here evict the
    exact least recently used key (Linux-like) instead of following EFW's generations (see
    lru_hash.py). `max_map_bytes` bounds the storage one map may ask for at creation
    (MapSpecError beyond it, naming the map and the figure).
    """

    def __init__(self, memory: AddressSpace | None = None, ncpus: int = 1, cpu: int = 0,
                 bounded_hash: bool = False, max_map_bytes: int = DEFAULT_MAX_MAP_BYTES,
                 seed: int | None = 0, true_lru: bool = False) -> None:
        self.memory = memory if memory is not None else AddressSpace()
        self.ncpus = ncpus
        self.bounded_hash = bounded_hash
        self.true_lru = true_lru
        self.max_map_bytes = max_map_bytes
        self.registry: dict[int, Map] = {}
        self.handles: dict[int, Map] = {}
        self.programs = ProgramRegistry()         # prog-array program ids -> Program
        self._ids = itertools.count(1)
        L = lib()
        self.native = L.ntl_env_new(ncpus)
        if not self.native:
            raise MemoryError("cannot create a native helper environment")
        self._finalize = weakref.finalize(self, L.ntl_env_free, self.native)
        self.values: Env = self.native.contents
        self.cpu = cpu
        self.seed(seed)

    @property
    def cpu(self) -> int:
        return self.values.cpu

    @cpu.setter
    def cpu(self, value: int) -> None:
        self.values.cpu = value

    @property
    def cpu_address(self) -> int:
        return ctypes.addressof(self.values) + Env.cpu.offset

    def seed(self, seed: int | None) -> None:
        """Seed bpf_get_prandom_u32 as random.Random(seed) is seeded (None: from the OS)."""
        if seed is None:
            seed = int.from_bytes(os.urandom(16), "little")
        n = abs(seed)
        words = []
        while True:
            words.append(n & 0xFFFF_FFFF)
            n >>= 32
            if not n:
                break
        key = (ctypes.c_uint32 * len(words))(*words)
        lib().ntl_env_seed(self.native, key, len(words))

    def next_id(self) -> int:
        return next(self._ids)

    def map_at(self, address: int) -> "Map | None":
        """The map whose handle is at `address` (inner maps created at run time included)."""
        return self.handles.get(address)

    def program_id(self, program: object) -> int:
        """A stable nonzero id for a program stored in a prog array."""
        return self.programs.id_of(program)


class _Handle:
    """What lddw of a map loads: an address in a window of its own, never accessible."""

    __slots__ = ("base",)

    def __init__(self, base: int) -> None:
        self.base = base


def _free_map(L, native: int, memory: AddressSpace) -> None:
    memory.forget_map(native)
    L.ntl_map_free(native)


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
        self.check_size()
        self.id = env.next_id()
        L = self._lib = lib()
        flags = self.native_flags()
        initial = min(max(spec.max_entries, 16), 4096)
        self.native = L.ntl_map_new(self.memory.native, spec.type, spec.key_size,
                                    spec.value_size, spec.max_entries, env.ncpus, flags, self.id,
                                    env.cpu_address, initial, self.entry_limit())
        if not self.native:
            self.spec_error(f"the host could not allocate {self.storage_bytes():,} bytes of "
                            f"storage", EBPF_NO_MEMORY)
        self._finalize = weakref.finalize(self, _free_map, L, self.native, self.memory)
        self.memory.register_map(self.native, self)
        env.registry[self.id] = self
        self.handle = _Handle(L.ntl_map_handle(self.native))
        env.handles[self.handle.base] = self
        self._slab = L.ntl_map_slab(self.native).contents

    # -- creation checks -------------------------------------------------------------------------
    def native_flags(self) -> int:
        """The NTL_MAPF_* flags the native map is created with."""
        return (MAPF_BOUNDED_HASH if self.env.bounded_hash else 0) | \
            (MAPF_READONLY if self.spec.readonly else 0)

    def validate_spec(self) -> None:
        """Raise MapSpecError where EFW's ebpf_map_create refuses the definition."""
        s = self.spec
        if s.key_size == 0 and not self.ZERO_KEY_OK:
            self.spec_error("key_size 0 is not allowed for this map type")
        if s.value_size == 0 and not self.ZERO_VALUE_OK:
            self.spec_error("value_size 0 is not allowed for this map type")
        if s.max_entries == 0:
            self.spec_error("max_entries must not be 0")

    def storage_bytes(self) -> int:
        """Bytes of storage the map takes when it is created."""
        return 0

    def entry_limit(self) -> int:
        """Most entries the map's storage may grow to."""
        return self.spec.max_entries

    def check_size(self) -> None:
        need = self.storage_bytes()
        if need > self.env.max_map_bytes:
            self.spec_error(f"its storage would take {need:,} bytes (max_entries "
                            f"{self.spec.max_entries} x value_size {self.spec.value_size}), more "
                            f"than the limit of {self.env.max_map_bytes:,} bytes (raise it with "
                            f"max_map_bytes=...)", EBPF_NO_MEMORY)

    def spec_error(self, why: str, result: int = EBPF_INVALID_ARGUMENT):
        raise MapSpecError(_result.errno(result),
                           f"map {self.name} ({self.spec.type_name}): {why}", result)

    # -- program side (addresses) ----------------------------------------------------------------
    def _key(self, key: bytes) -> bytes:
        key = bytes(key)
        n = self.spec.key_size
        return key if len(key) == n else key[:n].ljust(n, b"\0")

    def _value(self, value: bytes) -> bytes:
        value = bytes(value)
        n = max(self.spec.value_size, 1)
        return value if len(value) == n else value[:n].ljust(n, b"\0")

    def lookup_address(self, key: bytes) -> int:
        """Address of the value for `key`, or 0 (a helper lookup: touches LRU key history)."""
        return self._lib.ntl_map_lookup(self.native, self._key(key), 1)

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> int:
        """0 or a negated ebpf_result_t, as the helper returns it."""
        return self._lib.ntl_map_update(self.native, self._key(key), self._value(value),
                                        flags & 0xFFFF_FFFF_FFFF_FFFF, 0)

    def delete(self, key: bytes) -> int:
        """0 or a negated ebpf_result_t."""
        return self._lib.ntl_map_delete(self.native, self._key(key))

    def lookup_and_delete_address(self, key: bytes) -> int:
        """Helper 4: the value's address (valid until end_epoch) after deleting it, or 0."""
        return self._lib.ntl_map_lookup_and_delete(self.native, self._key(key))

    def _entries(self) -> list[int]:
        n = self._lib.ntl_map_count(self.native)
        if not n:
            return []
        out = (ctypes.c_int64 * n)()
        got = self._lib.ntl_map_entries(self.native, out, n)
        return list(out[:got])

    def key_of(self, entry: int) -> bytes:
        """The key of storage entry `entry` (arrays: the index in key_size bytes)."""
        ks = self.spec.key_size
        p = self._lib.ntl_map_key_of(self.native, entry) if ks else None
        if p:
            return ctypes.string_at(p, ks)
        return entry.to_bytes(ks, "little") if ks else b""

    def keys(self) -> Iterator[bytes]:
        """Every key, in iteration order."""
        return iter([self.key_of(e) for e in self._entries()])

    # -- user side (bytes) -----------------------------------------------------------------------
    @property
    def stored_size(self) -> int:
        """Bytes stored per entry (per-CPU maps: pad8(value_size) * ncpus)."""
        return self.spec.value_size

    @property
    def user_value_size(self) -> int:
        """Size of a value as user mode reads and writes it (per-CPU maps: pad8 * ncpus)."""
        return self.stored_size

    def entry_bytes(self, entry: int) -> bytes:
        """The stored bytes of `entry` (every CPU's value for per-CPU maps)."""
        host = self._lib.ntl_slab_host(self._slab, entry)
        return ctypes.string_at(host, self.stored_size)

    def find_entry(self, key: bytes) -> int:
        return self._lib.ntl_map_find_entry(self.native, key)

    def lookup(self, key: bytes) -> bytes | None:
        """The value bytes for `key`, or None (never touches LRU key history)."""
        e = self.find_entry(self.check_key(key))
        return None if e < 0 else self.entry_bytes(e)

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
        """How a user-mode update writes an entry."""
        return self._lib.ntl_map_update(self.native, key, data, flags & 0xFFFF_FFFF_FFFF_FFFF, 1)

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
        for e in self._entries():
            yield self.key_of(e), self.entry_bytes(e)

    def count(self) -> int:
        """Number of entries `keys()` yields."""
        return self._lib.ntl_map_count(self.native)

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

    def fail(self, code: int, op: str, key: bytes | None = None) -> NoReturn:
        """Raise the MapError for a negated ebpf_result `code` from operation `op`."""
        result = abs(code)
        where = f" key {bytes(key).hex()}" if key else ""
        raise MapError(_result.errno(result),
                       f"map {self.name}: {op}{where} failed: {result_name(result)}", result)

    # -- value lifetime (EFW epochs) -------------------------------------------------------------
    def end_epoch(self) -> None:
        """Free every value retired since the last call (the sandbox calls it after each run)."""
        self._lib.ntl_map_end_epoch(self.native)

    # -- describing storage ----------------------------------------------------------------------
    def value_name(self, vslot: int) -> str:
        """The name fault messages give the value in storage slot `vslot`."""
        group = self._slab.group
        entry, cpu = divmod(vslot, group)
        return self.entry_name(entry) + (f" cpu {cpu}" if group > 1 else "")

    def entry_name(self, entry: int) -> str:
        return f"map {self.name} value [{entry}]"

    def storage_regions(self) -> list[Region]:
        """One region per segment of this map's storage (what `AddressSpace.regions` lists)."""
        from ...native.abi import FIRST_WINDOW, WINDOW_SHIFT
        out = []
        s = self._slab
        for k in range(s.nseg):
            seg = s.seg[k]
            size = seg.capacity * s.group * s.pitch
            out.append(Region(f"map {self.name} storage {k}",
                              (FIRST_WINDOW + seg.window) << WINDOW_SHIFT,
                              host_view(seg.host, size), bool(s.writable), RegionKind.MAP_STORAGE,
                              seg.window))
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.spec.type_name}>"


class KeylessMap(Map):
    """Maps programs write to but cannot address by key (ring buffer, perf event array)."""

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

