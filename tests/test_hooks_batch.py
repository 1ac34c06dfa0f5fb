"""Batch replay (ntoslab/hooks/batch.py + the native loop) against the per-event path.

The reference is the interpreter injecting one event at a time: a batch replay on the JIT, and
`inject()` on the JIT's native chain, must give the same verdicts, map contents, ring-buffer
records and printk output, on the synthetic session and on the real logs in ../shared/datasets.
"""
from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, SHARED

import ntoslab
from ntoslab.connectors.contract import verdict_frame
from ntoslab.hooks.process import ProcessEvent
from ntoslab.native import abi, lib

DENY = ROOT / "bpf" / "examples" / "deny_policy.o"
MONITOR = ROOT / "bpf" / "process_monitor.o"
SESSION = ROOT / "data" / "synthetic-session.parquet"
DATA = SHARED / "datasets"

# process_monitor.c's process_info_t, laid out by hand from its C declaration
INFO = struct.Struct("<IIIIQQIB3xI68s")
INFO_FIELDS = ("process_id", "parent_process_id", "creating_process_id", "creating_thread_id",
               "creation_time", "exit_time", "process_exit_code", "operation",
               "token_sid_size", "token_sid")


def _run(frame: pd.DataFrame, engine: str, mode: str):
    """Replay `frame` through process_monitor then the deny policy; what the run left behind."""
    with ntoslab.emulator(engine) as hook:
        monitor = hook.load(MONITOR)
        policy = hook.load(DENY)
        hook.attach(monitor.program("ProcessMonitor"))
        hook.attach(policy.program("DenyPolicy"))
        ring = monitor.ringbuf("process_ringbuf").record()
        if mode == "batch":
            verdicts = hook.replay(frame, progress=False)
        else:   # as replay does first: learn the accounts the whole trace shows
            hook.accounts.learn_frame(frame)
            verdicts = verdict_frame([hook.inject(ProcessEvent.from_row(row)).as_row()
                                      for row in frame.to_dict("records")])
        maps = {f"{o}.{name}": sorted(view.items())
                for o, obj in (("monitor", monitor), ("policy", policy))
                for name, view in obj.maps.items() if not hasattr(view.map, "records")}
        return {"verdicts": verdicts, "maps": maps, "ring": ring.records(),
                "ring_frame": ring.to_frame("process_info_t"), "printk": hook.printk(),
                "history": [(v.index, v.status, v.decided_by) for v in hook.history]}


def _same(a: dict, b: dict, columns: list[str]) -> None:
    pd.testing.assert_frame_equal(a["verdicts"][columns].reset_index(drop=True),
                                  b["verdicts"][columns].reset_index(drop=True))
    assert a["maps"].keys() == b["maps"].keys()
    for name in a["maps"]:
        assert a["maps"][name] == b["maps"][name], name
    assert a["ring"] == b["ring"]
    pd.testing.assert_frame_equal(a["printk"], b["printk"])
    assert a["history"] == b["history"]


VERDICT = ["index", "operation", "process_id", "status", "status_hex", "denied", "decided_by",
           "instructions", "programs_run", "faults"]


@pytest.fixture(scope="module")
def session() -> pd.DataFrame:
    from ntoslab.trace.schema import read_trace
    frame = read_trace(SESSION, validate_rows=False)
    return frame


@pytest.fixture(scope="module")
def reference(session):
    return _run(session, "interpreter", "inject")


def test_batch_replay_equals_the_interpreter_event_by_event(session, reference):
    batch = _run(session, "jit", "batch")
    _same(batch, reference, VERDICT)
    # the replay frame also says which row each verdict is and that none failed
    assert list(batch["verdicts"]["row"]) == list(range(len(session)))
    assert batch["verdicts"]["error"].isna().all()
    # the session does exercise the programs: denials, records, maps
    assert batch["verdicts"]["denied"].sum() > 0
    assert len(batch["ring"]) == len(session)


def test_inject_on_the_native_chain_equals_the_interpreter(session, reference):
    _same(_run(session, "jit", "inject"), reference, VERDICT)


def test_ring_frame_decodes_what_the_c_struct_says(session, reference):
    """The column-wise BTF decoding of the records against struct.unpack of each record."""
    frame = reference["ring_frame"]
    assert len(frame) == len(reference["ring"])
    expected = pd.DataFrame([dict(zip(INFO_FIELDS, INFO.unpack(r))) for r in reference["ring"]])
    for name in INFO_FIELDS[:-1]:
        assert frame[name].astype(np.int64).tolist() == expected[name].astype(np.int64).tolist(), name
    # record k belongs to event k (one record per event)
    assert frame["event"].tolist() == list(range(len(frame)))
    # operation 0 is a create in process_monitor.c; the session's rows say which ones are
    creates = (session["operation"] == "create").to_numpy()
    assert (frame["operation"].to_numpy() == 0).tolist() == creates.tolist()
    assert frame["process_id"].tolist() == session["process_id"].astype(np.int64).tolist()


