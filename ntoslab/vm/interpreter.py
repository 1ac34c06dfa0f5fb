"""The reference interpreter: RFC 9669 semantics at cpu v4, every access checked.

The program is validated by `semantics.check` and translated, from the same semantic
definitions the JIT uses (`semantics.emit`), into Python source: one function per basic block
(the fast path, charged against the budget once per block) and, on demand, one function per
instruction (the exact path: a block that would overrun the budget runs instruction by
instruction, so the budget fault names the same pc and leaves the same memory as any engine;
the step debugger uses them too). The generated source is kept (`Interpreter.source(code,
machine)`) so a reader can see exactly what each pc does.

Helpers run where they are implemented: Python helpers directly, native ones (maps, rings,
memory and string helpers: ntoslab/native/helpers.c) through ctypes, the very functions the
JIT calls.

>>> from ntoslab.vm import Interpreter, Machine, RawCode
>>> Interpreter().run(RawCode.from_bytes(bytes.fromhex("b7000000050000002700000003000000"
...     "9500000000000000")), Machine()).r0
15
"""
from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

from ..isa import opcodes as op
from ..isa.opcodes import MASK32 as M32
from ..isa.opcodes import MASK64 as M64
from ..native import lib
from .engine import (
    DEFAULT_BUDGET,
    Code,
    Engine,
    FaultKind,
    HelperError,
    Machine,
    RunResult,
    StopProgram,
    TailCall,
    VmFault,
    fault_site,
    invoke_helper,
    memory_fault,
    register_engine,
)
from .memory import MemoryFault
from .semantics import (
    ROWS,
    TERMINATORS,
    Checked,
    ProgramError,
    block_starts,
    check,
    condition,
    emit,
)

CACHE_LIMIT = 256          # prepared programs kept per machine

# -- value helpers used by the generated code ----------------------------------------------------


def sx(value: int, bits: int) -> int:
    """Sign-extend the low `bits` of value to a Python int."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def sdiv(a: int, b: int, bits: int) -> int:
    """Signed division truncating toward zero; x/0 = 0; INT_MIN/-1 wraps to INT_MIN."""
    if b == 0:
        return 0
    sa, sb = sx(a, bits), sx(b, bits)
    q = abs(sa) // abs(sb)
    if (sa < 0) != (sb < 0):
        q = -q
    return q & ((1 << bits) - 1)


def smod(a: int, b: int, bits: int) -> int:
    """Signed remainder with the dividend's sign; x%0 = x."""
    if b == 0:
        return a
    sa, sb = sx(a, bits), sx(b, bits)
    r = abs(sa) % abs(sb)
    return (-r if sa < 0 else r) & ((1 << bits) - 1)


def bswap(value: int, bits: int) -> int:
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


# -- the Python emitter ------------------------------------------------------------------------------

def _mask(bits: int) -> str:
    return {32: "M32", 64: "M64"}.get(bits, hex((1 << bits) - 1))


class PV(NamedTuple):
    """A Python expression of `w` bits; `clean` when it is known to be in [0, 2**w)."""

    e: str
    w: int
    clean: bool


class _Stack(NamedTuple):
    """An address r10 + offset (the current stack frame)."""

    offset: int


