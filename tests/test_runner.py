"""`ntoslab run`: the JSON contract of ARCHITECTURE.md, the table format, rejected rows."""
from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest

from ntoslab.runner import main

from conftest import ROOT

EXAMPLES = ROOT / "bpf" / "examples"


@pytest.fixture(scope="module")
def objects(compile_bpf):
    return {name: compile_bpf((EXAMPLES / f"{name}.c").read_text(), name)
            for name in ("deny_policy", "lineage", "pipeline")}


def write_events(tmp_path: Path, rows: list, name: str = "events.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


EVENTS = [
    {"operation": "create", "process_id": 10, "parent_process_id": 1, "image_path": r"\??\C:\a.exe",
     "command_line": "a.exe", "creation_time": 1000},
    {"operation": "create", "process_id": 11, "parent_process_id": 10, "image_path": r"\??\C:\mimikatz.exe",
     "command_line": "m", "creation_time": 2000},
    {"operation": "create", "process_id": 12, "parent_process_id": 10, "image_path": r"\??\C:\b.exe",
     "command_line": "b.exe", "creation_time": 3000},
    {"operation": "delete", "process_id": 12, "exit_code": 3},
]


def run_json(objs, events, capsys=None):
    out, err = io.StringIO(), io.StringIO()
    code = main(objs, events, "interpreter", "json", out, err)
    return code, json.loads(out.getvalue()), err.getvalue()


def test_json_contract(objects, tmp_path):
    events = write_events(tmp_path, EVENTS)
    code, report, err = run_json([objects["lineage"], objects["deny_policy"]], events)
    assert code == 0 and err == ""
    assert set(report) == {"verdicts", "ringbuf", "maps"}
    assert report["verdicts"] == [
        {"index": 0, "operation": "create", "process_id": 10, "status": 0, "denied": False},
        {"index": 1, "operation": "create", "process_id": 11, "status": -1073741790, "denied": True},
        {"index": 2, "operation": "create", "process_id": 12, "status": 0, "denied": False},
        {"index": 3, "operation": "delete", "process_id": 12, "status": 0, "denied": False},
    ]
    # lineage_t: pid, ppid, root, depth (u32) + creation_time (u64), in output order
    expected = [struct.pack("<IIIIQ", 10, 1, 1, 0, 1000), struct.pack("<IIIIQ", 11, 10, 1, 1, 2000),
                struct.pack("<IIIIQ", 12, 10, 1, 1, 3000)]
    assert report["ringbuf"] == {"lineage_events": [r.hex() for r in expected]}
    # pid 12 exited: the tracker deleted it; 10 and 11 remain
    lineage = {e["key"]: e["value"] for e in report["maps"]["lineage"]}
    assert lineage == {struct.pack("<I", 10).hex(): expected[0].hex(),
                       struct.pack("<I", 11).hex(): expected[1].hex()}
    assert report["maps"]["denials"] == [{"key": "01000000", "value": "0100000000000000"}]


def test_tail_call_targets_are_not_attached(objects, tmp_path):
    events = write_events(tmp_path, [{"operation": "create", "process_id": 5,
                                      "command_line": "cmd /c a^b^c|d"}])
    code, report, _ = run_json([objects["pipeline"]], events)
    assert report["verdicts"][0]["denied"] is True          # 4 suspicious characters >= 3
    # .bss holds events_seen and denied (u64 each): Entry ran once, the stage once
    from elftools.elf.elffile import ELFFile
    with open(objects["pipeline"], "rb") as f:
        syms = {s.name: s["st_value"] for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()}
    bss = bytes.fromhex(report["maps"][".bss"][0]["value"])
    events_seen = struct.unpack_from("<Q", bss, syms["events_seen"])[0]
    denied = struct.unpack_from("<Q", bss, syms["denied"])[0]
    assert (events_seen, denied) == (1, 1)


def test_bad_rows_are_reported_with_line_and_field_and_later_rows_still_run(objects, tmp_path):
    rows = [json.dumps(EVENTS[0]), '{"operation": "create", "process_id": "x"}', "{not json",
            json.dumps(EVENTS[1])]
    events = write_events(tmp_path, rows)
    code, report, err = run_json([objects["deny_policy"]], events)
    assert code == 1
    assert [v["process_id"] for v in report["verdicts"]] == [10, 11]
    assert "events.jsonl:2: field 'process_id': 'x' is not an integer" in err
    assert "events.jsonl:3: not valid JSON" in err
    assert "2 row(s) rejected" in err


def test_csv_and_parquet_inputs(objects, tmp_path):
    import pandas as pd
    frame = pd.DataFrame(EVENTS)
    frame.to_csv(tmp_path / "e.csv", index=False)
    frame.to_parquet(tmp_path / "e.parquet")
    for name in ("e.csv", "e.parquet"):
        code, report, err = run_json([objects["deny_policy"]], tmp_path / name)
        assert code == 0, err
        assert [v["denied"] for v in report["verdicts"]] == [False, True, False, False]


def test_iso_times_are_accepted(objects, tmp_path):
    events = write_events(tmp_path, [{"operation": "create", "process_id": 1,
                                      "creation_time": "2026-01-01T00:00:00Z",
                                      "time": "2026-01-01T00:00:00Z"}])
    code, report, _ = run_json([objects["lineage"]], events)
    record = bytes.fromhex(report["ringbuf"]["lineage_events"][0])
    # FILETIME of 2026-01-01: (seconds since 1970 * 10^7) + 116444736000000000
    assert struct.unpack_from("<Q", record, 16)[0] == 1767225600 * 10**7 + 116444736000000000


def test_table_format(objects, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert main([objects["deny_policy"]], write_events(tmp_path, EVENTS), "interpreter", "table",
                out, err) == 0
    text = out.getvalue()
    assert "4 events, 1 denied" in text and "0xC0000022  DENIED" in text
    assert "deny pid 11: blocked image" in text


def test_unknown_format_and_missing_file(objects, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert main([objects["deny_policy"]], tmp_path / "nope.jsonl", "interpreter", "json", out, err) == 2
    assert "no such file" in err.getvalue()
    bad = tmp_path / "x.txt"
    bad.write_text("x")
    err = io.StringIO()
    assert main([objects["deny_policy"]], bad, "interpreter", "json", out, err) == 2
    assert "unknown trace format" in err.getvalue()
