"""Load a clang-compiled eBPF ELF object into `Program`s and `MapSpec`s.

The steps follow the data: ELF sections and symbols (pyelftools) → BTF → map specs (`.maps`,
legacy `maps`, global data) → per-section instructions → relocations → programs linked with the
subprograms they call, with line info carried over.

>>> obj = load("bpf/tests/globals.o")          # doctest: +SKIP
>>> [p.name for p in obj.programs]              # doctest: +SKIP
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from ..isa import opcodes as op
from ..isa.opcodes import Instruction
from .errors import ElfLoadError
from .maps import parse_maps
from .program import ElfObject, Function, Program, SourceLine
from .sections import SECTION_TYPES, nearest_section, program_type

EM_BPF = 247
R_BPF_NONE = 0
R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4
R_BPF_64_32 = 10
SHF_EXECINSTR = 0x4
GLOBAL_DATA_PREFIXES = (".data", ".rodata", ".bss")
MAX_NOBITS = 1 << 28  # .bss and the like are allocated at load: 256 MiB at most


@dataclass
class Symbol:
    index: int
    name: str
    value: int
    size: int
    type: str  # STT_FUNC, STT_OBJECT, STT_SECTION, STT_NOTYPE...
    bind: str
    section_index: int | str
    section: str | None


@dataclass
class Reloc:
    offset: int
    type: int
    symbol: Symbol
    index: int


@dataclass
class CodeSection:
    name: str
    index: int
    insns: list[Instruction]
    functions: list[Symbol] = field(default_factory=list)
    relocs: dict[int, Reloc] = field(default_factory=dict)  # by instruction index


def load(path: str | os.PathLike) -> ElfObject:
    """Load an eBPF object file. Raises ElfLoadError naming what is wrong."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ElfLoadError(str(p), f"cannot read file: {exc.strerror or exc}") from None
    return load_bytes(data, str(p))


def load_bytes(data: bytes, name: str = "<memory>") -> ElfObject:
    """Load an eBPF object from bytes."""
    ld = _Loader(data, name)
    try:
        return ld.run()
    except ElfLoadError:
        raise
    except RecursionError:
        raise ElfLoadError(name, "structures nest too deeply", section=ld.where) from None
    except Exception as exc:
        # the layout checks in _check_layout catch what pyelftools would trip on; anything left
        # is still reported at the part of the file being read when it happened
        from .btf import BtfError
        if isinstance(exc, BtfError):
            raise ElfLoadError(name, str(exc), section=ld.where or ".BTF") from None
        raise ElfLoadError(name, f"cannot be read ({type(exc).__name__}: {exc})",
                           section=ld.where or "ELF header") from None


_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 2, 3, 4, 8, 9
SHF_COMPRESSED = 0x800
_SHT_NAMES = {SHT_SYMTAB: "SHT_SYMTAB", SHT_STRTAB: "SHT_STRTAB", SHT_RELA: "SHT_RELA",
              SHT_REL: "SHT_REL"}


