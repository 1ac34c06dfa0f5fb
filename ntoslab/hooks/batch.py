"""Events packed column-wise for the native chain (ntoslab/native/process.c): batch replay.

`pack(frame)` turns a trace DataFrame into what the native loop reads: every event's 144-byte
`process_md_t` in one array and all its UTF-16 strings in one buffer, plus the per-event answers
of the "current" helpers. Typed trace columns (the trace schema's) are converted with numpy; a
row whose values need interpreting (strings in number columns, ISO times, missing required
fields...) goes through `ProcessEvent.from_row` and `pack_event` exactly as `inject()` would, so
a batch is packed exactly as its events injected one by one, and a row that cannot become an
event is reported with `from_row`'s message, never dropped.

>>> packed = pack(trace_frame)                   # doctest: +SKIP
>>> packed.n, len(packed.errors)                 # doctest: +SKIP
(100000, 0)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .process import (COMMAND_WINDOW_BASE, CONTEXT_SIZE, PROCESS_OPERATION_CREATE,
                      PROCESS_OPERATION_DELETE, TOKEN_SID_MAX_SIZE, EventError, ProcessEvent,
                      account_strings, pack_event, sid_to_bytes)

CONTEXT_DTYPE = np.dtype({
    "names": ["command_start", "command_end", "process_id", "parent_process_id",
              "creating_process_id", "creating_thread_id", "creation_time", "exit_time",
              "process_exit_code", "operation", "token_sid_size", "token_sid"],
    "formats": ["<u8"] * 8 + ["<u4", "u1", "<u4", f"V{TOKEN_SID_MAX_SIZE}"],
    "offsets": [0, 8, 16, 24, 32, 40, 48, 56, 64, 68, 72, 76],
    "itemsize": CONTEXT_SIZE})
assert CONTEXT_DTYPE.itemsize == CONTEXT_SIZE

INT_COLUMNS = ("process_id", "parent_process_id", "creating_process_id", "creating_thread_id",
               "creation_time", "exit_time", "exit_code", "cpu", "logon_id", "is_admin",
               "process_start_key", "thread_create_time")
TEXT_COLUMNS = ("image_path", "command_line", "token_sid", "account_name", "account_domain",
                "process_key")
MAX_COMMAND = 0xFFFF


@dataclass
class Packed:
    """A chunk of events ready for `ntl_batch_run` (arrays by event) and what the verdict frame
    needs of them. `rows` are the source rows of the events; `errors` the rows that could not
    become events ({row: message})."""

    n: int
    rows: np.ndarray
    ctx: np.ndarray
    strings: np.ndarray
    cmd_off: np.ndarray
    cmd_len: np.ndarray
    img_off: np.ndarray
    img_len: np.ndarray
    name_off: np.ndarray
    name_len: np.ndarray
    dom_off: np.ndarray
    dom_len: np.ndarray
    is_create: np.ndarray
    time: np.ndarray
    pid_tgid: np.ndarray
    logon_id: np.ndarray
    start_key: np.ndarray
    thread_time: np.ndarray
    is_admin: np.ndarray
    cpu: np.ndarray
    process_id: np.ndarray
    creator_inferred: np.ndarray
    text: dict[str, np.ndarray] = field(default_factory=dict)   # image_path, command_line...
    errors: dict[int, str] = field(default_factory=dict)


def _missing(col: pd.Series) -> np.ndarray:
    return col.isna().to_numpy()


def _ints(frame: pd.DataFrame, name: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int64 values with 0 where missing, missing mask, rows needing from_row)."""
    zeros = np.zeros(n, dtype=np.int64)
    if name not in frame.columns:
        return zeros, np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    col = frame[name]
    missing = _missing(col)
    dt = col.dtype
    if pd.api.types.is_bool_dtype(dt):
        slow = np.zeros(n, dtype=bool)
        values = col.fillna(False).to_numpy(dtype=np.int64) if missing.any() else \
            col.to_numpy(dtype=np.int64)
        return values, missing, slow
    if pd.api.types.is_integer_dtype(dt):
        values = col.to_numpy(dtype=np.int64, na_value=0) if missing.any() else \
            col.to_numpy(dtype=np.int64)
        return values, missing, np.zeros(n, dtype=bool)
    if pd.api.types.is_float_dtype(dt):
        raw = col.to_numpy(dtype=np.float64, na_value=np.nan)
        ok = np.isfinite(raw) & (raw == np.floor(raw)) & (np.abs(raw) < 2**63)
        slow = ~missing & ~ok
        values = np.where(ok, raw, 0).astype(np.int64)
        return values, missing, slow
    return zeros, missing, ~missing          # text, times, objects: the careful path


