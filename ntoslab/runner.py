"""`ntoslab run`: attach every process program of each object, inject a trace, report.

JSON (ARCHITECTURE.md): `verdicts` [{index, line, operation, process_id, status, denied, fault}],
`ringbuf` {map: [hex record, ...]} in output order, `dropped` {ring buffer: records it refused},
`maps` {map: [{key: hex, value: hex | [hex per cpu]}]} for every other map, queues and stacks in
pop order with `key: null`, `rejected` [{line, message}] for rows that could not be events, and
`unresolved_sids` {SID: creates} the account helpers could not resolve, `summary` (events,
denied, faulted, rejected, dropped, unresolved_sids, shown).

Every ring buffer has a reader for the whole run (drained after every event, as a subscribed
consumer would be), so records are kept; what a ring still refuses is counted in `dropped`.

The per-row contract is `ntoslab import`'s: a row whose value does not fit its `process_md_t`
field (the ranges and the UNICODE_STRING limit of `trace.schema`), or whose text cannot be
encoded as UTF-16 (a lone surrogate), is a row error naming its line and field; the other rows
still run and the exit status is 1.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .connectors.emulator import EmulatedHook
from .elf import ElfLoadError, MapType
from .hooks.process import EventError, ProcessEvent
from .runtime.maps import MapSpecError, RingBufMap
from .trace import schema
from .trace.schema import RowError, TraceFormatError
from .vm.engine import ProgramError

QUEUE_TYPES = (MapType.QUEUE, MapType.STACK)
TEXT_FIELDS = ("image_path", "command_line", "token_sid", "account_name", "account_domain",
               "host", "source", "process_key", "parent_key")
# UNICODE_STRING fields of process_md_t (at most 65535 bytes of UTF-16)
UNICODE_FIELDS = ("image_path", "command_line")


@dataclass
class RunEvent:
    """An event read from the trace, with the line (or row) it came from."""
    line: int
    event: ProcessEvent


def event_problems(event: ProcessEvent) -> list[str]:
    """Why `event` cannot be injected as it is (empty when it can): values out of the range
    of their `process_md_t` field, text longer than a UNICODE_STRING holds, lone surrogates."""
    problems = []
    for name, (lo, hi) in schema._INT_RANGES.items():
        value = getattr(event, name, None)
        if isinstance(value, int) and not lo <= value <= hi:
            problems.append(f"field {name!r}: {value} is out of range [{lo}, {hi}]")
    for name in TEXT_FIELDS:
        value = getattr(event, name, None)
        if not isinstance(value, str):
            continue
        if name in UNICODE_FIELDS and len(value) > schema.MAX_COMMAND_LINE_CHARS:
            problems.append(f"field {name!r}: {len(value):,} characters, more than a "
                            f"UNICODE_STRING holds ({schema.MAX_COMMAND_LINE_CHARS:,})")
            continue
        try:
            value.encode("utf-16-le")
        except UnicodeEncodeError as exc:
            problems.append(f"field {name!r}: lone surrogate U+{ord(value[exc.start]):04X} at "
                            f"character {exc.start} cannot be encoded as UTF-16")
    return problems


def read_run_events(path: Path) -> tuple[list[RunEvent], list[RowError]]:
    """The events of a trace with their line numbers, and every row rejected (line, field)."""
    path = Path(path)
    if not path.exists():
        raise TraceFormatError(f"{path}: no such file")
    events: list[RunEvent] = []
    errors: list[RowError] = []
    for n, row, err in schema._rows(path):
        if err is not None:
            errors.append(RowError(str(path), n, err))
            continue
        try:
            event = ProcessEvent.from_row(row)
        except EventError as exc:
            errors.append(RowError(str(path), n, str(exc)))
            continue
        problems = event_problems(event)
        if problems:
            errors.append(RowError(str(path), n, "; ".join(problems)))
            continue
        events.append(RunEvent(n, event))
    return events, errors


def dump_map(m) -> list[dict[str, Any]]:
    """A map's entries for the JSON report."""
    if m.spec.type in QUEUE_TYPES:
        values = m.values_in_pop_order() if hasattr(m, "values_in_pop_order") else []
        return [{"key": None, "value": v.hex()} for v in values]
    out = []
    per_cpu = hasattr(m, "lookup_percpu")
    for key in list(m.keys()):
        if per_cpu:
            values = m.lookup_percpu(key)
            if values is None:
                continue
            out.append({"key": key.hex(), "value": [v.hex() for v in values]})
        else:
            value = m.lookup(key)
            if value is None:
                continue
            out.append({"key": key.hex(), "value": value.hex()})
    return out


