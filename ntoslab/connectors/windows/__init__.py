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
parsing, error translation with the fix for each failure a Windows user meets; and the hook
itself, ctypes layer included, runs in the tests on a fake EbpfApi.dll (tests/fakes: the DLL's C
ABI answered by the emulator).

Layout: `diagnostics` (identifiers, version and service detection, error translation: all plain
Python, tested anywhere) and `hook` (WindowsHook and its objects, links and ring buffers); the
context packing is `ntoslab.hooks.notify_context`, shared with the emulator's test runs.
"""
from __future__ import annotations

from ...hooks.notify_context import pack_test_run_context, unpack_test_run_context
from ...runtime.ebpf_result import EOTHER
from .diagnostics import (
    BPF_ATTACH_TYPE_PROCESS,
    BPF_PROG_TYPE_PROCESS,
    EBPF_ATTACH_TYPE_PROCESS,
    EBPF_EXECUTION_ANY,
    EBPF_EXECUTION_INTERPRET,
    EBPF_EXECUTION_JIT,
    EBPF_EXECUTION_NATIVE,
    EBPF_PROGRAM_TYPE_PROCESS,
    EXECUTION_NAMES,
    FEATURE_EXPORTS,
    REQUIRED_EXPORTS,
    SERVICE_FIX,
    SOURCE,
    WINDOWS_HINTS,
    EbpfApiFeatures,
    detect_features,
    ebpf_result_errno,
    ebpf_result_name,
    execution_type_for,
    is_elevated,
    service_state,
    windows_error,
    windows_problems,
)
from .hook import (
    WINDOWS_SIGNATURES,
    LiveRingBuf,
    WindowsHook,
    WindowsLink,
    WindowsObject,
    _guid,
)

__all__ = ['BPF_ATTACH_TYPE_PROCESS', 'BPF_PROG_TYPE_PROCESS', 'EBPF_ATTACH_TYPE_PROCESS', 'EBPF_EXECUTION_ANY', 'EBPF_EXECUTION_INTERPRET', 'EBPF_EXECUTION_JIT', 'EBPF_EXECUTION_NATIVE', 'EBPF_PROGRAM_TYPE_PROCESS', 'EOTHER', 'EXECUTION_NAMES', 'EbpfApiFeatures', 'FEATURE_EXPORTS', 'LiveRingBuf', 'REQUIRED_EXPORTS', 'SERVICE_FIX', 'SOURCE', 'WINDOWS_HINTS', 'WINDOWS_SIGNATURES', 'WindowsHook', 'WindowsLink', 'WindowsObject', '_guid', 'detect_features', 'ebpf_result_errno', 'ebpf_result_name', 'execution_type_for', 'is_elevated', 'pack_test_run_context', 'service_state', 'unpack_test_run_context', 'windows_error', 'windows_problems']
