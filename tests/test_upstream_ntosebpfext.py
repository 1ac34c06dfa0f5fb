"""Microsoft's own process-hook scenarios, run in the emulator on upstream's inputs.

One test per upstream case of microsoft/ntosebpfext's three suites (the upstream case's name is
in the test's name):
- tests/ntosebpfext/ntosebpfext_unit/ntos_ebpfext_unit.cpp: "process_invoke",
  "process exit codes", "process create and exit times" (the hook's notify routine on usersim
  inputs; the extension's dispatch hook is a program here that keeps the context in a map and
  returns STATUS_ACCESS_DENIED, as upstream's client does);
- tests/ntosebpfext/ntosebpfext_driver_test/ntos_ebpfext_driver_test.cpp:
  "process_bpf_prog_run_test", "process_resolve_account" (bpf_prog_test_run_opts on
  process_monitor with upstream's process_notify_context_t bytes, built here field by field);
- tests/process_monitor.Tests/ProcessMonitorTests.cs: ProcessExitCodesWork,
  ProcessCreateAndExitTimesWork, VeryLongCommandLinesArriveIntact (the events the started
  process produces, through process_monitor and the reader the C# library mirrors).
What needs Windows itself is listed in the README ("Microsoft's test scenarios").
"""
from __future__ import annotations

import ntpath
import os
import struct
from pathlib import Path

import pytest
from conftest import ROOT

import ntoslab
from ntoslab.hooks.notify_context import TestRunRefused
from ntoslab.hooks.process import STATUS_ACCESS_DENIED, sid_to_bytes
from ntoslab.trace.process_monitor import ProcessMonitorReader, decode_utf16

OURS = ROOT / "bpf" / "process_monitor.o"
NTOS = os.environ.get("NTOSEBPFEXT_DIR")
MONITORS = ["ours"] + (["microsoft"] if NTOS else [])


@pytest.fixture(scope="module", params=MONITORS)
def monitor(request, tmp_path_factory) -> Path:
    """bpf/process_monitor.o, and Microsoft's process_monitor.c unchanged when NTOSEBPFEXT_DIR
    points at a microsoft/ntosebpfext checkout (it may not be committed here)."""
    if request.param == "ours":
        return OURS
    from ntoslab.toolchain import compile_c
    src = Path(NTOS) / "tools" / "process_monitor_bpf" / "process_monitor.c"
    return compile_c(src, tmp_path_factory.mktemp("ms") / "process_monitor.o")

CAPTURE = r"""
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, uint32_t); __type(value, process_md_t); __uint(max_entries, 2); } seen SEC(".maps");
struct cmd { uint8_t text[512]; int64_t length; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, uint32_t); __type(value, struct cmd); __uint(max_entries, 1); } command SEC(".maps");

/* the upstream unit test's client: keep the context, answer STATUS_ACCESS_DENIED */
SEC("process") int Capture(process_md_t* ctx)
{
    uint32_t k = ctx->operation == PROCESS_OPERATION_CREATE ? 0 : 1, z = 0;
    process_md_t* v = bpf_map_lookup_elem(&seen, &k);
    if (v)
        __builtin_memcpy(v, ctx, sizeof(*v));
    struct cmd* c = bpf_map_lookup_elem(&command, &z);
    if (c && k == 0) {
        c->length = ctx->command_end - ctx->command_start;
        bpf_memcpy_s(c->text, sizeof(c->text), ctx->command_start, c->length);
    }
    return 0xC0000022;   /* STATUS_ACCESS_DENIED */
}
"""
MD = struct.Struct("<QQQQQQQQIB3xI68s")


def _seen(obj, which: int) -> dict:
    (_, _, pid, ppid, cpid, ctid, ctime, etime, code, op, sid_size, sid) = \
        MD.unpack(obj.map("seen")[which])
    return dict(process_id=pid, parent_process_id=ppid, creating_process_id=cpid,
                creating_thread_id=ctid, creation_time=ctime, exit_time=etime, exit_code=code,
                operation=op, token_sid_size=sid_size)


