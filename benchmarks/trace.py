"""Trace speed, measured side by side in one run: import against the `evtx` parser it wraps,
process trees and analyses at 1M and 10M events, the session generator.

    .venv/bin/python benchmarks/trace.py [--events 1000000] [--big 10000000] [--repeat 5]
        [--workers N] [--sections import,trees,big]

Everything is measured in this run and printed with the targets of issue 9; nothing is
asserted. Times are the best of `--repeat` runs (the machine is shared). The parser baseline
is `evtx.PyEvtxParser(path, number_of_threads=1).records_json()` iterated to the end: the
parser including its own JSON serialisation (the form it hands to Python), on one thread
(measured faster here than its default thread pool). Import is measured beside it with
workers=1 (one process) and workers=N (a large file's chunks split between N processes,
`trace/evtx_split.py`), all three in wall seconds, in turn in each round; the speed-up the
machine's cores give at that moment (the parser itself on N shares at once) is printed with
them. The large EVTX inputs are the Panache
log's chunks 40 times, once with each copy's process GUIDs made its own (one long log) and
once verbatim (every event 40 times over: duplicated events, linked by the sequential walk);
the decoding floor (parser + orjson.loads of each record) is printed beside them. The 10M figures run in a fresh process
so that its peak RSS is their own.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATASETS = ROOT.parent / "shared" / "datasets"
NEEDED = ["time", "operation", "process_id", "image_path", "command_line", "exit_code",
          "process_key", "parent_key"]
DICTIONARY = ["operation", "image_path", "command_line"]


def best(fn, repeat: int, clock=time.perf_counter) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeat):
        t = clock()
        out = fn()
        times.append(clock() - t)
    return min(times), out


CPU = time.process_time     # import vs parser: CPU time of this process (the machine is shared)


def parser_seconds(path: Path, repeat: int) -> tuple[float, int]:
    import evtx

    def run():
        return sum(1 for _ in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json())
    return best(run, repeat, CPU)


def decode_seconds(path: Path, repeat: int) -> float:
    """The parser plus orjson.loads of every record: the floor for an importer that decodes
    each record (the Python around it is what import adds on top)."""
    import evtx
    import orjson

    def run():
        loads = orjson.loads
        for r in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json():
            loads(r["data"])
    return best(run, repeat, CPU)[0]


def repeated_evtx(src: Path, out: Path, copies: int, own_guids: bool) -> Path:
    """`src`'s chunks `copies` times (the parser walks chunks, not the header). With
    `own_guids`, each copy's process GUIDs get copy-specific bytes (8-9 of the binary GUID,
    wherever it occurs in the chunk), so the copies are distinct sessions as in one long log;
    without, every event is there `copies` times (duplicated events: linked by the walk)."""
    import uuid

    import evtx
    import orjson
    raw = src.read_bytes()
    guids = set()
    if own_guids:
        for r in evtx.PyEvtxParser(str(src), number_of_threads=1).records_json():
            data = orjson.loads(r["data"])["Event"].get("EventData") or {}
            for k in ("ProcessGuid", "ParentProcessGuid", "SourceProcessGUID", "TargetProcessGUID"):
                v = data.get(k) if isinstance(data, dict) else None
                if isinstance(v, str):
                    try:
                        guids.add(uuid.UUID(v.strip("{}")).bytes_le)
                    except ValueError:
                        pass
    parts = [raw[:4096]]
    for i in range(copies):
        body = raw[4096:]
        if i:
            for g in guids:
                body = body.replace(g, g[:8] + bytes([0xA5, i]) + g[10:])
        parts.append(body)
    out.write_bytes(b"".join(parts))
    return out


def side_by_side(path: Path, repeat: int, workers: int) -> tuple[int, list[float]]:
    """Wall seconds, best of `repeat` rounds, of the parser (1 thread), import with
    workers=1 and import with workers=`workers`, run in turn in every round (the machine's
    load then weighs on all three alike)."""
    import evtx

    from ntoslab.trace import import_logs
    runs = [lambda: sum(1 for _ in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json()),
            lambda: import_logs([path], progress=False, workers=1).files[0].records,
            lambda: import_logs([path], progress=False, workers=workers).files[0].records]
    times = [float("inf")] * len(runs)
    counts = set()
    for _ in range(repeat):
        for i, run in enumerate(runs):
            t = time.perf_counter()
            counts.add(run())
            times[i] = min(times[i], time.perf_counter() - t)
    (n,) = counts
    return n, times


def parallel_ceiling(path: Path, workers: int, repeat: int) -> float:
    """How much faster the parser reads the file as `workers` shares in as many processes at
    once than whole in one (wall, best of runs): what this machine's cores give right now."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from ntoslab.trace.evtx_split import shares
    parts = shares(path, workers, 0) or [(0, None)]
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(len(parts), mp_context=ctx) as pool:
        list(pool.map(_parse_share, [str(path)] * len(parts), parts))
        whole = split = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            _parse_share(str(path), (0, None))
            whole = min(whole, time.perf_counter() - t)
            t = time.perf_counter()
            list(pool.map(_parse_share, [str(path)] * len(parts), parts))
            split = min(split, time.perf_counter() - t)
    return whole / split


