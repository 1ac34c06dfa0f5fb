"""Step through a program as the emulator runs it: breakpoints on source lines or pcs, step,
step over, continue, registers with the regions they point into, stack and memory; a run that
faults opens at the faulting instruction.

>>> dbg = ntoslab.debugger(hook, event, "DenyPolicy", at_fault=True)     # doctest: +SKIP
>>> dbg.stop, dbg.registers()[1]                                          # doctest: +SKIP
"""
from .debugger import Debugger, Stop, hexdump
from .session import DebugError, debug, debug_sandbox
from .stepper import Frame, Stepper

__all__ = ["DebugError", "Debugger", "Frame", "Stepper", "Stop", "debug", "debug_sandbox",
           "hexdump"]
