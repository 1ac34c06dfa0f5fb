"""A reference model of eBPF for Windows' LRU hash map, in plain Python, for the tests.

Written from EFW's source (HEAD 0be2d1c3f), not from ntoslab/native/lru.c; each step names
the upstream function it follows:

* libs/execution_context/ebpf_maps.c: ``_create_lru_hash_map`` (partition_count =
  min(cpu_count, 8); hot_list_limit = max(max_entries / partition_count / 10, 1)),
  ``_get_key_state``, ``_merge_hot_into_cold_list_if_needed``, ``_insert_into_hot_list``,
  ``_initialize_lru_entry``, ``_uninitialize_lru_entry``, ``_lru_hash_table_notification``
  (partition = current CPU % partition_count), ``_reap_lru_cold_lists``,
  ``_reap_oldest_map_entry``, ``_find_lru_hash_map_entry`` (only EBPF_MAP_FLAG_HELPER lookups
  touch history), ``_update_hash_map_entry_operation_context`` (insert -> OUT_OF_SPACE -> reap
  one -> retry), ``_update_entry_per_cpu``;
* libs/runtime/ebpf_hash_table.c: ``_ebpf_hash_table_replace_bucket`` (a new value is allocated
  and its ALLOCATE notification sent *before* the bucket operation, which may then fail; the
  FREE notifications come after: the refused new value, or the replaced/deleted old one) and
  ``_ebpf_hash_table_bucket_insert`` (entry_count + 1 > max_entries -> EBPF_OUT_OF_SPACE).

Like EFW, every value carries its own history object (an update makes a new one), and lists
are Python lists of those objects.  Time is a counter read whenever EFW reads
cxplat_query_time_since_boot_approximate (also for values that are then refused), so it never
ties.  Where EFW's retry loop would never end, the model notices that an attempt left the
state exactly as the previous one did and reports EBPF_OUT_OF_SPACE (ntoslab's choice).
"""
from __future__ import annotations

EBPF_INVALID_ARGUMENT, EBPF_OBJECT_ALREADY_EXISTS = 6, 8
EBPF_KEY_NOT_FOUND, EBPF_OUT_OF_SPACE = 19, 29
UNINITIALIZED, DELETED = 0, 2**64 - 1
COLD, HOT = "cold", "hot"


class History:
    """ebpf_lru_entry_t: per partition a generation and a last-used time, and the key."""

    def __init__(self, key: bytes, nparts: int) -> None:
        self.key = key
        self.generation = [UNINITIALIZED] * nparts
        self.last_used = [0] * nparts


class Partition:
    def __init__(self, hot_list_limit: int) -> None:
        self.hot: list[History] = []
        self.cold: list[History] = []
        self.current_generation = 1            # EBPF_LRU_INITIAL_GENERATION
        self.hot_list_size = 0
        self.hot_list_limit = hot_list_limit


