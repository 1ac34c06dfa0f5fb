"""Importers on the real logs of ../shared/datasets: every trap its README lists.

Counts are established independently of the importer: by iterating the EVTX records with the
`evtx` package in the test and filtering EventID, or by reading the Mordor JSON lines with the
json module. Other facts (command lines, parents, hex PIDs, exit codes, skew) were read off the
raw records by hand and are cross-checked between Sysmon and Security where both saw them.
"""
from __future__ import annotations

import json
import re
import struct
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED

from ntoslab.hooks.process import ProcessEvent
from ntoslab.trace import import_logs, link_processes, normalize_guid
from ntoslab.trace.importer import import_command
from ntoslab.trace.schema import filetime_to_datetime, read_trace

DATA = SHARED / "datasets"
PANACHE = DATA / "EVTX-ATTACK-SAMPLES" / "PanacheSysmon_vs_AtomicRedTeam01.evtx"
MALDOC = DATA / "EVTX-ATTACK-SAMPLES" / "maldoc_mshta_via_shellbrowserwind_rundll32.evtx"
SPLUNK = DATA / "splunk-attack_data" / "T1003.001-procdump-capattack"
SPLUNK_SEC = SPLUNK / "Security.evtx"
SPLUNK_SYSMON = SPLUNK / "Microsoft-Windows-Sysmon%4Operational.evtx"
APTSIM = DATA / "OTRF-Security-Datasets" / "aptsimulator_cobaltstrike.zip"
LSASS = DATA / "OTRF-Security-Datasets" / "psh_lsass_memory_dump_comsvcs.zip"
PPID_SPOOF = DATA / "extras" / "EVTX-ATTACK-SAMPLES" / "sysmon_10_1_ppid_spoofing.evtx"
SIDELOAD = DATA / "extras" / "EVTX-ATTACK-SAMPLES" / "sideloading_uacbypass_rundll32_injection_c2.evtx"
ALL_FILES = [PANACHE, MALDOC, SPLUNK_SEC, SPLUNK_SYSMON, APTSIM, LSASS, PPID_SPOOF, SIDELOAD]
HOUR_NS = 3600 * 10**9

pytestmark = pytest.mark.skipif(not DATA.exists(), reason="../shared/datasets not present")

_cache: dict = {}


def imported(path: Path, **kw):
    key = (str(path), tuple(sorted(kw.items())))
    if key not in _cache:
        _cache[key] = import_logs([path], progress=False, **kw)
    return _cache[key]


def evtx_event_ids(path: Path) -> Counter:
    """EventID counts straight from the evtx package (the independent count)."""
    import evtx
    ids: Counter = Counter()
    for rec in evtx.PyEvtxParser(str(path)).records_json():
        eid = json.loads(rec["data"])["Event"]["System"]["EventID"]
        ids[eid["#text"] if isinstance(eid, dict) else eid] += 1
    return ids


def mordor_lines(path: Path) -> list[dict]:
    with zipfile.ZipFile(path) as z:
        (member,) = z.namelist()
        return [json.loads(line) for line in z.read(member).decode("utf-8").splitlines() if line]


def ops(frame, source):
    f = frame[frame.source == source]
    return (f.operation == "create").sum(), (f.operation == "delete").sum()


# ----------------------------------------------------------------------------------- counts

@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_file_accounted_for(path):
    """records = imported + skipped + rejected, for every real file; nothing rejected."""
    result = imported(path)
    (report,) = result.files
    assert report.records == report.rows + sum(report.skipped.values()) + \
        sum(report.rejected.values())
    assert not report.rejected and result.rejected.empty
    assert report.rows == len(result.frame) > 0


@pytest.mark.parametrize("path", [PANACHE, MALDOC, SPLUNK_SYSMON, SPLUNK_SEC, PPID_SPOOF, SIDELOAD],
                         ids=lambda p: p.name)
