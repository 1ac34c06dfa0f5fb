"""Hostile ELF objects (issue 11 item 7): mutants of every object in bpf/ and bpf/tests — bytes
flipped, files truncated, section headers, symbols, relocations, BTF and code corrupted — give an
ElfLoadError naming the section (or the ELF header) at fault, never any other exception; the
mutants that still load run on both engines with identical verdicts and faults.

Outcomes are counted: tried / contained (an ElfLoadError naming its place, a clean refusal at
load by the verifier or map creation, or a run whose verdicts match on both engines) / crashed
(any other exception, or the engines disagree) / hung (one mutant takes longer than HANG_S) /
silently dropped (an object that loads with no program and no note saying so).

    python tests/test_hostile_elf.py 5000      # a long campaign, counts printed
"""
from __future__ import annotations

import json
import random
import struct
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ntoslab.connectors.emulator import EmulatedHook  # noqa: E402
from ntoslab.elf import ElfLoadError, load_bytes  # noqa: E402
from ntoslab.runtime.maps import MapSpecError  # noqa: E402
from ntoslab.vm.engine import ProgramError  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus" / "elf"
HANG_S = 20.0
BUDGET = 100_000
EVENTS = [{"operation": "create", "process_id": 4242, "parent_process_id": 1000,
           "image_path": r"\??\C:\Windows\System32\cmd.exe", "command_line": "cmd.exe /c whoami",
           "token_sid": "S-1-5-18"},
          {"operation": "delete", "process_id": 4242, "exit_code": 0}]
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
# fields of a section header: (byte offset in the header, width)
SHDR_FIELDS = {"sh_name": (0, 4), "sh_type": (4, 4), "sh_flags": (8, 8), "sh_offset": (24, 8),
               "sh_size": (32, 8), "sh_link": (40, 4), "sh_info": (44, 4), "sh_entsize": (56, 8)}
SYM_FIELDS = {"st_name": (0, 4), "st_info": (4, 1), "st_shndx": (6, 2), "st_value": (8, 8),
              "st_size": (16, 8)}
REL_FIELDS = {"r_offset": (0, 8), "r_type": (8, 4), "r_sym": (12, 4)}
INTERESTING = [0, 1, 7, 8, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 2**63, 2**64 - 1]


def source_objects() -> list[Path]:
    objs = sorted((ROOT / "bpf").glob("*.o")) + sorted((ROOT / "bpf" / "tests").glob("*.o")) + \
        sorted((ROOT / "bpf" / "examples").glob("*.o"))
    return objs


class Layout:
    """Where the sections, symbols and relocations of one object are (from its own headers)."""

    def __init__(self, data: bytes) -> None:
        h = _EHDR.unpack_from(data, 0)
        self.shoff, self.shnum, shstrndx = h[6], h[12], h[13]
        self.headers = [_SHDR.unpack_from(data, self.shoff + 64 * i) for i in range(self.shnum)]
        names_off, names_size = self.headers[shstrndx][4], self.headers[shstrndx][5]
        names = data[names_off:names_off + names_size]
        self.names = [names[h[0]:names.find(b"\0", h[0])].decode() for h in self.headers]

    def sections(self, *, type_: int | None = None, name: str | None = None) -> list[int]:
        return [i for i, h in enumerate(self.headers) if i and (type_ is None or h[1] == type_)
                and (name is None or self.names[i] == name)]


