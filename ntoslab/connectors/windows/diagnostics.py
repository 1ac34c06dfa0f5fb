"""What eBPF for Windows and ntosebpfext are on this machine, and what went wrong: identifiers,
execution types, version detection from the DLL's exports, `sc query` parsing, ebpf_result_t and
errno translation with the fix for each failure."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...runtime import ebpf_result as _ebpf_result  # names and errno: one table
from ..libbpf import LibbpfError, LibbpfUnavailable, translate

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
