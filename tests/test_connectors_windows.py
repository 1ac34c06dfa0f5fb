"""The Windows connector on Linux: the 296-byte test-run context and packed UTF-16 strings
(reference §1.7) byte for byte, version detection from exports, `sc query` parsing, execution
types, error translation; and WindowsHook itself, its ctypes layer included, on a fake
EbpfApi.dll (tests/fakes: the DLL's C ABI, answered by the emulator as eBPF for Windows and
ntosebpfext would), with the emulator as the oracle and the DLL's failures made to happen."""
from __future__ import annotations

import struct
import sys
import time

import pytest
from conftest import ROOT

import ntoslab
from ntoslab.connectors import windows as w
from ntoslab.connectors.libbpf import LibbpfUnavailable
from ntoslab.hooks import notify_context as nc
from ntoslab.hooks.process import EventError, ProcessEvent

CMD = "notepad.exe test.txt"
IMAGE = r"C:\Windows\System32\notepad.exe"
SYSTEM_SID = bytes([1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0])   # S-1-5-18, 12 bytes


def u16(b: bytearray, off: int, v: int) -> None:
    b[off:off + 2] = v.to_bytes(2, "little")


def u32(b: bytearray, off: int, v: int) -> None:
    b[off:off + 4] = v.to_bytes(4, "little")


def u64(b: bytearray, off: int, v: int) -> None:
    b[off:off + 8] = v.to_bytes(8, "little")


def test_create_context_and_strings_byte_for_byte():
    ev = ProcessEvent.create(pid=1234, parent=1000, image=IMAGE, command_line=CMD,
                             creator=1001, creator_thread=77, creation_time=133_000_000_000_000_123,
                             token_sid="S-1-5-18", account_name="SYSTEM",
                             account_domain="NT AUTHORITY")
    packed = nc.pack_test_run_context(ev)
    # hand-computed: 64-byte header, process_md_t at 64 (reference §1.3 offsets + 64),
    # PEPROCESS 208, create_info 216, UNICODE_STRINGs 224/240/256/272, lookup flag 288
    want = bytearray(296)
    u64(want, 64 + 0, 0)            # command_start: the extension fills it in
    u64(want, 64 + 8, 0)            # command_end
    u64(want, 64 + 16, 1234)        # process_id
    u64(want, 64 + 24, 1000)        # parent_process_id
    u64(want, 64 + 32, 1001)        # creating_process_id
    u64(want, 64 + 40, 77)          # creating_thread_id
    u64(want, 64 + 48, 133_000_000_000_000_123)   # creation_time
    u64(want, 64 + 56, 0)           # exit_time
    u32(want, 64 + 64, 0)           # process_exit_code
    want[64 + 68] = 0               # operation CREATE (8-bit field)
    u32(want, 64 + 72, 12)          # token_sid_size
    want[64 + 76:64 + 76 + 12] = SYSTEM_SID
    for off, length in ((224, 40), (240, 62), (256, 12), (272, 24)):
        u16(want, off, length)      # Length (bytes of UTF-16)
        u16(want, off + 2, length)  # MaximumLength
        # 4 bytes padding, then Buffer (8 bytes) = NULL
    want[288] = 1                   # account_lookup_done: the event names its account
    assert len(packed.ctx) == 296
    assert packed.ctx == bytes(want)
    assert packed.data == (CMD.encode("utf-16-le") + IMAGE.encode("utf-16-le") +
                           "SYSTEM".encode("utf-16-le") + "NT AUTHORITY".encode("utf-16-le"))
    assert len(packed.data) == 40 + 62 + 12 + 24
    assert packed.data[:8] == b"n\0o\0t\0e\0"
    assert list(packed.strings) == ["command_line", "image_file_name", "account_name",
                                    "account_domain"]


