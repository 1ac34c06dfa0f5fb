"""Map types by Windows type id, checked against hand-computed expectations and EFW facts
(libs/execution_context/ebpf_maps.c, libs/runtime/ebpf_hash_table.c, libs/runtime/ebpf_ring_buffer.c)."""
from __future__ import annotations

import struct
from collections import OrderedDict, deque

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ntoslab.elf.program import MapSpec
from ntoslab.runtime.maps import (
    MAP_CLASSES,
    ArrayOfMapsMap,
    HashOfMapsMap,
    MapEnv,
    MapError,
    MapSpecError,
    create_map,
)
from ntoslab.runtime.maps.base import (
    BPF_ANY,
    BPF_EXIST,
    BPF_NOEXIST,
    EBPF_INVALID_ARGUMENT,
    EBPF_KEY_NOT_FOUND,
    EBPF_NO_MEMORY,
    EBPF_OBJECT_ALREADY_EXISTS,
    EBPF_OBJECT_NOT_FOUND,
    EBPF_OPERATION_NOT_SUPPORTED,
    EBPF_OUT_OF_SPACE,
    EEXIST,
    EINVAL,
    ENOENT,
    ENOSPC,
    ENOTSUP,
)
from ntoslab.vm.memory import MemoryFault

HASH, ARRAY, PROG_ARRAY, PERCPU_HASH, PERCPU_ARRAY = 1, 2, 3, 4, 5
HASH_OF_MAPS, ARRAY_OF_MAPS, LRU_HASH, LPM_TRIE, QUEUE = 6, 7, 8, 9, 10
LRU_PERCPU_HASH, STACK, RINGBUF, PERF_EVENT_ARRAY, SAMPLE_HASH = 11, 12, 13, 14, 15


def mk(type_, key_size=4, value_size=8, max_entries=4, name="m", env=None, **kw):
    return create_map(MapSpec(name, type_, key_size, value_size, max_entries, **kw),
                      env or MapEnv())


def k(i: int, n: int = 4) -> bytes:
    return i.to_bytes(n, "little")


def v(i: int, n: int = 8) -> bytes:
    return i.to_bytes(n, "little")


def test_every_windows_type_has_a_class():
    assert sorted(MAP_CLASSES) == list(range(1, 16))


# -- hash (1) -------------------------------------------------------------------------------------
def test_hash_error_codes_are_efw_results():
    m = mk(HASH)
    assert m.update(k(1), v(10), BPF_NOEXIST) == 0
    assert m.update(k(1), v(11), BPF_NOEXIST) == -EBPF_OBJECT_ALREADY_EXISTS == -8
    assert m.update(k(2), v(20), BPF_EXIST) == -EBPF_KEY_NOT_FOUND == -19
    assert m.update(k(1), v(12), 3) == -EBPF_INVALID_ARGUMENT == -6
    assert m.update(k(1), v(13), BPF_EXIST) == 0
    assert m.lookup(k(1)) == v(13)
    assert m.delete(k(2)) == -EBPF_KEY_NOT_FOUND
    assert m.delete(k(1)) == 0 and m.lookup_address(k(1)) == 0


def test_hash_is_unbounded_in_efw_and_bounded_on_request():
    m = mk(HASH, max_entries=2)
    for i in range(5):  # EFW PR #3348: max_entries only sizes the bucket array
        assert m.update(k(i), v(i)) == 0
    assert m.count() == 5
    b = mk(HASH, max_entries=2, env=MapEnv(bounded_hash=True))
    assert b.update(k(0), v(0)) == 0 and b.update(k(1), v(1)) == 0
    assert b.update(k(2), v(2)) == -EBPF_OUT_OF_SPACE == -29
    assert b.update(k(1), v(9)) == 0  # replacing an existing key needs no room
    with pytest.raises(MapError) as e:
        b.update_user(k(3), v(3))
    assert e.value.errno == ENOSPC and "map m" in str(e.value)


def test_hash_iteration_is_insertion_order_and_update_keeps_place():
    m = mk(HASH, max_entries=8)
    for i in (5, 1, 3):
        m.update(k(i), v(i))
    m.update(k(1), v(100))
    assert list(m.keys()) == [k(5), k(1), k(3)]
    assert dict(m.items())[k(1)] == v(100)


def test_lookup_and_delete_value_lives_until_end_of_epoch():
    m = mk(HASH)
    m.update(k(1), v(77))
    addr = m.lookup_and_delete_address(k(1))
    assert addr and m.lookup(k(1)) is None
    assert m.memory.read(addr, 8) == v(77)  # EFW epoch-frees: still readable in this run
    assert m.lookup_and_delete_address(k(1)) == 0
    m.end_epoch()
    with pytest.raises(MemoryFault):
        m.memory.read(addr, 8)


def test_user_side_errors_name_the_map():
    m = mk(HASH, name="procs")
    m.update_user(k(1), v(1))
    with pytest.raises(MapError) as e:
        m.update_user(k(1), v(2), BPF_NOEXIST)
    assert e.value.errno == EEXIST and e.value.result == EBPF_OBJECT_ALREADY_EXISTS
    assert "procs" in str(e.value)
    with pytest.raises(MapError) as e:
        m.delete_user(k(9))
    assert e.value.errno == ENOENT and "procs" in str(e.value)
    with pytest.raises(MapError) as e:
        m.lookup_user(k(9))
    assert e.value.errno == ENOENT
    with pytest.raises(MapError) as e:
        m.update_user(b"\0" * 3, v(1))
    assert e.value.errno == EINVAL and "procs" in str(e.value)
    with pytest.raises(MapError):
        m.update_user(k(1), b"short")


def test_sample_hash_map_behaves_as_hash():
    m = mk(SAMPLE_HASH)
    assert m.update(k(1), v(1), BPF_NOEXIST) == 0
    assert m.update(k(1), v(1), BPF_NOEXIST) == -EBPF_OBJECT_ALREADY_EXISTS


# -- array (2), prog array (3) ----------------------------------------------------------------------
def test_array_error_codes():
    m = mk(ARRAY, max_entries=2)
    assert m.update(k(0), v(1), BPF_NOEXIST) == -EBPF_INVALID_ARGUMENT
    assert m.update(k(0), v(1), BPF_EXIST) == 0
    assert m.update(k(1), v(2), 7) == 0  # EFW only refuses NOEXIST
    assert m.update(k(2), v(3)) == -EBPF_INVALID_ARGUMENT
    assert m.lookup_address(k(2)) == 0
    assert m.delete(k(1)) == 0 and m.lookup(k(1)) == bytes(8)
    assert m.delete(k(2)) == -EBPF_INVALID_ARGUMENT
    assert m.lookup_and_delete_address(k(0)) == 0  # EFW refuses the delete flag: NULL
    assert list(m.keys()) == [k(0), k(1)]
    with pytest.raises(MapError) as e:
        m.update_user(k(0), v(1), BPF_NOEXIST)
    assert e.value.errno == EINVAL


