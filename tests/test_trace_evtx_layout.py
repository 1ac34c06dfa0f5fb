"""Truncated EVTX files are reported, never silently short: real logs cut to 10/50/90% in
tmp_path. The expectations come from the files themselves, read here independently of
`evtx_layout`: the file header (`ElfFile\\0`; next record id at offset 24, flags at 120) and
the header of the chunk the cut falls in (`ElfChnk\\0`; last event record id at offset 32), and
the record ids the `evtx` parser returns for the cut copy."""
from __future__ import annotations

import struct

import evtx
import pytest
from conftest import SHARED

from ntoslab.trace import import_logs
from ntoslab.trace.importer import import_command

DATA = SHARED / "datasets"
PANACHE = DATA / "EVTX-ATTACK-SAMPLES" / "PanacheSysmon_vs_AtomicRedTeam01.evtx"
SPLUNK = DATA / "splunk-attack_data" / "T1003.001-procdump-capattack"
CUT_FILES = [PANACHE, SPLUNK / "Security.evtx", SPLUNK / "Microsoft-Windows-Sysmon%4Operational.evtx"]

pytestmark = pytest.mark.skipif(not DATA.exists(), reason="../shared/datasets not present")


def header(data: bytes) -> dict:
    assert data[:8] == b"ElfFile\x00"
    return {"next_id": struct.unpack_from("<Q", data, 24)[0],
            "chunks": struct.unpack_from("<H", data, 42)[0],
            "dirty": bool(struct.unpack_from("<I", data, 120)[0] & 1)}


def cut_chunk_last_id(data: bytes) -> int | None:
    """The last record id the header of the chunk the file ends in promises (None: the cut
    chunk has no chunk header, e.g. a pre-allocated empty one)."""
    start = 4096 + (len(data) - 4096) // 65536 * 65536
    chunk = data[start:]
    if len(chunk) < 40 or chunk[:8] != b"ElfChnk\x00":
        return None
    return struct.unpack_from("<Q", chunk, 32)[0]


def parsed_ids(path) -> list[int]:
    return [r["event_record_id"] for r in evtx.PyEvtxParser(str(path)).records_json()]


@pytest.mark.parametrize("fraction", [10, 50, 90])
@pytest.mark.parametrize("path", CUT_FILES, ids=lambda p: p.name)
def test_truncated_file_names_the_missing_tail(path, fraction, tmp_path):
    whole = path.read_bytes()
    data = whole[:len(whole) * fraction // 100]
    cut = tmp_path / f"cut{fraction}-{path.name}"
    cut.write_bytes(data)
    h = header(data)
    ids = parsed_ids(cut)
    result = import_logs([cut], progress=False)
    report = result.files[0]
    assert report.records == len(ids)
    (unread,) = report.unread                           # always visible: the file is cut
    assert unread.cut_bytes == (len(data) - 4096) % 65536 > 0
    expected_last = h["next_id"] - 1 if not h["dirty"] else cut_chunk_last_id(data)
    top = max(ids)
    summary = result.summary()
    assert f"the file ends {unread.cut_bytes} bytes into chunk" in summary
    assert "records not read from 1 incomplete EVTX file" in summary
    if expected_last is not None and expected_last > top:
        # the tail the headers promised: every id after the last one read, up to the header's
        assert unread.missing[-1] == (top + 1, expected_last)
        assert unread.records == expected_last - top
        assert f"{top + 1}..{expected_last}" in summary
        if not h["dirty"]:
            assert f"next record id {h['next_id']}" in summary
            assert unread.absent_chunks == h["chunks"] - -(-(len(data) - 4096) // 65536)
    else:
        # the cut fell in pre-allocated empty chunks: nothing the headers list is missing
        assert unread.records == 0
        assert "no record the headers list is missing" in summary


def test_truncated_file_on_stderr(tmp_path, capsys):
    data = PANACHE.read_bytes()
    cut = tmp_path / "cut.evtx"
    cut.write_bytes(data[:len(data) // 10])
    top = max(parsed_ids(cut))
    assert import_command([str(cut), "-o", str(tmp_path / "t.parquet"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"NOT READ {565 - top} (file incomplete)" in err
    assert f"record ids {top + 1}..565 (header: next record id 566)" in err


@pytest.mark.parametrize("path", sorted(DATA.rglob("*.evtx")) if DATA.exists() else [],
                         ids=lambda p: p.name)
def test_whole_files_have_nothing_unread(path):
    assert import_logs([path], progress=False).files[0].unread == []


def test_unreadable_chunk_in_the_middle(tmp_path):
    """A chunk whose header survives but whose records are garbage: its records are named."""
    data = bytearray(PANACHE.read_bytes())
    start = 4096 + 3 * 65536
    first_id, last_id = struct.unpack_from("<QQ", data, start + 24)
    data[start + 512:start + 65536] = b"\xff" * (65536 - 512)     # records zapped, header kept
    bad = tmp_path / "zapped.evtx"
    bad.write_bytes(bytes(data))
    ids = set(parsed_ids_lenient(bad))
    result = import_logs([bad], progress=False)
    (unread,) = result.files[0].unread
    lost = [i for i in range(first_id, last_id + 1) if i not in ids]
    assert lost and unread.records == len(lost)
    assert 3 in unread.bad_chunks and unread.cut_bytes == 0
    assert "NOT READ" in result.summary()


def parsed_ids_lenient(path) -> list[int]:
    out, it = [], evtx.PyEvtxParser(str(path)).records_json()
    while True:
        try:
            out.append(next(it)["event_record_id"])
        except StopIteration:
            return out
        except Exception:
            continue
