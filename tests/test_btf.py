"""BTF and BTF.ext parser: real clang objects checked against hand-computed C layouts,
line numbers from our own source text, ELF symbols/relocations, and `bpftool btf dump`
(when installed) as an independent oracle; hand-built malformed BTF; fuzzing."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntoslab.elf.btf import Btf, BtfError, BtfExt

PRELUDE = r"""
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef signed char int8_t;
typedef long long int64_t;
#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __tag(x) __attribute__((btf_decl_tag(x)))
#define __user __attribute__((btf_type_tag("user")))
"""

# every BTF kind appears in this object; `// @name` marks lines the line-info tests look for
SOURCE = PRELUDE + r"""
struct process_info {
    uint32_t process_id;
    uint32_t parent_process_id;
    uint32_t creating_process_id;
    uint32_t creating_thread_id;
    uint64_t creation_time;
    uint64_t exit_time;
    uint32_t process_exit_code;
    uint8_t operation;
    uint32_t token_sid_size;
    uint8_t token_sid[68];
};
struct flags { unsigned int a:3; int b:5; unsigned int c:24; unsigned char d; };
enum color { RED = 1, GREEN = 2, BLUE = -5 };
enum uns { U_BIG = 0x80000000u, U_ONE = 1 };
enum big { BIG = 0x100000000ULL, SMALL = 1 };
enum neg64 { N1 = -1LL, N2 = 0x7fffffffffffLL };
union u { uint32_t x; uint8_t b[4]; };
typedef uint32_t pid_type;
typedef const pid_type cpid_type;
struct opaque;
union fwdu;
struct holder {
    struct opaque *op;
    union fwdu *fu;
    int (*cb)(void *);
    char buf[1024];
    int m[2][3];
    cpid_type owner;
} __tag("holder_tag");
struct hasanon { int a; union { int x; uint8_t y; }; struct { short s1, s2; } named; };
struct task { int pid; int tgid; } __attribute__((preserve_access_index));

struct {
    __uint(type, 2);
    __uint(max_entries, 16);
    __type(key, uint32_t);
    __type(value, struct process_info);
} procs SEC(".maps");
struct {
    __uint(type, 1);
    __uint(max_entries, 4);
    __type(key, uint32_t);
    __type(value, uint64_t);
} stats SEC(".maps");

int counter = 7;
double gd = 1.5;
int tagged_var __tag("var_tag") = 1;
float gf = 2.5f;
uint64_t zero;
const volatile int cfg = 3;
volatile struct flags gflags;
volatile union u gu;
volatile enum color gc;
enum uns gun;
enum big gbig;
enum neg64 gneg;
struct holder h;
struct hasanon ga;
int __user *up;
int *restrict rp;
_Bool gbool;

static void *(*lookup)(void *, const void *) = (void *)1;

static __attribute__((noinline)) int triple(int x)
{
    return x * 3;                                   // @triple
}

static __attribute__((noinline)) int add_one(int x)
{
    return triple(x) + 1;                           // @add_one
}

SEC("bind")
int prog(void *ctx)
{
    uint32_t k = 0;
    struct process_info *p = lookup(&procs, &k);    // @lookup
    if (!p)
        return 0;
    counter += p->process_id;                       // @count
    return gflags.b + gu.x + gc + gun + gbig + gneg + gbool + ga.x + h.buf[3] + *up + *rp
        + add_one(cfg);
}