def test_delete_context_byte_for_byte():
    ev = ProcessEvent.delete(4242, exit_code=-1, creation_time=111, exit_time=222)
    packed = nc.pack_test_run_context(ev)
    want = bytearray(296)
    u64(want, 64 + 16, 4242)
    u64(want, 64 + 48, 111)
    u64(want, 64 + 56, 222)
    u32(want, 64 + 64, 0xFFFF_FFFF)     # exit code -1 as the u32 the kernel stores
    want[64 + 68] = 1                   # operation DELETE
    assert packed.ctx == bytes(want)
    assert packed.data == b"\0\0"        # never NULL/empty: the extension rejects NULL data_in


def test_account_lookup_and_maximum_lengths():
    ev = ProcessEvent.create(pid=1, parent=2, command_line="a", token_sid="S-1-5-18")
    packed = nc.pack_test_run_context(ev)
    assert packed.ctx[288] == 0          # no names given: the extension resolves the SID
    assert struct.unpack_from("<HH", packed.ctx, 256) == (0, 0)
    packed = nc.pack_test_run_context(ev, account_lookup_done=True,
                                     maximum_lengths={"account_name": 200, "command_line": 2})
    assert packed.ctx[288] == 1
    assert struct.unpack_from("<HH", packed.ctx, 256) == (0, 200)
    assert struct.unpack_from("<HH", packed.ctx, 224) == (2, 2)
    with pytest.raises(EventError, match="MaximumLength 1 must be between Length"):
        nc.pack_test_run_context(ev, maximum_lengths={"command_line": 1})
    with pytest.raises(EventError, match="UNICODE_STRING holds at most 65535"):
        nc.pack_test_run_context(ProcessEvent.create(pid=1, command_line="x" * 40000))
    nc.pack_test_run_context(ProcessEvent.create(pid=1, command_line="x" * 32767))  # 65534 B ok
    with pytest.raises(EventError, match="token_sid"):
        nc.pack_test_run_context(ProcessEvent.create(pid=1, token_sid="S-1-5-" + "-".join(["1"] * 16)))


def test_unpack_round_trip():
    ev = ProcessEvent.create(pid=9, parent=8, image=IMAGE, command_line="cmd /c echo ü€",
                             creator=7, creator_thread=6, creation_time=5,
                             token_sid="S-1-5-21-1-2-3-1001", account_name="bob",
                             account_domain="CORP")
    packed = nc.pack_test_run_context(ev)
    back = nc.unpack_test_run_context(packed.ctx, packed.data)
    assert back["operation"] == "create" and back["process_id"] == 9
    assert (back["parent_process_id"], back["creating_process_id"],
            back["creating_thread_id"], back["creation_time"]) == (8, 7, 6, 5)
    assert back["command_line"] == "cmd /c echo ü€" and back["image_file_name"] == IMAGE
    assert back["account_name"] == "bob" and back["account_domain"] == "CORP"
    assert back["token_sid"] == "S-1-5-21-1-2-3-1001" and back["account_lookup_done"]
    with pytest.raises(ValueError, match="295 bytes"):
        nc.unpack_test_run_context(packed.ctx[:295])


def test_identifiers():
    assert w.EBPF_ATTACH_TYPE_PROCESS.bytes_le == bytes(
        [0x87, 0x06, 0xE2, 0x66, 0x05, 0x98, 0x58, 0x44,
         0xA0, 0xDB, 0x38, 0xE2, 0x20, 0xD3, 0x16, 0x85])
    assert bytes(w._guid(w.EBPF_PROGRAM_TYPE_PROCESS))[:4] == bytes([0x37, 0x7B, 0xEA, 0x22])
    assert (w.BPF_PROG_TYPE_PROCESS, w.BPF_ATTACH_TYPE_PROCESS) == (6, 11)


# -- versions, services, execution types ---------------------------------------------------------

BASE = set(w.REQUIRED_EXPORTS) | {"bpf_prog_test_run_opts", "ebpf_program_attach",
                                  "ebpf_object_set_execution_type",
                                  "ebpf_get_program_type_by_name"}


