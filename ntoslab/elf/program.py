"""What the loader produces: programs, map specifications and the object that holds them.

>>> obj = ntoslab.elf.load("bpf/tests/globals.o")            # doctest: +SKIP
>>> obj.program("count").insns[:2], obj.maps["counters"].max_entries   # doctest: +SKIP
"""
from __future__ import annotations

import bisect
import html
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from ..isa.opcodes import Instruction

if TYPE_CHECKING:
    from .btf import Btf, BtfExt

class MapType(IntEnum):
    """Windows map type ids (reference section 3.2; BPF_MAP_TYPE_<NAME> in ebpf_structs.h).
    `MapType.RINGBUF == 13`; `MapType(13).label` is "ringbuf"."""

    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERCPU_HASH = 4
    PERCPU_ARRAY = 5
    HASH_OF_MAPS = 6
    ARRAY_OF_MAPS = 7
    LRU_HASH = 8
    LPM_TRIE = 9
    QUEUE = 10
    LRU_PERCPU_HASH = 11
    STACK = 12
    RINGBUF = 13
    PERF_EVENT_ARRAY = 14
    SAMPLE_HASH_MAP = 15
    XSKMAP = 16

    @property
    def label(self) -> str:
        """The short name ntoslab prints ("lru_hash")."""
        return self.name.lower()


# id -> label and label -> id, for code and messages that speak in names
MAP_TYPES = {t.value: t.label for t in MapType}
MAP_TYPE_IDS = {t.label: t.value for t in MapType}


@dataclass
class MapSpec:
    """A map as the object declares it (before any runtime creates it)."""

    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    pinning: int = 0
    section: str = ".maps"
    key_type: int | None = None  # BTF type ids, when the object has BTF
    value_type: int | None = None
    inner: "MapSpec | None" = None
    # `values` initialiser: slot -> name of a program (prog array) or a map (map-in-map)
    initial_values: dict[int, str] = field(default_factory=dict)
    # global data sections (.data/.rodata/.bss): their bytes, and whether programs may write
    data: bytes | None = None
    readonly: bool = False
    id: int = 0
    inner_id: int = 0
    inner_map_idx: int = 0

    def __post_init__(self) -> None:
        if self.type in MAP_TYPES:          # a known id reads as its MapType
            self.type = MapType(self.type)

    @property
    def type_name(self) -> str:
        return MAP_TYPES.get(self.type, f"type {self.type}")

    @property
    def is_global_data(self) -> bool:
        return self.data is not None

    def __repr__(self) -> str:
        return (f"MapSpec({self.name!r}, {self.type_name}, key_size={self.key_size}, "
                f"value_size={self.value_size}, max_entries={self.max_entries})")


@dataclass(frozen=True)
class SourceLine:
    file: str
    line: int
    column: int
    text: str

    def __str__(self) -> str:
        text = self.text.strip()
        return f"{self.file}:{self.line}: {text}" if text else f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Function:
    """A function placed in a linked program: its name and [start, end) pcs."""

    name: str
    section: str
    start: int
    end: int


