"""Analysis and figures: trees, lifetimes, pairs, commands, verdicts — on hand-made traces with
known answers, and cross-checked on a real Sysmon log against its raw fields."""
from __future__ import annotations

import pandas as pd
import pytest
from conftest import SHARED

from ntoslab.analysis import (
    ProcessTree,
    exit_code_name,
    exit_code_summary,
    lifetimes,
    lolbin_table,
    parent_child_pairs,
    prevented,
    rare_pairs,
    suspicious_commands,
    suspicious_reasons,
    verdict_summary,
)


def trace_of(rows):
    cols = ["time", "operation", "process_id", "parent_process_id", "image_path", "command_line",
            "exit_code", "process_key", "parent_key"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows], columns=cols)


def C(t, pid, ppid, image, cmd, key, parent):
    return (t, "create", pid, ppid, image, cmd, None, key, parent)


def D(t, pid, code, key):
    return (t, "delete", pid, 0, None, None, code, key, None)


@pytest.fixture
def session():
    # explorer -> cmd -> {ping x5, whoami}; cmd -> powershell -> rundll32 ; pid 300 reused
    rows = [C(1, 100, 4, r"C:\Windows\explorer.exe", "explorer", "k100", None),
            C(2, 200, 100, r"C:\Windows\System32\cmd.exe", "cmd", "k200", "k100")]
    rows += [C(3 + i, 300 + i, 200, r"C:\Windows\System32\PING.EXE", f"ping 10.0.0.{i}",
               f"kp{i}", "k200") for i in range(5)]
    rows += [C(10, 400, 200, r"C:\Windows\System32\whoami.exe", "whoami /all", "k400", "k200"),
             C(11, 500, 200, r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
               "powershell -ep bypass -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA", "k500", "k200"),
             C(12, 600, 500, r"C:\Windows\System32\rundll32.exe",
               r"rundll32.exe C:\windows\System32\comsvcs.dll, MiniDump 624 C:\x.dmp full", "k600", "k500"),
             D(13, 400, 0, "k400"), D(14, 600, 0xC0000005, "k600"),
             C(15, 300, 100, r"C:\Windows\System32\notepad.exe", "notepad", "k300b", "k100")]
    return trace_of(rows)


def test_tree_shape(session):
    tree = ProcessTree.from_trace(session)
    assert len(tree) == 11 and tree.roots == ["k100"]
    assert tree.ancestry("k600") == ["k100", "k200", "k500", "k600"]
    assert tree.depth("k600") == 3
    assert set(tree.descendants("k200")) == {f"kp{i}" for i in range(5)} | {"k400", "k500", "k600"}
    # pid 300 reused: the second one is notepad under explorer, not a ping under cmd
    assert tree.node("k300b").name == "notepad.exe" and tree.node("k300b").parent == "k100"
    sub = tree.subtree("k500")
    assert len(sub) == 2 and sub.roots == ["k500"]


def test_render_collapses_repeated_siblings(session):
    text = ProcessTree.from_trace(session).render(collapse=3)
    assert "PING.EXE ×5" in text and text.count("PING.EXE") == 1
    assert text.splitlines()[0] == "explorer.exe (100)"
    assert "      rundll32.exe (600)" in text.splitlines()


def test_lifetimes_and_exit_codes(session):
    life = lifetimes(session).set_index("process_key")
    assert life.loc["k400", "duration_s"] == pytest.approx((13 - 10) / 1e9)
    assert str(life["start"].dtype) == "datetime64[ns, UTC]"       # a person reads datetimes
    assert (life.loc["k400", "end"] - life.loc["k400", "start"]).value == 3
    assert life.loc["k600", "exit_name"] == "STATUS_ACCESS_VIOLATION"
    assert bool(life.loc["k100", "still_running"])
    assert exit_code_name(-1073741819) == "STATUS_ACCESS_VIOLATION"   # same code, signed
    assert exit_code_name(None) is None
    summary = exit_code_summary(session)
    assert set(summary["image"]) == {"whoami.exe", "rundll32.exe"}


def test_pairs(session):
    pairs = parent_child_pairs(session)
    assert pairs.iloc[0].to_dict() == {"parent": "cmd.exe", "child": "ping.exe", "count": 5}
    assert list(rare_pairs(session).columns) == ["parent", "child", "count"]   # no echo column
    baseline = session[session["process_key"] != "k600"]
    rare = rare_pairs(session, baseline, max_count=0)
    assert rare[["parent", "child"]].values.tolist() == [["powershell.exe", "rundll32.exe"]]


def test_commands(session):
    names = {n for n, _ in suspicious_reasons(session.loc[8, "command_line"])}
    assert names == {"encoded PowerShell", "execution policy bypass"}
    found = suspicious_commands(session)
    assert "LSASS memory dump" in set(found["pattern"])
    assert suspicious_reasons("ping 10.0.0.1") == []
    lol = lolbin_table(session).set_index("image")
    assert lol.loc["rundll32.exe", "count"] == 1 and "ping.exe" not in lol.index