def _put(raw: bytearray, off: int, width: int, value: int) -> None:
    if 0 <= off and off + width <= len(raw):
        raw[off:off + width] = (value % (1 << (8 * width))).to_bytes(width, "little")


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One mutant of `data` and a label saying what was done to it."""
    lay = Layout(data)
    raw = bytearray(data)
    kind = rng.choice(["flip", "truncate", "shdr", "symbol", "reloc", "btf", "btf.ext", "code",
                       "strtab"])
    value = rng.choice(INTERESTING + [rng.getrandbits(32), rng.getrandbits(8)])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return kind, bytes(raw)
    if kind == "truncate":
        return kind, bytes(raw[:rng.randrange(len(raw))])
    if kind == "shdr":
        i = rng.randrange(lay.shnum)
        field = rng.choice(list(SHDR_FIELDS))
        off, width = SHDR_FIELDS[field]
        _put(raw, lay.shoff + 64 * i + off, width, value)
        return f"shdr {lay.names[i] or i} {field}={value:#x}", bytes(raw)
    if kind in ("symbol", "reloc"):
        stype = (2,) if kind == "symbol" else (9, 4)
        secs = [i for t in stype for i in lay.sections(type_=t)]
        if not secs:
            return "flip", bytes(raw)
        i = rng.choice(secs)
        _n, _t, _f, _a, off, size, *_rest, entsize = lay.headers[i]
        fields = SYM_FIELDS if kind == "symbol" else REL_FIELDS
        if not entsize or size < entsize:
            return "flip", bytes(raw)
        k = rng.randrange(size // entsize)
        field = rng.choice(list(fields))
        foff, width = fields[field]
        _put(raw, off + k * entsize + foff, width, value)
        return f"{kind} {lay.names[i]}#{k} {field}={value:#x}", bytes(raw)
    names = {"btf": [".BTF"], "btf.ext": [".BTF.ext"], "strtab": [".strtab", ".shstrtab"]}.get(kind)
    secs = [i for n in names for i in lay.sections(name=n)] if names else \
        [i for i, h in enumerate(lay.headers) if i and h[2] & 0x4 and h[5]]
    if not secs:
        return "flip", bytes(raw)
    i = rng.choice(secs)
    off, size = lay.headers[i][4], lay.headers[i][5]
    for _ in range(rng.randint(1, 4)):
        if kind in ("btf", "btf.ext") and rng.random() < 0.5:   # a header or record word
            _put(raw, off + 4 * rng.randrange(max(1, size // 4)), 4, value)
        else:
            raw[off + rng.randrange(size)] = rng.randrange(256)
    return f"{kind} {lay.names[i]}", bytes(raw)


def _outcome(hook_runs: dict) -> list:
    return hook_runs


def run_on_both(obj) -> tuple[str, str]:
    """Run every process program of a loaded mutant on both engines: ('contained', detail)
    when both refuse it the same way or give the same verdicts, else ('crashed', detail)."""
    results = {}
    for engine in ("interpreter", "jit"):
        hook = EmulatedHook(engine, budget=BUDGET)
        try:
            loaded = hook.load(obj)
            for p in loaded.programs:
                if p.type == "process":
                    hook.attach(p)
            runs = []
            for ev in EVENTS:
                v = hook.inject(ev)
                runs.append((v.status, v.denied, v.decided_by,
                             [(r.program, r.status, r.fault) for r in v.runs]))
            results[engine] = ("ran", runs)
        except (ProgramError, MapSpecError, ValueError, KeyError) as exc:
            # refused at load/attach (verifier, map creation, a tail-call target missing)
            results[engine] = ("refused", type(exc).__name__)
        finally:
            hook.close()
    a, b = results["interpreter"], results["jit"]
    if a != b:
        return "crashed", f"engines differ: interpreter {a!r:.300} jit {b!r:.300}"
    return "contained", a[0]


def classify(label: str, data: bytes, name: str = "mutant.o") -> tuple[str, str]:
    """(outcome, detail) for one mutant."""
    t0 = time.monotonic()
    try:
        obj = load_bytes(data, name)
    except ElfLoadError as exc:
        text = str(exc)
        named = exc.section is not None or "not an ELF file" in text
        if not named or "malformed ELF object" in text or not text.startswith(name):
            return "crashed", f"ElfLoadError without its place: {text}"
        outcome, detail = "contained", text
    except Exception as exc:  # anything else escaping the loader is a crash of the contract
        return "crashed", f"{type(exc).__name__} from the loader: {exc}"
    else:
        if not obj.programs and not obj.notes:
            return "silently dropped", "loaded with no program and no note"
        try:
            outcome, detail = run_on_both(obj)
        except Exception as exc:
            return "crashed", f"{type(exc).__name__} running the mutant: {exc}"
    if time.monotonic() - t0 > HANG_S:
        return "hung", f"{time.monotonic() - t0:.1f} s"
    return outcome, detail


def campaign(n: int, seed: int = 0) -> tuple[Counter, list]:
    """Mutate the project's objects `n` times in all; the counts and the non-contained cases."""
    rng = random.Random(seed)
    objs = [(p, p.read_bytes()) for p in source_objects()]
    counts: Counter = Counter()
    bad = []
    for k in range(n):
        path, data = objs[k % len(objs)]
        label, mutant = mutate(data, rng)
        outcome, detail = classify(label, mutant)
        counts["tried"] += 1
        counts[outcome] += 1
        if outcome != "contained":
            bad.append((path.name, label, outcome, detail))
    return counts, bad


def format_counts(counts: Counter, what: str) -> str:
    cols = ("tried", "contained", "crashed", "hung", "silently dropped")
    return f"{what}: " + ", ".join(f"{c} {counts.get(c, 0)}" for c in cols)


# -- tests ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def objects():
    objs = source_objects()
    if len(objs) < 5:
        pytest.skip("bpf objects not built (make build)")
    return objs


def test_bounded_mutation_campaign(objects, capsys):
    counts, bad = campaign(600, seed=11)
    with capsys.disabled():
        print("\n" + format_counts(counts, "hostile ELF mutants (600, seed 11)"))
    assert counts["tried"] == 600
    assert bad == []
    assert counts["contained"] == 600


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), which=st.integers(0, 1000))
def test_hypothesis_mutants_are_contained(objects, seed, which):
    path = objects[which % len(objects)]
    label, mutant = mutate(path.read_bytes(), random.Random(seed))
    outcome, detail = classify(label, mutant)
    assert outcome == "contained", f"{path.name} {label}: {outcome}: {detail}"


