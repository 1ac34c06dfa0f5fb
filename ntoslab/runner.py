"""`ntoslab run`: attach every process program of each object, inject a trace, report.

JSON (ARCHITECTURE.md): `verdicts` [{index, operation, process_id, status, denied}], `ringbuf`
{map: [hex record, ...]} in output order, `maps` {map: [{key: hex, value: hex | [hex per cpu]}]}
for every other map, queues and stacks in pop order with `key: null`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from .connectors.emulator import EmulatedHook
from .elf import ElfLoadError
from .trace.schema import RowError, TraceFormatError, read_events
from .vm.engine import ProgramError

QUEUE_TYPES = (10, 12)
RINGBUF = 13


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
    targets = {name for spec in obj.maps.values() if spec.type == 3
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
    events, errors = read_events(events_path)
    verdicts = [hook.inject(ev) for ev in events]
    names: dict[str, int] = {}
    for obj in loaded:
        for name in obj.obj.maps:
            names[name] = names.get(name, 0) + 1
    ringbuf: dict[str, list[str]] = {}
    maps: dict[str, list] = {}
    for obj in loaded:
        for name, spec in obj.obj.maps.items():
            label = name if names[name] == 1 else f"{Path(obj.path).name}:{name}"
            m = obj.sandbox.maps[name]
            if spec.type == RINGBUF:
                ringbuf[label] = [r.hex() for r in m.records()]
            else:
                maps[label] = dump_map(m)
    report = {
        "verdicts": [{"index": v.index, "operation": v.operation, "process_id": v.process_id,
                      "status": v.status, "denied": v.denied} for v in verdicts],
        "ringbuf": ringbuf,
        "maps": maps,
    }
    return report, errors, hook


def print_table(report: dict[str, Any], hook: EmulatedHook, out: TextIO) -> None:
    v = report["verdicts"]
    denied = sum(1 for x in v if x["denied"])
    print(f"{len(v)} events, {denied} denied", file=out)
    print(f"{'#':>5}  {'op':<6} {'pid':>7}  {'status':<10}  verdict", file=out)
    for x in v:
        print(f"{x['index']:>5}  {x['operation']:<6} {x['process_id']:>7}  "
              f"0x{x['status'] & 0xFFFFFFFF:08X}  {'DENIED' if x['denied'] else 'allowed'}",
              file=out)
    for name, records in report["ringbuf"].items():
        print(f"\nring buffer {name}: {len(records)} record(s)", file=out)
    for name, entries in report["maps"].items():
        print(f"map {name}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}", file=out)
    printk = hook.printk()
    if len(printk):
        print("\nbpf_printk:", file=out)
        for row in printk.itertuples():
            print(f"  [{row.program}] {row.text}", file=out)


def main(objects: list[Path], events: Path, engine: str, fmt: str, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr) -> int:
    try:
        report, errors, hook = run(objects, events, engine)
    except (ElfLoadError, ProgramError, TraceFormatError, ValueError, KeyError) as exc:
        print(f"ntoslab run: {exc}", file=err)
        return 2
    for e in errors:
        print(f"ntoslab run: rejected {e}", file=err)
    if errors:
        print(f"ntoslab run: {len(errors)} row(s) rejected, "
              f"{len(report['verdicts'])} injected", file=err)
    if fmt == "json":
        json.dump(report, out, indent=1)
        out.write("\n")
    else:
        print_table(report, hook, out)
    return 1 if errors else 0