def entry_programs(obj) -> list:
    """The process programs to attach: all but those that are only tail-call targets (named in a
    prog array's `values` initialiser)."""
    targets = {name for spec in obj.maps.values() if spec.type == MapType.PROG_ARRAY
               for name in spec.initial_values.values()}
    return [p for p in obj.programs if p.type == "process" and p.name not in targets]


def run(objects: list[Path], events_path: Path, engine: str = "jit",
        budget: int | None = None) -> tuple[dict[str, Any], list[RowError], EmulatedHook]:
    hook = EmulatedHook(engine) if budget is None else EmulatedHook(engine, budget=budget)
    loaded = []
    for path in objects:
        obj = hook.load(path)
        loaded.append(obj)
        for prog in entry_programs(obj.obj):
            hook.attach(prog)
    if not hook.links:
        raise ValueError(f"no process program in {', '.join(str(p) for p in objects)}")
    names: dict[str, int] = {}
    for obj in loaded:
        for name in obj.obj.maps:
            names[name] = names.get(name, 0) + 1
    readers: dict[str, tuple[RingBufMap, Any]] = {}
    for obj in loaded:
        for name, spec in obj.obj.maps.items():
            if spec.type == MapType.RINGBUF:
                label = name if names[name] == 1 else f"{Path(obj.path).name}:{name}"
                readers[label] = (obj.sandbox.maps[name], obj.ringbuf(name).record())
    events, errors = read_run_events(events_path)
    verdicts = []
    for item in events:
        try:
            verdicts.append((item.line, hook.inject(item.event)))
        except (EventError, ValueError, OverflowError) as exc:
            # a value pack_event refuses that event_problems did not foresee: still a row error
            errors.append(RowError(str(events_path), item.line, str(exc)))
    errors.sort(key=lambda e: e.line)
    maps: dict[str, list] = {}
    for obj in loaded:
        for name, spec in obj.obj.maps.items():
            if spec.type != MapType.RINGBUF:
                label = name if names[name] == 1 else f"{Path(obj.path).name}:{name}"
                maps[label] = dump_map(obj.sandbox.maps[name])
    rows = []
    for line, v in verdicts:
        faults = [f"{r.program}: {r.fault}" if not r.fault.startswith(f"{r.program}:")
                  else r.fault for r in v.faults]
        rows.append({"index": v.index, "line": line, "operation": v.operation,
                     "process_id": v.process_id, "status": v.status, "denied": v.denied,
                     "fault": "; ".join(faults) or None})
    dropped = {label: m.dropped for label, (m, _) in readers.items()}
    report = {
        "verdicts": rows,
        "ringbuf": {label: [r.hex() for r in rec.records()]
                    for label, (_, rec) in readers.items()},
        "dropped": dropped,
        "maps": maps,
        "rejected": [{"line": e.line, "message": e.message} for e in errors],
        # SIDs no account source resolved (the account helpers returned -2 for them)
        "unresolved_sids": dict(hook.accounts.unresolved.most_common()),
        "summary": {"events": len(rows), "denied": sum(bool(r["denied"]) for r in rows),
                    "faulted": sum(r["fault"] is not None for r in rows),
                    "rejected": len(errors), "dropped": sum(dropped.values()),
                    "unresolved_sids": len(hook.accounts.unresolved),
                    "shown": len(rows)},
    }
    return report, errors, hook


