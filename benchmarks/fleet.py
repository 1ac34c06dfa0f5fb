"""Fleet scale: events/s for import, analyses and replay on 1 and 2 Dask workers.

    .venv/bin/python benchmarks/fleet.py [--events 10000000] [--hosts 100] [--repeats 2]

Builds a synthetic fleet (`fleet_sessions`: one seeded session per host, `events / hosts`
events each) as one trace Parquet file per host, then on a fresh `distributed.LocalCluster` of
1 and of 2 worker processes (one thread each) measures, best of `--repeats`:
  * import: `fleet.import_dataset(files, DATASET/)` — one task per file: read, validate,
    write the host/day partitions;
  * analyses: `fleet.rare_pairs` + `fleet.lifetimes` over the dataset (a process tree per host);
  * replay: `fleet.replay(DATASET, [deny_policy.o])` — a fresh hook per host, every verdict
    kept on the workers — plus the denials per host.
Each phase runs on its own new cluster, so the peak RSS printed is that phase's (max over
workers). Prints events/s per phase and worker count and the 2-worker / 1-worker ratio.
Nothing is asserted (the machine is shared: use the best of several runs).
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
POLICY = ROOT / "bpf" / "examples" / "deny_policy.o"


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_inputs(events: int, hosts: int, where: Path) -> list[Path]:
    from ntoslab import fleet
    files = []
    per_host = max(events // hosts, 100)
    for session in fleet.fleet_sessions(hosts, per_host, seed=11, attacked=0.05):
        path = where / f"{session['host'].iat[0]}.parquet"
        session.to_parquet(path, index=False)
        files.append(path)
    return files


def _warm() -> None:
    """What a long-lived worker has done once: imports, the native runtime, the JIT."""
    from ntoslab import fleet
    from ntoslab.fleet.replay import make_spec, replay_host
    events = fleet.generate_fleet(1, 200, attacked=0)
    replay_host("warm", events, make_spec([str(POLICY)]))
    fleet.host_pairs  # noqa: B018
    from ntoslab.analysis import ProcessTree
    ProcessTree.from_trace(events)


def phase(workers: int, fn, repeats: int) -> tuple[float, float]:
    """(best seconds, peak RSS MiB of the busiest worker) of `fn()` on a fresh cluster whose
    workers are warm (imports done, the native runtime loaded, the policy compiled once)."""
    from ntoslab import fleet
    client = fleet.connect(workers=workers)
    try:
        client.wait_for_workers(workers)
        client.run(_warm)
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - started)
        peak = max(client.run(_max_rss_mib).values())
    finally:
        client.close()
    return best, peak


def measure(workers: int, files: list[Path], work: Path, repeats: int, events: int) -> dict:
    from ntoslab import fleet
    out: dict[str, tuple[float, float]] = {}
    counter = iter(range(1000))

    def do_import():
        target = work / f"ds-{workers}-{next(counter)}"
        result = fleet.import_dataset(files, target)
        assert result.rows == events, (result.rows, events)
    out["import"] = phase(workers, do_import, repeats)
    dataset = sorted(work.glob(f"ds-{workers}-*"))[0]

    def do_analyses():
        rare = fleet.rare_pairs(dataset, max_count=None, max_hosts=5)
        n, = fleet.compute([fleet.lifetimes(dataset).map_partitions(len)])
        assert len(rare) and n.sum() > 0
    out["analyses"] = phase(workers, do_analyses, repeats)

    def do_replay():
        run = fleet.replay(dataset, [POLICY])
        per_host = run.denied_per_host()
        assert int(per_host["events"].sum()) == events
    out["replay"] = phase(workers, do_replay, repeats)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--hosts", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    ns = p.parse_args()
    import logging
    logging.getLogger("distributed").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="ntoslab-fleet-bench-"))
    try:
        started = time.perf_counter()
        files = make_inputs(ns.events, ns.hosts, work)
        events = ns.hosts * max(ns.events // ns.hosts, 100)
        print(f"synthetic fleet: {ns.hosts} hosts x {events // ns.hosts:,} events = {events:,} "
              f"events as {len(files)} Parquet files in {time.perf_counter() - started:.1f} s")
        results = {w: measure(w, files, work, ns.repeats, events) for w in (1, 2)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'phase':<10} {'workers':>7} {'seconds':>8} {'events/s':>12} {'peak RSS/worker':>16}")
    for name in ("import", "analyses", "replay"):
        for w in (1, 2):
            s, rss = results[w][name]
            print(f"{name:<10} {w:>7} {s:>8.2f} {events / s:>12,.0f} {rss:>12,.0f} MiB")
    print()
    for name in ("import", "analyses", "replay"):
        ratio = results[1][name][0] / results[2][name][0]
        print(f"{name}: 2 workers / 1 worker = {ratio:.2f}x" +
              ("  (target >= 1.7x)" if name == "replay" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
