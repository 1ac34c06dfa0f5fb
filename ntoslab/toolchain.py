"""Compile eBPF C into ELF objects with BTF: clang from PATH (14+), else the ziglang wheel's clang.

Both compilers get the same flags, so objects look alike whichever is used::

    clang -target bpf -ffreestanding -mcpu=v3 -O2 -g ... -c FILE.c -o FILE.o
    python -m ziglang cc -target bpfel-freestanding-none -mcpu=v3 -O2 -g ... -c FILE.c -o FILE.o

`-mcpu=v3` (jmp32, alu32) is what clang 20+ picks by default and what zig's clang always picks;
fixing it keeps older clangs in line. zig's driver would add unwind tables (an `.eh_frame`
section that no eBPF loader wants); `-fno-unwind-tables -fno-asynchronous-unwind-tables` turn
that off, leaving the `.debug_frame` that plain clang emits with `-g`.

>>> compile_c("bpf/examples/deny_policy.c")                       # doctest: +SKIP
PosixPath('bpf/examples/deny_policy.o')
>>> build_tree("bpf").built                                        # doctest: +SKIP
[]
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BPF_DIR = ROOT / "bpf"
INCLUDE = BPF_DIR / "include"
COMMON_FLAGS = ("-mcpu=v3", "-O2", "-g", "-Wall", "-Wno-unused-function",
                "-fno-unwind-tables", "-fno-asynchronous-unwind-tables")
MIN_CLANG = 14
_STAMP = "# ntoslab-command: "  # last line of a depfile: the command that wrote it


class BuildError(RuntimeError):
    """The compiler rejected a source file; str() is the compiler's own stderr, verbatim."""

    def __init__(self, message: str, source: Path | None = None, returncode: int | None = None):
        super().__init__(message)
        self.source = source
        self.returncode = returncode


@dataclass(frozen=True)
class Compiler:
    name: str                      # "clang" or "ziglang"
    version: str                   # clang version, e.g. "19.1.7"
    command: tuple[str, ...]       # up to and including the target selection

    def __str__(self) -> str:
        return f"{self.name} (clang {self.version}): {' '.join(self.command)}"


def _clang_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"clang version (\d+(?:\.\d+)*)", out)
    return m.group(1) if m else None


@lru_cache(maxsize=1)
def find_compiler() -> Compiler:
    """clang on PATH when it is version 14 or newer, otherwise zig's bundled clang.

    NTOSLAB_CC=zig forces the ziglang wheel, NTOSLAB_CC=/path/to/clang a given clang.
    """
    wanted = os.environ.get("NTOSLAB_CC", "")
    if wanted != "zig":
        clang = shutil.which(wanted or "clang")
        version = _clang_version([clang]) if clang else None
        if version and int(version.split(".")[0]) >= MIN_CLANG:
            # -ffreestanding (zig's driver passes it too): <stdint.h> and friends then come
            # from clang's own headers, not the host's C library (no gnu/stubs-32.h trouble).
            return Compiler("clang", version, (clang, "-target", "bpf", "-ffreestanding"))
        if wanted:
            raise BuildError(f"NTOSLAB_CC={wanted}: not a clang >= {MIN_CLANG}")
    try:
        import ziglang  # noqa: F401
    except ImportError:
        raise BuildError(f"no eBPF compiler: install clang >= {MIN_CLANG} or the ziglang wheel "
                         "(pip install ziglang)") from None
    zig = [sys.executable, "-m", "ziglang", "cc"]
    # `zig cc` (not `zig clang`): it brings the freestanding stdint.h/stdbool.h programs include.
    return Compiler("ziglang", _clang_version(zig) or "?",
                    tuple(zig + ["-target", "bpfel-freestanding-none"]))


def compiler_info() -> str:
    """One line naming the compiler in use, for --version style diagnostics."""
    try:
        return str(find_compiler())
    except BuildError as exc:
        return str(exc)


def command_line(source: Path | str, output: Path | str,
                 include_dirs: list[Path | str] | tuple = (), depfile: Path | None = None,
                 extra_flags: list[str] | tuple = ()) -> list[str]:
    """The full compiler command compile_c runs (bpf/include comes last on the include path)."""
    cmd = list(find_compiler().command) + list(COMMON_FLAGS) + list(extra_flags)
    for inc in [*include_dirs, INCLUDE]:
        cmd += ["-I", str(inc)]
    if depfile is not None:
        cmd += ["-MD", "-MF", str(depfile)]
    return cmd + ["-c", str(source), "-o", str(output)]


