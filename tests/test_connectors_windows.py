"""The parts of the Windows connector that need no Windows: the 296-byte test-run context and
packed UTF-16 strings (reference §1.7) byte for byte, version detection from exports, `sc query`
parsing, execution types, error translation, and inject's hook semantics over a stand-in for
EbpfApi.dll's test run."""
from __future__ import annotations

import struct
import sys

import pytest

from ntoslab.connectors import windows as w
from ntoslab.connectors.libbpf import LibbpfUnavailable, TestRun
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


# -- inject: hook semantics over bpf_prog_test_run_opts ------------------------------------------

class FakeProgram:
    """Stands in for a BpfProgram on EbpfApi.dll: records its test-run inputs."""

    def __init__(self, name: str, retval: int) -> None:
        self.name = name
        self.retval = retval & 0xFFFF_FFFF
        self.calls = []
        self.obj = type("Obj", (), {"path": "policy.sys"})()

    def test_run(self, **kw) -> TestRun:
        self.calls.append(kw)
        return TestRun(self.retval, 10, kw["data_in"], kw["ctx_in"])


def fake_hook(*programs) -> w.WindowsHook:
    hook = object.__new__(w.WindowsHook)
    hook.features = w.detect_features(BASE.__contains__)
    hook.links = [w.WindowsLink(p, None, order=i) for i, p in enumerate(programs)]
    hook.subscribers, hook._events, hook.objects, hook.history = [], 0, [], []
    return hook


def test_inject_runs_programs_in_order_and_a_deny_stops_the_rest():
    allow, deny, later = FakeProgram("Allow", 1), FakeProgram("Deny", 0xC0000022), \
        FakeProgram("Later", 0)
    hook = fake_hook(allow, deny, later)
    ev = ProcessEvent.create(pid=5, parent=4, image=IMAGE, command_line=CMD)
    v = hook.inject(ev)
    assert v.denied and v.status == -1073741790 and v.decided_by == "Deny"
    assert [r.program for r in v.runs] == ["Allow", "Deny"] and later.calls == []
    call = allow.calls[0]
    packed = nc.pack_test_run_context(ev)
    assert call["ctx_in"] == packed.ctx and call["data_in"] == packed.data
    assert call["ctx_out_size"] == 296 and call["data_out_size"] == len(packed.data)
    gone = hook.inject(ProcessEvent.delete(5, exit_code=3))
    assert not gone.denied and [r.program for r in gone.runs] == ["Allow", "Deny", "Later"]
    frame = hook.replay([ev.to_row(), {"operation": "bogus", "process_id": 1}])
    assert frame["denied"].tolist()[0] is True or frame["denied"].tolist()[0] == True  # noqa: E712
    assert "bogus" in frame["error"].tolist()[1]
