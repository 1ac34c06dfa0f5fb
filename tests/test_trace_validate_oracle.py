"""Column-wise `validate` against the per-cell one it replaced (`legacy_trace.schema`): the same
clean rows and the same reasons, on generated frames of good and bad cells."""
from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from legacy_trace.schema import validate as old_validate
from test_analysis_oracle import rows

from ntoslab.trace.schema import validate

cells = {
    "time": st.one_of(st.none(), st.integers(0, 2**62), st.sampled_from(
        ["2020-01-01T00:00:00Z", "2019-07-19 14:42:51.257", "noon", "", "1500000000"])),
    "operation": st.one_of(st.none(), st.sampled_from(["create", "delete", " DELETE ", "spawn"])),
    "process_id": st.one_of(st.none(), st.integers(-5, 2**33), st.sampled_from(["12", "0x1f", "12.0", "x"])),
    "exit_code": st.one_of(st.none(), st.integers(-(2**31), 2**32 + 5), st.sampled_from(["0xc000013a", "-1"])),
    "token_sid": st.one_of(st.none(), st.sampled_from(["S-1-5-18", "S-1-5-21-1-2-3-1001", "nope", ""])),
    "command_line": st.one_of(st.none(), st.sampled_from(["cmd /c ver", "x" * 40000])),
}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries(cells), min_size=1, max_size=12))
def test_validate_matches_the_per_cell_oracle(records):
    frame = pd.DataFrame(records, dtype=object)
    new_clean, new_bad = validate(frame)
    old_clean, old_bad = old_validate(frame)
    assert list(new_bad["row"]) == list(old_bad["row"])
    assert list(new_bad["reason"]) == list(old_bad["reason"])
    common = [c for c in old_clean.columns if c in new_clean.columns]
    assert rows(new_clean[common]) == rows(old_clean[common])
    assert list(new_clean.index) == list(old_clean.index)
