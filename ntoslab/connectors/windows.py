"""The real ntosebpfext through eBPF for Windows' EbpfApi.dll, behind the ProcessHook API.

What it does (reference §1.7, §3.3-3.5, §4, §7):
- `load(path)` opens a native `.sys` (the extension must be exactly lower-case "sys") or a `.o`
  (JIT: needs the pre-release JIT feature and the store entries of
  ntos_ebpf_ext_export_program_info.exe), sets the execution type, and loads it.
- `attach(program)` uses `bpf_program__attach` (the `process` section implies the attach type)
  and falls back to `ebpf_program_attach` with the attach-type GUID {66e20687-...}; never
  `bpf_prog_attach`, which answers ENOTSUP for process programs.
- `inject(event)` drives the real extension's context_create with `bpf_prog_test_run_opts`: the
  296-byte `process_notify_context_t` and the packed UTF-16LE strings; each attached program
  runs in attach order and a negative NTSTATUS stops the later ones, as the hook does. The
  verdict carries the real status. (A test run invokes the program, not the notify routine: no
  real process is created or denied.)
- `capture`/`stream` read real process events through a process_monitor object (its
  `process_ringbuf` 112-byte records joined with its string maps, as the C# reader does), with
  `ring_buffer__poll` on eBPF for Windows 1.1 or newer and the older callback mode before that.
- Maps are read with libbpf calls; per-CPU values are pad8(value_size) * possible CPUs bytes.

Everything that does not need Windows is plain Python and tested on Linux: the context and
string packing byte for byte, feature (version) detection from the DLL's exports, `sc query`
parsing, error translation with the fix for each failure a Windows user meets.
"""
from __future__ import annotations

import ctypes
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ..hooks.notify_context import TEST_CONTEXT_SIZE, pack_test_run_context
from ..hooks.process import ProcessEvent, denies, status_of
from ..elf import MapSpec
from .contract import ProgramRun, Verdict, history_frame, history_row, replay_events
from .views import MapView, printk_frame
from .libbpf import (BpfLink, BpfMap, BpfObject, BpfProgram, Libbpf, LibbpfError,
                     LibbpfUnavailable, translate)

if TYPE_CHECKING:
    import pandas as pd

# -- identifiers (reference §1.2, §3.5) ----------------------------------------------------------
EBPF_PROGRAM_TYPE_PROCESS = uuid.UUID("22ea7b37-1043-4d0d-b60d-cafa1c7b638e")
EBPF_ATTACH_TYPE_PROCESS = uuid.UUID("66e20687-9805-4458-a0db-38e220d31685")
BPF_PROG_TYPE_PROCESS = 6
BPF_ATTACH_TYPE_PROCESS = 11
EBPF_EXECUTION_ANY, EBPF_EXECUTION_JIT, EBPF_EXECUTION_INTERPRET, EBPF_EXECUTION_NATIVE = 0, 1, 2, 3
EXECUTION_NAMES = {0: "any", 1: "jit", 2: "interpret", 3: "native"}
SOURCE = "windows-live"

# -- versions, services, privileges ----------------------------------------------------------
@dataclass(frozen=True)
class EbpfApiFeatures:
    """What an EbpfApi.dll can do, from the calls it exports (reference §3.3, §4)."""

    ring_buffer_poll: bool       # ring_buffer__poll/consume: 1.1 or newer, synchronous mode
    test_run: bool               # bpf_prog_test_run_opts (inject)
    explicit_attach: bool        # ebpf_program_attach (attach by GUID)
    execution_type: bool         # ebpf_object_set_execution_type
    program_type_lookup: bool    # ebpf_get_program_type_by_name (store check)
    missing: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        """"1.1 or newer", or "older than 1.1" (callback-mode ring buffers)."""
        return "1.1 or newer" if self.ring_buffer_poll else "older than 1.1"

    @property
    def ring_buffer_mode(self) -> str:
        return "poll" if self.ring_buffer_poll else "callback"


