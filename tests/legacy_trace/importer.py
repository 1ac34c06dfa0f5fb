"""Import real Windows process logs into the trace schema: `import_logs` and `ntoslab import`.

Inputs: EVTX files (Sysmon and/or Security channels), Mordor/OTRF JSON lines, `.zip` archives of
either, and files already in the trace schema (`.csv`, `.parquet`, JSON lines with `operation`,
which pass through validation unchanged). Sysmon EID 1/5 and Security 4688/4689 become one row
each (`sysmon.py`, `security.py`); keys and parents are linked by `keys.py`; a file with two
clocks is checked by `clock.py`.

Nothing vanishes silently: every record read is either imported, *skipped* (not a process
create/exit, or excluded by `source`) or *rejected* (a process record that cannot become a row,
or a line that is not JSON) — counted per file and per reason in `ImportResult.files`, and the
rejected ones listed in `ImportResult.rejected` with file, record and reason.

>>> result = import_logs(["Security.evtx"], source="security")     # doctest: +SKIP
>>> result.frame, print(result.summary())                          # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import sys
import time as _time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .clock import ClockSkew, measure_skew
from .readers import SourceError, input_size, iter_records
from .schema import (
    COLUMNS,
    EXTRA_COLUMNS,
    TraceFormatError,
    as_schema,
    ns_to_filetime,
    read_trace,
    validate,
)
from .security import is_security, security_row
from .sysmon import RecordError, is_sysmon, sysmon_row

SOURCES = ("sysmon", "security", "all")
PROGRESS_MIN_BYTES = 8 << 20        # show a progress bar from 8 MiB of event data up


@dataclass
class FileReport:
    """What became of every record of one input file."""

    path: str
    records: int = 0
    imported: Counter = field(default_factory=Counter)   # (source, operation) -> rows
    skipped: Counter = field(default_factory=Counter)    # reason -> records
    rejected: Counter = field(default_factory=Counter)   # reason -> records
    skew: list[ClockSkew] = field(default_factory=list)  # one per member with two clocks
    correction_ns: int = 0                               # applied to its log-clock times
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.imported.values())

    def describe(self) -> str:
        parts = [f"{self.path}: {self.records} records -> {self.rows} rows"]
        if self.imported:
            parts[0] += " (" + ", ".join(f"{s} {o}: {n}" for (s, o), n in
                                         sorted(self.imported.items())) + ")"
        parts[0] += f"; skipped {sum(self.skipped.values())}; rejected {sum(self.rejected.values())}"
        for reason, n in sorted(self.skipped.items(), key=lambda x: (-x[1], x[0])):
            parts.append(f"  skipped  {n:7d}  {reason}")
        for reason, n in sorted(self.rejected.items(), key=lambda x: (-x[1], x[0])):
            parts.append(f"  REJECTED {n:7d}  {reason}")
        for s in self.skew:
            parts.append("  " + s.describe())
        if self.correction_ns:
            parts.append(f"  corrected log-clock times by {self.correction_ns / 3.6e12:+.2f} h")
        return "\n".join(parts)


@dataclass
class ImportResult:
    frame: Any                      # the trace (schema form, sorted by time)
    rejected: Any                   # DataFrame: file, record_id, event_id, reason
    files: list[FileReport]

    @property
    def skews(self) -> list[ClockSkew]:
        return [s for f in self.files for s in f.skew]

    def reasons(self) -> Counter:
        """Rejected records per reason over all files."""
        total: Counter = Counter()
        for f in self.files:
            total.update(f.rejected)
        return total

    def summary(self) -> str:
        lines = [f.describe() for f in self.files]
        fr = self.frame
        if len(fr):
            links = fr.groupby(["source", "operation", "link"], dropna=False).size()
            lines.append("links: " + ", ".join(f"{s} {o} {l}: {n}" for (s, o, l), n in
                                               links.items()))
        lines.append(f"total: {len(fr)} rows imported, {len(self.rejected)} records rejected")
        return "\n".join(lines)


INPUT_SUFFIXES = (".evtx", ".json", ".jsonl", ".ndjson", ".zip", ".csv", ".parquet", ".pq")


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; a directory stands for the event files under it (by suffix, sorted)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and
                              f.suffix.lower() in INPUT_SUFFIXES))
        else:
            out.append(p)
    return out


def _record_kind(rec: dict[str, Any]) -> str | None:
    if is_sysmon(rec):
        return "sysmon"
    if is_security(rec):
        return "security"
    return None


def _parse_skew_option(clock_skew: Any) -> tuple[str, int]:
    """('report'|'correct'|'offset', offset ns)."""
    if clock_skew in (None, "report"):
        return "report", 0
    if clock_skew == "correct":
        return "correct", 0
    if hasattr(clock_skew, "value") and hasattr(clock_skew, "total_seconds"):   # pd.Timedelta
        return "offset", int(clock_skew.value)
    if hasattr(clock_skew, "total_seconds"):                                     # timedelta
        return "offset", round(clock_skew.total_seconds() * 1e9)
    if isinstance(clock_skew, (int, float)) and not isinstance(clock_skew, bool):
        return "offset", round(clock_skew * 1e9)
    raise ValueError(f"clock_skew {clock_skew!r}: use 'report', 'correct', seconds or a timedelta")


def import_logs(paths: Iterable[str | Path], source: str = "all", clock_skew: Any = "report",
                progress: bool | None = None) -> ImportResult:
    """Import every file into one trace.

    `source`: 'sysmon', 'security' or 'all'. `clock_skew`: 'report' (default: measure and report
    in `FileReport.skew`, keep times as recorded), 'correct' (add each file's offered
    correction to the times taken from its log clock, i.e. its Security rows), or an offset in
    seconds / a timedelta added to every log-clock time. `progress`: a tqdm bar (default: when
    the inputs hold at least 8 MiB of event data).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    if source not in SOURCES:
        raise ValueError(f"source {source!r}: use one of {', '.join(SOURCES)}")
    mode, offset = _parse_skew_option(clock_skew)
    paths = expand_paths(paths)
    show = progress if progress is not None else sum(input_size(p) for p in paths) >= \
        PROGRESS_MIN_BYTES
    rows: list[dict[str, Any]] = []
    passthrough: list[Any] = []
    rejected: list[dict[str, Any]] = []
    reports: list[FileReport] = []
    bar = tqdm(desc="import", unit="rec", disable=not show, file=sys.stderr)
    try:
        for path in paths:
            report = FileReport(str(path))
            reports.append(report)
            started = _time.perf_counter()
            if path.suffix.lower() in (".csv", ".parquet", ".pq"):
                _import_trace_file(path, report, passthrough, rejected)
                report.seconds = _time.perf_counter() - started
                continue
            clocks: dict[str, list[dict[str, Any]]] = {}
            file_rows: list[dict[str, Any]] = []
            try:
                for rec in iter_records(path):
                    report.records += 1
                    bar.update()
                    _one_record(rec, source, report, file_rows, passthrough, rejected, clocks)
            except SourceError as exc:
                report.rejected[f"unreadable file: {exc}"] += 1
                rejected.append({"file": str(path), "record_id": None, "event_id": None,
                                 "reason": f"unreadable file: {exc}"})
            for member, recs in clocks.items():
                skew = measure_skew(recs, member)
                if skew is not None:
                    report.skew.append(skew)
            if mode == "correct":
                sig = [s for s in report.skew if s.significant]
                report.correction_ns = sig[0].correction_ns if sig else 0
            elif mode == "offset":
                report.correction_ns = offset
            if report.correction_ns:
                _shift_logged(file_rows, report.correction_ns)
            rows.extend(file_rows)
            report.seconds = _time.perf_counter() - started
    finally:
        bar.close()
    frame = _finish(rows, passthrough, rejected, reports)
    rej = pd.DataFrame(rejected, columns=["file", "record_id", "event_id", "reason"])
    return ImportResult(frame, rej, reports)


