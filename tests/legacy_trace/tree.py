"""Process trees from a trace: roots, depth, ancestry, descendants, subtrees, text rendering.

Nodes are process instances (`process_key`), linked by `parent_key`, so PID reuse never merges
two processes. A process whose parent was never seen is a root.

>>> tree = ProcessTree.from_trace(trace)                       # doctest: +SKIP
>>> print(tree.render(max_depth=3))                            # doctest: +SKIP
"""
from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import pandas as pd


def image_name(path: Any) -> str:
    """The file name of an image path (`\\??\\C:\\x\\cmd.exe` → `cmd.exe`), or '?'."""
    if not isinstance(path, str) or not path:
        return "?"
    return path.replace("/", "\\").rsplit("\\", 1)[-1]


@dataclass
class Node:
    key: str
    pid: int
    image: str
    command_line: str | None
    time: Any
    exit_time: Any = None
    exit_code: Any = None
    parent: str | None = None
    children: list[str] = field(default_factory=list)
    row: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return image_name(self.image)


class ProcessTree:
    """A forest of process instances."""

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        for node in nodes.values():
            if node.parent is not None and node.parent in nodes:
                nodes[node.parent].children.append(node.key)
        for node in nodes.values():
            node.children.sort(key=lambda k: (_order(nodes[k].time), k))
        self.roots = sorted((k for k, n in nodes.items() if n.parent not in nodes),
                            key=lambda k: (_order(nodes[k].time), k))

    @classmethod
    def from_trace(cls, trace: "pd.DataFrame") -> "ProcessTree":
        """Build from trace-schema rows (creates become nodes; deletes add exit time and code)."""
        need = {"operation", "process_id", "process_key", "parent_key"}
        missing = need - set(trace.columns)
        if missing:
            raise ValueError(f"trace lacks column(s) {', '.join(sorted(missing))}; "
                             f"import it with ntoslab.trace first")
        nodes: dict[str, Node] = {}
        creates = trace[trace["operation"] == "create"]
        for row in creates.to_dict("records"):
            key = row["process_key"]
            if not isinstance(key, str):
                continue
            parent = row.get("parent_key")
            nodes[key] = Node(key, int(row["process_id"]), row.get("image_path") or "",
                              row.get("command_line"), row.get("time"),
                              parent=parent if isinstance(parent, str) else None, row=row)
        for row in trace[trace["operation"] == "delete"].to_dict("records"):
            node = nodes.get(row.get("process_key"))
            if node is not None:
                node.exit_time = row.get("time")
                node.exit_code = row.get("exit_code")
        return cls(nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, key: str) -> bool:
        return key in self.nodes

    def node(self, key: str) -> Node:
        try:
            return self.nodes[key]
        except KeyError:
            raise KeyError(f"no process with key {key!r} in the tree") from None

    def find(self, image: str | None = None, pid: int | None = None) -> list[str]:
        """Keys of processes whose image name (case-insensitive) and/or pid match."""
        out = []
        for k, n in self.nodes.items():
            if image is not None and n.name.lower() != image.lower():
                continue
            if pid is not None and n.pid != pid:
                continue
            out.append(k)
        return sorted(out, key=lambda k: _order(self.nodes[k].time))

    def ancestry(self, key: str) -> list[str]:
        """The chain from the root down to `key` (inclusive)."""
        chain = [self.node(key).key]
        seen = {key}
        while True:
            parent = self.nodes[chain[-1]].parent
            if parent is None or parent not in self.nodes or parent in seen:
                break
            chain.append(parent)
            seen.add(parent)
        return chain[::-1]

    def depth(self, key: str) -> int:
        return len(self.ancestry(key)) - 1

    def descendants(self, key: str) -> list[str]:
        """Every process below `key`, depth first in creation order."""
        out: list[str] = []
        stack = list(reversed(self.node(key).children))
        while stack:
            k = stack.pop()
            out.append(k)
            stack.extend(reversed(self.nodes[k].children))
        return out

    def subtree(self, key: str) -> "ProcessTree":
        keep = [key] + self.descendants(key)
        nodes = {k: Node(**{**self.nodes[k].__dict__, "children": []}) for k in keep}
        nodes[key].parent = None
        return ProcessTree(nodes)

    def walk(self) -> Iterator[tuple[int, str]]:
        """(depth, key) for every node, depth first from each root."""
        for root in self.roots:
            stack = [(0, root)]
            while stack:
                d, k = stack.pop()
                yield d, k
                stack.extend((d + 1, c) for c in reversed(self.nodes[k].children))

    def to_frame(self) -> "pd.DataFrame":
        import pandas as pd
        rows = [{"process_key": k, "depth": d, "process_id": self.nodes[k].pid,
                 "image": self.nodes[k].name, "children": len(self.nodes[k].children),
                 "descendants": len(self.descendants(k)), "parent_key": self.nodes[k].parent}
                for d, k in self.walk()]
        return pd.DataFrame(rows)

    def render(self, max_depth: int | None = None, collapse: int = 3,
               show_command: bool = False, width: int = 100) -> str:
        """An indented text tree. Runs of more than `collapse` siblings with the same image are
        shown once with a count (`PING.EXE ×254`)."""
        lines: list[str] = []
        memo: dict[str, tuple] = {}

        def label(n: Node) -> str:
            text = f"{n.name} ({n.pid})"
            if show_command and n.command_line:
                text += f"  {n.command_line}"
            return text if len(text) <= width else text[:width - 1] + "…"

        def visit(keys: list[str], depth: int) -> None:
            if max_depth is not None and depth > max_depth:
                if keys:
                    lines.append("  " * depth + f"… {len(keys)} more")
                return
            groups = _group_siblings(keys, self.nodes, collapse, memo)
            for group in groups:
                n = self.nodes[group[0]]
                if len(group) > 1:
                    lines.append("  " * depth + describe_group(group, self.nodes))
                    continue
                lines.append("  " * depth + label(n))
                visit(n.children, depth + 1)

        visit(self.roots, 0)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ProcessTree {len(self)} processes, {len(self.roots)} roots>"

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.render(max_depth=6))}</pre>"


