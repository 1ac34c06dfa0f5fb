"""The emulated hook tells the user what would otherwise go unnoticed: dropped ring-buffer
records, programs that fault, traces that lack columns (issue 13's first-hour findings)."""
from __future__ import annotations

import warnings

import pandas as pd
import pytest
from conftest import ROOT

import ntoslab
from ntoslab.connectors.emulator import ProgramFaulted, RecordsDropped
from ntoslab.hooks.process import ProcessEvent

MONITOR = ROOT / "bpf" / "process_monitor.o"
DENY = ROOT / "bpf" / "examples" / "deny_policy.o"
SESSION = ROOT / "data" / "synthetic-session.parquet"

FAULTY = ('#include "bpf_helpers.h"\n#include "ebpf_ntos_hooks.h"\n'
          'SEC("process") int Faulty(process_md_t* c) {\n'
          '  if (c->operation == PROCESS_OPERATION_CREATE && c->process_id % 2)\n'
          '    return c->command_start[5000];\n'
          '  return 0; }\n')


@pytest.fixture(scope="module")
def session() -> pd.DataFrame:
    return pd.read_parquet(SESSION)


@pytest.mark.parametrize("engine", ["jit", "interpreter"])
def test_a_ring_nobody_reads_warns_with_its_counts_and_the_fix(session, engine):
    frame = session.head(3000 if engine == "jit" else 600)
    with ntoslab.emulator(engine) as hook:
        monitor = hook.load(MONITOR)
        hook.attach(monitor.program("ProcessMonitor"))
        with pytest.warns(RecordsDropped) as caught:
            hook.replay(frame, progress=False)
        ring = monitor.ringbuf("process_ringbuf")
        kept = len(ring.records())
        # 112-byte records + 8-byte headers in the object's ring: a known number fit
        assert ring.dropped == len(frame) - kept > 0
        text = str(caught[0].message)
        assert f"{ring.dropped:,} record(s) dropped" in text and ".record()" in text
        assert "process_ringbuf" in text and "process_monitor.o" in text
        # the same drops are not reported twice; new ones are
        with warnings.catch_warnings():
            warnings.simplefilter("error", RecordsDropped)
            hook.verdicts()
        with pytest.warns(RecordsDropped, match="1 record"):
            hook.inject(ProcessEvent.create(77777, 4, r"C:\x.exe", "x"))


def test_the_readme_example_keeps_every_record(session):
    """README: `ring = monitor.ringbuf(...).record()` before `hook.replay(...)`."""
    with ntoslab.emulator() as hook:
        monitor = hook.load(MONITOR)
        policy = hook.load(DENY)
        hook.attach(monitor.program("ProcessMonitor"))
        hook.attach(policy.program("DenyPolicy"))
        ring = monitor.ringbuf("process_ringbuf").record()
        with warnings.catch_warnings():
            warnings.simplefilter("error", RecordsDropped)
            verdicts = hook.replay(session, progress=False)
        records = ring.to_frame("process_info_t")
    assert len(records) == len(verdicts) == len(session) == 3000
    assert records["process_id"].tolist() == session["process_id"].tolist()


@pytest.mark.parametrize("engine", ["jit", "interpreter"])
def test_a_faulting_program_warns_once_and_rows_say_faulted(compile_bpf, engine):
    obj = compile_bpf(FAULTY, "faulty_odd")
    events = pd.DataFrame({"operation": ["create"] * 6, "process_id": [8, 9, 10, 11, 12, 13],
                           "parent_process_id": [4] * 6, "image_path": [r"C:\a.exe"] * 6,
                           "command_line": ["a b"] * 6, "time": pd.NaT})
    with ntoslab.emulator(engine) as hook:
        hook.attach(hook.load(obj).program("Faulty"))
        with pytest.warns(ProgramFaulted) as caught:
            out = hook.replay(events, progress=False)
        assert len([w for w in caught if w.category is ProgramFaulted]) == 1
        message = str(caught[0].message)
        assert message.startswith("Faulty: pc ") and "command line" in message
        assert "faulty_odd" in message and "allowed" in message
        assert out["faulted"].tolist() == [False, True, False, True, False, True]
        assert not out["denied"].any()
        # once per program: a later fault is only in its row
        with warnings.catch_warnings():
            warnings.simplefilter("error", ProgramFaulted)
            v = hook.inject(ProcessEvent.create(15, 4, r"C:\a.exe", "a"))
        assert v.as_row()["faulted"] is True


@pytest.mark.parametrize("engine", ["jit", "interpreter"])
def test_allowed_events_are_decided_by_nobody_not_nan(session, engine):
    """decided_by, status_hex, faults: one text dtype whose missing value is <NA>, on the batch
    path (jit) and the event-by-event path (interpreter), in the replay and in verdicts(), with
    denials or without."""
    from ntoslab.connectors.frames import text_dtype
    frame = session.head(400)
    with ntoslab.emulator(engine) as hook:
        hook.attach(hook.load(DENY).program("DenyPolicy"))
        out = hook.replay(frame, progress=False)
        history = hook.verdicts()
        quiet = hook.replay(frame[frame["operation"] == "delete"].head(5), progress=False)
    assert out["denied"].any() and not out["denied"].all()
    for table in (out, history, quiet):
        for column in ("operation", "status_hex", "decided_by", "faults"):
            assert table[column].dtype == text_dtype(), (column, table[column].dtype)
    allowed = out[~out["denied"].astype(bool)]
    assert allowed["decided_by"].isna().all()
    assert all(v is pd.NA for v in allowed["decided_by"].head(3))
    assert set(out.loc[out["denied"].astype(bool), "decided_by"]) == {"DenyPolicy"}
    shown = allowed[["status_hex", "decided_by"]].head(3).to_string()
    assert "<NA>" in shown and "NaN" not in shown
    assert quiet["decided_by"].isna().all() and quiet["faults"].isna().all()


