"""The emulated ntosebpfext: the ProcessHook API on our own engines.

>>> with ntoslab.emulator() as hook:                                   # doctest: +SKIP
...     obj = hook.load("bpf/process_monitor.o"); hook.attach(obj.program("ProcessMonitor"))
...     hook.inject(ntoslab.ProcessEvent.create(pid=4242, parent=1000, command_line="cmd.exe"))
"""
from __future__ import annotations

import bisect
import html
import os
import struct
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..elf import ElfObject, Program, load
from ..hooks.accounts import DEFAULT_SID, AccountTable
from ..hooks.batch import Chain, pack
from ..hooks.notify_context import (
    TEST_CONTEXT_SIZE,
    close_test_context,
    open_test_context,
)
from ..hooks.process import (
    PROCESS_HELPERS,
    ProcessContext,
    ProcessEvent,
    ProcessWindows,
    denies,
    exit_thread,
    is_missing,
    pack_event,
    status_of,
)
from ..runtime import Sandbox
from ..vm.engine import DEFAULT_BUDGET, ProgramError, VmFault
from .contract import (
    VERDICT_COLUMNS,
    ProgramRun,
    Verdict,
    error_row,
    history_frame,
    history_row,
    replay_events,
    typed_verdicts,
)
from .frames import text_dtype
from .libbpf import TestRun
from .views import EmulatedMap, MapView, PerfView, RingBufView, printk_frame

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_UPTIME_NS = 3600 * 10**9  # the emulated machine booted an hour before the first event


@dataclass
class Link:
    """An attached program (detach with `hook.detach(link)`)."""

    program: Program
    loaded: "LoadedObject"
    order: int