FEATURE_EXPORTS = {"ring_buffer_poll": ("ring_buffer__poll", "ring_buffer__consume"),
                   "test_run": ("bpf_prog_test_run_opts",),
                   "explicit_attach": ("ebpf_program_attach",),
                   "execution_type": ("ebpf_object_set_execution_type",),
                   "program_type_lookup": ("ebpf_get_program_type_by_name",)}
REQUIRED_EXPORTS = ("bpf_object__open", "bpf_object__load", "bpf_program__attach",
                    "ring_buffer__new", "bpf_map_lookup_elem")


def detect_features(has: Callable[[str], bool]) -> EbpfApiFeatures:
    """Features from `has(export_name)`; raises LibbpfUnavailable naming what a too old (or
    wrong) DLL lacks."""
    lacking = [n for n in REQUIRED_EXPORTS if not has(n)]
    if lacking:
        raise LibbpfUnavailable(f"EbpfApi.dll lacks {', '.join(lacking)}: this is not eBPF for "
                                f"Windows' libbpf API, or a release too old; install eBPF for "
                                f"Windows 1.1 or newer")
    flags = {k: all(has(n) for n in names) for k, names in FEATURE_EXPORTS.items()}
    missing = tuple(n for names in FEATURE_EXPORTS.values() for n in names if not has(n))
    return EbpfApiFeatures(**flags, missing=missing)


def service_state(sc_query_output: str) -> str | None:
    """The STATE word of `sc query NAME` output (RUNNING, STOPPED, ...), None if absent."""
    for line in sc_query_output.splitlines():
        key, _, value = line.partition(":")
        if key.strip().upper() == "STATE":
            parts = value.split()
            return parts[1].upper() if len(parts) > 1 else (parts[0] if parts else None)
    return None


def execution_type_for(path: str | os.PathLike) -> int:
    """NATIVE for a `.sys` (exactly lower-case: eBPF for Windows compares case-sensitively),
    JIT for a `.o`."""
    suffix = Path(path).suffix
    if suffix == ".sys":
        return EBPF_EXECUTION_NATIVE
    if suffix.lower() == ".sys":
        raise ValueError(f"{path}: eBPF for Windows treats a file as native only when its "
                         f"extension is exactly lower-case '.sys': rename it")
    if suffix == ".o":
        return EBPF_EXECUTION_JIT
    raise ValueError(f"{path}: expected a native .sys driver or an ELF .o object")


from ..runtime import ebpf_result as _ebpf_result  # noqa: E402  (names and errno, one table)
from ..runtime.ebpf_result import EOTHER  # noqa: E402,F401


def ebpf_result_name(result: int) -> str:
    return _ebpf_result.name(result)


def ebpf_result_errno(result: int) -> int:
    return _ebpf_result.errno(result)


SERVICE_FIX = ("check that the ntosebpfext driver is running (`sc query ntosebpfext`; start it "
               "with `sc start ntosebpfext` as administrator) and that its program information "
               "is exported (`ntos_ebpf_ext_export_program_info.exe`, from the ntosebpfext "
               "build); eBPF for Windows itself needs `sc query ebpfcore` RUNNING")
