"""Random sequences of map and ring-buffer operations, run as eBPF programs: the interpreter and
the JIT against each other, against a small model of eBPF for Windows' map rules, and (for the
same bytecode) against this machine's Linux kernel.

Each Hypothesis example is one straight-line program: per operation it builds the key (and the
value) on the stack, calls helper 1/2/3 (lookup/update/delete) or the ring buffer's output helper,
and stores what came back in a results map (lookup: found or not and the value's first 8 bytes,
optionally after writing through the returned pointer; update/delete/output: r0). The program
runs once on each engine, each in a sandbox of its own; we compare every op's result, the maps'
final contents in iteration order (LRU maps iterate in eviction order), the ring's bytes, and
faults.

The model below is written from the EFW facts in the map modules' docstrings (array.py, hash.py,
percpu_hash.py, percpu_array.py, lru_hash.py, lru_percpu_hash.py, ringbuf.py) and from Linux's
documented rules (kernel/bpf/arraymap.c, hashtab.c, ringbuf.c), not from ntoslab's native code.
Its `linux` flavour is checked against the kernel, its `windows` flavour against both engines:
what the two flavours share is then backed by an independent oracle. LRU maps: the `windows`
flavour follows EFW's generations through tests/efw_lru_model.py (EFW ebpf_maps.c); with
`true_lru` (and in the `linux` flavour) the least recently used key goes first (an OrderedDict).
"""
from __future__ import annotations

import os
import struct
from collections import OrderedDict
from dataclasses import dataclass, field

import pytest
from efw_lru_model import EfwLru
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntoslab.elf.program import MAP_TYPE_IDS, ElfObject, MapSpec, Program
from ntoslab.isa.opcodes import Instruction, decode, encode
from ntoslab.runtime import Sandbox
from ntoslab.vm import VmFault

BPF_ANY, BPF_NOEXIST, BPF_EXIST, BAD_FLAGS = 0, 1, 2, 3
MAP_KINDS = ["array", "percpu_array", "hash", "percpu_hash", "lru_hash", "lru_percpu_hash"]
PERCPU = {"percpu_array", "percpu_hash", "lru_percpu_hash"}
ARRAYS = {"array", "percpu_array"}
LRU = {"lru_hash", "lru_percpu_hash"}
WINDOWS_RINGBUF_OUTPUT, LINUX_RINGBUF_OUTPUT = 11, 130
RING_AREA, RING_AREA_SIZE = -512, 448        # stack bytes the ring records are copied from
KEY_AT, VALUE_AT = -8, -48                   # stack slots of the key and the value
FOUND, NOT_FOUND, DONE = 1, 2, 0x5A          # results-map markers
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])


# -- operations ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    kind: str                    # lookup | update | delete | output | overrun
    key: int = 0
    value: bytes = b""           # update: the value; lookup: bytes written at `offset` if found
    flags: int = 0
    offset: int = 0              # lookup write / overrun store offset; output: start in the area
    length: int = 0              # output: record length; overrun: store width


def pad8(n: int) -> int:
    return (n + 7) & ~7


# -- the model ---------------------------------------------------------------------------------

WINDOWS = {"KEY_NOT_FOUND": -19, "EXISTS": -8, "INVALID": -6, "RING_FULL": -12, "E2BIG": -6}
LINUX = {"KEY_NOT_FOUND": -2, "EXISTS": -17, "INVALID": -22, "RING_FULL": -11, "E2BIG": -7}


