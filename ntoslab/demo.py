"""The main job (`make demo`).

1. the instruction-set conformance suite on the reference interpreter;
2. the quickstart notebook executed headless into an HTML report;
3. a short summary: what the emulated hook decided and recorded for the scenario.
"""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT.parent / "shared" / "conformance" / "tests"
NOTEBOOK = ROOT / "notebooks" / "01-quickstart.ipynb"
REPORTS = ROOT / "reports"


def conformance_line() -> tuple[str, bool]:
    from .conformance import run_suite
    if not CONFORMANCE.is_dir():
        return f"{CONFORMANCE} not found: skipped", True
    out = io.StringIO()
    t = time.perf_counter()
    outcomes = run_suite(CONFORMANCE, out=out)
    ok = not any(o.status == "FAIL" for o in outcomes)
    return f"{out.getvalue().splitlines()[-1]}  ({time.perf_counter() - t:.1f} s)", ok


def scenario_summary():
    """Replay the quickstart scenario (as the notebook does) and summarise it."""
    import pandas as pd

    from .connectors.emulator import emulator
    from .trace.process_monitor import ProcessMonitorReader
    from .trace.schema import events_frame
    from .trace.synthetic import quickstart_scenario

    with emulator() as hook:
        monitor = hook.load(ROOT / "bpf" / "process_monitor.o")
        policy = hook.load(ROOT / "bpf" / "examples" / "deny_policy.o")
        hook.attach(monitor.program("ProcessMonitor"))
        hook.attach(policy.program("DenyPolicy"))
        reader = ProcessMonitorReader(monitor)
        hook.subscribe(reader)
        trace = events_frame(quickstart_scenario())
        verdicts = hook.replay(trace)
        seen = reader.to_frame()
    table = pd.DataFrame({
        "pid": trace["process_id"],
        "op": trace["operation"],
        "image": trace["image_path"].str.split("\\").str[-1],
        "verdict": verdicts["denied"].map({True: "DENIED", False: "allowed"}),
        "status": verdicts["status_hex"],
        "insns": verdicts["instructions"],
    })
    return table, len(seen)


def main() -> int:
    ok = True
    print("== 1. bpf_conformance on the reference interpreter (cpu v4)")
    line, good = conformance_line()
    ok &= good
    print("   ", line)

    print("\n== 2. notebooks/01-quickstart.ipynb, executed headless")
    from .report import ReportError, render
    t = time.perf_counter()
    try:
        html = render(NOTEBOOK, REPORTS)
        print(f"    report: {html}  ({time.perf_counter() - t:.1f} s)")
    except ReportError as exc:
        print(f"    FAILED: {exc}")
        ok = False

    print("\n== 3. the scenario, as the emulated hook saw it")
    table, records = scenario_summary()
    for line in table.to_string(index=False).splitlines():
        print("    " + line)
    denied = int((table["verdict"] == "DENIED").sum())
    print(f"\n    {len(table)} events, {denied} denied, {records} ring records joined with "
          f"the monitor's maps")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
