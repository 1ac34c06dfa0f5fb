"""Map helper speed: ns per lookup / update / delete for each map type and per ring-buffer
output, ntoslab's JIT against this machine's Linux kernel JIT on the same bytecode.

    .venv/bin/python benchmarks/maps.py [--ops N] [--repeat R]

Each program is a loop making N calls of one helper (keys i % K, all present; values of 8
bytes; ring records of 64 bytes), so the fixed cost of a run is spread over N operations. The
kernel runs the same bytecode (map fds put in the lddw's, the ring's output helper is 130 there
instead of 11) through BPF_PROG_TEST_RUN. A delete run removes keys the previous trial put back
(outside the timing); a ring-output run starts on an emptied ring. ns/op subtracts each side's
cost of running an empty program (printed too); the ratio is JIT / kernel, from this one run.
Targets (issue 8): <= 3x, first bar <= 10x. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import mmap
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ntoslab.elf.program import MAP_TYPE_IDS, ElfObject, MapSpec, Program  # noqa: E402
from ntoslab.isa.opcodes import Instruction, decode, encode  # noqa: E402
from ntoslab.runtime import Sandbox  # noqa: E402

MAP_KINDS = ["array", "percpu_array", "hash", "percpu_hash", "lru_hash", "lru_percpu_hash"]
KEYS = 1024                   # distinct keys (array: max_entries; hash types: 4x that capacity)
RECORD = 64                   # ring record bytes
RING_BYTES = 1 << 20
WINDOWS_RINGBUF_OUTPUT, LINUX_RINGBUF_OUTPUT = 11, 130


def I(opcode, dst=0, src=0, off=0, imm=0):  # noqa: E743
    return Instruction(opcode, dst, src, off, imm)


def loop_program(op: str, n: int, ring_helper: int = WINDOWS_RINGBUF_OUTPUT) -> bytes:
    """n calls of one helper on map 0: r7 counts, the key is r7 % KEYS at r10-8."""
    body: list[Instruction] = []
    if op == "output":
        body += [I(0xBF, 1, 6), I(0xBF, 2, 10), I(0x07, 2, 0, 0, -64 - RECORD),
                 I(0xB7, 3, 0, 0, RECORD), I(0xB7, 4, 0, 0, 0), I(0x85, imm=ring_helper)]
    else:
        body += [I(0xBF, 1, 7), I(0x57, 1, 0, 0, KEYS - 1), I(0x63, 10, 1, -8)]
        body += [I(0xBF, 1, 6), I(0xBF, 2, 10), I(0x07, 2, 0, 0, -8)]
        if op == "update":
            body += [I(0x7B, 10, 7, -16), I(0xBF, 3, 10), I(0x07, 3, 0, 0, -16),
                     I(0xB7, 4, 0, 0, 0)]
        body.append(I(0x85, imm={"lookup": 1, "update": 2, "delete": 3}[op]))
    # r8 counts the calls that succeeded (lookup: found; the rest: r0 == 0)
    body += [I(0x15 if op == "lookup" else 0x55, 0, 0, 1, 0), I(0x07, 8, 0, 0, 1)]
    body += [I(0x07, 7, 0, 0, 1)]
    body.append(I(0xA5, 7, 0, -(len(body) + 1), n))           # jlt r7, n, loop
    head = [Instruction(0x18, 6, 1, 0, 0, 0), I(0), I(0xB7, 7, 0, 0, 0), I(0xB7, 8, 0, 0, 0)]
    if op == "output":   # the record's bytes: initialised stack
        head += [I(0x7A, 10, 0, -64 - RECORD + j, j) for j in range(0, RECORD, 8)]
    return encode(head + body + [I(0xBF, 0, 8), I(0x95)])


EMPTY = encode([I(0xB7, 0, 0, 0, 0), I(0x95)])


def spec_for(kind: str) -> MapSpec:
    if kind == "ringbuf":
        return MapSpec("m", MAP_TYPE_IDS["ringbuf"], 0, 0, RING_BYTES)
    entries = KEYS if kind in ("array", "percpu_array") else 4 * KEYS
    return MapSpec("m", MAP_TYPE_IDS[kind], 4, 8, entries)


def key(i: int) -> bytes:
    return i.to_bytes(4, "little")


# -- ntoslab's JIT -------------------------------------------------------------------------------

class JitSide:
    def __init__(self, kind: str, code: bytes) -> None:
        self.prog = Program("bench", "bind", "bind", decode(code), ["m"])
        self.box = Sandbox(ElfObject("<bench>", [self.prog], {"m": spec_for(kind)}),
                           engine="jit")
        self.map = self.box.maps["m"]
        self.kind = kind

    def fill(self) -> None:
        if self.kind == "ringbuf":
            ring = self.map.ring._ring
            ring.consumer = ring.producer
            return
        value = self.map.user_value(bytes(8)) if not hasattr(self.map, "slot_size") else \
            bytes(self.map.slot_size * self.box.env.ncpus)
        for i in range(KEYS):
            self.map.update_user(key(i), value)

    def time_run(self) -> float:
        t = time.perf_counter()
        self.ok = self.box.run(self.prog).r0
        return time.perf_counter() - t


# -- the Linux kernel ----------------------------------------------------------------------------

class KernelSide:
    def __init__(self, kernel, kind: str, code: bytes) -> None:
        from ntoslab.vm.kernel_maps import KernelMap, load_with_maps
        s = spec_for(kind)
        self.kernel, self.kind = kernel, kind
        self.map = KernelMap(kernel, kind, s.key_size, s.value_size, s.max_entries)
        self.fd = load_with_maps(kernel, code, [self.map], "bench")

    def close(self) -> None:
        os.close(self.fd)
        self.map.close()

    def fill(self) -> None:
        if self.kind == "ringbuf":
            with mmap.mmap(self.map.fd, mmap.PAGESIZE, offset=0) as cons, \
                    mmap.mmap(self.map.fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ,
                              offset=mmap.PAGESIZE) as prod:
                cons[0:8] = prod[0:8]          # consumer = producer: the ring is empty
            return
        value = bytes(self.map.user_value_size)
        for i in range(KEYS):
            self.map.update(key(i), value)

    def time_run(self, repeat: int = 1) -> float:
        run = self.kernel.test_run(self.fd, repeat=repeat)
        self.ok = run.retval
        return run.duration_ns * 1e-9


def measure(side, trials: int, refill: bool) -> float:
    """Seconds of the fastest of `trials` runs (the map refilled before each when asked)."""
    best = float("inf")
    side.fill()
    for _ in range(trials):
        if refill:
            side.fill()
        best = min(best, side.time_run())
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=KEYS, help="helper calls per run")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per cell (min)")
    ns = parser.parse_args()
    n = ns.ops

    from ntoslab.vm.kernel import KernelRejected, KernelUnavailable, LinuxKernel
    try:
        kernel = LinuxKernel()
        kernel.run(EMPTY)
    except (KernelUnavailable, OSError) as exc:
        kernel = None
        print(f"kernel unavailable: {exc}; printing the JIT alone")

    # the per-run cost of an empty program on each side
    empty = JitSide("array", EMPTY)
    empty.time_run()
    jit_fixed = min(empty.time_run() for _ in range(2000))
    ctx = empty.box.memory.add("context", bytearray(0), writable=False, kind="context")
    run_at = []
    for _ in range(2000):
        t = time.perf_counter()
        empty.box.run_at(empty.prog, ctx.base)
        run_at.append(time.perf_counter() - t)
    kernel_fixed = None
    if kernel is not None:
        from ntoslab.vm.kernel_maps import KernelMap, load_with_maps
        with KernelMap(kernel, "array", 4, 8, 1) as m:
            fd = load_with_maps(kernel, EMPTY, [m], "empty")
            kernel_fixed = min(kernel.test_run(fd, repeat=100_000).duration_ns
                               for _ in range(3)) * 1e-9
            os.close(fd)
    print(f"per-run overhead (empty program): jit {jit_fixed * 1e9:,.0f} ns "
          f"(Sandbox.run; {min(run_at) * 1e9:,.0f} ns through run_at, context already mapped)"
          + (f", kernel {kernel_fixed * 1e9:,.0f} ns (BPF_PROG_TEST_RUN, "
                              f"per repetition)" if kernel_fixed is not None else ""))
    print(f"{n} helper calls per run, min of {ns.repeat} runs; ns/op excludes the overhead\n")
    print(f"{'map type':<16} {'op':<7} {'jit ns/op':>10} {'kernel ns/op':>13} {'jit/kernel':>11}"
          f"  {'jit ns/run':>11}  succeeded jit/kernel")
    cells = [(kind, op) for kind in MAP_KINDS for op in ("lookup", "update", "delete")]
    cells.append(("ringbuf", "output"))
    ratios = []
    for kind, op in cells:
        refill = op in ("delete", "output")
        code = loop_program(op, n)
        jit = JitSide(kind, code)
        jit.fill()
        jit.time_run()                                   # warm-up: JIT compilation
        t_jit = measure(jit, ns.repeat, refill)
        jit_per = (t_jit - jit_fixed) / n * 1e9
        kernel_text, ratio_text, k_ok = f"{'n/a':>13}", f"{'n/a':>11}", "-"
        if kernel is not None and not (op == "delete" and kind in ("array", "percpu_array")):
            kcode = loop_program(op, n, LINUX_RINGBUF_OUTPUT)
            try:
                side = KernelSide(kernel, kind, kcode)
            except KernelRejected as exc:
                kernel_text = f"{'rejected':>13}"
                print(f"  (kernel verifier: {exc.log.splitlines()[-1] if exc.log else exc})")
            else:
                try:
                    if refill:
                        t_k = measure(side, ns.repeat, True)
                    else:
                        side.fill()
                        t_k = min(side.time_run(repeat=20) for _ in range(max(ns.repeat // 5,
                                                                             3)))
                finally:
                    side.close()
                k_ok = side.ok
                k_per = (t_k - (kernel_fixed or 0)) / n * 1e9
                ratio = jit_per / k_per if k_per > 0 else float("inf")
                ratios.append(ratio)
                kernel_text = f"{k_per:>13.1f}"
                ratio_text = f"{ratio:>10.1f}x"
        elif op == "delete":
            kernel_text = f"{'Linux: EINVAL':>13}"
        print(f"{kind:<16} {op:<7} {jit_per:>10.1f} {kernel_text} {ratio_text}  "
              f"{t_jit * 1e9:>11,.0f}  {jit.ok}/{k_ok}")
    if ratios:
        worst = max(ratios)
        print(f"\nworst jit/kernel ratio {worst:.1f}x (target <= 3x: "
              f"{'met' if worst <= 3 else 'not met'}; first bar <= 10x: "
              f"{'met' if worst <= 10 else 'not met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
