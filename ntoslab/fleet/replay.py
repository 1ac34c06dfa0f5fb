"""Policy replay over a fleet: each host's events through its own emulated hook.

The Windows hook is per machine, so every host gets a fresh hook (its maps are that host's)
loading the same ELF objects and attaching the same programs in the same order, and replays
the host's events in time order (a host's days in order, in one hook: a partition holds whole
hosts, so no state has to be carried between tasks). Verdicts, ring-buffer records and map
snapshots (taken after the host's last event) come back as Dask DataFrames with `host` first;
within a host, `index` (verdicts) and `event` (records) are the hook's event numbers.

The programs travel as ELF bytes in the task graph; each worker parses an object once (cached
by content) and loads it into a new hook per host, so a result never depends on which worker
ran which host. A worker runs one replay at a time (a lock), whatever its thread count.

>>> run = fleet.replay("fleet/", ["bpf/examples/deny_policy.o"], maps=["denials"])  # doctest: +SKIP
>>> run.verdicts.groupby("host").denied.sum().compute()                              # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .partitions import Data, as_fleet, hosts_of, with_host

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

EVENT_COLUMNS = ["time", "image_path", "command_line", "process_key"]   # joined to verdicts


@dataclass(frozen=True)
class ObjectSpec:
    name: str               # the file name, for messages and `object` columns
    data: bytes             # the ELF object
    digest: str


@dataclass(frozen=True)
class ReplaySpec:
    """What every host's hook loads, attaches and keeps (picklable, sent to workers)."""

    objects: tuple[ObjectSpec, ...]
    attach: tuple[tuple[int, str | None], ...]          # (object, program; None: its first)
    rings: tuple[tuple[int, str, str | None], ...]      # (object, ring map, BTF record type)
    maps: tuple[tuple[int, str], ...]                   # (object, map)
    engine: str = "jit"
    prepare: Callable | None = None


def _objects_of(programs) -> tuple[list[ObjectSpec], list[tuple[int, str | None]]]:
    if isinstance(programs, (str, os.PathLike, tuple)):
        programs = [programs]
    objects: list[ObjectSpec] = []
    index: dict[str, int] = {}
    attach: list[tuple[int, str | None]] = []
    names: list[str | None]
    for item in programs:
        if isinstance(item, (str, os.PathLike)):
            path, names = item, [None]
        elif isinstance(item, tuple) and len(item) == 2:
            path, names = item[0], ([item[1]] if isinstance(item[1], str) else list(item[1]))
        else:
            raise TypeError(f"program {item!r}: give a path to an ELF object, or "
                            f"(path, program name[s])")
        key = str(Path(path).resolve())
        if key not in index:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise FileNotFoundError(f"{path}: cannot read the ELF object: {exc}") from None
            index[key] = len(objects)
            objects.append(ObjectSpec(Path(path).name, data, hashlib.sha256(data).hexdigest()))
        attach.extend((index[key], n) for n in names)
    if not attach:
        raise ValueError("no programs to replay: give at least one ELF object")
    return objects, attach


def make_spec(programs, rings: Mapping[str, str | None] | Iterable[str] | None = None,
              maps: Iterable[str] | None = None, engine: str = "jit",
              prepare: Callable | None = None) -> ReplaySpec:
    """Check the programs, ring buffers and maps by loading the objects here once (a wrong
    name is an error before anything is sent to the cluster)."""
    import ntoslab
    objects, attach = _objects_of(programs)
    rings = dict(rings) if isinstance(rings, Mapping) else {r: None for r in (rings or [])}
    with ntoslab.emulator(engine=engine) as hook:
        loaded = [hook.load(_elf(o)) for o in objects]
        for oi, name in attach:
            hook.attach(loaded[oi].program(name) if name else loaded[oi])

        def owner(name: str, kind: str) -> int:
            for i, obj in enumerate(loaded):
                if name in obj.maps:
                    return i
            have = sorted({m for o in loaded for m in o.maps})
            raise KeyError(f"no {kind} {name!r} in {', '.join(o.name for o in objects)} "
                           f"(maps: {', '.join(have) or 'none'})")
        ring_spec = []
        for name, kind in rings.items():
            i = owner(name, "ring buffer")
            loaded[i].ringbuf(name)          # a TypeError names a map that is not a ring
            ring_spec.append((i, name, kind))
        map_spec = [(owner(name, "map"), name) for name in (maps or [])]
    return ReplaySpec(tuple(objects), tuple(attach), tuple(ring_spec), tuple(map_spec), engine,
                      prepare)