class LoadedObject:
    """An object loaded into the emulator: its programs, live maps, ring buffers, printk."""

    def __init__(self, obj: ElfObject, hook: "EmulatedHook", engine: str) -> None:
        self.obj = obj
        self.path = obj.path
        self.label = Path(obj.path).name if obj.path else "<object>"
        self.hook = hook
        self.current: ProcessContext | None = None
        self.sandbox = _ProcessSandbox(obj, self, engine=engine, ncpus=hook.ncpus, seed=hook.seed,
                                       true_lru=hook.true_lru)
        self.sandbox.state.trace_session = hook.trace_session

    @property
    def programs(self) -> list[Program]:
        return self.obj.programs

    def program(self, name: str) -> Program:
        return self.obj.program(name)

    def map(self, name: str) -> MapView:
        """A live map with lookup/update/delete/iteration and `to_frame()`."""
        m = self.sandbox.maps[self.obj.map(name).name]
        backend = EmulatedMap(m)
        return MapView(backend, m.spec, self.obj.btf, m.env.ncpus if backend.split else None)

    def ringbuf(self, name: str) -> RingBufView:
        """A ring buffer's records, decoded by BTF type name or a given layout."""
        m = self.sandbox.maps[self.obj.map(name).name]
        return RingBufView(m, self.obj.btf, self.hook._recorders)

    def perf(self, name: str) -> PerfView:
        """A perf event array's records (per CPU), decoded by BTF type name or a layout."""
        return PerfView(self.sandbox.maps[self.obj.map(name).name], self.obj.btf)

    @property
    def maps(self) -> dict[str, MapView]:
        return {name: self.map(name) for name in self.obj.maps}

    def printk(self) -> "pd.DataFrame":
        return printk_frame(self.sandbox.state.printk)

    def test_run(self, program: str | Program | None = None, *, ctx_in: bytes | None,
                 data_in: bytes | None = None, ctx_out_size: int = TEST_CONTEXT_SIZE,
                 data_out_size: int = 1 << 20, repeat: int = 1) -> TestRun:
        """`bpf_prog_test_run_opts` as ntosebpfext serves it for the process type: ctx_in is
        the 296-byte process_notify_context_t, data_in its strings back to back; the result
        carries r0, ctx_out and data_out as the extension returns them (see
        ntoslab.hooks.notify_context for every rule). Refused input raises TestRunRefused
        (EINVAL); a program fault raises its VmFault. Maps and ring buffers change as for an
        event (recorded ring records carry the next event's index); no verdict is recorded (a
        test run invokes the program, not the hook).

        >>> run = obj.test_run(ctx_in=packed.ctx, data_in=packed.data)   # doctest: +SKIP
        >>> run.status, unpack_test_run_context(run.ctx_out)["token_sid"]   # doctest: +SKIP
        """
        import time
        prog = self.program(program) if isinstance(program, str) else program or \
            next(p for p in self.programs if p.type == "process")
        opened = open_test_context(ctx_in, data_in)
        strings = opened.strings
        cmd, image = strings["command_line"], strings["image_file_name"]
        accounts = self.hook.accounts
        if opened.lookup_done:   # the caller's strings; an empty one failed an earlier lookup
            name, domain = strings["account_name"], strings["account_domain"]
            account = (name, domain) if name and domain else None
        else:
            found = accounts.resolve(opened.token_sid)
            account = None if found is None else \
                (found[0].encode("utf-16-le"), found[1].encode("utf-16-le"))
        box = self.sandbox
        base = box.windows.command.base if cmd else 0
        raw = struct.pack("<QQ", base, base + len(cmd)) + opened.md[16:]
        event = opened.event()
        packed = (raw, cmd, image, *(account or (None, None)))
        ctx = box.windows.fill(event, packed)
        box.windows.event.account_used = 0
        self.current = ctx
        start = time.perf_counter_ns()
        try:
            for _ in range(max(repeat, 1)):
                result = box.run_at(prog, ctx.address, self.hook.budget)
        finally:
            self.current = None
            for recorder in self.hook._recorders:   # as after an event: the next one's index
                recorder.drain(self.hook._events)
        elapsed = (time.perf_counter_ns() - start) // max(repeat, 1)
        resolved = not opened.lookup_done and bool(box.windows.event.account_used)
        if resolved and account is None and opened.token_sid:
            accounts.unresolved[opened.token_sid] += 1
        ctx_out, data_out = close_test_context(opened, account, resolved, ctx_out_size,
                                               data_out_size)
        return TestRun(retval=result.r0 & 0xFFFF_FFFF, duration_ns=elapsed, data_out=data_out,
                       ctx_out=ctx_out)

    def __repr__(self) -> str:
        return f"<LoadedObject {self.path}: {[p.name for p in self.programs]}>"

    def _repr_html_(self) -> str:
        return self.obj._repr_html_()


class _ProcessSandbox(Sandbox):
    """A sandbox for process programs: the context and command-line regions first, then the
    maps; helpers 65536-65538 (native) answer for the event written into those regions."""

    def __init__(self, obj: ElfObject, owner: LoadedObject, **kw) -> None:
        self.owner = owner
        super().__init__(obj, native_helpers=PROCESS_HELPERS, **kw)
        for m in self.maps.values():
            if hasattr(m, "passive"):
                m.passive = True  # process callbacks run at PASSIVE_LEVEL
        self.machine.native_run().context = self.windows.event_address

    def map_fixed_regions(self) -> None:
        self.windows = ProcessWindows(self.memory)