class PyEmitter:
    """semantics.Emitter writing Python statements (see the module docstring)."""

    def __init__(self, out: list[tuple[int, str]], pc: int = 0, local: bool = False) -> None:
        self.out = out
        self.pc = pc
        self.indent = ""
        self.ntemp = 0
        self.uses_stack = False
        # block mode: registers live in locals r0..r9, loaded where first read, stored back
        # before the block's terminator
        self.local = local
        self.loaded: set[int] = set()
        self.written: list[int] = []

    def _line(self, text: str) -> None:
        self.out.append((self.pc, self.indent + text))

    @staticmethod
    def _clean(v: PV) -> PV:
        return v if v.clean else PV(f"({v.e} & {_mask(v.w)})", v.w, True)

    def _name(self, r: int) -> str:
        return f"r{r}" if self.local and r != 10 else f"R[{r}]"

    def reg(self, r: int, width: int) -> PV:
        # a 32-bit operand is the register itself, its high bits "dirty": operations whose low
        # bits only depend on the operands' low bits need no mask, the others clean it
        if self.local and r not in self.written:
            self.loaded.add(r)
        return PV(self._name(r), width, width == 64)

    def prologue(self) -> list[str]:
        return [f"r{r} = R[{r}]" for r in sorted(self.loaded) if r != 10]

    def write_back(self) -> list[str]:
        return [f"R[{r}] = r{r}" for r in self.written]

    def const(self, value: int, width: int) -> PV:
        return PV(str(value & ((1 << width) - 1)), width, True)

    @staticmethod
    def _value(v: PV) -> int | None:
        return int(v.e) if v.e.isdigit() else None

    def _fold(self, a: PV, b: PV, fn) -> PV | None:
        x, y = self._value(a), self._value(b)
        if x is None or y is None:
            return None
        return self.const(fn(x, y), a.w)

    def set(self, r: int, value: PV) -> None:
        self._line(f"{self._name(r)} = {self._clean(value).e}")
        if self.local and r not in self.written:
            self.written.append(r)

    def let(self, value: Any) -> Any:
        if isinstance(value, _Stack):
            return value
        self.ntemp += 1
        name = f"_t{self.ntemp}"
        self._line(f"{name} = {value.e}")
        return PV(name, value.w, value.clean)

    def add(self, a: PV, b: PV) -> PV:
        return self._fold(a, b, int.__add__) or PV(f"({a.e} + {b.e})", a.w, False)

    def sub(self, a: PV, b: PV) -> PV:
        return self._fold(a, b, int.__sub__) or PV(f"({a.e} - {b.e})", a.w, False)

    def mul(self, a: PV, b: PV) -> PV:
        return self._fold(a, b, int.__mul__) or PV(f"({a.e} * {b.e})", a.w, False)

    def and_(self, a: PV, b: PV) -> PV:
        folded = self._fold(a, b, int.__and__)
        if folded is not None:
            return folded
        if b.e == _mask(a.w) or b.e == str((1 << a.w) - 1):
            return self._clean(a)
        return PV(f"({a.e} & {b.e})", a.w, a.clean or b.clean)

    def or_(self, a: PV, b: PV) -> PV:
        return self._fold(a, b, int.__or__) or PV(f"({a.e} | {b.e})", a.w, a.clean and b.clean)

    def xor(self, a: PV, b: PV) -> PV:
        return self._fold(a, b, int.__xor__) or PV(f"({a.e} ^ {b.e})", a.w, a.clean and b.clean)

    def shl(self, a: PV, b: PV) -> PV:
        return PV(f"({a.e} << {self._clean(b).e})", a.w, False)

    def lshr(self, a: PV, b: PV) -> PV:
        return PV(f"({self._clean(a).e} >> {self._clean(b).e})", a.w, True)

    def ashr(self, a: PV, b: PV) -> PV:
        return PV(f"(sx({a.e}, {a.w}) >> {self._clean(b).e})", a.w, False)

    def neg(self, a: PV) -> PV:
        return PV(f"(-{a.e})", a.w, False)

    def udiv(self, a: PV, b: PV) -> PV:
        a, b = self._clean(a), self._clean(b)
        return PV(f"({a.e} // {b.e} if {b.e} else 0)", a.w, True)

    def urem(self, a: PV, b: PV) -> PV:
        a, b = self._clean(a), self._clean(b)
        return PV(f"({a.e} % {b.e} if {b.e} else {a.e})", a.w, True)

    def sdiv(self, a: PV, b: PV) -> PV:
        return PV(f"sdiv({self._clean(a).e}, {self._clean(b).e}, {a.w})", a.w, True)

    def srem(self, a: PV, b: PV) -> PV:
        return PV(f"smod({self._clean(a).e}, {self._clean(b).e}, {a.w})", a.w, True)

    def trunc(self, a: PV, width: int) -> PV:
        return a if width >= a.w else PV(f"({a.e} & {_mask(width)})", width, True)

    def zext(self, a: PV, width: int) -> PV:
        return a if width == a.w else PV(self._clean(a).e, width, True)

    def sext(self, a: PV, width: int) -> PV:
        return PV(f"sx({a.e}, {a.w})", width, False)

    def bswap(self, a: PV) -> PV:
        return PV(f"bswap({a.e}, {a.w})", a.w, True)

    def cmp(self, kind: str, a: PV, b: PV) -> str:
        if kind[0] == "s" and kind != "set":
            rel = {"sgt": ">", "sge": ">=", "slt": "<", "sle": "<="}[kind]
            return f"sx({a.e}, {a.w}) {rel} sx({b.e}, {b.w})"
        a, b = self._clean(a), self._clean(b)
        if kind == "set":
            return f"{a.e} & {b.e}"
        rel = {"eq": "==", "ne": "!=", "ugt": ">", "uge": ">=", "ult": "<", "ule": "<="}[kind]
        return f"{a.e} {rel} {b.e}"

    def address(self, r: int, offset: int) -> Any:
        if r == 10:
            return _Stack(offset)
        base = self.reg(r, 64).e
        return PV(base if offset == 0 else f"(({base} + {offset}) & M64)", 64, True)

    @staticmethod
    def _in_frame(a: _Stack, size: int) -> bool:
        return -op.STACK_FRAME_SIZE <= a.offset and a.offset + size <= 0

    def _generic(self, a: Any) -> str:
        if isinstance(a, _Stack):
            return f"(R[10] + {a.offset}) & M64"
        return a.e

    def load(self, address: Any, size: int) -> PV:
        if isinstance(address, _Stack) and self._in_frame(address, size):
            self.uses_stack = True
            lo = op.STACK_FRAME_SIZE + address.offset
            return PV(f"U{size}(F, {lo})[0]", 8 * size, True)
        return PV(f"load{size}({self._generic(address)})", 8 * size, True)

    def store(self, address: Any, size: int, value: PV) -> None:
        if isinstance(address, _Stack) and self._in_frame(address, size):
            self.uses_stack = True
            lo = op.STACK_FRAME_SIZE + address.offset
            self._line(f"P{size}(F, {lo}, {value.e} & {_mask(8 * size)})")
            return
        self._line(f"store{size}({self._generic(address)}, {value.e})")

    def if_(self, cond: str, then: Callable[[], None]) -> None:
        self._line(f"if {cond}:")
        self.indent += "    "
        then()
        self.indent = self.indent[:-4]


