"""Trace datasets: a directory of Parquet files partitioned by host and day (hive layout).

    DATASET/host=WS-0001/day=2025-11-25/part-00000.parquet
    DATASET/host=WS-0001/day=2025-11-26/part-00000.parquet
    DATASET/host=__HIVE_DEFAULT_PARTITION__/day=.../...       (rows without a host)

`host` and `day` (the UTC date of `time`) are in the directory names, not in the files, as hive
readers (DuckDB `hive_partitioning`, `pyarrow.dataset`, Spark) expect; host names are
URI-escaped. Each file holds the rows of one host and day from one import task, sorted by time.
Reading a host gives its rows in time order (days in order, files of a day merged by a stable
sort on time), with `host` restored as a string column and every column in the trace dtypes.

>>> write_dataset(trace, "fleet/")                                  # doctest: +SKIP
>>> clean, rejected = read_trace("fleet/"); lazy = read_trace("fleet/", lazy=True)  # doctest: +SKIP
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable
from urllib.parse import quote, unquote

from .schema import COLUMNS, DTYPES, EXTRA_COLUMNS, TraceFormatError, as_schema

if TYPE_CHECKING:
    import pandas as pd

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
DAY_FORMAT = "%Y-%m-%d"
_PART = re.compile(r"^host=([^/]*)$")


def is_dataset(path: str | Path) -> bool:
    """True for a directory holding `host=...` partitions (or an empty directory)."""
    path = Path(path)
    return path.is_dir() and (not any(path.iterdir()) or
                              any(p.is_dir() and p.name.startswith("host=")
                                  for p in path.iterdir()))


def _host_dir(host) -> str:
    import pandas as pd
    if host is None or host is pd.NA or (isinstance(host, float) and host != host):
        return f"host={NULL_PARTITION}"
    return "host=" + quote(str(host), safe="")


def _dir_host(name: str) -> str | None:
    value = name.split("=", 1)[1]
    return None if value == NULL_PARTITION else unquote(value)


def write_dataset(frame: "pd.DataFrame", path: str | Path, tag: str = "00000") -> list[Path]:
    """Write a trace frame's rows under `path`, one file per (host, day):
    `host=H/day=D/part-<tag>.parquet` (an existing file of that name is replaced; give each
    writer of one dataset its own `tag`). Rows keep their order within a host, stably sorted
    by time. Returns the files written."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    frame = conform(as_schema(frame))
    if not len(frame):
        return []
    hosts = frame["host"]
    days = frame["time"].dt.strftime(DAY_FORMAT).fillna(NULL_PARTITION)
    key = pd.DataFrame({"h": hosts.fillna(NULL_PARTITION), "d": days, "t": frame["time"]})
    order = key.sort_values(["h", "d", "t"], kind="stable").index.to_numpy()
    body = frame.drop(columns=["host"])
    written = []
    groups = key.iloc[order].groupby(["h", "d"], sort=False).indices
    for (h, d), pos in groups.items():
        rows = order[np.asarray(pos)]
        out = path / _host_dir(None if h == NULL_PARTITION else h) / f"day={d}"
        out.mkdir(parents=True, exist_ok=True)
        file = out / f"part-{tag}.parquet"
        table = pa.Table.from_pandas(body.iloc[rows], preserve_index=False)
        pq.write_table(table, file)
        written.append(file)
    return written


def conform(frame: "pd.DataFrame", columns: Iterable[str] | None = None) -> "pd.DataFrame":
    """`frame` with exactly `columns` (default: COLUMNS + EXTRA_COLUMNS + the frame's others),
    missing ones added as `<NA>` of their trace dtype."""
    import pandas as pd
    cols = list(columns) if columns is not None else \
        COLUMNS + EXTRA_COLUMNS + [c for c in frame.columns if c not in COLUMNS + EXTRA_COLUMNS]
    out = frame.copy(deep=False)
    for c in cols:
        if c not in out.columns:
            out[c] = pd.array([pd.NA] * len(out), dtype=DTYPES.get(c, "string"))
    return out[cols]


def dataset_hosts(path: str | Path) -> dict[str | None, list[Path]]:
    """host -> its files, in day order then file name order (hosts in name order, no host
    last)."""
    path = Path(path)
    if not path.is_dir():
        raise TraceFormatError(f"{path}: no such dataset directory")
    out: dict[str | None, list[Path]] = {}
    for hdir in sorted(p for p in path.iterdir() if p.is_dir() and _PART.match(p.name)):
        files = sorted(f for d in sorted(hdir.iterdir()) if d.is_dir() and d.name.startswith("day=")
                       for f in sorted(d.glob("*.parquet")))
        if files:
            out[_dir_host(hdir.name)] = files
    return dict(sorted(out.items(), key=lambda kv: (kv[0] is None, kv[0] or "")))


def read_host_files(host: str | None, files: list[Path],
                    columns: list[str] | None = None) -> "pd.DataFrame":
    """One host's rows from its files (as `dataset_hosts` lists them), in time order."""
    import pandas as pd
    parts = []
    for f in files:
        try:
            parts.append(pd.read_parquet(f))
        except Exception as exc:
            raise TraceFormatError(f"{f}: cannot read as Parquet: {exc}") from None
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    frame["host"] = pd.array([host] * len(frame), dtype="string")
    frame = as_schema(conform(frame, columns))
    if not frame["time"].is_monotonic_increasing:
        frame = frame.sort_values("time", kind="stable")
    return frame.reset_index(drop=True)


def dataset_columns(path: str | Path, hosts: dict | None = None) -> list[str]:
    """The columns of a dataset: COLUMNS + EXTRA_COLUMNS + any other column some file has."""
    import pyarrow.parquet as pq
    hosts = hosts if hosts is not None else dataset_hosts(path)
    known = COLUMNS + EXTRA_COLUMNS
    extra: dict[str, None] = {}
    for files in hosts.values():
        for f in files:
            for name in pq.read_schema(f).names:
                if name not in known and name not in ("day", "__index_level_0__"):
                    extra[name] = None
    return known + list(extra)


def read_dataset(path: str | Path, lazy: bool = False, hosts: Iterable[str] | None = None,
                 hosts_per_partition: int = 1):
    """A dataset as one frame (hosts in name order, each in time order), or with `lazy` as a
    Dask DataFrame with `hosts_per_partition` whole hosts per partition (so per-host work,
    such as replay, runs inside one partition). `hosts` selects some hosts."""
    import pandas as pd
    table = dataset_hosts(path)
    if hosts is not None:
        wanted = list(hosts)
        missing = [h for h in wanted if h not in table]
        if missing:
            raise KeyError(f"{path}: no host(s) {', '.join(map(str, missing[:5]))} in the dataset")
        table = {h: table[h] for h in wanted}
    columns = dataset_columns(path, table)
    if not lazy:
        frames = [read_host_files(h, files, columns) for h, files in table.items()]
        if not frames:
            return as_schema(pd.DataFrame(columns=columns))
        return pd.concat(frames, ignore_index=True)
    import dask.dataframe as dd
    items = list(table.items())
    groups = [items[i:i + hosts_per_partition] for i in range(0, len(items), hosts_per_partition)]
    meta = as_schema(conform(pd.DataFrame(columns=columns), columns))
    if not groups:
        return dd.from_pandas(meta, npartitions=1)
    return dd.from_map(_read_group, groups, columns=columns, meta=meta, enforce_metadata=False)


def _read_group(group, columns):
    import pandas as pd
    frames = [read_host_files(h, files, columns) for h, files in group]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
