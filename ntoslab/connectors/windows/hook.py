"""`WindowsHook`: the real ntosebpfext through EbpfApi.dll behind the ProcessHook API, its objects,
links and ring buffers."""
from __future__ import annotations

import ctypes
import os
import struct
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ...elf import MapSpec
from ...hooks.notify_context import TEST_CONTEXT_SIZE, pack_test_run_context
from ...hooks.process import EventError, ProcessEvent, denies, status_of
from ..contract import (
    LiveUnavailable,
    ProgramRun,
    Verdict,
    history_frame,
    history_row,
    replay_events,
)
from ..libbpf import (
    BpfLink,
    BpfMap,
    BpfObject,
    BpfProgram,
    Libbpf,
    LibbpfError,
    LibbpfUnavailable,
)
from ..views import MapView, printk_frame
from .diagnostics import (
    EBPF_ATTACH_TYPE_PROCESS,
    EBPF_EXECUTION_NATIVE,
    EXECUTION_NAMES,
    SOURCE,
    detect_features,
    ebpf_result_errno,
    execution_type_for,
    windows_error,
    windows_problems,
)

if TYPE_CHECKING:
    import pandas as pd


# -- ctypes extras of EbpfApi.dll ------------------------------------------------------------
_GUID = ctypes.c_ubyte * 16


def _guid(u: uuid.UUID) -> "ctypes.Array":
    return _GUID.from_buffer_copy(u.bytes_le)


WINDOWS_SIGNATURES = {
    "ebpf_object_set_execution_type": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "ebpf_object_get_execution_type": (ctypes.c_int, [ctypes.c_void_p]),
    "ebpf_program_attach": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(_GUID),
                                           ctypes.c_void_p, ctypes.c_size_t,
                                           ctypes.POINTER(ctypes.c_void_p)]),
    "ebpf_get_program_type_by_name": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(_GUID),
                                                     ctypes.POINTER(_GUID)]),
}


# EbpfApi.dll sends a test run to the kernel as one ioctl whose length is a uint16: the request
# (42-byte header, then data_in and ctx_in) and the reply (32-byte header, then data_out and
# ctx_out) each hold at most 65535 bytes; a larger one fails with EINVAL (EFW ebpf_api.cpp
# ebpf_program_test_run, ebpf_protocol.h)
TEST_RUN_MAX = min(0xFFFF - 42, 0xFFFF - 32)     # bytes of ctx + data: the request's limit


def _is_windows() -> bool:
    """Whether this is Windows (one function, so the tests can put their fake EbpfApi.dll,
    tests/fakes, behind the hook on Linux)."""
    return sys.platform == "win32"


# -- views -------------------------------------------------------------------------------------
class LiveRingBuf:
    """Records of a real ring buffer, kept as they are consumed (poll mode on eBPF for
    Windows 1.1+, callbacks from the runtime's thread pool before)."""

    def __init__(self, libbpf: Libbpf, m: BpfMap, btf=None) -> None:
        self.name = m.name
        self.btf = btf
        self.records_: list[bytes] = []
        self._lock = threading.Lock()
        self.rb = libbpf.ring_buffer(m, self._on_record)
        self.poll_mode = libbpf.has("ring_buffer__poll")
        self.streamed = 0      # records stream() has handed out (each one once)

    def _on_record(self, data: bytes) -> int:
        with self._lock:
            self.records_.append(data)
        return 0

    def poll(self, timeout_ms: int = 0) -> int:
        if self.poll_mode:
            return self.rb.poll(timeout_ms) if timeout_ms else self.rb.consume()
        time.sleep(timeout_ms / 1000)  # callback mode: records arrive by themselves
        return 0

    def records(self) -> list[bytes]:
        self.poll(0)
        with self._lock:
            return list(self.records_)

    def to_frame(self, type: str | None = None,
                 layout: tuple[str, Sequence[str]] | None = None) -> "pd.DataFrame":
        import pandas as pd
        rows = []
        for i, rec in enumerate(self.records()):
            row: dict[str, Any] = {"record": i, "size": len(rec)}
            if type is not None and self.btf is not None:
                row.update(self.btf.decode(type, rec))
            elif layout is not None:
                fmt, names = layout
                row.update(zip(names, struct.unpack_from(fmt, rec)))
            else:
                row["data"] = rec
            rows.append(row)
        return pd.DataFrame(rows)