# -- translation -----------------------------------------------------------------------------------

@dataclass
class _Prepared:
    code: Code
    checked: Checked
    blocks: list            # by pc: (block function, length) at block starts, else None
    source: str
    ns: dict
    linepc: dict[int, int]  # line of the generated module -> pc
    _ops: list | None = None
    _ops_source: str = ""

    def ops(self) -> list[Callable]:
        """One function per pc (and pc n: fell off the end), compiled on first use."""
        if self._ops is None:
            _compile_ops(self)
        assert self._ops is not None
        return self._ops


def _terminator(E: PyEmitter, chk: Checked, pc: int) -> str:
    """The return statement of the terminator at `pc` (reading registers through `E`)."""
    insn = chk.insns[pc]
    kind = ROWS[insn.opcode].kind
    if kind == "exit":
        return "return st.exit()"
    if kind == "call":
        return f"return st.call_helper({insn.imm}, {pc})" if insn.src == op.CALL_HELPER else \
            f"return st.call_local({chk.target(pc)}, {pc})"
    if kind in ("ja", "ja32"):
        return f"return {chk.target(pc)}"
    return f"return {chk.target(pc)} if {condition(E, insn)} else {pc + 1}"


_STRUCTS = {n: struct.Struct("<" + c) for n, c in ((1, "B"), (2, "H"), (4, "I"), (8, "Q"))}


