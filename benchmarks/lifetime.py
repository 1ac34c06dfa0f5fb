"""Compiled code has a lifetime: RSS while loading and running many different programs.

    .venv/bin/python benchmarks/lifetime.py [--programs 1000] [--reloads 300]

A notebook cell re-run all afternoon loads a slightly different program each time. This runs
(1) `--programs` different small programs (each its own bytecode: the JIT cannot share code
between them) on the JIT, one machine each, and (2) `--reloads` loads of process_monitor with one
constant changed each time, each in a new emulated hook that attaches it and injects an event;
and prints the growth of the resident set after each step. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def small_programs(n: int) -> None:
    from ntoslab.elf import load
    from ntoslab.isa.opcodes import encode
    from ntoslab.vm import get_engine
    from ntoslab.vm.engine import Machine, RawCode
    jit = get_engine("jit")
    base_insns = load(ROOT / "bpf" / "tests" / "bench_hash.o").programs[0].insns
    import dataclasses
    base = rss_mib()
    start = time.perf_counter()
    for i in range(n):
        insns = list(base_insns)
        k = next(j for j, ins in enumerate(insns) if ins.opcode == 0xb7)
        insns[k] = dataclasses.replace(insns[k], imm=(insns[k].imm + i + 1) & 0x7FFFFFFF)
        code = RawCode.from_bytes(encode(insns), f"variant{i}")
        jit.run(code, Machine(), [0], 50_000_000)
        if (i + 1) % max(n // 5, 1) == 0:
            gc.collect()
            print(f"  {i + 1:>5} programs: RSS +{rss_mib() - base:6.1f} MiB, "
                  f"{(time.perf_counter() - start) / (i + 1) * 1e3:6.1f} ms per program")


def reloads(n: int) -> None:
    import ntoslab
    from ntoslab.elf import load
    path = ROOT / "bpf" / "process_monitor.o"
    base = rss_mib()
    times = []
    for i in range(n):
        obj = load(path)
        prog = obj.programs[0]
        k = next(j for j, ins in enumerate(prog.insns) if ins.opcode == 0xb7 and ins.imm == 0)
        import dataclasses
        prog.insns[k] = dataclasses.replace(prog.insns[k], imm=1000 + i)
        t = time.perf_counter()
        with ntoslab.emulator("jit") as hook:
            hook.attach(hook.load(obj).program(prog.name))
            hook.inject(ntoslab.ProcessEvent.create(4000 + i, 4, r"C:\x.exe", "x"))
        times.append(time.perf_counter() - t)
        if (i + 1) % max(n // 5, 1) == 0:
            gc.collect()
            times.sort()
            print(f"  {i + 1:>5} reloads: RSS +{rss_mib() - base:6.1f} MiB, load + compile + "
                  f"run median {times[len(times) // 2] * 1e3:5.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--reloads", type=int, default=300)
    ns = parser.parse_args()
    print(f"{ns.programs} different programs on the JIT (bench_hash with one constant changed)")
    small_programs(ns.programs)
    print(f"{ns.reloads} reloads of process_monitor with one constant changed (new hook each)")
    reloads(ns.reloads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