@dataclass
class Program:
    """One entry point, linked with the subprograms it calls; ready for an engine.

    `insns` holds relocated instructions: lddw of a map has src 1 (map fd) and imm = the map's
    index in `map_names`; lddw of global data has src 2 (map value) with the offset in the
    second slot.
    """

    name: str
    section: str
    type: str | None
    insns: list[Instruction]
    map_names: list[str]
    functions: list[Function] = field(default_factory=list)
    lines: list[tuple[int, SourceLine]] = field(default_factory=list)  # sorted by pc
    object_name: str = ""

    def __post_init__(self) -> None:
        self._line_pcs = [pc for pc, _ in self.lines]

    def source_line(self, pc: int) -> SourceLine | None:
        """The source line in force at `pc` (from .BTF.ext line info)."""
        i = bisect.bisect_right(self._line_pcs, pc) - 1
        return self.lines[i][1] if i >= 0 else None

    def function_at(self, pc: int) -> Function | None:
        for f in self.functions:
            if f.start <= pc < f.end:
                return f
        return None

    def describe_pc(self, pc: int) -> str | None:
        line = self.source_line(pc)
        fn = self.function_at(pc)
        parts = []
        if fn is not None and fn.name != self.name:
            parts.append(f"in {fn.name}()")
        if line is not None:
            parts.append(str(line))
        return " ".join(parts) or None

    def disassemble(self) -> str:
        """The linked program in llvm-objdump syntax, with function labels and source lines."""
        from ..isa import opcodes as op
        from ..isa.disasm import disassemble

        def line_for(pc: int):
            line = self.source_line(pc)
            return None if line is None else (line.file, line.line, line.text)

        notes = {}
        for pc, insn in enumerate(self.insns):
            if insn.opcode == op.OP_LDDW and insn.src in (op.LDDW_MAP_FD, op.LDDW_MAP_VALUE) \
                    and 0 <= insn.imm < len(self.map_names):
                name = self.map_names[insn.imm]
                if insn.src == op.LDDW_MAP_VALUE:
                    name += f"+{(insn.imm64 or 0) >> 32}"
                notes[pc] = name
        return disassemble(self.insns, symbols={f.start: f.name for f in self.functions},
                           line_for=line_for, relocations=notes)

    def __len__(self) -> int:
        return len(self.insns)

    def __repr__(self) -> str:
        return f"<Program {self.name} section={self.section!r} type={self.type} insns={len(self)}>"

    def _repr_html_(self) -> str:
        fns = ", ".join(html.escape(f.name) for f in self.functions)
        maps = ", ".join(html.escape(m) for m in self.map_names) or "none"
        return (f"<b>Program</b> <code>{html.escape(self.name)}</code> "
                f"(section <code>{html.escape(self.section)}</code>, type {self.type}): "
                f"{len(self.insns)} instructions; functions {fns}; maps {maps}")


@dataclass
class ElfObject:
    """A loaded eBPF object: its programs, map specs, BTF and line info."""

    path: str
    programs: list[Program]
    maps: dict[str, MapSpec]
    btf: "Btf | None" = None
    btf_ext: "BtfExt | None" = None
    notes: list[str] = field(default_factory=list)

    def program(self, name: str) -> Program:
        """A program by function name (or by section name when that is unique)."""
        for p in self.programs:
            if p.name == name:
                return p
        matches = [p for p in self.programs if p.section == name]
        if len(matches) == 1:
            return matches[0]
        names = ", ".join(p.name for p in self.programs) or "none"
        raise KeyError(f"{self.path}: no program {name!r}; programs: {names}")

    def map(self, name: str) -> MapSpec:
        try:
            return self.maps[name]
        except KeyError:
            raise KeyError(f"{self.path}: no map {name!r}; maps: "
                           f"{', '.join(self.maps) or 'none'}") from None

    def __repr__(self) -> str:
        return (f"<ElfObject {self.path}: programs {[p.name for p in self.programs]}, "
                f"maps {list(self.maps)}>")

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(p.name)}</code></td><td>{html.escape(p.section)}</td>"
            f"<td>{p.type}</td><td>{len(p.insns)}</td></tr>" for p in self.programs)
        mrows = "".join(
            f"<tr><td><code>{html.escape(m.name)}</code></td><td>{m.type_name}</td>"
            f"<td>{m.key_size}</td><td>{m.value_size}</td><td>{m.max_entries}</td></tr>"
            for m in self.maps.values())
        return (f"<div><b>{html.escape(self.path)}</b>"
                f"<table><tr><th>program</th><th>section</th><th>type</th><th>insns</th></tr>"
                f"{rows}</table><table><tr><th>map</th><th>type</th><th>key</th><th>value</th>"
                f"<th>max entries</th></tr>{mrows}</table></div>")
