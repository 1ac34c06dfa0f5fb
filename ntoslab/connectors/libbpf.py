"""A typed ctypes binding of the libbpf calls Linux (`libbpf.so.1`) and eBPF for Windows
(`EbpfApi.dll`) share (reference §4): objects, programs, maps, links, ring buffers, test runs.

Both libraries follow libbpf 1.x conventions: int-returning calls give 0 or a negative errno,
pointer-returning calls give NULL and set `errno`. Every failure becomes a `LibbpfError` (an
OSError) that says which call failed on what, the errno by name, and what to check; load failures
carry the verifier's log (captured from libbpf's print callback) in `.log`.

Option structs are the upstream libbpf layouts on both platforms (EbpfApi.dll's headers wrap
upstream libbpf); their sizes and offsets are asserted here and in the tests.

>>> lib = Libbpf()                                              # doctest: +SKIP
>>> with lib.open("bpf/linux/process_capture.o") as obj:        # doctest: +SKIP
...     obj.load(); link = obj.program("on_exec").attach()
...     rb = lib.ring_buffer(obj.map("events"), lambda data: print(len(data)))
...     rb.poll(100); rb.free(); link.destroy()
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import logging
import os
import sys
import threading
from contextlib import contextmanager
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_bool, c_char_p, c_int, c_size_t,
                    c_uint32, c_uint64, c_void_p)
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..isa.opcodes import sign32
from .contract import Closing

log = logging.getLogger("ntoslab.libbpf")

# -- option structs (upstream libbpf layouts, LP64 and LLP64 alike: size_t and pointers are 8) --


class BpfTestRunOpts(Structure):
    """`struct bpf_test_run_opts` (libbpf bpf.h), 80 bytes."""

    _fields_ = [("sz", c_size_t),            # 0
                ("data_in", c_void_p),       # 8
                ("data_out", c_void_p),      # 16
                ("data_size_in", c_uint32),  # 24
                ("data_size_out", c_uint32), # 28  in: room in data_out, out: bytes written
                ("ctx_in", c_void_p),        # 32
                ("ctx_out", c_void_p),       # 40
                ("ctx_size_in", c_uint32),   # 48
                ("ctx_size_out", c_uint32),  # 52  in: room in ctx_out, out: bytes written
                ("retval", c_uint32),        # 56  out: the program's r0 (low 32 bits)
                ("repeat", c_int),           # 60
                ("duration", c_uint32),      # 64  out: average ns per repetition
                ("flags", c_uint32),         # 68
                ("cpu", c_uint32),           # 72
                ("batch_size", c_uint32)]    # 76


class BpfObjectOpenOpts(Structure):
    """`struct bpf_object_open_opts` (libbpf.h, 1.1), 80 bytes. eBPF for Windows honours only
    object_name and pin_root_path."""

    _fields_ = [("sz", c_size_t),                # 0
                ("object_name", c_char_p),       # 8
                ("relaxed_maps", c_bool),        # 16
                ("pin_root_path", c_char_p),     # 24
                ("_removed_attach_prog_fd", c_uint32),  # 32 (an unnamed __u32 :32 upstream)
                ("kconfig", c_char_p),           # 40
                ("btf_custom_path", c_char_p),   # 48
                ("kernel_log_buf", c_void_p),    # 56
                ("kernel_log_size", c_size_t),   # 64
                ("kernel_log_level", c_uint32)]  # 72, then padding to 80 (size_t :0)


class RingBufferOpts(Structure):
    """`struct ring_buffer_opts` (libbpf.h): just its size, 8 bytes."""

    _fields_ = [("sz", c_size_t)]


# Documented sizes and offsets; checked at import so a wrong edit fails loudly.
LAYOUTS = {
    "bpf_test_run_opts": (BpfTestRunOpts, 80, {
        "sz": 0, "data_in": 8, "data_out": 16, "data_size_in": 24, "data_size_out": 28,
        "ctx_in": 32, "ctx_out": 40, "ctx_size_in": 48, "ctx_size_out": 52, "retval": 56,
        "repeat": 60, "duration": 64, "flags": 68, "cpu": 72, "batch_size": 76}),
    "bpf_object_open_opts": (BpfObjectOpenOpts, 80, {
        "sz": 0, "object_name": 8, "relaxed_maps": 16, "pin_root_path": 24, "kconfig": 40,
        "btf_custom_path": 48, "kernel_log_buf": 56, "kernel_log_size": 64,
        "kernel_log_level": 72}),
    "ring_buffer_opts": (RingBufferOpts, 8, {"sz": 0}),
}
for _name, (_cls, _size, _offsets) in LAYOUTS.items():
    assert ctypes.sizeof(_cls) == _size, (_name, ctypes.sizeof(_cls))
    for _field, _off in _offsets.items():
        assert getattr(_cls, _field).offset == _off, (_name, _field)

RING_BUFFER_SAMPLE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)
LIBBPF_PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2

# Map types whose values are per CPU (lookup buffers are pad8(value_size) * possible CPUs).
PERCPU_MAP_TYPES = {
    "linux": {5: "PERCPU_HASH", 6: "PERCPU_ARRAY", 10: "LRU_PERCPU_HASH",
              15: "PERCPU_CGROUP_STORAGE"},
    "windows": {4: "PERCPU_HASH", 5: "PERCPU_ARRAY", 11: "LRU_PERCPU_HASH",
                14: "PERF_EVENT_ARRAY"},
}
RINGBUF_MAP_TYPE = {"linux": 27, "windows": 13}

# -- errors -----------------------------------------------------------------------------------

# errno numbers differ: EbpfApi.dll uses the MSVC runtime's (reference §4).
MSVC_ERRNO = {1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 7: "E2BIG",
              8: "ENOEXEC", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT",
              16: "EBUSY", 17: "EEXIST", 22: "EINVAL", 24: "EMFILE", 28: "ENOSPC",
              34: "ERANGE", 40: "ENOSYS", 119: "ENOBUFS", 129: "ENOTSUP", 130: "EOPNOTSUPP",
              131: "EOTHER", 138: "ETIMEDOUT"}
# Linux kernel-internal values that leak out of bpf(2), and libbpf's own error numbers.
EXTRA_ERRNO = {524: ("ENOTSUPP", "operation not supported by this program or map type"),
               4000: ("LIBBPF_ERRNO__LIBELF", "something wrong in libelf"),
               4001: ("LIBBPF_ERRNO__FORMAT", "BPF object format invalid"),
               4002: ("LIBBPF_ERRNO__KVERSION", "incorrect or no 'version' section"),
               4003: ("LIBBPF_ERRNO__ENDIAN", "endian mismatch"),
               4004: ("LIBBPF_ERRNO__INTERNAL", "internal error in libbpf"),
               4005: ("LIBBPF_ERRNO__RELOC", "relocation failed"),
               4006: ("LIBBPF_ERRNO__LOAD", "load program failure for unknown reason"),
               4007: ("LIBBPF_ERRNO__VERIFY", "kernel verifier blocks program loading"),
               4008: ("LIBBPF_ERRNO__PROG2BIG", "program too big"),
               4009: ("LIBBPF_ERRNO__KVER", "incorrect kernel version"),
               4010: ("LIBBPF_ERRNO__PROGTYPE", "kernel doesn't support this program type")}

_PRIVS = {"linux": "run as root, or grant CAP_BPF plus CAP_PERFMON (tracing) or CAP_NET_ADMIN "
                   "(networking); check /proc/sys/kernel/unprivileged_bpf_disabled",
          "windows": "run from an elevated (Administrator) prompt"}

# (operation kind, errno name) -> what to check; "*" matches any operation.
HINTS: dict[tuple[str, str], str] = {
    ("open", "ENOENT"): "check that the object file exists (build it with `ntoslab build`)",
    ("open", "LIBBPF_ERRNO__FORMAT"): "the file is not a BPF ELF object (compile with "
                                     "-target bpf -O2 -g)",
    ("open", "EINVAL"): "the object is malformed or uses a section or map definition this "
                        "libbpf does not understand; the libbpf log says which",
    ("open", "ESRCH"): "a tp_btf/fentry target or kernel type was not found in the kernel's "
                       "BTF (/sys/kernel/btf/vmlinux): is the kernel new enough?",
    ("load", "EPERM"): "{privs}",
    ("load", "EACCES"): "the verifier rejected the program: read its log (below / .log)",
    ("load", "EINVAL"): "the kernel refused the program or a map: read the log (below / "
                        ".log); a tracing program needs a kernel with BTF",
    ("load", "ESRCH"): "a CO-RE relocation or attach target is missing from the kernel's BTF "
                       "(/sys/kernel/btf/vmlinux): check the kernel has CONFIG_DEBUG_INFO_BTF "
                       "and the field or tracepoint exists in this version",
    ("load", "ENOENT"): "a CO-RE relocation or BTF type could not be resolved: is "
                        "/sys/kernel/btf/vmlinux present?",
    ("load", "E2BIG"): "the program or a map is too large for this kernel",
    ("load", "LIBBPF_ERRNO__VERIFY"): "the verifier rejected the program: read its log",
    ("load", "LIBBPF_ERRNO__PROG2BIG"): "the program has too many instructions",
    ("load", "LIBBPF_ERRNO__FORMAT"): "a file libbpf read is not valid ELF/BTF (the object, or "
                                     "the kernel BTF given as btf_custom_path)",
    ("load", "LIBBPF_ERRNO__RELOC"): "a relocation failed: a map or BTF type is missing",
    ("attach", "EPERM"): "{privs}",
    ("attach", "ENOENT"): "the attach target (tracepoint, function) does not exist here",
    ("attach", "EINVAL"): "the program's section does not name an attach target libbpf can "
                          "attach automatically (e.g. tp_btf/<tracepoint>)",
    ("attach", "EOPNOTSUPP"): "libbpf cannot attach this section type automatically",
    ("attach", "ENOTSUP"): "this attach type needs bpf_program__attach (or ebpf_program_attach "
                           "with the attach-type GUID), not bpf_prog_attach",
    ("attach", "EBUSY"): "something else is attached exclusively to this target",
    ("map", "ENOENT"): "no such key",
    ("map", "EEXIST"): "the key exists and BPF_NOEXIST was given",
    ("map", "E2BIG"): "the map is full (max_entries reached)",
    ("map", "ENOSPC"): "the map is full",
    ("map", "EINVAL"): "key or value size does not match the map, or the flags are invalid "
                       "for this map type",
    ("map", "EBADF"): "the map fd is closed: was the object closed?",
    ("test_run", "EINVAL"): "ctx_in/data_in sizes do not fit the program type (for the "
                            "Windows process type: ctx_in is the 296-byte "
                            "process_notify_context_t and data_in must hold every string "
                            "the UNICODE_STRING lengths name)",
    ("test_run", "ENOTSUPP"): "this program type cannot be test-run by the kernel",
    ("test_run", "ENOTSUP"): "this program type cannot be test-run (on Windows: the extension "
                             "has no context_create for it, or it is too old)",
    ("test_run", "EPERM"): "{privs}",
    ("ringbuf", "EINVAL"): "the map is not a ring buffer",
    ("ringbuf", "ENOTSUP"): "poll/consume are unavailable: eBPF for Windows older than 1.1 "
                            "delivers ring-buffer records by callback only",
    ("*", "EBADF"): "a file descriptor is closed or invalid: was the object already closed?",
    ("*", "ENOMEM"): "out of memory (or RLIMIT_MEMLOCK too low on kernels before 5.11)",
    ("*", "EPERM"): "{privs}",
}


def errno_name(err: int, platform: str = "linux") -> str:
    """The symbolic name of an errno value as `platform`'s C runtime numbers it."""
    err = abs(err)
    if err in EXTRA_ERRNO:
        return EXTRA_ERRNO[err][0]
    if platform == "windows":
        return MSVC_ERRNO.get(err, f"errno {err}")
    return _errno.errorcode.get(err, f"errno {err}")