def _parse_share(path: str, share) -> int:
    import evtx

    from ntoslab.trace.evtx_split import share_stream
    return sum(1 for _ in evtx.PyEvtxParser(share_stream(path, share),
                                            number_of_threads=1).records_json())


def import_section(repeat: int, tmp: Path, workers: int) -> None:
    from ntoslab.trace import evtx_split, import_logs
    print(f"== import (targets: >= 100k records/s and >= 1/3 of the parser's rate; <= 2 ms per "
          f"call); wall seconds, best of {repeat} rounds of parser / workers=1 / workers={workers} "
          f"in turn. The parser's figure is its best, single-threaded rate; workers={workers} "
          f"uses {workers} processes (files of {evtx_split.MIN_PARALLEL_BYTES >> 20} MiB or "
          f"more: smaller ones are read in-process)")
    logs = sorted(DATASETS.rglob("*.evtx"))
    if not logs:
        print(f"{DATASETS} not found: import not measured")
        return
    panache = DATASETS / "EVTX-ATTACK-SAMPLES" / "PanacheSysmon_vs_AtomicRedTeam01.evtx"
    big = repeated_evtx(panache, tmp / "panache-x40-own-guids.evtx", 40, True)
    dup = repeated_evtx(panache, tmp / "panache-x40-verbatim.evtx", 40, False)
    import_logs([big], progress=False, workers=1)         # first-use costs of this process
    cold = warm = float("inf")
    for _ in range(3):
        evtx_split.close_pool()
        t = time.perf_counter()
        import_logs([big], progress=False, workers=workers)
        cold = min(cold, time.perf_counter() - t)
        t = time.perf_counter()
        import_logs([big], progress=False, workers=workers)
        warm = min(warm, time.perf_counter() - t)
    print(f"pool start: a workers={workers} import of {big.name} with no pool yet took "
          f"{(cold - warm) * 1e3:+.0f} ms more than with one (best of 3 each; the pool is kept "
          f"for later calls)")
    w = f"w={workers}/s"
    print(f"{'EVTX file':<46} {'records':>7} {'parser/s':>9} {'w=1/s':>8} {'ratio':>5} "
          f"{w:>8} {'ratio':>5} {'ms w=' + str(workers):>8}")
    for path in logs + [big, dup]:
        n, (p_s, one_s, many_s) = side_by_side(path, repeat, workers)
        name = path.name if path.parent == tmp else str(path.relative_to(DATASETS))
        print(f"{name[:46]:<46} {n:>7} {n / p_s:>9.0f} {n / one_s:>8.0f} {p_s / one_s:>5.2f} "
              f"{n / many_s:>8.0f} {p_s / many_s:>5.2f} {many_s * 1e3:>8.1f}")
    print(f"  this machine now: the parser on {big.name} as {workers} shares in {workers} "
          f"processes at once is {parallel_ceiling(big, workers, repeat):.2f}x as fast as whole "
          f"in one ({workers:.2f}x on {workers} idle cores)")
    d_s = decode_seconds(big, repeat)
    p_s, n = parser_seconds(big, repeat)
    print(f"  floor on {big.name} (90% process records, every one decoded; CPU s): parser + "
          f"orjson.loads {n / d_s:,.0f} records/s = {p_s / d_s:.2f} of the parser")
    tiny = DATASETS / "extras" / "EVTX-ATTACK-SAMPLES" / "sysmon_10_1_ppid_spoofing.evtx"
    if tiny.exists():
        t_s, result = best(lambda: import_logs([tiny], progress=False, workers=workers),
                           max(repeat, 20), CPU)
        print(f"fixed cost per call: {tiny.name} ({result.files[0].records} records, "
              f"workers={workers}) {t_s * 1e3:.2f} ms")
    # Mordor JSON lines: the APT simulator log, its lines repeated 40 times
    apt = DATASETS / "OTRF-Security-Datasets" / "aptsimulator_cobaltstrike.zip"
    if apt.exists():
        with zipfile.ZipFile(apt) as z:
            data = z.read(z.namelist()[0])
        lines = tmp / "aptsimulator-x40.json"
        lines.write_bytes(data * 40)
        print(f"{'Mordor JSON lines (CPU s, one process)':<46} {'records':>7} {'':>9} "
              f"{'import/s':>8} {'':>5} {'':>8} {'':>5} {'ms/call':>8}")
        for path in (apt, lines):
            i_s, result = best(lambda: import_logs([path], progress=False), repeat, CPU)
            n = result.files[0].records
            print(f"{path.name[:46]:<46} {n:>7} {'':>9} {n / i_s:>8.0f} {'':>5} {'':>8} "
                  f"{'':>5} {i_s * 1e3:>8.1f}")