class EmulatedHook:
    """The ProcessHook API, emulated: load, attach, inject, replay, inspect.

    `ncpus` is the emulated machine's CPU count (per-CPU maps, LRU partitions; an event's `cpu`
    picks the current one); `true_lru=True` makes every LRU map the loaded objects create evict
    the exact least recently used key, as Linux does, instead of following eBPF for Windows'
    hot/cold generations (ntoslab/runtime/maps/lru_hash.py)."""

    kind = "emulator"

    def __init__(self, engine: str = "jit", *, ncpus: int = 1, seed: int | None = 0,
                 budget: int = DEFAULT_BUDGET, boot_time: int | None = None,
                 trace_session: bool = True,
                 accounts: "Mapping[str, Any] | AccountTable | None" = None,
                 default_sid: str | None = DEFAULT_SID, true_lru: bool = False) -> None:
        self.engine = engine
        self.trace_session = trace_session
        self.accounts = AccountTable(accounts, default_sid=default_sid)
        self._unresolved_told: set[str] = set()
        self.ncpus = ncpus
        self.true_lru = true_lru
        self.seed = seed
        self.budget = budget
        self.boot_time = boot_time
        self.objects: list[LoadedObject] = []
        self.links: list[Link] = []
        self._owner: dict[int, LoadedObject] = {}
        self._events = 0
        self._last_time = 0
        self.subscribers: list = []
        self.history = History()
        self._recorders: list = []
        self._chain: Chain | None = None
        self._chain_key: tuple | None = None
        self._links_version = 0
        self._replaying = False
        self._fault_warned: set[str] = set()
        # [name, loaded object, ring map, drops seen, told during the current run of drops]
        self._rings: list[list] = []

    # -- objects and programs -----------------------------------------------------------------
    def load(self, path: str | os.PathLike | ElfObject, *, engine: str | None = None) -> LoadedObject:
        """Load an object (a path or an already loaded ElfObject); its maps are created empty."""
        obj = path if isinstance(path, ElfObject) else load(path)
        loaded = LoadedObject(obj, self, engine or self.engine)
        for p in obj.programs:  # as on Windows, the verifier refuses the object at load
            if p.type == "process":
                try:
                    loaded.sandbox.engine.prepare(p, loaded.sandbox.machine)
                except ProgramError as exc:
                    raise ProgramError(f"{obj.path}: cannot load {p.name}: {exc}") from None
        for p in obj.programs:
            self._owner[id(p)] = loaded
        self.objects.append(loaded)
        for name in obj.maps:          # ring buffers, watched for drops by _notice
            m = loaded.sandbox.maps.get(obj.map(name).name)
            if hasattr(m, "records") and isinstance(getattr(m, "dropped", None), int):
                self._rings.append([name, loaded, m, 0, False])
        return loaded

    def attach(self, program: Program | LoadedObject, name: str | None = None) -> Link:
        """Attach a `process` program (after the ones already attached)."""
        if isinstance(program, LoadedObject):
            program = program.program(name) if name else \
                next(p for p in program.programs if p.type == "process")
        loaded = self._owner.get(id(program))
        if loaded is None:
            raise ValueError(f"program {program.name} was not loaded by this hook: "
                             f"use hook.load(...) first")
        if program.type != "process":
            raise ValueError(f"program {program.name} is in section {program.section!r}, which "
                             f"is not a process program")
        try:  # reject at attach what can never run (unknown helpers, bad opcodes)
            loaded.sandbox.engine.prepare(program, loaded.sandbox.machine)
        except ProgramError as exc:
            raise ProgramError(f"cannot attach {program.name}: {exc}") from None
        link = Link(program, loaded, len(self.links))
        self.links.append(link)
        self._links_version += 1
        return link

    def detach(self, link: Link) -> None:
        self.links.remove(link)
        self._links_version += 1

    # -- events -------------------------------------------------------------------------------
    def _clock(self, event: ProcessEvent) -> int:
        now = event.time or (self._last_time + 1_000_000 if self._last_time else 0)
        if self.boot_time is None:
            self.boot_time = (now or DEFAULT_UPTIME_NS) - DEFAULT_UPTIME_NS
        self._last_time = max(self._last_time, now)
        return now

    def inject(self, event: ProcessEvent | dict) -> Verdict:
        """Run every attached program on one event, in attach order; return the verdict."""
        if not isinstance(event, ProcessEvent):
            event = ProcessEvent.from_row(event)
        if event.token_sid and event.account_name is not None:
            self.accounts.learn(event.token_sid, event.account_name, event.account_domain)
        packed = pack_event(event, accounts=self.accounts)   # a bad event is refused here
        index = self._events
        self._events += 1
        verdict = Verdict(index, event.operation, event.process_id, event=event)
        chain = self._native_chain()
        if chain is not None:
            self._inject_native(chain, event, packed, verdict)
        else:
            self._inject_each(event, packed, verdict)
        self.history.append(verdict)
        for callback in self.subscribers:
            callback(verdict)
        if not self._replaying:
            self._notice([r.fault for r in verdict.faults if r.fault])
            if self.accounts.unresolved and len(self.accounts.unresolved) > \
                    len(self._unresolved_told):
                self._notice_accounts()
        return verdict

    def _notice_accounts(self, before: "Counter | None" = None) -> None:
        """Warn about SIDs no account source knows (the account helpers returned -2 for them):
        after a replay, the ones it met; for injected events, each new one once."""
        table = self.accounts
        if before is not None:
            new = table.unresolved - before
        else:
            new = Counter({s: n for s, n in table.unresolved.items()
                           if s not in self._unresolved_told})
        if not new:
            return
        self._unresolved_told.update(new)
        shown = ", ".join(f"{s} ({n:,})" for s, n in new.most_common(5))
        more = f" and {len(new) - 5} more" if len(new) > 5 else ""
        warnings.warn(AccountsUnresolved(
            f"{sum(new.values()):,} create(s) carry a SID no account source knows: {shown}"
            f"{more}. The account helpers return -2 (-ENOENT) for them, as Windows does for a "
            f"SID its LSA cannot resolve. Name them with emulator(accounts={{SID: "
            f"'DOMAIN\\\\name'}}) or a domain SID -> 'DOMAIN'; hook.accounts lists what is "
            f"known."), stacklevel=3)

    # -- what must not go unnoticed ---------------------------------------------------------------
    def _notice(self, faults: Iterable[str], replay: bool = False) -> None:
        """Warn, once per program, that it faulted (an allowed-looking event that was not a
        decision), and when a ring buffer drops records: at the end of a replay, with its count;
        for injected events, when drops start (a ring that stays full drops on every event, and
        says so once until an event goes through without a drop)."""
        for message in faults:
            program = message.split(":", 1)[0]
            if program not in self._fault_warned:
                self._fault_warned.add(program)
                warnings.warn(ProgramFaulted(
                    f"{message}\n(the event was allowed: Windows keeps status 0 when a program "
                    f"fails; the verdict row says faulted=True; later faults of {program} are "
                    f"only in the rows)"), stacklevel=3)
        for ring in self._rings:
            name, obj, m, seen, told = ring
            dropped = m.dropped
            ring[3], ring[4] = dropped, dropped > seen and not replay
            if dropped > seen and (replay or not told):
                warnings.warn(RecordsDropped(
                    f"ring buffer {name} ({Path(obj.path).name}): {dropped - seen:,} record(s) "
                    f"dropped (full: nothing reads it; {len(m.records()):,} waiting, "
                    f"{dropped:,} dropped in all). Keep every record with "
                    f"`ring = obj.ringbuf({name!r}).record()` before injecting, subscribe "
                    f"a reader, or give the map a larger max_entries."), stacklevel=3)

    def _native_chain(self) -> Chain | None:
        """The attached programs as one native chain, while every one has native code."""
        key = (self._links_version, self.budget,
               tuple(id(link.loaded.sandbox.engine) for link in self.links))
        if self._chain_key != key:
            if self._chain is not None:
                self._chain.release()
            links = [(link.program, link.loaded.sandbox) for link in self.links]
            self._chain = Chain(links, self.budget, self.ncpus) if Chain.possible(links) \
                else None
            self._chain_key = key
        return self._chain

    def _inject_native(self, chain: Chain, event: ProcessEvent, packed, verdict) -> None:
        clock = [self._last_time, self.boot_time]
        status, decided, _, runs = chain.inject(event, packed, clock, self._recorders,
                                                verdict.index)
        self._last_time, self.boot_time = clock
        for j, st, count, fault in runs:
            link = self.links[j]
            verdict.runs.append(ProgramRun(link.loaded.label, link.program.name, st, count,
                                           fault))
            verdict.instructions += count
        if decided >= 0:
            verdict.status, verdict.denied = status, True
            verdict.decided_by = self.links[decided].program.name

    def _inject_each(self, event: ProcessEvent, packed, verdict) -> None:
        """The chain in Python, program by program (engines without native code)."""
        now = self._clock(event)
        if event.is_create:
            pid_tgid = (event.creating_process_id << 32) | (event.creating_thread_id & 0xFFFFFFFF)
        else:
            pid_tgid = (event.process_id << 32) | exit_thread(event.process_id,
                                                               event.exit_thread_id)
        for link in list(self.links):
            box = link.loaded.sandbox
            v = box.env.values
            v.pid_tgid = pid_tgid & 0xFFFF_FFFF_FFFF_FFFF
            v.logon_id = event.logon_id & 0xFFFF_FFFF_FFFF_FFFF
            v.is_admin = -1 if event.is_admin is None else event.is_admin
            v.process_start_key = event.process_start_key & 0xFFFF_FFFF_FFFF_FFFF
            v.thread_create_time = event.thread_create_time & 0xFFFF_FFFF_FFFF_FFFF
            v.boot_ns = v.mono_ns = max(0, now - (self.boot_time or 0))
            v.now = now
            v.cpu = (event.cpu or 0) % max(1, self.ncpus)
            ctx = box.windows.fill(event, packed)
            link.loaded.current = ctx
            try:
                result = box.run_at(link.program, ctx.address, self.budget)
                status = status_of(result.r0)
                run = ProgramRun(link.loaded.label, link.program.name, status,
                                 result.instructions)
            except VmFault as fault:
                # Windows logs a failed invocation and keeps status 0 (allow)
                status = 0
                run = ProgramRun(link.loaded.label, link.program.name, None,
                                 fault.instructions, str(fault))
            finally:
                link.loaded.current = None
            verdict.runs.append(run)
            verdict.instructions += run.instructions
            if event.is_create and denies(status):
                verdict.status, verdict.denied = status, True
                verdict.decided_by = link.program.name
                break
        for recorder in self._recorders:
            recorder.drain(verdict.index)

    def verdicts(self) -> "pd.DataFrame":
        """One row per event injected so far (same columns as the live hooks' `verdicts()`;
        `enforced` is False: an emulated deny stops nothing real)."""
        return history_frame(history_row(item) if isinstance(item, Verdict) else item.frame()
                             for item in self.history.parts)

    def subscribe(self, callback) -> None:
        """Call `callback(verdict)` after every event (e.g. a ring-buffer reader's poll)."""
        self.subscribers.append(callback)

    def replay(self, events: "pd.DataFrame | Iterable[ProcessEvent | dict]",
               progress: bool | None = None) -> "pd.DataFrame":
        """Inject every event (a trace DataFrame or an iterable); a verdict row per event.

        Rows that cannot become events are reported in the `error` column, never dropped. On
        the JIT, a DataFrame replays natively in chunks (`BATCH_CHUNK` events; the progress bar
        advances per chunk) with the same verdicts, maps and records as injecting its events one
        by one; Python subscribers (`subscribe`) need a call per event, so with any subscribed
        the events are injected one by one.
        """
        import pandas as pd

        if isinstance(events, pd.DataFrame):
            _check_columns(events)
        links = [(link.program, link.loaded.sandbox) for link in self.links]
        if isinstance(events, pd.DataFrame):
            self.accounts.learn_frame(events)
        before = Counter(self.accounts.unresolved)
        self._replaying = True
        try:
            if isinstance(events, pd.DataFrame) and not self.subscribers and \
                    Chain.possible(links):
                out = self._replay_native(events, links, progress)
            else:
                out = self._replay_events(events, progress)
        finally:
            self._replaying = False
        if len(out) and "faults" in out.columns:
            faults = out["faults"].dropna()
            self._notice(faults.drop_duplicates().tolist()[:100], replay=True)
        else:
            self._notice([], replay=True)
        self._notice_accounts(before)
        return out

    def _replay_events(self, events, progress: bool | None) -> "pd.DataFrame":
        return replay_events(self.inject, events, progress)

    def _replay_native(self, frame: "pd.DataFrame", links: list,
                       progress: bool | None) -> "pd.DataFrame":
        import pandas as pd
        from tqdm.auto import tqdm

        chain = Chain(links, self.budget, self.ncpus)
        names = [p.name for p, _ in links]
        clock = [self._last_time, self.boot_time]
        show = progress if progress is not None else len(frame) >= 2000
        parts = []
        with tqdm(total=len(frame), disable=not show, desc="replay", unit="event") as bar:
            for start in range(0, len(frame), BATCH_CHUNK):
                chunk = frame.iloc[start:start + BATCH_CHUNK]
                packed = pack(chunk, start, self.ncpus, self.accounts)
                result = chain.run(packed, clock, self._recorders, self._events)
                parts.append(self._native_rows(chunk, start, packed, result, names))
                bar.update(len(chunk))
        self._last_time, self.boot_time = clock
        if not parts:
            return typed_verdicts(pd.DataFrame(columns=VERDICT_COLUMNS))
        return typed_verdicts(_concat(parts))

    def _native_rows(self, chunk, start: int, packed, result, names: list[str]):
        """The verdict rows of one chunk (and its history), built column-wise with the dtypes
        `verdict_frame` gives `_replay_events`' records."""
        import numpy as np
        import pandas as pd

        n = packed.n
        index = np.arange(self._events, self._events + n, dtype=np.int64)
        self._events += n
        status = result.status.astype(np.int64)
        decided = result.decided_by
        events = {
            "index": index,
            "operation": _text_column(["delete", "create"], packed.is_create.astype(np.int64)),
            "process_id": packed.process_id.astype(np.int64),
            "status": status,
            "status_hex": _hex_column(status),
            "denied": decided >= 0,
            "decided_by": _text_column(names, decided),
            "instructions": result.instructions.astype(np.int64),
            "programs_run": result.programs_run.astype(np.int64),
            "faults": _faults_column(n, result.faults),
            "faulted": _faulted(n, result.faults),
        }
        self.history.add_chunk(_HistoryChunk(events, packed))
        if not packed.errors:      # columns, joined with the other chunks' by _concat
            return dict(events, error=_no_text(n),
                        row=packed.rows.astype(np.int64),
                        creator_inferred=packed.creator_inferred)
        # rows that are not events: the frame pandas infers from records, as _replay_events gives
        out: list = [None] * len(chunk)
        plain = {c: (v.to_numpy(dtype=object, na_value=None) if hasattr(v, "to_numpy") else v)
                 for c, v in events.items()}
        for k in range(n):
            rec = {c: (plain[c][k].item() if hasattr(plain[c][k], "item") else plain[c][k])
                   for c in plain}
            rec.update(error=None, row=int(packed.rows[k]),
                       creator_inferred=bool(packed.creator_inferred[k]))
            out[int(packed.rows[k]) - start] = rec
        ops = chunk["operation"].tolist() if "operation" in chunk.columns else [None] * len(chunk)
        for row, message in packed.errors.items():
            out[row - start] = error_row(ops[row - start], message, row)
        return pd.DataFrame(out)

    def printk(self) -> "pd.DataFrame":
        """Every object's bpf_printk output, in order."""
        import pandas as pd
        frames = [o.printk().assign(object=Path(o.path).name) for o in self.objects]
        return pd.concat(frames, ignore_index=True) if frames else printk_frame([])

    def close(self) -> None:
        if self._chain is not None:
            self._chain.release()
        self._chain, self._chain_key = None, None
        self.links.clear()
        self.objects.clear()
        self._rings.clear()
        self._owner.clear()

    def __enter__(self) -> "EmulatedHook":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<EmulatedHook engine={self.engine} objects={len(self.objects)} "
                f"attached={[l.program.name for l in self.links]}>")

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(l.program.name)} "
                        f"<small>({html.escape(Path(l.loaded.path).name)})</small></li>"
                        for l in self.links) or "<li>nothing attached</li>"
        return (f"<div><b>Emulated ntosebpfext</b> (engine {self.engine}, {self.ncpus} CPU)"
                f"<ol>{items}</ol></div>")


