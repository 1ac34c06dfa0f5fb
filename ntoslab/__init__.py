"""ntoslab: research Windows process-event eBPF programs from Python.

Load the same clang-compiled ELF objects eBPF for Windows loads, run them on our own engines
with Windows helper ids and map types, and study what they did.

>>> import ntoslab
>>> with ntoslab.emulator() as hook:                                           # doctest: +SKIP
...     hook.attach(hook.load("bpf/examples/deny_policy.o").program("DenyPolicy"))
...     hook.inject(ntoslab.ProcessEvent.create(pid=7, parent=4, image=r"\\??\\C:\\mimikatz.exe")).denied
True
"""
from __future__ import annotations

from .connectors.emulator import EmulatedHook, LoadedObject, Verdict, emulator
from .connectors.live import LiveUnavailable, live
from .elf import ElfLoadError, ElfObject, MapSpec, Program, load, load_bytes
from .isa.assembler import AssemblyError, assemble
from .hooks.process import ProcessEvent
from .runtime import Sandbox
from .trace.schema import read_events
from .vm import (ENGINES, Engine, Interpreter, Machine, ProgramError, RawCode, RunResult, VmFault,
                 get_engine)

__version__ = "0.1.0"


def debugger(hook, event, program=None, **kw):
    """Step through `program` (default: the first attached) as the hook runs it on `event`.

    >>> dbg = ntoslab.debugger(hook, event, at_fault=True); dbg.registers()   # doctest: +SKIP
    """
    from .debug import debug
    return debug(hook, event, program, **kw)


def __getattr__(name: str):
    """`ntoslab.fleet` (the same analyses and replay over many hosts on Dask), imported on first
    use so that `import ntoslab` does not import dask.

    >>> client = ntoslab.fleet.connect()                                        # doctest: +SKIP
    >>> ntoslab.fleet.replay("fleet/", ["bpf/examples/deny_policy.o"]).denied_per_host()  # doctest: +SKIP
    """
    if name == "fleet":
        import importlib
        return importlib.import_module(".fleet", __name__)
    raise AttributeError(f"module 'ntoslab' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    """`%load_ext ntoslab`: the `%%ebpf` cell magic and `%ntoslab` (see ntoslab.magics)."""
    from .magics import load_ipython_extension as load
    load(ipython)

__all__ = ["AssemblyError", "ENGINES", "ElfLoadError", "ElfObject", "EmulatedHook", "Engine",
           "Interpreter", "LoadedObject", "Machine", "MapSpec", "ProcessEvent", "Program",
           "ProgramError", "RawCode", "RunResult", "Sandbox", "Verdict", "VmFault", "assemble",
           "debugger", "emulator", "fleet", "get_engine", "live", "LiveUnavailable", "load", "load_bytes", "read_events"]
