"""Live process events from this machine's Linux kernel, behind the ProcessHook API.

Our own CO-RE program (`bpf/linux/process_capture.c`, loaded with libbpf.so.1) watches the
scheduler's BTF tracepoints: `sched_process_fork` remembers who created each new process,
`sched_process_exec` reports a process starting an image (path, argv read from its memory,
parent, creator, uid, start time), `sched_process_exit` reports a process ending (only when its
whole thread group has exited: thread exits are not process exits). Records become
`ProcessEvent`s in the trace schema with `source="linux-live"`.

Mapping to the Windows model (where a process is created with its image):
- `create` row at each exec: `time` is the exec, `creation_time` the fork (task start time),
  `parent_process_id` the real parent, `creating_process_id`/`creating_thread_id` the process
  and thread that forked it (seen at the fork; if the fork predates the capture, the parent and
  thread 0). A process that execs again gets another create row (same pid, key suffixed "/2",
  "/3", ...); its delete row carries the key of its last image.
- A process that forks and exits without exec gets a create row (at its fork time, with the
  image and command line of the process that forked it) just before its delete row.
- `delete` row at exit: `exit_code` is the exit status (0-255), or 128 + the signal number when a
  signal killed it; `exit_time`, and `image_path`/`command_line` of its image when known.
- `image_path` is the path execve was given (after PATH search, symlinks not resolved);
  `command_line` is argv joined with spaces (arguments with blanks or quotes are shell-quoted);
  `token_sid` is the Unix-user SID S-1-22-1-<uid>, `account_name` the user name and
  `account_domain` "Unix User" (the convention Samba and Windows NFS use for Unix accounts).
- `process_key` is "host:pid:creation_time" (FILETIME), as the other importers derive it.

Shadow mode: `attach(program)` runs a Windows `process` program in the emulator on every live
event (its verdicts, ring buffers and maps are recorded); **nothing is enforced on Linux**: a
deny verdict does not stop the real process.

>>> with LinuxHook() as hook:                                     # doctest: +SKIP
...     frame = hook.capture(duration=5)
"""
from __future__ import annotations

import os
import pwd
import queue
import select
import shlex
import socket
import struct
import threading
import time
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..filetime import FILETIME_EPOCH_OFFSET
from ..hooks.process import ProcessEvent
from ..trace.schema import COLUMNS, events_frame
from .emulator import EmulatedHook, Link, LoadedObject, Verdict
from .contract import Closing, history_frame, history_row
from .libbpf import BpfObject, Libbpf, LibbpfError, RingBuffer

if TYPE_CHECKING:
    import pandas as pd

ROOT = Path(__file__).resolve().parent.parent.parent
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
            filename = _text(data[HEADER.size:HEADER.size + min(flen, FILENAME_BYTES)])
            raw = data[ARGS_OFFSET:ARGS_OFFSET + alen]
            parts = raw.split(b"\0")
            if parts and parts[-1] == b"":
                parts.pop()
            argv = tuple(_text(p) for p in parts)
        return cls(kind, flags, pid, tid, ppid, cpid, ctid, code, uid, old_pid, t, start, pstart,
                   _text(comm.split(b"\0", 1)[0]), filename, argv)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


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
            cmd = join_argv([_text(p) for p in parts])
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


def trace_frame(events: list[ProcessEvent], keep_unseen_parents: bool = False) -> "pd.DataFrame":
    """Events as a trace-schema DataFrame. `parent_key` is kept only when that parent's key
    appears in the frame (the schema: null when the parent was never seen)."""
    frame = events_frame(events)
    if not keep_unseen_parents and len(frame):
        seen = set(frame["process_key"])
        frame["parent_key"] = [k if k in seen else None for k in frame["parent_key"]]
    return frame