class ProgramFaulted(UserWarning):
    """A program faulted on an event (shown once per program; every row says faulted)."""


class RecordsDropped(UserWarning):
    """A ring buffer dropped records because nothing read it."""


class AccountsUnresolved(UserWarning):
    """Creates carried SIDs no account source knows (the account helpers returned -2)."""


REQUIRED_COLUMNS = ("operation", "process_id")
# columns whose absence makes every event carry an empty value a policy would read
EXPECTED_COLUMNS = ("image_path", "command_line", "parent_process_id")   # (no time: a clock
# that advances 1 ms per event stands in, as for injected events)


def _check_columns(frame: "pd.DataFrame") -> None:
    """A missing required column is one error; missing expected ones are one warning."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"replay: the trace has no {', '.join(missing)} column"
                         f"{'s' if len(missing) > 1 else ''} (required; it has: "
                         f"{', '.join(map(str, frame.columns[:20]))})")
    absent = [c for c in EXPECTED_COLUMNS if c not in frame.columns]
    if absent and len(frame):
        warnings.warn(f"replay: the trace has no {', '.join(absent)} column"
                      f"{'s' if len(absent) > 1 else ''}: every event replays with "
                      f"{'it' if len(absent) == 1 else 'them'} empty (0 or \"\"), which the "
                      f"programs will see", UserWarning, stacklevel=3)


def _concat(parts: list) -> "pd.DataFrame":
    """One frame from the chunks' verdict rows (column dicts, or frames for chunks with error
    rows): joined column by column when every chunk has the same dtypes, else by pd.concat
    (which decides the dtypes as for one frame of all the records)."""
    import numpy as np
    import pandas as pd

    def dtypes(part):
        return [str(getattr(v, "dtype", None)) for v in part.values()]
    if all(isinstance(p, dict) for p in parts) and \
            all(dtypes(p) == dtypes(parts[0]) and p.keys() == parts[0].keys() for p in parts):
        columns = {}
        for name, first in parts[0].items():
            values = [p[name] for p in parts]
            columns[name] = np.concatenate(values) if isinstance(first, np.ndarray) else \
                type(first)._concat_same_type(values)
        return pd.DataFrame(columns)
    frames = [pd.DataFrame(p) if isinstance(p, dict) else p for p in parts]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _text_column(labels: list[str], codes):
    """Strings labels[code] (code -1: missing) in the hooks' text dtype."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    if not (codes >= 0).any():
        return _no_text(len(codes))
    mask = codes < 0
    arr = pa.DictionaryArray.from_arrays(pa.array(np.where(mask, 0, codes).astype(np.int32),
                                                  mask=mask), pa.array(labels, pa.large_string()))
    return pd.array(arr.cast(pa.large_string()), dtype=_STR)


