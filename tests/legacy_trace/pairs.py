"""Parent → child image pairs, and the rare ones against a baseline."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .tree import ProcessTree

if TYPE_CHECKING:
    import pandas as pd


def parent_child_pairs(trace: "pd.DataFrame") -> "pd.DataFrame":
    """Counts of (parent image, child image), case-insensitive, from linked processes."""
    import pandas as pd
    tree = ProcessTree.from_trace(trace)
    rows = [(tree.nodes[n.parent].name.lower(), n.name.lower())
            for n in tree.nodes.values() if n.parent in tree.nodes]
    frame = pd.DataFrame(rows, columns=["parent", "child"])
    if frame.empty:
        return frame.assign(count=[])
    return frame.value_counts().rename("count").reset_index().sort_values(
        ["count", "parent", "child"], ascending=[False, True, True]).reset_index(drop=True)


def rare_pairs(trace: "pd.DataFrame", baseline: "pd.DataFrame | None" = None,
               max_count: int = 1) -> "pd.DataFrame":
    """Pairs seen at most `max_count` times in the baseline (default: the trace itself), with how
    often they occur in the trace. A pair absent from the baseline has baseline_count 0."""
    pairs = parent_child_pairs(trace)
    base = parent_child_pairs(baseline) if baseline is not None else pairs
    merged = pairs.merge(base.rename(columns={"count": "baseline_count"}), how="left",
                         on=["parent", "child"])
    merged["baseline_count"] = merged["baseline_count"].fillna(0).astype(int)
    rare = merged[merged["baseline_count"] <= max_count]
    return rare.sort_values(["baseline_count", "parent", "child"]).reset_index(drop=True)
