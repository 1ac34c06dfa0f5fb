"""Importing many logs into a dataset partitioned by host and day, one task per input file.

Each task runs `trace.import_logs` on its file (the same readers, validation, key linking and
per-file report as a single-node import) and writes its rows as `host=H/day=D/part-<n>.parquet`
itself, so no trace passes through the client. Keys are linked per (source, host) within a
file; a host whose Sysmon/Security rows come from more than one file is then linked again over
all of them (one task per such host, `trace.link_processes`, in file order), so a child in
one file finds its parent in another, as `import_logs(all files)` would link them. Rows that
came as trace files keep their keys.

>>> result = import_dataset(["logs/"], "fleet/"); print(result.summary())   # doctest: +SKIP
"""
from __future__ import annotations

import time as _time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    import pandas as pd

LOGGED_SOURCES = ("sysmon", "security")


@dataclass
class FleetImport:
    """What an import wrote and what became of every input record."""

    path: Path
    files: list                                   # FileReport per input file, in input order
    rejected: "pd.DataFrame"                      # file, record_id, record_number, event_id, reason
    hosts: Counter = field(default_factory=Counter)   # host -> rows written
    relinked: list = field(default_factory=list)      # hosts linked across files
    partitions: int = 0                               # host-day partitions
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.hosts.values())

    def reasons(self) -> Counter:
        total: Counter = Counter()
        for f in self.files:
            total.update(f.rejected)
        return total

    def summary(self) -> str:
        lines = [f.describe() for f in self.files]
        if self.relinked:
            lines.append(f"linked across files: {len(self.relinked)} host(s) "
                         f"({', '.join(str(h) for h in self.relinked[:5])}"
                         f"{', ...' if len(self.relinked) > 5 else ''})")
        lines.append(f"total: {self.rows} rows imported, {len(self.rejected)} records rejected; "
                     f"{self.path}: {len(self.hosts)} host(s), {self.partitions} host-day "
                     f"partition(s)")
        return "\n".join(lines)


def _import_file(index: int, path: str, out: str, source: str, clock_skew: Any):
    """One input file into the dataset: (report, rejected, rows per host, logged rows per host)."""
    from ..trace.dataset import write_dataset
    from ..trace.importer import import_logs
    result = import_logs([path], source=source, clock_skew=clock_skew, progress=False,
                         workers=1)          # the files are already spread over the workers
    frame = result.frame
    write_dataset(frame, out, tag=f"{index:05d}")
    host = frame["host"].astype(object).where(frame["host"].notna(), None)
    rows = Counter(host.tolist())
    logged = Counter(host[frame["source"].isin(LOGGED_SOURCES).fillna(False).to_numpy(bool)]
                     .tolist())
    return result.files[0], result.rejected, rows, logged


def _relink_host(host: str | None, out: str) -> int:
    """Link one host's Sysmon/Security rows again over all its files; rewrite its partitions."""
    import numpy as np
    import pandas as pd

    from ..trace.dataset import dataset_columns, dataset_hosts, read_host_files, write_dataset
    from ..trace.keys import link_processes
    files = dataset_hosts(out)[host]
    columns = dataset_columns(out, {host: files})
    # in import order: by input file (part-<n>), then each file's own (time) order
    by_tag = sorted(files, key=lambda f: (f.name, f.parent.name))
    parts = [read_host_files(host, [f], columns) for f in by_tag]
    frame = pd.concat(parts, ignore_index=True)
    logged = frame["source"].isin(LOGGED_SOURCES).fillna(False).to_numpy(bool)
    linked = link_processes(frame[logged].reset_index(drop=True))
    pos = np.flatnonzero(logged)
    for c in ("process_key", "parent_key", "link", "creation_time", "parent_process_id"):
        col = frame[c].copy()
        col.iloc[pos] = linked[c].astype(col.dtype).to_numpy()
        frame[c] = col
    for f in files:
        f.unlink()
    write_dataset(frame, out, tag="linked")
    return int(logged.sum())