def test_evtx_counts_match_independent_count(path):
    ids = evtx_event_ids(path)
    frame = imported(path).frame
    assert ops(frame, "sysmon") == (ids[1], ids[5])
    assert ops(frame, "security") == (ids[4688], ids[4689])
    assert imported(path).files[0].records == sum(ids.values())


def test_known_counts():
    # Established with the evtx package (see evtx_event_ids) and cross-checked with the EVTX
    # header's next-record number (566 for PanacheSysmon: records 1..565).
    assert ops(imported(PANACHE).frame, "sysmon") == (511, 1)
    assert ops(imported(SPLUNK_SYSMON).frame, "sysmon") == (26, 31)
    assert ops(imported(SPLUNK_SEC).frame, "security") == (72, 73)
    assert ops(imported(MALDOC).frame, "sysmon") == (5, 0)
    assert ops(imported(PPID_SPOOF).frame, "sysmon") == (3, 0)
    assert ops(imported(SIDELOAD).frame, "sysmon") == (7, 0)


EVTX_SKIPPED = {PANACHE: 53, MALDOC: 6, SPLUNK_SYSMON: 372, SPLUNK_SEC: 211, PPID_SPOOF: 2,
                SIDELOAD: 11}       # evtx_event_ids: records that are not EID 1/5/4688/4689


@pytest.mark.parametrize("path", list(EVTX_SKIPPED), ids=lambda p: p.name)
def test_prefilter_changes_nothing(path, monkeypatch):
    """Records the raw-text prefilter skips undecoded are counted as the full decode counts
    them: same rows, counts, reasons and clock samples as with the prefilter turned off and
    every record decoded on its own (orjson)."""
    from dataclasses import astuple

    from ntoslab.trace import intake
    ids = evtx_event_ids(path)
    assert sum(k for e, k in ids.items() if e not in (1, 5, 4688, 4689)) == EVTX_SKIPPED[path]
    fast = import_logs([path], progress=False)
    monkeypatch.setattr(intake, "_other_eid", lambda text: False)
    monkeypatch.setattr(intake, "FAST_EVTX", False)
    full = import_logs([path], progress=False)
    (a,), (b,) = fast.files, full.files
    assert dict(a.skipped) == dict(b.skipped) == \
        {"not a process create/exit (other event ids and providers)": EVTX_SKIPPED[path]}
    assert (a.records, a.imported, a.rejected) == (b.records, b.imported, b.rejected)
    assert [astuple(s) for s in a.skew] == [astuple(s) for s in b.skew]
    pd.testing.assert_frame_equal(fast.frame, full.frame)
    assert fast.summary() == full.summary()


def test_prefilter_reads_the_system_event_id():
    from ntoslab.trace.intake import evtx_prefilter
    head = '{"Event":{"System":{"Provider":{"#attributes":{"Name":"%s"}},"EventID":%s,"V":1}'
    assert evtx_prefilter(head % ("Microsoft-Windows-Security-Auditing", "4624") + "}}")
    for eid in ("4688", "4689", "1", "5", "4688}"):
        assert not evtx_prefilter(head % ("Microsoft-Windows-Security-Auditing", eid) + "}}")
    assert not evtx_prefilter(head % ("Microsoft-Windows-Sysmon", "3") + "}}")   # clock sample
    assert not evtx_prefilter(head % ("X", '{"#text":4624}') + "}}")   # unusual: decoded
    assert not evtx_prefilter('{"Event":{}}')


def test_dirty_header_read_whole():
    """The splunk EVTX files were copied from a live log: the header is flagged dirty and says 1
    chunk, but 17 are there; all 356 Security records are imported (a header-trusting parser gets
    only the first chunk's)."""
    head = SPLUNK_SEC.read_bytes()[:4096]
    chunk_count = struct.unpack_from("<H", head, 42)[0]
    flags = struct.unpack_from("<I", head, 120)[0]
    assert chunk_count == 1 and flags & 1
    assert (SPLUNK_SEC.stat().st_size - 4096) // 65536 == 17
    assert imported(SPLUNK_SEC).files[0].records == 356


