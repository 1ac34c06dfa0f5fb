"""The step debugger on real hook runs: line and pc breakpoints, step / next / finish / continue,
the views, opening at a fault; the verdict is the one the hook gives without the debugger."""
from __future__ import annotations

import pytest

import ntoslab
from ntoslab.debug import DebugError, Debugger, debug, debug_sandbox
from ntoslab.isa.assembler import assemble
from ntoslab.isa.opcodes import decode
from ntoslab.vm import Machine, RawCode

SOURCE = r"""#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

static __attribute__((noinline)) int twice(int x)
{
    int y = x * 2;                       /* L_TWICE */
    return y + 1;
}

SEC("process")
int Walker(process_md_t* ctx)
{
    int pid = (int)ctx->process_id;      /* L_PID */
    int t = twice(pid);                  /* L_CALL */
    if (ctx->operation != PROCESS_OPERATION_CREATE)
        return 0;
    uint8_t c = ctx->command_start[pid]; /* L_READ */
    return t + c;                        /* L_RET */
}
"""
LINE = {tag: n for n, text in enumerate(SOURCE.splitlines(), 1)
        for tag in ("L_TWICE", "L_PID", "L_CALL", "L_READ", "L_RET") if tag in text}
E = ntoslab.ProcessEvent


@pytest.fixture(scope="module")
def walker(compile_bpf):
    return compile_bpf(SOURCE, "walker")


def hook_with(path):
    hook = ntoslab.emulator()
    hook.attach(hook.load(path).program("Walker"))
    return hook


def good():   # command line "abc" in UTF-16LE: byte 2 is 'b'; pid 2 reads it
    return E.create(pid=2, parent=1, image="a.exe", command_line="abc")


def test_line_breakpoint_stops_on_that_line_with_the_values_the_source_gives(walker):
    dbg = debug(hook_with(walker), good(), breakpoints=[f"{walker.with_suffix('.c').name}:{LINE['L_READ']}"])
    assert dbg.stop.reason == "entry" and dbg.pc == 0
    stop = dbg.cont()
    assert stop.reason == "breakpoint" and dbg.line_at().line == LINE["L_READ"]
    regs = {r["reg"]: r for r in dbg.registers()}
    assert regs["r10"]["points to"] == "end of stack frame 0"
    # r1 still holds the context pointer: the hook's context region
    assert any(r["points to"].startswith("context") for r in regs.values())
    current = [r for r in dbg.source(3) if r["current"]]
    assert current[0]["text"].strip().startswith("uint8_t c = ctx->command_start[pid];")
    assert dbg.cont().reason == "exit"
    # twice(2) = 5, plus 'b' (0x62)
    assert dbg.result.r0 == 5 + 0x62
    assert dbg.verdict.runs[0].status == 103 and not dbg.verdict.denied


def test_step_enters_the_call_next_steps_over_it_finish_returns(walker):
    dbg = debug(hook_with(walker), good(), breakpoints=[f"{LINE['L_CALL']}"])
    dbg.cont()
    assert dbg.line_at().line == LINE["L_CALL"]
    while dbg.stepper.depth == 0:           # step (into): ends up in twice()
        assert dbg.step().reason in ("line", "breakpoint")
    assert dbg.line_at().line in (LINE["L_TWICE"], LINE["L_TWICE"] - 2, LINE["L_TWICE"] + 1)
    assert dbg.finish().reason == "return" and dbg.stepper.depth == 0
    dbg2 = debug(hook_with(walker), good(), breakpoints=[f"{LINE['L_CALL']}"])
    dbg2.cont()
    depths = []
    for _ in range(6):
        stop = dbg2.next()
        depths.append(dbg2.stepper.depth)
        if stop.reason == "exit":
            break
    assert set(depths) == {0} and stop.reason == "exit"
    assert dbg2.result.r0 == 103


def test_pc_breakpoints_and_instruction_steps(walker):
    dbg = debug(hook_with(walker), good())
    n = len(dbg.code.insns)
    assert dbg.break_at("pc 3") == [3] and dbg.cont().reason == "breakpoint" and dbg.pc == 3
    assert dbg.stepi().reason == "step" and dbg.stepper.count == 4
    with pytest.raises(ValueError, match=f"outside Walker \\(0..{n - 1}\\)"):
        dbg.break_at(n)
    with pytest.raises(ValueError, match="lines with code: .*" + str(LINE["L_READ"])):
        dbg.break_at(f"{walker.with_suffix('.c').name}:2")
    dbg.close()
    assert dbg.done and dbg.verdict is not None


def test_opens_at_the_fault_the_hook_reports(walker):
    bad = E.create(pid=4242, parent=1, image="a.exe", command_line="abc")
    plain = hook_with(walker).inject(bad)
    assert plain.runs[0].fault and "command line" in plain.runs[0].fault
    dbg = debug(hook_with(walker), bad, at_fault=True)
    assert dbg.stop.reason == "fault" and f"pc {dbg.pc}:" in plain.runs[0].fault
    assert dbg.line_at().line == LINE["L_READ"]
    assert dbg.fault.region == "command line" and str(dbg.fault) == plain.runs[0].fault
    # the verdict with the debugger is the verdict without it
    assert dbg.verdict.as_row() == plain.as_row()
    html = dbg._repr_html_()
    assert "command_start[pid]" in html and "command line" in html


def test_the_hook_goes_on_after_the_debugged_program(walker, compile_bpf):
    hook = ntoslab.emulator()
    hook.attach(hook.load(walker).program("Walker"))
    policy = hook.load(ntoslab.toolchain.BPF_DIR / "examples" / "deny_policy.o")
    hook.attach(policy.program("DenyPolicy"))
    dbg = debug(hook, E.create(pid=2, parent=1, image=r"\??\C:\mimikatz.exe", command_line="abc"))
    dbg.cont()
    assert dbg.verdict.denied and dbg.verdict.decided_by == "DenyPolicy"
    assert len(hook.verdicts()) == 1
    # a program that never runs on the event (an earlier one denied it) cannot be debugged
    with pytest.raises(DebugError, match="Walker did not run|DenyPolicy did not run"):
        hook2 = ntoslab.emulator()
        hook2.attach(hook2.load(ntoslab.toolchain.BPF_DIR / "examples" / "deny_policy.o")
                     .program("DenyPolicy"))
        hook2.attach(hook2.load(walker).program("Walker"))
        debug(hook2, E.create(pid=2, parent=1, image=r"\??\C:\mimikatz.exe"), "Walker")
    with pytest.raises(DebugError, match="not attached"):
        debug(hook, good(), "Nope")


def test_sandbox_and_raw_code_targets(walker):
    box = ntoslab.Sandbox(ntoslab.load(walker))
    dbg = debug_sandbox(box, "Walker", bytes(144), at_fault=True)
    # operation 0 is create; command_start is NULL in a zero context: a null dereference
    assert dbg.stop.reason == "fault" and "null pointer" in str(dbg.fault)
    assert dbg.hexdump("context", 16).startswith("0x")
    raw = Debugger.for_code(RawCode("t", decode(assemble("mov %r0, 2\nmul %r0, 21\nexit"))),
                            Machine())
    assert raw.step().reason == "step" and raw.regs[0] == 2    # no line info: one instruction
    assert raw.cont().reason == "exit" and raw.result.r0 == 42
