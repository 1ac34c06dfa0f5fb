"""Notebooks are tests too: each runs headless, top to bottom, and shows what it promises."""
from __future__ import annotations

import base64
import html as html_lib

import nbformat
import pytest
from conftest import ROOT

from ntoslab.report import render


def outputs(nb, mime="text/plain"):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if mime in out.get("data", {}):
                yield out["data"][mime]


def test_quickstart_notebook(tmp_path):
    html = render(ROOT / "notebooks" / "01-quickstart.ipynb", tmp_path)
    nb = nbformat.read(str(tmp_path / "01-quickstart.ipynb"), as_version=4)
    text = "\n".join(outputs(nb))
    # the scenario has 12 events; the policy denies the encoded PowerShell and mimikatz
    assert "0xC0000022" in text and "DenyPolicy" in text
    summary = [t for t in outputs(nb) if t.startswith("events")][-1]
    facts = dict(line.rsplit(None, 1) for line in summary.splitlines() if line[:1].isalpha()
                 and not line.startswith("dtype"))
    assert facts["events"] == "12" and facts["denied"] == "2" and facts["ring records"] == "12"
    assert "deny pid 5310: blocked image" in text
    png = list(outputs(nb, "image/png"))
    assert png and base64.b64decode(png[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert html.exists() and "Process lifetimes" in html.read_text()
    # the environment: widgets and views with their static faces, the state of the lab
    page = html.read_text()
    assert "application/vnd.jupyter.widget-state+json" in page      # widget state embedded
    assert page.count("class='ntoslab-anywidget'") == 0 and page.count('class="ntoslab-anywidget"') == 2
    assert "Event injector" in page and "Maps of" in page and "<details" in page
    assert "hook: emulator engine=jit" in text and "attached: ProcessMonitor → DenyPolicy" in text
    # deterministic: a second run renders the same page
    again = render(ROOT / "notebooks" / "01-quickstart.ipynb", tmp_path / "again")
    assert again.read_text() == page


ART = ROOT.parent / "shared" / "datasets" / "EVTX-ATTACK-SAMPLES" / "PanacheSysmon_vs_AtomicRedTeam01.evtx"


@pytest.mark.skipif(not ART.exists(), reason="../shared/datasets is not beside the checkout")
def test_trace_analysis_notebook_on_a_real_log(tmp_path):
    import json

    import evtx
    render(ROOT / "notebooks" / "02-trace-analysis.ipynb", tmp_path, {"trace": str(ART)})
    nb = nbformat.read(str(tmp_path / "02-trace-analysis.ipynb"), as_version=4)
    streams = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])
                        if o.get("output_type") == "stream")
    # independent count: Sysmon EID 1 records in the file
    eid1 = sum(1 for r in evtx.PyEvtxParser(str(ART)).records_json()
               if json.loads(r["data"])["Event"]["System"]["EventID"] == 1)
    summary = [t for t in outputs(nb) if t.startswith("rows")][-1]
    facts = {k.strip(): v for k, v in (line.rsplit(None, 1) for line in summary.splitlines()
                                       if not line.startswith("dtype"))}
    assert int(facts["processes"]) == eid1 == 511
    # the Atomic Red Team run pings 254 addresses from one cmd.exe: drawn as one line
    assert "PING.EXE ×254" in streams
    assert len(list(outputs(nb, "image/png"))) == 2


def test_trace_analysis_notebook_default_trace(tmp_path):
    render(ROOT / "notebooks" / "02-trace-analysis.ipynb", tmp_path)
    nb = nbformat.read(str(tmp_path / "02-trace-analysis.ipynb"), as_version=4)
    summary = [t for t in outputs(nb) if t.startswith("rows")][-1]
    assert summary.split()[1] == "3000"        # data/synthetic-session.parquet


def test_trace_analysis_notebook_on_a_million_synthetic_events(tmp_path):
    """The trace notebook at the size analysts have: 1M events (benchmarks/trace.py times it)."""
    from ntoslab.trace import write_trace
    from ntoslab.trace.synthetic import generate_session
    frame = generate_session(1_000_000, seed=5)
    path = write_trace(frame, tmp_path / "million.parquet")
    creates = int((frame["operation"] == "create").sum())
    render(ROOT / "notebooks" / "02-trace-analysis.ipynb", tmp_path,
           {"trace": str(path), "engine": "jit"})
    nb = nbformat.read(str(tmp_path / "02-trace-analysis.ipynb"), as_version=4)
    summary = [t for t in outputs(nb) if t.startswith("rows")][-1]
    facts = {k.strip(): v for k, v in (line.rsplit(None, 1) for line in summary.splitlines()
                                       if not line.startswith("dtype"))}
    assert int(facts["rows"]) == 1_000_000 and int(facts["processes"]) == creates
    # the three attack chains: the encoded PowerShell and the LSASS dump are found ...
    found = cell_outputs(nb, "suspicious = suspicious_commands(frame)")
    assert "encoded PowerShell" in found and "LSASS memory dump" in found
    # ... and the SQL examples answered
    assert "kinds" in cell_outputs(nb, "count(DISTINCT c.image)")


