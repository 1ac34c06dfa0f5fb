"""A large EVTX file read by several processes gives exactly what one process gives: the same
frame (order, dtypes, values), per-file report, rejected records with their record ids and
numbers, clock check and truncation report. The expectation is the sequential import
(`workers=1`, the path the rest of the suite checks against the `evtx` package and the
files' headers); the parallel path is forced with `split_min_bytes=0`. Large inputs are a real
log's chunks repeated, as benchmarks/trace.py builds them (fewer copies here), then cut,
damaged or given records that cannot become rows."""
from __future__ import annotations

import os
import time
from dataclasses import astuple
from pathlib import Path

import evtx
import orjson
import pandas as pd
import pytest
from conftest import SHARED

from ntoslab.trace import evtx_split, import_logs
from ntoslab.trace.evtx_split import EvtxWorkerError, run_shares, share_stream, shares
from ntoslab.trace.importer import _read_share, import_command

DATA = SHARED / "datasets"
PANACHE = DATA / "EVTX-ATTACK-SAMPLES" / "PanacheSysmon_vs_AtomicRedTeam01.evtx"
SPLUNK = DATA / "splunk-attack_data" / "T1003.001-procdump-capattack"
SPLUNK_SEC = SPLUNK / "Security.evtx"
SPLUNK_SYSMON = SPLUNK / "Microsoft-Windows-Sysmon%4Operational.evtx"
CHUNK, HEADER = 65536, 4096

pytestmark = pytest.mark.skipif(not DATA.exists(), reason="../shared/datasets not present")


def snapshot(result) -> tuple:
    """Everything an import reports, order included (Counters as their item lists)."""
    files = [(f.path, f.records, list(f.imported.items()), list(f.skipped.items()),
              list(f.rejected.items()), [astuple(s) for s in f.skew], f.correction_ns, f.unread)
             for f in result.files]
    return files, result.summary()


def assert_same(paths, workers_n: int = 2, **kw) -> tuple:
    one = import_logs(paths, progress=False, workers=1, **kw)
    many = import_logs(paths, progress=False, workers=workers_n, split_min_bytes=0, **kw)
    pd.testing.assert_frame_equal(one.frame, many.frame, check_exact=True)
    pd.testing.assert_frame_equal(one.rejected, many.rejected, check_exact=True)
    assert snapshot(one) == snapshot(many)
    return one, many


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """Panache's 17 chunks and Splunk Security's 17, 3 times each (Sysmon and Security rows in
    every share), then Splunk Sysmon's 17 (record ids no other chunk has)."""
    d = tmp_path_factory.mktemp("split")
    a, b, c = PANACHE.read_bytes(), SPLUNK_SEC.read_bytes(), SPLUNK_SYSMON.read_bytes()
    out = d / "mixed.evtx"
    out.write_bytes(a[:HEADER] + (a[HEADER:] + b[HEADER:]) * 3 + c[HEADER:])
    return out


REAL = sorted(DATA.rglob("*.evtx"))


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_every_real_file_same_in_parallel(path):
    assert_same([path])
    assert_same([path], source="sysmon", clock_skew="correct", workers_n=3)


def test_real_files_are_split():
    """The 1 MiB logs (17 chunks) really take the parallel path when forced; the one-chunk
    ones cannot be split."""
    assert shares(PANACHE, 2, 0) == [(0, 8), (8, None)]
    assert shares(PANACHE, 3, 0) == [(0, 5), (5, 11), (11, None)]
    assert shares(PANACHE, 2) is None                       # below the default threshold
    assert shares(DATA / "EVTX-ATTACK-SAMPLES" / "maldoc_mshta_via_shellbrowserwind_rundll32.evtx",
                  2, 0) is None
    assert shares(PANACHE, 1, 0) is None


def test_share_streams_hold_every_record_once():
    """The header plus a share's chunks parse as exactly those chunks' records: the shares'
    record ids together are the whole file's, in order."""
    whole = [r["event_record_id"] for r in evtx.PyEvtxParser(str(PANACHE)).records_json()]
    parts = []
    for s in shares(PANACHE, 3, 0):
        parts += [r["event_record_id"] for r in
                  evtx.PyEvtxParser(share_stream(PANACHE, s), number_of_threads=1).records_json()]
    assert parts == whole == list(range(1, 566))


