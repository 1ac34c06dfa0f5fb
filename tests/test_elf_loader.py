"""ELF loading: programs, subprogram linking, maps, global data, relocations, line info, errors."""
from __future__ import annotations

import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntoslab.elf import ElfLoadError, load, load_bytes
from ntoslab.isa import opcodes as op
from ntoslab.runtime import Sandbox

PRELUDE = r"""
typedef unsigned char u8; typedef unsigned short u16; typedef unsigned int u32;
typedef unsigned long long u64;
#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __array(name, val) typeof(val) *name[]
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static long (*bpf_tail_call)(void *ctx, void *map, u32 index) = (void *)5;
"""

GLOBALS = PRELUDE + r"""
struct pair { u32 a; u64 b; };
struct { __uint(type, 1); __uint(max_entries, 8); __type(key, u32); __type(value, struct pair); } pairs SEC(".maps");
static volatile u64 counter = 40;            /* .data */
static volatile const u32 limit = 7;         /* .rodata */
static volatile u32 scratch[4];              /* .bss */

__attribute__((noinline)) static u64 add_counter(u64 x) {
    counter += x;
    return counter;
}
__attribute__((noinline)) static u64 twice(u64 x) { return add_counter(x) + add_counter(x); }

SEC("process") int count(void *ctx) {
    const char *msg = "hello";                    /* .rodata.str1.1 */
    volatile u32 i = 1;
    scratch[2] = limit + msg[i];
    u32 k = 3;
    struct pair p = { .a = scratch[2], .b = twice(1) };
    bpf_map_update_elem(&pairs, &k, &p, 0);
    return (int)counter;
}
SEC("process/second") int second(void *ctx) { return limit; }
"""


@pytest.fixture(scope="module")
def globals_obj(compile_bpf):
    return load(compile_bpf(GLOBALS, "globals", include=False))


def test_programs_sections_and_types(globals_obj):
    names = {p.name: (p.section, p.type) for p in globals_obj.programs}
    assert names == {"count": ("process", "process"), "second": ("process/second", "process")}


def test_subprograms_are_linked_transitively(globals_obj):
    prog = globals_obj.program("count")
    assert [f.name for f in prog.functions] == ["count", "twice", "add_counter"]
    # every local call lands on the start of a linked function
    starts = {f.start for f in prog.functions}
    for pc, insn in enumerate(prog.insns):
        if insn.opcode == op.OP_CALL and insn.src == op.CALL_LOCAL:
            assert pc + 1 + insn.imm in starts


def test_maps_and_global_data(globals_obj):
    maps = globals_obj.maps
    pairs = maps["pairs"]
    assert (pairs.type, pairs.key_size, pairs.value_size, pairs.max_entries) == (1, 4, 16, 8)
    assert globals_obj.btf.type_name(pairs.value_type) == "struct pair"
    assert struct.unpack("<Q", maps[".data"].data) == (40,)
    assert maps[".rodata"].readonly and struct.unpack("<I", maps[".rodata"].data) == (7,)
    assert maps[".bss"].data == bytes(16) and maps[".bss"].value_size == 16
    strs = [m for name, m in maps.items() if name.startswith(".rodata.str")]
    assert strs and b"hello\0" in strs[0].data


def test_relocated_program_runs_with_globals_and_maps(globals_obj):
    box = Sandbox(globals_obj)
    r = box.run("count", bytes(8))
    # twice(1): counter 40 -> 41 -> 42, returns 41 + 42 = 83; program returns counter = 42
    assert r.r0 == 42
    key = (3).to_bytes(4, "little")
    value = box.maps["pairs"].lookup(key)
    a, b = struct.unpack("<I4xQ", value)
    assert (a, b) == (7 + ord("e"), 83)
    assert box.maps[".bss"].lookup(bytes(4))[8:12] == (7 + ord("e")).to_bytes(4, "little")
    assert box.run("second").r0 == 7


def test_line_info_names_source_lines(globals_obj):
    prog = globals_obj.program("count")
    texts = {str(prog.source_line(pc)) for pc in range(len(prog.insns)) if prog.source_line(pc)}
    assert any("scratch[2] = limit + msg[i];" in t for t in texts)
    # a pc inside a subprogram is described with its function name
    sub = next(f for f in prog.functions if f.name == "add_counter")
    assert "in add_counter()" in prog.describe_pc(sub.start)
    assert "counter += x;" in prog.describe_pc(sub.start + 1) or "counter" in prog.describe_pc(sub.start)