class WindowsObject:
    """A loaded object on the real runtime (the counterpart of the emulator's LoadedObject)."""

    def __init__(self, hook: "WindowsHook", bpf: BpfObject, elf=None) -> None:
        self.hook = hook
        self.bpf = bpf
        self.elf = elf
        self.path = bpf.path
        self._rings: dict[str, LiveRingBuf] = {}

    @property
    def programs(self) -> list[BpfProgram]:
        return self.bpf.programs

    def program(self, name: str) -> BpfProgram:
        return self.bpf.program(name)

    def map(self, name: str) -> MapView:
        """The real map as a Python mapping, with the emulator's MapView (BTF from the .o;
        a native .sys has none: bytes and ints only)."""
        m = self.bpf.map(name)
        spec = self.elf.map(name) if self.elf is not None else \
            MapSpec(m.name, m.type, m.key_size, m.value_size, m.max_entries)
        ncpus = self.hook.libbpf.num_possible_cpus() if m.is_percpu else None
        return MapView(m, spec, self.elf.btf if self.elf else None, ncpus)

    def ringbuf(self, name: str) -> LiveRingBuf:
        if name not in self._rings:
            self._rings[name] = LiveRingBuf(self.hook.libbpf, self.bpf.map(name),
                                            self.elf.btf if self.elf else None)
        return self._rings[name]

    def close(self) -> None:
        for r in self._rings.values():
            r.rb.free()
        self.bpf.close()


@dataclass
class WindowsLink:
    program: BpfProgram
    link: BpfLink | None
    raw: int | None = None   # a link pointer from ebpf_program_attach
    order: int = 0


