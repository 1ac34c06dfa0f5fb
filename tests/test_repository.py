"""The checkout stays clean: notebooks are stored without outputs and git strips what running
them leaves; generated files are ignored."""
from __future__ import annotations

import subprocess
import sys

import nbformat
from conftest import ROOT


def test_tracked_notebooks_have_no_outputs():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name
        assert "widgets" not in nb.metadata, path.name


def test_git_strips_outputs_a_notebook_run_leaves(tmp_path):
    attributes = (ROOT / ".gitattributes").read_text().split("\n")
    assert "*.ipynb filter=nbstripout" in attributes
    nb = nbformat.read(str(ROOT / "notebooks" / "01-quickstart.ipynb"), as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.execution_count = 3
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    run = tmp_path / "run.ipynb"
    nbformat.write(nb, str(run))
    # the clean filter git runs (`nbstripout --install` in make setup configures it)
    out = subprocess.run([sys.executable, "-m", "nbstripout", "-t", str(run)],
                         capture_output=True, text=True, check=True).stdout
    stripped = nbformat.reads(out, as_version=4)
    first = next(c for c in stripped.cells if c.cell_type == "code")
    assert first.outputs == [] and first.execution_count is None
    assert [c.source for c in stripped.cells] == [c.source for c in nb.cells]


def test_generated_files_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().split("\n")
    assert ".ipynb_checkpoints/" in ignored and "/reports/" in ignored
