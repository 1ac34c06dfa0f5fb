"""The trace analyses over a fleet: the single-node functions of `ntoslab.analysis` run per
host (where the host's events are), their results combined fleet-wide.

- `link`: process keys and parent links recomputed per host (`trace.link_processes`);
- `processes`: each host's linked frame (`ProcessTree.from_trace(events).frame`), with `host`;
- `tree`: one host's `ProcessTree`;
- `pairs`, `rare_pairs`: parent → child image pairs counted per host and summed over the fleet,
  with the number of hosts each pair is seen on (a pair rare across the fleet is what a hunter
  wants; `max_hosts` asks for that directly);
- `lifetimes`: per process, with `host`.

Process keys hold the host (`host:pid:creation_time`, or a Sysmon ProcessGuid, unique per
machine), so per host and single-node on the concatenated trace give the same pairs, counts and
lifetimes (tests/test_fleet.py checks it).

>>> fleet.rare_pairs("fleet/", max_hosts=2)                          # doctest: +SKIP
>>> fleet.lifetimes(events).query("duration_s > 3600").compute()     # doctest: +SKIP
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .partitions import Data, as_fleet, map_hosts

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

PAIR_COLUMNS = ["parent", "child", "count", "hosts"]


def link(data: Data) -> "dd.DataFrame":
    """The events with `process_key`, `parent_key` and `link` recomputed per host from pids,
    times and GUIDs (`ntoslab.trace.link_processes`)."""
    from ..trace.keys import link_processes
    return map_hosts(data, lambda host, events: link_processes(events))


def _processes(host, events):
    from ..analysis import ProcessTree
    return ProcessTree.from_trace(events).frame


def processes(data: Data) -> "dd.DataFrame":
    """One row per process instance of every host: the linked frame `ProcessTree` builds
    (`parent` and `row` are positions within the host)."""
    return map_hosts(data, _processes)


def tree(data: Data, host: str):
    """The `ProcessTree` of one host (its events are computed, nothing else)."""
    from ..analysis import ProcessTree
    events = as_fleet(data)
    frame = events[events["host"] == host].compute()
    if not len(frame):
        raise KeyError(f"no events of host {host!r} in the fleet")
    return ProcessTree.from_trace(frame.sort_values("time", kind="stable")
                                  .reset_index(drop=True))


def _pairs(host, events):
    from ..analysis import parent_child_pairs
    return parent_child_pairs(events)


def host_pairs(data: Data) -> "dd.DataFrame":
    """Parent → child image pair counts per host (`host`, `parent`, `child`, `count`)."""
    import pandas as pd
    meta = pd.DataFrame({"parent": pd.Series([], dtype=object),
                         "child": pd.Series([], dtype=object),
                         "count": pd.Series([], dtype="int64")})
    return map_hosts(data, _pairs, meta=meta)


def pairs(data: Data) -> "pd.DataFrame":
    """Parent → child image pairs over the fleet: `count` (summed over hosts, as
    `analysis.parent_child_pairs` counts them on the concatenated trace) and `hosts` (how many
    hosts saw it); most frequent first."""
    from .cluster import compute
    per_host, = compute([host_pairs(data)])
    return combine_pairs(per_host)


def combine_pairs(per_host: "pd.DataFrame") -> "pd.DataFrame":
    """Per-host pair counts summed fleet-wide (`parent`, `child`, `count`, `hosts`)."""
    import pandas as pd
    if not len(per_host):
        return pd.DataFrame({c: pd.Series([], dtype=object if c in ("parent", "child")
                                          else "int64") for c in PAIR_COLUMNS})
    out = per_host.groupby(["parent", "child"], sort=False).agg(
        count=("count", "sum"), hosts=("host", "nunique")).reset_index()
    out["count"] = out["count"].astype("int64")
    out["hosts"] = out["hosts"].astype("int64")
    return out.sort_values(["count", "parent", "child"], ascending=[False, True, True],
                           kind="stable").reset_index(drop=True)[PAIR_COLUMNS]


def rare_pairs(data: Data, baseline: Data | None = None, max_count: int | None = 1,
               max_hosts: int | None = None) -> "pd.DataFrame":
    """Pairs of the fleet seen at most `max_count` times in the baseline (default: the fleet
    itself), as `analysis.rare_pairs` gives on the concatenated trace, with `hosts` (hosts of
    the fleet that saw the pair) and, with a baseline, `baseline_hosts`; `max_hosts` keeps the
    pairs seen on at most that many baseline hosts (with `max_count=None`, the host count alone
    decides). Without a baseline the fleet is its own: only `count` and `hosts`, no echo."""
    from ..analysis.pairs import rare_among
    from .cluster import compute
    todo = [host_pairs(data)] + ([host_pairs(baseline)] if baseline is not None else [])
    done = compute(todo)
    fleet_pairs = combine_pairs(done[0])
    base = combine_pairs(done[1]) if baseline is not None else fleet_pairs
    limit = max_count if max_count is not None else max(int(base["count"].max()), 0) \
        if len(base) else 0
    rare = rare_among(fleet_pairs, base, limit)
    hosts = base.set_index(["parent", "child"])["hosts"]
    rare["baseline_hosts"] = hosts.reindex(list(zip(rare["parent"], rare["child"]))) \
        .fillna(0).astype("int64").to_numpy()
    if max_hosts is not None:
        rare = rare[rare["baseline_hosts"] <= max_hosts]
        rare = rare.sort_values(["baseline_hosts", "baseline_count", "parent", "child"],
                                kind="stable")
    if baseline is None:
        return rare.reset_index(drop=True)[["parent", "child", "count", "hosts"]]
    return rare.reset_index(drop=True)[["parent", "child", "count", "baseline_count", "hosts",
                                        "baseline_hosts"]]


def _lifetimes(host, events):
    from ..analysis import lifetimes as single
    return single(events)


def lifetimes(data: Data) -> "dd.DataFrame":
    """`analysis.lifetimes` of every host: one row per process with `host`, start, end,
    duration, exit code and its name."""
    return map_hosts(data, _lifetimes)