def tree_section(events: int, repeat: int, tmp: Path) -> Path:
    import duckdb

    from ntoslab.analysis import ProcessTree, lifetimes, rare_pairs
    from ntoslab.trace import write_trace
    from ntoslab.trace.synthetic import generate_session
    print(f"\n== {events:,} events (target: tree <= 1 s)")
    g_s, frame = best(lambda: generate_session(events, seed=1), 1)
    print(f"generate_session: {len(frame):,} events in {g_s:.2f} s "
          f"({len(frame) / g_s / 1e6:.2f} M events/s)")
    t_s, tree = best(lambda: ProcessTree.from_trace(frame), repeat)
    print(f"ProcessTree.from_trace: {len(tree):,} processes, {len(tree.roots)} roots in {t_s:.2f} s")
    a_s, _ = best(lambda: (rare_pairs(tree), lifetimes(tree)), repeat)
    print(f"rare_pairs + lifetimes on that tree: {a_s:.2f} s")
    r_s, text = best(lambda: tree.render(max_depth=5), 1)
    print(f"render(max_depth=5): {len(text.splitlines())} lines in {r_s:.2f} s")
    # the alternative measured against: the same parent join as a DuckDB self-join
    con = duckdb.connect()
    con.register("t", frame[NEEDED])
    d_s, edges = best(lambda: con.execute(
        "SELECT count(*) FROM t c JOIN t p ON c.parent_key = p.process_key "
        "WHERE c.operation = 'create' AND p.operation = 'create'").fetchone()[0], repeat)
    linked = int((tree.frame["parent"] >= 0).sum())
    print(f"DuckDB self-join of the same trace: {edges:,} edges in {d_s:.2f} s "
          f"(tree: {linked:,} edges)")
    path = tmp / "session.parquet"
    write_trace(frame, path)
    return path


