"""Engine speed: ns per eBPF instruction for each engine, against this machine's Linux kernel.

    .venv/bin/python benchmarks/engine.py [--repeat N]

Runs three compute-heavy programs from bpf/tests/ (a prime sieve, UTF-16 lower-casing and
matching, a hash loop) on every ntoslab engine and, where the kernel verifier accepts the same
bytecode, through BPF_PROG_TEST_RUN. Everything is measured in this one run and printed as
ratios; nothing is asserted.
"""
from __future__ import annotations

import argparse
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

PROGRAMS = ["bench_sieve", "bench_utf16", "bench_hash"]


def measure_engine(name: str, path: Path, repeat: int) -> tuple[int, int, float]:
    obj = load(path)
    box = Sandbox(obj, engine=get_engine(name))
    prog = obj.programs[0]
    box.run(prog, bytes(144), budget=50_000_000)  # warm-up (translation)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = box.run(prog, bytes(144), budget=50_000_000)
        times.append(time.perf_counter() - t)
    return r.r0, r.instructions, statistics.median(times)


def measure_kernel(path: Path, repeat: int):
    from ntoslab.vm.kernel import KernelRejected, KernelUnavailable, LinuxKernel
    try:
        kernel = LinuxKernel()
        code = encode(load(path).programs[0].insns)
        fd = kernel.load(code, path.stem[:15])
    except KernelUnavailable as exc:
        return None, f"kernel unavailable: {exc}"
    except KernelRejected as exc:
        return None, f"kernel verifier rejected it: {exc.log.splitlines()[-1] if exc.log else exc}"
    import os
    try:
        run = kernel.test_run(fd, repeat=max(repeat * 20, 100))
    finally:
        os.close(fd)
    return run, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    ns = parser.parse_args()
    print(f"{'program':<12} {'engine':<12} {'insns':>9} {'ns/insn':>10} {'vs kernel':>10}  r0")
    for stem in PROGRAMS:
        path = ROOT / "bpf" / "tests" / f"{stem}.o"
        if not path.exists():
            print(f"{stem:<12} missing {path.relative_to(ROOT)}: run `make build` first")
            continue
        kernel, why = measure_kernel(path, ns.repeat)
        results = {}
        for engine in sorted(ENGINES):
            r0, count, seconds = measure_engine(engine, path, ns.repeat)
            results[engine] = (r0, count, seconds)
        count = next(iter(results.values()))[1]
        kernel_ns = kernel.duration_ns / count if kernel else None
        for engine, (r0, count, seconds) in results.items():
            per = seconds * 1e9 / count
            ratio = f"{per / kernel_ns:>9.0f}x" if kernel_ns else f"{'n/a':>10}"
            print(f"{stem:<12} {engine:<12} {count:>9} {per:>10.1f} {ratio}  {r0 & 0xFFFFFFFF:#x}")
        if kernel:
            agree = all((r[0] & 0xFFFFFFFF) == kernel.retval for r in results.values())
            print(f"{stem:<12} {'linux-kernel':<12} {count:>9} {kernel_ns:>10.2f} {'1x':>10}  "
                  f"{kernel.retval:#x}{'' if agree else '  (DISAGREES)'}")
        else:
            print(f"{stem:<12} {'linux-kernel':<12} {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
