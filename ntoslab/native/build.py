"""Build the native runtime once and cache it: the C sources beside this file, compiled by the
ziglang wheel's clang (a dependency, so no system compiler is needed on any platform).

The library lands in ``$NTOSLAB_CACHE`` (default: ``$XDG_CACHE_HOME/ntoslab`` or
``~/.cache/ntoslab``) under a name that hashes the sources, the compiler and the platform, so a
changed source or another machine gets its own build. ``NTOSLAB_CC`` overrides the compiler
command (for example ``"clang"``).

>>> path = library_path()          # doctest: +SKIP
>>> path.name                      # doctest: +SKIP
'libntoslab_rt-3f2a...so'
"""
from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = sorted(HERE.glob("*.c"))
HEADERS = sorted(HERE.glob("*.h"))
FLAGS = ["-shared", "-fPIC", "-O2", "-mcpu=baseline", "-fvisibility=hidden", "-Wall", "-Wextra",
         "-Wno-unused-parameter", "-fno-strict-aliasing"]


class NativeBuildError(RuntimeError):
    """The native runtime could not be compiled (the compiler's output is in the message)."""


def cache_dir() -> Path:
    root = os.environ.get("NTOSLAB_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ntoslab"


def compiler() -> list[str]:
    cc = os.environ.get("NTOSLAB_CC")
    return shlex.split(cc) if cc else [sys.executable, "-m", "ziglang", "cc"]


def _suffix() -> str:
    if sys.platform == "win32":
        return ".dll"
    if sys.platform == "darwin":
        return ".dylib"
    return ".so"


def _digest() -> str:
    h = hashlib.sha256()
    for path in SOURCES + HEADERS:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(" ".join(compiler() + FLAGS).encode())
    h.update(f"{sys.platform} {platform.machine()}".encode())
    try:
        from importlib.metadata import version

        import ziglang  # noqa: F401
        h.update(version("ziglang").encode())
    except Exception:
        pass
    return h.hexdigest()[:16]


def library_path(rebuild: bool = False) -> Path:
    """The compiled runtime, building it first when this version has not been built."""
    out = cache_dir() / f"libntoslab_rt-{_digest()}{_suffix()}"
    if out.exists() and not rebuild:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.stem + ".", suffix=_suffix(), dir=out.parent)
    os.close(fd)
    cmd = compiler() + FLAGS + ["-I", str(HERE)] + [str(p) for p in SOURCES] + ["-o", tmp]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        os.unlink(tmp)
        raise NativeBuildError(f"cannot run the compiler {cmd[0]!r}: {exc}") from None
    if proc.returncode != 0:
        os.unlink(tmp)
        raise NativeBuildError(f"building the native runtime failed ({' '.join(cmd)}):\n"
                               f"{proc.stderr.strip()}")
    os.replace(tmp, out)  # atomic: a concurrent build of the same sources is harmless
    return out


if __name__ == "__main__":
    print(library_path(rebuild="--rebuild" in sys.argv))
