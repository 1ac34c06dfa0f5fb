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

from .connectors.emulator import (AccountsUnresolved, EmulatedHook, LoadedObject, ProgramFaulted,
                                  RecordsDropped, Verdict, emulator)
from .hooks.accounts import AccountTable
from .hooks.notify_context import TestRunRefused
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


def load_ipython_extension(ipython) -> None:
    """`%load_ext ntoslab`: the `%%ebpf` cell magic and `%ntoslab` (see ntoslab.magics)."""
    from .magics import load_ipython_extension as load
    load(ipython)

__all__ = ["AccountTable", "AccountsUnresolved", "ProgramFaulted", "RecordsDropped", "TestRunRefused",
           "AssemblyError", "ENGINES", "ElfLoadError", "ElfObject", "EmulatedHook", "Engine",
           "Interpreter", "LoadedObject", "Machine", "MapSpec", "ProcessEvent", "Program",
           "ProgramError", "RawCode", "RunResult", "Sandbox", "Verdict", "VmFault", "assemble",
           "debugger", "emulator", "get_engine", "live", "LiveUnavailable", "load", "load_bytes", "read_events"]
