"""A live event table: verdicts as they happen, from `ntoslab.live()` or a replay running in
the background, without blocking the kernel.

>>> table = LiveTable(hook); table                    # doctest: +SKIP
>>> table.replay(trace)                               # runs in a thread; the table fills in
"""
from __future__ import annotations

import html
import threading
import time
from collections import deque
from typing import Any

import ipywidgets as W

from ..display import table_html
from .base import StaticFallback

COLUMNS = ["index", "operation", "process_id", "image", "command_line", "status_hex", "denied",
           "decided_by", "faults"]


class LiveTable(StaticFallback, W.VBox):
    """Subscribes to `hook` (emulated or live): every verdict becomes a row. Filter by text and
    by outcome, pause the view (rows still arrive and are counted), see events, denials,
    faults and drops (the live capture's kernel drops, and rows beyond `keep` let go)."""

    def __init__(self, hook, *, keep: int = 10_000, show: int = 50, interval: float = 0.25) -> None:
        self.hook = hook
        self.keep, self.show, self.interval = keep, show, interval
        self.rows: deque[dict[str, Any]] = deque(maxlen=keep)
        self.counts = {"events": 0, "denied": 0, "faults": 0, "let go": 0, "rejected": 0}
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._dirty = False
        self.worker: threading.Thread | None = None
        self.filter = W.Text(placeholder="filter: image or command line contains…",
                             layout=W.Layout(width="320px"))
        self.outcome = W.Dropdown(options=["all", "denied", "faults", "allowed"], value="all",
                                  layout=W.Layout(width="110px"))
        self.pause = W.ToggleButton(description="Pause", icon="pause")
        self.status = W.HTML()
        self.view = W.HTML()
        for w in (self.filter, self.outcome, self.pause):
            w.observe(lambda _: self.redraw(), "value")
        super().__init__([W.HBox([self.filter, self.outcome, self.pause]), self.status, self.view])
        self.add_class("ntoslab-live-table")
        hook.subscribe(self._on_verdict)
        self.redraw()

    # -- rows come in (any thread) -------------------------------------------------------------
    def _row_for(self, verdict) -> dict[str, Any]:
        row = verdict.as_row()
        event = getattr(verdict, "event", None)
        if event is not None:
            row.update(image=_name(event.image_path), command_line=event.command_line)
        return row

    def _on_verdict(self, verdict) -> None:
        row = self._row_for(verdict)
        with self._lock:
            if len(self.rows) == self.keep:
                self.counts["let go"] += 1
            self.rows.append(row)
            self.counts["events"] += 1
            self.counts["denied"] += bool(row.get("denied"))
            self.counts["faults"] += bool(row.get("faults"))
            self._dirty = True
        now = time.monotonic()
        if now - self._last_draw >= self.interval:
            self.redraw()

    # -- sources -------------------------------------------------------------------------------
    def replay(self, trace, *, rate: float | None = None) -> threading.Thread:
        """Inject `trace` (DataFrame or events) in a background thread; returns the thread.
        `rate` limits events per second (None: as fast as the programs run)."""
        from ..hooks.process import EventError, ProcessEvent
        rows = trace.to_dict("records") if hasattr(trace, "to_dict") else list(trace)

        def work() -> None:
            for i, row in enumerate(rows):
                try:
                    ev = row if isinstance(row, ProcessEvent) else ProcessEvent.from_row(row, f"row {i}: ")
                except EventError:
                    with self._lock:
                        self.counts["rejected"] += 1
                    continue
                self.hook.inject(ev)
                if rate:
                    time.sleep(1.0 / rate)
            self.redraw()

        self.worker = threading.Thread(target=work, daemon=True, name="ntoslab-live-replay")
        self.worker.start()
        return self.worker

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background replay to end, then draw the final state."""
        if self.worker is not None:
            self.worker.join(timeout)
        self.redraw()

    # -- view ----------------------------------------------------------------------------------
    def dropped(self) -> int:
        live = getattr(self.hook, "dropped", None)
        kernel = sum(live.values()) if isinstance(live, dict) else 0
        return kernel + self.counts["let go"]

    def visible(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = list(self.rows)
        text = self.filter.value.strip().lower()
        want = self.outcome.value
        out = []
        for r in rows:
            if text and text not in f"{r.get('image') or ''} {r.get('command_line') or ''}".lower():
                continue
            if want == "denied" and not r.get("denied"):
                continue
            if want == "faults" and not r.get("faults"):
                continue
            if want == "allowed" and (r.get("denied") or r.get("faults")):
                continue
            out.append(r)
        return out

    def _status_html(self) -> str:
        c = self.counts
        paused = " <b style='color:#a60'>paused</b>" if self.pause.value else ""
        return (f"<div class='ntoslab-live-status'>events <b>{c['events']}</b> · denied "
                f"<b>{c['denied']}</b> · faults <b>{c['faults']}</b> · drops "
                f"<b>{self.dropped()}</b> · rejected rows <b>{c['rejected']}</b>{paused}</div>")

    def redraw(self) -> None:
        self._last_draw = time.monotonic()
        self.status.value = self._status_html()
        if self.pause.value:
            return
        self._dirty = False
        self.view.value = table_html(self.visible(), COLUMNS, "no events yet", limit=self.show)

    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.counts.items())

    def static_html(self) -> str:
        return (f"<div><b>Live events</b> (filter {html.escape(self.filter.value or '—')}, "
                f"{self.outcome.value}){self._status_html()}"
                f"{table_html(self.visible(), COLUMNS, 'no events yet', limit=self.show)}</div>")


def _name(path: Any) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1] if isinstance(path, str) and path else ""
