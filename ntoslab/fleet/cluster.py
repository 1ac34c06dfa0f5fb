"""Where fleet work runs: a Dask distributed scheduler, local or remote.

>>> client = connect()                                # a LocalCluster: 2 worker processes  # doctest: +SKIP
>>> client = connect("tcp://scheduler.example:8786")  # the same notebook on a real cluster  # doctest: +SKIP

Workers are processes with one thread each: an emulated hook runs its programs natively and a
worker serialises replays anyway (see `replay`), so more threads per worker add nothing but
contention for the replay; analyses are pandas/pyarrow and gain little from threads either.
"""
from __future__ import annotations

from typing import Any


def connect(address: str | None = None, workers: int = 2, threads_per_worker: int = 1,
            memory_limit: str | int = "auto", **kw: Any):
    """A `distributed.Client`: to the scheduler at `address` (``tcp://host:8786``, as
    ``dask scheduler`` prints), or to a new `LocalCluster` of `workers` processes. The client
    becomes the default, so `ntoslab.fleet` calls (and any `.compute()`) run there; close it
    with `client.close()` (a local cluster closes with it)."""
    from distributed import Client
    if address:
        return Client(address, **kw)
    kw.setdefault("dashboard_address", None)
    # a Client given LocalCluster arguments starts the cluster and closes it with itself
    return Client(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                  memory_limit=memory_limit, **kw)


def current_client():
    """The default distributed client, or None when fleet work runs in this process."""
    try:
        from distributed import default_client
        return default_client()
    except (ImportError, ValueError):
        return None


def compute(objs: list, retries: int = 2, persist: bool = False) -> list:
    """Compute (or persist) Dask collections on the default client with `retries` per task
    (a task that raised runs again, on any worker); without a client, one by one in this
    process (the emulated hook is not shared between threads)."""
    import dask
    client = current_client()
    if client is None:
        return list((dask.persist if persist else dask.compute)(*objs, scheduler="sync"))
    if persist:
        return list(client.persist(objs, retries=retries))
    return list(client.gather(client.compute(objs, retries=retries)))
