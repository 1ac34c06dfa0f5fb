"""Column-wise conversion of raw log fields: times, process ids, hex numbers, GUIDs — each
distinct value parsed once, every row that fails given its reason.

A `Reasons` collects, per row, the first reason it cannot become a trace row (the checks of a
record run in order and the first failure is the one reported, as a per-record parser would).

The importer's columns are plain object arrays (no pandas per column): `times_ns`, `guid_values`,
`text_values`, `map_values`/`checked_values` (a function once per distinct value); `per_value`
is the pandas form `schema.validate` uses.

>>> ns, missing, bad = times_ns(np.array(["2019-07-19 14:42:51.257", "noon"], object))  # doctest: +SKIP
"""
from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np

from ..filetime import parse_time_ns

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


def _one_time(v):
    if v is None:
        return None, None
    try:
        return parse_time_ns(str(v)), None
    except ValueError as exc:
        return None, str(exc)


# ---------------------------------------------------------------------------------------------
# The importer's columns: plain object arrays, no pandas per column
# ---------------------------------------------------------------------------------------------

def plain(v: Any) -> Any:
    """A raw value with NaN (a float that is not equal to itself) as None."""
    return None if v is None or (type(v) is float and v != v) else v


def objects(values) -> np.ndarray:
    """`values` as a 1-d object array (no copy when it already is one); an Arrow array's
    nulls as None, its integers as Python ints."""
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values
    if isinstance(values, (list, tuple)):
        return np.fromiter(values, object, len(values))
    if is_arrow(values):
        return _arrow_objects(values)
    out = np.empty(len(values), object)
    out[:] = values
    return out


def is_arrow(values) -> bool:
    """An Arrow array (the EVTX fast path's columns: `evtx_arrow.py`)."""
    return type(values).__module__.startswith("pyarrow")


def _arrow_objects(a) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc
    if pa.types.is_integer(a.type):
        out = pc.fill_null(a, 0).to_numpy(zero_copy_only=False).astype(object)
        if a.null_count:
            out[a.is_null().to_numpy(zero_copy_only=False)] = None
        return out
    return a.to_numpy(zero_copy_only=False).astype(object, copy=False)


def text_column(values):
    """A column of text as it is: an Arrow array stays one (the frame is built from Arrow
    text), anything else as an object array."""
    return values if is_arrow(values) else objects(values)


def join(parts: list):
    """Columns one after the other: Arrow when all are, numpy when all are, else objects."""
    if len(parts) == 1:
        return parts[0]
    arrow = [is_arrow(p) for p in parts]
    if all(arrow):
        import pyarrow as pa
        return pa.concat_arrays(parts)
    if not any(arrow):
        return np.concatenate(parts)
    return np.concatenate([objects(p) for p in parts])


def take(values, index: np.ndarray):
    """`values[index]` of a numpy or an Arrow column."""
    return values.take(index) if is_arrow(values) else values[index]


def keep(values, mask: np.ndarray):
    """The rows of a numpy or Arrow column where `mask` holds."""
    if is_arrow(values):
        import pyarrow as pa
        return values.filter(pa.array(mask))
    return values[mask]


def where(mask: np.ndarray, values, other=None):
    """`values` where `mask` holds, else `other` (None: missing), for an Arrow column."""
    import pyarrow as pa
    import pyarrow.compute as pc
    return pc.if_else(pa.array(mask, pa.bool_()), values, pa.scalar(other, values.type))


def chunks(items: list):
    """A column from a list of values and Arrow arrays of values (the clock samples
    `Intake` collects: one by one, and a batch at a time)."""
    arrow = [is_arrow(v) for v in items]
    if not any(arrow):
        return objects(items)
    if all(arrow):
        return join(items)
    from itertools import groupby
    return np.concatenate([objects(v) for a, run in groupby(items, is_arrow)
                           for v in (run if a else [list(run)])])


