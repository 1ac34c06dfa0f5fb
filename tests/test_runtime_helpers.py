"""Every general helper, called from a real program, against hand-computed results and EFW facts."""
from __future__ import annotations

import random
import struct

import pytest

import ntoslab
from ntoslab.runtime.helpers import csum_diff, format_printk

HELPERS = r"""
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, uint32_t); __type(value, int64_t); __uint(max_entries, 64); } out SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, uint32_t); __type(value, uint64_t); __uint(max_entries, 8); } kv SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_QUEUE); __type(value, uint32_t); __uint(max_entries, 4); } q SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __type(key, uint32_t); __type(value, uint32_t); __uint(max_entries, 4096); } perf SEC(".maps");

static __always_inline void put(uint32_t k, int64_t v) { bpf_map_update_elem(&out, &k, &v, BPF_ANY); }

SEC("process") int Helpers(process_md_t* ctx)
{
    /* 4: lookup_and_delete returns the value, which stays readable during the run */
    uint32_t key = 7; uint64_t val = 0x1122334455667788ULL;
    bpf_map_update_elem(&kv, &key, &val, BPF_ANY);
    uint64_t* p = bpf_map_lookup_and_delete_elem(&kv, &key);
    put(1, p ? (int64_t)*p : -1);
    put(2, bpf_map_lookup_elem(&kv, &key) == 0);
    /* 6, 7, 8, 9, 30, 31 */
    put(3, bpf_get_prandom_u32());
    put(4, bpf_get_prandom_u32());
    put(5, bpf_ktime_get_boot_ns());
    put(6, bpf_ktime_get_ns());
    put(7, bpf_ktime_get_boot_ms());
    put(8, bpf_ktime_get_ms());
    put(9, bpf_get_smp_processor_id());
    /* 10: csum_diff */
    uint16_t from[2] = {1, 2}, to[2] = {3, 4};
    put(10, bpf_csum_diff(from, 4, to, 4, 0));
    put(11, bpf_csum_diff(from, 2, to, 4, 0));
    /* 12-15: printk */
    put(12, bpf_printk("plain"));
    put(13, bpf_printk("pid=%u hex=%x neg=%d", (uint32_t)ctx->process_id, 255, -3));
    put(14, bpf_printk("bad %s", 1));
    /* 16-18: queue */
    uint32_t a = 10, b = 20, got = 0;
    bpf_map_push_elem(&q, &a, 0);
    bpf_map_push_elem(&q, &b, 0);
    put(15, bpf_map_peek_elem(&q, &got)); put(16, got);
    put(17, bpf_map_pop_elem(&q, &got)); put(18, got);
    bpf_map_pop_elem(&q, &got);
    put(19, bpf_map_pop_elem(&q, &got));
    /* 20, 21, 33, 34 */
    put(20, bpf_get_current_logon_id(ctx));
    put(21, bpf_is_current_admin(ctx));
    put(22, bpf_get_current_process_start_key());
    put(23, bpf_get_current_thread_create_time());
    /* 22-25: memory */
    char src[8] = "abcdefg", dst[8] = {0};
    put(24, bpf_memcpy_s(dst, 8, src, 4)); put(25, *(uint32_t*)dst);
    put(26, bpf_memcpy_s(dst, 2, src, 4)); put(27, *(uint32_t*)dst);   /* refused: unchanged */
    put(28, bpf_memcmp_s("abc", 3, "abd", 3));
    put(29, bpf_memcmp_s("abc", 3, "abc", 3));
    put(30, bpf_memcmp_s("ab", 2, "abc", 3));
    put(31, bpf_memset(dst, 8, 'z') == (long)dst); put(32, dst[7]);
    char buf[8] = "1234567";
    put(33, bpf_memmove_s(buf + 2, 6, buf, 4)); put(34, *(uint64_t*)buf);
    /* 27-29: strings */
    char s4[4], s8[8];
    put(35, bpf_strncpy_s(s4, 4, "hello", 5)); put(36, *(uint32_t*)s4);
    put(37, bpf_strncpy_s(s8, 8, "hello", 5)); put(38, *(uint64_t*)s8);
    char cat[8] = "ab";
    put(39, bpf_strncat_s(cat, 8, "cdef", 2)); put(40, *(uint64_t*)cat);
    put(41, bpf_strncat_s(cat, 8, "0123456", 7)); put(42, *(uint64_t*)cat);
    put(43, bpf_strnlen_s("abc", 8));
    put(44, bpf_strnlen_s("abcd", 4));
    /* 32: perf_event_output */
    uint32_t rec = 0xABCD;
    put(45, bpf_perf_event_output(ctx, &perf, BPF_F_CURRENT_CPU, &rec, 4));
    put(46, bpf_perf_event_output(ctx, &perf, BPF_F_CURRENT_CPU | (6ULL << 32), &rec, 4));
    put(47, bpf_perf_event_output(ctx, &perf, 0, &rec, 4));
    return 0;
}
"""


