"""The same notebook-style script against every hook on this machine: the emulator always,
Linux live as root (real spawned processes), and the Windows hook with its programs faked at
the BpfProgram boundary (its test runs answer as the real extension would). Every frame the
script reads has the same columns and dtypes on each."""
from __future__ import annotations

import subprocess
import uuid

import pandas as pd
import pytest
from conftest import ROOT
from test_connectors_windows import FakeProgram, fake_hook

import ntoslab
from ntoslab import toolchain
from ntoslab.connectors.contract import HISTORY_COLUMNS, VERDICT_COLUMNS, ProcessHook

LINEAGE = ("<IIIIQ", ["process_id", "parent_process_id", "root_process_id", "depth",
                      "creation_time"])


def frames(hook, tmp_path, drive) -> dict[str, pd.DataFrame]:
    """What a notebook reads: replay rows, verdicts, a ring buffer, a map, printk."""
    deny = toolchain.compile_c(ROOT / "bpf" / "examples" / "deny_policy.c", tmp_path / "deny.o")
    lin = toolchain.compile_c(ROOT / "bpf" / "examples" / "lineage.c", tmp_path / "lineage.o")
    tracker, policy = hook.load(lin), hook.load(deny)
    hook.attach(tracker.program("LineageTracker"))
    hook.attach(policy.program("DenyPolicy"))
    drive(hook)
    trace = pd.DataFrame([{"operation": "create", "process_id": 900, "parent_process_id": 1,
                           "image_path": "/bin/x", "command_line": "x -enc AAAA"},
                          {"operation": "nonsense", "process_id": 901}])
    return {"replay": hook.replay(trace, progress=False), "verdicts": hook.verdicts(),
            "ring": tracker.ringbuf("lineage_events").to_frame(layout=LINEAGE),
            "map": policy.map("denials").to_frame(), "printk": hook.printk()}


def shape(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return [(c, str(frame[c].dtype)) for c in frame.columns]


def emulated(tmp_path):
    token = uuid.uuid4().hex[:8]

    def drive(hook):
        hook.inject(ntoslab.ProcessEvent.create(501, 1, "/bin/sh", f"/bin/sh -enc {token}"))
        hook.inject(ntoslab.ProcessEvent.create(502, 1, "/bin/true", f"/bin/true {token}"))
    with ntoslab.emulator() as hook:
        assert isinstance(hook, ProcessHook)
        return frames(hook, tmp_path, drive)


def test_emulator_frames_have_the_contract_columns(tmp_path):
    got = emulated(tmp_path)
    assert list(got["replay"].columns) == VERDICT_COLUMNS
    assert list(got["verdicts"].columns) == HISTORY_COLUMNS
    assert got["replay"]["error"].notna().tolist() == [False, True]
    assert list(got["printk"].columns) == ["time", "program", "helper", "text", "object"]


def test_linux_live_frames_equal_the_emulators(tmp_path):
    try:
        hook = ntoslab.live()
    except ntoslab.LiveUnavailable as exc:
        pytest.skip(f"live capture is not possible here: {exc}")
    token = uuid.uuid4().hex[:8]

    def drive(hook):
        with hook.record():
            subprocess.run(["/bin/sh", "-c", "exit 0", "sh", "-enc", token], check=True)
            subprocess.run(["/bin/true", token], check=True)
    with hook:
        assert isinstance(hook, ProcessHook)
        live = frames(hook, tmp_path, drive)
    want = emulated(tmp_path)
    for name in want:
        assert shape(live[name]) == shape(want[name]), name


def test_windows_hook_keeps_the_contract():
    allow, deny = FakeProgram("Allow", 0), FakeProgram("Deny", 0xC0000022)
    hook = fake_hook(allow, deny)
    assert isinstance(hook, ProcessHook)
    trace = pd.DataFrame([{"operation": "create", "process_id": 900, "parent_process_id": 1,
                           "image_path": "/bin/x", "command_line": "x -enc AAAA"},
                          {"operation": "nonsense", "process_id": 901}])
    replay = hook.replay(trace, progress=False)
    with ntoslab.emulator() as emu:
        emu.attach(emu.load(ROOT / "bpf" / "examples" / "deny_policy.o").program("DenyPolicy"))
        want = emu.replay(trace, progress=False)
        want_verdicts = emu.verdicts()
    assert list(replay.columns) == VERDICT_COLUMNS == list(want.columns)
    assert replay["denied"].tolist()[0] and "nonsense" in replay["error"].tolist()[1]
    verdicts = hook.verdicts()
    assert list(verdicts.columns) == HISTORY_COLUMNS == list(want_verdicts.columns)
    assert shape(verdicts.drop(columns="instructions")) == \
        shape(want_verdicts.drop(columns="instructions"))
    with pytest.warns(UserWarning, match="ETW"):
        assert list(hook.printk().columns) == ["time", "program", "helper", "text", "object"]


def test_readme_documents_the_protocol():
    """The README's hook API table names exactly the Protocol's members."""
    import re
    text = (ROOT / "README.md").read_text()
    table = text[text.index("### The hook API"):text.index("### Live: the same API")]
    named = set(re.findall(r"`(\w+)[(`]", table)) - {"ntoslab", "typing", "isinstance"}
    members = {m for m in dir(ProcessHook) if not m.startswith("_")} | {"close"}
    assert members <= named, members - named
    assert {"kind", "objects", "links"} <= named
