"""Column-wise conversion of raw log fields: times, process ids, hex numbers, GUIDs — each
distinct value parsed once, every row that fails given its reason.

A `Reasons` collects, per row, the first reason it cannot become a trace row (the checks of a
record run in order and the first failure is the one reported, as a per-record parser would).

>>> times, bad = parse_times(pd.Series(["2019-07-19 14:42:51.257", "noon"]))   # doctest: +SKIP
"""
from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np

from ..filetime import FILETIME_EPOCH_OFFSET, FILETIME_TICKS_PER_NS, parse_time_ns

_GUID = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12})\}?$")


class Reasons:
    """The first failure of each of `n` rows (None: the row is fine so far)."""

    def __init__(self, n: int) -> None:
        self.why = np.full(n, None, dtype=object)
        self.why.flags.writeable = True

    def fail(self, mask, message) -> None:
        """Rows in `mask` (not failed yet) fail with `message` (a string, or one per row)."""
        mask = np.asarray(mask, bool) & np.equal(self.why, None)
        if mask.any():
            self.why[mask] = message if isinstance(message, str) else np.asarray(message, object)[mask]

    @property
    def ok(self) -> np.ndarray:
        return np.equal(self.why, None)


def missing(values) -> np.ndarray:
    """None, NaN, NA or the empty string."""
    import pandas as pd
    s = pd.Series(values, copy=False)
    out = np.array(s.isna().to_numpy(bool), copy=True)
    if s.dtype == object or isinstance(s.dtype, pd.StringDtype):
        out |= (s.astype(object) == "").to_numpy(bool)
    return out


def per_value(values, fn: Callable[[Any], tuple[Any, str | None]]):
    """`fn(value) -> (result, error or None)` for each distinct value; (results, errors) as
    object arrays, one per row."""
    import pandas as pd
    codes, uniques = pd.factorize(pd.Series(values, copy=False), use_na_sentinel=True)
    results = [fn(u) for u in list(uniques)] + [fn(None)]
    res = np.empty(len(results), object)
    err = np.empty(len(results), object)
    for i, (r, e) in enumerate(results):
        res[i], err[i] = r, e
    return res[codes], err[codes]


def parse_times(values, exact: bool = False):
    """UTC nanoseconds (Int64 Series, NA where missing or unreadable) and the unreadable mask:
    ISO-8601 with 'T' or a space, 'Z', an offset, or no zone (UTC); one C parse of the column,
    then `parse_time_ns` for any value it did not take. With `exact`, the times are an object
    array of Python ints (None where missing), so years beyond 2262 are kept too."""
    import warnings

    import pandas as pd
    s = pd.Series(values, copy=False)
    gone = missing(s)
    text = s.astype(object).where(~gone, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ts = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        except (ValueError, TypeError, OverflowError):
            ts = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    ts = ts.astype("datetime64[ns, UTC]")
    nat = ts.isna().to_numpy()
    retry = nat & ~gone
    if not retry.any() and not exact:
        ns = pd.array(ts.array.asi8, dtype="Int64")
        ns[nat] = pd.NA
        return pd.Series(ns, index=s.index), retry
    out = np.array(ts.array.asi8, dtype=object)
    out[nat] = None
    if retry.any():
        idx = np.flatnonzero(retry)
        vals, errs = per_value(text.iloc[idx], _one_time)
        ok = np.equal(errs, None) & ~np.equal(vals, None)
        out[idx[ok]] = vals[ok]
        retry[idx[ok]] = False
    if exact:
        return out, retry
    big = np.array([v is not None and not -(1 << 63) <= v < (1 << 63) for v in out], bool)
    out[big] = None
    retry |= big
    return pd.Series(pd.array(list(out), dtype="Int64"), index=s.index), retry


def _one_time(v):
    if v is None:
        return None, None
    try:
        return parse_time_ns(str(v)), None
    except ValueError as exc:
        return None, str(exc)


def ns_to_filetime_column(ns):
    """Int64 ns -> Int64 FILETIME ticks (missing stays missing)."""
    return ns // FILETIME_TICKS_PER_NS + FILETIME_EPOCH_OFFSET


def normalize_guids(values):
    """`{lower-case-guid}` per value (string Series, NA for a missing or malformed GUID)."""
    import pandas as pd
    s = pd.Series(values, copy=False).astype("string").str.strip()
    core = s.str.extract(_GUID.pattern, expand=False).str.lower()
    return ("{" + core + "}").astype("string")

