"""The top-level package: what a notebook uses is there, and importing it is cheap."""
from __future__ import annotations

import subprocess
import sys

import ntoslab


def test_import_loads_no_heavy_dependency():
    code = ("import sys, ntoslab; ntoslab.ProcessEvent; "
            "print(sorted(m for m in ('pandas', 'llvmlite', 'pyarrow', 'numpy', 'duckdb') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_every_exported_name_resolves_and_has_a_docstring():
    for name in ntoslab.__all__:
        value = getattr(ntoslab, name)
        assert value.__doc__, name
    assert "emulator" in dir(ntoslab) and "Interpreter" not in ntoslab.__all__


def test_unknown_names_raise_attribute_error():
    try:
        ntoslab.no_such_thing
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("no AttributeError")
