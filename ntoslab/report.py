"""Reproducible reports: execute a notebook headless (papermill) and render it to HTML.

>>> render("notebooks/01-quickstart.ipynb", "reports")      # doctest: +SKIP
PosixPath('reports/01-quickstart.html')
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping


class ReportError(RuntimeError):
    """The notebook failed; the message names the cell and the error it raised."""


def execute(notebook: str | Path, output: str | Path, parameters: Mapping[str, Any] | None = None,
            timeout: int = 600) -> Path:
    """Run `notebook` top to bottom (cwd = its folder) into `output` (.ipynb)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    notebook, output = Path(notebook), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(notebook), str(output), parameters=dict(parameters or {}),
                            cwd=str(notebook.parent), progress_bar=False, execution_timeout=timeout,
                            kernel_name="python3")
    except PapermillExecutionError as exc:
        raise ReportError(f"{notebook}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue}") \
            from None
    return output


def to_html(executed: str | Path, html: str | Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    html = Path(html)
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(body, encoding="utf-8")
    return html


def render(notebook: str | Path, out_dir: str | Path = "reports",
           parameters: Mapping[str, Any] | None = None) -> Path:
    """Execute `notebook` and write `<out_dir>/<name>.ipynb` and `<out_dir>/<name>.html`."""
    notebook, out_dir = Path(notebook), Path(out_dir)
    executed = execute(notebook, out_dir / notebook.name, parameters)
    return to_html(executed, out_dir / (notebook.stem + ".html"))
