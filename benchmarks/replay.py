"""Replay speed: events per second through process_monitor and through the deny policy.

    .venv/bin/python benchmarks/replay.py [--events 100000] [--engine interpreter]

Builds a synthetic trace (a pool of parents spawning short-lived children with varied command
lines), replays it through each program alone, and prints events/s and the peak Python memory
(tracemalloc) measured in this run. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ntoslab import ProcessEvent, emulator  # noqa: E402

IMAGES = [r"\??\C:\Windows\System32\cmd.exe", r"\??\C:\Windows\System32\whoami.exe",
          r"\??\C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
          r"\??\C:\Program Files\Git\bin\git.exe", r"\??\C:\Windows\System32\conhost.exe",
          r"\??\C:\Users\bob\Downloads\mimikatz.exe"]


def synthetic_trace(n: int, seed: int = 1) -> list[ProcessEvent]:
    rng = random.Random(seed)
    events: list[ProcessEvent] = []
    live: list[int] = []
    pid = 1000
    t = 1_764_064_800 * 10**9
    while len(events) < n:
        t += rng.randint(100_000, 5_000_000)
        if live and (len(live) > 200 or rng.random() < 0.45):
            victim = live.pop(rng.randrange(len(live)))
            events.append(ProcessEvent.delete(victim, exit_code=rng.choice([0, 0, 1, 259]), time=t))
            continue
        pid += 4
        image = rng.choice(IMAGES)
        args = " ".join(rng.choice(["/c", "-NoP", "status", "/all", "-Enc", "x" * rng.randint(1, 300)])
                        for _ in range(rng.randint(0, 6)))
        events.append(ProcessEvent.create(pid, rng.choice(live) if live else 4, image,
                                          f"{image.rsplit(chr(92), 1)[-1]} {args}", time=t,
                                          token_sid="S-1-5-18"))
        live.append(pid)
    return events


def measure(objects: list[tuple[str, str]], events: list[ProcessEvent], engine: str):
    tracemalloc.start()
    with emulator(engine) as hook:
        for path, program in objects:
            hook.attach(hook.load(ROOT / path).program(program))
        start = time.perf_counter()
        denied = 0
        for ev in events:
            denied += hook.inject(ev).denied
        seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return len(events) / seconds, peak, denied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--engine", default="interpreter")
    ns = parser.parse_args()
    events = synthetic_trace(ns.events)
    print(f"{len(events)} synthetic events, engine {ns.engine}")
    for label, objects in [
        ("process_monitor", [("bpf/process_monitor.o", "ProcessMonitor")]),
        ("deny_policy", [("bpf/examples/deny_policy.o", "DenyPolicy")]),
    ]:
        rate, peak, denied = measure(objects, events, ns.engine)
        print(f"{label:<16} {rate:>10.0f} events/s   peak memory {peak / 2**20:7.1f} MiB   "
              f"denied {denied}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
