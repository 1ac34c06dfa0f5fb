"""Time conversions shared by events and traces: UTC nanoseconds, FILETIME ticks, log strings.

>>> ns_to_filetime(0)
116444736000000000
>>> parse_time_ns("1970-01-01 00:00:01.5Z")
1500000000
"""
from __future__ import annotations

import re

FILETIME_EPOCH_OFFSET = 116444736000000000  # 100-ns ticks from 1601-01-01 to 1970-01-01
FILETIME_TICKS_PER_NS = 100
U32 = 1 << 32
_FRACTION = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?\s*"
                       r"(Z|UTC|[+-]\d{2}:?\d{2})?(?:\s*UTC)?$", re.IGNORECASE)


def ns_to_filetime(ns: int) -> int:
    """UTC nanoseconds since 1970 as FILETIME ticks (100 ns since 1601), rounding down."""
    return ns // FILETIME_TICKS_PER_NS + FILETIME_EPOCH_OFFSET


def filetime_to_ns(filetime: int) -> int:
    """FILETIME ticks as UTC nanoseconds since 1970."""
    return (filetime - FILETIME_EPOCH_OFFSET) * FILETIME_TICKS_PER_NS


def parse_time_ns(text: str) -> int:
    """UTC nanoseconds of a log time string: ISO-8601 with 'T' or a space, up to 9 fraction
    digits (Sysmon `UtcTime` has 3, EVTX `SystemTime` 6 or 7), and 'Z', 'UTC', an offset or no
    zone (taken as UTC). Raises ValueError."""
    m = _FRACTION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a time (YYYY-MM-DD HH:MM:SS[.fff][Z])")
    date, hh, mm, ss, frac, zone = m.groups()
    from datetime import date as _date
    y, mo, d = (int(x) for x in date.split("-"))
    try:
        days = (_date(y, mo, d) - _date(1970, 1, 1)).days
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    h, mi, s = int(hh), int(mm), int(ss)
    if h > 23 or mi > 59 or s > 60:
        raise ValueError(f"{text!r}: time of day out of range")
    ns = ((days * 24 + h) * 60 + mi) * 60 + s
    ns *= 10**9
    if frac:
        ns += int((frac + "000000000")[:9])
    if zone and zone.upper() not in ("Z", "UTC"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * 10**9
    return ns
