"""Process trees from a trace: roots, depth, ancestry, descendants, subtrees, text rendering.

Nodes are process instances (`process_key`), linked by `parent_key`, so PID reuse never merges
two processes. A process whose parent was never seen is a root. The tree is a view over the
linked frame (`processes.processes`, kept as `tree.frame`): parents and children are integer
arrays, and `Node` objects are made only for the processes that are looked at, walked or
rendered. Children and roots are in creation order (time, then key).

>>> tree = ProcessTree.from_trace(trace)                       # doctest: +SKIP
>>> print(tree.render(max_depth=3))                            # doctest: +SKIP
"""
from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from .processes import image_name, map_unique, processes, time_ns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Node", "ProcessTree", "as_tree", "image_name"]


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
    row: Mapping = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return image_name(self.image)


class _Row(Mapping):
    """A creation's trace row, read from the trace on first use."""

    def __init__(self, trace, pos: int) -> None:
        self._trace, self._pos = trace, pos
        self._data: dict | None = None

    def _get(self) -> dict:
        if self._data is None:
            self._data = {} if self._trace is None else \
                self._trace.iloc[[self._pos]].to_dict("records")[0]
        return self._data

    def __getitem__(self, k):
        return self._get()[k]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def _missing(v) -> bool:
    try:
        import pandas as pd
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


class _Nodes(Mapping):
    """`tree.nodes`: key -> Node, each made (and kept) when first asked for."""

    def __init__(self, tree: "ProcessTree") -> None:
        self._tree = tree
        self._made: dict[int, Node] = {}

    def __getitem__(self, key) -> Node:
        return self._tree._node_at(self._tree._index_of(key))

    def __contains__(self, key) -> bool:
        return self._tree._find_index(key) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._tree._keys.tolist())

    def __len__(self) -> int:
        return len(self._tree._parent)

    def signature(self, key: str) -> int:
        """The shape of the subtree under `key` as an int (equal shapes, equal ints)."""
        return int(self._tree._shapes()[self._tree._index_of(key)])


def as_tree(trace_or_tree) -> "ProcessTree":
    """A ProcessTree as it is, or the tree of a trace frame."""
    return trace_or_tree if isinstance(trace_or_tree, ProcessTree) else \
        ProcessTree.from_trace(trace_or_tree)


