"""The IPython extension: eBPF C in a cell, and the lab's state at a glance.

    %load_ext ntoslab

    %%ebpf policy --attach hook -D LIMIT=3
    #include "bpf_helpers.h"
    ...

`%%ebpf NAME [-I DIR]... [-D X=Y]... [--attach HOOK | --hook HOOK] [-v]` compiles the cell with the
bundled toolchain into a cached object (an unchanged cell, with unchanged flags and headers, is
not recompiled), loads it into the hook named HOOK in the notebook (default: the extension's own
emulator, `ntoslab.magics.default_hook()`), binds the LoadedObject to NAME and, with
`--attach`, attaches its process programs (replacing the ones an earlier run of the cell
attached). Compiler errors and warnings are shown against the cell's own line numbers with the
offending line. `%ntoslab` shows hooks, objects, attached programs and maps with entry counts.
"""
from __future__ import annotations

import contextlib
import hashlib
import html
import io
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from . import toolchain

_DIAG = re.compile(r"^(?P<file>[^\n:]+):(?P<line>\d+):(?P<col>\d+): "
                   r"(?P<kind>fatal error|error|warning|note): (?P<msg>.*)$", re.M)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_default: list = []


class UsageError(RuntimeError):
    """A `%%ebpf` cell that cannot be built, loaded or attached. It fails the cell (papermill and
    nbclient stop the run) and shows only its message, without a Python traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{self}\x1b[0m"]


def cache_dir() -> Path:
    """Where cell sources and objects are kept: $NTOSLAB_CACHE/cells or ~/.cache/ntoslab/cells."""
    base = os.environ.get("NTOSLAB_CACHE") or Path.home() / ".cache" / "ntoslab"
    return Path(base) / "cells"


def default_hook():
    """The emulator `%%ebpf` loads into when no --hook/--attach is given (made on first use)."""
    if not _default:
        from .connectors.emulator import emulator
        _default.append(emulator())
    return _default[0]


@dataclass
class Diagnostic:
    kind: str          # error | warning | note | fatal error
    file: str          # "cell" for the cell itself, else the header's path
    line: int
    column: int
    message: str
    text: str = ""     # the offending source line

    def __str__(self) -> str:
        where = f"cell line {self.line}:{self.column}" if self.file == "cell" else \
            f"{self.file}:{self.line}:{self.column}"
        out = f"{where}: {self.kind}: {self.message}"
        if self.text:
            out += f"\n    {self.text}\n    {' ' * max(0, self.column - 1)}^"
        return out


def diagnostics(stderr: str, source_path: Path, cell: str) -> list[Diagnostic]:
    """The compiler's diagnostics, with the cell's own file named "cell" and its lines quoted."""
    lines = cell.splitlines()
    out = []
    for m in _DIAG.finditer(stderr):
        file, line, col = m["file"], int(m["line"]), int(m["col"])
        mine = Path(file).name == source_path.name and Path(file).resolve() == source_path.resolve()
        text = ""
        if mine and 0 < line <= len(lines):
            text = lines[line - 1]
        else:
            try:
                text = Path(file).read_text(errors="replace").splitlines()[line - 1]
            except (OSError, IndexError):
                pass
        out.append(Diagnostic(m["kind"], "cell" if mine else file, line, col, m["msg"], text))
    return out


@dataclass
class CellBuild:
    """What `%%ebpf` did with one cell."""

    name: str
    source: Path
    object: Path
    compiled: bool                      # False: unchanged, the cached object was used
    seconds: float
    diagnostics: list[Diagnostic] = field(default_factory=list)
    raw_stderr: str = ""

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.kind in ("error", "fatal error")]


def build_cell(name: str, cell: str, include_dirs=(), defines=()) -> CellBuild:
    """Compile a cell's C (cached by content, flags and compiler); never raises for compiler
    errors: they are in `.diagnostics` (`.errors` non-empty) with the compiler's text."""
    flags = [f"-D{d}" for d in defines]
    includes = [Path(d).resolve() for d in include_dirs]
    probe = toolchain.command_line("cell.c", "cell.o", includes, extra_flags=flags)
    digest = hashlib.sha256("\0".join([cell, *[c for c in probe if c != sys.executable]])
                            .encode()).hexdigest()[:16]
    folder = cache_dir() / digest
    source, output, depfile = folder / f"{name}.c", folder / f"{name}.o", folder / f"{name}.d"
    folder.mkdir(parents=True, exist_ok=True)
    if not source.exists() or source.read_text() != cell:
        source.write_text(cell)
    cmd = toolchain.command_line(source, output, includes, depfile, flags)
    start = time.perf_counter()
    # an object built from this exact text and command whose headers did not change since
    if toolchain._up_to_date(source, output, depfile, cmd):
        return CellBuild(name, source, output, False, time.perf_counter() - start)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            toolchain.compile_c(source, output, includes, depfile=depfile, extra_flags=flags)
        stderr = err.getvalue()
    except toolchain.BuildError as exc:
        stderr = str(exc)
        output.unlink(missing_ok=True)
    build = CellBuild(name, source, output, True, time.perf_counter() - start,
                      diagnostics(stderr, source, cell), raw_stderr=stderr)
    if not build.diagnostics and not output.exists():   # a failure without file:line text
        build.diagnostics.append(Diagnostic("error", "cell", 0, 0, stderr.strip() or "failed"))
    return build


