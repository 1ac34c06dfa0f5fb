"""Security audit process events (4688 create, 4689 exit) as trace rows.

Field mapping (datasets README, Microsoft's event documentation):

- 4688: `NewProcessId` (hex string, `0x12d8`) is the new process, `ProcessId` (hex) its parent
  ("Creator Process ID"), `NewProcessName`, `CommandLine` (absent or empty unless the
  command-line audit policy is on), `ParentProcessName` (event version 2). The new process's
  account: `TargetUserSid`/`TargetUserName`/`TargetDomainName` when the target is not `S-1-0-0`
  (the token differs from the creator's), else the creator's `SubjectUserSid`/... .
- 4689: `ProcessId` (hex), `ProcessName`, `Status`: the exit code, hex. `exit_code` holds it as
  the **unsigned** 32-bit value (`0xc000013a` -> 3221225786, `0xfffffffe` -> 4294967294), as
  `process_md_t.process_exit_code` (a UINT32) would carry it; `schema.validate` folds negative
  codes from other sources to the same form.
- Times: the only clock is `System/TimeCreated` (Mordor `@timestamp`/`TimeCreated`), so `time`,
  `creation_time` and `exit_time` come from it — and in Mordor files it can be hours off; see
  `clock.py`.

No creating process/thread is logged: creates get `creating_process_id = parent_process_id`,
`creating_thread_id` null, `creator_inferred = True`.

Kept as well (null where absent): 4688 `TokenElevationType` (`%%1936`...), `MandatoryLabel`
(the integrity level SID) and `SubjectLogonId` (hex, as an integer). `security_rows` converts a
whole frame of raw records at once.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .columns import Reasons, missing, ns_to_filetime_column, parse_times, per_value
from .sysmon import RecordError, hex_values, pid_values, text_column

PROVIDER = "Microsoft-Windows-Security-Auditing"
EVENT_IDS = {4688: "create", 4689: "delete"}
NULL_SID = "S-1-0-0"


def parse_status(value: Any) -> int:
    """A 4689 `Status` (hex text, or an int) as the unsigned 32-bit exit code."""
    if value is None or value == "":
        raise RecordError("Status missing")
    try:
        n = value if isinstance(value, int) else int(str(value).strip(), 16)
    except ValueError:
        raise RecordError("Status is not hex") from None
    if not -(1 << 31) <= n < 1 << 32:
        raise RecordError("Status out of 32-bit range")
    return n & 0xFFFF_FFFF


RAW_FIELDS = ["_event_id", "_record", "_number", "_file", "_host", "_logged", "NewProcessId",
              "ProcessId", "NewProcessName", "CommandLine", "ParentProcessName", "ProcessName",
              "Status", "TargetUserSid", "TargetUserName", "TargetDomainName", "SubjectUserSid",
              "SubjectUserName", "SubjectDomainName", "TokenElevationType", "MandatoryLabel",
              "SubjectLogonId"]


def security_rows(raw):
    """Trace rows from a frame of Security 4688/4689 records (columns `RAW_FIELDS`), and the
    reason per row that cannot become one (None: fine)."""
    import pandas as pd
    n = len(raw)
    why = Reasons(n)
    eid = raw["_event_id"].to_numpy(object)
    create = eid == 4688
    why.fail(~np.isin(eid, [4688, 4689]), "Security event is not a process create/exit")
    why.fail(missing(raw["_logged"]), "event time missing")
    ns, bad = parse_times(raw["_logged"])
    why.fail(bad, "event time unreadable")
    new_pid, e1 = pid_values(raw["NewProcessId"], "NewProcessId", hex_default=True)
    pid, e2 = pid_values(raw["ProcessId"], "ProcessId", hex_default=True)
    why.fail(create & ~np.equal(e1, None), e1)
    why.fail(~np.equal(e2, None), e2)

    def status(v):
        try:
            return parse_status(v), None
        except RecordError as exc:
            return None, str(exc)
    code, e3 = per_value(raw["Status"], status)
    why.fail(~create & ~np.equal(e3, None), e3)
    # the new process's account: the target when it differs from the creator, else the subject
    target = raw["TargetUserSid"].astype(object).to_numpy()
    use_target = np.array([bool(t) and t not in (NULL_SID, "-") if isinstance(t, str) else False
                           for t in target], bool)
    subj = raw["SubjectUserSid"].astype(object).to_numpy()
    subj = np.array([s if isinstance(s, str) and s and s != "-" else None for s in subj], object)
    sid = np.where(use_target, target, subj)
    name = np.where(use_target, text_column(raw["TargetUserName"]).astype(object),
                    text_column(raw["SubjectUserName"]).astype(object))
    domain = np.where(use_target, text_column(raw["TargetDomainName"]).astype(object),
                      text_column(raw["SubjectDomainName"]).astype(object))
    ft = ns_to_filetime_column(ns)
    c = create
    ints = lambda vals, mask: pd.array([v if m else None for v, m in zip(vals, mask)], dtype="Int64")
    rows = pd.DataFrame({
        "time": ns.array, "operation": np.where(c, "create", "delete"),
        "process_id": ints(np.where(c, new_pid, pid), np.ones(n, bool)),
        "parent_process_id": ints(pid, c),
        "token_sid": pd.array(list(sid), dtype="string"),
        "account_name": pd.array([None if pd.isna(v) else v for v in name], dtype="string"),
        "account_domain": pd.array([None if pd.isna(v) else v for v in domain], dtype="string"),
        "host": text_column(raw["_host"]).array, "source": "security",
        "event_id": raw["_event_id"].to_numpy(object), "record_id": raw["_record"].to_numpy(object),
        "record_number": raw["_number"].to_numpy(object), "file": raw["_file"].to_numpy(object),
    })
    rows["creating_process_id"] = rows["parent_process_id"]
    rows["creating_thread_id"] = pd.array([None] * n, dtype="Int64")
    rows["creator_inferred"] = pd.array(c, dtype="boolean")
    rows["creation_time"] = ft.where(c, pd.NA).array
    rows["exit_time"] = ft.where(~c, pd.NA).array
    rows["exit_code"] = ints(code, ~c)
    image = np.where(c, text_column(raw["NewProcessName"]).astype(object),
                     text_column(raw["ProcessName"]).astype(object))
    rows["image_path"] = pd.array([None if pd.isna(v) else v for v in image], dtype="string")
    rows["command_line"] = text_column(raw["CommandLine"]).where(c, None).array
    rows["parent_image"] = text_column(raw["ParentProcessName"]).where(c, None).array
    rows["token_elevation_type"] = text_column(raw["TokenElevationType"]).array
    rows["mandatory_label"] = text_column(raw["MandatoryLabel"]).array
    rows["subject_logon_id"] = hex_values(raw["SubjectLogonId"])
    # the creator's session: what bpf_get_current_logon_id answers in the creation callback
    rows["logon_id"] = rows["subject_logon_id"]
    rows["_logged_clock"] = True
    return rows, why.why
