"""The benchmark programs in bpf/tests: pure computation (no maps, helpers or global data),
so the same bytecode runs on our engines and in the Linux kernel. Their expected results come
from the Python models below and are also written at the top of each C file."""
from __future__ import annotations

import re
import struct

import pytest
from elftools.elf.elffile import ELFFile

from ntoslab import toolchain

M32 = 0xFFFF_FFFF
M64 = (1 << 64) - 1


def model_sieve() -> int:
    limit = 2000
    composite = [False] * limit
    i = 2
    while i * i < limit:
        if not composite[i]:
            for j in range(i * i, limit, i):
                composite[j] = True
        i += 1
    primes = [n for n in range(2, limit) if not composite[n]]
    assert (len(primes), sum(primes)) == (303, 277050)
    return ((len(primes) * 1000003 + sum(primes)) & M32) & 0x7FFF_FFFF


def model_hash() -> int:
    table = [(s * 0x9E3779B97F4A7C15) & M64 for s in range(32)]
    x, h, prime = 0x2545F4914F6CDD1D, 0xCBF29CE484222325, 0x100000001B3
    for i in range(4096):
        x ^= (x << 13) & M64
        x ^= x >> 7
        x ^= (x << 17) & M64
        slot = table[i & 31] ^ x
        table[i & 31] = slot
        h = ((h ^ (slot & 0xFF)) * prime) & M64
        h = ((h ^ ((slot >> 8) & 0xFF)) * prime) & M64
    for s in range(32):
        h = ((h ^ table[s]) * prime) & M64
    return (h ^ (h >> 32)) & 0x7FFF_FFFF


def model_utf16() -> int:
    phrase = "\\??\\C:\\Windows\\System32\\CMD.EXE "
    units = []
    for i in range(128):
        k, copy = i % 32, i // 32
        c = ord(phrase[k])
        if copy & 1 and ord("a") <= (c | 0x20) <= ord("z"):
            c ^= 0x20
        if copy == 2 and k == 31:
            c = 0xC4
        units.append(c)
    lower = [c + 0x20 if (0x41 <= c <= 0x5A or (0xC0 <= c <= 0xDE and c != 0xD7)) else c
             for c in units]
    assert bytes(struct.pack("<128H", *lower)).decode("utf-16-le").count("\\cmd") == 4
    h = 0
    for c in lower:
        h = (h * 31 + c) & M32
    matches = sum(lower[i:i + 4] == [ord(ch) for ch in "\\cmd"] for i in range(125))
    return (h ^ (matches << 24)) & 0x7FFF_FFFF


BENCH = {"bench_sieve": model_sieve, "bench_hash": model_hash, "bench_utf16": model_utf16}
SRC = toolchain.BPF_DIR / "tests"


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return {name: toolchain.compile_c(SRC / f"{name}.c", out / f"{name}.o") for name in BENCH}


@pytest.mark.parametrize("name", sorted(BENCH))
def test_expected_value_in_comment_matches_model(name):
    header = (SRC / f"{name}.c").read_text().split("#include")[0]
    expected = BENCH[name]()
    assert str(expected) in header, f"{name}.c should state {expected} in its header comment"


@pytest.mark.parametrize("name", sorted(BENCH))
def test_pure_computation(objects, name):
    with open(objects[name], "rb") as f:
        elf = ELFFile(f)
        names = [s.name for s in elf.iter_sections()]
        code = elf.get_section_by_name("process").data()
    assert not any(n in names for n in (".maps", "maps", ".data", ".bss")), names
    assert not any(n.startswith(".rodata") for n in names), names
    assert not any(n.startswith(".rel") and n != ".rel.BTF" and "debug" not in n
                   and "BTF" not in n for n in names), names
    pc = 0
    while pc < len(code):
        opcode, regs, _off, _imm = struct.unpack_from("<BBhi", code, pc)
        assert opcode not in (0x85, 0x8D), f"{name}: call at {pc // 8}"
        if opcode == 0x18:
            assert regs >> 4 == 0, f"{name}: map or data reference at {pc // 8}"
            pc += 8
        pc += 8


