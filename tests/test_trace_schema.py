"""The trace schema's DataFrame form: dtypes, FILETIME conversions, validation, file I/O."""
from __future__ import annotations

import pandas as pd
import pytest

from ntoslab.filetime import FILETIME_EPOCH_OFFSET
from ntoslab.hooks.process import ProcessEvent
from ntoslab.trace import (
    COLUMNS,
    DTYPES,
    as_schema,
    datetime_to_filetime,
    events_frame,
    filetime_to_datetime,
    filetime_to_ns,
    ns_to_filetime,
    parse_time_ns,
    read_events,
    read_trace,
    validate,
    write_trace,
)
from ntoslab.trace.synthetic import quickstart_scenario

# 2019-07-19 14:48:30.6190000 UTC as FILETIME: 132079253106190000 (checked with
# (datetime(2019,7,19,14,48,30,619000) - datetime(1601,1,1)) // timedelta(microseconds=1) * 10)
FT = 132080213106190000


def test_filetime_conversions_both_ways():
    ts = pd.Timestamp("2019-07-19 14:48:30.619", tz="UTC")
    assert datetime_to_filetime(ts) == FT == datetime_to_filetime("2019-07-19T14:48:30.619Z")
    assert datetime_to_filetime(pd.Timestamp("2019-07-19 14:48:30.619")) == FT   # naive = UTC
    assert filetime_to_datetime(FT) == ts
    assert filetime_to_ns(FT) == ts.value and ns_to_filetime(ts.value) == FT
    assert ns_to_filetime(0) == FILETIME_EPOCH_OFFSET
    s = pd.Series([FT, None, FILETIME_EPOCH_OFFSET], dtype="Int64")
    back = filetime_to_datetime(s)
    assert back.iloc[0] == ts and pd.isna(back.iloc[1]) and back.iloc[2].value == 0
    assert list(datetime_to_filetime(back).fillna(-1)) == [FT, -1, FILETIME_EPOCH_OFFSET]


def test_parse_time_ns_formats():
    base = parse_time_ns("2022-08-31 19:18:42.164")
    assert parse_time_ns("2022-08-31T19:18:42.164Z") == base
    assert parse_time_ns("2022-08-31T19:18:42.1640000Z UTC") == base
    assert parse_time_ns("2022-08-31T21:18:42.164+02:00") == base
    assert parse_time_ns("2022-08-31T19:18:42.1668379Z") - base == 2_837_900
    with pytest.raises(ValueError):
        parse_time_ns("yesterday")


def test_as_schema_dtypes():
    frame = as_schema(events_frame(quickstart_scenario()))
    assert list(frame.columns) == COLUMNS
    for c in COLUMNS:
        assert str(frame[c].dtype) == DTYPES[c], c
    assert str(frame.time.dtype) == "datetime64[ns, UTC]"
    assert frame.time.iloc[0] == pd.Timestamp("2025-11-25 10:00:00", tz="UTC")


def test_validate_reports_every_bad_row():
    rows = pd.DataFrame([
        {"time": 10**18, "operation": "create", "process_id": 4, "exit_code": -1073741510},
        {"time": 10**18, "operation": "spawn", "process_id": 5},
        {"time": None, "operation": "delete", "process_id": 6},
        {"time": "not a time", "operation": "delete", "process_id": 7},
        {"time": 10**18, "operation": "create", "process_id": "0x10", "token_sid": "S-1-5-18"},
        {"time": 10**18, "operation": "create", "process_id": 1 << 32},
        {"time": 10**18, "operation": "create", "process_id": 8, "token_sid": "alice"},
        {"time": 10**18, "operation": "create", "process_id": None},
        {"time": 10**18, "operation": "create", "process_id": 9, "command_line": "x" * 40000},
        {"time": "2020-01-01T00:00:00Z", "operation": "DELETE", "process_id": "12.0",
         "exit_code": "0xc000013a"},
    ])
    clean, rejected = validate(rows)
    assert list(clean.index) == [0, 4, 9]
    assert clean.loc[0, "exit_code"] == 0xC000013A            # folded to unsigned 32-bit
    assert clean.loc[9, "exit_code"] == 0xC000013A and clean.loc[9, "operation"] == "delete"
    assert clean.loc[4, "process_id"] == 16 and clean.loc[9, "process_id"] == 12
    assert clean.loc[9, "time"] == pd.Timestamp("2020-01-01", tz="UTC")
    why = dict(zip(rejected.row, rejected.reason))
    assert set(why) == {1, 2, 3, 5, 6, 7, 8}
    assert why[1] == "operation 'spawn' is not 'create' or 'delete'"
    assert why[2] == "time is missing"
    assert why[3].startswith("time 'not a time' is unreadable")
    assert why[5] == "process_id 4294967296 is out of range [0, 4294967295]"
    assert "not a SID string" in why[6]
    assert why[7] == "process_id is missing"
    assert "more than a UNICODE_STRING holds" in why[8]
    assert len(clean) + len(rejected) == len(rows)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_round_trip(tmp_path, suffix):
    frame = as_schema(events_frame(quickstart_scenario()))
    frame["creator_inferred"] = pd.array([True] * 8 + [False] * 4, dtype="boolean")
    frame.loc[0, "creation_time"] = FT + 1          # > 2**53: must not pass through float64
    frame.loc[1, "time"] = pd.Timestamp(1_764_064_800_123_456_789, tz="UTC")   # ns kept
    path = write_trace(frame, tmp_path / f"t{suffix}")
    back, rejected = read_trace(path)
    assert rejected.empty
    if suffix == ".csv":   # CSV cannot tell an empty string from a missing one
        for c in ("image_path", "command_line"):
            frame[c] = frame[c].replace("", pd.NA)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), frame.reset_index(drop=True),
                                  check_dtype=True)
    # the row reader of `ntoslab run` accepts the same file
    events, errors = read_events(path)
    assert not errors and len(events) == len(frame)
    assert events[0].creation_time == FT + 1 and events[1].time == 1_764_064_800_123_456_789


def test_from_row_accepts_schema_rows():
    frame = as_schema(events_frame(quickstart_scenario()))
    events = [ProcessEvent.from_row(r) for r in frame.to_dict("records")]
    assert [e.to_row() for e in events] == [e.to_row() for e in quickstart_scenario()]


def test_short_and_long_time_columns_agree():
    """`times_ns` parses a short column value by value and a long one in one C call; both
    give the same times, the same missing and the same unreadable rows."""
    import numpy as np

    from ntoslab.trace import columns
    texts = ["2019-07-19 14:42:51.257", "2022-08-31T19:18:41.7428329Z", "2022-08-31T19:18:41Z",
             "2021-03-01T10:00:00+02:00", "2021-03-01 10:00:00 UTC", "2021-03-01T10:00:00.1234567891Z",
             "2019-07-19", "1601-01-01T00:00:00Z", "3000-01-01T00:00:00Z", "2016-12-31T23:59:60Z",
             "2021-02-30T00:00:00Z", "noon", "", None, float("nan"), 12, "  2020-01-01T00:00:00Z ",
             "2020-01-01T00:00:00,5Z", "2020-01-01T24:00:00Z", "2020-01-01t00:00:00z"]
    a = np.array(texts, dtype=object)
    short = columns.times_ns(a)
    long = columns._times_ns_column(a)
    for x, y in zip(short, long):
        assert x.tolist() == y.tolist()
    assert len(a) <= columns.SMALL_COLUMN < len(np.repeat(a, 2))
    assert [x.tolist() for x in columns.times_ns(np.repeat(a, 2))] == \
        [np.repeat(y, 2).tolist() for y in long]
