"""An assembler for the bpf_conformance text syntax (`-- asm` sections).

>>> assemble("mov %r0, 1\\nexit").hex()
'b7000000010000009500000000000000'
"""
from __future__ import annotations

import re

from . import opcodes as op
from .opcodes import Instruction


class AssemblyError(ValueError):
    """A line the assembler cannot encode; the message names the line number and text."""


_ALU = {"add": op.ALU_ADD, "sub": op.ALU_SUB, "mul": op.ALU_MUL, "div": op.ALU_DIV,
        "sdiv": op.ALU_DIV, "or": op.ALU_OR, "and": op.ALU_AND, "lsh": op.ALU_LSH,
        "rsh": op.ALU_RSH, "neg": op.ALU_NEG, "mod": op.ALU_MOD, "smod": op.ALU_MOD,
        "xor": op.ALU_XOR, "mov": op.ALU_MOV, "arsh": op.ALU_ARSH}
_JMP = {"jeq": op.JMP_JEQ, "jgt": op.JMP_JGT, "jge": op.JMP_JGE, "jset": op.JMP_JSET,
        "jne": op.JMP_JNE, "jsgt": op.JMP_JSGT, "jsge": op.JMP_JSGE, "jlt": op.JMP_JLT,
        "jle": op.JMP_JLE, "jslt": op.JMP_JSLT, "jsle": op.JMP_JSLE}
_SIZES = {"b": op.SIZE_B, "h": op.SIZE_H, "w": op.SIZE_W, "dw": op.SIZE_DW}
_ATOMIC = {"add": op.ATOMIC_ADD, "or": op.ATOMIC_OR, "and": op.ATOMIC_AND, "xor": op.ATOMIC_XOR,
           "xchg": op.ATOMIC_XCHG, "cmpxchg": op.ATOMIC_CMPXCHG}
_MEM = re.compile(r"^\[%r(\d+)\s*(?:([+-])\s*(0x[0-9a-fA-F]+|\d+))?\]$")
_LABEL = re.compile(r"^[A-Za-z_.][\w.]*$")


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise AssemblyError(f"not a number: {text!r}") from None


def _reg(text: str) -> int:
    m = re.fullmatch(r"%r(\d+)", text)
    if not m or int(m.group(1)) > 10:
        raise AssemblyError(f"not a register: {text!r}")
    return int(m.group(1))


def _imm32(value: int) -> int:
    return op.sign32(value)


def _mem(text: str) -> tuple[int, int]:
    m = _MEM.match(text.replace(" ", ""))
    if not m:
        raise AssemblyError(f"not a memory operand [%rN+off]: {text!r}")
    reg = int(m.group(1))
    if reg > 10:
        raise AssemblyError(f"not a register: %r{reg}")
    off = _int(m.group(3)) if m.group(3) else 0
    off = -off if m.group(2) == "-" else off
    if not -32768 <= off <= 32767:
        raise AssemblyError(f"offset {off} does not fit in 16 bits")
    return reg, off


class _Pending:
    """A jump or local call whose target is a label, fixed up after the last line."""

    def __init__(self, index: int, label: str, field: str, line: int) -> None:
        self.index, self.label, self.field, self.line = index, label, field, line


def assemble(text: str) -> bytes:
    """Assemble conformance-syntax text into bytecode."""
    insns: list[Instruction | None] = []
    labels: dict[str, int] = {}
    pending: list[_Pending] = []
    first_exit: int | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            if line.endswith(":") and _LABEL.match(line[:-1]):
                name = line[:-1]
                if name in labels:
                    raise AssemblyError(f"label {name!r} defined twice")
                labels[name] = len(insns)
                continue
            mnemonic, _, rest = line.partition(" ")
            operands = [o.strip() for o in rest.split(",")] if rest.strip() else []
            out = _encode(mnemonic, operands, len(insns), pending, lineno)
        except AssemblyError as exc:
            raise AssemblyError(f"line {lineno}: {exc}: {raw.strip()}") from None
        if mnemonic == "exit" and first_exit is None:
            first_exit = len(insns)
        insns.append(out)
        if out.imm64 is not None:
            insns.append(None)  # second slot of lddw
    if first_exit is not None:
        labels.setdefault("exit", first_exit)
    for p in pending:
        if p.label not in labels:
            raise AssemblyError(f"line {p.line}: unknown label {p.label!r}")
        rel = labels[p.label] - p.index - 1
        insn = insns[p.index]
        assert insn is not None
        if p.field == "offset":
            if not -32768 <= rel <= 32767:
                raise AssemblyError(f"line {p.line}: jump to {p.label!r} is too far ({rel})")
            insns[p.index] = Instruction(insn.opcode, insn.dst, insn.src, rel, insn.imm)
        else:
            insns[p.index] = Instruction(insn.opcode, insn.dst, insn.src, insn.offset, rel)
    return op.encode([i for i in insns if i is not None])


def _target(text: str, index: int, field: str, pending: list[_Pending], line: int) -> int:
    if text[:1] in "+-" and len(text) > 1:
        return _int(text)
    if not _LABEL.match(text):
        raise AssemblyError(f"not a jump target: {text!r}")
    pending.append(_Pending(index, text, field, line))
    return 0


