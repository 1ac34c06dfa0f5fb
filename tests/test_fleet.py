"""ntoslab.fleet on a real distributed LocalCluster (2 worker processes), against the
single-node functions run on the concatenated trace, host by host."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pandas as pd
import pytest
from conftest import ROOT, SHARED

import ntoslab
from ntoslab import fleet
from ntoslab.analysis import lifetimes, parent_child_pairs, rare_pairs
from ntoslab.trace import TraceFormatError, import_logs, read_trace
from ntoslab.trace.dataset import dataset_hosts

MONITOR = ROOT / "bpf" / "process_monitor.o"
POLICY = ROOT / "bpf" / "examples" / "deny_policy.o"
PROGRAMS = [(MONITOR, "ProcessMonitor"), (POLICY, "DenyPolicy")]
RINGS = {"process_ringbuf": "process_info_t"}
MAPS = ["command_map", "denials"]


@pytest.fixture(scope="module")
def client():
    c = fleet.connect(workers=2)
    c.wait_for_workers(2)
    yield c
    c.close()


@pytest.fixture(scope="module")
def trace():
    # 12 hosts, sessions slow enough (0.05 creations/s) that some run past midnight; 3 hosts
    # carry one attack each (office_macro is denied by the policy: -EncodedCommand)
    return fleet.generate_fleet(12, 300, seed=2, rate_per_s=0.05, attacked=0.25)


@pytest.fixture(scope="module")
def dataset(trace, tmp_path_factory):
    path = tmp_path_factory.mktemp("fleet") / "ds"
    fleet.write_dataset(trace, path)
    return path


def by_host_time(frame):
    return frame.sort_values(["host", "time"], kind="stable").reset_index(drop=True)


# --- the dataset ---------------------------------------------------------------------------

def test_dataset_is_hive_partitioned_by_host_and_day(trace, dataset):
    import duckdb
    days = trace["time"].dt.strftime("%Y-%m-%d")
    expected = trace.assign(day=days).groupby(["host", "day"]).size()
    found = {(p.parent.parent.name, p.parent.name) for p in dataset.glob("*/*/*.parquet")}
    assert found == {(f"host={h}", f"day={d}") for h, d in expected.index}
    assert trace.assign(day=days).groupby("host")["day"].nunique().max() == 2   # spans midnight
    # an independent hive reader sees the same rows per host and day
    counts = duckdb.sql(f"SELECT host, strftime(day, '%Y-%m-%d') AS day, count(*) n FROM read_parquet("
                        f"'{dataset}/*/*/*.parquet', hive_partitioning=true) GROUP BY 1, 2") \
        .df().set_index(["host", "day"])["n"]
    assert counts.sort_index().to_dict() == expected.to_dict()


def test_read_trace_gives_the_dataset_back(trace, dataset):
    clean, rejected = read_trace(dataset)
    assert len(rejected) == 0
    pd.testing.assert_frame_equal(clean[list(trace.columns)], by_host_time(trace))
    lazy = read_trace(dataset, lazy=True)
    assert lazy.npartitions == trace["host"].nunique()
    part = lazy.get_partition(0).compute()
    assert part["host"].nunique() == 1 and part["time"].is_monotonic_increasing
    pd.testing.assert_frame_equal(lazy.compute().reset_index(drop=True), clean)


def test_host_names_are_escaped_and_missing_hosts_kept(tmp_path):
    frame = fleet.generate_fleet(2, 100, seed=1, attacked=0)
    frame["host"] = frame["host"].map({"WS-0000": "dc/01 x", "WS-0001": None}).astype("string")
    fleet.write_dataset(frame, tmp_path / "ds")
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == \
        ["host=__HIVE_DEFAULT_PARTITION__", "host=dc%2F01%20x"]
    back, _ = read_trace(tmp_path / "ds")
    assert back["host"].tolist()[:1] == ["dc/01 x"] and back["host"].isna().sum() == 100


def test_a_directory_that_is_not_a_dataset_is_refused(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.txt").write_text("x")
    with pytest.raises(TraceFormatError, match="not a trace dataset"):
        read_trace(tmp_path / "logs")
    with pytest.raises(TraceFormatError, match="dataset directories"):
        read_trace(ROOT / "data" / "synthetic-session.parquet", lazy=True)


def test_import_ntoslab_does_not_import_dask():
    code = ("import sys, ntoslab; assert 'dask' not in sys.modules and "
            "'distributed' not in sys.modules; print(ntoslab.fleet.replay.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "replay"


# --- analyses ------------------------------------------------------------------------------

def test_pairs_and_rare_pairs_match_single_node(client, trace, dataset):
    got = fleet.pairs(dataset)
    single = parent_child_pairs(trace)
    pd.testing.assert_frame_equal(got[["parent", "child", "count"]], single,
                                  check_dtype=False)
    # hosts per pair, counted independently from the concatenated trace's linked frame
    tree = ntoslab.analysis.ProcessTree.from_trace(trace)
    f = tree.frame
    linked = f[f["parent"] >= 0]
    names = tree.lower_names()
    hosts = pd.DataFrame({"parent": names[linked["parent"].to_numpy()],
                          "child": names[linked.index.to_numpy()],
                          "host": trace["host"].to_numpy()[linked["row"].to_numpy()]}) \
        .groupby(["parent", "child"])["host"].nunique()
    assert dict(zip(zip(got["parent"], got["child"]), got["hosts"])) == hosts.to_dict()
    rare = fleet.rare_pairs(dataset)
    assert list(rare.columns) == ["parent", "child", "count", "hosts"]   # no baseline echo
    pd.testing.assert_frame_equal(rare[["parent", "child", "count"]], rare_pairs(trace),
                                  check_dtype=False)


def test_rare_across_the_fleet_are_the_attacks(client, dataset):
    rare = fleet.rare_pairs(dataset, max_count=None, max_hosts=1)
    pairs = set(zip(rare["parent"], rare["child"]))
    # one host each: office_macro, lolbin_download, credential_dump (synthetic.ATTACKS)
    assert {("winword.exe", "wscript.exe"), ("wscript.exe", "powershell.exe"),
            ("cmd.exe", "certutil.exe"), ("certutil.exe", "p.exe"),
            ("powershell.exe", "rundll32.exe")} <= pairs
    assert (rare["hosts"] <= 1).all()
    # a baseline of benign hosts: the attack pairs are absent from it
    benign = fleet.generate_fleet(4, 300, seed=9, attacked=0)
    vs = fleet.rare_pairs(dataset, baseline=benign, max_count=0)
    assert ("certutil.exe", "p.exe") in set(zip(vs["parent"], vs["child"]))
    assert (vs["baseline_count"] == 0).all() and (vs["baseline_hosts"] == 0).all()


def test_lifetimes_processes_and_links_match_single_node(client, trace, dataset):
    got = fleet.lifetimes(dataset).compute()
    single = lifetimes(trace)
    key = ["process_key"]
    pd.testing.assert_frame_equal(
        got.drop(columns="host").sort_values(key).reset_index(drop=True),
        single.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert (got["host"] == got["process_key"].str.split(":").str[0]).all()
    procs = fleet.processes(dataset).compute()
    assert len(procs) == int((trace["operation"] == "create").sum())
    one = fleet.tree(dataset, "WS-0002")
    assert len(one) == int(((trace["host"] == "WS-0002") & (trace["operation"] == "create")).sum())
    # keys and parents recomputed per host from pids and times: the generator's true links
    relinked = fleet.link(dataset).compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(relinked[["host", "process_key", "parent_key"]],
                                  by_host_time(trace)[["host", "process_key", "parent_key"]])


# --- replay --------------------------------------------------------------------------------

def single_node(trace):
    """Each host's events (time order) through its own fresh hook, concatenated."""
    verdicts, records, maps = [], [], {m: [] for m in MAPS}
    for host, events in by_host_time(trace).groupby("host", sort=True):
        events = events.reset_index(drop=True)
        with ntoslab.emulator() as hook:
            monitor, policy = hook.load(MONITOR), hook.load(POLICY)
            hook.attach(monitor.program("ProcessMonitor"))
            hook.attach(policy.program("DenyPolicy"))
            ring = monitor.ringbuf("process_ringbuf").record()
            v = hook.replay(events, progress=False)
            for c in ["time", "image_path", "command_line", "process_key"]:
                v[c] = events[c].iloc[v["row"].to_numpy()].to_numpy()
            verdicts.append(v.assign(host=host))
            records.append(ring.to_frame("process_info_t").assign(host=host))
            maps["command_map"].append(monitor.map("command_map").to_frame().assign(host=host))
            maps["denials"].append(policy.map("denials").to_frame().assign(host=host))
    cat = lambda fs: pd.concat(fs, ignore_index=True)
    return cat(verdicts), cat(records), {m: cat(f) for m, f in maps.items()}


