"""Property tests: the interpreter's ALU and JMP semantics against a small independent model.

The model below is written from RFC 9669's prose with ctypes fixed-width integers and exact
fractions, not from the interpreter's code: division truncates toward zero, x/0 = 0, x%0 = x,
shift amounts are masked, 32-bit results are zero-extended.
"""
from __future__ import annotations

import ctypes
import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from ntoslab.isa.opcodes import Instruction, encode
from ntoslab.vm import Interpreter, Machine, RawCode

U64 = st.integers(0, 2**64 - 1)
EDGE64 = st.sampled_from([0, 1, 2, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000,
                          2**63 - 1, 2**63, 2**64 - 1, 2**64 - 2])
VAL64 = st.one_of(U64, EDGE64)
IMM32 = st.integers(-(2**31), 2**31 - 1)


def u(bits: int, v: int) -> int:
    return (ctypes.c_uint64 if bits == 64 else ctypes.c_uint32)(v).value


def s(bits: int, v: int) -> int:
    return (ctypes.c_int64 if bits == 64 else ctypes.c_int32)(v).value


def trunc_div(a: int, b: int) -> int:
    return math.trunc(Fraction(a, b))


def model_alu(name: str, bits: int, a: int, b: int) -> int:
    """Result register (64-bit) of `a op b` at width `bits`."""
    a, b = u(bits, a), u(bits, b)
    sh = b % bits
    if name == "add":
        r = a + b
    elif name == "sub":
        r = a - b
    elif name == "mul":
        r = a * b
    elif name == "div":
        r = 0 if b == 0 else a // b
    elif name == "sdiv":
        r = 0 if b == 0 else trunc_div(s(bits, a), s(bits, b))
    elif name == "mod":
        r = a if b == 0 else a % b
    elif name == "smod":
        if b == 0:
            r = a
        else:
            sa, sb = s(bits, a), s(bits, b)
            r = sa - sb * trunc_div(sa, sb)
    elif name == "or":
        r = a | b
    elif name == "and":
        r = a & b
    elif name == "xor":
        r = a ^ b
    elif name == "lsh":
        r = a << sh
    elif name == "rsh":
        r = a >> sh
    elif name == "arsh":
        r = s(bits, a) >> sh
    elif name == "mov":
        r = b
    elif name == "neg":
        r = -s(bits, a)
    else:  # pragma: no cover
        raise AssertionError(name)
    return u(bits, r)


ALU_CODES = {"add": 0x00, "sub": 0x10, "mul": 0x20, "div": 0x30, "sdiv": 0x30, "or": 0x40,
             "and": 0x50, "lsh": 0x60, "rsh": 0x70, "neg": 0x80, "mod": 0x90, "smod": 0x90,
             "xor": 0xA0, "mov": 0xB0, "arsh": 0xC0}


def lddw(reg: int, value: int) -> Instruction:
    return Instruction(0x18, reg, 0, 0, ctypes.c_int32(value & 0xFFFF_FFFF).value, value)


def run(insns: list[Instruction]) -> int:
    return Interpreter().run(RawCode("prop", _slots(insns)), Machine()).r0


def _slots(insns):
    from ntoslab.isa.opcodes import decode
    return decode(encode(insns))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(ALU_CODES)), st.sampled_from([32, 64]), VAL64, VAL64)
def test_alu_register_operand(name, bits, a, b):
    cls = 0x07 if bits == 64 else 0x04
    off = 1 if name in ("sdiv", "smod") else 0
    prog = [lddw(0, a), lddw(1, b), Instruction(cls | 0x08 | ALU_CODES[name], 0, 1, off, 0),
            Instruction(0x95, 0, 0, 0, 0)]
    assert run(prog) == model_alu(name, bits, a, b)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(ALU_CODES)), st.sampled_from([32, 64]), VAL64, IMM32)
