"""One input log file read into its process records, sorted as they are read.

The importer's hot loop: every record of an EVTX file, a Mordor/OTRF JSON-lines file or the
members of a `.zip` is decoded once and sorted on the spot — a Sysmon EID 1/5 or Security
4688/4689 record is kept with where it came from, any other record is counted as *skipped*
with its reason, a record that cannot be read is *rejected* with its reason, and Sysmon
records of every event id give the two-clock samples of `clock.py`. No flat per-record dict
is kept: a kept record is the values its converter (`sysmon.py`, `security.py`) reads, and the
converters take them column-wise.

EVTX records are filed a batch at a time (`evtx_arrow.py`): the batch's JSON texts are
prefiltered, decoded by Arrow's JSON reader and classified column-wise, process records kept
as blocks of columns; what the batch reader cannot take (a group Arrow refuses, a record of
neither provider, a record the parser could not read) is filed one by one, in record order,
by `evtx_record` (orjson and `sort`, which JSON lines use too) — the same result either way
(`FAST_EVTX = False` files every record one by one: the tests' oracle). A record that cannot
be a process event is recognised from the parser's raw JSON text without decoding it
(`evtx_prefilter`): its first `"EventID":` (the System one) is not 1, 5, 4688 or 4689 and the
text does not contain `Sysmon` (a Sysmon record would feed the clock check). After an EVTX
file is read, its header and chunk headers are compared with the records parsed
(`evtx_layout.unread_parts`): a truncated file, or chunks the parser could not read, are
reported with the record numbers the headers promised.

>>> intake = read_log(Path("Sysmon.evtx"), "all")                   # doctest: +SKIP
>>> intake.count, len(intake.sysmon), intake.skipped                 # doctest: +SKIP
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

from .evtx_arrow import BATCH_RECORDS, EIDS, SECURITY_PROVIDER, SYSMON_PROVIDER, Batch, sort_batch
from .evtx_layout import Unread, unread_parts
from .readers import EVTX_THREADS, SourceError, _json_reason, _json_type, _lines, kind_of
from .security import RAW_FIELDS as SECURITY_FIELDS
from .sysmon import RAW_FIELDS as SYSMON_FIELDS

NOT_PROCESS = "not a process create/exit (other event ids and providers)"
PROCESS_EIDS = frozenset(EIDS["sysmon"] + EIDS["security"])
FAST_EVTX = True       # EVTX records filed a batch at a time (False: one by one, the oracle)
SMALL_BATCH = 64       # fewer records than this (a small file's): one by one costs less

# A kept record: where it came from (META), then its values of the converter's fields
META = ("_seq", "_file", "_record", "_number", "_host", "_event_id", "_logged")
SYSMON_VALUES = tuple(f for f in SYSMON_FIELDS if f not in META)
SECURITY_VALUES = tuple(f for f in SECURITY_FIELDS if f not in META)


class Intake:
    """The sorted records of one input file (all its members)."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        self.want_sysmon = source in ("all", "sysmon")
        self.want_security = source in ("all", "security")
        self.count = 0
        self.skipped: Counter = Counter()
        self.rejected: list[dict[str, Any]] = []       # file, record_id, record_number, reason
        self.sysmon: list[tuple] = []      # META values, then SYSMON_VALUES
        self.security: list[tuple] = []    # META values, then SECURITY_VALUES
        # the same, filed a batch at a time (evtx_arrow): blocks of columns per kind
        self.blocks: dict[str, list[dict[str, Any]]] = {"sysmon": [], "security": []}
        # member -> (UtcTime, log clock, field): texts, or Arrow arrays of them (evtx_arrow)
        self.clocks: dict[str, tuple[list, list, Any]] = {}
        self.passthrough: list[dict[str, Any]] = []    # JSON lines already in the trace schema
        self.unread: list[Unread] = []
        self.parsed: list[int] = []    # record ids parsed, kept by evtx(layout=False)
        self.threads = True            # the JSON reader may use Arrow's threads

    # ------------------------------------------------------------------ one record, sorted
    def reject(self, file: str, record: Any, number: Any, reason: str) -> None:
        self.rejected.append({"file": file, "record_id": record, "record_number": number,
                              "event_id": None, "reason": reason})

    def sort(self, fields: dict, file: str, record: Any, number: Any, provider: Any, eid: Any,
             host: Any, logged: Any, logged_field: Any, channel: Any) -> None:
        """File one decoded record (its count already taken)."""
        if provider == SYSMON_PROVIDER or (type(channel) is str and
                                           channel.startswith(SYSMON_PROVIDER)):
            utc = fields.get("UtcTime")
            if utc and logged:
                c = self.clocks.get(file)
                if c is None:
                    c = self.clocks[file] = ([], [], logged_field)
                c[0].append(utc)
                c[1].append(logged)
            if eid != 1 and eid != 5:
                self.skipped[NOT_PROCESS] += 1
            elif self.want_sysmon:      # the values now, while the record is in the cache
                self.sysmon.append((self.count, file, record, number, host, eid, logged,
                                    *map(fields.get, SYSMON_VALUES)))
            else:
                self.skipped[f"sysmon event excluded by source={self.source}"] += 1
        elif provider == SECURITY_PROVIDER or channel == "Security":
            if eid != 4688 and eid != 4689:
                self.skipped[NOT_PROCESS] += 1
            elif self.want_security:
                self.security.append((self.count, file, record, number, host, eid, logged,
                                      *map(fields.get, SECURITY_VALUES)))
            else:
                self.skipped[f"security event excluded by source={self.source}"] += 1
        else:
            self.skipped[NOT_PROCESS] += 1

    # ------------------------------------------------------------------------------ EVTX
    def evtx(self, source, name: str, layout: bool = True) -> None:
        """Every record of one EVTX file (`source`: a path or a binary file object). `layout`:
        compare the headers with the records read (False for a share of a file's chunks: the
        caller compares the whole file with `parsed` of all shares). Records are taken from
        the parser a batch at a time (`islice`; an error the parser raises for a damaged
        record ends the take, keeps the records before it and is filed in its place) and
        filed a batch at a time (`evtx_arrow.sort_batch`; with `FAST_EVTX` off, one by one)."""
        import evtx

        try:
            parser = evtx.PyEvtxParser(source, number_of_threads=EVTX_THREADS)
            records = parser.records_json()
        except Exception as exc:  # the parser raises RuntimeError/OSError on a non-EVTX file
            raise SourceError(f"{name}: cannot read as EVTX: {exc}") from None
        parsed: list[int] = []
        count = self.count
        had_not_process = NOT_PROCESS in self.skipped
        data, number, more = itemgetter("data"), itemgetter("event_record_id"), True
        while more:                  # a batch of records at a time, taken in bulk
            batch = Batch()
            while more and len(batch) < BATCH_RECORDS:
                got: list[dict] = []
                want = BATCH_RECORDS - len(batch)
                try:
                    got.extend(islice(records, want))
                    failed = None
                except Exception as exc:  # a damaged record: evtx-rs reports it, goes on
                    failed = exc          # (`got` holds the records before it)
                batch.seqs.extend(range(count + 1, count + len(got) + 1))
                numbers = list(map(number, got))
                batch.numbers.extend(numbers)
                batch.stamps.extend([r.get("timestamp") for r in got])
                batch.texts.extend(map(data, got))
                count += len(got)
                parsed.extend(numbers)
                if failed is not None:
                    count += 1
                    batch.seqs.append(count)
                    batch.numbers.append(None)
                    batch.stamps.append(f"EVTX record unreadable: {failed}")
                    batch.texts.append(None)
                    batch.unreadable = True
                elif len(got) < want:
                    more = False
            self.evtx_batch(name, batch)
        self.count = count
        if not had_not_process and NOT_PROCESS in self.skipped:     # counted last, as a
            self.skipped[NOT_PROCESS] = self.skipped.pop(NOT_PROCESS)  # share merge does
        if not layout:
            self.parsed = parsed
            return
        self.check_layout(source, name, parsed)

    def evtx_batch(self, name: str, batch: Batch) -> None:
        """File a batch of EVTX records, in order."""
        if not len(batch):
            return
        if not FAST_EVTX or len(batch) < SMALL_BATCH:
            for i in range(len(batch)):
                self.evtx_text(name, batch, i)
            return
        filed = sort_batch(batch, name, {"sysmon": SYSMON_VALUES, "security": SECURITY_VALUES},
                           {"sysmon": self.want_sysmon, "security": self.want_security},
                           self.threads)
        if filed.not_process:
            self.skipped[NOT_PROCESS] += filed.not_process
        for kind, k in filed.excluded.items():
            self.skipped[f"{kind} event excluded by source={self.source}"] += k
        if filed.clocks:
            c = self.clocks.setdefault(name, ([], [], "SystemTime"))
            for utc, logged in filed.clocks:
                c[0].append(utc)
                c[1].append(logged)
        for kind, blocks in filed.blocks.items():
            self.blocks[kind].extend(blocks)
        for i in filed.one_by_one:
            self.evtx_text(name, batch, i)

    def evtx_text(self, name: str, batch: Batch, i: int) -> None:
        """File the batch's record `i` on its own (decoded with orjson)."""
        count, self.count = self.count, batch.seqs[i]
        try:
            text, number = batch.texts[i], batch.numbers[i]
            if text is None:
                self.reject(name, None, None, batch.stamps[i])
            elif evtx_prefilter(text):
                self.skipped[NOT_PROCESS] += 1
            else:
                self.evtx_record(name, number, batch.stamps[i], text)
        finally:
            self.count = count

    def evtx_record(self, name: str, number: Any, timestamp: Any, text: str) -> None:
        """File one EVTX record (its JSON `text`; `timestamp` the parser's) as record number
        `self.count`."""
        import orjson
        empty: dict = {}
        try:
            event = orjson.loads(text)["Event"]
            system = event.get("System") or empty
            provider = ((system.get("Provider") or empty).get("#attributes") or empty).get("Name")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.reject(name, number, None, f"EVTX record is not an Event ({exc})")
            return
        eid = system.get("EventID")
        if type(eid) is not int:
            eid = _evtx_eid(eid)
        logged = timestamp.replace(" UTC", "") if timestamp else \
            ((system.get("TimeCreated") or empty).get("#attributes") or empty).get("SystemTime")
        fields = event.get("EventData")
        if type(fields) is not dict:
            fields = empty
        rid = system.get("EventRecordID")
        self.sort(fields, name, rid if rid is not None else number, number, provider, eid,
                  system.get("Computer"), logged, "SystemTime", system.get("Channel"))

    def check_layout(self, source, name: str, parsed: list[int]) -> None:
        """Compare an EVTX file's headers (`source`: a path or a binary file object) with the
        record ids `parsed` from it; what they promise but was not read goes to `unread`."""
        try:
            if isinstance(source, (str, Path)):
                with open(source, "rb") as f:
                    self.unread.extend(unread_parts(f, name, parsed))
            else:
                source.seek(0)
                self.unread.extend(unread_parts(source, name, parsed))
        except OSError:
            pass

    # ------------------------------------------------------------------------ JSON lines
    def json_lines(self, data: bytes, name: str) -> None:
        import orjson
        loads = orjson.loads
        error = orjson.JSONDecodeError
        sort = self.sort
        for n, line in enumerate(_lines(data), 1):
            if not line:
                continue
            try:
                obj = loads(line)
            except error as exc:
                if not line.strip():
                    continue
                obj = _lenient_json(line)      # lone surrogates, NaN, > 64-bit numbers
                if obj is None:
                    self.count += 1
                    self.reject(name, None, n, f"not valid JSON ({_json_reason(line, exc)})")
                    continue
            self.count += 1
            if type(obj) is not dict:
                self.reject(name, None, n, f"a JSON {_json_type(obj)}, expected an object")
                continue
            get = obj.get
            if "operation" in obj and "EventID" not in obj:
                row = {k: v for k, v in obj.items() if not (type(k) is str and k.startswith("_"))}
                row.setdefault("file", name)
                row.setdefault("record_number", n)
                self.passthrough.append(row)
                continue
            eid = get("EventID")
            if type(eid) is not int:
                try:
                    eid = int(eid) if eid is not None and not isinstance(eid, bool) else None
                except (TypeError, ValueError, OverflowError):
                    eid = None
            field = "@timestamp" if get("@timestamp") else "TimeCreated" if get("TimeCreated") \
                else "EventTime" if get("EventTime") else None
            rid = get("RecordNumber")
            if rid is None:
                rid = get("EventRecordID")
            sort(obj, name, rid, n, get("SourceName") or get("ProviderName"), eid,
                 get("Hostname") or get("Computer") or get("host"), obj[field] if field else None,
                 field, get("Channel"))

    # ---------------------------------------------------------------------------- a file
    def read(self) -> None:
        path = self.path
        if not path.exists():
            raise SourceError(f"{path}: no such file")
        with path.open("rb") as f:
            head = f.read(8)
        kind = kind_of(head, path.name)
        if kind == "evtx":
            self.evtx(str(path), str(path))
        elif kind == "json":
            self.json_lines(path.read_bytes(), str(path))
        else:
            self.zip(path)

    def zip(self, path: Path) -> None:
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise SourceError(f"{path}: not a readable zip archive ({exc})") from None
        with archive:
            for info in archive.infolist():
                if info.is_dir() or "__MACOSX" in info.filename:
                    continue
                name = f"{path}!{info.filename}"
                data = archive.read(info)           # whole: one read per member
                try:
                    kind = kind_of(data[:8], info.filename)
                except SourceError as exc:
                    self.count += 1
                    self.reject(name, None, None, str(exc).split(": ", 1)[-1])
                    continue
                if kind == "evtx":
                    self.evtx(io.BytesIO(data), name)
                elif kind == "json":
                    self.json_lines(data, name)
                else:
                    self.count += 1
                    self.reject(name, None, None, "a zip inside a zip (not read)")