def test_prog_array_error_codes():
    m = mk(PROG_ARRAY, value_size=4, max_entries=4)
    m.set_program(1, object())
    assert m.lookup_address(k(1)) == 0
    assert m.update(k(1), k(0)) == -EBPF_OPERATION_NOT_SUPPORTED
    assert m.delete(k(2)) == 0  # empty slot: still success
    assert m.delete(k(1)) == 0 and m.program_at(1) is None
    assert m.delete(k(4)) == -EBPF_OBJECT_NOT_FOUND


# -- per-CPU (4, 5) -------------------------------------------------------------------------------
def test_percpu_hash_isolates_cpus_and_lays_out_pad8_values():
    env = MapEnv(ncpus=4)
    m = mk(PERCPU_HASH, value_size=4, env=env)
    env.cpu = 1
    assert m.update(k(7), k(0x11)) == 0
    env.cpu = 3
    assert m.update(k(7), k(0x33), BPF_NOEXIST) == 0  # existing key: EFW ignores flags
    assert m.memory.read(m.lookup_address(k(7)), 4) == k(0x33)
    env.cpu = 2
    assert m.memory.read(m.lookup_address(k(7)), 4) == k(0)
    assert m.lookup_percpu(k(7)) == [k(0), k(0x11), k(0), k(0x33)]
    flat = m.lookup(k(7))
    assert len(flat) == 8 * 4 == m.user_value_size
    assert flat == bytes(8) + k(0x11) + bytes(4) + bytes(8) + k(0x33) + bytes(4)
    env.cpu = 0
    assert m.update(k(8), k(1), BPF_EXIST) == -EBPF_KEY_NOT_FOUND
    assert m.update(k(8), k(1), 5) == -EBPF_INVALID_ARGUMENT
    m.update_user(k(9), [k(1), k(2), k(3), k(4)])
    assert m.lookup_percpu(k(9)) == [k(1), k(2), k(3), k(4)]
    with pytest.raises(MapError) as e:
        m.update_user(k(9), bytes(32), BPF_NOEXIST)
    assert e.value.errno == EEXIST
    with pytest.raises(MapError):
        m.update_user(k(9), bytes(16))  # not pad8(4) * 4 CPUs


def test_percpu_array_isolation_and_flags():
    env = MapEnv(ncpus=2)
    m = mk(PERCPU_ARRAY, value_size=8, max_entries=3, env=env)
    env.cpu = 1
    assert m.update(k(2), v(5), BPF_NOEXIST) == 0  # found slot: flags not checked
    assert m.update(k(3), v(5)) == -EBPF_INVALID_ARGUMENT
    assert m.lookup_percpu(k(2)) == [v(0), v(5)]
    env.cpu = 0
    assert m.memory.read(m.lookup_address(k(2)), 8) == v(0)
    m.update_user(k(0), [v(1), v(2)])
    assert m.lookup(k(0)) == v(1) + v(2)
    assert m.delete(k(0)) == 0 and m.lookup_percpu(k(0)) == [v(0), v(0)]
    with pytest.raises(MapError):
        m.update_user(k(1), [v(1), v(2)], BPF_NOEXIST)


# -- LRU (8, 11) ----------------------------------------------------------------------------------
# EFW's LRU (libs/execution_context/ebpf_maps.c) is approximate: per partition (min(CPUs, 8)) a
# hot and a cold list, hot_list_limit = max(max_entries / partitions / 10, 1). The by-hand
# tests below follow it step by step; tests/efw_lru_model.py is the same algorithm as a
# reference model for the property tests. true_lru=True is exact LRU (OrderedDict models).
def keys_of(m) -> list[int]:
    return [int.from_bytes(x, "little") for x in m.keys()]


def lists_of(m) -> list[dict]:
    return [{name: [int.from_bytes(x, "little") for x in row[name]] if name in ("hot", "cold")
             else row[name] for name in row} for row in m.partitions()]


def test_true_lru_evicts_exactly_the_least_recently_used():
    # one CPU, 20 entries: EFW's hot_list_limit would be 2 here, so only exact LRU gives this
    m = mk(LRU_HASH, max_entries=20, env=MapEnv(true_lru=True))
    for i in range(1, 21):
        assert m.update(k(i), v(i)) == 0
    for i in (2, 5, 7):                  # program lookups make a key most recent
        assert m.lookup_address(k(i))
    assert m.lookup(k(1)) == v(1)       # user reads do not
    for i in (21, 22, 23, 24):
        assert m.update(k(i), v(i), BPF_NOEXIST) == 0
    # victims: the four least recent, 1 3 4 6
    assert keys_of(m) == [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 2, 5, 7,
                          21, 22, 23, 24]
    assert m.evicted == 4 and m.partitions() == []


@pytest.mark.parametrize("true_lru", [False, True])
def test_lru_20_entries_one_cpu_windows_evicts_1_true_lru_evicts_2(true_lru):
    # ebpf_maps.c _create_lru_hash_map: 1 partition, hot_list_limit max(20 / 1 / 10, 1) = 2;
    # _insert_into_hot_list: looking up a hot key changes nothing; _merge_hot_into_cold_list_
    # if_needed: the 3rd key in a hot list sends the list to the cold tail.
    m = mk(LRU_HASH, max_entries=20, env=MapEnv(true_lru=true_lru))
    m.update(k(1), v(1))
    m.update(k(2), v(2))                 # hot [1 2]
    assert m.lookup_address(k(1))        # 1 is hot: no change (true LRU: 2 is now older)
    for i in range(3, 21):               # merges at 3, 6, ..., 18: cold [1..18], hot [19 20]
        m.update(k(i), v(i))
    if not true_lru:
        assert lists_of(m) == [{"generation": 7, "hot_size": 2, "hot_limit": 2,
                                "hot": [19, 20], "cold": list(range(1, 19))}]
    # inserting 21 into the full map (_update_hash_map_entry_operation_context): the ALLOCATE
    # notification puts 21 in the hot list first (_ebpf_hash_table_replace_bucket), which
    # merges: cold [1..21]; the insert fails (OUT_OF_SPACE), FREE 21: cold [1..20]; the reap
    # takes the cold head, 1; the retry succeeds: hot [21]
    assert m.update(k(21), v(21)) == 0
    assert m.evicted == 1
    if true_lru:
        assert keys_of(m) == [1] + list(range(3, 22))          # 2 was the least recent
    else:
        assert keys_of(m) == list(range(2, 22))                # 1 evicted
        assert lists_of(m) == [{"generation": 8, "hot_size": 1, "hot_limit": 2,
                                "hot": [21], "cold": list(range(2, 21))}]


