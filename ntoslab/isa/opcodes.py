"""The eBPF instruction set (RFC 9669): encoding constants and instruction decoding.

Every other part of ntoslab (assembler, disassembler, loader, engines) speaks in these names.

>>> insns = decode(bytes.fromhex("b700000001000000" "9500000000000000"))
>>> [i.opcode for i in insns]
[183, 149]
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator

INSN_SIZE = 8

# Instruction classes (low 3 bits of the opcode).
CLS_LD = 0x00
CLS_LDX = 0x01
CLS_ST = 0x02
CLS_STX = 0x03
CLS_ALU = 0x04
CLS_JMP = 0x05
CLS_JMP32 = 0x06
CLS_ALU64 = 0x07
CLASS_NAMES = {CLS_LD: "ld", CLS_LDX: "ldx", CLS_ST: "st", CLS_STX: "stx",
               CLS_ALU: "alu", CLS_JMP: "jmp", CLS_JMP32: "jmp32", CLS_ALU64: "alu64"}

# Source bit (ALU/JMP).
SRC_K = 0x00
SRC_X = 0x08

# ALU operations (high 4 bits).
ALU_ADD = 0x00
ALU_SUB = 0x10
ALU_MUL = 0x20
ALU_DIV = 0x30
ALU_OR = 0x40
ALU_AND = 0x50
ALU_LSH = 0x60
ALU_RSH = 0x70
ALU_NEG = 0x80
ALU_MOD = 0x90
ALU_XOR = 0xA0
ALU_MOV = 0xB0
ALU_ARSH = 0xC0
ALU_END = 0xD0
ALU_NAMES = {ALU_ADD: "add", ALU_SUB: "sub", ALU_MUL: "mul", ALU_DIV: "div", ALU_OR: "or",
             ALU_AND: "and", ALU_LSH: "lsh", ALU_RSH: "rsh", ALU_NEG: "neg", ALU_MOD: "mod",
             ALU_XOR: "xor", ALU_MOV: "mov", ALU_ARSH: "arsh", ALU_END: "end"}
# For ALU_END in class ALU the source bit selects the byte order; in ALU64 it is bswap.
END_TO_LE = SRC_K
END_TO_BE = SRC_X

# Jump operations (high 4 bits).
JMP_JA = 0x00
JMP_JEQ = 0x10
JMP_JGT = 0x20
JMP_JGE = 0x30
JMP_JSET = 0x40
JMP_JNE = 0x50
JMP_JSGT = 0x60
JMP_JSGE = 0x70
JMP_CALL = 0x80
JMP_EXIT = 0x90
JMP_JLT = 0xA0
JMP_JLE = 0xB0
JMP_JSLT = 0xC0
JMP_JSLE = 0xD0
JMP_NAMES = {JMP_JA: "ja", JMP_JEQ: "jeq", JMP_JGT: "jgt", JMP_JGE: "jge", JMP_JSET: "jset",
             JMP_JNE: "jne", JMP_JSGT: "jsgt", JMP_JSGE: "jsge", JMP_CALL: "call",
             JMP_EXIT: "exit", JMP_JLT: "jlt", JMP_JLE: "jle", JMP_JSLT: "jslt", JMP_JSLE: "jsle"}
CONDITIONAL_JUMPS = (JMP_JEQ, JMP_JGT, JMP_JGE, JMP_JSET, JMP_JNE, JMP_JSGT, JMP_JSGE,
                     JMP_JLT, JMP_JLE, JMP_JSLT, JMP_JSLE)

# Load/store size (bits 3-4) and mode (bits 5-7).
SIZE_W = 0x00
SIZE_H = 0x08
SIZE_B = 0x10
SIZE_DW = 0x18
SIZE_BYTES = {SIZE_W: 4, SIZE_H: 2, SIZE_B: 1, SIZE_DW: 8}
SIZE_SUFFIX = {SIZE_W: "w", SIZE_H: "h", SIZE_B: "b", SIZE_DW: "dw"}
MODE_IMM = 0x00
MODE_ABS = 0x20
MODE_IND = 0x40
MODE_MEM = 0x60
MODE_MEMSX = 0x80
MODE_ATOMIC = 0xC0

# Atomic operations (imm of a STX|ATOMIC instruction).
ATOMIC_FETCH = 0x01
ATOMIC_ADD = ALU_ADD
ATOMIC_OR = ALU_OR
ATOMIC_AND = ALU_AND
ATOMIC_XOR = ALU_XOR
ATOMIC_XCHG = 0xE0 | ATOMIC_FETCH
ATOMIC_CMPXCHG = 0xF0 | ATOMIC_FETCH
ATOMIC_NAMES = {ATOMIC_ADD: "add", ATOMIC_OR: "or", ATOMIC_AND: "and", ATOMIC_XOR: "xor",
                ATOMIC_XCHG: "xchg", ATOMIC_CMPXCHG: "cmpxchg"}
ATOMIC_OPS = frozenset([ATOMIC_ADD, ATOMIC_OR, ATOMIC_AND, ATOMIC_XOR,
                        ATOMIC_ADD | ATOMIC_FETCH, ATOMIC_OR | ATOMIC_FETCH,
                        ATOMIC_AND | ATOMIC_FETCH, ATOMIC_XOR | ATOMIC_FETCH,
                        ATOMIC_XCHG, ATOMIC_CMPXCHG])

# Frequently used whole opcodes.
OP_LDDW = CLS_LD | MODE_IMM | SIZE_DW  # 0x18
OP_CALL = CLS_JMP | JMP_CALL  # 0x85
OP_CALLX = CLS_JMP | JMP_CALL | SRC_X  # 0x8d
OP_EXIT = CLS_JMP | JMP_EXIT  # 0x95
OP_JA = CLS_JMP | JMP_JA  # 0x05
OP_JA32 = CLS_JMP32 | JMP_JA  # 0x06 (gotol: offset in imm)

# src_reg values of lddw (RFC 9669 section 5.4).
LDDW_IMM64 = 0
LDDW_MAP_FD = 1
LDDW_MAP_VALUE = 2
LDDW_VARIABLE = 3
LDDW_CODE = 4
LDDW_MAP_IDX = 5
LDDW_MAP_IDX_VALUE = 6
LDDW_NAMES = {LDDW_MAP_FD: "map_fd", LDDW_MAP_VALUE: "map_value", LDDW_VARIABLE: "variable",
              LDDW_CODE: "code", LDDW_MAP_IDX: "map_idx", LDDW_MAP_IDX_VALUE: "map_idx_value"}

# src_reg values of call (RFC 9669 section 4.3.1).
CALL_HELPER = 0
CALL_LOCAL = 1
CALL_BTF_ID = 2

STACK_FRAME_SIZE = 512
MAX_CALL_DEPTH = 8
MAX_TAIL_CALLS = 33

MASK32 = 0xFFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF

_INSN = struct.Struct("<BBhi")


@dataclass(frozen=True, slots=True)
class Instruction:
    """One decoded 8-byte instruction slot.

    `imm` is the signed 32-bit immediate; for the first slot of an lddw, `imm64` holds the full
    value (low word from this slot, high word from the next) and `src` tells its kind.
    """

    opcode: int
    dst: int
    src: int
    offset: int
    imm: int
    imm64: int | None = None

    @property
    def cls(self) -> int:
        return self.opcode & 0x07

    @property
    def is_wide(self) -> bool:
        return self.opcode == OP_LDDW

    def encode(self) -> bytes:
        first = _INSN.pack(self.opcode, (self.src << 4) | self.dst, self.offset, self.imm)
        if self.imm64 is None:
            return first
        hi = (self.imm64 >> 32) & MASK32
        return first + _INSN.pack(0, 0, 0, sign32(hi))


def sign32(value: int) -> int:
    """Interpret the low 32 bits of `value` as a signed integer."""
    value &= MASK32
    return value - (1 << 32) if value & 0x8000_0000 else value


def sign64(value: int) -> int:
    """Interpret the low 64 bits of `value` as a signed integer."""
    value &= MASK64
    return value - (1 << 64) if value & (1 << 63) else value


class DecodeError(ValueError):
    """Raised for bytecode that cannot be split into instructions."""


def iter_slots(code: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """Yield (opcode, dst, src, offset, imm) for each 8-byte slot of `code`."""
    if len(code) % INSN_SIZE:
        raise DecodeError(f"bytecode length {len(code)} is not a multiple of {INSN_SIZE}")
    for opcode, regs, off, imm in _INSN.iter_unpack(code):
        yield opcode, regs & 0x0F, regs >> 4, off, imm


def decode(code: bytes) -> list[Instruction]:
    """Decode bytecode into one `Instruction` per 8-byte slot.

    The second slot of an lddw is kept (as an opcode-0 placeholder) so indices equal pcs.
    """
    slots = list(iter_slots(code))
    out: list[Instruction] = []
    i = 0
    while i < len(slots):
        opcode, dst, src, off, imm = slots[i]
        if opcode == OP_LDDW:
            if i + 1 >= len(slots):
                raise DecodeError(f"pc {i}: lddw is missing its second slot")
            hi = slots[i + 1][4] & MASK32
            out.append(Instruction(opcode, dst, src, off, imm, ((hi << 32) | (imm & MASK32))))
            n = slots[i + 1]
            out.append(Instruction(n[0], n[1], n[2], n[3], n[4]))
            i += 2
            continue
        out.append(Instruction(opcode, dst, src, off, imm))
        i += 1
    return out


def encode(insns: list[Instruction]) -> bytes:
    """Encode instructions to bytecode.

    The second slot of an lddw is regenerated from `imm64`; the placeholder `decode` leaves for
    it (an opcode-0 slot) may be present or omitted.
    """
    out = bytearray()
    after_lddw = False
    for insn in insns:
        if after_lddw and insn.opcode == 0:
            after_lddw = False
            continue
        out += insn.encode()
        after_lddw = insn.imm64 is not None
    return bytes(out)
