"""The map and ring-buffer inspector: one tab per map, decoded by BTF; refresh by hand or after
events (at most every `interval` seconds, on the thread that ran the programs).

>>> MapInspector(monitor, records={"process_ringbuf": "process_info_t"})    # doctest: +SKIP
"""
from __future__ import annotations

import html
import time

import ipywidgets as W

from ..elf.program import MapType
from .base import StaticFallback

RINGBUF, PERF = MapType.RINGBUF, MapType.PERF_EVENT_ARRAY


class MapInspector(StaticFallback, W.VBox):
    """`loaded`: a LoadedObject. `records`: ring buffer / perf array name -> BTF type name of
    its records (otherwise shown as sizes and bytes). Global-data maps are left out unless
    `globals=True`."""

    def __init__(self, loaded, *, records: dict[str, str] | None = None, rows: int = 200,
                 globals: bool = False, interval: float = 1.0) -> None:
        self.loaded = loaded
        self.records = dict(records or {})
        self.max_rows = rows
        self.interval = interval
        self._last = 0.0
        self.names = [n for n, spec in loaded.obj.maps.items()
                      if globals or not spec.is_global_data]
        self.panes = {n: W.HTML() for n in self.names}
        self.tabs = W.Tab(children=list(self.panes.values()))
        for i, n in enumerate(self.names):
            self.tabs.set_title(i, n)
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.auto = W.Checkbox(value=False, description="refresh after events", indent=False)
        self.auto.observe(lambda ch: self._auto(ch["new"]), "value")
        self._subscribed = False
        super().__init__([W.HTML("<style>.ntoslab-map-inspector table{line-height:1.3}</style>"),
                          W.HBox([W.HTML(f"<b>{html.escape(loaded.path)}</b>"),
                                  self.refresh_button, self.auto]), self.tabs])
        self.add_class("ntoslab-map-inspector")
        self.refresh()

    def _auto(self, on: bool) -> None:
        if on and not self._subscribed:
            self.loaded.hook.subscribe(self._after_event)
            self._subscribed = True

    def _after_event(self, _verdict) -> None:
        if self.auto.value and time.monotonic() - self._last >= self.interval:
            self.refresh()

    def frame(self, name: str):
        """The DataFrame a tab shows."""
        spec = self.loaded.obj.map(name)
        if spec.type == RINGBUF:
            return self.loaded.ringbuf(name).to_frame(self.records.get(name))
        if spec.type == PERF:
            return self.loaded.perf(name).to_frame(self.records.get(name))
        return self.loaded.map(name).to_frame()

    def describe(self, name: str) -> str:
        spec = self.loaded.obj.map(name)
        text = f"{spec.type_name}, key {spec.key_size} B, value {spec.value_size} B, " \
               f"max {spec.max_entries}"
        if spec.type == RINGBUF:
            view = self.loaded.ringbuf(name)
            text += f"; {len(view.records())} records, {view.dropped} dropped"
        elif spec.type == PERF:
            text += f"; {self.loaded.perf(name).lost} lost"
        return text

    def pane_html(self, name: str) -> str:
        try:
            frame = self.frame(name)
            shown = frame.tail(self.max_rows).apply(lambda col: col.map(_short))
            body = shown.to_html(index=False, max_cols=40) if len(frame) else "<i>empty</i>"
            note = f"{len(frame)} {'records' if self.loaded.obj.map(name).type in (RINGBUF, PERF) else 'entries'}"
        except Exception as exc:   # noqa: BLE001 - a map that cannot be decoded says why
            body, note = f"<pre>{html.escape(str(exc))}</pre>", "cannot decode"
        return (f"<div class='ntoslab-map'><b>{html.escape(name)}</b> ({html.escape(self.describe(name))})"
                f": {note}{body}</div>")

    def refresh(self) -> None:
        self._last = time.monotonic()
        for name, pane in self.panes.items():
            pane.value = self.pane_html(name)

    def summary(self) -> str:
        return f"{self.loaded.path}: {', '.join(self.names)}"

    def static_html(self) -> str:
        return "<div><b>Maps of " + html.escape(self.loaded.path) + "</b>" + \
            "".join(self.pane_html(n) for n in self.names) + "</div>"


def _short(value, limit: int = 32):
    """Bytes as hex, cut at `limit` bytes (the size said), so big values stay readable."""
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value[:limit]).hex(" ")
        return text + (f" … ({len(value)} B)" if len(value) > limit else "")
    return value
