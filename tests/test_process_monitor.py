"""process_monitor in the emulator: ring records and string maps decode as the Windows reader
expects (SID, account, a 5001-character command line intact) — for our own bpf/process_monitor.c
always, and for Microsoft's when NTOSEBPFEXT_DIR points at a microsoft/ntosebpfext checkout."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from conftest import ROOT

import ntoslab
from ntoslab.trace.process_monitor import ProcessMonitorReader

LONG_ARG = "a" * 5000 + "b"          # the Windows test: a 5001-character argument
LONG_CMD = f'"cmd.exe" /c echo {LONG_ARG}'


def scenario():
    E = ntoslab.ProcessEvent
    return [
        E.create(1234, 1000, r"C:\Windows\System32\notepad.exe", "notepad.exe test.txt",
             creator=1000, creator_thread=77, creation_time=133_500_000_000_000_000,
             token_sid="S-1-5-18"),
        E.create(1300, 1000, r"\??\C:\Windows\System32\cmd.exe", LONG_CMD,
             creation_time=133_500_000_010_000_000, token_sid="S-1-5-21-1-2-3-1001",
             account_name="alice", account_domain="CONTOSO"),
        E.create(1301, 1300, r"\??\C:\x.exe", "x.exe"),       # no SID: the default, LocalSystem
        E.delete(1300, exit_code=456, creation_time=133_500_000_010_000_000,
                 exit_time=133_500_000_040_000_000),
    ]


def check_monitor(obj_path: Path):
    with ntoslab.emulator() as hook:
        mon = hook.load(obj_path)
        hook.attach(mon.program("ProcessMonitor"))
        reader = ProcessMonitorReader(mon)
        hook.subscribe(reader)
        for ev in scenario():
            v = hook.inject(ev)
            assert not v.denied and not v.faults, v.faults
        frame = reader.to_frame()
    assert reader.skipped == 0 and len(frame) == 4
    n, c, x, d = (frame.iloc[i] for i in range(4))
    assert (n.process_id, n.parent_process_id, n.creating_process_id, n.creating_thread_id) == \
        (1234, 1000, 1000, 77)
    assert n.image_path == r"C:\Windows\System32\notepad.exe"
    assert n.command_line == "notepad.exe test.txt"
    assert (n.token_sid, n.account_name, n.account_domain) == ("S-1-5-18", "SYSTEM", "NT AUTHORITY")
    assert c.command_line == LONG_CMD and len(c.command_line) == len(LONG_CMD)
    assert (c.token_sid, c.account_name, c.account_domain) == \
        ("S-1-5-21-1-2-3-1001", "alice", "CONTOSO")
    # every Windows create carries its token's SID (ntos_ebpfext_unit.cpp "process_invoke":
    # token_sid_size > 0); the emulator's default for an event without one is S-1-5-18
    assert (x.token_sid, x.account_name, x.account_domain) == ("S-1-5-18", "SYSTEM", "NT AUTHORITY")
    assert (d.operation, d.exit_code, d.exit_time) == ("delete", 456, 133_500_000_040_000_000)
    # the delete is read with the strings its create left in the maps, as on Windows
    assert d.command_line == LONG_CMD
    assert d.process_key == c.process_key and x.parent_key == c.process_key
    return frame


def test_our_process_monitor(compile_bpf):
    src = (ROOT / "bpf" / "process_monitor.c").read_text()
    check_monitor(compile_bpf(src, "process_monitor"))


def test_ring_records_are_112_bytes_in_the_windows_layout(compile_bpf):
    path = compile_bpf((ROOT / "bpf" / "process_monitor.c").read_text(), "process_monitor")
    with ntoslab.emulator() as hook:
        mon = hook.load(path)
        hook.attach(mon.program("ProcessMonitor"))
        hook.inject(scenario()[0])
        records = mon.ringbuf("process_ringbuf").records()
        # the BTF of the object knows the record type: decode it by name
        row = mon.ringbuf("process_ringbuf").to_frame("process_info_t").iloc[0]
    assert len(records) == 1 and len(records[0]) == 112
    pid, ppid, cpid, ctid, ctime, etime, code, op, sid_size = struct.unpack_from("<IIIIQQIB3xI", records[0])
    assert (pid, ppid, cpid, ctid, op, sid_size) == (1234, 1000, 1000, 77, 0, 12)
    assert row["process_id"] == 1234 and row["token_sid_size"] == 12


NTOS = os.environ.get("NTOSEBPFEXT_DIR")


@pytest.mark.skipif(not NTOS, reason="NTOSEBPFEXT_DIR is not set: Microsoft's process_monitor.c "
                                     "(microsoft/ntosebpfext) may not be committed here")
def test_microsofts_process_monitor_runs_unchanged(tmp_path):
    from ntoslab.toolchain import compile_c
    src = Path(NTOS) / "tools" / "process_monitor_bpf" / "process_monitor.c"
    out = compile_c(src, tmp_path / "process_monitor.o")
    check_monitor(out)


def test_our_maps_equal_the_windows_examples(compile_bpf):
    """Reference §2.1's table: name -> (type id, key size, value size, max_entries)."""
    expected = {"temp": (5, 8, 65520, 1), "scratch_space": (8, 8, 65520, 1024),
                "process_map": (8, 4, 1024, 1024), "command_map": (8, 4, 65520, 1024),
                "account_name_map": (8, 4, 64, 1024), "account_domain_map": (8, 4, 512, 1024),
                "process_ringbuf": (13, 0, 0, 65536)}
    obj = ntoslab.load(compile_bpf((ROOT / "bpf" / "process_monitor.c").read_text(),
                                   "process_monitor"))
    got = {n: (m.type, m.key_size, m.value_size, m.max_entries) for n, m in obj.maps.items()}
    assert got == expected
