"""The batch-at-a-time EVTX path (`trace/evtx_arrow.py`) files every record as the
record-at-a-time path does (`FAST_EVTX` off: orjson and `Intake.sort`, the oracle): on every
real EVTX file, and on records built to make the Arrow reader refuse a group, to be classified
as the other kind, or to need the object path for their times."""
from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED
from hypothesis import given, settings
from hypothesis import strategies as st

from ntoslab.trace import import_logs, intake
from ntoslab.trace.columns import objects, times_ns
from ntoslab.trace.evtx_arrow import Batch, prefiltered
from ntoslab.trace.importer import _converted
from ntoslab.trace.intake import Intake, evtx_prefilter

REAL = sorted((SHARED / "datasets").rglob("*.evtx"))


def outcome(result) -> tuple:
    return ([(f.records, dict(f.imported), list(f.skipped.items()), dict(f.rejected),
              [astuple(s) for s in f.skew], f.unread) for f in result.files],
            result.summary())


@pytest.mark.skipif(not REAL, reason="../shared/datasets is not beside the checkout")
@pytest.mark.parametrize("source", ["all", "sysmon", "security"])
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_files_same_as_one_by_one(path, source, monkeypatch):
    monkeypatch.setattr(intake, "SMALL_BATCH", 0)      # a small file's batch too
    fast = import_logs([path], source=source, progress=False, workers=1)
    monkeypatch.setattr(intake, "FAST_EVTX", False)
    slow = import_logs([path], source=source, progress=False, workers=1)
    pd.testing.assert_frame_equal(fast.frame, slow.frame, check_exact=True)
    pd.testing.assert_frame_equal(fast.rejected, slow.rejected, check_exact=True)
    assert outcome(fast) == outcome(slow)


# ----------------------------------------------------------------------- built records
SYSMON = ('{"Event":{"System":{"Provider":{"#attributes":{"Name":"%(provider)s"}},'
          '"EventID":%(eid)s,"EventRecordID":%(rid)s,"Channel":%(channel)s,'
          '"Computer":"HOST","TimeCreated":{"#attributes":{"SystemTime":"2019-07-19T14:42:51.4Z"}}},'
          '"EventData":{"UtcTime":"%(utc)s","ProcessGuid":"{747F3D96-D6EB-5D31-0000-0010%(g)s}",'
          '"ProcessId":%(pid)s,"ParentProcessId":4,"Image":"C:\\\\x\\\\%(image)s",'
          '"CommandLine":"%(cmd)s","User":"NT AUTHORITY\\\\SYSTEM","LogonId":"0x3e7"}}}')
SECURITY = ('{"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Security-'
            'Auditing"}},"EventID":%(eid)s,"EventRecordID":%(rid)s,"Channel":"Security",'
            '"Computer":"HOST","TimeCreated":{"#attributes":{"SystemTime":"2019-07-19T14:42:52Z"}}},'
            '"EventData":{"NewProcessId":"0x%(pid)x","ProcessId":"0x4","NewProcessName":'
            '"C:\\\\x\\\\%(image)s","CommandLine":"%(cmd)s","Status":"0x0","SubjectUserSid":'
            '"S-1-5-18","SubjectLogonId":"0x3e7"}}}')


def sysmon(i: int, **kw) -> str:
    v = {"provider": "Microsoft-Windows-Sysmon", "eid": 1 if i % 2 else 5, "rid": 1000 + i,
         "channel": '"Microsoft-Windows-Sysmon/Operational"', "utc": "2019-07-19 14:42:51.257",
         "g": f"{i:08X}", "pid": 100 + i, "image": f"p{i}.exe", "cmd": f"p{i} -x"}
    v.update(kw)
    return SYSMON % v


def security(i: int, **kw) -> str:
    v = {"eid": 4688 if i % 2 else 4689, "rid": 5000 + i, "pid": 200 + i, "image": f"s{i}.exe",
         "cmd": f"s{i}"}
    v.update(kw)
    return SECURITY % v


