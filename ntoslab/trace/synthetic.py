"""Synthetic process traces: small realistic scenarios for notebooks, demos and tests.

>>> events = quickstart_scenario()
>>> [e.operation for e in events][:3]
['create', 'create', 'create']
"""
from __future__ import annotations

from ..hooks.process import FILETIME_EPOCH_OFFSET, ProcessEvent

START_NS = 1_764_064_800 * 10**9  # 2025-11-25 10:00:00 UTC
USER_SID = "S-1-5-21-3623811015-3361044348-30300820-1013"


def _ft(ns: int) -> int:
    return ns // 100 + FILETIME_EPOCH_OFFSET


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