def _no_text(n: int):
    """`n` missing values in the hooks' text dtype."""
    import pandas as pd
    import pyarrow as pa
    return pd.array(pa.nulls(n, pa.large_string()), dtype=_STR)


def _hex_column(status):
    import numpy as np
    values, inverse = np.unique(status, return_inverse=True)
    return _text_column([f"0x{v & 0xFFFF_FFFF:08X}" for v in values.tolist()], inverse)


def _faulted(n: int, faults: dict):
    import numpy as np
    out = np.zeros(n, dtype=bool)
    out[list(faults)] = True
    return out


def _faults_column(n: int, faults: dict):
    import numpy as np
    if not faults:
        return _no_text(n)
    texts = ["; ".join(message for _, message in items) for items in faults.values()]
    codes = np.full(n, -1, dtype=np.int64)
    codes[list(faults)] = np.arange(len(texts))
    return _text_column(texts, codes)


class History(Sequence):
    """Every verdict of a hook, in order: `len()` counts events, `history[i]` is a Verdict.

    Events injected one by one keep their Verdict (with its per-program runs and the event);
    a batch replay keeps its columns, and its Verdicts are made on access with the hook's
    decision (index, operation, pid, status, deciding program, instructions) but no per-program
    runs or event: the replay's frame and `hook.verdicts()` have every column of those."""

    def __init__(self) -> None:
        self.parts: list = []            # Verdict, or _HistoryChunk for a batch
        self._ends: list[int] = []       # events up to and including each part
        self._n = 0

    def append(self, verdict: Verdict) -> None:
        self.parts.append(verdict)
        self._n += 1
        self._ends.append(self._n)

    def add_chunk(self, chunk: "_HistoryChunk") -> None:
        if chunk.n:
            self.parts.append(chunk)
            self._n += chunk.n
            self._ends.append(self._n)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"history has {self._n} events, no event {i}")
        p = bisect.bisect_right(self._ends, i)
        part = self.parts[p]
        return part if isinstance(part, Verdict) else \
            part.verdict(i - (self._ends[p] - part.n))

    def clear(self) -> None:
        self.parts.clear()
        self._ends.clear()
        self._n = 0

    def __repr__(self) -> str:
        return f"<History {self._n} events>"


