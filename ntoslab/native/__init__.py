"""The native runtime: the address space, map storage, helpers and batch replay in C, built once
by the bundled clang (ziglang) and shared by both engines through ctypes.

>>> from ntoslab.native import lib
>>> lib().ntl_window_base(1) >> 32
257
"""
from __future__ import annotations

import ctypes
import threading

from .abi import declare
from .build import NativeBuildError, library_path

_LIB: ctypes.CDLL | None = None
_LOCK = threading.Lock()


def lib() -> ctypes.CDLL:
    """The loaded runtime (compiled on first use; cached on disk afterwards)."""
    global _LIB
    if _LIB is None:
        with _LOCK:
            if _LIB is None:
                _LIB = declare(ctypes.CDLL(str(library_path())))
    return _LIB


__all__ = ["NativeBuildError", "lib", "library_path"]
