"""The emulated hook tells the user what would otherwise go unnoticed: dropped ring-buffer
records, programs that fault, traces that lack columns (issue 13's first-hour findings)."""
from __future__ import annotations

import warnings

import pandas as pd
import pytest

import ntoslab
from ntoslab.connectors.emulator import ProgramFaulted, RecordsDropped
from ntoslab.hooks.process import ProcessEvent

from conftest import ROOT

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