SEC("bind")
int core_prog(struct task *t)
{
    return t->tgid;                                 // @core
}
"""


def marker_line(tag: str) -> int:
    for no, text in enumerate(SOURCE.splitlines(), 1):
        if text.rstrip().endswith(f"// @{tag}"):
            return no
    raise AssertionError(tag)


@pytest.fixture(scope="module")
def obj(compile_bpf):
    path = compile_bpf(SOURCE, "btfall", include=False)
    f = open(path, "rb")
    elf = ELFFile(f)
    yield path, elf
    f.close()


@pytest.fixture()
def btf(obj):
    return Btf.parse(obj[1].get_section_by_name(".BTF").data())


@pytest.fixture()
def ext(obj, btf):
    return BtfExt.parse(obj[1].get_section_by_name(".BTF.ext").data(), btf)


def symbols(elf) -> dict[str, tuple[str, int, int, str]]:
    """name -> (section name, value, size, type) from .symtab."""
    secs = list(elf.iter_sections())
    out = {}
    for s in elf.get_section_by_name(".symtab").iter_symbols():
        if s.name and isinstance(s["st_shndx"], int):
            out[s.name] = (secs[s["st_shndx"]].name, s["st_value"], s["st_size"],
                           s["st_info"]["type"])
    return out


# -- types against hand-computed C layouts --------------------------------------------------------
def test_process_info_layout(btf):
    sid = btf.find("struct process_info")
    assert btf.type(sid).kind == "STRUCT"
    assert btf.sizeof(sid) == 112 and btf.alignof(sid) == 8
    ms = btf.members(sid)
    assert [m.name for m in ms] == [
        "process_id", "parent_process_id", "creating_process_id", "creating_thread_id",
        "creation_time", "exit_time", "process_exit_code", "operation", "token_sid_size",
        "token_sid"]
    assert [m.bit_offset // 8 for m in ms] == [0, 4, 8, 12, 16, 24, 32, 36, 40, 44]
    assert all(m.bit_offset % 8 == 0 and m.bitfield_size == 0 for m in ms)
    assert [btf.sizeof(m.type_id) for m in ms] == [4, 4, 4, 4, 8, 8, 4, 1, 4, 68]
    assert btf.type_name(ms[0].type_id) == "uint32_t"
    assert btf.type_name(ms[4].type_id) == "uint64_t"
    assert btf.type_name(ms[9].type_id) == "uint8_t[68]"
    assert btf.type_name(sid) == "struct process_info"
    layout = btf.layout("struct process_info")
    assert [(f.path, f.offset, f.size) for f in layout] == [
        ("process_id", 0, 4), ("parent_process_id", 4, 4), ("creating_process_id", 8, 4),
        ("creating_thread_id", 12, 4), ("creation_time", 16, 8), ("exit_time", 24, 8),
        ("process_exit_code", 32, 4), ("operation", 36, 1), ("token_sid_size", 40, 4),
        ("token_sid", 44, 68)]
    assert layout[7].type == "uint8_t" and layout[9].type == "uint8_t[68]"


def test_decode_process_info(btf):
    rec = struct.pack("<IIIIQQIB3xI68s", 4242, 4, 8, 12, 1 << 40, (1 << 64) - 1,
                      0xFFFFFFFF, 2, 16, b"S" * 16 + bytes(52))
    assert len(rec) == 112
    value = btf.decode("struct process_info", b"pad" + rec, 3)
    assert value == {"process_id": 4242, "parent_process_id": 4, "creating_process_id": 8,
                     "creating_thread_id": 12, "creation_time": 1 << 40,
                     "exit_time": (1 << 64) - 1, "process_exit_code": 0xFFFFFFFF,
                     "operation": 2, "token_sid_size": 16, "token_sid": b"S" * 16 + bytes(52)}
    with pytest.raises(BtfError, match=r"struct process_info.*112 bytes.*offset 3"):
        btf.decode("struct process_info", b"pad" + rec[:100], 3)


def test_bitfields(btf):
    sid = btf.find("flags", "STRUCT")
    t = btf.type(sid)
    assert t.kind_flag and btf.sizeof(sid) == 8
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in btf.members(sid)] == [
        ("a", 0, 3), ("b", 3, 5), ("c", 8, 24), ("d", 32, 0)]
    # a=5, b=-3 (0b11101), c=0xABCDEF, d=0x42:
    # word0 = 5 | 29 << 3 | 0xABCDEF << 8 = 0xABCDEFED
    raw = bytes([0xED, 0xEF, 0xCD, 0xAB, 0x42, 0, 0, 0])
    assert btf.decode(sid, raw) == {"a": 5, "b": -3, "c": 0xABCDEF, "d": 0x42}
    assert btf.decode(sid, bytes([0x18, 0, 0, 0, 0, 0, 0, 0]))["b"] == 3
    lay = btf.layout(sid)
    assert lay[0] == ("a", 0, 1, "unsigned int:3")
    assert lay[2] == ("c", 1, 3, "unsigned int:24")


def test_enums(btf):
    c = btf.type(btf.find("enum color"))
    assert c.kind == "ENUM" and c.kind_flag and c.signed and c.size == 4
    assert c.values == [("RED", 1), ("GREEN", 2), ("BLUE", -5)]
    u = btf.type(btf.find("enum uns"))
    assert not u.kind_flag and u.values == [("U_BIG", 0x80000000), ("U_ONE", 1)]
    big = btf.type(btf.find("enum big"))
    assert big.kind == "ENUM64" and big.size == 8
    assert big.values == [("BIG", 1 << 32), ("SMALL", 1)]
    neg = btf.type(btf.find("neg64", "enum"))
    assert neg.values == [("N1", -1), ("N2", 0x7FFFFFFFFFFF)]
    assert btf.decode(c.id, (-5 & 0xFFFFFFFF).to_bytes(4, "little")) == -5
    assert btf.decode(u.id, (0x80000000).to_bytes(4, "little")) == 0x80000000
    assert btf.decode(neg.id, b"\xff" * 8) == -1
    assert btf.type_name(big.id) == "enum big"


def test_union_array_and_anonymous_members(btf):
    uid = btf.find("union u")
    assert btf.sizeof(uid) == 4
    assert [(m.name, m.bit_offset) for m in btf.members(uid)] == [("x", 0), ("b", 0)]
    assert btf.decode(uid, bytes([0x78, 0x56, 0x34, 0x12])) == {
        "x": 0x12345678, "b": b"\x78\x56\x34\x12"}
    hid = btf.find("struct holder")
    # 3 pointers (24) + char[1024] (1048) + int[2][3] (24 → 1072) + u32 (1076) → pad to 1080
    assert btf.sizeof(hid) == 1080
    assert [(f.path, f.offset, f.size, f.type) for f in btf.layout(hid)] == [
        ("op", 0, 8, "struct opaque *"), ("fu", 8, 8, "union fwdu *"),
        ("cb", 16, 8, "int (*)(void *)"), ("buf", 24, 1024, "char[1024]"),
        ("m", 1048, 24, "int[2][3]"), ("owner", 1072, 4, "cpid_type")]
    raw = bytearray(1080)
    raw[16:24] = (0xFFFF800012345678).to_bytes(8, "little")
    raw[24:29] = b"hello"
    raw[1048:1072] = struct.pack("<6i", 1, 2, 3, -4, 5, 6)
    raw[1072:1076] = (77).to_bytes(4, "little")
    v = btf.decode("holder", bytes(raw))
    assert v["cb"] == 0xFFFF800012345678 and v["op"] == 0
    assert v["buf"] == b"hello" + bytes(1019)
    assert v["m"] == [[1, 2, 3], [-4, 5, 6]] and v["owner"] == 77
    # anonymous union flattened into the parent; the named struct nested
    aid = btf.find("struct hasanon")
    assert btf.sizeof(aid) == 12
    raw = struct.pack("<iihh", -1, 0x1FF, 7, -8)
    assert btf.decode(aid, raw) == {"a": -1, "x": 0x1FF, "y": 0xFF,
                                    "named": {"s1": 7, "s2": -8}}
    assert [(f.path, f.offset, f.size) for f in btf.layout(aid)] == [
        ("a", 0, 4), ("x", 4, 4), ("y", 4, 1), ("named.s1", 8, 2), ("named.s2", 10, 2)]


def test_typedef_chains_and_qualifiers(btf):
    cp = btf.find("cpid_type")
    assert btf.type(cp).kind == "TYPEDEF"
    under = btf.resolve(cp)
    assert btf.type(under).kind == "INT" and btf.type(under).name == "unsigned int"
    assert btf.type(under).bits == 32 and not btf.type(under).signed
    assert btf.resolve("cpid_type") == under
    const = btf.type(cp).type
    assert btf.type(const).kind == "CONST" and btf.type_name(const) == "const pid_type"
    assert btf.sizeof("cpid_type") == 4 and btf.alignof(cp) == 4
    # const volatile int cfg; int *restrict rp; int __user *up
    cfg = {d.name: d for d in btf.datasec(".rodata")}["cfg"]
    assert btf.type_name(cfg.type_id) == "const volatile int"
    assert btf.type(btf.resolve(cfg.type_id)).name == "int"
    bss = {d.name: d for d in btf.datasec(".bss")}
    assert btf.type_name(bss["rp"].type_id) == "int *restrict"
    assert btf.type(bss["rp"].type_id).kind == "RESTRICT"
    ptr = btf.type(bss["up"].type_id)
    assert ptr.kind == "PTR" and btf.type(ptr.type).kind == "TYPE_TAG"
    assert btf.type(ptr.type).name == "user" and btf.type_name(ptr.id) == "int *"
    assert btf.type_name(bss["gflags"].type_id) == "volatile struct flags"
    assert btf.decode(bss["gbool"].type_id, b"\x01") is True


def test_funcs_and_protos(btf):
    prog = btf.type(btf.find("prog"))
    assert prog.kind == "FUNC" and prog.linkage_name == "global"
    assert btf.type_name(prog.id) == "int prog(void *ctx)"
    proto = btf.type(prog.type)
    assert proto.kind == "FUNC_PROTO" and [p[0] for p in proto.params] == ["ctx"]
    assert btf.type_name(proto.params[0][1]) == "void *"
    assert btf.type(btf.resolve(proto.type)).name == "int"
    assert btf.type_name(proto.id) == "int (void *)"
    triple = btf.type(btf.find("triple", "FUNC"))
    assert triple.linkage_name == "static"
    assert btf.type_name(triple.id) == "int triple(int x)"
    assert btf.type_name(btf.find("core_prog")) == "int core_prog(struct task *t)"
    with pytest.raises(BtfError, match="has no size"):
        btf.sizeof(prog.id)


def test_fwd_and_decl_tags(btf):
    op = btf.type(btf.find("opaque"))
    assert op.kind == "FWD" and not op.is_union
    fu = btf.type(btf.find("union fwdu"))
    assert fu.kind == "FWD" and fu.is_union and btf.type_name(fu.id) == "union fwdu"
    tags = {t.name: t for t in btf.types if t.kind == "DECL_TAG"}
    assert btf.type_name(tags["holder_tag"].type) == "struct holder"
    assert tags["holder_tag"].component_idx == -1
    assert btf.type(tags["var_tag"].type).name == "tagged_var"
    assert btf.type(btf.find("float")).kind == "FLOAT" and btf.sizeof("float") == 4


def test_find_error_lists_close_names(btf):
    with pytest.raises(KeyError, match=r"process_inf.*close names: process_info \(STRUCT\)"):
        btf.find("process_inf")
    with pytest.raises(KeyError, match=r"'holder_tag' of kind STRUCT; 'holder_tag' exists as DECL_TAG"):
        btf.find("struct holder_tag")
    with pytest.raises(KeyError, match="not a BTF kind"):
        btf.find("holder", "klass")
    with pytest.raises(BtfError, match="does not exist"):
        btf.type(len(btf.types))


# -- DATASECs -------------------------------------------------------------------------------------
def test_datasec_maps_fixup(obj, btf):
    _, elf = obj
    maps = btf.datasec(".maps")
    # each map definition is four pointer members: 32 bytes
    assert sorted((d.name, d.size) for d in maps) == [("procs", 32), ("stats", 32)]
    # an unlinked .o: clang leaves the DATASEC size and the offsets 0 for the loader
    assert btf.type(btf.find(".maps", "DATASEC")).size == 0
    assert btf.fix_datasecs_from_elf(elf)
    syms = symbols(elf)
    fixed = btf.datasec(".maps")
    assert sorted(d.offset for d in fixed) == [0, 32]
    assert all(d.offset == syms[d.name][1] for d in fixed)
    assert btf.sizeof(btf.find(".maps", "DATASEC")) == 64
    for d in fixed:
        sid = btf.resolve(d.type_id)
        assert [m.name for m in btf.members(sid)] == ["type", "max_entries", "key", "value"]
    procs = {d.name: d for d in fixed}["procs"]
    value = btf.members(procs.type_id)[3]
    assert btf.type_name(value.type_id) == "struct process_info *"


def test_datasec_data_and_bss(obj, btf):
    _, elf = obj
    data = {d.name: (btf.type_name(d.type_id), d.size) for d in btf.datasec(".data")}
    assert data == {"counter": ("int", 4), "gd": ("double", 8), "tagged_var": ("int", 4),
                    "gf": ("float", 4)}
    bss = {d.name: d.size for d in btf.datasec(".bss")}
    assert bss["zero"] == 8 and bss["gflags"] == 8 and bss["h"] == 1080 and bss["ga"] == 12
    # fix up by hand, then decode the section's initial bytes
    syms = symbols(elf)
    sec = elf.get_section_by_name(".data")
    btf.fix_datasec(".data", sec["sh_size"], {n: syms[n][1] for n in data})
    assert btf.sizeof(btf.find(".data", "DATASEC")) == sec["sh_size"]
    assert {d.name: d.offset for d in btf.datasec(".data")} == {n: syms[n][1] for n in data}
    assert btf.decode(".data", sec.data()) == {"counter": 7, "gd": 1.5, "tagged_var": 1,
                                               "gf": 2.5}
    with pytest.raises(KeyError, match=r"no BTF DATASEC named '\.nope' \(DATASECs: .*\.maps"):
        btf.datasec(".nope")


# -- BTF.ext ---------------------------------------------------------------------------------------
def test_func_info_matches_symbols(obj, ext):
    _, elf = obj
    syms = symbols(elf)
    funcs = {(sec, fi.name): fi for sec, lst in ext.func_info.items() for fi in lst}
    assert set(funcs) == {("bind", "prog"), ("bind", "core_prog"), (".text", "triple"),
                          (".text", "add_one")}
    for (sec, name), fi in funcs.items():
        # insn_off in the file is in bytes, relative to the section (as the symbol value is)
        assert syms[name][0] == sec and fi.insn == syms[name][1] // 8
        assert fi.insn_off == syms[name][1]
    assert ext.func_for("bind", funcs[("bind", "core_prog")].insn + 1).name == "core_prog"
    assert ext.func_for("bind", 0).name == "prog"
    assert ext.hdr_len >= 32


def reloc_insns(elf, section: str) -> dict[str, list[int]]:
    """symbol name -> instruction indexes the section's relocations patch."""
    rel = elf.get_section_by_name(f".rel{section}")
    symtab = elf.get_section_by_name(".symtab")
    out: dict[str, list[int]] = {}
    for r in rel.iter_relocations():
        out.setdefault(symtab.get_symbol(r["r_info_sym"]).name, []).append(r["r_offset"] // 8)
    return out


def test_line_info_points_at_source(obj, ext):
    _, elf = obj
    lines = SOURCE.splitlines()
    for sec, recs in ext.line_info.items():
        for li in recs:
            assert li.file.endswith(".c")
            assert li.text == lines[li.line - 1], li  # the text is that line of our source
            assert 0 <= li.column < 1024
    by_line = {li.line for li in ext.line_info["bind"]}
    for tag in ("lookup", "count", "core"):
        assert marker_line(tag) in by_line, tag
    text_lines = {li.line for li in ext.line_info[".text"]}
    assert {marker_line("triple"), marker_line("add_one")} <= text_lines
    # instructions the relocations patch: the lddw of the map and of `counter`
    relocs = reloc_insns(elf, "bind")
    assert ext.line_for("bind", relocs["procs"][0]).line == marker_line("lookup")
    assert all(ext.line_for("bind", i).line == marker_line("count") for i in relocs["counter"])


def test_line_for_is_last_record_at_or_before(obj, ext):
    _, elf = obj
    recs = ext.line_info["bind"]
    n_insns = elf.get_section_by_name("bind")["sh_size"] // 8
    for i in range(n_insns):
        expect = [li for li in recs if li.insn <= i][-1]
        assert ext.line_for("bind", i) == expect
    assert ext.line_for("nope", 0) is None


def test_core_relocation(obj, btf, ext):
    _, elf = obj
    assert len(ext.core_relos) == 1
    r = ext.core_relos[0]
    assert r.section == "bind" and r.kind_name == "FIELD_BYTE_OFFSET" and r.access == "0:1"
    assert btf.type_name(r.type_id) == "struct task"
    code = elf.get_section_by_name("bind").data()
    opcode, _regs, off = struct.unpack_from("<BBh", code, r.insn * 8)
    assert opcode & 7 == 1 and off == 4  # BPF_LDX of tgid at offset 4
    assert ext.line_for("bind", r.insn).line == marker_line("core")
    assert ext.relos_for("bind") == [r]


# -- bpftool as an oracle --------------------------------------------------------------------------
HDR = re.compile(r"^\[(\d+)\] (\w+) '([^']*)'(.*)$")
ATTR = re.compile(r"(\w+)=([^\s,]+)")


def bpftool_dump(path) -> list[dict]:
    out = subprocess.run(["bpftool", "btf", "dump", "file", str(path)], capture_output=True,
                         text=True, check=True).stdout
    types: list[dict] = []
    for line in out.splitlines():
        m = HDR.match(line)
        if m:
            types.append({"id": int(m[1]), "kind": m[2], "name": m[3],
                          "attrs": dict(ATTR.findall(m[4])), "subs": []})
        elif line.strip():
            name = re.match(r"\s*'([^']*)'", line)
            types[-1]["subs"].append({"name": name[1] if name else None,
                                      **dict(ATTR.findall(line.split(" (")[0]))})
    return types


def ours(btf: Btf, tid: int) -> tuple[dict, list[dict]]:
    t = btf.type(tid)
    k = t.kind
    a: dict = {}
    subs: list[dict] = []
    if k == "INT":
        enc = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}.get(t.encoding, "?")
        a = dict(size=t.size, bits_offset=t.bit_offset, nr_bits=t.bits, encoding=enc)
    elif k in ("PTR", "TYPEDEF", "VOLATILE", "CONST", "RESTRICT", "TYPE_TAG"):
        a = dict(type_id=t.type)
    elif k == "ARRAY":
        a = dict(type_id=t.elem_type, index_type_id=t.index_type, nr_elems=t.nelems)
    elif k in ("STRUCT", "UNION"):
        a = dict(size=t.size, vlen=t.vlen)
        for m in t.members:
            d = {"name": m.name or "(anon)", "type_id": m.type_id, "bits_offset": m.bit_offset}
            if m.bitfield_size:
                d["bitfield_size"] = m.bitfield_size
            subs.append(d)
    elif k in ("ENUM", "ENUM64"):
        a = dict(encoding="SIGNED" if t.kind_flag else "UNSIGNED", size=t.size, vlen=t.vlen)
        suffix = ("LL" if t.kind_flag else "ULL") if k == "ENUM64" else ""
        subs = [{"name": n, "val": f"{v}{suffix}"} for n, v in t.values]
    elif k == "FWD":
        a = dict(fwd_kind="union" if t.kind_flag else "struct")
    elif k == "FUNC":
        a = dict(type_id=t.type, linkage=t.linkage_name)
    elif k == "FUNC_PROTO":
        a = dict(ret_type_id=t.type, vlen=t.vlen)
        subs = [{"name": n or "(anon)", "type_id": p} for n, p in t.params]
    elif k == "VAR":
        a = dict(type_id=t.type, linkage=t.linkage_name)
    elif k == "DATASEC":
        a = dict(size=t.size, vlen=t.vlen)
        subs = [{"name": None, "type_id": v, "offset": o, "size": s} for v, o, s in t.vars]
    elif k == "FLOAT":
        a = dict(size=t.size)
    elif k == "DECL_TAG":
        a = dict(type_id=t.type, component_idx=t.component_idx)
    return {key: str(v) for key, v in a.items()}, \
        [{key: (v if v is None else str(v)) for key, v in d.items()} for d in subs]