def test_lru_one_cpu_below_20_entries_coincides_with_true_lru():
    # ebpf_maps.c _create_lru_hash_map: with 1 CPU and max_entries 8, hot_list_limit is
    # max(8 / 1 / 10, 1) = 1: a hot list holds only the latest key, so generations order
    # exactly as recency does. Hand-computed: after 1..8, lookups of 2 5 7 and the user read
    # of 1, four inserts evict 1 3 4 6.
    orders = []
    for true_lru in (False, True):
        m = mk(LRU_HASH, max_entries=8, env=MapEnv(true_lru=true_lru))
        for i in range(1, 9):
            assert m.update(k(i), v(i)) == 0
        for i in (2, 5, 7):
            assert m.lookup_address(k(i))
        assert m.lookup(k(1)) == v(1)
        for i in (9, 10, 11, 12):
            assert m.update(k(i), v(i), BPF_NOEXIST) == 0
        assert m.evicted == 4
        orders.append(keys_of(m))
    assert orders[0] == orders[1] == [8, 2, 5, 7, 9, 10, 11, 12]


def test_lru_two_cpus_by_hand():
    # 2 CPUs: 2 partitions (ebpf_maps.c _create_lru_hash_map), max_entries 4 ->
    # hot_list_limit max(4 / 2 / 10, 1) = 1; partition = CPU % 2 (_lru_hash_table_notification)
    env = MapEnv(ncpus=2)
    m = mk(LRU_HASH, max_entries=4, env=env)
    A, B, C, D, E, F = 1, 2, 3, 4, 5, 6
    env.cpu = 0
    m.update(k(A), v(A))                 # P0 hot [A]                      (t1)
    m.update(k(B), v(B))                 # P0 hot [A B] > 1: cold [A B]    (t2)
    env.cpu = 1
    m.update(k(C), v(C))                 # P1 hot [C]                      (t3)
    assert m.lookup_address(k(A))        # A has no link in P1 yet (_insert_into_hot_list):
    #                                      P1 hot [C A] > 1: cold [C A]    (t4)
    m.update(k(D), v(D))                 # P1 hot [D]                      (t5); map full
    assert lists_of(m) == [
        {"generation": 2, "hot_size": 0, "hot_limit": 1, "hot": [], "cold": [A, B]},
        {"generation": 2, "hot_size": 1, "hot_limit": 1, "hot": [D], "cold": [C, A]}]
    env.cpu = 0
    # insert E on CPU 0: its ALLOCATE leaves P0's hot list at 1 (no merge); the insert fails;
    # _reap_lru_cold_lists: P0's head A was last used at t4 in P1, so its P0 link is stale
    # (unlinked); P1's head C (t3) is live: C is evicted, although B (t2, behind the stale A)
    # is the least recently used key. Retry: P0 hot [E] (t6)
    assert m.update(k(E), v(E)) == 0
    assert sorted(keys_of(m)) == [A, B, D, E] and m.evicted == 1
    assert lists_of(m) == [
        {"generation": 2, "hot_size": 1, "hot_limit": 1, "hot": [E], "cold": [B]},
        {"generation": 2, "hot_size": 1, "hot_limit": 1, "hot": [D], "cold": [A]}]
    # eviction order: latest link cold (B t2, A t4), then latest link hot (D t5, E t6)
    assert keys_of(m) == [B, A, D, E]
    # insert F on CPU 0: the ALLOCATE makes P0's hot list 2 > 1: merge, cold [B E]; reap: B
    assert m.update(k(F), v(F)) == 0
    assert keys_of(m) == [A, E, D, F] and m.evicted == 2
    assert lists_of(m)[0] == {"generation": 3, "hot_size": 1, "hot_limit": 1, "hot": [F],
                              "cold": [E]}
    # true LRU on the same sequence evicts B, then C
    env2 = MapEnv(ncpus=2, true_lru=True)
    t = mk(LRU_HASH, max_entries=4, env=env2)
    for cpu, op, key in [(0, "u", A), (0, "u", B), (1, "u", C), (1, "l", A), (1, "u", D),
                         (0, "u", E), (0, "u", F)]:
        env2.cpu = cpu
        assert (t.update(k(key), v(key)) == 0) if op == "u" else t.lookup_address(k(key))
    assert keys_of(t) == [A, D, E, F]


def test_lru_update_of_an_existing_key_is_a_fresh_value():
    # _ebpf_hash_table_replace_bucket: an update allocates a new value (ALLOCATE: a new history
    # at the hot tail, _initialize_lru_entry) and frees the old one (FREE,
    # _uninitialize_lru_entry); a helper lookup of a hot key changes nothing
    # (_insert_into_hot_list). 1 CPU, max_entries 20: hot_list_limit 2.
    m = mk(LRU_HASH, max_entries=20)
    m.update(k(1), v(1))
    m.update(k(2), v(2))                 # hot [1 2]
    assert m.lookup_address(k(1))
    assert lists_of(m)[0]["hot"] == [1, 2] and keys_of(m) == [1, 2]
    m.update(k(1), v(11))                # ALLOCATE 1': hot [1 2 1'] > 2: cold [1 2 1']; FREE 1
    assert lists_of(m) == [{"generation": 2, "hot_size": 0, "hot_limit": 2, "hot": [],
                            "cold": [2, 1]}]
    assert keys_of(m) == [2, 1] and m.lookup(k(1)) == v(11)
    m.update(k(2), v(22), BPF_EXIST)     # ALLOCATE 2': hot [2'] (1 <= 2); FREE 2 (cold)
    assert lists_of(m)[0]["hot"] == [2] and lists_of(m)[0]["cold"] == [1]
    assert keys_of(m) == [1, 2]


