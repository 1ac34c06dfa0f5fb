"""EVTX records sorted a batch at a time, column-wise: the fast path of `Intake.evtx`.

The parser hands each record over as JSON text. One at a time, each would be decoded into
dicts (orjson) and filed by `Intake.sort`; here a batch of texts is filed at once with the
same result:

1. the raw-text prefilter (`intake.evtx_prefilter`) runs over the batch with Arrow's string
   kernels: records that cannot be process events nor Sysmon clock samples are counted;
2. the rest are split by the provider their text names: Sysmon records are read by Arrow's
   JSON reader with the Sysmon schema (the System fields `Intake` reads and the EventData
   fields of `sysmon.py`, typed as evtx-rs writes them), Security records with the Security
   schema. The reader is strict: a value of another type than the schema's, a duplicate key,
   text that is not JSON, make it refuse the group, and then the group goes the per-record
   way (`Intake.evtx_record`) — what is decoded is always what orjson would decode;
3. each record is classified from its decoded provider, channel and event id exactly as
   `Intake.sort` does; Sysmon clock samples are taken; process records become a block of
   columns (Arrow text, numpy ints) beside the per-record tuples; a record whose decoded
   provider is not its group's, a record of neither group, and a record the parser could not
   read, go the per-record way in record order.

>>> filed = sort_batch(batch, "Sysmon.evtx", {"sysmon": fields, "security": ()},
...                    {"sysmon": True, "security": False})           # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SYSMON_PROVIDER = "Microsoft-Windows-Sysmon"
SECURITY_PROVIDER = "Microsoft-Windows-Security-Auditing"
BATCH_RECORDS = 16384      # ~26 MB of JSON: fewer, larger Arrow calls (4096: +10 ms a share)
INT_FIELDS = {"sysmon": ("ProcessId", "ParentProcessId"), "security": ()}
EIDS = {"sysmon": (1, 5), "security": (4688, 4689)}
PROCESS_EIDS = EIDS["sysmon"] + EIDS["security"]


@dataclass
class Batch:
    """Records as the parser gave them, in order: `seqs` their place in the file's count,
    `texts` their JSON (None for a record the parser could not read: `stamps` then holds the
    reason)."""

    seqs: list[int] = field(default_factory=list)
    numbers: list[Any] = field(default_factory=list)
    stamps: list[Any] = field(default_factory=list)
    texts: list[Any] = field(default_factory=list)
    unreadable: bool = False

    def __len__(self) -> int:
        return len(self.seqs)


def _schema(kind: str, values: tuple[str, ...]):
    import pyarrow as pa
    s = pa.string()
    attrs = lambda name: pa.struct([("#attributes", pa.struct([(name, s)]))])  # noqa: E731
    system = pa.struct([("Provider", attrs("Name")), ("EventID", pa.int64()),
                        ("EventRecordID", pa.int64()), ("Channel", s), ("Computer", s),
                        ("TimeCreated", attrs("SystemTime"))])
    data = pa.struct([(f, pa.int64() if f in INT_FIELDS[kind] else s) for f in values])
    return pa.schema([("Event", pa.struct([("System", system), ("EventData", data)]))])


_SCHEMAS: dict[tuple, Any] = {}


def schema(kind: str, values: tuple[str, ...]):
    """The Arrow schema a group of `kind` ('sysmon', 'security') records is read with: the
    System fields `Intake` reads, and `values` from EventData."""
    key = (kind, values)
    if key not in _SCHEMAS:
        _SCHEMAS[key] = _schema(kind, values)
    return _SCHEMAS[key]


def prefiltered(texts) -> np.ndarray:
    """`intake.evtx_prefilter` of every text of an Arrow string array (no nulls): True where
    the record is certainly not a process event and not a Sysmon record."""
    import pyarrow as pa
    import pyarrow.compute as pc
    if not len(texts):
        return np.zeros(0, bool)
    sysmon = pc.match_substring(texts, "Sysmon")
    # the first `"EventID":` (leftmost match: the digits after it may be none), then one char
    m = pc.extract_regex(texts, r'"EventID":(?P<d>[0-9]*)(?P<e>.?)')
    digits, end = m.field("d"), m.field("e")
    number = pc.utf8_ltrim(digits, "0")
    short = pc.less_equal(pc.utf8_length(number), 4)
    value = pc.cast(pc.if_else(pc.and_(short, pc.not_equal(number, "")), number, "0"),
                    pa.int64())
    process = pc.and_(short, pc.is_in(value, pa.array(PROCESS_EIDS, pa.int64())))
    plain = pc.and_(pc.not_equal(digits, ""), pc.is_in(end, pa.array([",", "}"])))
    other = pc.and_(plain, pc.invert(process))
    out = pc.and_(pc.invert(sysmon), other)
    return pc.fill_null(out, False).to_numpy(zero_copy_only=False)


def read_group(texts, kind: str, values: tuple[str, ...],
               threads: bool = True) -> tuple[dict, dict] | None:
    """The records of an Arrow string array read with `schema(kind, values)`: (System, EventData) as
    dicts of flat Arrow arrays, or None when the reader refuses any of them (the group then
    goes the per-record way). `threads`: let the reader use Arrow's threads (not while another
    process reads the other part of the file: two pools on two cores only slow both)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj
    lines = pc.binary_join_element_wise(texts, "\n", "")
    offsets, data = lines.buffers()[1:3]         # the texts' bytes, one line each
    first = int(np.frombuffer(offsets, np.int32, 1, lines.offset * 4)[0])
    last = int(np.frombuffer(offsets, np.int32, 1, (lines.offset + len(lines)) * 4)[0])
    blob = data[first:last]
    try:
        table = pj.read_json(
            pa.BufferReader(blob),
            read_options=pj.ReadOptions(use_threads=threads, block_size=4 << 20),
            parse_options=pj.ParseOptions(explicit_schema=schema(kind, values),
                                          unexpected_field_behavior="ignore"))
    except (pa.ArrowException, OSError, ValueError):
        return None
    if table.num_rows != len(texts):
        return None
    event = table.column("Event").combine_chunks()
    if event.null_count:
        return None                 # `Event` null or missing: the per-record way says why
    system, data_ = event.flatten()
    sysf = dict(zip(("provider", "eid", "rid", "channel", "computer", "created"),
                    system.flatten()))
    sysf["provider"] = sysf["provider"].flatten()[0].flatten()[0]
    sysf["created"] = sysf["created"].flatten()[0].flatten()[0]
    names = [f.name for f in data_.type]
    return sysf, dict(zip(names, data_.flatten()))