@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed")
@pytest.mark.parametrize("which", ["all", "small"])
def test_every_type_matches_bpftool(obj, compile_bpf, which):
    path = obj[0] if which == "all" else compile_bpf(
        PRELUDE + 'SEC("bind") int p(void *c) { return 0; }\n', "btfsmall", include=False)
    with open(path, "rb") as f:
        btf = Btf.parse(ELFFile(f).get_section_by_name(".BTF").data())
    dump = bpftool_dump(path)
    assert len(dump) == len(btf)
    assert [d["id"] for d in dump] == list(range(1, len(btf) + 1))
    kinds = set()
    for d in dump:
        t = btf.type(d["id"])
        kinds.add(t.kind)
        assert (t.kind, t.name or "(anon)") == (d["kind"], d["name"]), d
        attrs, subs = ours(btf, t.id)
        assert attrs == d["attrs"], (t, d)
        assert subs == d["subs"], (t, d)
    if which == "all":  # the big object exercises every kind
        assert kinds == {"INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF",
                         "VOLATILE", "CONST", "RESTRICT", "FUNC", "FUNC_PROTO", "VAR",
                         "DATASEC", "FLOAT", "DECL_TAG", "TYPE_TAG", "ENUM64"}


# -- hand-built and malformed BTF ------------------------------------------------------------------
def build(types: list[bytes], strings: bytes = b"\0", *, magic=0xEB9F, version=1,
          type_len=None, str_len=None) -> bytes:
    tsec = b"".join(types)
    tl = len(tsec) if type_len is None else type_len
    sl = len(strings) if str_len is None else str_len
    return struct.pack("<HBBIIIII", magic, version, 0, 24, 0, tl, len(tsec), sl) + tsec + strings