def _unit(compile_bpf):
    hook = ntoslab.emulator()
    obj = hook.load(compile_bpf(CAPTURE, "upstream_capture"))
    hook.attach(obj.program("Capture"))
    return hook, obj


def _notepad(**kw):
    # create_info: ImageFileName notepad.exe, CommandLine "notepad.exe foo.txt", ParentProcessId
    # 4, CreatingThreadId {5, 6}; the notify routine's process id is 1
    return ntoslab.ProcessEvent.create(1, 4, "notepad.exe", "notepad.exe foo.txt", creator=5,
                                       creator_thread=6, **kw)


def test_unit_process_invoke(compile_bpf):
    hook, obj = _unit(compile_bpf)
    v = hook.inject(_notepad())
    c = obj.map("command")[0]
    length = int.from_bytes(c[512:520], "little")
    assert c[:length].decode("utf-16-le") == "notepad.exe foo.txt"
    s = _seen(obj, 0)
    assert (s["process_id"], s["parent_process_id"], s["creating_process_id"],
            s["creating_thread_id"]) == (1, 4, 5, 6)
    assert s["exit_code"] == 0 and s["operation"] == 0
    assert v.denied and v.status == STATUS_ACCESS_DENIED      # create_info->CreationStatus
    assert 0 < s["token_sid_size"] <= 68                       # a create always has a SID
    # termination: usersim reports exit status -1 when no callback sets one
    hook.inject(ntoslab.ProcessEvent.delete(1, exit_code=-1))
    d = _seen(obj, 1)
    assert d["process_id"] == 1 and d["exit_code"] == 0xFFFF_FFFF and d["operation"] == 1
    assert d["token_sid_size"] == 0                            # no SID on delete


def test_unit_process_exit_codes(compile_bpf):
    hook, obj = _unit(compile_bpf)
    hook.inject(_notepad())
    assert _seen(obj, 0)["exit_code"] == 0
    hook.inject(ntoslab.ProcessEvent.delete(1, exit_code=118))   # the exit-status callback
    d = _seen(obj, 1)
    assert (d["process_id"], d["exit_code"], d["operation"]) == (1, 118, 1)


def test_unit_process_create_and_exit_times(compile_bpf):
    hook, obj = _unit(compile_bpf)
    hook.inject(_notepad(creation_time=123456789))
    s = _seen(obj, 0)
    assert (s["creation_time"], s["exit_time"]) == (123456789, 0)
    hook.inject(ntoslab.ProcessEvent.delete(1, creation_time=123456789, exit_time=987654321))
    d = _seen(obj, 1)
    assert (d["creation_time"], d["exit_time"], d["operation"]) == (123456789, 987654321, 1)


# -- the driver test: bpf_prog_test_run_opts on process_monitor --------------------------------
SYSTEM_SID = bytes([1, 1, 0, 0, 0, 0, 0, 5, 0x12, 0, 0, 0])      # S-1-5-18, as upstream writes it
TEST_PROCESS_ID = 1234


def notify_context(pid: int, *, op: int = 0, ppid: int = 0, cpid: int = 0, ctid: int = 0,
                   ctime: int = 0, sid: bytes = b"", lengths=(0, 0, 0, 0), maxima=None) -> bytes:
    """test_process_notify_context_t as upstream declares it: EBPF_CONTEXT_HEADER (8 × u64),
    process_md_t, PEPROCESS, create_info, four UNICODE_STRINGs (Length, MaximumLength, Buffer),
    account_lookup_done (zero-initialised: FALSE); 296 bytes with padding."""
    md = MD.pack(0, 0, pid, ppid, cpid, ctid, ctime, 0, 0, op, len(sid), sid)
    strings = b"".join(struct.pack("<HH4xQ", n, m, 0)
                       for n, m in zip(lengths, maxima or lengths))
    ctx = bytes(64) + md + bytes(16) + strings + b"\0"
    return ctx.ljust(296, b"\0")