def _check_layout(ld: "_Loader") -> None:
    """Check the ELF header, section headers, symbol table and relocation tables fit the file
    and each other, before pyelftools reads them; each error names the section and offset."""
    data = ld.data
    size = len(data)
    (ident, _type, _machine, _version, _entry, _phoff, shoff, _flags, _ehsize, _phentsize,
     _phnum, shentsize, shnum, shstrndx) = _EHDR.unpack_from(data, 0)
    if ident[4] != 2 or ident[5] != 1:
        raise ld.error("only 64-bit little-endian eBPF objects are supported "
                       f"(EI_CLASS {ident[4]}, EI_DATA {ident[5]} at offset 4)",
                       section="ELF header")
    if shnum == 0:
        raise ld.error(f"e_shnum is 0 at offset 60: the object has no section headers "
                       f"(e_shoff {shoff})", section="ELF header")
    if shentsize != _SHDR.size:
        raise ld.error(f"e_shentsize at offset 58 is {shentsize}, not {_SHDR.size}",
                       section="ELF header")
    if shoff + shnum * shentsize > size:
        raise ld.error(f"the {shnum} section headers at e_shoff {shoff} ([{shoff}, "
                       f"{shoff + shnum * shentsize})) run past the end of the file ({size} "
                       f"bytes)", section="ELF header")
    if shstrndx >= shnum:
        raise ld.error(f"e_shstrndx at offset 62 is {shstrndx}, but there are {shnum} "
                       f"sections", section="ELF header")
    headers = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]

    def where(i: int) -> str:
        return f"#{i} (header at offset {shoff + i * shentsize})"

    def extent(i: int, label: str) -> tuple[int, int]:
        _n, typ, flags, _a, off, sz, *_ = headers[i]
        if typ != SHT_NOBITS and off + sz > size:
            raise ld.error(f"data [{off}, {off + sz}) runs past the end of the file ({size} "
                           f"bytes)", section=label)
        if flags & SHF_COMPRESSED:
            raise ld.error("compressed sections (SHF_COMPRESSED) are not supported",
                           section=label)
        return off, sz

    s_name, s_type, *_ = headers[shstrndx]
    if s_type != SHT_STRTAB:
        raise ld.error(f"the section-name table (e_shstrndx {shstrndx}) has type {s_type}, not "
                       f"SHT_STRTAB (3)", section=where(shstrndx))
    str_off, str_size = extent(shstrndx, f"{where(shstrndx)} (.shstrtab)")
    names = data[str_off:str_off + str_size]
    labels = []
    for i, h in enumerate(headers):
        if i and (h[0] >= len(names) or names.find(b"\0", h[0]) < 0):
            raise ld.error(f"name offset {h[0]} is outside .shstrtab ({len(names)} bytes) or "
                           f"not NUL-terminated", section=where(i))
        name = names[h[0]:names.find(b"\0", h[0])].decode("utf-8", "replace") if i else ""
        labels.append(f"{name} {where(i)}" if name else where(i))
    for i, h in enumerate(headers):
        if i == 0:
            continue
        _n, typ, _f, _a, off, sz, link, info, _al, entsize = h
        extent(i, labels[i])
        if typ in (SHT_SYMTAB, SHT_REL, SHT_RELA):
            want = {SHT_SYMTAB: 24, SHT_REL: 16, SHT_RELA: 24}[typ]
            if entsize != want or sz % want:
                raise ld.error(f"{_SHT_NAMES[typ]} with sh_entsize {entsize} and sh_size {sz} "
                               f"(entries are {want} bytes)", section=labels[i])
            need = SHT_STRTAB if typ == SHT_SYMTAB else SHT_SYMTAB
            if link >= shnum or headers[link][1] != need:
                raise ld.error(f"sh_link {link} is not a {_SHT_NAMES[need]} section",
                               section=labels[i])
            if typ != SHT_SYMTAB and info >= shnum:
                raise ld.error(f"sh_info {info} (the section relocated) is not a section "
                               f"(there are {shnum})", section=labels[i])
        if typ == SHT_SYMTAB:
            t_off, t_size = extent(link, labels[link])
            for k in range(sz // 24):
                st_name = int.from_bytes(data[off + 24 * k:off + 24 * k + 4], "little")
                if st_name and st_name >= t_size:
                    raise ld.error(f"symbol #{k} (at offset {off + 24 * k}) has name offset "
                                   f"{st_name}, outside its string table ({t_size} bytes)",
                                   section=labels[i])
            if t_size and data[t_off + t_size - 1] != 0:
                raise ld.error("the symbol string table does not end with a NUL",
                               section=labels[link])


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text) and all(c.isprintable() or c in "\t\r\n" for c in text)