def test_a_missing_required_column_is_one_error(session):
    with ntoslab.emulator() as hook:
        hook.attach(hook.load(DENY).program("DenyPolicy"))
        with pytest.raises(ValueError, match="no process_id column") as info:
            hook.replay(session.drop(columns=["process_id"]), progress=False)
        assert "it has: " in str(info.value) and "operation" in str(info.value)
        with pytest.raises(ValueError, match="no operation, process_id columns"):
            hook.replay(session[["time"]], progress=False)
        assert len(hook.history) == 0


def test_a_missing_expected_column_is_one_warning(session):
    with ntoslab.emulator() as hook:
        hook.attach(hook.load(DENY).program("DenyPolicy"))
        with pytest.warns(UserWarning, match="no command_line column") as caught:
            out = hook.replay(session.drop(columns=["command_line"]), progress=False)
        assert len([w for w in caught if "no command_line" in str(w.message)]) == 1
        assert len(out) == len(session)


def test_maps_and_rings_show_strings_and_sids(session):
    with ntoslab.emulator() as hook:
        monitor = hook.load(MONITOR)
        hook.attach(monitor.program("ProcessMonitor"))
        ring = monitor.ringbuf("process_ringbuf").record()
        first = session.head(50)
        hook.replay(first, progress=False)
        commands = monitor.map("command_map").to_frame()
        raw = monitor.map("command_map").to_frame(raw=True)
        records = ring.to_frame("process_info_t")
        html_face = monitor.ringbuf("process_ringbuf")._repr_html_()
        recorded_face = ring._repr_html_()
    creates = first[first.operation == "create"]
    expected = dict(zip(creates.process_id, creates.command_line))
    got = dict(zip(commands["key"], commands["value"]))
    assert got == {pid: expected[pid] for pid in got} and len(got) > 10
    # the data is whole, only the display is short; raw keeps the 65,520-byte values
    assert set(map(len, raw["value"])) == {65520}
    assert str(commands["value"].dtype) == "string"
    sids = records.loc[records.operation == 0, "token_sid"]
    assert sids.tolist() == creates["token_sid"].tolist()
    assert set(records.loc[records.operation == 1, "token_sid"]) == {""}
    assert "0 record(s), 0 dropped" in html_face          # the recorder drained it
    assert "50 record(s)" in recorded_face and "<table" in recorded_face
    assert "S-1-5-" in recorded_face


def test_text_decoding_keeps_bytes_that_are_not_text():
    from ntoslab.connectors.frames import decode_text_columns
    frame = pd.DataFrame({
        "wide": ["cmd.exe /c".encode("utf-16-le") + b"\0" * 10, b"\0" * 20],
        "narrow": [b"abcdefgh\0\0", b"xy\0\0\0\0\0\0\0\0"],
        "blob": [bytes(range(1, 11)), bytes(10)],
        "owner_sid": [bytes([1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]) + bytes(4), bytes(16)],
        "n": [1, 2]})
    out = decode_text_columns(frame.copy())
    assert out["wide"].tolist() == ["cmd.exe /c", ""]
    assert out["narrow"].tolist() == ["abcdefgh", "xy"]          # not read as UTF-16
    assert out["blob"].tolist() == frame["blob"].tolist()        # stays bytes
    assert out["owner_sid"].tolist() == ["S-1-5-18", ""]
    assert out["n"].tolist() == [1, 2]


SEEN = ('#include "bpf_helpers.h"\n#include "ebpf_ntos_hooks.h"\n'
        'struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __type(key, uint32_t);\n'
        '         __type(value, uint64_t); __uint(max_entries, 20); } seen SEC(".maps");\n'
        'SEC("process") int Seen(process_md_t* c) {\n'
        '  uint32_t pid = (uint32_t)c->process_id; uint64_t one = 1;\n'
        '  if (c->operation == PROCESS_OPERATION_CREATE && !bpf_map_lookup_elem(&seen, &pid))\n'
        '    bpf_map_update_elem(&seen, &pid, &one, 0);\n'
        '  return 0; }\n')


@pytest.mark.parametrize("engine", ["jit", "interpreter"])
@pytest.mark.parametrize("true_lru", [False, True])
def test_emulator_lru_maps_follow_windows_generations_or_true_lru(compile_bpf, engine, true_lru):
    # EFW ebpf_maps.c: one CPU, max_entries 20 -> hot_list_limit 2 (_create_lru_hash_map); the
    # lookup of pid 1 while it is hot changes nothing (_insert_into_hot_list), so when pid 21
    # arrives Windows evicts 1 (the cold list's head, _reap_lru_cold_lists); exact LRU evicts 2
    obj = compile_bpf(SEEN, "lru_seen")
    with ntoslab.emulator(engine, true_lru=true_lru) as hook:
        loaded = hook.load(obj)
        hook.attach(loaded.program("Seen"))
        for pid in [1, 2, 1] + list(range(3, 22)):
            hook.inject(ProcessEvent.create(pid, 4, r"C:\a.exe", "a"))
        m = loaded.map("seen").map
        assert m.true_lru is true_lru and m.evicted == 1
        survivors = sorted(int.from_bytes(key, "little") for key in m.keys())
        assert survivors == ([1] + list(range(3, 22)) if true_lru else list(range(2, 22)))
