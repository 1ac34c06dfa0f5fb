"""BTF: the type information clang emits in `.BTF`, and `.BTF.ext` func and line info.

Format facts from the Linux kernel's BTF documentation (Documentation/bpf/btf.rst).

>>> btf = Btf.parse(elf_section_bytes)                       # doctest: +SKIP
>>> btf.decode("struct process_info", record)                # doctest: +SKIP
{'process_id': 4242, ...}
"""
from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field
from difflib import get_close_matches

BTF_MAGIC = 0xEB9F
KINDS = {0: "UNKN", 1: "INT", 2: "PTR", 3: "ARRAY", 4: "STRUCT", 5: "UNION", 6: "ENUM",
         7: "FWD", 8: "TYPEDEF", 9: "VOLATILE", 10: "CONST", 11: "RESTRICT", 12: "FUNC",
         13: "FUNC_PROTO", 14: "VAR", 15: "DATASEC", 16: "FLOAT", 17: "DECL_TAG",
         18: "TYPE_TAG", 19: "ENUM64"}
MODIFIERS = ("TYPEDEF", "VOLATILE", "CONST", "RESTRICT", "TYPE_TAG")
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
POINTER_SIZE = 8


class BtfError(ValueError):
    """Malformed or unsupported BTF; the message names the type id or record at fault."""


@dataclass
class BtfType:
    """One BTF type record. `type` is the referenced type id (PTR, TYPEDEF, VAR, FUNC...)."""

    id: int
    kind: str
    name: str
    size: int = 0
    type: int = 0
    kind_flag: bool = False
    vlen: int = 0
    # kind-specific data
    encoding: int = 0        # INT
    bits: int = 0            # INT
    bit_offset: int = 0      # INT
    elem_type: int = 0       # ARRAY
    index_type: int = 0      # ARRAY
    nelems: int = 0          # ARRAY
    members: list[tuple[str, int, int, int]] = field(default_factory=list)  # name, type, bit off, bitfield size
    values: list[tuple[str, int]] = field(default_factory=list)  # ENUM/ENUM64
    params: list[tuple[str, int]] = field(default_factory=list)  # FUNC_PROTO
    linkage: int = 0         # VAR, FUNC (vlen)
    vars: list[tuple[int, int, int]] = field(default_factory=list)  # DATASEC: type, offset, size
    component_idx: int = -1  # DECL_TAG


@dataclass(frozen=True)
class FuncInfo:
    insn: int
    type_id: int
    name: str


@dataclass(frozen=True)
class LineInfo:
    insn: int
    file: str
    line: int
    column: int
    text: str


@dataclass(frozen=True)
class CoreRelo:
    section: str
    insn: int
    type_id: int
    access: str
    kind: int


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.what = what

    def unpack(self, fmt: str, off: int, context: str) -> tuple:
        size = struct.calcsize(fmt)
        if off < 0 or off + size > len(self.data):
            raise BtfError(f"{self.what}: {context} at offset {off} runs past the end "
                           f"({len(self.data)} bytes)")
        return struct.unpack_from(fmt, self.data, off)