def _one_record(rec, source, report, file_rows, passthrough, rejected, clocks) -> None:
    file = rec.get("_file")
    if "_error" in rec:
        report.rejected[rec["_error"]] += 1
        rejected.append({"file": file, "record_id": rec.get("_record"), "event_id": None,
                         "reason": rec["_error"]})
        return
    if rec.get("_trace_row"):
        row = {k: v for k, v in rec.items() if not k.startswith("_")}
        row.setdefault("file", file)
        row.setdefault("record_id", rec.get("_record"))
        passthrough.append((report, row))
        return
    kind = _record_kind(rec)
    if kind == "sysmon" and rec.get("UtcTime") and rec.get("_logged"):
        clocks.setdefault(file, []).append({"UtcTime": rec["UtcTime"], "_logged": rec["_logged"],
                                            "_logged_field": rec.get("_logged_field")})
    eid = rec.get("_event_id")
    wanted = {"sysmon": (1, 5), "security": (4688, 4689)}.get(kind, ())
    if eid not in wanted:
        report.skipped["not a process create/exit (other event ids and providers)"] += 1
        return
    if source != "all" and kind != source:
        report.skipped[f"{kind} event excluded by source={source}"] += 1
        return
    try:
        row = sysmon_row(rec) if kind == "sysmon" else security_row(rec)
    except RecordError as exc:
        reason = f"{kind} {eid}: {exc}"
        report.rejected[reason] += 1
        rejected.append({"file": file, "record_id": rec.get("_record"), "event_id": eid,
                         "reason": reason})
        return
    row["_report"] = report
    file_rows.append(row)


def _shift_logged(rows: list[dict[str, Any]], shift: int) -> None:
    for row in rows:
        if row.pop("_logged_clock", False):
            row["time"] += shift
            if row.get("creation_time") is not None:
                row["creation_time"] = ns_to_filetime(row["time"])
            if row.get("exit_time") is not None:
                row["exit_time"] = ns_to_filetime(row["time"])