@pytest.mark.parametrize("path", [APTSIM, LSASS], ids=lambda p: p.name)
def test_mordor_counts_match_json(path):
    lines = mordor_lines(path)
    c = Counter((d["SourceName"], d["EventID"]) for d in lines)
    frame = imported(path).frame
    assert ops(frame, "sysmon") == (c["Microsoft-Windows-Sysmon", 1], c["Microsoft-Windows-Sysmon", 5])
    assert ops(frame, "security") == (c["Microsoft-Windows-Security-Auditing", 4688],
                                      c["Microsoft-Windows-Security-Auditing", 4689])
    assert imported(path).files[0].records == len(lines)


def test_aptsimulator_known_counts():
    frame = imported(APTSIM).frame
    assert ops(frame, "sysmon") == (37, 36) and ops(frame, "security") == (36, 36)


def test_source_filter():
    sec = imported(APTSIM, source="security")
    assert set(sec.frame.source) == {"security"} and len(sec.frame) == 72
    assert sec.files[0].skipped["sysmon event excluded by source=security"] == 73
    sysm = imported(LSASS, source="sysmon")
    assert set(sysm.frame.source) == {"sysmon"} and len(sysm.frame) == 4


# ------------------------------------------------------------------------ Atomic Red Team file

def test_atomic_red_team_process_and_parent_through_pid_reuse():
    """bitsadmin.exe /create AtomicBITS (pid 4508) was started by cmd.exe pid 752 at
    14:48:30.619; pid 752 was reused four more times later (cmd.exe, then three PING.EXE), so
    the parent is the nearest earlier creation, not the last one with that pid."""
    f = imported(PANACHE).frame
    child = f[(f.operation == "create") & (f.command_line == "bitsadmin.exe  /create AtomicBITS")]
    assert len(child) == 1
    child = child.iloc[0]
    assert child.process_id == 4508 and child.parent_process_id == 752
    assert child.image_path == r"C:\Windows\System32\bitsadmin.exe"
    assert str(child.time) == "2019-07-19 14:48:30.655000+00:00"
    instances = f[(f.operation == "create") & (f.process_id == 752)]
    assert list(instances.image_path.str.rsplit("\\", n=1).str[-1]) == \
        ["cmd.exe", "cmd.exe", "PING.EXE", "PING.EXE", "PING.EXE"]
    parent = f[f.process_key == child.parent_key].iloc[0]
    assert parent.process_key == "{747f3d96-d83e-5d31-0000-0010f0d02e00}"
    assert str(parent.time) == "2019-07-19 14:48:30.619000+00:00" and child.link == "guid"
    # the same answer without GUIDs (pid + nearest earlier creation + image)
    nog = link_processes(f.assign(process_guid=None, parent_process_guid=None))
    row = nog[nog.command_line == "bitsadmin.exe  /create AtomicBITS"].iloc[0]
    assert row.link == "pid"
    assert nog[nog.process_key == row.parent_key].iloc[0].time == parent.time


def test_pid_reuse_never_links_wrong_parent():
    """PanacheSysmon has 108 reused pids. Linking by pid + time alone agrees with Sysmon's GUIDs
    for every one of the 499 children whose parent was logged, and links no child the GUIDs
    leave unlinked."""
    f = imported(PANACHE).frame
    creates = f[f.operation == "create"]
    assert (creates.process_id.value_counts() > 1).sum() == 108
    nog = link_processes(f.assign(process_guid=None, parent_process_guid=None))
    # map the pid-mode keys (host:pid:creation_time) back to the GUID keys, row by row
    to_guid = dict(zip(nog.process_key, f.process_key))
    got = nog.parent_key.map(lambda k: to_guid.get(k) if isinstance(k, str) else None)
    c = f.operation == "create"
    assert (f[c].link == "guid").sum() == 499 and (f[c].link == "unlinked").sum() == 12
    assert list(got[c].fillna("-")) == list(f[c].parent_key.fillna("-"))


