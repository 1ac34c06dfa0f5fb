"""Replay speed: events per second through the deny policy and through process_monitor.

    .venv/bin/python benchmarks/replay.py [--events 1000000] [--inject 50000]

Builds a synthetic trace column-wise (parents spawning children with varied command lines, each
child exiting a while later), then measures, each in a fresh child process so that peak memory
(max RSS) is the run's own:
  * batch: `hook.replay(frame)` on the JIT (the default engine) over the whole trace;
  * inject: `hook.inject(event)` one event at a time (JIT), as a notebook loop or a live feed;
  * the reference interpreter, injecting, on a slice (for the ratio).
Prints events/s, the ratio to the interpreter and the peak RSS. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMAGES = [r"\??\C:\Windows\System32\cmd.exe", r"\??\C:\Windows\System32\whoami.exe",
          r"\??\C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
          r"\??\C:\Program Files\Git\bin\git.exe", r"\??\C:\Windows\System32\conhost.exe",
          r"\??\C:\Users\bob\Downloads\mimikatz.exe"]
PROGRAMS = {"deny_policy": ("bpf/examples/deny_policy.o", "DenyPolicy"),
            "process_monitor": ("bpf/process_monitor.o", "ProcessMonitor")}


def synthetic_frame(n: int, seed: int = 1):
    """`n` events: process k is created at event 2k and exits `lag` creations later."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(seed)
    creates = (n + 1) // 2
    lag = 64
    pid = 1000 + 4 * np.arange(creates, dtype=np.int64)
    parent = np.where(np.arange(creates) < lag, 4,
                      pid[np.maximum(np.arange(creates) - 1 - rng.integers(0, lag - 1, creates), 0)])
    words = ["/c", "-NoP", "status", "/all", "-Enc", "dir", "whoami", "x" * 120]
    pool = [" ".join(rng.choice(words, rng.integers(0, 7))) for _ in range(997)]
    image = rng.integers(0, len(IMAGES), creates)
    tail = rng.integers(0, len(pool), creates)
    names = np.array([p.rsplit("\\", 1)[-1] for p in IMAGES], dtype=object)
    command = pd.Series(names[image]) + " " + pd.Series(np.array(pool, dtype=object)[tail])
    # in order: creations, each followed (once `lag` children live) by the oldest one's exit
    seq_pid, seq_create = [], []
    k = d = 0
    while len(seq_pid) < n:
        if k < creates and (k - d < lag or d >= k):
            seq_pid.append(k); seq_create.append(True); k += 1
        else:
            seq_pid.append(d); seq_create.append(False); d += 1
    idx, is_create = np.array(seq_pid), np.array(seq_create)
    op = np.where(is_create, "create", "delete").astype(object)
    pids = pid[idx]
    ppids = np.where(is_create, parent[idx], 0)
    img = np.where(is_create, np.array(IMAGES, dtype=object)[image[idx]], None)
    cmd = np.where(is_create, command.to_numpy()[idx], None)
    t = pd.Timestamp("2026-11-25T10:00:00Z") + pd.to_timedelta(
        np.cumsum(rng.integers(100_000, 5_000_000, n)), unit="ns")
    return pd.DataFrame({"time": t, "operation": op, "process_id": pids,
                         "parent_process_id": ppids,
                         "image_path": img, "command_line": cmd,
                         "token_sid": np.where(is_create, "S-1-5-18", None),
                         "exit_code": np.where(is_create, 0, 259)})


def child(mode: str, program: str, n: int) -> dict:
    """One measurement (run in its own process): events/s, denied, seconds."""
    import ntoslab
    frame = synthetic_frame(n)
    path, name = PROGRAMS[program]
    engine = "interpreter" if mode == "interpreter" else "jit"
    with ntoslab.emulator(engine) as hook:
        hook.attach(hook.load(ROOT / path).program(name))
        if mode == "batch":
            start = time.perf_counter()
            out = hook.replay(frame, progress=False)
            seconds = time.perf_counter() - start
            denied = int(out["denied"].sum())
            errors = int(out["error"].notna().sum())
        else:
            events = [ntoslab.ProcessEvent.from_row(r) for r in frame.to_dict("records")]
            start = time.perf_counter()
            denied = sum(hook.inject(ev).denied for ev in events)
            seconds = time.perf_counter() - start
            errors = 0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rate": n / seconds, "seconds": seconds, "denied": denied, "errors": errors,
            "rss_mib": rss}


def measure(mode: str, program: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, program, str(n)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="batch replay size")
    parser.add_argument("--inject", type=int, default=50_000, help="events injected one by one")
    parser.add_argument("--interpreter", type=int, default=5_000,
                        help="events injected on the interpreter")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        print(json.dumps(child(ns.child[0], ns.child[1], int(ns.child[2]))))
        return 0
    print(f"{'program':<16} {'mode':<22} {'events':>9} {'events/s':>11} {'vs interp':>10} "
          f"{'peak RSS':>10}  denied")
    for program in PROGRAMS:
        base = measure("interpreter", program, ns.interpreter)
        for mode, n in [("batch", ns.events), ("inject", ns.inject)]:
            r = measure(mode, program, n)
            label = {"batch": "replay (JIT, batch)", "inject": "inject (JIT, 1 by 1)"}[mode]
            print(f"{program:<16} {label:<22} {n:>9} {r['rate']:>11,.0f} "
                  f"{r['rate'] / base['rate']:>9.0f}x {r['rss_mib']:>8.0f} MiB  {r['denied']}"
                  + (f"  ({r['errors']} error rows)" if r["errors"] else ""))
        print(f"{program:<16} {'inject (interpreter)':<22} {ns.interpreter:>9} "
              f"{base['rate']:>11,.0f} {'1x':>10} {base['rss_mib']:>8.0f} MiB  {base['denied']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
