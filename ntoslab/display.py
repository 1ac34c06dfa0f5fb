"""Small HTML pieces shared by everything that shows itself in a notebook (widgets, the
debugger's panels, reports).

>>> table_html([{"a": 1, "b": None}])
"<table class='ntoslab-table'><tr><th>a</th><th>b</th></tr><tr><td>1</td><td></td></tr></table>"
"""
from __future__ import annotations

import html
from typing import Any, Iterable


def table_html(rows: Iterable[dict], columns: list[str] | None = None, empty: str = "nothing yet",
               limit: int | None = None) -> str:
    """A small HTML table from dict rows (escaped), or an italic note when there are none."""
    rows = list(rows)
    if not rows:
        return f"<i>{html.escape(empty)}</i>"
    columns = columns or list(rows[0])
    shown = rows if limit is None else rows[-limit:]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_text(r.get(c)))}</td>" for c in columns)
                   + "</tr>" for r in shown)
    more = f"<div><i>showing the last {len(shown)} of {len(rows)}</i></div>" \
        if len(shown) < len(rows) else ""
    return f"<table class='ntoslab-table'><tr>{head}</tr>{body}</table>{more}"


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v) or type(v).__name__ in ("NAType", "NaTType"):
        return ""
    return str(v)