def ty(kind: int, name_off=0, vlen=0, word=0, kflag=0, extra=b"") -> bytes:
    return struct.pack("<III", name_off, (kflag << 31) | (kind << 24) | vlen, word) + extra


STRS = b"\0int\0s\0a\0b\0c\0f\0"  # int=1 s=5 a=7 b=9 c=11 f=13
INT32 = ty(1, 1, word=4, extra=struct.pack("<I", (1 << 24) | 32))   # signed int, #1


def test_hand_built_types():
    u16 = ty(1, 0, word=2, extra=struct.pack("<I", 16))              # #2 anon unsigned 16
    # #3: struct s (no kind_flag) with an old-style 4-bit INT bitfield type #4 at bit 36
    s = ty(4, 5, vlen=3, word=8, extra=struct.pack("<9I", 7, 1, 0, 9, 4, 36, 11, 2, 48))
    int4 = ty(1, 0, word=4, extra=struct.pack("<I", (1 << 24) | 4))  # #4 signed 4-bit
    half = ty(16, 13, word=2)                                        # #5 FLOAT 'f' size 2
    btf = Btf.parse(build([INT32, u16, s, int4, half], STRS))
    assert len(btf) == 5 and btf.type(4).bits == 4
    raw = struct.pack("<iBBH", -2, 0xF0, 0, 0xBEEF)  # b: bits 36..39 = high nibble of byte 4
    assert btf.decode("s", raw) == {"a": -2, "b": -1, "c": 0xBEEF}
    assert btf.decode(5, struct.pack("<e", 1.5)) == 1.5
    assert btf.alignof("s") == 4