def same(got, expected, by):
    """Equal rows in (host, order); text columns compared as text (Dask hands object columns
    of strings back as pandas `string`, so a missing value is <NA> rather than None)."""
    got = got.sort_values(by, kind="stable").reset_index(drop=True)
    expected = expected.sort_values(by, kind="stable").reset_index(drop=True)[list(got.columns)]
    assert list(got.columns) == list(expected.columns)
    for c in got.columns:
        if any(f[c].dtype == object or isinstance(f[c].dtype, pd.StringDtype)
               for f in (got, expected)):
            got[c], expected[c] = got[c].astype("string"), expected[c].astype("string")
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


@pytest.fixture(scope="module")
def reference(trace):
    return single_node(trace)


@pytest.mark.parametrize("hosts_per_partition", [1, 5])
def test_replay_matches_single_node_per_host(client, dataset, reference, hosts_per_partition):
    run = fleet.replay(dataset, PROGRAMS, rings=RINGS, maps=MAPS,
                       hosts_per_partition=hosts_per_partition)
    verdicts, records, maps = reference
    got = run.verdicts.compute()
    assert len(got) == len(verdicts) == 12 * 300
    same(got, verdicts, ["host", "index"])
    same(run.records["process_ringbuf"].compute(), records, ["host", "event", "record"])
    for name in MAPS:
        same(run.maps[name].compute(), maps[name], ["host", "key"])
    # what the policy denied: the office_macro host's encoded PowerShell, as single-node
    denied = run.denied()
    assert len(denied) == int(verdicts["denied"].sum()) >= 1
    assert denied["command_line"].str.contains("-EncodedCommand").all()
    per_host = run.denied_per_host()
    assert per_host["events"].sum() == 3600 and per_host["denied"].sum() == len(denied)


