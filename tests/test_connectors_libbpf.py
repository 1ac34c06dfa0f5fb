"""The shared libbpf binding against this machine's real libbpf.so.1 and kernel.

Needs root (or CAP_BPF + CAP_PERFMON), libbpf.so.1 and kernel BTF; each test skips with the
missing piece named when the machine lacks it.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import struct
import time
from pathlib import Path

import pytest

from ntoslab import toolchain
from ntoslab.connectors import libbpf as lb
from ntoslab.connectors.libbpf import (
    BpfObjectOpenOpts,
    BpfTestRunOpts,
    Libbpf,
    LibbpfError,
    RingBufferOpts,
    errno_name,
    translate,
)
from ntoslab.connectors.live import linux_problems

ROOT = Path(__file__).resolve().parent.parent
LINUX_INCLUDE = ROOT / "bpf" / "linux"
_problems = linux_problems()
needs_bpf = pytest.mark.skipif(bool(_problems), reason="; ".join(_problems) or "ok")

TEST_PROGRAMS = r"""
#include "linux_bpf.h"
struct { __uint(type, LINUX_MAP_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
struct { __uint(type, LINUX_MAP_HASH); __type(key, __u32); __type(value, __u64);
         __uint(max_entries, 8); } h SEC(".maps");
struct { __uint(type, LINUX_MAP_PERCPU_ARRAY); __type(key, __u32); __type(value, __u32);
         __uint(max_entries, 2); } pc SEC(".maps");

SEC("raw_tp") int sum(__u64* ctx)
{
    __u64 rec[2] = {ctx[0], ctx[1]};
    bpf_ringbuf_output(&rb, rec, sizeof(rec), 0);
    return ctx[0] + ctx[1];
}
SEC("tc") int pktlen(void* skb) { return *(__u32*)skb; }  /* __sk_buff.len is at offset 0 */
SEC("raw_tp") int deny(__u64* ctx) { return 0xC0000022; }
SEC("kprobe/do_nanosleep") int kp(void* ctx) { return 0; }  /* kprobes cannot be test-run */
SEC("raw_tp/sched_process_exec") int on_exec_raw(void* ctx)
{
    __u32 k = 0;
    __u32* v = bpf_map_lookup_elem(&pc, &k);
    if (v)
        __sync_fetch_and_add(v, 1);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""

BAD_STACK = r"""
#include "linux_bpf.h"
SEC("raw_tp") int oob(__u64* ctx) { return *(volatile int*)ctx[0]; }  /* a scalar as a pointer */
char LICENSE[] SEC("license") = "GPL";
"""

MISSING_TP = r"""
#include "linux_bpf.h"
SEC("tp_btf/ntoslab_no_such_tracepoint") int f(__u64* ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    cache = tmp_path_factory.mktemp("linuxbpf")

    def _build(source: str, name: str) -> Path:
        digest = hashlib.sha1(source.encode()).hexdigest()[:10]
        src = cache / f"{name}-{digest}.c"
        out = src.with_suffix(".o")
        if not out.exists():
            src.write_text(source)
            toolchain.compile_c(src, out, [LINUX_INCLUDE])
        return out

    return _build


@pytest.fixture(scope="module")
def lib():
    if _problems:
        pytest.skip("; ".join(_problems))
    return Libbpf.shared()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- layouts ----------------------------------------------------------------------------------

# Hand-written from libbpf's bpf.h / libbpf.h (1.1): the documented field order, natural
# alignment, 8-byte size_t and pointers (LP64 and Windows' LLP64 agree).
DOCUMENTED = {
    BpfTestRunOpts: (80, [("sz", 0), ("data_in", 8), ("data_out", 16), ("data_size_in", 24),
                          ("data_size_out", 28), ("ctx_in", 32), ("ctx_out", 40),
                          ("ctx_size_in", 48), ("ctx_size_out", 52), ("retval", 56),
                          ("repeat", 60), ("duration", 64), ("flags", 68), ("cpu", 72),
                          ("batch_size", 76)]),
    BpfObjectOpenOpts: (80, [("sz", 0), ("object_name", 8), ("relaxed_maps", 16),
                             ("pin_root_path", 24), ("kconfig", 40), ("btf_custom_path", 48),
                             ("kernel_log_buf", 56), ("kernel_log_size", 64),
                             ("kernel_log_level", 72)]),
    RingBufferOpts: (8, [("sz", 0)]),
}


@pytest.mark.parametrize("cls", list(DOCUMENTED), ids=lambda c: c.__name__)
def test_option_struct_layouts(cls):
    size, offsets = DOCUMENTED[cls]
    assert ctypes.sizeof(cls) == size
    for name, off in offsets:
        assert getattr(cls, name).offset == off, name
    # the module's own table says the same
    table = {c: (s, o) for c, s, o in lb.LAYOUTS.values()}
    assert table[cls][0] == size and table[cls][1] == dict(offsets)


@needs_bpf
def test_open_opts_reach_libbpf(lib, build, tmp_path):
    """object_name (offset 8) and btf_custom_path (offset 48) are read where we put them."""
    path = build(TEST_PROGRAMS, "progs")
    with lib.open(path, object_name="ntoslab_named") as obj:
        assert lib.lib.bpf_object__name(obj.ptr) == b"ntoslab_named"
    bogus = tmp_path / "not-btf.bin"
    bogus.write_bytes(b"\0" * 64)
    co_re = ROOT / "bpf" / "linux" / "process_capture.c"
    out = toolchain.compile_c(co_re, tmp_path / "pc.o")
    obj = lib.open(out, btf_custom_path=str(bogus))
    try:
        with pytest.raises(LibbpfError) as info:
            obj.load()   # CO-RE needs BTF: the bogus file is what libbpf tried to read
        assert "not-btf.bin" in info.value.log and "CO-RE" in info.value.log
    finally:
        obj.close()


# -- objects, programs, maps, links ------------------------------------------------------------

@needs_bpf
def test_object_programs_maps_and_links(lib, build):
    with lib.open(build(TEST_PROGRAMS, "progs")) as obj:
        progs = {p.name: p.section for p in obj.programs}
        assert progs == {"sum": "raw_tp", "pktlen": "tc", "deny": "raw_tp",
                         "kp": "kprobe/do_nanosleep", "on_exec_raw": "raw_tp/sched_process_exec"}
        maps = {m.name: (m.type, m.key_size, m.value_size, m.max_entries) for m in obj.maps}
        assert maps["h"] == (1, 4, 8, 8) and maps["rb"][0] == 27 and maps["pc"][0] == 6
        assert obj.program("sum").fd < 0          # not loaded yet
        obj.load()
        assert obj.program("sum").fd > 0
        with pytest.raises(KeyError, match="has no program 'nope'.*sum"):
            obj.program("nope")
        with pytest.raises(KeyError, match="has no map 'nope'"):
            obj.map("nope")
        link = obj.program("on_exec_raw").attach()
        assert link.fd > 0 and link in obj.links
        before = int.from_bytes(obj.map("pc").lookup(0)[0], "little") if lib.num_possible_cpus() == 1 \
            else sum(int.from_bytes(v, "little") for v in obj.map("pc").lookup(0))
        os.spawnv(os.P_WAIT, "/bin/true", ["/bin/true"])
        after = sum(int.from_bytes(v, "little") for v in obj.map("pc").lookup(0))
        assert after >= before + 1                 # the attached program ran on a real exec
        link.destroy()
        link.destroy()                             # idempotent
        assert not link.alive and link not in obj.links
    assert obj.ptr is None
    with pytest.raises(ValueError, match="closed"):
        obj.programs


@needs_bpf
def test_map_operations(lib, build):
    with lib.open(build(TEST_PROGRAMS, "progs")) as obj:
        obj.load()
        h = obj.map("h")
        assert h.lookup(1) is None
        assert list(h.keys()) == []
        for k in range(5):
            h.update(k, (k * 1000).to_bytes(8, "little"))
        assert h.lookup(3) == (3000).to_bytes(8, "little")
        assert sorted(int.from_bytes(k, "little") for k in h.keys()) == [0, 1, 2, 3, 4]
        assert dict((int.from_bytes(k, "little"), int.from_bytes(v, "little"))
                    for k, v in h.items()) == {k: k * 1000 for k in range(5)}
        with pytest.raises(LibbpfError) as info:
            h.update(3, bytes(8), lb.BPF_NOEXIST)
        assert info.value.errno == errno.EEXIST and "BPF_NOEXIST" in str(info.value)
        assert "bpf_map_update_elem(h, key=03000000" in str(info.value)
        assert h.delete(3) is True and h.delete(3) is False
        for k in range(5, 9):
            h.update(k, bytes(8))
        with pytest.raises(LibbpfError) as info:
            h.update(100, bytes(8))
        assert info.value.name == "E2BIG" and "full" in str(info.value)
        with pytest.raises(ValueError, match="value is 3 bytes"):
            h.update(1, b"abc")
        with pytest.raises(ValueError, match="key is 2 bytes"):
            h.lookup(b"ab")
        pc = obj.map("pc")
        ncpus = lib.num_possible_cpus()
        assert pc.is_percpu and pc.lookup_size == 8 * ncpus
        pc.update(1, [(i + 7).to_bytes(4, "little") for i in range(ncpus)])
        assert pc.lookup(1) == [(i + 7).to_bytes(4, "little") for i in range(ncpus)]


# -- test runs ------------------------------------------------------------------------------

@needs_bpf
def test_prog_test_run_ctx_data_and_ring_buffer(lib, build):
    with lib.open(build(TEST_PROGRAMS, "progs")) as obj:
        obj.load()
        got = []
        rb = lib.ring_buffer(obj.map("rb"), got.append)
        run = obj.program("sum").test_run(ctx_in=struct.pack("<QQ", 5, 37))
        assert run.retval == 42
        assert rb.poll(100) == 1 and got == [struct.pack("<QQ", 5, 37)]
        assert rb.consume() == 0
        packet = bytes(range(64))
        run = obj.program("pktlen").test_run(data_in=packet, data_out_size=64, repeat=5)
        assert run.retval == 64 and run.data_out == packet and run.duration_ns >= 0
        run = obj.program("deny").test_run(ctx_in=bytes(8))
        assert run.retval == 0xC0000022 and run.status == -1073741790
        rb.free()
        assert obj.ring_buffers == []


@needs_bpf
def test_ring_buffer_callback_errors_surface(lib, build):
    with lib.open(build(TEST_PROGRAMS, "progs")) as obj:
        obj.load()

        def boom(data):
            raise RuntimeError("callback failed on purpose")

        rb = lib.ring_buffer(obj.map("rb"), boom)
        obj.program("sum").test_run(ctx_in=bytes(16))
        with pytest.raises(RuntimeError, match="on purpose"):
            rb.poll(100)
        stop = lib.ring_buffer(obj.map("rb"), lambda data: -7)
        obj.program("sum").test_run(ctx_in=bytes(16))
        with pytest.raises(LibbpfError) as info:
            stop.poll(100)
        assert info.value.errno == 7
    assert obj.ring_buffers == []   # close() freed both


# -- error translation --------------------------------------------------------------------------

@needs_bpf
def test_errors_say_what_failed_and_what_to_check(lib, build, tmp_path):
    missing = tmp_path / "nope.o"
    with pytest.raises(LibbpfError) as info:
        lib.open(missing)
    e = info.value
    assert e.errno == errno.ENOENT and e.name == "ENOENT" and isinstance(e, OSError)
    assert str(missing) in str(e) and "check that the object file exists" in str(e)

    junk = tmp_path / "junk.o"
    junk.write_bytes(b"this is not an ELF file at all" * 4)
    with pytest.raises(LibbpfError) as info:
        lib.open(junk)
    assert "bpf_object__open" in str(info.value) and str(junk) in str(info.value)

    obj = lib.open(build(BAD_STACK, "bad"))
    with pytest.raises(LibbpfError) as info:
        obj.load()
    e = info.value
    assert e.name in ("EACCES", "EINVAL") and "verifier" in str(e)
    assert "invalid" in e.log.lower() and "bpf_object__load" in e.operation
    obj.close()

    obj = lib.open(build(MISSING_TP, "missing_tp"))
    with pytest.raises(LibbpfError) as info:
        obj.load()
    e = info.value
    assert e.name == "ESRCH" and "BTF" in str(e) and "ntoslab_no_such_tracepoint" in e.log
    obj.close()

    with lib.open(build(TEST_PROGRAMS, "progs")) as obj:
        obj.load()
        with pytest.raises(LibbpfError) as info:
            lib.ring_buffer(obj.map("h"), lambda d: 0)
        assert "ring_buffer__new(h)" in str(info.value) and "not a ring buffer" in str(info.value)
        with pytest.raises(LibbpfError) as info:
            obj.program("sum").attach()      # a raw_tp with no tracepoint name
        assert "bpf_program__attach(sum" in str(info.value)
        with pytest.raises(LibbpfError) as info:
            obj.program("kp").test_run()
        e = info.value
        assert e.errno == 524 and e.name == "ENOTSUPP" and "bpf_prog_test_run_opts(kp)" in str(e)
        assert "cannot be test-run" in str(e)


def test_errno_translation_tables():
    e = translate(-errno.EPERM, "bpf_object__load(x.o)", "load")
    assert e.errno == errno.EPERM and "CAP_BPF" in str(e) and "x.o" in str(e)
    e = translate(-524, "bpf_prog_test_run_opts(p)", "test_run")
    assert e.name == "ENOTSUPP" and "cannot be test-run" in str(e)
    e = translate(-4007, "bpf_object__load(x.o)", "load")
    assert e.name == "LIBBPF_ERRNO__VERIFY"
    e = translate(-errno.ENOENT, "bpf_map_lookup_elem(m)", "map", log="line1\nline2\n")
    assert "no such key" in str(e) and str(e).endswith("line1\nline2")
    # EbpfApi.dll numbers errno the MSVC way (reference §4)
    assert errno_name(129, "windows") == "ENOTSUP" and errno_name(119, "windows") == "ENOBUFS"
    assert errno_name(131, "windows") == "EOTHER" and errno_name(13, "windows") == "EACCES"
    e = translate(129, "bpf_prog_attach(p)", "attach", platform="windows")
    assert e.name == "ENOTSUP" and "bpf_program__attach" in str(e)
    e = translate(-1, "bpf_object__load(p.sys)", "load", platform="windows")
    assert "elevated" in str(e) and "Administrator" in str(e)
    e = translate(131, "x", platform="windows")
    assert "EOTHER" in str(e) and "other error" in str(e)


def test_missing_library_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("NTOSLAB_LIBBPF", str(tmp_path / "libbpf.so.1"))
    with pytest.raises(lb.LibbpfUnavailable, match="cannot load .*libbpf.so.1"):
        Libbpf()


# -- lifetime: no leaked fds or links ------------------------------------------------------------

def _fdinfo_ids(kind: str) -> set[int]:
    ids = set()
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            text = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(f"{kind}:"):
                ids.add(int(line.split()[1]))
    return ids


def _link_exists(link_id: int) -> bool:
    """BPF_LINK_GET_FD_BY_ID: is the kernel link still there?"""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<I", attr, 0, link_id)
    fd = libc.syscall(321, 30, attr, 128)   # SYS_bpf, BPF_LINK_GET_FD_BY_ID
    if fd >= 0:
        os.close(fd)
        return True
    return False


@needs_bpf
def test_thousand_load_attach_close_cycles_leak_nothing(lib, build):
    data = build(TEST_PROGRAMS, "progs").read_bytes()
    for _ in range(3):   # warm up: libbpf and the kernel cache a few things once
        o = lib.open_memory(data, "warm")
        o.load()
        o.program("on_exec_raw").attach()
        o.close()
    fds = _fds()
    link_ids = []
    start = time.perf_counter()
    for i in range(1000):
        obj = lib.open_memory(data, f"cycle{i}")
        obj.load()
        link = obj.program("on_exec_raw").attach()
        if i % 100 == 0:
            fd = link.fd
            link_ids.append(int(Path(f"/proc/self/fdinfo/{fd}").read_text()
                                .split("link_id:")[1].split()[0]))
        if i % 2:
            link.destroy()    # half destroy explicitly, half leave it to close()
        obj.close()
    elapsed = time.perf_counter() - start
    assert _fds() == fds, "file descriptors leaked"
    assert not _fdinfo_ids("link_id")
    deadline = time.monotonic() + 5
    while any(_link_exists(i) for i in link_ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_link_exists(i) for i in link_ids), "kernel links outlived their close"
    print(f"1000 open/load/attach/close cycles in {elapsed:.2f} s")
