"""A fake EbpfApi.dll: `ebpfapi_fake.c` built into a shared library and dlopen'd, its calls
answered by ntoslab's emulator as eBPF for Windows with ntosebpfext running would answer them.

The connector loads the library like the real DLL (ctypes, its own argtypes and restypes) and
every call crosses the C ABI: handles are real addresses, out-parameters real pointers, option
structs are read by C, errno is set for NULL returns, ring-buffer records go through the
connector's ring_buffer_sample_fn. What Windows would do is kept (reference §1.6-1.8, §3.3-3.5,
§4): negative MSVC errnos and ebpf_result_t codes, fd -1 before load, attach types by GUID, the
test-run request limits of EbpfApi.dll and ntosebpfext's context checks (the emulator's).

`FakeEbpfApi` also keeps what a test wants to see: the calls made (`calls`), live handles
(`leaks()`), misuse the real DLL would crash or fail on (`errors`: a freed or unknown handle, an
exception in a callback), the attach list of the extension (`attached`) and bpf_printk output
(`printk()`: on Windows it goes to ETW, out of the DLL's reach). `fail(name, value)` makes the
next call of `name` fail.

>>> path = build(tmp_path)                                    # doctest: +SKIP
>>> with FakeEbpfApi(path) as fake: hook = windows_hook(fake)   # doctest: +SKIP
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
import time
import uuid
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_bool,
    c_char_p,
    c_int,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import ntoslab
from ntoslab.elf import ElfObject
from ntoslab.elf import load as load_elf
from ntoslab.elf.loader import load_bytes
from ntoslab.elf.sections import SECTION_TYPES
from ntoslab.hooks.notify_context import TestRunRefused
from ntoslab.runtime import ebpf_result as er
from ntoslab.runtime.maps.base import MapError
from ntoslab.vm.engine import VmFault
from ntoslab.vm.semantics import ProgramError

SOURCE = Path(__file__).with_name("ebpfapi_fake.c")

# -- what the fake exports ----------------------------------------------------------------------
# Calls the connector declares that eBPF for Windows' ebpfapi/Source.def does not export.
NOT_IN_EBPFAPI = frozenset({
    "bpf_program__expected_attach_type", "bpf_link__detach", "bpf_map__set_max_entries",
    "ring_buffer__epoll_fd", "libbpf_set_print", "libbpf_version_string",
    "libbpf_major_version", "libbpf_minor_version"})
# Exported from Release-v1.1.0 on (synchronous ring buffers, PR #4651); before, ring buffers
# delivered records by callbacks on a thread pool.
SINCE_1_1 = frozenset({"ring_buffer__poll", "ring_buffer__consume", "ring_buffer__add"})
FAKE_EXPORTS = ("fake_register", "fake_set_errno", "fake_call_sample", "fake_print",
                "fake_count", "fake_name", "fake_signature", "fake_layout")


def c_names() -> list[str]:
    """The libbpf/EbpfApi calls the C file implements (its callback table), in its order."""
    text = SOURCE.read_text()
    table = text[text.index("} table[] = {"):text.index("#define ENTRIES")]
    names = []
    for line in table.splitlines():
        line = line.strip()
        if line.startswith("ENTRY("):
            names.append(line[6:line.index(",")])
        elif line.startswith('{"'):
            names.append(line[2:line.index('"', 2)])
    return names


def build(out_dir: Path, *, variant: str = "1.x", exports: set[str] | None = None) -> Path:
    """Compile the fake with gcc into `out_dir`; `variant` picks the exported set: "1.x" (what
    EbpfApi.dll 1.1+ exports), "0.21" (no ring_buffer__poll/consume/add) or "all" (every call
    the C file has). `exports` overrides it."""
    names = set(c_names())
    if exports is None:
        exports = {"all": names, "1.x": names - NOT_IN_EBPFAPI,
                   "0.21": names - NOT_IN_EBPFAPI - SINCE_1_1}[variant]
    script = out_dir / f"ebpfapi-{variant}.map"
    script.write_text("{\n  global:\n" + "".join(f"    {n};\n" for n in
                                                 sorted(exports) + list(FAKE_EXPORTS))
                      + "  local: *;\n};\n")
    out = out_dir / f"ebpfapi-{variant}.so"
    cmd = ["gcc", "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
           f"-Wl,--version-script={script}", "-o", str(out), str(SOURCE)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"building the fake EbpfApi.dll failed:\n{done.stderr}")
    return out


# -- Windows numbers ----------------------------------------------------------------------------
EPERM, ENOENT, EBADF, ENOMEM, EACCES, EBUSY, EEXIST = 1, 2, 9, 12, 13, 16, 17
EINVAL, ENOSYS, ENOTSUP, EOTHER = 22, 40, 129, 131
R = er.CODES   # ebpf_result_t by name
ANY, JIT, INTERPRET, NATIVE = 0, 1, 2, 3
RINGBUF = 13                        # BPF_MAP_TYPE_RINGBUF on Windows
FD_INVALID = -1                     # ebpf_fd_invalid
PROCESS_ATTACH_GUID = "66e20687-9805-4458-a0db-38e220d31685"   # EBPF_ATTACH_TYPE_PROCESS
ATTACH_GUIDS = {"process": PROCESS_ATTACH_GUID}
# EbpfApi.dll's test-run request and reply are ioctl buffers with a uint16 length: the
# header before the data is 42 bytes in the request, 32 in the reply (ebpf_protocol.h)
TEST_RUN_IN_LIMIT = 0xFFFF - 42
TEST_RUN_OUT_LIMIT = 0xFFFF - 32


class Misuse(Exception):
    """A call the real DLL would crash on or refuse as a programming error (a freed handle)."""


# -- the kernel's objects -------------------------------------------------------------------------
@dataclass(eq=False)
class FakeObject:
    path: str
    elf: ElfObject
    name: str
    programs: list["FakeProgram"] = field(default_factory=list)
    maps: list["FakeMap"] = field(default_factory=list)
    loaded: Any = None              # the emulator's LoadedObject after bpf_object__load
    execution: int = ANY
    addr: int = 0


@dataclass(eq=False)
class FakeProgram:
    obj: FakeObject
    program: Any                    # ntoslab.elf Program
    fd: int = FD_INVALID
    autoload: bool = True
    addr: int = 0

    @property
    def types(self) -> tuple[str, int, int] | None:
        """(type name, bpf_prog_type, bpf_attach_type) from the section, longest prefix."""
        best = None
        for prefix, info in SECTION_TYPES.items():
            if self.program.section.startswith(prefix) and (best is None or
                                                            len(prefix) > len(best[0])):
                best = (prefix, info)
        return best[1] if best else None


@dataclass(eq=False)
class FakeMap:
    obj: FakeObject
    spec: Any                       # ntoslab.elf MapSpec
    fd: int = FD_INVALID
    addr: int = 0

    def runtime(self):
        return self.obj.loaded.sandbox.maps[self.spec.name]


@dataclass(eq=False)
class FakeLink:
    program: FakeProgram
    attach_type: str
    fd: int
    addr: int = 0
    attached: bool = True


@dataclass(eq=False)
class FakeRing:
    sources: list[tuple[FakeMap, int, int | None]]
    auto: bool                      # callback mode (EbpfApi.dll before 1.1)
    addr: int = 0
    thread: threading.Thread | None = None
    wake: threading.Event = field(default_factory=threading.Event)
    stop: bool = False


@dataclass(frozen=True)
class TestRunCall:
    """What one bpf_prog_test_run_opts call handed the extension."""

    __test__ = False
    program: str
    ctx_in: bytes | None
    data_in: bytes | None
    ctx_out_size: int               # room in ctx_out (0: NULL)
    data_out_size: int              # room in data_out (0: NULL)
    repeat: int


_P = c_void_p
# callback types: the C file's typedefs (name -> restype, argtypes)
CALLBACKS: dict[str, tuple[Any, list]] = {
    "bpf_object__open": (_P, [c_char_p]),
    "bpf_object__open_file": (_P, [c_char_p, c_char_p, c_char_p]),
    "bpf_object__open_mem": (_P, [_P, c_size_t, c_char_p]),
    "bpf_object__load": (c_int, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__name": (_P, [_P]),
    "bpf_object__find_program_by_name": (_P, [_P, c_char_p]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__find_map_by_name": (_P, [_P, c_char_p]),
    "bpf_object__find_map_fd_by_name": (c_int, [_P, c_char_p]),
    "bpf_object__next_map": (_P, [_P, _P]),
    "bpf_program__fd": (c_int, [_P]),
    "bpf_program__name": (_P, [_P]),
    "bpf_program__section_name": (_P, [_P]),
    "bpf_program__type": (c_int, [_P]),
    "bpf_program__expected_attach_type": (c_int, [_P]),
    "bpf_program__get_expected_attach_type": (c_int, [_P]),
    "bpf_program__set_autoload": (c_int, [_P, c_bool]),
    "bpf_program__attach": (_P, [_P]),
    "bpf_link__fd": (c_int, [_P]),
    "bpf_link__destroy": (c_int, [_P]),
    "bpf_link__detach": (c_int, [_P]),
    "bpf_link_detach": (c_int, [c_int]),
    "bpf_map__fd": (c_int, [_P]),
    "bpf_map__name": (_P, [_P]),
    "bpf_map__type": (c_int, [_P]),
    "bpf_map__key_size": (c_uint32, [_P]),
    "bpf_map__value_size": (c_uint32, [_P]),
    "bpf_map__max_entries": (c_uint32, [_P]),
    "bpf_map__set_max_entries": (c_int, [_P, c_uint32]),
    "bpf_map_lookup_elem": (c_int, [c_int, _P, _P]),
    "bpf_map_update_elem": (c_int, [c_int, _P, _P, c_uint64]),
    "bpf_map_delete_elem": (c_int, [c_int, _P]),
    "bpf_map_get_next_key": (c_int, [c_int, _P, _P]),
    "bpf_map_lookup_and_delete_elem": (c_int, [c_int, _P, _P]),
    "bpf_prog_test_run_opts": (c_int, [c_int, _P, c_uint32, _P, POINTER(c_uint32), _P,
                                       c_uint32, _P, POINTER(c_uint32), c_int, c_uint32,
                                       c_uint32, POINTER(c_uint32), POINTER(c_uint32)]),
    "ring_buffer__new": (_P, [c_int, _P, _P]),
    "ring_buffer__add": (c_int, [_P, c_int, _P, _P]),
    "ring_buffer__poll": (c_int, [_P, c_int]),
    "ring_buffer__consume": (c_int, [_P]),
    "ring_buffer__free": (None, [_P]),
    "ring_buffer__epoll_fd": (c_int, [_P]),
    "libbpf_num_possible_cpus": (c_int, []),
    "libbpf_strerror": (c_int, [c_int, _P, c_size_t]),
    "libbpf_version_string": (_P, []),
    "libbpf_major_version": (c_uint32, []),
    "libbpf_minor_version": (c_uint32, []),
    "ebpf_object_set_execution_type": (c_int, [_P, c_int]),
    "ebpf_object_get_execution_type": (c_int, [_P]),
    "ebpf_program_attach": (c_int, [_P, c_char_p, _P, c_size_t, _P]),
    "ebpf_get_program_type_by_name": (c_int, [c_char_p]),
}
# calls answering an ebpf_result_t (the others: 0 / -errno, or NULL and errno)
EBPF_RESULT = {"ebpf_object_set_execution_type", "ebpf_program_attach",
               "ebpf_get_program_type_by_name"}


class FakeEbpfApi:
    """The fake DLL at `path` (a private copy is loaded, so each instance has its own callback
    table) with eBPF for Windows + ntosebpfext behind it, on an emulator of `ncpus` CPUs.

    `extension=False`: ntosebpfext is not running (loading a process program fails with
    EXTENSION_FAILED_TO_LOAD); `store=False`: its program information is not in the eBPF store;
    `jit=False`: a release install (native only: a .o does not load)."""

    def __init__(self, path: str | os.PathLike, *, ncpus: int = 2, extension: bool = True,
                 store: bool = True, jit: bool = True, workdir: str | os.PathLike | None = None
                 ) -> None:
        src = Path(path)
        where = Path(workdir) if workdir else src.parent
        self.path = str(where / f"EbpfApi-{uuid.uuid4().hex[:8]}.so")
        shutil.copyfile(src, self.path)
        self.lib = ctypes.CDLL(self.path)
        self.lib.fake_register.argtypes = [c_char_p, c_void_p]
        self.lib.fake_set_errno.argtypes = [c_int]
        self.lib.fake_call_sample.argtypes = [c_void_p, c_void_p, c_void_p, c_size_t]
        self.lib.fake_call_sample.restype = c_int
        self.lib.fake_print.argtypes = [c_int, c_char_p]
        self.lib.fake_count.restype = c_size_t
        for fn in (self.lib.fake_name, self.lib.fake_signature):
            fn.argtypes, fn.restype = [c_size_t], c_char_p
        self.lib.fake_layout.argtypes, self.lib.fake_layout.restype = [c_char_p, c_char_p], \
            ctypes.c_long
        self.emu = ntoslab.emulator(ncpus=ncpus)
        self.ncpus = ncpus
        self.extension, self.store, self.jit = extension, store, jit
        self.calls: list[str] = []
        self.errors: list[str] = []
        self.attached: list[FakeLink] = []
        self.runs: list[TestRunCall] = []       # every bpf_prog_test_run_opts that ran
        self._live: dict[int, Any] = {}           # address -> object
        self._freed: dict[int, str] = {}           # address -> what it was
        self._fds: dict[int, Any] = {}
        self._next_fd = 3
        self._arena: list[Any] = []                # handle memory, never reused
        self._strings: dict[tuple[int, str], Any] = {}
        self._failures: dict[str, list[int]] = {}
        self._lock = threading.RLock()
        self._keep: dict[str, Any] = {}
        self.exported = {n for n in c_names() if hasattr(self.lib, n)}
        self.auto_callbacks = "ring_buffer__poll" not in self.exported
        for name, (restype, argtypes) in CALLBACKS.items():
            impl = getattr(self, "_" + name)
            fn = CFUNCTYPE(restype, *argtypes)(self._guard(name, restype, impl))
            self._keep[name] = fn
            if self.lib.fake_register(name.encode(), ctypes.cast(fn, c_void_p)) != 0:
                raise RuntimeError(f"the fake's C table has no {name}")

    # -- test-facing --------------------------------------------------------------------------------
    def fail(self, name: str, value: int, times: int = 1) -> None:
        """Make the next `times` calls of `name` fail: int calls return `value` (a negative
        errno, or an ebpf_result_t for ebpf_* calls); pointer calls return NULL with errno
        `value`."""
        if name not in CALLBACKS:
            raise KeyError(name)
        self._failures.setdefault(name, []).extend([value] * times)

    def leaks(self) -> list[str]:
        """Live objects, links and ring buffers (what a closed hook must not leave behind)."""
        return sorted(f"{type(o).__name__} {self._label(o)}" for o in self._live.values()
                      if isinstance(o, (FakeObject, FakeLink, FakeRing)))

    def printk(self):
        """What the programs printed (Windows sends it to ETW, not through EbpfApi.dll)."""
        return self.emu.printk()

    def print(self, level: int, text: str) -> bool:
        """Emit a libbpf log line through the connector's print callback (if it set one)."""
        return self.lib.fake_print(level, text.encode()) == 0

    def close(self) -> None:
        for ring in [o for o in self._live.values() if isinstance(o, FakeRing)]:
            self._stop_ring(ring)
        for name in CALLBACKS:
            self.lib.fake_register(name.encode(), None)
        self.emu.close()

    def __enter__(self) -> "FakeEbpfApi":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------
    def _guard(self, name: str, restype, impl: Callable) -> Callable:
        pointer = restype is _P and name not in EBPF_RESULT

        def failed(value: int):
            if restype is None:
                return None
            if pointer:
                self.lib.fake_set_errno(value)
                return None
            return value

        def call(*args):
            with self._lock:
                self.calls.append(name)
                queued = self._failures.get(name)
                if queued:
                    return failed(queued.pop(0))
                try:
                    return impl(*args)
                except Misuse as exc:
                    self.errors.append(f"{name}: {exc}")
                    return failed(EINVAL if pointer or name in EBPF_RESULT else -EINVAL)
                except BaseException as exc:  # noqa: BLE001 - never into C; the test fails
                    self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    return failed(EOTHER if pointer else R["FAILED"] if name in EBPF_RESULT
                                  else -EOTHER)
        return call

    def _new(self, obj: Any) -> int:
        buf = ctypes.create_string_buffer(16)
        self._arena.append(buf)
        obj.addr = ctypes.addressof(buf)
        self._live[obj.addr] = obj
        return obj.addr

    def _free(self, obj: Any) -> None:
        self._live.pop(obj.addr, None)
        self._freed[obj.addr] = f"{type(obj).__name__} {self._label(obj)}"

    def _get(self, addr: int | None, kind: type, what: str = "handle") -> Any:
        if not addr:
            raise Misuse(f"NULL {kind.__name__} {what}")
        if addr in self._freed:
            raise Misuse(f"{what} 0x{addr:x} used after it was freed ({self._freed[addr]})")
        obj = self._live.get(addr)
        if not isinstance(obj, kind):
            raise Misuse(f"0x{addr:x} is not a live {kind.__name__} "
                         f"(it is {type(obj).__name__ if obj is not None else 'unknown'})")
        return obj

    def _fd(self, obj: Any) -> int:
        fd, self._next_fd = self._next_fd, self._next_fd + 1
        self._fds[fd] = obj
        return fd

    def _cstr(self, owner: Any, text: str) -> int:
        key = (id(owner), text)
        if key not in self._strings:
            self._strings[key] = (owner, ctypes.create_string_buffer(text.encode()))
        return ctypes.addressof(self._strings[key][1])

    @staticmethod
    def _label(o: Any) -> str:
        if isinstance(o, FakeObject):
            return o.name
        if isinstance(o, FakeProgram):
            return o.program.name
        if isinstance(o, FakeMap):
            return o.spec.name
        if isinstance(o, FakeLink):
            return o.program.program.name
        if isinstance(o, FakeRing):
            return "+".join(m.spec.name for m, _, _ in o.sources)
        return "?"

    def _errno_fail(self, err: int) -> None:
        self.lib.fake_set_errno(err)

    # -- objects ------------------------------------------------------------------------------------
    def _open(self, path: bytes | None, object_name: bytes | None) -> int | None:
        if not path:
            self._errno_fail(EINVAL)
            return None
        text = path.decode()
        if not os.path.exists(text):
            self._errno_fail(ENOENT)
            return None
        if Path(text).suffix == ".sys":   # a native driver: ebpfcore loads it, not this fake
            self._errno_fail(ENOTSUP)
            return None
        try:
            elf = load_elf(text)
        except Exception:    # ELF_PARSING_FAILED
            self._errno_fail(EINVAL)
            return None
        return self._object(text, elf, object_name)

    def _object(self, path: str, elf: ElfObject, object_name: bytes | None) -> int:
        obj = FakeObject(path, elf, object_name.decode() if object_name else Path(path).stem)
        self._new(obj)
        for p in elf.programs:
            self._new(prog := FakeProgram(obj, p))
            obj.programs.append(prog)
        for spec in elf.maps.values():
            self._new(m := FakeMap(obj, spec))
            obj.maps.append(m)
        return obj.addr

    def _bpf_object__open(self, path):
        return self._open(path, None)

    def _bpf_object__open_file(self, path, object_name, pin_root_path):
        return self._open(path, object_name)

    def _bpf_object__open_mem(self, buf, size, object_name):
        data = ctypes.string_at(buf, size)
        name = (object_name or b"memory").decode()
        try:
            elf = load_bytes(data, name)
        except Exception:
            self._errno_fail(EINVAL)
            return None
        return self._object(name, elf, object_name)

    def _bpf_object__load(self, addr):
        obj = self._get(addr, FakeObject)
        if obj.loaded is not None:
            return -EINVAL
        if obj.execution == JIT and not self.jit:
            return -ENOTSUP           # OPERATION_NOT_SUPPORTED: no JIT on a release install
        if not self.extension and any(p.types and p.types[0] == "process" and p.autoload
                                      for p in obj.programs):
            return -EINVAL            # EXTENSION_FAILED_TO_LOAD: ntosebpfext is not running
        try:
            obj.loaded = self.emu.load(obj.elf)
        except ProgramError:
            return -EACCES            # VERIFICATION_FAILED
        except MapError as exc:
            return -exc.errno
        for p in obj.programs:
            if p.autoload:
                p.fd = self._fd(p)
        for m in obj.maps:
            m.fd = self._fd(m)
        return 0

    def _bpf_object__close(self, addr):
        if not addr:
            return
        obj = self._get(addr, FakeObject)
        for item in obj.programs + obj.maps:
            self._fds.pop(item.fd, None)
            self._free(item)
        if obj.loaded is not None and obj.loaded in self.emu.objects:
            self.emu.objects.remove(obj.loaded)
        self._free(obj)

    def _bpf_object__name(self, addr):
        obj = self._get(addr, FakeObject)
        return self._cstr(obj, obj.name)

    def _find(self, items, name: bytes, label) -> Any:
        want = name.decode() if name else None
        return next((i for i in items if label(i) == want), None)

    def _bpf_object__find_program_by_name(self, addr, name):
        prog = self._find(self._get(addr, FakeObject).programs, name, lambda p: p.program.name)
        if prog is None:
            self._errno_fail(ENOENT)
        return prog.addr if prog else None

    def _next(self, items: list, prev: int | None, kind: type) -> int | None:
        if not prev:
            return items[0].addr if items else None
        cur = self._get(prev, kind, "prev")
        if cur not in items:
            raise Misuse(f"prev {self._label(cur)} belongs to another object")
        i = items.index(cur) + 1
        return items[i].addr if i < len(items) else None

    def _bpf_object__next_program(self, addr, prev):
        return self._next(self._get(addr, FakeObject).programs, prev, FakeProgram)

    def _bpf_object__find_map_by_name(self, addr, name):
        m = self._find(self._get(addr, FakeObject).maps, name, lambda m: m.spec.name)
        if m is None:
            self._errno_fail(ENOENT)
        return m.addr if m else None

    def _bpf_object__find_map_fd_by_name(self, addr, name):
        m = self._find(self._get(addr, FakeObject).maps, name, lambda m: m.spec.name)
        return -ENOENT if m is None else m.fd

    def _bpf_object__next_map(self, addr, prev):
        return self._next(self._get(addr, FakeObject).maps, prev, FakeMap)

    # -- programs ---------------------------------------------------------------------------------
    def _bpf_program__fd(self, addr):
        return self._get(addr, FakeProgram).fd

    def _bpf_program__name(self, addr):
        p = self._get(addr, FakeProgram)
        return self._cstr(p, p.program.name)

    def _bpf_program__section_name(self, addr):
        p = self._get(addr, FakeProgram)
        return self._cstr(p, p.program.section)

    def _bpf_program__type(self, addr):
        types = self._get(addr, FakeProgram).types
        return types[1] if types else 0

    def _bpf_program__get_expected_attach_type(self, addr):
        types = self._get(addr, FakeProgram).types
        return types[2] if types else 0

    _bpf_program__expected_attach_type = _bpf_program__get_expected_attach_type

    def _bpf_program__set_autoload(self, addr, autoload):
        p = self._get(addr, FakeProgram)
        if p.obj.loaded is not None:
            return -EINVAL
        p.autoload = bool(autoload)
        return 0

    def _attach(self, p: FakeProgram, guid: str | None) -> tuple[int, FakeLink | None]:
        """ebpf_program_attach: the result and the link. NULL attach type: the program's own
        (from its section); it must be an attach type an extension provides."""
        if p.fd == FD_INVALID:
            return R["INVALID_ARGUMENT"], None
        own = ATTACH_GUIDS.get(p.types[0]) if p.types else None
        guid = guid or own
        if guid is None or guid != own:   # GUID_NULL, or not the program's attach type
            return R["INVALID_ARGUMENT"], None
        if not self.extension:
            return R["EXTENSION_FAILED_TO_LOAD"], None
        link = FakeLink(p, guid, 0)
        self._new(link)
        link.fd = self._fd(link)
        self.attached.append(link)
        return R["SUCCESS"], link

    def _bpf_program__attach(self, addr):
        result, link = self._attach(self._get(addr, FakeProgram), None)
        if link is None:
            self._errno_fail(er.errno(result))
            return None
        return link.addr

    def _ebpf_program_attach(self, addr, attach_type, params, params_size, link_out):
        guid = attach_type.decode() if attach_type else None
        if params or params_size:
            return R["INVALID_ARGUMENT"]     # the process hook takes no attach parameters
        result, link = self._attach(self._get(addr, FakeProgram), guid)
        if link is not None and link_out:
            ctypes.cast(link_out, POINTER(c_void_p))[0] = link.addr
        return result

    # -- links ------------------------------------------------------------------------------------
    def _unhook(self, link: FakeLink) -> None:
        if link.attached:
            link.attached = False
            self.attached.remove(link)

    def _bpf_link__fd(self, addr):
        return self._get(addr, FakeLink).fd

    def _bpf_link__destroy(self, addr):
        if not addr:
            return 0
        link = self._get(addr, FakeLink)
        self._unhook(link)
        self._fds.pop(link.fd, None)
        self._free(link)
        return 0

    def _bpf_link__detach(self, addr):
        self._unhook(self._get(addr, FakeLink))
        return 0

    def _bpf_link_detach(self, fd):
        link = self._fds.get(fd)
        if not isinstance(link, FakeLink):
            return -EBADF
        self._unhook(link)
        return 0

    # -- maps ---------------------------------------------------------------------------------------
    def _bpf_map__fd(self, addr):
        return self._get(addr, FakeMap).fd

    def _bpf_map__name(self, addr):
        m = self._get(addr, FakeMap)
        return self._cstr(m, m.spec.name)

    def _bpf_map__type(self, addr):
        return self._get(addr, FakeMap).spec.type

    def _bpf_map__key_size(self, addr):
        return self._get(addr, FakeMap).spec.key_size

    def _bpf_map__value_size(self, addr):
        return self._get(addr, FakeMap).spec.value_size

    def _bpf_map__max_entries(self, addr):
        return self._get(addr, FakeMap).spec.max_entries

    def _bpf_map__set_max_entries(self, addr, n):
        m = self._get(addr, FakeMap)
        if m.obj.loaded is not None:
            return -EBUSY
        m.spec = replace(m.spec, max_entries=n)
        m.obj.elf.maps[m.spec.name] = m.spec
        return 0

    def _map(self, fd: int) -> FakeMap | None:
        m = self._fds.get(fd)
        return m if isinstance(m, FakeMap) else None

    def _value_bytes(self, m: FakeMap) -> int:
        rt = m.runtime()
        if getattr(rt, "split", None) is not None:
            return ((m.spec.value_size + 7) & ~7) * self.ncpus
        return m.spec.value_size

    def _read_value(self, m: FakeMap, addr: int) -> bytes | list[bytes]:
        raw = ctypes.string_at(addr, self._value_bytes(m))
        if getattr(m.runtime(), "split", None) is None:
            return raw
        step = (m.spec.value_size + 7) & ~7
        return [raw[i:i + m.spec.value_size] for i in range(0, len(raw), step)]

    def _write_value(self, m: FakeMap, addr: int, value: bytes | list[bytes]) -> None:
        if isinstance(value, list):
            step = (m.spec.value_size + 7) & ~7
            value = b"".join(bytes(v).ljust(step, b"\0") for v in value)
        ctypes.memmove(addr, bytes(value), len(value))

    def _bpf_map_lookup_elem(self, fd, key, value):
        from ntoslab.connectors.views import EmulatedMap
        m = self._map(fd)
        if m is None:
            return -EBADF
        if not key or not value:
            return -EINVAL
        try:
            found = EmulatedMap(m.runtime()).lookup(ctypes.string_at(key, m.spec.key_size))
        except MapError as exc:
            return -exc.errno
        if found is None:
            return -ENOENT
        self._write_value(m, value, found)
        return 0

    def _bpf_map_update_elem(self, fd, key, value, flags):
        from ntoslab.connectors.views import EmulatedMap
        m = self._map(fd)
        if m is None:
            return -EBADF
        if not key or not value:
            return -EINVAL
        try:
            EmulatedMap(m.runtime()).update(ctypes.string_at(key, m.spec.key_size),
                                            self._read_value(m, value), flags)
        except MapError as exc:
            return -exc.errno
        return 0

    def _bpf_map_delete_elem(self, fd, key):
        from ntoslab.connectors.views import EmulatedMap
        m = self._map(fd)
        if m is None:
            return -EBADF
        if not key:
            return -EINVAL
        kb = ctypes.string_at(key, m.spec.key_size)
        backend = EmulatedMap(m.runtime())
        try:
            if backend.lookup(kb) is None:
                return -ENOENT
            backend.delete(kb)
        except MapError as exc:
            return -exc.errno
        return 0

    def _bpf_map_get_next_key(self, fd, key, next_key):
        m = self._map(fd)
        if m is None:
            return -EBADF
        if not next_key:
            return -EINVAL
        keys = list(m.runtime().keys())
        if key:
            kb = ctypes.string_at(key, m.spec.key_size)
            i = keys.index(kb) + 1 if kb in keys else 0
        else:
            i = 0
        if i >= len(keys):
            return -ENOENT                       # EBPF_NO_MORE_KEYS
        ctypes.memmove(next_key, keys[i], m.spec.key_size)
        return 0

    def _bpf_map_lookup_and_delete_elem(self, fd, key, value):
        ret = self._bpf_map_lookup_elem(fd, key, value)
        return ret if ret < 0 else self._bpf_map_delete_elem(fd, key)

    # -- test runs ------------------------------------------------------------------------------------
    def _bpf_prog_test_run_opts(self, fd, ctx_in, ctx_size_in, ctx_out, ctx_size_out, data_in,
                                data_size_in, data_out, data_size_out, repeat, flags, cpu,
                                retval, duration):
        if ctx_size_in + data_size_in > TEST_RUN_IN_LIMIT or \
                ctx_size_out[0] + data_size_out[0] > TEST_RUN_OUT_LIMIT:
            return -EINVAL           # EBPF_INVALID_ARGUMENT: the ioctl would not fit
        prog = self._fds.get(fd)
        if not isinstance(prog, FakeProgram):
            return -EINVAL           # an unknown fd reaches the kernel as an invalid handle
        if not prog.types or prog.types[0] != "process":
            return -ENOTSUP          # no extension here serves this type's test runs
        call = TestRunCall(prog.program.name,
                           ctypes.string_at(ctx_in, ctx_size_in) if ctx_in else None,
                           ctypes.string_at(data_in, data_size_in) if data_in else None,
                           ctx_size_out[0] if ctx_out else 0,
                           data_size_out[0] if data_out else 0, repeat)
        try:
            run = prog.obj.loaded.test_run(prog.program, ctx_in=call.ctx_in, data_in=call.data_in,
                                           ctx_out_size=call.ctx_out_size,
                                           data_out_size=call.data_out_size, repeat=repeat)
        except TestRunRefused:
            return -EINVAL
        except VmFault:
            return -EOTHER
        self.runs.append(call)
        if data_out:
            ctypes.memmove(data_out, run.data_out, len(run.data_out))
            data_size_out[0] = len(run.data_out)
        if ctx_out:
            ctypes.memmove(ctx_out, run.ctx_out, len(run.ctx_out))
            ctx_size_out[0] = len(run.ctx_out)
        retval[0] = run.retval
        duration[0] = min(run.duration_ns, 0xFFFF_FFFF)
        for ring in [o for o in self._live.values() if isinstance(o, FakeRing) and o.auto]:
            ring.wake.set()
        return 0

    # -- ring buffers ---------------------------------------------------------------------------------
    def _ring_source(self, fd: int) -> FakeMap | None:
        m = self._map(fd)
        return m if m is not None and m.spec.type == RINGBUF else None

    def _ring_buffer__new(self, fd, fn, ctx):
        m = self._ring_source(fd)
        if m is None or not fn:
            self._errno_fail(EINVAL)
            return None
        ring = FakeRing([(m, fn, ctx)], self.auto_callbacks)
        self._new(ring)
        if ring.auto:
            ring.thread = threading.Thread(target=self._auto_deliver, args=(ring,),
                                           name="fake-ebpf-ringbuf", daemon=True)
            ring.thread.start()
        return ring.addr

    def _ring_buffer__add(self, addr, fd, fn, ctx):
        ring = self._get(addr, FakeRing)
        m = self._ring_source(fd)
        if m is None or not fn:
            return -EINVAL
        ring.sources.append((m, fn, ctx))
        return 0

    def _deliver(self, ring: FakeRing) -> int:
        """Hand pending records to the callbacks, oldest first; a negative return stops (poll
        mode: that value is the result; callback mode: any non-zero return stops)."""
        count = 0
        for m, fn, ctx in ring.sources:
            rt = m.runtime()
            while True:
                recs = rt.consume(1)
                if not recs:
                    break
                buf = ctypes.create_string_buffer(recs[0], len(recs[0]))
                ret = self.lib.fake_call_sample(fn, ctx, buf, len(recs[0]))
                count += 1
                if ret < 0 or (ring.auto and ret):
                    return ret
        return count

    def _ring_buffer__poll(self, addr, timeout_ms):
        ring = self._get(addr, FakeRing)
        if ring.auto:
            return -ENOTSUP
        if timeout_ms < 0:
            raise Misuse("ring_buffer__poll(-1) waits forever here: records come only from "
                         "test runs on this thread")
        got = self._deliver(ring)
        if got == 0 and timeout_ms > 0:
            self._lock.release()     # let other threads run test runs while we wait
            try:
                time.sleep(timeout_ms / 1000)
            finally:
                self._lock.acquire()
            got = self._deliver(ring)
        return got

    def _ring_buffer__consume(self, addr):
        return self._ring_buffer__poll(addr, 0)

    def _auto_deliver(self, ring: FakeRing) -> None:
        while not ring.stop:
            ring.wake.wait(0.05)
            ring.wake.clear()
            with self._lock:
                if ring.stop or ring.addr not in self._live:
                    return
                self._deliver(ring)

    def _stop_ring(self, ring: FakeRing) -> None:
        ring.stop = True
        ring.wake.set()
        if ring.thread is not None and ring.thread is not threading.current_thread():
            ring.thread.join(5)

    def _ring_buffer__free(self, addr):
        if not addr:
            return
        ring = self._get(addr, FakeRing)
        self._free(ring)
        ring.stop = True
        ring.wake.set()

    def _ring_buffer__epoll_fd(self, addr):
        self._get(addr, FakeRing)
        return -ENOTSUP

    # -- the library --------------------------------------------------------------------------------
    def _libbpf_num_possible_cpus(self):
        return self.ncpus

    def _libbpf_strerror(self, err, buf, size):
        from ntoslab.connectors.libbpf.errors import errno_text
        if not buf or not size:
            return -EINVAL
        text = errno_text(err, "windows").encode()[:size - 1] + b"\0"
        ctypes.memmove(buf, text, len(text))
        return 0

    def _libbpf_version_string(self):
        return self._cstr(self, "v1.1")

    def _libbpf_major_version(self):
        return 1

    def _libbpf_minor_version(self):
        return 1

    def _ebpf_object_set_execution_type(self, addr, kind):
        obj = self._get(addr, FakeObject)
        if obj.loaded is not None or kind not in (ANY, JIT, INTERPRET, NATIVE):
            return R["INVALID_ARGUMENT"]
        native = Path(obj.path).suffix == ".sys"
        if (native and kind not in (ANY, NATIVE)) or (not native and kind == NATIVE):
            return R["INVALID_ARGUMENT"]
        obj.execution = (NATIVE if native else JIT) if kind == ANY else kind
        return R["SUCCESS"]

    def _ebpf_object_get_execution_type(self, addr):
        return self._get(addr, FakeObject).execution

    def _ebpf_get_program_type_by_name(self, name):
        if name == b"process" and not self.store:
            return R["KEY_NOT_FOUND"]
        return R["SUCCESS"]
