"""`keys.link_columns` gives exactly the links of the sequential walk `keys.link_rows` (the
reference: one row at a time, as ARCHITECTURE.md states the rules) on any rows: PID reuse,
ties in time, GUIDs that disagree or repeat, exits without creations, duplicated events."""
from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntoslab.trace.keys import LINK_INPUTS, link_columns, link_rows

IMAGES = [None, "?", "C:\\Windows\\cmd.exe", "cmd.exe", "\\??\\C:\\Windows\\CMD.EXE",
          "C:\\Tools\\cmd.exe", "powershell.exe"]
GUIDS = [None, "{aaaaaaaa-0000-0000-0000-000000000001}", "{aaaaaaaa-0000-0000-0000-000000000002}",
         "{aaaaaaaa-0000-0000-0000-000000000003}"]



def rows_of(guids, times):
    """Rows over `guids` and `times` creation/exit times: few of each make repeated keys (the
    walked groups), many make the column path do all the work."""
    return st.fixed_dictionaries({
        "time": st.integers(0, 12), "operation": st.sampled_from(["create", "delete"]),
        "process_id": st.integers(1, 4),
        "parent_process_id": st.one_of(st.none(), st.integers(1, 4)),
        "creation_time": st.one_of(st.none(), st.integers(0, times)),
        "exit_time": st.one_of(st.none(), st.integers(0, times)),
        "image_path": st.sampled_from(IMAGES), "parent_image": st.sampled_from(IMAGES),
        "process_guid": st.sampled_from(guids), "parent_process_guid": st.sampled_from(guids),
        "source": st.sampled_from(["sysmon", "security"]),
        "host": st.sampled_from([None, "a", "b"])})


ROW = rows_of(GUIDS, 3)
MANY_GUIDS = [None] * 4 + [f"{{bbbbbbbb-0000-0000-0000-{i:012d}}}" for i in range(60)]
SPARSE_ROW = rows_of(MANY_GUIDS, 10**6)

OUT = ("process_key", "parent_key", "link", "creation_time", "parent_process_id")


def both(rows):
    walked = link_rows(copy.deepcopy(rows))
    cols = link_columns({c: [r[c] for r in rows] for c in LINK_INPUTS})
    return [[r.get(c) for c in OUT] for r in walked], \
        [[cols[c][i] for c in OUT] for i in range(len(rows))]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(ROW, max_size=25))
def test_same_links_as_the_walk(rows):
    walked, columns = both(rows)
    assert columns == walked


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(SPARSE_ROW, max_size=25))
def test_same_links_as_the_walk_without_repeats(rows):
    walked, columns = both(rows)
    assert columns == walked


def test_pid_reuse_and_exits_by_hand():
    # pid 5 created twice; the first instance exits before the second is created; a child of
    # pid 5 after the second creation links to the second; an exit with no creation is unpaired
    base = dict(parent_image=None, process_guid=None, parent_process_guid=None, source="security",
                host="h", exit_time=None, image_path="a.exe")
    rows = [dict(base, time=1, operation="create", process_id=5, parent_process_id=1, creation_time=10),
            dict(base, time=2, operation="delete", process_id=5, parent_process_id=None,
                 creation_time=None, exit_time=20),
            dict(base, time=3, operation="create", process_id=5, parent_process_id=1, creation_time=30),
            dict(base, time=4, operation="create", process_id=6, parent_process_id=5, creation_time=40),
            dict(base, time=5, operation="delete", process_id=9, parent_process_id=None,
                 creation_time=None, exit_time=50)]
    cols = link_columns({c: [r[c] for r in rows] for c in LINK_INPUTS})
    assert list(cols["process_key"]) == ["h:5:10", "h:5:10", "h:5:30", "h:6:40", "h:9:exit:50"]
    assert list(cols["parent_key"]) == [None, None, None, "h:5:30", None]
    assert list(cols["link"]) == ["unlinked", "pid", "unlinked", "pid", "unpaired"]
    assert list(cols["creation_time"]) == [10, 10, 30, 40, None]
