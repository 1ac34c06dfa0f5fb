"""The linked frame: one row per process instance, its creation joined with its exit and its
parent, computed column-wise once and shared by every analysis (trees, pairs, lifetimes,
exit codes, what a deny prevents).

Creates (`operation == "create"`) with a string `process_key` are the processes; a key that is
created twice keeps its last creation. A delete with the same key gives `end` and `exit_code`
(the last such delete wins). `parent` is the row position of the process named by
`parent_key`, or -1 when that process is not in the trace (a root).

>>> procs = processes(trace)                                           # doctest: +SKIP
>>> procs[["process_key", "image", "parent", "start", "end"]]          # doctest: +SKIP
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["process_key", "parent_key", "parent", "process_id", "image_path", "image",
           "command_line", "start", "end", "exit_code", "row"]
NEEDED = {"operation", "process_id", "process_key", "parent_key"}


def image_name(path: Any) -> str:
    """The file name of an image path (`\\??\\C:\\x\\cmd.exe` → `cmd.exe`), or '?'."""
    if not isinstance(path, str) or not path:
        return "?"
    return path.replace("/", "\\").rsplit("\\", 1)[-1]


def map_unique(values, fn, dtype=object) -> np.ndarray:
    """`fn` applied to each distinct value of a Series/array (missing values included once):
    the column-wise form of `Series.map` for the few distinct images or command lines a
    trace holds."""
    import pandas as pd
    codes, uniques = pd.factorize(pd.Series(values, copy=False), use_na_sentinel=True)
    table = np.array([fn(u) for u in uniques] + [fn(None)], dtype=dtype)
    return table[codes]          # code -1 (missing) takes the last entry, fn(None)


def image_names(paths) -> np.ndarray:
    """`image_name` of every path, computed once per distinct path (object array)."""
    return map_unique(paths, image_name)


def check_columns(trace) -> None:
    missing = NEEDED - set(trace.columns)
    if missing:
        raise ValueError(f"trace lacks column(s) {', '.join(sorted(missing))}; "
                         f"import it with ntoslab.trace first")


def _is_str(series) -> np.ndarray:
    import pandas as pd
    if isinstance(series.dtype, pd.StringDtype) or series.dtype == "str":
        return series.notna().to_numpy(bool)
    return np.fromiter((isinstance(v, str) for v in series), bool, len(series))


def _take(series, pos: np.ndarray, present: np.ndarray | None = None):
    """series.iloc[pos] as a fresh 0..n index Series; rows where `present` is False missing."""
    if present is None:
        return series.iloc[pos].reset_index(drop=True)
    safe = np.where(present, pos, 0)
    out = series.iloc[safe].reset_index(drop=True)
    if len(series) == 0:
        return out
    return out.where(present)


def arrow_strings(series):
    """A key column as a pyarrow string array (values that are not strings become null)."""
    import pandas as pd
    import pyarrow as pa
    if not (isinstance(series.dtype, pd.StringDtype) or series.dtype == "str"):
        series = series.where(pd.Series(_is_str(series), index=series.index), None).astype(object)
    arr = pa.array(series.array if hasattr(series, "array") else series, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    return arr


def _index_in(values, keys) -> np.ndarray:
    """Position of each value in `keys` (-1 when absent or null), by a hash join."""
    import pyarrow.compute as pc
    if len(values) == 0:
        return np.zeros(0, np.int64)
    return pc.index_in(values, value_set=keys).fill_null(-1).to_numpy(zero_copy_only=False) \
        .astype(np.int64)


def processes(trace: "pd.DataFrame") -> "pd.DataFrame":
    """The linked frame of a trace (see the module docstring); `row` is each creation's
    position in `trace`."""
    import pandas as pd
    import pyarrow.compute as pc
    check_columns(trace)
    op = trace["operation"]
    is_create = (op == "create").fillna(False).to_numpy(bool)
    is_delete = (op == "delete").fillna(False).to_numpy(bool)
    keys = arrow_strings(trace["process_key"])
    has_key = keys.is_valid().to_numpy(zero_copy_only=False)
    pos = np.flatnonzero(is_create & has_key)
    dpos = np.flatnonzero(is_delete & has_key)
    # one hash pass over the key column (creations and exits alike), then the parents are
    # looked up in its dictionary: no key string is copied
    enc = pc.dictionary_encode(keys)
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    dictionary = enc.dictionary
    del enc
    ccode, dcode = codes[pos], codes[dpos]
    del codes
    n = len(pos)
    last = np.full(len(dictionary), -1, np.int64)
    np.maximum.at(last, ccode, np.arange(n))   # a key created twice keeps its last creation
    keep = last[ccode] == np.arange(n)
    del last
    if not keep.all():
        pos, ccode = pos[keep], ccode[keep]
    node_of = np.full(len(dictionary), -1, np.int64)
    node_of[ccode] = np.arange(len(pos))
    ckeys = keys.take(pos)
    parents = arrow_strings(trace["parent_key"]).take(pos)
    pcode = _index_in(parents, dictionary)
    del dictionary
    lookup = lambda c: np.where(c >= 0, node_of[np.maximum(c, 0)], -1) if len(node_of) \
        else np.full(len(c), -1, np.int64)
    parent = lookup(pcode)
    didx = lookup(dcode)
    # exits: the last delete of each key present
    found = didx >= 0
    dpos, didx = dpos[found], didx[found]
    end_pos = np.full(len(pos), -1, np.int64)
    np.maximum.at(end_pos, didx, dpos)         # the last delete of each key
    exited = end_pos >= 0
    times = trace["time"] if "time" in trace.columns else pd.Series([None] * len(trace))
    codes = trace["exit_code"] if "exit_code" in trace.columns else \
        pd.Series(pd.array([pd.NA] * len(trace), dtype="Int64"))
    images = trace["image_path"] if "image_path" in trace.columns else \
        pd.Series([None] * len(trace), dtype=object)
    cmds = trace["command_line"] if "command_line" in trace.columns else \
        pd.Series([None] * len(trace), dtype=object)
    image_path = _take(images, pos)
    exit_code = _take(codes, end_pos, exited)
    if exit_code.dtype == object:
        try:
            exit_code = exit_code.astype("Int64")
        except (TypeError, ValueError):
            pass
    as_str = lambda a: pd.Series(a.to_pandas(types_mapper={a.type: pd.StringDtype("pyarrow")}.get)
                                 if len(a) else pd.array([], dtype="string"), dtype="string")
    return pd.DataFrame({
        "process_key": as_str(ckeys),
        "parent_key": as_str(parents),
        "parent": parent,
        "process_id": _take(trace["process_id"], pos),
        "image_path": image_path,
        "image": pd.Series(image_names(image_path), dtype="string"),
        "command_line": _take(cmds, pos),
        "start": _take(times, pos),
        "end": _take(times, end_pos, exited),
        "exit_code": exit_code,
        "row": pos.astype(np.int64),
    }, columns=COLUMNS)


def time_ns(series) -> "pd.Series":
    """A time column (datetime64, or integer nanoseconds) as nullable Int64 nanoseconds."""
    import pandas as pd
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series.dtype):
        out = pd.Series(pd.array(series.array.asi8, dtype="Int64"), index=series.index)
        out[series.isna().to_numpy()] = pd.NA
        return out
    return pd.to_numeric(series, errors="coerce").astype("Int64")