def _monitor(path: Path):
    hook = ntoslab.emulator()
    obj = hook.load(path)
    ring = obj.ringbuf("process_ringbuf").record()
    return hook, obj, ring


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def _map_text(obj, name: str, pid: int) -> str | None:
    value = obj.map(name).lookup(pid.to_bytes(4, "little"))
    return decode_utf16(value)


def test_driver_process_bpf_prog_run_test(monitor):
    hook, obj, ring = _monitor(monitor)
    command, image = _utf16("notepad.exe test.txt"), _utf16(r"C:\Windows\System32\notepad.exe")
    name, domain = _utf16("SYSTEM"), _utf16("NT AUTHORITY")
    lengths = (len(command), len(image), len(name), len(domain))
    ctx_in = notify_context(TEST_PROCESS_ID, ppid=4567, cpid=8910, ctid=1112, ctime=123456789,
                            sid=SYSTEM_SID, lengths=lengths)
    data_in = command + image + name + domain
    run = obj.test_run("ProcessMonitor", ctx_in=ctx_in, data_in=data_in, ctx_out_size=296,
                       data_out_size=len(data_in))
    assert len(run.ctx_out) == 296 and len(run.data_out) == len(data_in)
    md_in, md_out = MD.unpack_from(ctx_in, 64), MD.unpack_from(run.ctx_out, 64)
    assert md_out[2:4] == md_in[2:4] and md_out[9] == md_in[9]      # pid, ppid, operation
    assert md_out[10] == md_in[10] and md_out[11][:md_in[10]] == SYSTEM_SID
    records = [r for r in ring.records() if int.from_bytes(r[:4], "little") == TEST_PROCESS_ID]
    assert len(records) == 1 and len(records[0]) == 112            # exactly one, process_info_t
    assert _map_text(obj, "process_map", TEST_PROCESS_ID) == r"C:\Windows\System32\notepad.exe"
    assert _map_text(obj, "command_map", TEST_PROCESS_ID) == "notepad.exe test.txt"
    assert _map_text(obj, "account_name_map", TEST_PROCESS_ID) == "SYSTEM"
    assert _map_text(obj, "account_domain_map", TEST_PROCESS_ID) == "NT AUTHORITY"
    # negative cases: each is refused as bpf_prog_test_run_opts != 0
    for bad_ctx, bad_data in ((ctx_in[:-1], data_in), (None, data_in), (ctx_in, None),
                              (ctx_in, data_in[:-1])):
        with pytest.raises(TestRunRefused):
            obj.test_run("ProcessMonitor", ctx_in=bad_ctx, data_in=bad_data)


def test_driver_process_resolve_account(monitor):
    hook, obj, ring = _monitor(monitor)
    command, image = _utf16("notepad.exe test.txt"), _utf16(r"C:\Windows\System32\notepad.exe")
    # scenario 1: a valid SID and 2-byte account buffers: the lookup retries with room to spare
    dummy = _utf16("X")
    ctx_in = notify_context(TEST_PROCESS_ID, sid=SYSTEM_SID,
                            lengths=(len(command), len(image), 2, 2))
    run = obj.test_run("ProcessMonitor", ctx_in=ctx_in, data_in=command + image + dummy + dummy,
                       data_out_size=1024)
    assert len(ring.records()) == 1
    assert _map_text(obj, "account_name_map", TEST_PROCESS_ID)      # non-empty (upstream)
    assert _map_text(obj, "account_domain_map", TEST_PROCESS_ID)
    # and what the lookup gives for S-1-5-18, not the "X" passed in
    assert _map_text(obj, "account_name_map", TEST_PROCESS_ID) == "SYSTEM"
    assert _map_text(obj, "account_domain_map", TEST_PROCESS_ID) == "NT AUTHORITY"
    name_len = struct.unpack_from("<H", run.ctx_out, 256)[0]
    assert name_len == len("SYSTEM") * 2 and run.ctx_out[288] == 1   # resolved, cached
    key = TEST_PROCESS_ID.to_bytes(4, "little")
    obj.map("account_name_map").delete(key)
    obj.map("account_domain_map").delete(key)
    # scenario 2: no SID: the helpers return -ENOENT and process_monitor skips the account maps
    ctx_in = notify_context(TEST_PROCESS_ID, lengths=(len(command), len(image), 0, 0))
    run = obj.test_run("ProcessMonitor", ctx_in=ctx_in, data_in=command + image)
    assert len(ring.records()) == 2
    assert MD.unpack_from(run.ctx_out, 64)[10] == 0                # token_sid_size
    assert obj.map("account_name_map").lookup(key) is None
    assert obj.map("account_domain_map").lookup(key) is None


