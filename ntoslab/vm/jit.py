"""The JIT engine: eBPF compiled to native code with LLVM (llvmlite's ORC LLJIT), from the same
semantic definitions as the reference interpreter (ntoslab/vm/semantics.py), every access still
checked.

A program (all its bpf-to-bpf functions) becomes one function ``i32 prog(ntl_run *run)`` that the
native runtime calls (ntoslab/native/run.c):

* registers r0..r10 are allocas (mem2reg makes them SSA values); r1..r5 come from run->regs;
* the instruction budget is charged once per basic block; a block that would overrun it hands
  the run, exactly where it is (registers, call frames, count), to the reference interpreter,
  which finishes it instruction by instruction, so the budget fault names the same pc and leaves
  the same memory (no per-instruction checks are compiled);
* every load and store is checked inline against the native window table (one index, four
  comparisons: the rule of ntoslab/native/space.c); accesses at a constant offset from r10 that
  stay inside the frame need no check. A bad access returns its pc, address, size and direction,
  and Python builds the very MemoryFault the interpreter raises;
* native helpers (maps, rings, memory and string helpers, time, identity, the process helpers)
  are direct calls into the runtime; Python helpers go through one ctypes trampoline;
* local calls keep their frames (saved r6..r10, return pc) in run->frames.

Compiled code is cached by (instructions, resolved lddw values, which helpers are native) for
every machine; code no prepared program uses any more is released at the next compilation
(ORC resource trackers, closed explicitly, never from a finalizer).

>>> from ntoslab.vm import get_engine, Machine, RawCode
>>> get_engine("jit").run(RawCode.from_bytes(bytes.fromhex("b7000000050000002700000003000000"
...     "9500000000000000")), Machine()).r0
15
"""
from __future__ import annotations

import ctypes
import threading
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import llvmlite.binding as llvm
import llvmlite.ir as ir

from ..isa import opcodes as op
from ..isa.opcodes import MASK64 as M64
from ..isa.opcodes import MAX_CALL_DEPTH, STACK_FRAME_SIZE
from ..native import abi, lib
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
from .interpreter import Interpreter
from .memory import MemoryFault
from .semantics import (
    ROWS,
    TERMINATORS,
    Checked,
    ProgramError,
    block_pcs,
    block_starts,
    check,
    condition,
    emit,
)

I1, I8, I16, I32, I64 = (ir.IntType(b) for b in (1, 8, 16, 32, 64))
INT = {1: I8, 2: I16, 4: I32, 8: I64}
MAX_JIT_INSNS = 100_000       # larger programs run on the interpreter (with a warning): ~5 s, 0.8 GB
RELEASE_AFTER = 64            # release unused compiled code once this many are waiting


def _word(field: str) -> int:
    return getattr(abi.Run, field).offset // 8


W_SPACE, W_REGS, W_COUNT, W_BUDGET, W_PC, W_STATUS = (_word(f) for f in (
    "space", "regs", "count", "budget", "pc", "status"))
W_FCODE, W_FADDR, W_FSIZE, W_FWRITE = (_word(f) for f in (
    "fault_code", "fault_addr", "fault_size", "fault_write"))
W_STACK_HOST, W_STACK_END, W_DEPTH, W_FRAMES = (_word(f) for f in (
    "stack_host", "stack_end", "depth", "frames"))
# a window table entry (ntl_window), by byte offset
E_HOST, E_PITCH, E_LIVE, E_LENGTH, E_NSLOTS, E_SHIFT, E_FLAGS = (getattr(abi.Window, f).offset
                                                                 for f in ("host", "pitch", "live",
                                                                           "length", "nslots",
                                                                           "shift", "flags"))
E_SIZE = ctypes.sizeof(abi.Window)


def _k(value: int, ty: ir.IntType = I64) -> ir.Constant:
    """An LLVM constant from any Python int (wrapped to the type's width, printed signed)."""
    bits = ty.width
    value &= (1 << bits) - 1
    if value >> (bits - 1):
        value -= 1 << bits
    return ir.Constant(ty, value)


# -- LLVM: one LLJIT for the process, code released only at safe points ------------------------------
class _Llvm:
    ready = False
    jit: Any = None
    machine: Any = None
    counter = 0
    lock = threading.RLock()


def _llvm() -> type[_Llvm]:
    if not _Llvm.ready:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        target = llvm.Target.from_default_triple()
        _Llvm.machine = target.create_target_machine(opt=2, reloc="pic", codemodel="large")
        _Llvm.jit = llvm.create_lljit_compiler(_Llvm.machine)
        _Llvm.ready = True
    return _Llvm


class _Native:
    """Machine code for one program, in an ORC library of its own."""

    def __init__(self, key: tuple, tracker: Any, address: int, ir_text: str) -> None:
        self.key = key
        self.tracker = tracker     # keeps the code mapped; closed by _release only
        self.address = address
        self.ir = ir_text          # the LLVM IR before optimization (for readers)
        self.users = 0


_NATIVE: dict[tuple, _Native] = {}
_UNUSED: list[_Native] = []


def _unuse(native: _Native) -> None:
    """A prepared program that used `native` is gone (weakref callback: no LLVM calls here)."""
    native.users -= 1
    if native.users <= 0:
        _UNUSED.append(native)


def _release() -> None:
    """Free compiled code nothing uses any more (called with the lock held, before compiling)."""
    if len(_UNUSED) < RELEASE_AFTER:
        return
    waiting, _UNUSED[:] = list(_UNUSED), []
    for native in waiting:
        if native.users <= 0 and _NATIVE.get(native.key) is native:
            del _NATIVE[native.key]
            native.tracker.close()