def errno_text(err: int, platform: str = "linux") -> str:
    """A short description of an errno value of `platform`."""
    err = abs(err)
    if err in EXTRA_ERRNO:
        return EXTRA_ERRNO[err][1]
    if platform == "windows":
        name = errno_name(err, "windows")
        if name == "EOTHER":
            return "other error (an ebpf_result_t with no errno equivalent)"
        num = getattr(_errno, name, None)
        return os.strerror(num) if isinstance(num, int) else name
    return os.strerror(err)


class LibbpfError(OSError):
    """A libbpf call failed. `errno` is positive; `operation` says what was attempted (e.g.
    "bpf_object__load(process_capture.o)"); `hint` what to check; `log` libbpf's own messages
    (the verifier log on a load failure)."""

    def __init__(self, err: int, operation: str, hint: str | None = None, log: str = "",
                 platform: str = "linux") -> None:
        err = abs(err)
        self.operation = operation
        self.hint = hint
        self.log = log
        self.name = errno_name(err, platform)
        self.platform = platform
        text = errno_text(err, platform)
        message = f"{operation} failed: {self.name} ({text})"
        if hint:
            message += f"; {hint}"
        if log:
            tail = "\n".join(log.rstrip().splitlines()[-30:])
            message += f"\nlibbpf said:\n{tail}"
        super().__init__(err, message)

    def __str__(self) -> str:
        return self.strerror


