"""Run bytecode in this machine's Linux kernel (bpf(2): BPF_PROG_LOAD + BPF_PROG_TEST_RUN).

The kernel is an independent oracle for our engines and the baseline for benchmarks. Programs
are loaded as socket filters (no maps, no helpers); the kernel verifier must accept them, and
BPF_PROG_TEST_RUN reports only the low 32 bits of r0.

>>> k = LinuxKernel()                                            # doctest: +SKIP
>>> k.run(bytes.fromhex("b7000000070000009500000000000000")).retval   # doctest: +SKIP
7
"""
from __future__ import annotations

import ctypes
import os
import platform
import struct
from dataclasses import dataclass

SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
BPF_PROG_LOAD = 5
BPF_PROG_TEST_RUN = 10
BPF_PROG_TYPE_SOCKET_FILTER = 1
ATTR_SIZE = 128
# a minimal Ethernet frame: test runs of socket filters need at least 14 bytes of packet
DEFAULT_PACKET = bytes(64)


class KernelUnavailable(RuntimeError):
    """This machine cannot load BPF programs (not Linux, no bpf(2), or no permission)."""


class KernelRejected(ValueError):
    """The kernel verifier refused the program; `log` is the verifier's own output."""

    def __init__(self, message: str, log: str) -> None:
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class KernelRun:
    retval: int          # low 32 bits of r0
    duration_ns: int     # the kernel's average time per repetition


class LinuxKernel:
    """Load and test-run raw bytecode in the running Linux kernel."""

    def __init__(self) -> None:
        if SYS_BPF is None or platform.system() != "Linux":
            raise KernelUnavailable(f"bpf(2) is not available on {platform.system()} "
                                    f"{platform.machine()}")
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long

    def _bpf(self, cmd: int, attr: ctypes.Array) -> int:
        ret = self._libc.syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
        if ret < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return ret

    def load(self, code: bytes, name: str = "ntoslab") -> int:
        """Load `code` as a socket filter; return the program fd.

        The first attempt asks for no verifier log (a large program's log can overflow any buffer
        and fail an accepted program with ENOSPC); only a rejection is retried with the log on.
        """
        try:
            return self._load(code, name, log_level=0)
        except OSError as exc:
            if exc.errno in (1, 38):  # EPERM, ENOSYS
                raise KernelUnavailable(f"the kernel refused BPF_PROG_LOAD: {exc.strerror}") \
                    from None
            first = exc
        log = ctypes.create_string_buffer(16 << 20)
        try:
            fd = self._load(code, name, log_level=1, log=log)
        except OSError:
            text = log.value.decode(errors="replace").strip()
            raise KernelRejected(f"kernel verifier rejected {name}: {first.strerror}", text) \
                from None
        return fd  # accepted on the second try (should not happen): use it

    def _load(self, code: bytes, name: str, log_level: int, log=None) -> int:
        insns = ctypes.create_string_buffer(code, len(code))
        license_ = ctypes.create_string_buffer(b"GPL")
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_SOCKET_FILTER, len(code) // 8,
                         ctypes.addressof(insns), ctypes.addressof(license_), log_level,
                         len(log) if log is not None else 0,
                         ctypes.addressof(log) if log is not None else 0)
        struct.pack_into("16s", attr, 48, name.encode()[:15])
        return self._bpf(BPF_PROG_LOAD, attr)

    def test_run(self, fd: int, repeat: int = 1, packet: bytes = DEFAULT_PACKET) -> KernelRun:
        data = ctypes.create_string_buffer(packet, len(packet))
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into("<IIIIQQII", attr, 0, fd, 0, len(packet), 0, ctypes.addressof(data), 0,
                         repeat, 0)
        self._bpf(BPF_PROG_TEST_RUN, attr)
        retval, = struct.unpack_from("<I", attr, 4)
        duration, = struct.unpack_from("<I", attr, 36)
        return KernelRun(retval, duration)

    def run(self, code: bytes, repeat: int = 1, name: str = "ntoslab") -> KernelRun:
        fd = self.load(code, name)
        try:
            return self.test_run(fd, repeat)
        finally:
            os.close(fd)
