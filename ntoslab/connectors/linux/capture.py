"""`ntoslab capture`: record this machine's process events into a trace file."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ...trace.schema import COLUMNS
from ..libbpf import LibbpfError
from .records import DEFAULT_RINGBUF_BYTES

if TYPE_CHECKING:
    import pandas as pd


def capture_command(argv: list[str] | None = None) -> int:
    """`ntoslab capture [--duration S] [--count N] -o TRACE.parquet [--program PROG.o ...]`:
    record live process events into a trace file (Parquet, CSV or JSONL by suffix); with
    --program, also run those Windows programs in shadow mode and print their verdicts."""
    import argparse
    import sys

    from ..live import LiveUnavailable, live

    p = argparse.ArgumentParser(prog="ntoslab capture",
                                description="Capture live process events into a trace file.")
    p.add_argument("--duration", type=float, help="seconds to capture")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument("-o", "--output", required=True, help="trace file (.parquet, .csv, .jsonl)")
    p.add_argument("--program", action="append", default=[],
                   help="a Windows process program (.o) to run in shadow mode (repeatable)")
    p.add_argument("--ringbuf-mb", type=int, default=DEFAULT_RINGBUF_BYTES >> 20,
                   help="ring buffer size in MiB (a power of two)")
    ns = p.parse_args(argv)
    if ns.duration is None and ns.count is None:
        p.error("give --duration S and/or --count N")
    out = Path(ns.output)
    if out.suffix.lower() not in (".parquet", ".pq", ".csv", ".jsonl", ".ndjson", ".json"):
        p.error(f"{out}: use a .parquet, .csv or .jsonl file name")
    try:
        hook = live(ringbuf_bytes=ns.ringbuf_mb << 20)
    except (LiveUnavailable, LibbpfError) as exc:
        print(f"ntoslab capture: {exc}", file=sys.stderr)
        return 2
    with hook:
        try:
            for prog in ns.program:
                obj = hook.load(prog)
                for program in obj.programs:
                    if program.type == "process":
                        hook.attach(program)
            hook.start()
        except (LibbpfError, OSError, ValueError) as exc:
            print(f"ntoslab capture: {exc}", file=sys.stderr)
            return 2
        what = " and ".join(x for x in (f"{ns.duration:g} s" if ns.duration else "",
                                       f"{ns.count} events" if ns.count else "") if x)
        print(f"capturing for up to {what} ...", file=sys.stderr)
        try:
            frame = hook.capture(duration=ns.duration, count=ns.count)
        except KeyboardInterrupt:
            frame = None
        if frame is None:
            print("interrupted", file=sys.stderr)
            return 130
        write_trace(frame, out)
        dropped = frame.attrs.get("dropped", {})
        print(f"{len(frame)} events ({(frame['operation'] == 'create').sum()} creates, "
              f"{(frame['operation'] == 'delete').sum()} deletes) -> {out}; dropped: "
              f"{', '.join(f'{k} {v}' for k, v in dropped.items())}", file=sys.stderr)
        if hook.links:
            verdicts = hook.verdicts()
            denied = int(verdicts["denied"].sum()) if len(verdicts) else 0
            print(f"shadow mode (nothing enforced): {len(verdicts)} events ran through "
                  f"{len(hook.links)} program(s); {denied} would have been denied",
                  file=sys.stderr)
    return 0


def write_trace(frame: "pd.DataFrame", path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    frame = frame[COLUMNS]
    if suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
