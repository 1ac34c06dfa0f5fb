"""What every ntoslab widget shares: a readable static face where no widget frontend runs.

A widget's display bundle carries the live view (for JupyterLab) and `text/html` from
`static_html()` (for papermill outputs, HTML reports, GitHub, `nbconvert`), so a notebook run
headless still says what the widget showed.
"""
from __future__ import annotations

from typing import Any


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
