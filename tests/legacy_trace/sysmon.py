"""Sysmon process events (EID 1 create, EID 5 exit) as trace rows.

Field mapping (datasets README): `ProcessId`/`ParentProcessId` are decimal (evtx-rs gives ints,
Mordor strings); `UtcTime` (ms, UTC, no zone) is both the event `time` and `creation_time` /
`exit_time`; `Image`, `CommandLine`, `ParentImage` (may be `?`); `User` is `DOMAIN\\name`, not a
SID — well-known service accounts (SYSTEM, LOCAL SERVICE, NETWORK SERVICE) get their SID, other
rows have `token_sid` null. `ProcessGuid`/`ParentProcessGuid` are normalised by
`keys.normalize_guid` (evtx-rs prints them upper-case without braces, Mordor lower-case with
braces). Sysmon records no creating process/thread (`Execution ProcessID/ThreadID` is the Sysmon
service) and no exit code: creates get `creating_process_id = parent_process_id`,
`creating_thread_id` null and `creator_inferred = True`; exits have `exit_code` null.
"""
from __future__ import annotations

from typing import Any

from .keys import normalize_guid
from .schema import ns_to_filetime, parse_time_ns

PROVIDER = "Microsoft-Windows-Sysmon"
EVENT_IDS = {1: "create", 5: "delete"}
WELL_KNOWN_USERS = {("NT AUTHORITY", "SYSTEM"): "S-1-5-18",
                    ("NT AUTHORITY", "LOCAL SERVICE"): "S-1-5-19",
                    ("NT AUTHORITY", "NETWORK SERVICE"): "S-1-5-20"}


class RecordError(ValueError):
    """A process event record that cannot become a row; the message is the reason (short and
    stable, so reports can count rows per reason)."""


def is_sysmon(rec: dict[str, Any]) -> bool:
    return rec.get("_provider") == PROVIDER or \
        str(rec.get("_channel") or "").startswith("Microsoft-Windows-Sysmon")


def parse_pid(value: Any, field: str, hex_default: bool = False) -> int:
    """A process id as an int: ints pass; strings are decimal, or hex with `0x` (Security writes
    `0x12d8`). Raises RecordError naming the field."""
    if value is None or value == "":
        raise RecordError(f"{field} missing")
    if isinstance(value, bool):
        raise RecordError(f"{field} is not a number")
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip()
        try:
            n = int(text, 16) if text.lower().startswith("0x") or hex_default else int(text)
        except ValueError:
            raise RecordError(f"{field} is not a number") from None
    if not 0 <= n < 1 << 32:
        raise RecordError(f"{field} out of 32-bit range")
    return n


def text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def split_user(user: Any) -> tuple[str | None, str | None, str | None]:
    """(token_sid, account_name, account_domain) from Sysmon's `User` (`DOMAIN\\name`)."""
    if not user or user == "-":
        return None, None, None
    domain, _, name = str(user).rpartition("\\")
    domain = domain or None
    sid = WELL_KNOWN_USERS.get(((domain or "").upper(), name.upper()))
    return sid, name, domain


def sysmon_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A trace row from a Sysmon EID 1 or 5 record (raises RecordError with the reason)."""
    eid = rec.get("_event_id")
    operation = EVENT_IDS.get(eid)
    if operation is None:
        raise RecordError(f"Sysmon event {eid} is not a process create/exit")
    utc = rec.get("UtcTime")
    if not utc:
        raise RecordError("UtcTime missing")
    try:
        ns = parse_time_ns(str(utc))
    except ValueError:
        raise RecordError("UtcTime unreadable") from None
    pid = parse_pid(rec.get("ProcessId"), "ProcessId")
    sid, name, domain = split_user(rec.get("User"))
    row: dict[str, Any] = {
        "time": ns, "operation": operation, "process_id": pid,
        "image_path": text(rec.get("Image")), "token_sid": sid, "account_name": name,
        "account_domain": domain, "host": text(rec.get("_host")), "source": "sysmon",
        "process_guid": normalize_guid(rec.get("ProcessGuid")),
        "event_id": eid, "record_id": rec.get("_record"), "file": rec.get("_file"),
    }
    if operation == "create":
        ppid = parse_pid(rec.get("ParentProcessId"), "ParentProcessId")
        row.update(parent_process_id=ppid, creating_process_id=ppid, creating_thread_id=None,
                   creator_inferred=True, creation_time=ns_to_filetime(ns),
                   command_line=text(rec.get("CommandLine")),
                   parent_image=text(rec.get("ParentImage")),
                   parent_process_guid=normalize_guid(rec.get("ParentProcessGuid")))
    else:
        row.update(exit_time=ns_to_filetime(ns), creator_inferred=False)
    return row
