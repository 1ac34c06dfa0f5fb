"""The IPython extension in a real IPython shell: %%ebpf compiles, caches, reports errors against
the cell's lines, binds and attaches; %ntoslab shows the state."""
from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

import ntoslab
from ntoslab.magics import UsageError

POLICY = r"""#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, uint32_t); __type(value, uint64_t);
         __uint(max_entries, 8); } seen SEC(".maps");
SEC("process") int OddDeny(process_md_t* ctx)
{
    uint32_t k = (uint32_t)ctx->process_id;
    uint64_t one = 1;
    bpf_map_update_elem(&seen, &k, &one, 0);
    return (ctx->process_id % 2) ? LIMIT : 0;
}
"""


@pytest.fixture
def ip(tmp_path, monkeypatch):
    monkeypatch.setenv("NTOSLAB_CACHE", str(tmp_path / "cache"))
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "ntoslab")
    shell.user_ns["hook"] = ntoslab.emulator()
    yield shell
    shell.run_line_magic("reload_ext", "ntoslab")   # a fresh registry for the next test
    for name in ("hook", "odd", "broken"):
        shell.user_ns.pop(name, None)


def run_cell(ip, line, cell):
    return ip.run_cell_magic("ebpf", line, cell)


def test_cell_compiles_binds_attaches_and_the_program_decides(ip, capsys):
    run_cell(ip, "odd --attach hook -D LIMIT=-5", POLICY)
    hook, odd = ip.user_ns["hook"], ip.user_ns["odd"]
    assert [l.program.name for l in hook.links] == ["OddDeny"] and odd.hook is hook
    v = hook.inject(ntoslab.ProcessEvent.create(pid=7, parent=1, image="a.exe"))
    assert v.denied and v.status == -5
    assert not hook.inject(ntoslab.ProcessEvent.create(pid=8, parent=1)).denied
    assert len(odd.map("seen")) == 2
    out = capsys.readouterr().out
    assert "odd: built; programs OddDeny; maps seen; attached OddDeny" in out
    assert "compiled in" not in out           # no timings unless -v: outputs are deterministic


def test_an_unchanged_cell_is_not_recompiled_and_a_rerun_replaces_the_attachment(ip, capsys):
    run_cell(ip, "odd --attach hook -D LIMIT=-5 -v", POLICY)
    first = ip.user_ns["odd"]
    capsys.readouterr()
    run_cell(ip, "odd --attach hook -D LIMIT=-5 -v", POLICY)
    assert "unchanged, not recompiled" in capsys.readouterr().out
    hook = ip.user_ns["hook"]
    assert len(hook.links) == 1 and hook.links[0].loaded is ip.user_ns["odd"] is not first
    run_cell(ip, "odd --attach hook -D LIMIT=-6 -v", POLICY)       # another flag: recompiled
    assert "compiled in" in capsys.readouterr().out
    assert hook.inject(ntoslab.ProcessEvent.create(pid=9, parent=1)).status == -6


def test_compiler_errors_name_the_cells_line_and_quote_it(ip, capsys):
    bad = POLICY.replace("uint64_t one = 1;", "uint64_t one = undefined_thing;")
    line = bad.splitlines().index("    uint64_t one = undefined_thing;") + 1
    with pytest.raises(UsageError, match="broken: 1 compiler error"):
        run_cell(ip, "broken -D LIMIT=1", bad)
    out = capsys.readouterr().out
    assert f"cell line {line}:" in out and "undefined_thing" in out
    assert "uint64_t one = undefined_thing;" in out          # the offending line itself
    assert "broken" not in ip.user_ns


def test_warnings_are_shown_and_the_cell_still_loads(ip, capsys):
    warn = POLICY.replace("uint64_t one = 1;", "uint64_t one = 1; int unused_var;")
    run_cell(ip, "odd -D LIMIT=1", warn)
    out = capsys.readouterr().out
    line = warn.splitlines().index("    uint64_t one = 1; int unused_var;") + 1
    assert f"cell line {line}:" in out and "warning" in out and "unused_var" in out
    # without --attach/--hook it goes into the extension's own emulator
    assert ip.user_ns["odd"].hook is ntoslab.magics.default_hook()


def test_bad_arguments_are_usage_errors(ip):
    with pytest.raises(UsageError, match="no variable 'nohook'"):
        run_cell(ip, "odd --attach nohook", POLICY)
    with pytest.raises(UsageError, match="not a Python identifier"):
        run_cell(ip, "1odd", POLICY)


def test_state_lists_hooks_objects_programs_and_map_counts(ip):
    run_cell(ip, "odd --attach hook -D LIMIT=-5", POLICY)
    ip.user_ns["hook"].inject(ntoslab.ProcessEvent.create(pid=3, parent=1))
    state = ip.run_line_magic("ntoslab", "")
    text = repr(state)
    assert "hook: emulator" in text and "attached: OddDeny" in text and "events 1" in text
    assert "seen: 1 entries" in text and "odd odd.o" in text
    assert "<table>" in state._repr_html_()