def filed(texts: list, fast: bool, source: str = "all", monkeypatch=None) -> tuple:
    """What an intake makes of `texts` (None: a record the parser could not read) as one
    EVTX file's records: its converted rows, rejects, skip counts and clock samples."""
    monkeypatch.setattr(intake, "FAST_EVTX", fast)
    monkeypatch.setattr(intake, "SMALL_BATCH", 0)
    it = Intake(None, source)    # type: ignore[arg-type]
    batch = Batch()
    for i, t in enumerate(texts, 1):
        batch.seqs.append(i)
        batch.numbers.append(None if t is None else i)
        batch.stamps.append("EVTX record unreadable: bad" if t is None else
                            "2019-07-19T14:42:53.2955786Z UTC")
        batch.texts.append(t)
        batch.unreadable |= t is None
    if fast:
        it.evtx_batch("f.evtx", batch)
    else:
        for i in range(len(batch)):
            it.evtx_text("f.evtx", batch, i)
    it.count = len(texts)
    rows, rejected = _converted(it)
    cols = {c: objects(v).tolist() for c, v in (rows or {}).items()}
    clocks = {m: (objects(_flat(u)).tolist(), objects(_flat(lg)).tolist(), f)
              for m, (u, lg, f) in it.clocks.items()}
    return cols, rejected, it.rejected, dict(it.skipped), clocks


def _flat(items: list):
    from ntoslab.trace.columns import chunks
    return chunks(items)


CASES = {
    "plain sysmon": [sysmon(i) for i in range(40)],
    "plain security": [security(i) for i in range(40)],
    "both, interleaved": [sysmon(i) if i % 3 else security(i) for i in range(60)],
    "a pid as text refuses the group": [sysmon(i) for i in range(20)] + [sysmon(20, pid='"77"')],
    "a duplicate key": [sysmon(i) for i in range(10)] + [sysmon(10).replace(
        '"Computer":"HOST"', '"Computer":"HOST","Computer":"OTHER"')],
    "not JSON, not an Event, no Event": [sysmon(1), sysmon(2)[:-3], '{"Event":null}',
                                         '{"Other":1}', '[1,2]', sysmon(3)],
    "unreadable records keep their place": [sysmon(1), None, sysmon(2), None, security(3)],
    "Sysmon provider, Security channel and ids": [
        sysmon(i, provider="X", channel='"Security"', eid=4688) for i in range(5)],
    "Security mentioning Sysmon": [security(i, cmd="stop Microsoft-Windows-Sysmon")
                                   for i in range(6)],
    "event id as an object": [sysmon(1, eid='{"#text":1}'), sysmon(2)],
    "record id null, missing channel": [sysmon(1, rid="null", channel="null"), sysmon(2)],
    "record id beyond 64 bits": [sysmon(1, rid=str(1 << 70)), sysmon(2)],
    "leap second, odd and missing times": [sysmon(1, utc="2016-12-31 23:59:60.000"),
                                           sysmon(3, utc=""), sysmon(5, utc="noon"),
                                           sysmon(7, utc="2019-07-19T14:42:51.5+01:00")],
    "other providers and event ids": [sysmon(i, eid=3) for i in range(5)] +
                                     [security(i, eid=4624) for i in range(5)] +
                                     [sysmon(1, provider="Other", channel='"System"', eid=1)],
    "out-of-range pid": [sysmon(1, pid=1 << 40), sysmon(3, pid=-1), sysmon(5)],
}


@pytest.mark.parametrize("source", ["all", "sysmon", "security"])
@pytest.mark.parametrize("case", list(CASES))
def test_built_records_same_as_one_by_one(case, source, monkeypatch):
    texts = CASES[case]
    assert filed(texts, True, source, monkeypatch) == filed(texts, False, source, monkeypatch)


def test_built_records_are_read_by_the_batch_path(monkeypatch):
    """The plain records are filed by Arrow, not one by one (else the comparisons above
    would compare the oracle with itself)."""
    from ntoslab.trace import evtx_arrow
    monkeypatch.setattr(intake.Intake, "evtx_record",
                        lambda *a: pytest.fail("filed one by one"))
    batch = Batch()
    for i, t in enumerate(CASES["both, interleaved"], 1):
        batch.seqs.append(i), batch.numbers.append(i), batch.texts.append(t)
        batch.stamps.append("2019-07-19T14:42:53Z UTC")
    out = evtx_arrow.sort_batch(batch, "f", {"sysmon": intake.SYSMON_VALUES,
                                             "security": intake.SECURITY_VALUES},
                                {"sysmon": True, "security": True})
    assert out.one_by_one == []
    assert [len(b["_seq"]) for b in out.blocks["sysmon"]] == [40]
    assert [len(b["_seq"]) for b in out.blocks["security"]] == [20]