def _diagnostics_html(build: CellBuild) -> str:
    rows = "".join(
        f"<tr><td style='color:{'#b00' if d.kind != 'warning' else '#a60'}'>{d.kind}</td>"
        f"<td>{'line ' + str(d.line) if d.file == 'cell' else html.escape(d.file) + ':' + str(d.line)}"
        f":{d.column}</td><td>{html.escape(d.message)}</td>"
        f"<td><pre style='margin:0'>{html.escape(d.text)}\n{' ' * max(0, d.column - 1)}^</pre></td></tr>"
        for d in build.diagnostics)
    return (f"<div class='ntoslab-diagnostics'><b>{html.escape(build.name)}</b>: "
            f"{len(build.errors)} error(s), {sum(d.kind == 'warning' for d in build.diagnostics)}"
            f" warning(s)<table><tr><th></th><th>where</th><th>message</th><th>code</th></tr>"
            f"{rows}</table></div>")


class _Shown:
    """A display object with text and HTML faces."""

    def __init__(self, text: str, markup: str) -> None:
        self.text, self.markup = text, markup

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return self.markup


@magics_class
class NtoslabMagics(Magics):
    def __init__(self, shell) -> None:
        super().__init__(shell)
        self.cells: dict[str, tuple[Any, CellBuild]] = {}   # NAME -> (hook, last build)

    def _hook(self, name: str | None):
        if name is None:
            return default_hook()
        if name not in self.shell.user_ns:
            raise UsageError(f"%%ebpf: no variable {name!r} in the notebook; make one first, "
                             f"e.g. {name} = ntoslab.emulator()")
        hook = self.shell.user_ns[name]
        if not hasattr(hook, "load") or not hasattr(hook, "attach"):
            raise UsageError(f"%%ebpf: {name!r} is a {type(hook).__name__}, not a hook")
        return hook

    @magic_arguments()
    @argument("name", help="variable the loaded object is bound to")
    @argument("-I", dest="include", action="append", default=[], metavar="DIR",
              help="extra include directory (bpf/include is always used)")
    @argument("-D", dest="define", action="append", default=[], metavar="X=Y",
              help="preprocessor definition")
    @argument("--attach", metavar="HOOK", help="load into HOOK and attach the process programs")
    @argument("--hook", metavar="HOOK", help="load into HOOK without attaching")
    @argument("-v", dest="verbose", action="store_true",
              help="also say whether the cell was compiled (and how long it took) or cached")
    @cell_magic
    def ebpf(self, line: str, cell: str):
        """Compile the cell's eBPF C, load it, bind it to NAME (see the module docstring)."""
        args = parse_argstring(self.ebpf, line)
        if not _NAME.match(args.name):
            raise UsageError(f"%%ebpf: {args.name!r} is not a Python identifier")
        if args.attach and args.hook:
            raise UsageError("%%ebpf: give --attach HOOK or --hook HOOK, not both")
        hook = self._hook(args.attach or args.hook)
        build = build_cell(args.name, cell, args.include, args.define)
        if build.diagnostics:
            display(_Shown("\n".join(str(d) for d in build.diagnostics), _diagnostics_html(build)))
        if build.errors:
            raise UsageError(f"%%ebpf {args.name}: {len(build.errors)} compiler error(s), see above")
        from .runner import entry_programs
        old = self.shell.user_ns.get(args.name)
        previous = self.cells.get(args.name)
        if previous is not None and previous[0] is hook and getattr(old, "hook", None) is hook:
            for link in [l for l in hook.links if l.loaded is old]:
                hook.detach(link)
        try:
            loaded = hook.load(build.object)
        except Exception as exc:   # the loader's or verifier's words, against the cell
            raise UsageError(f"%%ebpf {args.name}: {exc}") from None
        attached = []
        if args.attach:
            programs = entry_programs(loaded.obj)
            if not programs:
                raise UsageError(f"%%ebpf {args.name}: no process program to attach "
                                 f"(SEC(\"process\"))")
            for prog in programs:
                hook.attach(prog)
                attached.append(prog.name)
        self.shell.user_ns[args.name] = loaded
        self.cells[args.name] = (hook, build)
        # without -v the summary is the same on every run (reports stay deterministic)
        how = ("compiled in {build.seconds:.1f} s" if build.compiled else
               "unchanged, not recompiled").format(build=build) if args.verbose else "built"
        progs = ", ".join(p.name for p in loaded.programs)
        maps = ", ".join(n for n in loaded.obj.maps if not n.startswith(".")) or "none"
        order = [l.program.name for l in hook.links]
        text = (f"{args.name}: {how}; programs {progs}; maps {maps}"
                + (f"; attached {', '.join(attached)} (order: {' → '.join(order)})" if attached else ""))
        markup = (f"<div class='ntoslab-cell'><b>{html.escape(args.name)}</b>: {how}; programs "
                  f"<code>{html.escape(progs)}</code>; maps <code>{html.escape(maps)}</code>"
                  + (f"; attached <b>{html.escape(', '.join(attached))}</b> (order: "
                     f"{html.escape(' → '.join(order))})" if attached else "") + "</div>")
        display(_Shown(text, markup))

    @line_magic
    def ntoslab(self, line: str = ""):
        """Hooks in the notebook, their objects, attached programs and maps with entry counts."""
        return lab_state(self.shell.user_ns, {n: b for n, (_, b) in self.cells.items()})