def test_version_detection_from_exports():
    new = w.detect_features((BASE | {"ring_buffer__poll", "ring_buffer__consume"}).__contains__)
    assert new.ring_buffer_poll and new.version == "1.1 or newer" and new.ring_buffer_mode == "poll"
    assert new.test_run and new.explicit_attach and new.missing == ()
    old = w.detect_features(BASE.__contains__)          # 0.21 / 1.0: no poll exported
    assert not old.ring_buffer_poll and old.version == "older than 1.1"
    assert old.ring_buffer_mode == "callback"
    assert "ring_buffer__poll" in old.missing
    no_run = w.detect_features((BASE - {"bpf_prog_test_run_opts"}).__contains__)
    assert not no_run.test_run
    with pytest.raises(LibbpfUnavailable, match="lacks ring_buffer__new.*1.1 or newer"):
        w.detect_features((BASE - {"ring_buffer__new"}).__contains__)


def test_service_state_parsing():
    out = ("\nSERVICE_NAME: ntosebpfext\n        TYPE               : 1  KERNEL_DRIVER\n"
           "        STATE              : 4  RUNNING\n"
           "                                (STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)\n"
           "        WIN32_EXIT_CODE    : 0  (0x0)\n")
    assert w.service_state(out) == "RUNNING"
    assert w.service_state(out.replace("4  RUNNING", "1  STOPPED")) == "STOPPED"
    assert w.service_state("[SC] EnumQueryServicesStatus:OpenService FAILED 1060:") is None


def test_execution_types():
    assert w.execution_type_for("process_monitor.sys") == w.EBPF_EXECUTION_NATIVE
    assert w.execution_type_for("process_monitor.o") == w.EBPF_EXECUTION_JIT
    with pytest.raises(ValueError, match="exactly lower-case '.sys'"):
        w.execution_type_for("PROCESS_MONITOR.SYS")
    with pytest.raises(ValueError, match=".sys driver or an ELF .o"):
        w.execution_type_for("x.dll")


# -- errors ---------------------------------------------------------------------------------------

def test_windows_errors_name_the_fix():
    assert w.ebpf_result_name(1) == "VERIFICATION_FAILED" and w.ebpf_result_name(25) == "NO_MORE_KEYS"
    assert w.ebpf_result_errno(1) == 13 and w.ebpf_result_errno(25) == 2
    assert w.ebpf_result_errno(99) == w.EOTHER == 131
    e = w.windows_error(22, "bpf_object__load(process_monitor.sys)", "load")
    assert "ntos_ebpf_ext_export_program_info.exe" in str(e) and "sc start ntosebpfext" in str(e)
    e = w.windows_error(w.ebpf_result_errno(1), "bpf_object__load(x.o)", "load", log="r1 bad")
    assert e.name == "EACCES" and "PREVAIL verifier" in str(e) and "r1 bad" in str(e)
    e = w.windows_error(1, "bpf_program__attach(p)", "attach")
    assert "Administrator" in str(e)
    e = w.windows_error(22, "bpf_prog_test_run_opts(p)", "test_run")
    assert "296 bytes" in str(e) and "MaximumLength" in str(e)
    e = w.windows_error(129, "bpf_prog_test_run_opts(p)", "test_run")
    assert e.name == "ENOTSUP" and "update ntosebpfext" in str(e)
    e = w.windows_error(131, "bpf_object__load(p.sys)", "load")
    assert "program-info hash" in str(e)
    problems = w.windows_problems(None)
    assert any("EbpfApi.dll not found" in p and "eBPF for Windows" in p for p in problems)


@pytest.mark.skipif(sys.platform == "win32", reason="checks the non-Windows refusal")
def test_windows_hook_refuses_other_platforms():
    with pytest.raises(LibbpfUnavailable, match="needs Windows.*LinuxHook"):
        w.WindowsHook()


# -- the hook on a fake EbpfApi.dll (tests/fakes): the ctypes layer through a real C ABI ---------

ALLOW = ('#include "bpf_helpers.h"\n#include "ebpf_ntos_hooks.h"\n'
         'SEC("process") int Allow(process_md_t* c) { return 1; }\n')
