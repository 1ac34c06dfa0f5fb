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
(the integrity level SID) and `SubjectLogonId` (hex, as an integer). `security_rows` converts the
columns of all raw records at once.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..filetime import FILETIME_EPOCH_OFFSET, FILETIME_TICKS_PER_NS
from .columns import Reasons, checked_values, map_values, objects, text_values, times_ns
from .sysmon import RecordError, hex_values, pid_values

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


def _status(v):
    try:
        return parse_status(v), None
    except RecordError as exc:
        return None, str(exc)


def _sid_of(v):
    return v if isinstance(v, str) and v and v != "-" else None


def security_rows(raw):
    """Trace columns (object arrays; `time` int64 ns) from Security 4688/4689 records (`raw`:
    a mapping of each of `RAW_FIELDS` to a column), and the reason per row that cannot become
    one (None: fine)."""
    eid = objects(raw["_event_id"])
    n = len(eid)
    why = Reasons(n)
    c = np.asarray(eid == 4688, bool)
    why.fail(~(c | np.asarray(eid == 4689, bool)), "Security event is not a process create/exit")
    ns, gone, bad = times_ns(raw["_logged"])
    why.fail(gone, "event time missing")
    why.fail(bad, "event time unreadable")
    new_pid, e1 = pid_values(raw["NewProcessId"], "NewProcessId", hex_default=True)
    pid, e2 = pid_values(raw["ProcessId"], "ProcessId", hex_default=True)
    why.fail(c & ~np.equal(e1, None), e1)
    why.fail(~np.equal(e2, None), e2)
    code, e3 = checked_values(objects(raw["Status"]), _status)
    why.fail(~c & ~np.equal(e3, None), e3)
    # the new process's account: the target when it differs from the creator, else the subject
    target = objects(raw["TargetUserSid"])
    use_target = np.fromiter((type(t) is str and bool(t) and t not in (NULL_SID, "-")
                              for t in target.tolist()), bool, n)
    subj = map_values(objects(raw["SubjectUserSid"]), _sid_of)
    sid = np.where(use_target, target, subj)
    name = np.where(use_target, objects(raw["TargetUserName"]),
                    objects(raw["SubjectUserName"]))
    domain = np.where(use_target, objects(raw["TargetDomainName"]),
                      objects(raw["SubjectDomainName"]))
    ft = (ns // FILETIME_TICKS_PER_NS + FILETIME_EPOCH_OFFSET).astype(object)
    none = np.full(n, None, object)
    cre = lambda v: np.where(c, v, none)                 # noqa: E731  (creates only)
    ppid = cre(pid)
    logon = hex_values(raw["SubjectLogonId"])
    cols = {
        "time": ns, "operation": np.where(c, "create", "delete").astype(object),
        "process_id": np.where(c, new_pid, pid), "parent_process_id": ppid,
        "creating_process_id": ppid, "creating_thread_id": none,
        "creation_time": cre(ft), "exit_time": np.where(c, none, ft),
        "exit_code": np.where(c, none, code),
        "image_path": np.where(c, objects(raw["NewProcessName"]),
                               objects(raw["ProcessName"])),
        "command_line": cre(objects(raw["CommandLine"])),
        "token_sid": sid, "account_name": name, "account_domain": domain,
        "host": text_values(raw["_host"]), "source": np.full(n, "security", object),
        "creator_inferred": c, "parent_image": cre(objects(raw["ParentProcessName"])),
        "process_guid": none, "parent_process_guid": none,
        "event_id": eid, "record_id": objects(raw["_record"]),
        "record_number": objects(raw["_number"]), "file": objects(raw["_file"]),
        "token_elevation_type": objects(raw["TokenElevationType"]),
        "mandatory_label": objects(raw["MandatoryLabel"]),
        "subject_logon_id": logon,
        # the creator's session: what bpf_get_current_logon_id answers in the creation callback
        "logon_id": logon,
    }
    return cols, why.why
