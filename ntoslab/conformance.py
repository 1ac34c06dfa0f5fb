"""Run the bpf_conformance suite (`.data` files) against an ntoslab engine.

    python -m ntoslab.conformance ../shared/conformance/tests [--engine NAME] [--list-engines]
    python -m ntoslab.conformance --plugin [HEXMEM] [--elf]      # upstream runner's plugin contract

Each file's `-- asm` program is assembled by our own assembler and run at cpu v4 with r1 = the
`-- mem` bytes, r2 = their length and a 512-byte stack; r0 is compared with `-- result`.

>>> from ntoslab.conformance import parse_test
>>> parse_test("-- asm\\nmov %r0, 1\\nexit\\n-- result\\n0x1\\n").result
1
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .isa import opcodes as op
from .vm import ENGINES, Machine, ProgramError, RawCode, StopProgram, VmFault, get_engine
from .vm.memory import RegionKind

CPU_VERSIONS = ("v1", "v2", "v3", "v4")
GROUPS = ("base32", "base64", "atomic32", "atomic64", "divmul32", "divmul64", "packet", "callx")
UNWIND_HELPER = 5


@dataclass
class ConformanceTest:
    name: str
    asm: str = ""
    raw: bytes | None = None
    mem: bytes = b""
    result: int | None = None
    error: str | None = None
    comments: dict[str, str] = field(default_factory=dict)


def parse_test(text: str, name: str = "<test>") -> ConformanceTest:
    """Split a `.data` file into its sections."""
    test = ConformanceTest(name)
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("--"):
            key = line[2:].strip()
            current = sections.setdefault(key, [])
            continue
        if current is not None:
            current.append(line)
    for key, lines in sections.items():
        body = "\n".join(lines)
        if key == "asm":
            test.asm = body + "\n"
        elif key == "raw":
            words = [int(w, 16) for w in body.split() if not w.startswith("#")]
            test.raw = b"".join(w.to_bytes(8, "little") for w in words)
        elif key == "mem":
            test.mem = bytes(int(b, 16) for b in body.split())
        elif key == "result":
            values = [w for w in body.split() if not w.startswith("#")]
            test.result = int(values[0], 16) if values else None
        elif key == "error":
            test.error = body.strip()
        else:
            test.comments[key] = body
    return test


def requirements(code: bytes) -> tuple[str, set[str]]:
    """The lowest cpu version and the conformance groups a program's instructions need."""
    version = 1
    groups: set[str] = set()
    for insn in op.decode(code):
        c = insn.opcode
        cls = c & 0x07
        if cls in (op.CLS_ALU, op.CLS_ALU64):
            width = "32" if cls == op.CLS_ALU else "64"
            alu = c & 0xF0
            groups.add("base" + width)
            if alu in (op.ALU_MUL, op.ALU_DIV, op.ALU_MOD):
                groups.add("divmul" + width)
            if (alu in (op.ALU_DIV, op.ALU_MOD) and insn.offset) or (alu == op.ALU_MOV and insn.offset) \
                    or (alu == op.ALU_END and cls == op.CLS_ALU64):
                version = max(version, 4)
        elif cls in (op.CLS_JMP, op.CLS_JMP32):
            groups.add("base64" if cls == op.CLS_JMP else "base32")
            if c == op.OP_CALLX:
                groups.add("callx")
            elif c == op.OP_JA32:
                version = max(version, 4)
            elif cls == op.CLS_JMP32:
                version = max(version, 3)
            elif c & 0xF0 in (op.JMP_JLT, op.JMP_JLE, op.JMP_JSLT, op.JMP_JSLE):
                version = max(version, 2)
        elif cls == op.CLS_LD:
            mode = c & 0xE0
            groups.add("packet" if mode in (op.MODE_ABS, op.MODE_IND) else "base64")
        else:
            mode = c & 0xE0
            groups.add("base64")
            if mode == op.MODE_MEMSX:
                version = max(version, 4)
            elif mode == op.MODE_ATOMIC:
                version = max(version, 3)
                # as upstream groups them (and manifest.csv records): a 32-bit atomic belongs to
                # both atomic32 and atomic64, a 64-bit one to atomic64
                groups.update(("atomic32", "atomic64") if c & 0x18 == op.SIZE_W else ("atomic64",))
    return f"v{version}", groups


def _unwind(machine: Machine, r1: int, *_: int) -> int:
    """uBPF's helper 5: return r1; when r1 is 0 the program stops with r0 = 0."""
    if r1 == 0:
        raise StopProgram(0)
    return r1


def conformance_machine(mem: bytes) -> tuple[Machine, list[int]]:
    """A machine as the suite expects: memory at r1, its length in r2, helper 5 = unwind."""
    machine = Machine(helpers={UNWIND_HELPER: _unwind})
    args = [0, 0]
    if mem:
        region = machine.memory.add("test memory", bytearray(mem), kind=RegionKind.PACKET)
        args = [region.base, len(mem)]
    return machine, args


def run_bytecode(code: bytes, mem: bytes, engine: str = "interpreter",
                 budget: int = 10_000_000) -> int:
    machine, args = conformance_machine(mem)
    return get_engine(engine).run(RawCode.from_bytes(code), machine, args, budget).r0