def test_guid_normalisation():
    assert normalize_guid("747F3D96-D83E-5D31-0000-0010F0D02E00") == \
        normalize_guid("{747f3d96-d83e-5d31-0000-0010f0d02e00}") == \
        "{747f3d96-d83e-5d31-0000-0010f0d02e00}"
    assert normalize_guid("not-a-guid") is None and normalize_guid(None) is None
    f = imported(PANACHE).frame
    assert f.process_key.str.fullmatch(r"\{[0-9a-f-]{36}\}").all()
    # the one EID 5 (a temp file running as a process) carries its creation's key
    exit_row = f[f.operation == "delete"].iloc[0]
    assert exit_row.process_id == 6260 and exit_row.link == "guid"
    create = f[(f.operation == "create") & (f.process_key == exit_row.process_key)].iloc[0]
    assert create.image_path.endswith("Temptcm.tmp") and \
        exit_row.creation_time == create.creation_time


# ------------------------------------------------------------------------------ Security log

def test_security_hex_pids_and_cross_check_with_sysmon():
    """psh_lsass: 4688 NewProcessId 0x12d8 / ProcessId 0x17d4 are Sysmon's ProcessId 4824 /
    ParentProcessId 6100 for the same rundll32 comsvcs.dll MiniDump."""
    f = imported(LSASS).frame
    creates = f[f.operation == "create"].set_index("source")
    sec, sysm = creates.loc["security"], creates.loc["sysmon"]
    assert sec.process_id == 0x12D8 == 4824 == sysm.process_id
    assert sec.parent_process_id == 0x17D4 == 6100 == sysm.parent_process_id
    assert "comsvcs.dll MiniDump 756" in sec.command_line == sysm.command_line
    assert sec.token_sid == "S-1-5-21-3940915590-64593676-1414006259-500"
    assert sec.parent_image.endswith(r"WindowsPowerShell\v1.0\powershell.exe")
    assert sec.creating_process_id == 6100 and sec.creator_inferred
    assert pd.isna(sec.creating_thread_id)


def test_exit_status_codes():
    """4689 Status, hex, as the unsigned 32-bit exit code: tshark.exe (pid 3556) exited with
    0xc000013a (STATUS_CONTROL_C_EXIT), procdump.exe pid 6168 with 0xfffffffe."""
    f = imported(SPLUNK_SEC).frame
    exits = f[f.operation == "delete"]
    assert Counter(exits.exit_code) == {0: 63, 0xFFFFFFFE: 4, 1: 2, 0xFFFFFFFF: 2, 0xFF: 1,
                                        0xC000013A: 1}
    tshark = exits[exits.exit_code == 0xC000013A].iloc[0]
    assert tshark.exit_code == 3221225786 and tshark.process_id == 3556
    assert tshark.image_path == r"C:\Program Files\Wireshark\tshark.exe"
    proc = exits[exits.process_id == 6168].iloc[0]
    assert proc.exit_code == 0xFFFFFFFE and proc.image_path.endswith(r"T1003.001\bin\procdump.exe")
    # paired with its creation (4688) by pid + image, so it carries the creation's key and time
    create = f[(f.operation == "create") & (f.process_key == proc.process_key)].iloc[0]
    assert proc.link == "pid" and create.process_id == 6168
    assert proc.creation_time == create.creation_time < proc.exit_time
    # Sysmon EID 5 has no exit code
    assert imported(SPLUNK_SYSMON).frame.exit_code.isna().all()


def test_exits_without_creation_and_parents_before_log():
    f = imported(SPLUNK_SEC).frame
    unpaired = f[(f.operation == "delete") & (f.link == "unpaired")]
    assert len(unpaired) == 2 and unpaired.parent_key.isna().all()
    assert unpaired.process_key.str.contains(":exit:").all()
    # powershell (0xc8c = 3212) started before the log: its children have no parent_key
    kids = f[(f.operation == "create") & (f.parent_process_id == 0xC8C)]
    assert len(kids) > 0 and kids.parent_key.isna().all() and (kids.link == "unlinked").all()
    s = imported(SPLUNK_SYSMON).frame
    lone = s[(s.operation == "delete") & (s.link == "unpaired")]
    assert len(lone) == 6
    assert r"C:\Users\Administrator\capattack\lib\Sysmon64.exe" in set(lone.image_path)
    assert lone.process_key.str.fullmatch(r"\{[0-9a-f-]{36}\}").all()   # their own GUID
    assert s[s.operation == "create"].process_key.is_unique


