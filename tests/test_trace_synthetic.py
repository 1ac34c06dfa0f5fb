"""The synthetic session generator: schema-valid, reproducible, linked, with PID reuse."""
from __future__ import annotations

import pandas as pd

from ntoslab.trace import link_processes, validate
from ntoslab.trace.synthetic import generate_session, quickstart_scenario


def test_generate_session_is_valid_and_reproducible():
    a = generate_session(3000, seed=7)
    b = generate_session(3000, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert not generate_session(3000, seed=8).equals(a)
    assert 3000 <= len(a) <= 3010
    clean, rejected = validate(a)
    assert rejected.empty and len(clean) == len(a)
    assert a.time.is_monotonic_increasing and set(a.source) == {"synthetic"}
    creates = a[a.operation == "create"]
    assert creates.process_key.is_unique
    assert (creates.process_id.value_counts() > 1).sum() > 10          # PID reuse happens
    known = set(creates.process_key)
    assert creates.parent_key.dropna().isin(known).all()               # parents are in the trace
    cmds = creates.command_line
    for needle in ("-EncodedCommand", "certutil.exe -urlcache", "comsvcs.dll MiniDump"):
        assert cmds.str.contains(needle, regex=False).sum() == 1
    # re-linking by pid + time alone (what the importer does without GUIDs) gives the same tree
    relinked = link_processes(a)
    c = a.operation == "create"
    assert list(relinked[c].parent_key.fillna("-")) == list(a[c].parent_key.fillna("-"))
    assert len(quickstart_scenario()) == 12


def test_generated_chains_respect_parent_lifetimes_and_pids_are_never_shared():
    a = generate_session(20000, seed=3)
    assert len(a) == 20000
    creates = a[a.operation == "create"].set_index("process_key")
    exits = a[a.operation == "delete"].set_index("process_key")
    assert exits.index.is_unique and exits.index.isin(creates.index).all()
    end = exits["time"].reindex(creates.index)
    # a child never starts after its parent exited
    linked = creates[creates.parent_key.notna()]
    parent_end = end.reindex(linked.parent_key.values).to_numpy()
    started = linked["time"].to_numpy()
    alive = pd.isna(parent_end) | (parent_end > started)
    assert alive.all(), linked[~alive].head()
    # no two processes hold one pid at once: per pid, each creation starts after the
    # previous holder exited
    life = pd.DataFrame({"pid": creates.process_id, "start": creates["time"], "end": end})
    life = life.sort_values(["pid", "start"])
    prev_end = life.groupby("pid")["end"].shift()
    same_pid_later = life["pid"].duplicated()
    assert (prev_end[same_pid_later].notna()).all()           # the previous holder exited ...
    assert (prev_end[same_pid_later] < life["start"][same_pid_later]).all()   # ... before
    # every attack chain is in, once, each link the child of the one before
    for needle, parent in (("-EncodedCommand", "wscript.exe"), ("certutil.exe -urlcache", "cmd.exe"),
                           ("comsvcs.dll MiniDump", "powershell.exe")):
        row = creates[creates.command_line.str.contains(needle, regex=False)]
        assert len(row) == 1
        assert creates.loc[row.parent_key.iloc[0], "image_path"].lower().endswith(parent)