def _hooks(namespace: dict) -> list[tuple[str, Any]]:
    from .connectors.emulator import EmulatedHook
    found = [(name, v) for name, v in namespace.items()
             if not name.startswith("_") and isinstance(v, EmulatedHook)]
    if _default and all(v is not _default[0] for _, v in found):
        found.append(("ntoslab.magics.default_hook()", _default[0]))
    return found


def _map_entries(view) -> str:
    m = view.map
    if hasattr(m, "records"):
        return f"{len(list(m.records()))} records, {getattr(m, 'dropped', 0)} dropped"
    if hasattr(m, "records_all"):
        return f"{len(list(m.records_all()))} records"
    try:
        return f"{len(view)} entries"
    except Exception as exc:  # noqa: BLE001 - a map kind without iteration still gets a row
        return f"? ({type(exc).__name__})"


def lab_state(namespace: dict, cells: dict | None = None) -> _Shown:
    """The state `%ntoslab` shows (usable without IPython: pass a namespace dict)."""
    cells = cells or {}
    names = {id(v): n for n, v in namespace.items() if not n.startswith("_")}
    text, parts = [], []
    hooks = _hooks(namespace)
    if not hooks:
        return _Shown("no hooks: hook = ntoslab.emulator()",
                      "<i>no hooks yet: <code>hook = ntoslab.emulator()</code></i>")
    for hname, hook in hooks:
        attached = [l.program.name for l in hook.links]
        text.append(f"{hname}: {hook.kind} engine={hook.engine}, {len(hook.objects)} object(s), "
                    f"attached: {' → '.join(attached) or 'nothing'}, events {len(hook.history)}")
        rows = []
        for obj in hook.objects:
            label = names.get(id(obj), "")
            on = [l.program.name for l in hook.links if l.loaded is obj]
            maps = "; ".join(f"{n}: {_map_entries(v)}" for n, v in obj.maps.items()
                             if not n.startswith("."))
            text.append(f"  {label or '-'} {Path(obj.path).name}: programs "
                        f"{', '.join(p.name for p in obj.programs)}; attached {', '.join(on) or '-'};"
                        f" maps {maps or '-'}")
            rows.append(f"<tr><td><code>{html.escape(label)}</code></td>"
                        f"<td>{html.escape(Path(obj.path).name)}"
                        f"{' (cell)' if label in cells else ''}</td>"
                        f"<td>{html.escape(', '.join(p.name for p in obj.programs))}</td>"
                        f"<td>{html.escape(', '.join(on))}</td><td>{html.escape(maps)}</td></tr>")
        parts.append(f"<div><b>{html.escape(hname)}</b> ({hook.kind}, engine {hook.engine}, "
                     f"{len(hook.history)} events); attached in order: "
                     f"{html.escape(' → '.join(attached) or 'nothing')}"
                     f"<table><tr><th>name</th><th>object</th><th>programs</th><th>attached</th>"
                     f"<th>maps</th></tr>{''.join(rows)}</table></div>")
    return _Shown("\n".join(text), "".join(parts))


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(NtoslabMagics)
