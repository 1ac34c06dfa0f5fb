"""A fleet's events as a Dask DataFrame partitioned by host, and per-host work over it.

Every fleet call works on whole hosts: a partition holds all the events of each of its hosts,
in time order (a host's days are read in order into one partition), so a host's process tree,
keys and replay are computed where its events are, and partitions are independent.

>>> events = by_host("fleet/")                   # a dataset directory, read lazily  # doctest: +SKIP
>>> events = by_host(frame, hosts_per_partition=8)   # an in-memory trace            # doctest: +SKIP
>>> map_hosts(events, lambda host, f: f.head(1)).compute()                          # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

Data = Any      # a dataset path, a pandas trace frame, or a Dask DataFrame partitioned by host


def by_host(data: Data, hosts_per_partition: int = 1) -> "dd.DataFrame":
    """`data` as a Dask DataFrame whose partitions hold whole hosts (`hosts_per_partition` of
    them; hosts in name order, rows of a host in time order, ties in their given order):

    - a dataset directory (`ntoslab import ... -o DATASET/`): read lazily, a host's days in
      order;
    - a pandas trace frame: split by host (each host's rows stably sorted by time);
    - a Dask DataFrame: shuffled by host, then sorted by time within each host (the order of
      events with equal times is then the shuffle's; prefer a dataset or a frame when ties
      matter)."""
    import dask.dataframe as dd
    import pandas as pd

    from ..trace.dataset import read_dataset
    from ..trace.schema import TraceFormatError, as_schema
    if hosts_per_partition < 1:
        raise ValueError(f"hosts_per_partition {hosts_per_partition}: at least 1")
    if isinstance(data, (str, Path)):
        if not Path(data).is_dir():
            raise TraceFormatError(f"{data}: not a dataset directory (ntoslab import FILES "
                                   f"-o DATASET/ writes one)")
        return read_dataset(data, lazy=True, hosts_per_partition=hosts_per_partition)
    if isinstance(data, pd.DataFrame):
        frame = as_schema(data)
        groups = frame.groupby("host", sort=True, dropna=False).indices
        keys = sorted(groups, key=lambda h: (h is pd.NA or h != h, "" if h is pd.NA or
                                             h != h else str(h)))
        parts = []
        for i in range(0, len(keys), hosts_per_partition):
            pos = [groups[h] for h in keys[i:i + hosts_per_partition]]
            parts.append(pd.concat([_time_sorted(frame.iloc[p]) for p in pos],
                                   ignore_index=True))
        meta = frame.iloc[:0]
        if not parts:
            return dd.from_pandas(meta, npartitions=1)
        return dd.from_map(_same, parts, meta=meta, enforce_metadata=False)
    if isinstance(data, dd.DataFrame):
        shuffled = data.shuffle(on="host")
        return shuffled.map_partitions(_sort_hosts, meta=data._meta)
    raise TypeError(f"fleet data is a dataset path, a pandas or a Dask DataFrame, not "
                    f"{type(data).__name__}")


def _same(frame):
    return frame


def _time_sorted(frame: "pd.DataFrame") -> "pd.DataFrame":
    if frame["time"].is_monotonic_increasing:
        return frame
    return frame.sort_values("time", kind="stable")


def _sort_hosts(frame: "pd.DataFrame") -> "pd.DataFrame":
    if not len(frame):
        return frame
    return frame.sort_values(["host", "time"], kind="stable", na_position="last") \
        .reset_index(drop=True)


def as_fleet(data: Data, hosts_per_partition: int = 1) -> "dd.DataFrame":
    """A Dask DataFrame as given (taken to be partitioned by host: `by_host`, `read_trace(
    DATASET, lazy=True)`), anything else through `by_host`."""
    import dask.dataframe as dd
    return data if isinstance(data, dd.DataFrame) else by_host(data, hosts_per_partition)


def hosts_of(frame: "pd.DataFrame"):
    """(host, its rows re-indexed from 0) for each host of a partition, in name order (rows
    without a host last, as host None)."""
    import pandas as pd
    if not len(frame):
        return
    groups = frame.groupby("host", sort=False, dropna=False).indices
    for h in sorted(groups, key=lambda h: (h is pd.NA or h != h, "" if h is pd.NA or h != h
                                           else str(h))):
        host = None if h is pd.NA or h != h else str(h)
        yield host, frame.iloc[groups[h]].reset_index(drop=True)


def with_host(frame: "pd.DataFrame", host: str | None) -> "pd.DataFrame":
    """`frame` with a first column `host` (string)."""
    import pandas as pd
    import pyarrow as pa
    out = frame.copy(deep=False) if "host" not in frame.columns else \
        frame.drop(columns=["host"])
    column = pa.nulls(len(out), pa.large_string()) if host is None else \
        pa.repeat(pa.scalar(host, pa.large_string()), len(out))
    out.insert(0, "host", pd.arrays.ArrowStringArray(column))
    return out


def map_hosts(data: Data, fn: Callable[[str | None, "pd.DataFrame"], "pd.DataFrame"],
              meta: "pd.DataFrame | None" = None) -> "dd.DataFrame":
    """A Dask DataFrame of `fn(host, events)` for every host (its events in time order),
    each result with a first column `host`. `meta`: the shape of `fn`'s result without the
    host column (default: `fn(None, <no events>)`)."""

    from ..trace.schema import as_schema
    events = as_fleet(data)
    if meta is None:
        meta = fn(None, as_schema(events._meta.iloc[:0]))
    meta = with_host(meta.iloc[:0], None)
    return events.map_partitions(_per_host, fn, meta, meta=meta, enforce_metadata=False,
                                 align_dataframes=False)


def _per_host(frame, fn, meta):
    import pandas as pd
    out = [with_host(fn(host, part), host) for host, part in hosts_of(frame)]
    out = [o for o in out if len(o)]
    if not out:
        return meta
    return pd.concat(out, ignore_index=True) if len(out) > 1 else out[0]