def test_prefilter_column_wise_is_the_prefilter():
    import pyarrow as pa
    head = '{"Event":{"System":{"Provider":{"#attributes":{"Name":"%s"}},"EventID":%s,"V":1}}}'
    texts = [head % (p, e) for p in ("Microsoft-Windows-Security-Auditing", "X", "Sysmon")
             for e in ("4624", "4688", "1", "5", "0", "4688}", "00001", "99999999999999999999",
                       '{"#text":4624}', '"4624"', "3", "")] + ['{"Event":{}}', '"EventID":7',
                                                                '"EventID":7 ,']
    assert prefiltered(pa.array(texts)).tolist() == [evtx_prefilter(t) for t in texts]


TIMES = ["2019-07-19 14:42:51.257", "2019-07-19T14:42:53.2955786Z", "2019-07-19 14:42:51",
         "2019-07-19T14:42:51", "2019-07-19T14:42:51Z", "2019-07-19T14:42:51.5+01:00",
         "2019-02-30 00:00:00.000", "2019-07-19 24:00:00.000", "2016-12-31 23:59:60.000",
         "2019-07-19 14:42:51.1234567891", "0001-01-01 00:00:00.000", "9999-12-31 23:59:59.999",
         "2019-07-19 14:42:51.257Z", "", None, "noon"]


def _same_times(values: list) -> None:
    import pyarrow as pa
    fast = times_ns(pa.array(values, pa.string()))
    slow = times_ns(np.array(values, object))
    for a, b in zip(fast, slow):
        assert a.tolist() == b.tolist()


def test_times_from_arrow_are_the_object_path():
    _same_times(TIMES * 3)          # more than SMALL_COLUMN values: the C parse on objects
    _same_times(TIMES)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9999), st.integers(1, 12), st.integers(1, 31),
                          st.integers(0, 24), st.integers(0, 60), st.integers(0, 60),
                          st.sampled_from(["", ".1", ".257", ".2955786", ".123456789"]),
                          st.sampled_from([" ", "T"]), st.sampled_from(["", "Z", "+01:00"])),
                min_size=1, max_size=40))
def test_times_from_arrow_property(parts):
    _same_times([f"{y:04d}-{m:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{f}{z}"
                 for y, m, d, h, mi, s, f, sep, z in parts])


class _Parser:
    """Stands in for `evtx.PyEvtxParser`: records as evtx-rs hands them over, and an error
    (as evtx-rs raises for a damaged record, going on after it) where a text is None."""

    def __init__(self, texts):
        self.texts = texts

    def __call__(self, source, number_of_threads=None):
        return self

    def records_json(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if not self.texts:
            raise StopIteration
        t = self.texts.pop(0)
        if t is None:
            raise RuntimeError("boom")
        return {"event_record_id": 7, "timestamp": "2019-07-19T14:42:53.2955786Z UTC",
                "data": t}


@pytest.mark.parametrize("size", [2, 3, 4, 100])
def test_records_taken_in_bulk_keep_their_place(size, monkeypatch):
    """The parser's records are taken a batch at a time; an error mid-batch keeps the records
    before it, counts as one unreadable record in its place, and the reading goes on."""
    import evtx
    texts = [sysmon(1), sysmon(3), None, sysmon(5), None, None, sysmon(7), sysmon(9), None]
    monkeypatch.setattr(intake, "BATCH_RECORDS", size)
    monkeypatch.setattr(intake, "SMALL_BATCH", 0)
    monkeypatch.setattr(evtx, "PyEvtxParser", _Parser(list(texts)))
    it = Intake(None, "all")    # type: ignore[arg-type]
    it.evtx("x", "f.evtx", layout=False)
    assert it.count == 9
    assert it.parsed == [7] * 5                             # the readable ones, in order
    assert [r["reason"] for r in it.rejected] == ["EVTX record unreadable: boom"] * 4
    rows, _ = _converted(it)
    assert rows["_seq"].tolist() == [1, 2, 4, 7, 8]         # sysmon(9) is an EID 5: kept
    assert objects(rows["image_path"]).tolist() == [f"C:\\x\\p{i}.exe" for i in (1, 3, 5, 7, 9)]
