"""The step debugger as a widget: the same `Debugger` object, with buttons.

>>> DebuggerWidget(ntoslab.debugger(hook, event))       # doctest: +SKIP
"""
from __future__ import annotations

import html

import ipywidgets as W

from ..debug.debugger import (
    _CSS,
    Debugger,
    render_disassembly,
    render_panel,
    render_registers,
    render_source,
    render_stack,
    render_status,
)
from .base import StaticFallback


def _pane(title: str, width: str) -> tuple[W.HTML, W.VBox]:
    body = W.HTML()
    return body, W.VBox([W.HTML(f"<b>{title}</b>"), body], layout=W.Layout(width=width))


class DebuggerWidget(StaticFallback, W.VBox):
    """Buttons for step instruction / step line / step over / finish / continue / run to
    fault, a breakpoint box (`12`, `file.c:12`, `pc 40`), and panes for the source, the
    disassembly, the registers, the stack frame and a region's bytes."""

    def __init__(self, debugger: Debugger) -> None:
        self.debugger = debugger
        actions = [("step insn", "stepi", "Execute one instruction"),
                   ("step line", "step", "Run to the next source line (into calls)"),
                   ("step over", "next", "Next source line; calls run through"),
                   ("finish", "finish", "Run until this function returns"),
                   ("continue", "cont", "Run to a breakpoint, a fault or the end"),
                   ("to fault", "run_to_fault", "Run to the end, ignoring breakpoints")]
        self.buttons = {}
        for label, method, tip in actions:
            b = W.Button(description=label, tooltip=tip, layout=W.Layout(width="auto"))
            b.on_click(lambda _, m=method: self.do(m))
            self.buttons[method] = b
        self.where = W.Text(placeholder="line, file.c:line or pc N", layout=W.Layout(width="200px"))
        add = W.Button(description="break", icon="circle", layout=W.Layout(width="auto"))
        add.on_click(lambda _: self.add_breakpoint(self.where.value))
        clear = W.Button(description="clear all", layout=W.Layout(width="auto"))
        clear.on_click(lambda _: self._clear())
        self.status = W.HTML()
        self.source, source_box = _pane("source", "48%")
        self.disasm, disasm_box = _pane("disassembly", "48%")
        self.regs, regs_box = _pane("registers", "48%")
        self.stack, stack_box = _pane("stack frame", "48%")
        self.region = W.Dropdown(description="region", layout=W.Layout(width="320px"))
        self.offset = W.IntText(value=0, description="offset", layout=W.Layout(width="160px"))
        self.size = W.IntText(value=128, description="bytes", layout=W.Layout(width="160px"))
        for w in (self.region, self.offset, self.size):
            w.observe(lambda _: self._draw_memory(), "value")
        self.memory = W.HTML()
        super().__init__([
            W.HTML(_CSS + f"<b>Debugger</b> {html.escape(debugger.title)}"),
            W.HBox(list(self.buttons.values())),
            W.HBox([self.where, add, clear]),
            self.status,
            W.HBox([source_box, disasm_box]), W.HBox([regs_box, stack_box]),
            W.HBox([self.region, self.offset, self.size]), self.memory])
        self.add_class("ntoslab-debugger")
        self.add_class("ntl-dbg")
        self.draw()

    def do(self, method: str) -> None:
        """Press a button by its Debugger method name (stepi, step, next, finish, cont...)."""
        try:
            getattr(self.debugger, method)()
        except Exception as exc:  # noqa: BLE001 - shown, never raised into the frontend
            self.status.value = f"<div class='flt'>{html.escape(str(exc))}</div>"
            return
        self.draw()

    def add_breakpoint(self, where: str) -> None:
        try:
            self.debugger.break_at(where)
        except ValueError as exc:
            self.status.value = f"<div class='flt'>{html.escape(str(exc))}</div>"
            return
        self.draw()

    def _clear(self) -> None:
        self.debugger.clear()
        self.draw()

    def _draw_memory(self) -> None:
        if not self.region.value:
            self.memory.value = ""
            return
        try:
            dump = self.debugger.hexdump(self.region.value, self.size.value, self.offset.value)
        except ValueError as exc:
            dump = str(exc)
        self.memory.value = f"<pre style='font-size:12px'>{html.escape(dump)}</pre>"

    def draw(self) -> None:
        d = self.debugger
        bps = ", ".join(sorted({label for label in d.breakpoints.values()})) or "none"
        self.status.value = render_status(d) + f"<div>breakpoints: {html.escape(bps)}</div>"
        self.source.value = render_source(d)
        self.disasm.value = render_disassembly(d)
        self.regs.value = render_registers(d)
        self.stack.value = render_stack(d)
        names = [r.name for r in d.regions()]
        keep = self.region.value if self.region.value in names else None
        if list(self.region.options) != names:
            self.region.options = names
        fallback = next((n for n in names if n == "command line" or n == "context"), names[0] if names else None)
        self.region.value = keep or fallback
        self._draw_memory()
        for b in self.buttons.values():
            b.disabled = d.done

    def summary(self) -> str:
        return str(self.debugger.stop)

    def static_html(self) -> str:
        return render_panel(self.debugger)