_ELF_CACHE: dict[str, Any] = {}
_REPLAY_LOCK = threading.Lock()


def _elf(obj: ObjectSpec):
    """The parsed object, once per process (keyed by content)."""
    from ..elf import load_bytes
    elf = _ELF_CACHE.get(obj.digest)
    if elf is None:
        elf = _ELF_CACHE[obj.digest] = load_bytes(obj.data, obj.name)
    return elf


def replay_host(host: str | None, events: "pd.DataFrame", spec: ReplaySpec) -> dict:
    """One host's events through a fresh hook: {"verdicts", "records": {ring: frame},
    "maps": {map: frame}, "notices": frame}, every frame with `host` first."""
    import numpy as np
    import pandas as pd

    import ntoslab
    if spec.prepare is not None:
        events = spec.prepare(host, events).reset_index(drop=True)
    with _REPLAY_LOCK, warnings.catch_warnings(record=True) as caught, \
            ntoslab.emulator(engine=spec.engine) as hook:
        warnings.simplefilter("always")
        loaded = [hook.load(_elf(o)) for o in spec.objects]
        for oi, name in spec.attach:
            hook.attach(loaded[oi].program(name) if name else loaded[oi])
        recorders = [(name, kind, loaded[oi].ringbuf(name).record())
                     for oi, name, kind in spec.rings]
        verdicts = hook.replay(events, progress=False)
        rows = verdicts["row"].to_numpy(np.int64)
        whole = len(rows) == len(events) and bool((rows == np.arange(len(rows))).all())
        for c in EVENT_COLUMNS:           # typed columns, taken without boxing each value
            if c in events.columns:
                col = events[c].array
                verdicts[c] = col.copy() if whole else col.take(rows)
        records = {name: with_host(rec.to_frame(kind), host) for name, kind, rec in recorders}
        snapshots = {name: with_host(loaded[oi].map(name).to_frame(), host)
                     for oi, name in spec.maps}
    notices = pd.DataFrame({"host": pd.array([host] * len(caught), dtype="string"),
                            "category": [w.category.__name__ for w in caught],
                            "message": [str(w.message) for w in caught]})
    return {"verdicts": with_host(verdicts, host), "records": records, "maps": snapshots,
            "notices": notices}


def _replay_partition(frame: "pd.DataFrame", spec: ReplaySpec) -> dict:
    import pandas as pd
    done = [replay_host(host, part, spec) for host, part in hosts_of(frame)]

    def cat(frames):
        frames = [f for f in frames if len(f)] or frames[:1]
        if not frames:
            return pd.DataFrame({"host": pd.array([], dtype="string")})
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return {"verdicts": cat([d["verdicts"] for d in done]),
            "records": {n: cat([d["records"][n] for d in done]) for _, n, _ in spec.rings},
            "maps": {n: cat([d["maps"][n] for d in done]) for _, n in spec.maps},
            "notices": cat([d["notices"] for d in done])}


def _pick(result: dict, kind: str, name: str | None = None):
    return result[kind] if name is None else result[kind][name]


@dataclass
class FleetReplay:
    """The results of `replay`: Dask DataFrames backed by results already computed (persisted)
    on the cluster."""

    verdicts: "dd.DataFrame"
    records: dict[str, "dd.DataFrame"] = field(default_factory=dict)
    maps: dict[str, "dd.DataFrame"] = field(default_factory=dict)
    notices: "pd.DataFrame | None" = None       # warnings the hooks gave (faults, drops)

    def denied(self) -> "pd.DataFrame":
        """What the policy would have denied: one row per denied event, by host then event."""
        from .cluster import compute
        out, = compute([self.verdicts.map_partitions(_denied_rows, meta=_denied_rows(
            self.verdicts._meta))])
        return out.sort_values(["host", "index"], kind="stable").reset_index(drop=True)

    def denied_per_host(self) -> "pd.DataFrame":
        """Per host: events, denials, faults (hosts with a denial first, then by name)."""
        from .cluster import compute
        per, = compute([self.verdicts.map_partitions(_per_host_counts, meta=_per_host_counts(
            self.verdicts._meta))])
        per = per.groupby("host", sort=True).sum().reset_index()
        return per.sort_values(["denied", "host"], ascending=[False, True],
                               kind="stable").reset_index(drop=True)


