"""A disassembler printing eBPF in the syntax of `llvm-objdump -d` for BPF.

`format_insn` prints one instruction exactly as `llvm-objdump -d --no-show-raw-insn` (LLVM 14, no
`--mattr`) prints it, with these deliberate choices where LLVM 14 cannot be the reference:

* cpu v4 instructions, unknown to LLVM 14, use the syntax of newer LLVM (17 and later):
  ``r1 = (s8)r2`` / ``w1 = (s16)w2`` (movsx), ``r1 s/= r2`` / ``w1 s%= 3`` (sdiv/smod),
  ``r0 = *(s8 *)(r1 + 0)`` (ldxs*), ``r0 = bswap64 r0`` (ALU64 byte swap), ``gotol +5``
  (JMP32 ja, offset in imm).
* Instructions LLVM 14 prints as ``<unknown>`` although they are valid RFC 9669 ones also use newer
  LLVM's syntax: ``if r1 & 4 goto +3`` (jset), ``*(u32 *)(r10 - 8) = 7`` (store immediate),
  ``r1 %= r2`` (mod).
* 32-bit atomics use the w-register form LLVM prints with ``--mattr=+alu32`` (without it LLVM 14
  knows only some of them): ``lock *(u32 *)(r1 + 0) += w2``, ``w2 = atomic_fetch_or((u32 *)(r1 +
  0), w2)``, ``w2 = xchg32_32(r1 + 0, w2)``, ``w0 = cmpxchg32_32(r1 + 0, w0, w2)``.
* callx prints ``callx rN`` with N from dst_reg (RFC 9669, gcc, LLVM 19+); an instruction with
  dst_reg 0 and an imm of 1..10 is the encoding clang before 19 emitted, and N is taken from imm.
* Invalid encodings print ``<invalid opcode 0xNN>`` (LLVM prints ``<unknown>``).

>>> from ntoslab.isa.opcodes import decode
>>> [format_insn(i, pc) for pc, i in enumerate(decode(bytes.fromhex("b70000000100000095000000000000"
...                                                             "00")))]
['r0 = 1', 'exit']
"""
from __future__ import annotations

import bisect
from typing import Callable, Iterable

from . import opcodes as op
from .opcodes import Instruction

__all__ = ["format_insn", "disassemble", "is_valid", "jump_target"]

_ALU_OPS = {op.ALU_ADD: "+=", op.ALU_SUB: "-=", op.ALU_MUL: "*=", op.ALU_DIV: "/=",
            op.ALU_OR: "|=", op.ALU_AND: "&=", op.ALU_LSH: "<<=", op.ALU_RSH: ">>=",
            op.ALU_MOD: "%=", op.ALU_XOR: "^=", op.ALU_MOV: "=", op.ALU_ARSH: "s>>="}
_SIGNED_ALU_OPS = {op.ALU_DIV: "s/=", op.ALU_MOD: "s%="}
_JMP_OPS = {op.JMP_JEQ: "==", op.JMP_JGT: ">", op.JMP_JGE: ">=", op.JMP_JSET: "&",
            op.JMP_JNE: "!=", op.JMP_JSGT: "s>", op.JMP_JSGE: "s>=", op.JMP_JLT: "<",
            op.JMP_JLE: "<=", op.JMP_JSLT: "s<", op.JMP_JSLE: "s<="}
_UNSIGNED = {op.SIZE_B: "u8", op.SIZE_H: "u16", op.SIZE_W: "u32", op.SIZE_DW: "u64"}
_SIGNED = {op.SIZE_B: "s8", op.SIZE_H: "s16", op.SIZE_W: "s32"}
_ATOMIC_ASSIGN = {op.ATOMIC_ADD: "+=", op.ATOMIC_OR: "|=", op.ATOMIC_AND: "&=",
                  op.ATOMIC_XOR: "^="}
_MOVSX_WIDTHS = {op.CLS_ALU: (8, 16), op.CLS_ALU64: (8, 16, 32)}


def _invalid(insn: Instruction) -> str:
    return f"<invalid opcode 0x{insn.opcode & 0xFF:02x}>"


def _addr(reg: int, off: int) -> str:
    return f"r{reg} {'-' if off < 0 else '+'} {abs(off)}"


def _rel(value: int) -> str:
    return f"+{value}" if value >= 0 else str(value)


def _callx_reg(insn: Instruction) -> int:
    if insn.dst == 0 and 1 <= insn.imm <= 10:
        return insn.imm  # clang < 19 put the register number in imm
    return insn.dst