@dataclass
class Outcome:
    name: str
    status: str  # PASS | FAIL | SKIP
    detail: str = ""


def run_test(path: Path, engine: str = "interpreter", cpu: str = "v4",
             exclude: Sequence[str] = ()) -> Outcome:
    from .isa.assembler import AssemblyError, assemble

    name = path.name
    try:
        test = parse_test(path.read_text(), name)
        code = test.raw if test.raw is not None and not test.asm.strip() else assemble(test.asm)
    except (AssemblyError, ValueError) as exc:
        return Outcome(name, "FAIL", f"cannot read test: {exc}")
    need, groups = requirements(code)
    if CPU_VERSIONS.index(need) > CPU_VERSIONS.index(cpu):
        return Outcome(name, "SKIP", f"needs cpu {need}, running at {cpu}")
    excluded = sorted(groups & set(exclude))
    if excluded:
        return Outcome(name, "SKIP", f"group {', '.join(excluded)} excluded")
    if "callx" in groups:
        return Outcome(name, "SKIP", "callx (BPF_CALL|BPF_X, an indirect call through a register) "
                                     "is outside RFC 9669 and rejected by eBPF for Windows; "
                                     "ntoslab engines refuse it at load")
    try:
        r0 = run_bytecode(code, test.mem, engine)
    except (ProgramError, VmFault) as exc:
        message = str(exc).splitlines()[0]
        if test.error is not None and test.error in message:
            return Outcome(name, "PASS")
        return Outcome(name, "FAIL", message)
    if test.error is not None:
        return Outcome(name, "FAIL", f"expected error {test.error!r}, got r0 = {r0:#x}")
    if test.result is None or r0 != test.result & op.MASK64:
        expected = "none" if test.result is None else f"{test.result:#x}"
        return Outcome(name, "FAIL", f"expected r0 = {expected}, got {r0:#x}")
    return Outcome(name, "PASS")


def run_suite(directory: Path, engine: str = "interpreter", cpu: str = "v4",
              exclude: Sequence[str] = (), out=sys.stdout) -> list[Outcome]:
    files = sorted(Path(directory).glob("*.data"))
    if not files:
        raise FileNotFoundError(f"{directory}: no .data files")
    outcomes = []
    for path in files:
        outcome = run_test(path, engine, cpu, exclude)
        outcomes.append(outcome)
        tail = f": {outcome.detail}" if outcome.detail else ""
        print(f"{outcome.status} {outcome.name}{tail}", file=out)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("PASS", "FAIL", "SKIP")}
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped", file=out)
    return outcomes


def plugin(argv: Sequence[str], engine: str, stdin=sys.stdin) -> int:
    """Upstream runner's plugin contract: bytecode (hex) or an ELF on stdin, r0 in hex out."""
    args = [a for a in argv]
    elf = "--elf" in args
    args = [a for a in args if a != "--elf"]
    mem = bytes.fromhex(args[0]) if args and not args[0].startswith("-") else b""
    try:
        if elf:
            from .elf import load_bytes
            data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read()
            obj = load_bytes(data, "<stdin>")
            code = obj.programs[0]
            machine, regs = conformance_machine(mem)
            r0 = get_engine(engine).run(code, machine, regs).r0
        else:
            text = "".join(stdin.read().split())
            r0 = run_bytecode(bytes.fromhex(text), mem, engine)
    except Exception as exc:  # the contract: message on stdout, non-zero exit
        print(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return 1
    print(f"{r0:x}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ntoslab.conformance",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", nargs="?", help="folder of bpf_conformance .data files")
    parser.add_argument("--engine", default="interpreter", help="engine to test")
    parser.add_argument("--list-engines", action="store_true", help="print the engines and exit")
    parser.add_argument("--cpu-version", "--cpu_version", default="v4", choices=CPU_VERSIONS)
    parser.add_argument("--exclude-groups", "--exclude_groups", default="",
                        help="comma/space separated groups to skip: " + ", ".join(GROUPS))
    parser.add_argument("--plugin", action="store_true",
                        help="act as an upstream bpf_conformance plugin: [HEXMEM] [--elf], "
                             "program on stdin")
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--plugin" in argv:
        rest = [a for a in argv if a != "--plugin"]
        engine = "interpreter"
        if "--engine" in rest:
            i = rest.index("--engine")
            engine = rest[i + 1] if i + 1 < len(rest) else engine
            del rest[i:i + 2]
        return plugin(rest, engine)
    ns = parser.parse_args(argv)
    if ns.list_engines:
        for name in sorted(ENGINES):
            print(name)
        return 0
    if ns.engine not in ENGINES:
        parser.error(f"unknown engine {ns.engine!r}; available: {', '.join(sorted(ENGINES))}")
    if not ns.directory:
        parser.error("a directory of .data files is required (or --plugin)")
    exclude = [g for g in ns.exclude_groups.replace(",", " ").split() if g]
    try:
        outcomes = run_suite(Path(ns.directory), ns.engine, ns.cpu_version, exclude)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if any(o.status == "FAIL" for o in outcomes) else 0


def plugin_main() -> int:
    """Console script for upstream's runner: `--plugin_path .venv/bin/ntoslab-conformance-plugin`."""
    return plugin(sys.argv[1:], "interpreter")


if __name__ == "__main__":
    sys.exit(main())
