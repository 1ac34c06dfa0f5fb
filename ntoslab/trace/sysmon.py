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
(as recorded) and `LogonId` (hex, as an integer). `sysmon_rows` converts the columns of all
raw records at once; a record that cannot become a row gets its reason (first failure wins).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..filetime import FILETIME_EPOCH_OFFSET, FILETIME_TICKS_PER_NS
from ..hooks.accounts import WELL_KNOWN
from .columns import (
    Reasons,
    all_ints,
    checked_values,
    guid_values,
    is_arrow,
    map_values,
    objects,
    text_column,
    text_values,
    times_ns,
    where,
)

PROVIDER = "Microsoft-Windows-Sysmon"
EVENT_IDS = {1: "create", 5: "delete"}
# Sysmon's `User` names the service accounts by name only: their SIDs, from the one table of
# well-known SIDs (hooks/accounts.py; the emulator resolves every other account when it runs)
WELL_KNOWN_USERS = {(domain.upper(), name.upper()): sid for sid, (name, domain) in WELL_KNOWN.items()
                    if sid in ("S-1-5-18", "S-1-5-19", "S-1-5-20")}


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
    if not user or user == "-" or (type(user) is float and user != user):
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
    """(ints, reasons or None per row) for a column of process ids: an int64 array when every
    value is an int (evtx-rs gives ints), else an object array with None where unreadable."""
    x = a = None
    if is_arrow(values) and values.type == "int64":       # evtx-rs ints, read by Arrow
        import pyarrow.compute as pc
        gone = values.is_null().to_numpy(zero_copy_only=False)
        x = pc.fill_null(values, 0).to_numpy(zero_copy_only=False)
    else:
        a = objects(values)
        if all_ints(a, none=True):
            gone = np.equal(a, None)
            try:
                x = np.where(gone, 0, a).astype(np.int64)
            except OverflowError:
                x = None
    if x is not None:
        errs = np.full(len(x), None, object)
        errs[gone] = f"{field} missing"
        out = (x < 0) | (x >= 1 << 32)
        errs[out] = f"{field} out of 32-bit range"
        if not gone.any() and not out.any():
            return x, errs
        res = x.astype(object)
        res[gone | out] = None
        return res, errs
    a = objects(values) if a is None else a

    def one(v):
        if v is None:
            return None, f"{field} missing"
        try:
            return parse_pid(v, field, hex_default), None
        except RecordError as exc:
            return None, str(exc)
    return checked_values(a, one)


def _hex(v):
    if v is None or v == "" or v == "-":
        return None
    try:
        k = v if isinstance(v, int) else int(str(v).strip(), 16)
        return k if -(1 << 63) <= k < (1 << 63) else None
    except ValueError:
        return None


def hex_values(values) -> np.ndarray:
    """Hex text (`0x3e7`) or ints as ints (unreadable or missing: None; these are kept
    extras, never a reason to reject)."""
    return map_values(objects(values), _hex)


def sysmon_rows(raw):
    """Trace columns (object arrays; `time` int64 ns) from Sysmon EID 1/5 records (`raw`: a
    mapping of each of `RAW_FIELDS` to a column), and the reason per row that cannot become
    one (None: fine)."""
    eid = objects(raw["_event_id"])
    n = len(eid)
    why = Reasons(n)
    create = np.asarray(eid == 1, bool)
    why.fail(~(create | np.asarray(eid == 5, bool)), "Sysmon event is not a process create/exit")
    ns, gone, bad = times_ns(raw["UtcTime"])
    why.fail(gone, "UtcTime missing")
    why.fail(bad, "UtcTime unreadable")
    pid, perr = pid_values(raw["ProcessId"], "ProcessId")
    why.fail(~np.equal(perr, None), perr)
    ppid, pperr = pid_values(raw["ParentProcessId"], "ParentProcessId")
    why.fail(create & ~np.equal(pperr, None), pperr)
    users = map_values(objects(raw["User"]), split_user)
    sid, name, domain = (np.array([u[k] for u in users.tolist()] or [None], object)[:n]
                         for k in range(3))
    ft = (ns // FILETIME_TICKS_PER_NS + FILETIME_EPOCH_OFFSET).astype(object)
    none = np.full(n, None, object)

    def cre(v):                                         # creates only
        return where(create, v, None) if is_arrow(v) else np.where(create, v, none)
    ppid_c = cre(ppid)
    cols = {
        "time": ns, "operation": np.where(create, "create", "delete").astype(object),
        "process_id": pid, "parent_process_id": ppid_c, "creating_process_id": ppid_c,
        "creating_thread_id": none, "creation_time": cre(ft),
        "exit_time": np.where(create, none, ft), "exit_code": none,
        "image_path": text_column(raw["Image"]),
        "command_line": cre(text_column(raw["CommandLine"])),
        "token_sid": sid, "account_name": name, "account_domain": domain,
        "host": text_values(raw["_host"]), "source": np.full(n, "sysmon", object),
        "creator_inferred": create, "parent_image": cre(text_column(raw["ParentImage"])),
        "process_guid": guid_values(raw["ProcessGuid"]),
        "parent_process_guid": cre(guid_values(raw["ParentProcessGuid"])),
        "event_id": eid, "record_id": objects(raw["_record"]),
        "record_number": objects(raw["_number"]), "file": objects(raw["_file"]),
    }
    for field, column in KEPT_TEXT.items():
        cols[column] = text_column(raw[field])
    cols["logon_id"] = hex_values(raw["LogonId"])
    return cols, why.why
