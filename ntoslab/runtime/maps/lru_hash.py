"""LRU hash maps (Windows type 8): a hash map bounded by max_entries that evicts to make room for
a new key, with eBPF for Windows' *approximate* LRU by default (ntoslab/native/lru.c), or the
exact least-recently-used order with ``true_lru=True`` (Linux-like).

EFW's model (libs/execution_context/ebpf_maps.c: the comment above ``ebpf_lru_entry_t``,
``_create_lru_hash_map``, ``_insert_into_hot_list``, ``_merge_hot_into_cold_list_if_needed``,
``_reap_lru_cold_lists``, ``_update_hash_map_entry_operation_context``; the notifications'
order from libs/runtime/ebpf_hash_table.c ``_ebpf_hash_table_replace_bucket``):

* **partitions** = min(CPU count, 8); the current CPU (``env.cpu``) uses ``cpu % partitions``.
  Each has a hot list, a cold list, a generation and
  ``hot_limit = max(max_entries // partitions // 10, 1)``.  Every key has one link per
  partition (generation + last-used time); ``partitions()`` shows the lists.
* a **new value** (an insert, *or an update of an existing key*: EFW allocates a fresh value
  and frees the old one, whose history goes with it) gets a link at the tail of the current
  partition's hot list.  When a hot list grows past its limit it is appended to its cold list
  and a new generation starts.
* a **program lookup** (helper 1, EBPF_MAP_FLAG_HELPER) of a key already hot in the current
  partition changes nothing; a cold (or absent) link in the current partition moves to the hot
  tail.  User-side reads (``lookup``, ``items``, ``keys``) and lookup_and_delete never touch
  history.
* an update that fails (BPF_NOEXIST on an existing key, BPF_EXIST on a missing one, an insert
  into a full map) still allocated its value first, so it can merge the current hot list.
* **eviction**: an insert into a full map reaps one key and retries, as often as needed.  The
  reaper looks at the head of every partition's cold list; a head whose time is not its key's
  latest (the key was used later on another partition) is stale and dropped from that list;
  the key whose latest use is the oldest among the remaining heads is evicted.  Keys whose
  latest link is hot are never evicted while a cold list has a live key.
* **time**: EFW stamps links with a coarse clock (``cxplat_query_time_since_boot_approximate``,
  a timer tick), so links can tie: a tie never marks a link stale, and among equal heads the
  lowest partition wins (strict ``<``).  We use a logical clock, one tick per link that turns hot,
  finer than any two uses: no ties, and one CPU behaves exactly as on Windows at any speed.
* **Windows would spin here**: when the map is full and the reap finds no live cold key
  (every cold list is, or after dropping stale links becomes, empty), the retry cannot merge
  either (the current hot list is below its limit: it did not merge, or just did), so EFW
  retries forever.  That needs every key last used in the hot list of some *other* partition,
  hence max_entries smaller than the partition count (2 CPUs, max_entries 1: CPU 0 inserts A,
  CPU 1 inserts B).  We refuse that insert with EBPF_OUT_OF_SPACE (-29; ENOSPC from user mode)
  and count it in ``stalls``.
* ``keys()`` (and ``lru_order()``) lists keys in eviction order as far as it is defined: keys
  whose latest link is cold, oldest first (successive reaps take them in that order), then keys
  whose latest link is hot, oldest first (evicted only after further merges).

Consequences (by hand in tests/test_runtime_maps.py): with one CPU and max_entries 20
(hot_limit 2), insert 1, insert 2, look up 1 (hot: no change), insert 3..20: inserting 21 evicts
1, where true LRU evicts 2.  With one CPU and max_entries < 20 (hot_limit 1) the hot list holds
only the latest key and the two orders coincide.

``true_lru=True`` (``MapEnv(true_lru=True)``, ``Sandbox(..., true_lru=True)``,
``ntoslab.emulator(true_lru=True)``, or per map ``create_map(spec, env, true_lru=True)``): an
insert or update makes the key most recent, a program lookup makes it most recent, the least
recent key is evicted; inserts never fail for space; failed updates change nothing.

Flags and error codes are the hash map's (EBPF_INVALID_ARGUMENT, EBPF_OBJECT_ALREADY_EXISTS,
EBPF_KEY_NOT_FOUND); delete and lookup_and_delete as for a hash map.  Per-CPU values: see
lru_percpu_hash.py.
"""
from __future__ import annotations

import ctypes

from ...elf.program import MapSpec
from ...native.abi import MAPF_TRUE_LRU
from .base import EBPF_OUT_OF_SPACE, MapEnv, MapError
from .hash import HashMap


class LruHashMap(HashMap):
    def __init__(self, spec: MapSpec, env: MapEnv, *, true_lru: bool | None = None) -> None:
        self.true_lru = env.true_lru if true_lru is None else bool(true_lru)
        super().__init__(spec, env)

    def native_flags(self) -> int:
        return super().native_flags() | (MAPF_TRUE_LRU if self.true_lru else 0)

    def storage_bytes(self) -> int:
        return (self.spec.max_entries + 16) * self.stored_size

    def entry_limit(self) -> int:
        return 2 * self.spec.max_entries + 64  # evicted values stay readable until the run ends

    @property
    def evicted(self) -> int:
        """Entries evicted to make room so far."""
        return self._lib.ntl_map_evicted(self.native)

    @property
    def stalls(self) -> int:
        """Inserts refused with EBPF_OUT_OF_SPACE where Windows would retry forever."""
        return self._lib.ntl_lru_stalls(self.native)

    def _entries(self) -> list[int]:
        out = super()._entries()
        if len(out) != self.count():
            raise MemoryError(f"map {self.name}: no memory to list the keys in eviction order")
        return out

    def lru_order(self) -> list[bytes]:
        """Keys, the next eviction victim first (see the module docstring)."""
        return list(self.keys())

    def partitions(self) -> list[dict]:
        """EFW's key history per partition: ``generation``, ``hot_size``, ``hot_limit``, and the
        keys on the ``hot`` and ``cold`` lists, head first (a cold list may hold stale links of
        keys used later elsewhere, as on Windows). Empty with ``true_lru``."""
        out = []
        info = (ctypes.c_uint64 * 3)()
        for p in range(self._lib.ntl_lru_partitions(self.native)):
            self._lib.ntl_lru_partition_info(self.native, p, info)
            row = {"generation": info[0], "hot_size": info[1], "hot_limit": info[2]}
            for name, cold in (("hot", 0), ("cold", 1)):
                cap = max(self.count(), 1)
                buf = (ctypes.c_int64 * cap)()
                n = self._lib.ntl_lru_list(self.native, p, cold, buf, cap)
                row[name] = [self.key_of(e) for e in buf[:n]]
            out.append(row)
        return out

    def fail(self, code: int, op: str, key: bytes | None = None):
        try:
            super().fail(code, op, key)
        except MapError as exc:
            if abs(code) == EBPF_OUT_OF_SPACE and not self.true_lru:
                exc.args = (exc.args[0] + " (the map is full, no cold key is left to evict and "
                            "every key is hot in another CPU's partition: eBPF for Windows "
                            "would retry this insert forever)",)
            raise