def _namespace(machine: Machine) -> dict:
    ns = dict(M32=M32, M64=M64, sx=sx, sdiv=sdiv, smod=smod, bswap=bswap,
              **machine.memory.accessors())
    for n, st in _STRUCTS.items():
        ns[f"U{n}"] = st.unpack_from
        ns[f"P{n}"] = st.pack_into
    return ns


COMPILE_LINES = 20_000    # Python compiles the generated module this many lines at a time
MAX_BLOCK = 256           # straight-line runs are cut into blocks of at most this many insns


def _assemble(functions: list[tuple[str, list[tuple[int, str]]]], filename: str,
              ns: dict) -> tuple[str, dict[int, int]]:
    """Compile the functions into `ns`, a few thousand lines at a time (so a program of a
    million instructions compiles in bounded memory); line numbers stay those of the whole
    source, which `linepc` maps to pcs."""
    lines: list[str] = []
    linepc: dict[int, int] = {}
    start = 0
    for header, body in functions:
        if len(lines) - start >= COMPILE_LINES:
            exec(compile("\n" * start + "\n".join(lines[start:]) + "\n", filename, "exec"), ns)
            start = len(lines)
        lines.append(header)
        for pc, text in body:
            lines.append(text)
            linepc[len(lines)] = pc
    exec(compile("\n" * start + "\n".join(lines[start:]) + "\n", filename, "exec"), ns)
    return "\n".join(lines) + "\n", linepc


def _leaders(chk: Checked) -> list[int]:
    """The semantic block starts, plus a cut every MAX_BLOCK instructions of a long run."""
    leaders = block_starts(chk)
    out: list[int] = []
    for start, end in zip(leaders, leaders[1:] + [None]):
        out.append(start)
        if end is None:
            continue
        pc, k = start, 0
        while pc < end:
            k += 1
            if k > MAX_BLOCK and pc not in chk.second:
                out.append(pc)
                k = 1
            pc += 1
    return sorted(set(out))


def _block_source(chk: Checked, start: int, lead: set[int]) -> tuple[list, int]:
    """The body of the function for the block at `start`, and its length in instructions."""
    body: list[tuple[int, str]] = []
    E = PyEmitter(body, start, local=True)
    pc, count = start, 0
    while True:
        count += 1
        E.pc = pc
        insn = chk.insns[pc]
        if ROWS[insn.opcode].kind in TERMINATORS:
            ret = _terminator(E, chk, pc)
            break
        emit(E, insn, chk.lddw.get(pc))
        last, pc = pc, chk.next_pc(pc)
        if pc in lead:
            E.pc, ret = last, f"return {pc}"
            break
    tail = [(E.pc, line) for line in E.write_back()] + [(E.pc, ret)]
    head = [(start, "F = st.F")] if E.uses_stack else []
    head += [(start, line) for line in E.prologue()]
    return [(p, "    " + t) for p, t in head + body + tail], count


def _translate(code: Code, machine: Machine, chk: Checked) -> _Prepared:
    n = chk.n
    leaders = _leaders(chk)
    lead = set(leaders)
    functions = []
    lengths: dict[int, int] = {}
    for start in leaders:
        if start == n:
            functions.append((f"def _b{n}(R, st):", [(n, f"    return st.fell_off({n})")]))
            lengths[n] = 1
            continue
        body, lengths[start] = _block_source(chk, start, lead)
        functions.append((f"def _b{start}(R, st):", body))
    ns = _namespace(machine)
    source, linepc = _assemble(functions, f"<ntoslab interpreter: {code.name}>", ns)
    blocks: list = [None] * (n + 1)
    for start in leaders:
        blocks[start] = (ns[f"_b{start}"], lengths[start])
    return _Prepared(code, chk, blocks, source, ns, linepc)


