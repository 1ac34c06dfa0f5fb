"""Interactive process trees and lifetime timelines (anywidget views; the matplotlib figures in
`ntoslab.viz.tree` / `ntoslab.viz.timeline` stay for static reports).

The tree collapses and expands subtrees, shows the command line, user, exit code and verdict on
hover, and a click selects a process and shows its row (`view.selected_row` in Python). The
timeline zooms (wheel, +/−), pans (drag) and resets (double-click). Both carry their whole state
in the widget model, so an HTML report with the widget state embedded stays interactive; where
no widget frontend runs they show a static HTML face (a `<details>` tree, a table).

>>> view = ProcessTreeView.from_trace(trace, verdicts=hook.replay(trace))   # doctest: +SKIP
>>> TimelineView.from_trace(trace, verdicts)                                  # doctest: +SKIP
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ..analysis import ProcessTree, exit_code_name, lifetimes
from ..analysis.lifetimes import as_ns
from ..widgets.base import StaticFallback

if TYPE_CHECKING:
    import pandas as pd

STATIC = Path(__file__).parent / "static"
ROW_FIELDS = ["time", "process_id", "parent_process_id", "creating_process_id", "image_path",
              "command_line", "token_sid", "account_name", "account_domain", "host",
              "process_key", "parent_key", "exit_code"]


def _plain(value: Any) -> Any:
    """A JSON-safe scalar (timestamps as ISO text, NaN/NA as None)."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        try:
            return value.isoformat()
        except ValueError:   # NaT
            return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "item"):
        return _plain(value.item())
    if isinstance(value, (int, str, bool)):
        return value
    try:
        if value != value:   # pd.NA and friends
            return None
    except TypeError:
        return None
    return str(value)


def verdict_labels(trace: "pd.DataFrame", verdicts: "pd.DataFrame | None") -> dict[str, dict]:
    """process_key -> {verdict text, denied, fault} from verdict rows: the frame `hook.replay`
    returns (its `row` column indexes the trace) or `hook.verdicts()` (a `process_key`)."""
    if verdicts is None or len(verdicts) == 0:
        return {}
    if "process_key" in verdicts.columns and verdicts["process_key"].notna().any():
        keyed = verdicts.assign(_key=verdicts["process_key"])
    elif "row" in verdicts.columns:
        keys = trace["process_key"].tolist()
        keyed = verdicts.assign(_key=[keys[int(r)] if r == r and r is not None and
                                      0 <= int(r) < len(keys) else None for r in verdicts["row"]])
    else:
        raise ValueError("verdicts need a `row` column (hook.replay) or `process_key` "
                         "(hook.verdicts())")
    out: dict[str, dict] = {}
    for rec in keyed.to_dict("records"):
        key = rec.get("_key")
        if not isinstance(key, str) or rec.get("operation") != "create":
            continue
        fault = rec.get("faults")
        denied = bool(rec.get("denied"))
        if denied:
            text = f"denied {rec.get('status_hex')} by {rec.get('decided_by')}"
        elif isinstance(fault, str) and fault:
            text = f"fault: {fault.splitlines()[0]}"
        else:
            text = "allowed"
        out[key] = {"verdict": text, "denied": denied, "fault": isinstance(fault, str) and bool(fault)}
    return out


def _user(row: dict) -> str | None:
    name, domain = _plain(row.get("account_name")), _plain(row.get("account_domain"))
    if name:
        return f"{domain}\\{name}" if domain else name
    return _plain(row.get("token_sid"))


def _exit(code: Any) -> str | None:
    code = _plain(code)
    if code is None:
        return None
    if isinstance(code, float) and code.is_integer():
        code = int(code)
    name = exit_code_name(code)
    return f"{code} ({name})" if name else str(code)