@pytest.mark.parametrize("data, message", [
    (b"\x9f\xeb\x01\x00\x18\x00", r"BTF: truncated header \(6 bytes"),
    (b"", r"truncated header \(0 bytes"),
    (build([INT32], STRS, magic=0x1234), r"BTF: bad magic 0x1234 \(expected 0xeb9f\)"),
    (build([INT32], STRS, magic=0x9FEB), r"big-endian"),
    (build([INT32], STRS, version=2), r"version 2 is not supported"),
    (build([INT32], STRS, type_len=400), r"BTF: type section \[0, 400\) runs past the end"),
    (build([INT32], STRS, str_len=400), r"BTF: string section \[16, 416\) runs past"),
    (build([ty(1, 999, word=4, extra=b"\x20\0\0\0")], STRS),
     r"BTF type #1 \(INT\): string offset 999 outside string section \(size 15\)"),
    (build([INT32, ty(31, 0)], STRS), r"BTF type #2: kind 31 is unknown"),
    (build([INT32, ty(0, 0)], STRS), r"BTF type #2: kind 0 is unknown"),
    (build([INT32, ty(4, 5, vlen=3, word=8, extra=b"\0" * 20)], STRS),
     r"BTF type #2 \(STRUCT s\): truncated: needs 3 entries of 12 bytes .* 20 bytes left"),
    (build([INT32, b"\0" * 8], STRS), r"BTF type #2: truncated header at offset 16"),
    (build([INT32, ty(1, 1, word=4)], STRS), r"BTF type #2 \(INT int\): truncated"),
    (build([INT32, ty(2, 0, word=9)], STRS),
     r"BTF type #2 \(PTR \(anon\)\): type refers to type #9, but the last type is #2"),
    (build([INT32, ty(12, 1, word=1)], STRS), r"BTF type #2 \(FUNC int\): type #1 is INT, "
                                              r"not FUNC_PROTO"),
    (build([INT32], b"\0int"), r"does not end with a NUL"),
])
def test_malformed_btf(data, message):
    with pytest.raises(BtfError, match=message):
        Btf.parse(data)