@pytest.mark.parametrize("source", ["all", "sysmon", "security"])
def test_large_repeated_file_same_in_parallel(big, source):
    one, many = assert_same([big], source=source)
    assert one.files[0].records == 3 * (565 + 356) + 429
    assert_same([big, PANACHE], source=source, workers_n=3)


def test_truncated_large_file_same_in_parallel(big, tmp_path):
    """A cut inside a chunk of the last share (in the Splunk Sysmon part): the unreadable
    tail is still counted, with the record ids its chunk header promises."""
    data = big.read_bytes()
    cut = tmp_path / "cut.evtx"
    cut.write_bytes(data[:HEADER + 110 * CHUNK + 20000])
    one, _ = assert_same([cut])
    (unread,) = one.files[0].unread
    assert unread.cut_bytes == 20000 and unread.cut_chunk == 110
    last_id = int.from_bytes(data[HEADER + 110 * CHUNK + 32:HEADER + 110 * CHUNK + 40], "little")
    assert unread.records > 0 and unread.missing[-1][1] == last_id
    assert one.files[0].records < 3 * (565 + 356) + 429


def test_damaged_chunk_and_rejected_rows_same_in_parallel(big, tmp_path):
    """A chunk whose first record is damaged (the parser gives up on it: reported) in one share, and
    records whose UtcTime cannot be read (rejected, with their record ids) in every share."""
    data = bytearray(big.read_bytes())
    at = HEADER + 110 * CHUNK + 512                     # chunk 110: its first record damaged
    data[at:at + 8] = b"XXXXXXXX"
    patched = 0
    for chunk in (2, 36, 70, 105):          # Panache in 3 copies, Splunk Sysmon
        utc = [orjson.loads(r["data"])["Event"]["EventData"]["UtcTime"] for r in
               evtx.PyEvtxParser(share_stream(big, (chunk, chunk + 1))).records_json()][:2]
        start = HEADER + chunk * CHUNK
        body = bytes(data[start:start + CHUNK])
        for u in utc:
            old = u.encode("utf-16-le")
            at = body.find(old)
            if at >= 0:
                data[start + at:start + at + 2] = "x".encode("utf-16-le")
                patched += 1
    assert patched == 8
    bad = tmp_path / "bad.evtx"
    bad.write_bytes(bytes(data))
    one, _ = assert_same([bad])
    reasons = one.reasons()
    assert sum(k for r, k in reasons.items() if "UtcTime" in r) >= 4   # EID 1/5 among them
    assert one.rejected["record_id"].notna().any()
    assert one.files[0].unread[0].bad_chunks == (110,)
    assert [k for r, k in reasons.items() if r.startswith("EVTX record unreadable")] == [1]


def test_small_files_never_start_a_pool():
    evtx_split.close_pool()
    import_logs([PANACHE], progress=False, workers=2)              # 1 MiB: below 4 MiB
    assert evtx_split._pool is None


def _raise(path, share, parent):
    if os.getpid() != parent:
        raise ValueError("no such luck")
    return _read_share(path, share, "all")


def _die(path, share, parent):
    if os.getpid() != parent:
        os._exit(3)
    return _read_share(path, share, "all")


@pytest.mark.parametrize("fn, says", [(_raise, "failed: ValueError: no such luck"),
                                      (_die, "died before it finished")])
def test_worker_failure_names_the_file(big, fn, says):
    parts = shares(big, 2, 0)
    started = time.monotonic()
    with pytest.raises(EvtxWorkerError, match=f"{big}: the process reading chunks "
                                              f"{parts[1][0]}..end {says}"):
        run_shares(str(big), parts, fn, os.getpid())
    assert time.monotonic() - started < 60
    assert_same([big])                      # the pool is usable again (replaced if it died)