def test_question_mark_parents():
    f = imported(MALDOC).frame
    q = f[f.parent_image == "?"]
    assert sorted(q.process_id) == [11196, 11324]
    assert q.parent_key.isna().all()
    # rundll32 is linked to mshta (the COM route), not to Office
    r = f[f.image_path == r"C:\Windows\SysWOW64\rundll32.exe"].iloc[0]
    assert f[f.process_key == r.parent_key].iloc[0].image_path == r"C:\Windows\SysWOW64\mshta.exe"


def test_guids_that_disagree_fall_back_to_pid():
    """aptsimulator: CreateNamedPipe.exe pid 7444 was created with GUID …-5d60-4001…, but its
    conhost child and its own EID 5 name GUID …-8309-…0300, which no EID 1 carries."""
    f = imported(APTSIM).frame
    s = f[f.source == "sysmon"]
    pipe = s[(s.operation == "create") & (s.process_id == 7444)].iloc[0]
    assert pipe.process_key == "{e2c04bb9-08d0-60c4-5d60-400100000000}"
    child = s[(s.operation == "create") & (s.parent_process_id == 7444)].iloc[0]
    assert child.parent_process_guid == "{e2c04bb9-08d0-60c4-8309-000000000300}"
    assert child.parent_key == pipe.process_key and child.link == "pid"
    exit_row = s[(s.operation == "delete") & (s.process_id == 7444)].iloc[0]
    assert exit_row.process_guid == "{e2c04bb9-08d0-60c4-8309-000000000300}"
    assert exit_row.process_key == pipe.process_key and exit_row.link == "pid"
    assert (s[s.operation == "delete"].link != "unpaired").all()


def test_ppid_spoofing_and_sideloading_files():
    # recorded parents are what the log says (the spoofed PPID), never the logger
    f = imported(PPID_SPOOF).frame
    assert list(f.process_id) == [7708, 404, 4792]
    assert list(f.parent_process_id) == [4668, 584, 584]
    assert list(f.token_sid.fillna("-")) == ["-", "S-1-5-18", "S-1-5-19"]
    g = imported(SIDELOAD).frame
    word = g[g.image_path == r"C:\Users\IEUser\AppData\Roaming\WINWORD.exe"].iloc[0]
    kids = g[g.parent_key == word.process_key]
    assert set(kids.image_path.str.rsplit("\\", n=1).str[-1]) == \
        {"rundll32.exe", "explorer.exe", "WINWORD.exe", "cmd.exe"}


# ------------------------------------------------------------------------------ clock skew

def test_mordor_clock_skew_reported_not_applied():
    result = imported(APTSIM)
    (skew,) = result.skews
    assert skew.field == "@timestamp" and skew.samples == 2264 and skew.significant
    assert skew.median_ns == 16 * HOUR_NS - 10_000_000            # 15h59m59.990s
    assert skew.correction_ns == 16 * HOUR_NS
    assert "CLOCK SKEW" in result.summary()
    # by default Security (log clock) rows keep their recorded times: 16 h before Sysmon's
    f = result.frame
    sec = f[(f.source == "security") & (f.operation == "create")].time.min()
    sysm = f[(f.source == "sysmon") & (f.operation == "create")].time.min()
    assert 15 * HOUR_NS < (sysm - sec).value < 17 * HOUR_NS


