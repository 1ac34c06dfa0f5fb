"""The trace schema (one row per process create/delete) and reading events from files.

JSONL, CSV and Parquet in the trace schema are accepted; FILETIME fields and `time` also take
ISO-8601 strings. A bad row is reported with its line (or row) number and field, and reading
goes on: nothing after it is silently dropped.

>>> events, errors = read_events("data/scenario.jsonl")    # doctest: +SKIP
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..hooks.process import EventError, ProcessEvent

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
