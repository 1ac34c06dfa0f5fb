"""`ntoslab run`: the JSON contract of ARCHITECTURE.md, the table format, rejected rows."""
from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
from conftest import ROOT

from ntoslab.runner import main

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
    assert set(report) == {"verdicts", "ringbuf", "dropped", "maps", "rejected",
                           "unresolved_sids", "summary"}
    assert report["verdicts"] == [
        {"index": 0, "line": 1, "operation": "create", "process_id": 10, "status": 0,
         "denied": False, "fault": None},
        {"index": 1, "line": 2, "operation": "create", "process_id": 11, "status": -1073741790,
         "denied": True, "fault": None},
        {"index": 2, "line": 3, "operation": "create", "process_id": 12, "status": 0,
         "denied": False, "fault": None},
        {"index": 3, "line": 4, "operation": "delete", "process_id": 12, "status": 0,
         "denied": False, "fault": None},
    ]
    assert report["dropped"] == {"lineage_events": 0} and report["rejected"] == []
    assert report["summary"] == {"events": 4, "denied": 1, "faulted": 0, "rejected": 0,
                                 "dropped": 0, "unresolved_sids": 0, "shown": 4}
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


# -- the per-row contract (issue 11 item 5): the rules of `ntoslab import` ---------------------

def test_hostile_rows_are_row_errors_naming_line_and_field(objects, tmp_path):
    rows = [json.dumps(EVENTS[0]),
            json.dumps({"operation": "create", "process_id": 20, "command_line": "a\ud800b"}),
            json.dumps({"operation": "create", "process_id": -5}),
            json.dumps({"operation": "create", "process_id": 2**70}),
            json.dumps({"operation": "create", "process_id": 21,
                        "command_line": "x" * 10_000_000}),
            json.dumps({"operation": "create", "process_id": 22, "image_path": "\udfff"}),
            json.dumps({"operation": "create", "process_id": 23, "parent_process_id": 2**32}),
            json.dumps(EVENTS[1])]
    events = write_events(tmp_path, rows)
    code, report, err = run_json([objects["deny_policy"]], events)
    assert code == 1
    # the good rows ran, in order, and kept their line numbers
    assert [(v["line"], v["process_id"]) for v in report["verdicts"]] == [(1, 10), (8, 11)]
    assert report["verdicts"][1]["denied"] is True
    assert "events.jsonl:2: field 'command_line': lone surrogate U+D800 at character 1" in err
    assert "events.jsonl:3: field 'process_id': -5 is out of range [0, 4294967295]" in err
    assert f"events.jsonl:4: field 'process_id': {2**70} is out of range" in err
    assert "events.jsonl:5: field 'command_line': 10,000,000 characters, more than a " \
           "UNICODE_STRING holds (32,767)" in err
    assert "events.jsonl:6: field 'image_path': lone surrogate U+DFFF at character 0" in err
    assert f"events.jsonl:7: field 'parent_process_id': {2**32} is out of range" in err
    assert [r["line"] for r in report["rejected"]] == [2, 3, 4, 5, 6, 7]
    assert report["summary"]["rejected"] == 6 and "6 row(s) rejected, 2 injected" in err


def test_run_rules_agree_with_import_validation(objects, tmp_path):
    """The same rows are refused by `ntoslab import`'s validation (trace.schema.validate)."""
    import pandas as pd

    from ntoslab.trace.schema import validate
    rows = [{"operation": "create", "process_id": -5, "time": 1},
            {"operation": "create", "process_id": 2**40, "time": 1},
            {"operation": "create", "process_id": 7, "time": 1, "command_line": "x" * 40_000},
            {"operation": "create", "process_id": 8, "time": 1}]
    _, rejected = validate(pd.DataFrame(rows, dtype=object))
    assert list(rejected["row"]) == [0, 1, 2]
    code, report, _ = run_json([objects["deny_policy"]], write_events(tmp_path, rows))
    assert code == 1 and [r["line"] for r in report["rejected"]] == [1, 2, 3]
    assert [v["process_id"] for v in report["verdicts"]] == [8]


FAULTING = r"""
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"
SEC("process") int ReadPast(process_md_t* ctx)
{
    if (ctx->operation != PROCESS_OPERATION_CREATE)
        return 0;
    volatile uint8_t* end = (uint8_t*)ctx->command_start + 4096;   // past the command line
    return *end == 0x55;
}
"""

RING = r"""
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } ring SEC(".maps");
SEC("process") int Emit(process_md_t* ctx)
{
    uint8_t rec[SIZE];
    __builtin_memset(rec, 1, sizeof(rec));
#pragma unroll
    for (int i = 0; i < COUNT; i++)
        bpf_ringbuf_output(&ring, rec, sizeof(rec), 0);
    return 0;
}
"""