@dataclass
class Recording:
    """Events delivered while a `hook.record()` block (or a capture) runs."""

    hook: "LinuxHook"
    events: list[ProcessEvent] = field(default_factory=list)
    dropped_at_start: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def _push(self, ev: ProcessEvent) -> None:
        with self.cond:
            self.events.append(ev)
            self.cond.notify_all()

    def frame(self) -> "pd.DataFrame":
        frame = trace_frame(list(self.events))
        frame.attrs["dropped"] = dict(self.dropped)
        return frame

    def wait(self, count: int | None = None, duration: float | None = None) -> None:
        deadline = None if duration is None else time.monotonic() + duration
        with self.cond:
            while True:
                if count is not None and len(self.events) >= count:
                    return
                if self.hook._poll_error is not None or self.hook.closed:
                    return
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                self.cond.wait(0.2 if left is None else min(left, 0.2))


class LinuxHook(Closing):
    """The ProcessHook API on real Linux process events.

    `capture(duration=|count=)` returns a trace DataFrame; `record()` is a block during which
    events are kept; `stream()` yields events as they arrive. `load`/`attach` put Windows
    `process` programs in shadow mode: they run in the emulator on every live event and their
    verdicts (`verdicts()`), ring buffers and maps (`obj.ringbuf(...)`, `obj.map(...)`) are
    recorded. Nothing is enforced: a deny verdict does not stop the real Linux process.
    `inject`/`replay` run events through the shadow programs only (no real process is made).

    Dropped records are never silent: `dropped` has the kernel's counts, a capture whose
    records were dropped warns and says so in `frame.attrs["dropped"]`.
    """

    kind = "linux-live"

    def __init__(self, *, engine: str = "jit", ringbuf_bytes: int = DEFAULT_RINGBUF_BYTES,
                 host: str | None = None, object_path: str | os.PathLike | None = None,
                 libbpf: Libbpf | None = None, poll_ms: int = 50, ncpus: int = 1) -> None:
        if ringbuf_bytes & (ringbuf_bytes - 1) or ringbuf_bytes < 4096:
            raise ValueError(f"ringbuf_bytes={ringbuf_bytes}: a power of two of at least 4096")
        self.ringbuf_bytes = ringbuf_bytes
        self.host = host or socket.gethostname()
        self.object_path = Path(object_path) if object_path else None
        self.poll_ms = poll_ms
        self.shadow = EmulatedHook(engine, ncpus=ncpus)
        self._libbpf = libbpf
        self._obj: BpfObject | None = None
        self._rb: RingBuffer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.RLock()          # sinks and shadow emulator
        self._sinks: list = []
        self._poll_error: BaseException | None = None
        self.closed = False
        self.decoder: Decoder | None = None
        self.events_seen = 0
        self._verdicts: list[dict[str, Any]] = []

    # -- the kernel side --------------------------------------------------------------------------
    @property
    def libbpf(self) -> Libbpf:
        if self._libbpf is None:
            self._libbpf = Libbpf.shared()
        return self._libbpf

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "LinuxHook":
        """Load and attach the capture program and start the background poller (idempotent)."""
        if self.closed:
            raise RuntimeError("the hook is closed")
        if self._obj is not None:
            if self._poll_error is not None:
                raise self._poll_error
            return self
        path = self.object_path or build_program()
        lb = self.libbpf
        obj = lb.open(path)
        try:
            obj.map("events").set_max_entries(self.ringbuf_bytes)
            obj.load()
            for prog in obj.programs:
                prog.attach()
            self.decoder = Decoder(BootClock(), self.host)
            self._rb = lb.ring_buffer(obj.map("events"), self._on_record)
        except BaseException:
            obj.close()
            raise
        self._obj = obj
        self._stop.clear()
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._poll_loop, name="ntoslab-linux-poller",
                                        daemon=True)
        self._thread.start()
        return self

    def _poll_loop(self) -> None:
        rb = self._rb
        epfd = rb.epoll_fd()
        try:
            if epfd >= 0:  # wait on the ring's epoll fd and our wake-up pipe: stop is instant
                while not self._stop.is_set():
                    ready, _, _ = select.select([epfd, self._wake[0]], [], [], 1.0)
                    if epfd in ready:
                        rb.consume()
            else:
                while not self._stop.is_set():
                    rb.poll(self.poll_ms)
            rb.consume()  # what arrived before stop was asked for
        except BaseException as exc:  # noqa: BLE001 - surfaced to consumers
            self._poll_error = exc
        finally:
            with self._lock:
                for sink in self._sinks:
                    if isinstance(sink, queue.Queue):
                        sink.put(None)
                    else:
                        with sink.cond:
                            sink.cond.notify_all()

    def _on_record(self, data: bytes) -> None:
        for ev in self.decoder.feed(data):
            self._deliver(ev)

    def _deliver(self, ev: ProcessEvent) -> None:
        with self._lock:
            self.events_seen += 1
            if self.shadow.links:
                self._shadow_inject(ev)
            for sink in self._sinks:
                if isinstance(sink, queue.Queue):
                    sink.put(ev)
                else:
                    sink._push(ev)

    def _shadow_inject(self, ev: ProcessEvent) -> Verdict:
        verdict = self.shadow.inject(ev)
        self._verdicts.append(history_row(verdict, ev))
        return verdict

    @property
    def stats(self) -> dict[str, int]:
        """The kernel program's counters, summed over CPUs (zeros before start)."""
        out = dict.fromkeys(STATS, 0)
        if self._obj is None or not self._obj.ptr:
            return out
        m = self._obj.map("stats")
        for i, name in enumerate(STATS):
            values = m.lookup(i) or []
            out[name] = sum(int.from_bytes(v[:8], "little") for v in values)
        return out

    @property
    def dropped(self) -> dict[str, int]:
        """Records lost so far: `ringbuf` (ring buffer full: raise ringbuf_bytes),
        `fork_table` (creators forgotten), `argv_unreadable` (command lines left empty)."""
        s = self.stats
        return {"ringbuf": s["ringbuf_drops"], "fork_table": s["fork_table_full"],
                "argv_unreadable": s["argv_unreadable"]}

    # -- consuming events ---------------------------------------------------------------------
    @contextmanager
    def record(self) -> Iterator[Recording]:
        """Keep every event delivered inside the block: `rec.events`, `rec.frame()`."""
        self.start()
        rec = Recording(self, dropped_at_start=self.dropped)
        with self._lock:
            self._sinks.append(rec)
        try:
            yield rec
        finally:
            self.flush()
            with self._lock:
                self._sinks.remove(rec)
            rec.dropped = {k: v - rec.dropped_at_start.get(k, 0)
                           for k, v in self.dropped.items()}
            if rec.dropped["ringbuf"]:
                warnings.warn(f"{rec.dropped['ringbuf']} process records were dropped by the "
                              f"kernel (ring buffer full): use a larger ringbuf_bytes "
                              f"(now {self.ringbuf_bytes})", RuntimeWarning, stacklevel=3)
        if self._poll_error is not None:
            raise self._poll_error

    def flush(self, settle: float = 0.05) -> None:
        """Wait until records already in the ring buffer have been delivered: until a poll
        period passes with no new record (2 s at most)."""
        if not self.running:
            return
        time.sleep(settle)  # records of events that just happened reach the ring first
        deadline = time.monotonic() + 2
        last = -1
        while time.monotonic() < deadline and self.decoder.records != last:
            last = self.decoder.records
            time.sleep(max(self.poll_ms, 10) / 1000 * 1.5)

    def capture(self, duration: float | None = None, count: int | None = None) -> "pd.DataFrame":
        """Events for `duration` seconds, or until `count` events (whichever comes first), as a
        trace-schema DataFrame (`attrs["dropped"]` has the records lost meanwhile)."""
        if duration is None and count is None:
            raise ValueError("capture needs duration= (seconds) or count= (events)")
        with self.record() as rec:
            rec.wait(count=count, duration=duration)
        events = rec.events[:count] if count is not None else rec.events
        frame = trace_frame(list(events))
        frame.attrs["dropped"] = rec.dropped
        return frame

    def stream(self, duration: float | None = None) -> "EventStream":
        """An iterator of events as they arrive, from now on: it ends when `duration` elapses,
        when it is closed (`close()`, `with`, or leaving a for loop by break and dropping it),
        or when the hook closes."""
        self.start()
        return EventStream(self, duration)

    # -- shadow mode (the ProcessHook API of the emulator) --------------------------------------
    def load(self, path, **kw) -> LoadedObject:
        """Load a Windows process program into the shadow emulator."""
        with self._lock:
            return self.shadow.load(path, **kw)

    def attach(self, program, name: str | None = None) -> Link:
        """Shadow mode: run `program` on every live event, in the emulator. Nothing is
        enforced on Linux. Starts the live capture."""
        with self._lock:
            link = self.shadow.attach(program, name)
        self.start()
        return link

    def detach(self, link: Link) -> None:
        with self._lock:
            self.shadow.detach(link)

    def inject(self, event: ProcessEvent | dict) -> Verdict:
        """Run one event through the shadow programs (no real process is created)."""
        with self._lock:
            return self.shadow.inject(event)

    def replay(self, events, progress: bool | None = None) -> "pd.DataFrame":
        with self._lock:
            return self.shadow.replay(events, progress)

    def subscribe(self, callback: Callable[[Verdict], None]) -> None:
        """`callback(verdict)` after every shadow run (live events and injected ones)."""
        self.shadow.subscribe(callback)

    def verdicts(self) -> "pd.DataFrame":
        """One row per live event the shadow programs ran on (`enforced` is always False)."""
        with self._lock:
            return history_frame(list(self._verdicts))

    def printk(self) -> "pd.DataFrame":
        return self.shadow.printk()

    @property
    def objects(self) -> list[LoadedObject]:
        return self.shadow.objects

    @property
    def links(self) -> list[Link]:
        return self.shadow.links

    # -- lifetime ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the poller and release every kernel object (links, ring buffer, maps)."""
        thread = self._thread
        if thread is not None:
            self._stop.set()
            os.write(self._wake[1], b"x")
            thread.join()
            self._thread = None
            for fd in self._wake:
                os.close(fd)
        if self._rb is not None:
            self._rb.free()
            self._rb = None
        if self._obj is not None:
            self._obj.close()
            self._obj = None

    def close(self) -> None:
        if self.closed:
            return
        self.stop()
        self.closed = True
        with self._lock:
            for sink in self._sinks:
                if isinstance(sink, queue.Queue):
                    sink.put(None)
            self.shadow.close()


    def __repr__(self) -> str:
        state = "closed" if self.closed else "capturing" if self.running else "idle"
        return f"<LinuxHook {state} events={self.events_seen} " \
               f"shadow={[l.program.name for l in self.shadow.links]}>"