def test_lru_failed_updates_still_allocate_and_can_merge():
    # _ebpf_hash_table_replace_bucket sends ALLOCATE for the new value before it finds the key
    # (NOEXIST on an existing key -> EBPF_OBJECT_ALREADY_EXISTS, EXIST on a missing key ->
    # EBPF_KEY_NOT_FOUND), then FREE: the value counted in the hot list long enough to merge
    # it (_initialize_lru_entry -> _merge_hot_into_cold_list_if_needed). 1 CPU, 20 entries.
    m = mk(LRU_HASH, max_entries=20)
    m.update(k(1), v(1))
    m.update(k(2), v(2))                 # hot [1 2], size 2 = the limit
    assert m.update(k(1), v(9), BPF_NOEXIST) == -EBPF_OBJECT_ALREADY_EXISTS
    assert lists_of(m) == [{"generation": 2, "hot_size": 0, "hot_limit": 2, "hot": [],
                            "cold": [1, 2]}]
    assert m.lookup(k(1)) == v(1)
    m.update(k(3), v(3))
    m.update(k(4), v(4))                 # hot [3 4]
    assert m.update(k(5), v(5), BPF_EXIST) == -EBPF_KEY_NOT_FOUND
    assert lists_of(m)[0]["cold"] == [1, 2, 3, 4] and lists_of(m)[0]["generation"] == 3
    # below the limit a refused value leaves no trace: hot [6], refused -> still hot [6]
    m.update(k(6), v(6))
    assert m.update(k(6), v(9), BPF_NOEXIST) == -EBPF_OBJECT_ALREADY_EXISTS
    assert lists_of(m)[0]["hot"] == [6] and lists_of(m)[0]["hot_size"] == 1
    # invalid flags are refused before the hash table (_update_hash_map_entry_operation_
    # context): no value, no merge
    m.update(k(7), v(7))                 # hot [6 7]
    assert m.update(k(8), v(8), 4) == -EBPF_INVALID_ARGUMENT
    assert lists_of(m)[0]["hot"] == [6, 7]
    # with true_lru a failed update changes nothing
    t = mk(LRU_HASH, max_entries=20, env=MapEnv(true_lru=True))
    for i in (1, 2):
        t.update(k(i), v(i))
    t.lookup_address(k(1))
    assert t.update(k(1), v(9), BPF_NOEXIST) == -EBPF_OBJECT_ALREADY_EXISTS
    assert keys_of(t) == [2, 1]


def test_lru_delete_unlinks_and_frees_the_hot_place():
    # delete = FREE (_uninitialize_lru_entry): the key leaves its hot or cold list; a hot one
    # also leaves the hot list's count, so it does not bring the next merge forward.
    m = mk(LRU_HASH, max_entries=20)
    for i in (1, 2, 3):
        m.update(k(i), v(i))             # merge at 3: cold [1 2 3]
    assert m.delete(k(1)) == 0
    m.update(k(4), v(4))                 # hot [4]
    assert m.delete(k(4)) == 0           # hot [], size 0
    m.update(k(5), v(5))
    m.update(k(6), v(6))                 # hot [5 6]: 2 <= 2, no merge
    assert lists_of(m) == [{"generation": 2, "hot_size": 2, "hot_limit": 2, "hot": [5, 6],
                            "cold": [2, 3]}]
    # lookup_and_delete (_find_lru_hash_map_entry with the delete flag): deleted, not touched
    addr = m.lookup_and_delete_address(k(2))
    assert addr and m.memory.read(addr, 8) == v(2)
    assert lists_of(m)[0]["cold"] == [3] and keys_of(m) == [3, 5, 6]
    m.end_epoch()


def test_lru_user_reads_do_not_touch_history():
    # ebpf_maps.c _find_lru_hash_map_entry: only EBPF_MAP_FLAG_HELPER lookups call
    # _insert_into_hot_list; user-mode lookups and enumeration leave the lists alone
    m = mk(LRU_HASH, max_entries=20)
    for i in (1, 2, 3):
        m.update(k(i), v(i))             # cold [1 2 3]
    before = lists_of(m)
    assert m.lookup(k(1)) == v(1) and m.lookup_user(k(2)) == v(2)
    assert dict(m.items())[k(3)] == v(3) and len(list(m.keys())) == 3
    assert lists_of(m) == before
    assert m.lookup_address(k(1))        # a helper lookup of a cold key: hot [1]
    assert lists_of(m)[0]["hot"] == [1] and lists_of(m)[0]["cold"] == [2, 3]


def test_lru_full_map_where_windows_would_spin_is_an_error():
    # 2 CPUs, max_entries 1: hot_list_limit 1 per partition (_create_lru_hash_map). CPU 0
    # inserts A (hot in P0). CPU 1 inserts B: ALLOCATE puts B in P1's hot list (size 1, no
    # merge), the insert fails (OUT_OF_SPACE), FREE B, _reap_lru_cold_lists finds every cold
    # list empty -> NULL, and _update_hash_map_entry_operation_context retries: the same again,
    # forever. ntoslab refuses the insert instead.
    env = MapEnv(ncpus=2)
    m = mk(LRU_HASH, max_entries=1, env=env)
    env.cpu = 0
    assert m.update(k(1), v(1)) == 0
    env.cpu = 1
    assert m.update(k(2), v(2)) == -EBPF_OUT_OF_SPACE == -29
    assert keys_of(m) == [1] and m.stalls == 1 and m.evicted == 0
    with pytest.raises(MapError) as e:
        m.update_user(k(2), v(2))
    assert e.value.errno == ENOSPC and "retry this insert forever" in str(e.value)
    assert m.stalls == 2
    # on CPU 0 the same insert merges P0's hot list (size 1 + 1 > 1), so A can be reaped
    env.cpu = 0
    assert m.update(k(2), v(2)) == 0 and keys_of(m) == [2] and m.evicted == 1
    # the same after a merge whose links are all stale: CPU 1 inserts C (P1 hot [C], t1), CPU 0
    # looks it up (P0 hot [C], t2); CPU 1 inserts D: its ALLOCATE merges P1 (cold [C]), the
    # reap finds C's P1 link stale (t1 < t2: unlinked) and nothing else; the retry cannot
    # merge P1 again (empty hot list): Windows spins
    env = MapEnv(ncpus=2)
    m = mk(LRU_HASH, max_entries=1, env=env)
    env.cpu = 1
    m.update(k(3), v(3))
    env.cpu = 0
    assert m.lookup_address(k(3))
    env.cpu = 1
    assert m.update(k(4), v(4)) == -EBPF_OUT_OF_SPACE and m.stalls == 1
    assert lists_of(m) == [
        {"generation": 1, "hot_size": 1, "hot_limit": 1, "hot": [3], "cold": []},
        {"generation": 2, "hot_size": 0, "hot_limit": 1, "hot": [], "cold": []}]
    # with true_lru there is no such state
    t = mk(LRU_HASH, max_entries=1, env=MapEnv(ncpus=2, true_lru=True))
    t.env.cpu = 0
    t.update(k(1), v(1))
    t.env.cpu = 1
    assert t.update(k(2), v(2)) == 0 and keys_of(t) == [2]


