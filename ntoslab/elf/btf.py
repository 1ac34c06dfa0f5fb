"""BTF: the type information clang emits in `.BTF`, and the `.BTF.ext` func/line/CO-RE info.

Format facts come from the Linux kernel's BTF documentation (Documentation/bpf/btf.rst);
the code is this project's own.

>>> btf = Btf.parse(elf_section_bytes)                       # doctest: +SKIP
>>> btf.type_name(btf.find("struct process_info"))           # doctest: +SKIP
'struct process_info'
>>> btf.decode("struct process_info", record)                # doctest: +SKIP
{'process_id': 4242, ...}
>>> ext = BtfExt.parse(ext_section_bytes, btf)               # doctest: +SKIP
>>> ext.line_for("bind", 12)                                 # doctest: +SKIP
LineInfo(insn=10, file='prog.c', line=31, column=9, text='    if (!p)')

Everything malformed raises `BtfError` (a ValueError) naming the type id or record at fault;
no struct.error, IndexError or RecursionError escapes, whatever the input bytes.

Unlinked objects: in a relocatable `.o`, clang leaves every DATASEC's size and every
variable's offset at 0 (the linker/loader fills them in). `Btf.fix_datasec(name, size,
offsets)` sets them from the ELF section size and symbol values; `Btf.fix_datasecs_from_elf`
does it for every DATASEC from a pyelftools ELFFile. `datasec()` and decoding a DATASEC use
whatever values are there.

Instruction offsets in `.BTF.ext`: the file holds byte offsets relative to the start of the
ELF section named by the record (clang emits them that way in a `.o`, with a relocation
against the section symbol whose value is 0). `FuncInfo.insn`, `LineInfo.insn` and
`CoreRelo.insn` are instruction indexes (byte offset // 8) within that section; the
`insn_off` property gives the byte offset back.
"""
from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any, Iterable, NamedTuple

__all__ = ["Btf", "BtfExt", "BtfError", "BtfType", "CoreRelo", "DatasecVar", "Field",
           "FuncInfo", "LineInfo", "Member", "BTF_MAGIC", "KINDS"]

BTF_MAGIC = 0xEB9F
KINDS = {1: "INT", 2: "PTR", 3: "ARRAY", 4: "STRUCT", 5: "UNION", 6: "ENUM", 7: "FWD",
         8: "TYPEDEF", 9: "VOLATILE", 10: "CONST", 11: "RESTRICT", 12: "FUNC",
         13: "FUNC_PROTO", 14: "VAR", 15: "DATASEC", 16: "FLOAT", 17: "DECL_TAG",
         18: "TYPE_TAG", 19: "ENUM64"}
KIND_IDS = {v: k for k, v in KINDS.items()}
# kinds whose third header word is a referenced type id (the others hold a size)
_REF_KINDS = frozenset({"PTR", "FWD", "TYPEDEF", "VOLATILE", "CONST", "RESTRICT", "FUNC",
                        "FUNC_PROTO", "VAR", "DECL_TAG", "TYPE_TAG", "ARRAY"})
# followed by resolve(): they do not change the layout of the type underneath
MODIFIERS = ("TYPEDEF", "VOLATILE", "CONST", "RESTRICT", "TYPE_TAG")
QUALIFIERS = ("CONST", "VOLATILE", "RESTRICT")
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
LINKAGE = {0: "static", 1: "global", 2: "extern"}
POINTER_SIZE = 8
MAX_DEPTH = 64  # nesting of type references followed by any one query; deeper means a loop
MAX_WORK = 2_000_000  # type visits one type_name/decode/layout may make (damaged BTF can be a DAG
                    # whose expansion is exponential)

# bpf_core_relo_kind values (kernel uapi)
CORE_RELO_KINDS = {0: "FIELD_BYTE_OFFSET", 1: "FIELD_BYTE_SIZE", 2: "FIELD_EXISTS",
                   3: "FIELD_SIGNED", 4: "FIELD_LSHIFT_U64", 5: "FIELD_RSHIFT_U64",
                   6: "TYPE_ID_LOCAL", 7: "TYPE_ID_TARGET", 8: "TYPE_EXISTS", 9: "TYPE_SIZE",
                   10: "ENUMVAL_EXISTS", 11: "ENUMVAL_VALUE", 12: "TYPE_MATCHES"}

_BTF_HDR = struct.Struct("<HBBIIIII")      # magic version flags hdr_len type_off/len str_off/len
_TYPE_HDR = struct.Struct("<III")          # name_off info size_or_type
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_TRIPLE = struct.Struct("<III")
_PAIR = struct.Struct("<II")
_SPAIR = struct.Struct("<Ii")


class BtfError(ValueError):
    """Malformed or unsupported BTF; the message names the type id or record at fault."""


class Member(NamedTuple):
    """A struct/union member. `bitfield_size` is 0 for an ordinary (non-bitfield) member."""
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int


class DatasecVar(NamedTuple):
    """A variable of a DATASEC: its VAR's type (the FUNC's id for an extern function)."""
    name: str
    type_id: int
    offset: int
    size: int


class Field(NamedTuple):
    """One leaf of `Btf.layout()`: dotted path, byte offset, byte size, C type name."""
    path: str
    offset: int
    size: int
    type: str