@pytest.fixture(scope="module")
def results(compile_bpf):
    path = compile_bpf(HELPERS, "helpers")
    hook = ntoslab.emulator(ncpus=4, seed=1234)
    obj = hook.load(path)
    hook.attach(obj.program("Helpers"))
    ev = ntoslab.ProcessEvent.create(77, 1, "x", "abc", time=5 * 10**9, cpu=2, logon_id=0x3e7,
                                     process_start_key=99, thread_create_time=123456)
    hook.inject(ev)
    out = {int.from_bytes(k, "little"): int.from_bytes(v, "little", signed=True)
           for k, v in obj.map("out").items()}
    return out, obj, hook


def test_map_helpers(results):
    out, obj, _ = results
    assert out[1] == 0x1122334455667788 and out[2] == 1


def test_prandom_is_seeded(results):
    out, _, _ = results
    rng = random.Random(1234)
    assert (out[3] & 0xFFFFFFFF, out[4] & 0xFFFFFFFF) == (rng.getrandbits(32), rng.getrandbits(32))


def test_clock_cpu_and_identity(results):
    out, _, hook = results
    since_boot = 5 * 10**9 - hook.boot_time
    assert out[5] == out[6] == since_boot and out[7] == out[8] == since_boot // 10**6
    assert out[9] == 2
    assert (out[20], out[21], out[22], out[23]) == (0x3e7, -1, 99, 123456)


def test_csum_diff(results):
    out, _, _ = results
    # seed 0 + to words (3 + 4) + complemented from words (0xfffe + 0xfffd)
    assert out[10] == 3 + 4 + 0xFFFE + 0xFFFD
    assert out[11] == -22                      # sizes must be multiples of 4
    assert csum_diff(None, b"\x01\x00\x02\x00", 5) == 8


def test_printk(results):
    out, obj, _ = results
    texts = list(obj.printk()["text"])
    assert texts == ["plain", "pid=77 hex=ff neg=-3"]
    assert out[12] == 5 and out[13] == len("pid=77 hex=ff neg=-3")
    assert out[14] == -1                       # %s is not an allowed specifier
    assert format_printk(b"%d %d\n\0", (1,)) is None   # argument count must match
    assert format_printk(b"100%% %llx\n\0", (2**40,)) == "100% 10000000000"


def test_queue_helpers(results):
    out, _, _ = results
    assert (out[15], out[16], out[17], out[18]) == (0, 10, 0, 10)
    assert out[19] == -7                       # empty: -EBPF_OBJECT_NOT_FOUND


def test_memory_helpers(results):
    out, _, _ = results
    assert out[24] == 0 and out[25] == int.from_bytes(b"abcd", "little")
    assert out[26] == -22 and out[27] == int.from_bytes(b"abcd", "little")
    assert (out[28], out[29], out[30]) == (-1, 0, -1)
    assert out[31] == 1 and out[32] == ord("z")
    assert out[33] == 0 and out[34] == int.from_bytes(b"1212347\0", "little")