def _run(tasks: list, workers: int | None, retries: int) -> list:
    import dask

    from .cluster import current_client
    client = current_client()
    if client is not None:
        return list(client.gather(client.compute(tasks, retries=retries)))
    if workers == 1 or len(tasks) <= 1:
        return list(dask.compute(*tasks, scheduler="sync"))
    return list(dask.compute(*tasks, scheduler="processes", num_workers=workers))


def import_dataset(paths: Iterable[str | Path], out: str | Path, source: str = "all",
                   clock_skew: Any = "report", workers: int | None = None,
                   retries: int = 1) -> FleetImport:
    """Import every file (directories stand for the event files under them) into the dataset
    directory `out` (new, or empty), one task per file on the default `distributed` client,
    else on `workers` local processes (default: one per core). `source`, `clock_skew`: as
    `trace.import_logs`. Returns the per-file reports (skipped and rejected records counted
    by reason) and what was written."""
    import dask
    import pandas as pd

    from ..trace.dataset import dataset_hosts
    from ..trace.importer import SOURCES, _parse_skew_option, expand_paths
    if source not in SOURCES:
        raise ValueError(f"source {source!r}: use one of {', '.join(SOURCES)}")
    _parse_skew_option(clock_skew)                  # a bad option fails here, not in a task
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty directory; import into a new "
                              f"dataset directory")
    out.mkdir(parents=True, exist_ok=True)
    started = _time.perf_counter()
    files = expand_paths(paths)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"no such file: {', '.join(missing)}")
    tasks = [dask.delayed(_import_file, pure=False)(i, str(f), str(out), source, clock_skew)
             for i, f in enumerate(files)]
    done = _run(tasks, workers, retries)
    hosts: Counter = Counter()
    spread: Counter = Counter()          # files with logged rows, per host
    for _, _, rows, logged in done:
        hosts.update(rows)
        spread.update({h: 1 for h, n in logged.items() if n})
    relink = sorted((h for h, n in spread.items() if n > 1),
                    key=lambda h: (h is None, h or ""))
    if relink:
        _run([dask.delayed(_relink_host, pure=False)(h, str(out)) for h in relink], workers,
             retries)
    rejected = [r for _, r, _, _ in done if len(r)]
    rej = pd.concat(rejected, ignore_index=True) if rejected else \
        pd.DataFrame(columns=["file", "record_id", "record_number", "event_id", "reason"])
    partitions = sum(len({f.parent for f in fs}) for fs in dataset_hosts(out).values())
    return FleetImport(out, [d[0] for d in done], rej, hosts, relink, partitions,
                       _time.perf_counter() - started)


def import_dataset_run(ns, stderr=None) -> int:
    """`ntoslab import FILES... -o DATASET/ [--workers N] [--scheduler ADDRESS]`: the per-file
    summary on stderr; 0 on success, 1 when the dataset cannot be written, 2 on usage errors."""
    import sys

    from ..trace.importer import check_import_args
    err = stderr or sys.stderr
    skew = check_import_args(ns, err)
    if skew is None:
        return 2
    client = None
    if ns.scheduler:
        from .cluster import connect
        try:
            client = connect(ns.scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            print(f"ntoslab import: cannot reach the scheduler {ns.scheduler}: {exc}", file=err)
            return 1
    try:
        result = import_dataset(ns.files, ns.output, source=ns.source, clock_skew=skew,
                                workers=ns.workers)
    except (FileExistsError, OSError) as exc:
        print(f"ntoslab import: cannot write {ns.output}: {exc}", file=err)
        return 1
    finally:
        if client is not None:
            client.close()
    if ns.rejected:
        result.rejected.to_csv(ns.rejected, index=False)
    print(result.summary(), file=err)
    print(f"wrote {ns.output} ({result.rows} rows, {len(result.hosts)} hosts) in "
          f"{result.seconds:.2f} s", file=err)
    return 0
