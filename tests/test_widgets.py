"""The widgets without a frontend: what their buttons do, what they show, their static faces.
Expectations come from the hook itself (its verdicts, maps and rings) and from the trace."""
from __future__ import annotations

import pytest
from conftest import ROOT

import ntoslab
from ntoslab.trace.keys import link_processes
from ntoslab.trace.schema import events_frame
from ntoslab.trace.synthetic import quickstart_scenario
from ntoslab.viz.interactive import ProcessTreeView, TimelineView, verdict_labels
from ntoslab.widgets import DebuggerWidget, Injector, LiveTable, MapInspector


@pytest.fixture
def hook():
    h = ntoslab.emulator()
    mon = h.load(ROOT / "bpf" / "process_monitor.o")
    pol = h.load(ROOT / "bpf" / "examples" / "deny_policy.o")
    h.attach(mon.program("ProcessMonitor"))
    h.attach(pol.program("DenyPolicy"))
    h.monitor, h.policy = mon, pol
    return h


@pytest.fixture(scope="module")
def trace():
    return link_processes(events_frame(quickstart_scenario()))


def test_injector_builds_the_event_from_the_form_and_shows_the_verdict(hook):
    inj = Injector(hook, pid=77, parent=5, image=r"\??\C:\Tools\mimikatz.exe",
                   command_line="mimikatz.exe")
    inj.fields["token_sid"].value = "S-1-5-18"
    inj.button.click()
    ev = inj.last_event
    assert (ev.process_id, ev.parent_process_id, ev.creating_process_id, ev.token_sid) == \
        (77, 5, 5, "S-1-5-18")
    assert inj.last_verdict.denied and inj.last_verdict.decided_by == "DenyPolicy"
    assert "DENIED" in inj.result.value and "DenyPolicy" in inj.result.value
    assert hook.verdicts()["denied"].tolist() == [True]
    inj.operation.value = "delete"
    inj.fields["exit_code"].value = 3
    inj.button.click()
    assert hook.verdicts()["operation"].tolist() == ["create", "delete"]
    assert inj.last_event.exit_code == 3 and not inj.last_event.image_path
    assert "DenyPolicy" in inj.static_html() and "<table>" in inj.static_html()


def test_injector_reports_a_bad_field_and_injects_nothing(hook):
    inj = Injector(hook)
    inj.fields["time"].value = "yesterday"
    inj.button.click()
    assert "field 'time'" in inj.result.value.replace("&#x27;", "'")
    assert len(hook.verdicts()) == 0


def test_live_table_streams_a_background_replay_and_counts_it(hook, trace):
    table = LiveTable(hook, show=5)
    thread = table.replay(trace)
    table.wait(30)
    assert not thread.is_alive()
    expected = hook.verdicts()
    assert table.counts["events"] == len(trace) == len(expected)
    assert table.counts["denied"] == int(expected["denied"].sum()) == 2
    table.outcome.value = "denied"
    assert {r["image"] for r in table.visible()} == {"powershell.exe", "mimikatz.exe"}
    table.outcome.value = "all"
    table.filter.value = "WHOAMI /all"        # case-insensitive, image or command line
    assert [r["process_id"] for r in table.visible()] == [5232]
    table.pause.value = True
    shown = table.view.value
    hook.inject(ntoslab.ProcessEvent.create(pid=9, parent=1, image=r"\??\C:\whoami.exe"))
    table.redraw()
    assert table.view.value == shown and table.counts["events"] == len(trace) + 1
    assert "paused" in table.status.value
    assert "events <b>13</b>" in table.static_html()


def test_live_table_lets_old_rows_go_and_counts_them(hook):
    table = LiveTable(hook, keep=3)
    for pid in range(5):
        hook.inject(ntoslab.ProcessEvent.create(pid=100 + pid, parent=1))
    assert len(table.rows) == 3 and table.counts["let go"] == 2 and table.dropped() == 2