DENY = ('#include "bpf_helpers.h"\n#include "ebpf_ntos_hooks.h"\n'
        'SEC("process") int Deny(process_md_t* c) { return (int)0xC0000022; }\n')
LATER = ('#include "bpf_helpers.h"\n#include "ebpf_ntos_hooks.h"\n'
         'struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, uint32_t);\n'
         '         __type(value, uint32_t); __uint(max_entries, 8); } seen SEC(".maps");\n'
         'SEC("process") int Later(process_md_t* c) {\n'
         '  uint32_t pid = (uint32_t)c->process_id, op = c->operation;\n'
         '  bpf_map_update_elem(&seen, &pid, &op, BPF_ANY); return 0; }\n')
EXAMPLES = ROOT / "bpf" / "examples"
MONITOR = ROOT / "bpf" / "process_monitor.o"


def ctype_code(t) -> str:
    """A ctypes type as the fake's C table writes C types (see ebpfapi_fake.c)."""
    import ctypes
    if t is None:
        return "v"
    if isinstance(t, type) and issubclass(t, ctypes._CFuncPtr):
        return "f"
    if isinstance(t, type) and issubclass(t, ctypes._Pointer):
        return "p"
    return {ctypes.c_void_p: "p", ctypes.c_char_p: "s", ctypes.c_int: "i", ctypes.c_uint32: "I",
            ctypes.c_uint64: "Q", ctypes.c_size_t: "z", ctypes.c_bool: "b"}[t]


def test_the_fake_has_every_call_the_connector_declares_with_its_c_signature(ebpfapi_library):
    import ctypes

    from fakes.ebpfapi import NOT_IN_EBPFAPI

    from ntoslab.connectors.libbpf import LAYOUTS, SIGNATURES
    lib = ctypes.CDLL(str(ebpfapi_library("all")))
    lib.fake_name.restype = lib.fake_signature.restype = ctypes.c_char_p
    lib.fake_name.argtypes = lib.fake_signature.argtypes = [ctypes.c_size_t]
    c_table = {lib.fake_name(i).decode(): lib.fake_signature(i).decode()
               for i in range(lib.fake_count())}
    declared = {n: (r, a) for n, (r, a, _) in SIGNATURES.items()} | w.WINDOWS_SIGNATURES
    assert set(c_table) == set(declared)
    for name, (restype, argtypes) in declared.items():
        ours = ctype_code(restype) + ":" + "".join(ctype_code(a) for a in argtypes)
        # ctypes has one type for size_t and __u64 (c_size_t is c_uint64 on LP64 and LLP64)
        theirs = c_table[name].replace("z", "Q")
        assert ours.replace("z", "Q") == theirs, (name, ours, c_table[name])
    # the option structs as gcc lays out the upstream definitions
    lib.fake_layout.argtypes, lib.fake_layout.restype = [ctypes.c_char_p, ctypes.c_char_p], \
        ctypes.c_long
    for struct_name, (cls, size, offsets) in LAYOUTS.items():
        assert lib.fake_layout(struct_name.encode(), None) == size == ctypes.sizeof(cls)
        for name, offset in offsets.items():
            assert lib.fake_layout(struct_name.encode(), name.encode()) == offset, name
    # the default build exports what EbpfApi.dll's Source.def does
    release = ctypes.CDLL(str(ebpfapi_library("1.x")))
    assert {n for n in declared if hasattr(release, n)} == set(declared) - NOT_IN_EBPFAPI


