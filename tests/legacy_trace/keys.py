"""`process_key` / `parent_key`: one key per process instance, children linked to parents and
exits paired to creations, robust to PID reuse.

Keys (ARCHITECTURE.md):
- a Sysmon process is keyed by its `ProcessGuid`, normalised to lower case with braces
  (`{e2c04bb9-08c3-60c4-1c17-400100000000}`), whatever the log printed;
- anything else by `host:pid:creation_time` (creation_time in FILETIME ticks);
- an exit carries its creation's key; an exit whose creation was never logged gets the exit's
  own GUID (Sysmon) or `host:pid:exit:exit_time`, and `link = "unpaired"`.

Linking runs per (source, host), over the rows sorted by time (ties in log order), remembering the
latest creation of each pid:
- a create's parent is the creation its `ParentProcessGuid` names, if that creation has the
  same pid as `ParentProcessId` (`link = "guid"`);
- otherwise — no GUID, an unknown GUID, or GUIDs that disagree (Mordor's aptsimulator log has
  children and exits naming a GUID their parent's EID 1 never carried) — the latest earlier
  creation of `ParentProcessId`, provided it has not exited before the child appeared and its
  image matches `ParentImage` when both are known (`link = "pid"`);
- otherwise the parent started before the log began (or was not logged): `parent_key` null,
  `link = "unlinked"`. An older instance of a reused pid is never chosen: only the latest
  creation of a pid can be alive.
Exits pair the same way (by GUID, else pid + image + latest unexited creation) and copy the
creation's `creation_time`, `parent_process_id` and `parent_key`.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Iterable

_GUID = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12})\}?$")
UNKNOWN_IMAGES = {"", "?", "-"}


def normalize_guid(value: Any) -> str | None:
    """`{lower-case-guid}` from either spelling; None for a missing or malformed GUID."""
    if value is None:
        return None
    m = _GUID.match(str(value).strip())
    return "{" + m.group(1).lower() + "}" if m else None


def normalize_image(path: Any) -> str | None:
    """An image path for comparison: lower case, without `\\??\\` or `\\\\?\\`; None if unknown."""
    if path is None:
        return None
    text = str(path).strip()
    if text in UNKNOWN_IMAGES:
        return None
    text = text.lower()
    for prefix in ("\\??\\", "\\\\?\\"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text


def images_match(a: Any, b: Any) -> bool:
    """True when either image is unknown, or both name the same file (a bare file name matches
    a full path ending in it)."""
    x, y = normalize_image(a), normalize_image(b)
    if x is None or y is None:
        return True
    if x == y:
        return True
    if "\\" not in x or "\\" not in y:
        return x.rsplit("\\", 1)[-1] == y.rsplit("\\", 1)[-1]
    return False


def fallback_key(host: Any, pid: int, creation_time: Any) -> str:
    return f"{host or ''}:{pid}:{creation_time}"


def link_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set `process_key`, `parent_key` and `link` on every row (dicts with `time` in ns and the
    schema/extra fields); exits also get `creation_time`, `parent_process_id` from their
    creation. Rows are updated in place and returned in their original order."""
    groups: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[(row.get("source"), row.get("host"))].append((i, row))
    for (_, host), members in groups.items():
        members.sort(key=lambda m: (m[1]["time"], m[0]))
        _link_group([r for _, r in members], host)
    return rows


def _link_group(rows: Iterable[dict[str, Any]], host: Any) -> None:
    by_guid: dict[str, dict] = {}
    latest: dict[int, dict] = {}
    exited: set[int] = set()          # id() of creations already paired to an exit
    used: set[str] = set()
    for row in rows:
        pid = row["process_id"]
        guid = row.get("process_guid")
        if row["operation"] == "create":
            key = guid or fallback_key(host, pid, row.get("creation_time"))
            if key in used:  # a duplicated event or GUID: keep keys unique per instance
                n = 2
                while f"{key}#{n}" in used:
                    n += 1
                key = f"{key}#{n}"
            used.add(key)
            row["process_key"] = key
            parent, how = None, "unlinked"
            ppid = row.get("parent_process_id")
            pguid = row.get("parent_process_guid")
            cand = by_guid.get(pguid) if pguid else None
            if cand is not None and cand["process_id"] == ppid:
                parent, how = cand, "guid"
            elif ppid is not None:
                cand = latest.get(ppid)
                if cand is not None and id(cand) not in exited and \
                        images_match(cand.get("image_path"), row.get("parent_image")):
                    parent, how = cand, "pid"
            row["parent_key"] = parent["process_key"] if parent is not None else None
            row["link"] = how
            if guid:
                by_guid.setdefault(guid, row)
            latest[pid] = row
        else:
            cand, how = None, "unpaired"
            g = by_guid.get(guid) if guid else None
            if g is not None and g["process_id"] == pid and id(g) not in exited:
                cand, how = g, "guid"
            else:
                c = latest.get(pid)
                if c is not None and id(c) not in exited and \
                        images_match(c.get("image_path"), row.get("image_path")):
                    cand, how = c, "pid"
            if cand is not None:
                exited.add(id(cand))
                row["process_key"] = cand["process_key"]
                row["parent_key"] = cand.get("parent_key")
                row["creation_time"] = cand.get("creation_time")
                row["parent_process_id"] = cand.get("parent_process_id")
            else:
                key = guid or f"{host or ''}:{pid}:exit:{row.get('exit_time')}"
                row["process_key"] = key if key not in used else f"{key}#exit"
                row["parent_key"] = None
            used.add(row["process_key"])
            row["link"] = how


def link_processes(frame):
    """A trace frame with `process_key`, `parent_key` and `link` (re)computed by `link_rows`.
    Uses `process_guid`/`parent_process_guid`/`parent_image` when the frame has them; clear
    those columns to link by pid + time alone."""
    import pandas as pd

    from .schema import as_schema
    work = as_schema(frame)
    times = work["time"].array.asi8
    records = work.to_dict("records")
    for rec, t in zip(records, times):
        rec["time"] = int(t)
        for k, v in list(rec.items()):
            if v is pd.NA or v is pd.NaT:
                rec[k] = None
        if rec.get("process_id") is not None:
            rec["process_id"] = int(rec["process_id"])
        if rec.get("parent_process_id") is not None:
            rec["parent_process_id"] = int(rec["parent_process_id"])
    link_rows(records)
    out = work.copy()
    for c in ("process_key", "parent_key", "link", "creation_time", "parent_process_id"):
        out[c] = [r.get(c) for r in records]
    return as_schema(out)
