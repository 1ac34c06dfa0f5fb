"""`live()`: the real process hook of this machine, Windows or Linux.

On Windows it is the real ntosebpfext through EbpfApi.dll (`WindowsHook`); on Linux it is live
capture of this kernel's process events with Windows programs in shadow mode (`LinuxHook`).
When something is missing, `LiveUnavailable` names every missing piece and how to get it.

>>> with live() as hook:                                                # doctest: +SKIP
...     trace = hook.capture(duration=10)
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

from .contract import LiveUnavailable
from .libbpf import find_library

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39
BTF_PATH = "/sys/kernel/btf/vmlinux"
MIN_KERNEL = (5, 8)   # tp_btf, BPF ring buffers, bpf_ktime_get_boot_ns


def effective_capabilities(status_path: str = "/proc/self/status") -> int:
    try:
        for line in Path(status_path).read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def linux_problems(*, euid: int | None = None, caps: int | None = None,
                   libbpf: str | None | bool = True, btf_path: str = BTF_PATH,
                   release: str | None = None) -> list[str]:
    """What stops live capture on this Linux machine (empty when nothing does). The keyword
    arguments override what is detected, for tests."""
    problems = []
    euid = os.geteuid() if euid is None else euid
    caps = effective_capabilities() if caps is None else caps
    has = lambda cap: bool(caps >> cap & 1)  # noqa: E731
    if euid != 0 and not (has(CAP_BPF) and has(CAP_PERFMON)) and not has(CAP_SYS_ADMIN):
        lacking = [n for n, c in (("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON))
                   if not has(c)]
        problems.append(f"not root and without {' and '.join(lacking)}: run as root (sudo), or "
                        f"grant them: setcap cap_bpf,cap_perfmon+ep {sys.executable}")
    lib = find_library("linux") if libbpf is True else libbpf
    if not lib:
        problems.append("libbpf.so.1 not found: apt-get install libbpf1 (Debian/Ubuntu), "
                        "dnf install libbpf (Fedora), or set NTOSLAB_LIBBPF=/path/to/libbpf.so.1")
    if not os.path.exists(btf_path):
        problems.append(f"no kernel BTF ({btf_path}): the kernel must be built with "
                        f"CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 2020 are)")
    release = platform.release() if release is None else release
    try:
        version = tuple(int(x) for x in release.split("-")[0].split(".")[:2])
    except ValueError:
        version = MIN_KERNEL
    if version < MIN_KERNEL:
        problems.append(f"kernel {release} is older than {MIN_KERNEL[0]}.{MIN_KERNEL[1]} "
                        f"(needed for BTF tracepoints and BPF ring buffers)")
    return problems


def live(**kw: Any):
    """The live process hook for this machine: `WindowsHook` on Windows, `LinuxHook` on
    Linux. Raises LiveUnavailable naming what is missing (privileges, libbpf, BTF, DLL)."""
    if sys.platform == "win32":
        from .windows import WindowsHook
        return WindowsHook(**kw)
    if sys.platform.startswith("linux"):
        problems = linux_problems()
        if problems:
            raise LiveUnavailable(problems)
        from .linux import LinuxHook
        return LinuxHook(**kw)
    raise LiveUnavailable([f"{platform.system()} is not supported: live hooks exist for "
                           f"Windows (eBPF for Windows + ntosebpfext) and Linux"])
