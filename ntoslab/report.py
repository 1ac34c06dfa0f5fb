"""Reproducible reports: execute a notebook headless (papermill) and render it to HTML.

The HTML embeds the widgets' last state (ipywidgets' widget-state JSON, as nbclient records
it) and opens offline in any browser: the interactive views (tree, timeline: anywidget models)
render from that state with their own ES modules, every other widget shows its static HTML
face. Outputs are deterministic: widget model ids are numbered in order of appearance (the
kernel makes random ones), and the notebooks are seeded and print no wall-clock times.

>>> render("notebooks/01-quickstart.ipynb", "reports")      # doctest: +SKIP
PosixPath('reports/01-quickstart.html')
"""
from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path
from typing import Any, Mapping


class ReportError(RuntimeError):
    """The notebook failed; the message names the cell and the error it raised."""


def execute(notebook: str | Path, output: str | Path, parameters: Mapping[str, Any] | None = None,
            timeout: int = 600, progress: bool = False) -> Path:
    """Run `notebook` top to bottom (cwd = its folder) into `output` (.ipynb); `progress`
    shows a bar advancing per cell."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    notebook, output = Path(notebook), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(notebook), str(output), parameters=dict(parameters or {}),
                            cwd=str(notebook.parent), progress_bar=progress,
                            execution_timeout=timeout,
                            # the kernel's "running over TCP without encryption" notice: the
                            # kernel is local to this run and bound to 127.0.0.1
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],
                            kernel_name="python3")
    except PapermillExecutionError as exc:
        raise ReportError(f"{notebook}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue}") \
            from None
    return output


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
EMBED_JS = Path(__file__).parent / "viz" / "static" / "embed.js"
_MODEL_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")   # also inside IPY_MODEL_...


def stable_widget_ids(text: str, state: Mapping[str, Any]) -> str:
    """Replace the kernel's random widget model ids in `text` (notebook JSON) by w0001,
    w0002...: the displayed widgets in cell order, each followed by the models it refers to
    (depth first, attributes in name order), then any others by kind and content."""
    nb = json.loads(text)
    order: list[str] = []
    seen: set[str] = set()

    def refs(value: Any) -> list[str]:
        if isinstance(value, str):
            return _MODEL_ID.findall(value) if value.startswith("IPY_MODEL_") else []
        if isinstance(value, (list, tuple)):
            return [r for v in value for r in refs(v)]
        if isinstance(value, dict):
            return [r for k in sorted(value) for r in refs(value[k])]
        return []

    def visit(mid: str) -> None:
        if mid in seen or mid not in state:
            return
        seen.add(mid)
        order.append(mid)
        for ref in refs(state[mid].get("state", {})):
            visit(ref)

    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            visit(out.get("data", {}).get(WIDGET_VIEW, {}).get("model_id", ""))
    blank = lambda m: _MODEL_ID.sub("", json.dumps(state[m], sort_keys=True))
    for mid in sorted(set(state) - seen, key=lambda m: (state[m].get("model_name", ""), blank(m))):
        visit(mid)
    names = {mid: f"w{i + 1:04d}" for i, mid in enumerate(order)}
    return _MODEL_ID.sub(lambda m: names.get(m.group(0), m.group(0)), text)


def _widget_outputs(nb, state: Mapping[str, Any]) -> int:
    """Turn widget views into static HTML; anywidget views get a host the runtime renders in.
    Returns how many views the runtime will render."""
    live = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            view = data.pop(WIDGET_VIEW, None)
            if view is None:
                continue
            model = state.get(view.get("model_id"), {})
            face = data.get("text/html") or f"<pre>{html_lib.escape(data.get('text/plain', ''))}</pre>"
            if model.get("model_module") == "anywidget":
                live += 1
                face = (f"<div class='ntoslab-anywidget' data-model-id='{view['model_id']}'>"
                        f"{face}</div>")
            data["text/html"] = face
    return live


def to_html(executed: str | Path, html: str | Path) -> Path:
    """Render an executed notebook to self-contained HTML (see the module docstring)."""
    import nbformat
    from nbconvert import HTMLExporter

    executed = Path(executed)
    nb = nbformat.read(str(executed), as_version=4)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    if state:   # deterministic ids, in the executed notebook too
        text = stable_widget_ids(executed.read_text(encoding="utf-8"), state)
        executed.write_text(text, encoding="utf-8")
        nb = nbformat.reads(text, as_version=4)
        state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    live = _widget_outputs(nb, state)
    nb.metadata.pop("widgets", None)   # nbconvert would fetch the html-manager from a CDN
    body, _ = HTMLExporter().from_notebook_node(nb)
    if live:
        blob = json.dumps({"version_major": 2, "version_minor": 0, "state": dict(state)},
                          sort_keys=True).replace("</", "<\\/")
        embed = (f'<script type="{WIDGET_STATE}">{blob}</script>\n'
                 f'<script type="module">{EMBED_JS.read_text()}</script>\n')
        body = body.replace("</body>", embed + "</body>", 1)
    html = Path(html)
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(body, encoding="utf-8")
    return html


def render(notebook: str | Path, out_dir: str | Path = "reports",
           parameters: Mapping[str, Any] | None = None, name: str | None = None,
           progress: bool = False) -> Path:
    """Execute `notebook` and write `<out_dir>/<name>.ipynb` and `<out_dir>/<name>.html`
    (`name`: the notebook's stem unless given; `report_name` makes one per parameter set)."""
    notebook, out_dir = Path(notebook), Path(out_dir)
    stem = name or notebook.stem
    executed = execute(notebook, out_dir / f"{stem}.ipynb", parameters, progress=progress)
    return to_html(executed, out_dir / f"{stem}.html")


def report_name(notebook: str | Path, parameters: Mapping[str, Any]) -> str:
    """`<stem>` without parameters, else `<stem>--<name>=<value>...` (values that are paths
    by their file name; a short hash when that is long), so reports of one notebook with
    different parameters do not overwrite each other."""
    import hashlib
    stem = Path(notebook).stem
    if not parameters:
        return stem
    parts = []
    for key in sorted(parameters):
        value = str(parameters[key])
        shown = Path(value).name if ("/" in value or "\\" in value) else value
        parts.append(f"{key}={re.sub(r'[^A-Za-z0-9._-]+', '_', shown)}")
    suffix = "--" + "--".join(parts)
    digest = hashlib.sha1(json.dumps({k: str(v) for k, v in parameters.items()},
                                     sort_keys=True).encode()).hexdigest()[:8]
    if len(suffix) > 80:
        suffix = suffix[:70] + "-" + digest
    elif any(("/" in str(v) or "\\" in str(v)) for v in parameters.values()):
        suffix += "-" + digest          # same file name in two folders: two reports
    return stem + suffix


def resolve_parameters(parameters: Mapping[str, Any], cwd: str | Path = ".") -> dict[str, Any]:
    """Parameters given on a command line, with relative paths made absolute from the
    caller's directory (the notebook runs in its own folder). A value that looks like a path
    (it has a folder part or a file suffix) and does not exist is refused here, naming it."""
    out: dict[str, Any] = {}
    base = Path(cwd).resolve()
    for key, value in parameters.items():
        if isinstance(value, str) and value and not re.match(r"^[a-z]+://", value):
            candidate = Path(value).expanduser()
            looks_like_path = "/" in value or "\\" in value or \
                bool(re.fullmatch(r"\.[A-Za-z][A-Za-z0-9]{0,7}", candidate.suffix))
            full = candidate if candidate.is_absolute() else base / candidate
            if full.exists():
                value = str(full.resolve())
            elif looks_like_path:
                raise FileNotFoundError(f"parameter {key}: no such file or folder {value!r} "
                                        f"(relative paths are taken from {base})")
        out[key] = value
    return out
