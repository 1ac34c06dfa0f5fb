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
