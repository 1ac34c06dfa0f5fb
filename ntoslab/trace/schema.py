"""The trace schema (one row per process create/delete) and reading events from files.

JSONL, CSV and Parquet in the trace schema are accepted; FILETIME fields and `time` also take
ISO-8601 strings. A bad row is reported with its line (or row) number and field, and reading
goes on: nothing after it is silently dropped.

>>> events, errors = read_events("data/scenario.jsonl")    # doctest: +SKIP

The DataFrame form (`as_schema`, `validate`, `read_trace`, `write_trace`):

- `time` is `datetime64[ns, UTC]` (the event time; on disk in CSV/JSONL it is written as integer
  nanoseconds since 1970 so nothing is rounded, and read back from integers or ISO-8601 strings);
- `creation_time`/`exit_time` are FILETIME ticks (100 ns since 1601) as nullable `Int64`;
  `filetime_to_datetime`/`datetime_to_filetime` (and the `_ns` forms) convert both ways;
- every other integer column is nullable `Int64` (missing = `<NA>`, never 0 or NaN);
  `exit_code` is the *unsigned* 32-bit value (0xC000013A is 3221225786), as `process_md_t` stores it;
- text columns are pandas `string`; `creator_inferred` is `boolean`.

Importers add a few columns after `COLUMNS` (`EXTRA_COLUMNS`): where a row came from (`file`,
`record_id` = the log's EventRecordID, `record_number` = its place in the file), how its keys
were linked, and the fields a hunter needs that the hook's `process_md_t` has no room for
(Sysmon `OriginalFileName`, `Description`, `Product`, `Company`, `Hashes`, `IntegrityLevel`,
`CurrentDirectory`, `User`, `LogonId`; Security `TokenElevationType`, `MandatoryLabel`,
`SubjectLogonId`), nullable and typed. Readers keep any column they do not know.

>>> clean, rejected = validate(frame)           # doctest: +SKIP
>>> rejected[["row", "reason"]]                 # doctest: +SKIP
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..filetime import (  # noqa: F401
    FILETIME_EPOCH_OFFSET,
    FILETIME_TICKS_PER_NS,
    U32,
    filetime_to_ns,
    ns_to_filetime,
    parse_time_ns,
)
from ..hooks.process import EventError, ProcessEvent, sid_to_bytes

COLUMNS = ["time", "operation", "process_id", "parent_process_id", "creating_process_id",
           "creating_thread_id", "creation_time", "exit_time", "exit_code", "image_path",
           "command_line", "token_sid", "account_name", "account_domain", "host", "source",
           "process_key", "parent_key"]


@dataclass(frozen=True)
class RowError:
    """A row that could not become an event: where it is and why."""

    path: str
    line: int          # 1-based line (JSONL/CSV; CSV counts the header as line 1) or row index
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class TraceFormatError(ValueError):
    """A file that is not a readable trace at all (unknown format, unreadable)."""


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, row or None, error or None) for every row of the file."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8-sig") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield n, None, f"not valid JSON ({exc.msg} at column {exc.colno})"
                    continue
                if not isinstance(obj, dict):
                    yield n, None, f"a JSON {type(obj).__name__}, expected an object"
                    continue
                yield n, obj, None
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            for row in reader:
                n = reader.line_num
                if None in row:
                    yield n, None, f"{len(row[None])} more field(s) than the header has"
                    continue
                yield n, {k: (v if v != "" else None) for k, v in row.items()}, None
    elif suffix in (".parquet", ".pq"):
        import pandas as pd
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise TraceFormatError(f"{path}: cannot read as Parquet: {exc}") from None
        for i, row in enumerate(frame.to_dict("records")):
            yield i, row, None
    else:
        raise TraceFormatError(f"{path}: unknown trace format {suffix!r} "
                               f"(use .jsonl, .csv or .parquet)")


def read_events(path: str | Path) -> tuple[list[ProcessEvent], list[RowError]]:
    """Every event of a trace file, and every row that was rejected (with its reason)."""
    path = Path(path)
    if not path.exists():
        raise TraceFormatError(f"{path}: no such file")
    events: list[ProcessEvent] = []
    errors: list[RowError] = []
    for n, row, err in _rows(path):
        if err is not None:
            errors.append(RowError(str(path), n, err))
            continue
        try:
            events.append(ProcessEvent.from_row(row))
        except EventError as exc:
            errors.append(RowError(str(path), n, str(exc)))
    return events, errors


def events_frame(events: list[ProcessEvent]):
    """Events as a DataFrame in the trace schema (column order of `COLUMNS`)."""
    import pandas as pd
    rows = [{c: getattr(e, c) for c in COLUMNS} for e in events]
    return pd.DataFrame(rows, columns=COLUMNS)



def trace_frame(events: list[ProcessEvent], keep_unseen_parents: bool = False):
    """Events as a trace-schema DataFrame. `parent_key` is kept only when that parent's key
    appears in the frame (the schema: null when the parent was never seen)."""
    frame = events_frame(events)
    if not keep_unseen_parents and len(frame):
        seen = set(frame["process_key"])
        frame["parent_key"] = [k if k in seen else None for k in frame["parent_key"]]
    return frame

# --------------------------------------------------------------------------------------------
# The DataFrame form: dtypes, FILETIME conversions, validation, Parquet/CSV/JSONL I/O
# --------------------------------------------------------------------------------------------

# Columns importers add after COLUMNS (all optional for readers and validate).
EXTRA_COLUMNS = ["creator_inferred", "parent_image", "process_guid", "parent_process_guid",
                 "link", "event_id", "record_id", "file", "record_number",
                 # kept from the logs for hunting (null where a source lacks them)
                 "original_file_name", "description", "product", "company", "hashes",
                 "integrity_level", "current_directory", "user", "logon_id",
                 "token_elevation_type", "mandatory_label", "subject_logon_id",
                 # the thread that ran the exit callback (no Windows log records it)
                 "exit_thread_id"]

TIME_DTYPE = "datetime64[ns, UTC]"
INT_COLUMNS = ["process_id", "parent_process_id", "creating_process_id", "creating_thread_id",
               "creation_time", "exit_time", "exit_code", "event_id", "record_id",
               "record_number", "logon_id", "subject_logon_id", "exit_thread_id"]
STRING_COLUMNS = ["operation", "image_path", "command_line", "token_sid", "account_name",
                  "account_domain", "host", "source", "process_key", "parent_key", "parent_image",
                  "process_guid", "parent_process_guid", "link", "file", "original_file_name",
                  "description", "product", "company", "hashes", "integrity_level",
                  "current_directory", "user", "token_elevation_type", "mandatory_label"]
DTYPES: dict[str, str] = {"time": TIME_DTYPE, "creator_inferred": "boolean",
                          **{c: "Int64" for c in INT_COLUMNS},
                          **{c: "string" for c in STRING_COLUMNS}}

def filetime_to_datetime(value):
    """FILETIME ticks (an int, or a Series of them) as UTC timestamps (`pd.Timestamp`/Series).
    Missing values stay missing."""
    import pandas as pd
    if isinstance(value, pd.Series):
        ticks = pd.array(value, dtype="Int64")
        ns = (ticks - FILETIME_EPOCH_OFFSET) * FILETIME_TICKS_PER_NS
        return pd.Series(pd.to_datetime(ns, unit="ns", utc=True), index=value.index,
                         name=value.name)
    if value is None or value is pd.NA:
        return pd.NaT
    return pd.Timestamp(filetime_to_ns(int(value)), unit="ns", tz="UTC")


def datetime_to_filetime(value):
    """A timestamp (naive = UTC), ISO-8601 string, or a Series of them, as FILETIME ticks
    (`int`, or an `Int64` Series). Sub-100-ns digits are dropped."""
    import pandas as pd
    if isinstance(value, pd.Series):
        ts = _to_utc(value)
        ns = pd.array(ts.array.asi8, dtype="Int64")
        ns[ts.isna().to_numpy()] = pd.NA
        return pd.Series(ns // FILETIME_TICKS_PER_NS + FILETIME_EPOCH_OFFSET, index=value.index,
                         name=value.name)
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return ns_to_filetime(parse_time_ns(value))
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ns_to_filetime(int(ts.value))


def _to_utc(series):
    """A Series of ints (ns), ISO strings, naive or aware datetimes as datetime64[ns, UTC]."""
    import pandas as pd
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype(TIME_DTYPE)
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series.dt.tz_localize("UTC").astype(TIME_DTYPE)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return pd.Series(pd.to_datetime(pd.array(series, dtype="Int64"), unit="ns", utc=True),
                         index=series.index, name=series.name)
    out = []
    for v in series:
        out.append(_time_value(v))
    return pd.Series(pd.to_datetime(pd.array(out, dtype="Int64"), unit="ns", utc=True),
                     index=series.index, name=series.name)


def _time_value(v) -> int | None:
    """One `time` cell as ns (None when missing; ValueError when unreadable)."""
    import pandas as pd
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v != int(v):
            raise ValueError(f"{v!r} is not a whole number of nanoseconds")
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        text = v.strip()
        if not text:
            return None
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        return parse_time_ns(text)
    if isinstance(v, pd.Timestamp):
        return int((v.tz_localize("UTC") if v.tzinfo is None else v).value)
    return int(v)


def as_schema(frame, strict: bool = False):
    """`frame` with every column of `COLUMNS` (missing ones added as `<NA>`) in schema order,
    then any other columns, converted to `DTYPES`. Raises ValueError when a column cannot be
    converted; use `validate` to find the rows at fault instead (`strict=False` is lenient only
    about missing columns)."""
    import pandas as pd
    out = frame.copy(deep=False)
    for c in COLUMNS:
        if c not in out.columns:
            out[c] = pd.NA
    for c, dtype in DTYPES.items():
        if c not in out.columns:
            continue
        have = out[c].dtype
        if str(have) == dtype:
            continue                    # already in schema form: no conversion, no copy
        if c == "time":
            out[c] = _to_utc(out[c])
        elif dtype == "Int64":
            out[c] = _int_series(out[c])
        elif dtype == "string":
            out[c] = out[c].astype("string")
        else:
            out[c] = out[c].astype(dtype)
    rest = [c for c in out.columns if c not in COLUMNS]
    return out[COLUMNS + rest]


def _int_series(series):
    import pandas as pd
    if pd.api.types.is_integer_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("Int64")
    vals = [_int_value(v) for v in series]
    return pd.Series(pd.array(vals, dtype="Int64"), index=series.index, name=series.name)


def _int_value(v):
    import pandas as pd
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if not math.isfinite(v) or v != int(v):
            raise ValueError(f"{v!r} is not an integer")
        return int(v)
    if isinstance(v, str):
        text = v.strip()
        if not text:
            return None
        try:
            return int(text, 16) if text.lower().startswith(("0x", "-0x")) else int(text)
        except ValueError:
            number = float(text)          # "12.0" from a float CSV column; else ValueError
            if not math.isfinite(number) or number != int(number):
                raise ValueError(f"{v!r} is not an integer") from None
            return int(number)
    if isinstance(v, pd.Timestamp):
        return ns_to_filetime(int((v.tz_localize("UTC") if v.tzinfo is None else v).value))
    return int(v)


def int_checker(c: str, lo: int, hi: int):
    """A per-value check of integer column `c` in [lo, hi]: (value, None) or (None, reason),
    the reasons `validate` reports."""
    def one(v):
        try:
            k = _int_value(v)
        except (TypeError, ValueError, OverflowError):
            return None, f"{c} {v!r} is not an integer"
        if k is not None and not lo <= k <= hi:
            return None, f"{c} {k} is out of range [{lo}, {hi}]"
        return k, None
    return one


_INT_RANGES = {"process_id": (0, U32 - 1), "parent_process_id": (0, U32 - 1),
               "creating_process_id": (0, U32 - 1), "creating_thread_id": (0, U32 - 1),
               "creation_time": (0, (1 << 63) - 1), "exit_time": (0, (1 << 63) - 1),
               "exit_code": (-(1 << 31), U32 - 1)}
MAX_COMMAND_LINE_CHARS = 0xFFFF // 2   # a UNICODE_STRING holds at most 65535 bytes


def validate(frame):
    """Split a trace frame into (clean, rejected).

    `clean` is in schema form (`as_schema`), negative exit codes folded to their unsigned 32-bit
    value. `rejected` holds the original rows that cannot be events, with `row` (their index
    label) and `reason` (every problem found, '; '-joined): a missing or unknown `operation`,
    a missing `process_id` or `time`, a value that is not an integer or out of the range of its
    `process_md_t` field, an unreadable time, a `token_sid` that is not a SID, a command line
    longer than a UNICODE_STRING holds.

    Column-wise: typed columns are checked with array operations, text and mixed columns once
    per distinct value."""
    import numpy as np
    import pandas as pd

    from .columns import per_value
    n = len(frame)
    found: list[tuple[np.ndarray, np.ndarray]] = []       # (row positions, reasons), in check order

    def bad(mask, why) -> None:
        mask = np.asarray(mask, bool)
        if mask.any():
            idx = np.flatnonzero(mask)
            found.append((idx, np.full(len(idx), why, object) if isinstance(why, str)
                          else np.asarray(why, object)[idx]))

    work = frame.copy()
    for c in COLUMNS:
        if c not in work.columns:
            work[c] = pd.array([pd.NA] * n, dtype=DTYPES.get(c, "string")) if n else pd.NA
    # operation
    op = work["operation"].astype("string").str.strip().str.lower()
    op_missing = op.isna().to_numpy(bool)
    bad(op_missing, "operation is missing")
    unknown = ~op_missing & ~op.isin(["create", "delete"]).fillna(False).to_numpy(bool)
    if unknown.any():
        bad(unknown, np.array([f"operation {v!r} is not 'create' or 'delete'" if u else None
                               for v, u in zip(op.astype(object), unknown)], object))
    work["operation"] = op
    # integers
    pid_failed = np.zeros(n, bool)
    for c in INT_COLUMNS:
        if c not in work.columns:
            continue
        lo, hi = _INT_RANGES.get(c, (-(1 << 63), (1 << 63) - 1))
        col = work[c]
        if pd.api.types.is_integer_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            vals = col.astype("Int64")
            out = ((vals < lo) | (vals > hi)).fillna(False).to_numpy(bool)
            if out.any():
                bad(out, np.array([f"{c} {v} is out of range [{lo}, {hi}]" if o else None
                                   for v, o in zip(vals.astype(object), out)], object))
                vals = vals.mask(out)
            errs_any = out
        else:
            res, errs = per_value(col, int_checker(c, lo, hi))
            errs_any = ~np.equal(errs, None)
            bad(errs_any, errs)
            vals = pd.Series(pd.array(list(res), dtype="Int64"), index=col.index)
        if c == "exit_code":
            vals = vals.where(~(vals < 0).fillna(False), vals + U32)
        if c == "process_id":
            pid_failed = errs_any
        work[c] = vals.array
    bad(work["process_id"].isna().to_numpy(bool) & ~pid_failed, "process_id is missing")
    # time
    t = work["time"]
    if isinstance(t.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(t.dtype) or \
            pd.api.types.is_integer_dtype(t.dtype):
        times = _to_utc(t)
        bad(times.isna().to_numpy(bool), "time is missing")
    else:
        def one_time(v):
            try:
                ns = _time_value(v)
            except (TypeError, ValueError, OverflowError) as exc:
                return None, f"time {v!r} is unreadable ({exc})"
            return ns, (None if ns is not None else "time is missing")
        res, errs = per_value(t, one_time)
        bad(~np.equal(errs, None), errs)
        times = pd.Series(pd.to_datetime(pd.array(list(res), dtype="Int64"), unit="ns", utc=True),
                          index=work.index)
    work["time"] = times.array
    # text that cannot be stored (a lone UTF-16 surrogate, from a JSON escape) is named, and
    # blanked so the string conversions below never meet it
    for c in [c for c in STRING_COLUMNS if c in work.columns]:
        if work[c].dtype == object:
            errs = surrogate_problems(work[c].to_numpy(object), c)
            if errs is not None:
                bad(~np.equal(errs, None), errs)
                work[c] = work[c].where(np.equal(errs, None), None)
    # SIDs (checked once per distinct value) and command lines
    _, errs = per_value(work["token_sid"].astype("string"), lambda v: (None, sid_problem(v)))
    bad(~np.equal(errs, None), errs)
    lengths = work["command_line"].astype("string").str.len()
    long = (lengths > MAX_COMMAND_LINE_CHARS).fillna(False).to_numpy(bool)
    if long.any():
        bad(long, np.array([command_line_problem(k) if x else None
                            for k, x in zip(lengths.astype(object), long)], object))
    reasons: dict[int, list[str]] = {}
    for idx, whys in found:
        for i, w in zip(idx.tolist(), whys.tolist()):
            reasons.setdefault(i, []).append(w)
    keep = np.ones(n, bool)
    keep[list(reasons)] = False
    clean = as_schema(work[keep])
    rejected = frame.loc[~keep].copy()
    order = sorted(reasons)
    rejected.insert(0, "reason", ["; ".join(reasons[i]) for i in order])
    rejected.insert(0, "row", list(rejected.index))
    return clean, rejected.reset_index(drop=True)


def sid_problem(v) -> str | None:
    """Why `v` is not a token SID the hook can carry (None: fine, or missing)."""
    if v is None or v == "":
        return None
    try:
        raw = sid_to_bytes(v)
    except EventError as exc:
        return str(exc)
    return None if len(raw) <= 68 else f"token_sid {v!r} is longer than 68 bytes"


def command_line_problem(length: int) -> str | None:
    if length <= MAX_COMMAND_LINE_CHARS:
        return None
    return (f"command_line is {length} characters, more than a UNICODE_STRING holds "
            f"({MAX_COMMAND_LINE_CHARS})")


def surrogate_problems(values, column: str):
    """None when every string in `values` can be stored as text; else the reason per row
    (None where fine) for strings holding a lone UTF-16 surrogate (a JSON `\\udc80` escape
    decodes to one; no UTF-8 or UTF-16 text can hold it)."""
    import numpy as np
    import pyarrow as pa
    try:
        pa.array(values, type=pa.large_string(), from_pandas=True)
        return None
    except (UnicodeEncodeError, pa.ArrowException, TypeError, ValueError):
        pass
    out = np.full(len(values), None, object)
    for i, v in enumerate(values):
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                out[i] = (f"{column}: lone surrogate U+{ord(v[exc.start]):04X} at character "
                          f"{exc.start} cannot be encoded as text")
    return out if any(e is not None for e in out) else None


def columns_frame(cols: dict, n: int):
    """A schema-form frame (`COLUMNS` + `EXTRA_COLUMNS`, in that order) built once from plain
    columns: `time` int64 UTC ns, integer columns object arrays of ints or None, text columns
    object arrays of str or None (or Arrow string arrays), `creator_inferred` bool. Missing
    columns are all null."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    out = {}
    tz = pd.DatetimeTZDtype("ns", "UTC")
    for c in COLUMNS + EXTRA_COLUMNS:
        v = cols.get(c)
        dtype = DTYPES[c]
        if c == "time":
            out[c] = pd.arrays.DatetimeArray._simple_new(
                np.asarray(v, np.int64).view("M8[ns]"), dtype=tz)
        elif dtype == "Int64":
            if v is None:
                out[c] = pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))
            elif v.dtype != object:
                out[c] = pd.arrays.IntegerArray(v.astype(np.int64), np.zeros(n, bool))
            else:
                mask = np.equal(v, None)
                vals = v.copy()
                vals[mask] = 0
                out[c] = pd.arrays.IntegerArray(vals.astype(np.int64), mask)
        elif dtype == "boolean":
            if v is None:
                out[c] = pd.arrays.BooleanArray(np.zeros(n, bool), np.ones(n, bool))
            else:
                out[c] = pd.arrays.BooleanArray(np.asarray(v, bool), np.zeros(n, bool))
        else:
            arr = pa.nulls(n, pa.large_string()) if v is None else v \
                if isinstance(v, pa.Array) else pa.array(v, type=pa.large_string(), from_pandas=True)
            out[c] = pd.arrays.ArrowStringArray(arr)
    return pd.DataFrame(out, copy=False)


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt.lower()
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise TraceFormatError(f"{path}: unknown trace format {suffix!r} (use .parquet, .csv or .jsonl)")