def compile_c(source: Path | str, output: Path | str | None = None,
              include_dirs: list[Path | str] | tuple = (), depfile: Path | None = None,
              extra_flags: list[str] | tuple = ()) -> Path:
    """Compile one eBPF C file to an object with .BTF and .BTF.ext; raise BuildError on failure.

    The default output is the source with a .o suffix. Warnings go to stderr as printed.
    """
    source = Path(source)
    output = Path(output) if output is not None else source.with_suffix(".o")
    if not source.is_file():
        raise BuildError(f"{source}: no such file\n", source)
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = command_line(source, output, include_dirs, depfile, extra_flags)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise BuildError(proc.stderr or proc.stdout or
                         f"{cmd[0]} exited with status {proc.returncode}\n",
                         source, proc.returncode)
    if proc.stderr:  # warnings: pass them on as they are
        sys.stderr.write(proc.stderr)
    if depfile is not None and Path(depfile).exists():
        text = "".join(line for line in Path(depfile).read_text().splitlines(keepends=True)
                       if not line.startswith(_STAMP))
        Path(depfile).write_text(text.rstrip("\n") + f"\n{_STAMP}{json.dumps(_stamp(cmd))}\n")
    return output


def _stamp(cmd: list[str]) -> list[str]:
    """What decides an object besides its inputs' contents: the command minus the interpreter."""
    return [c for c in cmd if c != sys.executable]


@dataclass
class BuildReport:
    built: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def _read_depfile(depfile: Path) -> tuple[list[Path], list[str] | None]:
    """Prerequisites named in a make-style depfile written by -MD, and our command stamp."""
    try:
        text = depfile.read_text()
    except OSError:
        return [], None
    stamp = None
    rules = []
    for line in text.splitlines():
        if line.startswith(_STAMP):
            try:
                stamp = json.loads(line[len(_STAMP):])
            except ValueError:
                stamp = None
        elif not line.startswith("#"):
            rules.append(line)
    body = "\n".join(rules).replace("\\\n", " ")
    deps: list[Path] = []
    for rule in body.splitlines():
        _, sep, rest = rule.partition(": ")
        if not sep:
            continue
        # make escapes spaces in names as "\ "
        for name in re.split(r"(?<!\\)\s+", rest.strip()):
            if name:
                deps.append(Path(name.replace("\\ ", " ")))
    return deps, stamp


def _up_to_date(source: Path, output: Path, depfile: Path, cmd: list[str]) -> bool:
    if not output.exists() or not depfile.exists():
        return False
    deps, stamp = _read_depfile(depfile)
    if stamp != _stamp(cmd):
        return False
    built = output.stat().st_mtime_ns
    try:
        return all(d.stat().st_mtime_ns <= built for d in [source, *deps])
    except OSError:  # a header went away: rebuild and let the compiler say what is missing
        return False


def sources(root: Path | str = BPF_DIR) -> list[Path]:
    """Every .c file under root except those under root/include."""
    root = Path(root)
    return [p for p in sorted(root.rglob("*.c"))
            if p.relative_to(root).parts[0] != "include"]


def build_tree(root: Path | str = BPF_DIR, include_dirs: list[Path | str] | tuple = (),
               force: bool = False) -> BuildReport:
    """Compile every .c under root (not root/include) to a .o beside it, when missing or stale.

    An object is stale when the source, any header it included (from the compiler's -MD
    depfile, FILE.d beside it) or the compiler command changed since it was built.
    """
    report = BuildReport()
    include_dirs = [Path(d).resolve() for d in include_dirs]
    for source in sources(Path(root).resolve()):
        output = source.with_suffix(".o")
        depfile = source.with_suffix(".d")
        if not force and _up_to_date(source, output, depfile,
                                     command_line(source, output, include_dirs, depfile)):
            report.skipped.append(source)
            continue
        try:
            compile_c(source, output, include_dirs, depfile=depfile)
            report.built.append(source)
        except BuildError as exc:
            report.failed[source] = str(exc)
    return report