class EventStream(Closing):
    """Events delivered since the stream was made (see LinuxHook.stream)."""

    def __init__(self, hook: LinuxHook, duration: float | None) -> None:
        self.hook = hook
        self.queue: queue.Queue = queue.Queue()
        self.deadline = None if duration is None else time.monotonic() + duration
        self.done = False
        with hook._lock:
            hook._sinks.append(self.queue)

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> ProcessEvent:
        hook = self.hook
        while not self.done:
            left = None if self.deadline is None else self.deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            try:
                ev = self.queue.get(timeout=0.2 if left is None else min(left, 0.2))
            except queue.Empty:
                if hook.closed or hook._poll_error is not None:
                    break
                continue
            if ev is None:
                break
            return ev
        self.close()
        if hook._poll_error is not None:
            raise hook._poll_error
        raise StopIteration

    def close(self) -> None:
        self.done = True
        with self.hook._lock:
            if self.queue in self.hook._sinks:
                self.hook._sinks.remove(self.queue)



def build_program(output: str | os.PathLike | None = None) -> Path:
    """Compile bpf/linux/process_capture.c (when the object is missing or older than its
    sources); returns the object's path. Falls back to a per-user cache directory when the
    source tree is not writable."""
    from .. import toolchain
    out = Path(output) if output else PROGRAM_SOURCE.with_suffix(".o")
    newest = max(PROGRAM_SOURCE.stat().st_mtime_ns, PROGRAM_HEADER.stat().st_mtime_ns)
    if out.exists() and out.stat().st_mtime_ns >= newest:
        return out
    if output is None and not os.access(out.parent, os.W_OK):
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ntoslab"
        out = cache / out.name
        if out.exists() and out.stat().st_mtime_ns >= newest:
            return out
    tmp = out.with_suffix(f".{os.getpid()}.tmp.o")
    toolchain.compile_c(PROGRAM_SOURCE, tmp)
    os.replace(tmp, out)
    return out