def test_writes_to_rodata_fault(compile_bpf):
    src = PRELUDE + r"""
    static volatile const u32 limit = 7;
    SEC("process") int p(void *ctx) { *(volatile u32 *)&limit = 1; return limit; }
    """
    from ntoslab.vm import VmFault
    box = Sandbox(load(compile_bpf(src, "rodata", include=False)))
    with pytest.raises(VmFault) as info:
        box.run("p")
    assert "read-only" in str(info.value) and ".rodata" in str(info.value)
    assert "*(volatile u32 *)&limit = 1;" in str(info.value)  # the source line


LEGACY = PRELUDE + r"""
struct bpf_map_def { u32 type, key_size, value_size, max_entries, inner_map_idx, pinning, id, inner_id; };
SEC("maps") struct bpf_map_def counts = { .type = 2, .key_size = 4, .value_size = 8, .max_entries = 4 };
SEC("maps") struct bpf_map_def seen = { .type = 1, .key_size = 8, .value_size = 4, .max_entries = 100, .pinning = 1 };
SEC("process") int p(void *ctx) {
    u32 k = 1; u64 *v = bpf_map_lookup_elem(&counts, &k);
    if (v) { *v += 5; return *v; }
    return 0;
}
"""


def test_legacy_maps_section(compile_bpf):
    obj = load(compile_bpf(LEGACY, "legacy", include=False))
    c, s = obj.maps["counts"], obj.maps["seen"]
    assert (c.type, c.key_size, c.value_size, c.max_entries, c.section) == (2, 4, 8, 4, "maps")
    assert (s.type, s.key_size, s.value_size, s.max_entries, s.pinning) == (1, 8, 4, 100, 1)
    box = Sandbox(obj)
    assert [box.run("p").r0 for _ in range(3)] == [5, 10, 15]


MAP_IN_MAP = PRELUDE + r"""
struct inner { __uint(type, 2); __uint(max_entries, 4); __type(key, u32); __type(value, u32); };
struct inner in0 SEC(".maps"), in1 SEC(".maps");
struct {
    __uint(type, 7); __uint(max_entries, 4); __type(key, u32);
    __array(values, struct inner);
} outer SEC(".maps") = { .values = { [0] = &in0, [2] = &in1 } };
SEC("process") int b(void *ctx) { return 2; }
SEC("process") int c(void *ctx) { return 3; }
struct {
    __uint(type, 3); __uint(max_entries, 8); __type(key, u32);
    __array(values, int (void *));
} jumps SEC(".maps") = { .values = { [1] = (void *)&b, [5] = (void *)&c } };
SEC("process") int a(void *ctx) { bpf_tail_call(ctx, &jumps, *(u32 *)ctx); return 1; }
"""


def test_values_initialisers_for_map_in_map_and_prog_array(compile_bpf):
    obj = load(compile_bpf(MAP_IN_MAP, "mapinmap", include=False))
    outer, jumps = obj.maps["outer"], obj.maps["jumps"]
    assert outer.type == 7 and outer.initial_values == {0: "in0", 2: "in1"}
    assert outer.inner is not None and (outer.inner.type, outer.inner.max_entries) == (2, 4)
    assert jumps.type == 3 and jumps.initial_values == {1: "b", 5: "c"}


TAIL = PRELUDE + MAP_IN_MAP[MAP_IN_MAP.index('SEC("process") int b'):]


def test_prog_array_initialiser_drives_tail_calls(compile_bpf):
    box = Sandbox(load(compile_bpf(TAIL, "tail", include=False)))
    # Windows tail call: a's own return value is replaced by the target's
    assert box.run("a", (1).to_bytes(4, "little")).r0 == 2
    assert box.run("a", (5).to_bytes(4, "little")).r0 == 3
    assert box.run("a", (4).to_bytes(4, "little")).r0 == 1  # empty slot: a goes on


# -- errors ------------------------------------------------------------------------------------
def test_not_an_elf_file():
    with pytest.raises(ElfLoadError, match=r"x\.o: not an ELF file"):
        load_bytes(b"hello world" * 10, "x.o")


def test_missing_file(tmp_path):
    with pytest.raises(ElfLoadError, match="cannot read file"):
        load(tmp_path / "nope.o")