def select(report: dict[str, Any], denied: bool = False, faulted: bool = False,
           limit: int | None = None) -> dict[str, Any]:
    """The report with only the verdicts asked for (denied and/or faulted ones, at most
    `limit`); the summary still counts every event."""
    rows = report["verdicts"]
    if denied or faulted:
        rows = [r for r in rows if (denied and r["denied"]) or (faulted and r["fault"])]
    if limit is not None:
        rows = rows[:max(0, limit)]
    return dict(report, verdicts=rows, summary=dict(report["summary"], shown=len(rows)))


def print_table(report: dict[str, Any], hook: EmulatedHook, out: TextIO) -> None:
    s = report["summary"]
    print(f"{s['events']} events, {s['denied']} denied, {s['faulted']} faulted"
          + (f", {s['rejected']} row(s) rejected" if s["rejected"] else "")
          + (f" ({s['shown']} shown)" if s["shown"] != s["events"] else ""), file=out)
    print(f"{'#':>5}  {'op':<6} {'pid':>10}  {'status':<10}  verdict", file=out)
    for x in report["verdicts"]:
        word = "DENIED" if x["denied"] else "allowed"
        if x["fault"]:
            word += "  FAULT"
        print(f"{x['index']:>5}  {x['operation']:<6} {x['process_id']:>10}  "
              f"0x{x['status'] & 0xFFFFFFFF:08X}  {word}", file=out)
    faulted = [x for x in report["verdicts"] if x["fault"]]
    if faulted:
        print("\nfaults (the program's run failed; Windows allows the event):", file=out)
        for x in faulted:
            print(f"  event {x['index']} (line {x['line']}): {x['fault']}", file=out)
    for name, records in report["ringbuf"].items():
        drops = report["dropped"].get(name, 0)
        print(f"\nring buffer {name}: {len(records)} record(s), {drops} dropped"
              + (" (the ring was full: enlarge max_entries)" if drops else ""), file=out)
    for name, entries in report["maps"].items():
        print(f"map {name}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}", file=out)
    if report["unresolved_sids"]:
        print("\nSIDs no account source knows (account helpers returned -2): " +
              ", ".join(f"{s} ({n})" for s, n in report["unresolved_sids"].items()), file=out)
    printk = hook.printk()
    if len(printk):
        print("\nbpf_printk:", file=out)
        for row in printk.itertuples():
            print(f"  [{row.program}] {row.text}", file=out)


def main(objects: list[Path], events: Path, engine: str, fmt: str, out: TextIO | None = None,
         err: TextIO | None = None, *, denied: bool = False, faulted: bool = False,
         limit: int | None = None) -> int:
    """Run and print; 0 when every row ran cleanly, 1 when a row was rejected, a program
    faulted or a ring buffer dropped records, 2 when nothing could run."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        report, errors, hook = run(objects, events, engine)
    except (ElfLoadError, ProgramError, MapSpecError, TraceFormatError, ValueError,
            KeyError) as exc:
        print(f"ntoslab run: {exc}", file=err)
        return 2
    except MemoryError:
        print("ntoslab run: the host ran out of memory loading or preparing the programs "
              "(a program too large for the engine?)", file=err)
        return 2
    for e in errors:
        print(f"ntoslab run: rejected {e}", file=err)
    s = report["summary"]
    if errors:
        print(f"ntoslab run: {len(errors)} row(s) rejected, {s['events']} injected", file=err)
    if s["faulted"]:
        print(f"ntoslab run: {s['faulted']} event(s) with a faulting program (see 'fault')",
              file=err)
    for name, n in report["dropped"].items():
        if n:
            print(f"ntoslab run: ring buffer {name} dropped {n} record(s): it was full "
                  f"(enlarge its max_entries)", file=err)
    shown = select(report, denied, faulted, limit)
    if fmt == "json":
        json.dump(shown, out, indent=1)
        out.write("\n")
    else:
        print_table(shown, hook, out)
    return 1 if errors or s["faulted"] or s["dropped"] else 0
