"""Gantt-style timelines of process lifetimes."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..analysis.lifetimes import as_ns, lifetimes

if TYPE_CHECKING:
    import matplotlib.figure
    import pandas as pd


def plot_timeline(trace: "pd.DataFrame", *, verdicts: "pd.DataFrame | None" = None,
                  max_rows: int = 60, ax=None, title: str | None = None) -> "matplotlib.figure.Figure":
    """One bar per process from creation to exit (open-ended ones run to the last event);
    with `verdicts`, denied creations are drawn as red crosses."""
    import matplotlib.pyplot as plt
    import pandas as pd

    life = lifetimes(trace).dropna(subset=["start"]).sort_values("start").head(max_rows)
    life = life.assign(start=as_ns(life["start"]), end=as_ns(life["end"]))
    t0 = life["start"].min() if len(life) else 0
    last = trace["time"].dropna().astype("int64").max() if len(trace) else 0
    denied_keys: set = set()
    if verdicts is not None:
        mask = verdicts["denied"].fillna(False).astype(bool).values
        denied_keys = set(trace.loc[mask, "process_key"])
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, max(2.5, 0.25 * len(life) + 1)))
    else:
        fig = ax.figure
    for y, row in enumerate(life.itertuples()):
        start = (row.start - t0) / 1e9
        if row.process_key in denied_keys:
            ax.scatter([start], [y], marker="x", color="tab:red", s=40, zorder=3)
            continue
        end = ((row.end if not pd.isna(row.end) else last) - t0) / 1e9
        color = "tab:blue" if row.still_running or row.exit_code in (0, None) else "tab:orange"
        ax.barh(y, max(end - start, 0.05), left=start, height=0.6, color=color, alpha=0.8)
    ax.set_yticks(range(len(life)))
    ax.set_yticklabels([f"{r.image} ({r.process_id})" for r in life.itertuples()], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first process in view")
    ax.set_title(title or "Process lifetimes (orange: non-zero exit, x: denied)", fontsize=9)
    fig.tight_layout()
    return fig