def test_inject_runs_programs_in_order_and_a_deny_stops_the_rest(windows_on_fake, compile_bpf):
    hook, fake = windows_on_fake()
    allow, deny, later = (hook.load(compile_bpf(src, name)) for src, name in
                          ((ALLOW, "allow"), (DENY, "deny"), (LATER, "later")))
    for obj, name in ((allow, "Allow"), (deny, "Deny"), (later, "Later")):
        hook.attach(obj.program(name))
    assert [link.program.program.name for link in fake.attached] == ["Allow", "Deny", "Later"]
    assert {link.attach_type for link in fake.attached} == {"66e20687-9805-4458-a0db-38e220d31685"}
    ev = ProcessEvent.create(pid=5, parent=4, image=IMAGE, command_line=CMD)
    v = hook.inject(ev)
    assert v.denied and v.status == -1073741790 and v.decided_by == "Deny"
    assert [r.program for r in v.runs] == ["Allow", "Deny"] and [r.status for r in v.runs] == \
        [1, -1073741790]
    assert [r.program for r in fake.runs] == ["Allow", "Deny"]   # Later never ran
    packed = nc.pack_test_run_context(ev)
    call = fake.runs[0]
    assert call.ctx_in == packed.ctx and call.data_in == packed.data
    assert call.ctx_out_size == 296 and call.data_out_size == len(packed.data)
    assert len(later.map("seen")) == 0
    gone = hook.inject(ProcessEvent.delete(5, exit_code=3))
    assert not gone.denied and [r.program for r in gone.runs] == ["Allow", "Deny", "Later"]
    assert later.map("seen")[5] == (1).to_bytes(4, "little")     # PROCESS_OPERATION_DELETE
    frame = hook.replay([ev.to_row(), {"operation": "bogus", "process_id": 1}], progress=False)
    assert frame["denied"].tolist()[0] == True  # noqa: E712
    assert "bogus" in frame["error"].tolist()[1]
    hook.detach(hook.links[1])
    assert [link.program.program.name for link in fake.attached] == ["Allow", "Later"]
    assert not hook.inject(ev).denied


def test_windows_hook_gives_the_emulators_answers(windows_on_fake):
    """The emulator is the oracle: the same programs on the same events give the same verdicts
    row by row, the same map contents, ring records and printk lines."""
    from ntoslab.trace.synthetic import generate_session
    trace = generate_session(n_events=400, seed=3)
    hook, fake = windows_on_fake()
    policy, tracker = hook.load(EXAMPLES / "deny_policy.o"), hook.load(EXAMPLES / "lineage.o")
    hook.attach(tracker.program("LineageTracker"))
    hook.attach(policy.program("DenyPolicy"))
    got = hook.replay(trace, progress=False)
    rings = tracker.ringbuf("lineage_events").records()
    with ntoslab.emulator() as emu:
        e_policy, e_tracker = emu.load(EXAMPLES / "deny_policy.o"), emu.load(EXAMPLES / "lineage.o")
        recorder = e_tracker.ringbuf("lineage_events").record()
        emu.attach(e_tracker.program("LineageTracker"))
        emu.attach(e_policy.program("DenyPolicy"))
        want = emu.replay(trace, progress=False)
        cols = ["operation", "process_id", "status", "status_hex", "denied", "decided_by",
                "programs_run", "error"]
        assert got[cols].astype(object).equals(want[cols].astype(object))
        assert got["denied"].sum() > 0 and got["denied"].sum() < len(got)
        assert dict(policy.map("denials").items()) == dict(e_policy.map("denials").items())
        assert dict(tracker.map("lineage").items()) == dict(e_tracker.map("lineage").items())
        assert rings == recorder.records() and len(rings) == (trace["operation"] == "create").sum()
        assert fake.printk()["text"].tolist() == emu.printk()["text"].tolist()
    assert len(fake.runs) == got["programs_run"].sum()


