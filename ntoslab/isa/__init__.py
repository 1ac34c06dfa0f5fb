"""The eBPF instruction set: encodings (`opcodes`), an assembler for the bpf_conformance syntax
(`assembler`) and a disassembler printing llvm-objdump syntax (`disasm`).

>>> from ntoslab.isa import assemble, decode, format_insn
>>> [format_insn(i, pc) for pc, i in enumerate(decode(assemble("mov32 %r0, -1\\nexit")))]
['w0 = -1', 'exit']
"""
from __future__ import annotations

from . import assembler, disasm, opcodes
from .assembler import AssemblyError, assemble, assemble_instructions
from .disasm import disassemble, format_insn, is_valid, jump_target
from .opcodes import *  # noqa: F401,F403  (constants, Instruction, decode, encode, ...)

_OPCODE_NAMES = [n for n in vars(opcodes) if n.isupper() and not n.startswith("_")] + [
    "DecodeError", "Instruction", "decode", "encode", "iter_slots", "sign32", "sign64"]

__all__ = (["opcodes", "assembler", "disasm"] + _OPCODE_NAMES + list(assembler.__all__)
           + list(disasm.__all__))