class ProcessTree:
    """A forest of process instances over a linked frame (`frame`: one row per process)."""

    def __init__(self, frame: "pd.DataFrame", trace: "pd.DataFrame | None" = None) -> None:
        import pandas as pd
        self.frame = frame
        self.trace = trace
        n = len(frame)
        from .processes import arrow_strings
        keys = arrow_strings(frame["process_key"])
        self._akeys = keys
        self._keys_obj: np.ndarray | None = None   # Python strings, made on first lookup or walk
        self._lookup: dict[str, int] | None = None
        parent = frame["parent"].to_numpy(np.int64)
        self._parent = parent
        # creation order: time (missing last), then key
        start = frame["start"]
        if isinstance(start.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(start.dtype):
            t = start.array.asi8.astype(np.int64)     # NaT sorts first, as its value does
            missing = np.zeros(n, bool)
        else:
            ns = time_ns(start)
            missing = ns.isna().to_numpy(bool)
            t = ns.fillna(0).to_numpy(np.int64)
        order = np.lexsort((t, missing)) if missing.any() else np.argsort(t, kind="stable")
        ts, ms = t[order], missing[order]
        tied = np.zeros(n, bool)
        if n > 1:
            same = (ts[1:] == ts[:-1]) & (ms[1:] == ms[:-1])
            tied[1:] |= same
            tied[:-1] |= same
        if tied.any():      # ties in time are broken by key
            import pyarrow.compute as pc
            sub = order[tied]
            rank = np.zeros(n, np.int64)
            by_key = pc.sort_indices(keys.take(sub)).to_numpy()
            rank[sub[by_key]] = np.arange(len(sub))
            order = np.lexsort((rank, t, missing))
        self._order = order
        self._rank = np.empty(n, np.int64)
        self._rank[order] = np.arange(n)
        # children (CSR, each list in creation order) and roots
        by_parent = order[np.argsort(parent[order], kind="stable")]
        linked = parent[by_parent] >= 0
        self._child = by_parent[linked]
        counts = np.bincount(parent[parent >= 0], minlength=n) if n else np.zeros(0, np.int64)
        self._ptr = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=self._ptr[1:])
        self._root_idx = order[parent[order] < 0]
        self.roots: list[str] = keys.take(self._root_idx).to_pylist()
        self.nodes = _Nodes(self)
        self._shape: np.ndarray | None = None
        self._lower: np.ndarray | None = None

    @classmethod
    def from_trace(cls, trace: "pd.DataFrame") -> "ProcessTree":
        """Build from trace-schema rows (creates become nodes; deletes add exit time and code)."""
        return cls(processes(trace), trace)

    # -- index helpers -------------------------------------------------------------------
    @property
    def _keys(self) -> np.ndarray:
        if self._keys_obj is None:
            self._keys_obj = self._akeys.to_numpy(zero_copy_only=False).astype(object)
        return self._keys_obj

    def _find_index(self, key) -> int:
        if self._lookup is None:
            self._lookup = dict(zip(self._keys.tolist(), range(len(self._parent))))
        try:
            return self._lookup.get(key, -1)
        except TypeError:       # an unhashable key
            return -1

    def _index_of(self, key) -> int:
        i = self._find_index(key)
        if i < 0:
            raise KeyError(f"no process with key {key!r} in the tree")
        return int(i)

    def _children_idx(self, i: int) -> np.ndarray:
        return self._child[self._ptr[i]:self._ptr[i + 1]]

    def _node_at(self, i: int) -> Node:
        made = self.nodes._made
        node = made.get(i)
        if node is None:
            f = self.frame
            pk = f["parent_key"].iat[i]
            image = f["image_path"].iat[i]
            end = f["end"].iat[i]
            code = f["exit_code"].iat[i]
            cmd = f["command_line"].iat[i]
            node = Node(self._keys[i], int(f["process_id"].iat[i]),
                        image if isinstance(image, str) else "",
                        cmd if isinstance(cmd, str) else None, f["start"].iat[i],
                        exit_time=None if _missing(end) else end,
                        exit_code=None if _missing(code) else code,
                        parent=pk if isinstance(pk, str) else None,
                        children=self._keys[self._children_idx(i)].tolist(),
                        row=_Row(self.trace, int(f["row"].iat[i])))
            made[i] = node
        return node

    def lower_names(self) -> np.ndarray:
        """Image names in lower case, one per process (frame order)."""
        if self._lower is None:
            self._lower = map_unique(self.frame["image"], lambda s: s.lower() if isinstance(s, str)
                                     else "?")
        return self._lower

    def _shapes(self) -> np.ndarray:
        """Subtree shape ids, bottom-up by level: equal (lower-case name, children's shapes
        as a multiset) get the same id."""
        if self._shape is None:
            n = len(self._parent)
            shape = np.arange(n, dtype=np.int64) + n     # unreachable (cycles): unique
            levels = self._levels()
            names = self.lower_names()
            ids: dict[tuple, int] = {}
            for level in reversed(levels):
                for i in level.tolist():
                    kids = self._child[self._ptr[i]:self._ptr[i + 1]]
                    sig = (names[i], tuple(sorted(shape[kids].tolist())) if len(kids) else ())
                    shape[i] = ids.setdefault(sig, len(ids))
            self._shape = shape
        return self._shape

    def _levels(self) -> list[np.ndarray]:
        """Process positions by depth below the roots (level 0 = roots)."""
        levels = []
        frontier = self._root_idx
        seen = np.zeros(len(self._parent), bool)
        while len(frontier):
            seen[frontier] = True
            levels.append(frontier)
            frontier = self._expand(frontier)
            frontier = frontier[~seen[frontier]]
        return levels

    def _expand(self, frontier: np.ndarray) -> np.ndarray:
        """All children of the given positions (concatenated)."""
        starts, ends = self._ptr[frontier], self._ptr[frontier + 1]
        sizes = ends - starts
        total = int(sizes.sum())
        if total == 0:
            return np.zeros(0, np.int64)
        offs = np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(total)
        return self._child[offs]

    def below(self, i: int) -> np.ndarray:
        """Positions of every process below position `i` (breadth first)."""
        out = []
        frontier = np.array([i], np.int64)
        seen = {i}
        while len(frontier):
            frontier = self._expand(frontier)
            if len(frontier):
                frontier = np.array([k for k in frontier.tolist() if k not in seen], np.int64)
                seen.update(frontier.tolist())
                out.append(frontier)
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def subtree_sizes(self) -> np.ndarray:
        """Descendant count of every process (frame order)."""
        size = np.zeros(len(self._parent), np.int64)
        for level in reversed(self._levels()[1:]):
            np.add.at(size, self._parent[level], size[level] + 1)
        return size

    # -- the public view -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._parent)

    def __contains__(self, key: str) -> bool:
        return self._find_index(key) >= 0

    def node(self, key: str) -> Node:
        return self._node_at(self._index_of(key))

    def find(self, image: str | None = None, pid: int | None = None) -> list[str]:
        """Keys of processes whose image name (case-insensitive) and/or pid match."""
        mask = np.ones(len(self._parent), bool)
        if image is not None:
            mask &= self.lower_names() == image.lower()
        if pid is not None:
            mask &= (self.frame["process_id"] == pid).fillna(False).to_numpy(bool)
        hits = np.flatnonzero(mask)
        return self._keys[hits[np.argsort(self._rank[hits], kind="stable")]].tolist()

    def ancestry(self, key: str) -> list[str]:
        """The chain from the root down to `key` (inclusive)."""
        i = self._index_of(key)
        chain, seen = [i], {i}
        while True:
            p = int(self._parent[chain[-1]])
            if p < 0 or p in seen:
                break
            chain.append(p)
            seen.add(p)
        return self._keys[chain[::-1]].tolist()

    def depth(self, key: str) -> int:
        return len(self.ancestry(key)) - 1

    def _dfs(self, start: list[int]) -> Iterator[tuple[int, int]]:
        ptr, child = self._ptr, self._child
        stack = [(0, i) for i in reversed(start)]
        seen: set[int] = set()
        while stack:
            d, i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            yield d, i
            kids = child[ptr[i]:ptr[i + 1]].tolist()
            stack.extend((d + 1, c) for c in reversed(kids))

    def descendants(self, key: str) -> list[str]:
        """Every process below `key`, depth first in creation order."""
        i = self._index_of(key)
        order = [j for _, j in self._dfs(self._children_idx(i).tolist()) if j != i]
        return self._keys[order].tolist() if order else []

    def subtree(self, key: str) -> "ProcessTree":
        i = self._index_of(key)
        keep = np.concatenate([[i], self.below(i)]).astype(np.int64)
        sub = self.frame.iloc[keep].reset_index(drop=True)
        remap = np.full(len(self._parent), -1, np.int64)
        remap[keep] = np.arange(len(keep))
        parent = self._parent[keep]
        sub["parent"] = np.where(parent >= 0, remap[np.maximum(parent, 0)], -1)
        sub.loc[0, "parent"] = -1
        sub["parent_key"] = sub["parent_key"].astype("string")
        sub.loc[0, "parent_key"] = None
        return ProcessTree(sub, self.trace)

    def walk(self) -> Iterator[tuple[int, str]]:
        """(depth, key) for every node, depth first from each root."""
        keys = self._keys
        for d, i in self._dfs(self._root_idx.tolist()):
            yield d, keys[i]

    def to_frame(self) -> "pd.DataFrame":
        import pandas as pd
        walked = list(self._dfs(self._root_idx.tolist()))
        idx = np.array([i for _, i in walked], np.int64)
        f = self.frame
        return pd.DataFrame({
            "process_key": self._keys[idx], "depth": np.array([d for d, _ in walked], np.int64),
            "process_id": f["process_id"].to_numpy()[idx], "image": f["image"].to_numpy()[idx],
            "children": (self._ptr[idx + 1] - self._ptr[idx]),
            "descendants": self.subtree_sizes()[idx],
            "parent_key": f["parent_key"].to_numpy(dtype=object)[idx]})

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