def test_reference_loops_are_errors():
    # #1 typedef 'a' -> #2 typedef 'b' -> #1;  #3 PTR -> #4 PTR -> #3; #5 array of #6 array of #5
    btf = Btf.parse(build([ty(8, 7, word=2), ty(8, 9, word=1), ty(2, word=4), ty(2, word=3),
                           ty(3, extra=struct.pack("<III", 6, 0, 2)),
                           ty(3, extra=struct.pack("<III", 5, 0, 2))], STRS))
    with pytest.raises(BtfError, match="loops"):
        btf.resolve(1)
    with pytest.raises(BtfError, match="nest too deeply"):
        btf.type_name(3)
    with pytest.raises(BtfError, match="nest too deeply"):
        btf.sizeof(5)


def test_malformed_btf_ext(btf, obj):
    good = obj[1].get_section_by_name(".BTF.ext").data()
    with pytest.raises(BtfError, match="BTF.ext: bad magic 0x0000"):
        BtfExt.parse(b"\0\0" + good[2:], btf)
    with pytest.raises(BtfError, match="BTF.ext: truncated header"):
        BtfExt.parse(good[:3], btf)
    with pytest.raises(BtfError, match="BTF.ext: header length 4 is impossible"):
        BtfExt.parse(good[:4] + struct.pack("<I", 4) + good[8:], btf)
    with pytest.raises(BtfError, match=r"BTF.ext: (func|line) info .* runs past the end"):
        BtfExt.parse(good[:40], btf)
    hdr_len, fi_off = struct.unpack_from("<II", good, 4)
    bad = bytearray(good)
    struct.pack_into("<I", bad, hdr_len + fi_off, 3)  # func info record size 3
    with pytest.raises(BtfError, match="func info record size 3 is impossible"):
        BtfExt.parse(bytes(bad), btf)
    bad = bytearray(good)
    struct.pack_into("<I", bad, hdr_len + fi_off + 8, 10000)  # first section's record count
    with pytest.raises(BtfError, match=r"func info for section '.*' claims 10000 records"):
        BtfExt.parse(bytes(bad), btf)