def read_log(path: Path, source: str = "all") -> Intake:
    """Read and sort every record of one log file (raises SourceError when the file as a
    whole cannot be read; what was read before stays in the returned intake's caller)."""
    intake = Intake(path, source)
    intake.read()
    return intake


def _evtx_eid(eid: Any) -> int | None:
    if isinstance(eid, dict):
        eid = eid.get("#text")
    if type(eid) is int:
        return eid
    try:
        return int(eid) if eid is not None and not isinstance(eid, bool) else None
    except (TypeError, ValueError, OverflowError):
        return None


_EID_KEY = '"EventID":'
_EID_NUMBER = re.compile(r"(\d+)[,}]")


def evtx_prefilter(text: str) -> bool:
    """True when the raw JSON of an EVTX record is certainly not a process event and not a
    Sysmon record: `Sysmon` occurs nowhere (both the Sysmon provider and its channel name
    contain it) and its first `"EventID":` key (the System element comes before the event's
    data, and a quoted key cannot occur inside a JSON string, whose quotes are escaped) is
    followed by a plain number that is not a process event id. False means: decode it."""
    return "Sysmon" not in text and _other_eid(text)


def _other_eid(text: str) -> bool:
    """The first `"EventID":` of a record's raw JSON is a plain number, not a process one."""
    i = text.find(_EID_KEY)
    if i < 0:
        return False
    m = _EID_NUMBER.match(text, i + len(_EID_KEY))
    return m is not None and int(m.group(1)) not in PROCESS_EIDS


def _lenient_json(line: bytes):
    """A line orjson refuses but the standard library reads (lone surrogates, NaN, numbers
    beyond 64 bits): the values then meet the converters' own checks. None if neither can."""
    try:
        return json.loads(line.decode("utf-8", errors="strict") if isinstance(line, bytes)
                          else line)
    except (ValueError, RecursionError):
        return None