def _order(t: Any):
    try:
        return (0, int(t.value) if hasattr(t, "value") else int(t))
    except (TypeError, ValueError):
        return (1, 0)


def _signature(key: str, nodes: dict[str, Node], memo: dict[str, tuple]) -> tuple:
    """The shape of the subtree under `key`: its image name and its children's shapes."""
    sig = memo.get(key)
    if sig is None:
        n = nodes[key]
        sig = (n.name.lower(), tuple(sorted(_signature(c, nodes, memo) for c in n.children)))
        memo[key] = sig
    return sig


def _group_siblings(keys: list[str], nodes: dict[str, Node], collapse: int,
                    memo: dict[str, tuple] | None = None) -> list[list[str]]:
    """Siblings whose subtrees have the same shape (e.g. 254 childless PING.EXE, or 38 cmd.exe
    each running one reg.exe) become one group when there are more than `collapse` of them;
    the group stands where its first member stood."""
    memo = {} if memo is None else memo
    sigs = {k: _signature(k, nodes, memo) for k in keys}
    counts = Counter(sigs.values())
    groups: list[list[str]] = []
    pending: dict[tuple, list[str]] = {}
    for k in keys:
        sig = sigs[k]
        if counts[sig] > collapse:
            if sig not in pending:
                pending[sig] = []
                groups.append(pending[sig])
            pending[sig].append(k)
        else:
            groups.append([k])
    return groups


def describe_group(group: list[str], nodes: dict[str, Node]) -> str:
    """`cmd.exe ×38 (each → reg.exe)` for a group of same-shaped siblings."""
    n = nodes[group[0]]
    text = f"{n.name} ×{len(group)}"
    if n.children:
        below = ", ".join(sorted({nodes[c].name for c in n.children}))
        text += f" (each → {below})"
    return text
