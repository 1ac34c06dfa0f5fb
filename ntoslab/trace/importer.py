"""Import real Windows process logs into the trace schema: `import_logs` and `ntoslab import`.

Inputs: EVTX files (Sysmon and/or Security channels), Mordor/OTRF JSON lines, `.zip` archives of
either, and files already in the trace schema (`.csv`, `.parquet`, JSON lines with `operation`,
which pass through validation unchanged). Records are read and sorted by `intake.py`; Sysmon
EID 1/5 and Security 4688/4689 become one row each (`sysmon.py`, `security.py`), column-wise;
keys and parents are linked by `keys.link_columns`; a file with two clocks is checked by
`clock.py`; an EVTX file whose headers promise records that were not read (truncated, a bad
chunk) is reported by `evtx_layout.py` in `FileReport.unread` and the summary. A large EVTX
file (>= 4 MiB) is read by `workers` processes, its chunks split between them (`evtx_split.py`):
each reads, converts and checks its share, and the shares are joined in chunk order before the
linking, with the same result as one process.

Nothing vanishes silently: every record read is either imported, *skipped* (not a process
create/exit, or excluded by `source`) or *rejected* (a process record that cannot become a row,
or a line that is not JSON) — counted per file and per reason in `ImportResult.files`, and the
rejected ones listed in `ImportResult.rejected` with file, record (`record_id`: the log's
EventRecordID where it has one; `record_number`: the record's place, or the JSON line) and
reason.

>>> result = import_logs(["Security.evtx"], source="security")     # doctest: +SKIP
>>> result.frame, print(result.summary())                          # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import gc
import sys
import time as _time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..filetime import FILETIME_EPOCH_OFFSET, FILETIME_TICKS_PER_NS
from .clock import ClockSkew, clock_differences, merged_differences, skew_of
from .columns import (
    all_ints,
    checked_values,
    is_arrow,
    join,
    keep,
    map_values,
    objects,
    take,
    text_values,
)
from .evtx_layout import Unread
from .evtx_split import MIN_PARALLEL_BYTES, Share, default_workers, run_shares, share_stream, shares
from .intake import META, NOT_PROCESS, SECURITY_VALUES, SYSMON_VALUES, Intake
from .keys import LINK_INPUTS, link_columns
from .readers import SourceError, input_size
from .schema import (
    COLUMNS,
    DTYPES,
    EXTRA_COLUMNS,
    MAX_COMMAND_LINE_CHARS,
    STRING_COLUMNS,
    TraceFormatError,
    as_schema,
    columns_frame,
    command_line_problem,
    int_checker,
    read_trace,
    sid_problem,
    surrogate_problems,
    validate,
)
from .security import security_rows
from .sysmon import sysmon_rows

SOURCES = ("sysmon", "security", "all")
PROGRESS_MIN_BYTES = 8 << 20        # show a progress bar from 8 MiB of event data up
READ_AS_OBJECTS = frozenset(LINK_INPUTS) | {"source", "operation"}   # by _finish, after the check


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
    unread: list[Unread] = field(default_factory=list)   # EVTX parts not read (truncated ...)

    @property
    def unread_records(self) -> int:
        """Records the EVTX headers list that were not read (a truncated file, a bad chunk)."""
        return sum(u.records for u in self.unread)

    @property
    def rows(self) -> int:
        return sum(self.imported.values())

    def describe(self) -> str:
        parts = [f"{self.path}: {self.records} records -> {self.rows} rows"]
        if self.imported:
            parts[0] += " (" + ", ".join(f"{s} {o}: {n}" for (s, o), n in
                                         sorted(self.imported.items())) + ")"
        parts[0] += f"; skipped {sum(self.skipped.values())}; rejected {sum(self.rejected.values())}"
        if self.unread:
            parts[0] += f"; NOT READ {self.unread_records} (file incomplete)"
        for u in self.unread:
            parts.append("  NOT READ " + u.describe())
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
    rejected: Any                   # DataFrame: file, record_id, record_number, event_id, reason
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

    def seen_twice(self, tolerance_s: float = 2.0) -> Any:
        """Creations recorded by both Sysmon (EID 1) and Security (4688): the same host, pid
        and image name within `tolerance_s` (plus the files' measured clock skew). Each such
        process is a row for each source in `frame`, so trees count it twice; one row per
        pair here (sysmon_row, security_row, process_id, image)."""
        import pandas as pd
        fr = self.frame
        cols = ["sysmon_row", "security_row", "process_id", "image"]
        if not len(fr) or "source" not in fr.columns:
            return pd.DataFrame(columns=cols)
        skew = max([abs(s.median_ns) for s in self.skews if s.significant] or [0])
        creates = fr[fr["operation"] == "create"]
        name = creates["image_path"].fillna("").str.rsplit("\\", n=1).str[-1].str.lower()
        base = pd.DataFrame({"row": creates.index, "host": creates["host"].fillna(""),
                             "pid": creates["process_id"], "image": name,
                             "t": creates["time"], "source": creates["source"]}).dropna(
                                 subset=["pid", "t"])
        sy = base[base["source"] == "sysmon"].sort_values("t")
        se = base[base["source"] == "security"].sort_values("t")
        if not len(sy) or not len(se):
            return pd.DataFrame(columns=cols)
        both = pd.merge_asof(sy, se, on="t", by=["host", "pid", "image"], direction="nearest",
                             tolerance=pd.Timedelta(int(tolerance_s * 1e9) + skew, "ns"),
                             suffixes=("", "_security"))
        both = both.dropna(subset=["row_security"])
        return pd.DataFrame({"sysmon_row": both["row"].astype("int64").to_numpy(),
                             "security_row": both["row_security"].astype("int64").to_numpy(),
                             "process_id": both["pid"].to_numpy(),
                             "image": both["image"].to_numpy()}, columns=cols)

    def summary(self) -> str:
        lines = [f.describe() for f in self.files]
        fr = self.frame
        if len(fr):
            links = fr.groupby(["source", "operation", "link"], dropna=False).size()
            lines.append("links: " + ", ".join(f"{s} {o} {l}: {n}" for (s, o, l), n in
                                               links.items()))
            twice = self.seen_twice()
            if len(twice):
                lines.append(f"seen twice: {len(twice)} process creation(s) are in both Sysmon "
                             f"and Security (same host, pid and image): they are not merged, so "
                             f"trees and counts see each twice; import with --source sysmon "
                             f"(richer: GUIDs, hashes, parent image) or --source security to "
                             f"keep one (`result.seen_twice()` lists them)")
        total = f"total: {len(fr)} rows imported, {len(self.rejected)} records rejected"
        cut = [f for f in self.files if f.unread]
        if cut:
            total += (f", {sum(f.unread_records for f in cut)} records not read from "
                      f"{len(cut)} incomplete EVTX file(s)")
        lines.append(total)
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
                progress: bool | None = None, workers: int | None = None,
                split_min_bytes: int = MIN_PARALLEL_BYTES) -> ImportResult:
    """Import every file into one trace.

    `source`: 'sysmon', 'security' or 'all'. `clock_skew`: 'report' (default: measure and report
    in `FileReport.skew`, keep times as recorded), 'correct' (add each file's offered
    correction to the times taken from its log clock, i.e. its Security rows), or an offset in
    seconds / a timedelta added to every log-clock time. `progress`: a tqdm bar (default: when
    the inputs hold at least 8 MiB of event data). `workers`: processes that read an EVTX file
    of at least `split_min_bytes` (default 4 MiB), its chunks split between them (default: one
    per core; 1: in this process only); the result is the same as with one. A worker that
    fails or dies raises `EvtxWorkerError` naming the file.

    Records are sorted into Sysmon and Security process records as they are read; each group is
    then converted, validated and linked column-wise.
    """
    import pandas as pd

    if source not in SOURCES:
        raise ValueError(f"source {source!r}: use one of {', '.join(SOURCES)}")
    mode, offset = _parse_skew_option(clock_skew)
    if workers is None:
        workers = default_workers()
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers {workers!r}: at least 1")
    paths = expand_paths(paths)
    show = progress if progress is not None else sum(input_size(p) for p in paths) >= \
        PROGRESS_MIN_BYTES
    frames: list[tuple[FileReport, Any]] = []
    passthrough: list[Any] = []
    rejected: list[dict[str, Any]] = []
    reports: list[FileReport] = []
    bar = None
    if show:
        from tqdm.auto import tqdm
        bar = tqdm(desc="import", unit="rec", file=sys.stderr)
    # the records held while a file is read are many small dicts that form no cycles: the
    # cyclic collector would walk them again and again (a third of the time on large files)
    collecting = gc.isenabled()
    gc.disable()
    try:
        for path in paths:
            report = FileReport(str(path))
            reports.append(report)
            started = _time.perf_counter()
            if path.suffix.lower() in (".csv", ".parquet", ".pq"):
                _import_trace_file(path, report, passthrough, rejected)
                report.seconds = _time.perf_counter() - started
                continue
            rows = _import_log_file(path, source, report, passthrough, rejected, bar, workers,
                                    split_min_bytes)
            if mode == "correct":
                sig = [s for s in report.skew if s.significant]
                report.correction_ns = sig[0].correction_ns if sig else 0
            elif mode == "offset":
                report.correction_ns = offset
            if report.correction_ns and rows is not None:
                _shift_logged(rows, report.correction_ns)
            if rows is not None:
                frames.append((report, rows))
            report.seconds = _time.perf_counter() - started
        frame = _finish(frames, passthrough, rejected)
    finally:
        if collecting:
            gc.enable()
        if bar is not None:
            bar.close()
    names = ["file", "record_id", "record_number", "event_id", "reason"]
    rej = pd.DataFrame(rejected, columns=names) if rejected else \
        pd.DataFrame({c: np.empty(0, object) for c in names})
    return ImportResult(frame, rej, reports)


def _import_log_file(path: Path, source: str, report: FileReport, passthrough, rejected, bar,
                     workers: int = 1, split_min_bytes: int = MIN_PARALLEL_BYTES):
    """Read one log file (`intake.py`; a large EVTX file in `workers` processes, `evtx_split`),
    convert and check its process records column-wise; returns the rows (`_Rows` in record
    order, or None) and fills `report` (but for the rows the check refused: `_finish`)."""
    split = shares(path, workers, split_min_bytes)
    if split is None:
        intake = Intake(path, source)
        try:
            intake.read()
        except SourceError as exc:
            intake.reject(str(path), None, None, f"unreadable file: {exc}")
        rows, converted = _converted(intake)
        rows = _checked(rows)
        differences = _differences(intake)
    else:
        try:
            intake, rows, converted, differences = _merge_shares(path, source, run_shares(
                str(path), split, _read_share, source))
        except SourceError as exc:
            intake = Intake(path, source)
            intake.reject(str(path), None, None, f"unreadable file: {exc}")
            rows, converted, differences = None, {}, {}
    report.records += intake.count
    report.skipped.update(intake.skipped)
    report.unread.extend(intake.unread)
    for e in intake.rejected:
        report.rejected[e["reason"]] += 1
        rejected.append(e)
    passthrough.extend((report, row) for row in intake.passthrough)
    if bar is not None:
        bar.update(intake.count)
    for member, (diffs, field_name) in differences.items():
        skew = skew_of(diffs, member, field_name)
        if skew is not None:
            report.skew.append(skew)
    for kind_rejected in converted.values():
        for e in kind_rejected:
            report.rejected[e["reason"]] += 1
            rejected.append(e)
    return rows


def _converted(intake: Intake) -> tuple[dict | None, dict[str, list[dict[str, Any]]]]:
    """The intake's process records as rows (columns in record order, or None) and, per
    kind (Sysmon's first), the records that cannot become one in record order."""
    out = []
    rejected: dict[str, list[dict[str, Any]]] = {"sysmon": [], "security": []}
    for kind, recs, fields, convert in (("sysmon", intake.sysmon, SYSMON_VALUES, sysmon_rows),
                                        ("security", intake.security, SECURITY_VALUES,
                                         security_rows)):
        names = META + fields
        blocks = list(intake.blocks[kind])
        if recs:                      # filed one by one: as columns too
            blocks.append({name: np.fromiter(col, object, len(recs))
                           for name, col in zip(names, zip(*recs))})
        if not blocks:
            continue
        raw = {name: join([b[name] for b in blocks]) for name in names}
        seq = raw["_seq"].astype(np.int64)
        n = len(seq)
        if len(blocks) > 1 and not (seq[1:] > seq[:-1]).all():     # back in record order
            order = np.argsort(seq, kind="stable")
            raw = {name: take(v, order) for name, v in raw.items()}
            seq = seq[order]
        cols, why = convert(raw)
        cols["_seq"] = seq
        cols["_logged_clock"] = np.full(n, kind == "security")
        bad = np.flatnonzero(~np.equal(why, None))
        eid = objects(raw["_event_id"])
        record, number, file = (objects(raw[c]) for c in ("_record", "_number", "_file"))
        for i in bad.tolist():
            rejected[kind].append({"file": file[i], "record_id": record[i],
                                   "record_number": number[i], "event_id": eid[i],
                                   "reason": f"{kind} {eid[i]}: {why[i]}"})
        if len(bad):
            ok = np.equal(why, None)
            cols = {c: keep(v, ok) for c, v in cols.items()}
        out.append(cols)
    if not out:
        return None, rejected
    if len(out) == 1:
        return out[0], rejected
    rows = _concat_columns(out)                   # back in the order of the records
    order = np.argsort(rows["_seq"], kind="stable")
    return {c: take(v, order) for c, v in rows.items()}, rejected


def _differences(intake: Intake) -> dict[str, tuple[Any, Any]]:
    """Per member with two clocks: its sorted clock differences and the log clock's field."""
    return {member: (clock_differences(utc, logged), field_name)
            for member, (utc, logged, field_name) in intake.clocks.items()}


def _read_share(path: str, share: Share, source: str) -> tuple[Intake, _Rows | None, dict,
                                                                    dict]:
    """One share of an EVTX file's chunks read and converted, its rows in time order and its
    clocks compared (run in a worker process: the intake comes back without its records and
    clock samples, which are in the rows and the differences)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        intake = Intake(Path(path), source)
        intake.threads = False          # the other core reads the other share
        with share_stream(path, share) as stream:
            intake.evtx(stream, path, layout=False)
        rows, converted = _converted(intake)
        differences = _differences(intake)
        intake.sysmon, intake.security, intake.clocks = [], [], {}
        intake.blocks = {"sysmon": [], "security": []}
        checked = _checked(rows)
        return intake, None if checked is None else _in_time_order(checked), converted, \
            differences
    finally:
        if collecting:
            gc.enable()


def _merge_shares(path: Path, source: str, parts: list) -> tuple[Intake, _Rows | None, dict,
                                                                  dict]:
    """The shares' intakes, rows and rejected records as one read of the whole file would
    give them: records numbered on (`_seq`), skip reasons in the order they first occur,
    Sysmon's rejected records before Security's, the file's headers compared with the
    record ids of all shares."""
    whole = Intake(path, source)
    parsed: list[int] = []
    rows = []
    by_kind: dict[str, list] = {"sysmon": [], "security": []}
    clocks: dict[str, tuple[list, Any]] = {}
    not_process = 0
    for part, part_rows, converted, differences in parts:
        if part_rows is not None:
            part_rows.cols["_seq"] += whole.count
            rows.append(part_rows)
        whole.count += part.count
        for reason, k in part.skipped.items():
            if reason == NOT_PROCESS:
                not_process += k
            else:
                whole.skipped[reason] += k
        whole.rejected.extend(part.rejected)
        for member, (diffs, field_name) in differences.items():
            clocks.setdefault(member, ([], field_name))[0].append(diffs)
        parsed.extend(part.parsed)
        for kind, kind_rejected in converted.items():
            by_kind[kind].extend(kind_rejected)
    if not_process:
        whole.skipped[NOT_PROCESS] += not_process
    whole.check_layout(path, str(path), parsed)
    merged = {m: (merged_differences(d), f) for m, (d, f) in clocks.items()}
    return whole, _concat_rows(rows) if rows else None, by_kind, merged


def _concat_columns(parts: list[dict]) -> dict:
    names = list(dict.fromkeys(c for p in parts for c in p))
    return {c: join([p[c] if c in p else np.full(len(p["time"]), None, object) for p in parts])
            for c in names}


def _shift_logged(checked: _Rows, shift: int) -> None:
    """Add `shift` ns to the times of the rows taken from the log clock (Security)."""
    rows = checked.cols
    mask = rows.get("_logged_clock")
    if mask is None or not mask.any():
        return
    t = rows["time"].copy()
    t[mask] += shift
    rows["time"] = t
    ft = (t // FILETIME_TICKS_PER_NS + FILETIME_EPOCH_OFFSET).astype(object)
    for c in ("creation_time", "exit_time"):
        col = rows[c].copy()
        has = ~np.equal(col, None) & mask
        col[has] = ft[has]
        rows[c] = col


def _import_trace_file(path: Path, report: FileReport, passthrough, rejected) -> None:
    try:
        clean, bad = read_trace(path)
    except TraceFormatError as exc:
        report.rejected[f"unreadable file: {exc}"] += 1
        rejected.append({"file": str(path), "record_id": None, "record_number": None,
                         "event_id": None, "reason": f"unreadable file: {exc}"})
        return
    report.records = len(clean) + len(bad)
    for r in bad.itertuples(index=False):
        report.rejected[f"trace row: {r.reason}"] += 1
        rejected.append({"file": str(path), "record_id": None, "record_number": int(r.row),
                         "event_id": None, "reason": f"trace row: {r.reason}"})
    if len(clean):
        counts = clean.groupby(["source", "operation"], dropna=False).size()
        for (s_, o_), k in counts.items():
            report.imported[(str(s_), str(o_))] += int(k)
        passthrough.append((None, clean))


@dataclass
class _Rows:
    """One file's (or share's) rows, converted and checked: `cols` the columns but text,
    `arrow` the text columns as Arrow (`_finish` makes objects of those it reads so),
    `rejected` the records the check refused (not in the rows), in row order."""

    cols: dict[str, Any]
    arrow: dict[str, Any]
    rejected: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.cols["time"])


def _checked(cols: dict | None) -> _Rows | None:
    """`_check_rows` on converted rows (None: no rows): those it refuses become rejected
    records, in row order (reported by `_finish`, after every file's reading and conversion
    rejects)."""
    if cols is None:
        return None
    n = len(cols["time"])
    given = {c: cols[c] for c in ("event_id", "record_id", "record_number")}
    arrow: dict = {}
    why = _check_rows(cols, n, arrow)
    bad = np.flatnonzero(~np.equal(why, None))
    rejected = [{"file": cols["file"][i], "record_id": given["record_id"][i],
                 "record_number": given["record_number"][i], "event_id": given["event_id"][i],
                 "reason": f"{cols['source'][i]} {given['event_id'][i]}: {why[i]}"}
                for i in bad.tolist()]
    kept = {c: objects(v) if is_arrow(v) else v for c, v in cols.items() if c not in arrow}
    if len(bad):
        keep = np.equal(why, None)
        kept = {c: v[keep] for c, v in kept.items()}
        arrow = {c: v.filter(keep) for c, v in arrow.items()}
    return _Rows(kept, arrow, rejected)


def _in_time_order(rows: _Rows) -> _Rows:
    """The rows sorted by time (stable: ties keep their order)."""
    t = rows.cols["time"]
    if len(t) < 2 or bool((t[1:] >= t[:-1]).all()):
        return rows
    order = np.argsort(t, kind="stable")
    return _Rows({c: v[order] for c, v in rows.cols.items()},
                 {c: v.take(order) for c, v in rows.arrow.items()}, rows.rejected)


def _concat_rows(parts: list[_Rows]) -> _Rows:
    """Checked rows one after the other (a column some lack: missing there)."""
    if len(parts) == 1:
        return parts[0]
    import pyarrow as pa
    names = dict.fromkeys(c for p in parts for c in p.arrow)
    arrow = {c: pa.concat_arrays([p.arrow[c] if c in p.arrow else
                                  pa.nulls(len(p), pa.large_string()) for p in parts])
             for c in names}
    return _Rows(_concat_columns([p.cols for p in parts]), arrow,
                 [e for p in parts for e in p.rejected])


def _check_rows(cols: dict, n: int, arrow: dict) -> np.ndarray:
    """The reasons (None: fine) `schema.validate` would give the converted rows, found with
    the checks that can fail for them: record ids that are not integers (Mordor's are
    free-form), text a string column cannot hold, token SIDs, command-line length. Values
    are converted (record ids to ints) and unstorable text blanked in place; `arrow` gets
    each text column as an Arrow array."""
    import pyarrow as pa
    found: list[np.ndarray] = []
    for c in ("event_id", "record_id", "record_number"):
        v = cols[c]
        if not all_ints(v):
            res, errs = checked_values(v, int_checker(c, -(1 << 63), (1 << 63) - 1))
            found.append(errs)
            cols[c] = res
    for c in STRING_COLUMNS:
        v = cols.get(c)
        if v is None:
            continue
        if is_arrow(v):                  # read by Arrow (evtx_arrow): valid text already
            arrow[c] = v.cast(pa.large_string())
            continue
        if v.dtype != object:
            continue
        try:                             # the text as Arrow, once: the frame is built from it
            arrow[c] = pa.array(v, type=pa.large_string(), from_pandas=True)
            continue
        except (UnicodeEncodeError, pa.ArrowException, TypeError, ValueError):
            pass
        v = cols[c] = text_values(v)     # values that are not text yet: as text (str)
        try:
            arrow[c] = pa.array(v, type=pa.large_string(), from_pandas=True)
            continue
        except (UnicodeEncodeError, pa.ArrowException, TypeError, ValueError):
            pass
        errs = surrogate_problems(v, c)
        if errs is not None:
            found.append(errs)
            v = v.copy()
            v[~np.equal(errs, None)] = None
            cols[c] = v
        arrow[c] = pa.array(v, type=pa.large_string(), from_pandas=True)
    found.append(map_values(cols["token_sid"], sid_problem))
    found.append(_long_command_lines(cols["command_line"], arrow.get("command_line"), n))
    why = np.full(n, None, object)
    for errs in found:
        for i in np.flatnonzero(~np.equal(errs, None)).tolist():
            why[i] = errs[i] if why[i] is None else f"{why[i]}; {errs[i]}"
    return why


def _long_command_lines(values: np.ndarray, text: Any, n: int) -> np.ndarray:
    """`command_line_problem` per row (None: fine); `text`: the same values as an Arrow
    string array when at hand (its character counts are Python's: it holds no surrogate)."""
    why = np.full(n, None, object)
    if text is not None:
        import pyarrow.compute as pc
        lengths = pc.utf8_length(text)
        over = pc.fill_null(pc.greater(lengths, MAX_COMMAND_LINE_CHARS), False)
        for i in np.flatnonzero(over.to_numpy(zero_copy_only=False)).tolist():
            why[i] = command_line_problem(lengths[i].as_py())
        return why
    for i, v in enumerate(values.tolist()):
        if type(v) is str and len(v) > MAX_COMMAND_LINE_CHARS:
            why[i] = command_line_problem(len(v))
    return why


def _count_imported(frames, owners: np.ndarray, source, operation) -> None:
    """Add to each file's report its rows per (source, operation) (text columns as Arrow)."""
    import pyarrow as pa
    counts = pa.table({"o": owners, "s": source, "p": operation}).group_by(
        ["o", "s", "p"], use_threads=False).aggregate([([], "count_all")])
    for o, s_, p_, k in zip(*(counts.column(c).to_pylist() for c in ("o", "s", "p",
                                                                     "count_all"))):
        frames[o][0].imported[(s_, p_)] += k


def _finish(frames, passthrough, rejected):
    import pandas as pd

    columns = COLUMNS + EXTRA_COLUMNS
    parts = []
    if frames:
        owners = np.concatenate([np.full(len(f), i) for i, (_, f) in enumerate(frames)])
        for owner, f in frames:             # refused by the check: after all other rejects
            for e in f.rejected:
                owner.rejected[e["reason"]] += 1
                rejected.append(e)
        rows = _concat_rows([f for _, f in frames])
        # then in time order (stable: ties keep the order of the files and records, which is
        # all the linking looks at; a share's rows come sorted already); text stays in Arrow,
        # made objects only where the linking reads it
        rows = _in_time_order(_Rows({**rows.cols, "_owner": owners}, rows.arrow, rows.rejected))
        cols, arrow = dict(rows.cols), dict(rows.arrow)
        cols.update((c, objects(v)) for c, v in arrow.items() if c in READ_AS_OBJECTS)
        owners = cols.pop("_owner")
        n = len(owners)
        cols.update(link_columns({c: cols[c] for c in LINK_INPUTS}))
        _count_imported(frames, owners, arrow["source"], arrow["operation"])
        for c in ("process_key", "parent_key", "link"):
            arrow.pop(c, None)                    # made by the linking, after the check
        parts.append(columns_frame({**cols, **arrow}, n))
        if not passthrough:
            return parts[0]
    for owner, row in passthrough:
        if owner is None:        # an already validated trace file
            parts.append(row)
    loose = [(o, r) for o, r in passthrough if o is not None]
    if loose:
        extra = pd.DataFrame([row for _, row in loose], dtype=object)
        pclean, pbad = validate(extra)
        owners_p = [rep for rep, _ in loose]
        for r in pbad.itertuples(index=False):
            owner = owners_p[int(r.row)]
            owner.rejected[f"trace row: {r.reason}"] += 1
            rejected.append({"file": owner.path, "record_id": None, "record_number": None,
                             "event_id": None, "reason": f"trace row: {r.reason}"})
        for i in pclean.index:
            owners_p[i].imported[(str(pclean.at[i, "source"]), str(pclean.at[i, "operation"]))] += 1
        parts.append(pclean)
    if not parts:
        return columns_frame({"time": np.empty(0, np.int64)}, 0)
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    for c in columns:
        if c not in out.columns:
            out[c] = pd.array([pd.NA] * len(out), dtype=DTYPES.get(c, "string"))
    out = as_schema(out)
    if out["time"].is_monotonic_increasing:
        return out.reset_index(drop=True)
    return out.sort_values("time", kind="stable").reset_index(drop=True)


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
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes (default: one per core): a trace output splits each EVTX "
                        "file of 4 MiB or more between them; a dataset output imports files "
                        "in parallel on them")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="always show a progress bar")
    g.add_argument("--no-progress", dest="progress", action="store_false")