def test_replay_of_a_pandas_fleet_without_a_cluster_is_the_same(trace, reference):
    code = f"""
import sys; sys.path.insert(0, {str(ROOT / 'tests')!r})
import pickle, pandas as pd
from ntoslab import fleet
assert fleet.current_client() is None
trace = pd.read_pickle(sys.argv[1])
run = fleet.replay(trace, [({str(MONITOR)!r}, "ProcessMonitor"), ({str(POLICY)!r}, "DenyPolicy")])
run.verdicts.compute().to_pickle(sys.argv[2])
"""
    # in a fresh process: no default client there, so the replay runs in that process
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "t.pkl"), os.path.join(tmp, "v.pkl")
        trace.to_pickle(src)
        out = subprocess.run([sys.executable, "-c", code, src, dst], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 0, out.stderr[-2000:]
        same(pd.read_pickle(dst), reference[0], ["host", "index"])


def fail_once(marker, how):
    def prepare(host, events):
        if not os.path.exists(marker):
            open(marker, "w").close()
            if how == "kill":
                os._exit(1)                 # the worker process dies mid-run
            raise RuntimeError("a transient failure")
        return events
    return prepare


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failed_partition_is_retried_and_the_result_complete(client, dataset, reference,
                                                                tmp_path, how):
    marker = str(tmp_path / "failed-once")
    run = fleet.replay(dataset, PROGRAMS, prepare=fail_once(marker, how))
    assert os.path.exists(marker)
    same(run.verdicts.compute(), reference[0], ["host", "index"])
    client.wait_for_workers(2, timeout=60)


def test_a_partition_that_keeps_failing_raises(client, dataset):
    def broken(host, events):
        raise RuntimeError(f"bad enrichment on {host}")
    with pytest.raises(RuntimeError, match="bad enrichment"):
        fleet.replay(dataset, [POLICY], prepare=broken, retries=1)


def test_wrong_names_are_errors_before_anything_runs(dataset):
    with pytest.raises(KeyError, match="no map 'nope'.*command_map"):
        fleet.replay(dataset, PROGRAMS, maps=["nope"])
    with pytest.raises(FileNotFoundError, match="missing.o"):
        fleet.replay(dataset, ["missing.o"])


# --- import --------------------------------------------------------------------------------

def test_cli_imports_files_in_parallel_into_a_dataset(client, trace, tmp_path, capsys):
    from ntoslab.cli import main
    logs = tmp_path / "logs"
    logs.mkdir()
    hosts = sorted(trace["host"].unique())
    files = []
    for i in range(0, 12, 4):        # three files of four hosts each
        part = trace[trace["host"].isin(hosts[i:i + 4])]
        files.append(logs / f"hosts-{i}.parquet")
        fleet.write_dataset  # noqa: B018 (the input is a plain trace file)
        part.to_parquet(files[-1], index=False)
    bad = pd.DataFrame({"time": [1], "operation": ["spawn"], "process_id": [5],
                        "host": ["WS-9999"]})
    bad.to_parquet(logs / "bad.parquet", index=False)
    out = tmp_path / "ds"
    assert main(["import", str(logs), "-o", f"{out}/", "--rejected",
                 str(tmp_path / "rej.csv")]) == 0
    err = capsys.readouterr().err
    assert "operation 'spawn' is not 'create' or 'delete'" in err
    assert "total: 3600 rows imported, 1 records rejected" in err and "12 host(s)" in err
    back, _ = read_trace(out)
    single = import_logs(sorted(logs.glob("*.parquet"))).frame
    pd.testing.assert_frame_equal(back, by_host_time(single)[list(back.columns)])
    assert pd.read_csv(tmp_path / "rej.csv")["reason"].str.contains("spawn").all()
    # a dataset is never written over
    assert main(["import", str(logs), "-o", str(out)]) == 1
    assert "not an empty directory" in capsys.readouterr().err


MORDOR = SHARED / "datasets" / "OTRF-Security-Datasets" / "psh_lsass_memory_dump_comsvcs.zip"


@pytest.mark.skipif(not MORDOR.exists(), reason="../shared/datasets is not beside the checkout")
def test_a_host_split_over_files_is_linked_across_them(tmp_path):
    """A Mordor log cut in two: children in the second half find parents in the first, as a
    single-node import of both files links them."""
    with zipfile.ZipFile(MORDOR) as z:
        lines = z.read(z.namelist()[0]).decode("utf-8").splitlines(keepends=True)
    half = len(lines) // 2
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("".join(lines[:half]), encoding="utf-8")
    b.write_text("".join(lines[half:]), encoding="utf-8")
    result = fleet.import_dataset([a, b], tmp_path / "ds", workers=2)
    single = import_logs([a, b]).frame
    assert result.relinked and result.rows == len(single)
    back, _ = read_trace(tmp_path / "ds")
    order = ["file", "record_number", "operation"]
    got = back.sort_values(order).reset_index(drop=True)
    want = single.sort_values(order).reset_index(drop=True)[list(back.columns)]
    pd.testing.assert_frame_equal(got, want)
    # the cut matters: importing the halves apart loses a link the whole log has
    apart = pd.concat([import_logs([a]).frame, import_logs([b]).frame])
    linked = lambda f: int(f["link"].isin(["guid", "pid"]).sum())
    assert linked(back) == linked(single) > linked(apart)
    assert len(dataset_hosts(tmp_path / "ds")) == single["host"].nunique()
