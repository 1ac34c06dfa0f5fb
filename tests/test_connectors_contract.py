"""The same notebook-style script against every hook on this machine: the emulator always,
Linux live as root (real spawned processes), and the Windows hook on a fake EbpfApi.dll
(tests/fakes: a C library at the DLL's ABI, answered by the emulator as eBPF for Windows and
ntosebpfext would), so its whole ctypes layer runs. Every frame the script reads has the same
columns and dtypes on each."""
from __future__ import annotations

import subprocess
import uuid

import pandas as pd
import pytest
from conftest import ROOT

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


def emulated(tmp_path, token: str = "") -> dict[str, pd.DataFrame]:
    token = token or uuid.uuid4().hex[:8]
    with ntoslab.emulator() as hook:
        assert isinstance(hook, ProcessHook)
        return frames(hook, tmp_path, lambda h: drive_events(h, token))


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


def drive_events(hook, token: str) -> None:
    hook.inject(ntoslab.ProcessEvent.create(501, 1, "/bin/sh", f"/bin/sh -enc {token}"))
    hook.inject(ntoslab.ProcessEvent.create(502, 1, "/bin/true", f"/bin/true {token}"))


def test_windows_hook_keeps_the_contract(windows_on_fake, tmp_path):
    hook, fake = windows_on_fake()
    assert isinstance(hook, ProcessHook)
    token = uuid.uuid4().hex[:8]
    with pytest.warns(UserWarning, match="ETW"):
        got = frames(hook, tmp_path, lambda h: drive_events(h, token))
    want = emulated(tmp_path, token)
    for name in want:
        assert shape(got[name]) == shape(want[name]), name
    # and what they hold: the emulator is the oracle (printk goes to ETW on Windows: the
    # fake keeps it where the DLL cannot reach, and it is what the emulator printed)
    for name in ("replay", "ring", "map"):
        assert got[name].drop(columns="instructions", errors="ignore").equals(
            want[name].drop(columns="instructions", errors="ignore")), name
    assert got["verdicts"][["operation", "process_id", "status", "denied", "decided_by"]].equals(
        want["verdicts"][["operation", "process_id", "status", "denied", "decided_by"]])
    assert got["verdicts"]["denied"].tolist() == [True, False, True]
    assert got["printk"].empty and fake.printk()["text"].tolist() == \
        want["printk"]["text"].tolist()


def test_readme_documents_the_protocol():
    """The README's hook API table names exactly the Protocol's members."""
    import re
    text = (ROOT / "README.md").read_text()
    table = text[text.index("### The hook API"):text.index("### Live: the same API")]
    named = set(re.findall(r"`(\w+)[(`]", table)) - {"ntoslab", "typing", "isinstance"}
    members = {m for m in dir(ProcessHook) if not m.startswith("_")} | {"close"}
    assert members <= named, members - named
    assert {"kind", "objects", "links"} <= named
