"""Windows event records from EVTX files, Mordor/OTRF JSON lines and `.zip` archives of either.

Every record becomes one flat dict: the event's own fields (`EventData` for EVTX, the top-level
keys for Mordor) plus these, named with a leading underscore so they never collide:

- `_file`: the file (`archive.zip!member` inside archives), `_record`: the EVTX EventRecordID or
  the 1-based JSON line number;
- `_provider` (e.g. `Microsoft-Windows-Sysmon`), `_event_id` (int or None), `_host`;
- `_logged`: the log's own clock as text (EVTX `System/TimeCreated/@SystemTime` with 100-ns
  digits; Mordor `@timestamp`, else `TimeCreated`) and `_logged_field`, which field that was;
- `_error`: set (and nothing else but `_file`/`_record`) when a line is not a JSON object.

EVTX files are read with the `evtx` package (Rust), which walks every chunk in the file rather
than trusting the header's chunk count: files copied from a live log have a dirty header that
says 1 chunk where there are 17.

>>> for rec in iter_records("Security.evtx"):       # doctest: +SKIP
...     rec["_event_id"], rec.get("NewProcessId")
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, Iterator

EVTX_MAGIC = b"ElfFile\x00"
ZIP_MAGIC = b"PK\x03\x04"


class SourceError(ValueError):
    """A file that cannot be read as an event log at all."""


def _evtx_records(data, name: str) -> Iterator[dict[str, Any]]:
    import evtx

    try:
        parser = evtx.PyEvtxParser(data)
        records = parser.records_json()
    except Exception as exc:  # the parser raises RuntimeError/OSError on a non-EVTX file
        raise SourceError(f"{name}: cannot read as EVTX: {exc}") from None
    while True:
        try:
            r = next(records)
        except StopIteration:
            return
        except Exception as exc:  # a damaged record: evtx-rs reports it and goes on
            yield {"_file": name, "_record": None, "_error": f"EVTX record unreadable: {exc}"}
            continue
        try:
            event = json.loads(r["data"])["Event"]
        except (ValueError, KeyError, TypeError) as exc:
            yield {"_file": name, "_record": r.get("event_record_id"),
                   "_error": f"EVTX record is not an Event ({exc})"}
            continue
        yield flatten_evtx(event, name, r.get("event_record_id"), r.get("timestamp"))


def flatten_evtx(event: dict, name: str, record_id: int | None, timestamp: str | None = None
                 ) -> dict[str, Any]:
    """One evtx-rs JSON `Event` as a flat record (see the module docstring)."""
    system = event.get("System") or {}
    provider = ((system.get("Provider") or {}).get("#attributes") or {}).get("Name")
    eid = system.get("EventID")
    if isinstance(eid, dict):
        eid = eid.get("#text")
    try:
        eid = int(eid) if eid is not None else None
    except (TypeError, ValueError):
        eid = None
    logged = timestamp.replace(" UTC", "") if timestamp else \
        ((system.get("TimeCreated") or {}).get("#attributes") or {}).get("SystemTime")
    out: dict[str, Any] = {}
    data = event.get("EventData")
    if isinstance(data, dict):
        for k, v in data.items():
            if not k.startswith("#"):
                out[k] = v
    out.update(_file=name, _record=record_id if record_id is not None else system.get("EventRecordID"),
               _provider=provider, _event_id=eid, _host=system.get("Computer"), _logged=logged,
               _logged_field="SystemTime", _channel=system.get("Channel"))
    return out


def _json_records(lines, name: str) -> Iterator[dict[str, Any]]:
    for n, raw in enumerate(lines, 1):
        line = raw.decode("utf-8-sig", errors="replace") if isinstance(raw, bytes) else raw
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield {"_file": name, "_record": n, "_error": f"not valid JSON ({exc.msg})"}
            continue
        if not isinstance(obj, dict):
            yield {"_file": name, "_record": n,
                   "_error": f"a JSON {type(obj).__name__}, expected an object"}
            continue
        yield flatten_mordor(obj, name, n)


def flatten_mordor(obj: dict, name: str, line: int) -> dict[str, Any]:
    """One Mordor/OTRF JSON object as a flat record. Records already in the trace schema (they
    have `operation`) get `_trace_row` set and pass through untouched."""
    out = dict(obj)
    if "operation" in obj and "EventID" not in obj:
        out.update(_file=name, _record=line, _trace_row=True)
        return out
    eid = obj.get("EventID")
    try:
        eid = int(eid) if eid is not None else None
    except (TypeError, ValueError):
        eid = None
    field = "@timestamp" if obj.get("@timestamp") else "TimeCreated" if obj.get("TimeCreated") \
        else "EventTime" if obj.get("EventTime") else None
    out.update(_file=name, _record=line, _provider=obj.get("SourceName") or obj.get("ProviderName"),
               _event_id=eid, _host=obj.get("Hostname") or obj.get("Computer") or obj.get("host"),
               _logged=obj.get(field) if field else None, _logged_field=field,
               _channel=obj.get("Channel"))
    return out


def _kind(head: bytes, name: str) -> str:
    if head.startswith(EVTX_MAGIC):
        return "evtx"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    suffix = Path(name).suffix.lower()
    if suffix in (".json", ".jsonl", ".ndjson", ".log", ".txt"):
        return "json"
    if suffix == ".evtx":
        return "evtx"
    if head.lstrip()[:1] == b"{":
        return "json"
    raise SourceError(f"{name}: neither EVTX, a zip archive nor JSON lines")


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every event record of an EVTX file, a JSON-lines file, or every such member of a zip
    (members that are neither are reported as one `_error` record each, not skipped silently)."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    with path.open("rb") as f:
        head = f.read(8)
    kind = _kind(head, path.name)
    if kind == "evtx":
        yield from _evtx_records(str(path), str(path))
    elif kind == "json":
        with path.open("rb") as f:
            yield from _json_records(f, str(path))
    else:
        yield from _zip_records(path)


def _zip_records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{path}: not a readable zip archive ({exc})") from None
    with archive:
        for info in archive.infolist():
            if info.is_dir() or "__MACOSX" in info.filename:
                continue
            name = f"{path}!{info.filename}"
            with archive.open(info) as member:
                head = member.read(8)
            try:
                kind = _kind(head, info.filename)
            except SourceError as exc:
                yield {"_file": name, "_record": None, "_error": str(exc).split(": ", 1)[-1]}
                continue
            if kind == "evtx":
                yield from _evtx_records(io.BytesIO(archive.read(info)), name)
            elif kind == "json":
                with archive.open(info) as member:
                    yield from _json_records(member, name)
            else:
                yield {"_file": name, "_record": None, "_error": "a zip inside a zip (not read)"}


def input_size(path: str | Path) -> int:
    """Bytes of event data a file holds (uncompressed size for archives); for progress bars."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return sum(i.file_size for i in z.infolist())
        return path.stat().st_size
    except OSError:
        return 0