def _compile_ops(p: _Prepared) -> None:
    chk = p.checked
    functions = []
    for pc in range(chk.n):
        if pc in chk.second:
            functions.append((f"def _op{pc}(R, st):",
                              [(pc, f"    return st.fell_into_lddw({pc})")]))
            continue
        body: list[tuple[int, str]] = []
        E = PyEmitter(body, pc)
        insn = chk.insns[pc]
        if ROWS[insn.opcode].kind in TERMINATORS:
            ret = _terminator(E, chk, pc)
        else:
            emit(E, insn, chk.lddw.get(pc))
            ret = f"return {chk.next_pc(pc)}"
        head = [(pc, "F = st.F")] if E.uses_stack else []
        functions.append((f"def _op{pc}(R, st):",
                          [(q, "    " + t) for q, t in head + body + [(pc, ret)]]))
    functions.append((f"def _op{chk.n}(R, st):", [(chk.n, f"    return st.fell_off({chk.n})")]))
    ns = dict(p.ns)
    p._ops_source, _ = _assemble(functions, f"<ntoslab interpreter ops: {p.code.name}>", ns)
    p._ops = [ns[f"_op{i}"] for i in range(chk.n + 1)]


class _Exit(Exception):
    pass


class _Switch(Exception):
    """The current code changed (a tail call)."""


class Interpreter(Engine):
    """The reference engine. Deterministic, sandboxed, slow but exact."""

    name = "interpreter"

    # -- translation -----------------------------------------------------------------------------
    def prepare(self, code: Code, machine: Machine) -> _Prepared:
        cache = machine.prepared.setdefault(self.name, {})
        hit = cache.get(id(code))
        if hit is not None and hit.code is code:   # the cache holds the code: ids stay unique
            return hit
        chk = check(code.name, code.insns, machine, code.describe_pc)
        prepared = _translate(code, machine, chk)
        if len(cache) >= CACHE_LIMIT:
            cache.pop(next(iter(cache)))
        cache[id(code)] = prepared
        return prepared

    def source(self, code: Code, machine: Machine) -> str:
        """The generated Python for `code`: one function per basic block."""
        return self.prepare(code, machine).source

    # -- execution -------------------------------------------------------------------------------
    def run(self, code: Code, machine: Machine, args: Sequence[int] = (),
            budget: int = DEFAULT_BUDGET) -> RunResult:
        prepared = self.prepare(code, machine)
        machine.native_run().program_id = machine.programs.id_of(code)
        st = _RunState(self, machine, prepared)
        R = st.regs
        for i, a in enumerate(args[:5]):
            R[i + 1] = a & M64
        return st.loop(0, 0, budget)

    def resume(self, code: Code, machine: Machine, pc: int, regs: Sequence[int],
               frames: Sequence[tuple[int, Sequence[int]]], count: int, budget: int,
               tail_calls: int = 0) -> RunResult:
        """Go on with a run another engine started: at `pc` (a block start) of `code`, with the
        registers, the call frames [(return pc, saved r6..r10)], the instruction count and the
        tail calls made so far. Memory is the machine's, as that engine left it."""
        prepared = self.prepare(code, machine)
        st = _RunState(self, machine, prepared, clear_stack=False)
        st.regs[:] = [v & M64 for v in regs]
        st.tail_calls = tail_calls
        for ret, saved in frames:
            st.frames.append(_Frame(prepared, ret, tuple(saved)))
        st.F = st.stack[len(st.frames)].data
        return st.loop(pc, count, budget)


@dataclass
class _Frame:
    prepared: _Prepared
    return_pc: int
    saved: tuple  # r6..r10


