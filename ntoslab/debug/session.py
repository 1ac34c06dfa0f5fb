"""Open a debugger on a program as the hook (or a sandbox) really runs it.

The hook's own `inject` runs in a worker thread; when it reaches the program to debug, the run
is handed over as a `Stepper` and the worker waits while the caller steps it (nothing runs
concurrently: the worker only resumes once the program has ended, then finishes `inject` —
later programs, the verdict, subscribers — exactly as without the debugger).

>>> dbg = debug(hook, ntoslab.ProcessEvent.create(pid=7, parent=4, image="x.exe"))   # doctest: +SKIP
>>> dbg.run_to_fault(); dbg.verdict                                                # doctest: +SKIP
"""
from __future__ import annotations

import queue
import threading
import weakref
from typing import Any, Callable, Iterable

from ..vm.engine import DEFAULT_BUDGET, Engine, VmFault
from .debugger import Debugger
from .stepper import Stepper

HANDOVER_TIMEOUT = 120.0   # seconds to wait for the hook to reach the program (or finish)


class DebugError(RuntimeError):
    """The debugger could not be opened (program not attached, never ran on the event...)."""


class _Trap(Engine):
    """Stands in for a sandbox's engine: the first run of `target` is handed over."""

    def __init__(self, inner: Engine, target: Any, session: "_Session") -> None:
        self.inner, self.target, self.session = inner, target, session
        self.name = getattr(inner, "name", "engine")
        self.taken = False

    def prepare(self, code, machine):
        return self.inner.prepare(code, machine)

    def run(self, code, machine, args=(), budget=DEFAULT_BUDGET):
        if self.taken or code is not self.target:
            return self.inner.run(code, machine, args, budget)
        self.taken = True
        stepper = Stepper(code, machine, args, budget, self.inner)
        self.session.handover(stepper)
        if stepper.fault is not None:
            raise stepper.fault
        return stepper.result


class _Session:
    def __init__(self, box, target, action: Callable[[], Any]) -> None:
        self.box, self.resume = box, threading.Event()
        self.messages: queue.Queue = queue.Queue()
        self.trap = _Trap(box.engine, target, self)
        self.thread = threading.Thread(target=self._work, args=(action,), daemon=True,
                                       name=f"ntoslab-debug-{target.name}")

    def _work(self, action) -> None:
        inner = self.box.engine
        self.box.engine = self.trap
        try:
            outcome: Any = ("finished", action())
        except BaseException as exc:  # handed to the caller, never lost in the thread
            outcome = ("error", exc)
        finally:
            self.box.engine = inner
        self.messages.put(outcome)

    def handover(self, stepper: Stepper) -> None:      # worker thread
        self.messages.put(("stepper", stepper))
        self.resume.wait()

    def start(self) -> tuple[str, Any]:
        self.thread.start()
        return self._next()

    def _next(self) -> tuple[str, Any]:
        try:
            return self.messages.get(timeout=HANDOVER_TIMEOUT)
        except queue.Empty:
            raise DebugError(f"the run did not reach the program within {HANDOVER_TIMEOUT:.0f} s")\
                from None

    def finish(self) -> Any:                           # the stepper has ended: let inject go on
        self.resume.set()
        kind, payload = self._next()
        self.thread.join(timeout=HANDOVER_TIMEOUT)
        if kind == "error" and not isinstance(payload, VmFault):
            raise payload
        return payload             # the verdict, a RunResult, or the fault the run raised


_OPEN: "weakref.WeakKeyDictionary[Any, Debugger]" = weakref.WeakKeyDictionary()


def _open(owner, box, program, action, title, breakpoints, at_fault) -> Debugger:
    previous = _OPEN.pop(owner, None)
    if previous is not None:       # one held run per hook: finish the last one first
        previous.close()
    session = _Session(box, program, action)
    kind, payload = session.start()
    if kind == "error":
        raise payload
    if kind == "finished":
        raise DebugError(f"{program.name} did not run ({title}); an earlier program may have "
                         f"denied the event. Outcome: {payload!r}")
    dbg = Debugger(payload, on_done=session.finish, title=title)
    _OPEN[owner] = dbg
    for where in breakpoints:
        dbg.break_at(where)
    if at_fault:
        dbg.run_to_fault()
    return dbg


def _find_link(hook, program):
    links = list(getattr(hook, "links", []))
    if not links:
        raise DebugError("nothing is attached to the hook: attach the program first")
    if program is None:
        return links[0]
    for link in links:
        if link.program is program or link.program.name == program:
            return link
    names = ", ".join(l.program.name for l in links)
    raise DebugError(f"program {getattr(program, 'name', program)!r} is not attached; "
                     f"attached: {names}")


def debug(hook, event, program=None, *, breakpoints: Iterable[int | str] = (),
          at_fault: bool = False) -> Debugger:
    """Inject `event` into an emulated `hook` and stop at the first instruction of `program`
    (an attached Program or its name; default the first attached). `breakpoints` are set
    at once; `at_fault=True` runs straight to the faulting instruction (or the end).
    The run is held at its end (regions still mapped, for inspection) until `dbg.verdict`
    or `dbg.close()` lets `inject` finish; opening another debugger on the hook closes this one.
    """
    from ..hooks.process import ProcessEvent
    if not isinstance(event, ProcessEvent):
        event = ProcessEvent.from_row(event)
    link = _find_link(hook, program)
    title = f"{link.program.name} on {event.operation} pid {event.process_id}"
    return _open(hook, link.loaded.sandbox, link.program, lambda: hook.inject(event), title,
                 breakpoints, at_fault)


def debug_sandbox(box, program, ctx: bytes = b"", *, breakpoints: Iterable[int | str] = (),
                  at_fault: bool = False, ctx_writable: bool = False) -> Debugger:
    """Debug `box.run(program, ctx)` on a Sandbox (r1 points at a copy of `ctx`)."""
    prog = box.program(program)
    return _open(box, box, prog, lambda: box.run(prog, ctx, ctx_writable=ctx_writable),
                 f"{prog.name} on a {len(ctx)}-byte context", breakpoints, at_fault)
