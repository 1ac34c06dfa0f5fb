"""Running loaded objects: faults on every kind of region, helper misuse, contained failures."""
from __future__ import annotations

import pytest
from test_elf_loader import PRELUDE

from ntoslab.elf import load
from ntoslab.runtime import Sandbox
from ntoslab.vm import VmFault

FAULTS = PRELUDE + r"""
struct big { u64 words[4]; };
struct { __uint(type, 1); __uint(max_entries, 4); __type(key, u32); __type(value, struct big); } table SEC(".maps");
struct { __uint(type, 2); __uint(max_entries, 2); __type(key, u32); __type(value, u64); } slots SEC(".maps");
static volatile u64 data_word = 1;

SEC("process/map_value") int map_value(u32 *ctx) {
    u32 k = 0; struct big v = {};
    bpf_map_update_elem(&table, &k, &v, 0);
    struct big *p = bpf_map_lookup_elem(&table, &k);
    if (!p) return -1;
    volatile u32 i = ctx[0];
    return p->words[i];                     /* i = 4 reads past the 32-byte value */
}
SEC("process/global") int global(u32 *ctx) {
    volatile u64 *p = &data_word;
    volatile u32 i = ctx[0];
    return p[i];                            /* i = 1 reads past .data */
}
SEC("process/context") int context(u32 *ctx) {
    volatile u32 i = ctx[0];
    return ctx[i];                          /* beyond the context */
}
SEC("process/helper_key") int helper_key(void *ctx) {
    volatile u64 bad = 16;
    return bpf_map_lookup_elem(&table, (void *)bad) != 0;   /* key pointer into nothing */
}
SEC("process/not_prog_array") int not_prog_array(void *ctx) {
    return bpf_tail_call(ctx, &slots, 0);
}
SEC("process/array_walk") int array_walk(u32 *ctx) {
    u32 k = 0;
    u64 *v = bpf_map_lookup_elem(&slots, &k);
    if (!v) return -1;
    volatile u32 i = ctx[0];
    return v[i];                            /* i = 0 is the value; 1 is past its end */
}
"""


@pytest.fixture(scope="module")
def box(compile_bpf):
    return Sandbox(load(compile_bpf(FAULTS, "faults", include=False)))


def ctx(i: int) -> bytes:
    return i.to_bytes(4, "little") + bytes(12)


def test_map_value_out_of_bounds(box):
    assert box.run("map_value", ctx(3)).r0 == 0
    with pytest.raises(VmFault) as info:
        box.run("map_value", ctx(4))
    f = info.value
    assert f.kind == "memory" and f.region.startswith("map table value")
    assert "p->words[i]" in str(f)


def test_global_data_out_of_bounds(box):
    assert box.run("global", ctx(0)).r0 == 1
    with pytest.raises(VmFault) as info:
        box.run("global", ctx(1))
    assert info.value.region == "global .data" and "past the end" in str(info.value)


def test_context_out_of_bounds(box):
    assert box.run("context", ctx(2)).r0 == 0
    with pytest.raises(VmFault) as info:
        box.run("context", ctx(4))
    assert info.value.region == "context" and "return ctx[i];" in str(info.value)


def test_helper_reading_a_bad_pointer_is_a_fault_naming_the_helper(box):
    with pytest.raises(VmFault) as info:
        box.run("helper_key", ctx(0))
    assert "bpf_map_lookup_elem" in str(info.value) and "null pointer" in str(info.value)


def test_tail_call_through_a_non_prog_array(box):
    with pytest.raises(VmFault) as info:
        box.run("not_prog_array", ctx(0))
    assert info.value.kind == "helper"
    assert "bpf_tail_call" in str(info.value) and "not a prog array" in str(info.value)


def test_array_values_are_bounded_one_by_one(box):
    # EFW stores array values back to back (its verifier refuses this program); the sandbox
    # stops the access past value 0 instead of letting it read value 1
    box.maps["slots"].update((0).to_bytes(4, "little"), (55).to_bytes(8, "little"))
    box.maps["slots"].update((1).to_bytes(4, "little"), (77).to_bytes(8, "little"))
    assert box.run("array_walk", ctx(0)).r0 == 55
    with pytest.raises(VmFault) as info:
        box.run("array_walk", ctx(1))
    assert info.value.region == "map slots[0]" and "just past the end" in str(info.value)


def test_sandbox_survives_faults(box):
    for i in range(20):
        with pytest.raises(VmFault):
            box.run("context", ctx(100 + i))
    assert box.run("global", ctx(0)).r0 == 1
    # the context region of a faulted run is unmapped again
    assert [r.name for r in box.memory.regions].count("context") == 0
