"""Compile eBPF C into ELF objects (placeholder: extended by the toolchain work)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class BuildError(RuntimeError):
    """The compiler rejected a source file; the message is the compiler's own output."""


def compile_c(source: Path | str, output: Path | str, include_dirs: list[Path | str] = ()) -> Path:
    """Compile one eBPF C file to an object with BTF and line info."""
    cmd = [sys.executable, "-m", "ziglang", "cc", "-target", "bpfel-freestanding-none", "-O2", "-g",
           "-c", str(source), "-o", str(output)]
    for inc in include_dirs:
        cmd += ["-I", str(inc)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise BuildError(proc.stderr)
    return Path(output)