def test_map_inspector_shows_every_map_decoded_and_refreshes_after_events(hook):
    ins = MapInspector(hook.monitor, records={"process_ringbuf": "process_info_t"}, interval=0)
    assert ins.names == [n for n, s in hook.monitor.obj.maps.items() if not s.is_global_data]
    ins.auto.value = True
    hook.inject(ntoslab.ProcessEvent.create(pid=4242, parent=1, image=r"\??\C:\cmd.exe",
                                            command_line="cmd.exe /c dir"))
    ring = ins.frame("process_ringbuf")
    assert len(ring) == 1 and ring["process_id"].tolist() == [4242]
    assert "1 records" in ins.panes["process_ringbuf"].value       # refreshed by the event
    cmd = hook.monitor.map("command_map").to_frame()
    assert len(ins.frame("command_map")) == len(cmd) == 1
    assert "process_ringbuf" in ins.static_html()


def test_debugger_widget_buttons_drive_the_debugger(hook):
    dbg = ntoslab.debugger(hook, ntoslab.ProcessEvent.create(
        pid=5, parent=1, image=r"\??\C:\mimikatz.exe", command_line="mimikatz.exe"))
    w = DebuggerWidget(dbg)
    assert "class='cur'" in w.source.value and "ProcessMonitor" in w.status.value
    w.do("stepi")
    assert dbg.stepper.count == 1 and "pc 1" in w.status.value
    w.add_breakpoint("pc 9999")
    assert "outside" in w.status.value
    w.do("run_to_fault")
    assert dbg.stop.reason == "exit" and all(b.disabled for b in w.buttons.values())
    assert dbg.verdict.denied            # the policy after the monitor still ran


def test_tree_view_nodes_follow_the_tree_and_the_verdicts(hook, trace):
    verdicts = hook.replay(trace)
    view = ProcessTreeView.from_trace(trace, verdicts)
    keys = set(trace.loc[trace["operation"] == "create", "process_key"])
    assert {n["id"] for n in view.nodes} == keys
    denied = {n["label"] for n in view.nodes if n["denied"]}
    assert denied == {"powershell.exe (5300)", "mimikatz.exe (5310)"}
    whoami = next(n for n in view.nodes if n["label"].startswith("whoami.exe (5232)"))
    assert whoami["tip"]["command line"] == "whoami /all"
    assert whoami["tip"]["user"] == "CONTOSO\\alice" and whoami["tip"]["exit code"].startswith("0")
    view.selected = whoami["id"]
    assert view.selected_row["command_line"] == "whoami /all"
    html = view.static_html()
    assert html.count("<details") == sum(1 for n in view.nodes if n["descendants"])
    assert "whoami /all" in html
    labels = verdict_labels(trace, hook.verdicts())     # the same from the history rows
    assert {k for k, v in labels.items() if v["denied"]} == \
        {k for k, v in verdict_labels(trace, verdicts).items() if v["denied"]}


def test_timeline_view_spans_the_trace(hook, trace):
    view = TimelineView.from_trace(trace, hook.replay(trace))
    t = trace["time"]
    assert view.span[1] == pytest.approx((t.max() - t.min()).total_seconds())
    # whoami ran 14.5 s .. 15 s after the first event, ipconfig 16 s .. 17 s (the scenario)
    spans = {i["label"]: (i["start"], i["end"]) for i in view.items}
    assert spans["whoami.exe (5232)"] == pytest.approx((14.5, 15.0))
    assert spans["ipconfig.exe (5240)"] == pytest.approx((16.0, 17.0))
    assert spans["mimikatz.exe (5310)"][0] == pytest.approx(22.0)
    assert spans["mimikatz.exe (5310)"][1] is None      # denied: a cross, no bar
    assert sum(i["denied"] for i in view.items) == 2
    assert "<table>" in view.static_html()
    bundle, _ = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "text/html" in bundle