def big_child(events: int, stem: Path, out: Path) -> None:
    """In a fresh process: generate the session and write it as Parquet."""
    from ntoslab.trace.synthetic import generate_session
    res = {}
    t, c = time.perf_counter(), time.process_time()
    frame = generate_session(events, seed=1)
    res["generate_s"] = time.perf_counter() - t
    res["generate_cpu_s"] = time.process_time() - c
    res["rows"] = len(frame)
    res["generate_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    path = stem.with_suffix(".parquet")
    frame.to_parquet(path, index=False)
    del frame
    res["file"] = str(path)
    out.write_text(json.dumps(res))


def read_columns(path: Path):
    """The columns the analyses need, low-cardinality text dictionary-encoded (Categorical):
    how an analyst reads 10M rows into 4 GB."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pq.read_table(path, columns=NEEDED, read_dictionary=DICTIONARY)
    strings = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}
    return table.to_pandas(types_mapper=strings.get, self_destruct=True)


def analyse_child(path: Path, out: Path) -> None:
    from ntoslab.analysis import ProcessTree, lifetimes, rare_pairs
    res = {}
    t = time.perf_counter()
    frame = read_columns(path)
    res["read_s"] = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    tree = ProcessTree.from_trace(frame)
    res["tree_s"] = time.perf_counter() - t
    t = time.perf_counter()
    rare = rare_pairs(tree)
    life = lifetimes(tree)
    res["pairs_lifetimes_s"] = time.perf_counter() - t
    res["cpu_s"] = time.process_time() - c
    res["processes"], res["rare"], res["lifetimes"] = len(tree), len(rare), len(life)
    res["rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out.write_text(json.dumps(res))


def run_child(*args: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "result.json"
        subprocess.run([sys.executable, __file__, *args, "--out", str(out)], check=True)
        return json.loads(out.read_text())


def big_section(events: int, small_rate: float, tmp: Path) -> None:
    print(f"\n== {events:,} events (targets: generator <= 30 s, linear; tree + rare pairs + "
          f"lifetimes <= 20 s with peak RSS <= 4 GB)")
    gen = run_child("--child-generate", str(events), "--file", str(tmp / "big"))
    rate = gen["rows"] / gen["generate_s"]
    print(f"generate_session: {gen['rows']:,} events in {gen['generate_s']:.1f} s "
          f"({gen['generate_cpu_s']:.1f} CPU s) "
          f"({rate / 1e6:.2f} M events/s; {rate / small_rate:.2f}x the small run's rate: "
          f"1.00 = linear); peak RSS {gen['generate_rss_gb']:.2f} GB")
    res = run_child("--child-analyse", gen["file"])
    total = res["tree_s"] + res["pairs_lifetimes_s"]
    print(f"from Parquet ({', '.join(NEEDED)}; {', '.join(DICTIONARY)} as dictionaries): read {res['read_s']:.1f} s; tree "
          f"{res['tree_s']:.1f} s ({res['processes']:,} processes) + rare pairs + lifetimes "
          f"{res['pairs_lifetimes_s']:.1f} s = {total:.1f} s ({res['cpu_s']:.1f} CPU s); peak RSS {res['rss_gb']:.2f} GB "
          f"(this process, read included)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--big", type=int, default=10_000_000, help="0: skip the big run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="import processes beside workers=1 (default: one per core)")
    parser.add_argument("--sections", default="import,trees,big",
                        help="which to run (comma-separated: import, trees, big)")
    parser.add_argument("--child-generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-analyse", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child_generate:
        big_child(ns.child_generate, Path(ns.file), Path(ns.out))
        return 0
    if ns.child_analyse:
        analyse_child(Path(ns.child_analyse), Path(ns.out))
        return 0
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sections = set(ns.sections.split(","))
        if "import" in sections:
            import_section(ns.repeat, tmp, ns.workers)
        from ntoslab.trace.synthetic import generate_session
        small_rate = 0.0
        if sections & {"trees", "big"}:
            t = time.perf_counter()
            n = len(generate_session(ns.events, seed=2))
            small_rate = n / (time.perf_counter() - t)
        if "trees" in sections:
            tree_section(ns.events, ns.repeat, tmp)
        if ns.big and "big" in sections:
            big_section(ns.big, small_rate, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