def check_import_args(ns: argparse.Namespace, err) -> Any:
    """The --clock-skew value of `ntoslab import` (report, correct or seconds), or None after
    saying on `err` what is wrong with the arguments (a bad skew, files that do not exist)."""
    skew: Any = ns.clock_skew
    if skew not in ("report", "correct"):
        try:
            skew = float(skew)
        except ValueError:
            print(f"ntoslab import: --clock-skew {skew!r}: use report, correct or seconds",
                  file=err)
            return None
    if ns.workers is not None and ns.workers < 1:
        print(f"ntoslab import: --workers {ns.workers}: at least 1", file=err)
        return None
    missing = [f for f in ns.files if not Path(f).exists()]
    if missing:
        print(f"ntoslab import: no such file: {', '.join(missing)}", file=err)
        return None
    return skew


def import_run(ns: argparse.Namespace, stderr=None) -> int:
    from .schema import write_trace
    err = stderr or sys.stderr
    skew = check_import_args(ns, err)
    if skew is None:
        return 2
    started = _time.perf_counter()
    result = import_logs(ns.files, source=ns.source, clock_skew=skew, progress=ns.progress,
                         workers=ns.workers)
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
    [--clock-skew report|correct|SECONDS] [--rejected FILE] [--workers N]
    [--progress|--no-progress]`.
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
