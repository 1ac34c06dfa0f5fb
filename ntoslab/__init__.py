"""ntoslab: research Windows process-event eBPF programs from Python.

Load the same clang-compiled ELF objects eBPF for Windows loads, run them on our own engines
with Windows helper ids and map types, and study what they did.

>>> import ntoslab
>>> box = ntoslab.Sandbox(ntoslab.load("bpf/tests/globals.o"))     # doctest: +SKIP
>>> box.run("count", bytes(144)).r0                                 # doctest: +SKIP
"""
from __future__ import annotations

from .elf import ElfLoadError, ElfObject, MapSpec, Program, load, load_bytes
from .isa.assembler import AssemblyError, assemble
from .runtime import Sandbox
from .vm import (ENGINES, Engine, Interpreter, Machine, ProgramError, RawCode, RunResult, VmFault,
                 get_engine)

__version__ = "0.1.0"

__all__ = ["AssemblyError", "ENGINES", "ElfLoadError", "ElfObject", "Engine", "Interpreter",
           "Machine", "MapSpec", "Program", "ProgramError", "RawCode", "RunResult", "Sandbox",
           "VmFault", "assemble", "get_engine", "load", "load_bytes"]