def test_lru_partitions_cap_at_8_and_cpus_wrap():
    # _create_lru_hash_map: partition_count = min(cpu_count, 8); _lru_hash_table_notification:
    # partition = cpu % partition_count, so CPU 8 of 9 shares partition 0
    env = MapEnv(ncpus=9)
    m = mk(LRU_HASH, max_entries=800, env=env)
    rows = lists_of(m)
    assert len(rows) == 8 and {r["hot_limit"] for r in rows} == {10}   # 800 / 8 / 10
    env.cpu = 8
    m.update(k(1), v(1))
    assert lists_of(m)[0]["hot"] == [1]


def test_true_lru_update_refreshes_and_failed_update_does_not_evict():
    m = mk(LRU_HASH, max_entries=4, env=MapEnv(true_lru=True))
    for i in range(1, 5):
        m.update(k(i), v(i))
    m.lookup_address(k(1))               # order 2 3 4 1
    m.update(k(3), v(33))                # order 2 4 1 3
    assert m.update(k(9), v(9), BPF_EXIST) == -EBPF_KEY_NOT_FOUND
    assert m.count() == 4
    assert m.update(k(1), v(1), BPF_NOEXIST) == -EBPF_OBJECT_ALREADY_EXISTS
    m.update(k(5), v(5))                 # evicts 2
    m.update(k(6), v(6))                 # evicts 4
    assert [int.from_bytes(x, "little") for x in m.keys()] == [1, 3, 5, 6]
    assert m.lookup(k(3)) == v(33)


def test_lru_percpu_program_update_of_existing_key_does_not_refresh():
    # EFW ebpf_maps.c _update_entry_per_cpu: an existing key is found without
    # EBPF_MAP_FLAG_HELPER and written in place (no history); everything here runs on CPU 0,
    # whose partition's hot_list_limit is max(2 / 2 / 10, 1) = 1 (_create_lru_hash_map)
    env = MapEnv(ncpus=2)
    m = mk(LRU_PERCPU_HASH, value_size=8, max_entries=2, env=env)
    m.update(k(1), v(1))
    m.update(k(2), v(2))
    m.update(k(1), v(11))                # EFW _update_entry_per_cpu: no key-history touch
    m.update(k(3), v(3))                 # so 1 is still the least recent
    assert sorted(m.keys()) == [k(2), k(3)]
    m.lookup_address(k(2))               # a program lookup does refresh
    m.update(k(4), v(4))
    assert sorted(m.keys()) == [k(2), k(4)]
    assert m.lookup_percpu(k(4)) == [v(4), v(0)]


# -- LPM trie (9) ---------------------------------------------------------------------------------
def lpm_key(prefix: int, a: int, b: int = 0, c: int = 0, d: int = 0) -> bytes:
    return struct.pack("<I", prefix) + bytes([a, b, c, d])


def test_lpm_longest_prefix_match():
    m = mk(LPM_TRIE, key_size=8, value_size=4, max_entries=16)
    assert m.update(lpm_key(8, 10), b"AAAA") == 0
    assert m.update(lpm_key(16, 10, 1), b"BBBB") == 0
    assert m.update(lpm_key(12, 10, 16), b"CCCC") == 0
    look = lambda key: m.lookup(key)  # noqa: E731
    assert look(lpm_key(32, 10, 1, 2, 3)) == b"BBBB"
    assert look(lpm_key(32, 10, 2, 0, 1)) == b"AAAA"
    assert look(lpm_key(32, 10, 31, 0, 1)) == b"CCCC"   # 0x1f: top nibble 0001 as 0x10
    assert look(lpm_key(32, 10, 32, 0, 1)) == b"AAAA"   # 0x20 differs within /12
    assert look(lpm_key(15, 10, 1, 2, 3)) == b"AAAA"    # /16 entry longer than the key's /15
    assert look(lpm_key(32, 11, 0, 0, 1)) is None
    addr = m.lookup_address(lpm_key(32, 10, 1, 9, 9))
    assert m.memory.read(addr, 4) == b"BBBB"
    assert m.match(lpm_key(32, 10, 1, 2, 3)) == lpm_key(16, 10, 1)


def test_lpm_errors_and_key_identity():
    m = mk(LPM_TRIE, key_size=8, value_size=4, max_entries=16)
    assert m.update(lpm_key(33, 10), b"XXXX") == -EBPF_INVALID_ARGUMENT
    assert m.lookup_address(lpm_key(33, 10)) == 0
    assert m.delete(lpm_key(33, 10)) == -EBPF_INVALID_ARGUMENT
    assert m.delete(lpm_key(8, 10)) == -EBPF_KEY_NOT_FOUND
    m.update(lpm_key(16, 10, 1), b"BBBB")
    # host bits beyond the prefix do not make a different key
    assert m.update(lpm_key(16, 10, 1, 255, 255), b"CCCC", BPF_NOEXIST) == \
        -EBPF_OBJECT_ALREADY_EXISTS
    assert m.lookup_and_delete_address(lpm_key(16, 10, 1)) == 0
    assert list(m.keys()) == [lpm_key(16, 10, 1)]
    assert m.delete(lpm_key(16, 10, 1, 7)) == 0 and m.count() == 0
    with pytest.raises(MapSpecError, match="tiny"):
        mk(LPM_TRIE, key_size=2, name="tiny")


# -- queue (10), stack (12) -----------------------------------------------------------------------
def test_queue_order_full_and_exist_overwrite():
    q = mk(QUEUE, key_size=0, max_entries=3)
    for i in (1, 2, 3):
        assert q.push(v(i), 0) == 0
    assert q.push(v(4), 0) == -EBPF_OUT_OF_SPACE
    assert q.push(v(4), BPF_NOEXIST) == -EBPF_OUT_OF_SPACE
    assert q.push(v(4), BPF_EXIST) == 0          # drops the oldest (1)
    assert q.values_in_pop_order() == [v(2), v(3), v(4)]
    assert q.peek() == (0, v(2))
    assert [q.pop()[1] for _ in range(3)] == [v(2), v(3), v(4)]
    assert q.pop() == (-EBPF_OBJECT_NOT_FOUND, None) and q.peek() == (-7, None)
    assert q.delete(b"") == -EBPF_OPERATION_NOT_SUPPORTED
    assert q.update(b"", v(5), 0) == 0           # helper 2 pushes
    assert q.memory.read(q.lookup_address(b""), 8) == v(5)
    addr = q.lookup_and_delete_address(b"")      # helper 4 pops
    assert q.memory.read(addr, 8) == v(5) and q.count() == 0
    with pytest.raises(MapError) as e:
        q.pop_user()
    assert e.value.errno == ENOENT


