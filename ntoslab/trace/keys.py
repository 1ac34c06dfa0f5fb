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


# ---------------------------------------------------------------------------------------------
# The same links, column-wise
# ---------------------------------------------------------------------------------------------

LINK_INPUTS = ("time", "operation", "process_id", "parent_process_id", "creation_time",
               "exit_time", "image_path", "parent_image", "process_guid", "parent_process_guid",
               "source", "host")


def link_columns(cols: dict[str, Any]) -> dict[str, Any]:
    """`link_rows` on columns: `cols` maps each of `LINK_INPUTS` to a sequence (`time` int ns,
    `process_id` ints, the rest Python values or None); returns object arrays `process_key`,
    `parent_key`, `link`, `creation_time`, `parent_process_id` — exactly what `link_rows`
    gives.

    Every lookup of the sequential walk is a column operation here: "the latest creation of
    pid p before this row" is one sorted search over (group, pid, position), "the creation
    this GUID names" one dict, and an exit's pairing is first computed as if no creation had
    exited yet. That equals the walk whenever no creation is claimed by two exits and no key
    repeats (then "already exited" never changes an exit's choice); a (source, host) group
    where either happens — duplicated events, reused GUIDs — is linked by `link_rows`."""
    import numpy as np

    n = len(cols["time"])
    obj = lambda c: np.asarray(cols[c], dtype=object) if n else np.empty(0, object)  # noqa: E731
    time = np.asarray(cols["time"], dtype=np.int64)
    op, ppid, ctime, etime = obj("operation"), obj("parent_process_id"), obj("creation_time"), \
        obj("exit_time")
    image, pimage, guid, pguid = obj("image_path"), obj("parent_image"), obj("process_guid"), \
        obj("parent_process_guid")
    hosts = obj("host")
    pid = np.asarray(cols["process_id"], dtype=np.int64)
    out_key = np.full(n, None, object)
    out_parent = np.full(n, None, object)
    out_link = np.full(n, None, object)
    out_ctime, out_ppid = ctime.copy(), ppid.copy()
    result = {"process_key": out_key, "parent_key": out_parent, "link": out_link,
              "creation_time": out_ctime, "parent_process_id": out_ppid}
    if not n:
        return result
    sources, host_list = obj("source").tolist(), hosts.tolist()
    single = len(set(sources)) <= 1 and len(set(host_list)) <= 1
    if single:                                    # one source and host: the usual file
        g = np.zeros(n, np.int64)
    else:
        groups: dict[tuple, int] = {}
        g = np.fromiter((groups.setdefault(k, len(groups)) for k in zip(sources, host_list)),
                        np.int64, n)
    order = np.lexsort((np.arange(n), time, g))
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n)
    create = op == "create"
    cidx = np.flatnonzero(create)
    eidx = np.flatnonzero(~create)
    bad_groups: set[int] = set()

    def gkeys(rows, values):
        """Lookup keys: the values themselves in one group, else (group, value)."""
        vals = values[rows].tolist()
        return vals if single else list(zip(g[rows].tolist(), vals))

    # the creation each GUID names (a GUID on two creations of a group: that group is walked)
    named = cidx[np.fromiter(map(bool, guid[cidx].tolist()), bool, len(cidx))]
    by_guid = dict(zip(gkeys(named, guid), named.tolist()))
    if len(by_guid) < len(named):
        keys = gkeys(named, guid)
        seen_keys: set = set()
        for k in keys:
            if k in seen_keys:
                bad_groups.add(0 if single else k[0])
            seen_keys.add(k)

    def named_by(rows, values, want_pid):
        """The creation `values` (GUIDs) name for each row, -1 where none or where it is not
        earlier or its pid is not `want_pid`."""
        if not len(rows):
            return np.zeros(0, np.int64)
        found = np.array(list(map(by_guid.get, gkeys(rows, values))), dtype=object)
        hit = ~np.equal(found, None)
        c = np.where(hit, found, 0).astype(np.int64)
        ok = hit & (pos[c] < pos[rows]) & (pid[c] == want_pid)
        return np.where(ok, c, -1)

    # latest creation of (group, pid) strictly before a position: one sorted search
    ckey = g[cidx] * (1 << 32) + pid[cidx]
    uniq = np.unique(ckey)
    crank = np.searchsorted(uniq, ckey)
    comp = crank * (n + 1) + pos[cidx]
    srt = np.argsort(comp, kind="stable")
    comp, csorted = comp[srt], cidx[srt]

    def latest_before(qgroup, qpid, qpos):
        """Row of the latest creation of (qgroup, qpid) before qpos, -1 where none."""
        if not len(uniq):
            return np.full(len(qpos), -1, np.int64)
        qkey = qgroup * (1 << 32) + qpid
        r = np.searchsorted(uniq, qkey)
        found = r < len(uniq)
        found[found] = uniq[r[found]] == qkey[found]
        at = np.searchsorted(comp, np.where(found, r, 0) * (n + 1) + qpos) - 1
        ok = found & (at >= 0)
        ok[ok] = comp[at[ok]] // (n + 1) == r[ok]
        return np.where(ok, csorted[np.maximum(at, 0)], -1)

    def images(a_rows, b_values):
        return np.fromiter((x == y or images_match(x, y) for x, y in
                            zip(image[a_rows].tolist(), b_values)), bool, len(a_rows))

    # keys of creations: the GUID, else host:pid:creation_time
    ckeys = guid[cidx].copy()
    plain = np.flatnonzero(~np.fromiter(map(bool, ckeys.tolist()), bool, len(cidx)))
    if len(plain):
        rows = cidx[plain]
        ckeys[plain] = [f"{h or ''}:{p}:{ct}" for h, p, ct in
                        zip(hosts[rows].tolist(), pid[rows].tolist(), ctime[rows].tolist())]
    out_key[cidx] = ckeys

    # exits, paired as if no creation had exited yet
    eg, epos, epid = g[eidx], pos[eidx], pid[eidx]
    cand = named_by(eidx, guid, epid)
    how = np.where(cand >= 0, "guid", "unpaired").astype(object)
    rest = np.flatnonzero(cand < 0)
    if len(rest):
        lat = latest_before(eg[rest], epid[rest], epos[rest])
        has = lat >= 0
        sel, lat = rest[has], lat[has]
        ok = images(lat, image[eidx[sel]].tolist())
        cand[sel[ok]], how[sel[ok]] = lat[ok], "pid"
    paired = cand >= 0
    claimed = cand[paired]
    if len(claimed) != len(np.unique(claimed)):
        uc, cnt = np.unique(claimed, return_counts=True)
        bad_groups.update(g[uc[cnt > 1]].tolist())
    exit_pos = np.full(n, np.iinfo(np.int64).max, np.int64)
    exit_pos[claimed] = epos[paired]        # where a claim repeats, that group is walked anyway

    # parents of creations
    cg, cpos = g[cidx], pos[cidx]
    cppid = ppid[cidx]
    known = ~np.equal(cppid, None)
    want = np.where(known, cppid, -1).astype(np.int64)
    parent = named_by(cidx, pguid, want)
    chow = np.where(parent >= 0, "guid", "unlinked").astype(object)
    rest = np.flatnonzero((parent < 0) & ~np.equal(cppid, None))
    if len(rest):
        lat = latest_before(cg[rest], cppid[rest].astype(np.int64), cpos[rest])
        has = lat >= 0
        sel, lat = rest[has], lat[has]
        alive = exit_pos[lat] > cpos[sel]
        sel, lat = sel[alive], lat[alive]
        ok = images(lat, pimage[cidx[sel]].tolist())
        parent[sel[ok]], chow[sel[ok]] = lat[ok], "pid"
    linked = parent >= 0
    out_parent[cidx[linked]] = out_key[parent[linked]]
    out_link[cidx] = chow

    # exits take their creation's key, parent, creation time and parent pid
    pe, pc = eidx[paired], cand[paired]
    out_key[pe] = out_key[pc]
    out_parent[pe] = out_parent[pc]
    out_ctime[pe] = ctime[pc]
    out_ppid[pe] = ppid[pc]
    ue = eidx[~paired]
    out_key[ue] = np.array([gu or f"{h or ''}:{p}:exit:{et}" for gu, h, p, et in
                            zip(guid[ue].tolist(), hosts[ue].tolist(), pid[ue].tolist(),
                                etime[ue].tolist())] or [None], dtype=object)[:len(ue)]
    out_link[eidx] = how

    # a key made twice in a group (link_rows would number it): walk that group
    fresh = np.concatenate([cidx, ue])
    keys = gkeys(fresh, out_key)
    if len(set(keys)) < len(keys):
        seen: set = set()
        for k in keys:
            if k in seen:
                bad_groups.add(0 if single else k[0])
            seen.add(k)
    for gi in bad_groups:
        rows = np.flatnonzero(g == gi)
        recs = [dict(zip(LINK_INPUTS, v)) for v in zip(
            time[rows].tolist(), op[rows], pid[rows].tolist(), ppid[rows], ctime[rows],
            etime[rows], image[rows], pimage[rows], guid[rows], pguid[rows],
            np.asarray(cols["source"], dtype=object)[rows], hosts[rows])]
        link_rows(recs)
        for c in result:
            result[c][rows] = [r.get(c) for r in recs]
    return result
