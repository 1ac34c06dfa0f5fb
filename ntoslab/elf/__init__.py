"""Loading eBPF ELF objects: programs, maps, BTF and line info.

>>> obj = ntoslab.elf.load("bpf/tests/globals.o")   # doctest: +SKIP
>>> obj.programs, obj.maps                           # doctest: +SKIP
"""
from .errors import ElfLoadError
from .loader import load, load_bytes
from .program import (
                      MAP_TYPE_IDS,
                      MAP_TYPES,
                      ElfObject,
                      Function,
                      MapSpec,
                      MapType,
                      Program,
                      SourceLine,
)
from .sections import nearest_section, program_type

__all__ = ["ElfLoadError", "ElfObject", "Function", "MAP_TYPES", "MAP_TYPE_IDS", "MapSpec",
           "MapType", "Program", "SourceLine", "load", "load_bytes", "nearest_section", "program_type"]