@pytest.mark.skipif(not DATA.exists(), reason="../shared/datasets not present")
def test_batch_replay_equals_the_interpreter_on_real_logs():
    from ntoslab.trace import import_logs
    files = [DATA / "EVTX-ATTACK-SAMPLES" / "PanacheSysmon_vs_AtomicRedTeam01.evtx",
             DATA / "splunk-attack_data" / "T1003.001-procdump-capattack" / "Security.evtx",
             DATA / "OTRF-Security-Datasets" / "aptsimulator_cobaltstrike.zip"]
    frame = import_logs(files, progress=False).frame
    assert len(frame) > 500
    batch, reference = _run(frame, "jit", "batch"), _run(frame, "interpreter", "inject")
    _same(batch, reference, VERDICT)
    # real command lines, images and accounts reached the programs' maps
    assert any(len(v) for v in batch["maps"]["monitor.command_map"])


def test_replay_keeps_bad_rows_as_error_rows_in_both_paths(session):
    frame = session.head(40).copy()
    frame["process_id"] = frame["process_id"].astype(object)
    frame.loc[3, "process_id"] = "not a pid"
    frame.loc[7, "operation"] = "explode"
    batch = _run(frame, "jit", "batch")["verdicts"]
    with ntoslab.emulator("interpreter") as hook:
        hook.attach(hook.load(DENY).program("DenyPolicy"))
        slow = hook.replay(frame, progress=False)
    assert len(batch) == len(slow) == 40
    assert batch["error"].notna().tolist() == slow["error"].notna().tolist()
    assert batch.loc[3, "error"].startswith("row 3") and batch.loc[7, "error"].startswith("row 7")
    assert batch["error"].tolist() == slow["error"].tolist()


def test_native_structures_match_their_python_mirrors(monkeypatch):
    assert abi.mismatches(lib()) == []
    # and the check does notice a mirror that is wrong

    class Short(abi.C.Structure):
        _fields_ = [("x", abi.C.c_uint8)]
    monkeypatch.setitem(abi.MIRRORS, ("ntl_process_sizeof", 3), Short)
    wrong = abi.mismatches(lib())
    assert len(wrong) == 1 and wrong[0].startswith("Short: ") and "in C, 1 in abi.py" in wrong[0]


def test_value_overrun_in_batch_replay_faults_and_does_not_touch_the_neighbour(compile_bpf):
    """A store past a hash value faults at that access in batch replay as in the interpreter,
    and the next entry's value is intact."""
    src = ('#include "bpf_helpers.h"\n#include "ebpf_ntos_hooks.h"\n'
           'struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, uint32_t); '
           '__type(value, uint64_t); __uint(max_entries, 16); } m SEC(".maps");\n'
           'SEC("process") int P(process_md_t* c) {\n'
           '  uint32_t k = c->process_id; uint64_t v = 7;\n'
           '  bpf_map_update_elem(&m, &k, &v, 0);\n'
           '  uint64_t* p = bpf_map_lookup_elem(&m, &k);\n'
           '  if (!p) return 0;\n'
           '  if (c->process_id == 12) { volatile uint64_t* q = p; q[1] = 0xdead; }\n'
           '  return 0; }\n')
    obj = compile_bpf(src, "overrun")
    frame = pd.DataFrame({"operation": ["create"] * 4, "process_id": [8, 12, 16, 20],
                          "parent_process_id": [4] * 4, "image_path": ["C:\\a.exe"] * 4,
                          "command_line": ["a"] * 4})
    out = {}
    for engine in ("jit", "interpreter"):
        with ntoslab.emulator(engine) as hook:
            loaded = hook.load(obj)
            hook.attach(loaded.program("P"))
            verdicts = hook.replay(frame, progress=False)
            values = {struct.unpack("<I", k)[0]: struct.unpack("<Q", v)[0]
                      for k, v in loaded.map("m").items()}
            out[engine] = (verdicts["faults"].tolist(), values)
    faults, values = out["jit"]
    assert [f if isinstance(f, str) else None for f in faults] == \
        [f if isinstance(f, str) else None for f in out["interpreter"][0]]
    assert pd.isna(faults[0]) and pd.isna(faults[2]) and pd.isna(faults[3])
    assert "write of 8 byte(s)" in faults[1] and "P" in faults[1]
    assert values == {8: 7, 12: 7, 16: 7, 20: 7} == out["interpreter"][1]


def test_history_counts_events_across_batches_and_injects(session):
    with ntoslab.emulator("jit") as hook:
        hook.attach(hook.load(DENY).program("DenyPolicy"))
        out = hook.replay(session.head(300), progress=False)
        last = hook.inject(ProcessEvent.create(9000, 4, r"C:\x\mimikatz.exe", "mimikatz"))
        history = hook.history
        assert len(history) == 301
        assert [v.status for v in history[:300]] == out["status"].tolist()
        assert [v.denied for v in history[:300]] == out["denied"].tolist()
        assert history[-1] is last and last.denied and history[300].event is not None
        assert [v.index for v in history] == list(range(301))
        with pytest.raises(IndexError, match="301 events"):
            history[301]


def test_batch_replay_in_many_chunks_equals_one_chunk(session, reference, monkeypatch):
    """Chunks are joined column by column: the frame, maps and rings are those of one pass."""
    from ntoslab.connectors import emulator as module
    monkeypatch.setattr(module, "BATCH_CHUNK", 700)        # 3000 events: five chunks
    chunked = _run(session, "jit", "batch")
    _same(chunked, reference, VERDICT)
    assert list(chunked["verdicts"]["row"]) == list(range(len(session)))
    # dtypes as pandas infers them for the interpreter's records
    assert (chunked["verdicts"][VERDICT].dtypes == reference["verdicts"][VERDICT].dtypes).all()
