"""Fleet scale: the same analyses and policy replay over many hosts, on Dask.

Traces from many endpoints live in a dataset partitioned by host and day (`ntoslab import
FILES... -o DATASET/`, or `write_dataset`); every call takes that directory, a pandas trace, or
a Dask DataFrame partitioned by host, and runs per host on the default `distributed` client
(`connect()` starts a LocalCluster; `connect("tcp://scheduler:8786")` joins a real one), or in
this process without one. Results equal the single-node functions on the concatenated trace,
with a replay per host in its own hook.

>>> from ntoslab import fleet                                          # doctest: +SKIP
>>> client = fleet.connect(); fleet.rare_pairs("fleet/", max_hosts=2)  # doctest: +SKIP
>>> fleet.replay("fleet/", ["bpf/examples/deny_policy.o"]).denied_per_host()  # doctest: +SKIP
"""
from __future__ import annotations

from ..trace.dataset import read_dataset, write_dataset
from ..trace.synthetic import fleet_sessions, generate_fleet
from .analysis import combine_pairs, host_pairs, lifetimes, link, pairs, processes, rare_pairs, tree
from .cluster import compute, connect, current_client
from .importing import FleetImport, import_dataset
from .partitions import as_fleet, by_host, map_hosts
from .replay import FleetReplay, replay, replay_host

__all__ = ["FleetImport", "FleetReplay", "as_fleet", "by_host", "combine_pairs", "compute",
           "connect", "current_client", "fleet_sessions", "generate_fleet", "host_pairs",
           "import_dataset", "lifetimes", "link", "map_hosts", "pairs", "processes",
           "rare_pairs", "read_dataset", "replay", "replay_host", "tree", "write_dataset"]