def _encode(mn: str, ops: list[str], index: int, pending: list[_Pending], line: int) -> Instruction:
    def need(n: int) -> None:
        if len(ops) != n:
            raise AssemblyError(f"{mn} takes {n} operand(s), got {len(ops)}")

    if mn == "exit":
        need(0)
        return Instruction(op.OP_EXIT, 0, 0, 0, 0)
    if mn == "lddw":
        need(2)
        value = _int(ops[1]) & op.MASK64
        return Instruction(op.OP_LDDW, _reg(ops[0]), 0, 0, op.sign32(value), value)
    if mn == "call":
        if len(ops) == 1 and ops[0].startswith("%r"):
            return Instruction(op.OP_CALLX, _reg(ops[0]), 0, 0, 0)
        if len(ops) == 1 and ops[0].startswith("local "):
            label = ops[0][len("local "):].strip()
            imm = _target(label, index, "imm", pending, line)
            return Instruction(op.OP_CALL, 0, op.CALL_LOCAL, 0, imm)
        need(1)
        return Instruction(op.OP_CALL, 0, op.CALL_HELPER, 0, _imm32(_int(ops[0])))
    if mn in ("ja", "ja32"):
        need(1)
        if mn == "ja":
            return Instruction(op.OP_JA, 0, 0, _target(ops[0], index, "offset", pending, line), 0)
        return Instruction(op.OP_JA32, 0, 0, 0, _target(ops[0], index, "imm", pending, line))
    if mn.startswith("lock"):
        return _atomic(mn, ops)
    base32 = mn.endswith("32") and mn[:-2] in _JMP
    if mn in _JMP or base32:
        need(3)
        cls = op.CLS_JMP32 if base32 else op.CLS_JMP
        code = cls | _JMP[mn[:-2] if base32 else mn]
        dst = _reg(ops[0])
        off = _target(ops[2], index, "offset", pending, line)
        if ops[1].startswith("%"):
            return Instruction(code | op.SRC_X, dst, _reg(ops[1]), off, 0)
        return Instruction(code, dst, 0, off, _imm32(_int(ops[1])))
    m = re.fullmatch(r"(le|be|bswap|swap)(16|32|64)", mn)
    if m:
        need(1)
        kind, width = m.group(1), int(m.group(2))
        code = {"le": op.CLS_ALU | op.ALU_END | op.END_TO_LE,
                "be": op.CLS_ALU | op.ALU_END | op.END_TO_BE}.get(kind, op.CLS_ALU64 | op.ALU_END)
        return Instruction(code, _reg(ops[0]), 0, 0, width)
    m = re.fullmatch(r"movsx(8|16|32)(32|64)", mn)
    if m:
        need(2)
        width, bits = int(m.group(1)), int(m.group(2))
        if bits == 32 and width == 32:
            raise AssemblyError("movsx3232 does not exist")
        cls = op.CLS_ALU64 if bits == 64 else op.CLS_ALU
        return Instruction(cls | op.ALU_MOV | op.SRC_X, _reg(ops[0]), _reg(ops[1]), width, 0)
    alu32 = mn.endswith("32") and mn[:-2] in _ALU
    if mn in _ALU or alu32:
        name = mn[:-2] if alu32 else mn
        cls = op.CLS_ALU if alu32 else op.CLS_ALU64
        off = 1 if name in ("sdiv", "smod") else 0
        code = cls | _ALU[name]
        if name == "neg":
            need(1)
            return Instruction(code, _reg(ops[0]), 0, 0, 0)
        need(2)
        if ops[1].startswith("%"):
            return Instruction(code | op.SRC_X, _reg(ops[0]), _reg(ops[1]), off, 0)
        return Instruction(code, _reg(ops[0]), 0, off, _imm32(_int(ops[1])))
    m = re.fullmatch(r"(ldx|ldxs|stx|st)(b|h|w|dw)", mn)
    if m:
        need(2)
        kind, size = m.group(1), _SIZES[m.group(2)]
        if kind in ("ldx", "ldxs"):
            if kind == "ldxs" and size == op.SIZE_DW:
                raise AssemblyError("ldxsdw does not exist")
            src, off = _mem(ops[1])
            mode = op.MODE_MEMSX if kind == "ldxs" else op.MODE_MEM
            return Instruction(op.CLS_LDX | mode | size, _reg(ops[0]), src, off, 0)
        dst, off = _mem(ops[0])
        if kind == "stx":
            return Instruction(op.CLS_STX | op.MODE_MEM | size, dst, _reg(ops[1]), off, 0)
        return Instruction(op.CLS_ST | op.MODE_MEM | size, dst, 0, off, _imm32(_int(ops[1])))
    raise AssemblyError(f"unknown mnemonic {mn!r}")


def _atomic(mn: str, ops: list[str]) -> Instruction:
    # "lock [fetch] op[32] [%rD+off], %rS" arrives as mnemonic "lock" with the rest in ops[0]
    words = (" ".join([mn] + ops)).replace(",", " , ").split()
    words = [w for w in words if w != ","]
    if len(words) < 4 or words[0] != "lock":
        raise AssemblyError("expected: lock [fetch] OP [%rD+off], %rS")
    fetch = words[1] == "fetch"
    name = words[2] if fetch else words[1]
    rest = words[3:] if fetch else words[2:]
    width64 = not name.endswith("32")
    name = name[:-2] if name.endswith("32") else name
    if name not in _ATOMIC or len(rest) != 2:
        raise AssemblyError(f"unknown atomic operation {name!r}")
    dst, off = _mem(rest[0])
    imm = _ATOMIC[name] | (op.ATOMIC_FETCH if fetch else 0)
    size = op.SIZE_DW if width64 else op.SIZE_W
    return Instruction(op.CLS_STX | op.MODE_ATOMIC | size, dst, _reg(rest[1]), off, imm)