def write_trace(frame, path: str | Path, format: str | None = None) -> Path:
    """Write a trace frame (schema form) as Parquet, CSV or JSONL, chosen by suffix or `format`.
    CSV/JSONL write `time` as integer UTC nanoseconds (lossless); missing values are empty/null."""
    import pandas as pd
    path = Path(path)
    fmt = _format_of(path, format)
    frame = as_schema(frame)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
        return path
    flat = frame.copy()
    ns = pd.array(flat["time"].array.asi8, dtype="Int64")
    ns[flat["time"].isna().to_numpy()] = pd.NA
    flat["time"] = ns
    if fmt == "csv":
        flat.to_csv(path, index=False)
    elif fmt == "jsonl":
        with path.open("w", encoding="utf-8") as f:
            for rec in flat.to_dict("records"):
                f.write(json.dumps({k: (None if v is pd.NA or v is None else
                                        (bool(v) if isinstance(v, (bool,)) or type(v).__name__ == "bool_"
                                         else v)) for k, v in rec.items()},
                                   default=_json_default, ensure_ascii=False) + "\n")
    else:
        raise TraceFormatError(f"{path}: unknown trace format {fmt!r}")
    return path


def _json_default(v):
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def read_trace(path: str | Path, format: str | None = None, validate_rows: bool = True,
               lazy: bool = False):
    """A trace file, or a dataset directory (`ntoslab.trace.dataset`: Parquet partitioned by
    host and day), as a schema-form frame. With `validate_rows` (the default) returns
    `(clean, rejected)` as `validate` does; otherwise the frame converted by `as_schema`.
    `lazy` (datasets only): a Dask DataFrame, one partition per host, nothing read yet."""
    import pandas as pd
    path = Path(path)
    if not path.exists():
        raise TraceFormatError(f"{path}: no such file")
    if path.is_dir():
        from .dataset import is_dataset, read_dataset
        if not is_dataset(path):
            raise TraceFormatError(f"{path}: a directory without host=... partitions is not a "
                                   f"trace dataset (import its files with ntoslab import)")
        if lazy:
            return read_dataset(path, lazy=True)
        frame = read_dataset(path)
        return validate(frame) if validate_rows else frame
    if lazy:
        raise TraceFormatError(f"{path}: lazy reading is for dataset directories "
                               f"(ntoslab import FILES -o DATASET/)")
    fmt = _format_of(path, format)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        elif fmt == "csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        else:   # json, not pd.read_json: a column with nulls would become float64 and round
            with path.open(encoding="utf-8-sig") as f:   # FILETIMEs (> 2**53)
                objs = [json.loads(line) for line in f if line.strip()]
            frame = pd.DataFrame(objs, dtype=object)
    except Exception as exc:
        raise TraceFormatError(f"{path}: cannot read as {fmt}: {exc}") from None
    if "creator_inferred" in frame.columns and \
            not pd.api.types.is_bool_dtype(frame["creator_inferred"].dtype):
        frame["creator_inferred"] = frame["creator_inferred"].map(
            lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))
            else v if isinstance(v, bool) else str(v).strip().lower() in ("true", "1"))
    if validate_rows:
        return validate(frame)
    return as_schema(frame)