def _mask(a) -> np.ndarray:
    import pyarrow.compute as pc
    return pc.fill_null(a, False).to_numpy(zero_copy_only=False)


def _truthy(a):
    """Non-null and not empty (an Arrow string array), as Arrow booleans."""
    import pyarrow.compute as pc
    return pc.fill_null(pc.not_equal(a, ""), False)


@dataclass
class Filed:
    """What a batch's records came to: `not_process` and `excluded` (per kind) counts, the
    Sysmon clock samples (UtcTime, log clock: Arrow text), per kind the process records as
    blocks of columns (`_seq`... as `intake.META`, then the kind's values), and the places of
    the records to file one by one (in order)."""

    not_process: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    clocks: list[tuple[Any, Any]] = field(default_factory=list)
    blocks: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"sysmon": [], "security": []})
    one_by_one: list[int] = field(default_factory=list)


def sort_batch(batch: Batch, name: str, values: dict[str, tuple[str, ...]],
               want: dict[str, bool], threads: bool = True) -> Filed:
    """File a batch of the EVTX file `name`'s records as `Intake.sort` would, one by one:
    `values` the EventData fields kept per kind, `want` which kinds are imported, `threads`
    as for `read_group`."""
    import pyarrow as pa
    import pyarrow.compute as pc
    n = len(batch)
    out = Filed()
    if not n:
        return out
    readable = np.fromiter((t is not None for t in batch.texts), bool, n) if batch.unreadable \
        else np.ones(n, bool)
    at = np.flatnonzero(readable)
    texts = pa.array([batch.texts[i] for i in at.tolist()] if batch.unreadable else batch.texts,
                     pa.string())
    # a text naming the Sysmon provider is read as Sysmon; of the others, those the prefilter
    # passes and that name Security at all as Security; the rest one by one
    sysmon_text = _mask(pc.match_substring(texts, SYSMON_PROVIDER))
    rest = np.flatnonzero(~sysmon_text)
    skip = np.zeros(len(texts), bool)
    security_text = np.zeros(len(texts), bool)
    if len(rest):
        others = texts.take(pa.array(rest)) if len(rest) < len(texts) else texts
        skip[rest] = prefiltered(others)
        left = rest[~skip[rest]]
        if len(left):
            security_text[left] = _mask(pc.match_substring(texts.take(pa.array(left)),
                                                           "Security"))
    out.not_process = int(skip.sum())
    one_by_one = ~readable
    one_by_one[at[~skip & ~sysmon_text & ~security_text]] = True
    for kind, in_group in (("sysmon", sysmon_text), ("security", security_text)):
        if not in_group.any():
            continue
        rows = at[in_group]
        group = texts if in_group.all() else texts.filter(pa.array(in_group))
        got = read_group(group, kind, values[kind], threads)
        if got is None:
            one_by_one[rows] = True
            continue
        system, data = got
        _file_group(out, name, batch, kind, rows, system, data, values[kind], want[kind],
                    one_by_one)
    out.one_by_one = np.flatnonzero(one_by_one).tolist()
    return out


