"""Notebooks are tests too: each runs headless, top to bottom, and shows what it promises."""
from __future__ import annotations

import base64

import nbformat
import pytest

from ntoslab.report import render

from conftest import ROOT


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