class _RunState:
    """Per-run state the generated code calls back into (calls, exits, helpers)."""

    def __init__(self, engine: Interpreter, machine: Machine, prepared: _Prepared,
                 clear_stack: bool = True) -> None:
        self.engine = engine
        self.machine = machine
        self.prepared = prepared
        self.code = prepared.code
        self.pc = 0
        self.regs = [0] * 11
        self.frames: list[_Frame] = []
        self.tail_calls = 0
        self.pending: TailCall | None = None
        self.count = 0
        stack = machine.stack_frames()
        self.stack = stack
        if clear_stack:
            stack[0].data[:] = bytes(len(stack[0].data))
        self.F = stack[0].data
        self.regs[10] = stack[0].end
        self.native = machine.native_helpers

    # -- the run loop ----------------------------------------------------------------------------
    def loop(self, pc: int, count: int, budget: int) -> RunResult:
        blocks = self.prepared.blocks
        R = self.regs
        while True:
            try:
                while True:
                    fn, length = blocks[pc]
                    if count + length > budget:
                        count = self._exact(pc, count, budget)   # ends in a fault or a switch
                        blocks = self.prepared.blocks
                        pc = self.pc
                        continue
                    count += length
                    self.count = count
                    pc = fn(R, self)
            except _Exit:
                self._settle()
                return RunResult(R[0], self.count, self.tail_calls)
            except _Switch:
                blocks = self.prepared.blocks
                pc = self.pc
                count = self.count
            except StopProgram as stop:
                self._settle()
                return RunResult(stop.r0 & M64, self.count, self.tail_calls)
            except MemoryFault as exc:
                self._settle()
                fpc = self._fault_pc(exc, pc)
                self.count = count - blocks[pc][1] + self._index(pc, fpc) + 1
                raise memory_fault(exc, **self.where(fpc)) from None
            except VmFault:
                self._settle()
                raise
            except HelperError as exc:
                self._settle()
                raise self.fault(FaultKind.HELPER, str(exc), pc) from None
            except BaseException:
                self._settle()
                raise

    def _exact(self, pc: int, count: int, budget: int) -> int:
        """Run instruction by instruction from `pc` until the budget fault (or a switch of
        code, after which the block loop goes on)."""
        ops = self.prepared.ops()
        R = self.regs
        try:
            while True:
                count += 1
                self.count = count
                if count > budget:
                    self.count = count - 1
                    raise self.fault(FaultKind.BUDGET, f"instruction budget of {budget} exhausted "
                                     f"(a runaway loop?)", pc)
                pc = ops[pc](R, self)
                if self.prepared.blocks[pc] is not None and count + \
                        self.prepared.blocks[pc][1] <= budget:
                    self.pc = pc
                    return count
        except MemoryFault as exc:
            self._settle()
            self.count = count
            raise memory_fault(exc, **self.where(pc)) from None
        except _Switch:
            return count

    def _fault_pc(self, exc: BaseException, start: int) -> int:
        """The pc of the instruction of block `start` that raised `exc` (its source line)."""
        tb = exc.__traceback__
        name = f"<ntoslab interpreter: {self.code.name}>"
        line = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == name:
                line = tb.tb_lineno
            tb = tb.tb_next
        return self.prepared.linepc.get(line, start)

    def _index(self, start: int, pc: int) -> int:
        """How many instructions of the block at `start` come before `pc`."""
        chk = self.prepared.checked
        i, p = 0, start
        while p < pc:
            p = chk.next_pc(p)
            i += 1
        return i

    def _settle(self) -> None:
        run = self.machine._run
        if run is not None and run.tail_calls_failed:
            self.machine.tail_calls_failed += run.tail_calls_failed
            run.tail_calls_failed = 0

    # where a fault happened
    def where(self, pc: int) -> dict:
        return fault_site(self.code, pc, self.count)

    def fault(self, kind: FaultKind, message: str, pc: int) -> VmFault:
        return VmFault(kind, message, **self.where(pc))

    # -- control flow ------------------------------------------------------------------------------
    def exit(self) -> int:
        if not self.frames:
            if self.pending is not None:
                self._run_pending_tail_call()
            raise _Exit
        frame = self.frames.pop()
        R = self.regs
        R[6], R[7], R[8], R[9], R[10] = frame.saved
        self.F = self.stack[len(self.frames)].data
        if frame.prepared is not self.prepared:
            self.prepared, self.code, self.pc = frame.prepared, frame.prepared.code, \
                frame.return_pc
            raise _Switch
        return frame.return_pc

    def call_local(self, target: int, pc: int) -> int:
        depth = len(self.frames) + 1
        if depth >= len(self.stack):
            raise self.fault(FaultKind.CALL, f"bpf-to-bpf call depth would exceed {len(self.stack)} "
                             f"frames", pc)
        R = self.regs
        self.frames.append(_Frame(self.prepared, pc + 1, (R[6], R[7], R[8], R[9], R[10])))
        frame = self.stack[depth]
        frame.data[:] = bytes(len(frame.data))
        self.F = frame.data
        R[10] = frame.end
        return target

    def call_helper(self, helper_id: int, pc: int) -> int:
        R = self.regs
        if helper_id in self.native:
            return self._call_native(helper_id, pc)
        result = invoke_helper(self.machine, helper_id, (R[1], R[2], R[3], R[4], R[5]),
                               lambda kind, message: self.fault(kind, message, pc))
        if isinstance(result, TailCall):
            return self._tail_call(result, pc)
        R[0] = result & M64
        return pc + 1

    def _call_native(self, helper_id: int, pc: int) -> int:
        machine = self.machine
        run = machine.native_run()
        run.tail_calls = self.tail_calls
        run.native_tail = 0
        R = self.regs
        r0 = _call(ctypes.byref(run), helper_id, R[1], R[2], R[3], R[4], R[5])
        if run.status:
            stop = machine.native_stop(run, lambda: self.where(pc))
            run.status = 0
            raise stop
        if run.tail_prog_id:
            target = machine.programs.get(run.tail_prog_id)
            run.tail_prog_id = 0
            run.tail_fn = None
            return self._tail_call(TailCall(target, run.tail_ctx), pc)
        R[0] = r0
        return pc + 1

    def _tail_call(self, call: TailCall, pc: int) -> int:
        if self.tail_calls >= self.machine.max_tail_calls:
            self.machine.tail_calls_failed += 1
            self.regs[0] = call.failure & M64
            return pc + 1
        try:
            self.engine.prepare(call.code, self.machine)
        except ProgramError as exc:
            raise self.fault(FaultKind.TAIL_CALL, f"tail call target cannot run: {exc}", pc) from None
        self.pending = call
        self.regs[0] = 0
        return pc + 1

    def _run_pending_tail_call(self) -> None:
        call, self.pending = self.pending, None
        prepared = self.engine.prepare(call.code, self.machine)
        self.tail_calls += 1
        self.machine.native_run().program_id = self.machine.programs.id_of(call.code)
        R = self.regs
        for i in range(10):
            R[i] = 0
        R[1] = call.ctx & M64
        stack = self.stack[0]
        stack.data[:] = bytes(len(stack.data))
        self.F = stack.data
        R[10] = stack.end
        self.prepared, self.code, self.pc = prepared, prepared.code, 0
        raise _Switch

    def fell_off(self, pc: int) -> int:
        raise self.fault(FaultKind.CONTROL, "execution ran past the last instruction", pc - 1)

    def fell_into_lddw(self, pc: int) -> int:
        raise self.fault(FaultKind.CONTROL, "execution reached the second slot of an lddw", pc)


def _native_call() -> Callable:
    return lib().ntl_call_helper


_call = _native_call()

register_engine("interpreter", Interpreter)
