"""The native runtime's structures and functions, as ctypes sees them (mirrors ntl.h).

>>> from ntoslab.native import lib
>>> lib().ntl_window_base(0) == 256 << 40
True
"""
from __future__ import annotations

import ctypes as C

u8p = C.POINTER(C.c_uint8)
u32 = C.c_uint32
u64 = C.c_uint64
i64 = C.c_int64
vp = C.c_void_p

FIRST_WINDOW = 256
WINDOW_SHIFT = 40                      # a window is 1 TiB of virtual addresses (ntl.h)
WINDOW_MASK = (1 << WINDOW_SHIFT) - 1
STACK_FRAMES = 8
STACK_SIZE = 512
W_WRITABLE, W_MAP, W_HANDLE, W_PYTHON = 1, 2, 4, 8
MAPF_BOUNDED_HASH, MAPF_READONLY, MAPF_TRUE_LRU = 1, 2, 8
RING_LOCK_BIT, RING_DISCARD_BIT = 1 << 31, 1 << 30

# run status (NTL_S_*)
S_EXIT, S_MEMORY, S_BUDGET, S_CALL_DEPTH, S_FELL_OFF, S_HELPER, S_PYTHON, S_INDEX, S_STOP, \
    S_INTERNAL = range(10)
# helper faults (NTL_HF_*)
HF_NOT_A_MAP, HF_WRONG_MAP_TYPE, HF_NOT_CONTEXT, HF_MEMORY, HF_CPU, HF_NO_MEMORY, \
    HF_UNKNOWN, HF_TAIL_TARGET = range(1, 9)


class Window(C.Structure):
    _fields_ = [("host", vp), ("pitch", u64), ("live", vp), ("length", u32), ("nslots", u32),
                ("shift", u32), ("flags", u32), ("owner", vp), ("first_slot", u64)]


class Space(C.Structure):
    _fields_ = [("table", C.POINTER(Window)), ("n", u64), ("cap", u64), ("free_ring", vp),
                ("free_head", u64), ("free_tail", u64), ("free_cap", u64), ("version", u64)]


class Printk(C.Structure):
    _fields_ = [("time", u64), ("program", u32), ("helper", u32), ("offset", u32),
                ("length", u32)]


class Env(C.Structure):
    _fields_ = [("pid_tgid", u64), ("logon_id", u64), ("process_start_key", u64),
                ("thread_create_time", u64), ("is_admin", i64), ("boot_ns", u64),
                ("mono_ns", u64), ("now", u64), ("cpu", u32), ("ncpus", u32),
                ("printk_enabled", u32), ("printk_session", u32), ("mt", u32 * 624),
                ("mti", u32), ("pad0", u32), ("printk", C.POINTER(Printk)), ("nprintk", u64),
                ("printk_cap", u64), ("printk_text", vp), ("printk_text_len", u64),
                ("printk_text_cap", u64)]


class Run(C.Structure):
    _fields_ = [("space", C.POINTER(Space)), ("env", C.POINTER(Env)), ("regs", u64 * 11),
                ("count", u64), ("budget", u64), ("pc", u64), ("status", u64),
                ("fault_code", u64), ("fault_addr", u64), ("fault_size", u64),
                ("fault_write", u64), ("fault_arg", u64), ("fault_arg2", u64),
                ("helper_id", u64), ("stack_host", u64 * STACK_FRAMES),
                ("stack_end", u64 * STACK_FRAMES), ("depth", u64),
                ("frames", u64 * (STACK_FRAMES * 6)), ("tail_fn", vp), ("tail_prog_id", u64),
                ("tail_ctx", u64), ("tail_calls", u32), ("max_tail_calls", u32),
                ("tail_calls_failed", u64), ("program_id", u64), ("python", vp),
                ("context", vp), ("ctx_addr", u64), ("stop_r0", u64), ("native_tail", u64)]


class Segment(C.Structure):
    _fields_ = [("host", vp), ("state", vp), ("first", u64), ("capacity", u64), ("window", u32),
                ("nwindows", u32)]


class Slab(C.Structure):
    _fields_ = [("space", vp), ("owner", vp), ("elem", u32), ("pitch", u32), ("group", u32),
                ("shift", u32), ("writable", u32), ("nseg", u32), ("capacity", u64),
                ("limit", u64), ("next_unused", u64), ("free_ring", vp), ("free_head", u64),
                ("free_tail", u64), ("free_cap", u64), ("retired", vp), ("nretired", u64),
                ("retired_cap", u64), ("seg", Segment * 48)]


class Ring(C.Structure):
    _fields_ = [("data", vp), ("capacity", u64), ("producer", u64), ("consumer", u64),
                ("produced", u64), ("dropped", u64), ("rejected", u64)]


