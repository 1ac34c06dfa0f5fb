"""Parent → child image pairs, and the rare ones against a baseline (column-wise, over the
linked frame of `ProcessTree`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .tree import ProcessTree, as_tree

if TYPE_CHECKING:
    import pandas as pd


def parent_child_pairs(trace: "pd.DataFrame | ProcessTree") -> "pd.DataFrame":
    """Counts of (parent image, child image), case-insensitive, from linked processes. Takes a
    trace or its `ProcessTree` (built once, shared by every analysis)."""
    import pandas as pd
    tree = as_tree(trace)
    parent = tree.frame["parent"].to_numpy(np.int64)
    linked = parent >= 0
    names = tree.lower_names()
    frame = pd.DataFrame({"parent": names[parent[linked]], "child": names[linked]})
    if frame.empty:
        return frame.assign(count=[])
    counts = frame.groupby(["parent", "child"], sort=False).size().rename("count").reset_index()
    return counts.sort_values(["count", "parent", "child"], ascending=[False, True, True],
                              kind="stable").reset_index(drop=True)


def rare_pairs(trace: "pd.DataFrame | ProcessTree",
               baseline: "pd.DataFrame | ProcessTree | None" = None,
               max_count: int = 1) -> "pd.DataFrame":
    """Pairs seen at most `max_count` times in the baseline (default: the trace itself), with how
    often they occur in the trace. A pair absent from the baseline has baseline_count 0; without
    a baseline there is only `count` (the trace is its own baseline)."""
    pairs = parent_child_pairs(trace)
    if baseline is None:
        rare = pairs[pairs["count"] <= max_count]
        return rare.sort_values(["count", "parent", "child"]).reset_index(drop=True)
    return rare_among(pairs, parent_child_pairs(baseline), max_count)


def rare_among(pairs: "pd.DataFrame", base: "pd.DataFrame", max_count: int = 1) -> "pd.DataFrame":
    """The rows of a pair-count frame (`parent`, `child`, `count`, ...) whose pair has at most
    `max_count` in the `base` pair counts (absent: 0), with that count as `baseline_count`."""
    base = base[["parent", "child", "count"]]
    merged = pairs.merge(base.rename(columns={"count": "baseline_count"}), how="left",
                         on=["parent", "child"])
    merged["baseline_count"] = merged["baseline_count"].fillna(0).astype(int)
    rare = merged[merged["baseline_count"] <= max_count]
    return rare.sort_values(["baseline_count", "parent", "child"]).reset_index(drop=True)
