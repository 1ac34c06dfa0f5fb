"""An assembler for the bpf_conformance text syntax (the `-- asm` sections of its `.data` files).

>>> assemble("mov %r0, 1\\nexit").hex()
'b7000000010000009500000000000000'

Syntax: one instruction per line, `#` starts a comment, `name:` alone on a line defines a label.
Registers are `%r0`..`%r10`; numbers are decimal or `0x` hex, optionally signed; immediates are
truncated to 32 bits (64 for `lddw`). Jump targets are `+N` / `-N` (slots, relative to the next
instruction) or a label; the label `exit`, unless defined, names the first `exit` instruction.

Mnemonics (a `32` suffix selects the 32-bit ALU / JMP32 class):
  ALU     add sub mul div sdiv mod smod or and lsh rsh arsh xor mov   DST, SRC|IMM;  neg DST
          movsx864 movsx1664 movsx3264 (ALU64), movsx832 movsx1632 (ALU)   DST, SRC
  bytes   le16 le32 le64 be16 be32 be64 (ALU END), bswap16/32/64 and swap16/32/64 (ALU64 END)
  memory  ldxb ldxh ldxw ldxdw ldxsb ldxsh ldxsw  DST, [SRC+off];  stb sth stw stdw [DST+off], IMM;
          stxb stxh stxw stxdw [DST+off], SRC;  lddw DST, IMM64
  jumps   ja TARGET; ja32 TARGET (gotol: offset in imm); jeq jgt jge jset jne jsgt jsge jlt jle
          jslt jsle  DST, SRC|IMM, TARGET;  call IMM; call local TARGET; call %rN (callx,
          register in dst_reg); exit
  atomics lock [fetch] add|or|and|xor[32] [DST+off], SRC;  lock xchg[32] / lock cmpxchg[32] ...
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import opcodes as op
from .opcodes import Instruction

__all__ = ["AssemblyError", "assemble", "assemble_instructions"]


class AssemblyError(ValueError):
    """A line the assembler cannot encode; the message names the line number and text."""


_ALU = {"add": op.ALU_ADD, "sub": op.ALU_SUB, "mul": op.ALU_MUL, "div": op.ALU_DIV,
        "sdiv": op.ALU_DIV, "or": op.ALU_OR, "and": op.ALU_AND, "lsh": op.ALU_LSH,
        "rsh": op.ALU_RSH, "neg": op.ALU_NEG, "mod": op.ALU_MOD, "smod": op.ALU_MOD,
        "xor": op.ALU_XOR, "mov": op.ALU_MOV, "arsh": op.ALU_ARSH}
_SIGNED_ALU = ("sdiv", "smod")
_JMP = {"jeq": op.JMP_JEQ, "jgt": op.JMP_JGT, "jge": op.JMP_JGE, "jset": op.JMP_JSET,
        "jne": op.JMP_JNE, "jsgt": op.JMP_JSGT, "jsge": op.JMP_JSGE, "jlt": op.JMP_JLT,
        "jle": op.JMP_JLE, "jslt": op.JMP_JSLT, "jsle": op.JMP_JSLE}
_SIZES = {"b": op.SIZE_B, "h": op.SIZE_H, "w": op.SIZE_W, "dw": op.SIZE_DW}
_ATOMIC = {"add": op.ATOMIC_ADD, "or": op.ATOMIC_OR, "and": op.ATOMIC_AND, "xor": op.ATOMIC_XOR,
           "xchg": op.ATOMIC_XCHG, "cmpxchg": op.ATOMIC_CMPXCHG}
_ENDIAN = {"le": op.CLS_ALU | op.ALU_END | op.END_TO_LE,
           "be": op.CLS_ALU | op.ALU_END | op.END_TO_BE,
           "bswap": op.CLS_ALU64 | op.ALU_END,
           "swap": op.CLS_ALU64 | op.ALU_END}  # upstream's tests expect swap == bswap
_MOVSX = {"movsx864": (op.CLS_ALU64, 8), "movsx1664": (op.CLS_ALU64, 16),
          "movsx3264": (op.CLS_ALU64, 32), "movsx832": (op.CLS_ALU, 8),
          "movsx1632": (op.CLS_ALU, 16)}

_NUMBER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)")
_REGISTER = re.compile(r"%r([0-9]+)")
_MEMORY = re.compile(r"\[\s*(%r[0-9]+)\s*(?:([+-])\s*(0[xX][0-9a-fA-F]+|[0-9]+)\s*)?\]")
_LABEL = re.compile(r"[A-Za-z_.][A-Za-z0-9_.$]*")
_ATOMIC_LINE = re.compile(r"(fetch\s+)?([a-z]+?)(32)?\s+(\[[^\]]*\])\s*,\s*(\S+)")
_LOADSTORE = re.compile(r"(ldxs|ldx|stx|st)(dw|b|h|w)")


def _number(text: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise AssemblyError(f"not a number: {text!r}")
    return int(text, 0)


def _imm32(text: str) -> int:
    return op.sign32(_number(text))


def _register(text: str) -> int:
    m = _REGISTER.fullmatch(text)
    if not m or int(m.group(1)) > 10:
        raise AssemblyError(f"not a register: {text!r}")
    return int(m.group(1))


def _memory(text: str) -> tuple[int, int]:
    m = _MEMORY.fullmatch(text)
    if not m:
        raise AssemblyError(f"not a memory operand [%rN+off]: {text!r}")
    reg = _register(m.group(1))
    off = int(m.group(3), 0) if m.group(3) else 0
    if m.group(2) == "-":
        off = -off
    if not -0x8000 <= off <= 0x7FFF:
        raise AssemblyError(f"offset {off} does not fit in 16 bits")
    return reg, off


@dataclass
class _Fixup:
    """A jump or local call whose target is a label, patched once all labels are known."""

    index: int
    label: str
    field: str  # "offset" or "imm"
    lineno: int
    text: str


class _Assembler:
    def __init__(self) -> None:
        self.slots: list[Instruction | None] = []  # None: the second slot of an lddw
        self.labels: dict[str, int] = {}
        self.fixups: list[_Fixup] = []
        self.first_exit: int | None = None
        self.lineno = 0
        self.text = ""

    # -- driver -------------------------------------------------------------------------------
    def run(self, source: str) -> list[Instruction]:
        for self.lineno, raw in enumerate(source.splitlines(), 1):
            self.text = raw.strip()
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                self.line(line)
            except AssemblyError as exc:
                raise AssemblyError(f"line {self.lineno}: {exc}: {self.text}") from None
        if self.first_exit is not None:
            self.labels.setdefault("exit", self.first_exit)
        for fix in self.fixups:
            self.patch(fix)
        return [i for i in self.slots if i is not None]

    def line(self, line: str) -> None:
        if line.endswith(":"):
            name = line[:-1].strip()
            if not _LABEL.fullmatch(name):
                raise AssemblyError(f"not a label name: {name!r}")
            if name in self.labels:
                raise AssemblyError(f"label {name!r} defined twice")
            self.labels[name] = len(self.slots)
            return
        parts = line.split(None, 1)
        mnemonic, rest = parts[0], parts[1] if len(parts) > 1 else ""
        insn = self.instruction(mnemonic, rest)
        if insn.opcode == op.OP_EXIT and self.first_exit is None:
            self.first_exit = len(self.slots)
        self.slots.append(insn)
        if insn.imm64 is not None:
            self.slots.append(None)

    def patch(self, fix: _Fixup) -> None:
        if fix.label not in self.labels:
            raise AssemblyError(f"line {fix.lineno}: unknown label {fix.label!r}: {fix.text}")
        rel = self.labels[fix.label] - fix.index - 1
        insn = self.slots[fix.index]
        assert insn is not None
        if fix.field == "offset":
            if not -0x8000 <= rel <= 0x7FFF:
                raise AssemblyError(f"line {fix.lineno}: jump to {fix.label!r} is too far "
                                    f"({rel} slots): {fix.text}")
            insn = Instruction(insn.opcode, insn.dst, insn.src, rel, insn.imm)
        else:
            insn = Instruction(insn.opcode, insn.dst, insn.src, insn.offset, rel)
        self.slots[fix.index] = insn

    def target(self, text: str, field: str) -> int:
        """A relative target: `+N`/`-N` now, or a label patched later (0 for now)."""
        if text[:1] in "+-":
            value = _number(text)
            if field == "offset" and not -0x8000 <= value <= 0x7FFF:
                raise AssemblyError(f"jump offset {value} does not fit in 16 bits")
            return op.sign32(value) if field == "imm" else value
        if not _LABEL.fullmatch(text):
            raise AssemblyError(f"not a jump target: {text!r}")
        self.fixups.append(_Fixup(len(self.slots), text, field, self.lineno, self.text))
        return 0

    # -- one instruction ----------------------------------------------------------------------
    def instruction(self, mn: str, rest: str) -> Instruction:
        if mn == "lock":
            return self.atomic(rest)
        ops = [o.strip() for o in rest.split(",")] if rest.strip() else []

        def need(n: int) -> None:
            if len(ops) != n:
                raise AssemblyError(f"{mn} takes {n} operand(s), got {len(ops)}")

        if mn == "exit":
            need(0)
            return Instruction(op.OP_EXIT, 0, 0, 0, 0)
        if mn == "lddw":
            need(2)
            value = _number(ops[1]) & op.MASK64
            return Instruction(op.OP_LDDW, _register(ops[0]), op.LDDW_IMM64, 0,
                               op.sign32(value), value)
        if mn == "call":
            need(1)
            arg = ops[0]
            if arg.startswith("%"):
                return Instruction(op.OP_CALLX, _register(arg), 0, 0, 0)
            words = arg.split()
            if len(words) == 2 and words[0] == "local":
                return Instruction(op.OP_CALL, 0, op.CALL_LOCAL, 0, self.target(words[1], "imm"))
            return Instruction(op.OP_CALL, 0, op.CALL_HELPER, 0, _imm32(arg))
        if mn == "ja":
            need(1)
            return Instruction(op.OP_JA, 0, 0, self.target(ops[0], "offset"), 0)
        if mn == "ja32":
            need(1)
            return Instruction(op.OP_JA32, 0, 0, 0, self.target(ops[0], "imm"))
        base, wide = (mn[:-2], False) if mn.endswith("32") else (mn, True)
        if base in _JMP:
            need(3)
            code = (op.CLS_JMP if wide else op.CLS_JMP32) | _JMP[base]
            dst = _register(ops[0])
            off = self.target(ops[2], "offset")
            if ops[1].startswith("%"):
                return Instruction(code | op.SRC_X, dst, _register(ops[1]), off, 0)
            return Instruction(code, dst, 0, off, _imm32(ops[1]))
        if base in _ALU:
            code = (op.CLS_ALU64 if wide else op.CLS_ALU) | _ALU[base]
            if base == "neg":
                need(1)
                return Instruction(code, _register(ops[0]), 0, 0, 0)
            need(2)
            off = 1 if base in _SIGNED_ALU else 0
            if ops[1].startswith("%"):
                return Instruction(code | op.SRC_X, _register(ops[0]), _register(ops[1]), off, 0)
            return Instruction(code, _register(ops[0]), 0, off, _imm32(ops[1]))
        if mn in _MOVSX:
            need(2)
            cls, width = _MOVSX[mn]
            return Instruction(cls | op.ALU_MOV | op.SRC_X, _register(ops[0]), _register(ops[1]),
                               width, 0)
        m = re.fullmatch(r"(le|be|bswap|swap)(16|32|64)", mn)
        if m:
            need(1)
            return Instruction(_ENDIAN[m.group(1)], _register(ops[0]), 0, 0, int(m.group(2)))
        m = _LOADSTORE.fullmatch(mn)
        if m:
            need(2)
            kind, size = m.group(1), _SIZES[m.group(2)]
            if kind.startswith("ldx"):
                if kind == "ldxs" and size == op.SIZE_DW:
                    raise AssemblyError(f"unknown mnemonic {mn!r}")
                src, off = _memory(ops[1])
                mode = op.MODE_MEMSX if kind == "ldxs" else op.MODE_MEM
                return Instruction(op.CLS_LDX | mode | size, _register(ops[0]), src, off, 0)
            dst, off = _memory(ops[0])
            if kind == "stx":
                return Instruction(op.CLS_STX | op.MODE_MEM | size, dst, _register(ops[1]), off, 0)
            return Instruction(op.CLS_ST | op.MODE_MEM | size, dst, 0, off, _imm32(ops[1]))
        raise AssemblyError(f"unknown mnemonic {mn!r}")

    def atomic(self, rest: str) -> Instruction:
        m = _ATOMIC_LINE.fullmatch(rest.strip())
        if not m:
            raise AssemblyError("expected: lock [fetch] OP[32] [%rD+off], %rS")
        fetch, name, narrow, mem, src = m.groups()
        if name not in _ATOMIC:
            raise AssemblyError(f"unknown atomic operation {name!r}")
        imm = _ATOMIC[name]
        if fetch:
            if imm in (op.ATOMIC_XCHG, op.ATOMIC_CMPXCHG):
                raise AssemblyError(f"{name} always fetches; drop 'fetch'")
            imm |= op.ATOMIC_FETCH
        dst, off = _memory(mem)
        size = op.SIZE_W if narrow else op.SIZE_DW
        return Instruction(op.CLS_STX | op.MODE_ATOMIC | size, dst, _register(src), off, imm)


def assemble_instructions(text: str) -> list[Instruction]:
    """Assemble conformance-syntax text into `Instruction`s (an lddw is one entry)."""
    return _Assembler().run(text)


def assemble(text: str) -> bytes:
    """Assemble conformance-syntax text into bytecode."""
    return op.encode(assemble_instructions(text))
