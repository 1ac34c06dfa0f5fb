"""Clock-skew check for logs that carry two clocks.

Sysmon records carry `UtcTime` (the event's time, kept by Sysmon, UTC) and the log's own time
(`@timestamp`/`TimeCreated` in Mordor, `System/TimeCreated` in EVTX). In the OTRF/Mordor datasets
the log clock is a local clock labelled UTC: 16 hours behind `UtcTime`. Security events carry
only the log clock, so merging them with Sysmon rows as recorded puts them 16 hours early.

`measure_skew` compares the two clocks on every Sysmon record of a file (all event ids) and
reports the median difference `UtcTime - log clock`. It is *significant* when its magnitude is
at least `threshold_ns` (one minute; the normal gap is milliseconds of logging delay), and the
offered correction is the median rounded to the nearest quarter hour (time zones are whole
quarter hours). Importers only apply it when asked (`clock_skew="correct"` or an explicit
offset); by default they report it and keep the times as recorded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

QUARTER_HOUR_NS = 15 * 60 * 10**9
DEFAULT_THRESHOLD_NS = 60 * 10**9


@dataclass(frozen=True)
class ClockSkew:
    """How far the log clock is behind Sysmon's `UtcTime` in one file (positive: behind)."""

    file: str
    field: str | None          # the log-clock field compared ('@timestamp', 'TimeCreated', ...)
    samples: int
    median_ns: int
    min_ns: int
    max_ns: int
    threshold_ns: int = DEFAULT_THRESHOLD_NS

    @property
    def significant(self) -> bool:
        return abs(self.median_ns) >= self.threshold_ns

    @property
    def correction_ns(self) -> int:
        """What to add to log-clock times: the median rounded to a quarter hour (0 when the
        skew is not significant)."""
        if not self.significant:
            return 0
        return round(self.median_ns / QUARTER_HOUR_NS) * QUARTER_HOUR_NS

    def describe(self) -> str:
        med = _fmt(self.median_ns)
        if not self.significant:
            return (f"{self.file}: clocks agree ({self.field} vs Sysmon UtcTime: median {med} "
                    f"over {self.samples} records)")
        return (f"{self.file}: CLOCK SKEW: {self.field} is {med} behind Sysmon UtcTime "
                f"(median of {self.samples} records, range {_fmt(self.min_ns)} .. "
                f"{_fmt(self.max_ns)}); times taken from {self.field} (Security events) are "
                f"{'behind' if self.median_ns > 0 else 'ahead'}; correct them with "
                f"clock_skew='correct' (--clock-skew correct) to add {_fmt(self.correction_ns)}")


def _fmt(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    h, rem = divmod(ns, 3600 * 10**9)
    m, rem = divmod(rem, 60 * 10**9)
    s = rem / 1e9
    return f"{sign}{h}h{m:02d}m{s:06.3f}s" if h else f"{sign}{m}m{s:06.3f}s" if m else f"{sign}{s:.3f}s"


def measure_skew(records: Iterable[dict[str, Any]], file: str = "",
                 threshold_ns: int = DEFAULT_THRESHOLD_NS) -> ClockSkew | None:
    """The skew between `UtcTime` and the log clock (`_logged`) over records that have both, or
    None when no record has both clocks."""
    utc, logged, field = [], [], None
    for rec in records:
        u, lg = rec.get("UtcTime"), rec.get("_logged")
        if u and lg:
            utc.append(u)
            logged.append(lg)
            field = field or rec.get("_logged_field")
    return measure_skew_columns(utc, logged, file, field, threshold_ns)


def measure_skew_columns(utc, logged, file: str = "", field: str | None = None,
                         threshold_ns: int = DEFAULT_THRESHOLD_NS) -> ClockSkew | None:
    """`measure_skew` over two aligned columns of clock texts (each parsed once, column-wise;
    a list may hold texts and Arrow arrays of them); pairs where either is unreadable are
    left out."""
    return skew_of(clock_differences(utc, logged), file, field, threshold_ns)


def clock_differences(utc, logged):
    """`UtcTime - log clock` in ns for every pair of clock texts where both are readable,
    sorted: an int64 array, or an object array of ints when some differences lie beyond
    int64 (`skew_of` takes the differences of several parts of a file, merged).

    >>> clock_differences(["2019-07-19 14:42:51.000"], ["2019-07-19T14:42:50Z"]).tolist()
    [1000000000]
    """
    import numpy as np

    from .columns import chunks, objects, take, times_exact, times_ns
    if not len(utc):
        return np.zeros(0, np.int64)
    ua, la = chunks(utc) if isinstance(utc, list) else utc, \
        chunks(logged) if isinstance(logged, list) else logged
    a, a_gone, a_bad = times_ns(ua)
    b, b_gone, b_bad = times_ns(la)
    small = 1 << 62                             # differences of these fit in int64
    fast = ~(a_gone | b_gone | a_bad | b_bad) & (np.abs(a) < small) & (np.abs(b) < small)
    diffs = np.sort(a[fast] - b[fast])
    odd = np.flatnonzero(~fast & ~a_gone & ~b_gone)   # beyond the ns range: Python ints
    if not len(odd):
        return diffs
    ea = times_exact(objects(take(ua, odd)), (a[odd], a_gone[odd], a_bad[odd]))
    eb = times_exact(objects(take(la, odd)), (b[odd], b_gone[odd], b_bad[odd]))
    extra = [x - y for x, y in zip(ea.tolist(), eb.tolist()) if x is not None and
             y is not None]
    return np.array(sorted(diffs.tolist() + extra), object)


def skew_of(diffs, file: str = "", field: str | None = None,
            threshold_ns: int = DEFAULT_THRESHOLD_NS) -> ClockSkew | None:
    """The skew of sorted clock differences (`clock_differences`), None when there are none."""
    if not len(diffs):
        return None
    return ClockSkew(file, field, len(diffs), int(diffs[(len(diffs) - 1) // 2]), int(diffs[0]),
                     int(diffs[-1]), threshold_ns)


def merged_differences(parts: list):
    """Sorted differences of several parts (each sorted) as one."""
    import numpy as np
    parts = [d for d in parts if len(d)]
    if not parts:
        return np.zeros(0, np.int64)
    if len(parts) == 1:
        return parts[0]
    if all(d.dtype == np.int64 for d in parts):
        return np.sort(np.concatenate(parts), kind="stable")
    return np.array(sorted(v for d in parts for v in d.tolist()), object)