def test_wrong_machine(tmp_path):
    src = tmp_path / "host.c"
    src.write_text("int f(void) { return 1; }\n")
    obj = tmp_path / "host.o"
    subprocess.run(["gcc", "-c", str(src), "-o", str(obj)], check=True)
    with pytest.raises(ElfLoadError, match="not EM_BPF"):
        load(obj)


def test_undefined_extern_symbol(compile_bpf):
    src = PRELUDE + "extern u32 CONFIG_X;\nSEC(\"process\") int p(void *c) { return CONFIG_X; }\n"
    with pytest.raises(ElfLoadError, match="symbol CONFIG_X: .*undefined"):
        load(compile_bpf(src, "extern", include=False))


def test_unknown_map_type_names_the_map(compile_bpf):
    src = PRELUDE + r"""
    struct { __uint(type, 99); __uint(max_entries, 1); __type(key, u32); __type(value, u32); } odd SEC(".maps");
    SEC("process") int p(void *c) { u32 k = 0; return bpf_map_lookup_elem(&odd, &k) != 0; }
    """
    with pytest.raises(ElfLoadError, match=r"section \.maps: symbol odd: map type 99"):
        load(compile_bpf(src, "oddmap", include=False))


def test_corrupt_btf_is_named(globals_obj, compile_bpf):
    path = compile_bpf(GLOBALS, "globals", include=False)
    data = bytearray(path.read_bytes())
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(".BTF")
        off = sec["sh_offset"]
    data[off:off + 2] = b"\x00\x00"
    with pytest.raises(ElfLoadError, match=r"section \.BTF: BTF: bad magic"):
        load_bytes(bytes(data), "bad.o")


def test_truncated_object(compile_bpf):
    data = compile_bpf(GLOBALS, "globals", include=False).read_bytes()
    for cut in (10, 64, len(data) // 2, len(data) - 100):
        with pytest.raises(ElfLoadError, match="trunc.o"):
            load_bytes(data[:cut], "trunc.o")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damaged_objects_only_ever_raise_elf_load_error(compile_bpf, data):
    raw = bytearray(compile_bpf(GLOBALS, "globals", include=False).read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        load_bytes(bytes(raw), "fuzz.o")
    except ElfLoadError as exc:
        assert str(exc).startswith("fuzz.o")
        # every error keeps its place: the section (or the ELF header) at fault
        assert exc.section is not None or "not an ELF file" in str(exc), str(exc)
        assert "malformed ELF object" not in str(exc)


def test_source_file_suggests_ntoslab_build(tmp_path):
    src = tmp_path / "policy.c"
    src.write_text('#include "bpf_helpers.h"\nSEC("process") int p(void *c) { return 0; }\n')
    with pytest.raises(ElfLoadError, match=r"not an ELF file .*compile it first with "
                                           r"`ntoslab build .*policy\.c`"):
        load(src)
    with pytest.raises(ElfLoadError) as exc:   # binary junk gets no such hint
        load_bytes(bytes(range(256)), "junk.o")
    assert "ntoslab build" not in str(exc.value)


@pytest.mark.parametrize("section, meant", [("proces", "process"), ("procss/deny", "process/deny"),
                                            ("bnd", "bind"), ("cgroup/conect4",
                                                              "cgroup/connect4")])
def test_misspelt_section_is_refused_at_load_with_the_nearest_name(compile_bpf, section, meant):
    src = PRELUDE + f'SEC("{section}") int p(void *c) {{ return 0; }}\n'
    with pytest.raises(ElfLoadError, match=rf"section {section}: no program type is known for "
                                           rf"section '{section}'; did you mean "
                                           rf'SEC\("{meant}"\)\?'):
        load(compile_bpf(src, "typo", include=False))


def test_sections_of_other_platforms_still_load(compile_bpf):
    """Linux section names (loaded for the libbpf connector) are not typos of ours."""
    from ntoslab.elf import nearest_section
    for name in ("tp_btf/sched_process_exec", "raw_tp", "tc", "kprobe/x", ".text"):
        assert nearest_section(name) is None
    obj = load(compile_bpf(PRELUDE + 'SEC("raw_tp") int p(void *c) { return 0; }\n', "rawtp",
                           include=False))
    assert [p.section for p in obj.programs] == ["raw_tp"] and obj.programs[0].type is None