class _Loader:
    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name
        self.notes: list[str] = []
        self.where: str | None = None   # the part of the file being read (for error messages)

    def error(self, message: str, **where) -> ElfLoadError:
        return ElfLoadError(self.name, message, **where)

    # -- ELF -------------------------------------------------------------------------------------
    def run(self) -> ElfObject:
        if len(self.data) < 64 or self.data[:4] != b"\x7fELF":
            hint = ""
            if self.name.endswith((".c", ".h")) or _looks_like_text(self.data[:4096]):
                hint = (f"; this looks like source code: compile it first with "
                        f"`ntoslab build {self.name}` and load the .o it writes")
            raise self.error(f"not an ELF file (bad magic or shorter than an ELF header){hint}")
        self.where = "ELF header"
        _check_layout(self)
        elf = ELFFile(io.BytesIO(self.data))
        if elf.elfclass != 64 or not elf.little_endian:
            raise self.error("only 64-bit little-endian eBPF objects are supported",
                             section="ELF header")
        if elf["e_machine"] not in ("EM_BPF", EM_BPF):
            raise self.error(f"e_machine at offset 18 is {elf['e_machine']}, not EM_BPF (247): "
                             f"compile with -target bpf", section="ELF header")
        self.elf = elf
        self.where = "section headers"
        self.sections = {}
        for i, sec in enumerate(elf.iter_sections()):
            self.sections[i] = sec
        self.by_name = {s.name: s for s in self.sections.values()}
        self.symbols = self._symbols()
        self.btf, self.btf_ext = self._btf()

        self.map_table = parse_maps(self)
        maps = self.map_table.specs
        code_sections = self._code_sections()
        programs = self._programs(code_sections, maps)
        if not programs:
            self.notes.append("the object has no programs")
        return ElfObject(self.name, programs, {m.name: m for m in maps}, self.btf, self.btf_ext,
                         self.notes)

    def section_data(self, sec) -> bytes:
        self.where = sec.name
        if sec["sh_type"] == "SHT_NOBITS":
            if sec["sh_size"] > MAX_NOBITS:
                raise self.error(f"SHT_NOBITS section of {sec['sh_size']:,} bytes (sh_size), more "
                                 f"than the {MAX_NOBITS:,} bytes a global data map may hold",
                                 section=sec.name)
            return bytes(sec["sh_size"])
        end = sec["sh_offset"] + sec["sh_size"]
        if end > len(self.data):
            raise self.error(f"section data runs past the end of the file "
                             f"({end} > {len(self.data)} bytes)", section=sec.name)
        return sec.data()

    def _symbols(self) -> list[Symbol]:
        self.where = ".symtab"
        symtab = self.elf.get_section_by_name(".symtab")
        if symtab is not None and not isinstance(symtab, SymbolTableSection):
            raise self.error(f"the .symtab section is of type {symtab['sh_type']}, not "
                             f"SHT_SYMTAB", section=".symtab")
        if symtab is None:
            raise self.error("no .symtab section (was the object stripped, or a section name "
                             "damaged?)", section="section headers")
        out = []
        for i, s in enumerate(symtab.iter_symbols()):
            shndx = s["st_shndx"]
            sec = self.sections.get(shndx) if isinstance(shndx, int) else None
            out.append(Symbol(i, s.name, s["st_value"], s["st_size"], s["st_info"]["type"],
                              s["st_info"]["bind"], shndx, sec.name if sec is not None else None))
        return out

    def _btf(self):
        from .btf import Btf, BtfError, BtfExt
        sec = self.by_name.get(".BTF")
        if sec is None:
            return None, None
        try:
            btf = Btf.parse(self.section_data(sec))
        except BtfError as exc:
            raise self.error(str(exc), section=".BTF") from None
        ext = None
        esec = self.by_name.get(".BTF.ext")
        if esec is not None:
            try:
                ext = BtfExt.parse(self.section_data(esec), btf)
            except BtfError as exc:
                raise self.error(str(exc), section=".BTF.ext") from None
        return btf, ext

    def relocations_for(self, section_name: str) -> list[Reloc]:
        """Relocations applying to `section_name` (from .rel<name> or .rela<name>)."""
        target = self.by_name.get(section_name)
        out: list[Reloc] = []
        for sec in self.sections.values():
            if not isinstance(sec, RelocationSection):
                continue
            if self.sections.get(sec["sh_info"]) is not target:
                continue
            self.where = sec.name
            for i, r in enumerate(sec.iter_relocations()):
                sym_i = r["r_info_sym"]
                if sym_i >= len(self.symbols):
                    raise self.error(f"relocation #{i} refers to symbol #{sym_i}, but the "
                                     f"symbol table has {len(self.symbols)}", section=sec.name)
                out.append(Reloc(r["r_offset"], r["r_info_type"], self.symbols[sym_i], i))
        return out

    # -- code ------------------------------------------------------------------------------------
    def _code_sections(self) -> dict[str, CodeSection]:
        out: dict[str, CodeSection] = {}
        for idx, sec in self.sections.items():
            if not sec["sh_flags"] & SHF_EXECINSTR or sec["sh_size"] == 0:
                continue
            raw = self.section_data(sec)
            if len(raw) % 8:
                raise self.error(f"size {len(raw)} is not a multiple of 8 (eBPF instructions)",
                                 section=sec.name)
            try:
                insns = op.decode(raw)
            except op.DecodeError as exc:
                raise self.error(str(exc), section=sec.name) from None
            cs = CodeSection(sec.name, idx, insns)
            cs.functions = sorted((s for s in self.symbols
                                   if s.section_index == idx and s.type == "STT_FUNC"),
                                  key=lambda s: s.value)
            for r in self.relocations_for(sec.name):
                if r.offset % 8 or r.offset // 8 >= len(insns):
                    raise self.error(f"relocation #{r.index} at offset {r.offset} is not on an "
                                     f"instruction", section=sec.name, symbol=r.symbol.name)
                cs.relocs[r.offset // 8] = r
            out[sec.name] = cs
        return out

    def _function_bounds(self, cs: CodeSection, sym: Symbol) -> tuple[int, int]:
        start = sym.value // 8
        if sym.size:
            end = start + sym.size // 8
        else:  # no size: up to the next function
            later = [f.value // 8 for f in cs.functions if f.value > sym.value]
            end = min(later) if later else len(cs.insns)
        if sym.value % 8 or end > len(cs.insns) or start >= end:
            raise self.error(f"function bounds [{sym.value}, {sym.value + sym.size}) do not fit "
                             f"the section ({len(cs.insns) * 8} bytes)", section=cs.name,
                             symbol=sym.name)
        return start, end

    def _programs(self, code_sections: dict[str, CodeSection], maps) -> list[Program]:
        entry_sections = [cs for name, cs in code_sections.items() if name != ".text"]
        if not entry_sections and ".text" in code_sections:
            entry_sections = [code_sections[".text"]]
        programs = []
        for cs in entry_sections:
            near = nearest_section(cs.name)
            if near is not None:
                known = ", ".join(sorted({p.split("/")[0] for p in SECTION_TYPES}))
                raise self.error(f"no program type is known for section {cs.name!r}; did you "
                                 f"mean SEC(\"{near}\")? (known: {known})", section=cs.name)
            entries = [f for f in cs.functions if f.bind == "STB_GLOBAL"] or cs.functions
            if not entries:
                # a section without function symbols is one program
                entries = [Symbol(-1, cs.name, 0, len(cs.insns) * 8, "STT_FUNC", "STB_GLOBAL",
                                  cs.index, cs.name)]
            for entry in entries:
                programs.append(self._link(entry, cs, code_sections, maps))
        return programs

    def _link(self, entry: Symbol, cs: CodeSection, code_sections: dict[str, CodeSection],
              maps) -> Program:
        """Lay out `entry` then every function it (transitively) calls; apply relocations."""
        self.where = cs.name
        placed: dict[tuple[str, int], int] = {}  # (section, function start) -> linked start
        layout: list[tuple[CodeSection, Symbol, int, int, int]] = []
        pending = [(cs, entry)]
        total = 0
        map_names = [m.name for m in maps]
        while pending:
            sec, sym = pending.pop(0)
            start, end = self._function_bounds(sec, sym)
            if (sec.name, start) in placed:
                continue
            placed[(sec.name, start)] = total
            layout.append((sec, sym, start, end, total))
            total += end - start
            for i in range(start, end):
                insn = sec.insns[i]
                if insn.opcode != op.OP_CALL or insn.src != op.CALL_LOCAL:
                    continue
                tsec, tpc = self._call_target(sec, i, code_sections)
                if not any(tpc == f.value // 8 for f in tsec.functions):
                    if tsec is sec and start <= tpc < end:
                        continue  # a call inside the same function body
                    raise self.error(f"call at instruction {i} targets instruction {tpc} of "
                                     f"{tsec.name}, which starts no function", section=sec.name)
                tsym = next(f for f in tsec.functions if f.value // 8 == tpc)
                pending.append((tsec, tsym))

        insns: list[Instruction] = []
        functions: list[Function] = []
        lines: list[tuple[int, SourceLine]] = []
        for sec, sym, start, end, base in layout:
            functions.append(Function(sym.name, sec.name, base, base + end - start))
            for i in range(start, end):
                insn = sec.insns[i]
                reloc = sec.relocs.get(i)
                if insn.opcode == op.OP_CALL and insn.src == op.CALL_LOCAL:
                    tsec, tpc = self._call_target(sec, i, code_sections)
                    tbase = placed.get((tsec.name, tpc))
                    if tbase is None:  # call within the same function body
                        tbase = base + (tpc - start)
                    insn = Instruction(insn.opcode, insn.dst, insn.src, insn.offset,
                                       tbase - (base + (i - start)) - 1)
                elif reloc is not None:
                    insn = self._relocate(sec, i, insn, reloc, map_names)
                elif insn.opcode == op.OP_LDDW and insn.src != op.LDDW_IMM64:
                    raise self.error(f"lddw at instruction {i} has pseudo source {insn.src} but "
                                     f"no relocation", section=sec.name)
                insns.append(insn)
            lines.extend(self._lines_for(sec, start, end, base))
        lines.sort(key=lambda t: t[0])
        return Program(entry.name, cs.name, program_type(cs.name), insns, map_names, functions,
                       lines, self.name)

    def _call_target(self, sec: CodeSection, i: int,
                     code_sections: dict[str, CodeSection]) -> tuple[CodeSection, int]:
        insn = sec.insns[i]
        reloc = sec.relocs.get(i)
        if reloc is None:
            target = i + 1 + insn.imm
            if not 0 <= target < len(sec.insns):
                raise self.error(f"call at instruction {i} jumps to {target}, outside the "
                                 f"section", section=sec.name)
            return sec, target
        if reloc.type != R_BPF_64_32:
            raise self.error(f"relocation #{reloc.index} on a call has type {reloc.type}, "
                             f"expected R_BPF_64_32 (10)", section=sec.name,
                             symbol=reloc.symbol.name)
        sym = reloc.symbol
        tsec = code_sections.get(sym.section or "")
        if tsec is None:
            raise self.error(f"call at instruction {i} refers to {sym.name or '?'} which is not "
                             f"in a code section (undefined or extern function?)",
                             section=sec.name, symbol=sym.name or None)
        target = sym.value // 8 + insn.imm + 1
        if not 0 <= target < len(tsec.insns):
            raise self.error(f"call at instruction {i} resolves to instruction {target} of "
                             f"{tsec.name}, outside it", section=sec.name, symbol=sym.name)
        return tsec, target

    def _relocate(self, sec: CodeSection, i: int, insn: Instruction, reloc: Reloc,
                  map_names: list[str]) -> Instruction:
        sym = reloc.symbol
        label = sym.name or sym.section or f"#{sym.index}"
        if reloc.type == R_BPF_NONE:
            return insn
        if insn.opcode != op.OP_LDDW:
            raise self.error(f"relocation #{reloc.index} (type {reloc.type}) at instruction {i} "
                             f"is on a {op.CLASS_NAMES.get(insn.cls, '?')} instruction, not an "
                             f"lddw or call", section=sec.name, symbol=label)
        if reloc.type != R_BPF_64_64:
            raise self.error(f"relocation #{reloc.index} on lddw at instruction {i} has type "
                             f"{reloc.type}, expected R_BPF_64_64 (1)", section=sec.name,
                             symbol=label)
        if sym.section is None:
            raise self.error(f"lddw at instruction {i} refers to an undefined symbol (an extern "
                             f"variable or kconfig value, which eBPF for Windows does not "
                             f"provide)", section=sec.name, symbol=label)
        idx = self.map_table.index_for_symbol(sym)
        if idx is None:
            raise self.error(f"lddw at instruction {i} refers to {label} in section "
                             f"{sym.section}, which is neither a map nor global data",
                             section=sec.name, symbol=label)
        if not self.map_table.specs[idx].is_global_data:
            return Instruction(op.OP_LDDW, insn.dst, op.LDDW_MAP_FD, insn.offset, idx, idx)
        offset = (insn.imm if sym.type == "STT_SECTION" else sym.value + insn.imm) & op.MASK32
        return Instruction(op.OP_LDDW, insn.dst, op.LDDW_MAP_VALUE, insn.offset, idx,
                           (offset << 32) | idx)

    def _lines_for(self, sec: CodeSection, start: int, end: int, base: int):
        if self.btf_ext is None:
            return []
        out = []
        for li in self.btf_ext.line_info.get(sec.name, []):
            if start <= li.insn < end:
                out.append((base + li.insn - start,
                            SourceLine(li.file, li.line, li.column, li.text)))
        return out