class LibbpfUnavailable(RuntimeError):
    """The libbpf library (libbpf.so.1 / EbpfApi.dll) cannot be found or lacks a needed call."""


def translate(err: int, operation: str, kind: str = "*", *, platform: str = "linux",
              log: str = "", hints: dict | None = None) -> LibbpfError:
    """The LibbpfError for a negative (or positive) errno returned by `operation`.

    `kind` picks the hints: open, load, attach, map, test_run, ringbuf. `hints` adds or
    overrides entries (the Windows connector's own advice)."""
    name = errno_name(err, platform)
    table = dict(HINTS)
    if hints:
        table.update(hints)
    hint = table.get((kind, name)) or table.get(("*", name))
    if hint:
        hint = hint.format(privs=_PRIVS.get(platform, _PRIVS["linux"]))
    return LibbpfError(err, operation, hint, log, platform)


# -- the library ------------------------------------------------------------------------------

_OBJ = c_void_p
_PROG = c_void_p
_MAP = c_void_p
_LINK = c_void_p
_RB = c_void_p

# name: (restype, argtypes, required)
SIGNATURES: dict[str, tuple] = {
    "bpf_object__open": (_OBJ, [c_char_p], True),
    "bpf_object__open_file": (_OBJ, [c_char_p, POINTER(BpfObjectOpenOpts)], False),
    "bpf_object__open_mem": (_OBJ, [c_void_p, c_size_t, POINTER(BpfObjectOpenOpts)], False),
    "bpf_object__load": (c_int, [_OBJ], True),
    "bpf_object__close": (None, [_OBJ], True),
    "bpf_object__name": (c_char_p, [_OBJ], False),
    "bpf_object__find_program_by_name": (_PROG, [_OBJ, c_char_p], True),
    "bpf_object__next_program": (_PROG, [_OBJ, _PROG], True),
    "bpf_object__find_map_by_name": (_MAP, [_OBJ, c_char_p], True),
    "bpf_object__find_map_fd_by_name": (c_int, [_OBJ, c_char_p], False),
    "bpf_object__next_map": (_MAP, [_OBJ, _MAP], True),
    "bpf_program__fd": (c_int, [_PROG], True),
    "bpf_program__name": (c_char_p, [_PROG], True),
    "bpf_program__section_name": (c_char_p, [_PROG], True),
    "bpf_program__type": (c_int, [_PROG], False),
    "bpf_program__expected_attach_type": (c_int, [_PROG], False),
    "bpf_program__get_expected_attach_type": (c_int, [_PROG], False),
    "bpf_program__set_autoload": (c_int, [_PROG, c_bool], False),
    "bpf_program__attach": (_LINK, [_PROG], True),
    "bpf_link__fd": (c_int, [_LINK], True),
    "bpf_link__destroy": (c_int, [_LINK], True),
    "bpf_link__detach": (c_int, [_LINK], False),
    "bpf_link_detach": (c_int, [c_int], False),
    "bpf_map__fd": (c_int, [_MAP], True),
    "bpf_map__name": (c_char_p, [_MAP], True),
    "bpf_map__type": (c_int, [_MAP], True),
    "bpf_map__key_size": (c_uint32, [_MAP], True),
    "bpf_map__value_size": (c_uint32, [_MAP], True),
    "bpf_map__max_entries": (c_uint32, [_MAP], True),
    "bpf_map__set_max_entries": (c_int, [_MAP, c_uint32], False),
    "bpf_map_lookup_elem": (c_int, [c_int, c_void_p, c_void_p], True),
    "bpf_map_update_elem": (c_int, [c_int, c_void_p, c_void_p, c_uint64], True),
    "bpf_map_delete_elem": (c_int, [c_int, c_void_p], True),
    "bpf_map_get_next_key": (c_int, [c_int, c_void_p, c_void_p], True),
    "bpf_map_lookup_and_delete_elem": (c_int, [c_int, c_void_p, c_void_p], False),
    "bpf_prog_test_run_opts": (c_int, [c_int, POINTER(BpfTestRunOpts)], False),
    "ring_buffer__new": (_RB, [c_int, RING_BUFFER_SAMPLE_FN, c_void_p,
                               POINTER(RingBufferOpts)], True),
    "ring_buffer__add": (c_int, [_RB, c_int, RING_BUFFER_SAMPLE_FN, c_void_p], False),
    "ring_buffer__poll": (c_int, [_RB, c_int], False),
    "ring_buffer__consume": (c_int, [_RB], False),
    "ring_buffer__free": (None, [_RB], True),
    "ring_buffer__epoll_fd": (c_int, [_RB], False),
    "libbpf_num_possible_cpus": (c_int, [], True),
    "libbpf_strerror": (c_int, [c_int, c_char_p, c_size_t], False),
    "libbpf_set_print": (c_void_p, [LIBBPF_PRINT_FN], False),
    "libbpf_version_string": (c_char_p, [], False),
    "libbpf_major_version": (c_uint32, [], False),
    "libbpf_minor_version": (c_uint32, [], False),
}

