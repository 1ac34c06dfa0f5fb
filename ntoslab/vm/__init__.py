"""eBPF engines behind one interface, and the sandboxed memory they run in.

>>> from ntoslab.vm import get_engine, Machine, RawCode
>>> get_engine("interpreter").run(RawCode.from_bytes(bytes.fromhex("b7000000010000009500000000000000")), Machine()).r0
1
"""
from .engine import (
    DEFAULT_BUDGET,
    ENGINES,
    Code,
    Engine,
    Helper,
    HelperError,
    Machine,
    ProgramError,
    RawCode,
    RunResult,
    StopProgram,
    TailCall,
    VmFault,
    get_engine,
    register_engine,
)
from .memory import AddressSpace, MemoryFault, Region, RegionKind


def __getattr__(name: str):
    """The engine classes load on first use (the JIT's module imports llvmlite)."""
    if name == "Interpreter":
        from .interpreter import Interpreter
        return Interpreter
    if name == "Jit":
        from .jit import Jit
        return Jit
    raise AttributeError(f"module 'ntoslab.vm' has no attribute {name!r}")


__all__ = ["AddressSpace", "Code", "DEFAULT_BUDGET", "ENGINES", "Engine", "Helper", "HelperError",
           "Interpreter", "Machine", "MemoryFault", "ProgramError", "RawCode", "Region",
           "RunResult", "StopProgram", "TailCall", "VmFault", "get_engine", "register_engine"]