class Event(C.Structure):
    _fields_ = [("image", vp), ("image_len", u64), ("account_name", vp),
                ("account_name_len", i64), ("account_domain", vp), ("account_domain_len", i64),
                ("command", vp), ("command_len", u64), ("ctx_addr", u64), ("is_create", u64),
                ("account_used", u64)]


class Link(C.Structure):
    _fields_ = [("run", C.POINTER(Run)), ("fn", vp), ("program_id", u64), ("maps", C.POINTER(vp)),
                ("nmaps", u64), ("event", C.POINTER(Event)), ("ctx_window", u32),
                ("cmd_window", u32)]


class Recorder(C.Structure):
    _fields_ = [("map", vp), ("data", vp), ("len", u64), ("cap", u64), ("offsets", vp),
                ("lengths", vp), ("events", vp), ("count", u64), ("count_cap", u64)]


class Batch(C.Structure):
    _fields_ = [("n", u64), ("pid", vp), ("ppid", vp), ("cpid", vp), ("ctid", vp), ("ctime", vp),
                ("etime", vp), ("exit_code", vp), ("sid", vp), ("sid_table", vp),
                ("sid_size", vp), ("raw", vp), ("raw_table", vp), ("strings", vp),
                ("cmd_off", vp), ("cmd_len", vp), ("img_off", vp), ("img_len", vp),
                ("name_off", vp), ("name_len", vp), ("dom_off", vp), ("dom_len", vp),
                ("is_create", vp), ("time", vp), ("logon_id", vp), ("start_key", vp),
                ("thread_time", vp), ("is_admin", vp), ("cpu", vp), ("budget", u64),
                ("command_base", u64), ("last_time", i64), ("boot_time", i64),
                ("has_boot_time", u32), ("ncpus", u32), ("status", vp), ("decided_by", vp),
                ("instructions", vp), ("programs_run", vp), ("now", vp), ("next_event", u64),
                ("next_link", u32), ("fault_link", u32), ("fault_status", C.c_int32),
                ("pad", u32), ("context", C.c_uint8 * 144), ("pid_tgid", u64),
                ("link_status", vp), ("link_count", vp), ("event_base", u64),
                ("exit_tid", vp)]


PYTHON_HELPER = C.CFUNCTYPE(u64, C.POINTER(Run), u64)