def test_string_helpers(results):
    out, _, _ = results
    assert out[35] == -2147483643              # STATUS_BUFFER_OVERFLOW: truncated
    assert out[36] == int.from_bytes(b"hel\0", "little")
    assert out[37] == 0 and out[38] == int.from_bytes(b"hello\0\0\0", "little")
    assert out[39] == 0 and out[40] == int.from_bytes(b"abcd\0\0\0\0", "little")
    assert out[41] == -2147483643 and out[42] == int.from_bytes(b"abcd012\0", "little")
    assert out[43] == 3 and out[44] == 4


def test_perf_event_output(results):
    out, obj, _ = results
    assert out[45] == 0 and out[46] == 0
    assert out[47] == -6                       # an explicit CPU index at PASSIVE_LEVEL
    frame = obj.perf("perf").to_frame()
    assert list(frame["cpu"]) == [2, 2]
    assert frame["data"][0] == struct.pack("<I", 0xABCD)
    # BPF_F_CTXLEN 6: the first 6 bytes of the command line ("abc" in UTF-16) are appended
    assert frame["data"][1] == struct.pack("<I", 0xABCD) + "abc".encode("utf-16-le")


# eBPF for Windows libs/execution_context/ebpf_core.c `_ebpf_core_trace_printk`: fmt_size must be
# 2..511 (else -1) and is checked first; without a trace session for the printk keyword it
# returns 0 before validating anything; libs/runtime/ebpf_platform.c `ebpf_platform_printk`
# formats with RtlStringCchVPrintfA into 554 bytes (with the NUL): longer output is -1. Windows
# is LLP64: `long` is 32 bits, so %ld/%lx print the low half of the 64-bit argument.
PRINTK_RULES = r"""
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, uint32_t); __type(value, int64_t); __uint(max_entries, 16); } out SEC(".maps");
static __always_inline void put(uint32_t k, int64_t v) { bpf_map_update_elem(&out, &k, &v, BPF_ANY); }
#define X10 "xxxxxxxxxx"
#define X100 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
static const char fits[] = "%lld%lld%lld" X100 X100 X100 X100 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
static const char over[] = "%lld%lld%lld" X100 X100 X100 X100 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

SEC("process") int Rules(process_md_t* ctx)
{
    int64_t big = (1LL << 32) + 5, min = -9223372036854775807LL - 1;
    put(0, bpf_printk("ld=%ld lx=%lx lld=%lld", big, big, big));
    put(1, bpf_trace_printk5(fits, sizeof(fits), min, min, min));
    put(2, bpf_trace_printk5(over, sizeof(over), min, min, min));
    char one[1] = {0};
    put(3, bpf_trace_printk2(one, 1));
    char bare[3] = {'a', 'b', 'c'};          /* no NUL: EFW's terminator lands on 'c' */
    put(4, bpf_trace_printk2(bare, 3));
    put(5, bpf_printk("bad %s", 1));
    return 0;
}
"""


@pytest.mark.parametrize("session", [True, False])
def test_printk_follows_efw(compile_bpf, session):
    path = compile_bpf(PRINTK_RULES, "printk_rules")
    hook = ntoslab.emulator(trace_session=session)
    obj = hook.load(path)
    hook.attach(obj.program("Rules"))
    hook.inject(ntoslab.ProcessEvent.create(5, 1, "x", "x"))
    out = {int.from_bytes(k, "little"): int.from_bytes(v, "little", signed=True)
           for k, v in obj.map("out").items()}
    texts = list(obj.printk()["text"]) if len(obj.printk()) else []
    assert out[3] == -1                      # fmt_size < 2 fails before the session check
    if not session:
        assert [out[i] for i in (0, 1, 2, 4, 5)] == [0] * 5 and texts == []
        return
    # 3 × 20 characters of INT64_MIN and 493 / 494 x: 553 fits in 554 with the NUL, 554 not
    assert out[1] == 60 + 493 and out[2] == -1
    assert texts[0] == "ld=5 lx=5 lld=4294967301" and out[0] == len(texts[0])
    assert out[4] == 2 and texts[-1] == "ab"
    assert out[5] == -1
    assert len(texts) == 3                   # the refused ones record nothing