LINUX_LIBRARY = "libbpf.so.1"
WINDOWS_LIBRARY = "EbpfApi.dll"


def current_platform() -> str:
    return "windows" if sys.platform == "win32" else "linux"


def find_library(platform: str | None = None) -> str | None:
    """Where libbpf is: NTOSLAB_LIBBPF wins; else libbpf.so.1 (Linux) or EbpfApi.dll from the
    eBPF for Windows install folder or PATH (Windows). None when it is nowhere."""
    platform = platform or current_platform()
    env = os.environ.get("NTOSLAB_LIBBPF")
    if env:
        return env
    if platform == "windows":
        candidates = [Path(os.environ.get("ProgramFiles", r"C:\Program Files"))
                      / "ebpf-for-windows" / WINDOWS_LIBRARY]
        candidates += [Path(d) / WINDOWS_LIBRARY for d in os.environ.get("PATH", "").split(";")
                       if d]
        for c in candidates:
            if c.is_file():
                return str(c)
        return None
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
              "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib",
              "/usr/local/lib"):
        if Path(d, LINUX_LIBRARY).exists():
            return str(Path(d, LINUX_LIBRARY))
    found = ctypes.util.find_library("bpf")
    return found


class _LogCapture(threading.local):
    def __init__(self) -> None:
        self.stack: list[list[str]] = []


