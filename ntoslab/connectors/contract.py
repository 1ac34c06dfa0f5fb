"""The ProcessHook contract: what every hook offers, and the pieces they share.

A notebook written against `ProcessHook` runs unchanged on the emulator (`ntoslab.emulator()`),
on Linux live (`ntoslab.live()`, real process events, programs in shadow mode) and on Windows
(`WindowsHook`, the real ntosebpfext through EbpfApi.dll):

>>> hook: ProcessHook = ntoslab.emulator()                                 # doctest: +SKIP
>>> isinstance(hook, ProcessHook), hook.replay(trace).columns.tolist()[:3]   # doctest: +SKIP
(True, ['index', 'operation', 'process_id'])

Shared here, written once: `Verdict` and `ProgramRun` (what a hook decided), `Closing` (the
context-manager and clean-up mixin), `replay_events` (the event-by-event replay every hook
without a native batch path uses), and `verdict_frame` (its rows with one set of columns and
dtypes, error rows included, so `replay()` looks the same on every hook).
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Iterable,
    Protocol,
    Sequence,
    runtime_checkable,
)

from ..hooks.process import EventError, ProcessEvent, is_missing

if TYPE_CHECKING:
    import pandas as pd

# the columns of a replay's frame, on every hook
VERDICT_COLUMNS = ["index", "operation", "process_id", "status", "status_hex", "denied",
                   "decided_by", "instructions", "programs_run", "faults", "faulted", "error",
                   "row", "creator_inferred"]
# its text columns: one dtype (frames.text_dtype, <NA> for missing) whatever the rows hold
VERDICT_TEXT = ("operation", "status_hex", "decided_by", "faults", "error")


@dataclass
class ProgramRun:
    """One program's run on one event."""

    object: str
    program: str
    status: int | None           # signed 32-bit r0, None when the run faulted
    instructions: int
    fault: str | None = None


@dataclass
class Verdict:
    """What the hook decided for one event."""

    index: int
    operation: str
    process_id: int
    status: int = 0
    denied: bool = False
    decided_by: str | None = None
    instructions: int = 0
    runs: list[ProgramRun] = field(default_factory=list)
    event: ProcessEvent | None = field(default=None, repr=False, compare=False)

    @property
    def faults(self) -> list[ProgramRun]:
        return [r for r in self.runs if r.fault]

    def as_row(self) -> dict[str, Any]:
        return {"index": self.index, "operation": self.operation, "process_id": self.process_id,
                "status": self.status, "status_hex": f"0x{self.status & 0xFFFFFFFF:08X}",
                "denied": self.denied, "decided_by": self.decided_by,
                "instructions": self.instructions, "programs_run": len(self.runs),
                "faults": "; ".join(r.fault for r in self.faults if r.fault) or None,
                "faulted": bool(self.faults)}

    def _repr_html_(self) -> str:
        color = "#b00" if self.denied else "#070"
        word = "DENIED" if self.denied else "allowed"
        rows = "".join(f"<tr><td>{html.escape(r.program)}</td><td>{r.status}</td>"
                       f"<td>{r.instructions}</td><td>{html.escape(r.fault or '')}</td></tr>"
                       for r in self.runs)
        return (f"<div><b style='color:{color}'>{word}</b> {self.operation} pid "
                f"{self.process_id}: status 0x{self.status & 0xFFFFFFFF:08X}"
                f"{' by ' + html.escape(self.decided_by) if self.decided_by else ''}"
                f"<table><tr><th>program</th><th>status</th><th>insns</th><th>fault</th></tr>"
                f"{rows}</table></div>")


@runtime_checkable
class ProcessHook(Protocol):
    """The process hook API. Objects (`load`) expose `programs`, `program(name)`, `map(name)`
    (a MutableMapping, see views.MapView) and `ringbuf(name)`; `attach` returns a link that
    `detach` takes; programs run in attach order and a negative NTSTATUS on a create stops the
    later ones."""

    kind: str

    @property
    def objects(self) -> Sequence[Any]: ...

    @property
    def links(self) -> Sequence[Any]: ...

    def load(self, path: str | os.PathLike) -> Any: ...

    def attach(self, program: Any, name: str | None = None) -> Any: ...

    def detach(self, link: Any) -> None: ...

    def inject(self, event: ProcessEvent | dict) -> Verdict: ...

    def replay(self, events: Any, progress: bool | None = None) -> "pd.DataFrame": ...

    def subscribe(self, callback: Callable[[Verdict], None]) -> None: ...

    def verdicts(self) -> "pd.DataFrame": ...

    def printk(self) -> "pd.DataFrame": ...

    def close(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: Any) -> None: ...