def _file_group(out: Filed, name: str, batch: Batch, kind: str, rows: np.ndarray,
                system: dict, data: dict, values: tuple[str, ...], wanted: bool,
                one_by_one: np.ndarray) -> None:
    """Classify one group's decoded records (`rows`: their places in the batch) as
    `Intake.sort` does, into `out`; marks in `one_by_one` those classified as the other
    kind (their fields were not read)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    provider, channel, eid = system["provider"], system["channel"], system["eid"]
    is_sysmon = pc.fill_null(pc.or_kleene(pc.equal(provider, SYSMON_PROVIDER),
                                    pc.starts_with(channel, SYSMON_PROVIDER)), False)
    is_security = pc.and_(pc.invert(is_sysmon), pc.fill_null(
        pc.or_kleene(pc.equal(provider, SECURITY_PROVIDER), pc.equal(channel, "Security")),
        False))
    mine, other = (is_sysmon, is_security) if kind == "sysmon" else (is_security, is_sysmon)
    mine, other = _mask(mine), _mask(other)
    one_by_one[rows[other]] = True
    stamps = pa.array([batch.stamps[i] for i in rows.tolist()], pa.string())
    logged = pc.if_else(_truthy(stamps), pc.replace_substring(stamps, " UTC", ""),
                        system["created"])
    if kind == "sysmon":
        sample = mine & _mask(pc.and_(_truthy(data["UtcTime"]), _truthy(logged)))
        if sample.any():
            keep = pa.array(sample)
            out.clocks.append((data["UtcTime"].filter(keep), logged.filter(keep)))
    process = _mask(pc.is_in(eid, pa.array(EIDS[kind], pa.int64())))
    kept = mine & process
    out.not_process += int((mine & ~process).sum()) + int((~mine & ~other).sum())
    if not kept.any():
        return
    if not wanted:
        out.excluded[kind] = out.excluded.get(kind, 0) + int(kept.sum())
        return
    keep = pa.array(kept)
    numbers = [batch.numbers[i] for i in rows[kept].tolist()]
    try:
        number = pa.array(numbers, pa.int64())
    except (pa.ArrowException, OverflowError, TypeError):
        one_by_one[rows[kept]] = True
        return
    rid = pc.coalesce(system["rid"].filter(keep), number)
    k = len(number)
    block: dict[str, Any] = {
        "_seq": np.asarray(batch.seqs, np.int64)[rows[kept]],
        "_file": np.full(k, name, object),
        "_record": rid.to_numpy(zero_copy_only=False).astype(object),
        "_number": np.fromiter(numbers, object, k),
        "_host": system["computer"].filter(keep),
        "_event_id": eid.filter(keep).to_numpy(zero_copy_only=False).astype(object),
        "_logged": logged.filter(keep),
    }
    for f in values:
        block[f] = data[f].filter(keep)
    out.blocks[kind].append(block)
