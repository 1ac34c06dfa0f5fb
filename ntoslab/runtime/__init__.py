"""What eBPF for Windows provides to programs: general helpers and map types.

>>> from ntoslab.runtime import Sandbox                       # doctest: +SKIP
>>> Sandbox(ntoslab.elf.load("prog.o")).run("prog").r0        # doctest: +SKIP
"""
from .helpers import HELPER_NAMES
from .maps import Map, MapError, create_map
from .sandbox import Sandbox

__all__ = ["HELPER_NAMES", "Map", "MapError", "Sandbox", "create_map"]