def cell_outputs(nb, index_of):
    """Text of every output of the first code cell whose source contains `index_of`."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and index_of in c.source)
    return "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "")
                     for o in cell.get("outputs", []))


LOLBINS5 = ("certutil.exe", "regsvr32.exe", "bitsadmin.exe", "mshta.exe", "rundll32.exe")


@pytest.mark.skipif(not ART.exists(), reason="../shared/datasets is not beside the checkout")
def test_policy_lab_notebook_compares_two_variants_on_a_real_log(tmp_path):
    from ntoslab.analysis import image_name
    from ntoslab.trace import import_logs
    render(ROOT / "notebooks" / "03-policy-lab.ipynb", tmp_path, {"trace_path": str(ART)})
    nb = nbformat.read(str(tmp_path / "03-policy-lab.ipynb"), as_version=4)
    table = cell_outputs(nb, "comparison = pd.DataFrame")
    # independent expectation: the two rules applied in Python to the log's creations
    frame = import_logs([ART]).frame
    creates = frame[frame["operation"] == "create"]
    lol = creates[creates["image_path"].map(lambda p: image_name(p).lower() in LOLBINS5)]
    by_url = lol[lol["command_line"].fillna("").str.lower().str.contains("http")]
    def row(label):   # pandas may wrap a wide frame into blocks: join the row's pieces
        return [tok for line in table.splitlines() if line.startswith(label)
                for tok in line[len(label):].split()]
    # denied, images denied, baseline false positives, faults
    assert row("A: image ") == [str(len(lol)), str(lol["image_path"].map(image_name).nunique()),
                                "5", "0"]
    assert row("B: image + http") == [str(len(by_url)),
                                      str(by_url["image_path"].map(image_name).nunique()), "1", "0"]


def test_debugging_notebook_opens_at_the_fault_and_the_fix_holds(tmp_path):
    html = render(ROOT / "notebooks" / "04-debugging.ipynb", tmp_path,
                  {"command_line": "cmd.exe /c ver"})
    nb = nbformat.read(str(tmp_path / "04-debugging.ipynb"), as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith("%%ebpf encoded "))
    fault_line = next(n for n, t in enumerate(cell.source.splitlines()[1:], 1) if "cmd[i] == '-'" in t)
    summary = cell_outputs(nb, "summary = pd.Series")
    assert f"faulting source line {fault_line}" in " ".join(summary.split())
    assert "just past the end of 'command line'" in summary or "command line" in cell_outputs(nb, "print(verdict.runs[0].fault)")
    assert "allowed, status 0" in summary and "denied 0xC0000022" in summary
    # "cmd.exe /c ver" is 14 UTF-16 code units: the dump shows 28 bytes and no more
    dump = cell_outputs(nb, 'dbg.hexdump("command line"')
    assert sum(len(l.split("  ")[1].split()) for l in dump.strip().splitlines()) == 28
    # the walk: the pointer visits each of the 14 code units (offsets 0, 2, ... 26), then faults
    import re
    walk = cell_outputs(nb, "turns = []")
    offsets = [int(m) for m in re.findall(r"r3: command line \+ (\d+)", walk)]
    assert offsets == list(range(0, 28, 2)) and walk.strip().splitlines()[-1].split()[1] == "fault"
    page = html.read_text()
    assert 'class="cur"' in page and "cmd[i] == '-'" in html_lib.unescape(page)   # the debugger's static face


def test_live_capture_notebook_runs_or_says_why_not(tmp_path):
    render(ROOT / "notebooks" / "05-live-capture.ipynb", tmp_path, {"seconds": 2})
    nb = nbformat.read(str(tmp_path / "05-live-capture.ipynb"), as_version=4)
    first = cell_outputs(nb, "ntoslab.live()")
    if "skipped" in first:
        assert "live capture skipped: " in first and len(first.split("skipped: ", 1)[1]) > 10
        pytest.skip(first.strip())
    counts = cell_outputs(nb, "with live.record() as rec")
    assert " 6 of them ours" in counts        # three processes started, each a create and an exit
    facts = " ".join(cell_outputs(nb, "shadow_denied =").split())
    assert "processes we started 3" in facts
    assert "exit code of `exit 3` 3" in facts          # the real exit code, from the kernel
    assert "denied in shadow mode 1" in facts          # the -enc command line, by DenyPolicy
    assert "live table: our rows 6" in facts           # streamed into the widget as they came


def test_fleet_notebook_on_a_local_cluster(tmp_path):
    """200 synthetic hosts on a 2-process LocalCluster: the attacks are the rare pairs, and the
    policy denies the encoded PowerShell of each office_macro host."""
    from ntoslab import fleet
    render(ROOT / "notebooks" / "06-fleet.ipynb", tmp_path, {"dataset": str(tmp_path / "ds")})
    nb = nbformat.read(str(tmp_path / "06-fleet.ipynb"), as_version=4)
    text = "\n".join(outputs(nb))
    summary = [t for t in outputs(nb) if t.startswith("hosts")][-1]
    facts = {k.strip(): v for k, v in (line.rsplit(None, 1) for line in summary.splitlines()
                                       if not line.startswith("dtype"))}
    # independently: the hosts whose sessions hold an -EncodedCommand (the deny rule)
    fleet_frame = fleet.generate_fleet(200, 400, seed=7, attacked=0.05)
    encoded = fleet_frame[fleet_frame["command_line"].str.contains("-EncodedCommand", na=False)]
    assert facts["events"] == "80000" and facts["hosts"] == "200"
    assert int(facts["hosts with a denial"]) == encoded["host"].nunique() >= 1
    assert int(facts["denied"]) == len(encoded)
    assert "certutil.exe" in text and "wscript.exe" in text and "rundll32.exe" in text
    assert not (tmp_path / "ds").exists()           # the notebook cleans up after itself