def test_mordor_clock_skew_correction():
    (skew,) = imported(LSASS).skews
    assert skew.field == "TimeCreated" and skew.correction_ns == 16 * HOUR_NS
    f = imported(LSASS, clock_skew="correct").frame
    assert imported(LSASS, clock_skew="correct").files[0].correction_ns == 16 * HOUR_NS
    creates = f[f.operation == "create"].set_index("source")
    # 4688 TimeCreated 07:50:05.910 + 16 h == Sysmon UtcTime 23:50:05.910
    assert creates.loc["security"].time == creates.loc["sysmon"].time == \
        pd.Timestamp("2020-10-18 23:50:05.910", tz="UTC")
    assert filetime_to_datetime(int(creates.loc["security"].creation_time)) == \
        creates.loc["security"].time
    # an explicit offset (seconds) works too; Sysmon rows never move
    g = import_logs([LSASS], clock_skew=3600, progress=False).frame
    assert g[g.source == "sysmon"].time.tolist() == f[f.source == "sysmon"].time.tolist()


def test_evtx_clocks_agree():
    for path in (PANACHE, SPLUNK_SYSMON):
        (skew,) = imported(path).skews
        assert not skew.significant and skew.correction_ns == 0 and abs(skew.median_ns) < 10**9


# ---------------------------------------------------------------- zip, rejected rows, command

def test_evtx_inside_zip_and_rejected_lines(tmp_path):
    archive = tmp_path / "logs.zip"
    bad = tmp_path / "bad.jsonl"
    lines = mordor_lines(LSASS)
    eid1 = next(d for d in lines if d["EventID"] == 1 and d["SourceName"] == "Microsoft-Windows-Sysmon")
    broken = dict(eid1, ProcessId="lots")
    no_time = {k: v for k, v in eid1.items() if k != "UtcTime"}
    bad.write_text("\n".join([json.dumps(eid1), "{not json", json.dumps(broken),
                              json.dumps(no_time), "[1, 2]"]) + "\n")
    with zipfile.ZipFile(archive, "w") as z:
        z.write(MALDOC, "inner/" + MALDOC.name)
        z.write(bad, "bad.jsonl")
        z.writestr("readme.bin", b"\x00\x01binary")
    result = import_logs([archive], progress=False)
    f = result.frame
    assert len(f) == 5 + 1 and set(f.file.str.split("!").str[-1]) == \
        {"inner/" + MALDOC.name, "bad.jsonl"}
    assert result.reasons() == Counter({"not valid JSON (Expecting property name enclosed in "
                                        "double quotes)": 1,
                                        "sysmon 1: ProcessId is not a number": 1,
                                        "sysmon 1: UtcTime missing": 1,
                                        "a JSON list, expected an object": 1,
                                        "neither EVTX, a zip archive nor JSON lines": 1})
    assert len(result.rejected) == 5
    # where each rejected record is: its line (these Mordor lines carry no EventRecordID)
    assert set(result.rejected.record_number.dropna()) == {2, 3, 4, 5}
    assert result.rejected.record_id.isna().all()
    report = result.files[0]
    assert report.records == report.rows + sum(report.skipped.values()) + \
        sum(report.rejected.values())


