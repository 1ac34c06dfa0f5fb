"""The records of bpf/linux/process_capture.c: the 88-byte header, the exec filename and argv,
and the flags and counters the program keeps."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


ROOT = Path(__file__).resolve().parents[3]
PROGRAM_SOURCE = ROOT / "bpf" / "linux" / "process_capture.c"
PROGRAM_HEADER = ROOT / "bpf" / "linux" / "linux_bpf.h"
SOURCE = "linux-live"
DEFAULT_RINGBUF_BYTES = 8 << 20

# struct event of process_capture.c: the 88-byte header, then (exec) filename[1024], argv
HEADER = struct.Struct("<10I3Q2HI16s")
FILENAME_BYTES = 1024
ARGS_MAX_BYTES = 16384   # argv bytes copied per exec; longer command lines are cut (counted)
ARGS_OFFSET = HEADER.size + FILENAME_BYTES
EVENT_EXEC, EVENT_EXIT = 1, 2
FLAG_CREATOR_KNOWN, FLAG_NEVER_EXECED, FLAG_ARGS_TRUNCATED, FLAG_ARGS_FAULT, \
    FLAG_FILENAME_FAULT = 1, 2, 4, 8, 16
STATS = ("ringbuf_drops", "fork_table_full", "argv_unreadable", "events")
UNIX_USER_DOMAIN = "Unix User"
assert HEADER.size == 88


@dataclass(frozen=True)
class RawEvent:
    """One record of process_capture.c, decoded but not yet interpreted."""

    kind: int
    flags: int
    pid: int
    tid: int
    ppid: int
    creator_pid: int
    creator_tid: int
    exit_status: int
    uid: int
    old_pid: int
    time_ns: int
    start_ns: int
    parent_start_ns: int
    comm: str
    filename: str = ""
    argv: tuple[str, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> "RawEvent":
        (kind, flags, pid, tid, ppid, cpid, ctid, code, uid, old_pid, t, start, pstart,
         flen, alen, _reserved, comm) = HEADER.unpack_from(data)
        filename, argv = "", ()
        if kind == EVENT_EXEC and len(data) >= ARGS_OFFSET:
            filename = text(data[HEADER.size:HEADER.size + min(flen, FILENAME_BYTES)])
            raw = data[ARGS_OFFSET:ARGS_OFFSET + alen]
            parts = raw.split(b"\0")
            if parts and parts[-1] == b"":
                parts.pop()
            argv = tuple(text(p) for p in parts)
        return cls(kind, flags, pid, tid, ppid, cpid, ctid, code, uid, old_pid, t, start, pstart,
                   text(comm.split(b"\0", 1)[0]), filename, argv)


def text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")