def test_faulting_program_is_marked_and_exit_status_is_1(compile_bpf, tmp_path):
    obj = compile_bpf(FAULTING, "faulting")
    events = write_events(tmp_path, [{"operation": "create", "process_id": 5,
                                      "command_line": "abc"},
                                     {"operation": "delete", "process_id": 5}])
    for engine in ("interpreter", "jit"):
        out, err = io.StringIO(), io.StringIO()
        assert main([obj], events, engine, "json", out, err) == 1
        report = json.loads(out.getvalue())
        first, second = report["verdicts"]
        assert first["fault"].startswith("ReadPast: pc ") and "command line" in first["fault"]
        assert first["denied"] is False and second["fault"] is None
        assert report["summary"]["faulted"] == 1
        assert "1 event(s) with a faulting program" in err.getvalue()
        out = io.StringIO()
        assert main([obj], events, engine, "table", out, io.StringIO()) == 1
        text = out.getvalue()
        assert "1 faulted" in text and "allowed  FAULT" in text
        assert "event 0 (line 1): ReadPast: pc " in text


def test_ring_records_are_kept_and_drops_shown(compile_bpf, tmp_path):
    # 100 events of 64-byte records (72 bytes with the header) exceed a 4096-byte ring many
    # times over: the run's reader keeps every one
    events = write_events(tmp_path, [{"operation": "create", "process_id": i}
                                     for i in range(1, 101)])
    code, report, err = run_json([compile_bpf("#define SIZE 64\n#define COUNT 1\n" + RING,
                                              "ring64")], events)
    assert code == 0, err
    assert len(report["ringbuf"]["ring"]) == 100 and report["dropped"] == {"ring": 0}
    # ten 480-byte records in one event (488 bytes each with the 8-byte header): 8 fit the
    # 4096-byte ring before the reader runs, 2 are dropped; every drop is counted and shown
    obj = compile_bpf("#define SIZE 480\n#define COUNT 10\n" + RING, "ring480")
    code, report, err = run_json([obj], events)
    assert code == 1
    assert len(report["ringbuf"]["ring"]) == 800 and report["dropped"] == {"ring": 200}
    assert report["summary"]["dropped"] == 200
    assert "ring buffer ring dropped 200 record(s)" in err
    out = io.StringIO()
    main([obj], events, "interpreter", "table", out, io.StringIO())
    assert "ring buffer ring: 800 record(s), 200 dropped" in out.getvalue()


def test_filters_denied_and_limit(objects, tmp_path):
    events = write_events(tmp_path, EVENTS * 3)
    out = io.StringIO()
    assert main([objects["deny_policy"]], events, "interpreter", "json", out, io.StringIO(),
                denied=True) == 0
    report = json.loads(out.getvalue())
    assert [v["index"] for v in report["verdicts"]] == [1, 5, 9]
    assert report["summary"]["events"] == 12 and report["summary"]["shown"] == 3
    out = io.StringIO()
    main([objects["deny_policy"]], events, "interpreter", "json", out, io.StringIO(), limit=2)
    assert [v["index"] for v in json.loads(out.getvalue())["verdicts"]] == [0, 1]
    out = io.StringIO()
    main([objects["deny_policy"]], events, "interpreter", "table", out, io.StringIO(),
         denied=True, limit=1)
    text = out.getvalue()
    assert "12 events, 3 denied, 0 faulted (1 shown)" in text
    assert text.count("DENIED") == 1


def test_cli_engine_help_filters_and_source_file(objects, tmp_path, capsys):
    from ntoslab.cli import main as cli
    with pytest.raises(SystemExit):
        cli(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "eBPF engine: interpreter (the reference), jit (LLVM" in help_text
    assert "(default: jit)" in help_text
    assert "--denied" in help_text and "--limit N" in help_text
    events = write_events(tmp_path, EVENTS)
    assert cli(["run", str(objects["deny_policy"]), "--events", str(events), "--denied",
                "--format", "json"]) == 0
    assert [v["process_id"] for v in json.loads(capsys.readouterr().out)["verdicts"]] == [11]
    source = EXAMPLES / "deny_policy.c"
    assert cli(["run", str(source), "--events", str(events)]) == 2
    err = capsys.readouterr().err
    assert "not an ELF file" in err and f"ntoslab build {source}" in err


def test_unresolved_sids_are_reported(compile_bpf, tmp_path):
    """process_monitor asks for every create's account: a SID nobody names is listed with its
    count in the JSON and the table (its helpers returned -2, as SecLookupAccountSid fails)."""
    monitor = compile_bpf((EXAMPLES.parent / "process_monitor.c").read_text(), "process_monitor")
    rows = [dict(EVENTS[0], token_sid="S-1-5-21-4-4-4-1300"),
            dict(EVENTS[2], token_sid="S-1-5-21-4-4-4-1300"),
            dict(EVENTS[1], token_sid="S-1-5-32-544")]
    code, report, _ = run_json([monitor], write_events(tmp_path, rows))
    assert report["unresolved_sids"] == {"S-1-5-21-4-4-4-1300": 2}
    assert report["summary"]["unresolved_sids"] == 1
    out = io.StringIO()
    main([monitor], write_events(tmp_path, rows), "jit", "table", out, io.StringIO())
    assert "S-1-5-21-4-4-4-1300 (2)" in out.getvalue()
