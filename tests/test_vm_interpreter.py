"""The reference interpreter: control flow, calls, tail calls, atomics and every kind of fault."""
from __future__ import annotations

import pytest

from ntoslab.isa.assembler import assemble
from ntoslab.isa.opcodes import decode
from ntoslab.vm import (
    HelperError,
    Interpreter,
    Machine,
    ProgramError,
    RawCode,
    StopProgram,
    TailCall,
    VmFault,
)


def code(asm: str, name: str = "test") -> RawCode:
    return RawCode(name, decode(assemble(asm)))


def run(asm: str, machine: Machine | None = None, args=(), budget: int = 100_000):
    return Interpreter().run(code(asm), machine or Machine(), args, budget)


def test_local_calls_preserve_callee_saved_registers_and_use_fresh_frames():
    r = run("""
        mov %r6, 6
        stdw [%r10-8], 77
        mov %r1, 5
        call local double
        ldxdw %r2, [%r10-8]
        add %r0, %r2
        add %r0, %r6
        exit
    double:
        stdw [%r10-8], 1000
        mov %r6, 99
        mov %r0, %r1
        lsh %r0, 1
        exit
    """)
    # callee's stack write went to its own frame; r6 restored: 10 + 77 + 6
    assert r.r0 == 93


def test_call_depth_limit_is_eight_frames():
    recursive = """
        mov %r0, 0
        call local f
        exit
    f:
        add %r0, 1
        call local f
        exit
    """
    with pytest.raises(VmFault) as info:
        run(recursive)
    assert info.value.kind == "call"
    assert "8 frames" in str(info.value)


def test_budget_stops_runaway_loop_and_names_pc():
    with pytest.raises(VmFault) as info:
        run("mov %r0, 0\nloop:\nadd %r0, 1\nja loop\nexit", budget=5000)
    f = info.value
    assert f.kind == "budget" and f.pc in (1, 2) and "5000" in str(f)


@pytest.mark.parametrize("asm, region, write", [
    ("stxdw [%r10+0], %r1\nexit", "stack frame 0", True),        # just above the frame
    ("ldxdw %r0, [%r10-520]\nexit", "stack frame 0", False),     # below the 512-byte frame
    ("ldxw %r0, [%r1+14]\nexit", "test memory", False),          # runs 2 bytes past 16
    ("ldxb %r0, [%r1-1]\nexit", "test memory", False),
])
def test_out_of_bounds_access_faults_with_nearest_region(asm, region, write):
    machine = Machine()
    mem = machine.memory.add("test memory", bytearray(16))
    with pytest.raises(VmFault) as info:
        Interpreter().run(code(asm), machine, [mem.base])
    f = info.value
    assert f.kind == "memory" and f.region == region and f.pc == 0
    assert ("write" if write else "read") in str(f)
    assert f.instruction  # disassembled instruction text is part of the report


def test_write_to_read_only_region_faults():
    machine = Machine()
    ctx = machine.memory.add("context", bytearray(8), writable=False)
    with pytest.raises(VmFault) as info:
        Interpreter().run(code("stw [%r1+0], 1\nexit"), machine, [ctx.base])
    assert "read-only" in str(info.value) and info.value.region == "context"


def test_null_pointer_read_faults():
    with pytest.raises(VmFault, match="null pointer"):
        run("mov %r1, 0\nldxdw %r0, [%r1+8]\nexit")


def test_unknown_helper_is_rejected_before_running():
    with pytest.raises(ProgramError, match="unknown helper id 999"):
        run("call 999\nexit")


@pytest.mark.parametrize("asm, message", [
    ("ja +5\nexit", "outside the program"),
    ("mov %r10, 1\nexit", "read-only"),
    ("mov %r0, 1", None),
])
def test_malformed_programs(asm, message):
    if message is None:  # falls off the end: a run-time fault
        with pytest.raises(VmFault, match="past the last instruction"):
            run(asm)
    else:
        with pytest.raises(ProgramError, match=message):
            run(asm)


def test_unknown_opcode_rejected():
    with pytest.raises(ProgramError, match="unknown opcode 0xff"):
        Interpreter().run(RawCode("bad", decode(bytes.fromhex("ff00000000000000"))), Machine())


def test_helper_stop_program_and_helper_error():
    def unwind(m, r1, *_):
        if r1 == 0:
            raise StopProgram(0)
        return r1

    def broken(m, *_):
        raise HelperError("argument 1 is not a map")

    machine = Machine(helpers={5: unwind, 7: broken})
    assert Interpreter().run(code("mov %r1, 0\ncall 5\nmov %r0, 9\nexit"), machine).r0 == 0
    assert Interpreter().run(code("mov %r1, 3\ncall 5\nadd %r0, 1\nexit"), machine).r0 == 4
    with pytest.raises(VmFault) as info:
        Interpreter().run(code("call 7\nexit"), machine)
    assert info.value.kind == "helper" and info.value.pc == 0


def test_tail_calls_run_after_exit_and_stop_at_33():
    """Windows semantics: bpf_tail_call records the target; it runs when the caller returns."""
    counter = {"calls": 0}
    target = code("""
        mov %r6, %r1
        mov %r2, 0
        call 5
        jne %r0, 0, failed
        mov %r0, 1
        exit
    failed:
        mov %r0, %r0
        exit
    """, "again")

    def tail_call(m, ctx, *_):
        counter["calls"] += 1
        return TailCall(target, ctx, failure=-27)

    machine = Machine(helpers={5: tail_call})
    start = code("mov %r2, 0\ncall 5\nmov %r0, 42\nexit", "start")
    r = Interpreter().run(start, machine, [0x1234])
    # 1 + 33 helper calls: the 34th fails with -27 and that program returns it
    assert r.tail_calls == 33
    assert counter["calls"] == 34
    assert r.r0 == (-27) & (2**64 - 1)


@pytest.mark.parametrize("asm, r0, mem", [
    ("lock add [%r1+0], %r2\nldxdw %r0, [%r1+0]", 15, 10),
    ("lock fetch add [%r1+0], %r2\nmov %r0, %r2", 10, 10),
    ("lock fetch or32 [%r1+0], %r2\nldxw %r0, [%r1+0]", 15, 10),
    ("lock xchg [%r1+0], %r2\nldxdw %r0, [%r1+0]", 5, 10),
    ("mov %r0, 10\nlock cmpxchg [%r1+0], %r2\nldxdw %r0, [%r1+0]", 5, 10),
    ("mov %r0, 11\nlock cmpxchg [%r1+0], %r2", 10, 10),  # no match: r0 = old
    ("lock fetch xor32 [%r1+0], %r2\nmov %r0, %r2", 10, 10),
    ("lock and [%r1+0], %r2\nldxdw %r0, [%r1+0]", 0, 10),
])
def test_atomics(asm, r0, mem):
    machine = Machine()
    region = machine.memory.add("m", bytearray(mem.to_bytes(8, "little")))
    result = Interpreter().run(code("mov %r2, 5\n" + asm + "\nexit"), machine, [region.base])
    assert result.r0 == r0


def test_instruction_count_is_reported():
    r = run("mov %r0, 0\nmov %r1, 3\nloop:\nadd %r0, 2\nsub %r1, 1\njne %r1, 0, loop\nexit")
    assert r.r0 == 6 and r.instructions == 2 + 3 * 3 + 1