class ProcessTreeView(StaticFallback, anywidget.AnyWidget):
    """A process tree you can fold, hover and click. `selected` is the clicked process key."""

    _esm = STATIC / "tree.js"
    _css = STATIC / "views.css"
    nodes = traitlets.List(traitlets.Dict()).tag(sync=True)
    open_depth = traitlets.Int(2).tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)

    def __init__(self, tree: ProcessTree, verdicts: dict[str, dict] | None = None, *,
                 open_depth: int = 2, title: str = "") -> None:
        self.tree = tree
        self.labels = verdicts or {}
        super().__init__(nodes=self._nodes(), open_depth=open_depth,
                         title=title or f"{len(tree)} processes, {len(tree.roots)} roots")
        self.add_class("ntoslab-tree")

    @classmethod
    def from_trace(cls, trace: "pd.DataFrame", verdicts: "pd.DataFrame | None" = None,
                   **kw: Any) -> "ProcessTreeView":
        """From trace rows (with process keys) and, optionally, the verdicts of a replay."""
        return cls(ProcessTree.from_trace(trace), verdict_labels(trace, verdicts), **kw)

    def _nodes(self) -> list[dict]:
        out = []
        for depth, key in self.tree.walk():
            n = self.tree.nodes[key]
            v = self.labels.get(key, {})
            row = {f: _plain(n.row.get(f)) for f in ROW_FIELDS if f in n.row}
            row["exit_code"] = _plain(n.exit_code)
            row["exit_time"] = _plain(n.exit_time)
            out.append({"id": key, "parent": n.parent if n.parent in self.tree.nodes else None,
                        "label": f"{n.name} ({n.pid})", "denied": bool(v.get("denied")),
                        "fault": bool(v.get("fault")),
                        "descendants": len(self.tree.descendants(key)),
                        "tip": {"command line": _plain(n.command_line), "user": _user(n.row),
                                "exit code": _exit(n.exit_code), "verdict": v.get("verdict"),
                                "started": _plain(n.time)},
                        "row": row})
        return out

    def summary(self) -> str:
        return self.title

    @property
    def selected_row(self) -> dict | None:
        """The trace row of the clicked process (None before a click)."""
        node = self.tree.nodes.get(self.selected)
        return dict(node.row) if node is not None else None

    def static_html(self) -> str:
        by_key = {n["id"]: n for n in self.nodes}
        kids: dict[str | None, list[str]] = {}
        for n in self.nodes:
            kids.setdefault(n["parent"], []).append(n["id"])

        def item(key: str, depth: int) -> str:
            n = by_key[key]
            tip = "\n".join(f"{k}: {v}" for k, v in n["tip"].items() if v not in (None, ""))
            style = " style='color:#c00;font-weight:bold'" if n["denied"] else ""
            label = f"<span title='{html.escape(tip, quote=True)}'{style}>{html.escape(n['label'])}</span>"
            children = kids.get(key, [])
            if not children:
                return f"<li>{label}</li>"
            inner = "".join(item(c, depth + 1) for c in children)
            return (f"<li><details{' open' if depth + 1 < self.open_depth else ''}><summary>"
                    f"{label} <small>{n['descendants']} below</small></summary>"
                    f"<ul style='list-style:none;padding-left:18px'>{inner}</ul></details></li>")

        body = "".join(item(k, 0) for k in kids.get(None, []))
        return (f"<div class='ntoslab-tree-static'><b>{html.escape(self.title)}</b>"
                f"<ul style='list-style:none;padding-left:4px'>{body}</ul></div>")


class TimelineView(StaticFallback, anywidget.AnyWidget):
    """Process lifetimes you can zoom and pan; denied creations are red crosses."""

    _esm = STATIC / "timeline.js"
    _css = STATIC / "views.css"
    items = traitlets.List(traitlets.Dict()).tag(sync=True)
    span = traitlets.List(traitlets.Float(), default_value=[0.0, 1.0]).tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    title = traitlets.Unicode("Process lifetimes").tag(sync=True)

    @classmethod
    def from_trace(cls, trace: "pd.DataFrame", verdicts: "pd.DataFrame | None" = None,
                   title: str = "Process lifetimes") -> "TimelineView":
        import pandas as pd
        life = lifetimes(trace)
        life = life.assign(start=as_ns(life["start"]), end=as_ns(life["end"]))
        labels = verdict_labels(trace, verdicts)
        starts = [int(s) for s in life["start"] if not pd.isna(s)]
        ends = [int(e) for e in life["end"] if not pd.isna(e)]
        t0 = min(starts) if starts else 0
        t1 = max(starts + ends) if starts else 1
        items = []
        for rec in life.sort_values("start", kind="stable").to_dict("records"):
            if pd.isna(rec["start"]):
                continue
            v = labels.get(rec["process_key"], {})
            end = None if pd.isna(rec["end"]) else int(rec["end"])
            items.append({"id": rec["process_key"], "label": f"{rec['image']} ({rec['process_id']})",
                          "start": (rec["start"] - t0) / 1e9,
                          "end": None if end is None or v.get("denied") else (end - t0) / 1e9,
                          "denied": bool(v.get("denied")),
                          "tip": {"duration": None if pd.isna(rec["duration_s"]) else f"{rec['duration_s']:.3f} s",
                                  "exit code": _exit(rec["exit_code"]),
                                  "verdict": v.get("verdict"),
                                  "still running": "yes" if end is None and not v.get("denied") else None}})
        return cls(items=items, span=[0.0, max((t1 - t0) / 1e9, 1e-3)], title=title)

    def summary(self) -> str:
        return f"{self.title}: {len(self.items)} processes over {self.span[1]:.3f} s"

    def static_html(self) -> str:
        rows = "".join(
            f"<tr><td{' style=color:#c00' if i['denied'] else ''}>{html.escape(i['label'])}</td>"
            f"<td>{i['start']:.3f}</td><td>{'' if i['end'] is None else format(i['end'], '.3f')}</td>"
            f"<td>{html.escape(str(i['tip'].get('verdict') or ''))}</td></tr>" for i in self.items)
        return (f"<div><b>{html.escape(self.title)}</b> (seconds from the first event)<table>"
                f"<tr><th>process</th><th>start</th><th>end</th><th>verdict</th></tr>{rows}</table></div>")