SIGNATURES = {
    "ntl_space_new": (C.POINTER(Space), []),
    "ntl_space_free": (None, [C.POINTER(Space)]),
    "ntl_space_reserve": (u32, [C.POINTER(Space), u32]),
    "ntl_space_set": (None, [C.POINTER(Space), u32, vp, u64, vp, u32, u32, u32, u32, vp, u64]),
    "ntl_space_map_plain": (u32, [C.POINTER(Space), vp, u32, u32, vp]),
    "ntl_space_repoint": (None, [C.POINTER(Space), u32, vp, u32]),
    "ntl_space_unmap": (None, [C.POINTER(Space), u32, u32]),
    "ntl_translate": (vp, [C.POINTER(Space), u64, u64, C.c_int]),
    "ntl_window_base": (u64, [u32]),
    "ntl_slab_host": (vp, [C.POINTER(Slab), u64]),
    "ntl_slab_address": (u64, [C.POINTER(Slab), u64, u32]),
    "ntl_slab_find": (C.c_int, [C.POINTER(Slab), u64, C.POINTER(u64), C.POINTER(u32),
                                C.POINTER(u64)]),
    "ntl_ring_new": (C.POINTER(Ring), [u64]),
    "ntl_ring_free": (None, [C.POINTER(Ring)]),
    "ntl_ring_output": (C.c_int, [C.POINTER(Ring), vp, u64, u64]),
    "ntl_ring_copy_out": (None, [C.POINTER(Ring), u64, vp, u64]),
    "ntl_ring_walk": (u64, [C.POINTER(Ring), vp, vp, u64, C.POINTER(u64)]),
    "ntl_map_new": (vp, [C.POINTER(Space), u32, u32, u32, u32, u32, u32, u32, vp, u64, u64]),
    "ntl_map_free": (None, [vp]),
    "ntl_map_from_handle": (vp, [C.POINTER(Space), u64]),
    "ntl_map_lookup": (u64, [vp, vp, C.c_int]),
    "ntl_map_update": (i64, [vp, vp, vp, u64, C.c_int]),
    "ntl_map_delete": (i64, [vp, vp]),
    "ntl_map_lookup_and_delete": (u64, [vp, vp]),
    "ntl_map_push": (i64, [vp, vp, u64]),
    "ntl_map_pop": (i64, [vp, vp, C.c_int]),
    "ntl_map_end_epoch": (None, [vp]),
    "ntl_end_epochs": (None, [C.POINTER(vp), u64]),
    "ntl_map_find_entry": (i64, [vp, vp]),
    "ntl_map_count": (u64, [vp]),
    "ntl_map_entries": (u64, [vp, vp, u64]),
    "ntl_map_key_of": (vp, [vp, i64]),
    "ntl_map_lpm_match": (i64, [vp, vp]),
    "ntl_map_set_prog": (None, [vp, u32, vp, u64]),
    "ntl_map_set_inner": (i64, [vp, vp, u64, u64]),
    "ntl_map_handle": (u64, [vp]),
    "ntl_map_evicted": (u64, [vp]),
    "ntl_lru_partitions": (u32, [vp]),
    "ntl_lru_partition_info": (C.c_int, [vp, u32, C.POINTER(u64)]),
    "ntl_lru_list": (u64, [vp, u32, C.c_int, vp, u64]),
    "ntl_lru_stalls": (u64, [vp]),
    "ntl_map_slab": (C.POINTER(Slab), [vp]),
    "ntl_map_ring": (C.POINTER(Ring), [vp, u32]),
    "ntl_map_lost": (C.POINTER(u64), [vp]),
    "ntl_map_prog_id": (u64, [vp, u32]),
    "ntl_map_set_passive": (None, [vp, u32]),
    "ntl_perf_output": (i64, [vp, u32, vp, u64, u64, vp, i64]),
    "ntl_perf_output_cpu": (i64, [vp, u32, u64, vp, u64]),
    "ntl_run_init": (None, [C.POINTER(Run), C.POINTER(Space), C.POINTER(Env)]),
    "ntl_run_program": (C.c_int32, [C.POINTER(Run), vp, u64, u64]),
    "ntl_repeat_run": (C.c_int32, [C.POINTER(Run), vp, u64, u64, C.POINTER(vp), u64, u64,
                                   C.POINTER(u64), C.POINTER(u64)]),
    "ntl_call_python": (u64, [C.POINTER(Run), u64, u64, u64, u64, u64, u64]),
    "ntl_sizeof": (u64, [C.c_int]),
    "ntl_array_inline": (C.c_int, [vp, u64, C.POINTER(u64)]),
    "ntl_process_sizeof": (u64, [C.c_int]),
    "ntl_env_new": (C.POINTER(Env), [u32]),
    "ntl_env_free": (None, [C.POINTER(Env)]),
    "ntl_env_seed": (None, [C.POINTER(Env), C.POINTER(u32), u32]),
    "ntl_env_random": (u32, [C.POINTER(Env)]),
    "ntl_env_clear_printk": (None, [C.POINTER(Env)]),
    "ntl_helper": (vp, [u64]),
    "ntl_call_helper": (u64, [C.POINTER(Run), u64, u64, u64, u64, u64, u64]),
    "ntl_format_printk": (C.c_int32, [C.c_char_p, u64, C.POINTER(u64), u32, C.c_char_p, u64]),
    "ntl_recorder_drain": (C.c_int, [C.POINTER(Recorder), u64]),
    "ntl_recorder_free_data": (None, [C.POINTER(Recorder)]),
    "ntl_batch_run": (C.c_int, [C.POINTER(Batch), C.POINTER(Link), u32, C.POINTER(Recorder), u32]),
}


ABI_VERSION = 1       # NTL_ABI_VERSION in ntl.h
# (ntl_sizeof or ntl_process_sizeof, its argument) -> the mirror whose size must agree
MIRRORS = {("ntl_sizeof", 0): Window, ("ntl_sizeof", 1): Space, ("ntl_sizeof", 2): Env,
           ("ntl_sizeof", 3): Run, ("ntl_sizeof", 4): Slab, ("ntl_sizeof", 5): Ring,
           ("ntl_process_sizeof", 0): Event, ("ntl_process_sizeof", 1): Link,
           ("ntl_process_sizeof", 2): Recorder, ("ntl_process_sizeof", 3): Batch}


def mismatches(dll: C.CDLL) -> list[str]:
    """Where this module's mirrors disagree with the compiled runtime (empty when they agree)."""
    out = []
    if dll.ntl_sizeof(6) != ABI_VERSION:
        out.append(f"ABI version {dll.ntl_sizeof(6)} in the library, {ABI_VERSION} here")
    for (fn, which), mirror in MIRRORS.items():
        native = getattr(dll, fn)(which)
        if native != C.sizeof(mirror):
            out.append(f"{mirror.__name__}: {native} bytes in C, {C.sizeof(mirror)} in abi.py")
    return out


def declare(dll: C.CDLL) -> C.CDLL:
    """Give `dll`'s functions their signatures; refuse a library whose structures differ."""
    for name, (restype, argtypes) in SIGNATURES.items():
        fn = getattr(dll, name)
        fn.restype = restype
        fn.argtypes = argtypes
    wrong = mismatches(dll)
    if wrong:
        raise RuntimeError("ntoslab native runtime: abi.py does not mirror the compiled "
                           "structures (" + "; ".join(wrong) + ")")
    return dll
