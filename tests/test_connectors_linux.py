"""Live Linux capture against this machine's kernel: real processes, real records.

Needs root (or CAP_BPF + CAP_PERFMON), libbpf.so.1 and kernel BTF; the live tests skip naming
the missing piece when the machine lacks it. The decoder tests need nothing.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from ntoslab import toolchain
from ntoslab.connectors import linux as lx
from ntoslab.connectors.linux import (
    BootClock,
    Decoder,
    LinuxHook,
    exit_code_of,
    join_argv,
    trace_frame,
)
from ntoslab.connectors.live import LiveUnavailable, linux_problems, live
from ntoslab.filetime import FILETIME_EPOCH_OFFSET
from ntoslab.trace.schema import COLUMNS, read_events

ROOT = Path(__file__).resolve().parent.parent
_problems = linux_problems()
needs_live = pytest.mark.skipif(bool(_problems), reason="; ".join(_problems) or "ok")


def filetime_now() -> int:
    return time.time_ns() // 100 + FILETIME_EPOCH_OFFSET


@pytest.fixture(scope="module")
def hook():
    if _problems:
        pytest.skip("; ".join(_problems))
    h = live()
    h.start()
    yield h
    h.close()


def _rows(frame, **match):
    sel = frame
    for k, v in match.items():
        sel = sel[sel[k] == v]
    return sel


# -- pure pieces -------------------------------------------------------------------------------

def test_join_argv_and_exit_codes():
    assert join_argv(["/bin/sh", "-c", "exit 3", "a b", "", "x'y", "plain=1,2"]) == \
        "/bin/sh -c 'exit 3' 'a b' '' 'x'\"'\"'y' plain=1,2"
    assert exit_code_of(3 << 8) == 3 and exit_code_of(255 << 8) == 255
    assert exit_code_of(9) == 137 and exit_code_of(15 | 0x80) == 143   # killed (core dumped)


def _record(kind, pid, *, flags=0, tid=None, ppid=1, cpid=0, ctid=0, status=0, uid=0,
            old_pid=None, t=0, start=0, pstart=0, filename=b"", args=b"", comm=b"x"):
    head = lx.HEADER.pack(kind, flags, pid, tid or pid, ppid, cpid, ctid, status, uid,
                          old_pid or pid, t, start, pstart, len(filename), len(args), 0, comm)
    if kind == lx.EVENT_EXIT:
        return head
    return head + filename.ljust(lx.FILENAME_BYTES, b"\0") + args


def test_decoder_pairs_reexec_dedupes_and_derives_keys(tmp_path):
    clock = BootClock(offset_ns=1_700_000_000 * 10**9)
    d = Decoder(clock, host="h", proc_root=str(tmp_path))
    ft = clock.filetime
    [parent] = d.feed(_record(1, 100, flags=lx.FLAG_CREATOR_KNOWN, ppid=1, cpid=1, ctid=1,
                              t=50, start=40, pstart=1, filename=b"/bin/sh",
                              args=b"sh\0-c\0exec /bin/true x\0"))
    assert parent.process_key == f"h:100:{ft(40)}" and parent.parent_key == f"h:1:{ft(1)}"
    assert parent.command_line == "sh -c 'exec /bin/true x'" and parent.creation_time == ft(40)
    assert parent.time == clock.utc_ns(50) and parent.token_sid == "S-1-22-1-0"
    assert parent.account_name == "root" and parent.account_domain == "Unix User"
    [again] = d.feed(_record(1, 100, ppid=1, t=60, start=40, pstart=1, old_pid=100,
                             filename=b"/bin/true", args=b"/bin/true\0x\0"))
    assert again.process_key == f"h:100:{ft(40)}/2"
    assert (again.creating_process_id, again.creating_thread_id) == (100, 100)
    [child] = d.feed(_record(1, 101, flags=lx.FLAG_CREATOR_KNOWN, ppid=100, cpid=100, ctid=100,
                             t=70, start=65, pstart=40, filename=b"/bin/echo", args=b"echo\0"))
    assert child.parent_key == again.process_key          # the parent's latest image
    [gone] = d.feed(_record(2, 100, status=4 << 8, t=80, start=40))
    assert gone.operation == "delete" and gone.exit_code == 4
    assert gone.process_key == again.process_key and gone.image_path == "/bin/true"
    assert gone.exit_time == ft(80) and gone.parent_process_id == 0
    assert d.feed(_record(2, 100, status=4 << 8, t=81, start=40)) == []   # second last-thread
    assert d.duplicates == 1
    # a fork that never exec'd: a create (creator's image) precedes its delete
    create, delete = d.feed(_record(2, 102, flags=lx.FLAG_CREATOR_KNOWN | lx.FLAG_NEVER_EXECED,
                                    ppid=101, cpid=101, ctid=101, t=90, start=85, pstart=65,
                                    status=9))
    assert create.operation == "create" and create.image_path == "/bin/echo"
    assert create.time == clock.utc_ns(85) and create.parent_key == child.process_key
    assert delete.exit_code == 137 and delete.process_key == create.process_key
    frame = trace_frame([parent, again, child, create, delete])
    assert list(frame.columns) == COLUMNS
    assert frame["parent_key"].isna().tolist()[0]          # pid 1 was never seen
    assert frame["parent_key"].tolist()[2] == again.process_key


def test_live_names_what_is_missing():
    problems = linux_problems(euid=1000, caps=0, libbpf=None, btf_path="/nonexistent/vmlinux",
                              release="4.19.0-1-amd64")
    text = "\n".join(problems)
    assert len(problems) == 4
    assert "CAP_BPF and CAP_PERFMON" in text and "setcap" in text
    assert "libbpf.so.1 not found" in text and "apt-get install libbpf1" in text
    assert "/nonexistent/vmlinux" in text and "CONFIG_DEBUG_INFO_BTF" in text
    assert "4.19.0-1-amd64" in text
    caps = (1 << 39) | (1 << 38)
    assert linux_problems(euid=1000, caps=caps) == linux_problems(euid=0)
    err = LiveUnavailable(problems)
    assert "not available here" in str(err) and err.missing == problems


# -- live ---------------------------------------------------------------------------------------

@needs_live
def test_live_returns_a_linux_hook(hook):
    assert isinstance(hook, LinuxHook) and hook.running
    assert "capturing" in repr(hook)


@needs_live
def test_hundreds_of_processes_arrive_with_parent_command_line_exit_code_and_times(hook):
    token = uuid.uuid4().hex[:10]
    n = 300
    me, my_thread = os.getpid(), threading.get_native_id()
    t0 = filetime_now()
    with hook.record() as rec:
        pids = {}
        for batch in range(0, n, 50):           # 50 alive at once, then wait
            procs = [subprocess.Popen(["/bin/sh", "-c", f"exit {i % 256}", f"ntl-{token}-{i}"])
                     for i in range(batch, min(n, batch + 50))]
            for i, p in zip(range(batch, batch + 50), procs):
                p.wait()
                pids[p.pid] = i
    t1 = filetime_now()
    frame = rec.frame()
    assert frame.attrs["dropped"] == {"ringbuf": 0, "fork_table": 0, "argv_unreadable": 0}
    assert set(frame["source"]) == {"linux-live"}
    for pid, i in pids.items():
        rows = _rows(frame, process_id=pid)
        creates, deletes = _rows(rows, operation="create"), _rows(rows, operation="delete")
        assert len(creates) == 1 and len(deletes) == 1, (pid, rows)
        c, d = creates.iloc[0], deletes.iloc[0]
        assert c.command_line == f"/bin/sh -c 'exit {i % 256}' ntl-{token}-{i}"
        assert c.image_path == "/bin/sh"
        assert c.parent_process_id == me
        assert (c.creating_process_id, c.creating_thread_id) == (me, my_thread)
        assert d.exit_code == i % 256
        assert t0 - 10_000 <= c.creation_time <= d.exit_time <= t1 + 10_000
        assert c.creation_time == d.creation_time
        assert abs(c.time - ((c.creation_time - FILETIME_EPOCH_OFFSET) * 100)) < 10**9
        assert c.process_key == d.process_key == f"{hook.host}:{pid}:{c.creation_time}"
        assert c.token_sid == f"S-1-22-1-{os.getuid()}" and c.account_name
    assert not len(_rows(frame, process_id=me))     # our own threads never looked like exits


@needs_live
def test_fork_without_exec_threads_signals_reexec_and_grandchildren(hook):
    token = uuid.uuid4().hex[:10]
    with hook.record() as rec:
        child = os.fork()
        if child == 0:
            os._exit(42)
        os.waitpid(child, 0)
        # a thread of ours starting and ending is not a process exit
        t = threading.Thread(target=time.sleep, args=(0.01,))
        t.start()
        t.join()
        threaded = subprocess.run([sys.executable, "-c",
                                   "import threading,time,os\n"
                                   "ts=[threading.Thread(target=time.sleep,args=(0.05,)) "
                                   "for _ in range(4)]\n"
                                   "[t.start() for t in ts]; os._exit(5)", token])
        killed = subprocess.run(["/bin/sh", "-c", "kill -9 $$", token])
        reexec = subprocess.Popen(["/bin/sh", "-c", f"exec /bin/echo {token} >/dev/null"])
        reexec.wait()
        grand = subprocess.Popen(["/bin/sh", "-c", f"/bin/true {token}; exit 3"])
        grand.wait()
    frame = rec.frame()
    me = os.getpid()

    rows = _rows(frame, process_id=child)
    assert rows["operation"].tolist() == ["create", "delete"]
    c, d = rows.iloc[0], rows.iloc[1]
    assert (c.parent_process_id, c.creating_process_id) == (me, me)
    assert c.image_path == os.readlink("/proc/self/exe")
    assert c.command_line == join_argv(Path("/proc/self/cmdline").read_bytes()
                                       .decode().split("\0")[:-1])
    assert d.exit_code == 42 and c.time <= d.time

    assert threaded.returncode == 5
    pid = int(_rows(frame, command_line=f"{sys.executable} -c " +
                    join_argv([threaded.args[2]]) + f" {token}").iloc[0].process_id)
    deletes = _rows(frame, process_id=pid, operation="delete")
    assert len(deletes) == 1 and deletes.iloc[0].exit_code == 5
    assert not len(_rows(frame, process_id=me, operation="delete"))

    assert killed.returncode == -9
    k = _rows(frame, command_line=f"/bin/sh -c 'kill -9 $$' {token}").iloc[0]
    assert _rows(frame, process_id=k.process_id, operation="delete").iloc[0].exit_code == 137

    rows = _rows(frame, process_id=reexec.pid)
    assert rows["operation"].tolist() == ["create", "create", "delete"]
    assert rows["image_path"].tolist() == ["/bin/sh", "/bin/echo", "/bin/echo"]
    first, second, gone = rows.iloc[0], rows.iloc[1], rows.iloc[2]
    assert second.process_key == first.process_key + "/2" == gone.process_key
    assert second.command_line == f"/bin/echo {token}"

    sh = _rows(frame, process_id=grand.pid, operation="create").iloc[0]
    true = _rows(frame, command_line=f"/bin/true {token}").iloc[0]
    assert true.parent_process_id == grand.pid and true.parent_key == sh.process_key
    assert (true.creating_process_id, true.creating_thread_id) == (grand.pid, grand.pid)
    assert _rows(frame, process_id=grand.pid, operation="delete").iloc[0].exit_code == 3


@needs_live
def test_long_command_lines_are_bounded_and_flagged(hook):
    arg = "a" * 20000
    before = hook.decoder.truncated
    with hook.record() as rec:
        subprocess.run(["/bin/true", arg])
    row = _rows(rec.frame(), image_path="/bin/true", operation="create")
    row = row[row["command_line"].str.startswith("/bin/true aaaa")].iloc[0]
    # the first 16384 bytes of "/bin/true\0aaa...": the NUL became the separating space
    assert row.command_line == "/bin/true " + "a" * (lx.ARGS_MAX_BYTES - len("/bin/true "))
    assert hook.decoder.truncated == before + 1


@needs_live
def test_capture_by_count_and_duration(hook):
    token = uuid.uuid4().hex[:8]

    def spawn():
        time.sleep(0.2)
        for i in range(10):
            subprocess.run(["/bin/true", token, str(i)])

    th = threading.Thread(target=spawn)
    th.start()
    start = time.monotonic()
    frame = hook.capture(count=6, duration=20)
    th.join()
    assert len(frame) == 6 and time.monotonic() - start < 20
    assert list(frame.columns) == COLUMNS
    start = time.monotonic()
    frame = hook.capture(duration=0.5)
    assert 0.5 <= time.monotonic() - start < 5
    with pytest.raises(ValueError, match="duration= .* or count="):
        hook.capture()


@needs_live
def test_stream_yields_live_events_and_stops_cleanly():
    h = live()
    token = uuid.uuid4().hex[:8]
    stream = h.stream(duration=20)      # registered now: nothing spawned below is missed
    subprocess.run(["/bin/true", token])
    seen = []
    for ev in stream:
        seen.append(ev)
        if ev.operation == "delete" and ev.command_line == f"/bin/true {token}":
            break
    stream.close()
    assert [e.operation for e in seen if token in e.command_line] == ["create", "delete"]
    poller = h._thread
    h.close()
    assert not poller.is_alive() and not h.running
    with pytest.raises(RuntimeError, match="closed"):
        h.start()
    assert not any(t.name == "ntoslab-linux-poller" and t is poller
                   for t in threading.enumerate())


@needs_live
def test_hook_start_close_cycles_leak_no_fds_or_links():
    def links():
        return {fd for fd in os.listdir("/proc/self/fdinfo")
                if "link_id" in _read(Path("/proc/self/fdinfo") / fd)}

    fds, links_before = len(os.listdir("/proc/self/fd")), links()
    start = time.perf_counter()
    cycles = 300
    for _ in range(cycles):
        with live(ringbuf_bytes=1 << 16) as h:
            h.start()
    elapsed = time.perf_counter() - start
    assert len(os.listdir("/proc/self/fd")) == fds
    assert links() == links_before
    assert sum(t.name == "ntoslab-linux-poller" for t in threading.enumerate()) <= 1  # the fixture's
    print(f"{cycles} LinuxHook start/close cycles (CO-RE load + 3 attaches) in {elapsed:.2f} s")


def _read(p: Path) -> str:
    try:
        return p.read_text()
    except OSError:
        return ""


@needs_live
def test_shadow_mode_runs_windows_programs_on_live_events(tmp_path):
    deny = toolchain.compile_c(ROOT / "bpf" / "examples" / "deny_policy.c",
                               tmp_path / "deny_policy.o")
    token = uuid.uuid4().hex[:8]
    with live() as h:
        obj = h.load(deny)
        h.attach(obj.program("DenyPolicy"))
        with h.record() as rec:
            bad = subprocess.run(["/bin/sh", "-c", "exit 0", "powershell", "-enc", token])
            good = subprocess.run(["/bin/true", token])
        verdicts = h.verdicts()
        frame = rec.frame()
    assert bad.returncode == 0 and good.returncode == 0   # nothing is enforced on Linux
    bad_row = verdicts[verdicts["command_line"].str.contains(f"-enc {token}")
                       & (verdicts["operation"] == "create")]
    good_row = verdicts[(verdicts["command_line"] == f"/bin/true {token}")
                        & (verdicts["operation"] == "create")]
    assert bad_row["denied"].tolist() == [True] and good_row["denied"].tolist() == [False]
    assert bad_row["status_hex"].tolist() == ["0xC0000022"]
    assert not verdicts["enforced"].any()
    denials = obj.map("denials").to_frame()
    assert len(denials) >= 1
    assert len(_rows(frame, operation="create")) >= 2


@needs_live
def test_capture_command_writes_a_trace(tmp_path):
    out = tmp_path / "trace.parquet"
    token = uuid.uuid4().hex[:8]

    def spawn():
        time.sleep(0.5)
        for i in range(3):
            subprocess.run(["/bin/true", token, str(i)])

    th = threading.Thread(target=spawn)
    th.start()
    rc = lx.capture_command(["--duration", "2", "-o", str(out)])
    th.join()
    assert rc == 0 and out.exists()
    events, errors = read_events(out)
    assert not errors
    mine = [e for e in events if token in e.command_line and e.operation == "create"]
    assert len(mine) == 3 and all(e.source == "linux-live" for e in mine)
    with pytest.raises(SystemExit):
        lx.capture_command(["-o", str(out)])        # neither --duration nor --count
