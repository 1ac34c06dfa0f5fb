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

Layout: `api` (the ctypes layer: option structs, callback types, map type tables, signatures,
finding the library), `errors` (LibbpfError and the fix for each failure), `library` (Libbpf),
`objects` (BpfObject, BpfProgram, BpfMap, BpfLink), `ringbuf` (RingBuffer).
"""

from __future__ import annotations

from .api import (
    BPF_ANY,
    BPF_EXIST,
    BPF_NOEXIST,
    LAYOUTS,
    LIBBPF_DEBUG,
    LIBBPF_INFO,
    LIBBPF_PRINT_FN,
    LIBBPF_WARN,
    LINUX_LIBRARY,
    PERCPU_MAP_TYPES,
    RING_BUFFER_SAMPLE_FN,
    RINGBUF_MAP_TYPE,
    SIGNATURES,
    WINDOWS_LIBRARY,
    BpfObjectOpenOpts,
    BpfTestRunOpts,
    RingBufferOpts,
    current_platform,
    find_library,
)
from .errors import (
    EXTRA_ERRNO,
    HINTS,
    MSVC_ERRNO,
    LibbpfError,
    LibbpfUnavailable,
    errno_name,
    errno_text,
    translate,
)
from .library import Libbpf, TestRun
from .objects import BpfLink, BpfMap, BpfObject, BpfProgram
from .ringbuf import RingBuffer

__all__ = [
    "BPF_ANY",
    "BPF_EXIST",
    "BPF_NOEXIST",
    "BpfLink",
    "BpfMap",
    "BpfObject",
    "BpfObjectOpenOpts",
    "BpfProgram",
    "BpfTestRunOpts",
    "EXTRA_ERRNO",
    "HINTS",
    "LAYOUTS",
    "LIBBPF_DEBUG",
    "LIBBPF_INFO",
    "LIBBPF_PRINT_FN",
    "LIBBPF_WARN",
    "LINUX_LIBRARY",
    "Libbpf",
    "LibbpfError",
    "LibbpfUnavailable",
    "MSVC_ERRNO",
    "PERCPU_MAP_TYPES",
    "RINGBUF_MAP_TYPE",
    "RING_BUFFER_SAMPLE_FN",
    "RingBuffer",
    "RingBufferOpts",
    "SIGNATURES",
    "TestRun",
    "WINDOWS_LIBRARY",
    "current_platform",
    "errno_name",
    "errno_text",
    "find_library",
    "translate",
]