def capture_command(argv: list[str] | None = None) -> int:
    """`ntoslab capture [--duration S] [--count N] -o TRACE.parquet [--program PROG.o ...]`:
    record live process events into a trace file (Parquet, CSV or JSONL by suffix); with
    --program, also run those Windows programs in shadow mode and print their verdicts."""
    import argparse
    import sys

    from .live import LiveUnavailable, live

    p = argparse.ArgumentParser(prog="ntoslab capture",
                                description="Capture live process events into a trace file.")
    p.add_argument("--duration", type=float, help="seconds to capture")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument("-o", "--output", required=True, help="trace file (.parquet, .csv, .jsonl)")
    p.add_argument("--program", action="append", default=[],
                   help="a Windows process program (.o) to run in shadow mode (repeatable)")
    p.add_argument("--ringbuf-mb", type=int, default=DEFAULT_RINGBUF_BYTES >> 20,
                   help="ring buffer size in MiB (a power of two)")
    ns = p.parse_args(argv)
    if ns.duration is None and ns.count is None:
        p.error("give --duration S and/or --count N")
    out = Path(ns.output)
    if out.suffix.lower() not in (".parquet", ".pq", ".csv", ".jsonl", ".ndjson", ".json"):
        p.error(f"{out}: use a .parquet, .csv or .jsonl file name")
    try:
        hook = live(ringbuf_bytes=ns.ringbuf_mb << 20)
    except (LiveUnavailable, LibbpfError) as exc:
        print(f"ntoslab capture: {exc}", file=sys.stderr)
        return 2
    with hook:
        try:
            for prog in ns.program:
                obj = hook.load(prog)
                for program in obj.programs:
                    if program.type == "process":
                        hook.attach(program)
            hook.start()
        except (LibbpfError, OSError, ValueError) as exc:
            print(f"ntoslab capture: {exc}", file=sys.stderr)
            return 2
        what = " and ".join(x for x in (f"{ns.duration:g} s" if ns.duration else "",
                                       f"{ns.count} events" if ns.count else "") if x)
        print(f"capturing for up to {what} ...", file=sys.stderr)
        try:
            frame = hook.capture(duration=ns.duration, count=ns.count)
        except KeyboardInterrupt:
            frame = None
        if frame is None:
            print("interrupted", file=sys.stderr)
            return 130
        write_trace(frame, out)
        dropped = frame.attrs.get("dropped", {})
        print(f"{len(frame)} events ({(frame['operation'] == 'create').sum()} creates, "
              f"{(frame['operation'] == 'delete').sum()} deletes) -> {out}; dropped: "
              f"{', '.join(f'{k} {v}' for k, v in dropped.items())}", file=sys.stderr)
        if hook.links:
            verdicts = hook.verdicts()
            denied = int(verdicts["denied"].sum()) if len(verdicts) else 0
            print(f"shadow mode (nothing enforced): {len(verdicts)} events ran through "
                  f"{len(hook.links)} program(s); {denied} would have been denied",
                  file=sys.stderr)
    return 0


def write_trace(frame: "pd.DataFrame", path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    frame = frame[COLUMNS]
    if suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
