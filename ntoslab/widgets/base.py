"""What every ntoslab widget shares: a readable static face where no widget frontend runs.

A widget's display bundle carries the live view (for JupyterLab) and `text/html` from
`static_html()` (for papermill outputs, HTML reports, GitHub, `nbconvert`), so a notebook run
headless still says what the widget showed.
"""
from __future__ import annotations

import html
from typing import Any, Iterable


class StaticFallback:
    """Mixin for ipywidgets classes: add `text/html` (static_html()) to the display bundle."""

    def static_html(self) -> str:
        raise NotImplementedError

    def summary(self) -> str:
        """A one-line description (the widget's text/plain face)."""
        return ""

    def __repr__(self) -> str:
        text = self.summary()
        return f"<{type(self).__name__}{': ' + text if text else ''}>"

    def _repr_mimebundle_(self, **kwargs: Any):
        bundle = super()._repr_mimebundle_(**kwargs) or {}  # type: ignore[misc]
        # ipywidgets returns the data; anywidget returns (data, metadata)
        data = dict(bundle[0] if isinstance(bundle, tuple) else bundle)
        data["text/html"] = self.static_html()
        return (data, bundle[1]) if isinstance(bundle, tuple) else data


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
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return str(v)