@pytest.mark.parametrize("name", sorted(BENCH))
def test_runs_on_the_emulator(objects, name):
    import ntoslab
    with ntoslab.emulator() as hook:
        hook.attach(hook.load(objects[name]).program(name))
        verdict = hook.inject(ntoslab.ProcessEvent.create(pid=8, parent=4,
                                                          image=r"\??\C:\x.exe"))
    (run,) = verdict.runs
    assert run.fault is None
    assert run.status == BENCH[name]()


def test_globals_expected_values_in_comment():
    weights = [3, 1, 4, 1]
    h = 0
    for c in b"ntoslab":
        h = (h * 31 + c) & 0xFFFFFF
    counter, scratch, results = 5, 0, []
    for _ in range(3):
        counter += 1
        scratch += counter
        results.append(sum(w * (counter + i) for i, w in enumerate(weights)) + h + scratch)
    header = (SRC / "globals.c").read_text().split("#include")[0]
    assert re.search(r"return\s+" + r",\s*".join(map(str, results)), header), results


# --- the other test programs in bpf/tests: what their objects must contain -------------------

def _compiled(name: str, tmp_path):
    path = toolchain.compile_c(SRC / f"{name}.c", tmp_path / f"{name}.o")
    f = open(path, "rb")
    return f, ELFFile(f)


def _symbols_in(elf: ELFFile, section: str) -> set[str]:
    index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == section)
    return {s.name for s in elf.get_section_by_name(".symtab").iter_symbols()
            if s["st_shndx"] == index and s.name}


def test_globals_object(tmp_path):
    f, elf = _compiled("globals", tmp_path)
    with f:
        assert elf.get_section_by_name(".data").data() == struct.pack("<i", 5)
        assert elf.get_section_by_name(".rodata").data() == struct.pack("<4i", 3, 1, 4, 1)
        assert elf.get_section_by_name(".bss")["sh_size"] == 16
        assert elf.get_section_by_name(".rodata.str1.1").data() == b"ntoslab\x00"
        assert {"weighted_sum", "string_hash"} <= _symbols_in(elf, ".text")
        code = elf.get_section_by_name("process").data()
        local_calls = [pc for pc in range(0, len(code), 8)
                       if code[pc] == 0x85 and code[pc + 1] >> 4 == 1]
        assert len(local_calls) == 2


def test_maps_btf_object(tmp_path):
    f, elf = _compiled("maps_btf", tmp_path)
    with f:
        assert _symbols_in(elf, ".maps") == {
            "hash", "array", "programs", "percpu_hash", "percpu_array", "inner_a", "inner_b",
            "outer_array", "outer_hash", "lru_hash", "lpm", "queue", "stack", "ringbuf"}
        # initialisers: 2 program slots + 2 outer_array slots + 1 outer_hash slot
        assert elf.get_section_by_name(".rel.maps").num_relocations() == 5
        assert {"MapsBtf", "tail_a", "tail_b"} <= _symbols_in(elf, "process")


def test_legacy_maps_object(tmp_path):
    f, elf = _compiled("legacy_maps", tmp_path)
    with f:
        records = [struct.unpack_from("<8I", elf.get_section_by_name("maps").data(), i * 32)
                   for i in range(4)]
    assert records[0][:4] == (2, 4, 8, 2)          # array counts
    assert records[1][:4] == (1, 4, 8, 1)          # hash last_pid
    assert records[3][:5] == (7, 4, 4, 1, 2)       # array of maps, inner template index 2


def test_tailcall_object(tmp_path):
    f, elf = _compiled("tailcall", tmp_path)
    with f:
        names = {s.name for s in elf.iter_sections()}
        assert {"process", "process/stage1", "process/stage2", ".maps"} <= names
        assert _symbols_in(elf, ".maps") == {"jump_table", "trail"}
