"""The ctypes layer of libbpf 1.x (Linux `libbpf.so.1`, eBPF for Windows `EbpfApi.dll`): option
struct layouts, callback types, map type tables, the function signatures, finding the library."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

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


def _cstr(ptr: bytes | None) -> str:
    return ptr.decode(errors="replace") if ptr else ""