class Libbpf:
    """The loaded library with typed functions (attributes of `.lib`) and a Pythonic layer.

    `platform` ("linux" or "windows") picks errno names and per-CPU map types; by default it is
    this machine's. A library built for another platform cannot be loaded, of course: the
    platform argument exists so error translation and layouts can be checked anywhere."""

    _instances: dict[str, "Libbpf"] = {}

    def __init__(self, path: str | os.PathLike | None = None, *,
                 platform: str | None = None) -> None:
        self.platform = platform or current_platform()
        where = str(path) if path else find_library(self.platform)
        if not where:
            raise LibbpfUnavailable(
                "libbpf.so.1 was not found: install it (Debian/Ubuntu: apt-get install libbpf1; "
                "Fedora: dnf install libbpf) or set NTOSLAB_LIBBPF=/path/to/libbpf.so.1"
                if self.platform == "linux" else
                "EbpfApi.dll was not found: install eBPF for Windows (its folder, "
                r"C:\Program Files\ebpf-for-windows, is put on PATH) or set NTOSLAB_LIBBPF")
        try:
            self.lib = ctypes.CDLL(where, use_errno=True)
        except OSError as exc:
            raise LibbpfUnavailable(f"cannot load {where}: {exc}") from None
        self.path = where
        self.missing: list[str] = []
        for name, (restype, argtypes, required) in SIGNATURES.items():
            try:
                fn = getattr(self.lib, name)
            except AttributeError:
                if required:
                    raise LibbpfUnavailable(f"{where} does not export {name}: it is not a "
                                            f"libbpf 1.x compatible library") from None
                self.missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
        self._log = _LogCapture()
        self._print_fn = None
        self._libc = None
        self._install_print()

    @classmethod
    def shared(cls, path: str | None = None) -> "Libbpf":
        """One instance per library path (libbpf's print callback is process-wide)."""
        key = path or find_library() or ""
        inst = cls._instances.get(key)
        if inst is None:
            inst = cls._instances[key] = cls(path)
        return inst

    # -- capabilities --------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in SIGNATURES and name not in self.missing or \
            (name not in SIGNATURES and hasattr(self.lib, name))

    @property
    def version(self) -> str | None:
        if self.has("libbpf_version_string"):
            v = self.lib.libbpf_version_string()
            return v.decode() if v else None
        return None

    def num_possible_cpus(self) -> int:
        n = self.lib.libbpf_num_possible_cpus()
        if n <= 0:
            raise translate(n, "libbpf_num_possible_cpus()", platform=self.platform)
        return n

    def strerror(self, err: int) -> str:
        if self.has("libbpf_strerror"):
            buf = ctypes.create_string_buffer(256)
            if self.lib.libbpf_strerror(abs(err), buf, len(buf)) == 0:
                return buf.value.decode(errors="replace")
        return errno_text(err, self.platform)

    # -- libbpf's log --------------------------------------------------------------------------
    def _install_print(self) -> None:
        if not self.has("libbpf_set_print"):
            return
        try:
            libc = ctypes.CDLL(None) if self.platform == "linux" else ctypes.cdll.msvcrt
            vsnprintf = libc.vsnprintf if self.platform == "linux" else libc._vsnprintf
            vsnprintf.argtypes = [c_char_p, c_size_t, c_char_p, c_void_p]
            vsnprintf.restype = c_int
        except (OSError, AttributeError):
            vsnprintf = None
        capture = self._log

        def on_print(level: int, fmt: bytes, ap: int) -> int:
            try:
                if vsnprintf is not None:
                    buf = ctypes.create_string_buffer(4096)
                    vsnprintf(buf, len(buf), fmt, ap)
                    text = buf.value.decode(errors="replace")
                else:
                    text = (fmt or b"").decode(errors="replace")
                if capture.stack and level <= LIBBPF_INFO:
                    capture.stack[-1].append(text)
                if level == LIBBPF_WARN and not capture.stack:
                    log.warning("%s", text.rstrip())
                elif level == LIBBPF_DEBUG:
                    log.debug("%s", text.rstrip())
            except Exception:  # never let an exception cross into C
                pass
            return 0

        self._print_fn = LIBBPF_PRINT_FN(on_print)   # kept alive with this instance
        self._libc = vsnprintf
        self.lib.libbpf_set_print(self._print_fn)

    @contextmanager
    def capture_log(self) -> Iterator[list[str]]:
        """Collect libbpf's warning/info messages emitted by this thread inside the block."""
        lines: list[str] = []
        self._log.stack.append(lines)
        try:
            yield lines
        finally:
            self._log.stack.pop()

    # -- errors --------------------------------------------------------------------------------
    def error(self, err: int, operation: str, kind: str = "*", log: str = "") -> LibbpfError:
        return translate(err, operation, kind, platform=self.platform, log=log)

    def _check(self, ret: int, operation: str, kind: str = "*", log: str = "") -> int:
        if ret < 0:
            raise self.error(ret, operation, kind, log)
        return ret

    def _check_ptr(self, ptr: int | None, operation: str, kind: str = "*",
                   log: str = "") -> int:
        if not ptr:
            err = ctypes.get_errno() or _errno.EINVAL
            raise self.error(err, operation, kind, log)
        return ptr

    # -- objects -------------------------------------------------------------------------------
    def open(self, path: str | os.PathLike, *, object_name: str | None = None,
             pin_root_path: str | None = None, btf_custom_path: str | None = None) -> "BpfObject":
        """bpf_object__open_file (or bpf_object__open when no option is given)."""
        path = os.fspath(path)
        op = f"bpf_object__open({path})"
        with self.capture_log() as lines:
            if (object_name or pin_root_path or btf_custom_path) and \
                    self.has("bpf_object__open_file"):
                opts = self._open_opts(object_name, pin_root_path, btf_custom_path)
                ptr = self.lib.bpf_object__open_file(path.encode(), byref(opts))
            else:
                ptr = self.lib.bpf_object__open(path.encode())
            if not ptr:
                err = ctypes.get_errno() or _errno.EINVAL
                if not os.path.exists(path):
                    err = _errno.ENOENT
                raise self.error(err, op, "open", "".join(lines))
        return BpfObject(self, ptr, path)

    def open_memory(self, data: bytes, name: str = "memory") -> "BpfObject":
        """bpf_object__open_mem: an object from bytes (the object keeps its own copy)."""
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        opts = self._open_opts(name, None, None)
        with self.capture_log() as lines:
            ptr = self.lib.bpf_object__open_mem(buf, len(data), byref(opts))
            if not ptr:
                raise self.error(ctypes.get_errno() or _errno.EINVAL,
                                 f"bpf_object__open_mem({name})", "open", "".join(lines))
        return BpfObject(self, ptr, name)

    @staticmethod
    def _open_opts(object_name, pin_root_path, btf_custom_path) -> BpfObjectOpenOpts:
        opts = BpfObjectOpenOpts()
        opts.sz = ctypes.sizeof(opts)
        opts.object_name = object_name.encode() if object_name else None
        opts.pin_root_path = pin_root_path.encode() if pin_root_path else None
        opts.btf_custom_path = btf_custom_path.encode() if btf_custom_path else None
        return opts

    # -- maps by fd ------------------------------------------------------------------------------
    def map_lookup(self, fd: int, key: bytes, value_size: int, what: str = "map") -> bytes | None:
        """The value for `key`, or None when the key is absent (-ENOENT)."""
        kbuf = ctypes.create_string_buffer(key, len(key))
        vbuf = ctypes.create_string_buffer(value_size)
        ret = self.lib.bpf_map_lookup_elem(fd, kbuf, vbuf)
        if ret == -_errno.ENOENT or (ret < 0 and errno_name(ret, self.platform) == "ENOENT"):
            return None
        self._check(ret, f"bpf_map_lookup_elem({what}, key={key.hex()})", "map")
        return vbuf.raw

    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = BPF_ANY,
                   what: str = "map") -> None:
        kbuf = ctypes.create_string_buffer(key, len(key))
        vbuf = ctypes.create_string_buffer(value, len(value))
        self._check(self.lib.bpf_map_update_elem(fd, kbuf, vbuf, flags),
                    f"bpf_map_update_elem({what}, key={key.hex()}, flags={flags})", "map")

    def map_delete(self, fd: int, key: bytes, what: str = "map") -> bool:
        """Delete `key`; False when it was not there."""
        kbuf = ctypes.create_string_buffer(key, len(key))
        ret = self.lib.bpf_map_delete_elem(fd, kbuf)
        if ret < 0 and errno_name(ret, self.platform) == "ENOENT":
            return False
        self._check(ret, f"bpf_map_delete_elem({what}, key={key.hex()})", "map")
        return True

    def map_next_key(self, fd: int, key: bytes | None, key_size: int,
                     what: str = "map") -> bytes | None:
        """The key after `key` (the first key when None); None at the end (-ENOENT)."""
        kbuf = ctypes.create_string_buffer(key, len(key)) if key is not None else None
        nbuf = ctypes.create_string_buffer(key_size)
        ret = self.lib.bpf_map_get_next_key(fd, kbuf, nbuf)
        if ret < 0 and errno_name(ret, self.platform) == "ENOENT":
            return None
        self._check(ret, f"bpf_map_get_next_key({what})", "map")
        return nbuf.raw

    # -- test runs --------------------------------------------------------------------------------
    def test_run(self, prog_fd: int, *, ctx_in: bytes | None = None, data_in: bytes | None = None,
                 ctx_out_size: int = 0, data_out_size: int = 0, repeat: int = 0,
                 flags: int = 0, cpu: int = 0, what: str = "program") -> "TestRun":
        """bpf_prog_test_run_opts. No output buffers unless sizes are given (some program types,
        raw_tp for one, reject ctx_out, data_out and repeat != 0)."""
        if not self.has("bpf_prog_test_run_opts"):
            raise LibbpfUnavailable(f"{self.path} does not export bpf_prog_test_run_opts "
                                    f"(eBPF for Windows too old?)")
        opts = BpfTestRunOpts()
        opts.sz = ctypes.sizeof(opts)
        keep = []
        if data_in is not None:
            dbuf = ctypes.create_string_buffer(bytes(data_in), max(1, len(data_in)))
            keep.append(dbuf)
            opts.data_in = ctypes.addressof(dbuf)
            opts.data_size_in = len(data_in)
        if ctx_in is not None:
            cbuf = ctypes.create_string_buffer(bytes(ctx_in), max(1, len(ctx_in)))
            keep.append(cbuf)
            opts.ctx_in = ctypes.addressof(cbuf)
            opts.ctx_size_in = len(ctx_in)
        dsize, csize = data_out_size, ctx_out_size
        dout = ctypes.create_string_buffer(dsize) if dsize else None
        cout = ctypes.create_string_buffer(csize) if csize else None
        if dout is not None:
            opts.data_out = ctypes.addressof(dout)
            opts.data_size_out = dsize
        if cout is not None:
            opts.ctx_out = ctypes.addressof(cout)
            opts.ctx_size_out = csize
        opts.repeat = repeat
        opts.flags = flags
        opts.cpu = cpu
        with self.capture_log() as lines:
            ret = self.lib.bpf_prog_test_run_opts(prog_fd, byref(opts))
        if ret < 0:
            raise self.error(ret, f"bpf_prog_test_run_opts({what})", "test_run", "".join(lines))
        retval = opts.retval
        return TestRun(retval=retval, duration_ns=opts.duration,
                       data_out=dout.raw[:opts.data_size_out] if dout is not None else b"",
                       ctx_out=cout.raw[:opts.ctx_size_out] if cout is not None else b"")

    # -- ring buffers ---------------------------------------------------------------------------
    def ring_buffer(self, map_or_fd: "BpfMap | int", callback: Callable[[bytes], int | None],
                    ) -> "RingBuffer":
        """A consumer calling `callback(record_bytes)` per record during poll/consume."""
        return RingBuffer(self, map_or_fd, callback)


