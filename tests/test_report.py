"""`ntoslab report`: parameters resolve from the caller's directory, missing inputs stop before
anything runs, and reports with different parameters do not overwrite each other."""
from __future__ import annotations

import nbformat

from ntoslab.cli import main
from ntoslab.report import report_name, resolve_parameters


def _notebook(folder):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('trace = "none"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "from pathlib import Path\nprint('bytes', len(Path(trace).read_bytes()))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = folder / "reader.ipynb"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def test_relative_parameters_resolve_from_the_callers_directory(tmp_path, monkeypatch):
    notebook = _notebook(tmp_path / "notebooks")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "a.log").write_bytes(b"x" * 11)
    (tmp_path / "work" / "b.log").write_bytes(b"y" * 7)
    monkeypatch.chdir(tmp_path / "work")
    assert main(["report", str(notebook), "-p", "trace", "a.log", "-o", "out"]) == 0
    assert main(["report", str(notebook), "-p", "trace", "b.log", "-o", "out"]) == 0
    html = sorted((tmp_path / "work" / "out").glob("*.html"))
    assert len(html) == 2                                   # one report per parameter set
    texts = [h.read_text() for h in html]
    assert any("bytes 11" in t for t in texts) and any("bytes 7" in t for t in texts)


def test_a_missing_input_stops_before_the_notebook_runs(tmp_path, monkeypatch, capsys):
    notebook = _notebook(tmp_path / "notebooks")
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(notebook), "-p", "trace", "logs/missing.evtx", "-o", "out"]) == 1
    err = capsys.readouterr().err
    assert "parameter trace" in err and "logs/missing.evtx" in err and str(tmp_path) in err
    assert not (tmp_path / "out").exists()


def test_parameters_that_are_not_paths_pass_through(tmp_path):
    assert resolve_parameters({"n": 5, "ratio": "0.5", "name": "cmd"}, tmp_path) == \
        {"n": 5, "ratio": "0.5", "name": "cmd"}
    assert report_name("nb/02-trace.ipynb", {}) == "02-trace"
    assert report_name("nb/02-trace.ipynb", {"limit": 5}) == "02-trace--limit=5"
    one = report_name("x.ipynb", {"trace": "/a/s.evtx"})
    two = report_name("x.ipynb", {"trace": "/b/s.evtx"})
    assert one.startswith("x--trace=s.evtx-") and one != two