@pytest.mark.parametrize("variant", ["1.x", "0.21"])
def test_capture_reads_process_monitor_through_the_dll(windows_on_fake, variant):
    """stream/capture as on Windows: process_monitor's ring records joined with its string maps
    (ring_buffer__poll on 1.1+, callbacks from the runtime's thread before)."""
    hook, fake = windows_on_fake(variant, monitor=MONITOR)
    assert hook.features.ring_buffer_mode == ("poll" if variant == "1.x" else "callback")
    mon = hook._monitor_object()
    assert fake.attached[0].program.program.name == "ProcessMonitor"
    events = [ProcessEvent.create(pid=100 + i, parent=4, image=IMAGE, command_line=f"{CMD} {i}",
                                  creation_time=133_000_000_000_000_000 + i) for i in range(3)]
    ring = mon.ringbuf("process_ringbuf")     # the consumer exists before the events
    for ev in events:
        assert not hook.inject(ev).denied
    deadline = time.monotonic() + 5
    while not ring.poll_mode and len(ring.records_) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)     # callback mode: the runtime's thread has them before capture starts
    got = hook.capture(count=3, duration=5)
    assert got["process_id"].tolist() == [100, 101, 102]
    assert got["command_line"].tolist() == [f"{CMD} {i}" for i in range(3)]
    assert got["image_path"].tolist() == [IMAGE] * 3
    assert (got["source"] == w.SOURCE).all()
    temp = mon.map("temp")              # a per-CPU array: pad8(value) * CPUs through the DLL
    assert temp.percpu and len(temp[0]) == fake.ncpus
    hook.close()
    assert fake.leaks() == [] and fake.attached == []
    again = hook._monitor_object()      # a closed hook loads process_monitor afresh
    assert again is not mon and again.bpf.ptr in fake._live


def test_maps_through_the_dll(windows_on_fake):
    from ntoslab.connectors.libbpf import LibbpfError
    hook, fake = windows_on_fake()
    policy = hook.load(EXAMPLES / "deny_policy.o")
    denials = policy.map("denials")
    denials[7] = 41
    denials.update(8, 1, 1)                  # BPF_NOEXIST
    assert denials[7] == (41).to_bytes(8, "little") and sorted(denials) == \
        [(7).to_bytes(4, "little"), (8).to_bytes(4, "little")]
    with pytest.raises(LibbpfError, match=r"bpf_map_update_elem\(denials.*EEXIST"):
        denials.update(8, 2, 1)
    del denials[7]
    assert 7 not in denials and len(denials) == 1
    with pytest.raises(KeyError):
        denials[7]


# -- errors through the DLL ----------------------------------------------------------------------

def test_load_failures_name_the_fix(windows_on_fake, tmp_path):
    from ntoslab.connectors.libbpf import LibbpfError
    hook, fake = windows_on_fake()
    with pytest.raises(LibbpfError, match=r"bpf_object__open\(.*missing.o\) failed: ENOENT.*"
                                          r"check the path"):
        hook.load(tmp_path / "missing.o")
    fake.fail("bpf_object__load", -13)            # VERIFICATION_FAILED
    with pytest.raises(LibbpfError, match="EACCES.*PREVAIL verifier.*netsh ebpf show"):
        hook.load(EXAMPLES / "deny_policy.o")
    fake.fail("ebpf_object_set_execution_type", 6)    # INVALID_ARGUMENT
    with pytest.raises(LibbpfError, match=r"ebpf_object_set_execution_type\(deny_policy.o, "
                                          r"jit\) failed: EINVAL"):
        hook.load(EXAMPLES / "deny_policy.o")
    assert hook.objects == [] and fake.leaks() == []     # each failed object was closed
    obj = hook.load(EXAMPLES / "deny_policy.o")
    assert fake.calls.count("ebpf_object_set_execution_type") == 3
    assert fake._live[obj.bpf.ptr].execution == 1   # a .o runs JITted (reference §3.5)


@pytest.mark.parametrize("options, pattern", [
    ({"extension": False}, r"bpf_object__load\(.*\) failed: EINVAL.*sc start ntosebpfext"),
    ({"jit": False}, r"failed: ENOTSUP.*pre-release-only"),
])
def test_a_missing_extension_or_jit_says_so(windows_on_fake, options, pattern):
    from ntoslab.connectors.libbpf import LibbpfError
    hook, _ = windows_on_fake(**options)
    with pytest.raises(LibbpfError, match=pattern):
        hook.load(EXAMPLES / "deny_policy.o")


