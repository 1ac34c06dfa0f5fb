"""The Stepper: stepping a program to its end gives what Interpreter().run gives (same r0,
instruction count, faults, map state), and the state between steps is the one the instructions
define (hand-computed)."""
from __future__ import annotations

import pytest
from conftest import CONFORMANCE_DIR, ROOT

import ntoslab
from ntoslab.conformance import conformance_machine, parse_test
from ntoslab.debug.stepper import Stepper
from ntoslab.isa.assembler import AssemblyError, assemble
from ntoslab.isa.opcodes import decode
from ntoslab.vm import Engine, Interpreter, Machine, ProgramError, RawCode, VmFault


class SteppingEngine(Engine):
    """An engine that runs every program through a Stepper (the oracle is the interpreter)."""

    name = "stepper"

    def __init__(self) -> None:
        self.interpreter = Interpreter()

    def prepare(self, code, machine):
        return self.interpreter.prepare(code, machine)

    def run(self, code, machine, args=(), budget=1_000_000):
        return Stepper(code, machine, args, budget, self.interpreter).run()


def code(asm: str) -> RawCode:
    return RawCode("test", decode(assemble(asm)))


def outcome(fn):
    try:
        r = fn()
        return ("ok", r.r0, r.instructions, r.tail_calls)
    except VmFault as f:
        return ("fault", f.kind, f.pc, f.instructions, f.address, f.region, str(f))


CONFORMANCE = sorted(CONFORMANCE_DIR.glob("*.data")) if CONFORMANCE_DIR.is_dir() else []


@pytest.mark.skipif(not CONFORMANCE, reason=f"{CONFORMANCE_DIR} (../shared) is not beside the checkout")
def test_every_conformance_program_steps_to_the_interpreters_result():
    compared = 0
    for path in CONFORMANCE:
        test = parse_test(path.read_text(), path.name)
        try:
            raw = test.raw if test.raw is not None and not test.asm.strip() else assemble(test.asm)
        except (AssemblyError, ValueError):
            continue
        prog = RawCode.from_bytes(raw, path.name)
        m1, a1 = conformance_machine(test.mem or b"")
        m2, a2 = conformance_machine(test.mem or b"")
        try:
            expected = outcome(lambda: Interpreter().run(prog, m1, a1, 100_000))
        except ProgramError as exc:      # refused before running: the Stepper refuses too
            with pytest.raises(ProgramError) as info:
                Stepper(prog, m2, a2, 100_000)
            assert str(info.value) == str(exc)
            continue
        got = outcome(lambda: Stepper(prog, m2, a2, 100_000).run())
        assert got == expected, path.name
        compared += 1
    assert compared > 290


@pytest.mark.parametrize("stem", ["bench_utf16", "bench_hash", "globals", "maps_btf",
                                  "legacy_maps", "tailcall"])
def test_compiled_programs_in_a_sandbox_match_the_interpreter(stem):
    path = ROOT / "bpf" / "tests" / f"{stem}.o"
    if not path.exists():
        pytest.skip(f"{path} not built (make build)")
    results = []
    for engine in (Interpreter(), SteppingEngine()):
        obj = ntoslab.load(path)
        box = ntoslab.Sandbox(obj, engine=engine)
        runs = [(p.name, outcome(lambda: box.run(p, bytes(range(144)), budget=200_000)))
                for p in obj.programs for _ in range(2)]
        maps = {n: sorted((bytes(k), bytes(v)) for k, v in m.items())
                for n, m in box.maps.items() if hasattr(m, "items") and m.spec.type in (1, 2)}
        results.append((runs, maps))
    assert results[1] == results[0]


def test_process_programs_on_the_hook_give_the_same_verdicts_and_records():
    E = ntoslab.ProcessEvent
    events = [E.create(1300, 1000, r"\??\C:\tools\mimikatz.exe", "mimikatz.exe privilege::debug"),
              E.create(1301, 1300, r"\??\C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
                       "powershell.exe -EncodedCommand ZQBjAGgAbwA="),
              E.create(1302, 1000, r"\??\C:\x.exe", "x.exe " + "a" * 300, token_sid="S-1-5-18"),
              E.delete(1300, exit_code=456)]
    seen = []
    for engine in (Interpreter(), SteppingEngine()):
        with ntoslab.emulator() as hook:
            mon = hook.load(ROOT / "bpf" / "process_monitor.o", engine=engine)
            pol = hook.load(ROOT / "bpf" / "examples" / "deny_policy.o", engine=engine)
            hook.attach(mon.program("ProcessMonitor"))
            hook.attach(pol.program("DenyPolicy"))
            verdicts = [hook.inject(e).as_row() for e in events]
            seen.append((verdicts, mon.ringbuf("process_ringbuf").records(),
                         pol.map("denials").to_frame().to_dict("records")))
    assert seen[1] == seen[0]
    assert [v["denied"] for v in seen[0][0]] == [True, True, False, False]


def test_state_between_steps_is_what_the_instructions_define():
    s = Stepper(code("""
        mov %r6, 6
        mov %r1, 5
        call local double
        add %r0, %r6
        exit
    double:
        mov %r6, 99
        stdw [%r10-8], 7
        mov %r0, %r1
        lsh %r0, 1
        exit
    """), Machine(), [0xAA])
    assert (s.pc, s.regs[1], s.depth) == (0, 0xAA, 0)
    s.step(); s.step()
    assert s.regs[6] == 6 and s.regs[1] == 5 and s.pc == 2
    entry_stack = s.stack
    s.step()                                    # the call: now in `double`, one frame deeper
    assert (s.pc, s.depth) == (5, 1) and s.frames[0].return_pc == 3
    assert s.stack is not entry_stack and s.regs[10] == s.stack.end
    s.step(); s.step()
    assert s.regs[6] == 99 and s.stack.data[-8:] == (7).to_bytes(8, "little")
    s.step(); s.step(); s.step()                # mov, lsh, exit back to the caller
    assert (s.pc, s.depth, s.regs[0], s.regs[6]) == (3, 0, 10, 6)
    assert s.step() and not s.step()
    assert s.result.r0 == 16 and s.result.instructions == 10 and s.count == 10
    assert not s.step()                         # finished: stepping again does nothing


def test_a_fault_leaves_pc_at_the_faulting_instruction_with_the_registers_before_it():
    prog = code("mov %r2, 3\nldxw %r0, [%r1+8]\nexit")
    m = Machine()
    ctx = m.memory.add("context", bytearray(8))
    s = Stepper(prog, m, [ctx.base])
    assert s.step() and not s.step()
    assert s.pc == 1 and s.regs[2] == 3 and s.regs[0] == 0 and s.result is None
    expected = outcome(lambda: Interpreter().run(prog, m, [ctx.base]))
    assert s.fault.kind == "memory" and s.fault.region == "context"
    assert ("fault", s.fault.kind, s.fault.pc, s.fault.instructions, s.fault.address,
            s.fault.region, str(s.fault)) == expected


def test_budget_and_call_depth_faults_match_the_interpreter():
    loop = code("mov %r0, 0\nloop:\nadd %r0, 1\nja loop\nexit")
    assert outcome(lambda: Stepper(loop, Machine(), (), 501).run()) == \
        outcome(lambda: Interpreter().run(loop, Machine(), (), 501))
    deep = code("mov %r0, 0\ncall local f\nexit\nf:\nadd %r0, 1\ncall local f\nexit")
    got = outcome(lambda: Stepper(deep, Machine()).run())
    assert got == outcome(lambda: Interpreter().run(deep, Machine())) and got[1] == "call"