# -- fuzzing: nothing but BtfError escapes ---------------------------------------------------------
def exercise(btf: Btf) -> None:
    for t in btf.types:
        for call in (btf.type_name, btf.resolve, btf.sizeof, btf.alignof):
            try:
                call(t.id)
            except BtfError:
                pass
        try:
            size = btf.sizeof(t.id)
            if size <= 4096:
                btf.decode(t.id, bytes(range(256)) * (size // 256 + 1))
            if t.kind in ("STRUCT", "UNION"):
                btf.layout(t.id)
        except BtfError:
            pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damaged_btf_only_raises_btf_error(obj, data):
    elf = obj[1]
    raw = bytearray(elf.get_section_by_name(".BTF").data())
    if data.draw(st.booleans()):
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    for _ in range(data.draw(st.integers(0 if len(raw) < 1 else 1, 6))):
        if not raw:
            break
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        btf = Btf.parse(bytes(raw))
    except BtfError:
        return
    exercise(btf)
    ext_raw = bytearray(elf.get_section_by_name(".BTF.ext").data())
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, len(ext_raw) - 1))
        ext_raw[i] = data.draw(st.integers(0, 255))
    try:
        ext = BtfExt.parse(bytes(ext_raw[:data.draw(st.integers(0, len(ext_raw)))]), btf)
    except BtfError:
        return
    for sec in ext.line_info:
        ext.line_for(sec, 5)