@dataclass
class Model:
    """One map (and a ring) under EFW's rules (`flavour="windows"`) or Linux's ("linux")."""

    kind: str
    key_size: int
    value_size: int
    max_entries: int
    ncpus: int = 1
    cpu: int = 0
    flavour: str = "windows"
    true_lru: bool = False
    ring_capacity: int = 4096
    entries: OrderedDict = field(default_factory=OrderedDict)   # key bytes -> flat bytearray
    ring: bytearray = field(default_factory=bytearray)
    producer: int = 0

    def __post_init__(self) -> None:
        self.codes = WINDOWS if self.flavour == "windows" else LINUX
        self.ring = bytearray(self.ring_capacity)
        # EFW's LRU (ebpf_maps.c _insert_into_hot_list, _reap_lru_cold_lists ...): the model
        # keeps the entries; `entries` is then unused
        self.efw = EfwLru(self.max_entries, self.ncpus, self.flat_size) \
            if self.kind in LRU and self.flavour == "windows" and not self.true_lru else None
        if self.kind in ARRAYS:
            for i in range(self.max_entries):
                self.entries[i.to_bytes(self.key_size, "little")] = bytearray(self.flat_size)

    @property
    def slot(self) -> int:
        return pad8(self.value_size) if self.kind in PERCPU else self.value_size

    @property
    def flat_size(self) -> int:
        return self.slot * (self.ncpus if self.kind in PERCPU else 1)

    def key(self, k: int) -> bytes:
        return (k & (2 ** (8 * self.key_size) - 1)).to_bytes(self.key_size, "little")

    def _view(self, key: bytes) -> tuple[bytearray, int] | None:
        """The entry's flat buffer and where the current CPU's value starts in it."""
        flat = self.efw.table[key][0] if self.efw and key in self.efw.table else \
            self.entries.get(key)
        if flat is None:
            return None
        return flat, (self.cpu * self.slot if self.kind in PERCPU else 0)

    def _touch(self, key: bytes) -> None:
        if self.kind in LRU and not self.efw:
            self.entries.move_to_end(key)

    def lookup(self, k: int) -> tuple[bytearray, int] | None:
        key = self.key(k)
        if self.efw:   # a helper lookup touches EFW's key history
            self.efw.lookup(key, self.cpu, helper=True)
        view = self._view(key)
        if view is not None:
            self._touch(key)   # a program-side lookup makes an LRU entry most recent
        return view

    def _write(self, key: bytes, value: bytes) -> None:
        flat, at = self._view(key)
        flat[at:at + self.value_size] = value

    def _insert(self, key: bytes) -> None:
        if self.kind in LRU and len(self.entries) >= self.max_entries:
            self.entries.popitem(last=False)     # evict the least recently used
        self.entries[key] = bytearray(self.flat_size)

    def update(self, k: int, value: bytes, flags: int) -> int:
        c, key, linux = self.codes, self.key(k), self.flavour == "linux"
        if self.efw:   # EFW _update_entry_per_cpu / _update_hash_map_entry
            if self.kind in PERCPU:
                return self.efw.percpu_update(key, value, flags, self.cpu, self.slot)
            return self.efw.update(key, value.ljust(self.flat_size, b"\0"), flags, self.cpu)
        exists = key in self.entries
        if self.kind in ARRAYS:
            if linux:   # arraymap.c: flags > EXIST, then the index, then NOEXIST
                if flags > BPF_EXIST:
                    return c["INVALID"]
                if not exists:
                    return c["E2BIG"]
                if flags == BPF_NOEXIST:
                    return c["EXISTS"]
            elif not exists or (flags == BPF_NOEXIST and self.kind == "array"):
                return c["INVALID"]  # EFW: a per-CPU array ignores flags for an index in range
            self._write(key, value)
            return 0
        if self.kind in PERCPU and not linux and exists:
            self._write(key, value)  # EFW _update_entry_per_cpu: flags unchecked, no LRU refresh
            return 0
        if flags > BPF_EXIST:
            return c["INVALID"]
        if exists and flags == BPF_NOEXIST:
            return c["EXISTS"]
        if not exists and flags == BPF_EXIST:
            return c["KEY_NOT_FOUND"]
        if exists:
            if self.kind in PERCPU:   # Linux replaces the current CPU's value only
                self._write(key, value)
            else:                     # a fresh value, most recent in an LRU map
                self.entries[key] = bytearray(self.flat_size)
                self._touch(key)
                self._write(key, value)
            return 0
        self._insert(key)
        self._write(key, value)
        return 0

    def delete(self, k: int) -> int:
        key = self.key(k)
        if self.kind in ARRAYS:
            if self.flavour == "linux" or key not in self.entries:
                return self.codes["INVALID"]   # Linux never deletes from an array
            self.entries[key] = bytearray(self.flat_size)   # EFW zeroes the slot
            return 0
        if self.efw:
            return self.efw.delete(key)
        if self.entries.pop(key, None) is None:
            return self.codes["KEY_NOT_FOUND"]
        return 0

    def output(self, data: bytes) -> int:
        """bpf_ringbuf_output into a ring nobody consumes (consumer offset 0)."""
        if not data and self.flavour == "windows":
            return self.codes["INVALID"]
        size = pad8(len(data) + 8)
        limit = self.ring_capacity - (1 if self.flavour == "linux" else 0)  # Linux: > mask fails
        if self.producer + size > limit:
            return self.codes["RING_FULL"]
        at = self.producer % self.ring_capacity
        self.ring[at:at + 8] = struct.pack("<II", len(data), at // 4096)
        self.ring[at + 8:at + 8 + len(data)] = data
        self.producer += size
        return 0

    def records(self) -> list[bytes]:
        out, pos = [], 0
        while pos < self.producer:
            n, _ = struct.unpack_from("<II", self.ring, pos)
            out.append(bytes(self.ring[pos + 8:pos + 8 + n]))
            pos += pad8(n + 8)
        return out

    def contents(self) -> list[tuple[bytes, bytes]]:
        if self.efw:
            return self.efw.contents()
        return [(k, bytes(v)) for k, v in self.entries.items()]


def ring_area() -> bytes:
    """The bytes the program writes at RING_AREA before its first output (a fixed pattern)."""
    return bytes((i * 37 + 11) & 0xFF for i in range(RING_AREA_SIZE))


def expected(model: Model, ops: list[Op]) -> tuple[list[tuple[int, int]], int | None]:
    """Each op's (word0, word1) result record and the index of the op that faults (or None)."""
    area, out = ring_area(), []
    for i, op in enumerate(ops):
        if op.kind in ("lookup", "overrun"):
            view = model.lookup(op.key)
            if view is None:
                out.append((NOT_FOUND, 0))
                continue
            if op.kind == "overrun":
                return out, i
            flat, at = view
            if op.value:
                flat[at + op.offset:at + op.offset + len(op.value)] = op.value
            out.append((FOUND, int.from_bytes(flat[at:at + 8], "little")))
        elif op.kind == "update":
            out.append((model.update(op.key, op.value, op.flags), DONE))
        elif op.kind == "delete":
            out.append((model.delete(op.key), DONE))
        elif op.kind == "output":
            out.append((model.output(area[op.offset:op.offset + op.length]), DONE))
    return out, None


# -- the program -------------------------------------------------------------------------------

def I(opcode, dst=0, src=0, off=0, imm=0):  # noqa: E743
    return Instruction(opcode, dst, src, off, imm)


def lddw(reg: int, value: int, src: int = 0) -> list[Instruction]:
    value &= 2**64 - 1
    low = value & 0xFFFF_FFFF
    return [Instruction(0x18, reg, src, 0, low - (1 << 32) if low >> 31 else low, value),
            I(0)]


def stack_bytes(at: int, data: bytes) -> list[Instruction]:
    """Store `data` (a multiple of 4 bytes) at r10 + at."""
    out = []
    for j in range(0, len(data) - len(data) % 8, 8):
        out += lddw(1, int.from_bytes(data[j:j + 8], "little"))
        out.append(I(0x7B, 10, 1, at + j))                          # stxdw [r10+at+j], r1
    if len(data) % 8:
        j = len(data) - 4
        word = int.from_bytes(data[j:], "little")
        out.append(I(0x62, 10, 0, at + j, word - (1 << 32) if word >> 31 else word))   # stw
    return out


def key_insns(key: bytes) -> list[Instruction]:
    return stack_bytes(KEY_AT, key.ljust(8, b"\0"))


def store(width: int, dst: int, src: int, off: int) -> Instruction:
    return I({1: 0x73, 2: 0x6B, 4: 0x63, 8: 0x7B}[width], dst, src, off)


@dataclass
class Built:
    code: bytes
    fault_pcs: dict[int, int]    # op index -> pc of its out-of-bounds store


def build(ops: list[Op], model: Model, ring_helper: int = WINDOWS_RINGBUF_OUTPUT) -> Built:
    """Maps: 0 the map under test, 1 the results array, 2 the ring buffer."""
    p: list[Instruction] = []
    fault_pcs = {}
    p += lddw(6, 0, src=1)
    p += lddw(8, 2, src=1)
    # r7 = &results[0]
    p += [I(0x62, 10, 0, -4, 0), I(0xBF, 2, 10), I(0x07, 2, 0, 0, -4)]
    p += lddw(1, 1, src=1)
    p += [I(0x85, imm=1), I(0x55, 0, 0, 2, 0), I(0xB7, 0, 0, 0, 0), I(0x95), I(0xBF, 7, 0)]
    if any(op.kind == "output" for op in ops):
        p += stack_bytes(RING_AREA, ring_area())
    for i, op in enumerate(ops):
        rec = 16 * i
        if op.kind in ("lookup", "overrun"):
            p += key_insns(model.key(op.key))
            p += [I(0xBF, 1, 6), I(0xBF, 2, 10), I(0x07, 2, 0, 0, KEY_AT), I(0x85, imm=1)]
            found: list[Instruction] = []
            if op.kind == "overrun":
                found += lddw(1, 0x1122334455667788)
                fault_pcs[i] = len(p) + 1 + len(found)
                found.append(store(op.length, 0, 1, op.offset))
            elif op.value:
                found += lddw(1, int.from_bytes(op.value, "little"))
                found.append(store(len(op.value), 0, 1, op.offset))
            found += [I(0x79, 1, 0, 0), I(0x7B, 7, 1, rec + 8), I(0x7A, 7, 0, rec, FOUND)]
            p.append(I(0x15, 0, 0, len(found) + 1, 0))               # jeq r0, 0, not found
            p += found
            p += [I(0x05, 0, 0, 1, 0), I(0x7A, 7, 0, rec, NOT_FOUND)]
            continue
        if op.kind == "update":
            p += key_insns(model.key(op.key))
            p += stack_bytes(VALUE_AT, op.value)
            p += [I(0xBF, 1, 6), I(0xBF, 2, 10), I(0x07, 2, 0, 0, KEY_AT), I(0xBF, 3, 10),
                  I(0x07, 3, 0, 0, VALUE_AT), I(0xB7, 4, 0, 0, op.flags), I(0x85, imm=2)]
        elif op.kind == "delete":
            p += key_insns(model.key(op.key))
            p += [I(0xBF, 1, 6), I(0xBF, 2, 10), I(0x07, 2, 0, 0, KEY_AT), I(0x85, imm=3)]
        elif op.kind == "output":
            p += [I(0xBF, 1, 8), I(0xBF, 2, 10), I(0x07, 2, 0, 0, RING_AREA + op.offset),
                  I(0xB7, 3, 0, 0, op.length), I(0xB7, 4, 0, 0, 0), I(0x85, imm=ring_helper)]
        p += [I(0x7B, 7, 0, rec), I(0x7A, 7, 0, rec + 8, DONE)]
    p += [I(0xB7, 0, 0, 0, len(ops)), I(0x95)]
    return Built(encode(p), fault_pcs)


def map_specs(model: Model, nops: int) -> dict[str, MapSpec]:
    return {"m": MapSpec("m", MAP_TYPE_IDS[model.kind], model.key_size, model.value_size,
                         model.max_entries),
            "results": MapSpec("results", MAP_TYPE_IDS["array"], 4, 16 * max(nops, 1), 1),
            "ring": MapSpec("ring", MAP_TYPE_IDS["ringbuf"], 0, 0, model.ring_capacity)}


def parse_results(raw: bytes, n: int) -> list[tuple[int, int]]:
    out = []
    for i in range(n):
        a, b = struct.unpack_from("<qQ", raw, 16 * i)
        out.append((a, b))
    return out


# -- running on an engine ----------------------------------------------------------------------

@dataclass
class Outcome:
    results: list[tuple[int, int]]
    contents: list[tuple[bytes, bytes]]
    ring: bytes
    records: list[bytes]
    fault: tuple | None


def run_engine(engine: str, built: Built, model: Model, nops: int) -> Outcome:
    prog = Program("ops", "bind", "bind", decode(built.code), ["m", "results", "ring"])
    obj = ElfObject("<generated>", [prog], map_specs(model, nops))
    box = Sandbox(obj, engine=engine, ncpus=model.ncpus, true_lru=model.true_lru)
    box.env.cpu = model.cpu
    fault = None
    try:
        r = box.run(prog)
        assert r.r0 == nops
    except VmFault as exc:
        fault = (exc.kind, exc.pc, exc.region, exc.size, exc.address, str(exc))
    m, ring = box.maps["m"], box.maps["ring"]
    contents = [(k, m.lookup(k)) for k in m.keys()]
    results = parse_results(box.maps["results"].lookup(bytes(4)), nops)
    return Outcome(results, contents, ring.ring_bytes(), ring.records(), fault)


# -- strategies --------------------------------------------------------------------------------

@st.composite
def map_shape(draw, kind: str, max_entries=None):
    key_size = 4 if kind in ARRAYS else draw(st.sampled_from([4, 8]))
    value_size = draw(st.sampled_from([8, 12, 16, 24, 32]))
    if max_entries is None:
        max_entries = draw(st.integers(2, 6))
    ncpus = draw(st.sampled_from([1, 2])) if kind in PERCPU else 1
    cpu = draw(st.integers(0, ncpus - 1))
    return dict(kind=kind, key_size=key_size, value_size=value_size, max_entries=max_entries,
                ncpus=ncpus, cpu=cpu)


def value_bytes(size: int):
    return st.one_of(st.binary(min_size=size, max_size=size),
                     st.integers(0, 255).map(lambda b: bytes([b]) * size))


@st.composite
def op_strategy(draw, shape: dict, nkeys: int, kinds=("lookup", "update", "delete"),
                flags=(BPF_ANY, BPF_NOEXIST, BPF_EXIST, BAD_FLAGS)):
    kind = draw(st.sampled_from(kinds))
    vs = shape["value_size"]
    key = draw(st.integers(0, nkeys - 1))
    if shape["key_size"] == 8 and draw(st.booleans()):
        key |= draw(st.sampled_from([1 << 32, 1 << 63, 0xFFFF_FFFF_0000_0000]))
    if kind == "lookup":
        if draw(st.booleans()):
            width = draw(st.sampled_from([1, 2, 4, 8]))
            offset = draw(st.integers(0, vs - width))
            return Op("lookup", key, draw(st.binary(min_size=width, max_size=width)),
                      offset=offset)
        return Op("lookup", key)
    if kind == "update":
        return Op("update", key, draw(value_bytes(vs)), draw(st.sampled_from(flags)))
    if kind == "output":
        length = draw(st.integers(1, RING_AREA_SIZE))
        return Op("output", offset=draw(st.integers(0, RING_AREA_SIZE - length)),
                  length=length)
    return Op("delete", key)


@st.composite
def scenario(draw, kind: str, max_ops: int = 24, **kw):
    shape = draw(map_shape(kind, kw.pop("max_entries", None)))
    nkeys = kw.pop("nkeys", None) or shape["max_entries"] + 3
    ops = draw(st.lists(op_strategy(shape, nkeys, **kw), min_size=1, max_size=max_ops))
    return shape, ops


def engines_agree(shape: dict, ops: list[Op]):
    """Run `ops` on both engines (they must agree); (outcome, model after the ops, expected
    results, index of the op the model says faults, the built program)."""
    model = Model(**shape)
    built = build(ops, model)
    interp = run_engine("interpreter", built, model, len(ops))
    jit = run_engine("jit", built, model, len(ops))
    assert jit == interp
    want, fault_at = expected(model, ops)
    return interp, model, want, fault_at, built


# -- interpreter vs JIT vs the EFW model ---------------------------------------------------------

@pytest.mark.parametrize("kind", MAP_KINDS)
@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_map_operations_agree_across_engines_and_model(kind, data):
    shape, ops = data.draw(scenario(kind))
    got, model, want, fault_at, _ = engines_agree(shape, ops)
    assert fault_at is None and got.fault is None
    assert got.results == want
    # LRU maps iterate in eviction order: equal lists mean the same keys survived eviction,
    # in the same order
    assert got.contents == model.contents()


U = {k: Op("update", k, struct.pack("<Q", 100 + k), BPF_ANY) for k in range(6)}


@pytest.mark.parametrize("true_lru", [False, True])
@pytest.mark.parametrize("kind,ops,survivors", [
    # a lookup makes 1 most recent: inserting 3 evicts 2
    ("lru_hash", [U[1], U[2], Op("lookup", 1), U[3]], [1, 3]),
    ("lru_percpu_hash", [U[1], U[2], Op("lookup", 1), U[3]], [1, 3]),
    # updating an existing key refreshes it in an LRU hash, not in an LRU per-CPU hash (EFW)
    ("lru_hash", [U[1], U[2], U[1], U[3]], [1, 3]),
    ("lru_percpu_hash", [U[1], U[2], U[1], U[3]], [2, 3]),
    # a failed NOEXIST update does not refresh; a delete frees a place without evicting
    ("lru_hash", [U[1], U[2], Op("update", 1, bytes(8), BPF_NOEXIST), U[3]], [2, 3]),
    ("lru_hash", [U[1], U[2], Op("delete", 1), U[3], U[4]], [3, 4]),
    ("lru_hash", [U[1], U[2], Op("delete", 2), U[3]], [1, 3]),
])
def test_lru_recency_rules_by_hand(kind, ops, survivors, true_lru):
    """Hand-computed survivors (least recent first) of a 2-entry LRU map, on both engines.

    With one CPU and max_entries 2 EFW's hot_list_limit is 1 (ebpf_maps.c _create_lru_hash_map:
    max(2 / 1 / 10, 1)): the hot list holds only the latest key, so EFW's generations and exact
    LRU give the same survivors, computed by hand for both (a failed NOEXIST update merges a
    one-key hot list without reordering it: _ebpf_hash_table_replace_bucket allocates first)."""
    shape = dict(kind=kind, key_size=4, value_size=8, max_entries=2, true_lru=true_lru)
    got, model, _, _, _ = engines_agree(shape, ops)
    keys = [int.from_bytes(k, "little") for k, _ in got.contents]
    assert keys == survivors
    assert [v[:8] for _, v in got.contents] == \
        [struct.pack("<Q", 100 + k) for k in survivors]
    assert got.contents == model.contents()


@pytest.mark.parametrize("true_lru", [False, True])
@pytest.mark.parametrize("kind", sorted(LRU))
@settings(max_examples=30, **SETTINGS)
@given(data=st.data())
def test_lru_eviction_order(kind, true_lru, data):
    """More keys than an LRU map holds, lookups in between: EFW's generations (the reference
    model, efw_lru_model.py) or, with true_lru, exact recency. max_entries up to 24 gives
    hot_list_limit 2 with one CPU (ebpf_maps.c _create_lru_hash_map), where the two differ."""
    max_entries = data.draw(st.sampled_from([2, 3, 4, 20, 24]))
    shape, ops = data.draw(scenario(kind, max_ops=32 if max_entries < 20 else 60,
                                    max_entries=max_entries,
                                    nkeys=max_entries + 2, kinds=("lookup", "update", "update"),
                                    flags=(BPF_ANY, BPF_ANY, BPF_NOEXIST)))
    shape["true_lru"] = true_lru
    got, model, want, _, _ = engines_agree(shape, ops)
    assert got.results == want
    assert [k for k, _ in got.contents] == [k for k, _ in model.contents()]
    assert got.contents == model.contents()


@settings(max_examples=30, **SETTINGS)
@given(data=st.data())
def test_ring_buffer_output_agrees(data):
    shape, ops = data.draw(scenario("hash", max_ops=30,
                                    kinds=("output", "output", "output", "update")))
    got, model, want, _, _ = engines_agree(shape, ops)
    assert got.results == want
    assert got.records == model.records()
    assert got.ring == bytes(model.ring)   # headers, data and untouched padding, byte for byte
    assert got.contents == model.contents()


# nine records of 448 bytes and one of 64: the tenth fills the 4096-byte ring exactly
EXACT_FILL = [Op("output", offset=0, length=440)] * 9 + [Op("output", offset=8, length=56)]


def test_ring_buffer_exact_fill():
    """EFW accepts a record that fills the ring to its last byte (producer - consumer may equal
    the capacity); the ring is then full."""
    shape = dict(kind="hash", key_size=4, value_size=8, max_entries=4)
    ops = EXACT_FILL + [Op("output", offset=0, length=1)]
    got, model, want, _, _ = engines_agree(shape, ops)
    assert [r for r, _ in got.results] == [0] * 10 + [WINDOWS["RING_FULL"]]
    assert got.results == want and got.ring == bytes(model.ring)


@pytest.mark.parametrize("kind", MAP_KINDS)
@settings(max_examples=12, **SETTINGS)
@given(data=st.data())
def test_value_overrun_faults_at_the_store(kind, data):
    """A store through a looked-up pointer that runs past the value faults at that store in
    both engines; it never lands in the neighbouring entry (the map's contents are exactly
    those before the store) and no later op runs."""
    shape, ops = data.draw(scenario(kind, max_ops=12))
    vs = shape["value_size"]
    width = data.draw(st.sampled_from([1, 2, 4, 8]))
    offset = data.draw(st.one_of(st.integers(vs - width + 1, vs + 16),
                                 st.integers(-16, -1), st.sampled_from([vs, pad8(vs)])))
    if offset + width <= vs and offset >= 0:
        offset = vs                                   # pad8(vs) == vs: still past the end
    # every key present first (distinct bytes in each), so the stored-past value has neighbours
    key = data.draw(st.integers(0, shape["max_entries"] - 1))
    prefix = [Op("update", k, bytes((k * 32 + j + 1) & 0xFF for j in range(vs)), BPF_ANY)
              for k in range(shape["max_entries"])]
    tail = data.draw(st.lists(op_strategy(shape, shape["max_entries"] + 3), max_size=4))
    ops = prefix + ops + [Op("overrun", key, offset=offset, length=width)] + tail
    got, model, want, fault_at, built = engines_agree(shape, ops)
    if fault_at is None:   # the key was deleted/evicted meanwhile: no store, no fault
        assert got.fault is None and got.results == want
    else:
        kind_, pc, region, size, _, text = got.fault
        assert (kind_, pc, size) == ("memory", built.fault_pcs[fault_at], width)
        assert region.startswith("map m") and "map m" in text, text   # names the value
        assert got.results[:fault_at] == want and got.results[fault_at:] == \
            [(0, 0)] * (len(ops) - fault_at)
    assert got.contents == model.contents()


@pytest.mark.parametrize("kind", MAP_KINDS)
def test_kernel_verifier_refuses_the_overruns(kind):
    """The overrun stores above are out of bounds by Linux's rules too: its verifier refuses
    each program (value_size 12: past the end, in the per-CPU padding, before the start)."""
    from ntoslab.vm.kernel import KernelRejected
    from ntoslab.vm.kernel_maps import KernelMap, load_with_maps
    kernel = kernel_or_skip()
    shape = dict(kind=kind, key_size=4, value_size=12, max_entries=4)
    model = Model(**shape, flavour="linux")
    for offset, width in [(12, 1), (8, 8), (16, 4), (-1, 1), (11, 2)]:
        ops = [Op("overrun", 0, offset=offset, length=width)]
        specs = map_specs(model, 1)
        maps = [KernelMap(kernel, s.type_name, s.key_size, s.value_size, s.max_entries)
                for s in specs.values()]
        try:
            with pytest.raises(KernelRejected, match="verifier") as info:
                os.close(load_with_maps(kernel, build(ops, model, LINUX_RINGBUF_OUTPUT).code,
                                        maps, "overrun"))
            assert "map_value" in info.value.log or "invalid access" in info.value.log
        finally:
            for m in maps:
                m.close()
    # and the same program with an in-bounds store loads
    ops = [Op("overrun", 0, offset=4, length=8)]
    maps = [KernelMap(kernel, s.type_name, s.key_size, s.value_size, s.max_entries)
            for s in map_specs(model, 1).values()]
    try:
        os.close(load_with_maps(kernel, build(ops, model, LINUX_RINGBUF_OUTPUT).code, maps))
    finally:
        for m in maps:
            m.close()


def test_model_and_programs_can_disagree():
    """The comparison is not vacuous: a one-byte change in what the program stores shows up."""
    shape = dict(kind="hash", key_size=4, value_size=8, max_entries=4)
    ops = [Op("update", 1, bytes(8), BPF_ANY), Op("lookup", 1)]
    model = Model(**shape)
    got = run_engine("jit", build(ops, model), model, len(ops))
    want, _ = expected(Model(**shape), ops)
    assert got.results == want
    changed = [Op("update", 1, b"\1" + bytes(7), BPF_ANY), Op("lookup", 1)]
    got = run_engine("jit", build(changed, model), model, len(ops))
    assert got.results != want


# -- the Linux kernel as an oracle ------------------------------------------------------------

def kernel_or_skip():
    from ntoslab.vm.kernel import KernelUnavailable, LinuxKernel
    try:
        k = LinuxKernel()
        k.run(bytes.fromhex("b7000000000000009500000000000000"))
    except (KernelUnavailable, OSError) as exc:
        pytest.skip(f"no usable bpf(2) here: {exc}")
    return k


def run_kernel(kernel, shape: dict, ops: list[Op]):
    """Run the ops program in the kernel (pinned to `shape["cpu"]`); (results, contents dict,
    ring records)."""
    from ntoslab.vm.kernel_maps import KernelMap, load_with_maps
    model = Model(**shape, flavour="linux")
    built = build(ops, model, ring_helper=LINUX_RINGBUF_OUTPUT)
    specs = map_specs(model, len(ops))
    maps = [KernelMap(kernel, s.type_name, s.key_size, s.value_size, s.max_entries)
            for s in specs.values()]
    affinity = os.sched_getaffinity(0)
    try:
        fd = load_with_maps(kernel, built.code, maps, "ops")
        try:
            os.sched_setaffinity(0, {shape["cpu"]})
            kernel.test_run(fd)
        finally:
            os.sched_setaffinity(0, affinity)
            os.close(fd)
        results = parse_results(maps[1].lookup(bytes(4)), len(ops))
        contents = maps[0].items()
        return results, contents, maps[2].records()
    finally:
        for m in maps:
            m.close()


def kernel_shape(draw, kind: str) -> dict:
    from ntoslab.vm.kernel_maps import possible_cpus
    shape = draw(map_shape(kind))
    ncpus = possible_cpus() if kind in PERCPU else 1
    cpu = draw(st.sampled_from(sorted(os.sched_getaffinity(0))))
    # hash maps: more slots than keys (Linux refuses new keys when full; EFW does not); LRU:
    # room enough that Linux's per-CPU free lists never need to evict (LOCAL_FREE_TARGET 128)
    max_entries = 1024 if kind in LRU else 32 if kind not in ARRAYS else shape["max_entries"]
    return dict(shape, ncpus=ncpus, cpu=cpu if kind in PERCPU else 0, max_entries=max_entries)


@pytest.mark.parametrize("kind", MAP_KINDS)
@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_kernel_oracle_map_operations(kind, data):
    """The same bytecode in the kernel: every op's result and the final contents match the
    model's Linux flavour; the engines match its EFW flavour on the same sequence."""
    kernel = kernel_or_skip()
    shape = kernel_shape(data.draw, kind)
    nkeys = shape["max_entries"] + 2 if kind in ARRAYS else 8
    ops = data.draw(st.lists(op_strategy(shape, nkeys), min_size=1, max_size=24))
    results, contents, _ = run_kernel(kernel, shape, ops)
    linux = Model(**shape, flavour="linux")
    want, _ = expected(linux, ops)
    assert results == want
    assert contents == dict(linux.contents())
    got, model, want, _, _ = engines_agree(shape, ops)
    assert got.results == want and got.contents == model.contents()


@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_kernel_oracle_ring_buffer(data):
    kernel = kernel_or_skip()
    shape = kernel_shape(data.draw, "hash")
    ops = data.draw(st.lists(op_strategy(shape, 8, kinds=("output",)), min_size=1,
                             max_size=30))
    results, _, records = run_kernel(kernel, shape, ops)
    linux = Model(**shape, flavour="linux")
    want, _ = expected(linux, ops)
    assert results == want
    assert records == linux.records()
    got, model, want, _, _ = engines_agree(shape, ops)
    assert got.results == want and got.records == model.records()


def test_kernel_oracle_ring_exact_fill():
    """Linux refuses the record that would fill the ring exactly (it needs new producer -
    consumer <= capacity - 1): the model's one ring difference, seen in the kernel."""
    kernel = kernel_or_skip()
    shape = dict(kind="hash", key_size=4, value_size=8, max_entries=32, ncpus=1, cpu=0)
    results, _, records = run_kernel(kernel, shape, EXACT_FILL)
    assert [r for r, _ in results] == [0] * 9 + [LINUX["RING_FULL"]]
    assert records == [ring_area()[:440]] * 9


@pytest.mark.parametrize("kind", sorted(LRU))
@settings(max_examples=10, **SETTINGS)
@given(data=st.data())
def test_kernel_oracle_lru_overflow(kind, data):
    """What Linux guarantees when an LRU map overflows: inserts never fail, at most
    max_entries keys remain, the key inserted last is among them, and every survivor holds
    the value it was last given. (Which others survive depends on Linux's per-CPU lists, so
    only the engines and the EFW model are compared on that.)"""
    kernel = kernel_or_skip()
    shape = dict(kernel_shape(data.draw, kind), max_entries=data.draw(st.integers(2, 8)))
    keys = data.draw(st.lists(st.integers(0, 40), min_size=12, max_size=30))
    vs = shape["value_size"]
    ops = [Op("update", k, struct.pack("<Q", k * 7 + j).ljust(vs, b"\0"), BPF_ANY)
           for j, k in enumerate(keys)]
    results, contents, _ = run_kernel(kernel, shape, ops)
    linux = Model(**shape, flavour="linux")
    assert [r for r, _ in results] == [0] * len(ops)
    assert 1 <= len(contents) <= shape["max_entries"]
    assert linux.key(keys[-1]) in contents
    last = {}
    for op in ops:
        last[linux.key(op.key)] = op.value
    slot = pad8(vs) if kind in PERCPU else vs
    for k, flat in contents.items():
        at = shape["cpu"] * slot if kind in PERCPU else 0
        assert flat[at:at + vs] == last[k]
    got, model, want, _, _ = engines_agree(shape, ops)
    assert got.results == want and got.contents == model.contents()


# -- exhaustive runs ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("kind", MAP_KINDS)
@settings(max_examples=300, **SETTINGS)
@given(data=st.data())
def test_long_sequences_agree_slow(kind, data):
    shape, ops = data.draw(scenario(kind, max_ops=48))
    got, model, want, _, _ = engines_agree(shape, ops)
    assert got.results == want and got.contents == model.contents()