@dataclass(frozen=True)
class TestRun:
    __test__ = False     # not a pytest test class
    retval: int          # r0, low 32 bits (unsigned)
    duration_ns: int
    data_out: bytes
    ctx_out: bytes

    @property
    def status(self) -> int:
        """retval as a signed 32-bit value (an NTSTATUS for Windows process programs)."""
        return sign32(self.retval)


def _cstr(ptr: bytes | None) -> str:
    return ptr.decode(errors="replace") if ptr else ""


class BpfObject(Closing):
    """An opened (then loaded) libbpf object. Close it (or use `with`) to release every fd;
    links made from its programs are destroyed first."""

    def __init__(self, libbpf: Libbpf, ptr: int, path: str) -> None:
        self.libbpf = libbpf
        self.ptr = ptr
        self.path = path
        self.loaded = False
        self.links: list[BpfLink] = []
        self.ring_buffers: list[RingBuffer] = []

    @property
    def name(self) -> str:
        return Path(self.path).name

    def _alive(self) -> int:
        if not self.ptr:
            raise ValueError(f"{self.name}: the object is closed")
        return self.ptr

    def load(self) -> "BpfObject":
        """bpf_object__load; on failure the error carries libbpf's log (the verifier's)."""
        lib = self.libbpf
        with lib.capture_log() as lines:
            ret = lib.lib.bpf_object__load(self._alive())
        if ret < 0:
            raise lib.error(ret, f"bpf_object__load({self.name})", "load", "".join(lines))
        self.loaded = True
        return self

    @property
    def programs(self) -> list["BpfProgram"]:
        out, prev = [], None
        while True:
            prev = self.libbpf.lib.bpf_object__next_program(self._alive(), prev)
            if not prev:
                return out
            out.append(BpfProgram(self, prev))

    def program(self, name: str) -> "BpfProgram":
        ptr = self.libbpf.lib.bpf_object__find_program_by_name(self._alive(), name.encode())
        if not ptr:
            have = ", ".join(p.name for p in self.programs) or "none"
            raise KeyError(f"{self.name} has no program {name!r} (it has: {have})")
        return BpfProgram(self, ptr)

    @property
    def maps(self) -> list["BpfMap"]:
        out, prev = [], None
        while True:
            prev = self.libbpf.lib.bpf_object__next_map(self._alive(), prev)
            if not prev:
                return out
            out.append(BpfMap(self, prev))

    def map(self, name: str) -> "BpfMap":
        ptr = self.libbpf.lib.bpf_object__find_map_by_name(self._alive(), name.encode())
        if not ptr:
            have = ", ".join(m.name for m in self.maps) or "none"
            raise KeyError(f"{self.name} has no map {name!r} (it has: {have})")
        return BpfMap(self, ptr)

    def close(self) -> None:
        """Free ring buffers, destroy links, then bpf_object__close (idempotent)."""
        for rb in list(self.ring_buffers):
            rb.free()
        for link in list(self.links):
            link.destroy()
        if self.ptr:
            self.libbpf.lib.bpf_object__close(self.ptr)
            self.ptr = None

    def __repr__(self) -> str:
        state = "closed" if not self.ptr else "loaded" if self.loaded else "opened"
        return f"<BpfObject {self.name} {state}>"


