"""The main job (`make demo`): prove the engine end to end on this machine.

1. the instruction-set conformance suite on the reference interpreter;
2. every object built from `bpf/`: its programs, maps and a run of each program;
3. a disassembly with source lines of one program.
"""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

from .conformance import run_suite
from .elf import ElfLoadError, load
from .runtime import Sandbox
from .vm import ProgramError, VmFault

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT.parent / "shared" / "conformance" / "tests"


def _objects() -> list[Path]:
    return sorted(p for p in (ROOT / "bpf").rglob("*.o") if "include" not in p.parts)


def main() -> int:
    print("== 1. bpf_conformance on the reference interpreter (cpu v4)")
    if CONFORMANCE.is_dir():
        out = io.StringIO()
        t = time.perf_counter()
        outcomes = run_suite(CONFORMANCE, out=out)
        lines = out.getvalue().splitlines()
        for line in lines[:-1]:
            if not line.startswith("PASS"):
                print("   ", line)
        print(f"    {lines[-1]}  ({time.perf_counter() - t:.2f} s)")
        failed = any(o.status == "FAIL" for o in outcomes)
    else:
        print(f"    {CONFORMANCE} not found: skipped")
        failed = False

    print("\n== 2. objects built from bpf/")
    rows = []
    shown = None
    for path in _objects():
        rel = path.relative_to(ROOT)
        try:
            obj = load(path)
        except ElfLoadError as exc:
            print(f"    {rel}: LOAD ERROR {exc}")
            failed = True
            continue
        try:
            box = Sandbox(obj)
        except NotImplementedError as exc:
            box = None
            note = f"(not runnable yet: {exc})"
        for prog in obj.programs:
            if box is None:
                rows.append((str(rel), prog.name, prog.section, len(prog.insns), note, ""))
                continue
            try:
                r = box.run(prog, bytes(144), budget=5_000_000)
                result, count = f"r0={r.r0_signed32}", str(r.instructions)
            except (VmFault, ProgramError) as exc:
                result, count = f"fault: {str(exc).splitlines()[0][:60]}", "-"
            rows.append((str(rel), prog.name, prog.section, len(prog.insns), result, count))
            if shown is None and len(prog.functions) > 1:
                shown = (obj, prog)
        maps = ", ".join(f"{m.name}:{m.type_name}" for m in obj.maps.values()) or "-"
        print(f"    {rel}: {len(obj.programs)} program(s); maps {maps}")
    if rows:
        widths = [max(len(str(r[i])) for r in rows + [("object", "program", "section", "insns",
                                                         "result", "executed")]) for i in range(6)]
        header = ("object", "program", "section", "insns", "result", "executed")
        print()
        for row in [header] + rows:
            print("    " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)))

    if shown is not None:
        obj, prog = shown
        print(f"\n== 3. {prog.name} from {Path(obj.path).name}, disassembled with source")
        text = prog.disassemble()
        for line in text.splitlines()[:40]:
            print("    " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
