"""The event injector: a form over ProcessEvent's fields, Inject, and what the hook decided.

>>> Injector(hook)                                    # doctest: +SKIP
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as W

from ..display import table_html
from ..hooks.process import EventError, ProcessEvent
from .base import StaticFallback

_LAYOUT = W.Layout(width="460px")
_STYLE = {"description_width": "150px"}


def _field(widget_cls, description: str, **kw):
    return widget_cls(description=description, layout=_LAYOUT, style=_STYLE, **kw)


class Injector(StaticFallback, W.VBox):
    """Fill in an event, press Inject: the verdict and each program's run show beneath.

    `injector.inject()` does what the button does and returns the Verdict (or raises the
    EventError naming the field at fault); `injector.history` keeps every verdict row.
    """

    def __init__(self, hook, *, pid: int = 4242, parent: int = 1000,
                 image: str = r"\??\C:\Windows\System32\cmd.exe", command_line: str = "cmd.exe",
                 debug_button: bool = True) -> None:
        self.hook = hook
        self.history: list[dict[str, Any]] = []
        self.last_verdict = None
        self.last_event: ProcessEvent | None = None
        self.operation = W.ToggleButtons(options=["create", "delete"], description="operation",
                                         style=_STYLE)
        self.fields = {
            "process_id": _field(W.IntText, "process id", value=pid),
            "parent_process_id": _field(W.IntText, "parent id", value=parent),
            "creating_process_id": _field(W.Text, "creator id", placeholder="= parent"),
            "image_path": _field(W.Text, "image", value=image),
            "command_line": _field(W.Textarea, "command line", value=command_line),
            "token_sid": _field(W.Text, "token SID", placeholder="S-1-5-21-...-1001"),
            "account_name": _field(W.Text, "account name"),
            "account_domain": _field(W.Text, "account domain"),
            "time": _field(W.Text, "time (UTC ns or ISO)", placeholder="hook clock"),
            "exit_code": _field(W.IntText, "exit code (delete)", value=0),
        }
        self.button = W.Button(description="Inject", button_style="primary", icon="bolt")
        self.button.on_click(lambda _: self._clicked())
        self.debug_button = W.Button(description="Debug this event", icon="bug",
                                     layout=W.Layout(width="auto",
                                                     display=None if debug_button else "none"))
        self.debug_button.on_click(lambda _: self._debug())
        self.result = W.HTML(value="<i>no event injected yet</i>")
        self.debug_area = W.Output()
        super().__init__([W.HTML("<style>.ntoslab-injector table{line-height:1.3}</style>"
                                 "<b>Inject a process event</b>"), self.operation,
                          *self.fields.values(), W.HBox([self.button, self.debug_button]),
                          self.result, self.debug_area])
        self.add_class("ntoslab-injector")

    def event(self) -> ProcessEvent:
        """The form as a ProcessEvent (EventError names the field that is wrong)."""
        row: dict[str, Any] = {"operation": self.operation.value}
        for name, w in self.fields.items():
            value = w.value
            if isinstance(value, str):
                value = value.strip()
                if not value:
                    continue
            row[name] = value
        if self.operation.value == "delete":
            for name in ("parent_process_id", "creating_process_id", "image_path",
                         "command_line", "token_sid", "account_name", "account_domain"):
                row.pop(name, None)
        else:
            row.pop("exit_code", None)
        return ProcessEvent.from_row(row, "injector: ")

    def inject(self):
        event = self.event()
        verdict = self.hook.inject(event)
        self.last_event, self.last_verdict = event, verdict
        row = verdict.as_row()
        row.update(image=event.image_path, command_line=event.command_line)
        self.history.append(row)
        self.result.value = self._verdict_html()
        return verdict

    def _clicked(self) -> None:
        try:
            self.inject()
        except (EventError, ValueError) as exc:
            self.result.value = f"<div style='color:#b00'>{html.escape(str(exc))}</div>"

    def _debug(self) -> None:
        from ..debug import DebugError, debug
        from .debugger import DebuggerWidget
        self.debug_area.clear_output()
        with self.debug_area:
            try:
                dbg = debug(self.hook, self.event())
            except (DebugError, EventError, ValueError) as exc:
                self.result.value = f"<div style='color:#b00'>{html.escape(str(exc))}</div>"
                return
            from IPython.display import display
            display(DebuggerWidget(dbg))

    def _verdict_html(self) -> str:
        v = self.last_verdict
        if v is None:
            return ""
        recent = table_html(self.history, ["index", "operation", "process_id", "image",
                                           "status_hex", "denied", "decided_by", "faults"],
                            limit=10)
        return (f"<div class='ntoslab-verdict'>{v._repr_html_()}</div>"
                f"<div><b>injected so far</b>{recent}</div>")

    def summary(self) -> str:
        return f"{len(self.history)} event(s) injected"

    def static_html(self) -> str:
        form = "".join(f"<tr><td>{html.escape(w.description)}</td>"
                       f"<td><code>{html.escape(str(w.value))}</code></td></tr>"
                       for w in self.fields.values())
        last = self._verdict_html() if self.last_verdict is not None else \
            "<i>no event injected yet</i>"
        return (f"<div class='ntoslab-injector-static'><b>Event injector</b> "
                f"(operation {self.operation.value})<table>{form}</table>{last}</div>")
