"""Our bpf/include headers against the eBPF-for-Windows / ntosebpfext ABI facts.

Ids and layouts are checked in compiled objects (call immediates read with pyelftools and
struct) and by _Static_assert, so neither BTF nor our own ELF loader is involved.
"""
from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from ntoslab import toolchain

INCLUDE = toolchain.INCLUDE

# Reference: general helpers 1-35 (EFW include/ebpf_structs.h, bpf_helper_defs.h) and the
# process helpers 65536-65538 (ntosebpfext include/ebpf_ntos_hooks.h), with argument counts.
HELPERS = {
    "bpf_map_lookup_elem": (1, 2),
    "bpf_map_update_elem": (2, 4),
    "bpf_map_delete_elem": (3, 2),
    "bpf_map_lookup_and_delete_elem": (4, 2),
    "bpf_tail_call": (5, 3),
    "bpf_get_prandom_u32": (6, 0),
    "bpf_ktime_get_boot_ns": (7, 0),
    "bpf_get_smp_processor_id": (8, 0),
    "bpf_ktime_get_ns": (9, 0),
    "bpf_csum_diff": (10, 5),
    "bpf_ringbuf_output": (11, 4),
    "bpf_trace_printk2": (12, 2),
    "bpf_trace_printk3": (13, 3),
    "bpf_trace_printk4": (14, 4),
    "bpf_trace_printk5": (15, 5),
    "bpf_map_push_elem": (16, 3),
    "bpf_map_pop_elem": (17, 2),
    "bpf_map_peek_elem": (18, 2),
    "bpf_get_current_pid_tgid": (19, 0),
    "bpf_get_current_logon_id": (20, 1),
    "bpf_is_current_admin": (21, 1),
    "bpf_memcpy_s": (22, 4),
    "bpf_memcmp_s": (23, 4),
    "bpf_memset": (24, 3),
    "bpf_memmove_s": (25, 4),
    "bpf_get_socket_cookie": (26, 1),
    "bpf_strncpy_s": (27, 4),
    "bpf_strncat_s": (28, 4),
    "bpf_strnlen_s": (29, 2),
    "bpf_ktime_get_boot_ms": (30, 0),
    "bpf_ktime_get_ms": (31, 0),
    "bpf_perf_event_output": (32, 5),
    "bpf_get_current_process_start_key": (33, 0),
    "bpf_get_current_thread_create_time": (34, 0),
    "bpf_redirect_map": (35, 3),
    "bpf_process_get_image_path": (65536, 3),
    "bpf_process_get_account_name": (65537, 3),
    "bpf_process_get_account_domain": (65538, 3),
}

MAP_TYPES = {
    "UNSPEC": 0, "HASH": 1, "ARRAY": 2, "PROG_ARRAY": 3, "PERCPU_HASH": 4, "PERCPU_ARRAY": 5,
    "HASH_OF_MAPS": 6, "ARRAY_OF_MAPS": 7, "LRU_HASH": 8, "LPM_TRIE": 9, "QUEUE": 10,
    "LRU_PERCPU_HASH": 11, "STACK": 12, "RINGBUF": 13, "PERF_EVENT_ARRAY": 14,
    "SAMPLE_HASH_MAP": 15, "XSKMAP": 16,
}

# process_md_t (reference §1.3): field -> (offset, size)
PROCESS_MD = {
    "command_start": (0, 8), "command_end": (8, 8), "process_id": (16, 8),
    "parent_process_id": (24, 8), "creating_process_id": (32, 8),
    "creating_thread_id": (40, 8), "creation_time": (48, 8), "exit_time": (56, 8),
    "process_exit_code": (64, 4), "token_sid_size": (72, 4), "token_sid": (76, 68),
}


def helper_calls(path: Path) -> dict[str, list[int]]:
    """Section name -> the imm of every helper call (opcode 0x85, src 0) in it, in order."""
    out: dict[str, list[int]] = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if sec["sh_type"] != "SHT_PROGBITS" or not sec["sh_flags"] & 0x4:  # SHF_EXECINSTR
                continue
            code = sec.data()
            calls = []
            pc = 0
            while pc + 8 <= len(code):
                opcode, regs, _off, imm = struct.unpack_from("<BBhi", code, pc)
                if opcode == 0x85 and regs >> 4 == 0:
                    calls.append(imm)
                pc += 16 if opcode == 0x18 else 8
            out[sec.name] = calls
    return out


def section_names(path: Path) -> set[str]:
    with open(path, "rb") as f:
        return {s.name for s in ELFFile(f).iter_sections()}


