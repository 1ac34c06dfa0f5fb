"""Instruction semantics, written once: which programs may run, and what each instruction does.

* **Validation** is table-driven: `ROWS` has one row per valid opcode (uBPF keeps the same kind
  of filter table), and `check()` applies it, with the program-level rules (jump targets,
  helpers, lddw forms), before any engine sees the program. Both engines refuse the same
  programs with the same `ProgramError`.
* **Meaning** is written once in a small builder language: `emit()` describes an instruction
  as operations on an *emitter* (`reg`, `const`, `add`, `udiv`, `load`, `store`, `set`...), and
  each engine supplies an emitter: the interpreter's writes Python source
  (ntoslab/vm/interpreter.py), the JIT's builds LLVM IR (ntoslab/vm/jit.py). The primitive
  operations carry eBPF's definitions (RFC 9669): ``udiv(x, 0) = 0``, ``urem(x, 0) = x``,
  ``sdiv(INT_MIN, -1) = INT_MIN``, shifts take the count modulo the width, 32-bit results are
  zero-extended.

>>> from ntoslab.isa.opcodes import decode
>>> ROWS[0x07].kind, ROWS[0x07].width, ROWS[0x61].size
('alu', 64, 4)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from ..isa import opcodes as op
from ..isa.opcodes import Instruction

# -- the filter table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """What one opcode is: its kind, operation width or access size, and source."""

    kind: str          # alu end lddw ldx ldsx st stx atomic jmp ja ja32 call exit
    op: int = 0        # the ALU / jump operation (high 4 bits)
    width: int = 64    # ALU / jump operand width in bits
    size: int = 0      # memory access size in bytes
    src_reg: bool = False


def _rows() -> dict[int, Row]:
    rows: dict[int, Row] = {}
    for cls, width in ((op.CLS_ALU, 32), (op.CLS_ALU64, 64)):
        for alu in op.ALU_NAMES:
            for src in (op.SRC_K, op.SRC_X):
                code = cls | alu | src
                if alu == op.ALU_END:
                    if cls == op.CLS_ALU64 and src:
                        continue
                    rows[code] = Row("end", alu, width, src_reg=bool(src))
                else:
                    rows[code] = Row("alu", alu, width, src_reg=bool(src))
    for cls, width in ((op.CLS_JMP, 64), (op.CLS_JMP32, 32)):
        for jop in op.CONDITIONAL_JUMPS:
            for src in (op.SRC_K, op.SRC_X):
                rows[cls | jop | src] = Row("jmp", jop, width, src_reg=bool(src))
    rows[op.OP_JA] = Row("ja")
    rows[op.OP_JA32] = Row("ja32")
    rows[op.OP_CALL] = Row("call")
    rows[op.OP_EXIT] = Row("exit")
    rows[op.OP_LDDW] = Row("lddw", size=8)
    for sz, n in op.SIZE_BYTES.items():
        rows[op.CLS_LDX | op.MODE_MEM | sz] = Row("ldx", size=n, src_reg=True)
        if n < 8:
            rows[op.CLS_LDX | op.MODE_MEMSX | sz] = Row("ldsx", size=n, src_reg=True)
        rows[op.CLS_ST | op.MODE_MEM | sz] = Row("st", size=n)
        rows[op.CLS_STX | op.MODE_MEM | sz] = Row("stx", size=n, src_reg=True)
    for sz in (op.SIZE_W, op.SIZE_DW):
        rows[op.CLS_STX | op.MODE_ATOMIC | sz] = Row("atomic", size=op.SIZE_BYTES[sz],
                                                      src_reg=True)
    return rows


ROWS: dict[int, Row] = _rows()
TERMINATORS = frozenset({"jmp", "ja", "ja32", "call", "exit"})
WRITES_DST = frozenset({"alu", "end", "lddw", "ldx", "ldsx"})


class ProgramError(ValueError):
    """A program an engine refuses before running it (bad opcode, jump out of range...)."""

    def __init__(self, message: str, *, program: str = "", pc: int | None = None,
                 source: str | None = None) -> None:
        where = f"{program}: " if program else ""
        where += f"pc {pc}: " if pc is not None else ""
        tail = f"\n    at {source}" if source else ""
        super().__init__(f"{where}{message}{tail}")
        self.program = program
        self.pc = pc
        self.source = source


@dataclass
class Checked:
    """A validated program: what both engines translate from."""

    insns: list[Instruction]
    second: frozenset[int]                 # second slots of lddw
    lddw: dict[int, int] = field(default_factory=dict)       # pc -> resolved 64-bit value
    helpers: frozenset[int] = frozenset()  # helper ids called

    @property
    def n(self) -> int:
        return len(self.insns)

    def next_pc(self, pc: int) -> int:
        return pc + 2 if self.insns[pc].opcode == op.OP_LDDW else pc + 1

    def target(self, pc: int) -> int:
        """The jump or call target of the (jump) instruction at `pc`."""
        insn = self.insns[pc]
        rel = insn.imm if insn.opcode in (op.OP_JA32, op.OP_CALL) else insn.offset
        return pc + 1 + rel


class MachineView(Protocol):
    def has_helper(self, helper_id: int) -> bool: ...
    def missing_helper(self, helper_id: int) -> str: ...
    def resolve_lddw(self, src: int, imm: int, next_imm: int) -> int: ...


def _reg(r: int, what: str) -> int:
    if r > 10:
        raise ProgramError(f"invalid {what} register r{r}")
    return r


def _check_insn(insn: Instruction, pc: int, n: int, second: frozenset[int],
                machine: MachineView, lddw: dict[int, int], helpers: set[int]) -> None:
    code = insn.opcode
    dst = _reg(insn.dst, "destination")
    src, off, imm = insn.src, insn.offset, insn.imm

    def target(rel: int) -> None:
        t = pc + 1 + rel
        if not 0 <= t < n or t in second:
            raise ProgramError(f"jump target {t} is outside the program (0..{n - 1}) or "
                               f"inside an lddw")

    row = ROWS.get(code)
    if row is None:
        if code == op.OP_CALLX:
            raise ProgramError("callx (indirect call through a register) is not supported")
        raise ProgramError(f"unknown opcode {code:#04x}")
    if row.kind in WRITES_DST and dst == 10:
        raise ProgramError("r10 (frame pointer) is read-only")
    kind = row.kind
    if kind == "end":
        if imm not in (16, 32, 64):
            raise ProgramError(f"byte swap width {imm} is not 16, 32 or 64")
    elif kind == "alu":
        if row.src_reg:
            _reg(src, "source")
        elif src:
            raise ProgramError(f"src field {src} must be 0 for an immediate operand")
        if row.op in (op.ALU_DIV, op.ALU_MOD):
            if off not in (0, 1):
                raise ProgramError(f"offset {off} is not 0 (unsigned) or 1 (signed) for div/mod")
        elif row.op == op.ALU_MOV and off:
            allowed = (8, 16, 32) if row.width == 64 else (8, 16)
            if off not in allowed or not row.src_reg:
                raise ProgramError(f"movsx offset {off} is not one of {allowed} (register source)")
        elif off:
            raise ProgramError(f"offset {off} must be 0 for {op.ALU_NAMES[row.op]}")
    elif kind == "call":
        if src == op.CALL_HELPER:
            if not machine.has_helper(imm):
                raise ProgramError(machine.missing_helper(imm))
            helpers.add(imm)
        elif src == op.CALL_LOCAL:
            target(imm)
        else:
            raise ProgramError(f"call with src {src} (BTF-id kfunc calls) is not supported")
    elif kind == "ja":
        target(off)
    elif kind == "ja32":
        target(imm)
    elif kind == "jmp":
        if row.src_reg:
            _reg(src, "source")
        target(off)
    elif kind == "lddw":
        if pc + 1 >= n or insn.imm64 is None:
            raise ProgramError("lddw has no second slot (the program ends inside it)")
        if src == op.LDDW_IMM64:
            value = insn.imm64
        elif src in (op.LDDW_MAP_FD, op.LDDW_MAP_VALUE, op.LDDW_MAP_IDX, op.LDDW_MAP_IDX_VALUE):
            try:
                value = machine.resolve_lddw(src, imm, insn.imm64 >> 32)
            except LookupError as exc:
                raise ProgramError(str(exc)) from None
        else:
            raise ProgramError(f"lddw with src {src} ({op.LDDW_NAMES.get(src, '?')}) "
                               f"is not supported")
        lddw[pc] = value & op.MASK64
    elif kind in ("ldx", "ldsx", "stx"):
        _reg(src, "source")
    elif kind == "atomic":
        _reg(src, "source")
        if imm not in op.ATOMIC_OPS:
            raise ProgramError(f"unknown atomic operation {imm:#x}")
        if imm != op.ATOMIC_CMPXCHG and imm & op.ATOMIC_FETCH and src == 10:
            raise ProgramError("atomic fetch into r10 (frame pointer)")


def check(name: str, insns: Sequence[Instruction], machine: MachineView,
          describe_pc: Callable[[int], str | None] = lambda pc: None) -> Checked:
    """Validate a program against the filter table and the machine; ProgramError if refused."""
    insns = list(insns)
    n = len(insns)
    if n == 0:
        raise ProgramError("program has no instructions", program=name)
    second = frozenset(pc + 1 for pc, i in enumerate(insns) if i.opcode == op.OP_LDDW)
    lddw: dict[int, int] = {}
    helpers: set[int] = set()
    for pc, insn in enumerate(insns):
        if pc in second:
            continue
        try:
            _check_insn(insn, pc, n, second, machine, lddw, helpers)
        except ProgramError as exc:
            raise ProgramError(str(exc), program=name, pc=pc, source=describe_pc(pc)) from None
    return Checked(insns, second, lddw, frozenset(helpers))


# -- meaning ---------------------------------------------------------------------------------------


class Emitter(Protocol):
    """What an engine provides to turn semantics into code. Values are the emitter's own
    (Python expression text, LLVM IR values); widths are in bits."""

    def reg(self, r: int, width: int) -> Any: ...
    def const(self, value: int, width: int) -> Any: ...
    def set(self, r: int, value: Any) -> None: ...
    def let(self, value: Any) -> Any: ...
    def add(self, a: Any, b: Any) -> Any: ...
    def sub(self, a: Any, b: Any) -> Any: ...
    def mul(self, a: Any, b: Any) -> Any: ...
    def and_(self, a: Any, b: Any) -> Any: ...
    def or_(self, a: Any, b: Any) -> Any: ...
    def xor(self, a: Any, b: Any) -> Any: ...
    def shl(self, a: Any, b: Any) -> Any: ...
    def lshr(self, a: Any, b: Any) -> Any: ...
    def ashr(self, a: Any, b: Any) -> Any: ...
    def neg(self, a: Any) -> Any: ...
    def udiv(self, a: Any, b: Any) -> Any: ...
    def urem(self, a: Any, b: Any) -> Any: ...
    def sdiv(self, a: Any, b: Any) -> Any: ...
    def srem(self, a: Any, b: Any) -> Any: ...
    def trunc(self, a: Any, width: int) -> Any: ...
    def zext(self, a: Any, width: int) -> Any: ...
    def sext(self, a: Any, width: int) -> Any: ...
    def bswap(self, a: Any) -> Any: ...
    def cmp(self, kind: str, a: Any, b: Any) -> Any: ...
    def address(self, r: int, offset: int) -> Any: ...
    def load(self, address: Any, size: int) -> Any: ...
    def store(self, address: Any, size: int, value: Any) -> None: ...
    def if_(self, cond: Any, then: Callable[[], None]) -> None: ...


ALU: dict[int, Callable[[Emitter, Any, Any, int, int], Any]] = {
    op.ALU_ADD: lambda E, d, s, w, off: E.add(d, s),
    op.ALU_SUB: lambda E, d, s, w, off: E.sub(d, s),
    op.ALU_MUL: lambda E, d, s, w, off: E.mul(d, s),
    op.ALU_OR: lambda E, d, s, w, off: E.or_(d, s),
    op.ALU_AND: lambda E, d, s, w, off: E.and_(d, s),
    op.ALU_XOR: lambda E, d, s, w, off: E.xor(d, s),
    op.ALU_LSH: lambda E, d, s, w, off: E.shl(d, E.and_(s, E.const(w - 1, w))),
    op.ALU_RSH: lambda E, d, s, w, off: E.lshr(d, E.and_(s, E.const(w - 1, w))),
    op.ALU_ARSH: lambda E, d, s, w, off: E.ashr(d, E.and_(s, E.const(w - 1, w))),
    op.ALU_NEG: lambda E, d, s, w, off: E.neg(d),
    op.ALU_MOV: lambda E, d, s, w, off: E.sext(E.trunc(s, off), w) if off else s,
    op.ALU_DIV: lambda E, d, s, w, off: E.sdiv(d, s) if off else E.udiv(d, s),
    op.ALU_MOD: lambda E, d, s, w, off: E.srem(d, s) if off else E.urem(d, s),
}

# conditional jumps: the comparison each performs
CONDITIONS = {op.JMP_JEQ: "eq", op.JMP_JNE: "ne", op.JMP_JGT: "ugt", op.JMP_JGE: "uge",
              op.JMP_JLT: "ult", op.JMP_JLE: "ule", op.JMP_JSGT: "sgt", op.JMP_JSGE: "sge",
              op.JMP_JSLT: "slt", op.JMP_JSLE: "sle", op.JMP_JSET: "set"}

ATOMIC_ALU = {op.ATOMIC_ADD: "add", op.ATOMIC_OR: "or_", op.ATOMIC_AND: "and_",
              op.ATOMIC_XOR: "xor"}


def emit(E: Emitter, insn: Instruction, lddw_value: int | None = None) -> None:
    """The meaning of a non-terminator instruction (ALU, lddw, load, store, atomic)."""
    row = ROWS[insn.opcode]
    kind = row.kind
    dst, src = insn.dst, insn.src
    if kind == "alu":
        w = row.width
        d = None if row.op == op.ALU_MOV else E.reg(dst, w)   # mov does not read dst
        s = E.reg(src, w) if row.src_reg else E.const(insn.imm, w)
        E.set(dst, E.zext(ALU[row.op](E, d, s, w, insn.offset), 64))
    elif kind == "end":
        bits = insn.imm
        if row.width == 64 or row.src_reg:   # bswap / to big-endian (the host is little-endian)
            E.set(dst, E.zext(E.bswap(E.trunc(E.reg(dst, 64), bits)), 64))
        else:                                # to little-endian: truncate
            E.set(dst, E.zext(E.trunc(E.reg(dst, 64), bits), 64))
    elif kind == "lddw":
        E.set(dst, E.const(lddw_value, 64))
    elif kind == "ldx":
        E.set(dst, E.zext(E.load(E.address(src, insn.offset), row.size), 64))
    elif kind == "ldsx":
        E.set(dst, E.sext(E.load(E.address(src, insn.offset), row.size), 64))
    elif kind == "st":
        E.store(E.address(dst, insn.offset), row.size, E.const(insn.imm, 8 * row.size))
    elif kind == "stx":
        E.store(E.address(dst, insn.offset), row.size, E.trunc(E.reg(src, 64), 8 * row.size))
    elif kind == "atomic":
        _atomic(E, insn, row.size)
    else:
        raise AssertionError(f"emit: {kind} is a terminator")


def _atomic(E: Emitter, insn: Instruction, size: int) -> None:
    bits = 8 * size
    aop, src = insn.imm, insn.src
    a = E.let(E.address(insn.dst, insn.offset))
    old = E.let(E.load(a, size))
    value = E.trunc(E.reg(src, 64), bits)
    if aop == op.ATOMIC_CMPXCHG:
        E.if_(E.cmp("eq", old, E.trunc(E.reg(0, 64), bits)), lambda: E.store(a, size, value))
        E.set(0, E.zext(old, 64))
        return
    if aop == op.ATOMIC_XCHG:
        E.store(a, size, value)
        E.set(src, E.zext(old, 64))
        return
    new = getattr(E, ATOMIC_ALU[aop & ~op.ATOMIC_FETCH])(old, value)
    E.store(a, size, new)
    if aop & op.ATOMIC_FETCH:
        E.set(src, E.zext(old, 64))


def condition(E: Emitter, insn: Instruction) -> Any:
    """The branch condition of a conditional jump."""
    row = ROWS[insn.opcode]
    w = row.width
    d = E.reg(insn.dst, w)
    s = E.reg(insn.src, w) if row.src_reg else E.const(insn.imm, w)
    return E.cmp(CONDITIONS[row.op], d, s)


def block_pcs(chk: Checked, start: int, lead: set[int]) -> list[int]:
    """The pcs of the block at `start` (up to its terminator or the next leader in `lead`);
    empty for the pseudo-block n ("ran past the end")."""
    pcs: list[int] = []
    pc = start
    while pc < chk.n:
        pcs.append(pc)
        if ROWS[chk.insns[pc].opcode].kind in TERMINATORS:
            break
        pc = chk.next_pc(pc)
        if pc in lead:
            break
    return pcs


def block_starts(chk: Checked) -> list[int]:
    """Where basic blocks start: pc 0, jump and call targets, the pc after each terminator, and
    n (the pseudo-instruction "ran past the end")."""
    n = chk.n
    leaders = {0, n}
    for pc, insn in enumerate(chk.insns):
        if pc in chk.second:
            continue
        row = ROWS[insn.opcode]
        if row.kind not in TERMINATORS:
            continue
        leaders.add(pc + 1)
        if row.kind in ("jmp", "ja", "ja32") or (row.kind == "call" and
                                                   insn.src == op.CALL_LOCAL):
            leaders.add(chk.target(pc))
    return sorted(p for p in leaders if 0 <= p <= n and p not in chk.second)