def test_verdicts_and_what_a_deny_prevents(session):
    verdicts = pd.DataFrame({"denied": [k == "k500" for k in session["process_key"]],
                             "decided_by": ["Policy" if k == "k500" else None
                                            for k in session["process_key"]]})
    summary = verdict_summary(session, verdicts)
    assert summary.to_dict("records") == [{"decided_by": "Policy", "image": "powershell.exe",
                                           "denied": 1}]
    prev = prevented(session, verdicts)
    assert prev.loc[0, "prevented_descendants"] == 1 and prev.loc[0, "prevented_images"] == "rundll32.exe"


def test_figures(session, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from ntoslab.viz import plot_timeline, plot_tree
    fig = plot_tree(ProcessTree.from_trace(session), highlight={"k600"})
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert "PING.EXE ×5" in labels and "rundll32.exe (600)" in labels
    fig.savefig(tmp_path / "tree.png")
    verdicts = pd.DataFrame({"denied": [k == "k500" for k in session["process_key"]]})
    fig = plot_timeline(session, verdicts=verdicts)
    assert len(fig.axes[0].get_yticklabels()) == 11
    fig.savefig(tmp_path / "timeline.png")
    assert (tmp_path / "tree.png").stat().st_size > 1000


ART = SHARED / "datasets" / "EVTX-ATTACK-SAMPLES" / "PanacheSysmon_vs_AtomicRedTeam01.evtx"


@pytest.mark.skipif(not ART.exists(), reason="../shared/datasets is not beside the checkout")
def test_pairs_on_a_real_log_match_its_raw_parent_image_fields():
    """Linking by key must reproduce the (ParentImage, Image) pairs Sysmon itself recorded,
    wherever the parent's creation is in the log."""
    evtx = pytest.importorskip("evtx")
    import json

    from ntoslab.trace.importer import import_logs
    raw = []
    for rec in evtx.PyEvtxParser(str(ART)).records_json():
        ev = json.loads(rec["data"])["Event"]
        if ev["System"]["EventID"] in (1, {"#text": 1}) or str(ev["System"]["EventID"]) == "1":
            d = ev["EventData"]
            raw.append((d.get("ParentProcessGuid"), d["ParentImage"].rsplit("\\", 1)[-1].lower(),
                        d["Image"].rsplit("\\", 1)[-1].lower(), d.get("ProcessGuid")))
    created = {g for *_, g in raw}
    expected = pd.Series([(p, c) for pg, p, c, _ in raw if pg in created]).value_counts()
    frame = import_logs([ART]).frame
    got = parent_child_pairs(frame).set_index(["parent", "child"])["count"]
    assert got.sum() == expected.sum()
    for (parent, child), n in expected.items():
        assert got[(parent, child)] == n, (parent, child)


@pytest.mark.skipif(not ART.exists(), reason="../shared/datasets is not beside the checkout")
def test_renamed_certutil_is_caught_by_its_description():
    """Panache: certutil copied to Temptcm.tmp and run with -decode. Its image name says
    nothing; Sysmon's Description (CertUtil.exe) does."""
    from ntoslab.trace.importer import import_logs
    frame = import_logs([ART]).frame
    c = frame[(frame.operation == "create") & frame.image_path.str.endswith("Temptcm.tmp")]
    assert len(c) == 1 and c.description.iloc[0] == "CertUtil.exe"   # the hand-checked row
    key = c.process_key.iloc[0]
    lol = lolbin_table(frame).set_index("image")
    assert lol.loc["certutil.exe", "renamed"] >= 1
    hits = suspicious_commands(frame)
    mine = hits[hits.process_key == key]
    assert list(mine.pattern) == ["certutil download or decode"] and mine.image.iloc[0] == "Temptcm.tmp"
    # without the Description column the rename hides it, as it used to
    blind = frame.drop(columns=["description", "original_file_name"])
    assert key not in set(suspicious_commands(blind).process_key)


def test_sql_over_frames_trees_and_parquet(session, tmp_path):
    from ntoslab.analysis import sql
    got = sql("SELECT operation, count(*) AS n FROM trace GROUP BY 1 ORDER BY 1", trace=session)
    assert got.values.tolist() == [["create", 11], ["delete", 2]]
    tree = ProcessTree.from_trace(session)
    # children per parent image, by a self-join of the linked frame: cmd.exe started 7
    kids = sql("""SELECT p.image, count(*) AS children FROM processes c
                  JOIN processes p ON c.parent_key = p.process_key
                  GROUP BY 1 ORDER BY 2 DESC""", processes=tree)
    assert kids.iloc[0].tolist() == ["cmd.exe", 7]
    path = tmp_path / "t.parquet"
    session.to_parquet(path)
    assert sql("SELECT count(*) AS n FROM t", t=path).n[0] == len(session)
    with pytest.raises(ValueError, match="SQL error"):
        sql("SELECT nope FROM trace", trace=session)
