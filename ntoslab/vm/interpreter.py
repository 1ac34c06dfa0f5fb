"""The reference interpreter: RFC 9669 semantics at cpu v4, every access checked.

Each instruction is translated once into a tiny Python function whose body is the instruction's
meaning written out (see `semantics`); the run loop calls them one after another. The generated
source is kept (`Interpreter.source(code, machine)`) so a reader can see exactly what each pc does.

>>> from ntoslab.vm import Interpreter, Machine, RawCode
>>> Interpreter().run(RawCode.from_bytes(bytes.fromhex("b7000000050000002700000003000000"
...     "9500000000000000")), Machine()).r0
15
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..isa import opcodes as op
from ..isa.opcodes import MASK32 as M32, MASK64 as M64, Instruction
from .engine import (DEFAULT_BUDGET, Code, Engine, HelperError, Machine, ProgramError, RunResult,
                     StopProgram, TailCall, VmFault, fault_site, invoke_helper, memory_fault,
                     register_engine)
from .memory import MemoryFault

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


# -- semantics: the meaning of each operation as a Python expression -----------------------------
# {d} is the destination value, {s} the source value (register or immediate), already masked to
# the operation width; the result is masked by the caller's template.
ALU_EXPR = {
    op.ALU_ADD: "{d} + {s}",
    op.ALU_SUB: "{d} - {s}",
    op.ALU_MUL: "{d} * {s}",
    op.ALU_OR: "{d} | {s}",
    op.ALU_AND: "{d} & {s}",
    op.ALU_XOR: "{d} ^ {s}",
    op.ALU_LSH: "{d} << ({s} & {shmask})",
    op.ALU_RSH: "{d} >> ({s} & {shmask})",
    op.ALU_ARSH: "sx({d}, {bits}) >> ({s} & {shmask})",
    op.ALU_NEG: "-{d}",
    op.ALU_MOV: "{s}",
}
DIV_EXPR = {  # by offset: 0 unsigned, 1 signed
    (op.ALU_DIV, 0): "({d} // {s} if {s} else 0)",
    (op.ALU_DIV, 1): "sdiv({d}, {s}, {bits})",
    (op.ALU_MOD, 0): "({d} % {s} if {s} else {d})",
    (op.ALU_MOD, 1): "smod({d}, {s}, {bits})",
}
JMP_EXPR = {
    op.JMP_JEQ: "{d} == {s}",
    op.JMP_JNE: "{d} != {s}",
    op.JMP_JGT: "{d} > {s}",
    op.JMP_JGE: "{d} >= {s}",
    op.JMP_JLT: "{d} < {s}",
    op.JMP_JLE: "{d} <= {s}",
    op.JMP_JSET: "{d} & {s}",
    op.JMP_JSGT: "sx({d}, {bits}) > sx({s}, {bits})",
    op.JMP_JSGE: "sx({d}, {bits}) >= sx({s}, {bits})",
    op.JMP_JSLT: "sx({d}, {bits}) < sx({s}, {bits})",
    op.JMP_JSLE: "sx({d}, {bits}) <= sx({s}, {bits})",
}

LOAD_OPS = {op.CLS_LDX | op.MODE_MEM | sz: n for sz, n in op.SIZE_BYTES.items()}
LOADSX_OPS = {op.CLS_LDX | op.MODE_MEMSX | sz: n for sz, n in op.SIZE_BYTES.items() if n < 8}
STORE_IMM_OPS = {op.CLS_ST | op.MODE_MEM | sz: n for sz, n in op.SIZE_BYTES.items()}
STORE_REG_OPS = {op.CLS_STX | op.MODE_MEM | sz: n for sz, n in op.SIZE_BYTES.items()}
ATOMIC_OPS = {op.CLS_STX | op.MODE_ATOMIC | op.SIZE_W: 4, op.CLS_STX | op.MODE_ATOMIC | op.SIZE_DW: 8}


class _Exit(Exception):
    pass


class _Switch(Exception):
    """The current code changed (tail call, or a return into a caller of another program)."""


@dataclass
class _Frame:
    code: Code
    ops: list
    return_pc: int
    saved: tuple[int, int, int, int, int]  # r6..r10


@dataclass
class _Prepared:
    code: Code
    ops: list[Callable]
    source: str


class Interpreter(Engine):
    """The reference engine. Deterministic, sandboxed, slow but exact."""

    name = "interpreter"

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], _Prepared] = {}

    # -- translation -----------------------------------------------------------------------------
    def prepare(self, code: Code, machine: Machine) -> _Prepared:
        key = (id(code), id(machine))
        hit = self._cache.get(key)
        if hit is not None and hit.code is code:
            return hit
        lines: list[str] = []
        insns = list(code.insns)
        n = len(insns)
        if n == 0:
            raise ProgramError("program has no instructions", program=code.name)
        second_slot = {pc + 1 for pc, i in enumerate(insns) if i.opcode == op.OP_LDDW}
        consts: dict[str, object] = {}
        for pc, insn in enumerate(insns):
            if pc in second_slot:
                lines.append(f"def _op{pc}(R, st):\n    return st.fell_into_lddw({pc})")
                continue
            try:
                body = self._translate(insn, pc, n, second_slot, machine, consts)
            except ProgramError as exc:
                raise ProgramError(str(exc), program=code.name, pc=pc,
                                   source=code.describe_pc(pc)) from None
            lines.append(f"def _op{pc}(R, st):\n    " + "\n    ".join(body))
        lines.append(f"def _op{n}(R, st):\n    return st.fell_off({n})")
        source = "\n".join(lines) + "\n"
        mem = machine.memory
        ns: dict[str, object] = dict(M32=M32, M64=M64, sx=sx, sdiv=sdiv, smod=smod, bswap=bswap,
                                     load=mem.load, store=mem.store, **consts)
        exec(compile(source, f"<ntoslab interpreter: {code.name}>", "exec"), ns)
        ops = [ns[f"_op{i}"] for i in range(n + 1)]
        prepared = _Prepared(code, ops, source)
        self._cache[key] = prepared
        return prepared

    def source(self, code: Code, machine: Machine) -> str:
        """The generated Python for `code`: one function per pc."""
        return self.prepare(code, machine).source

    @staticmethod
    def _reg(r: int, what: str) -> int:
        if r > 10:
            raise ProgramError(f"invalid {what} register r{r}")
        return r

    def _translate(self, insn: Instruction, pc: int, n: int, second_slot: set[int],
                   machine: Machine, consts: dict) -> list[str]:
        code_op = insn.opcode
        cls = code_op & 0x07
        dst = self._reg(insn.dst, "destination")
        src = insn.src
        off = insn.offset
        imm = insn.imm

        def target(rel: int) -> int:
            t = pc + 1 + rel
            if not 0 <= t < n or t in second_slot:
                raise ProgramError(f"jump target {t} is outside the program (0..{n - 1}) or "
                                   f"inside an lddw")
            return t

        def writes_dst() -> None:
            if dst == 10:
                raise ProgramError("r10 (frame pointer) is read-only")

        if cls in (op.CLS_ALU, op.CLS_ALU64):
            is64 = cls == op.CLS_ALU64
            bits, mask, shmask = (64, "M64", 63) if is64 else (32, "M32", 31)
            alu = code_op & 0xF0
            writes_dst()
            if alu == op.ALU_END:
                if imm not in (16, 32, 64):
                    raise ProgramError(f"byte swap width {imm} is not 16, 32 or 64")
                if is64 and code_op & op.SRC_X:
                    raise ProgramError(f"unknown opcode {code_op:#04x}")
                if is64 or code_op & op.SRC_X:  # bswap / to big-endian (host is little-endian)
                    return [f"R[{dst}] = bswap(R[{dst}], {imm})", f"return {pc + 1}"]
                return [f"R[{dst}] = R[{dst}] & {(1 << imm) - 1:#x}", f"return {pc + 1}"]
            if alu not in op.ALU_NAMES:
                raise ProgramError(f"unknown opcode {code_op:#04x}")
            if code_op & op.SRC_X:
                s = f"R[{self._reg(src, 'source')}]" if is64 else \
                    f"(R[{self._reg(src, 'source')}] & M32)"
            else:
                if src:
                    raise ProgramError(f"src field {src} must be 0 for an immediate operand")
                s = str(imm & (M64 if is64 else M32))
            d = f"R[{dst}]" if is64 else f"(R[{dst}] & M32)"
            if alu in (op.ALU_DIV, op.ALU_MOD):
                if off not in (0, 1):
                    raise ProgramError(f"offset {off} is not 0 (unsigned) or 1 (signed) for div/mod")
                expr = DIV_EXPR[(alu, off)]
            elif alu == op.ALU_MOV and off:
                allowed = (8, 16, 32) if is64 else (8, 16)
                if off not in allowed or not code_op & op.SRC_X:
                    raise ProgramError(f"movsx offset {off} is not one of {allowed} (register source)")
                expr = f"sx({{s}}, {off})"
            else:
                if off:
                    raise ProgramError(f"offset {off} must be 0 for {op.ALU_NAMES[alu]}")
                expr = ALU_EXPR[alu]
            value = expr.format(d=d, s=s, bits=bits, shmask=shmask)
            return [f"R[{dst}] = ({value}) & {mask}", f"return {pc + 1}"]

        if cls in (op.CLS_JMP, op.CLS_JMP32):
            jop = code_op & 0xF0
            if code_op == op.OP_EXIT:
                return ["return st.exit()"]
            if code_op == op.OP_CALL:
                if src == op.CALL_HELPER:
                    if imm not in machine.helpers:
                        raise ProgramError(machine.missing_helper(imm))
                    return [f"return st.call_helper({imm}, {pc})"]
                if src == op.CALL_LOCAL:
                    return [f"return st.call_local({target(imm)}, {pc})"]
                raise ProgramError(f"call with src {src} (BTF-id kfunc calls) is not supported")
            if code_op == op.OP_CALLX:
                raise ProgramError("callx (indirect call through a register) is not supported")
            if code_op == op.OP_JA:
                return [f"return {target(off)}"]
            if code_op == op.OP_JA32:
                return [f"return {target(imm)}"]
            if jop not in JMP_EXPR:
                raise ProgramError(f"unknown opcode {code_op:#04x}")
            is64 = cls == op.CLS_JMP
            bits = 64 if is64 else 32
            d = f"R[{dst}]" if is64 else f"(R[{dst}] & M32)"
            if code_op & op.SRC_X:
                r = self._reg(src, "source")
                s = f"R[{r}]" if is64 else f"(R[{r}] & M32)"
            else:
                s = str(imm & (M64 if is64 else M32))
            cond = JMP_EXPR[jop].format(d=d, s=s, bits=bits)
            return [f"return {target(off)} if {cond} else {pc + 1}"]

        if code_op == op.OP_LDDW:
            writes_dst()
            if src == op.LDDW_IMM64:
                value = insn.imm64
            elif src in (op.LDDW_MAP_FD, op.LDDW_MAP_VALUE, op.LDDW_MAP_IDX, op.LDDW_MAP_IDX_VALUE):
                nxt = (insn.imm64 >> 32) if insn.imm64 is not None else 0
                try:
                    value = machine.resolve_lddw(src, imm, nxt)
                except LookupError as exc:
                    raise ProgramError(str(exc)) from None
            else:
                raise ProgramError(f"lddw with src {src} ({op.LDDW_NAMES.get(src, '?')}) "
                                   f"is not supported")
            return [f"R[{dst}] = {value & M64:#x}", f"return {pc + 2}"]

        if code_op in LOAD_OPS or code_op in LOADSX_OPS:
            writes_dst()
            r = self._reg(src, "source")
            addr = f"(R[{r}] + {off}) & M64"
            if code_op in LOAD_OPS:
                return [f"R[{dst}] = load({addr}, {LOAD_OPS[code_op]})", f"return {pc + 1}"]
            size = LOADSX_OPS[code_op]
            return [f"R[{dst}] = sx(load({addr}, {size}), {size * 8}) & M64", f"return {pc + 1}"]

        if code_op in STORE_IMM_OPS:
            size = STORE_IMM_OPS[code_op]
            return [f"store((R[{dst}] + {off}) & M64, {size}, {imm & M64})", f"return {pc + 1}"]

        if code_op in STORE_REG_OPS:
            r = self._reg(src, "source")
            return [f"store((R[{dst}] + {off}) & M64, {STORE_REG_OPS[code_op]}, R[{r}])",
                    f"return {pc + 1}"]

        if code_op in ATOMIC_OPS:
            r = self._reg(src, "source")
            if imm not in op.ATOMIC_OPS:
                raise ProgramError(f"unknown atomic operation {imm:#x}")
            if imm == op.ATOMIC_CMPXCHG:
                pass
            elif imm & op.ATOMIC_FETCH and r == 10:
                raise ProgramError("atomic fetch into r10 (frame pointer)")
            return [f"st.atomic({imm}, {ATOMIC_OPS[code_op]}, (R[{dst}] + {off}) & M64, {r})",
                    f"return {pc + 1}"]

        raise ProgramError(f"unknown opcode {code_op:#04x}")

    # -- execution -------------------------------------------------------------------------------
    def run(self, code: Code, machine: Machine, args: Sequence[int] = (),
            budget: int = DEFAULT_BUDGET) -> RunResult:
        prepared = self.prepare(code, machine)
        st = _RunState(self, machine, prepared)
        R = st.regs
        for i, a in enumerate(args[:5]):
            R[i + 1] = a & M64
        ops = prepared.ops
        pc = 0
        count = 0
        while True:
            try:
                while True:
                    count += 1
                    if count > budget:
                        st.count = count - 1
                        raise st.fault("budget", f"instruction budget of {budget} exhausted "
                                       f"(a runaway loop?)", pc)
                    pc = ops[pc](R, st)
            except _Exit:
                return RunResult(R[0], count, st.tail_calls)
            except _Switch:
                ops = st.ops
                pc = st.pc
            except StopProgram as stop:
                return RunResult(stop.r0 & M64, count, st.tail_calls)
            except MemoryFault as exc:
                st.count = count
                raise memory_fault(exc, **st.where(pc)) from None
            except VmFault:
                raise
            except HelperError as exc:
                st.count = count
                raise st.fault("helper", str(exc), pc) from None


class _RunState:
    """Per-run state the generated code calls back into (calls, exits, atomics)."""

    def __init__(self, engine: Interpreter, machine: Machine, prepared: _Prepared) -> None:
        self.engine = engine
        self.machine = machine
        self.code = prepared.code
        self.ops = prepared.ops
        self.pc = 0
        self.regs = [0] * 11
        self.frames: list[_Frame] = []
        self.tail_calls = 0
        self.pending: TailCall | None = None
        self.count = 0
        stack = machine.stack_frames()
        self.stack = stack
        stack[0].data[:] = bytes(len(stack[0].data))
        self.regs[10] = stack[0].end

    # where a fault happened
    def where(self, pc: int) -> dict:
        return fault_site(self.code, pc, self.count)

    def fault(self, kind: str, message: str, pc: int) -> VmFault:
        return VmFault(kind, message, **self.where(pc))

    # control flow
    def exit(self) -> int:
        if not self.frames:
            if self.pending is not None:
                self._run_pending_tail_call()
            raise _Exit
        frame = self.frames.pop()
        R = self.regs
        R[6], R[7], R[8], R[9], R[10] = frame.saved
        if frame.ops is not self.ops:
            self.code, self.ops, self.pc = frame.code, frame.ops, frame.return_pc
            raise _Switch
        return frame.return_pc

    def call_local(self, target: int, pc: int) -> int:
        depth = len(self.frames) + 1
        if depth >= len(self.stack):
            raise self.fault("call", f"bpf-to-bpf call depth would exceed {len(self.stack)} "
                             f"frames", pc)
        R = self.regs
        self.frames.append(_Frame(self.code, self.ops, pc + 1, (R[6], R[7], R[8], R[9], R[10])))
        frame = self.stack[depth]
        frame.data[:] = bytes(len(frame.data))
        R[10] = frame.end
        return target

    def call_helper(self, helper_id: int, pc: int) -> int:
        R = self.regs
        result = invoke_helper(self.machine, helper_id, (R[1], R[2], R[3], R[4], R[5]),
                               lambda kind, message: self.fault(kind, message, pc))
        if isinstance(result, TailCall):
            return self._tail_call(result, pc)
        R[0] = result & M64
        return pc + 1

    def _tail_call(self, call: TailCall, pc: int) -> int:
        if self.tail_calls >= self.machine.max_tail_calls:
            self.machine.tail_calls_failed += 1
            self.regs[0] = call.failure & M64
            return pc + 1
        try:
            self.engine.prepare(call.code, self.machine)
        except ProgramError as exc:
            raise self.fault("tail_call", f"tail call target cannot run: {exc}", pc) from None
        self.pending = call
        self.regs[0] = 0
        return pc + 1

    def _run_pending_tail_call(self) -> None:
        call, self.pending = self.pending, None
        prepared = self.engine.prepare(call.code, self.machine)
        self.tail_calls += 1
        R = self.regs
        for i in range(10):
            R[i] = 0
        R[1] = call.ctx & M64
        stack = self.stack[0]
        stack.data[:] = bytes(len(stack.data))
        R[10] = stack.end
        self.code, self.ops, self.pc = prepared.code, prepared.ops, 0
        raise _Switch

    def fell_off(self, pc: int) -> int:
        raise self.fault("control", "execution ran past the last instruction", pc - 1)

    def fell_into_lddw(self, pc: int) -> int:
        raise self.fault("control", "execution reached the second slot of an lddw", pc)

    def atomic(self, aop: int, size: int, address: int, src: int) -> None:
        mem = self.machine.memory
        R = self.regs
        mask = (1 << (size * 8)) - 1
        old = mem.load(address, size)
        value = R[src] & mask
        if aop == op.ATOMIC_CMPXCHG:
            if old == R[0] & mask:
                mem.store(address, size, value)
            R[0] = old
            return
        if aop == op.ATOMIC_XCHG:
            mem.store(address, size, value)
            R[src] = old
            return
        base = aop & ~op.ATOMIC_FETCH
        if base == op.ATOMIC_ADD:
            new = (old + value) & mask
        elif base == op.ATOMIC_OR:
            new = old | value
        elif base == op.ATOMIC_AND:
            new = old & value
        else:
            new = old ^ value
        mem.store(address, size, new)
        if aop & op.ATOMIC_FETCH:
            R[src] = old


register_engine("interpreter", Interpreter)