def test_stack_order_and_exist_drops_the_bottom():
    s = mk(STACK, key_size=0, max_entries=3)
    for i in (1, 2, 3):
        s.push(v(i))
    assert s.push(v(4)) == -EBPF_OUT_OF_SPACE
    assert s.push(v(4), BPF_EXIST) == 0          # EFW drops slots[begin]: the bottom (1)
    assert s.values_in_pop_order() == [v(4), v(3), v(2)]
    assert s.peek() == (0, v(4))
    assert [s.pop()[1] for _ in range(3)] == [v(4), v(3), v(2)]
    assert s.pop()[0] == -EBPF_OBJECT_NOT_FOUND
    with pytest.raises(MapSpecError, match="st"):
        mk(STACK, key_size=4, name="st")


# -- map in map (6, 7) ----------------------------------------------------------------------------
def test_array_of_maps_lookup_returns_inner_handle():
    env = MapEnv()
    inner_spec = MapSpec("tmpl", ARRAY, 4, 8, 4)
    in0 = create_map(MapSpec("in0", ARRAY, 4, 8, 4), env)
    in1 = create_map(MapSpec("in1", ARRAY, 4, 8, 4), env)
    outer = create_map(MapSpec("outer", ARRAY_OF_MAPS, 4, 4, 3, inner=inner_spec,
                               initial_values={0: "in0", 2: "in1"}), env)
    assert isinstance(outer, ArrayOfMapsMap)
    outer.resolve_initial_values({"in0": in0, "in1": in1}.__getitem__)
    assert outer.lookup_address(k(0)) == in0.handle.base
    assert outer.lookup_address(k(2)) == in1.handle.base
    assert outer.lookup_address(k(1)) == 0 and outer.lookup_address(k(3)) == 0
    assert outer.lookup(k(2)) == in1.id.to_bytes(4, "little")
    assert outer.update(k(1), k(in0.id)) == -EBPF_OPERATION_NOT_SUPPORTED
    assert outer.lookup_and_delete_address(k(0)) == 0
    outer.update_user(k(1), in0.id.to_bytes(4, "little"))
    assert outer.inner(k(1)) is in0
    with pytest.raises(MapError) as e:
        outer.update_user(k(1), in1, BPF_NOEXIST)
    assert e.value.errno == EINVAL
    wrong = create_map(MapSpec("wrong", ARRAY, 4, 8, 5), env)
    with pytest.raises(MapError, match="outer"):
        outer.set_inner(k(0), wrong)
    assert outer.delete(k(1)) == 0 and outer.delete(k(1)) == 0
    assert outer.delete(k(3)) == -EBPF_OBJECT_NOT_FOUND
    made = outer.create_inner(k(1))
    assert made.spec.max_entries == 4 and outer.lookup_address(k(1)) == made.handle.base
    assert [key for key, _ in outer.items()] == [k(0), k(1), k(2)]


def test_hash_of_maps_codes():
    env = MapEnv()
    tmpl = MapSpec("tmpl", HASH, 4, 4, 8)
    a = create_map(MapSpec("a", HASH, 4, 4, 8), env)
    h = create_map(MapSpec("hom", HASH_OF_MAPS, 4, 4, 2, inner=tmpl), env)
    assert isinstance(h, HashOfMapsMap)
    h.set_inner(k(5), a)
    assert h.lookup_address(k(5)) == a.handle.base and h.lookup_address(k(6)) == 0
    with pytest.raises(MapError) as e:
        h.set_inner(k(5), a, BPF_NOEXIST)
    assert e.value.errno == EEXIST
    with pytest.raises(MapError) as e:
        h.update_user(k(6), k(a.id), BPF_EXIST)
    assert e.value.errno == ENOENT
    assert h.delete(k(6)) == -EBPF_OBJECT_NOT_FOUND
    assert h.delete(k(5)) == 0
    with pytest.raises(MapSpecError, match="hom2"):
        create_map(MapSpec("hom2", HASH_OF_MAPS, 4, 8, 2, inner=tmpl), env)


# -- ring buffer (13) -----------------------------------------------------------------------------
def rec(i: int, n: int = 112) -> bytes:
    return bytes((i + j) & 0xFF for j in range(n))


def test_ringbuf_fills_exactly_drops_whole_records_and_frees_on_consume():
    rb = mk(RINGBUF, key_size=0, value_size=0, max_entries=4096, name="events")
    # 112 data bytes + 8 header = 120 bytes; full means producer - consumer + size > 4096
    for i in range(34):
        assert rb.output(rec(i), 0) == 0
    assert rb.used == 34 * 120 == 4080
    assert rb.output(rec(34), 0) == -EBPF_NO_MEMORY           # 4200 > 4096: dropped whole
    assert rb.dropped == 1 and rb.produced == 34 and rb.pending == 34
    assert rb.output(b"12345678", 0) == 0                     # 16 bytes fill the ring exactly
    assert rb.free_space == 0
    assert rb.output(b"x", 0) == -EBPF_NO_MEMORY and rb.dropped == 2
    got = rb.consume(3)
    assert got == [rec(0), rec(1), rec(2)] and rb.consumer_offset == 360
    for i in range(3):
        assert rb.output(rec(100 + i), 0) == 0                 # exactly the freed 360 bytes
    assert rb.output(rec(103), 0) == -EBPF_NO_MEMORY
    out = rb.consume()
    assert out == [rec(i) for i in range(3, 34)] + [b"12345678"] + [rec(100 + i) for i in range(3)]
    assert rb.pending == 0 and rb.records() == [] and rb.produced == 38 and rb.dropped == 3


def test_ringbuf_wraparound_preserves_bytes_and_headers():
    rb = mk(RINGBUF, key_size=0, value_size=0, max_entries=4096)
    for i in range(34):
        rb.output(rec(i))
    rb.consume(2)                                             # consumer 240, producer 4080
    assert rb.output(rec(200)) == 0                           # straddles the end of the ring
    ring = rb.ring_bytes()
    assert struct.unpack_from("<II", ring, 4080) == (112, 0)
    assert ring[4088:4096] + ring[0:104] == rec(200)
    assert rb.records()[-1] == rec(200) and rb.records()[0] == rec(2)
    assert rb.producer_offset == 4200