def test_import_command_workers(big, tmp_path, capsys):
    out = tmp_path / "t.parquet"
    assert import_command([str(big), "-o", str(out), "--workers", "2"]) == 0
    want = import_logs([big], progress=False, workers=1).frame
    assert len(pd.read_parquet(out)) == len(want)
    assert import_command([str(big), "-o", str(out), "--workers", "0"]) == 2
    assert "--workers 0: at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="workers 0"):
        import_logs([big], workers=0)


def test_ntoslab_import_workers_for_a_trace(big, tmp_path):
    """`ntoslab import --workers N -o TRACE` (once dataset output only) gives the trace one
    process gives."""
    from ntoslab.cli import main
    out = tmp_path / "t.parquet"
    assert main(["import", str(big), "-o", str(out), "--workers", "2", "--no-progress"]) == 0
    want = import_logs([big], progress=False, workers=1).frame
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(_written(want, tmp_path)))


def _written(frame, tmp_path: Path) -> Path:
    from ntoslab.trace import write_trace
    path = tmp_path / "want.parquet"
    write_trace(frame, path)
    return path


def _results(path, share, parent):
    """A result with every kind of part a share's result has (numpy ints, objects, Arrow text
    with nulls) from a worker, the share's own from here."""
    import numpy as np
    import pyarrow as pa
    return {"pid": os.getpid(), "ints": np.arange(100_000, dtype=np.int64) + share[0],
            "objects": np.array([1, None, "x"], object),
            "text": pa.array(["a", None, "ü" * 1000] * 1000), "empty": np.zeros(0, np.int64)}


def _unpicklable(path, share, parent):
    return (lambda: 1) if os.getpid() != parent else None


def test_worker_results_come_back_whole(big):
    import numpy as np
    import pyarrow as pa
    parts = shares(big, 2, 0)
    first = run_shares(str(big), parts, _results, os.getpid())
    again = run_shares(str(big), parts, _results, os.getpid())
    here, there = first
    assert here["pid"] == os.getpid() != there["pid"] == again[1]["pid"]   # the worker is kept
    assert there["ints"].tolist() == (np.arange(100_000) + parts[1][0]).tolist()
    there["ints"] += 1                          # writable, as arrays the share made are
    assert there["ints"][0] == parts[1][0] + 1
    assert there["objects"].tolist() == [1, None, "x"] and there["empty"].dtype == np.int64
    assert there["text"].equals(pa.array(["a", None, "ü" * 1000] * 1000))


def test_worker_result_that_cannot_be_sent_back(big):
    parts = shares(big, 2, 0)
    with pytest.raises(EvtxWorkerError, match="could not be sent back"):
        run_shares(str(big), parts, _unpicklable, os.getpid())
    assert_same([big])                          # and the next read works


def test_clock_differences_of_shares_merge_to_the_whole():
    from ntoslab.trace.clock import (
        clock_differences,
        measure_skew_columns,
        merged_differences,
        skew_of,
    )
    utc = ["2019-07-19 14:42:51.000", "2019-07-19 14:42:52.500", "2300-01-01 00:00:00.000",
           "", "noon", "2019-07-19 14:43:00.000", "2019-07-19 14:42:51.250"]
    logged = ["2019-07-19T14:42:50Z", "2019-07-19T14:42:52.5Z", "2300-01-01T00:00:01Z",
              "2019-07-19T14:42:50Z", "2019-07-19T14:42:50Z", "2019-07-19T14:42:59Z", None]
    whole = clock_differences(utc, logged)
    # by hand: 1 s, 0, -1 s (beyond the ns range: exact ints), 1 s; the others unreadable
    assert whole.tolist() == [-10**9, 0, 10**9, 10**9]
    for cut in range(len(utc) + 1):
        parts = [clock_differences(utc[:cut], logged[:cut]),
                 clock_differences(utc[cut:], logged[cut:])]
        merged = merged_differences(parts)
        assert merged.tolist() == whole.tolist()
        assert skew_of(merged, "f", "SystemTime") == measure_skew_columns(utc, logged, "f",
                                                                          "SystemTime")
    assert skew_of(merged_differences([]), "f") is None