DENIED_COLUMNS = ["host", "index", "time", "process_id", "process_key", "image_path",
                  "command_line", "decided_by", "status_hex"]


def _flag(series) -> "Any":
    return series.fillna(False).to_numpy(bool) if len(series) else series.to_numpy(bool)


def _denied_rows(v: "pd.DataFrame") -> "pd.DataFrame":
    return v.loc[_flag(v["denied"]), [c for c in DENIED_COLUMNS if c in v.columns]]


def _per_host_counts(v: "pd.DataFrame") -> "pd.DataFrame":
    import pandas as pd
    frame = pd.DataFrame({"host": v["host"], "events": 1,
                          "denied": _flag(v["denied"]).astype("int64"),
                          "faulted": _flag(v["faulted"]).astype("int64")})
    return frame.groupby("host", sort=True).sum().reset_index().astype(
        {"events": "int64", "denied": "int64", "faulted": "int64"})


def replay(data: Data, programs, rings: Mapping[str, str | None] | Iterable[str] | None = None,
           maps: Iterable[str] | None = None, *, engine: str = "jit",
           prepare: Callable[[str | None, "pd.DataFrame"], "pd.DataFrame"] | None = None,
           hosts_per_partition: int = 1, retries: int = 2) -> FleetReplay:
    """Replay every host's events through its own hook (see the module docstring).

    `programs`: ELF paths (each attaches its first process program) or `(path, name)` /
    `(path, [names])`, attached in that order. `rings`: ring buffers to record, as
    `{name: BTF record type}` (or names, kept as raw bytes). `maps`: maps to snapshot after
    each host's last event. `prepare(host, events)`: runs on the worker before the host's
    replay (filter or enrich events). A task that fails (an exception, or its worker dying)
    is run again, up to `retries` times, on any worker; the results are complete or the call
    raises. Runs on the default `distributed` client (`fleet.connect`), else in this
    process."""
    import dask
    import dask.dataframe as dd

    from .cluster import compute
    spec = make_spec(programs, rings, maps, engine, prepare)
    events = as_fleet(data, hosts_per_partition)
    spec_node = dask.delayed(spec, pure=True)   # one node: the ELF bytes travel once per worker
    tasks = [dask.delayed(_replay_partition, pure=False)(part, spec_node)   # a new run each call
             for part in events.to_delayed()]
    done = compute(tasks, retries=retries, persist=True)

    def frame(kind, name=None, meta=None):
        parts = [dask.delayed(_pick, pure=True)(d, kind, name) for d in done]
        return dd.from_delayed(parts, meta=metas[(kind, name)] if meta is None else meta,
                               verify_meta=False)
    # the shape of each result: the first partition's (computed already), without its rows
    kinds = [("verdicts", None), ("notices", None)] + [("records", n) for _, n, _ in spec.rings] \
        + [("maps", n) for _, n in spec.maps]
    first = compute([dask.delayed(_pick, pure=True)(done[0], k, n) for k, n in kinds],
                    retries=retries)
    metas = {kn: f.iloc[:0] for kn, f in zip(kinds, first)}
    notices, = compute([frame("notices")], retries=retries)
    result = FleetReplay(frame("verdicts"), {n: frame("records", n) for _, n, _ in spec.rings},
                         {n: frame("maps", n) for _, n in spec.maps}, notices)
    _tell(notices)
    return result


def _tell(notices: "pd.DataFrame") -> None:
    """The hooks' warnings, once per kind on the client, with how many hosts gave them."""
    if notices is None or not len(notices):
        return
    from ..connectors.emulator import ProgramFaulted, RecordsDropped
    kinds = {"ProgramFaulted": ProgramFaulted, "RecordsDropped": RecordsDropped}
    for category, group in notices.groupby("category", sort=True):
        hosts = group["host"].nunique(dropna=False)
        first = group.iloc[0]
        warnings.warn(kinds.get(category, UserWarning)(
            f"{hosts} host(s) warned {category} during the replay ({len(group)} warning(s); "
            f"`run.notices` has them all); first, on {first['host']}: {first['message']}"),
            stacklevel=3)