def test_import_command(tmp_path, capsys):
    out = tmp_path / "trace.parquet"
    rej = tmp_path / "rejected.csv"
    code = import_command([str(LSASS), str(SPLUNK_SEC), "-o", str(out), "--clock-skew", "correct",
                           "--rejected", str(rej), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0
    assert "psh_lsass_memory_dump_comsvcs.zip: 184 records -> 8 rows" in err
    assert "Security.evtx: 356 records -> 145 rows" in err
    assert re.search(r"skipped +211 +not a process create/exit", err)
    assert "CLOCK SKEW" in err and "corrected log-clock times by +16.00 h" in err
    clean, rejected = read_trace(out)
    assert len(clean) == 153 and rejected.empty
    assert clean.time.is_monotonic_increasing
    assert import_command([str(LSASS), "-o", str(out), "--source", "security", "--no-progress"]) == 0
    assert set(pd.read_parquet(out).source) == {"security"}
    assert import_command([str(tmp_path / "missing.evtx"), "-o", str(out)]) == 2
    assert import_command(["-o", str(out)]) == 2
    assert import_command([str(LSASS), "-o", str(out), "--clock-skew", "sideways"]) == 2


# ------------------------------------------------------------------------ replay readiness

def test_every_imported_row_is_an_event():
    result = import_logs(ALL_FILES, progress=False)
    assert len(result.frame) == 882 and result.rejected.empty
    for row in result.frame.to_dict("records"):
        ev = ProcessEvent.from_row(row)
        assert ev.process_id == row["process_id"]
        if ev.operation == "create":
            assert ev.creating_process_id == ev.parent_process_id and row["creator_inferred"]
    assert (result.frame.creator_inferred == (result.frame.operation == "create")).all()


PROGRAM = ('#include "bpf_helpers.h"\n#include "ebpf_ntos_hooks.h"\n'
           'SEC("process") int P(process_md_t* c) { return 0; }\n')


def test_replay_real_log(compile_bpf):
    import ntoslab
    frame = pd.concat([imported(PANACHE).frame, imported(SPLUNK_SEC).frame], ignore_index=True)
    obj = compile_bpf(PROGRAM, "trace_replay")
    with ntoslab.emulator() as hook:
        hook.attach(hook.load(obj).program("P"))
        verdicts = hook.replay(frame, progress=False)
    assert len(verdicts) == len(frame) == 657
    assert verdicts.error.isna().all()
    assert (verdicts.denied == False).all()  # noqa: E712
    assert list(verdicts.process_id) == list(frame.process_id)


def test_processes_in_both_sysmon_and_security_are_reported():
    """aptsimulator: 37 Sysmon creations, 36 of which Security also recorded (issue 13's count:
    the tree showed 73 processes)."""
    result = imported(APTSIM)
    twice = result.seen_twice()
    security = result.frame[(result.frame.source == "security") &
                            (result.frame.operation == "create")]
    sysmon = result.frame[(result.frame.source == "sysmon") &
                          (result.frame.operation == "create")]
    assert (len(sysmon), len(security), len(twice)) == (37, 36, 36)
    f = result.frame
    for row in twice.itertuples(index=False):
        a, b = f.loc[row.sysmon_row], f.loc[row.security_row]
        assert (a.source, b.source) == ("sysmon", "security")
        assert a.process_id == b.process_id and a.host == b.host
        # the file's two clocks are 16 h apart (reported as its skew): the pair is that apart
        skew = max(abs(s.median_ns) for s in result.skews if s.significant) / 1e9
        assert abs(abs((a.time - b.time).total_seconds()) - skew) < 2
    assert "seen twice: 36 process creation(s)" in result.summary()
    assert "--source sysmon" in result.summary()
    # one source only: nothing to report
    only = import_logs([APTSIM], source="sysmon", progress=False)
    assert len(only.seen_twice()) == 0 and "seen twice" not in only.summary()


# ------------------------------------------------------- trace-schema inputs, unstorable text

@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_trace_schema_files_import_and_summarise(tmp_path, suffix):
    """Files already in the trace schema (as `ntoslab import -o` or `ntoslab capture` wrote
    them, with or without the importer's extra columns) pass through, and the summary counts
    their links (null where the file has none) instead of failing on the missing column."""
    from ntoslab.trace.schema import COLUMNS, write_trace
    log = imported(MALDOC).frame
    full, bare = tmp_path / f"full{suffix}", tmp_path / f"bare{suffix}"
    write_trace(log, full)
    write_trace(log[COLUMNS], bare)                      # no link, file, record columns
    result = import_logs([full, bare, PPID_SPOOF], progress=False)
    text = result.summary()
    assert len(result.frame) == 2 * len(log) + len(imported(PPID_SPOOF).frame)
    assert [f.rows for f in result.files[:2]] == [len(log), len(log)]
    assert result.rejected.empty
    links = result.frame.groupby(["file"], dropna=False)["link"].count()
    assert links.get(str(MALDOC), 0) == len(log)           # the full file kept its links
    assert "links: " in text and "<NA>" in text            # the bare one: counted as null
    assert f"total: {len(result.frame)} rows imported, 0 records rejected" in text


def test_lone_surrogate_is_a_named_row_error(tmp_path):
    """A JSON `\\udcff` escape decodes to a lone surrogate, which no text column can hold: the
    row is rejected naming the field, the code point and where, in a trace-schema file and in a
    Mordor log alike; every other row is imported and nothing raises."""
    from ntoslab.trace.schema import read_trace, write_trace
    trace = tmp_path / "trace.jsonl"
    write_trace(imported(PPID_SPOOF).frame, trace)
    lines = trace.read_text().splitlines()
    row = json.loads(lines[1])
    row["command_line"] = "cmd /c \udcff"
    lines[1] = json.dumps(row)                      # json writes the lone surrogate as \udcff
    trace.write_text("\n".join(lines) + "\n")
    mordor = tmp_path / "mordor.json"
    events = [d for d in mordor_lines(LSASS) if d["EventID"] == 1 and
              d["SourceName"] == "Microsoft-Windows-Sysmon"]
    events[0] = dict(events[0], Image="C:\\x\udc80.exe")
    mordor.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    result = import_logs([trace, mordor], progress=False)
    assert result.reasons() == Counter({
        "trace row: command_line: lone surrogate U+DCFF at character 7 cannot be encoded as text": 1,
        "sysmon 1: image_path: lone surrogate U+DC80 at character 4 cannot be encoded as text": 1})
    assert len(result.frame) == len(lines) - 1 + len(events) - 1
    assert "REJECTED" in result.summary()
    clean, rejected = read_trace(trace)                     # the schema reader as well
    assert len(clean) == len(lines) - 1 and list(rejected["row"]) == [1]


def test_values_that_are_not_text_become_text(tmp_path):
    """Mordor fields are free-form JSON: a number or a list where text belongs is kept as its
    `str` (nothing rejected, nothing raised); a NaN (read by the lenient JSON fallback) is
    missing."""
    event = next(d for d in mordor_lines(LSASS) if d["EventID"] == 1 and
                 d["SourceName"] == "Microsoft-Windows-Sysmon")
    odd = dict(event, Image=42, CommandLine=["a", "b"], Company=float("nan"))
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(event) + "\n" + json.dumps(odd) + "\n")   # NaN: not orjson's JSON
    result = import_logs([path], progress=False)
    assert result.rejected.empty and len(result.frame) == 2
    row = result.frame[result.frame.record_number == 2].iloc[0]
    assert (row.image_path, row.command_line) == ("42", "['a', 'b']")
    assert row.company is pd.NA


def test_command_line_longer_than_a_unicode_string_is_rejected(tmp_path):
    """A UNICODE_STRING holds 32767 UTF-16 characters: a command line of that many characters
    (here non-ASCII, 2 UTF-8 bytes each) is imported, one more is a named row error; a
    lone-surrogate row beside it keeps its own reason."""
    events = [d for d in mordor_lines(LSASS) if d["EventID"] == 1 and
              d["SourceName"] == "Microsoft-Windows-Sysmon"]
    ok, long, odd = (dict(events[0], CommandLine="é" * 32767), dict(events[0], CommandLine="é" * 32768),
                     dict(events[0], CommandLine="x\udcff"))
    path = tmp_path / "long.json"
    path.write_text("\n".join(json.dumps(e) for e in (ok, long, odd)) + "\n")
    result = import_logs([path], progress=False)
    assert result.reasons() == Counter({
        "sysmon 1: command_line is 32768 characters, more than a UNICODE_STRING holds (32767)": 1,
        "sysmon 1: command_line: lone surrogate U+DCFF at character 1 cannot be encoded as text": 1})
    assert result.frame.command_line.tolist() == ["é" * 32767]
    assert list(result.rejected.record_number) == [2, 3]