# -- process_monitor.Tests: the events a started process produces ------------------------------
USER_SID = "S-1-5-21-3623811015-3361044348-30300820-1013"   # WindowsIdentity.GetCurrent().User
OUR_PID, OUR_TID = 5000, 5004                                   # the test process, its thread


def _run_process(monitor: Path, image: str, arguments: str, exit_code: int, seconds: float):
    """What the C# RunProcessAndWaitForEventsAsync sees for Process.Start(exe, args): the
    created and destroyed rows the reader builds from process_monitor's ring and maps."""
    hook = ntoslab.emulator(accounts={USER_SID: "DESKTOP-1\\tester"})   # the machine's LSA
    obj = hook.load(monitor)
    hook.attach(obj.program("ProcessMonitor"))
    reader = ProcessMonitorReader(obj)
    hook.subscribe(reader)
    exe = ntpath.basename(image)
    created = 133_500_000_000_000_000
    exited = created + int(seconds * 10_000_000)
    hook.inject(ntoslab.ProcessEvent.create(7000, OUR_PID, image, f'"{exe}" {arguments}',
                                            creator=OUR_PID, creator_thread=OUR_TID,
                                            creation_time=created, token_sid=USER_SID))
    hook.inject(ntoslab.ProcessEvent.delete(7000, exit_code=exit_code, creation_time=created,
                                            exit_time=exited))
    frame = reader.to_frame()
    # the C# filter: ImageFileName ends with exe and CommandLine contains "\"exe\" args"
    mine = frame[frame.image_path.str.endswith(exe) & frame.command_line.str.contains(
        f'"{exe}" {arguments}', regex=False)]
    return mine[mine.operation == "create"].iloc[0], mine[mine.operation == "delete"].iloc[0]


def _common(created, destroyed):
    assert created.parent_process_id == OUR_PID and created.creating_process_id == OUR_PID
    assert created.creating_thread_id == OUR_TID
    assert created.token_sid == USER_SID
    assert created.account_name and created.account_domain
    assert destroyed.image_path == created.image_path
    assert destroyed.command_line == created.command_line


def test_process_monitor_tests_ProcessExitCodesWork(monitor):
    created, destroyed = _run_process(monitor, r"\??\C:\Windows\System32\cmd.exe", "/c exit 456", 456,
                                      0.05)
    _common(created, destroyed)
    assert destroyed.exit_code == 456 and destroyed.exit_time > created.creation_time


def test_process_monitor_tests_ProcessCreateAndExitTimesWork(monitor):
    created, destroyed = _run_process(
        monitor, r"\??\C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "-noprofile -ex bypass -c sleep -milliseconds 3000", 0, 3.2)
    _common(created, destroyed)
    assert destroyed.exit_code == 0
    elapsed = (destroyed.exit_time - created.creation_time) / 10_000_000
    assert 3 < elapsed < 4


def test_process_monitor_tests_VeryLongCommandLinesArriveIntact(monitor):
    long_args = "a" * 5000 + "b"
    created, destroyed = _run_process(monitor, r"\??\C:\Windows\System32\cmd.exe",
                                      f"/c echo {long_args}", 0, 0.05)
    _common(created, destroyed)
    assert created.command_line == f'"cmd.exe" /c echo {long_args}'
    assert destroyed.exit_code == 0


def test_sid_helper_matches_upstream_bytes():
    """The S-1-5-18 bytes upstream writes by hand are what sid_to_bytes makes."""
    assert sid_to_bytes("S-1-5-18") == SYSTEM_SID