def test_alu_immediate_operand(name, bits, a, imm):
    cls = 0x07 if bits == 64 else 0x04
    off = 1 if name in ("sdiv", "smod") else 0
    prog = [lddw(0, a), Instruction(cls | ALU_CODES[name], 0, 0, off, imm),
            Instruction(0x95, 0, 0, 0, 0)]
    # RFC 9669: ALU64 sign-extends the 32-bit immediate; ALU uses it as 32 bits.
    b = u(64, imm) if bits == 64 else u(32, imm)
    assert run(prog) == model_alu(name, bits, a, b)


def model_jump(name: str, bits: int, a: int, b: int) -> bool:
    a, b = u(bits, a), u(bits, b)
    sa, sb = s(bits, a), s(bits, b)
    return {"jeq": a == b, "jne": a != b, "jgt": a > b, "jge": a >= b, "jlt": a < b,
            "jle": a <= b, "jset": bool(a & b), "jsgt": sa > sb, "jsge": sa >= sb,
            "jslt": sa < sb, "jsle": sa <= sb}[name]


JMP_CODES = {"jeq": 0x10, "jgt": 0x20, "jge": 0x30, "jset": 0x40, "jne": 0x50, "jsgt": 0x60,
             "jsge": 0x70, "jlt": 0xA0, "jle": 0xB0, "jslt": 0xC0, "jsle": 0xD0}


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(JMP_CODES)), st.sampled_from([32, 64]), VAL64, VAL64,
       st.booleans(), IMM32)
def test_conditional_jumps(name, bits, a, b, use_imm, imm):
    cls = 0x05 if bits == 64 else 0x06
    if use_imm:
        cmp = Instruction(cls | JMP_CODES[name], 1, 0, 1, imm)
        b = u(64, imm)  # JMP sign-extends imm to 64 bits; JMP32 uses its low 32 bits
    else:
        cmp = Instruction(cls | 0x08 | JMP_CODES[name], 1, 2, 1, 0)
    prog = [lddw(1, a), lddw(2, b), Instruction(0xB7, 0, 0, 0, 1), cmp,
            Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95, 0, 0, 0, 0)]
    # taken: skip "r0 = 0" and return 1
    assert run(prog) == (1 if model_jump(name, bits, a, b) else 0)


@settings(max_examples=200, deadline=None)
@given(VAL64, st.sampled_from([16, 32, 64]), st.sampled_from(["le", "be", "bswap"]))
def test_byte_swaps(a, width, kind):
    opcode = {"le": 0xD4, "be": 0xDC, "bswap": 0xD7}[kind]
    low = a & ((1 << width) - 1)
    data = low.to_bytes(width // 8, "little")
    expected = low if kind == "le" else int.from_bytes(data, "big")
    assert run([lddw(0, a), Instruction(opcode, 0, 0, 0, width),
                Instruction(0x95, 0, 0, 0, 0)]) == expected


@settings(max_examples=200, deadline=None)
@given(VAL64, st.sampled_from([(64, 8), (64, 16), (64, 32), (32, 8), (32, 16)]))
def test_movsx(a, form):
    bits, width = form
    cls = 0x07 if bits == 64 else 0x04
    prog = [lddw(1, a), Instruction(cls | 0x08 | 0xB0, 0, 1, width, 0),
            Instruction(0x95, 0, 0, 0, 0)]
    low = a & ((1 << width) - 1)
    signed = ctypes.c_int8(low).value if width == 8 else \
        ctypes.c_int16(low).value if width == 16 else ctypes.c_int32(low).value
    assert run(prog) == u(bits, signed)


@settings(max_examples=200, deadline=None)
@given(VAL64, st.sampled_from([1, 2, 4, 8]), st.booleans())
def test_loads_zero_and_sign_extend(value, size, signed):
    if signed and size == 8:
        signed = False
    size_bits = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}[size]
    mode = 0x80 if signed else 0x60
    # store the value on the stack, load it back with the chosen width
    prog = [lddw(1, value), Instruction(0x7B, 10, 1, -8, 0),
            Instruction(0x01 | mode | size_bits, 0, 10, -8, 0), Instruction(0x95, 0, 0, 0, 0)]
    low = value & ((1 << (8 * size)) - 1)
    expected = u(64, s(64, low - (1 << 8 * size) if signed and low >> (8 * size - 1) else low))
    assert run(prog) == expected
