"""`Libbpf`: the loaded library with typed functions and a Pythonic layer (open, maps, test runs,
ring buffers, the verifier log captured from libbpf's print callback)."""
from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import logging
import os
import threading
from contextlib import contextmanager
from ctypes import byref, c_char_p, c_int, c_size_t, c_void_p
from dataclasses import dataclass
from typing import Callable, Iterator

from ...isa.opcodes import sign32
from .api import (
    BPF_ANY,
    LIBBPF_DEBUG,
    LIBBPF_INFO,
    LIBBPF_PRINT_FN,
    LIBBPF_WARN,
    SIGNATURES,
    BpfObjectOpenOpts,
    BpfTestRunOpts,
    current_platform,
    find_library,
)
from .errors import LibbpfError, LibbpfUnavailable, errno_name, errno_text, translate
from .objects import BpfMap, BpfObject
from .ringbuf import RingBuffer

log = logging.getLogger("ntoslab.libbpf")

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

