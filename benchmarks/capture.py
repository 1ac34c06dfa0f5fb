"""Live capture cost: the largest process spawn rate captured without loss, and its CPU cost.

    .venv/bin/python benchmarks/capture.py [--per-spawner 1500] [--spawners 1,2,4,8]
                                           [--ringbuf-kb 8192] [--program PROG.o ...]

Needs root (or CAP_BPF + CAP_PERFMON), libbpf.so.1 and kernel BTF. For each step, K shell loops
spawn `/bin/true <unique token>` as fast as they can; the step's spawn rate is what they
achieved. A step is lossless when every spawned process has both its create and its delete
row and the kernel counted no dropped record. CPU cost: the poller thread's CPU time (its
thread clock) and the BPF programs' own run time (kernel.bpf_stats_enabled, switched on for the
run and restored), per event and as a share of one CPU. With `--program` (default:
bpf/process_monitor.o and bpf/examples/deny_policy.o, as `ntoslab capture --program` runs them)
the programs run in shadow mode on every live event, on the default engine (the JIT): the
`shadow` column counts the live events they did not run on (0 = shadow mode kept up).
Printed, never asserted.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ntoslab.connectors.live import live  # noqa: E402

STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def prog_runtime_ns(hook) -> tuple[int, int]:
    """Sum of run_time_ns and run_cnt over the capture programs (needs bpf_stats_enabled)."""
    total = count = 0
    for prog in hook._obj.programs:
        try:
            info = Path(f"/proc/self/fdinfo/{prog.fd}").read_text()
        except OSError:
            continue
        for line in info.splitlines():
            if line.startswith("run_time_ns:"):
                total += int(line.split()[1])
            elif line.startswith("run_cnt:"):
                count += int(line.split()[1])
    return total, count


def poller_cpu_ns(hook) -> int:
    clock = time.pthread_getcpuclockid(hook._thread.ident)
    return time.clock_gettime_ns(clock)


def step(hook, spawners: int, per_spawner: int) -> dict:
    token = uuid.uuid4().hex[:8]
    script = ('i=0; while [ $i -lt {n} ]; do /bin/true {tok}-{k}-$i; i=$((i+1)); done')
    cpu0, (bpf0, runs0) = poller_cpu_ns(hook), prog_runtime_ns(hook)
    shadow0 = len(hook.verdicts()) if hook.links else 0
    with hook.record() as rec:
        t0 = time.perf_counter()
        procs = [subprocess.Popen(["/bin/sh", "-c", script.format(n=per_spawner, tok=token, k=k)])
                 for k in range(spawners)]
        for p in procs:
            p.wait()
        wall = time.perf_counter() - t0
    time.sleep(0.2)                   # the poller's last batch
    cpu1, (bpf1, runs1) = poller_cpu_ns(hook), prog_runtime_ns(hook)
    shadow = (len(hook.verdicts()) - shadow0) if hook.links else None
    spawned = spawners * per_spawner
    creates, deletes = set(), set()
    pids = {}
    for ev in rec.events:
        if ev.command_line.startswith(f"/bin/true {token}-"):
            if ev.operation == "create":
                creates.add(ev.command_line)
                pids[ev.process_id] = ev.command_line
    for ev in rec.events:
        if ev.operation == "delete" and ev.process_id in pids:
            deletes.add(pids[ev.process_id])
    complete = len(creates & deletes)
    events = len(rec.events)
    return {"spawners": spawners, "spawned": spawned, "rate": spawned / wall,
            "complete": complete, "lost": spawned - complete, "events": events,
            "dropped": rec.dropped["ringbuf"], "wall": wall,
            "poller_cpu_s": (cpu1 - cpu0) / 1e9, "bpf_cpu_s": (bpf1 - bpf0) / 1e9,
            "bpf_runs": runs1 - runs0,
            "shadow_missed": None if shadow is None else max(events - shadow, 0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-spawner", type=int, default=1500)
    ap.add_argument("--spawners", default="1,2,4,8")
    ap.add_argument("--ringbuf-kb", type=int, default=8192)
    ap.add_argument("--program", action="append", default=None,
                    help="a Windows process program run in shadow mode (repeatable; 'none' for "
                         "capture alone)")
    ns = ap.parse_args()
    programs = ns.program or [str(ROOT / "bpf" / "process_monitor.o"),
                              str(ROOT / "bpf" / "examples" / "deny_policy.o")]
    programs = [p for p in programs if p != "none"]
    old_stats = STATS.read_text().strip() if STATS.exists() else None
    try:
        if old_stats is not None:
            STATS.write_text("1")
    except OSError:
        old_stats = None
    try:
        with live(ringbuf_bytes=ns.ringbuf_kb << 10) as hook:
            for path in programs:
                loaded = hook.load(path)
                for prog in loaded.programs:
                    hook.attach(prog)
            hook.start()
            print(f"{os.cpu_count()} CPUs, ring buffer {ns.ringbuf_kb} KiB, kernel "
                  f"{os.uname().release}; shadow mode: "
                  f"{', '.join(Path(p).name for p in programs) or 'off'}")
            print(f"{'spawners':>8} {'spawned':>8} {'rate/s':>8} {'lost':>5} {'dropped':>7} "
                  f"{'events':>7} {'poller CPU':>11} {'us/event':>9} {'BPF ns/run':>10} "
                  f"{'CPU share':>9} {'shadow':>7}")
            best = None
            for k in (int(x) for x in ns.spawners.split(",")):
                r = step(hook, k, ns.per_spawner)
                per_event = r["poller_cpu_s"] / max(r["events"], 1) * 1e6
                bpf_per_run = r["bpf_cpu_s"] / max(r["bpf_runs"], 1) * 1e9 if r["bpf_runs"] else 0
                share = (r["poller_cpu_s"] + r["bpf_cpu_s"]) / r["wall"]
                print(f"{k:>8} {r['spawned']:>8} {r['rate']:>8.0f} {r['lost']:>5} "
                      f"{r['dropped']:>7} {r['events']:>7} {r['poller_cpu_s']:>10.2f}s "
                      f"{per_event:>9.1f} {bpf_per_run:>10.0f} {share:>8.1%} "
                      f"{'-' if r['shadow_missed'] is None else r['shadow_missed']:>7}")
                if r["lost"] == 0 and r["dropped"] == 0 and not r["shadow_missed"]:
                    best = max(best or 0, r["rate"])
            if best is None:
                print("no step was captured without loss")
            else:
                print(f"largest spawn rate captured without loss: {best:.0f} processes/s "
                      f"(each one a create and a delete row)")
            if old_stats is None:
                print("(BPF run time not measured: kernel.bpf_stats_enabled unavailable)")
    finally:
        if old_stats is not None:
            STATS.write_text(old_stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
