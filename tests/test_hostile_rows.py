"""Hostile trace rows for `ntoslab run` (issue 11 item 5): any JSON a file may hold, in any
field, gives a verdict or a row error naming its line; never an exception, never a row that
is neither run nor rejected (nothing silently dropped); the exit status is 0 only when every row
ran cleanly.

Counts (tried / contained / crashed / hung / silently dropped) are printed by the counting test.
"""
from __future__ import annotations

import io
import json
import time
from collections import Counter

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntoslab.runner import main

FIELDS = ["operation", "process_id", "parent_process_id", "creating_process_id",
          "creating_thread_id", "creation_time", "exit_time", "exit_code", "image_path",
          "command_line", "token_sid", "account_name", "account_domain", "time", "logon_id",
          "is_admin", "cpu"]
SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\ud83d"])
TEXT = st.one_of(st.text(max_size=40), SURROGATES, st.just("x" * 40_000),
                 st.just("S-1-5-18"), st.just("S-1-99999999999999-1"))
NUMBERS = st.one_of(st.integers(-2**70, 2**70), st.sampled_from([-5, -1, 0, 2**32 - 1, 2**32,
                                                                 2**63, 2**64, 2**70]),
                    st.floats(allow_nan=True, allow_infinity=True))
VALUES = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT,
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                        st.integers(), max_size=2))
ROWS = st.fixed_dictionaries({"operation": st.one_of(st.sampled_from(["create", "delete"]),
                                                     VALUES),
                              "process_id": st.one_of(st.integers(0, 2**32 - 1), VALUES)},
                             optional={f: VALUES for f in FIELDS[2:]})


@pytest.fixture(scope="module")
def policy(compile_bpf):
    return compile_bpf((ROOT / "bpf" / "examples" / "deny_policy.c").read_text(), "deny_policy")


def run_rows(policy, tmp_path, rows: list, engine: str = "jit") -> tuple[int, dict, str]:
    path = tmp_path / "rows.jsonl"
    with path.open("w", encoding="utf-8", errors="surrogatepass") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    out, err = io.StringIO(), io.StringIO()
    code = main([policy], path, engine, "json", out, err)
    return code, json.loads(out.getvalue()) if out.getvalue() else {}, err.getvalue()


def check_contract(rows, code, report, err) -> str:
    """'contained' or what broke."""
    if code not in (0, 1):
        return f"exit status {code}: {err[-500:]}"
    lines = [v["line"] for v in report["verdicts"]] + [r["line"] for r in report["rejected"]]
    if sorted(lines) != list(range(1, len(rows) + 1)):
        return f"silently dropped: lines {sorted(set(range(1, len(rows) + 1)) - set(lines))}"
    if report["rejected"] and code != 1:
        return "rows rejected but exit status 0"
    for r in report["rejected"]:
        if f"rows.jsonl:{r['line']}: " not in err:
            return f"row error for line {r['line']} not printed"
    return "contained"


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(ROWS, min_size=1, max_size=6))
def test_any_rows_are_run_or_rejected(policy, tmp_path_factory, rows):
    check_rows(policy, tmp_path_factory, rows)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(ROWS, min_size=1, max_size=12))
def test_any_rows_are_run_or_rejected_long(policy, tmp_path_factory, rows):
    check_rows(policy, tmp_path_factory, rows)


def check_rows(policy, tmp_path_factory, rows):
    tmp = tmp_path_factory.mktemp("rows")
    code, report, err = run_rows(policy, tmp, rows)
    assert check_contract(rows, code, report, err) == "contained", (rows, err[-800:])


HOSTILE = [
    '{"operation": "create", "process_id": 1, "command_line": "\\ud800"}',
    '{"operation": "create", "process_id": -5}',
    '{"operation": "create", "process_id": 1180591620717411303424}',
    json.dumps({"operation": "create", "process_id": 2, "command_line": "y" * 10_000_000}),
    '{"operation": "create", "process_id": 3, "image_path": "\\udfff\\ud800"}',
    '{"operation": "create", "process_id": 1e400}',
    '{"operation": "create", "process_id": NaN}',
    '{"operation": "create", "process_id": [1]}',
    '{"operation": "create", "process_id": 4, "token_sid": "S-1-5-21-' + "1-" * 30 + '1"}',
    '{"operation": "create", "process_id": 5, "creation_time": -1}',
    '{"operation": "delete", "process_id": 6, "exit_code": 4294967296}',
    '{"operation": "create", "process_id": 7, "time": "not a time"}',
    '{"operation": "create", "process_id": 8, "time": 99999999999999999999999}',
    '[1, 2, 3]', '"just a string"', '{"unterminated": ', '\x00\x01\x02',
    '{"operation": "CREATE", "process_id": "0x10"}',
    '{"operation": "create", "process_id": 9, "cpu": -1}',
    '{"operation": "create", "process_id": 10, "is_admin": 7}',
    '{"operation": "create", "process_id": 11, "logon_id": 36893488147419103232}',
    '{"operation": "create", "process_id": 12}',
]


@pytest.mark.parametrize("engine", ["interpreter", "jit"])
def test_hostile_row_counts(policy, tmp_path, capsys, engine):
    """Each hostile row in a file with a good row before and after it."""
    good = json.dumps({"operation": "create", "process_id": 99, "command_line": "ok"})
    counts: Counter = Counter()
    bad = []
    for row in HOSTILE:
        rows = [good, row, good]
        t0 = time.monotonic()
        try:
            code, report, err = run_rows(policy, tmp_path, rows, engine)
            outcome = check_contract(rows, code, report, err)
            if outcome == "contained" and [v["line"] for v in report["verdicts"]][:1] != [1]:
                outcome = "crashed: the good row before it did not run"
        except Exception as exc:
            outcome = f"crashed: {type(exc).__name__}: {exc}"
        if outcome == "contained" and time.monotonic() - t0 > 20:
            outcome = "hung"
        key = outcome if outcome in ("contained", "hung") else \
            "silently dropped" if outcome.startswith("silently") else "crashed"
        counts["tried"] += 1
        counts[key] += 1
        if key != "contained":
            bad.append((row[:80], outcome))
    cols = ("tried", "contained", "crashed", "hung", "silently dropped")
    with capsys.disabled():
        print(f"\nhostile trace rows for ntoslab run ({engine}): "
              + ", ".join(f"{c} {counts.get(c, 0)}" for c in cols))
    assert bad == []
