"""Windows event records from EVTX files, Mordor/OTRF JSON lines and `.zip` archives of either.

Every record becomes one flat dict: the event's own fields (`EventData` for EVTX, the top-level
keys for Mordor) plus these, named with a leading underscore so they never collide:

- `_file`: the file (`archive.zip!member` inside archives), `_record`: the record's
  `EventRecordID` (EVTX `System/EventRecordID`, Mordor `RecordNumber`; the id Event Viewer and
  SIEMs show), `_number`: where it is in the file (the EVTX parser's record number, or the
  1-based JSON line number);
- `_provider` (e.g. `Microsoft-Windows-Sysmon`), `_event_id` (int or None), `_host`;
- `_logged`: the log's own clock as text (EVTX `System/TimeCreated/@SystemTime` with 100-ns
  digits; Mordor `@timestamp`, else `TimeCreated`) and `_logged_field`, which field that was;
- `_error`: set (and nothing else but `_file`/`_record`/`_number`) when a record or line cannot
  be read.

EVTX files are read with the `evtx` package (Rust), which walks every chunk in the file rather
than trusting the header's chunk count: files copied from a live log have a dirty header that
says 1 chunk where there are 17. Its JSON is decoded with orjson, and a record's `EventData`
dict is used as the flat record itself (no copy); zip members are read whole.

>>> for rec in iter_records("Security.evtx"):       # doctest: +SKIP
...     rec["_event_id"], rec.get("NewProcessId")
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any, Iterator

EVTX_MAGIC = b"ElfFile\x00"
ZIP_MAGIC = b"PK\x03\x04"


class SourceError(ValueError):
    """A file that cannot be read as an event log at all."""


EVTX_THREADS = 1      # the parser's own threads: one is fastest on a shared 2-core machine


def _evtx_records(data, name: str) -> Iterator[dict[str, Any]]:
    import evtx
    import orjson

    try:
        parser = evtx.PyEvtxParser(data, number_of_threads=EVTX_THREADS)
        records = parser.records_json()
    except Exception as exc:  # the parser raises RuntimeError/OSError on a non-EVTX file
        raise SourceError(f"{name}: cannot read as EVTX: {exc}") from None
    loads = orjson.loads
    while True:
        try:
            r = next(records)
        except StopIteration:
            return
        except Exception as exc:  # a damaged record: evtx-rs reports it and goes on
            yield {"_file": name, "_record": None, "_error": f"EVTX record unreadable: {exc}"}
            continue
        try:
            event = loads(r["data"])["Event"]
        except (ValueError, KeyError, TypeError) as exc:
            yield {"_file": name, "_record": r.get("event_record_id"),
                   "_error": f"EVTX record is not an Event ({exc})"}
            continue
        yield flatten_evtx(event, name, r.get("event_record_id"), r.get("timestamp"))


def flatten_evtx(event: dict, name: str, number: int | None, timestamp: str | None = None
                 ) -> dict[str, Any]:
    """One evtx-rs JSON `Event` as a flat record (see the module docstring); the `EventData`
    dict is reused, not copied."""
    system = event.get("System") or {}
    provider = ((system.get("Provider") or {}).get("#attributes") or {}).get("Name")
    eid = system.get("EventID")
    if isinstance(eid, dict):
        eid = eid.get("#text")
    if not isinstance(eid, int) or isinstance(eid, bool):
        try:
            eid = int(eid) if eid is not None else None
        except (TypeError, ValueError):
            eid = None
    # the record's time as the parser reports it (100-ns digits; the JSON SystemTime has 6)
    logged = timestamp.replace(" UTC", "") if timestamp else \
        ((system.get("TimeCreated") or {}).get("#attributes") or {}).get("SystemTime")
    data = event.get("EventData")
    out: dict[str, Any] = data if isinstance(data, dict) else {}
    rid = system.get("EventRecordID")
    out.update(_file=name, _record=rid if rid is not None else number, _number=number,
               _provider=provider, _event_id=eid, _host=system.get("Computer"), _logged=logged,
               _logged_field="SystemTime", _channel=system.get("Channel"))
    return out


def _json_records(lines, name: str) -> Iterator[dict[str, Any]]:
    import orjson
    loads = orjson.loads
    error = orjson.JSONDecodeError
    for n, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            obj = loads(line)
        except error as exc:
            if not line.strip():
                continue
            yield {"_file": name, "_record": None, "_number": n,
                   "_error": f"not valid JSON ({_json_reason(line, exc)})"}
            continue
        if type(obj) is not dict:
            yield {"_file": name, "_record": None, "_number": n,
                   "_error": f"a JSON {_json_type(obj)}, expected an object"}
            continue
        yield flatten_mordor(obj, name, n)


def _json_reason(line, exc) -> str:
    """The standard library's wording of why a line is not JSON (stable across parsers)."""
    import json
    try:
        json.loads(line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line)
    except json.JSONDecodeError as std:
        return std.msg
    except Exception:
        pass
    return str(exc).split(":", 1)[0]


def _json_type(obj) -> str:
    return {list: "list", str: "str", int: "int", float: "float", bool: "bool"}.get(
        type(obj), type(obj).__name__) if obj is not None else "NoneType"


def flatten_mordor(obj: dict, name: str, line: int) -> dict[str, Any]:
    """One Mordor/OTRF JSON object as a flat record (the object itself, with the `_` keys
    added). Records already in the trace schema (they have `operation`) get `_trace_row` set
    and pass through untouched."""
    out = obj
    if "operation" in obj and "EventID" not in obj:
        out.update(_file=name, _record=line, _trace_row=True)
        return out
    eid = obj.get("EventID")
    if type(eid) is not int:
        try:
            eid = int(eid) if eid is not None and not isinstance(eid, bool) else None
        except (TypeError, ValueError):
            eid = None
    get = obj.get
    field = "@timestamp" if get("@timestamp") else "TimeCreated" if get("TimeCreated") \
        else "EventTime" if get("EventTime") else None
    rid = get("RecordNumber")
    if rid is None:
        rid = get("EventRecordID")
    out["_file"] = name
    out["_record"] = rid
    out["_number"] = line
    out["_provider"] = get("SourceName") or get("ProviderName")
    out["_event_id"] = eid
    out["_host"] = get("Hostname") or get("Computer") or get("host")
    out["_logged"] = out[field] if field else None
    out["_logged_field"] = field
    out["_channel"] = get("Channel")
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
        yield from _json_records(_lines(path.read_bytes()), str(path))
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
                yield from _json_records(_lines(archive.read(info)), name)
            else:
                yield {"_file": name, "_record": None, "_error": "a zip inside a zip (not read)"}


def _lines(data: bytes) -> list[bytes]:
    """The lines of a whole JSON-lines file (a UTF-8 byte-order mark dropped)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.split(b"\n")


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
