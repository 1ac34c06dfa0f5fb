"""The contract every eBPF engine implements (the interpreter now, the JIT next).

An engine takes a `Code` (linked bytecode plus what is needed to explain a pc), a `Machine`
(the address space, the helpers by id, how lddw pseudo-forms resolve) and the argument registers,
and returns a `RunResult` or raises `VmFault`. Same inputs, same results, same faults, whatever
the engine.

>>> from ntoslab.vm import Interpreter, Machine, RawCode
>>> Interpreter().run(RawCode.from_bytes(bytes.fromhex("b7000000070000009500000000000000")), Machine()).r0
7
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, Mapping, Protocol, Sequence

from ..isa.opcodes import (
    LDDW_NAMES,
    MAX_CALL_DEPTH,
    MAX_TAIL_CALLS,
    STACK_FRAME_SIZE,
    Instruction,
    decode,
    sign32,
)
from ..native import abi, lib
from .memory import AddressSpace, MemoryFault, Region, RegionKind
from .semantics import ProgramError as ProgramError  # re-exported: engines raise it

DEFAULT_BUDGET = 1_000_000


class Code(Protocol):
    """What an engine needs from a program: its instructions and a way to explain a pc."""

    name: str
    insns: Sequence[Instruction]

    def describe_pc(self, pc: int) -> str | None:
        """The source location and text of instruction `pc` (or None when unknown)."""


@dataclass
class RawCode:
    """Bytecode without an object file around it (conformance tests, hand-written programs)."""

    name: str
    insns: list[Instruction]

    def describe_pc(self, pc: int) -> str | None:
        return None

    @classmethod
    def from_bytes(cls, code: bytes, name: str = "<bytecode>") -> "RawCode":
        return cls(name, decode(code))


class FaultKind(StrEnum):
    """What stopped a run (a str: `fault.kind == "memory"` reads as before)."""

    MEMORY = "memory"          # a load, store or helper access outside every region
    BUDGET = "budget"          # the instruction budget ran out
    CALL = "call"              # a bpf-to-bpf call too deep, or to no function
    HELPER = "helper"          # a helper refused its arguments or failed
    TAIL_CALL = "tail_call"    # a tail call whose target cannot run
    CONTROL = "control"        # execution fell off the program or into an lddw's second slot


class VmFault(RuntimeError):
    """A run stopped by the sandbox: a bad memory access, the budget, a bad call...

    Attributes say where: `program`, `pc`, `instruction` (disassembled), `kind` (a FaultKind),
    `address`, `size`, `region`, `source`.
    """

    def __init__(self, kind: FaultKind | str, message: str, *, program: str, pc: int,
                 instruction: str = "", source: str | None = None, address: int | None = None,
                 size: int | None = None, region: str | None = None,
                 instructions: int = 0) -> None:
        self.kind = FaultKind(kind)
        self.detail = message
        self.program = program
        self.pc = pc
        self.instruction = instruction
        self.source = source
        self.address = address
        self.size = size
        self.region = region
        self.instructions = instructions
        text = f"{program}: pc {pc}: {instruction}: {message}" if instruction else \
            f"{program}: pc {pc}: {message}"
        if source:
            text += f"\n    at {source}"
        super().__init__(text)


class StopProgram(Exception):
    """Raised by a helper to end the run at once with `r0` (uBPF's 'unwind' helper does this)."""

    def __init__(self, r0: int) -> None:
        super().__init__(r0)
        self.r0 = r0


class HelperError(Exception):
    """Raised by a helper for a misuse that must stop the program (reported as a fault)."""


@dataclass(frozen=True)
class TailCall:
    """Returned by a tail-call helper: run `code` (with r1 = `ctx`) once this program returns.

    This is eBPF for Windows' semantics: `bpf_tail_call` only records the next program and
    returns 0; the current program goes on to its `exit`, and then the recorded program runs
    with a fresh stack. When the run has already made `Machine.max_tail_calls` tail calls, the
    helper call returns `failure` instead (Windows: -EBPF_NO_MORE_TAIL_CALLS).
    """

    code: Code
    ctx: int
    failure: int = -27


class ProgramRegistry(dict):
    """Program ids -> code: what native tail calls name (prog-array slots, TailCall targets)."""

    def __init__(self) -> None:
        super().__init__()
        self._ids: dict[int, int] = {}

    def id_of(self, code: Any) -> int:
        """The id of `code`, registering it on first use (ids start at 1)."""
        pid = self._ids.get(id(code))
        if pid is not None and self.get(pid) is code:
            return pid
        for pid, c in self.items():
            if c is code:
                break
        else:
            pid = max(self, default=0) + 1
            self[pid] = code
        self._ids[id(code)] = pid
        return pid


# A helper receives the machine and r1..r5 and returns r0 (or a TailCall / raises StopProgram).
Helper = Callable[["Machine", int, int, int, int, int], "int | TailCall"]


@dataclass
class Machine:
    """Everything outside the program that a run can see.

    Helpers come in two kinds: `helpers` are Python callables, `native_helpers` the ids the
    native runtime implements (ntoslab/native/helpers.c), called directly by compiled code and
    through ctypes by the interpreter. A native run state (`native_run()`) carries what native
    helpers see: the address space, the helper environment `env` (time, identity, randomness,
    printk: one per sandbox), tail calls (`programs`: prog-array ids -> code).
    """

    memory: AddressSpace = field(default_factory=AddressSpace)
    helpers: Mapping[int, Helper] = field(default_factory=dict)
    # (src, imm, next_imm) -> 64-bit value, for lddw pseudo forms (map fd, map value...).
    lddw_resolver: Callable[[int, int, int], int] | None = None
    max_tail_calls: int = MAX_TAIL_CALLS
    tail_calls_failed: int = 0
    # helper id -> why it is not available (reported when a program calling it is prepared)
    unavailable: Mapping[int, str] = field(default_factory=dict)
    native_helpers: frozenset = frozenset()
    helper_names: Mapping[int, str] = field(default_factory=dict)
    env: Any = None                      # the native helper environment (ntl_env *)
    programs: ProgramRegistry = field(default_factory=ProgramRegistry)
    prog_arrays: Sequence[Any] = ()      # maps whose slots name programs (native tail calls)
    tail_errors: dict = field(default_factory=dict)   # program id -> why it cannot run
    # text of a native helper fault: (fault code, arg, arg2) -> message
    describe_fault: Callable[[int, int, int], str] | None = None
    # prepared programs, per engine (they die with the machine, so no id is ever stale)
    prepared: dict = field(default_factory=dict, repr=False, compare=False)
    _stack: list[Region] = field(default_factory=list, repr=False)
    _run: Any = field(default=None, repr=False)
    _env_owner: Any = field(default=None, repr=False)

    def has_helper(self, helper_id: int) -> bool:
        return helper_id in self.helpers or helper_id in self.native_helpers

    def helper_name(self, helper_id: int) -> str:
        fn = self.helpers.get(helper_id)
        if fn is not None:
            return getattr(fn, "__name__", "?")
        return self.helper_names.get(helper_id, f"helper {helper_id}")

    def stack_frames(self) -> list[Region]:
        """The 8 stack-frame regions (512 bytes each), created on first use."""
        if not self._stack:
            self._stack = [self.memory.add(f"stack frame {i}", bytearray(STACK_FRAME_SIZE),
                                           kind=RegionKind.STACK) for i in range(MAX_CALL_DEPTH)]
        return self._stack

    def native_run(self) -> abi.Run:
        """The native run state of this machine (created on first use)."""
        if self._run is None:
            L = lib()
            env = self.env
            if env is None:
                env = self._env_owner = _OwnedEnv()
                env = env.ptr
            run = abi.Run()
            L.ntl_run_init(run, self.memory.native, env)
            for i, frame in enumerate(self.stack_frames()):
                run.stack_host[i] = frame.host
                run.stack_end[i] = frame.end
            run.max_tail_calls = self.max_tail_calls
            self._run = run
        return self._run

    def missing_helper(self, helper_id: int) -> str:
        """The message for a call to a helper this machine does not provide."""
        why = self.unavailable.get(helper_id)
        return f"call to helper {helper_id}: {why}" if why else \
            f"call to unknown helper id {helper_id}"

    def resolve_lddw(self, src: int, imm: int, next_imm: int) -> int:
        if self.lddw_resolver is None:
            name = LDDW_NAMES.get(src, f"src {src}")
            raise LookupError(f"lddw form {name} needs a runtime that provides maps")
        return self.lddw_resolver(src, imm, next_imm)

    def native_stop(self, run: abi.Run, where: Callable[[], dict]) -> "VmFault | StopProgram":
        """What a native helper's stop means: the VmFault to raise, or a StopProgram."""
        status = run.status
        name = f"helper {self.helper_name(run.helper_id)} (id {run.helper_id})"
        if status == abi.S_MEMORY:
            try:
                self.memory.locate(run.fault_addr, run.fault_size, bool(run.fault_write))
                message = f"{name}: access of {run.fault_size} byte(s) at {run.fault_addr:#x} " \
                          f"refused"
                fault = MemoryFault(message, run.fault_addr, run.fault_size,
                                    bool(run.fault_write))
            except MemoryFault as exc:
                exc.args = (f"{name}: {exc}",)
                fault = exc
            return memory_fault(fault, **where())
        if status == abi.S_STOP:
            return StopProgram(run.stop_r0)
        if run.fault_code == abi.HF_TAIL_TARGET:
            why = self.tail_errors.get(run.fault_arg, "it has no native code")
            return VmFault(FaultKind.TAIL_CALL, f"tail call target cannot run: {why}", **where())
        if self.describe_fault is not None:
            text = self.describe_fault(run.fault_code, run.fault_arg, run.fault_arg2)
        else:
            text = f"native helper fault {run.fault_code} ({run.fault_arg:#x})"
        return VmFault(FaultKind.HELPER, f"{name}: {text}", **where())


class _OwnedEnv:
    """A native helper environment for a machine without a sandbox."""

    def __init__(self) -> None:
        import weakref
        L = lib()
        self.ptr = L.ntl_env_new(1)
        self._finalize = weakref.finalize(self, L.ntl_env_free, self.ptr)


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run: r0 (unsigned 64-bit) and how many instructions executed."""

    r0: int
    instructions: int
    tail_calls: int = 0

    @property
    def r0_signed32(self) -> int:
        return sign32(self.r0)


class Engine(ABC):
    """An eBPF execution engine."""

    name: str = "engine"

    @abstractmethod
    def prepare(self, code: Code, machine: Machine) -> object:
        """Check and translate `code` once; raise ProgramError for what can never run."""

    @abstractmethod
    def run(self, code: Code, machine: Machine, args: Sequence[int] = (),
            budget: int = DEFAULT_BUDGET) -> RunResult:
        """Run `code` with r1.. = `args`; return r0 or raise VmFault."""


class EngineRegistry(dict):
    """Engine factories by name. The built-in engines register when their module is imported,
    which happens on first use (the JIT's module loads llvmlite)."""

    BUILTIN = {"interpreter": "ntoslab.vm.interpreter", "jit": "ntoslab.vm.jit"}

    def _load(self, names=None) -> None:
        import importlib
        for name in names or self.BUILTIN:
            if not dict.__contains__(self, name) and name in self.BUILTIN:
                importlib.import_module(self.BUILTIN[name])

    def __missing__(self, name: str):
        self._load([name])
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self.BUILTIN or dict.__contains__(self, name)

    def __iter__(self):
        self._load()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._load()
        return dict.__len__(self)

    def keys(self):
        self._load()
        return dict.keys(self)

    def items(self):
        self._load()
        return dict.items(self)


ENGINES: dict[str, Callable[[], Engine]] = EngineRegistry()


def register_engine(name: str, factory: Callable[[], Engine]) -> None:
    ENGINES[name] = factory


def get_engine(name: str = "interpreter") -> Engine:
    """An engine by name (see `ENGINES` for what is available)."""
    try:
        return ENGINES[name]()
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; available: {', '.join(sorted(ENGINES))}") from None


def fault_site(code: Code, pc: int, instructions: int) -> dict:
    """Where a fault happened, as VmFault's keyword arguments (shared by every engine)."""
    try:
        from ..isa.disasm import format_insn
        text = format_insn(code.insns[pc], pc)
    except Exception:  # disassembly is a nicety; never mask the fault itself
        text = ""
    return dict(program=code.name, pc=pc, instruction=text, source=code.describe_pc(pc),
                instructions=instructions)


def invoke_helper(machine: Machine, helper_id: int, args: Sequence[int],
                  fault: Callable[[FaultKind, str], VmFault]) -> "int | TailCall":
    """Call helper `helper_id` with r1..r5 the way every engine must: a MemoryFault it raises
    is relabelled with the helper's name (the engine reports it at the call's pc), a HelperError
    becomes the `fault("helper", message)` the engine builds."""
    fn = machine.helpers[helper_id]
    try:
        return fn(machine, *args)
    except MemoryFault as exc:
        exc.args = (f"helper {machine.helper_name(helper_id)} (id {helper_id}): {exc}",)
        raise
    except HelperError as exc:
        raise fault(FaultKind.HELPER, f"helper {machine.helper_name(helper_id)} (id {helper_id}): "
                              f"{exc}") from None


def memory_fault(fault: MemoryFault, **where) -> VmFault:
    return VmFault(FaultKind.MEMORY, str(fault), address=fault.address, size=fault.size,
                   region=fault.region, **where)