def test_every_helper_has_its_windows_id(compile_bpf):
    parts = ['#include "bpf_helpers.h"', '#include "ebpf_ntos_hooks.h"']
    for name, (_id, nargs) in HELPERS.items():
        args = ", ".join(["0"] * nargs)
        parts.append(f'SEC("process/{name}") int t_{name}(void* ctx) '
                     f'{{ return (int)(long){name}({args}); }}')
    obj = compile_bpf("\n".join(parts) + "\n", "helpers")
    calls = helper_calls(obj)
    for name, (hid, _n) in HELPERS.items():
        assert calls[f"process/{name}"] == [hid], name


def test_helper_ids_in_header_text():
    """The BPF_FUNC_* enumerators spell the same table (names as eBPF for Windows has them)."""
    text = (INCLUDE / "ebpf_structs.h").read_text()
    found = {f"bpf_{m[0]}": int(m[1]) for m in re.findall(r"BPF_FUNC_(\w+)\s*=\s*(\d+)", text)}
    general = {k: v[0] for k, v in HELPERS.items() if v[0] < 65536}
    assert found == general
    hooks = (INCLUDE / "ebpf_ntos_hooks.h").read_text()
    assert "#define PROCESS_EXT_HELPER_FN_BASE 0xFFFF" in hooks
    for i, name in enumerate(["image_path", "account_name", "account_domain"], 1):
        assert re.search(rf"BPF_FUNC_process_get_{name}\s*=\s*PROCESS_EXT_HELPER_FN_BASE \+ {i}",
                         hooks)


def test_memory_macros_and_printk_pick_helpers(compile_bpf):
    src = r'''
#include "bpf_helpers.h"
SEC("process/memcpy") int a(void* ctx) { char x[8], y[8] = {1}; memcpy(x, y, 8); return x[0]; }
SEC("process/memset") int b(void* ctx) { char x[8]; memset(x, 7, 8); return x[1]; }
SEC("process/memcmp") int c(void* ctx) { char x[8] = {1}, y[8] = {2}; return memcmp(x, y, 8); }
SEC("process/memmove") int d(void* ctx) { char x[8] = {1}; memmove(x + 1, x, 4); return x[2]; }
SEC("process/memcpy_s") int e(void* ctx) { char x[8], y[4] = {1}; return memcpy_s(x, 8, y, 4); }
SEC("process/memmove_s") int f(void* ctx) { char x[8] = {1}; return memmove_s(x, 8, x + 1, 4); }
SEC("process/printk") int g(void* ctx)
{
    bpf_printk("none");
    bpf_printk("one %d", 1);
    bpf_printk("two %d %d", 1, 2);
    bpf_printk("three %d %d %d", 1, 2, 3);
    return 0;
}
'''
    calls = helper_calls(compile_bpf(src, "macros"))
    assert calls["process/memcpy"] == [22]
    assert calls["process/memset"] == [24]
    assert calls["process/memcmp"] == [23]
    assert calls["process/memmove"] == [25]
    assert calls["process/memcpy_s"] == [22]
    assert calls["process/memmove_s"] == [25]
    assert calls["process/printk"] == [12, 13, 14, 15]


def test_process_md_layout(compile_bpf):
    asserts = "\n".join(
        f"_Static_assert(__builtin_offsetof(process_md_t, {f}) == {off}, \"{f} offset\");\n"
        f"_Static_assert(sizeof(((process_md_t*)0)->{f}) == {size}, \"{f} size\");"
        for f, (off, size) in PROCESS_MD.items())
    src = f'''
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"
{asserts}
_Static_assert(sizeof(process_md_t) == 144, "size");
_Static_assert(_Alignof(process_md_t) == 8, "align");
_Static_assert(TOKEN_SID_MAX_SIZE == 68, "sid max");
_Static_assert(PROCESS_OPERATION_CREATE == 0 && PROCESS_OPERATION_DELETE == 1, "ops");
process_hook_t Hook;
SEC("process") int Hook(process_md_t* ctx)
{{
    /* operation is an 8-bit bit-field in the byte at offset 68 */
    return ctx->operation == PROCESS_OPERATION_DELETE ? 1 : 0;
}}
'''
    obj = compile_bpf(src, "layout")
    with open(obj, "rb") as f:
        code = ELFFile(f).get_section_by_name("process").data()
    loads = [struct.unpack_from("<BBhi", code, pc) for pc in range(0, len(code), 8)]
    # the bit-field read is a one-byte load (BPF_LDX|BPF_MEM|BPF_B = 0x71) at offset 68
    assert any(op == 0x71 and off == 68 for op, _r, off, _i in loads), loads