def test_encode_is_decode_inverted(btf):
    sid = btf.find("flags", "STRUCT")
    # the bitfield case above, the other way: a=5, b=-3, c=0xABCDEF, d=0x42
    assert btf.encode(sid, {"a": 5, "b": -3, "c": 0xABCDEF, "d": 0x42}) == \
        bytes([0xED, 0xEF, 0xCD, 0xAB, 0x42, 0, 0, 0])
    rec = btf.encode("struct process_info", {"process_id": 7, "token_sid": b"\x01\x01"})
    assert len(rec) == 112 and rec[:4] == (7).to_bytes(4, "little") and rec[44:46] == b"\x01\x01"
    assert btf.encode("holder", {"m": [[1, 2, 3], [-4]]})[1048:1064] == \
        struct.pack("<4i", 1, 2, 3, -4)
    with pytest.raises(BtfError, match="no member 'nope'"):
        btf.encode("struct process_info", {"nope": 1})
    with pytest.raises(BtfError, match=r"process_id: 4294967296 does not fit 4"):
        btf.encode("struct process_info", {"process_id": 1 << 32})
    with pytest.raises(BtfError, match=r"token_sid: 69 bytes do not fit 68"):
        btf.encode("struct process_info", {"token_sid": bytes(69)})


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_encode_round_trips(btf, data):
    name = data.draw(st.sampled_from(["flags", "struct process_info", "holder", "hasanon",
                                      "union u"]))
    raw = data.draw(st.binary(min_size=btf.sizeof(name), max_size=btf.sizeof(name)))
    value = btf.decode(name, raw)
    assert btf.decode(name, btf.encode(name, value)) == value
