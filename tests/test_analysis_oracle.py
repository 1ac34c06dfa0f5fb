"""The columnar analyses give the answers of the per-row implementation they replaced
(`legacy_trace`, kept verbatim as the oracle): on every real log in ../shared/datasets and on
synthetic sessions, tree by tree, node by node, table by table."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED
from legacy_trace import lifetimes as old_life
from legacy_trace import pairs as old_pairs
from legacy_trace import tree as old_tree
from legacy_trace import verdicts as old_verdicts
from legacy_trace.importer import import_logs as old_import

from ntoslab.analysis import (
    ProcessTree,
    exit_code_summary,
    lifetimes,
    parent_child_pairs,
    prevented,
    rare_pairs,
)
from ntoslab.trace.synthetic import generate_session

DATASETS = SHARED / "datasets"
LOGS = sorted(p for p in DATASETS.rglob("*") if p.suffix.lower() in (".evtx", ".zip")) \
    if DATASETS.exists() else []


def _plain(v):
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def rows(frame) -> list[list]:
    return [[_plain(v) for v in r] for r in frame.astype(object).values.tolist()]


def same_trees(new: ProcessTree, old) -> None:
    assert len(new) == len(old.nodes)
    assert new.roots == old.roots
    assert set(new.nodes) == set(old.nodes)
    for key, o in old.nodes.items():
        n = new.nodes[key]
        assert (n.pid, n.name, n.parent, n.children) == (o.pid, o.name, o.parent, o.children), key
        assert n.image == (o.image if isinstance(o.image, str) else ""), key   # old: NaN
        assert _plain(n.exit_code) == _plain(o.exit_code), key
        assert _plain(n.exit_time) == _plain(o.exit_time), key
        assert _plain(n.time) == _plain(o.time), key
    assert list(new.walk()) == list(old.walk())
    walked = [k for _, k in old.walk()]       # (the old descendants() loops on a cycle)
    for key in walked[:: max(1, len(walked) // 50)]:
        assert new.descendants(key) == old.descendants(key)
        assert new.ancestry(key) == old.ancestry(key)
    assert new.render(max_depth=6) == old.render(max_depth=6)
    assert new.render(collapse=2, show_command=True) == old.render(collapse=2, show_command=True)
    pd.testing.assert_frame_equal(new.to_frame().astype(object).where(lambda f: f.notna(), None),
                                  old.to_frame().astype(object).where(lambda f: f.notna(), None),
                                  check_dtype=False)


def same_tables(trace) -> None:
    tree = ProcessTree.from_trace(trace)
    same_trees(tree, old_tree.ProcessTree.from_trace(trace))
    for new in (parent_child_pairs(trace), parent_child_pairs(tree)):
        pd.testing.assert_frame_equal(new, old_pairs.parent_child_pairs(trace), check_dtype=False)
    # without a baseline the old frame repeated `count` as baseline_count; that column is gone
    old_rare = old_pairs.rare_pairs(trace, max_count=2)
    assert (old_rare["count"] == old_rare["baseline_count"]).all()
    pd.testing.assert_frame_equal(rare_pairs(tree, max_count=2),
                                  old_rare.drop(columns="baseline_count"), check_dtype=False)
    pd.testing.assert_frame_equal(rare_pairs(tree, trace, max_count=2), old_rare,
                                  check_dtype=False)
    norm = lambda f: f.sort_values("process_key").reset_index(drop=True)
    new_life, want = norm(lifetimes(tree)), norm(old_life.lifetimes(trace))
    assert list(new_life.columns) == list(want.columns)
    for c in want.columns:
        a, b = rows(new_life[[c]]), rows(want[[c]])
        a, b = [x[0] for x in a], [x[0] for x in b]
        if c in ("start", "end"):     # UTC datetimes now; the old frame held float64 ns
            assert [None if x is None else float(x.value) for x in a] == \
                [None if y is None else float(y) for y in b], c
        elif c == "duration_s":
            assert all((x is None and y is None) or x == pytest.approx(y) for x, y in zip(a, b))
        else:
            assert a == b, c
    s_new, s_old = exit_code_summary(tree), old_life.exit_code_summary(trace)
    assert rows(s_new) == rows(s_old[s_new.columns])
    # every third creation denied
    creates = (trace["operation"] == "create").to_numpy()
    denied = creates & (np.arange(len(trace)) % 3 == 0)
    verdicts = pd.DataFrame({"denied": denied})
    p_new, p_old = prevented(tree, verdicts), old_verdicts.prevented(trace, verdicts)
    assert rows(p_new) == rows(p_old)


@pytest.mark.skipif(not LOGS, reason="../shared/datasets is not beside the checkout")
@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_same_answers_on_real_logs(path: Path):
    trace = old_import([path], progress=False).frame
    assert len(trace) > 0
    same_tables(trace)


@pytest.mark.parametrize("seed", [0, 7])
def test_same_answers_on_synthetic_sessions(seed):
    same_tables(generate_session(4000, seed=seed))


def test_same_answers_with_odd_rows():
    """Duplicated keys, exits of unknown processes, a second exit, ties in time, a parent key
    that is not in the trace, a self-parent."""
    cols = ["time", "operation", "process_id", "image_path", "command_line", "exit_code",
            "process_key", "parent_key"]
    rows = [(5, "create", 1, r"C:\a.exe", "a", None, "A", None),
            (5, "create", 2, r"C:\b.exe", "b", None, "B", "A"),
            (5, "create", 3, "c.exe", "c", None, "C", "A"),
            (6, "create", 4, None, "d", None, "D", "nowhere"),
            (7, "create", 5, r"C:\e.exe", "e", None, "E", "E"),
            (8, "delete", 2, None, None, 1, "B", None),
            (9, "delete", 2, None, None, 3, "B", None),
            (9, "delete", 9, None, None, 3, "Z", None),
            (10, "create", 6, r"C:\f.exe", "f2", None, "F", "B"),
            (11, "create", 7, r"C:\g.exe", "g", None, None, "B")]
    trace = pd.DataFrame(rows, columns=cols)
    new = ProcessTree.from_trace(trace)
    assert new.roots == ["A", "D"] and new.nodes["B"].exit_code == 3
    assert new.descendants("A") == ["B", "F", "C"]
    same_tables(trace)
