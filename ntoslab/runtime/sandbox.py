"""One loaded object with its maps created in one address space, ready to run its programs.

>>> box = Sandbox(ntoslab.elf.load("bpf/tests/globals.o"))   # doctest: +SKIP
>>> box.run("count", ctx=bytes(16)).r0                        # doctest: +SKIP
"""
from __future__ import annotations

import ctypes
from typing import Mapping

from ..elf.program import ElfObject, Program
from ..isa import opcodes as op
from ..native import lib
from ..vm.engine import DEFAULT_BUDGET, Engine, Helper, Machine, RunResult, get_engine
from ..vm.memory import AddressSpace, RegionKind
from .helpers import HELPER_NAMES, NATIVE_GENERAL, NOT_IN_CORE, HelperState, describe_fault
from .maps import Map, MapEnv, ProgArrayMap, create_map


class Sandbox:
    """Maps of `obj` instantiated, helpers bound, an engine to run programs with.

    `helpers` adds or replaces helpers with Python callables; `native_helpers` adds helper ids
    the native runtime implements beyond the general ones (a program type's own helpers).
    `max_map_bytes` bounds the storage one map may take (MapSpecError beyond it); `true_lru`
    gives LRU maps exact least-recently-used eviction instead of EFW's generations."""

    def __init__(self, obj: ElfObject, engine: str | Engine = "interpreter",
                 helpers: Mapping[int, Helper] | None = None, ncpus: int = 1,
                 seed: int | None = 0, native_helpers: frozenset = frozenset(),
                 max_map_bytes: int | None = None, true_lru: bool = False) -> None:
        self.obj = obj
        self.engine = get_engine(engine) if isinstance(engine, str) else engine
        self.memory = AddressSpace()
        self.map_fixed_regions()
        kw = {} if max_map_bytes is None else {"max_map_bytes": max_map_bytes}
        self.env = MapEnv(self.memory, ncpus, seed=seed, true_lru=true_lru, **kw)
        self.maps: dict[str, Map] = {}
        self._by_index: list[Map] = []
        self._by_handle: dict[int, Map] = {}
        for spec in obj.maps.values():
            m = create_map(spec, self.env)
            self.maps[spec.name] = m
            self._by_index.append(m)
            self._by_handle[m.handle.base] = m
        prog_arrays = []
        for m in self.maps.values():
            if isinstance(m, ProgArrayMap):
                for slot, name in m.spec.initial_values.items():
                    m.set_program(slot, obj.program(name))
                prog_arrays.append(m)
            elif hasattr(m, "resolve_initial_values"):
                m.resolve_initial_values(self.maps.__getitem__)
        self._epoch_maps = (ctypes.c_void_p * max(len(self._by_index), 1))(
            *[m.native for m in self._by_index])
        self.state = HelperState(self.env, self._program_name)
        python = dict(helpers or {})
        native = (NATIVE_GENERAL | frozenset(native_helpers)) - frozenset(python)
        unavailable = {i: f"{name} is not implemented by eBPF for Windows' core and "
                          f"{self._type_label()} programs have no extension that provides it"
                       for i, name in NOT_IN_CORE.items() if i not in python}
        self.machine = Machine(self.memory, python, self._resolve_lddw, unavailable=unavailable,
                               native_helpers=native, helper_names=HELPER_NAMES,
                               env=self.env.native, programs=self.env.programs,
                               prog_arrays=prog_arrays, describe_fault=describe_fault(self.env))

    def map_fixed_regions(self) -> None:
        """Regions a program type maps before the maps (so they sit at the same address in
        every sandbox); none by default."""

    def _type_label(self) -> str:
        types = sorted({p.type or "unknown" for p in self.obj.programs})
        return "/".join(types) or "these"

    def _program_name(self, program_id: int) -> str:
        code = self.env.programs.get(program_id)
        return getattr(code, "name", "") if code is not None else ""

    def map_at(self, address: int, helper: str = "") -> Map | None:
        return self._by_handle.get(address) or self.env.map_at(address)

    def _resolve_lddw(self, src: int, imm: int, next_imm: int) -> int:
        if not 0 <= imm < len(self._by_index):
            raise LookupError(f"lddw refers to map index {imm}; the object has "
                              f"{len(self._by_index)} maps")
        m = self._by_index[imm]
        if src in (op.LDDW_MAP_FD, op.LDDW_MAP_IDX):
            return m.handle.base
        addr = m.lookup_address(bytes(m.spec.key_size or 4))
        if addr == 0:
            raise LookupError(f"lddw takes a value address of map {m.name}, which has none")
        return addr + next_imm

    def program(self, name: str | Program) -> Program:
        return name if isinstance(name, Program) else self.obj.program(name)

    def run(self, program: str | Program, ctx: bytes | bytearray = b"", *,
            ctx_writable: bool = False, budget: int = DEFAULT_BUDGET) -> RunResult:
        """Run one program with r1 pointing at a copy of `ctx` (region "context")."""
        prog = self.program(program)
        region = self.memory.add("context", bytearray(ctx), writable=ctx_writable, kind=RegionKind.CONTEXT)
        try:
            return self.run_at(prog, region.base, budget)
        finally:
            self.memory.remove(region)

    def run_at(self, program: Program, ctx_address: int, budget: int = DEFAULT_BUDGET) -> RunResult:
        """Run with r1 = `ctx_address` (already mapped); ends the maps' epoch afterwards, so
        values deleted during the run stay readable until it returns, as on Windows."""
        self._point_run(program, ctx_address)
        try:
            return self.engine.run(program, self.machine, [ctx_address], budget)
        finally:
            lib().ntl_end_epochs(self._epoch_maps, len(self._by_index))

    def test_run(self, program: str | Program, ctx: bytes | bytearray = b"", *,
                 repeat: int = 1, ctx_writable: bool = False,
                 budget: int = DEFAULT_BUDGET) -> tuple[RunResult, float]:
        """BPF_PROG_TEST_RUN: run `repeat` times on one context; (the last run's result, mean
        ns per run). On the JIT the loop is native, so the figure compares with the kernel's.

        >>> result, ns = box.test_run("count", bytes(16), repeat=1000)   # doctest: +SKIP
        """
        import time
        prog = self.program(program)
        region = self.memory.add("context", bytearray(ctx), writable=ctx_writable, kind=RegionKind.CONTEXT)
        try:
            self._point_run(prog, region.base)
            native = getattr(self.engine, "native_run", None)
            job = native(prog, self.machine, budget) if native else None
            if job is not None:
                result, elapsed, done = job.repeat([region.base], repeat, self._epoch_maps,
                                                   len(self._by_index))
                return result, elapsed / max(done, 1)
            start = time.perf_counter_ns()
            for _ in range(max(repeat, 1)):
                result = self.run_at(prog, region.base, budget)
            return result, (time.perf_counter_ns() - start) / max(repeat, 1)
        finally:
            self.memory.remove(region)

    def _point_run(self, program: Program, ctx_address: int) -> None:
        """Tell the native run context which program runs on which context."""
        run = self.machine.native_run()
        run.ctx_addr = ctx_address
        run.program_id = self.env.programs.id_of(program)

    def helper_name(self, helper_id: int) -> str:
        return HELPER_NAMES.get(helper_id, f"helper {helper_id}")
