"""Process lifecycles from capture records: argv joined, exit statuses as exit codes, the boot
clock, and `Decoder` (records -> ProcessEvents with creators, keys and exec chains)."""
from __future__ import annotations

import os
import pwd
import shlex
import socket
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from ...filetime import FILETIME_EPOCH_OFFSET
from ...hooks.process import ProcessEvent
from .records import (
    EVENT_EXEC,
    EVENT_EXIT,
    FLAG_ARGS_TRUNCATED,
    FLAG_CREATOR_KNOWN,
    FLAG_NEVER_EXECED,
    SOURCE,
    UNIX_USER_DOMAIN,
    RawEvent,
    text,
)

if TYPE_CHECKING:
    pass


def join_argv(argv: tuple[str, ...] | list[str]) -> str:
    """argv as one command line: arguments with blanks, quotes or backslashes (or empty) are
    shell-quoted, the rest are left as they are."""
    out = []
    for arg in argv:
        if arg == "" or any(c.isspace() or c in "'\"\\" for c in arg):
            out.append(shlex.quote(arg))
        else:
            out.append(arg)
    return " ".join(out)


def exit_code_of(status: int) -> int:
    """A wait(2) status as an exit code: the exit status, or 128 + signal when killed."""
    signal = status & 0x7F
    return 128 + signal if signal else (status >> 8) & 0xFF