def test_the_store_check_names_the_export_tool(windows_on_fake, monkeypatch):
    from ntoslab.connectors.libbpf import LibbpfError
    from ntoslab.connectors.windows import hook as windows_hook
    monkeypatch.setattr(windows_hook, "windows_problems", lambda dll: [])
    with pytest.raises(LibbpfError, match=r"ebpf_get_program_type_by_name\(process\) failed: "
                                          r"ENOENT.*ntos_ebpf_ext_export_program_info.exe"):
        windows_on_fake(check=True, store=False)
    hook, fake = windows_on_fake(check=True)
    assert "ebpf_get_program_type_by_name" in fake.calls


def test_attach_falls_back_to_the_process_guid_and_reports_failures(windows_on_fake):
    from ntoslab.connectors.libbpf import LibbpfError
    hook, fake = windows_on_fake()
    prog = hook.load(EXAMPLES / "deny_policy.o").program("DenyPolicy")
    fake.fail("bpf_program__attach", 22)          # NULL, errno EINVAL: no attach type known
    link = hook.attach(prog)                     # ebpf_program_attach with the GUID
    assert fake.calls[-2:] == ["bpf_program__attach", "ebpf_program_attach"]
    assert [x.attach_type for x in fake.attached] == ["66e20687-9805-4458-a0db-38e220d31685"]
    assert link.raw == fake.attached[0].addr
    hook.detach(link)
    assert fake.attached == [] and "bpf_link__destroy" in fake.calls
    fake.fail("bpf_program__attach", 1)           # EPERM: no fallback
    with pytest.raises(LibbpfError, match="EPERM.*Administrator"):
        hook.attach(prog)
    fake.fail("bpf_program__attach", 22)
    fake.fail("ebpf_program_attach", 23)          # EXTENSION_FAILED_TO_LOAD
    with pytest.raises(LibbpfError, match=r"ebpf_program_attach\(DenyPolicy, "
                                          r"\{66e20687-.*\}\) failed: EINVAL.*section must be "
                                          r"'process'"):
        hook.attach(prog)
    assert hook.links == [] and fake.attached == []


def test_refused_test_runs_name_the_fix(windows_on_fake):
    from ntoslab.connectors.libbpf import LibbpfError
    hook, fake = windows_on_fake()
    hook.attach(hook.load(EXAMPLES / "deny_policy.o").program("DenyPolicy"))
    ev = ProcessEvent.create(pid=5, parent=4, image=IMAGE, command_line=CMD)
    fake.fail("bpf_prog_test_run_opts", -22)
    with pytest.raises(LibbpfError, match=r"bpf_prog_test_run_opts\(DenyPolicy\) failed: "
                                          r"EINVAL.*296 bytes"):
        hook.inject(ev)
    fake.fail("bpf_prog_test_run_opts", -129)
    with pytest.raises(LibbpfError, match="ENOTSUP.*update ntosebpfext"):
        hook.inject(ev)
    ok = hook.inject(ev)          # the refused runs left no verdict and used no index
    assert not ok.denied and ok.index == 0 and len(hook.history) == 1
    assert hook.verdicts()["index"].tolist() == [0]


def test_an_event_too_large_for_the_test_run_ioctl_is_a_row_error(windows_on_fake):
    """EbpfApi.dll's test-run request holds 65535 bytes (uint16 length): an event whose strings
    pass that is refused with EINVAL by the DLL. The hook says so per row instead of stopping
    the replay on a misleading error."""
    hook, fake = windows_on_fake()
    hook.attach(hook.load(EXAMPLES / "deny_policy.o").program("DenyPolicy"))
    big = ProcessEvent.create(pid=6, parent=4, image=IMAGE, command_line="a" * 32700)
    fits = ProcessEvent.create(pid=7, parent=4, command_line="b" * 32000)  # 64296 bytes in all
    frame = hook.replay([big.to_row(), fits.to_row(), {"operation": "create", "process_id": 8,
                                                         "command_line": "x -enc AAAA"}],
                        progress=False)
    assert "65493 bytes" in frame["error"][0] and "command_line 65400" in frame["error"][0]
    assert frame["error"][1:].isna().all() and frame["denied"].tolist()[1:] == [False, True]
    assert [r.program for r in fake.runs] == ["DenyPolicy", "DenyPolicy"]


