"""ntoslab: research Windows process-event eBPF programs from Python.

Load the same clang-compiled ELF objects eBPF for Windows loads, run them on our own engines
with Windows helper ids and map types, and study what they did.

>>> import ntoslab
>>> with ntoslab.emulator() as hook:                                           # doctest: +SKIP
...     hook.attach(hook.load("bpf/examples/deny_policy.o").program("DenyPolicy"))
...     hook.inject(ntoslab.ProcessEvent.create(pid=7, parent=4, image=r"\\??\\C:\\mimikatz.exe")).denied
True

The top level is what a notebook uses: hooks (`emulator`, `live`), events and traces
(`ProcessEvent`, `import_logs`, `read_trace`), the analyses, the widgets, and the warnings and
errors a run can raise. Engine internals stay in `ntoslab.vm`, `ntoslab.elf`, `ntoslab.isa`
and `ntoslab.runtime`. Everything is imported on first use: `import ntoslab` loads neither
pandas nor llvmlite.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it (imported when the name is first used)
_EXPORTS = {
    # hooks and programs
    "emulator": ".connectors.emulator", "EmulatedHook": ".connectors.emulator",
    "LoadedObject": ".connectors.emulator", "Verdict": ".connectors.emulator",
    "live": ".connectors.live", "LiveUnavailable": ".connectors.live",
    "ProcessEvent": ".hooks.process", "AccountTable": ".hooks.accounts",
    "load": ".elf", "ElfLoadError": ".elf", "Sandbox": ".runtime",
    "ProgramError": ".vm", "VmFault": ".vm",
    # what a run tells you
    "ProgramFaulted": ".connectors.emulator", "RecordsDropped": ".connectors.emulator",
    "AccountsUnresolved": ".connectors.emulator", "TestRunRefused": ".hooks.notify_context",
    # traces
    "import_logs": ".trace.importer", "read_trace": ".trace.schema",
    "write_trace": ".trace.schema", "read_events": ".trace.schema",
    "generate_session": ".trace.synthetic",
    # analyses
    "ProcessTree": ".analysis", "lifetimes": ".analysis", "exit_code_summary": ".analysis",
    "parent_child_pairs": ".analysis", "rare_pairs": ".analysis", "lolbin_table": ".analysis",
    "suspicious_commands": ".analysis", "prevented": ".analysis",
    "verdict_summary": ".analysis", "sql": ".analysis",
    # widgets
    "Injector": ".widgets", "MapInspector": ".widgets", "DebuggerWidget": ".widgets",
    "LiveTable": ".widgets",
}

if TYPE_CHECKING:   # what the lazy names are, for type checkers and IDEs
    from .analysis import (
        ProcessTree,
        exit_code_summary,
        lifetimes,
        lolbin_table,
        parent_child_pairs,
        prevented,
        rare_pairs,
        sql,
        suspicious_commands,
        verdict_summary,
    )
    from .connectors.emulator import (
        AccountsUnresolved,
        EmulatedHook,
        LoadedObject,
        ProgramFaulted,
        RecordsDropped,
        Verdict,
        emulator,
    )
    from .connectors.live import LiveUnavailable, live
    from .elf import ElfLoadError, load
    from .hooks.accounts import AccountTable
    from .hooks.notify_context import TestRunRefused
    from .hooks.process import ProcessEvent
    from .runtime import Sandbox
    from .trace.importer import import_logs
    from .trace.schema import read_events, read_trace, write_trace
    from .trace.synthetic import generate_session
    from .vm import ProgramError, VmFault
    from .widgets import DebuggerWidget, Injector, LiveTable, MapInspector


# subpackages reached as attributes: `ntoslab.fleet` (the same analyses and replay over many
# hosts on Dask; imported on first use, so `import ntoslab` does not import dask):
# >>> client = ntoslab.fleet.connect()                                        # doctest: +SKIP
# >>> ntoslab.fleet.replay("fleet/", ["bpf/examples/deny_policy.o"]).denied_per_host()  # doctest: +SKIP
_MODULES = {"fleet": ".fleet"}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name], __name__)
        globals()[name] = value
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ntoslab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_MODULES))


def debugger(hook, event, program=None, **kw):
    """Step through `program` (default: the first attached) as the hook runs it on `event`.

    >>> dbg = ntoslab.debugger(hook, event, at_fault=True); dbg.registers()   # doctest: +SKIP
    """
    from .debug import debug
    return debug(hook, event, program, **kw)


def load_ipython_extension(ipython) -> None:
    """`%load_ext ntoslab`: the `%%ebpf` cell magic and `%ntoslab` (see ntoslab.magics)."""
    from .magics import load_ipython_extension as load
    load(ipython)


__all__ = sorted([*_EXPORTS, *_MODULES, "debugger", "load_ipython_extension"])