def _format_alu(insn: Instruction) -> str | None:
    code, cls = insn.opcode, insn.opcode & 0x07
    alu, use_reg = code & 0xF0, bool(code & op.SRC_X)
    r = "w" if cls == op.CLS_ALU else "r"
    dst = f"{r}{insn.dst}"
    if alu == op.ALU_END:
        if insn.imm not in (16, 32, 64):
            return None
        if cls == op.CLS_ALU64:
            if use_reg:
                return None
            name = "bswap"
        else:
            name = "be" if use_reg else "le"
        return f"r{insn.dst} = {name}{insn.imm} r{insn.dst}"
    if alu == op.ALU_NEG:
        return None if use_reg else f"{dst} = -{dst}"
    if alu not in _ALU_OPS:
        return None
    sym = _ALU_OPS[alu]
    if alu == op.ALU_MOV and insn.offset:
        if not use_reg or insn.offset not in _MOVSX_WIDTHS[cls]:
            return None
        return f"{dst} = (s{insn.offset}){r}{insn.src}"
    if alu in _SIGNED_ALU_OPS:
        if insn.offset == 1:
            sym = _SIGNED_ALU_OPS[alu]
        elif insn.offset:
            return None
    operand = f"{r}{insn.src}" if use_reg else str(insn.imm)
    return f"{dst} {sym} {operand}"


def _format_jmp(insn: Instruction) -> str | None:
    code, cls = insn.opcode, insn.opcode & 0x07
    jop, use_reg = code & 0xF0, bool(code & op.SRC_X)
    if jop == op.JMP_JA:
        if use_reg:
            return None
        return f"goto {_rel(insn.offset)}" if cls == op.CLS_JMP else f"gotol {_rel(insn.imm)}"
    if jop in (op.JMP_CALL, op.JMP_EXIT):
        if cls != op.CLS_JMP:
            return None
        if jop == op.JMP_EXIT:
            return None if use_reg else "exit"
        return f"callx r{_callx_reg(insn)}" if use_reg else f"call {insn.imm}"
    if jop not in _JMP_OPS:
        return None
    r = "w" if cls == op.CLS_JMP32 else "r"
    operand = f"{r}{insn.src}" if use_reg else str(insn.imm)
    return f"if {r}{insn.dst} {_JMP_OPS[jop]} {operand} goto {_rel(insn.offset)}"


def _format_atomic(insn: Instruction) -> str | None:
    size = insn.opcode & 0x18
    if size not in (op.SIZE_W, op.SIZE_DW) or insn.imm not in op.ATOMIC_OPS:
        return None
    r = "r" if size == op.SIZE_DW else "w"
    t = _UNSIGNED[size]
    addr, src = _addr(insn.dst, insn.offset), f"{r}{insn.src}"
    if insn.imm == op.ATOMIC_XCHG:
        suffix = "_64" if size == op.SIZE_DW else "32_32"
        return f"{src} = xchg{suffix}({addr}, {src})"
    if insn.imm == op.ATOMIC_CMPXCHG:
        suffix = "_64" if size == op.SIZE_DW else "32_32"
        return f"{r}0 = cmpxchg{suffix}({addr}, {r}0, {src})"
    base = insn.imm & ~op.ATOMIC_FETCH
    if insn.imm & op.ATOMIC_FETCH:
        return f"{src} = atomic_fetch_{op.ATOMIC_NAMES[base]}(({t} *)({addr}), {src})"
    return f"lock *({t} *)({addr}) {_ATOMIC_ASSIGN[base]} {src}"


def _format_mem(insn: Instruction) -> str | None:
    code, cls = insn.opcode, insn.opcode & 0x07
    size, mode = code & 0x18, code & 0xE0
    if cls == op.CLS_LD:
        if code == op.OP_LDDW:
            value = insn.imm64 if insn.imm64 is not None else insn.imm & op.MASK32
            if insn.src == op.LDDW_IMM64:
                return f"r{insn.dst} = {op.sign64(value)} ll"
            return f"ld_pseudo\tr{insn.dst}, {insn.src}, {insn.imm & op.MASK32}"
        if size == op.SIZE_DW:
            return None
        if mode == op.MODE_ABS:
            return f"r0 = *({_UNSIGNED[size]} *)skb[{insn.imm}]"
        if mode == op.MODE_IND:
            return f"r0 = *({_UNSIGNED[size]} *)skb[r{insn.src}]"
        return None
    addr = _addr(insn.dst if cls != op.CLS_LDX else insn.src, insn.offset)
    if cls == op.CLS_LDX:
        if mode == op.MODE_MEM:
            return f"r{insn.dst} = *({_UNSIGNED[size]} *)({addr})"
        if mode == op.MODE_MEMSX and size in _SIGNED:
            return f"r{insn.dst} = *({_SIGNED[size]} *)({addr})"
        return None
    if cls == op.CLS_ST:
        return f"*({_UNSIGNED[size]} *)({addr}) = {insn.imm}" if mode == op.MODE_MEM else None
    # CLS_STX
    if mode == op.MODE_MEM:
        return f"*({_UNSIGNED[size]} *)({addr}) = r{insn.src}"
    if mode == op.MODE_ATOMIC:
        return _format_atomic(insn)
    return None


