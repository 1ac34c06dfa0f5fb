"""eBPF engines behind one interface, and the sandboxed memory they run in.

>>> from ntoslab.vm import get_engine, Machine, RawCode
>>> get_engine("interpreter").run(RawCode.from_bytes(bytes.fromhex("b7000000010000009500000000000000")), Machine()).r0
1
"""
from .engine import (DEFAULT_BUDGET, ENGINES, Code, Engine, Helper, HelperError, Machine,
                     ProgramError, RawCode, RunResult, StopProgram, TailCall, VmFault, get_engine,
                     register_engine)
from .interpreter import Interpreter
from .jit import Jit
from .memory import AddressSpace, MemoryFault, Region

__all__ = ["AddressSpace", "Code", "DEFAULT_BUDGET", "ENGINES", "Engine", "Helper", "HelperError",
           "Interpreter", "Machine", "MemoryFault", "ProgramError", "RawCode", "Region",
           "RunResult", "StopProgram", "TailCall", "VmFault", "get_engine", "register_engine"]