def test_map_types_flags_and_legacy_record(compile_bpf):
    asserts = "\n".join(f"_Static_assert(BPF_MAP_TYPE_{k} == {v}, \"{k}\");"
                        for k, v in MAP_TYPES.items())
    src = f'''
#include "bpf_helpers.h"
{asserts}
_Static_assert(BPF_ANY == 0 && BPF_NOEXIST == 1 && BPF_EXIST == 2, "flags");
_Static_assert(LIBBPF_PIN_NONE == 0 && LIBBPF_PIN_BY_NAME == 1, "pinning");
_Static_assert(sizeof(struct bpf_map_def) == 32, "legacy record");
_Static_assert(__builtin_offsetof(struct bpf_map_def, inner_map_idx) == 16, "inner_map_idx");
_Static_assert(__builtin_offsetof(struct bpf_map_def, pinning) == 20, "pinning");
_Static_assert(__builtin_offsetof(struct bpf_map_def, id) == 24, "id");
_Static_assert(__builtin_offsetof(struct bpf_map_def, inner_id) == 28, "inner_id");
_Static_assert(BPF_PROG_TYPE_PROCESS == 6 && BPF_ATTACH_TYPE_PROCESS == 11, "process type");
_Static_assert(EBPF_MAX_GENERAL_HELPER_FUNCTION == 0xFFFF, "helper split");
_Static_assert(MAX_TAIL_CALL_CNT == 33, "tail calls");
SEC("maps") struct bpf_map_def legacy = {{.type = BPF_MAP_TYPE_HASH, .key_size = 4,
    .value_size = 8, .max_entries = 3, .inner_map_idx = 5, .pinning = LIBBPF_PIN_BY_NAME,
    .id = 9, .inner_id = 10}};
SEC("process") int P(void* ctx) {{ return bpf_map_lookup_elem(&legacy, &ctx) != 0; }}
'''
    obj = compile_bpf(src, "maptypes")
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        data = elf.get_section_by_name("maps").data()
        assert elf.get_section_by_name(".ebpf_for_windows").data() == b"\x01"
    assert struct.unpack("<8I", data) == (1, 4, 8, 3, 5, 1, 9, 10)


def test_btf_map_macros(compile_bpf):
    src = '''
#include "bpf_helpers.h"
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, uint32_t); __type(value, uint32_t);
               __uint(max_entries, 1); } in1 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __type(key, uint32_t); __type(value, uint32_t);
         __uint(max_entries, 1); __array(values, struct inner); } outer SEC(".maps") = {
    .values = {&in1},
};
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 65536); } rb SEC(".maps");
SEC("process") int P(void* ctx) { uint32_t k = 0; return bpf_map_lookup_elem(&outer, &k) != 0; }
'''
    names = section_names(compile_bpf(src, "btfmaps"))
    assert {".maps", ".BTF", ".BTF.ext", "process"} <= names


def test_headers_compile_with_freestanding_std_headers(compile_bpf):
    """Our integer typedefs agree with <stdint.h>/<stdbool.h>/<stddef.h>, in either order."""
    for first, second in [("bpf_helpers.h", "stdint.h"), ("stdint.h", "bpf_helpers.h")]:
        src = (f'#include {"<" + first + ">" if first.startswith("std") else chr(34) + first + chr(34)}\n'
               f'#include {"<" + second + ">" if second.startswith("std") else chr(34) + second + chr(34)}\n'
               '#include <stdbool.h>\n#include <stddef.h>\n#include "ebpf_ntos_hooks.h"\n'
               'SEC("process") int P(process_md_t* c) { uint64_t x = c->process_id; '
               'bool b = true; size_t s = sizeof(x); return (int)(x + b + s); }\n')
        compile_bpf(src, "stdhdr")


def _ntosebpfext_dir() -> Path | None:
    value = os.environ.get("NTOSEBPFEXT_DIR")
    return Path(value) if value else None


@pytest.mark.skipif(_ntosebpfext_dir() is None,
                    reason="NTOSEBPFEXT_DIR is not set (a checkout of microsoft/ntosebpfext; "
                           "Microsoft's process_monitor.c is not part of this repository)")
def test_microsoft_process_monitor_compiles_unchanged(tmp_path):
    src = _ntosebpfext_dir() / "tools" / "process_monitor_bpf" / "process_monitor.c"
    if not src.is_file():
        pytest.skip(f"{src} not found in NTOSEBPFEXT_DIR")
    out = toolchain.compile_c(src, tmp_path / "process_monitor.o", extra_flags=["-Werror"])
    names = section_names(out)
    assert {"process", ".maps", ".BTF", ".BTF.ext", ".ebpf_for_windows"} <= names
    calls = helper_calls(out)["process"]
    assert {1, 2, 11, 19, 24, 65536, 65537, 65538} <= set(calls)