def _signature(key: str, nodes, memo: dict[str, tuple]):
    """The shape of the subtree under `key`: its image name and its children's shapes."""
    if isinstance(nodes, _Nodes):
        return nodes.signature(key)
    sig = memo.get(key)
    if sig is None:
        n = nodes[key]
        sig = (n.name.lower(), tuple(sorted(_signature(c, nodes, memo) for c in n.children)))
        memo[key] = sig
    return sig


def _group_siblings(keys: list[str], nodes, collapse: int,
                    memo: dict[str, tuple] | None = None) -> list[list[str]]:
    """Siblings whose subtrees have the same shape (e.g. 254 childless PING.EXE, or 38 cmd.exe
    each running one reg.exe) become one group when there are more than `collapse` of them;
    the group stands where its first member stood."""
    memo = {} if memo is None else memo
    sigs = {k: _signature(k, nodes, memo) for k in keys}
    counts = Counter(sigs.values())
    groups: list[list[str]] = []
    pending: dict[Any, list[str]] = {}
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


def describe_group(group: list[str], nodes) -> str:
    """`cmd.exe ×38 (each → reg.exe)` for a group of same-shaped siblings."""
    n = nodes[group[0]]
    text = f"{n.name} ×{len(group)}"
    if n.children:
        below = ", ".join(sorted({nodes[c].name for c in n.children}))
        text += f" (each → {below})"
    return text
