"""Maps as Python mappings (bcc's `b["map"]`), on the emulator and on a live map backend.

The expected bytes are hand-packed little-endian values; what a program sees is checked by
running one that reads the map after the notebook side wrote it.
"""
from __future__ import annotations

import struct

import pandas as pd
import pytest

import ntoslab
from ntoslab.connectors.views import MapView
from ntoslab.elf import MapSpec
from ntoslab.runtime.maps import MapError

SOURCE = r"""
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"
struct stat { uint32_t pid; uint16_t flags; uint64_t count; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, uint32_t); __type(value, struct stat); __uint(max_entries, 16); } stats SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __type(key, uint32_t); __type(value, uint64_t); __uint(max_entries, 2); } hits SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, uint32_t); __type(value, int64_t); __uint(max_entries, 4); } seen SEC(".maps");

SEC("process") int Read(process_md_t* ctx)
{
    uint32_t k = (uint32_t)ctx->process_id, z = 0;
    struct stat* s = bpf_map_lookup_elem(&stats, &k);
    int64_t v = s ? (int64_t)(s->count * 1000 + s->flags) : -1;
    bpf_map_update_elem(&seen, &z, &v, BPF_ANY);
    uint64_t* h = bpf_map_lookup_elem(&hits, &z);
    if (h)
        *h += 1;
    return 0;
}
"""


@pytest.fixture()
def loaded(compile_bpf):
    hook = ntoslab.emulator(ncpus=2)
    obj = hook.load(compile_bpf(SOURCE, "views_maps"))
    hook.attach(obj.program("Read"))
    return hook, obj


def test_a_map_is_a_mutable_mapping(loaded):
    hook, obj = loaded
    stats = obj.map("stats")
    stats[7] = {"pid": 7, "flags": 3, "count": 42}               # dict by BTF, int key
    stats[(8).to_bytes(4, "little")] = struct.pack("<IHxxQ", 8, 0, 5)
    assert stats[7] == struct.pack("<IHxxQ", 7, 3, 42)          # bytes, hand-packed
    assert stats.value(8) == {"pid": 8, "flags": 0, "count": 5}
    assert 7 in stats and 9 not in stats and "junk" not in stats
    assert len(stats) == 2 and sorted(int.from_bytes(k, "little") for k in stats) == [7, 8]
    hook.inject(ntoslab.ProcessEvent.create(7, 1, "x", "x"))
    assert int.from_bytes(obj.map("seen")[0], "little", signed=True) == 42003  # the program saw it
    del stats[7]
    with pytest.raises(KeyError):
        del stats[7]
    with pytest.raises(KeyError):
        stats[7]
    assert stats.get(7) is None and stats.get(8) is not None     # Mapping methods come free
    stats.update({9: {"count": 1}}, )
    assert stats.value(9)["count"] == 1
    with pytest.raises(MapError):                                 # BPF_NOEXIST on a present key
        stats.update(9, {"count": 2}, 1)
    with pytest.raises(ValueError, match="key is 3 bytes"):
        stats[b"abc"] = bytes(16)
    with pytest.raises(ntoslab.elf.btf.BtfError, match="no member 'pidd'"):
        stats[1] = {"pidd": 1}


def test_per_cpu_values_are_lists(loaded):
    hook, obj = loaded
    hits = obj.map("hits")
    hits[0] = [1, 2]                                              # one per CPU
    hook.inject(ntoslab.ProcessEvent.create(1, 1, "x", "x", cpu=1))
    assert [int.from_bytes(v, "little") for v in hits[0]] == [1, 3]
    hits[1] = 5                                                   # the same on every CPU
    assert hits.value(1) == [5, 5]
    frame = hits.to_frame()
    assert list(frame.columns) == ["key", "cpu", "value"] and len(frame) == 4
    assert frame.set_index(["key", "cpu"]).loc[(0, 1), "value"] == 3


class FakeBpfMap:
    """A live map at the libbpf boundary (what BpfMap offers): bytes in, bytes out."""

    def __init__(self, key_size: int, value_size: int) -> None:
        self.data: dict[bytes, bytes] = {}
        self.key_size, self.value_size = key_size, value_size

    def lookup(self, key: bytes):
        return self.data.get(key)

    def update(self, key: bytes, value: bytes, flags: int) -> None:
        assert len(key) == self.key_size and len(value) == self.value_size
        self.data[key] = value

    def delete(self, key: bytes) -> bool:
        return self.data.pop(key, None) is not None

    def keys(self):
        return iter(list(self.data))

    def items(self):
        return iter(list(self.data.items()))


def test_live_maps_use_the_same_view(loaded):
    """The Windows hook's `map()` is this MapView over libbpf's map: same keys, values, frame."""
    _, obj = loaded
    spec = obj.obj.map("stats")
    live = MapView(FakeBpfMap(4, 16), spec, obj.obj.btf)
    emulated = obj.map("stats")
    for view in (live, emulated):
        view[3] = {"pid": 3, "flags": 1, "count": 9}
    assert live[3] == emulated[3]
    pd.testing.assert_frame_equal(live.to_frame(), emulated.to_frame())
    # a native .sys has no BTF: ints and bytes only, with a clear error otherwise
    bare = MapView(FakeBpfMap(4, 8), MapSpec("m", 1, 4, 8, 4))
    bare[1] = 2**40
    assert bare[1] == (2**40).to_bytes(8, "little")
    with pytest.raises(TypeError, match="no BTF type"):
        bare[1] = {"count": 1}