@dataclass
class BtfType:
    """One BTF type record.

    `size` is set for INT, STRUCT, UNION, ENUM, ENUM64, DATASEC and FLOAT; `type` (the
    referenced type id) for PTR, TYPEDEF, qualifiers, TYPE_TAG, FUNC (its FUNC_PROTO),
    FUNC_PROTO (its return type), VAR and DECL_TAG.
    """

    id: int
    kind: str
    name: str
    size: int = 0
    type: int = 0
    kind_flag: bool = False
    vlen: int = 0
    encoding: int = 0        # INT: INT_SIGNED | INT_CHAR | INT_BOOL
    bits: int = 0            # INT: number of value bits
    bit_offset: int = 0      # INT: bit offset of the value within `size` bytes
    elem_type: int = 0       # ARRAY
    index_type: int = 0      # ARRAY
    nelems: int = 0          # ARRAY
    members: list[Member] = field(default_factory=list)            # STRUCT, UNION
    values: list[tuple[str, int]] = field(default_factory=list)    # ENUM, ENUM64
    params: list[tuple[str, int]] = field(default_factory=list)    # FUNC_PROTO (name, type)
    linkage: int = 0         # VAR (its trailing word), FUNC (its vlen): 0 static 1 global 2 extern
    vars: list[tuple[int, int, int]] = field(default_factory=list)  # DATASEC: var type id, offset, size
    component_idx: int = -1  # DECL_TAG: -1 for the type itself, else member/parameter index

    @property
    def signed(self) -> bool:
        """INT: signed encoding; ENUM/ENUM64: kind_flag set (signed values)."""
        if self.kind == "INT":
            return bool(self.encoding & INT_SIGNED)
        return self.kind in ("ENUM", "ENUM64") and self.kind_flag

    @property
    def is_union(self) -> bool:
        return self.kind == "UNION" or (self.kind == "FWD" and self.kind_flag)

    @property
    def linkage_name(self) -> str:
        return LINKAGE.get(self.linkage, str(self.linkage))


@dataclass(frozen=True)
class FuncInfo:
    """A function's start: instruction index within its section, FUNC type id, name."""
    insn: int
    type_id: int
    name: str

    @property
    def insn_off(self) -> int:
        return self.insn * 8


@dataclass(frozen=True)
class LineInfo:
    """Source position in force from instruction `insn` (index within the section) on."""
    insn: int
    file: str
    line: int
    column: int
    text: str

    @property
    def insn_off(self) -> int:
        return self.insn * 8

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.text.strip()}"


@dataclass(frozen=True)
class CoreRelo:
    """A CO-RE relocation: the loader reports these (eBPF for Windows has no CO-RE)."""
    section: str
    insn: int
    type_id: int
    access: str
    kind: int

    @property
    def insn_off(self) -> int:
        return self.insn * 8

    @property
    def kind_name(self) -> str:
        return CORE_RELO_KINDS.get(self.kind, f"kind {self.kind}")


def _label(t: BtfType) -> str:
    return f"{t.kind} {t.name or '(anon)'}"