class BpfProgram:
    def __init__(self, obj: BpfObject, ptr: int) -> None:
        self.obj = obj
        self.ptr = ptr
        lib = obj.libbpf.lib
        self.name = _cstr(lib.bpf_program__name(ptr))
        self.section = _cstr(lib.bpf_program__section_name(ptr))

    @property
    def fd(self) -> int:
        """The program fd (negative before load)."""
        self.obj._alive()
        return self.obj.libbpf.lib.bpf_program__fd(self.ptr)

    @property
    def type(self) -> int | None:
        lb = self.obj.libbpf
        return lb.lib.bpf_program__type(self.ptr) if lb.has("bpf_program__type") else None

    @property
    def expected_attach_type(self) -> int | None:
        lb = self.obj.libbpf
        for name in ("bpf_program__expected_attach_type",
                     "bpf_program__get_expected_attach_type"):
            if lb.has(name):
                return getattr(lb.lib, name)(self.ptr)
        return None

    def set_autoload(self, autoload: bool) -> None:
        lb = self.obj.libbpf
        lb._check(lb.lib.bpf_program__set_autoload(self.ptr, autoload),
                  f"bpf_program__set_autoload({self.name})")

    def attach(self) -> "BpfLink":
        """bpf_program__attach: the attach target comes from the section name."""
        lb = self.obj.libbpf
        self.obj._alive()
        with lb.capture_log() as lines:
            ptr = lb.lib.bpf_program__attach(self.ptr)
            if not ptr:
                err = ctypes.get_errno() or _errno.EINVAL
                raise lb.error(err, f"bpf_program__attach({self.name}, section "
                                    f"{self.section!r})", "attach", "".join(lines))
        link = BpfLink(self, ptr)
        self.obj.links.append(link)
        return link

    def test_run(self, **kw) -> TestRun:
        """bpf_prog_test_run_opts on this program (see Libbpf.test_run)."""
        return self.obj.libbpf.test_run(self.fd, what=self.name, **kw)

    def __repr__(self) -> str:
        return f"<BpfProgram {self.name} section={self.section!r}>"


class BpfLink:
    def __init__(self, program: BpfProgram | None, ptr: int) -> None:
        self.program = program
        self.ptr = ptr

    @property
    def fd(self) -> int:
        if not self.ptr:
            raise ValueError("the link is destroyed")
        lib = self.program.obj.libbpf.lib if self.program else None
        return lib.bpf_link__fd(self.ptr)

    def detach(self) -> None:
        """Detach without freeing (bpf_link__detach); destroy() still needs calling."""
        lb = self.program.obj.libbpf
        if lb.has("bpf_link__detach"):
            lb._check(lb.lib.bpf_link__detach(self.ptr), f"bpf_link__detach({self.program.name})",
                      "attach")
        else:
            lb._check(lb.lib.bpf_link_detach(self.fd), f"bpf_link_detach({self.program.name})",
                      "attach")

    def destroy(self) -> None:
        """bpf_link__destroy: detach, close the fd, free (idempotent)."""
        if not self.ptr:
            return
        lb = self.program.obj.libbpf
        ptr, self.ptr = self.ptr, None
        ret = lb.lib.bpf_link__destroy(ptr)
        if self in self.program.obj.links:
            self.program.obj.links.remove(self)
        if ret < 0:
            raise lb.error(ret, f"bpf_link__destroy({self.program.name})", "attach")

    @property
    def alive(self) -> bool:
        return bool(self.ptr)

    def __repr__(self) -> str:
        return f"<BpfLink {self.program.name if self.program else '?'}" \
               f"{'' if self.ptr else ' destroyed'}>"


class BpfMap:
    """A map of a loaded object: typed lookups on bytes keys/values (ints are packed
    little-endian to the key size). Per-CPU maps return one value per possible CPU."""

    def __init__(self, obj: BpfObject, ptr: int) -> None:
        self.obj = obj
        self.ptr = ptr
        lib = obj.libbpf.lib
        self.name = _cstr(lib.bpf_map__name(ptr))

    @property
    def _lb(self) -> Libbpf:
        return self.obj.libbpf

    @property
    def fd(self) -> int:
        self.obj._alive()
        return self._lb.lib.bpf_map__fd(self.ptr)

    @property
    def type(self) -> int:
        return self._lb.lib.bpf_map__type(self.ptr)

    @property
    def key_size(self) -> int:
        return self._lb.lib.bpf_map__key_size(self.ptr)

    @property
    def value_size(self) -> int:
        return self._lb.lib.bpf_map__value_size(self.ptr)

    @property
    def max_entries(self) -> int:
        return self._lb.lib.bpf_map__max_entries(self.ptr)

    def set_max_entries(self, n: int) -> None:
        """Before load only (e.g. a ring buffer's size in bytes, a power of two)."""
        self._lb._check(self._lb.lib.bpf_map__set_max_entries(self.ptr, n),
                        f"bpf_map__set_max_entries({self.name}, {n})", "map")

    @property
    def is_percpu(self) -> bool:
        return self.type in PERCPU_MAP_TYPES[self._lb.platform]

    @property
    def lookup_size(self) -> int:
        """Bytes a lookup writes: pad8(value_size) * possible CPUs for per-CPU maps."""
        if self.is_percpu:
            return ((self.value_size + 7) & ~7) * self._lb.num_possible_cpus()
        return self.value_size

    def _key(self, key: bytes | int) -> bytes:
        if isinstance(key, int):
            return key.to_bytes(self.key_size, "little")
        if len(key) != self.key_size:
            raise ValueError(f"map {self.name}: key is {len(key)} bytes, the map's are "
                             f"{self.key_size}")
        return bytes(key)

    def lookup(self, key: bytes | int) -> bytes | list[bytes] | None:
        raw = self._lb.map_lookup(self.fd, self._key(key), self.lookup_size, self.name)
        if raw is None or not self.is_percpu:
            return raw
        step = (self.value_size + 7) & ~7
        return [raw[i:i + self.value_size] for i in range(0, len(raw), step)]

    def update(self, key: bytes | int, value: bytes | list[bytes], flags: int = BPF_ANY) -> None:
        if self.is_percpu:
            step = (self.value_size + 7) & ~7
            values = value if isinstance(value, list) else \
                [value] * self._lb.num_possible_cpus()
            value = b"".join(bytes(v).ljust(step, b"\0") for v in values)
        elif len(value) != self.value_size:
            raise ValueError(f"map {self.name}: value is {len(value)} bytes, the map's are "
                             f"{self.value_size}")
        self._lb.map_update(self.fd, self._key(key), bytes(value), flags, self.name)

    def delete(self, key: bytes | int) -> bool:
        return self._lb.map_delete(self.fd, self._key(key), self.name)

    def keys(self) -> Iterator[bytes]:
        key = None
        fd, size = self.fd, self.key_size
        seen = 0
        while True:
            key = self._lb.map_next_key(fd, key, size, self.name)
            if key is None:
                return
            yield key
            seen += 1
            if seen > max(self.max_entries, 1) * 4:  # a map changing under us: stop, never spin
                return

    def items(self) -> Iterator[tuple[bytes, bytes | list[bytes]]]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def __repr__(self) -> str:
        return f"<BpfMap {self.name} type={self.type} key={self.key_size} " \
               f"value={self.value_size} max={self.max_entries}>"