def _passes():
    """A short fixed pipeline (registers to SSA, then the usual clean-ups)."""
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


def _arrays(chk: Checked, machine: Machine) -> dict[int, tuple[int, ...]]:
    """The (per-CPU) arrays the program's lddw instructions load, with what `ntl_array_inline`
    says about each: their lookups are inlined (the address of value i is fixed)."""
    out: dict[int, tuple[int, ...]] = {}
    space = getattr(getattr(machine, "memory", None), "native", None)
    if not space or 1 not in chk.helpers:
        return out
    info = (ctypes.c_uint64 * 5)()
    for pc, value in chk.lddw.items():
        if chk.insns[pc].src in (op.LDDW_MAP_FD, op.LDDW_MAP_IDX) and \
                lib().ntl_array_inline(space, value, info):
            out[value] = tuple(info)
    return out


def _compile(chk: Checked, native_ids: frozenset, name: str,
             arrays: dict[int, tuple[int, ...]] | None = None) -> _Native:
    arrays = arrays or {}
    key = (tuple(chk.insns), tuple(sorted(chk.lddw.items())), native_ids & chk.helpers,
           tuple(sorted(arrays.items())))
    with _Llvm.lock:
        hit = _NATIVE.get(key)
        if hit is not None:
            return hit
        _release()
        L = _llvm()
        L.counter += 1
        fname = f"ebpf_prog_{L.counter}"
        text = _Translator(chk, native_ids, fname, name, arrays).translate()
        mod = llvm.parse_assembly(text)
        mod.verify()
        pb = llvm.create_pass_builder(L.machine, llvm.create_pipeline_tuning_options(2))
        _passes().run(mod, pb)
        obj = L.machine.emit_object(mod)
        tracker = llvm.JITLibraryBuilder().add_object_img(obj).export_symbol(fname) \
            .link(L.jit, f"lib_{fname}")
        address = tracker[fname]
        if not address:
            raise RuntimeError(f"jit: LLVM produced no code for {name}")
        native = _Native(key, tracker, address, text)
        _NATIVE[key] = native
        return native


def _writes(insn) -> tuple[int, ...]:
    """The registers an instruction may write (conservatively)."""
    cls = insn.opcode & 0x07
    if cls in (op.CLS_LD, op.CLS_LDX, op.CLS_ALU, op.CLS_ALU64):
        return (insn.dst,)
    if cls == op.CLS_STX and insn.opcode & 0xE0 == 0xC0:      # atomics: fetch forms, cmpxchg
        return (insn.src, 0)
    return ()


def _is_map_lddw(chk: Checked, pc: int) -> bool:
    insn = chk.insns[pc]
    return insn.opcode == op.OP_LDDW and insn.src in (op.LDDW_MAP_FD, op.LDDW_MAP_IDX) and \
        pc in chk.lddw


def _track_maps(chk: Checked, pc: int, maps: dict[int, int]) -> None:
    """Update `maps` (register -> map handle) across the instruction at `pc`."""
    insn = chk.insns[pc]
    if _is_map_lddw(chk, pc):
        maps[insn.dst] = chk.lddw[pc]
        return
    if insn.opcode == 0xBF and insn.src in maps:              # mov64 dst, src
        maps[insn.dst] = maps[insn.src]
        return
    for r in _writes(insn):
        maps.pop(r, None)


def _fixed_maps(chk: Checked, starts: list[int]) -> dict[int, int]:
    """Callee-saved registers (r6-r9) that hold one map for the whole run: written once, by a
    map lddw in the entry block, in a program without bpf-to-bpf calls."""
    if any(i.opcode == op.OP_CALL and i.src == op.CALL_LOCAL for k, i in enumerate(chk.insns)
           if k not in chk.second):
        return {}
    entry_end = next((s for s in starts if s > 0), chk.n)
    writers: dict[int, list[int]] = {}
    for pc, insn in enumerate(chk.insns):
        if pc in chk.second:
            continue
        for r in _writes(insn):
            writers.setdefault(r, []).append(pc)
    out = {}
    for r in (6, 7, 8, 9):
        w = writers.get(r, [])
        if len(w) == 1 and w[0] < entry_end and _is_map_lddw(chk, w[0]):
            out[r] = chk.lddw[w[0]]
    return out


def _checkpoints(chk: Checked, starts: list[int]) -> dict[int, int]:
    """Where the JIT checks the instruction budget, and how far each check reaches.

    A check sits at pc 0, at every backward jump's target, at every subprogram entry and at
    every return point: every cycle passes one. From a check, the code up to the next is a DAG
    in pc order; the check compares count + the longest path through it (in instructions) with
    the budget and hands the run to the interpreter at that block if it could overrun, so the
    interpreter stops it exactly where it would have. Checking per block instead makes compile
    time quadratic in branchy programs (a bail edge per block)."""
    n = chk.n
    lead = set(starts)
    checks = {0}
    blocks: dict[int, tuple[int, list[int]]] = {}      # start -> (length, forward successors)
    for start in starts:
        if start >= n:
            blocks[start] = (1, [])      # "ran past the end" counts as one, as in _block
            continue
        pcs = block_pcs(chk, start, lead)
        length, pc = len(pcs), pcs[-1]
        insn = chk.insns[pc]
        kind = ROWS[insn.opcode].kind
        succ: list[int] = []
        if kind not in TERMINATORS:
            succ = [chk.next_pc(pc)]
        elif kind == "exit":
            pass
        elif kind == "call" and insn.src == op.CALL_LOCAL:
            checks.add(chk.target(pc))
            checks.add(pc + 1)
        elif kind == "call":
            succ = [pc + 1]
        elif kind in ("ja", "ja32"):
            succ = [chk.target(pc)]
        else:
            succ = [chk.target(pc), pc + 1]
        for s in succ:
            if s <= start:
                checks.add(s)
        blocks[start] = (length, succ)
    longest: dict[int, int] = {}
    for start in sorted(blocks, reverse=True):          # successors first: they are later
        length, succ = blocks[start]
        longest[start] = length + max((0 if s in checks else longest.get(s, 0)
                                       for s in succ), default=0)
    return {start: longest[start] for start in starts if start in checks}


