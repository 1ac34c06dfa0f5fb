"""A process tree drawing that stays readable at hundreds of nodes.

Depth runs left to right, each visible node gets its own row, and runs of identical childless
siblings are drawn once with a count (`PING.EXE ×254`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..analysis.tree import ProcessTree, _group_siblings, describe_group

if TYPE_CHECKING:
    import matplotlib.figure


def plot_tree(tree: ProcessTree, *, root: str | None = None, max_rows: int = 400,
              collapse: int = 3, highlight: set[str] | None = None, ax=None,
              title: str | None = None) -> "matplotlib.figure.Figure":
    """Draw `tree` (or the subtree under `root`); `highlight` keys are drawn in red."""
    import matplotlib.pyplot as plt

    if root is not None:
        tree = tree.subtree(root)
    highlight = highlight or set()
    rows: list[tuple[int, str, str, int]] = []   # depth, label, key, parent row
    edges: list[tuple[int, int]] = []

    memo: dict[str, tuple] = {}

    def visit(keys: list[str], depth: int, parent_row: int | None) -> None:
        for group in _group_siblings(keys, tree.nodes, collapse, memo):
            if len(rows) >= max_rows:
                return
            n = tree.nodes[group[0]]
            label = describe_group(group, tree.nodes) if len(group) > 1 else f"{n.name} ({n.pid})"
            rows.append((depth, label, group[0], parent_row if parent_row is not None else -1))
            me = len(rows) - 1
            if parent_row is not None:
                edges.append((parent_row, me))
            if len(group) == 1:
                visit(n.children, depth + 1, me)

    visit(tree.roots, 0, None)
    height = max(2.0, 0.22 * len(rows) + 0.8)
    width = max(6.0, 1.9 * (max((r[0] for r in rows), default=0) + 2))
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(width, 18), min(height, 60)))
    else:
        fig = ax.figure
    for a, b in edges:
        (da, _, _, _), (db, _, _, _) = rows[a], rows[b]
        ax.plot([da, da, db], [a, b, b], color="0.6", linewidth=0.7, zorder=1)
    for i, (d, label, key, _) in enumerate(rows):
        color = "tab:red" if key in highlight else "tab:blue"
        ax.scatter([d], [i], s=14, color=color, zorder=2)
        ax.text(d + 0.08, i, label, va="center", fontsize=7, color="tab:red" if key in highlight else "black")
    ax.set_ylim(len(rows), -1)
    ax.set_xlim(-0.3, max((r[0] for r in rows), default=0) + 1.8)
    ax.axis("off")
    shown = f"{len(rows)} rows" + (f" (first {max_rows})" if len(rows) >= max_rows else "")
    ax.set_title(title or f"Process tree: {len(tree)} processes, {shown}", fontsize=9)
    fig.tight_layout()
    return fig