class WindowsHook:
    """The ProcessHook API on the real ntosebpfext (Windows only; see the module doc)."""

    kind = "windows-live"

    def __init__(self, dll: str | os.PathLike | None = None, *, check: bool = True,
                 monitor: str | os.PathLike | None = None, **_ignored: Any) -> None:
        if not _is_windows():
            raise LibbpfUnavailable("WindowsHook needs Windows with eBPF for Windows and "
                                    "ntosebpfext; on Linux use LinuxHook (ntoslab.live())")
        from ..libbpf import find_library
        path = str(dll) if dll else find_library("windows")
        if check:
            problems = windows_problems(path)
            if problems:
                raise LiveUnavailable(problems)
        self.libbpf = Libbpf(path, platform="windows")
        self.features = detect_features(self.libbpf.has)
        for name, (restype, argtypes) in WINDOWS_SIGNATURES.items():
            if self.libbpf.has(name):
                fn = getattr(self.libbpf.lib, name)
                fn.restype, fn.argtypes = restype, argtypes
        if check and self.features.program_type_lookup:
            self._check_store()
        self.monitor_path = monitor
        self.objects: list[WindowsObject] = []
        self.links: list[WindowsLink] = []
        self.subscribers: list = []
        self._events = 0
        self._monitor: WindowsObject | None = None
        self.history: list[Verdict] = []
        # process_monitor records stream() could not read: {size in bytes: count}
        self.skipped_records: dict[int, int] = {}

    def _check_store(self) -> None:
        ptype, atype = _GUID(), _GUID()
        res = self.libbpf.lib.ebpf_get_program_type_by_name(b"process", ptype, atype)
        if res != 0:
            raise windows_error(ebpf_result_errno(res), "ebpf_get_program_type_by_name(process)",
                                "load")

    # -- objects --------------------------------------------------------------------------------
    def load(self, path: str | os.PathLike) -> WindowsObject:
        """Open a .sys (native) or .o (JIT), set the execution type, load."""
        path = os.fspath(path)
        exec_type = execution_type_for(path)
        try:
            bpf = self.libbpf.open(path)
        except LibbpfError as exc:
            raise windows_error(exc.errno, exc.operation, "open", exc.log) from None
        try:
            if self.features.execution_type:
                res = self.libbpf.lib.ebpf_object_set_execution_type(bpf.ptr, exec_type)
                if res != 0:
                    raise windows_error(ebpf_result_errno(res),
                                        f"ebpf_object_set_execution_type({Path(path).name}, "
                                        f"{EXECUTION_NAMES[exec_type]})", "load")
            try:
                bpf.load()
            except LibbpfError as exc:
                raise windows_error(exc.errno, exc.operation, "load", exc.log) from None
        except BaseException:
            bpf.close()
            raise
        elf = None
        if exec_type != EBPF_EXECUTION_NATIVE:
            try:
                from ...elf import load as load_elf
                elf = load_elf(path)
            except Exception:
                elf = None
        obj = WindowsObject(self, bpf, elf)
        self.objects.append(obj)
        return obj

    def attach(self, program: BpfProgram | WindowsObject, name: str | None = None) -> WindowsLink:
        """bpf_program__attach; when the section gives no attach type, ebpf_program_attach
        with EBPF_ATTACH_TYPE_PROCESS."""
        if isinstance(program, WindowsObject):
            program = program.program(name) if name else next(
                p for p in program.programs if p.section.startswith("process"))
        try:
            link = WindowsLink(program, program.attach(), order=len(self.links))
        except LibbpfError as exc:
            if exc.name != "EINVAL" or not self.features.explicit_attach:
                raise windows_error(exc.errno, exc.operation, "attach", exc.log) from None
            out = ctypes.c_void_p()
            res = self.libbpf.lib.ebpf_program_attach(program.ptr, _guid(EBPF_ATTACH_TYPE_PROCESS),
                                                      None, 0, ctypes.byref(out))
            if res != 0:
                raise windows_error(ebpf_result_errno(res),
                                    f"ebpf_program_attach({program.name}, "
                                    f"{{{EBPF_ATTACH_TYPE_PROCESS}}})", "attach") from None
            bl = BpfLink(program, out.value)
            program.obj.links.append(bl)
            link = WindowsLink(program, bl, out.value, len(self.links))
        self.links.append(link)
        return link

    def detach(self, link: WindowsLink) -> None:
        if link.link is not None:
            link.link.destroy()
        self.links.remove(link)

    # -- events through bpf_prog_test_run_opts --------------------------------------------------
    def inject(self, event: ProcessEvent | dict) -> Verdict:
        """Run every attached program on `event` through the real extension's test-run path,
        in attach order; a negative NTSTATUS on a create stops the later ones."""
        if not isinstance(event, ProcessEvent):
            event = ProcessEvent.from_row(event)
        if not self.features.test_run:
            raise LibbpfUnavailable("this EbpfApi.dll has no bpf_prog_test_run_opts: update "
                                    "eBPF for Windows to inject events")
        packed = pack_test_run_context(event)
        if len(packed.ctx) + len(packed.data) > TEST_RUN_MAX:
            sizes = ", ".join(f"{k} {len(v)}" for k, v in packed.strings.items() if v)
            raise EventError(f"pid {event.process_id}: its strings are {len(packed.data)} bytes "
                             f"of UTF-16 ({sizes}); with the {len(packed.ctx)}-byte context a "
                             f"test run through EbpfApi.dll carries at most "
                             f"{TEST_RUN_MAX} bytes")
        verdict = Verdict(self._events, event.operation, event.process_id, event=event)
        for link in list(self.links):
            prog = link.program
            try:
                run = prog.test_run(ctx_in=packed.ctx, data_in=packed.data,
                                    ctx_out_size=TEST_CONTEXT_SIZE,
                                    data_out_size=len(packed.data))
            except LibbpfError as exc:
                raise windows_error(exc.errno, exc.operation, "test_run", exc.log) from None
            status = status_of(run.retval)
            verdict.runs.append(ProgramRun(Path(prog.obj.path).name, prog.name, status, 0))
            if event.is_create and denies(status):
                verdict.status, verdict.denied, verdict.decided_by = status, True, prog.name
                break
        self._events += 1        # a refused test run raised above: no verdict, no index used
        self.history.append(verdict)
        for callback in self.subscribers:
            callback(verdict)
        return verdict

    def subscribe(self, callback) -> None:
        self.subscribers.append(callback)

    def replay(self, events, progress: bool | None = None) -> "pd.DataFrame":
        """Inject every event (a trace DataFrame or an iterable), one test run per attached
        program and event; a row per input row, bad rows reported in `error`."""
        return replay_events(self.inject, events, progress)

    def verdicts(self) -> "pd.DataFrame":
        """One row per injected event, as on every hook (`enforced` is False: a test run
        invokes the programs, it creates or denies no process)."""
        return history_frame(history_row(v) for v in self.history)

    def printk(self) -> "pd.DataFrame":
        """bpf_printk output. On Windows it goes to the eBPF ETW provider, which libbpf cannot
        read: the frame is empty (same columns as elsewhere) and a warning says where to look."""
        if not getattr(self, "_printk_told", False):
            self._printk_told = True
            warnings.warn("WindowsHook.printk(): Windows sends bpf_printk output to the eBPF "
                          "for Windows ETW provider (keyword PRINTK); read it with an ETW "
                          "session (tracelog / `netsh trace`), not through EbpfApi.dll",
                          stacklevel=2)
        import pandas as pd
        return printk_frame([]).assign(object=pd.Series(dtype=str))   # as the emulator's

    # -- live events through process_monitor ----------------------------------------------------
    def _monitor_object(self) -> WindowsObject:
        if self._monitor is None:
            path = self.monitor_path or os.environ.get("NTOSLAB_PROCESS_MONITOR") or \
                "process_monitor.sys"
            self._monitor = self.load(path)
            self.attach(self._monitor.program("ProcessMonitor"))
        return self._monitor

    def stream(self, duration: float | None = None) -> Iterator[ProcessEvent]:
        """Real process events as process_monitor reports them (records joined with its string
        maps when consumed, like the C# reader). A record that is not a 112-byte process_info_t
        is counted in `skipped_records` (by size) and warned about, never dropped unseen."""
        from ...trace.process_monitor import (
            RECORD_SIZE,
            STRING_MAPS,
            decode_utf16,
            parse_record,
        )
        mon = self._monitor_object()
        ring = mon.ringbuf("process_ringbuf")
        maps = {f: mon.bpf.map(n) for f, n in STRING_MAPS.items()}
        host = os.environ.get("COMPUTERNAME")
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            ring.poll(200)
            with ring._lock:
                new = ring.records_[ring.streamed:]
            for rec in new:
                # counted before the yield: a caller that stops here has had this record; and
                # the ones a callback-mode ring (before 1.1) got before this call come too
                ring.streamed += 1
                if len(rec) != RECORD_SIZE:
                    self._skip(len(rec), RECORD_SIZE)
                    continue
                row = parse_record(rec)
                key = row["process_id"].to_bytes(4, "little")
                for f, m in maps.items():
                    row[f] = decode_utf16(m.lookup(key))
                ft = row["creation_time"] if row["operation"] == "create" else row["exit_time"]
                row["time"] = (ft - 116444736000000000) * 100 if ft else 0
                row.update(host=host, source=SOURCE,
                           process_key=f"{host}:{row['process_id']}:{row['creation_time']}")
                yield ProcessEvent.from_row(row)

    def _skip(self, size: int, want: int) -> None:
        first = size not in self.skipped_records
        self.skipped_records[size] = self.skipped_records.get(size, 0) + 1
        if first:
            warnings.warn(f"process_monitor's ring buffer sent a {size}-byte record; its records "
                          f"are {want}-byte process_info_t, so this one is skipped (counted in "
                          f"hook.skipped_records, by size). Is the loaded process_monitor the "
                          f"one this ntoslab reads?", stacklevel=3)

    def capture(self, duration: float | None = None, count: int | None = None) -> "pd.DataFrame":
        from ...trace.schema import trace_frame
        if duration is None and count is None:
            raise ValueError("capture needs duration= (seconds) or count= (events)")
        events = []
        for ev in self.stream(duration):
            events.append(ev)
            if count is not None and len(events) >= count:
                break
        return trace_frame(events)

    def close(self) -> None:
        for link in list(self.links):
            self.detach(link)
        for obj in self.objects:
            obj.close()
        self.objects.clear()
        self._monitor = None

    def __enter__(self) -> "WindowsHook":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
