"""The JIT engine: eBPF compiled to native code with LLVM (llvmlite's MCJIT), same semantics as
the reference interpreter, every access still checked.

One program (all its bpf-to-bpf functions) becomes one LLVM function `i32 prog(u64 *ctx)`:

* registers r0..r10 are allocas (mem2reg turns them into SSA values);
* the instruction budget is charged once per basic block; a block that would overrun the budget
  branches to a clone of itself that checks before every instruction, so the budget fault names
  the same pc (and memory effects before it are the same) as the interpreter's;
* every load and store goes through the region table Python publishes in `ctx` (base, length,
  host pointer, writable per region, sorted by base): a per-site last-hit slot first, then a
  binary search; a bad access returns a fault code with the pc, address, size and direction,
  and Python rebuilds the very MemoryFault the interpreter would raise (`AddressSpace.locate`);
* local calls keep a frame stack (saved r6..r10, return site) inside the function; frame
  `depth` of the machine's 8 stack regions is zeroed on entry, as the interpreter does;
* helper calls go back into Python through one ctypes trampoline, which runs the helper exactly
  as the interpreter's `call_helper` does (tail calls are recorded and run after the program's
  exit, StopProgram / HelperError / MemoryFault end the run) and republishes the region table
  (helpers add and remove regions, e.g. new hash-map values).

Programs are validated by the interpreter's own `prepare`, so the same programs are refused with
the same ProgramError. Native code is cached per (instructions, resolved lddw values).

>>> from ntoslab.vm import get_engine, Machine, RawCode
>>> get_engine("jit").run(RawCode.from_bytes(bytes.fromhex("b7000000050000002700000003000000"
...     "9500000000000000")), Machine()).r0
15
"""
from __future__ import annotations

import array
import ctypes
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import llvmlite.binding as llvm
import llvmlite.ir as ir

from ..isa import opcodes as op
from ..isa.opcodes import MASK32 as M32, MASK64 as M64, MAX_CALL_DEPTH, Instruction
from .engine import (DEFAULT_BUDGET, Code, Engine, HelperError, Machine, ProgramError, RunResult,
                     StopProgram, TailCall, VmFault, fault_site, invoke_helper, memory_fault,
                     register_engine)
from .interpreter import (ATOMIC_OPS, LOAD_OPS, LOADSX_OPS, STORE_IMM_OPS, STORE_REG_OPS,
                          Interpreter)
from .memory import MemoryFault

# -- the context block shared by Python and the native code (u64 words) --------------------------
C_REGS = 0            # r0..r10
C_COUNT = 11          # instructions executed so far (in: at entry; out: at exit / helper call)
C_BUDGET = 12
C_FPC = 13            # fault: pc, address, size, write flag, instruction count
C_FADDR = 14
C_FSIZE = 15
C_FWRITE = 16
C_FCOUNT = 17
C_TABLE = 18          # region table: pointer to n entries of (base, length, host, writable)
C_NTABLE = 19
C_HELPER = 20         # the helper trampoline (i32 (u64 ctx, i64 id, i64 pc))
C_STACK_HOST = 21     # host pointers of the 8 stack frames
C_STACK_END = C_STACK_HOST + MAX_CALL_DEPTH   # their virtual end addresses (r10)
CTX_WORDS = C_STACK_END + MAX_CALL_DEPTH

# -- what the native code returns ---------------------------------------------------------------
S_EXIT = 0            # top-level exit; r0 in ctx
S_MEMORY = 1          # a load/store outside every region (or a write to a read-only one)
S_BUDGET = 2
S_CALL_DEPTH = 3
S_FELL_OFF = 4        # ran past the last instruction
S_PYTHON = 5          # the helper trampoline recorded an outcome (exception, StopProgram...)
S_INDEX = 6           # an lddw in the last slot: the interpreter's ops[n + 1] IndexError
S_INTERNAL = 7

I1, I8, I16, I32, I64 = (ir.IntType(b) for b in (1, 8, 16, 32, 64))
INT = {1: I8, 2: I16, 4: I32, 8: I64}
ENTRY_WORDS = 4       # region table entry: base, length, host, writable
STACK_FRAME_BYTES = op.STACK_FRAME_SIZE
BUDGET_CAP = 1 << 62

HELPER_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_uint64, ctypes.c_int64, ctypes.c_int64)
PROGRAM_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)


def _k(value: int, ty: ir.IntType = I64) -> ir.Constant:
    """An LLVM constant from any Python int (wrapped to the type's width, printed signed)."""
    bits = ty.width
    value &= (1 << bits) - 1
    if value >> (bits - 1):
        value -= 1 << bits
    return ir.Constant(ty, value)


# -- LLVM setup and the native-code cache --------------------------------------------------------
class _Llvm:
    ready = False
    target: Any = None
    optimizer_machine: Any = None
    counter = 0
    lock = threading.Lock()


def _llvm() -> type[_Llvm]:
    if not _Llvm.ready:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _Llvm.target = llvm.Target.from_default_triple()
        _Llvm.optimizer_machine = _Llvm.target.create_target_machine(opt=2)
        _Llvm.ready = True
    return _Llvm