# -- the LLVM emitter ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Addr:
    """An address: its value, and the r10 offset when it is r10 + constant."""

    value: Any
    stack: int | None = None


class _LlvmEmitter:
    """semantics.Emitter building LLVM IR (see ntoslab/vm/semantics.py)."""

    def __init__(self, t: "_Translator", pc: int, fcount) -> None:
        self.t = t
        self.b = t.b
        self.pc = pc
        self.fcount = fcount

    def reg(self, r: int, width: int):
        v = self.b.load(self.t.R[r])
        return v if width == 64 else self.b.trunc(v, INT[width // 8])

    def const(self, value: int, width: int):
        return _k(value, ir.IntType(width))

    def set(self, r: int, value) -> None:
        self.b.store(value, self.t.R[r])

    def let(self, value):
        return value

    def add(self, a, b):
        return self.b.add(a, b)

    def sub(self, a, b):
        return self.b.sub(a, b)

    def mul(self, a, b):
        return self.b.mul(a, b)

    def and_(self, a, b):
        return self.b.and_(a, b)

    def or_(self, a, b):
        return self.b.or_(a, b)

    def xor(self, a, b):
        return self.b.xor(a, b)

    def shl(self, a, b):
        return self.b.shl(a, b)

    def lshr(self, a, b):
        return self.b.lshr(a, b)

    def ashr(self, a, b):
        return self.b.ashr(a, b)

    def neg(self, a):
        return self.b.sub(ir.Constant(a.type, 0), a)

    def _is0(self, b):
        return self.b.icmp_unsigned("==", b, ir.Constant(b.type, 0))

    def udiv(self, a, b):
        is0 = self._is0(b)
        safe = self.b.select(is0, ir.Constant(b.type, 1), b)
        return self.b.select(is0, ir.Constant(a.type, 0), self.b.udiv(a, safe))

    def urem(self, a, b):
        is0 = self._is0(b)
        safe = self.b.select(is0, ir.Constant(b.type, 1), b)
        return self.b.select(is0, a, self.b.urem(a, safe))

    def _signed(self, a, b):
        is0 = self._is0(b)
        minus1 = self.b.icmp_unsigned("==", b, ir.Constant(b.type, -1))
        safe = self.b.select(self.b.or_(is0, minus1), ir.Constant(b.type, 1), b)
        return is0, minus1, safe

    def sdiv(self, a, b):
        is0, minus1, safe = self._signed(a, b)
        zero = ir.Constant(a.type, 0)
        return self.b.select(is0, zero, self.b.select(minus1, self.b.sub(zero, a),
                                                      self.b.sdiv(a, safe)))

    def srem(self, a, b):
        is0, minus1, safe = self._signed(a, b)
        zero = ir.Constant(a.type, 0)
        return self.b.select(is0, a, self.b.select(minus1, zero, self.b.srem(a, safe)))

    def trunc(self, a, width: int):
        return a if width >= a.type.width else self.b.trunc(a, ir.IntType(width))

    def zext(self, a, width: int):
        return a if width == a.type.width else self.b.zext(a, ir.IntType(width))

    def sext(self, a, width: int):
        return a if width == a.type.width else self.b.sext(a, ir.IntType(width))

    def bswap(self, a):
        if a.type.width == 8:
            return a
        return self.b.call(self.t.bswap[a.type.width], [a])

    def cmp(self, kind: str, a, b):
        if kind == "set":
            return self.b.icmp_unsigned("!=", self.b.and_(a, b), ir.Constant(a.type, 0))
        rel = {"eq": "==", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
        if kind in ("eq", "ne"):
            return self.b.icmp_unsigned(rel[kind], a, b)
        fn = self.b.icmp_signed if kind[0] == "s" else self.b.icmp_unsigned
        return fn(rel[kind[1:]], a, b)

    def address(self, r: int, offset: int) -> _Addr:
        value = self.b.add(self.b.load(self.t.R[r]), _k(offset))
        return _Addr(value, offset if r == 10 else None)

    def load(self, address: _Addr, size: int):
        ptr = self.t.access(address, size, False, self.pc, self.fcount)
        v = self.b.load(ptr, align=1)
        self.t.tag(v, "mem")
        return v

    def store(self, address: _Addr, size: int, value) -> None:
        ptr = self.t.access(address, size, True, self.pc, self.fcount)
        self.t.tag(self.b.store(value, ptr, align=1), "mem")

    def if_(self, cond, then) -> None:
        with self.b.if_then(cond):
            then()


class _Translator:
    """A validated program -> LLVM IR text."""

    def __init__(self, chk: Checked, native_ids: frozenset, fname: str, name: str,
                 arrays: dict[int, tuple[int, ...]] | None = None) -> None:
        self.chk = chk
        self.native_ids = native_ids
        self.arrays = arrays or {}
        self.module = ir.Module(name=name)
        self.module.triple = llvm.get_process_triple()
        self.fn = ir.Function(self.module, ir.FunctionType(I32, [I64.as_pointer()]), name=fname)
        self.run = self.fn.args[0]
        self.bswap = {w: self.module.declare_intrinsic("llvm.bswap", [ir.IntType(w)])
                      for w in (16, 32, 64)}
        self.memset = self.module.declare_intrinsic("llvm.memset", [I8.as_pointer(), I64])
        root = self.module.add_metadata([ir.MetaDataString(self.module, "ntoslab")])
        self.tbaa = {}
        for kind in ("meta", "mem"):
            t = self.module.add_metadata([ir.MetaDataString(self.module, kind), root,
                                          _k(0)])
            self.tbaa[kind] = self.module.add_metadata([t, t, _k(0)])
        self.helper_type = ir.FunctionType(I64, [I64.as_pointer()] + [I64] * 5)
        self.python_type = ir.FunctionType(I64, [I64.as_pointer()] + [I64] * 6)
        self.fault_fn = self._fault_function()

    def tag(self, instr, kind: str):
        instr.set_metadata("tbaa", self.tbaa[kind])
        return instr

    # -- the run state ---------------------------------------------------------------------------
    def _word_ptr(self, word, index=None):
        i = _k(word) if index is None else self.b.add(_k(word), index)
        return self.b.gep(self.run, [i])

    def rload(self, word, index=None):
        return self.tag(self.b.load(self._word_ptr(word, index)), "meta")

    def rstore(self, word, value, index=None) -> None:
        value = value if isinstance(value, ir.Value) else _k(value)
        self.tag(self.b.store(value, self._word_ptr(word, index)), "meta")

    def _load_table(self) -> None:
        space = self.b.inttoptr(self.rload(W_SPACE), I64.as_pointer())
        self.b.store(self.b.inttoptr(self.tag(self.b.load(space), "meta"), I8.as_pointer()),
                     self.table)
        self.b.store(self.tag(self.b.load(self.b.gep(space, [_k(1)])), "meta"), self.ntable)

    def _fault_function(self) -> ir.Function:
        """void fault(run, pc, addr, size, write, count): record a memory fault (cold)."""
        f = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [I64.as_pointer()] +
                                                     [I64] * 5), name=self.fn.name + "_fault")
        f.linkage = "internal"
        f.attributes.add("noinline")
        f.attributes.add("cold")
        run, pc, addr, size, write, count = f.args
        b = ir.IRBuilder(f.append_basic_block("entry"))
        for word, v in ((W_PC, pc), (W_FADDR, addr), (W_FSIZE, size), (W_FWRITE, write),
                        (W_COUNT, count), (W_FCODE, _k(0))):
            b.store(v, b.gep(run, [_k(word)]))
        b.ret_void()
        return f

    # -- memory ----------------------------------------------------------------------------------
    def access(self, address: _Addr, size: int, write: bool, pc: int, fcount):
        """The host pointer (as iN*) for a checked access, or a branch to a fault return."""
        b = self.b
        off = address.stack
        if off is not None and -STACK_FRAME_SIZE <= off and off + size <= 0:
            host = b.add(b.load(self.fhost), _k(STACK_FRAME_SIZE + off))
            return b.inttoptr(host, INT[size].as_pointer())
        addr = address.value
        # the current stack frame, whatever register points into it (text[i] on the stack)
        rel = b.sub(addr, b.sub(b.load(self.R[10]), _k(STACK_FRAME_SIZE)))
        in_frame = b.icmp_unsigned("<=", rel, _k(STACK_FRAME_SIZE - size))
        frame_bb = self.fn.append_basic_block(f"pc{pc}_frame")
        table_bb = self.fn.append_basic_block(f"pc{pc}_table")
        join = self.fn.append_basic_block(f"pc{pc}_host")
        b.cbranch(in_frame, frame_bb, table_bb)
        b.position_at_end(frame_bb)
        frame_host = b.add(b.load(self.fhost), rel)
        b.branch(join)
        b.position_at_end(table_bb)
        table = b.load(self.table)
        w = b.sub(b.lshr(addr, _k(abi.WINDOW_SHIFT)), _k(abi.FIRST_WINDOW))
        w = b.select(b.icmp_unsigned("<", w, b.load(self.ntable)), w, _k(0))
        e = b.gep(table, [b.mul(w, _k(E_SIZE))])

        def field(offset, ty):
            p = b.bitcast(b.gep(e, [_k(offset)]), ty.as_pointer())
            v = self.tag(b.load(p), "meta")
            return v if ty is I64 else b.zext(v, I64)

        shift = field(E_SHIFT, I32)
        nslots = field(E_NSLOTS, I32)
        length = field(E_LENGTH, I32)
        inner_all = b.and_(addr, _k(abi.WINDOW_MASK))
        slot = b.lshr(inner_all, shift)
        inner = b.sub(inner_all, b.shl(slot, shift))
        in_slots = b.icmp_unsigned("<", slot, nslots)
        live_p = b.inttoptr(field(E_LIVE, I64), I8.as_pointer())
        live = self.tag(b.load(b.gep(live_p, [b.select(in_slots, slot, _k(0))])), "meta")
        good = b.and_(in_slots, b.icmp_unsigned("<=", b.add(inner, _k(size)), length))
        good = b.and_(good, b.icmp_unsigned("!=", live, ir.Constant(I8, 0)))
        if write:
            flags = field(E_FLAGS, I32)
            good = b.and_(good, b.icmp_unsigned("!=", b.and_(flags, _k(abi.W_WRITABLE)), _k(0)))
        bad = self.fn.append_basic_block(f"pc{pc}_fault")
        ok = self.fn.append_basic_block(f"pc{pc}_access")
        b.cbranch(good, ok, bad).set_weights([1 << 20, 1])     # faults are cold
        b.position_at_end(bad)
        b.call(self.fault_fn, [self.run, _k(pc), addr, _k(size), _k(int(write)), fcount])
        b.ret(_k(abi.S_MEMORY, I32))
        b.position_at_end(ok)
        host = b.add(b.add(field(E_HOST, I64), b.mul(slot, field(E_PITCH, I64))), inner)
        table_end = b.block
        b.branch(join)
        b.position_at_end(join)
        phi = b.phi(I64)
        phi.add_incoming(frame_host, frame_bb)
        phi.add_incoming(host, table_end)
        return b.inttoptr(phi, INT[size].as_pointer())

    # -- the program -----------------------------------------------------------------------------
    def translate(self) -> str:
        chk = self.chk
        fn = self.fn
        b = self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self._bail_block = None
        self.R = [b.alloca(I64, name=f"r{i}") for i in range(11)]
        self.count = b.alloca(I64, name="count")
        self.depth = b.alloca(I64, name="depth")
        self.fhost = b.alloca(I64, name="frame_host")
        self.table = b.alloca(I8.as_pointer(), name="table")
        self.ntable = b.alloca(I64, name="ntable")
        for r in range(11):
            b.store(_k(0), self.R[r])
        for r in range(1, 6):
            b.store(self.rload(W_REGS + r), self.R[r])
        b.store(self.rload(W_STACK_END), self.R[10])
        b.store(self.rload(W_STACK_HOST), self.fhost)
        b.store(self.rload(W_COUNT), self.count)
        b.store(_k(0), self.depth)
        self.budget = self.rload(W_BUDGET)
        self._load_table()

        self.starts = block_starts(chk)
        self.checkpoints = _checkpoints(chk, self.starts)
        self.fixed_maps = _fixed_maps(chk, self.starts)
        self.r1_map = None
        self.block = {pc: fn.append_basic_block(f"pc{pc}") for pc in self.starts}
        self.returns = sorted({pc + 1 for pc, insn in enumerate(chk.insns)
                               if pc not in chk.second and insn.opcode == op.OP_CALL and
                               insn.src == op.CALL_LOCAL})
        b.branch(self.block[0])
        lead = set(self.starts)
        for start in self.starts:
            self._block(start, lead)
        return str(self.module)

    def _bail(self, pc: int, count) -> None:
        """Hand the run to the interpreter at block `pc` (it would overrun the budget): one
        shared exit for the whole function, so the code stays linear in the program's size."""
        b = self.b
        if self._bail_block is None:
            here = b.block
            self._bail_pc = self._entry_alloca("bail_pc")
            self._bail_count = self._entry_alloca("bail_count")
            self._bail_block = self.fn.append_basic_block("over_budget")
            b.position_at_end(self._bail_block)
            self._bail_now(b.load(self._bail_pc), b.load(self._bail_count))
            b.position_at_end(here)
        b.store(_k(pc), self._bail_pc)
        b.store(count, self._bail_count)
        b.branch(self._bail_block)

    def _entry_alloca(self, name: str):
        b = self.b
        here = b.block
        b.position_at_start(self.fn.entry_basic_block)
        slot = b.alloca(I64, name=name)
        b.position_at_end(here)
        return slot

    def _bail_now(self, pc, count) -> None:
        for r in range(11):
            self.rstore(W_REGS + r, self.b.load(self.R[r]))
        self.rstore(W_COUNT, count)
        self.rstore(W_PC, pc)
        self.rstore(W_DEPTH, self.b.load(self.depth))
        self.b.ret(_k(abi.S_BUDGET, I32))

    def _stop(self, status: int, pc: int, count) -> None:
        self.rstore(W_PC, pc)
        self.rstore(W_COUNT, count)
        self.b.ret(_k(status, I32))

    def _block(self, start: int, lead: set[int]) -> None:
        b = self.b
        chk = self.chk
        b.position_at_end(self.block[start])
        pcs = block_pcs(chk, start, lead)
        length = max(len(pcs), 1)
        cnt = b.load(self.count)
        new = b.add(cnt, _k(length))
        reach = self.checkpoints.get(start)
        if reach is not None:    # the budget is checked here for everything up to the next one
            over = self.fn.append_basic_block(f"pc{start}_over_budget")
            body = self.fn.append_basic_block(f"pc{start}_run")
            b.cbranch(b.icmp_signed(">", b.add(cnt, _k(reach)), self.budget), over,
                      body).set_weights([1, 1 << 20])
            b.position_at_end(over)
            self._bail(start, cnt)
            b.position_at_end(body)
        b.store(new, self.count)
        if start == chk.n:                       # ran past the last instruction
            self._stop(abi.S_FELL_OFF, chk.n - 1, new)
            return
        # register -> the map handle it holds, where known (from the entry block on)
        maps = dict(self.fixed_maps) if start > 0 else {}
        for j, pc in enumerate(pcs):
            insn = chk.insns[pc]
            if ROWS[insn.opcode].kind in TERMINATORS:
                self.r1_map = maps.get(1)
                self._terminator(pc, new)
                return
            _track_maps(chk, pc, maps)
            emit(_LlvmEmitter(self, pc, b.add(cnt, _k(j + 1))), insn, chk.lddw.get(pc))
        b.branch(self.block[chk.next_pc(pcs[-1])])

    def _terminator(self, pc: int, count) -> None:
        b = self.b
        chk = self.chk
        insn = chk.insns[pc]
        kind = ROWS[insn.opcode].kind
        if kind == "exit":
            self._exit(count)
        elif kind == "call" and insn.src == op.CALL_HELPER:
            self._call_helper(insn.imm, pc, count)
        elif kind == "call":
            self._call_local(chk.target(pc), pc, count)
        elif kind in ("ja", "ja32"):
            b.branch(self.block[chk.target(pc)])
        else:
            cond = condition(_LlvmEmitter(self, pc, count), insn)
            b.cbranch(cond, self.block[chk.target(pc)], self.block[pc + 1])

    def _exit(self, count) -> None:
        b = self.b
        depth = b.load(self.depth)
        top = self.fn.append_basic_block("exit_top")
        ret = self.fn.append_basic_block("exit_return")
        b.cbranch(b.icmp_unsigned("==", depth, _k(0)), top, ret)
        b.position_at_end(top)
        self.rstore(W_REGS, b.load(self.R[0]))
        self.rstore(W_COUNT, count)
        b.ret(_k(abi.S_EXIT, I32))
        b.position_at_end(ret)
        d = b.sub(depth, _k(1))
        b.store(d, self.depth)
        base = b.mul(d, _k(6))
        for i, r in enumerate((6, 7, 8, 9, 10)):
            b.store(self.rload(W_FRAMES, b.add(base, _k(i))), self.R[r])
        b.store(self.rload(W_STACK_HOST, d), self.fhost)
        site = self.rload(W_FRAMES, b.add(base, _k(5)))
        internal = self.fn.append_basic_block("exit_internal")
        sw = b.switch(site, internal)
        for rpc in self.returns:
            sw.add_case(_k(rpc), self.block[rpc])
        b.position_at_end(internal)
        b.ret(_k(abi.S_INTERNAL, I32))

    def _call_local(self, target: int, pc: int, count) -> None:
        b = self.b
        depth = b.load(self.depth)
        new = b.add(depth, _k(1))
        deep = self.fn.append_basic_block(f"pc{pc}_too_deep")
        ok = self.fn.append_basic_block(f"pc{pc}_call")
        b.cbranch(b.icmp_unsigned(">=", new, _k(MAX_CALL_DEPTH)), deep, ok)
        b.position_at_end(deep)
        self._stop(abi.S_CALL_DEPTH, pc, count)
        b.position_at_end(ok)
        base = b.mul(depth, _k(6))
        for i, r in enumerate((6, 7, 8, 9, 10)):
            self.rstore(W_FRAMES, b.load(self.R[r]), b.add(base, _k(i)))
        self.rstore(W_FRAMES, _k(pc + 1), b.add(base, _k(5)))
        b.store(new, self.depth)
        host = self.rload(W_STACK_HOST, new)
        b.call(self.memset, [b.inttoptr(host, I8.as_pointer()), ir.Constant(I8, 0),
                             _k(STACK_FRAME_SIZE), ir.Constant(I1, 0)])
        b.store(host, self.fhost)
        b.store(self.rload(W_STACK_END, new), self.R[10])
        b.branch(self.block[target])

    def _call_helper(self, helper_id: int, pc: int, count) -> None:
        array = self.arrays.get(self.r1_map) if helper_id == 1 and \
            helper_id in self.native_ids else None
        if array is not None:
            self._inline_array_lookup(array, pc, count)
            return
        self._helper_call(helper_id, pc, count, self.block[pc + 1])

    def _inline_array_lookup(self, array: tuple[int, ...], pc: int, count) -> None:
        """bpf_map_lookup_elem(array, key on the current stack frame) without a call: the
        address ntl_map_lookup would return. A key elsewhere, or a CPU the per-CPU array does not
        have, takes the helper call (with its checks and fault messages)."""
        b = self.b
        base, shift, max_entries, group, cpu_ptr = array
        r2 = b.load(self.R[2])
        rel = b.sub(r2, b.sub(b.load(self.R[10]), _k(STACK_FRAME_SIZE)))
        fast = self.fn.append_basic_block(f"pc{pc}_array")
        slow = self.fn.append_basic_block(f"pc{pc}_array_call")
        done = self.block[pc + 1]
        b.cbranch(b.icmp_unsigned("<=", rel, _k(STACK_FRAME_SIZE - 4)), fast, slow)
        b.position_at_end(fast)
        key = b.zext(self.tag(b.load(b.inttoptr(b.add(b.load(self.fhost), rel),
                                                  I32.as_pointer()), align=1), "mem"), I64)
        cpu = _k(0)
        ok = b.icmp_unsigned("<", key, _k(max_entries))
        if cpu_ptr:
            cpu = b.zext(self.tag(b.load(b.inttoptr(_k(cpu_ptr), I32.as_pointer())), "meta"),
                         I64)
            hit = self.fn.append_basic_block(f"pc{pc}_array_cpu")
            b.cbranch(b.icmp_unsigned("<", cpu, _k(group)), hit, slow)
            b.position_at_end(hit)
        vslot = b.add(b.mul(key, _k(group)), cpu)
        address = b.add(_k(base), b.shl(vslot, _k(shift)))
        b.store(b.select(ok, address, _k(0)), self.R[0])
        b.branch(done)
        b.position_at_end(slow)
        self._helper_call(1, pc, count, done)

    def _helper_call(self, helper_id: int, pc: int, count, after) -> None:
        b = self.b
        self.rstore(W_COUNT, count)
        args = [b.load(self.R[r]) for r in range(1, 6)]
        if helper_id in self.native_ids:
            address = lib().ntl_helper(helper_id)
            callee = b.inttoptr(_k(address), self.helper_type.as_pointer())
            r0 = b.call(callee, [self.run] + args)
        else:
            self.rstore(W_PC, pc)
            address = ctypes.cast(lib().ntl_call_python, ctypes.c_void_p).value
            callee = b.inttoptr(_k(address), self.python_type.as_pointer())
            r0 = b.call(callee, [self.run, _k(helper_id)] + args)
        status = self.rload(W_STATUS)
        stop = self.fn.append_basic_block(f"pc{pc}_helper_stop")
        back = self.fn.append_basic_block(f"pc{pc}_helper_back")
        b.cbranch(b.icmp_unsigned("!=", status, _k(0)), stop, back)
        b.position_at_end(stop)
        self.rstore(W_PC, pc)
        b.ret(b.trunc(status, I32))
        b.position_at_end(back)
        b.store(r0, self.R[0])
        self._load_table()
        b.branch(after)


# -- the engine ----------------------------------------------------------------------------------
@dataclass
class _Prepared:
    code: Code
    checked: Checked
    native: _Native | None        # None: too large for the JIT, run on the interpreter
    _ref: Any = None

    def __post_init__(self) -> None:
        if self.native is not None:
            self.native.users += 1
            self._ref = weakref.finalize(self, _unuse, self.native)


class Jit(Engine):
    """eBPF compiled to native code by LLVM; the interpreter's semantics, faults and messages."""

    name = "jit"

    def __init__(self) -> None:
        self._interpreter = Interpreter()

    def prepare(self, code: Code, machine: Machine) -> _Prepared:
        cache = machine.prepared.setdefault(self.name, {})
        hit = cache.get(id(code))
        if hit is not None and hit.code is code:
            return hit
        chk = check(code.name, code.insns, machine, code.describe_pc)
        if chk.n > MAX_JIT_INSNS:
            warnings.warn(f"{code.name}: {chk.n} instructions is more than the JIT compiles "
                          f"({MAX_JIT_INSNS}); it runs on the interpreter", RuntimeWarning,
                          stacklevel=2)
            native = None
        else:
            native = _compile(chk, frozenset(machine.native_helpers), code.name,
                              _arrays(chk, machine))
        prepared = _Prepared(code, chk, native)
        cache[id(code)] = prepared
        self._bind_tail_calls(machine)
        return prepared

    def _bind_tail_calls(self, machine: Machine) -> None:
        """Give every prog-array slot of the machine the native code of its program."""
        for slot_map in getattr(machine, "prog_arrays", ()):
            for index, program in slot_map.programs().items():
                try:
                    p = self.prepare(program, machine) if program is not None else None
                except ProgramError as exc:
                    machine.tail_errors[machine.programs.id_of(program)] = str(exc)
                    continue
                if p is not None and p.native is not None:
                    slot_map.set_native(index, p.native.address)

    def ir(self, code: Code, machine: Machine) -> str:
        """The LLVM IR generated for `code` (before optimization)."""
        native = self.prepare(code, machine).native
        return native.ir if native is not None else ""

    def run(self, code: Code, machine: Machine, args: Sequence[int] = (),
            budget: int = DEFAULT_BUDGET) -> RunResult:
        prepared = self.prepare(code, machine)
        if prepared.native is None:
            return self._interpreter.run(code, machine, args, budget)
        return _Run(self, machine, prepared, budget).go(args)

    def native_run(self, code: Code, machine: Machine, budget: int) -> "_Run | None":
        """For a caller that runs the native code itself (batch replay): a run context to enter
        while native code runs, whose `outcome(status)` turns a status into the result or the
        fault; None when `code` runs on the interpreter."""
        prepared = self.prepare(code, machine)
        return None if prepared.native is None else _Run(self, machine, prepared, budget)


# -- one run: the Python side ------------------------------------------------------------------------
# run context address -> the _Run entered on it; weak, so a run (or a chain holding its runs
# entered) that is dropped without leaving frees its machine and code
_RUNS: "weakref.WeakValueDictionary[int, _Run]" = weakref.WeakValueDictionary()


def _python_helper(run_ptr, helper_id: int) -> int:
    run = _RUNS[ctypes.addressof(run_ptr.contents)]
    try:
        return run.call_python(helper_id)
    except BaseException as exc:  # noqa: B036 - handed back to the run loop, never lost
        run.error = exc
        run.state.status = abi.S_PYTHON
        return 0


_TRAMPOLINE = abi.PYTHON_HELPER(_python_helper)
_TRAMPOLINE_ADDRESS = ctypes.cast(_TRAMPOLINE, ctypes.c_void_p).value


class _Run:
    def __init__(self, engine: Jit, machine: Machine, prepared: _Prepared, budget: int) -> None:
        self.engine = engine
        self.machine = machine
        self.prepared = prepared
        self.budget = budget
        self.state = machine.native_run()
        self.error: BaseException | None = None
        self._outer: "_Run | None" = None

    def code_of(self, program_id: int) -> Code:
        return self.machine.programs.get(program_id, self.prepared.code)

    def where(self, pc: int) -> dict:
        return fault_site(self.code_of(self.state.program_id), pc, self.state.count)

    def fault(self, kind: FaultKind, message: str, pc: int) -> VmFault:
        return VmFault(kind, message, **self.where(pc))

    # -- helpers implemented in Python (called from native code) ---------------------------------
    def call_python(self, helper_id: int) -> int:
        st = self.state
        pc = st.pc
        result = invoke_helper(self.machine, helper_id, tuple(st.regs[1:6]),
                               lambda kind, message: self.fault(kind, message, pc))
        if isinstance(result, TailCall):
            return self._tail_call(result)
        return result & M64

    def _tail_call(self, call: TailCall) -> int:
        st = self.state
        if st.tail_calls >= self.machine.max_tail_calls:
            self.machine.tail_calls_failed += 1
            return call.failure & M64
        try:
            p = self.engine.prepare(call.code, self.machine)
        except ProgramError as exc:
            raise _TailFault(str(exc)) from None
        if p.native is None:
            raise _TailFault(f"{call.code.name} is too large for the JIT")
        st.tail_fn = p.native.address
        st.tail_prog_id = self.machine.programs.id_of(call.code)
        st.tail_ctx = call.ctx & M64
        return 0

    # -- the run ---------------------------------------------------------------------------------
    def __enter__(self) -> "_Run":
        """Make native code on this machine call back into this run (stackable)."""
        st = self.state
        st.python = _TRAMPOLINE_ADDRESS
        st.native_tail = 1
        st.max_tail_calls = self.machine.max_tail_calls
        key = ctypes.addressof(st)
        self._outer = _RUNS.get(key)
        _RUNS[key] = self
        return self

    def __exit__(self, *exc) -> None:
        st = self.state
        key = ctypes.addressof(st)
        if self._outer is None:
            _RUNS.pop(key, None)
        else:
            _RUNS[key] = self._outer
            self._outer = None
        self.settle()

    def settle(self) -> None:
        """Count the tail calls that failed for lack of room into the machine's total."""
        st = self.state
        if st.tail_calls_failed:
            self.machine.tail_calls_failed += st.tail_calls_failed
            st.tail_calls_failed = 0

    @property
    def native_budget(self) -> int:
        return max(-1, min(self.budget, 1 << 62)) & M64

    def _load_args(self, args: Sequence[int]) -> None:
        values = [0] * 11
        for i, a in enumerate(args[:5]):
            values[i + 1] = a & M64
        st = self.state
        st.regs[0:11] = values
        st.program_id = self.machine.programs.id_of(self.prepared.code)

    def go(self, args: Sequence[int]) -> RunResult:
        st = self.state
        self._load_args(args)
        with self:
            status = lib().ntl_run_program(ctypes.byref(st), self.prepared.native.address,
                                           st.regs[1], self.native_budget)
            return self.outcome(status)

    def repeat(self, args: Sequence[int], count: int, maps: Any = None,
               nmaps: int = 0) -> tuple[RunResult, int, int]:
        """BPF_PROG_TEST_RUN's repeat, natively: (the last run's result, loop ns, runs done).
        Stops at the first run that does not exit normally (its fault is raised as by `go`)."""
        st = self.state
        self._load_args(args)
        elapsed, done = ctypes.c_uint64(), ctypes.c_uint64()
        with self:
            status = lib().ntl_repeat_run(ctypes.byref(st), self.prepared.native.address,
                                          st.regs[1], self.native_budget, maps, nmaps, count,
                                          ctypes.byref(elapsed), ctypes.byref(done))
            return self.outcome(status), elapsed.value, done.value

    def outcome(self, status: int) -> RunResult:
        """What native code returning `status` means: the result, or the VmFault raised."""
        st = self.state
        if status == abi.S_EXIT:
            return RunResult(st.regs[0], st.count, st.tail_calls)
        return self._stopped(status)

    def _stopped(self, status: int) -> RunResult:
        st = self.state
        pc = st.pc
        if status == abi.S_BUDGET:
            return self._resume()
        if status == abi.S_MEMORY and st.fault_code == 0:
            address, size, write = st.fault_addr, st.fault_size, bool(st.fault_write)
            try:
                self.machine.memory.locate(address, size, write)
            except MemoryFault as exc:
                raise memory_fault(exc, **self.where(pc)) from None
            raise RuntimeError(f"jit: native code reported a bad {size}-byte access at "
                               f"{address:#x} (pc {pc}) that the address space allows")
        if status == abi.S_CALL_DEPTH:
            raise self.fault(FaultKind.CALL, f"bpf-to-bpf call depth would exceed {MAX_CALL_DEPTH} "
                             f"frames", pc)
        if status == abi.S_FELL_OFF:
            raise self.fault(FaultKind.CONTROL, "execution ran past the last instruction", pc)
        if status == abi.S_PYTHON:
            error, self.error = self.error, None
            st.status = 0
            if error is None:
                raise RuntimeError(f"jit: native code reported a Python helper error at pc {pc} "
                                   f"that no helper raised")
            if isinstance(error, StopProgram):
                return RunResult(error.r0 & M64, st.count, st.tail_calls)
            if isinstance(error, _TailFault):
                raise self.fault(FaultKind.TAIL_CALL, f"tail call target cannot run: {error}", pc) \
                    from None
            if isinstance(error, MemoryFault):
                raise memory_fault(error, **self.where(pc)) from None
            if isinstance(error, VmFault):
                raise error
            if isinstance(error, HelperError):
                raise self.fault(FaultKind.HELPER, str(error), pc) from None
            raise error
        if status in (abi.S_MEMORY, abi.S_HELPER, abi.S_STOP):
            stop = self.machine.native_stop(st, lambda: self.where(pc))
            st.status = 0
            if isinstance(stop, StopProgram):
                return RunResult(stop.r0 & M64, st.count, st.tail_calls)
            raise stop
        raise RuntimeError(f"jit: native code stopped with status {status}")

    def _resume(self) -> RunResult:
        """The block at run.pc would overrun the budget: the interpreter takes over there."""
        st = self.state
        frames = [(st.frames[d * 6 + 5], [st.frames[d * 6 + i] for i in range(5)])
                  for d in range(st.depth)]
        return self.engine._interpreter.resume(
            self.code_of(st.program_id), self.machine, st.pc, list(st.regs), frames, st.count,
            self.budget, st.tail_calls)


class _TailFault(Exception):
    """A Python helper's tail call names a program that cannot be compiled."""


register_engine("jit", Jit)