WINDOWS_HINTS = {
    ("open", "ENOENT"): "check the path; a native program is a .sys built with "
                        "Convert-BpfToNative.ps1, a JIT program a .o",
    ("load", "EINVAL"): "the program type is unknown or the extension is missing: " + SERVICE_FIX,
    ("load", "ENOENT"): "the extension or its program information was not found: " + SERVICE_FIX,
    ("load", "EACCES"): "the PREVAIL verifier rejected the program (VERIFICATION_FAILED): "
                        "`netsh ebpf show verification FILE.o` prints its report",
    ("load", "EPERM"): "loading needs an elevated (Administrator) process",
    ("load", "ENOTSUP"): "this execution type is unavailable: JIT (.o) is a pre-release-only "
                         "feature; release installs run native .sys programs only",
    ("load", "EOTHER"): "a native .sys may have been built against other ntosebpfext headers "
                        "(its program-info hash must match the running extension): rebuild it; "
                        + SERVICE_FIX,
    ("attach", "EINVAL"): "the program's attach type is unknown (its section must be "
                          "'process'), or ntosebpfext is not running: " + SERVICE_FIX,
    ("attach", "ENOTSUP"): "ntosebpfext could not register its process notify routine, or "
                           "the attach went through bpf_prog_attach (unsupported for process)",
    ("attach", "EPERM"): "attaching needs an elevated (Administrator) process",
    ("test_run", "EINVAL"): "the process type wants ctx_in of at least 296 bytes, a non-NULL "
                            "data_in holding every string the UNICODE_STRING lengths name, "
                            "and Length <= MaximumLength",
    ("test_run", "ENOTSUP"): "this ntosebpfext has no test-run support for process programs "
                             "(context_create came with v0.7.0): update ntosebpfext",
    ("*", "EPERM"): "run from an elevated (Administrator) prompt",
}


def windows_error(err: int, operation: str, kind: str = "*", log: str = "") -> LibbpfError:
    """A LibbpfError for an MSVC errno from EbpfApi.dll, with the Windows fix."""
    return translate(err, operation, kind, platform="windows", log=log, hints=WINDOWS_HINTS)


def is_elevated() -> bool:
    if sys.platform != "win32":
        return os.geteuid() == 0
    try:
        return bool(ctypes.windll.shell32.IsUserAnAdmin())
    except (AttributeError, OSError):
        return False


def windows_problems(dll: str | None) -> list[str]:
    """What stops the Windows live hook here (empty when nothing does)."""
    problems = []
    if not dll:
        problems.append("EbpfApi.dll not found: install eBPF for Windows (MSI from its "
                        "releases; it puts C:\\Program Files\\ebpf-for-windows on PATH) or set "
                        "NTOSLAB_LIBBPF to the DLL")
    if not is_elevated():
        problems.append("not elevated: loading and attaching programs needs an Administrator "
                        "prompt")
    for service, fix in (("ebpfcore", "install eBPF for Windows"),
                         ("ntosebpfext", "sc create ntosebpfext type=kernel start=demand "
                                         "binPath=...\\ntosebpfext.sys && sc start ntosebpfext")):
        try:
            out = subprocess.run(["sc", "query", service], capture_output=True, text=True,
                                 timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        state = service_state(out)
        if state != "RUNNING":
            problems.append(f"service {service} is {state or 'not installed'}: {fix}")
    return problems


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
        if sys.platform != "win32":
            raise LibbpfUnavailable("WindowsHook needs Windows with eBPF for Windows and "
                                    "ntosebpfext; on Linux use LinuxHook (ntoslab.live())")
        from .libbpf import find_library
        from .live import LiveUnavailable
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
                from ..elf import load as load_elf
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
        verdict = Verdict(self._events, event.operation, event.process_id, event=event)
        self._events += 1
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
        return printk_frame([]).assign(object=pd.Series(dtype=object))

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
        maps when consumed, like the C# reader)."""
        from ..trace.process_monitor import RECORD_SIZE, STRING_MAPS, decode_utf16, parse_record
        mon = self._monitor_object()
        ring = mon.ringbuf("process_ringbuf")
        maps = {f: mon.bpf.map(n) for f, n in STRING_MAPS.items()}
        host = os.environ.get("COMPUTERNAME")
        seen = len(ring.records_)
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            ring.poll(200)
            with ring._lock:
                new, seen = ring.records_[seen:], len(ring.records_)
            for rec in new:
                if len(rec) != RECORD_SIZE:
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

    def capture(self, duration: float | None = None, count: int | None = None) -> "pd.DataFrame":
        from .linux import trace_frame
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

    def __enter__(self) -> "WindowsHook":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