class _Native:
    """Machine code for one program: an MCJIT engine of its own.

    Engines are never closed: closing MCJIT engines from finalizers (at whatever moment the
    garbage collector picks) was seen to corrupt the heap now and then, so compiled programs
    stay for the life of the process (they are cached by their instructions, so a program is
    compiled once however often it is loaded)."""

    def __init__(self, context: Any, engine: Any, function: Any, address: int,
                 ir_text: str) -> None:
        self.context = context     # an LLVM context per program, so freeing it frees everything
        self.engine = engine       # owns the module and the code; keep it alive
        self.function = function   # ctypes: int32 (u64 *ctx)
        self.address = address
        self.ir = ir_text          # the LLVM IR before optimization (for readers)


def _passes():
    """A short fixed pipeline (registers to SSA, then the usual clean-ups). The full -O2 pipeline
    makes code about as fast here but leaks ~150 KB of LLVM memory per program compiled."""
    m = llvm.create_new_module_pass_manager()
    m.add_sroa_pass()
    m.add_instruction_combine_pass()
    m.add_simplify_cfg_pass()
    m.add_sccp_pass()
    m.add_new_gvn_pass()
    m.add_instruction_combine_pass()
    m.add_dead_store_elimination_pass()
    m.add_aggressive_dce_pass()
    m.add_simplify_cfg_pass()
    return m


# Shared by every Jit instance: compiled code by (instructions, resolved lddw values), kept for
# the life of the process (see _Native).
_NATIVE: "dict[tuple, _Native]" = {}


def _compile(insns: list[Instruction], lddw: dict[int, int], name: str) -> _Native:
    key = (tuple(insns), tuple(sorted(lddw.items())))
    with _Llvm.lock:
        hit = _NATIVE.get(key)
        if hit is not None:
            return hit
        L = _llvm()
        L.counter += 1
        fname = f"ebpf_prog_{L.counter}"
        text = _Translator(insns, lddw, fname, name).translate()
        context = llvm.create_context()
        mod = llvm.parse_assembly(text, context)
        mod.verify()
        pb = llvm.create_pass_builder(L.optimizer_machine, llvm.create_pipeline_tuning_options(2))
        _passes().run(mod, pb)
        engine = llvm.create_mcjit_compiler(mod, L.target.create_target_machine(opt=2))
        engine.finalize_object()
        address = engine.get_function_address(fname)
        if not address:
            raise RuntimeError(f"jit: LLVM produced no code for {name}")
        native = _Native(context, engine, PROGRAM_TYPE(address), address, text)
        _NATIVE[key] = native
        return native


