"""The `ntoslab` command: one small function per subcommand.

    ntoslab build [FILES] [-I DIR]... [-o OUT]
    ntoslab disasm PROG.o [--program P]

To add a subcommand, write `_NAME_args(parser)` and `_NAME(namespace) -> int` and put them in
COMMANDS (or call register() from another module).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", type=Path,
                   help="C files (default: every .c under ./bpf, or the project's bpf/, "
                        "except bpf/include; only what changed is rebuilt)")
    p.add_argument("-I", dest="include", action="append", default=[], type=Path,
                   metavar="DIR", help="extra include directory (bpf/include is always used)")
    p.add_argument("-o", dest="output", type=Path, metavar="OUT",
                   help="output object (one input file only; default FILE.o)")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.add_argument("--show-compiler", action="store_true",
                   help="print the compiler that would be used and exit")


def _build(ns: argparse.Namespace) -> int:
    from . import toolchain
    from .toolchain import BuildError, build_tree, compile_c, find_compiler
    try:
        compiler = find_compiler()
    except BuildError as exc:
        print(f"ntoslab build: {exc}", file=sys.stderr)
        return 2
    if ns.show_compiler:
        print(compiler)
        return 0
    if ns.output and len(ns.files) != 1:
        print("ntoslab build: -o needs exactly one input file", file=sys.stderr)
        return 2
    if not ns.files:
        root = Path("bpf") if Path("bpf").is_dir() else toolchain.BPF_DIR
        report = build_tree(root, include_dirs=ns.include, force=ns.force)
        for src in report.built:
            print(f"built {src}")
        for err in report.failed.values():
            sys.stderr.write(err if err.endswith("\n") else err + "\n")
        print(f"ntoslab build: {len(report.built)} built, {len(report.skipped)} up to date, "
              f"{len(report.failed)} failed ({compiler.name} clang {compiler.version})")
        return 1 if report.failed else 0
    status = 0
    for src in ns.files:
        try:
            out = compile_c(src, ns.output, ns.include)
            print(f"{src} -> {out}")
        except BuildError as exc:  # the compiler's own words, unchanged
            text = str(exc)
            sys.stderr.write(text if text.endswith("\n") else text + "\n")
            status = 1
    return status


def _disasm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("object", type=Path, help="eBPF ELF object")
    p.add_argument("--program", help="only this program (function name)")


def _disasm(ns: argparse.Namespace) -> int:
    from .elf import ElfLoadError, load
    try:
        obj = load(ns.object)
    except ElfLoadError as exc:
        print(f"ntoslab disasm: {exc}", file=sys.stderr)
        return 1
    programs = obj.programs if not ns.program else [obj.program(ns.program)]
    print(f"{ns.object}:\tfile format elf64-bpf")
    for prog in programs:
        print(f"\nDisassembly of program {prog.name} (section {prog.section}):\n")
        print(prog.disassemble())
    return 0


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("objects", nargs="+", type=Path, metavar="PROG.o",
                   help="objects whose process programs are attached, in order")
    p.add_argument("--events", required=True, type=Path,
                   help="trace of events (JSONL, CSV or Parquet in the trace schema)")
    p.add_argument("--engine", default="jit", metavar="ENGINE",
                   help=f"eBPF engine: {_engines_help()} (default: jit)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--denied", action="store_true", help="show only denied events")
    p.add_argument("--faulted", action="store_true",
                   help="show only events where a program faulted (with --denied: either)")
    p.add_argument("--limit", type=int, metavar="N", help="show at most N events "
                   "(the summary still counts all)")


def _engines_help() -> str:
    from .vm import ENGINES
    notes = {"jit": "LLVM-compiled native code", "interpreter": "the reference"}
    return ", ".join(f"{name} ({notes[name]})" if name in notes else name
                     for name in sorted(ENGINES))


def _run(ns: argparse.Namespace) -> int:
    from .runner import main as run_main
    from .vm import ENGINES
    if ns.engine not in ENGINES:
        print(f"ntoslab run: unknown engine {ns.engine!r}; available: {', '.join(sorted(ENGINES))}",
              file=sys.stderr)
        return 2
    if ns.limit is not None and ns.limit < 0:
        print("ntoslab run: --limit must be 0 or more", file=sys.stderr)
        return 2
    return run_main(ns.objects, ns.events, ns.engine, ns.format, denied=ns.denied,
                    faulted=ns.faulted, limit=ns.limit)


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebook", type=Path)
    p.add_argument("-p", dest="params", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="a papermill parameter (repeatable)")
    p.add_argument("-o", dest="out", type=Path, default=Path("reports"), help="output folder")


def _report(ns: argparse.Namespace) -> int:
    from .report import ReportError, render, report_name, resolve_parameters
    params = {}
    for name, value in ns.params:
        try:
            params[name] = int(value)
        except ValueError:
            params[name] = value
    try:
        params = resolve_parameters(params)
        print(render(ns.notebook, ns.out, params, name=report_name(ns.notebook, params),
                     progress=sys.stderr.isatty()))
    except (ReportError, FileNotFoundError) as exc:
        print(f"ntoslab report: {exc}", file=sys.stderr)
        return 1
    return 0


def _import_args(p: argparse.ArgumentParser) -> None:
    from .trace.importer import import_args
    import_args(p)
    p.description = ("-o TRACE.parquet|.csv|.jsonl writes one trace; -o DATASET/ (a directory: "
                     "a trailing slash, an existing directory, or no suffix) writes Parquet "
                     "partitioned by host and day, importing the files in parallel")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="dataset output: run the import on this Dask scheduler (tcp://host:8786)")


def _import(ns: argparse.Namespace) -> int:
    from .trace.importer import import_run
    out = str(ns.output)
    if out.endswith(("/", "\\")) or Path(out).is_dir() or not Path(out).suffix:
        from .fleet.importing import import_dataset_run
        return import_dataset_run(ns)
    if ns.scheduler:
        print("ntoslab import: --scheduler is for a dataset output (-o DATASET/)",
              file=sys.stderr)
        return 2
    return import_run(ns)


def _capture(argv: list[str]) -> int:
    from .connectors.linux import capture_command
    return capture_command(argv)


# Subcommands that parse their own arguments: `ntoslab NAME ARGS...` calls FUNCTION(ARGS).
PASSTHROUGH = {"capture": ("capture real process events from this Linux kernel into a trace "
                           "([--duration S] [--count N] -o TRACE.parquet [--program PROG.o])",
                           _capture)}


COMMANDS: list[Command] = [
    ("build", "compile eBPF C to ELF objects (clang >= 14 or the ziglang wheel)", _build_args, _build),
    ("run", "attach every process program of the objects and inject a trace", _run_args, _run),
    ("report", "execute a notebook headless (papermill) and render it to HTML", _report_args,
     _report),
    ("import", "EVTX, Mordor JSON lines (also in .zip) and trace files into the trace schema",
     _import_args, _import),
    ("disasm", "disassemble a program, interleaved with its source lines", _disasm_args, _disasm),
]


def _version() -> str:
    from . import __version__
    from .toolchain import compiler_info
    return f"ntoslab {__version__}\ncompiler: {compiler_info()}"


def register(name: str, help_: str, add_args, run) -> None:
    """Add a subcommand (used by modules that bring their own, e.g. `run`)."""
    COMMANDS.append((name, help_, add_args, run))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return PASSTHROUGH[argv[0]][1](argv[1:])
    parser = argparse.ArgumentParser(prog="ntoslab", description="Windows process-event eBPF lab",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_, add_args, run in COMMANDS:
        p = sub.add_parser(name, help=help_)
        add_args(p)
        p.set_defaults(_run=run)
    for name, (help_, _) in PASSTHROUGH.items():
        sub.add_parser(name, help=help_, add_help=False)
    ns = parser.parse_args(argv)
    try:
        return ns._run(ns)
    except KeyError as exc:
        print(f"ntoslab {ns.command}: {exc.args[0]}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
