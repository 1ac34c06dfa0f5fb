"""The conformance-syntax assembler: every upstream program, hand-encoded RFC 9669 bytes, labels,
errors."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ntoslab.conformance import parse_test
from ntoslab.isa import opcodes as op
from ntoslab.isa.assembler import AssemblyError, assemble, assemble_instructions

CONFORMANCE_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance" / "tests"
DATA_FILES = sorted(CONFORMANCE_DIR.glob("*.data"))


def test_conformance_files_present():
    assert len(DATA_FILES) == 313


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.name)
def test_conformance_program_assembles(path):
    test = parse_test(path.read_text(), path.name)
    code = assemble(test.asm)
    assert code and len(code) % 8 == 0
    if test.raw is not None:
        assert code == test.raw
    # decoding and re-encoding gives the same bytes; every jump lands on an instruction start
    insns = op.decode(code)
    assert op.encode(insns) == code
    second_slots = {pc + 1 for pc, i in enumerate(insns) if i.is_wide}
    for pc, insn in enumerate(insns):
        if pc in second_slots:
            continue
        if insn.cls in (op.CLS_JMP, op.CLS_JMP32) and insn.opcode & 0xF0 not in (
                op.JMP_CALL, op.JMP_EXIT):
            rel = insn.imm if insn.opcode == op.OP_JA32 else insn.offset
            target = pc + rel + 1
            assert 0 <= target < len(insns) and target not in second_slots, (path.name, pc)


def test_raw_sections_exist():
    raws = [p.name for p in DATA_FILES if "-- raw" in p.read_text()]
    assert "lddw.data" in raws


# Each row: source line, bytes computed by hand from RFC 9669: opcode, regs (src << 4 | dst),
# 16-bit little-endian offset, 32-bit little-endian imm.
HAND_ENCODED = [
    # ALU64 / ALU with immediate and register sources
    ("mov %r0, 1", "b7 00 0000 01000000"),
    ("mov32 %r1, -1", "b4 01 0000 ffffffff"),
    ("mov %r3, %r10", "bf a3 0000 00000000"),
    ("add %r1, %r2", "0f 21 0000 00000000"),
    ("add32 %r1, 0x80000000", "04 01 0000 00000080"),
    ("sub %r3, 5", "17 03 0000 05000000"),
    ("sub32 %r3, %r4", "1c 43 0000 00000000"),
    ("mul %r1, -2", "27 01 0000 feffffff"),
    ("mul32 %r1, %r2", "2c 21 0000 00000000"),
    ("div %r1, 3", "37 01 0000 03000000"),
    ("div32 %r1, %r2", "3c 21 0000 00000000"),
    ("sdiv %r1, 3", "37 01 0100 03000000"),
    ("sdiv32 %r1, %r2", "3c 21 0100 00000000"),
    ("mod %r1, %r2", "9f 21 0000 00000000"),
    ("mod32 %r1, 7", "94 01 0000 07000000"),
    ("smod %r1, %r2", "9f 21 0100 00000000"),
    ("smod32 %r1, -2", "94 01 0100 feffffff"),
    ("or %r1, 0x10", "47 01 0000 10000000"),
    ("or32 %r1, %r2", "4c 21 0000 00000000"),
    ("and %r1, %r2", "5f 21 0000 00000000"),
    ("and32 %r1, 0xff", "54 01 0000 ff000000"),
    ("lsh %r1, 63", "67 01 0000 3f000000"),
    ("lsh32 %r1, %r2", "6c 21 0000 00000000"),
    ("rsh %r1, %r2", "7f 21 0000 00000000"),
    ("rsh32 %r1, 4", "74 01 0000 04000000"),
    ("arsh %r1, %r2", "cf 21 0000 00000000"),
    ("arsh32 %r1, 1", "c4 01 0000 01000000"),
    ("xor %r1, %r2", "af 21 0000 00000000"),
    ("xor32 %r1, -1", "a4 01 0000 ffffffff"),
    ("neg %r1", "87 01 0000 00000000"),
    ("neg32 %r9", "84 09 0000 00000000"),
    # sign-extending moves: MOV | X with offset 8 / 16 / 32
    ("movsx864 %r1, %r2", "bf 21 0800 00000000"),
    ("movsx1664 %r1, %r2", "bf 21 1000 00000000"),
    ("movsx3264 %r1, %r2", "bf 21 2000 00000000"),
    ("movsx832 %r1, %r2", "bc 21 0800 00000000"),
    ("movsx1632 %r1, %r2", "bc 21 1000 00000000"),
    # byte swaps: END in ALU (source bit = byte order) and ALU64 (unconditional)
    ("le16 %r1", "d4 01 0000 10000000"),
    ("le32 %r1", "d4 01 0000 20000000"),
    ("le64 %r1", "d4 01 0000 40000000"),
    ("be16 %r1", "dc 01 0000 10000000"),
    ("be32 %r1", "dc 01 0000 20000000"),
    ("be64 %r1", "dc 01 0000 40000000"),
    ("bswap16 %r1", "d7 01 0000 10000000"),
    ("bswap32 %r1", "d7 01 0000 20000000"),
    ("bswap64 %r1", "d7 01 0000 40000000"),
    ("swap16 %r0", "d7 00 0000 10000000"),
    ("swap64 %r0", "d7 00 0000 40000000"),
    # loads (MEM and MEMSX), stores (ST immediate, STX register)
    ("ldxb %r0, [%r1+4]", "71 10 0400 00000000"),
    ("ldxh %r0, [%r1]", "69 10 0000 00000000"),
    ("ldxw %r2, [%r10-8]", "61 a2 f8ff 00000000"),
    ("ldxdw %r0, [%r1+0x10]", "79 10 1000 00000000"),
    ("ldxsb %r0, [%r1+2]", "91 10 0200 00000000"),
    ("ldxsh %r0, [%r1+2]", "89 10 0200 00000000"),
    ("ldxsw %r0, [%r1 + 2]", "81 10 0200 00000000"),
    ("stb [%r1+2], 0x11", "72 01 0200 11000000"),
    ("sth [%r1+2], 0x1122", "6a 01 0200 22110000"),
    ("stw [%r10-4], -1", "62 0a fcff ffffffff"),
    ("stdw [%r1], 1", "7a 01 0000 01000000"),
    ("stxb [%r1+2], %r3", "73 31 0200 00000000"),
    ("stxh [%r1+2], %r3", "6b 31 0200 00000000"),
    ("stxw [%r1+2], %r3", "63 31 0200 00000000"),
    ("stxdw [%r10-8], %r1", "7b 1a f8ff 00000000"),
    ("lddw %r0, 0x1122334455667788", "18 00 0000 88776655  00 00 0000 44332211"),
    ("lddw %r2, -1", "18 02 0000 ffffffff  00 00 0000 ffffffff"),
    # jumps, calls, exit
    ("ja +3", "05 00 0300 00000000"),
    ("ja -1", "05 00 ffff 00000000"),
    ("ja32 +5", "06 00 0000 05000000"),
    ("ja32 -2", "06 00 0000 feffffff"),
    ("jeq %r1, 5, +2", "15 01 0200 05000000"),
    ("jeq %r1, %r2, +2", "1d 21 0200 00000000"),
    ("jgt %r1, 5, +2", "25 01 0200 05000000"),
    ("jge %r1, %r2, +2", "3d 21 0200 00000000"),
    ("jset %r1, 0x8, +2", "45 01 0200 08000000"),
    ("jne %r1, -1, -2", "55 01 feff ffffffff"),
    ("jsgt %r1, %r2, +2", "6d 21 0200 00000000"),
    ("jsge %r1, 5, +2", "75 01 0200 05000000"),
    ("jlt %r1, 5, +2", "a5 01 0200 05000000"),
    ("jle %r1, %r2, +2", "bd 21 0200 00000000"),
    ("jslt %r1, 5, +2", "c5 01 0200 05000000"),
    ("jsle %r1, %r2, +2", "dd 21 0200 00000000"),
    ("jeq32 %r1, 5, +2", "16 01 0200 05000000"),
    ("jne32 %r1, %r2, -1", "5e 21 ffff 00000000"),
    ("jsle32 %r1, -5, +1", "d6 01 0100 fbffffff"),
    ("jgt32 %r1, 5, +2", "26 01 0200 05000000"),
    ("jge32 %r1, %r2, +2", "3e 21 0200 00000000"),
    ("jsgt32 %r1, %r2, +2", "6e 21 0200 00000000"),
    ("jsge32 %r1, 5, +2", "76 01 0200 05000000"),
    ("jlt32 %r1, 5, +2", "a6 01 0200 05000000"),
    ("jle32 %r1, %r2, +2", "be 21 0200 00000000"),
    ("jslt32 %r1, 5, +2", "c6 01 0200 05000000"),
    ("jset32 %r1, %r2, +1", "4e 21 0100 00000000"),
    ("call 5", "85 00 0000 05000000"),
    ("call %r2", "8d 02 0000 00000000"),
    ("exit", "95 00 0000 00000000"),
    # atomics: STX | ATOMIC | W or DW, imm = operation | FETCH
    ("lock add [%r1+8], %r2", "db 21 0800 00000000"),
    ("lock add32 [%r1+8], %r2", "c3 21 0800 00000000"),
    ("lock fetch add [%r1+8], %r2", "db 21 0800 01000000"),
    ("lock fetch add32 [%r1], %r2", "c3 21 0000 01000000"),
    ("lock or [%r1], %r2", "db 21 0000 40000000"),
    ("lock fetch or32 [%r1], %r2", "c3 21 0000 41000000"),
    ("lock and [%r1-8], %r2", "db 21 f8ff 50000000"),
    ("lock fetch and [%r1], %r2", "db 21 0000 51000000"),
    ("lock xor32 [%r1], %r2", "c3 21 0000 a0000000"),
    ("lock fetch xor [%r1], %r2", "db 21 0000 a1000000"),
    ("lock xchg [%r1], %r2", "db 21 0000 e1000000"),
    ("lock xchg32 [%r1+4], %r2", "c3 21 0400 e1000000"),
    ("lock cmpxchg [%r1], %r2", "db 21 0000 f1000000"),
    ("lock cmpxchg32 [%r1], %r2", "c3 21 0000 f1000000"),
]


@pytest.mark.parametrize("line,expected", HAND_ENCODED, ids=[r[0] for r in HAND_ENCODED])
def test_hand_encoded(line, expected):
    assert assemble(line) == bytes.fromhex(expected.replace(" ", ""))


def test_every_mnemonic_family_is_covered_by_hand_encodings():
    seen = {line.split()[0] if not line.startswith("lock") else "lock" for line, _ in HAND_ENCODED}
    mnemonics = set()
    for path in DATA_FILES:
        for line in parse_test(path.read_text()).asm.splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.endswith(":"):
                mnemonics.add(line.split()[0])
    # swap32 is covered by swap16 / swap64 and bswap32 (same encoding family)
    assert mnemonics - seen <= {"swap32"}


def test_comments_blank_lines_and_whitespace():
    text = "# header\n\n   mov %r0 , 1   # trailing comment\n\texit\n"
    assert assemble(text) == bytes.fromhex("b700000001000000" "9500000000000000")


def test_numbers():
    assert assemble("mov %r0, 0xFFFFFFFF") == assemble("mov %r0, -1")
    assert assemble("mov %r0, 0x1ffffffff") == assemble("mov %r0, -1")  # truncated to 32 bits
    assert assemble("mov %r0, -0x10") == assemble("mov %r0, -16")
    assert assemble("lddw %r0, 0x1ffffffffffffffff") == assemble("lddw %r0, -1")


def test_label_forward_backward_and_lddw_counts_two_slots():
    code = assemble("""
    start:
        jeq %r1, 0, done     # slot 0: done is slot 3 -> offset 3 - 0 - 1 = 2
        lddw %r0, 1          # slots 1-2
    done:
        ja start             # slot 3: start is slot 0 -> offset 0 - 3 - 1 = -4
        exit                 # slot 4
    """)
    insns = op.decode(code)
    assert insns[0].offset == 2
    assert insns[3].opcode == op.OP_JA and insns[3].offset == -4


def test_implicit_exit_label_is_first_exit():
    insns = op.decode(assemble("ja exit\nmov %r0, 1\nexit\nmov %r0, 2\nexit"))
    assert insns[0].offset == 1
    # a defined label named exit wins
    insns = op.decode(assemble("ja exit\nexit\nexit:\nexit"))
    assert insns[0].offset == 1
    # a conditional jump to exit before the exit instruction exists
    insns = op.decode(assemble("jeq %r1, 0, exit\nlddw %r0, 3\nexit"))
    assert insns[0].offset == 2


def test_call_local_and_ja32_labels():
    insns = op.decode(assemble("call local f\nexit\nmov %r0, 1\nf:\nmov %r0, 2\nexit"))
    assert (insns[0].opcode, insns[0].src, insns[0].imm, insns[0].offset) == (
        op.OP_CALL, op.CALL_LOCAL, 2, 0)
    insns = op.decode(assemble("top:\nmov %r0, 0\nja32 top\nja32 end\nend:\nexit"))
    assert insns[1].imm == -2 and insns[1].offset == 0
    assert insns[2].imm == 0


def test_ja32_file_matches_hand_computation():
    code = assemble((CONFORMANCE_DIR / "ja32.data").read_text().split("-- asm")[1]
                    .split("-- result")[0])
    insns = op.decode(code)
    # mov; ja32 L2 (slot 4 -> 4-1-1 = 2); L1: mov; exit; L2: mov; ja32 L1 (slot 2 -> 2-5-1 = -4)
    assert [i.imm for i in insns if i.opcode == op.OP_JA32] == [2, -4]


def test_assemble_instructions_keeps_lddw_as_one_entry():
    insns = assemble_instructions("lddw %r1, 0x100000002\nexit")
    assert len(insns) == 2 and insns[0].imm64 == 0x1_0000_0002 and insns[0].imm == 2


@pytest.mark.parametrize("text,message", [
    ("mov %r0, 1\nfoo %r1", "line 2: unknown mnemonic 'foo': foo %r1"),
    ("mov %r11, 1", "line 1: not a register: '%r11': mov %r11, 1"),
    ("mov %r0", "line 1: mov takes 2 operand(s), got 1: mov %r0"),
    ("mov %r0, abc", "line 1: not a number: 'abc': mov %r0, abc"),
    ("ldxw %r0, %r1", "line 1: not a memory operand [%rN+off]: '%r1': ldxw %r0, %r1"),
    ("ldxw %r0, [%r1+40000]",
     "line 1: offset 40000 does not fit in 16 bits: ldxw %r0, [%r1+40000]"),
    ("ja +40000", "line 1: jump offset 40000 does not fit in 16 bits: ja +40000"),
    ("\n\nja nowhere # c\nexit", "line 3: unknown label 'nowhere': ja nowhere # c"),
    ("a:\na:\nexit", "line 2: label 'a' defined twice: a:"),
    ("lock nand [%r1], %r2", "line 1: unknown atomic operation 'nand': lock nand [%r1], %r2"),
    ("lock fetch xchg [%r1], %r2", "line 1: xchg always fetches; drop 'fetch': "
                                   "lock fetch xchg [%r1], %r2"),
    ("ldxsdw %r0, [%r1]", "line 1: unknown mnemonic 'ldxsdw': ldxsdw %r0, [%r1]"),
    ("ja", "line 1: ja takes 1 operand(s), got 0: ja"),
])
def test_errors(text, message):
    with pytest.raises(AssemblyError) as info:
        assemble(text)
    assert str(info.value) == message
    assert re.match(r"line \d+: ", str(info.value))
