"""The column-wise importer gives the rows, counts and reasons of the per-row importer it
replaced (`legacy_trace`, the oracle) on every real log — plus the fields it used to drop, and
`record_id` now the log's EventRecordID (the old one was the parser's record number)."""
from __future__ import annotations

from dataclasses import astuple

import pandas as pd
import pytest
from conftest import SHARED
from legacy_trace.importer import import_logs as old_import
from test_analysis_oracle import LOGS, rows

from ntoslab.trace import import_logs

SAME = ["time", "operation", "process_id", "parent_process_id", "creating_process_id",
        "creating_thread_id", "creation_time", "exit_time", "exit_code", "image_path",
        "command_line", "token_sid", "account_name", "account_domain", "host", "source",
        "process_key", "parent_key", "creator_inferred", "parent_image", "process_guid",
        "parent_process_guid", "link", "event_id", "file"]


@pytest.mark.skipif(not LOGS, reason="../shared/datasets is not beside the checkout")
@pytest.mark.parametrize("skew", ["report", "correct"])
@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_same_rows_as_the_per_row_importer(path, skew):
    new, old = import_logs([path], clock_skew=skew, progress=False), \
        old_import([path], clock_skew=skew, progress=False)
    assert rows(new.frame[SAME]) == rows(old.frame[SAME])
    for a, b in zip(new.files, old.files):
        assert (a.records, a.imported, a.skipped, a.rejected) == \
            (b.records, b.imported, b.skipped, b.rejected)
        assert [astuple(s) for s in a.skew] == [astuple(s) for s in b.skew]
        assert a.correction_ns == b.correction_ns
    # the EVTX parser's record number is kept as record_number, where the old record_id was
    if path.suffix == ".evtx":
        assert new.frame["record_number"].tolist() == old.frame["record_id"].tolist()


PANACHE = SHARED / "datasets" / "EVTX-ATTACK-SAMPLES" / "PanacheSysmon_vs_AtomicRedTeam01.evtx"


@pytest.mark.skipif(not PANACHE.exists(), reason="../shared/datasets is not beside the checkout")
def test_record_id_is_the_event_record_id_and_sysmon_fields_are_kept():
    import json

    import evtx
    # independent: the raw record of the renamed certutil, read with the evtx package
    raw = None
    for r in evtx.PyEvtxParser(str(PANACHE)).records_json():
        ev = json.loads(r["data"])["Event"]
        d = ev.get("EventData") or {}
        if ev["System"]["EventID"] == 1 and str(d.get("Image", "")).endswith("Temptcm.tmp"):
            raw = (ev["System"]["EventRecordID"], r["event_record_id"], d)
            break
    assert raw is not None
    rid, number, d = raw
    assert rid != number                                  # the two numbers differ in this log
    f = import_logs([PANACHE], progress=False).frame
    row = f[(f.operation == "create") & f.image_path.str.endswith("Temptcm.tmp")].iloc[0]
    assert row.record_id == rid and row.record_number == number
    assert "-decode" in row.command_line
    assert row.description == "CertUtil.exe" == d["Description"]
    assert "OriginalFileName" not in d and pd.isna(row.original_file_name)   # Sysmon 10 has none
    for col, field in (("product", "Product"), ("company", "Company"), ("hashes", "Hashes"),
                       ("integrity_level", "IntegrityLevel"),
                       ("current_directory", "CurrentDirectory"), ("user", "User")):
        assert row[col] == d[field], col
    assert row.logon_id == int(d["LogonId"], 16)
    assert f["logon_id"].dtype == "Int64" and f["description"].dtype == "string"
    # Sysmon 11+ logs have OriginalFileName: kept as recorded
    apt = import_logs([SHARED / "datasets" / "OTRF-Security-Datasets" / "aptsimulator_cobaltstrike.zip"],
                      progress=False).frame
    assert apt["original_file_name"].notna().sum() > 0
    # exits carry none of these: null, not empty strings
    exits = f[f.operation == "delete"]
    assert exits["description"].isna().all()


SEC = SHARED / "datasets" / "splunk-attack_data" / "T1003.001-procdump-capattack" / "Security.evtx"


@pytest.mark.skipif(not SEC.exists(), reason="../shared/datasets is not beside the checkout")
def test_security_fields_are_kept():
    import json

    import evtx
    want = {}
    for r in evtx.PyEvtxParser(str(SEC)).records_json():
        ev = json.loads(r["data"])["Event"]
        eid = ev["System"]["EventID"]
        eid = eid["#text"] if isinstance(eid, dict) else eid
        if eid == 4688:
            d = ev["EventData"]
            want[ev["System"]["EventRecordID"]] = (d.get("TokenElevationType"), d.get("MandatoryLabel"),
                                                   int(d["SubjectLogonId"], 16))
    f = import_logs([SEC], progress=False).frame
    c = f[f.operation == "create"]
    assert len(c) == len(want) > 0
    got = {int(r.record_id): (r.token_elevation_type, r.mandatory_label, r.subject_logon_id)
           for r in c.itertuples()}
    assert got == want


@pytest.mark.skipif(not PANACHE.exists(), reason="../shared/datasets is not beside the checkout")
def test_events_carry_the_kept_fields():
    """A replayed row becomes a ProcessEvent with the log's LogonId (what the emulator's
    bpf_get_current_logon_id answers) and the hunting fields."""
    from ntoslab.hooks.process import ProcessEvent
    f = import_logs([PANACHE], progress=False).frame
    row = f[(f.operation == "create") & f.image_path.str.endswith("Temptcm.tmp")].iloc[0]
    ev = ProcessEvent.from_row(row.to_dict())
    assert ev.logon_id == row.logon_id > 0
    assert ev.description == "CertUtil.exe" and ev.integrity_level == row.integrity_level
    sec = import_logs([SEC], progress=False).frame
    srow = sec[sec.operation == "create"].iloc[0]
    sev = ProcessEvent.from_row(srow.to_dict())
    assert sev.subject_logon_id == srow.subject_logon_id == sev.logon_id
    assert sev.mandatory_label == srow.mandatory_label