def test_a_dll_without_test_runs_or_required_calls(windows_on_fake):
    from fakes.ebpfapi import NOT_IN_EBPFAPI, c_names

    from ntoslab.connectors.libbpf import LibbpfUnavailable
    release = frozenset(c_names()) - NOT_IN_EBPFAPI
    hook, _ = windows_on_fake(exports=release - {"bpf_prog_test_run_opts"})
    assert not hook.features.test_run
    with pytest.raises(LibbpfUnavailable, match="no bpf_prog_test_run_opts"):
        hook.inject(ProcessEvent.create(pid=5, parent=4))
    with pytest.raises(LibbpfUnavailable, match="does not export bpf_map_lookup_elem"):
        windows_on_fake(exports=release - {"bpf_map_lookup_elem"})


def test_the_fake_reports_what_the_real_dll_would_crash_on(windows_on_fake):
    """The harness can fail: a freed or foreign handle reaching the DLL is recorded as misuse
    (and would fail the test at teardown)."""
    import ctypes
    hook, fake = windows_on_fake()
    prog = hook.load(EXAMPLES / "deny_policy.o").program("DenyPolicy")
    link = hook.attach(prog)
    freed = link.link.ptr
    hook.detach(link)
    assert hook.libbpf.lib.bpf_link__destroy(freed) < 0
    assert hook.libbpf.lib.bpf_map__fd(prog.ptr) < 0      # a program is not a map
    assert not hook.libbpf.lib.bpf_object__next_program(ctypes.c_void_p(prog.ptr), None)
    assert len(fake.errors) == 3
    assert "used after it was freed (FakeLink DenyPolicy)" in fake.errors[0]
    assert "is not a live FakeMap (it is FakeProgram)" in fake.errors[1]
    fake.errors.clear()


ODD_MONITOR = r'''#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 64 * 1024); } process_ringbuf SEC(".maps");
#define STRINGS(name) struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, uint32_t); \
    __type(value, char[64]); __uint(max_entries, 16); } name SEC(".maps");
STRINGS(process_map) STRINGS(command_map) STRINGS(account_name_map) STRINGS(account_domain_map)
SEC("process") int ProcessMonitor(process_md_t* ctx)
{
    uint8_t odd[40] = {0};
    uint64_t info[14] = {0};           /* a 112-byte process_info_t: process_id first */
    info[0] = ctx->process_id;
    bpf_ringbuf_output(&process_ringbuf, odd, sizeof(odd), 0);
    bpf_ringbuf_output(&process_ringbuf, info, sizeof(info), 0);
    return 0;
}
'''


def test_stream_counts_and_warns_about_records_it_cannot_read(windows_on_fake, compile_bpf):
    """A monitor whose ring also carries 40-byte records: each is counted by size and the first
    warned about; the 112-byte records still become events."""
    monitor = compile_bpf(ODD_MONITOR, "odd_monitor")
    hook, fake = windows_on_fake(monitor=monitor)
    mon = hook._monitor_object()
    ring = mon.ringbuf("process_ringbuf")
    for pid in (500, 501, 502):
        hook.inject(ProcessEvent.create(pid=pid, parent=4, image=IMAGE, command_line=CMD))
    with pytest.warns(UserWarning, match=r"a 40-byte record; its records are 112-byte") as caught:
        got = hook.capture(count=3, duration=5)
    assert got["process_id"].tolist() == [500, 501, 502]
    assert hook.skipped_records == {40: 3}
    assert len([w for w in caught if "40-byte" in str(w.message)]) == 1
    assert len(ring.records_) == 6