def test_errors_name_section_and_offset(objects):
    """Specific corruptions give specific places (hand-made, so the expectation is known)."""
    data = (ROOT / "bpf" / "tests" / "globals.o").read_bytes()
    lay = Layout(data)
    raw = bytearray(data)
    i = lay.sections(name=".symtab")[0]
    _put(raw, lay.shoff + 64 * i + 32, 8, 1 << 40)               # sh_size of .symtab
    with pytest.raises(ElfLoadError, match=rf"x\.o: section \.symtab #{i} \(header at offset "
                                           rf"{lay.shoff + 64 * i}\): data \[\d+, \d+\) runs "
                                           r"past the end of the file"):
        load_bytes(bytes(raw), "x.o")
    raw = bytearray(data)
    off = lay.headers[i][4]
    _put(raw, off + 24 * 3, 4, 0xFFFF_FFF0)                       # st_name of symbol 3
    with pytest.raises(ElfLoadError, match=rf"section \.symtab #{i} .*: symbol #3 \(at offset "
                                           rf"{off + 72}\) has name offset 4294967280"):
        load_bytes(bytes(raw), "x.o")
    raw = bytearray(data)
    _put(raw, 62, 2, 999)                                         # e_shstrndx
    with pytest.raises(ElfLoadError, match=r"section ELF header: e_shstrndx at offset 62 is 999"):
        load_bytes(bytes(raw), "x.o")
    raw = bytearray(data)
    j = lay.sections(type_=9)[0]
    _put(raw, lay.shoff + 64 * j + 40, 4, 0)                      # sh_link of a .rel section
    with pytest.raises(ElfLoadError, match=rf"section {lay.names[j]} #{j} .*: sh_link 0 is not a "
                                           r"SHT_SYMTAB section"):
        load_bytes(bytes(raw), "x.o")
    raw = bytearray(data)
    b = lay.sections(name=".bss")[0]
    _put(raw, lay.shoff + 64 * b + 32, 8, 2**62)                  # a .bss of 4 EiB
    with pytest.raises(ElfLoadError, match=r"section \.bss: SHT_NOBITS section of "
                                           r"4,611,686,018,427,387,904 bytes"):
        load_bytes(bytes(raw), "x.o")
    raw = bytearray(data)
    _put(raw, lay.shoff + 64 * i + 4, 4, 1)                       # .symtab's sh_type: PROGBITS,
    for r in lay.sections(type_=9):                               # and no .rel section to say so
        _put(raw, lay.shoff + 64 * r + 4, 4, 1)
    with pytest.raises(ElfLoadError, match=r"section \.symtab.*: the \.symtab section is of type "
                                           r"SHT_PROGBITS, not SHT_SYMTAB"):
        load_bytes(bytes(raw), "x.o")


def _corpus_manifest() -> dict:
    path = CORPUS / "MANIFEST.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.mark.parametrize("name", sorted(_corpus_manifest()))
def test_corpus(name):
    """Kept mutants: each still gives the outcome recorded when it was found."""
    entry = _corpus_manifest()[name]
    outcome, detail = classify(entry["mutation"], (CORPUS / name).read_bytes(), name)
    assert outcome == "contained", detail
    assert detail.startswith(entry["expect"]), detail


@pytest.mark.slow
def test_long_mutation_campaign(objects, capsys):
    counts, bad = campaign(6000, seed=2026)
    with capsys.disabled():
        print("\n" + format_counts(counts, "hostile ELF mutants (6000, seed 2026)"))
    assert bad == [] and counts["contained"] == 6000


def write_corpus(n: int = 3000, seed: int = 5, keep: int = 40) -> None:
    """Keep one mutant per distinct kind of outcome (error text up to its first number)."""
    import re
    rng = random.Random(seed)
    objs = [(p, p.read_bytes()) for p in source_objects()]
    CORPUS.mkdir(parents=True, exist_ok=True)
    manifest: dict = {}
    seen = set()
    for k in range(n):
        path, data = objs[k % len(objs)]
        label, mutant = mutate(data, rng)
        name = f"{path.stem}-{k:05d}.o"
        outcome, detail = classify(label, mutant, name)
        if outcome != "contained":
            continue
        shape = re.sub(r"\d+", "N", detail.split(": ", 1)[-1])[:60]
        if shape in seen or len(manifest) >= keep:
            continue
        seen.add(shape)
        (CORPUS / name).write_bytes(mutant)
        expect = detail if detail in ("ran", "refused") else detail[:80]
        manifest[name] = {"source": path.name, "mutation": label, "expect": expect}
    (CORPUS / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--corpus"]:
        write_corpus()
    else:
        total = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
        t0 = time.monotonic()
        counts, bad = campaign(total, seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
        for b in bad[:50]:
            print(*b, sep=" | ")
        print(format_counts(counts, f"hostile ELF mutants ({time.monotonic() - t0:.0f} s)"))