def map_values(values, fn: Callable[[Any], Any]) -> np.ndarray:
    """`fn(value)` once per distinct value (NaN as None), as an object array per row."""
    lst = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if set(map(type, lst)) <= {str, type(None)}:        # text: one dict, C-level lookups
        table = {v: fn(v) for v in set(lst)}
        return np.fromiter(map(table.__getitem__, lst), object, len(lst))
    cache: dict = {}
    out = np.empty(len(lst), object)
    get = cache.get
    for i, v in enumerate(lst):
        try:
            r = get((type(v), v), cache)
        except TypeError:                      # unhashable (a JSON list or object)
            out[i] = fn(plain(v))
            continue
        if r is cache:
            r = cache[(type(v), v)] = fn(plain(v))
        out[i] = r
    return out


def checked_values(values, fn: Callable[[Any], tuple[Any, str | None]]):
    """`fn(value) -> (result, error or None)` once per distinct value: (results, errors)."""
    pairs = map_values(values, fn)
    res = np.empty(len(pairs), object)
    err = np.empty(len(pairs), object)
    for i, (r, e) in enumerate(pairs.tolist()):
        res[i], err[i] = r, e
    return res, err


def is_missing(values) -> np.ndarray:
    """None, NaN or the empty string, per row."""
    a = objects(values)
    if not len(a):
        return np.zeros(0, bool)
    if _types(a) <= {str}:
        return np.asarray(a == "", bool)
    return np.fromiter((v is None or v == "" or (type(v) is float and v != v)
                        for v in a.tolist()), bool, len(a))


def _types(a: np.ndarray) -> set:
    return set(map(type, a.tolist()))


SMALL_COLUMN = 32      # below this many values, a C parse costs more than it saves


def times_ns(values):
    """(int64 UTC ns, missing, unreadable) for an object array of time texts: what
    `parse_times` does (one C parse of the column, `parse_time_ns` for any value it did not
    take), without building Series. A short column is parsed by `parse_time_ns` first (the
    two agree on every text both read), the C parse taking only what it refuses."""
    if is_arrow(values):
        return _arrow_times_ns(values)
    a = objects(values)
    if len(a) > SMALL_COLUMN:
        return _times_ns_column(a)
    gone = is_missing(a)
    ns = np.zeros(len(a), np.int64)
    left = np.zeros(len(a), bool)
    bad = np.zeros(len(a), bool)
    for i, v in enumerate(a.tolist()):
        if gone[i]:
            continue
        try:
            k = parse_time_ns(v) if type(v) is str else None
        except ValueError:
            k = None
        if k is None:
            left[i] = True
        elif -(1 << 63) <= k < (1 << 63):
            ns[i] = k
        else:
            bad[i] = True           # a real time the ns range cannot hold (before 1677 ...)
    if left.any():
        at = np.flatnonzero(left)
        ns[at], _, bad[at] = _times_ns_column(a[at])
    return ns, gone, bad


_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# the two forms Arrow's cast reads as `parse_time_ns` does (checked value by value in the
# tests): without a zone (UTC) and with one, in years 1680-2261 (inside the ns range: one
# time outside it would make the cast refuse the whole column); any other text takes the
# object path
_PLAIN_TIME = (r"^(1(6[89][0-9]|[7-9][0-9]{2})|2([01][0-9]{2}|2[0-5][0-9]|26[01]))"
               r"-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?")
_ARROW_TIMES = ((_PLAIN_TIME + "$", None), (_PLAIN_TIME + "(Z|[+-][0-9]{2}:[0-9]{2})$", "UTC"))