def test_ringbuf_headers_record_the_page_and_invalid_outputs():
    rb = mk(RINGBUF, key_size=0, value_size=0, max_entries=8192)
    for i in range(40):
        rb.output(rec(i))
    ring = rb.ring_bytes()
    assert struct.unpack_from("<II", ring, 34 * 120) == (112, 0)   # offset 4080
    assert struct.unpack_from("<II", ring, 35 * 120) == (112, 1)   # offset 4200: page 1
    assert rb.output(b"") == -EBPF_INVALID_ARGUMENT
    assert rb.output(bytes(8185)) == -EBPF_INVALID_ARGUMENT        # larger than the ring
    assert rb.rejected == 2 and rb.dropped == 0
    assert rb.lookup_address(b"") == 0 and rb.update(b"", b"", 0) == -EBPF_OPERATION_NOT_SUPPORTED
    assert rb.delete(b"") == -EBPF_OPERATION_NOT_SUPPORTED and list(rb.keys()) == []
    with pytest.raises(MapError) as e:
        rb.update_user(b"", b"")
    assert e.value.errno == ENOTSUP


@pytest.mark.parametrize("size,why", [(3000, "power of 2"), (2048, "multiple"), (0, "0")])
def test_ringbuf_size_rules_name_the_map(size, why):
    with pytest.raises(MapSpecError, match=why) as e:
        mk(RINGBUF, key_size=0, value_size=0, max_entries=size, name="process_ringbuf")
    assert "process_ringbuf" in str(e.value)


def test_ringbuf_needs_key_size_zero():
    with pytest.raises(MapSpecError, match="key_size"):
        mk(RINGBUF, key_size=4, value_size=0, max_entries=4096)


# -- perf event array (14) ------------------------------------------------------------------------
def test_perf_event_array_per_cpu_rings_and_lost_counter():
    env = MapEnv(ncpus=2, cpu=1)
    m = mk(PERF_EVENT_ARRAY, key_size=0, value_size=0, max_entries=4096, env=env)
    assert m.perf_output(b"abc") == 0                          # flags = current CPU
    assert m.records(1) == [b"abc"] and m.records(0) == []
    assert m.perf_output(b"abc", 1) == -EBPF_INVALID_ARGUMENT  # PASSIVE_LEVEL: explicit index
    m.passive = False
    assert m.perf_output(b"def", 1) == 0
    assert m.perf_output(b"def", 0) == -EBPF_INVALID_ARGUMENT  # not the current CPU
    assert m.output_cpu(0, b"x") == -EBPF_INVALID_ARGUMENT
    ctx4 = (4 << 32) | 0xFFFF_FFFF
    assert m.perf_output(b"g", ctx4, None) == -EBPF_OPERATION_NOT_SUPPORTED
    assert m.perf_output(b"g", ctx4, b"ab") == -EBPF_INVALID_ARGUMENT
    assert m.perf_output(b"g", ctx4, b"wxyz!") == 0
    assert m.records(1) == [b"abc", b"def", b"gwxyz"]
    assert m.lost == [0, 0]
    while m.output_cpu(1, rec(0)) == 0:
        pass
    assert m.lost == [0, 1] and m.lost_total == 1
    env.cpu = 0
    assert m.perf_output(b"zero") == 0
    assert m.consume_all()[0] == (0, b"zero") and m.pending == 0
    with pytest.raises(MapSpecError, match="power of 2"):
        mk(PERF_EVENT_ARRAY, key_size=0, value_size=0, max_entries=5000)


# -- creation rules -------------------------------------------------------------------------------
@pytest.mark.parametrize("type_,ks,vs,me,why", [
    (HASH, 0, 8, 4, "key_size"), (HASH, 4, 0, 4, "value_size"), (HASH, 4, 8, 0, "max_entries"),
    (QUEUE, 0, 0, 4, "value_size"), (ARRAY_OF_MAPS, 4, 8, 4, "value_size"),
])
def test_creation_validation(type_, ks, vs, me, why):
    with pytest.raises(MapSpecError, match=why) as e:
        mk(type_, ks, vs, me, name="bad_map")
    assert "bad_map" in str(e.value) and e.value.errno == EINVAL


def test_map_ids_are_unique_and_registered():
    env = MapEnv()
    a, b = mk(HASH, env=env), mk(ARRAY, env=env)
    assert a.id != b.id and env.registry[a.id] is a and env.registry[b.id] is b
    assert env.map_at(a.handle.base) is a and env.map_at(b.handle.base) is b


# -- properties against tiny models ---------------------------------------------------------------
keys_st = st.integers(0, 7)
flags_st = st.sampled_from([BPF_ANY, BPF_NOEXIST, BPF_EXIST, 4])
ops_st = st.lists(st.tuples(st.sampled_from(["update", "delete", "lookup", "user_lookup",
                                              "lookup_and_delete"]),
                            keys_st, st.integers(0, 255), flags_st), max_size=60)


def model_update(model: dict, key, value, flags, capacity=None) -> int:
    if flags not in (0, 1, 2):
        return -EBPF_INVALID_ARGUMENT
    if key in model:
        if flags == BPF_NOEXIST:
            return -EBPF_OBJECT_ALREADY_EXISTS
        model[key] = value
        return 0
    if flags == BPF_EXIST:
        return -EBPF_KEY_NOT_FOUND
    if capacity is not None and len(model) >= capacity:
        return -EBPF_OUT_OF_SPACE
    model[key] = value
    return 0


@settings(max_examples=150, deadline=None)
@given(ops_st, st.booleans())
def test_hash_matches_dict_model(ops, bounded):
    m = mk(HASH, max_entries=4, env=MapEnv(bounded_hash=bounded))
    model: dict = {}
    for op, key, val, flags in ops:
        kb, vb = k(key), v(val)
        if op == "update":
            assert m.update(kb, vb, flags) == model_update(model, kb, vb, flags,
                                                           4 if bounded else None)
        elif op == "delete":
            assert m.delete(kb) == (0 if model.pop(kb, None) is not None else -EBPF_KEY_NOT_FOUND)
        elif op == "lookup":
            addr = m.lookup_address(kb)
            assert (m.memory.read(addr, 8) if addr else None) == model.get(kb)
        elif op == "user_lookup":
            assert m.lookup(kb) == model.get(kb)
        else:
            addr = m.lookup_and_delete_address(kb)
            expected = model.pop(kb, None)
            assert (m.memory.read(addr, 8) if addr else None) == expected
        assert list(m.keys()) == list(model)
    m.end_epoch()


