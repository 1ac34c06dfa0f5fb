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

Every other field a hunter needs is kept (null where the record lacks it): `OriginalFileName`,
`Description`, `Product`, `Company`, `Hashes`, `IntegrityLevel`, `CurrentDirectory`, `User`
(as recorded) and `LogonId` (hex, as an integer). `sysmon_rows` converts a whole frame of raw
records at once; a record that cannot become a row gets its reason (first failure wins).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .columns import Reasons, missing, normalize_guids, ns_to_filetime_column, parse_times, \
    per_value

PROVIDER = "Microsoft-Windows-Sysmon"
EVENT_IDS = {1: "create", 5: "delete"}
WELL_KNOWN_USERS = {("NT AUTHORITY", "SYSTEM"): "S-1-5-18",
                    ("NT AUTHORITY", "LOCAL SERVICE"): "S-1-5-19",
                    ("NT AUTHORITY", "NETWORK SERVICE"): "S-1-5-20"}


class RecordError(ValueError):
    """A process event record that cannot become a row; the message is the reason (short and
    stable, so reports can count rows per reason)."""


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


# raw field -> trace column, kept as text
KEPT_TEXT = {"OriginalFileName": "original_file_name", "Description": "description",
             "Product": "product", "Company": "company", "Hashes": "hashes",
             "IntegrityLevel": "integrity_level", "CurrentDirectory": "current_directory",
             "User": "user"}
RAW_FIELDS = ["_event_id", "_record", "_number", "_file", "_host", "UtcTime", "ProcessId",
              "ParentProcessId", "Image", "CommandLine", "ParentImage", "ProcessGuid",
              "ParentProcessGuid", "LogonId", *KEPT_TEXT]


def pid_values(values, field: str, hex_default: bool = False):
    """(Int64 array, reasons or None per row) for a column of process ids."""
    def one(v):
        if v is None:
            return None, f"{field} missing"
        try:
            return parse_pid(v, field, hex_default), None
        except RecordError as exc:
            return None, str(exc)
    vals, errs = per_value(values, one)
    return vals, errs


def hex_values(values):
    """Hex text (`0x3e7`) or ints as Int64 (unreadable or missing: NA; these are kept
    extras, never a reason to reject)."""
    import pandas as pd

    def one(v):
        if v is None or v == "" or v == "-":
            return None, None
        try:
            k = v if isinstance(v, int) else int(str(v).strip(), 16)
            return (k if -(1 << 63) <= k < (1 << 63) else None), None
        except ValueError:
            return None, None
    vals, _ = per_value(values, one)
    return pd.array(list(vals), dtype="Int64")


def text_column(values):
    """A column of raw values as text (`str` of non-strings; missing stays missing)."""
    import pandas as pd
    s = pd.Series(values, copy=False)
    if isinstance(s.dtype, pd.StringDtype):
        return s
    vals, _ = per_value(s, lambda v: (None if v is None else v if isinstance(v, str) else str(v),
                                      None))
    return pd.Series(vals, dtype=object).astype("string")


def sysmon_rows(raw):
    """Trace rows from a frame of Sysmon EID 1/5 records (columns `RAW_FIELDS`), and the
    reason per row that cannot become one (None: fine)."""
    import pandas as pd
    n = len(raw)
    why = Reasons(n)
    eid = raw["_event_id"].to_numpy(object)
    create = eid == 1
    operation = np.where(create, "create", "delete")
    why.fail(~np.isin(eid, [1, 5]), "Sysmon event is not a process create/exit")
    gone = missing(raw["UtcTime"])
    why.fail(gone, "UtcTime missing")
    ns, bad = parse_times(raw["UtcTime"])
    why.fail(bad, "UtcTime unreadable")
    pid, perr = pid_values(raw["ProcessId"], "ProcessId")
    why.fail(~np.equal(perr, None), perr)
    ppid, pperr = pid_values(raw["ParentProcessId"], "ParentProcessId")
    why.fail(create & ~np.equal(pperr, None), pperr)
    users = raw["User"].to_numpy(object)
    sid, name, domain = (np.array(x, dtype=object) for x in
                         zip(*[split_user(u) for u in _uniques_map(users)[0]])) \
        if n else (np.empty(0, object),) * 3
    codes = _uniques_map(users)[1]
    sid, name, domain = sid[codes], name[codes], domain[codes]
    ft = ns_to_filetime_column(ns)
    cre = pd.Series(create)
    na = lambda s: s.where(cre.to_numpy(), None) if isinstance(s, pd.Series) else s
    rows = pd.DataFrame({
        "time": ns.array, "operation": operation,
        "process_id": pd.array(list(pid), dtype="Int64"),
        "parent_process_id": pd.array([v if c else None for v, c in zip(ppid, create)], dtype="Int64"),
        "image_path": text_column(raw["Image"]).array,
        "token_sid": sid, "account_name": name, "account_domain": domain,
        "host": text_column(raw["_host"]).array, "source": "sysmon",
        "process_guid": normalize_guids(raw["ProcessGuid"]).array,
        "event_id": raw["_event_id"].to_numpy(object), "record_id": raw["_record"].to_numpy(object),
        "record_number": raw["_number"].to_numpy(object), "file": raw["_file"].to_numpy(object),
    })
    rows["creating_process_id"] = rows["parent_process_id"]
    rows["creating_thread_id"] = pd.array([None] * n, dtype="Int64")
    rows["creator_inferred"] = pd.array(create, dtype="boolean")
    rows["creation_time"] = ft.where(cre.to_numpy(), pd.NA).array
    rows["exit_time"] = ft.where(~cre.to_numpy(), pd.NA).array
    rows["command_line"] = na(text_column(raw["CommandLine"])).array
    rows["parent_image"] = na(text_column(raw["ParentImage"])).array
    rows["parent_process_guid"] = na(normalize_guids(raw["ParentProcessGuid"])).array
    for field, column in KEPT_TEXT.items():
        rows[column] = text_column(raw[field]).array
    rows["logon_id"] = hex_values(raw["LogonId"])
    return rows, why.why


def _uniques_map(values):
    import pandas as pd
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return list(uniques) + [None], codes