# -- translation ---------------------------------------------------------------------------------
class _Translator:
    """eBPF instructions (already validated by the interpreter's prepare) -> LLVM IR text."""

    def __init__(self, insns: list[Instruction], lddw: dict[int, int], fname: str,
                 name: str) -> None:
        self.insns = insns
        self.lddw = lddw
        self.n = len(insns)
        self.second = {pc + 1 for pc, i in enumerate(insns) if i.opcode == op.OP_LDDW}
        self.module = ir.Module(name=name)
        self.module.triple = llvm.get_process_triple()
        self.fn = ir.Function(self.module, ir.FunctionType(I32, [I64.as_pointer()]), name=fname)
        self.ctx = self.fn.args[0]
        # per access site (2 per pc: an atomic's store has its own): the last region hit
        slots_type = ir.ArrayType(I64, 2 * max(self.n, 1))
        self.slots = ir.GlobalVariable(self.module, slots_type, name=fname + "_sites")
        self.slots.linkage = "internal"
        self.slots.initializer = ir.Constant(slots_type, None)
        self.bswap = {w: self.module.declare_intrinsic("llvm.bswap", [INT[w // 8]])
                      for w in (16, 32, 64)}
        self.memset = self.module.declare_intrinsic("llvm.memset", [I8.as_pointer(), I64])
        self.lookup = self._lookup_function()

    # -- analysis ----------------------------------------------------------------------------
    def _next_pc(self, pc: int) -> int:
        return pc + 2 if self.insns[pc].opcode == op.OP_LDDW else pc + 1

    def _is_terminator(self, insn: Instruction) -> bool:
        c = insn.opcode
        cls = c & 0x07
        return cls in (op.CLS_JMP, op.CLS_JMP32)

    def _blocks(self) -> dict[int, list[int]]:
        n = self.n
        leaders = {0}
        self.call_returns: list[int] = []
        for pc, insn in enumerate(self.insns):
            if pc in self.second:
                continue
            c = insn.opcode
            cls = c & 0x07
            if cls not in (op.CLS_JMP, op.CLS_JMP32):
                continue
            leaders.add(pc + 1)
            if c == op.OP_CALL:
                if insn.src == op.CALL_LOCAL:
                    leaders.add(pc + 1 + insn.imm)
                    self.call_returns.append(pc + 1)
            elif c == op.OP_JA:
                leaders.add(pc + 1 + insn.offset)
            elif c == op.OP_JA32:
                leaders.add(pc + 1 + insn.imm)
            elif c != op.OP_EXIT:
                leaders.add(pc + 1 + insn.offset)
        leaders = {p for p in leaders if 0 <= p < n and p not in self.second}
        blocks: dict[int, list[int]] = {}
        for start in sorted(leaders):
            pcs = []
            pc = start
            while True:
                pcs.append(pc)
                if self._is_terminator(self.insns[pc]):
                    break
                pc = self._next_pc(pc)
                if pc >= n or pc in leaders:
                    break
            blocks[start] = pcs
        return blocks

    # -- small IR helpers --------------------------------------------------------------------
    def _ctx_ptr(self, word: int):
        return self.b.gep(self.ctx, [_k(word)])

    def _ctx_load(self, word: int):
        return self.b.load(self._ctx_ptr(word))

    def _ctx_store(self, word: int, value) -> None:
        self.b.store(value if isinstance(value, ir.Value) else _k(value), self._ctx_ptr(word))

    def _get(self, r: int):
        return self.b.load(self.R[r])

    def _set(self, r: int, value) -> None:
        self.b.store(value, self.R[r])

    def _lookup_function(self) -> ir.Function:
        """i64 lookup(table, n, addr, size, write, slot*): host address or 0 (a fault)."""
        fty = ir.FunctionType(I64, [I64.as_pointer(), I64, I64, I64, I1, I64.as_pointer()])
        f = ir.Function(self.module, fty, name=self.fn.name + "_lookup")
        f.linkage = "internal"
        f.attributes.add("noinline")
        table, n, addr, size, write, slot = f.args
        b = ir.IRBuilder(f.append_basic_block("entry"))
        head = f.append_basic_block("head")
        body = f.append_basic_block("body")
        done = f.append_basic_block("done")
        found = f.append_basic_block("found")
        ok = f.append_basic_block("ok")
        fail = f.append_basic_block("fail")
        entry = b.block
        b.branch(head)
        b.position_at_end(head)
        lo = b.phi(I64)
        hi = b.phi(I64)
        lo.add_incoming(_k(0), entry)
        hi.add_incoming(n, entry)
        b.cbranch(b.icmp_unsigned("<", lo, hi), body, done)
        b.position_at_end(body)
        mid = b.lshr(b.add(lo, hi), _k(1))
        base = b.load(b.gep(table, [b.mul(mid, _k(ENTRY_WORDS))]))
        le = b.icmp_unsigned("<=", base, addr)
        lo.add_incoming(b.select(le, b.add(mid, _k(1)), lo), body)
        hi.add_incoming(b.select(le, hi, mid), body)
        b.branch(head)
        b.position_at_end(done)
        b.cbranch(b.icmp_unsigned("==", lo, _k(0)), fail, found)
        b.position_at_end(found)
        idx = b.sub(lo, _k(1))
        e = b.gep(table, [b.mul(idx, _k(ENTRY_WORDS))])
        base = b.load(e)
        length = b.load(b.gep(e, [_k(1)]))
        host = b.load(b.gep(e, [_k(2)]))
        writable = b.load(b.gep(e, [_k(3)]))
        off = b.sub(addr, base)
        good = b.and_(b.icmp_unsigned("<", off, length),
                      b.icmp_unsigned("<=", size, b.sub(length, off)))
        good = b.and_(good, b.or_(b.not_(write), b.icmp_unsigned("!=", writable, _k(0))))
        b.cbranch(good, ok, fail)
        b.position_at_end(ok)
        b.store(idx, slot)
        b.ret(b.add(host, off))
        b.position_at_end(fail)
        b.ret(_k(0))
        return f

    # -- the program ---------------------------------------------------------------------------
    def translate(self) -> str:
        fn = self.fn
        b = self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.R = [b.alloca(I64, name=f"r{i}") for i in range(11)]
        self.count = b.alloca(I64, name="count")
        self.table = b.alloca(I64.as_pointer(), name="table")
        self.ntable = b.alloca(I64, name="ntable")
        self.depth = b.alloca(I64, name="depth")
        self.saved = b.alloca(ir.ArrayType(I64, 5 * MAX_CALL_DEPTH), name="saved")
        self.retsite = b.alloca(ir.ArrayType(I64, MAX_CALL_DEPTH), name="retsite")
        for r in range(11):
            self._set(r, self._ctx_load(C_REGS + r))
        b.store(self._ctx_load(C_COUNT), self.count)
        self.budget = self._ctx_load(C_BUDGET)
        self._reload_table()
        b.store(_k(0), self.depth)

        blocks = self._blocks()
        self.blocks = blocks
        self.llblock: dict[int, ir.Block] = {pc: fn.append_basic_block(f"pc{pc}") for pc in blocks}
        n = self.n
        # pseudo-instructions past the end, as the interpreter's ops[n] (and ops[n + 1])
        self.llblock[n] = fn.append_basic_block(f"pc{n}_fell_off")
        self.llblock[n + 1] = fn.append_basic_block(f"pc{n + 1}_past_lddw")
        self.internal = fn.append_basic_block("internal_error")
        b.branch(self.llblock[0])

        for start, pcs in blocks.items():
            self._block(start, pcs)
        self._pseudo(n, S_FELL_OFF, n - 1)
        self._pseudo(n + 1, S_INDEX, n + 1)
        b.position_at_end(self.internal)
        b.ret(_k(S_INTERNAL, I32))

        return str(self.module)

    def _reload_table(self) -> None:
        b = self.b
        b.store(b.inttoptr(self._ctx_load(C_TABLE), I64.as_pointer()), self.table)
        b.store(self._ctx_load(C_NTABLE), self.ntable)

    def _target(self, pc: int) -> ir.Block:
        return self.llblock[pc]

    def _pseudo(self, pc: int, status: int, fault_pc: int) -> None:
        """The interpreter counts the step onto ops[n] (budget check first), then faults."""
        b = self.b
        b.position_at_end(self.llblock[pc])
        cnt = b.load(self.count)
        c1 = b.add(cnt, _k(1))
        over = b.icmp_signed(">", c1, self.budget)
        with b.if_then(over, likely=False):
            self._fault_return(S_BUDGET, pc, c1)
        self._fault_return(status, fault_pc, c1)

    def _fault_return(self, status: int, pc: int, count, address=None, size: int = 0,
                      write: bool = False) -> None:
        self._ctx_store(C_FPC, pc)
        self._ctx_store(C_FCOUNT, count)
        if address is not None:
            self._ctx_store(C_FADDR, address)
            self._ctx_store(C_FSIZE, size)
            self._ctx_store(C_FWRITE, int(write))
        self.b.ret(_k(status, I32))

    def _block(self, start: int, pcs: list[int]) -> None:
        b = self.b
        fn = self.fn
        b.position_at_end(self.llblock[start])
        L = len(pcs)
        cnt = b.load(self.count)
        new = b.add(cnt, _k(L))
        fast = fn.append_basic_block(f"pc{start}_run")
        slow = fn.append_basic_block(f"pc{start}_budget")
        b.cbranch(b.icmp_signed(">", new, self.budget), slow, fast)
        # fast path: the whole block fits the budget
        b.position_at_end(fast)
        b.store(new, self.count)
        for j, pc in enumerate(pcs):
            insn = self.insns[pc]
            fcount = b.add(cnt, _k(j + 1))
            if j == L - 1:
                if self._is_terminator(insn):
                    self._terminator(insn, pc, new)
                else:
                    self._insn(insn, pc, fcount)
                    b.branch(self._target(self._next_pc(pc)))
            else:
                self._insn(insn, pc, fcount)
        # slow path: some instruction of this block overruns the budget; stop exactly there
        b.position_at_end(slow)
        for j, pc in enumerate(pcs):
            fcount = b.add(cnt, _k(j + 1))
            if j == L - 1:
                self._fault_return(S_BUDGET, pc, fcount)
                break
            with b.if_then(b.icmp_signed(">", fcount, self.budget), likely=False):
                self._fault_return(S_BUDGET, pc, fcount)
            self._insn(self.insns[pc], pc, fcount)

    # -- memory ------------------------------------------------------------------------------
    def _access(self, address, size: int, write: bool, pc: int, fcount):
        """The host pointer (as iN*) for a checked access, or a fault return."""
        b = self.b
        fn = self.fn
        site = 2 * pc + (1 if write else 0)
        slot = b.gep(self.slots, [_k(0), _k(site)])
        table = b.load(self.table)
        ntable = b.load(self.ntable)
        cached = b.load(slot)
        idx = b.select(b.icmp_unsigned("<", cached, ntable), cached, _k(0))
        e = b.gep(table, [b.mul(idx, _k(ENTRY_WORDS))])
        base = b.load(e)
        length = b.load(b.gep(e, [_k(1)]))
        off = b.sub(address, base)
        good = b.and_(b.icmp_unsigned("<", off, length),
                      b.icmp_unsigned("<=", _k(size), b.sub(length, off)))
        if write:
            good = b.and_(good, b.icmp_unsigned("!=", b.load(b.gep(e, [_k(3)])), _k(0)))
        hit = fn.append_basic_block(f"pc{pc}_hit")
        miss = fn.append_basic_block(f"pc{pc}_miss")
        bad = fn.append_basic_block(f"pc{pc}_fault")
        join = fn.append_basic_block(f"pc{pc}_access")
        b.cbranch(good, hit, miss)
        b.position_at_end(hit)
        h1 = b.add(b.load(b.gep(e, [_k(2)])), off)
        b.branch(join)
        b.position_at_end(miss)
        h2 = b.call(self.lookup, [table, ntable, address, _k(size), ir.Constant(I1, int(write)),
                                  slot])
        b.cbranch(b.icmp_unsigned("==", h2, _k(0)), bad, join)
        b.position_at_end(bad)
        self._fault_return(S_MEMORY, pc, fcount, address, size, write)
        b.position_at_end(join)
        host = b.phi(I64)
        host.add_incoming(h1, hit)
        host.add_incoming(h2, miss)
        return b.inttoptr(host, INT[size].as_pointer())

    def _load(self, address, size: int, pc: int, fcount):
        ptr = self._access(address, size, False, pc, fcount)
        return self.b.load(ptr, align=1)

    def _store(self, address, size: int, value, pc: int, fcount) -> None:
        ptr = self._access(address, size, True, pc, fcount)
        self.b.store(value, ptr, align=1)

    def _addr(self, r: int, off: int):
        return self.b.add(self._get(r), _k(off))

    # -- instructions ------------------------------------------------------------------------
    def _insn(self, insn: Instruction, pc: int, fcount) -> None:
        """A non-terminator instruction (ALU, lddw, load, store, atomic)."""
        b = self.b
        c = insn.opcode
        cls = c & 0x07
        if cls in (op.CLS_ALU, op.CLS_ALU64):
            self._alu(insn)
            return
        if c == op.OP_LDDW:
            self._set(insn.dst, _k(self.lddw[pc]))
            return
        if c in LOAD_OPS:
            size = LOAD_OPS[c]
            v = self._load(self._addr(insn.src, insn.offset), size, pc, fcount)
            self._set(insn.dst, v if size == 8 else b.zext(v, I64))
            return
        if c in LOADSX_OPS:
            size = LOADSX_OPS[c]
            v = self._load(self._addr(insn.src, insn.offset), size, pc, fcount)
            self._set(insn.dst, b.sext(v, I64))
            return
        if c in STORE_IMM_OPS:
            size = STORE_IMM_OPS[c]
            self._store(self._addr(insn.dst, insn.offset), size, _k(insn.imm, INT[size]), pc,
                        fcount)
            return
        if c in STORE_REG_OPS:
            size = STORE_REG_OPS[c]
            v = self._get(insn.src)
            self._store(self._addr(insn.dst, insn.offset), size,
                        v if size == 8 else b.trunc(v, INT[size]), pc, fcount)
            return
        if c in ATOMIC_OPS:
            self._atomic(insn, ATOMIC_OPS[c], pc, fcount)
            return
        raise AssertionError(f"jit: unexpected opcode {c:#04x} at pc {pc}")

    def _atomic(self, insn: Instruction, size: int, pc: int, fcount) -> None:
        b = self.b
        ty = INT[size]
        aop = insn.imm
        src = insn.src
        address = self._addr(insn.dst, insn.offset)
        old = self._load(address, size, pc, fcount)
        value = self._get(src)
        value = value if size == 8 else b.trunc(value, ty)
        wide = (lambda v: v) if size == 8 else (lambda v: b.zext(v, I64))
        if aop == op.ATOMIC_CMPXCHG:
            r0 = self._get(0)
            r0 = r0 if size == 8 else b.trunc(r0, ty)
            with b.if_then(b.icmp_unsigned("==", old, r0)):
                self._store(address, size, value, pc, fcount)
            self._set(0, wide(old))
            return
        if aop == op.ATOMIC_XCHG:
            self._store(address, size, value, pc, fcount)
            self._set(src, wide(old))
            return
        base = aop & ~op.ATOMIC_FETCH
        new = {op.ATOMIC_ADD: b.add, op.ATOMIC_OR: b.or_, op.ATOMIC_AND: b.and_,
               op.ATOMIC_XOR: b.xor}[base](old, value)
        self._store(address, size, new, pc, fcount)
        if aop & op.ATOMIC_FETCH:
            self._set(src, wide(old))

    def _alu(self, insn: Instruction) -> None:
        b = self.b
        c = insn.opcode
        is64 = (c & 0x07) == op.CLS_ALU64
        T = I64 if is64 else I32
        bits = 64 if is64 else 32
        alu = c & 0xF0
        dst, src, off, imm = insn.dst, insn.src, insn.offset, insn.imm
        if alu == op.ALU_END:
            v = self._get(dst)
            if is64 or c & op.SRC_X:
                t = v if imm == 64 else b.trunc(v, INT[imm // 8])
                t = b.call(self.bswap[imm], [t])
                self._set(dst, t if imm == 64 else b.zext(t, I64))
            else:
                self._set(dst, v if imm == 64 else b.and_(v, _k((1 << imm) - 1)))
            return

        def narrow(v):
            return v if is64 else b.trunc(v, I32)

        if c & op.SRC_X:
            s = narrow(self._get(src))
        else:
            s = _k(imm, T)
        d = narrow(self._get(dst))
        zero = _k(0, T)
        if alu in (op.ALU_DIV, op.ALU_MOD):
            is0 = b.icmp_unsigned("==", s, zero)
            if off == 0:
                safe = b.select(is0, _k(1, T), s)
                if alu == op.ALU_DIV:
                    r = b.select(is0, zero, b.udiv(d, safe))
                else:
                    r = b.select(is0, d, b.urem(d, safe))
            else:
                minus1 = b.icmp_unsigned("==", s, _k(-1, T))
                safe = b.select(b.or_(is0, minus1), _k(1, T), s)
                if alu == op.ALU_DIV:
                    r = b.select(is0, zero, b.select(minus1, b.sub(zero, d), b.sdiv(d, safe)))
                else:
                    r = b.select(is0, d, b.select(minus1, zero, b.srem(d, safe)))
        elif alu == op.ALU_MOV and off:
            r = b.sext(b.trunc(s, INT[off // 8]), T)
        elif alu == op.ALU_MOV:
            r = s
        elif alu == op.ALU_NEG:
            r = b.sub(zero, d)
        elif alu in (op.ALU_LSH, op.ALU_RSH, op.ALU_ARSH):
            amount = b.and_(s, _k(bits - 1, T))
            r = {op.ALU_LSH: b.shl, op.ALU_RSH: b.lshr, op.ALU_ARSH: b.ashr}[alu](d, amount)
        else:
            r = {op.ALU_ADD: b.add, op.ALU_SUB: b.sub, op.ALU_MUL: b.mul, op.ALU_OR: b.or_,
                 op.ALU_AND: b.and_, op.ALU_XOR: b.xor}[alu](d, s)
        self._set(dst, r if is64 else b.zext(r, I64))

    CMP = {op.JMP_JEQ: ("u", "=="), op.JMP_JNE: ("u", "!="), op.JMP_JGT: ("u", ">"),
           op.JMP_JGE: ("u", ">="), op.JMP_JLT: ("u", "<"), op.JMP_JLE: ("u", "<="),
           op.JMP_JSGT: ("s", ">"), op.JMP_JSGE: ("s", ">="), op.JMP_JSLT: ("s", "<"),
           op.JMP_JSLE: ("s", "<=")}

    def _terminator(self, insn: Instruction, pc: int, count) -> None:
        b = self.b
        c = insn.opcode
        if c == op.OP_EXIT:
            self._exit(count)
            return
        if c == op.OP_CALL:
            if insn.src == op.CALL_HELPER:
                self._call_helper(insn.imm, pc, count)
            else:
                self._call_local(pc + 1 + insn.imm, pc)
            return
        if c == op.OP_JA:
            b.branch(self._target(pc + 1 + insn.offset))
            return
        if c == op.OP_JA32:
            b.branch(self._target(pc + 1 + insn.imm))
            return
        is64 = (c & 0x07) == op.CLS_JMP
        T = I64 if is64 else I32
        d = self._get(insn.dst)
        if c & op.SRC_X:
            s = self._get(insn.src)
            if not is64:
                s = b.trunc(s, I32)
        else:
            s = _k(insn.imm, T)
        if not is64:
            d = b.trunc(d, I32)
        jop = c & 0xF0
        if jop == op.JMP_JSET:
            cond = b.icmp_unsigned("!=", b.and_(d, s), _k(0, T))
        else:
            kind, rel = self.CMP[jop]
            cond = (b.icmp_unsigned if kind == "u" else b.icmp_signed)(rel, d, s)
        b.cbranch(cond, self._target(pc + 1 + insn.offset), self._target(pc + 1))

    def _exit(self, count) -> None:
        b = self.b
        fn = self.fn
        depth = b.load(self.depth)
        top = fn.append_basic_block("exit_top")
        ret = fn.append_basic_block("exit_return")
        b.cbranch(b.icmp_unsigned("==", depth, _k(0)), top, ret)
        b.position_at_end(top)
        self._ctx_store(C_REGS, self._get(0))
        self._ctx_store(C_COUNT, count)
        b.ret(_k(S_EXIT, I32))
        b.position_at_end(ret)
        d = b.sub(depth, _k(1))
        b.store(d, self.depth)
        for i, r in enumerate((6, 7, 8, 9, 10)):
            slot = b.gep(self.saved, [_k(0), b.add(b.mul(d, _k(5)), _k(i))])
            self._set(r, b.load(slot))
        site = b.load(b.gep(self.retsite, [_k(0), d]))
        sw = b.switch(site, self.internal)
        for i, rpc in enumerate(self.call_returns):
            sw.add_case(_k(i), self._target(rpc))

    def _call_local(self, target: int, pc: int) -> None:
        b = self.b
        fn = self.fn
        depth = b.load(self.depth)
        new = b.add(depth, _k(1))
        deep = fn.append_basic_block(f"pc{pc}_too_deep")
        ok = fn.append_basic_block(f"pc{pc}_call")
        b.cbranch(b.icmp_unsigned(">=", new, _k(MAX_CALL_DEPTH)), deep, ok)
        b.position_at_end(deep)
        self._fault_return(S_CALL_DEPTH, pc, _k(0))
        b.position_at_end(ok)
        for i, r in enumerate((6, 7, 8, 9, 10)):
            slot = b.gep(self.saved, [_k(0), b.add(b.mul(depth, _k(5)), _k(i))])
            b.store(self._get(r), slot)
        site = self.call_returns.index(pc + 1)
        b.store(_k(site), b.gep(self.retsite, [_k(0), depth]))
        b.store(new, self.depth)
        host = b.load(b.gep(self.ctx, [b.add(new, _k(C_STACK_HOST))]))
        b.call(self.memset, [b.inttoptr(host, I8.as_pointer()), _k(0, I8),
                             _k(STACK_FRAME_BYTES), ir.Constant(I1, 0)])
        self._set(10, b.load(b.gep(self.ctx, [b.add(new, _k(C_STACK_END))])))
        b.branch(self._target(target))

    def _call_helper(self, helper_id: int, pc: int, count) -> None:
        b = self.b
        fn = self.fn
        for r in range(1, 6):
            self._ctx_store(C_REGS + r, self._get(r))
        self._ctx_store(C_COUNT, count)
        fty = ir.FunctionType(I32, [I64, I64, I64])
        callee = b.inttoptr(self._ctx_load(C_HELPER), fty.as_pointer())
        status = b.call(callee, [b.ptrtoint(self.ctx, I64), _k(helper_id), _k(pc)])
        stop = fn.append_basic_block(f"pc{pc}_helper_stop")
        back = fn.append_basic_block(f"pc{pc}_helper_back")
        b.cbranch(b.icmp_unsigned("!=", status, _k(0, I32)), stop, back)
        b.position_at_end(stop)
        b.ret(status)
        b.position_at_end(back)
        self._set(0, self._ctx_load(C_REGS))
        self._reload_table()
        b.branch(self._target(pc + 1))


# -- the engine ----------------------------------------------------------------------------------
@dataclass
class _Prepared:
    code: Code
    machine: Any           # weakref to the Machine
    native: _Native


class Jit(Engine):
    """eBPF compiled to native code by LLVM; the interpreter's semantics, faults and messages."""

    name = "jit"

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], _Prepared] = {}
        # per machine: id(region) -> (region, data, ctypes view, host address), kept between runs
        # (the views pin the bytearrays, which never resize) and pruned to the mapped regions
        self._hosts: dict[int, tuple[Any, dict[int, tuple]]] = {}
        self._checker = Interpreter()

    def _host_cache(self, machine: Machine) -> dict[int, tuple]:
        entry = self._hosts.get(id(machine))
        if entry is None or entry[0]() is not machine:
            for key in [k for k, (ref, _) in self._hosts.items() if ref() is None]:
                del self._hosts[key]
            entry = (weakref.ref(machine), {})
            self._hosts[id(machine)] = entry
        return entry[1]

    def prepare(self, code: Code, machine: Machine) -> _Prepared:
        key = (id(code), id(machine))
        hit = self._cache.get(key)
        if hit is not None and hit.code is code and hit.machine() is machine:
            return hit
        # The interpreter's prepare is the validator: same programs refused, same ProgramError.
        try:
            self._checker.prepare(code, machine)
        finally:
            self._checker._cache.clear()
        insns = list(code.insns)
        second = {pc + 1 for pc, i in enumerate(insns) if i.opcode == op.OP_LDDW}
        lddw: dict[int, int] = {}
        for pc, insn in enumerate(insns):
            if pc in second or insn.opcode != op.OP_LDDW:
                continue
            if insn.src == op.LDDW_IMM64:
                value = insn.imm64
            else:
                nxt = (insn.imm64 >> 32) if insn.imm64 is not None else 0
                value = machine.resolve_lddw(insn.src, insn.imm, nxt)
            lddw[pc] = value & M64
        native = _compile(insns, lddw, code.name)
        prepared = _Prepared(code, weakref.ref(machine), native)
        self._cache[key] = prepared
        return prepared

    def ir(self, code: Code, machine: Machine) -> str:
        """The LLVM IR generated for `code` (before optimization)."""
        return self.prepare(code, machine).native.ir

    def run(self, code: Code, machine: Machine, args: Sequence[int] = (),
            budget: int = DEFAULT_BUDGET) -> RunResult:
        prepared = self.prepare(code, machine)
        return _Run(self, machine, prepared, budget).go(args)


# -- one run: the Python side ------------------------------------------------------------------
_RUNS: dict[int, "_Run"] = {}


def _helper_trampoline(ctx_address: int, helper_id: int, pc: int) -> int:
    run = _RUNS[ctx_address]
    try:
        return run.call_helper(helper_id, pc)
    except BaseException as exc:  # noqa: B036 - handed back to the run loop, never lost
        run.error = exc
        run.error_pc = pc
        return S_PYTHON


_TRAMPOLINE = HELPER_TYPE(_helper_trampoline)
_TRAMPOLINE_ADDRESS = ctypes.cast(_TRAMPOLINE, ctypes.c_void_p).value


def _host_buffer(data) -> tuple[object, int]:
    """(keep-alive object, host address) of a region's bytes."""
    n = len(data)
    if n == 0:
        return None, 0
    try:
        buf = (ctypes.c_char * n).from_buffer(data)
    except TypeError:  # a read-only buffer (e.g. memoryview of bytes): immutable, so a copy
        buf = ctypes.create_string_buffer(bytes(data), n)
    return buf, ctypes.addressof(buf)


class _Run:
    def __init__(self, engine: Jit, machine: Machine, prepared: _Prepared, budget: int) -> None:
        self.engine = engine
        self.machine = machine
        self.code = prepared.code
        self.native = prepared.native
        self.budget = budget
        self.ctx = (ctypes.c_uint64 * CTX_WORDS)()
        self.address = ctypes.addressof(self.ctx)
        self.tail_calls = 0
        self.pending: TailCall | None = None
        self.count = 0
        self.error: BaseException | None = None
        self.error_pc = 0
        self._published: list | None = None
        self._hosts = engine._host_cache(machine)
        self._table = None
        stack = machine.stack_frames()
        if len(stack) != MAX_CALL_DEPTH:
            raise RuntimeError(f"jit: the machine has {len(stack)} stack frames, "
                               f"not {MAX_CALL_DEPTH}")
        self.stack = stack
        stack[0].data[:] = bytes(len(stack[0].data))
        ctx = self.ctx
        ctx[C_REGS + 10] = stack[0].end
        ctx[C_HELPER] = _TRAMPOLINE_ADDRESS
        ctx[C_BUDGET] = max(-1, min(budget, BUDGET_CAP)) & M64

    # -- the region table --------------------------------------------------------------------
    def publish(self) -> None:
        memory = self.machine.memory
        if memory.version == self._published and self._table is not None:
            return
        regions = memory.regions
        old = self._hosts
        hosts: dict[int, tuple] = {}
        flat = array.array("Q")
        for r in regions:
            entry = old.get(id(r))
            if entry is None or entry[0] is not r or entry[1] is not r.data:
                buf, host = _host_buffer(r.data)
                entry = (r, r.data, buf, host,
                         (r.base, max(0, min(r.end - r.base, len(r.data))), host,
                          1 if r.writable else 0))
            hosts[id(r)] = entry
            flat.extend(entry[4])
        for frame in self.stack:  # always pinned, mapped or not (call_local zeroes them)
            if id(frame) not in hosts:
                entry = old.get(id(frame))
                if entry is None or entry[0] is not frame or entry[1] is not frame.data:
                    buf, host = _host_buffer(frame.data)
                    entry = (frame, frame.data, buf, host,
                             (frame.base, len(frame.data), host, 1))
                hosts[id(frame)] = entry
        if not flat:
            flat.extend((0, 0, 0, 0))
        old.clear()
        old.update(hosts)
        table = (ctypes.c_uint64 * len(flat)).from_buffer(flat)
        self._table = (table, flat)
        self._published = memory.version
        self.ctx[C_TABLE] = ctypes.addressof(table)
        self.ctx[C_NTABLE] = len(regions)
        for i, frame in enumerate(self.stack):
            self.ctx[C_STACK_HOST + i] = hosts[id(frame)][3]
            self.ctx[C_STACK_END + i] = frame.end
        self.ctx[C_TABLE] = ctypes.addressof(table)
        self.ctx[C_NTABLE] = len(regions)
        for i, frame in enumerate(self.stack):
            self.ctx[C_STACK_HOST + i] = hosts[id(frame)][3]
            self.ctx[C_STACK_END + i] = frame.end

    # -- faults, as the interpreter's _RunState reports them ----------------------------------
    def where(self, pc: int) -> dict:
        return fault_site(self.code, pc, self.count)

    def fault(self, kind: str, message: str, pc: int) -> VmFault:
        return VmFault(kind, message, **self.where(pc))

    # -- helpers (called from native code through the trampoline) ----------------------------
    def call_helper(self, helper_id: int, pc: int) -> int:
        R = self.ctx
        result = invoke_helper(self.machine, helper_id, (R[1], R[2], R[3], R[4], R[5]),
                               lambda kind, message: self.fault(kind, message, pc))
        if isinstance(result, TailCall):
            self._tail_call(result, pc)
        else:
            R[0] = result & M64
        self.publish()
        return 0

    def _tail_call(self, call: TailCall, pc: int) -> None:
        if self.tail_calls >= self.machine.max_tail_calls:
            self.machine.tail_calls_failed += 1
            self.ctx[0] = call.failure & M64
            return
        try:
            self.engine.prepare(call.code, self.machine)
        except ProgramError as exc:
            raise self.fault("tail_call", f"tail call target cannot run: {exc}", pc) from None
        self.pending = call
        self.ctx[0] = 0

    def _start_pending(self) -> None:
        call, self.pending = self.pending, None
        prepared = self.engine.prepare(call.code, self.machine)
        self.tail_calls += 1
        ctx = self.ctx
        for i in range(10):
            ctx[C_REGS + i] = 0
        ctx[C_REGS + 1] = call.ctx & M64
        stack = self.stack[0]
        stack.data[:] = bytes(len(stack.data))
        ctx[C_REGS + 10] = stack.end
        self.code, self.native = prepared.code, prepared.native

    # -- the run loop ------------------------------------------------------------------------
    def go(self, args: Sequence[int]) -> RunResult:
        ctx = self.ctx
        for i, a in enumerate(args[:5]):
            ctx[C_REGS + i + 1] = a & M64
        self.publish()
        _RUNS[self.address] = self
        try:
            while True:
                status = self.native.function(self.address)
                if status == S_EXIT:
                    if self.pending is not None:
                        self._start_pending()
                        continue
                    return RunResult(ctx[C_REGS], ctx[C_COUNT], self.tail_calls)
                return self._stopped(status)
        finally:
            del _RUNS[self.address]
            self._table = None

    def _stopped(self, status: int) -> RunResult:
        ctx = self.ctx
        pc = ctx[C_FPC]
        if status == S_MEMORY:
            self.count = ctx[C_FCOUNT]
            address, size, write = ctx[C_FADDR], ctx[C_FSIZE], bool(ctx[C_FWRITE])
            try:
                self.machine.memory.locate(address, size, write)
            except MemoryFault as exc:
                raise memory_fault(exc, **self.where(pc)) from None
            raise RuntimeError(f"jit: native code reported a bad {size}-byte access at "
                               f"{address:#x} (pc {pc}) that the address space allows")
        if status == S_BUDGET:
            self.count = ctx[C_FCOUNT] - 1
            raise self.fault("budget", f"instruction budget of {self.budget} exhausted "
                             f"(a runaway loop?)", pc)
        if status == S_CALL_DEPTH:
            raise self.fault("call", f"bpf-to-bpf call depth would exceed {len(self.stack)} "
                             f"frames", pc)
        if status == S_FELL_OFF:
            raise self.fault("control", "execution ran past the last instruction", pc)
        if status == S_INDEX:
            raise IndexError("list index out of range")
        if status == S_PYTHON:
            exc, self.error = self.error, None
            pc = self.error_pc
            if isinstance(exc, StopProgram):
                return RunResult(exc.r0 & M64, ctx[C_COUNT], self.tail_calls)
            if isinstance(exc, MemoryFault):
                self.count = ctx[C_COUNT]
                raise memory_fault(exc, **self.where(pc)) from None
            if isinstance(exc, VmFault):
                raise exc
            if isinstance(exc, HelperError):
                self.count = ctx[C_COUNT]
                raise self.fault("helper", str(exc), pc) from None
            raise exc
        raise RuntimeError(f"jit: native code stopped with status {status}")


register_engine("jit", Jit)
