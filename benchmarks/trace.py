"""Trace speed: EVTX records imported per second, and building process trees for 1M events.

    .venv/bin/python benchmarks/trace.py [--events 1000000] [--repeat 5]

Everything is measured in this run and printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ntoslab.analysis import ProcessTree  # noqa: E402
from ntoslab.trace import import_logs  # noqa: E402
from ntoslab.trace.synthetic import generate_session  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    ns = parser.parse_args()

    logs = sorted(DATASETS.rglob("*.evtx"))
    if logs:
        print(f"{'EVTX file':<60} {'records':>8} {'rows':>6} {'records/s':>10}")
        for path in logs:
            times = []
            for _ in range(ns.repeat):
                t = time.perf_counter()
                result = import_logs([path], progress=False)
                times.append(time.perf_counter() - t)
            records = sum(f.records for f in result.files)
            best = statistics.median(times)
            print(f"{str(path.relative_to(DATASETS)):<60} {records:>8} {len(result.frame):>6} "
                  f"{records / best:>10.0f}")
    else:
        print(f"{DATASETS} not found: EVTX import not measured")

    t = time.perf_counter()
    frame = generate_session(ns.events, seed=1)
    gen = time.perf_counter() - t
    t = time.perf_counter()
    tree = ProcessTree.from_trace(frame)
    build = time.perf_counter() - t
    t = time.perf_counter()
    text = tree.render(max_depth=6)
    render = time.perf_counter() - t
    print(f"\nsynthetic session: {len(frame)} events generated in {gen:.1f} s")
    print(f"process tree: {len(tree)} processes, {len(tree.roots)} roots built in {build:.1f} s "
          f"({len(frame) / build:.0f} events/s); rendered to {len(text.splitlines())} lines in "
          f"{render:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