class EfwLru:
    """One LRU (or LRU per-CPU) hash map; values are bytearrays of `value_bytes`."""

    def __init__(self, max_entries: int, ncpus: int, value_bytes: int = 8) -> None:
        self.max_entries = max_entries
        self.nparts = min(ncpus, 8)
        average = max_entries // self.nparts
        self.parts = [Partition(max(average // 10, 1)) for _ in range(self.nparts)]
        self.value_bytes = value_bytes
        self.table: dict[bytes, tuple[bytearray, History]] = {}
        self.clock = 0
        self.evicted = 0
        self.stalls = 0

    # -- key history ---------------------------------------------------------------------------
    def _now(self) -> int:
        self.clock += 1
        return self.clock

    def _state(self, h: History, p: int) -> str:          # _get_key_state
        g = h.generation[p]
        if g == UNINITIALIZED:
            return "uninitialized"
        if g == DELETED:
            return "deleted"
        return HOT if g == self.parts[p].current_generation else COLD

    def _merge_if_needed(self, p: int) -> None:            # _merge_hot_into_cold_list_if_needed
        part = self.parts[p]
        if part.hot_list_size <= part.hot_list_limit:
            return
        part.cold.extend(part.hot)
        part.hot = []
        part.hot_list_size = 0
        part.current_generation += 1

    def _initialize(self, h: History, p: int) -> None:     # _initialize_lru_entry (ALLOCATE)
        part = self.parts[p]
        h.generation[p] = part.current_generation
        h.last_used[p] = self._now()
        part.hot.append(h)
        part.hot_list_size += 1
        self._merge_if_needed(p)

    def _uninitialize(self, h: History) -> None:            # _uninitialize_lru_entry (FREE)
        for p, part in enumerate(self.parts):
            s = self._state(h, p)
            if s == HOT:
                part.hot.remove(h)
                part.hot_list_size -= 1
            elif s == COLD:
                part.cold.remove(h)
            h.generation[p] = DELETED

    def _insert_into_hot_list(self, h: History, p: int) -> None:   # _insert_into_hot_list
        s = self._state(h, p)
        if s in (HOT, "deleted"):
            return
        part = self.parts[p]
        if s == COLD:
            part.cold.remove(h)
        h.generation[p] = part.current_generation
        h.last_used[p] = self._now()
        part.hot.append(h)
        part.hot_list_size += 1
        self._merge_if_needed(p)

    def _reap_cold_lists(self) -> History | None:           # _reap_lru_cold_lists
        oldest, oldest_time = None, 2**64 - 1
        non_empty = True
        while oldest is None and non_empty:
            non_empty = False
            for p, part in enumerate(self.parts):
                if not part.cold:
                    continue
                non_empty = True
                h = part.cold[0]
                highest = max(h.last_used)
                if highest != h.last_used[p]:               # stale here: used later elsewhere
                    if self._state(h, p) == COLD:
                        part.cold.remove(h)
                        h.generation[p] = UNINITIALIZED
                    continue
                if highest < oldest_time:
                    oldest, oldest_time = h, highest
        return oldest

    # -- the hash table ------------------------------------------------------------------------
    def _replace_bucket(self, key: bytes, value: bytes | None, op: str, cpu: int) -> int:
        """_ebpf_hash_table_replace_bucket for "any" / "insert" / "update": 0 or a result."""
        p = cpu % self.nparts
        new = (bytearray(value) if value is not None else bytearray(self.value_bytes),
               History(key, self.nparts))
        self._initialize(new[1], p)                             # ALLOCATE, before the bucket
        old = self.table.get(key)
        if op == "insert" and old is not None:
            result = EBPF_OBJECT_ALREADY_EXISTS
        elif op == "update" and old is None:
            result = EBPF_KEY_NOT_FOUND
        elif old is None and len(self.table) + 1 > self.max_entries:
            result = EBPF_OUT_OF_SPACE                          # _ebpf_hash_table_bucket_insert
        else:
            self.table[key] = new
            result = 0
        if result:
            self._uninitialize(new[1])                          # FREE of the refused value
        elif old is not None:
            self._uninitialize(old[1])                          # FREE of the replaced value
        return result

    def _fingerprint(self) -> tuple:
        return (tuple((part.current_generation, part.hot_list_size,
                       tuple(id(h) for h in part.hot), tuple(id(h) for h in part.cold))
                      for part in self.parts),
                tuple((k, id(h), tuple(h.generation)) for k, (_, h) in self.table.items()))

    def update(self, key: bytes, value: bytes | None, flags: int, cpu: int) -> int:
        """_update_hash_map_entry_operation_context: 0 or a negated ebpf_result_t."""
        op = {0: "any", 1: "insert", 2: "update"}.get(flags)
        if op is None:
            return -EBPF_INVALID_ARGUMENT
        previous = None
        while True:
            result = self._replace_bucket(key, value, op, cpu)
            if result != EBPF_OUT_OF_SPACE:
                return -result
            victim = self._reap_cold_lists()                    # _reap_oldest_map_entry
            if victim is not None:
                self.delete(victim.key)
                self.evicted += 1
            now = self._fingerprint()
            if now == previous:                                 # EFW: retries forever
                self.stalls += 1
                return -EBPF_OUT_OF_SPACE
            previous = now

    def percpu_update(self, key: bytes, value: bytes, flags: int, cpu: int, slot: int) -> int:
        """_update_entry_per_cpu (program side of an LRU per-CPU map): `value` into CPU `cpu`'s
        slot of `slot` bytes."""
        if key not in self.table:
            result = self.update(key, None, flags, cpu)
            if result:
                return result
        flat = self.table[key][0]
        flat[cpu * slot:cpu * slot + len(value)] = value
        return 0

    def delete(self, key: bytes) -> int:
        entry = self.table.pop(key, None)
        if entry is None:
            return -EBPF_KEY_NOT_FOUND
        self._uninitialize(entry[1])
        return 0

    def lookup(self, key: bytes, cpu: int, helper: bool) -> bytearray | None:
        """_find_lru_hash_map_entry: a helper lookup touches the history, a user one does not."""
        entry = self.table.get(key)
        if entry is None:
            return None
        if helper:
            self._insert_into_hot_list(entry[1], cpu % self.nparts)
        return entry[0]

    def lookup_and_delete(self, key: bytes) -> bytearray | None:
        entry = self.table.get(key)
        if entry is None:
            return None
        self.delete(key)
        return entry[0]

    # -- what ntoslab shows ----------------------------------------------------------------------
    def order(self) -> list[bytes]:
        """Keys whose latest link is cold, oldest first, then those whose latest link is hot."""
        def rank(item):
            h = item[1][1]
            latest = max(range(self.nparts), key=lambda p: h.last_used[p])
            return (self._state(h, latest) == HOT, h.last_used[latest])
        return [k for k, _ in sorted(self.table.items(), key=rank)]

    def contents(self) -> list[tuple[bytes, bytes]]:
        return [(k, bytes(self.table[k][0])) for k in self.order()]

    def partitions(self) -> list[dict]:
        return [{"generation": part.current_generation, "hot_size": part.hot_list_size,
                 "hot_limit": part.hot_list_limit, "hot": [h.key for h in part.hot],
                 "cold": [h.key for h in part.cold]} for part in self.parts]