class LiveUnavailable(RuntimeError):
    """This machine cannot run the live hook; `missing` lists each reason with its fix."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__("live process capture is not available here:\n" +
                         "\n".join(f"  - {m}" for m in missing))


class Closing:
    """A context manager that calls `close()` on exit, and once more, best effort, when the
    object is collected (so a forgotten object does not leak kernel resources)."""

    def close(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def error_row(operation: Any, message: str, row: int) -> dict[str, Any]:
    """The replay row of an input row that could not become an event."""
    return {"index": None, "operation": operation, "process_id": None, "status": None,
            "status_hex": None, "denied": None, "decided_by": None, "instructions": 0,
            "programs_run": 0, "faults": None, "faulted": None, "error": message, "row": row,
            "creator_inferred": None}


def replay_events(inject: Callable[[ProcessEvent], Verdict],
                  events: "pd.DataFrame | Iterable[ProcessEvent | dict]",
                  progress: bool | None = None) -> "pd.DataFrame":
    """Inject every event with `inject`, one by one; a row per input row (VERDICT_COLUMNS):
    rows that cannot become events carry the reason in `error`, never dropped. The progress
    bar shows from 2,000 events unless `progress` says otherwise."""
    import pandas as pd
    from tqdm.auto import tqdm

    rows: Sequence = events.to_dict("records") if isinstance(events, pd.DataFrame) \
        else list(events)
    show = progress if progress is not None else len(rows) >= 2000
    out = []
    for i, row in enumerate(tqdm(rows, disable=not show, desc="replay", unit="event")):
        try:
            ev = row if isinstance(row, ProcessEvent) else \
                ProcessEvent.from_row(row, f"row {i}: ")
            record = inject(ev).as_row()
        except EventError as exc:
            text = str(exc) if str(exc).startswith("row ") else f"row {i}: {exc}"
            out.append(error_row(row.get("operation") if isinstance(row, dict) else None,
                                 text, i))
            continue
        inferred = row.get("creator_inferred") if isinstance(row, dict) else None
        if is_missing(inferred):  # missing or NaN: decide here
            inferred = ev.is_create and isinstance(row, dict) and \
                is_missing(row.get("creating_process_id"))
        record.update(error=None, row=i, creator_inferred=bool(inferred))
        out.append(record)
    return verdict_frame(out)


def verdict_frame(rows: list[dict[str, Any]]) -> "pd.DataFrame":
    """Replay rows as a frame with VERDICT_COLUMNS in order (missing ones added empty)."""
    import pandas as pd
    frame = pd.DataFrame(rows)
    for name in VERDICT_COLUMNS:
        if name not in frame.columns:
            frame[name] = None
    return typed_verdicts(frame[VERDICT_COLUMNS + [c for c in frame.columns
                                                  if c not in VERDICT_COLUMNS]])


def typed_verdicts(frame: "pd.DataFrame") -> "pd.DataFrame":
    """A replay's frame with its text columns in the one text dtype (every replay path ends
    here, so inject-by-inject and batch replays agree)."""
    from .frames import as_text
    return as_text(frame, VERDICT_TEXT)


# the columns of `verdicts()`, on every hook: a verdict's, and what the event was
HISTORY_COLUMNS = ["index", "operation", "process_id", "status", "status_hex", "denied",
                   "decided_by", "instructions", "programs_run", "faults", "faulted", "time",
                   "image_path", "command_line", "process_key", "enforced"]


def history_row(verdict: Verdict, event: ProcessEvent | None = None,
                enforced: bool = False) -> dict[str, Any]:
    """A `verdicts()` row: the verdict and its event (`enforced`: a real deny stopped a real
    process; False for the emulator, shadow mode and test runs)."""
    event = event or verdict.event
    row = verdict.as_row()
    row.update(time=event.time if event else 0, image_path=event.image_path if event else None,
               command_line=event.command_line if event else None,
               process_key=event.process_key if event else None, enforced=enforced)
    return row


def history_frame(parts: Iterable[Any]) -> "pd.DataFrame":
    """`verdicts()` from history rows (dicts) and ready frames, in order, with HISTORY_COLUMNS
    and event times as UTC datetimes; an empty history has the columns too."""
    import pandas as pd

    from .frames import as_text, with_utc_times
    frames, rows = [], []
    for item in parts:
        if isinstance(item, dict):
            rows.append(item)
            continue
        if rows:
            frames.append(pd.DataFrame(rows))
            rows = []
        frames.append(item)
    if rows:
        frames.append(pd.DataFrame(rows))
    if not frames:
        empty = pd.DataFrame({name: pd.Series(dtype="datetime64[ns, UTC]" if name == "time"
                                              else object) for name in HISTORY_COLUMNS})
        return as_text(empty, HISTORY_TEXT)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return with_utc_times(as_text(frame, HISTORY_TEXT))


# text columns of verdicts(): one dtype whatever the rows hold (all missing included)
HISTORY_TEXT = ("operation", "status_hex", "decided_by", "faults", "image_path",
                "command_line", "process_key")