def _texts(frame: pd.DataFrame, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(object array of str or None, rows needing from_row: values that are not text)."""
    if name not in frame.columns:
        return np.full(n, None, dtype=object), np.zeros(n, dtype=bool)
    col = frame[name]
    missing = _missing(col)
    values = col.astype(object).to_numpy().copy()
    values[missing] = None
    if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object:
        return values, np.zeros(n, dtype=bool)
    kinds = np.fromiter((v is None or type(v) is str for v in values), bool, n)
    return values, ~kinds


def _encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """Factorized UTF-16LE encodings: (codes per value, -1 for None; lengths per code; the
    encoded uniques)."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    encoded = [u.encode("utf-16-le") for u in uniques]
    lengths = np.fromiter((len(e) for e in encoded), np.int64, len(encoded))
    return codes, lengths, encoded


class _Strings:
    """The one UTF-16 buffer of a chunk."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add_uniques(self, encoded: list[bytes]) -> np.ndarray:
        """Append each unique once; their offsets in the buffer."""
        offs = np.empty(len(encoded), dtype=np.int64)
        for i, e in enumerate(encoded):
            offs[i] = self.size
            self.parts.append(e)
            self.size += len(e)
        return offs

    def add(self, data: bytes) -> int:
        off = self.size
        self.parts.append(data)
        self.size += len(data)
        return off

    def array(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.parts) or b"\0", dtype=np.uint8).copy()


def pack(frame: pd.DataFrame, row0: int = 0, ncpus: int = 1) -> Packed:
    """Pack the rows of `frame` (row numbers in messages start at `row0`) for a hook of
    `ncpus` CPUs."""
    n = len(frame)
    slow = np.zeros(n, dtype=bool)
    errors: dict[int, str] = {}
    # -- operation (required) ---------------------------------------------------------------------
    if "operation" in frame.columns:
        op_col = frame["operation"]
        op_missing = _missing(op_col)
        op_text = op_col.astype(object).to_numpy()
        is_str = np.fromiter((type(v) is str for v in op_text), bool, n)
        norm = np.array([v.strip().lower() if type(v) is str else "" for v in op_text],
                        dtype=object)
        is_create = norm == "create"
        is_delete = norm == "delete"
        slow |= ~(is_create | is_delete) | ~is_str | op_missing
    else:
        is_create = np.zeros(n, dtype=bool)
        slow[:] = True
    ints = {}
    for name in INT_COLUMNS:
        values, missing, bad = _ints(frame, name, n)
        ints[name] = (values, missing)
        slow |= bad
    slow |= ints["process_id"][1]                       # required
    texts = {}
    for name in TEXT_COLUMNS:
        values, bad = _texts(frame, name, n)
        texts[name] = values
        slow |= bad
    # time: datetime64 -> ns; integers as ns; anything else the careful way
    time = np.zeros(n, dtype=np.int64)
    if "time" in frame.columns:
        col = frame["time"]
        tmiss = _missing(col)
        if pd.api.types.is_datetime64_any_dtype(col.dtype):
            t = col.dt.tz_convert("UTC") if getattr(col.dt, "tz", None) is not None else col
            time = np.where(tmiss, 0, t.to_numpy(dtype="datetime64[ns]").view(np.int64))
        else:
            time, _, bad = _ints(frame, "time", n)
            slow |= bad
    # -- the careful path: exactly inject()'s conversion -------------------------------------------
    records: dict[int, tuple] = {}
    if slow.any():
        sub = frame.iloc[np.flatnonzero(slow)]
        for i, row in zip(np.flatnonzero(slow), sub.to_dict("records")):
            try:
                ev = ProcessEvent.from_row(row, f"row {row0 + i}: ")
                records[i] = (ev, pack_event(ev), row)
            except EventError as exc:
                errors[row0 + i] = str(exc) if str(exc).startswith("row ") else \
                    f"row {row0 + i}: {exc}"
    fast = ~slow
    # -- strings (create rows only) ---------------------------------------------------------------
    strings = _Strings()
    cmd_off = np.zeros(n, np.int64)
    cmd_len = np.zeros(n, np.int64)
    img_off = np.zeros(n, np.int64)
    img_len = np.zeros(n, np.int64)
    name_off = np.zeros(n, np.int64)
    name_len = np.full(n, -1, np.int64)
    dom_off = np.zeros(n, np.int64)
    dom_len = np.full(n, -1, np.int64)
    fc = fast & is_create
    for name, off, length in (("command_line", cmd_off, cmd_len), ("image_path", img_off, img_len)):
        vals = np.where(fc, texts[name], None)
        codes, lengths, encoded = _encode(vals)
        uoff = strings.add_uniques(encoded)
        has = codes >= 0
        off[has] = uoff[codes[has]]
        length[has] = lengths[codes[has]]
    too_long = fc & (cmd_len > MAX_COMMAND)
    for i in np.flatnonzero(too_long):
        errors[row0 + i] = (f"row {row0 + i}: command_line is {cmd_len[i]} bytes in UTF-16; a "
                            f"UNICODE_STRING holds at most 65535")
    # SIDs and accounts, per distinct (sid, name, domain)
    sid_size = np.zeros(n, np.uint32)
    sid_bytes = np.zeros((n, TOKEN_SID_MAX_SIZE), np.uint8)
    sids = texts["token_sid"]
    with_sid = fc & np.fromiter((bool(s) for s in sids), bool, n)
    if with_sid.any():
        idx = np.flatnonzero(with_sid)
        combo = pd.DataFrame({"s": pd.Series(sids[idx], dtype=object),
                              "a": pd.Series(texts["account_name"][idx], dtype=object),
                              "d": pd.Series(texts["account_domain"][idx], dtype=object)})
        group = combo.groupby(["s", "a", "d"], dropna=False, sort=False).ngroup().to_numpy()
        first = pd.Series(np.arange(len(idx))).groupby(group).first().to_numpy()
        for g, j in enumerate(first):
            i = idx[j]
            sid, aname, adom = sids[i], texts["account_name"][i], texts["account_domain"][i]
            members = idx[group == g]
            try:
                raw = sid_to_bytes(sid)
                if len(raw) > TOKEN_SID_MAX_SIZE:
                    raise EventError(f"token_sid is {len(raw)} bytes, more than "
                                     f"{TOKEN_SID_MAX_SIZE}")
            except EventError as exc:
                for r in members:
                    errors[row0 + r] = f"row {row0 + r}: {exc}"
                continue
            sid_size[members] = len(raw)
            sid_bytes[members, :len(raw)] = np.frombuffer(raw, np.uint8)
            nm, dm = account_strings(sid, aname, adom)
            if nm is not None:
                name_off[members], name_len[members] = strings.add(nm), len(nm)
                dom_off[members], dom_len[members] = strings.add(dm), len(dm)
    # -- the events, in row order -----------------------------------------------------------------
    keep = fast.copy()
    for r in errors:
        keep[r - row0] = False
    for i, (ev, packed, row) in records.items():
        if row0 + i not in errors:
            keep[i] = True
    sel = np.flatnonzero(keep)
    m = len(sel)
    ctx = np.zeros(m, CONTEXT_DTYPE)
    out_create = np.zeros(m, np.uint8)
    u = lambda a: a.astype(np.int64).view(np.uint64)  # noqa: E731 - two's complement, as & 2**64-1
    pid = ints["process_id"][0]
    ppid = ints["parent_process_id"][0]
    cmissing = ints["creating_process_id"][1]
    cpid = np.where(cmissing, ppid, ints["creating_process_id"][0])
    ctid = ints["creating_thread_id"][0]
    create_sel = is_create[sel]
    ctx["command_start"] = np.where(create_sel, COMMAND_WINDOW_BASE, 0).astype(np.uint64)
    ctx["command_end"] = np.where(create_sel, COMMAND_WINDOW_BASE + cmd_len[sel], 0) \
        .astype(np.uint64)
    ctx["process_id"] = u(pid[sel])
    ctx["parent_process_id"] = u(np.where(create_sel, ppid[sel], 0))
    ctx["creating_process_id"] = u(np.where(create_sel, cpid[sel], 0))
    ctx["creating_thread_id"] = u(np.where(create_sel, ctid[sel], 0))
    ctx["creation_time"] = u(ints["creation_time"][0][sel])
    ctx["exit_time"] = u(np.where(create_sel, 0, ints["exit_time"][0][sel]))
    ctx["process_exit_code"] = np.where(create_sel, 0, ints["exit_code"][0][sel] & 0xFFFF_FFFF) \
        .astype(np.uint32)
    ctx["operation"] = np.where(create_sel, PROCESS_OPERATION_CREATE, PROCESS_OPERATION_DELETE)
    ctx["token_sid_size"] = sid_size[sel]
    ctx["token_sid"] = sid_bytes[sel].view(f"V{TOKEN_SID_MAX_SIZE}").ravel()
    out_create[:] = create_sel
    pid_tgid = np.where(create_sel, (u(cpid[sel]) << np.uint64(32)) |
                        (u(ctid[sel]) & np.uint64(0xFFFF_FFFF)),
                        u(pid[sel]) << np.uint64(32))
    is_admin = np.where(ints["is_admin"][1], -1, ints["is_admin"][0])[sel]
    cpu = ints["cpu"][0][sel] % max(1, ncpus)
    creator_inferred = create_sel & cmissing[sel]
    if "creator_inferred" in frame.columns:
        given = frame["creator_inferred"].astype(object).to_numpy()[sel]
        for k in np.flatnonzero([not _absent(g) for g in given]):
            creator_inferred[k] = bool(given[k])
    text = {name: texts[name][sel] for name in ("image_path", "command_line", "process_key")}
    for name in ("image_path", "command_line"):
        text[name] = np.where(pd.isna(text[name]), "", text[name]).astype(object)
    times = time[sel].copy()
    fields = dict(cmd_off=cmd_off[sel], cmd_len=cmd_len[sel], img_off=img_off[sel],
                  img_len=img_len[sel], name_off=name_off[sel], name_len=name_len[sel],
                  dom_off=dom_off[sel], dom_len=dom_len[sel])
    logon = ints["logon_id"][0][sel].copy()
    start_key = ints["process_start_key"][0][sel].copy()
    thread_time = ints["thread_create_time"][0][sel].copy()
    # the rows that went the careful way: exactly what inject() packs
    for k, i in enumerate(sel):
        rec = records.get(i)
        if rec is None:
            continue
        ev, (raw, cmd, image, name, domain), row = rec
        ctx[k] = np.frombuffer(raw, CONTEXT_DTYPE)[0]
        out_create[k] = ev.is_create
        fields["cmd_off"][k], fields["cmd_len"][k] = strings.add(cmd), len(cmd)
        fields["img_off"][k], fields["img_len"][k] = strings.add(image), len(image)
        for key, value in (("name", name), ("dom", domain)):
            if value is None:
                fields[key + "_off"][k], fields[key + "_len"][k] = 0, -1
            else:
                fields[key + "_off"][k], fields[key + "_len"][k] = strings.add(value), len(value)
        pid_tgid[k] = ((ev.creating_process_id << 32) | (ev.creating_thread_id & 0xFFFF_FFFF)
                       if ev.is_create else ev.process_id << 32) & 0xFFFF_FFFF_FFFF_FFFF
        is_admin[k] = -1 if ev.is_admin is None else ev.is_admin
        cpu[k] = (ev.cpu or 0) % max(1, ncpus)
        times[k] = ev.time
        logon[k], start_key[k], thread_time[k] = ev.logon_id, ev.process_start_key, \
            ev.thread_create_time
        inferred = row.get("creator_inferred")
        if inferred is None or inferred != inferred or type(inferred).__name__ == "NAType":
            inferred = ev.is_create and _absent(row.get("creating_process_id"))
        creator_inferred[k] = bool(inferred)
        text["image_path"][k], text["command_line"][k] = ev.image_path, ev.command_line
        text["process_key"][k] = ev.process_key
        pid[i] = ev.process_id
    return Packed(m, sel + row0, ctx, strings.array(), fields["cmd_off"].astype(np.uint64),
                  fields["cmd_len"].astype(np.uint64), fields["img_off"].astype(np.uint64),
                  fields["img_len"].astype(np.uint64), fields["name_off"].astype(np.int64),
                  fields["name_len"].astype(np.int64), fields["dom_off"].astype(np.int64),
                  fields["dom_len"].astype(np.int64), out_create, times.astype(np.int64),
                  pid_tgid.astype(np.uint64), u(logon), u(start_key), u(thread_time),
                  is_admin.astype(np.int64), cpu.astype(np.uint32), pid[sel].copy(),
                  creator_inferred.astype(bool), text, errors)


def _absent(value: Any) -> bool:
    return value is None or value != value or type(value).__name__ == "NAType"


# -- running packed events through the attached chain, natively -------------------------------------

@dataclass
class ChainResult:
    """Per event of a Packed chunk: status, deciding link (-1), instructions, programs run,
    the time the event ran at, and the faults of its programs ({event: [(link, message)]})."""

    status: np.ndarray
    decided_by: np.ndarray
    instructions: np.ndarray
    programs_run: np.ndarray
    now: np.ndarray
    faults: dict[int, list[tuple[int, str]]]


class Chain:
    """Attached programs, each in its sandbox, ready for `ntl_batch_run`.

    `links` are (program, sandbox) in attach order; every program must have native code (the
    JIT engine); `clock` is the hook's [last_time, boot_time or None], updated in place."""

    def __init__(self, links: list, budget: int, ncpus: int) -> None:
        import ctypes

        from ..native import abi
        self._ct = ctypes
        self.abi = abi
        self.sandboxes = [box for _, box in links]
        self.programs = [p for p, _ in links]
        self.budget = budget
        self.ncpus = ncpus
        self.runs = []
        self.links = (abi.Link * max(len(links), 1))()
        for j, (program, box) in enumerate(links):
            run = box.engine.native_run(program, box.machine, budget)
            if run is None:
                raise ValueError(f"{program.name} has no native code")
            self.runs.append(run)
            link = self.links[j]
            link.run = ctypes.pointer(box.machine.native_run())
            link.fn = run.prepared.native.address
            link.program_id = box.env.programs.id_of(program)
            link.maps = ctypes.cast(box._epoch_maps, ctypes.POINTER(ctypes.c_void_p))
            link.nmaps = len(box._by_index)
            link.event = ctypes.pointer(box.windows.event)
            link.ctx_window = box.windows.context.window
            link.cmd_window = box.windows.command.window

    @staticmethod
    def possible(links: list) -> bool:
        return bool(links) and all(
            hasattr(box.engine, "native_run") and box.engine.native_run(p, box.machine, 1)
            is not None for p, box in links)

    def run(self, packed: Packed, clock: list, recorders=()) -> ChainResult:
        from contextlib import ExitStack

        from ..native import lib
        from ..vm.engine import VmFault
        from .process import status_of
        ct, abi = self._ct, self.abi
        n = packed.n
        status = np.zeros(n, np.int32)
        decided = np.full(n, -1, np.int32)
        instructions = np.zeros(n, np.uint64)
        programs_run = np.zeros(n, np.uint32)
        now = np.zeros(n, np.int64)
        b = abi.Batch()
        arrays = dict(ctx=packed.ctx, strings=packed.strings, cmd_off=packed.cmd_off,
                      cmd_len=packed.cmd_len, img_off=packed.img_off, img_len=packed.img_len,
                      name_off=packed.name_off, name_len=packed.name_len,
                      dom_off=packed.dom_off, dom_len=packed.dom_len,
                      is_create=packed.is_create, time=packed.time, pid_tgid=packed.pid_tgid,
                      logon_id=packed.logon_id, start_key=packed.start_key,
                      thread_time=packed.thread_time, is_admin=packed.is_admin, cpu=packed.cpu,
                      status=status, decided_by=decided, instructions=instructions,
                      programs_run=programs_run, now=now)
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        for name, array in arrays.items():
            setattr(b, name, array.ctypes.data)
        b.n = n
        b.budget = max(-1, min(self.budget, 1 << 62)) & 0xFFFF_FFFF_FFFF_FFFF
        b.last_time = clock[0]
        b.has_boot_time = clock[1] is not None
        b.boot_time = clock[1] or 0
        b.ncpus = self.ncpus
        recs = (abi.Recorder * max(len(recorders), 1))(*[r.native for r in recorders])
        faults: dict[int, list[tuple[int, str]]] = {}
        nlinks = len(self.runs)
        try:
            with ExitStack() as stack:
                for run in self.runs:
                    stack.enter_context(run)
                while True:
                    rc = lib().ntl_batch_run(ct.byref(b), self.links, nlinks, recs,
                                             len(recorders))
                    if rc == 0:
                        break
                    if rc < 0:
                        raise MemoryError("batch replay: the host ran out of memory")
                    i, j = b.next_event, b.fault_link
                    box = self.sandboxes[j]
                    box.windows.resync()
                    counted = self.runs[j].state.count
                    try:
                        result = self.runs[j].outcome(b.fault_status)
                        instructions[i] += result.instructions - counted
                        st = status_of(result.r0)
                        if packed.is_create[i] and st < 0:
                            status[i], decided[i] = st, j
                            b.next_link = nlinks
                    except VmFault as fault:
                        instructions[i] += fault.instructions - counted
                        faults.setdefault(i, []).append((j, str(fault)))
                    finally:
                        lib().ntl_end_epochs(box._epoch_maps, len(box._by_index))
        finally:
            for box in self.sandboxes:
                box.windows.reset()
            clock[0] = b.last_time
            clock[1] = b.boot_time if b.has_boot_time else clock[1]
            for r in recorders:
                r.sync()
        return ChainResult(status, decided, instructions, programs_run, now, faults)
