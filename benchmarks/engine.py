"""Engine speed against this machine's Linux kernel, on the same bytecode, in one run.

    .venv/bin/python benchmarks/engine.py [--repeat N]

1. Per-run cost: a two-instruction program (`r0 = 1; exit`) run many times in a loop on the
   JIT (natively: `Sandbox.test_run`, the counterpart of BPF_PROG_TEST_RUN's repeat) and in the
   kernel (BPF_PROG_TEST_RUN with repeat); also one call from Python (what `inject()` pays).
2. Compute: three programs from bpf/tests/ (a prime sieve, UTF-16 lower-casing and matching, a
   hash loop) on every ntoslab engine and, where the verifier accepts them, in the kernel: ns per
   run and per instruction, and the ratio to the kernel JIT.
3. Load + JIT-compile of process_monitor (the cold path a notebook pays on `hook.load`).

Everything is measured in this run and printed as ratios; nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ntoslab.elf import load  # noqa: E402
from ntoslab.isa.opcodes import encode  # noqa: E402
from ntoslab.runtime import Sandbox  # noqa: E402
from ntoslab.vm import ENGINES, get_engine  # noqa: E402
from ntoslab.vm.engine import Machine, RawCode  # noqa: E402

PROGRAMS = ["bench_sieve", "bench_utf16", "bench_hash"]
TRIVIAL = bytes.fromhex("b700000001000000" "9500000000000000")   # r0 = 1; exit


def kernel_or_reason():
    from ntoslab.vm.kernel import KernelUnavailable, LinuxKernel
    try:
        return LinuxKernel(), ""
    except KernelUnavailable as exc:
        return None, f"kernel unavailable: {exc}"


def kernel_ns(kernel, code: bytes, name: str, repeat: int):
    """(ns per run, retval) through BPF_PROG_TEST_RUN, or (None, why)."""
    from ntoslab.vm.kernel import KernelRejected
    try:
        fd = kernel.load(code, name[:15])
    except KernelRejected as exc:
        return None, f"verifier rejected it: {exc.log.splitlines()[-1] if exc.log else exc}"
    try:
        best = min((kernel.test_run(fd, repeat=repeat) for _ in range(3)),
                   key=lambda run: run.duration_ns)
        return best.duration_ns, best.retval
    finally:
        os.close(fd)


def per_run(kernel, repeat: int) -> None:
    print("per-run cost, r0 = 1; exit")
    jit = get_engine("jit")
    code = RawCode.from_bytes(TRIVIAL, "trivial")
    machine = Machine()
    job = jit.native_run(code, machine, 1000)
    loop = min(job.repeat([0], repeat)[1] / repeat for _ in range(5))
    calls = []
    for _ in range(5):
        t = time.perf_counter_ns()
        for _ in range(2000):
            jit.run(code, machine, [0], 1000)
        calls.append((time.perf_counter_ns() - t) / 2000)
    k = kernel_ns(kernel, TRIVIAL, "trivial", repeat)[0] if kernel else None
    ratio = (lambda ns: f"{ns / k:6.1f}x") if k else (lambda ns: "   n/a")
    print(f"  {'jit, native loop':<28} {loop:9.1f} ns/run  {ratio(loop)} kernel")
    print(f"  {'jit, one call from Python':<28} {min(calls):9.1f} ns/run  {ratio(min(calls))} kernel")
    if k:
        print(f"  {'linux kernel (test_run)':<28} {k:9.1f} ns/run       1x")


def compute(kernel, why: str, repeat: int) -> None:
    print(f"\n{'program':<12} {'engine':<12} {'insns':>9} {'µs/run':>10} {'ns/insn':>9} "
          f"{'vs kernel':>10}  r0")
    for stem in PROGRAMS:
        path = ROOT / "bpf" / "tests" / f"{stem}.o"
        if not path.exists():
            print(f"{stem:<12} missing {path.relative_to(ROOT)}: run `make build` first")
            continue
        obj = load(path)
        prog = obj.programs[0]
        rows = {}
        for engine in sorted(ENGINES):
            box = Sandbox(obj, engine=get_engine(engine))
            n = repeat * 20 if engine == "jit" else max(repeat // 4, 2)
            box.test_run(prog, bytes(144), repeat=1, budget=50_000_000)     # translate
            # process time, not wall time: the machine is shared; best of three
            best = None
            for _ in range(3):
                c = time.process_time_ns()
                result, _ = box.test_run(prog, bytes(144), repeat=n, budget=50_000_000)
                ns = (time.process_time_ns() - c) / n
                best = ns if best is None else min(best, ns)
            rows[engine] = (result.r0, result.instructions, best)
        count = next(iter(rows.values()))[1]
        k, kr0 = kernel_ns(kernel, encode(prog.insns), stem, repeat * 20) if kernel else (None, why)
        for engine, (r0, count, ns) in rows.items():
            ratio = f"{ns / k:>9.1f}x" if k else f"{'n/a':>10}"
            print(f"{stem:<12} {engine:<12} {count:>9} {ns / 1e3:>10.2f} {ns / count:>9.2f} "
                  f"{ratio}  {r0 & 0xFFFFFFFF:#x}")
        if k:
            agree = all((r[0] & 0xFFFFFFFF) == kr0 for r in rows.values())
            print(f"{stem:<12} {'linux-kernel':<12} {count:>9} {k / 1e3:>10.2f} {k / count:>9.2f} "
                  f"{'1x':>10}  {kr0:#x}{'' if agree else '  (DISAGREES)'}")
        else:
            print(f"{stem:<12} {'linux-kernel':<12} {kr0}")


def compile_time() -> None:
    import ntoslab
    from ntoslab.vm import jit
    path = ROOT / "bpf" / "process_monitor.o"
    times = []
    for _ in range(5):
        jit._NATIVE.clear()          # a cold compile each time (no code shared with the last)
        t = time.perf_counter()
        with ntoslab.emulator("jit") as hook:
            hook.load(path)
        times.append(time.perf_counter() - t)
    with ntoslab.emulator("interpreter") as hook:
        t = time.perf_counter()
        hook.load(path)
        interp = time.perf_counter() - t
    print(f"\nload + JIT-compile process_monitor: median {statistics.median(times) * 1e3:.0f} ms, "
          f"best {min(times) * 1e3:.0f} ms (load for the interpreter: {interp * 1e3:.0f} ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    ns = parser.parse_args()
    kernel, why = kernel_or_reason()
    per_run(kernel, 100_000)
    compute(kernel, why, ns.repeat)
    compile_time()
    return 0


if __name__ == "__main__":
    sys.exit(main())