@settings(max_examples=150, deadline=None)
@given(ops_st, st.integers(1, 5))
def test_true_lru_matches_ordereddict_model(ops, capacity):
    m = mk(LRU_HASH, max_entries=capacity, env=MapEnv(true_lru=True))
    model: OrderedDict = OrderedDict()
    for op, key, val, flags in ops:
        kb, vb = k(key), v(val)
        if op == "update":
            expected = model_update(model, kb, vb, flags)   # no capacity: LRU evicts instead
            if expected == 0:
                model.move_to_end(kb)
                while len(model) > capacity:
                    model.popitem(last=False)
            assert m.update(kb, vb, flags) == expected
        elif op == "delete":
            assert m.delete(kb) == (0 if model.pop(kb, None) is not None else -EBPF_KEY_NOT_FOUND)
        elif op == "lookup":
            addr = m.lookup_address(kb)
            assert (m.memory.read(addr, 8) if addr else None) == model.get(kb)
            if kb in model:
                model.move_to_end(kb)
        elif op == "user_lookup":
            assert m.lookup(kb) == model.get(kb)            # no recency change
        else:
            addr = m.lookup_and_delete_address(kb)
            assert (m.memory.read(addr, 8) if addr else None) == model.pop(kb, None)
        assert list(m.keys()) == list(model)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([QUEUE, STACK]), st.integers(1, 4),
       st.lists(st.tuples(st.sampled_from(["push", "pop", "peek"]), st.integers(0, 255),
                          st.sampled_from([0, BPF_NOEXIST, BPF_EXIST, BPF_EXIST | 1])),
                max_size=60))
def test_queue_and_stack_match_deque_model(type_, capacity, ops):
    m = mk(type_, key_size=0, max_entries=capacity)
    model: deque = deque()
    for op, val, flags in ops:
        if op == "push":
            if len(model) >= capacity and not flags & BPF_EXIST:
                assert m.push(v(val), flags) == -EBPF_OUT_OF_SPACE
                continue
            if len(model) >= capacity:
                model.popleft()  # both drop the oldest element
            model.append(v(val))
            assert m.push(v(val), flags) == 0
        elif not model:
            assert getattr(m, op)() == (-EBPF_OBJECT_NOT_FOUND, None)
        else:
            top = model[0] if type_ == QUEUE else model[-1]
            if op == "pop":
                model.popleft() if type_ == QUEUE else model.pop()
            assert getattr(m, op)() == (0, top)
        expected = list(model) if type_ == QUEUE else list(reversed(model))
        assert m.values_in_pop_order() == expected


# EFW's LRU against the reference model (tests/efw_lru_model.py, written from ebpf_maps.c
# _insert_into_hot_list, _merge_hot_into_cold_list_if_needed, _reap_lru_cold_lists,
# _update_hash_map_entry_operation_context, _update_entry_per_cpu, _find_lru_hash_map_entry and
# ebpf_hash_table.c _ebpf_hash_table_replace_bucket): every result, value, the eviction
# order, each partition's lists, evictions and refused (spinning) inserts
lru_op_st = st.tuples(st.sampled_from(["update"] * 5 + ["delete", "lookup", "lookup", "lookup",
                                                      "user_lookup", "lookup_and_delete"]),
                      st.one_of(st.integers(0, 1000), st.integers(-6, -1)), st.integers(0, 255),
                      st.sampled_from([BPF_ANY, BPF_ANY, BPF_NOEXIST, BPF_EXIST, 4]),
                      st.integers(0, 1000))


@st.composite
def lru_case(draw):
    ncpus = draw(st.sampled_from([1, 2, 4, 9]))
    max_entries = draw(st.one_of(st.integers(1, 6), st.integers(20, 90)))
    nkeys = max_entries + draw(st.integers(1, 6))
    prefill = draw(st.sampled_from([True, True, False]))
    ops = draw(st.lists(lru_op_st, min_size=max_entries // 2 + 10,
                        max_size=3 * max_entries + 40))
    return ncpus, max_entries, nkeys, prefill, ops


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([LRU_HASH, LRU_PERCPU_HASH]), lru_case())
def test_lru_matches_efw_reference_model(type_, case):
    from efw_lru_model import EfwLru
    ncpus, max_entries, nkeys, prefill, ops = case
    env = MapEnv(ncpus=ncpus)
    m = mk(type_, max_entries=max_entries, env=env)
    percpu = type_ == LRU_PERCPU_HASH
    flat = 8 * ncpus if percpu else 8
    model = EfwLru(max_entries, ncpus, flat)
    if prefill:
        ops = [("update", i, i, BPF_ANY, i) for i in range(max_entries)] + ops
    for op, key, val, flags, cpu in ops:
        # a negative key: one of those beyond max_entries (inserting it into a full map evicts)
        key = key % nkeys if key >= 0 else max_entries + (-key - 1) % (nkeys - max_entries)
        kb, vb, cpu = k(key), v(val), cpu % ncpus
        env.cpu = cpu
        at = cpu * 8 if percpu else 0
        if op == "update":
            want = model.percpu_update(kb, vb, flags, cpu, 8) if percpu else \
                model.update(kb, vb, flags, cpu)
            assert m.update(kb, vb, flags) == want
        elif op == "delete":
            assert m.delete(kb) == model.delete(kb)
        elif op == "lookup":
            addr = m.lookup_address(kb)
            value = model.lookup(kb, cpu, helper=True)
            assert (m.memory.read(addr, 8) if addr else None) == \
                (bytes(value[at:at + 8]) if value is not None else None)
        elif op == "user_lookup":
            value = model.lookup(kb, cpu, helper=False)
            assert m.lookup(kb) == (bytes(value) if value is not None else None)
        else:
            addr = m.lookup_and_delete_address(kb)
            value = model.lookup_and_delete(kb)
            assert (m.memory.read(addr, 8) if addr else None) == \
                (bytes(value[at:at + 8]) if value is not None else None)
        assert list(m.keys()) == model.order()
        m.end_epoch()
    assert [(key, m.lookup(key)) for key in m.keys()] == model.contents()
    assert m.partitions() == model.partitions()
    assert (m.evicted, m.stalls) == (model.evicted, model.stalls)
    event(f"{ncpus} CPU(s), {'small' if max_entries <= 6 else 'large'} map")
    event("evicted" if m.evicted else "no eviction")
    if m.stalls:
        event("an insert where Windows would spin")
