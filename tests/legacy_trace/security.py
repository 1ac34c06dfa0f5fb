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
"""
from __future__ import annotations

from typing import Any

from .schema import ns_to_filetime, parse_time_ns
from .sysmon import RecordError, parse_pid, text

PROVIDER = "Microsoft-Windows-Security-Auditing"
EVENT_IDS = {4688: "create", 4689: "delete"}
NULL_SID = "S-1-0-0"


def is_security(rec: dict[str, Any]) -> bool:
    return rec.get("_provider") == PROVIDER or rec.get("_channel") == "Security"


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


def logged_time_ns(rec: dict[str, Any]) -> int:
    value = rec.get("_logged")
    if not value:
        raise RecordError("event time missing")
    try:
        return parse_time_ns(str(value))
    except ValueError:
        raise RecordError("event time unreadable") from None


def _account(rec: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    target = rec.get("TargetUserSid")
    if target and target not in (NULL_SID, "-"):
        return target, text(rec.get("TargetUserName")), text(rec.get("TargetDomainName"))
    sid = rec.get("SubjectUserSid")
    return (sid if sid and sid != "-" else None, text(rec.get("SubjectUserName")),
            text(rec.get("SubjectDomainName")))


def security_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A trace row from a Security 4688 or 4689 record (raises RecordError with the reason)."""
    eid = rec.get("_event_id")
    operation = EVENT_IDS.get(eid)
    if operation is None:
        raise RecordError(f"Security event {eid} is not a process create/exit")
    ns = logged_time_ns(rec)
    sid, name, domain = _account(rec)
    row: dict[str, Any] = {"time": ns, "operation": operation, "token_sid": sid,
                           "account_name": name, "account_domain": domain,
                           "host": text(rec.get("_host")), "source": "security",
                           "event_id": eid, "record_id": rec.get("_record"),
                           "file": rec.get("_file"), "_logged_clock": True}
    if operation == "create":
        pid = parse_pid(rec.get("NewProcessId"), "NewProcessId", hex_default=True)
        ppid = parse_pid(rec.get("ProcessId"), "ProcessId", hex_default=True)
        row.update(process_id=pid, parent_process_id=ppid, creating_process_id=ppid,
                   creating_thread_id=None, creator_inferred=True,
                   creation_time=ns_to_filetime(ns), image_path=text(rec.get("NewProcessName")),
                   command_line=text(rec.get("CommandLine")),
                   parent_image=text(rec.get("ParentProcessName")))
    else:
        row.update(process_id=parse_pid(rec.get("ProcessId"), "ProcessId", hex_default=True),
                   exit_time=ns_to_filetime(ns), exit_code=parse_status(rec.get("Status")),
                   image_path=text(rec.get("ProcessName")), creator_inferred=False)
    return row
