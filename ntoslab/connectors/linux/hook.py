"""`LinuxHook`: the kernel capture (libbpf, BTF tracepoints) with Windows programs in shadow mode
behind the ProcessHook API, and `EventStream`."""
from __future__ import annotations

import os
import queue
import select
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ...hooks.process import ProcessEvent
from ...trace.schema import trace_frame
from ..contract import Closing, history_frame, history_row
from ..emulator import EmulatedHook, Link, LoadedObject, Verdict
from ..libbpf import BpfObject, Libbpf, RingBuffer
from .lifecycle import BootClock, Decoder
from .records import DEFAULT_RINGBUF_BYTES, PROGRAM_HEADER, PROGRAM_SOURCE, STATS

if TYPE_CHECKING:
    import pandas as pd


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
        out: dict[str, int] = dict.fromkeys(STATS, 0)
        if self._obj is None or not self._obj.ptr:
            return out
        m = self._obj.map("stats")
        for i, name in enumerate(STATS):
            values = m.lookup(i) or []          # a per-CPU array: a list, one value per CPU
            assert isinstance(values, list), "the stats map is a per-CPU array"
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
    from ... import toolchain
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