def format_insn(insn: Instruction, pc: int = 0) -> str:
    """One instruction in llvm-objdump syntax ("r1 += -4", "if w0 == 0 goto +3", "exit").

    Jump and call offsets are printed relative, as llvm-objdump prints them; `pc` is accepted for
    callers that want to resolve them (see `jump_target`) and does not change the text.
    """
    cls = insn.opcode & 0x07
    if cls in (op.CLS_ALU, op.CLS_ALU64):
        text = _format_alu(insn)
    elif cls in (op.CLS_JMP, op.CLS_JMP32):
        text = _format_jmp(insn)
    else:
        text = _format_mem(insn)
    return _invalid(insn) if text is None else text


def is_valid(insn: Instruction) -> bool:
    """Whether `format_insn` recognises the instruction (opcode and selector fields)."""
    return not format_insn(insn).startswith("<invalid")


def jump_target(insn: Instruction, pc: int) -> int | None:
    """The pc a jump, gotol or local call at `pc` transfers to, else None."""
    cls, jop = insn.opcode & 0x07, insn.opcode & 0xF0
    if cls not in (op.CLS_JMP, op.CLS_JMP32) or not is_valid(insn):
        return None
    if jop == op.JMP_EXIT:
        return None
    if jop == op.JMP_CALL:
        if insn.opcode == op.OP_CALL and insn.src == op.CALL_LOCAL:
            return pc + insn.imm + 1
        return None
    if insn.opcode == op.OP_JA32:
        return pc + insn.imm + 1
    return pc + insn.offset + 1


def _instructions(code: bytes | Iterable[Instruction]) -> list[tuple[int, Instruction]]:
    """(pc, instruction) for each instruction, the second slot of an lddw left out."""
    if isinstance(code, (bytes, bytearray, memoryview)):
        slots = list(op.iter_slots(bytes(code)))
        out, i = [], 0
        while i < len(slots):
            opcode, dst, src, off, imm = slots[i]
            if opcode == op.OP_LDDW and i + 1 < len(slots):
                hi = slots[i + 1][4] & op.MASK32
                out.append((i, Instruction(opcode, dst, src, off, imm,
                                           (hi << 32) | (imm & op.MASK32))))
                i += 2
            else:
                out.append((i, Instruction(opcode, dst, src, off, imm)))
                i += 1
        return out
    out, pc, skip = [], 0, False
    for insn in code:
        if skip and insn.opcode == 0:  # decode's placeholder for an lddw's second slot
            skip = False
            continue
        out.append((pc, insn))
        skip = insn.imm64 is not None
        pc += 2 if skip else 1
    return out


def disassemble(code: bytes | list[Instruction], *, symbols: dict[int, str] | None = None,
                line_for: Callable[[int], tuple[str, int, str] | None] | None = None,
                relocations: dict[int, str] | None = None) -> str:
    """A listing in the shape of `llvm-objdump -d -l -S --no-show-raw-insn`.

    * `symbols` maps a pc to a function name: a "0000000000000010 <name>:" header (byte address)
      precedes it, and jumps get a " <name+0x18>" note naming their target, as llvm-objdump
      notes them; local calls whose target starts a function get " <name>" (llvm-objdump does
      not note calls; linked programs read better with it).
    * `line_for(pc)` returns (file, line, text) or None; when it changes, "; file:line" and
      "; text" lines precede the instruction.
    * `relocations` maps a pc to a note (e.g. the map an lddw loads), printed after the
      instruction as a comment: "r1 = 0 ll\t# my_map".

    Instruction lines are "{pc:>8}:\\t{text}" as llvm-objdump prints BPF (pc in 8-byte slots; an
    lddw takes two).
    """
    symbols = dict(symbols or {})
    relocations = relocations or {}
    starts = sorted(symbols)
    lines: list[str] = []
    last_line: tuple[str, int] | None = None

    def where(target: int) -> str | None:
        i = bisect.bisect_right(starts, target) - 1
        if i < 0:
            return None
        name, delta = symbols[starts[i]], (target - starts[i]) * op.INSN_SIZE
        return f"<{name}+0x{delta:x}>" if delta else f"<{name}>"

    for pc, insn in _instructions(code):
        if pc in symbols:
            if lines:
                lines.append("")
            lines.append(f"{pc * op.INSN_SIZE:016x} <{symbols[pc]}>:")
        if line_for is not None:
            info = line_for(pc)
            if info is not None and (info[0], info[1]) != last_line:
                last_line = (info[0], info[1])
                file, line, text = info
                if file:
                    lines.append(f"; {file}:{line}")
                if text:
                    lines.append(f"; {text}")
        text = format_insn(insn, pc)
        if symbols:
            target = jump_target(insn, pc)
            if insn.opcode == op.OP_CALL:
                # only a call into a function's first instruction; in an unlinked object the
                # call's imm is a -1 placeholder (target == pc) fixed by a relocation
                if target not in symbols or target == pc:
                    target = None
            note = where(target) if target is not None else None
            if note:
                text += f" {note}"
        if pc in relocations:
            text += f"\t# {relocations[pc]}"
        lines.append(f"{pc:>8}:\t{text}")
    return "\n".join(lines) + ("\n" if lines else "")