# ================================================================================================
class Btf:
    """Parsed `.BTF`: `types[id]` (0 is void) and the string table."""

    def __init__(self, types: list[BtfType], strings: bytes) -> None:
        self.types = types
        self.strings = strings
        self._sizes: dict[int, int] = {}
        self._aligns: dict[int, int] = {}
        self._work = MAX_WORK
        self._index()

    def _index(self) -> None:
        self._by_name: dict[str, list[int]] = {}
        for t in self.types[1:]:
            if t.name:
                self._by_name.setdefault(t.name, []).append(t.id)
        self._sizes = {}
        self._aligns = {}

    def __len__(self) -> int:
        """The number of types, void excluded."""
        return len(self.types) - 1

    def __repr__(self) -> str:
        return f"<Btf {len(self)} types, {len(self.strings)} bytes of strings>"

    # -- parsing ---------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes) -> "Btf":
        data = bytes(data)
        if len(data) < 4:
            raise BtfError(f"BTF: truncated header ({len(data)} bytes, need at least 24)")
        magic = int.from_bytes(data[:2], "little")
        if magic != BTF_MAGIC:
            extra = "; this is big-endian BTF, which is not supported" \
                if magic == 0x9FEB else ""
            raise BtfError(f"BTF: bad magic {magic:#06x} (expected {BTF_MAGIC:#06x}){extra}")
        if len(data) < _BTF_HDR.size:
            raise BtfError(f"BTF: truncated header ({len(data)} bytes, need at least 24)")
        _m, version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            _BTF_HDR.unpack_from(data, 0)
        if version != 1:
            raise BtfError(f"BTF: version {version} is not supported (expected 1)")
        if hdr_len < _BTF_HDR.size or hdr_len > len(data):
            raise BtfError(f"BTF: header length {hdr_len} is impossible (at least 24, at most "
                           f"the {len(data)} bytes of the section)")
        avail = len(data) - hdr_len
        for what, off, ln in (("type section", type_off, type_len),
                              ("string section", str_off, str_len)):
            if off + ln > avail:
                raise BtfError(f"BTF: {what} [{off}, {off + ln}) runs past the end of the data "
                               f"({avail} bytes after the {hdr_len}-byte header)")
        if type_off % 4:
            raise BtfError(f"BTF: type section offset {type_off} is not 4-byte aligned")
        strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        if strings and strings[-1] != 0:
            raise BtfError(f"BTF: string section (size {str_len}) does not end with a NUL")
        btf = cls([BtfType(0, "VOID", "")], strings)
        tsec = data[hdr_len + type_off:hdr_len + type_off + type_len]
        off = 0
        while off < len(tsec):
            t, off = btf._parse_type(tsec, off, len(btf.types))
            btf.types.append(t)
        btf._index()
        btf._check()
        return btf

    def string(self, off: int, context: str = "BTF") -> str:
        """The NUL-terminated string at `off` in the string section."""
        if off == 0 and not self.strings:
            return ""
        if not 0 <= off < len(self.strings):
            raise BtfError(f"{context}: string offset {off} outside string section "
                           f"(size {len(self.strings)})")
        end = self.strings.find(b"\0", off)
        if end < 0:  # parse() checks the last byte; reachable only for hand-made Btf objects
            raise BtfError(f"{context}: string at offset {off} is not NUL-terminated")
        return self.strings[off:end].decode("utf-8", errors="replace")

    def _parse_type(self, sec: bytes, off: int, tid: int) -> tuple[BtfType, int]:
        if off + 12 > len(sec):
            raise BtfError(f"BTF type #{tid}: truncated header at offset {off} of the type "
                           f"section ({len(sec) - off} of 12 bytes left)")
        name_off, info, word = _TYPE_HDR.unpack_from(sec, off)
        kind_no = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kind = KINDS.get(kind_no)
        if kind is None:
            raise BtfError(f"BTF type #{tid}: kind {kind_no} is unknown")
        ctx = f"BTF type #{tid} ({kind})"
        t = BtfType(tid, kind, self.string(name_off, ctx), kind_flag=bool(info >> 31), vlen=vlen)
        ctx = f"BTF type #{tid} ({_label(t)})"
        off += 12
        if kind in _REF_KINDS:
            t.type = word
        else:
            t.size = word
        per_item = {"STRUCT": 12, "UNION": 12, "ENUM": 8, "ENUM64": 12, "FUNC_PROTO": 8,
                    "DATASEC": 12}.get(kind)
        fixed = {"INT": 4, "ARRAY": 12, "VAR": 4, "DECL_TAG": 4}.get(kind, 0)
        need = per_item * vlen if per_item else fixed
        if off + need > len(sec):
            what = f"{vlen} entries of {per_item} bytes" if per_item else f"{need} bytes of data"
            raise BtfError(f"{ctx}: truncated: needs {what} but the type section has only "
                           f"{len(sec) - off} bytes left")
        if kind == "INT":
            (v,) = _U32.unpack_from(sec, off)
            t.encoding, t.bit_offset, t.bits = (v >> 24) & 0xF, (v >> 16) & 0xFF, v & 0xFF
        elif kind == "ARRAY":
            t.elem_type, t.index_type, t.nelems = _TRIPLE.unpack_from(sec, off)
            t.type = 0
        elif kind in ("STRUCT", "UNION"):
            for k in range(vlen):
                m_name, m_type, m_off = _TRIPLE.unpack_from(sec, off + 12 * k)
                name = self.string(m_name, f"{ctx} member {k}")
                if t.kind_flag:
                    t.members.append(Member(name, m_type, m_off & 0xFFFFFF, m_off >> 24))
                else:
                    t.members.append(Member(name, m_type, m_off, 0))
        elif kind == "ENUM":
            fmt = _SPAIR if t.kind_flag else _PAIR
            for k in range(vlen):
                v_name, val = fmt.unpack_from(sec, off + 8 * k)
                t.values.append((self.string(v_name, f"{ctx} value {k}"), val))
        elif kind == "ENUM64":
            for k in range(vlen):
                v_name, lo, hi = _TRIPLE.unpack_from(sec, off + 12 * k)
                val = (hi << 32) | lo
                if t.kind_flag and val >> 63:
                    val -= 1 << 64
                t.values.append((self.string(v_name, f"{ctx} value {k}"), val))
        elif kind == "FUNC_PROTO":
            for k in range(vlen):
                p_name, p_type = _PAIR.unpack_from(sec, off + 8 * k)
                t.params.append((self.string(p_name, f"{ctx} parameter {k}"), p_type))
        elif kind == "FUNC":
            t.linkage = vlen
        elif kind == "VAR":
            (t.linkage,) = _U32.unpack_from(sec, off)
        elif kind == "DATASEC":
            t.vars = [_TRIPLE.unpack_from(sec, off + 12 * k) for k in range(vlen)]
        elif kind == "DECL_TAG":
            (t.component_idx,) = _I32.unpack_from(sec, off)
        return t, off + need

    def _check(self) -> None:
        """References within range, and the kinds the kernel insists on where we rely on them."""
        n = len(self.types)
        for t in self.types[1:]:
            refs = []
            if t.kind in _REF_KINDS and t.kind != "ARRAY":
                refs.append(("type", t.type))
            if t.kind == "ARRAY":
                refs += [("element type", t.elem_type), ("index type", t.index_type)]
            refs += [(f"member {m.name or '(anon)'}", m.type_id) for m in t.members]
            refs += [(f"parameter {p[0] or k}", p[1]) for k, p in enumerate(t.params)]
            refs += [(f"variable {k}", v[0]) for k, v in enumerate(t.vars)]
            for what, ref in refs:
                if ref >= n:
                    raise BtfError(f"BTF type #{t.id} ({_label(t)}): {what} refers to type "
                                   f"#{ref}, but the last type is #{n - 1}")
            if t.kind == "FUNC" and self.types[t.type].kind != "FUNC_PROTO":
                raise BtfError(f"BTF type #{t.id} ({_label(t)}): type #{t.type} is "
                               f"{self.types[t.type].kind}, not FUNC_PROTO")
            if t.kind == "DATASEC":
                for k, (vt, _o, _s) in enumerate(t.vars):
                    if self.types[vt].kind not in ("VAR", "FUNC"):
                        raise BtfError(f"BTF type #{t.id} ({_label(t)}): entry {k} is type "
                                       f"#{vt} of kind {self.types[vt].kind}, not VAR")
            if t.kind in ("VAR", "FUNC") and not t.name:
                raise BtfError(f"BTF type #{t.id} ({t.kind}): has no name")

    # -- fixing up unlinked objects --------------------------------------------------------------
    def fix_datasec(self, name: str, size: int | None = None,
                    var_offsets: dict[str, int] | None = None) -> None:
        """Set a DATASEC's size and its variables' offsets (by variable name).

        clang leaves both at 0 in a `.o`: pass the ELF section's size and the symbols' values.
        Variables missing from `var_offsets` keep their offset.
        """
        tid = self._datasec_id(name)
        t = self.types[tid]
        if size is not None:
            t.size = size
        if var_offsets:
            for k, (vt, off, vsize) in enumerate(t.vars):
                vname = self.types[vt].name
                if vname in var_offsets:
                    t.vars[k] = (vt, var_offsets[vname], vsize)
        self._sizes.pop(tid, None)

    def fix_datasecs_from_elf(self, elf) -> list[str]:
        """`fix_datasec` for every DATASEC from a pyelftools ELFFile; returns the names fixed."""
        sections = {i: s for i, s in enumerate(elf.iter_sections())}
        by_name = {s.name: (i, s) for i, s in sections.items()}
        symtab = elf.get_section_by_name(".symtab")
        symbols: dict[int, dict[str, int]] = {}
        if symtab is not None:
            for s in symtab.iter_symbols():
                if isinstance(s["st_shndx"], int) and s.name:
                    symbols.setdefault(s["st_shndx"], {})[s.name] = s["st_value"]
        fixed = []
        for t in self.types:
            if t.kind == "DATASEC" and t.name in by_name:
                idx, sec = by_name[t.name]
                self.fix_datasec(t.name, sec["sh_size"], symbols.get(idx, {}))
                fixed.append(t.name)
        return fixed

    # -- queries ---------------------------------------------------------------------------------
    def type(self, type_id: int) -> BtfType:
        if not isinstance(type_id, int) or not 0 <= type_id < len(self.types):
            raise BtfError(f"BTF type #{type_id} does not exist (the last type is "
                           f"#{len(self.types) - 1})")
        return self.types[type_id]

    def find(self, name: str, kind: str | None = None) -> int:
        """The id of the type called `name`.

        "struct x", "union x" and "enum x" select the kind, as does `kind` ("STRUCT",
        "typedef"...). When several types share a name, named C types win over FUNC/VAR/
        DATASEC, and complete types over FWD declarations and DECL_TAGs.
        """
        words = name.split(None, 1)
        if len(words) == 2 and words[0] in ("struct", "union", "enum"):
            kind = words[0]
            name = words[1]
        want = kind.upper() if kind else None
        if want is not None and want not in KIND_IDS:
            raise KeyError(f"{kind!r} is not a BTF kind (kinds: {', '.join(KINDS.values())})")
        rank = {"FWD": 3, "DECL_TAG": 4, "FUNC": 1, "VAR": 2, "DATASEC": 2}
        best = None
        for tid in self._by_name.get(name, []):
            t = self.types[tid]
            ok = (want is None or t.kind == want or (want == "ENUM" and t.kind == "ENUM64")
                  or (want in ("STRUCT", "UNION") and t.kind == "FWD"
                      and t.is_union == (want == "UNION")))
            if ok and (best is None or rank.get(t.kind, 0) < rank.get(self.types[best].kind, 0)):
                best = tid
        if best is not None:
            return best
        names = list(self._by_name)
        close = get_close_matches(name, names, n=6, cutoff=0.6)
        low = name.lower()
        close += [n for n in names if low and low in n.lower() and n not in close][:6 - len(close)]
        if want is not None and name in self._by_name:
            kinds = sorted({self.types[i].kind for i in self._by_name[name]})
            hint = f"; {name!r} exists as {', '.join(kinds)}"
        elif close:
            hint = "; close names: " + ", ".join(
                f"{n} ({self.types[self._by_name[n][0]].kind})" for n in close)
        else:
            hint = ""
        raise KeyError(f"no BTF type named {name!r}{' of kind ' + want if want else ''}{hint}")

    def _id(self, type_id: int | str) -> int:
        if isinstance(type_id, str):
            return self.find(type_id)
        self.type(type_id)
        return type_id

    def resolve(self, type_id: int | str) -> int:
        """Follow typedefs, const/volatile/restrict and type tags to the underlying type id."""
        tid = self._id(type_id)
        for _ in range(len(self.types) + 1):
            t = self.types[tid]
            if t.kind not in MODIFIERS:
                return tid
            tid = t.type
        raise BtfError(f"BTF type #{self._id(type_id)}: typedef/qualifier chain loops")

    def sizeof(self, type_id: int | str) -> int:
        """Size in bytes (pointers are 8 bytes); BtfError for void, functions, FWD."""
        return self._sizeof(self._id(type_id), 0)

    def _sizeof(self, tid: int, depth: int) -> int:
        cached = self._sizes.get(tid)
        if cached is not None:
            return cached
        if depth > MAX_DEPTH:
            raise BtfError(f"BTF type #{tid}: type references nest too deeply (a loop?)")
        t = self.types[self.resolve(tid)]
        if t.kind in ("INT", "STRUCT", "UNION", "ENUM", "ENUM64", "FLOAT", "DATASEC"):
            size = t.size
        elif t.kind == "PTR":
            size = POINTER_SIZE
        elif t.kind == "ARRAY":
            size = t.nelems * self._sizeof(t.elem_type, depth + 1)
        elif t.kind == "VAR":
            size = self._sizeof(t.type, depth + 1)
        else:
            what = "void" if t.id == 0 else _label(t)
            raise BtfError(f"BTF type #{tid} ({what}) has no size")
        self._sizes[tid] = size
        return size

    def alignof(self, type_id: int | str) -> int:
        """Alignment in bytes under the BPF ABI (8-byte maximum); 1 for a packed struct."""
        return self._alignof(self._id(type_id), 0)

    def _alignof(self, tid: int, depth: int) -> int:
        cached = self._aligns.get(tid)
        if cached is None:
            cached = self._aligns[tid] = self._alignof_uncached(tid, depth)
        return cached

    def _alignof_uncached(self, tid: int, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise BtfError(f"BTF type #{tid}: type references nest too deeply (a loop?)")
        t = self.types[self.resolve(tid)]
        if t.kind == "ARRAY":
            return self._alignof(t.elem_type, depth + 1)
        if t.kind == "VAR":
            return self._alignof(t.type, depth + 1)
        if t.kind in ("STRUCT", "UNION"):
            align = 1
            for m in t.members:
                a = self._alignof(m.type_id, depth + 1)
                if not self._is_bitfield(m) and m.bit_offset % (8 * a):
                    return 1  # a member off its natural alignment: the struct is packed
                align = max(align, a)
            return 1 if t.size % align else align
        if t.kind in ("INT", "ENUM", "ENUM64", "FLOAT", "PTR"):
            return min(max(self._sizeof(t.id, depth + 1), 1), 8)
        raise BtfError(f"BTF type #{tid} ({_label(t)}) has no alignment")

    def _is_bitfield(self, m: Member) -> bool:
        """kind_flag bitfield size, or (older encoding) an INT type narrower than its size."""
        if m.bitfield_size:
            return True
        t = self.types[self.resolve(m.type_id)]
        return t.kind == "INT" and bool(t.bit_offset or (t.bits and t.bits < 8 * t.size))

    def members(self, type_id: int | str) -> list[Member]:
        """(name, type_id, bit_offset, bitfield_size) of each member of a struct or union."""
        tid = self.resolve(type_id)
        t = self.types[tid]
        if t.kind not in ("STRUCT", "UNION"):
            raise BtfError(f"BTF type #{tid} is {t.kind}, not a struct or union")
        return list(t.members)

    def _datasec_id(self, name: str) -> int:
        for tid in self._by_name.get(name, []):
            if self.types[tid].kind == "DATASEC":
                return tid
        have = [t.name for t in self.types if t.kind == "DATASEC"]
        raise KeyError(f"no BTF DATASEC named {name!r} (DATASECs: {', '.join(have) or 'none'})")

    def datasec(self, name: str) -> list[DatasecVar]:
        """(variable name, variable's type id, offset, size) for each variable of a DATASEC."""
        out = []
        for var_id, off, size in self.types[self._datasec_id(name)].vars:
            v = self.types[var_id]
            out.append(DatasecVar(v.name, v.type if v.kind == "VAR" else var_id, off, size))
        return out

    # -- C spelling ------------------------------------------------------------------------------
    def type_name(self, type_id: int | str) -> str:
        """A C-like spelling: 'struct process_info', 'uint32_t', 'char[1024]', 'int (*)(void *)'.

        FUNC gives its declaration ('int prog(void *ctx)'), VAR 'int counter'; type tags
        are left out; anonymous aggregates read 'struct (anon)'.
        """
        tid = self._id(type_id)
        self._work = MAX_WORK
        return self._decl(tid, "", 0)

    def _spend(self, tid: int) -> None:
        self._work -= 1
        if self._work < 0:
            raise BtfError(f"BTF type #{tid}: too large or complex to expand (over {MAX_WORK} "
                           f"type visits; damaged BTF?)")

    def _decl(self, tid: int, inner: str, depth: int) -> str:
        self._spend(tid)
        if depth > MAX_DEPTH:
            raise BtfError(f"BTF type #{tid}: type references nest too deeply (a loop?)")
        t = self.types[tid]
        k = t.kind
        if k == "PTR":
            target = self._skip_qualifiers(t.type, depth)
            wrap = self.types[target].kind in ("ARRAY", "FUNC_PROTO")
            return self._decl(t.type, f"(*{inner})" if wrap else f"*{inner}", depth + 1)
        if k == "ARRAY":
            return self._decl(t.elem_type, f"{inner}[{t.nelems}]", depth + 1)
        if k == "FUNC_PROTO":
            return self._decl(t.type, f"{inner}({self._params(t, False, depth)})", depth + 1)
        if k == "FUNC":
            proto = self.types[t.type]
            return self._decl(proto.type, f"{t.name}({self._params(proto, True, depth)})",
                              depth + 1)
        if k in QUALIFIERS:
            q = k.lower()
            if self.types[self._skip_qualifiers(t.type, depth)].kind == "PTR":
                return self._decl(t.type, f"{q} {inner}".rstrip(), depth + 1)
            return f"{q} {self._decl(t.type, inner, depth + 1)}"
        if k == "TYPE_TAG":
            return self._decl(t.type, inner, depth + 1)
        if k == "VAR":
            return self._decl(t.type, t.name, depth + 1)
        if tid == 0:
            base = "void"
        elif k in ("STRUCT", "UNION", "FWD", "ENUM", "ENUM64"):
            tag = "enum" if k in ("ENUM", "ENUM64") else ("union" if t.is_union else "struct")
            base = f"{tag} {t.name or '(anon)'}"
        elif k == "DECL_TAG":
            base = f'__attribute__((btf_decl_tag("{t.name}")))'
        else:  # INT, FLOAT, TYPEDEF, DATASEC
            base = t.name or f"({k.lower()})"
        if not inner:
            return base
        return base + inner if inner.startswith("[") else f"{base} {inner}"

    def _skip_qualifiers(self, tid: int, depth: int) -> int:
        for _ in range(MAX_DEPTH):
            t = self.types[tid]
            if t.kind not in QUALIFIERS and t.kind != "TYPE_TAG":
                return tid
            tid = t.type
        raise BtfError(f"BTF type #{tid}: qualifier chain loops")

    def _params(self, proto: BtfType, names: bool, depth: int) -> str:
        out = []
        for i, (pname, ptype) in enumerate(proto.params):
            if ptype == 0 and i == len(proto.params) - 1:
                out.append("...")
            else:
                out.append(self._decl(ptype, pname if names else "", depth + 1))
        return ", ".join(out) or "void"

    # -- decoding bytes --------------------------------------------------------------------------
    def decode(self, type_id: int | str, data: bytes, offset: int = 0):
        """Decode the bytes at `data[offset:]` as a value of the given type (id or name).

        INT and ENUM give ints (signed per the encoding / kind_flag; _Bool gives bool), FLOAT
        floats, PTR ints. Arrays give lists, except arrays of 1-byte non-bool integers (char,
        uint8_t...) which give `bytes`. STRUCT/UNION give dicts keyed by member name, with
        bitfields extracted; anonymous struct/union members are flattened into the parent
        dict (their fields appear at the parent's level, as C lets you name them); unnamed
        non-aggregate members (padding) are skipped. A VAR decodes as its type, a DATASEC as
        a dict of its variables (offsets must be fixed up first in an unlinked object).
        """
        tid = self._id(type_id)
        size = self.sizeof(tid)
        if offset < 0 or offset + size > len(data):
            raise BtfError(f"cannot decode {self.type_name(tid)} (BTF type #{tid}, {size} "
                           f"bytes) at offset {offset}: the data has {len(data)} bytes")
        self._work = MAX_WORK
        return self._decode(tid, memoryview(bytes(data)), offset, 0)

    def _bytes(self, tid: int, data, off: int, n: int) -> bytes:
        if off < 0 or off + n > len(data):
            raise BtfError(f"cannot decode BTF type #{tid} ({_label(self.types[tid])}): "
                           f"{n} bytes at offset {off} run past the {len(data)} bytes of data")
        return bytes(data[off:off + n])

    def _decode(self, tid: int, data, off: int, depth: int):
        self._spend(tid)
        if depth > MAX_DEPTH:
            raise BtfError(f"BTF type #{tid}: type references nest too deeply (a loop?)")
        tid = self.resolve(tid)
        t = self.types[tid]
        k = t.kind
        if k == "INT":
            raw = self._bytes(tid, data, off, t.size)
            if t.bit_offset or (t.bits and t.bits < 8 * t.size):
                return self._bits(t, int.from_bytes(raw, "little"), t.bit_offset,
                                  t.bits or 8 * t.size)
            value = int.from_bytes(raw, "little", signed=bool(t.encoding & INT_SIGNED))
            return bool(value) if t.encoding & INT_BOOL else value
        if k in ("ENUM", "ENUM64"):
            return int.from_bytes(self._bytes(tid, data, off, t.size), "little",
                                  signed=t.kind_flag)
        if k == "PTR":
            return int.from_bytes(self._bytes(tid, data, off, POINTER_SIZE), "little")
        if k == "FLOAT":
            fmt = {2: "<e", 4: "<f", 8: "<d"}.get(t.size)
            if fmt is None:
                raise BtfError(f"cannot decode BTF type #{tid} ({_label(t)}): "
                               f"{t.size}-byte floats are not supported")
            return struct.unpack(fmt, self._bytes(tid, data, off, t.size))[0]
        if k == "ARRAY":
            elem = self.resolve(t.elem_type)
            et = self.types[elem]
            esize = self._sizeof(elem, depth + 1)
            if et.kind == "INT" and esize == 1 and not et.encoding & INT_BOOL and et.bits in (0, 8):
                return self._bytes(tid, data, off, t.nelems)
            self._bytes(tid, data, off, esize * t.nelems)  # bounds check once
            if t.nelems > self._work:
                raise BtfError(f"cannot decode BTF type #{tid} ({_label(t)}): {t.nelems} "
                               f"elements are too many")
            return [self._decode(elem, data, off + i * esize, depth + 1) for i in range(t.nelems)]
        if k in ("STRUCT", "UNION"):
            return self._decode_struct(t, data, off, depth)
        if k == "VAR":
            return self._decode(t.type, data, off, depth + 1)
        if k == "DATASEC":
            return {self.types[vt].name: self._decode(vt, data, off + voff, depth + 1)
                    for vt, voff, _s in t.vars}
        raise BtfError(f"cannot decode BTF type #{tid} ({'void' if tid == 0 else _label(t)})")

    def _decode_struct(self, t: BtfType, data, off: int, depth: int) -> dict:
        out: dict = {}
        for m in t.members:
            mt_id = self.resolve(m.type_id)
            mt = self.types[mt_id]
            bit_off, nbits = self._member_bits(m, mt_id, depth)
            if nbits:
                first = bit_off // 8
                raw = self._bytes(t.id, data, off + first, (bit_off % 8 + nbits + 7) // 8)
                value = self._bits(mt, int.from_bytes(raw, "little"), bit_off % 8, nbits)
            else:
                value = self._decode(mt_id, data, off + bit_off // 8, depth + 1)
            if m.name:
                out[m.name] = value
            elif isinstance(value, dict):
                out.update(value)
        return out

    def encode(self, type_id: int | str, value: Any) -> bytes:
        """The bytes of `value` as a value of the given type: the inverse of `decode`.

        Ints (and bools) for INT/ENUM/PTR, floats for FLOAT; an ARRAY takes a list, or bytes
        (zero-padded to the array's size); a STRUCT/UNION a dict by member name, members left
        out are zero (anonymous members' fields are named at the parent's level, as decode
        gives them). Raises BtfError naming the member or the value that does not fit.

        >>> btf.encode("process_info_t", {"process_id": 7, "operation": 1})  # doctest: +SKIP
        """
        tid = self._id(type_id)
        out = bytearray(self.sizeof(tid))
        self._work = MAX_WORK
        self._encode(tid, value, out, 0, 0, self.type_name(tid))
        return bytes(out)

    def _encode(self, tid: int, value: Any, out: bytearray, off: int, depth: int,
                where: str) -> None:
        self._spend(tid)
        if depth > MAX_DEPTH:
            raise BtfError(f"BTF type #{tid}: type references nest too deeply (a loop?)")
        tid = self.resolve(tid)
        t = self.types[tid]
        k = t.kind
        if k in ("INT", "ENUM", "ENUM64", "PTR"):
            size = POINTER_SIZE if k == "PTR" else t.size
            if isinstance(value, bool) or isinstance(value, int):
                v = int(value)
            else:
                raise BtfError(f"{where}: {value!r} is not an integer")
            signed = (k == "INT" and bool(t.encoding & INT_SIGNED)) or \
                (k != "INT" and k != "PTR" and t.kind_flag)
            lo, hi = (-(1 << (8 * size - 1)), 1 << 8 * size) if signed or v < 0 else \
                (0, 1 << 8 * size)
            if not lo <= v < hi:
                raise BtfError(f"{where}: {v} does not fit {size} byte(s)")
            out[off:off + size] = (v & ((1 << 8 * size) - 1)).to_bytes(size, "little")
            return
        if k == "FLOAT":
            fmt = {2: "<e", 4: "<f", 8: "<d"}.get(t.size)
            if fmt is None:
                raise BtfError(f"{where}: {t.size}-byte floats are not supported")
            out[off:off + t.size] = struct.pack(fmt, float(value))
            return
        if k == "ARRAY":
            elem = self.resolve(t.elem_type)
            esize = self._sizeof(elem, depth + 1)
            if isinstance(value, (bytes, bytearray, memoryview)):
                raw = bytes(value)
                if len(raw) > esize * t.nelems:
                    raise BtfError(f"{where}: {len(raw)} bytes do not fit "
                                   f"{esize * t.nelems}")
                out[off:off + len(raw)] = raw
                return
            items = list(value)
            if len(items) > t.nelems:
                raise BtfError(f"{where}: {len(items)} elements, the array has {t.nelems}")
            for i, item in enumerate(items):
                self._encode(elem, item, out, off + i * esize, depth + 1, f"{where}[{i}]")
            return
        if k in ("STRUCT", "UNION"):
            if not isinstance(value, dict):
                raise BtfError(f"{where}: a {k.lower()} takes a dict, not "
                               f"{type(value).__name__}")
            left = dict(value)
            self._encode_struct(t, left, out, off, depth, where)
            if left:
                raise BtfError(f"{where}: no member {sorted(left)[0]!r}")
            return
        if k == "VAR":
            self._encode(t.type, value, out, off, depth + 1, where)
            return
        raise BtfError(f"{where}: cannot encode BTF type #{tid} ({_label(t)})")

    def _encode_struct(self, t: BtfType, left: dict, out: bytearray, off: int, depth: int,
                       where: str) -> None:
        for m in t.members:
            mt_id = self.resolve(m.type_id)
            mt = self.types[mt_id]
            if not m.name:
                if mt.kind in ("STRUCT", "UNION"):   # anonymous: its fields at this level
                    self._encode_struct(mt, left, out, off + m.bit_offset // 8, depth + 1,
                                        where)
                continue
            if m.name not in left:
                continue
            value = left.pop(m.name)
            bit_off, nbits = self._member_bits(m, mt_id, depth)
            if nbits:
                first, shift = off + bit_off // 8, bit_off % 8
                span = (shift + nbits + 7) // 8
                word = int.from_bytes(out[first:first + span], "little")
                mask = ((1 << nbits) - 1) << shift
                word = (word & ~mask) | ((int(value) << shift) & mask)
                out[first:first + span] = word.to_bytes(span, "little")
            else:
                self._encode(mt_id, value, out, off + bit_off // 8, depth + 1,
                             f"{where}.{m.name}")

    def _member_bits(self, m: Member, mt_id: int, depth: int) -> tuple[int, int]:
        """(bit offset, bit count) of a struct member: a bit count of 0 for a whole,
        byte-aligned member; old-style bitfields (an INT type with its own bit offset/size, no
        kind_flag) counted as bitfields."""
        mt = self.types[mt_id]
        bit_off, nbits = m.bit_offset, m.bitfield_size
        if not nbits and mt.kind == "INT" and (mt.bit_offset or
                                               (mt.bits and mt.bits < 8 * mt.size)):
            bit_off, nbits = bit_off + mt.bit_offset, mt.bits  # old-style (no kind_flag)
        if nbits or bit_off % 8:
            return bit_off, nbits or 8 * self._sizeof(mt_id, depth + 1)
        return bit_off, 0

    @staticmethod
    def _bits(t: BtfType, word: int, shift: int, nbits: int):
        value = (word >> shift) & ((1 << nbits) - 1)
        if t.signed and nbits and value >> (nbits - 1):
            value -= 1 << nbits
        if t.kind == "INT" and t.encoding & INT_BOOL:
            return bool(value)
        return value

    def layout(self, type_id: int | str) -> list[Field]:
        """(field path, byte offset, byte size, C type name) of each leaf field of a struct.

        Nested structs/unions are expanded with dotted paths ("hdr.len"); anonymous ones
        add no path component. Arrays are one leaf. A bitfield's offset is the byte holding
        its first bit, its size the bytes it spans, and its type name ends in ':<bits>'.
        `pandas.DataFrame(btf.layout(...))` gets the column names from the Field tuple.
        """
        tid = self.resolve(type_id)
        self._work = MAX_WORK
        return self._layout(tid, "", 0, 0)

    def _layout(self, tid: int, prefix: str, base: int, depth: int) -> list[Field]:
        self._spend(tid)
        if depth > MAX_DEPTH:
            raise BtfError(f"BTF type #{tid}: type references nest too deeply (a loop?)")
        out = []
        for m in self.members(tid):
            mt = self.resolve(m.type_id)
            path = f"{prefix}{m.name}" if m.name else prefix.rstrip(".")
            if self.types[mt].kind in ("STRUCT", "UNION") and not m.bitfield_size:
                out += self._layout(mt, f"{path}." if path else "", base + m.bit_offset // 8,
                                    depth + 1)
            elif m.bitfield_size:
                span = (m.bit_offset % 8 + m.bitfield_size + 7) // 8
                out.append(Field(path, base + m.bit_offset // 8, span,
                                 f"{self._decl(m.type_id, '', 0)}:{m.bitfield_size}"))
            else:
                out.append(Field(path, base + m.bit_offset // 8, self._sizeof(m.type_id, 0),
                                 self._decl(m.type_id, "", 0)))
        return out


# ================================================================================================
class BtfExt:
    """Parsed `.BTF.ext`: func info, line info and CO-RE relocations, by ELF section name."""

    def __init__(self) -> None:
        self.version = 1
        self.flags = 0
        self.hdr_len = 0
        self.func_info: dict[str, list[FuncInfo]] = {}
        self.line_info: dict[str, list[LineInfo]] = {}
        self.core_relos: list[CoreRelo] = []
        self._line_index: dict[str, list[int]] = {}
        self._func_index: dict[str, list[int]] = {}

    def __repr__(self) -> str:
        return (f"<BtfExt func_info {sum(map(len, self.func_info.values()))}, line_info "
                f"{sum(map(len, self.line_info.values()))}, CO-RE relocations "
                f"{len(self.core_relos)}>")

    @classmethod
    def parse(cls, data: bytes, btf: Btf) -> "BtfExt":
        data = bytes(data)
        if len(data) < 4:
            raise BtfError(f"BTF.ext: truncated header ({len(data)} bytes, need at least 24)")
        magic = int.from_bytes(data[:2], "little")
        if magic != BTF_MAGIC:
            raise BtfError(f"BTF.ext: bad magic {magic:#06x} (expected {BTF_MAGIC:#06x})")
        ext = cls()
        ext.version, ext.flags = data[2], data[3]
        if ext.version != 1:
            raise BtfError(f"BTF.ext: version {ext.version} is not supported (expected 1)")
        if len(data) < 8:
            raise BtfError(f"BTF.ext: truncated header ({len(data)} bytes, need at least 24)")
        (hdr_len,) = _U32.unpack_from(data, 4)
        if hdr_len < 24 or hdr_len > len(data):
            raise BtfError(f"BTF.ext: header length {hdr_len} is impossible (at least 24, at "
                           f"most the {len(data)} bytes of the section)")
        ext.hdr_len = hdr_len
        fi_off, fi_len, li_off, li_len = struct.unpack_from("<IIII", data, 8)
        core_off, core_len = _PAIR.unpack_from(data, 24) if hdr_len >= 32 else (0, 0)

        for sec, rec in ext._records(data, btf, hdr_len, fi_off, fi_len, 8, "func info"):
            insn, type_id = rec[0], rec[1]
            if type_id >= len(btf.types) or btf.types[type_id].kind != "FUNC":
                raise BtfError(f"BTF.ext: func info at instruction {insn} of section {sec!r} "
                               f"refers to BTF type #{type_id}, which is not a FUNC")
            ext.func_info.setdefault(sec, []).append(
                FuncInfo(insn, type_id, btf.types[type_id].name))
        texts: dict[int, str] = {}
        for sec, rec in ext._records(data, btf, hdr_len, li_off, li_len, 16, "line info"):
            insn, file_off, line_off, line_col = rec
            where = f"BTF.ext: line info at instruction {insn} of section {sec!r}"
            for o in (file_off, line_off):
                if o not in texts:
                    texts[o] = btf.string(o, where)
            ext.line_info.setdefault(sec, []).append(
                LineInfo(insn, texts[file_off], line_col >> 10, line_col & 0x3FF, texts[line_off]))
        for sec, rec in ext._records(data, btf, hdr_len, core_off, core_len, 16,
                                     "CO-RE relocation"):
            insn, type_id, access_off, kind = rec
            where = f"BTF.ext: CO-RE relocation at instruction {insn} of section {sec!r}"
            if type_id >= len(btf.types):
                raise BtfError(f"{where}: refers to BTF type #{type_id}, but the last type is "
                               f"#{len(btf.types) - 1}")
            ext.core_relos.append(CoreRelo(sec, insn, type_id, btf.string(access_off, where),
                                           kind))
        for sec, lines in ext.line_info.items():
            lines.sort(key=lambda li: li.insn)  # stable: equal insns keep file order
            ext._line_index[sec] = [li.insn for li in lines]
        for sec, funcs in ext.func_info.items():
            funcs.sort(key=lambda fi: fi.insn)
            ext._func_index[sec] = [fi.insn for fi in funcs]
        return ext

    @staticmethod
    def _records(data: bytes, btf: Btf, hdr_len: int, off: int, length: int, min_size: int,
                 what: str) -> Iterable[tuple[str, tuple]]:
        """(section name, record) for each record of one info block; insn_off made an index."""
        if length == 0:
            return
        start = hdr_len + off
        end = start + length
        if end > len(data):
            raise BtfError(f"BTF.ext: {what} [{off}, {off + length}) runs past the end of the "
                           f"data ({len(data) - hdr_len} bytes after the header)")
        if length < 4:
            raise BtfError(f"BTF.ext: {what} block of {length} bytes has no record size")
        (rec_size,) = _U32.unpack_from(data, start)
        if rec_size < min_size or rec_size % 4:
            raise BtfError(f"BTF.ext: {what} record size {rec_size} is impossible (at least "
                           f"{min_size}, a multiple of 4)")
        pos = start + 4
        n_fields = min_size // 4
        fmt = struct.Struct(f"<{n_fields}I")
        while pos < end:
            if pos + 8 > end:
                raise BtfError(f"BTF.ext: {what}: truncated section header at offset "
                               f"{pos - hdr_len}")
            sec_off, count = _PAIR.unpack_from(data, pos)
            sec = btf.string(sec_off, f"BTF.ext: {what} section name")
            pos += 8
            if pos + count * rec_size > end:
                raise BtfError(f"BTF.ext: {what} for section {sec!r} claims {count} records of "
                               f"{rec_size} bytes, but only {end - pos} bytes remain")
            for k in range(count):
                rec = fmt.unpack_from(data, pos)
                if rec[0] % 8:
                    raise BtfError(f"BTF.ext: {what} record {k} of section {sec!r}: "
                                   f"instruction offset {rec[0]} is not a multiple of 8")
                yield sec, (rec[0] // 8,) + rec[1:]
                pos += rec_size

    def line_for(self, section: str, insn: int) -> LineInfo | None:
        """The line info in force at instruction index `insn` of `section` (None if none)."""
        idx = self._line_index.get(section)
        if not idx:
            return None
        i = bisect.bisect_right(idx, insn) - 1
        return self.line_info[section][i] if i >= 0 else None

    def func_for(self, section: str, insn: int) -> FuncInfo | None:
        """The function whose code contains instruction index `insn` of `section`."""
        idx = self._func_index.get(section)
        if not idx:
            return None
        i = bisect.bisect_right(idx, insn) - 1
        return self.func_info[section][i] if i >= 0 else None

    def relos_for(self, section: str) -> list[CoreRelo]:
        return [r for r in self.core_relos if r.section == section]