class _HistoryChunk:
    """Verdict rows of a batch, turned into a DataFrame only when `verdicts()` asks."""

    def __init__(self, events: dict, packed) -> None:
        self.events = events
        self.packed = packed
        self.n = len(events["index"])

    def verdict(self, k: int) -> Verdict:
        e = self.events
        decided = e["decided_by"][k]
        return Verdict(int(e["index"][k]), str(e["operation"][k]), int(e["process_id"][k]),
                       int(e["status"][k]), bool(e["denied"][k]),
                       None if is_missing(decided) else str(decided),
                       int(e["instructions"][k]))

    def frame(self):
        import pandas as pd
        p = self.packed
        import pyarrow.compute as pc
        # a delete has no image or command line: "" as its ProcessEvent says
        text = {name: pd.array(pc.fill_null(p.text[name], ""), dtype=_STR)
                for name in ("image_path", "command_line")}
        key = p.text["process_key"]
        text["process_key"] = pd.array(key, dtype=_STR) if key.null_count < len(key) else \
            [None] * len(key)
        return pd.DataFrame(dict(self.events, time=p.time, **text, enforced=False))


_STR = text_dtype()
BATCH_CHUNK = 1 << 16

def emulator(engine: str = "jit", **kw: Any) -> EmulatedHook:
    """A new emulated process hook. Programs run on the JIT (native code, every access checked);
    `engine="interpreter"` runs them on the reference interpreter (the step debugger's engine).
    Options: `true_lru=True` for exact-LRU eviction in LRU maps (the default follows eBPF for
    Windows' generations), `ncpus` (per-CPU maps, `cpu` of events), `seed` (get_prandom_u32), `budget`
    (instructions per run), `boot_time` (UTC ns; default: derived from the first event),
    `trace_session` (False: no ETW session listens, trace_printk returns 0 and records
    nothing), `accounts` (SID -> "DOMAIN\\name" or (name, domain), domain SID -> "DOMAIN": what
    the account helpers resolve beyond the well-known SIDs and the trace's own accounts),
    `default_sid` (the token SID of creates that carry none; None keeps them without one).

    >>> hook = emulator()
    >>> hook.links
    []
    """
    return EmulatedHook(engine, **kw)