class RingBuffer:
    """A libbpf ring_buffer consumer. `callback(data: bytes)` runs inside poll()/consume() on
    the polling thread; returning a negative int stops the poll (libbpf's convention). An
    exception in the callback stops the poll and is re-raised from poll()/consume()."""

    def __init__(self, libbpf: Libbpf, map_or_fd: BpfMap | int, callback) -> None:
        self.libbpf = libbpf
        self.callback = callback
        self.error: BaseException | None = None
        self.owner = map_or_fd.obj if isinstance(map_or_fd, BpfMap) else None
        fd = map_or_fd.fd if isinstance(map_or_fd, BpfMap) else int(map_or_fd)
        what = map_or_fd.name if isinstance(map_or_fd, BpfMap) else f"fd {fd}"
        self._fn = RING_BUFFER_SAMPLE_FN(self._on_sample)   # must outlive the ring_buffer
        self._extra: list = []
        with libbpf.capture_log() as lines:
            ptr = libbpf.lib.ring_buffer__new(fd, self._fn, None, None)
            if not ptr:
                raise libbpf.error(ctypes.get_errno() or _errno.EINVAL,
                                   f"ring_buffer__new({what})", "ringbuf", "".join(lines))
        self.ptr = ptr
        self.records = 0
        if self.owner is not None:
            self.owner.ring_buffers.append(self)

    def _on_sample(self, ctx: int, data: int, size: int) -> int:
        try:
            self.records += 1
            ret = self.callback(ctypes.string_at(data, size))
            return int(ret) if isinstance(ret, int) and ret < 0 else 0
        except BaseException as exc:  # noqa: BLE001 - re-raised by poll()
            self.error = exc
            return -_errno.ECANCELED

    def add(self, map_or_fd: BpfMap | int, callback=None) -> None:
        """ring_buffer__add: consume another ring buffer map in the same poll."""
        fd = map_or_fd.fd if isinstance(map_or_fd, BpfMap) else int(map_or_fd)
        fn = self._fn if callback is None else RING_BUFFER_SAMPLE_FN(
            lambda ctx, data, size: (callback(ctypes.string_at(data, size)) or 0))
        self._extra.append(fn)
        self.libbpf._check(self.libbpf.lib.ring_buffer__add(self._ptr(), fd, fn, None),
                           f"ring_buffer__add(fd {fd})", "ringbuf")

    def _ptr(self) -> int:
        if not self.ptr:
            raise ValueError("the ring buffer is freed")
        return self.ptr

    def _run(self, ret: int, what: str) -> int:
        if self.error is not None:
            exc, self.error = self.error, None
            raise exc
        if ret < 0 and errno_name(ret, self.libbpf.platform) == "EINTR":
            return 0
        return self.libbpf._check(ret, what, "ringbuf")

    def poll(self, timeout_ms: int = 100) -> int:
        """Wait up to timeout_ms for records and consume them; the number consumed."""
        if not self.libbpf.has("ring_buffer__poll"):
            raise self.libbpf.error(_errno.ENOTSUP if self.libbpf.platform == "linux" else 129,
                                    "ring_buffer__poll", "ringbuf")
        return self._run(self.libbpf.lib.ring_buffer__poll(self._ptr(), timeout_ms),
                         "ring_buffer__poll")

    def consume(self) -> int:
        """Consume whatever is available now, without waiting."""
        if not self.libbpf.has("ring_buffer__consume"):
            raise self.libbpf.error(_errno.ENOTSUP if self.libbpf.platform == "linux" else 129,
                                    "ring_buffer__consume", "ringbuf")
        return self._run(self.libbpf.lib.ring_buffer__consume(self._ptr()),
                         "ring_buffer__consume")

    def epoll_fd(self) -> int:
        """The epoll fd that becomes readable when records are waiting (-1 if unavailable):
        select() on it with other fds, then consume()."""
        if not self.libbpf.has("ring_buffer__epoll_fd"):
            return -1
        return self.libbpf.lib.ring_buffer__epoll_fd(self._ptr())

    def free(self) -> None:
        """ring_buffer__free (idempotent). Never call it while another thread polls."""
        if self.ptr:
            ptr, self.ptr = self.ptr, None
            self.libbpf.lib.ring_buffer__free(ptr)
        if self.owner is not None and self in self.owner.ring_buffers:
            self.owner.ring_buffers.remove(self)

    def __enter__(self) -> "RingBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.free()
