"""One API, proven: the same calling code on the emulator and on Linux live, where the events are
real spawned processes. Only how events are produced differs (`drive`)."""
from __future__ import annotations

import subprocess
import uuid

import pytest
from conftest import ROOT

import ntoslab
from ntoslab import toolchain

LINEAGE = ("<IIIIQ", ["process_id", "parent_process_id", "root_process_id", "depth",
                      "creation_time"])


def scenario(hook, drive, token: str, tmp_path):
    """Load the deny policy and the lineage tracker, drive events, read verdicts and records."""
    deny = toolchain.compile_c(ROOT / "bpf" / "examples" / "deny_policy.c", tmp_path / "deny.o")
    lin = toolchain.compile_c(ROOT / "bpf" / "examples" / "lineage.c", tmp_path / "lineage.o")
    tracker = hook.load(lin)
    hook.attach(tracker.program("LineageTracker"))
    policy = hook.load(deny)
    hook.attach(policy.program("DenyPolicy"))
    drive(hook)
    verdicts = hook.verdicts()
    mine = verdicts[verdicts["command_line"].fillna("").str.contains(token)
                    & (verdicts["operation"] == "create")]
    records = tracker.ringbuf("lineage_events").to_frame(layout=LINEAGE)
    denials = policy.map("denials").to_frame()
    return mine, records, denials


def check(mine, records, denials, token):
    enc = mine[mine["command_line"].str.contains(f"-enc {token}")]
    plain = mine[~mine["command_line"].str.contains("-enc")]
    assert enc["denied"].tolist() == [True] and enc["status_hex"].tolist() == ["0xC0000022"]
    assert plain["denied"].tolist() == [False]
    assert not mine["enforced"].any()
    # the lineage tracker saw both creations (it is attached first, so it also sees the denied one)
    assert set(mine["process_id"]) <= set(records["process_id"])
    assert int(denials.loc[denials["key"] == 2, "value"].iloc[0]) >= 1


def test_emulator(tmp_path):
    token = uuid.uuid4().hex[:8]

    def drive(hook):
        hook.inject(ntoslab.ProcessEvent.create(
            501, 1, "/bin/sh", f"/bin/sh -c exit powershell -enc {token}"))
        hook.inject(ntoslab.ProcessEvent.create(502, 1, "/bin/true", f"/bin/true {token}"))

    with ntoslab.emulator() as hook:
        check(*scenario(hook, drive, token, tmp_path), token)


def test_linux_live(tmp_path):
    try:
        hook = ntoslab.live()
    except ntoslab.LiveUnavailable as exc:
        pytest.skip(f"live capture is not possible here: {exc}")
    token = uuid.uuid4().hex[:8]

    def drive(hook):
        with hook.record():
            subprocess.run(["/bin/sh", "-c", "exit 0", "powershell", "-enc", token], check=True)
            subprocess.run(["/bin/true", token], check=True)

    with hook:
        check(*scenario(hook, drive, token, tmp_path), token)