def _import_trace_file(path: Path, report: FileReport, passthrough, rejected) -> None:
    try:
        clean, bad = read_trace(path)
    except TraceFormatError as exc:
        report.rejected[f"unreadable file: {exc}"] += 1
        rejected.append({"file": str(path), "record_id": None, "event_id": None,
                         "reason": f"unreadable file: {exc}"})
        return
    report.records = len(clean) + len(bad)
    for r in bad.itertuples(index=False):
        report.rejected[f"trace row: {r.reason}"] += 1
        rejected.append({"file": str(path), "record_id": int(r.row), "event_id": None,
                         "reason": f"trace row: {r.reason}"})
    for row in clean.to_dict("records"):
        passthrough.append((report, row))


def _finish(rows, passthrough, rejected, reports):
    import pandas as pd

    from .keys import link_rows
    owners = [r.pop("_report") for r in rows]
    for r in rows:
        r.pop("_logged_clock", None)
    columns = COLUMNS + EXTRA_COLUMNS
    frame = pd.DataFrame(rows, columns=columns, dtype=object)  # object: no float64 rounding
    clean, bad = validate(frame)
    for r in bad.itertuples(index=False):
        owner = owners[int(r.row)]
        reason = f"{r.source} {r.event_id}: {r.reason}"
        owner.rejected[reason] += 1
        rejected.append({"file": r.file, "record_id": r.record_id, "event_id": r.event_id,
                         "reason": reason})
    kept = set(clean.index)
    keep = [i for i in range(len(rows)) if i in kept]
    linked = [rows[i] for i in keep]
    link_rows(linked)
    for i in keep:
        owners[i].imported[(rows[i]["source"], rows[i]["operation"])] += 1
    out = as_schema(pd.DataFrame(linked, columns=columns, dtype=object)) if linked else \
        as_schema(pd.DataFrame(columns=columns))
    if passthrough:
        extra = pd.DataFrame([row for _, row in passthrough], dtype=object)
        pclean, pbad = validate(extra)
        owners_p = [rep for rep, _ in passthrough]
        for r in pbad.itertuples(index=False):
            owner = owners_p[int(r.row)]
            owner.rejected[f"trace row: {r.reason}"] += 1
            rejected.append({"file": owner.path, "record_id": None, "event_id": None,
                             "reason": f"trace row: {r.reason}"})
        for i in pclean.index:
            owners_p[i].imported[(str(pclean.at[i, "source"]), str(pclean.at[i, "operation"]))] += 1
        out = as_schema(pd.concat([out, pclean], ignore_index=True)) if len(out) else pclean
    out = out.sort_values("time", kind="stable").reset_index(drop=True)
    return out


# ---------------------------------------------------------------------------------------------
# ntoslab import FILES... -o TRACE.parquet [--source sysmon|security|all]
# ---------------------------------------------------------------------------------------------

def import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILES",
                   help="EVTX, Mordor JSON lines, .zip archives of either, or trace CSV/JSONL/Parquet")
    p.add_argument("-o", "--output", required=True, metavar="TRACE",
                   help="output trace (.parquet, .csv or .jsonl)")
    p.add_argument("--source", choices=SOURCES, default="all",
                   help="which events to import (default: all)")
    p.add_argument("--clock-skew", default="report", metavar="report|correct|SECONDS",
                   help="when a file's two clocks disagree: report it (default), correct the "
                        "log-clock (Security) times by the offered correction, or add SECONDS")
    p.add_argument("--rejected", metavar="FILE", help="also write the rejected records (CSV)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="always show a progress bar")
    g.add_argument("--no-progress", dest="progress", action="store_false")


def import_run(ns: argparse.Namespace, stderr=None) -> int:
    from .schema import write_trace
    err = stderr or sys.stderr
    skew: Any = ns.clock_skew
    if skew not in ("report", "correct"):
        try:
            skew = float(skew)
        except ValueError:
            print(f"ntoslab import: --clock-skew {skew!r}: use report, correct or seconds",
                  file=err)
            return 2
    missing = [f for f in ns.files if not Path(f).exists()]
    if missing:
        print(f"ntoslab import: no such file: {', '.join(missing)}", file=err)
        return 2
    started = _time.perf_counter()
    result = import_logs(ns.files, source=ns.source, clock_skew=skew, progress=ns.progress)
    try:
        write_trace(result.frame, ns.output)
    except (TraceFormatError, OSError) as exc:
        print(f"ntoslab import: cannot write {ns.output}: {exc}", file=err)
        return 1
    if ns.rejected:
        result.rejected.to_csv(ns.rejected, index=False)
    print(result.summary(), file=err)
    print(f"wrote {ns.output} ({len(result.frame)} rows) in "
          f"{_time.perf_counter() - started:.2f} s", file=err)
    return 0


def import_command(argv: Sequence[str] | None = None, stderr=None) -> int:
    """`ntoslab import FILES... -o TRACE.parquet [--source sysmon|security|all]
    [--clock-skew report|correct|SECONDS] [--rejected FILE] [--progress|--no-progress]`.
    Prints a per-file, per-reason summary to stderr; returns 0 on success, 1 when the output
    cannot be written, 2 on usage errors."""
    p = argparse.ArgumentParser(prog="ntoslab import",
                                description="Import Windows process logs into the trace schema.")
    import_args(p)
    try:
        ns = p.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    return import_run(ns, stderr)