class Btf:
    """Parsed `.BTF`: types by id (0 is void) and the string table."""

    def __init__(self, types: list[BtfType], strings: bytes) -> None:
        self.types = types
        self.strings = strings
        self._by_name: dict[str, list[int]] = {}
        for t in types[1:]:
            if t.name:
                self._by_name.setdefault(t.name, []).append(t.id)

    # -- parsing ---------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes) -> "Btf":
        r = _Reader(data, "BTF")
        magic, version, _flags, hdr_len = r.unpack("<HBBI", 0, "header")
        if magic != BTF_MAGIC:
            raise BtfError(f"BTF: bad magic {magic:#06x} (expected {BTF_MAGIC:#06x}; "
                           f"big-endian BTF is not supported)")
        if version != 1:
            raise BtfError(f"BTF: version {version} is not supported (expected 1)")
        type_off, type_len, str_off, str_len = r.unpack("<IIII", 8, "header")
        base = hdr_len
        for name, off, ln in (("type section", type_off, type_len), ("string section", str_off, str_len)):
            if base + off + ln > len(data):
                raise BtfError(f"BTF: {name} [{off}, {off + ln}) runs past the end of the data "
                               f"({len(data) - base} bytes after the header)")
        strings = data[base + str_off:base + str_off + str_len]
        btf = cls([BtfType(0, "VOID", "")], strings)
        tdata = _Reader(data[base + type_off:base + type_off + type_len], "BTF type section")
        off = 0
        while off < type_len:
            tid = len(btf.types)
            btf.types.append(btf._parse_type(tdata, off, tid))
            off = btf._next_off
        btf._by_name = {}
        for t in btf.types[1:]:
            if t.name:
                btf._by_name.setdefault(t.name, []).append(t.id)
        btf._check_refs()
        return btf

    def string(self, off: int, context: str = "") -> str:
        if off >= len(self.strings) and off:
            raise BtfError(f"BTF{context}: string offset {off} outside string section "
                           f"(size {len(self.strings)})")
        end = self.strings.find(b"\0", off)
        if end < 0:
            raise BtfError(f"BTF{context}: string at offset {off} is not NUL-terminated")
        return self.strings[off:end].decode("utf-8", errors="replace")

    def _parse_type(self, r: _Reader, off: int, tid: int) -> BtfType:
        ctx = f" type #{tid}"
        name_off, info, size_or_type = r.unpack("<III", off, f"type #{tid} header")
        kind_no = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        if kind_no not in KINDS or kind_no == 0:
            raise BtfError(f"BTF type #{tid}: kind {kind_no} is unknown")
        kind = KINDS[kind_no]
        t = BtfType(tid, kind, self.string(name_off, ctx), kind_flag=bool(info >> 31), vlen=vlen)
        off += 12
        if kind in ("INT", "STRUCT", "UNION", "ENUM", "DATASEC", "FLOAT", "ENUM64"):
            t.size = size_or_type
        else:
            t.type = size_or_type
        if kind == "INT":
            (v,) = r.unpack("<I", off, f"type #{tid} INT data")
            t.encoding, t.bit_offset, t.bits = (v >> 24) & 0xF, (v >> 16) & 0xFF, v & 0xFF
            off += 4
        elif kind == "ARRAY":
            t.elem_type, t.index_type, t.nelems = r.unpack("<III", off, f"type #{tid} ARRAY data")
            off += 12
        elif kind in ("STRUCT", "UNION"):
            for k in range(vlen):
                m_name, m_type, m_off = r.unpack("<III", off, f"type #{tid} member {k}")
                if t.kind_flag:
                    t.members.append((self.string(m_name, ctx), m_type, m_off & 0xFFFFFF, m_off >> 24))
                else:
                    t.members.append((self.string(m_name, ctx), m_type, m_off, 0))
                off += 12
        elif kind == "ENUM":
            for k in range(vlen):
                v_name, val = r.unpack("<Ii" if t.kind_flag else "<II", off, f"type #{tid} enum value {k}")
                t.values.append((self.string(v_name, ctx), val))
                off += 8
        elif kind == "ENUM64":
            for k in range(vlen):
                v_name, lo, hi = r.unpack("<III", off, f"type #{tid} enum64 value {k}")
                val = (hi << 32) | lo
                if t.kind_flag and val >> 63:
                    val -= 1 << 64
                t.values.append((self.string(v_name, ctx), val))
                off += 12
        elif kind == "FUNC_PROTO":
            for k in range(vlen):
                p_name, p_type = r.unpack("<II", off, f"type #{tid} parameter {k}")
                t.params.append((self.string(p_name, ctx), p_type))
                off += 8
        elif kind == "FUNC":
            t.linkage = vlen
        elif kind == "VAR":
            (t.linkage,) = r.unpack("<I", off, f"type #{tid} VAR data")
            off += 4
        elif kind == "DATASEC":
            for k in range(vlen):
                t.vars.append(r.unpack("<III", off, f"type #{tid} DATASEC entry {k}"))
                off += 12
        elif kind == "DECL_TAG":
            (t.component_idx,) = r.unpack("<i", off, f"type #{tid} DECL_TAG data")
            off += 4
        self._next_off = off
        return t

    def _check_refs(self) -> None:
        n = len(self.types)
        for t in self.types[1:]:
            refs = [t.type] if t.kind in MODIFIERS + ("PTR", "FUNC", "VAR", "DECL_TAG") else []
            refs += [t.elem_type, t.index_type] if t.kind == "ARRAY" else []
            refs += [m[1] for m in t.members] + [p[1] for p in t.params] + [v[0] for v in t.vars]
            for ref in refs:
                if ref >= n:
                    raise BtfError(f"BTF type #{t.id} ({t.kind} {t.name or '<anon>'}): refers to "
                                   f"type #{ref}, but there are only {n - 1} types")

    # -- queries ---------------------------------------------------------------------------------
    def type(self, type_id: int) -> BtfType:
        if not 0 <= type_id < len(self.types):
            raise BtfError(f"BTF type #{type_id} does not exist ({len(self.types) - 1} types)")
        return self.types[type_id]

    def find(self, name: str, kind: str | None = None) -> int:
        """The id of the type called `name` ("struct x", "x", "union y", "enum z" accepted)."""
        words = name.split(None, 1)
        if len(words) == 2 and words[0] in ("struct", "union", "enum"):
            kind, name = {"struct": "STRUCT", "union": "UNION", "enum": "ENUM"}[words[0]], words[1]
        for tid in self._by_name.get(name, []):
            t = self.types[tid]
            if kind is None or t.kind == kind or (kind == "ENUM" and t.kind == "ENUM64"):
                if t.kind not in ("FWD", "DECL_TAG"):
                    return tid
        close = get_close_matches(name, list(self._by_name), n=5)
        hint = f"; close names: {', '.join(close)}" if close else ""
        raise KeyError(f"no BTF type named {name!r}{' of kind ' + kind if kind else ''}{hint}")

    def resolve(self, type_id: int) -> int:
        """Follow typedefs and qualifiers to the underlying type."""
        seen = 0
        while self.type(type_id).kind in MODIFIERS:
            type_id = self.types[type_id].type
            seen += 1
            if seen > 64:
                raise BtfError(f"BTF type #{type_id}: typedef/qualifier chain loops")
        return type_id

    def sizeof(self, type_id: int | str) -> int:
        tid = self._id(type_id)
        t = self.type(self.resolve(tid))
        if t.kind in ("INT", "STRUCT", "UNION", "ENUM", "ENUM64", "FLOAT", "DATASEC"):
            return t.size
        if t.kind == "PTR":
            return POINTER_SIZE
        if t.kind == "ARRAY":
            return t.nelems * self.sizeof(t.elem_type)
        raise BtfError(f"BTF type #{tid} ({t.kind} {t.name or '<anon>'}) has no size")

    def alignof(self, type_id: int) -> int:
        t = self.type(self.resolve(type_id))
        if t.kind == "ARRAY":
            return self.alignof(t.elem_type)
        if t.kind in ("STRUCT", "UNION"):
            return max([self.alignof(m[1]) for m in t.members] or [1])
        return min(max(self.sizeof(t.id), 1), 8)

    def members(self, type_id: int) -> list[tuple[str, int, int, int]]:
        t = self.type(self.resolve(type_id))
        if t.kind not in ("STRUCT", "UNION"):
            raise BtfError(f"BTF type #{type_id} is {t.kind}, not a struct or union")
        return list(t.members)

    def datasec(self, name: str) -> list[tuple[str, int, int, int]]:
        """(variable name, variable's type id, offset, size) for each variable of a DATASEC."""
        for tid in self._by_name.get(name, []):
            t = self.types[tid]
            if t.kind == "DATASEC":
                out = []
                for var_id, off, size in t.vars:
                    v = self.type(var_id)
                    out.append((v.name, v.type if v.kind == "VAR" else var_id, off, size))
                return out
        raise KeyError(f"no BTF DATASEC named {name!r}")

    def type_name(self, type_id: int) -> str:
        t = self.type(type_id)
        if t.id == 0:
            return "void"
        if t.kind in ("STRUCT", "UNION", "ENUM", "ENUM64", "FWD"):
            tag = {"STRUCT": "struct", "UNION": "union", "FWD": "struct"}.get(t.kind, "enum")
            return f"{tag} {t.name or '<anon>'}"
        if t.kind == "PTR":
            target = self.type(t.type)
            if target.kind == "FUNC_PROTO":
                return self._proto(target, "(*)")
            return self.type_name(t.type) + " *"
        if t.kind == "ARRAY":
            return f"{self.type_name(t.elem_type)}[{t.nelems}]"
        if t.kind in ("CONST", "VOLATILE", "RESTRICT"):
            return f"{t.kind.lower()} {self.type_name(t.type)}"
        if t.kind == "FUNC_PROTO":
            return self._proto(t, "")
        if t.kind == "FUNC":
            return self._proto(self.type(t.type), t.name)
        return t.name or f"<anon {t.kind.lower()}>"

    def _proto(self, t: BtfType, inner: str) -> str:
        params = ", ".join(self.type_name(p[1]) if p[1] else "..." for p in t.params) or "void"
        return f"{self.type_name(t.type)} {inner}({params})"

    def _id(self, type_id: int | str) -> int:
        return self.find(type_id) if isinstance(type_id, str) else type_id

    # -- decoding bytes --------------------------------------------------------------------------
    def decode(self, type_id: int | str, data: bytes, offset: int = 0):
        """Decode `data[offset:]` as the given type into Python values.

        Structs become dicts (anonymous struct/union members are merged into the parent),
        arrays of 1-byte integers become bytes, other arrays lists, pointers ints.
        """
        tid = self._id(type_id)
        size = self.sizeof(tid)
        if offset + size > len(data):
            raise BtfError(f"cannot decode {self.type_name(tid)} ({size} bytes) from "
                           f"{len(data) - offset} bytes")
        return self._decode(self.resolve(tid), data, offset)

    def _decode(self, tid: int, data: bytes, off: int):
        t = self.types[tid]
        if t.kind == "INT":
            raw = int.from_bytes(data[off:off + t.size], "little", signed=bool(t.encoding & INT_SIGNED))
            return bool(raw) if t.encoding & INT_BOOL else raw
        if t.kind in ("ENUM", "ENUM64"):
            return int.from_bytes(data[off:off + t.size], "little", signed=t.kind_flag)
        if t.kind == "PTR":
            return int.from_bytes(data[off:off + 8], "little")
        if t.kind == "FLOAT":
            return struct.unpack_from({4: "<f", 8: "<d"}.get(t.size, "<d"), data, off)[0]
        if t.kind == "ARRAY":
            elem = self.resolve(t.elem_type)
            esize = self.sizeof(elem)
            et = self.types[elem]
            if et.kind == "INT" and esize == 1:
                return bytes(data[off:off + t.nelems])
            return [self._decode(elem, data, off + k * esize) for k in range(t.nelems)]
        if t.kind in ("STRUCT", "UNION"):
            out: dict = {}
            for name, mtype, bit_off, bitsize in t.members:
                mt = self.resolve(mtype)
                if bitsize or (bit_off % 8):
                    size = bitsize or self.sizeof(mt) * 8
                    word = int.from_bytes(data[off:off + t.size], "little")
                    value = (word >> bit_off) & ((1 << size) - 1)
                    if self.types[mt].kind == "INT" and self.types[mt].encoding & INT_SIGNED \
                            and value >> (size - 1):
                        value -= 1 << size
                    out[name] = value
                    continue
                value = self._decode(mt, data, off + bit_off // 8)
                if not name and isinstance(value, dict):
                    out.update(value)
                else:
                    out[name] = value
            return out
        raise BtfError(f"cannot decode BTF type #{tid} of kind {t.kind}")

    def layout(self, type_id: int | str, prefix: str = "", base: int = 0):
        """(field path, byte offset, size, type name) for each leaf field of a struct."""
        tid = self.resolve(self._id(type_id))
        out = []
        for name, mtype, bit_off, bitsize in self.members(tid):
            mt = self.resolve(mtype)
            path = f"{prefix}{name}" if name else prefix.rstrip(".")
            if self.types[mt].kind in ("STRUCT", "UNION") and not bitsize:
                out += self.layout(mt, f"{path}." if path else "", base + bit_off // 8)
            else:
                size = (bitsize + 7) // 8 if bitsize else self.sizeof(mt)
                out.append((path, base + bit_off // 8, size, self.type_name(mtype)))
        return out

    def __len__(self) -> int:
        return len(self.types) - 1


class BtfExt:
    """Parsed `.BTF.ext`: func info, line info and CO-RE relocations by section name."""

    def __init__(self) -> None:
        self.func_info: dict[str, list[FuncInfo]] = {}
        self.line_info: dict[str, list[LineInfo]] = {}
        self.core_relos: list[CoreRelo] = []
        self._line_index: dict[str, list[int]] = {}

    @classmethod
    def parse(cls, data: bytes, btf: Btf) -> "BtfExt":
        r = _Reader(data, "BTF.ext")
        magic, version, _flags, hdr_len = r.unpack("<HBBI", 0, "header")
        if magic != BTF_MAGIC:
            raise BtfError(f"BTF.ext: bad magic {magic:#06x}")
        if version != 1:
            raise BtfError(f"BTF.ext: version {version} is not supported")
        fi_off, fi_len, li_off, li_len = r.unpack("<IIII", 8, "header")
        core = r.unpack("<II", 24, "header") if hdr_len >= 32 else (0, 0)
        ext = cls()
        for sec, off, insn_off, rec in ext._records(r, btf, hdr_len + fi_off, fi_len, 8, "func info"):
            insn, type_id = rec[0], rec[1]
            name = btf.type(type_id).name if type_id < len(btf.types) else "?"
            ext.func_info.setdefault(sec, []).append(FuncInfo(insn, type_id, name))
        texts: dict[int, str] = {}
        for sec, off, insn_off, rec in ext._records(r, btf, hdr_len + li_off, li_len, 16, "line info"):
            insn, file_off, line_off, line_col = rec
            if line_off not in texts:
                texts[line_off] = btf.string(line_off, ".ext line info")
            ext.line_info.setdefault(sec, []).append(
                LineInfo(insn, btf.string(file_off, ".ext line info"), line_col >> 10,
                         line_col & 0x3FF, texts[line_off]))
        if core[1]:
            for sec, off, insn_off, rec in ext._records(r, btf, hdr_len + core[0], core[1], 16, "CO-RE relocation"):
                ext.core_relos.append(CoreRelo(sec, rec[0], rec[1], btf.string(rec[2], ".ext"), rec[3]))
        for sec, lines in ext.line_info.items():
            lines.sort(key=lambda li: li.insn)
            ext._line_index[sec] = [li.insn for li in lines]
        return ext

    @staticmethod
    def _records(r: _Reader, btf: Btf, start: int, length: int, min_size: int, what: str):
        if length == 0:
            return
        end = start + length
        if end > len(r.data):
            raise BtfError(f"BTF.ext: {what} [{start}, {end}) runs past the end ({len(r.data)} bytes)")
        (rec_size,) = r.unpack("<I", start, f"{what} record size")
        if rec_size < min_size:
            raise BtfError(f"BTF.ext: {what} record size {rec_size} < {min_size}")
        off = start + 4
        n_fields = min_size // 4
        while off < end:
            sec_off, count = r.unpack("<II", off, f"{what} section header")
            sec = btf.string(sec_off, f".ext {what}")
            off += 8
            if off + count * rec_size > end:
                raise BtfError(f"BTF.ext: {what} for section {sec!r} claims {count} records, "
                               f"more than fit")
            for k in range(count):
                rec = r.unpack(f"<{n_fields}I", off, f"{what} record {k} of {sec}")
                yield sec, off, rec[0], (rec[0] // 8,) + rec[1:]
                off += rec_size

    def line_for(self, section: str, insn: int) -> LineInfo | None:
        """The line info in force at instruction `insn` of `section`."""
        idx = self._line_index.get(section)
        if not idx:
            return None
        i = bisect.bisect_right(idx, insn) - 1
        return self.line_info[section][i] if i >= 0 else None