def _arrow_times_ns(a):
    """`times_ns` of an Arrow string array: the usual forms by Arrow's cast (a group the
    cast refuses, e.g. for a leap second, and every other text, by the object path)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    n = len(a)
    gone = ~pc.fill_null(pc.not_equal(a, ""), False).to_numpy(zero_copy_only=False)
    ns = np.zeros(n, np.int64)
    left = ~gone
    forms = _ARROW_TIMES
    if n and a[0].is_valid and a[0].as_py().endswith("Z"):
        forms = forms[::-1]                  # zoned first (the log clock's form)
    for pattern, zone in forms:
        if not left.any():
            break
        at = np.flatnonzero(left)
        part = a if len(at) == n else a.take(pa.array(at))
        m = pc.fill_null(pc.match_substring_regex(part, pattern), False).to_numpy(
            zero_copy_only=False)
        if not m.any():
            continue
        try:
            t = pc.cast(part.filter(pa.array(m)), pa.timestamp("ns", zone))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        ns[at[m]] = t.cast(pa.int64()).to_numpy(zero_copy_only=False)
        left[at[m]] = False
    bad = np.zeros(n, bool)
    if left.any():
        at = np.flatnonzero(left)
        ns[at], _, bad[at] = times_ns(objects(a.take(pa.array(at))))
    return ns, gone, bad


def _times_ns_column(a):
    import warnings

    import pandas as pd
    gone = is_missing(a)
    text = a.copy()
    text[gone] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            idx = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
            # in the unit pandas chose for this column, scaled to ns without overflowing: a
            # time the ns range cannot hold goes to the per-value parse below, whatever
            # else the column holds
            raw = np.asarray(idx.asi8, dtype=np.int64) if len(a) else np.empty(0, np.int64)
            nat = np.array(idx.isna(), bool) if len(a) else np.empty(0, bool)
            scale = _UNIT_NS[getattr(idx, "unit", "ns")]
            over = ~nat & (np.abs(raw) > (np.iinfo(np.int64).max // scale))
            nat |= over
            ns = np.where(nat, 0, raw) * scale
        except (ValueError, TypeError, OverflowError):
            ns = np.zeros(len(a), np.int64)
            nat = np.ones(len(a), bool)
    retry = nat & ~gone
    if retry.any():
        at = np.flatnonzero(retry)
        vals, errs = checked_values(text[at], _one_time)
        for i, v, e in zip(at.tolist(), vals.tolist(), errs.tolist()):
            if e is None and v is not None and -(1 << 63) <= v < (1 << 63):
                ns[i] = v
                retry[i] = False
    ns[gone | retry] = 0
    return ns, gone, retry


def all_ints(a: np.ndarray, none: bool = False) -> bool:
    """Every value a Python int (bools are not), or None too with `none`."""
    return _types(a) <= ({int, type(None)} if none else {int})


def guid_values(values) -> np.ndarray:
    """`{lower-case-guid}` per value (None for a missing or malformed GUID): what
    `keys.normalize_guid` gives, on a column of text at once (Arrow's regex and lower-case
    kernels; any value that is not text goes through `normalize_guid` itself)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .keys import normalize_guid
    if is_arrow(values) and len(values) > SMALL_COLUMN:
        s = pc.utf8_trim_whitespace(values)
    else:
        a = objects(values)
        if len(a) <= SMALL_COLUMN or not _types(a) <= {str, type(None)}:
            return map_values(a, lambda v: None if v is None else normalize_guid(v))
        s = pc.utf8_trim_whitespace(pa.array(a, type=pa.string()))
    ok = pc.match_substring_regex(s, _GUID.pattern)
    core = pc.utf8_lower(pc.utf8_ltrim(pc.utf8_rtrim(s, "}"), "{"))
    out = pc.if_else(ok, pc.binary_join_element_wise("{", core, "}", ""), pa.scalar(None, pa.string()))
    return out.to_numpy(zero_copy_only=False)


def text_values(values) -> np.ndarray:
    """Raw values as text: strings as they are, other values `str`ed, missing (None, NaN) as
    None."""
    a = objects(values)
    if _types(a) <= {str, type(None)}:
        return a
    return map_values(a, lambda v: None if v is None else v if isinstance(v, str) else str(v))


def times_exact(values, parsed=None) -> np.ndarray:
    """`times_ns` as an object array of Python ints (None where missing or unreadable), with
    times beyond the nanosecond range (before 1677, after 2262) kept: what
    `parse_times(exact=True)` gives. `parsed`: `times_ns(values)` when already at hand."""
    a = objects(values)
    ns, gone, bad = parsed if parsed is not None else times_ns(a)
    out = ns.astype(object)
    out[gone] = None
    for i in np.flatnonzero(bad).tolist():
        v, e = _one_time(a[i])
        out[i] = v if e is None else None
    return out
