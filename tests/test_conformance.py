"""The whole bpf_conformance suite, the plugin contract, and the Linux kernel as a second oracle."""
from __future__ import annotations

import io
import subprocess
import sys

import pytest
from conftest import CONFORMANCE_DIR

from ntoslab.conformance import parse_test, run_bytecode, run_suite
from ntoslab.isa import opcodes as op
from ntoslab.isa.assembler import assemble

pytestmark = pytest.mark.skipif(not CONFORMANCE_DIR.is_dir(),
                                reason=f"{CONFORMANCE_DIR} (../shared) is not beside the checkout")


def test_every_conformance_file_passes_at_cpu_v4():
    out = io.StringIO()
    outcomes = run_suite(CONFORMANCE_DIR, out=out)
    assert len(outcomes) == 313
    failed = [o for o in outcomes if o.status == "FAIL"]
    skipped = [o.name for o in outcomes if o.status == "SKIP"]
    assert failed == []
    assert skipped == ["callx.data"]
    last = out.getvalue().strip().splitlines()[-1]
    assert last == "312 passed, 0 failed, 1 skipped"


def test_lower_cpu_version_skips_v4_programs():
    outcomes = run_suite(CONFORMANCE_DIR, cpu="v3", out=io.StringIO())
    v4 = [o for o in outcomes if o.status == "SKIP" and "needs cpu v4" in o.detail]
    # manifest.csv lists 59 files whose mnemonics need v4
    assert len(v4) == 59


def test_exclude_groups():
    outcomes = run_suite(CONFORMANCE_DIR, exclude=["atomic64"], out=io.StringIO())
    atomic = {o.name for o in outcomes if "atomic64 excluded" in o.detail}
    manifest = (CONFORMANCE_DIR.parent / "manifest.csv").read_text().splitlines()[1:]
    expected = {row.split(",")[0] for row in manifest if "atomic64" in row.split(",")[4]}
    assert atomic == expected


def test_cli_prints_one_line_per_file_and_the_summary():
    proc = subprocess.run([sys.executable, "-m", "ntoslab.conformance", str(CONFORMANCE_DIR)],
                          capture_output=True, text=True, timeout=600)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0
    assert len(lines) == 314 and lines[-1] == "312 passed, 0 failed, 1 skipped"
    assert any(line.startswith("SKIP callx.data: ") for line in lines)


def test_list_engines():
    proc = subprocess.run([sys.executable, "-m", "ntoslab.conformance", "--list-engines"],
                          capture_output=True, text=True, timeout=60)
    assert "interpreter" in proc.stdout.split()


@pytest.mark.parametrize("stdin, args, out, rc", [
    ("b700000007000000 9500000000000000\n", [], "7", 0),
    # ldxdw r0, [r1+0] with memory 01..08 → little-endian 0x0807060504030201
    ("7910000000000000 9500000000000000\n", ["0102030405060708"], "807060504030201", 0),
    ("ff00000000000000\n", [], None, 1),
])
def test_plugin_contract(stdin, args, out, rc):
    proc = subprocess.run([sys.executable, "-m", "ntoslab.conformance", "--plugin", *args],
                          input=stdin, capture_output=True, text=True, timeout=60)
    assert proc.returncode == rc
    if out is not None:
        assert proc.stdout.strip() == out
    else:
        assert "unknown opcode" in proc.stdout


def _kernel():
    from ntoslab.vm.kernel import KernelUnavailable, LinuxKernel
    try:
        k = LinuxKernel()
        k.run(bytes.fromhex("b7000000000000009500000000000000"))
        return k
    except KernelUnavailable as exc:
        pytest.skip(f"the Linux kernel cannot run BPF here: {exc}")


def _with_high_word_epilogue(code: bytes) -> bytes:
    """Replace each exit with a jump to `r0 >>= 32; exit` (exits are one slot, so offsets hold)."""
    insns = op.decode(code)
    n = len(insns)
    out = []
    for pc, insn in enumerate(insns):
        if insn.opcode == op.OP_EXIT:
            insn = op.Instruction(op.OP_JA, 0, 0, n - pc - 1, 0)
        out.append(insn)
    out += [op.Instruction(op.CLS_ALU64 | op.ALU_RSH, 0, 0, 0, 32), op.Instruction(op.OP_EXIT, 0, 0, 0, 0)]
    return op.encode(out)


def test_linux_kernel_agrees_on_every_program_it_accepts():
    """An independent oracle: the kernel runs each memory-free, helper-free test program."""
    from ntoslab.vm.kernel import KernelRejected
    kernel = _kernel()
    compared = 0
    for path in sorted(CONFORMANCE_DIR.glob("*.data")):
        test = parse_test(path.read_text(), path.name)
        code = assemble(test.asm)
        insns = op.decode(code)
        if test.mem or any(i.opcode in (op.OP_CALL, op.OP_CALLX) for i in insns):
            continue
        ours = run_bytecode(code, b"")
        try:
            low = kernel.run(code).retval
            high = kernel.run(_with_high_word_epilogue(code)).retval
        except KernelRejected:
            continue  # e.g. reads of uninitialised registers, which the verifier refuses
        assert (high << 32 | low) == ours, path.name
        compared += 1
    assert compared >= 150, f"only {compared} programs compared"