class BootClock:
    """Turns CLOCK_BOOTTIME nanoseconds (what the kernel reports) into UTC ns and FILETIME."""

    def __init__(self, offset_ns: int | None = None) -> None:
        self.offset_ns = self.measure() if offset_ns is None else offset_ns

    @staticmethod
    def measure(samples: int = 7) -> int:
        best = None
        for _ in range(samples):
            a = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            wall = time.time_ns()
            b = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            if best is None or b - a < best[0]:
                best = (b - a, wall - (a + b) // 2)
        return best[1]

    def utc_ns(self, boot_ns: int) -> int:
        return boot_ns + self.offset_ns

    def filetime(self, boot_ns: int) -> int:
        return (boot_ns + self.offset_ns) // 100 + FILETIME_EPOCH_OFFSET


class Decoder:
    """Turns records into trace events, keeping what pairing needs: the latest key and image of
    every process seen, exit de-duplication (two threads can both see an emptied group)."""

    MAX_TRACKED = 65536

    def __init__(self, clock: BootClock, host: str | None = None,
                 proc_root: str = "/proc") -> None:
        self.clock = clock
        self.host = host or socket.gethostname()
        self.proc = proc_root
        self.images: OrderedDict[tuple[int, int], tuple[str, str, str, int]] = OrderedDict()
        self.exited: OrderedDict[tuple[int, int], None] = OrderedDict()
        self.users: dict[int, str] = {}
        self.records = 0
        self.duplicates = 0
        self.truncated = 0

    # -- helpers -----------------------------------------------------------------------------
    def base_key(self, pid: int, start_ns: int) -> str:
        return f"{self.host}:{pid}:{self.clock.filetime(start_ns)}"

    def key_of(self, pid: int, start_ns: int) -> str:
        known = self.images.get((pid, start_ns))
        return known[2] if known else self.base_key(pid, start_ns)

    def _remember(self, pid: int, start_ns: int, image: str, cmd: str, key: str,
                  execs: int) -> None:
        self.images[(pid, start_ns)] = (image, cmd, key, execs)
        self.images.move_to_end((pid, start_ns))
        while len(self.images) > self.MAX_TRACKED:
            self.images.popitem(last=False)

    def user(self, uid: int) -> str:
        name = self.users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self.users[uid] = name
        return name

    def _proc_image(self, pid: int) -> tuple[str, str]:
        """Image and command line of a running process from /proc (best effort)."""
        try:
            image = os.readlink(f"{self.proc}/{pid}/exe")
        except OSError:
            image = ""
        try:
            raw = Path(f"{self.proc}/{pid}/cmdline").read_bytes()
            parts = raw.split(b"\0")
            if parts and parts[-1] == b"":
                parts.pop()
            cmd = join_argv([text(p) for p in parts])
        except OSError:
            cmd = ""
        return image, cmd

    def _absolute(self, path: str, pid: int) -> str:
        if not path or path.startswith("/"):
            return path
        try:
            return os.path.normpath(os.path.join(os.readlink(f"{self.proc}/{pid}/cwd"), path))
        except OSError:
            return path

    # -- records -----------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[ProcessEvent]:
        self.records += 1
        raw = RawEvent.parse(data)
        if raw.kind == EVENT_EXEC:
            return [self.exec_event(raw)]
        if raw.kind == EVENT_EXIT:
            return self.exit_events(raw)
        return []

    def exec_event(self, raw: RawEvent) -> ProcessEvent:
        known = self.images.get((raw.pid, raw.start_ns))
        execs = known[3] + 1 if known else 1
        key = self.base_key(raw.pid, raw.start_ns) + (f"/{execs}" if execs > 1 else "")
        image = self._absolute(raw.filename, raw.pid)
        cmd = join_argv(raw.argv)
        if raw.flags & FLAG_ARGS_TRUNCATED:
            self.truncated += 1
        if raw.flags & FLAG_CREATOR_KNOWN:
            creator, thread = raw.creator_pid, raw.creator_tid
        elif known:  # a further exec: the process itself started the new image
            creator, thread = raw.pid, raw.old_pid
        else:        # forked before the capture began
            creator, thread = raw.ppid, 0
        self._remember(raw.pid, raw.start_ns, image, cmd, key, execs)
        return ProcessEvent(
            "create", raw.pid, time=self.clock.utc_ns(raw.time_ns),
            parent_process_id=raw.ppid, creating_process_id=creator,
            creating_thread_id=thread, creation_time=self.clock.filetime(raw.start_ns),
            image_path=image, command_line=cmd, token_sid=f"S-1-22-1-{raw.uid}",
            account_name=self.user(raw.uid), account_domain=UNIX_USER_DOMAIN, host=self.host,
            source=SOURCE, process_key=key,
            parent_key=self.key_of(raw.ppid, raw.parent_start_ns) if raw.ppid else None)

    def exit_events(self, raw: RawEvent) -> list[ProcessEvent]:
        ident = (raw.pid, raw.start_ns)
        if ident in self.exited:
            self.duplicates += 1
            return []
        self.exited[ident] = None
        while len(self.exited) > self.MAX_TRACKED:
            self.exited.popitem(last=False)
        out = []
        if raw.flags & FLAG_NEVER_EXECED and ident not in self.images:
            # a fork without exec: it runs its creator's image; report its creation now
            creator_known = [v for (pid, _), v in self.images.items() if pid == raw.creator_pid]
            if creator_known:
                image, cmd = creator_known[-1][0], creator_known[-1][1]
            else:
                image, cmd = self._proc_image(raw.creator_pid)
            uid = _uid_of(self.proc, raw.creator_pid)
            key = self.base_key(raw.pid, raw.start_ns)
            self._remember(raw.pid, raw.start_ns, image, cmd, key, 1)
            out.append(ProcessEvent(
                "create", raw.pid, time=self.clock.utc_ns(raw.start_ns),
                parent_process_id=raw.ppid, creating_process_id=raw.creator_pid,
                creating_thread_id=raw.creator_tid,
                creation_time=self.clock.filetime(raw.start_ns), image_path=image,
                command_line=cmd,
                token_sid=f"S-1-22-1-{uid}" if uid is not None else None,
                account_name=self.user(uid) if uid is not None else None,
                account_domain=UNIX_USER_DOMAIN if uid is not None else None,
                host=self.host, source=SOURCE, process_key=key,
                parent_key=self.key_of(raw.ppid, raw.parent_start_ns) if raw.ppid else None))
        known = self.images.get(ident)
        out.append(ProcessEvent(
            "delete", raw.pid, time=self.clock.utc_ns(raw.time_ns),
            creation_time=self.clock.filetime(raw.start_ns),
            exit_time=self.clock.filetime(raw.time_ns), exit_code=exit_code_of(raw.exit_status),
            exit_thread_id=raw.tid,
            image_path=known[0] if known else "", command_line=known[1] if known else "",
            host=self.host, source=SOURCE, process_key=self.key_of(raw.pid, raw.start_ns)))
        return out


def _uid_of(proc: str, pid: int) -> int | None:
    try:
        for line in Path(f"{proc}/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


