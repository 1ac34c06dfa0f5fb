"""One run of a program on the reference interpreter, one instruction at a time.

This is the only module that knows the interpreter's internals (its per-pc operations and its
run state); everything else in `ntoslab.debug` builds on `Stepper`'s small interface:
`pc`, `regs`, `code`, `depth`, `frames`, `stack`, `count`, `step()`, `result`, `fault`.
Driving a `Stepper` to the end gives exactly what `Interpreter().run` gives for the same
program, machine and arguments: the same r0, instruction count and faults.

>>> from ntoslab.vm import Machine, RawCode
>>> s = Stepper(RawCode.from_bytes(bytes.fromhex("b7000000050000009500000000000000")), Machine())
>>> s.step(), s.regs[0], s.step(), s.result.r0
(True, 5, False, 5)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..isa.opcodes import MASK64 as M64
from ..vm.engine import (
    DEFAULT_BUDGET,
    Code,
    FaultKind,
    HelperError,
    Machine,
    RunResult,
    StopProgram,
    VmFault,
    memory_fault,
)
from ..vm.interpreter import Interpreter, _Exit, _RunState, _Switch
from ..vm.memory import MemoryFault, Region


@dataclass(frozen=True)
class Frame:
    """A caller suspended by a bpf-to-bpf call: its program and where it resumes."""

    code: Code
    return_pc: int


class Stepper:
    """Execute `code` on `machine` with r1.. = `args`, one `step()` at a time.

    Before each step `pc` is the next instruction and `regs` the registers it will see; after
    a fault `pc` is the faulting instruction and `regs` are as they were before it ran.
    """

    def __init__(self, code: Code, machine: Machine, args: Sequence[int] = (),
                 budget: int = DEFAULT_BUDGET, engine: Interpreter | None = None) -> None:
        self.engine = engine if isinstance(engine, Interpreter) else Interpreter()
        prepared = self.engine.prepare(code, machine)   # ProgramError for what can never run
        self.machine = machine
        self.budget = budget
        self._st = _RunState(self.engine, machine, prepared)
        for i, a in enumerate(list(args)[:5]):
            self._st.regs[i + 1] = a & M64
        machine.native_run().program_id = machine.programs.id_of(code)
        self._ops = prepared.ops()
        self.pc = 0
        self.count = 0
        self.result: RunResult | None = None
        self.fault: VmFault | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.result is not None or self.fault is not None

    @property
    def code(self) -> Code:
        """The program now running (a tail call or a return into a caller changes it)."""
        return self._st.code

    @property
    def regs(self) -> tuple[int, ...]:
        """r0..r10 as unsigned 64-bit values."""
        return tuple(self._st.regs)

    @property
    def depth(self) -> int:
        """bpf-to-bpf call depth: 0 in the entry function."""
        return len(self._st.frames)

    @property
    def frames(self) -> list[Frame]:
        """The suspended callers, outermost first."""
        return [Frame(f.prepared.code, f.return_pc) for f in self._st.frames]

    @property
    def stack(self) -> Region:
        """The current function's 512-byte stack frame (r10 points at its end)."""
        return self._st.stack[self.depth]

    @property
    def tail_calls(self) -> int:
        return self._st.tail_calls

    # -- execution -----------------------------------------------------------------------------
    def step(self) -> bool:
        """Execute one instruction; return whether the program can go on."""
        if self.done:
            return False
        st = self._st
        R = st.regs
        if self.count >= self.budget:
            st.count = self.count
            self.fault = st.fault(FaultKind.BUDGET, f"instruction budget of {self.budget} exhausted "
                                  f"(a runaway loop?)", self.pc)
            return False
        self.count += 1
        st.count = self.count
        try:
            self.pc = self._ops[self.pc](R, st)
        except _Exit:
            self.result = RunResult(R[0], self.count, st.tail_calls)
        except _Switch:
            self._ops, self.pc = st.prepared.ops(), st.pc
        except StopProgram as stop:
            self.result = RunResult(stop.r0 & M64, self.count, st.tail_calls)
        except MemoryFault as exc:
            st.count = self.count
            self.fault = memory_fault(exc, **st.where(self.pc))
        except VmFault as exc:
            self.fault = exc
        except HelperError as exc:
            st.count = self.count
            self.fault = st.fault(FaultKind.HELPER, str(exc), self.pc)
        return not self.done

    def run(self) -> RunResult:
        """Step to the end; return the result or raise the fault (like `Interpreter.run`)."""
        while self.step():
            pass
        if self.fault is not None:
            raise self.fault
        assert self.result is not None, "a finished run has a result or a fault"
        return self.result
