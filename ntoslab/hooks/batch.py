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

import ctypes
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .accounts import AccountTable
from .process import (
    COMMAND_WINDOW_BASE,
    TOKEN_SID_MAX_SIZE,
    EventError,
    ProcessEvent,
    exit_thread,
    is_missing,
    pack_event,
    sid_to_bytes,
)

INT_COLUMNS = ("process_id", "parent_process_id", "creating_process_id", "creating_thread_id",
               "creation_time", "exit_time", "exit_code", "cpu", "logon_id", "is_admin",
               "process_start_key", "thread_create_time", "exit_thread_id")
TEXT_COLUMNS = ("image_path", "command_line", "token_sid", "account_name", "account_domain",
                "process_key")
MAX_COMMAND = 0xFFFF


@dataclass
class Packed:
    """A chunk of events ready for `ntl_batch_run` (arrays by event: the columns of
    process_md_t, the strings, the helpers' answers) and what the verdict frame needs of them.
    `rows` are the source rows of the events; `errors` the rows that could not become events
    ({row: message}); `raw` indexes the contexts of rows packed the careful way."""

    n: int
    rows: np.ndarray
    pid: np.ndarray
    ppid: np.ndarray
    cpid: np.ndarray
    ctid: np.ndarray
    ctime: np.ndarray
    etime: np.ndarray
    exit_code: np.ndarray
    sid: np.ndarray
    sid_table: np.ndarray
    sid_size: np.ndarray
    raw: np.ndarray
    raw_table: np.ndarray
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
    logon_id: np.ndarray
    start_key: np.ndarray
    thread_time: np.ndarray
    is_admin: np.ndarray
    cpu: np.ndarray
    creator_inferred: np.ndarray
    exit_tid: np.ndarray
    text: dict = field(default_factory=dict)   # image_path, command_line, process_key (arrow)
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def process_id(self) -> np.ndarray:
        return self.pid


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


def _arrow_text(frame: pd.DataFrame, name: str, n: int) -> tuple[pa.Array, np.ndarray]:
    """(a large_string array, rows needing from_row: values that are not text)."""
    if name not in frame.columns:
        return pa.nulls(n, pa.large_string()), np.zeros(n, dtype=bool)
    col = frame[name]
    bad = np.zeros(n, dtype=bool)
    if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object:
        arr = pa.array(col.array)
    else:
        values = col.astype(object).to_numpy()
        try:
            arr = pa.array(values, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowTypeError, pa.ArrowInvalid):   # not all text: those rows go carefully
            missing = _missing(col)
            ok = np.fromiter((type(v) is str for v in values), bool, n) | missing
            bad = ~ok
            arr = pa.array(np.where(ok & ~missing, values, None), type=pa.large_string(),
                           from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    return arr, bad


def _utf16(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """UTF-16LE of every string of a large_string array: (bytes, offsets of n + 1).
    ASCII strings (nearly all) are widened with numpy; the others are encoded one by one."""
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint8), np.zeros(1, np.int64)
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], np.int64)[arr.offset:arr.offset + n + 1]
    if arr.null_count and np.diff(offs)[~_valid(arr)].any():
        # nulls whose slots hold bytes (Arrow allows it): copy them out as empty strings
        arr = pc.fill_null(arr, "")
        bufs = arr.buffers()
        offs = np.frombuffer(bufs[1], np.int64)[arr.offset:arr.offset + n + 1]
    base = offs[0]
    offs = offs - base
    data = np.frombuffer(bufs[2], np.uint8)[base:base + offs[-1]] if bufs[2] is not None \
        else np.zeros(0, np.uint8)
    lengths = np.diff(offs)
    wide = np.flatnonzero(data >= 0x80)
    if not len(wide):
        out = np.zeros(2 * len(data), np.uint8)
        out[0::2] = data
        return out, 2 * offs
    odd = np.unique(np.searchsorted(offs, wide, side="right") - 1)
    encoded = {int(i): arr[int(i)].as_py().encode("utf-16-le") for i in odd}
    out_len = 2 * lengths
    for i, e in encoded.items():
        out_len[i] = len(e)
    out_offs = np.zeros(n + 1, np.int64)
    np.cumsum(out_len, out=out_offs[1:])
    out = np.zeros(out_offs[-1], np.uint8)
    ascii_rows = np.ones(n, bool)
    ascii_rows[odd] = False
    owner = np.repeat(np.arange(n), lengths)
    keep = ascii_rows[owner]
    src = np.flatnonzero(keep)
    own = owner[src]
    out[out_offs[own] + 2 * (src - offs[own])] = data[src]
    for i, e in encoded.items():
        out[out_offs[i]:out_offs[i + 1]] = np.frombuffer(e, np.uint8)
    return out, out_offs


def _valid(arr: pa.Array) -> np.ndarray:
    """The validity of each value, as a bool array."""
    return pc.is_valid(arr).to_numpy(zero_copy_only=False)


def _dictionary(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(codes per value, -1 for null; the distinct values)."""
    d = pc.dictionary_encode(arr)
    if isinstance(d, pa.ChunkedArray):
        d = d.combine_chunks()
    idx = d.indices
    if not idx.null_count:
        return idx.to_numpy().astype(np.int64), d.dictionary
    raw = np.frombuffer(idx.buffers()[1], idx.type.to_pandas_dtype())[idx.offset:idx.offset +
                                                                      len(idx)]
    return np.where(_valid(idx), raw, -1).astype(np.int64), d.dictionary


class _Strings:
    """The one UTF-16 buffer of a chunk."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add_array(self, data: np.ndarray) -> int:
        off = self.size
        self.parts.append(data)
        self.size += len(data)
        return off

    def add(self, data: bytes) -> int:
        return self.add_array(np.frombuffer(data, np.uint8))

    def array(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(1, np.uint8)


def _strings_of(values: pa.Array, rows: np.ndarray, strings: _Strings, distinct: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and lengths in the buffer of `values` at `rows` (each distinct string once, or
    every value as it comes when most are distinct anyway)."""
    n = len(values)
    off = np.zeros(n, np.int64)
    length = np.zeros(n, np.int64)
    if not distinct:
        data, offs = _utf16(values)
        start = strings.add_array(data)
        off[rows] = start + offs[:-1][rows]
        length[rows] = np.diff(offs)[rows]
        return off, length
    codes, uniques = _dictionary(values)
    data, uoffs = _utf16(uniques)
    start = strings.add_array(data)
    has = rows & (codes >= 0)
    c = codes[has]
    off[has] = start + uoffs[c]
    length[has] = uoffs[c + 1] - uoffs[c]
    return off, length


def pack(frame: pd.DataFrame, row0: int = 0, ncpus: int = 1,
         accounts: AccountTable | None = None) -> Packed:
    """Pack the rows of `frame` (row numbers in messages start at `row0`) for a hook of
    `ncpus` CPUs; `accounts` completes and resolves token SIDs as `pack_event` does."""
    if accounts is None:
        from .process import PLAIN_ACCOUNTS
        accounts = PLAIN_ACCOUNTS
    n = len(frame)
    slow = np.zeros(n, dtype=bool)
    errors: dict[int, str] = {}
    # -- operation (required) ---------------------------------------------------------------------
    op_arr, bad = _arrow_text(frame, "operation", n)
    slow |= bad
    codes, uniques = _dictionary(op_arr)
    kinds = {"create": 0, "delete": 1}
    lut = np.array([kinds.get(str(u).strip().lower(), 2) for u in uniques.to_pylist()] + [2],
                   np.int8)
    kind = lut[codes]
    is_create = kind == 0
    slow |= kind == 2
    ints = {}
    for name in INT_COLUMNS:
        values, missing, bad = _ints(frame, name, n)
        ints[name] = (values, missing)
        slow |= bad
    slow |= ints["process_id"][1]                       # required
    texts = {}
    for name in TEXT_COLUMNS:
        texts[name], bad = _arrow_text(frame, name, n)
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
                records[i] = (ev, pack_event(ev, accounts=accounts), row)
            except EventError as exc:
                errors[row0 + i] = str(exc) if str(exc).startswith("row ") else \
                    f"row {row0 + i}: {exc}"
    fast = ~slow
    fc = fast & is_create
    # -- strings (create rows only) ---------------------------------------------------------------
    strings = _Strings()
    cmd_off, cmd_len = _strings_of(texts["command_line"], fc, strings, distinct=False)
    img_off, img_len = _strings_of(texts["image_path"], fc, strings)
    for i in np.flatnonzero(fc & (cmd_len > MAX_COMMAND)):
        errors[row0 + i] = (f"row {row0 + i}: command_line is {cmd_len[i]} bytes in UTF-16; a "
                            f"UNICODE_STRING holds at most 65535")
    # SIDs and accounts, per distinct (sid, name, domain)
    name_off = np.zeros(n, np.int64)
    name_len = np.full(n, -1, np.int64)
    dom_off = np.zeros(n, np.int64)
    dom_len = np.full(n, -1, np.int64)
    sid_index = np.full(n, -1, np.int32)
    sid_rows: list[bytes] = []
    sid_codes, sid_values = _dictionary(texts["token_sid"])
    sids = sid_values.to_pylist()
    nonempty = np.array([bool(v) for v in sids] + [False], bool)
    name_codes, name_values = _dictionary(texts["account_name"])
    dom_codes, dom_values = _dictionary(texts["account_domain"])
    names, doms = name_values.to_pylist(), dom_values.to_pylist()
    # creates without a SID get their account's SID or the table's default, per distinct account
    lacking = np.flatnonzero(fc & ~nonempty[sid_codes])
    if len(lacking):
        sid_codes = sid_codes.copy()
        pair = (name_codes[lacking] + 1) * (len(dom_values) + 1) + dom_codes[lacking] + 1
        logons = ints["logon_id"][0][lacking] if accounts.logons else np.zeros(len(lacking),
                                                                                np.int64)
        pairs, first, inverse = np.unique(np.stack([pair, logons], axis=1), axis=0,
                                          return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        code_of = {s: c for c, s in enumerate(sids)}
        for g in range(len(pairs)):
            i = lacking[first[g]]
            members = lacking[inverse == g]
            nc, dc = name_codes[i], dom_codes[i]
            given = accounts.token_sid(None, names[nc] if nc >= 0 else None,
                                       doms[dc] if dc >= 0 else None, int(logons[first[g]]),
                                       count=len(members))
            if given is None:
                continue
            if given not in code_of:
                code_of[given] = len(sids)
                sids.append(given)
            sid_codes[members] = code_of[given]
        nonempty = np.array([bool(v) for v in sids] + [False], bool)   # code -1: no SID
    with_sid = fc & nonempty[sid_codes]
    if with_sid.any():
        key = ((sid_codes + 1) * (len(names) + 1) + name_codes + 1) * \
            (len(doms) + 1) + dom_codes + 1
        idx = np.flatnonzero(with_sid)
        combos, first, inverse = np.unique(key[idx], return_index=True, return_inverse=True)
        for g in range(len(combos)):
            i = idx[first[g]]
            members = idx[inverse == g]
            sid = sids[sid_codes[i]]
            aname = names[name_codes[i]] if name_codes[i] >= 0 else None
            adom = doms[dom_codes[i]] if dom_codes[i] >= 0 else None
            try:
                raw = sid_to_bytes(sid)
                if len(raw) > TOKEN_SID_MAX_SIZE:
                    raise EventError(f"token_sid is {len(raw)} bytes, more than "
                                     f"{TOKEN_SID_MAX_SIZE}")
            except EventError as exc:
                for r in members:
                    errors[row0 + r] = f"row {row0 + r}: {exc}"
                continue
            sid_index[members] = len(sid_rows)
            sid_rows.append(raw)
            nm, dm = accounts.strings(sid, aname, adom, count=len(members))
            if nm is not None:
                name_off[members], name_len[members] = strings.add(nm), len(nm)
                dom_off[members], dom_len[members] = strings.add(dm), len(dm)
    # -- the events, in row order -----------------------------------------------------------------
    keep = fast.copy()
    for r in errors:
        keep[r - row0] = False
    for i in records:
        if row0 + i not in errors:
            keep[i] = True
    everything = bool(keep.all())
    sel = np.arange(n) if everything else np.flatnonzero(keep)
    pick = (lambda a: a) if everything else (lambda a: a[sel])  # noqa: E731

    pid = ints["process_id"][0]
    ppid = ints["parent_process_id"][0]
    cmissing = ints["creating_process_id"][1]
    cpid = np.where(cmissing, ppid, ints["creating_process_id"][0])
    is_admin = np.where(ints["is_admin"][1], -1, ints["is_admin"][0])
    creator_inferred = is_create & cmissing
    if "creator_inferred" in frame.columns:
        col = frame["creator_inferred"]
        present = ~_missing(col)
        if present.any():
            given = col.astype(object).to_numpy()
            creator_inferred = creator_inferred.copy()
            creator_inferred[present] = [bool(g) for g in given[present]]
    cols = dict(pid=pid, ppid=ppid, cpid=cpid, ctid=ints["creating_thread_id"][0],
                ctime=ints["creation_time"][0], etime=ints["exit_time"][0],
                exit_code=(ints["exit_code"][0] & 0xFFFF_FFFF).astype(np.uint32), sid=sid_index,
                cmd_off=cmd_off, cmd_len=cmd_len, img_off=img_off, img_len=img_len,
                name_off=name_off, name_len=name_len, dom_off=dom_off, dom_len=dom_len,
                is_create=is_create.astype(np.uint8), time=time, logon_id=ints["logon_id"][0],
                start_key=ints["process_start_key"][0], thread_time=ints["thread_create_time"][0],
                is_admin=is_admin, cpu=ints["cpu"][0] % max(1, ncpus),
                creator_inferred=creator_inferred,
                exit_tid=np.where(ints["exit_thread_id"][1], exit_thread(pid, None),
                                  ints["exit_thread_id"][0]) & 0xFFFF_FFFF)
    cols = {k: pick(v) for k, v in cols.items()}
    if not everything or records:
        cols = {k: v.copy() for k, v in cols.items()}
    sid_table = np.frombuffer(b"".join(r.ljust(TOKEN_SID_MAX_SIZE, b"\0") for r in sid_rows),
                              np.uint8) if sid_rows else np.zeros(TOKEN_SID_MAX_SIZE, np.uint8)
    sid_sizes = np.array([len(r) for r in sid_rows] or [0], np.uint32)
    raw = np.full(len(sel), -1, np.int32)
    raw_table: list[bytes] = []
    if everything:
        text = {name: texts[name] for name in ("image_path", "command_line", "process_key")}
    else:
        take = pa.array(sel, pa.int64())
        text = {name: texts[name].take(take)
                for name in ("image_path", "command_line", "process_key")}
    careful: dict[str, dict[int, Any]] = {"image_path": {}, "command_line": {}, "process_key": {}}
    # the rows that went the careful way: exactly what inject() packs
    for i, rec in records.items():
        if row0 + i in errors:
            continue
        k = int(np.searchsorted(sel, i))
        ev, (ctx_bytes, cmd, image, name, domain), row = rec
        raw[k] = len(raw_table)
        raw_table.append(ctx_bytes)
        cols["is_create"][k] = ev.is_create
        cols["pid"][k] = ev.process_id
        cols["cmd_off"][k], cols["cmd_len"][k] = strings.add(cmd), len(cmd)
        cols["img_off"][k], cols["img_len"][k] = strings.add(image), len(image)
        for key, value in (("name", name), ("dom", domain)):
            if value is None:
                cols[key + "_off"][k], cols[key + "_len"][k] = 0, -1
            else:
                cols[key + "_off"][k], cols[key + "_len"][k] = strings.add(value), len(value)
        cols["is_admin"][k] = -1 if ev.is_admin is None else ev.is_admin
        cols["cpu"][k] = (ev.cpu or 0) % max(1, ncpus)
        cols["time"][k] = ev.time
        cols["logon_id"][k], cols["start_key"][k], cols["thread_time"][k] = \
            ev.logon_id, ev.process_start_key, ev.thread_create_time
        cols["exit_tid"][k] = exit_thread(ev.process_id, ev.exit_thread_id)
        inferred = row.get("creator_inferred")
        if is_missing(inferred):
            inferred = ev.is_create and is_missing(row.get("creating_process_id"))
        cols["creator_inferred"][k] = bool(inferred)
        careful["image_path"][k], careful["command_line"][k] = ev.image_path, ev.command_line
        careful["process_key"][k] = ev.process_key
    for name, fixes in careful.items():
        if fixes:
            column = text[name].to_pylist()
            for k, value in fixes.items():
                column[k] = value
            text[name] = pa.array(column, pa.large_string())
    def u(a: np.ndarray) -> np.ndarray:   # two's complement, as & 2**64-1
        a = np.ascontiguousarray(a)
        return (a if a.dtype == np.int64 else a.astype(np.int64)).view(np.uint64)
    return Packed(
        len(sel), sel + row0, cols["pid"], cols["ppid"], cols["cpid"], cols["ctid"],
        cols["ctime"], cols["etime"], cols["exit_code"], cols["sid"].astype(np.int32),
        sid_table, sid_sizes, raw,
        np.frombuffer(b"".join(raw_table), np.uint8) if raw_table else np.zeros(1, np.uint8),
        strings.array(), u(cols["cmd_off"]), u(cols["cmd_len"]), u(cols["img_off"]),
        u(cols["img_len"]), cols["name_off"], cols["name_len"], cols["dom_off"],
        cols["dom_len"], cols["is_create"], cols["time"], u(cols["logon_id"]),
        u(cols["start_key"]), u(cols["thread_time"]), cols["is_admin"],
        cols["cpu"].astype(np.uint32), cols["creator_inferred"].astype(bool),
        u(cols["exit_tid"]), text, errors)


# -- running packed events through the attached chain, natively -------------------------------------
_LIB: list = []


def _lib():
    if not _LIB:
        from ..native import lib
        _LIB.append(lib())
    return _LIB[0]


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
    """Attached programs, each in its sandbox, run natively by `ntl_batch_run`: over a packed
    chunk (`run`) or one event (`inject`: the same loop, on buffers kept between calls).

    `links` are (program, sandbox) in attach order; every program must have native code (the
    JIT engine); `clock` is the hook's [last_time, boot_time or None], updated in place."""

    ONE = np.dtype([("raw", "<i4"), ("cpu", "<u4"), ("cmd_off", "<u8"), ("cmd_len", "<u8"),
                    ("img_off", "<u8"), ("img_len", "<u8"), ("name_off", "<i8"),
                    ("name_len", "<i8"), ("dom_off", "<i8"), ("dom_len", "<i8"),
                    ("time", "<i8"), ("logon_id", "<u8"), ("start_key", "<u8"),
                    ("thread_time", "<u8"), ("is_admin", "<i8"), ("exit_tid", "<u8"),
                    ("is_create", "u1")],
                   align=True)
    STRING_ROOM = 4 * 0x10000     # command line, image, account name and domain

    def __init__(self, links: list, budget: int, ncpus: int) -> None:
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
        self._one: Any = None

    @staticmethod
    def possible(links: list) -> bool:
        return bool(links) and all(
            hasattr(box.engine, "native_run") and box.engine.native_run(p, box.machine, 1)
            is not None for p, box in links)

    def _batch(self, arrays: dict, n: int, clock: list) -> Any:
        b = self.abi.Batch()
        for name, array in arrays.items():
            setattr(b, name, array.ctypes.data)
        b.n = n
        b.budget = max(-1, min(self.budget, 1 << 62)) & 0xFFFF_FFFF_FFFF_FFFF
        b.command_base = COMMAND_WINDOW_BASE
        b.last_time = clock[0]
        b.has_boot_time = clock[1] is not None
        b.boot_time = clock[1] or 0
        b.ncpus = self.ncpus
        return b

    def _drive(self, b, is_create: np.ndarray, status: np.ndarray, decided: np.ndarray,
               instructions: np.ndarray, link_count: np.ndarray | None, recs, nrecs: int,
               clock: list, keep_windows: bool = False) -> dict[int, list[tuple[int, str]]]:
        """Run `b` to the end; describe each fault the loop stops at, then let it go on.
        `keep_windows`: the process regions may stay pointed at this chain's buffers (they
        live as long as it does)."""
        faults: dict[int, list[tuple[int, str]]] = {}
        runs = self.runs
        nlinks = len(runs)
        L = _lib()
        for run in runs:
            run.__enter__()
        try:
            while True:
                rc = L.ntl_batch_run(self._ct.byref(b), self.links, nlinks, recs, nrecs)
                if rc == 0:
                    break
                if rc < 0:
                    raise MemoryError("batch replay: the host ran out of memory")
                self._fault(b, is_create, status, decided, instructions, link_count, faults)
        finally:
            for run in runs:
                run.__exit__(None, None, None)
            if keep_windows:
                for box in self.sandboxes:
                    if not box.windows.borrowed:
                        box.windows.hand_over()
            else:
                for box in self.sandboxes:
                    box.windows.reset()
            clock[0] = b.last_time
            clock[1] = b.boot_time if b.has_boot_time else clock[1]
        return faults

    def _fault(self, b, is_create, status, decided, instructions, link_count, faults) -> None:
        """The loop stopped at link j of event i: what happened, from the program's state."""
        from ..vm.engine import VmFault
        from .process import status_of
        i, j = b.next_event, b.fault_link
        box = self.sandboxes[j]
        box.windows.resync()
        counted = self.runs[j].state.count
        try:
            result = self.runs[j].outcome(b.fault_status)
            self.runs[j].state.native_tail = 1   # the interpreter may have taken over
            extra = result.instructions - counted
            st = status_of(result.r0)
            if link_count is not None:
                self._link_status[j] = st
            if is_create[i] and st < 0:
                status[i], decided[i] = st, j
                b.next_link = len(self.runs)
        except VmFault as fault:
            extra = fault.instructions - counted
            faults.setdefault(i, []).append((j, str(fault)))
        finally:
            _lib().ntl_end_epochs(box._epoch_maps, len(box._by_index))
        instructions[i] += extra
        if link_count is not None:
            link_count[j] += extra

    def run(self, packed: Packed, clock: list, recorders=(), event_base: int = 0) -> ChainResult:
        """Every event of `packed`, in order (the first has the hook's index `event_base`)."""
        n = packed.n
        status = np.zeros(n, np.int32)
        decided = np.full(n, -1, np.int32)
        instructions = np.zeros(n, np.uint64)
        programs_run = np.zeros(n, np.uint32)
        now = np.zeros(n, np.int64)
        arrays = {name: np.ascontiguousarray(getattr(packed, name)) for name in (
            "pid", "ppid", "cpid", "ctid", "ctime", "etime", "exit_code", "sid", "sid_table",
            "sid_size", "raw", "raw_table", "strings", "cmd_off", "cmd_len", "img_off",
            "img_len", "name_off", "name_len", "dom_off", "dom_len", "is_create", "time",
            "logon_id", "start_key", "thread_time", "is_admin", "cpu", "exit_tid")}
        arrays.update(status=status, decided_by=decided, instructions=instructions,
                      programs_run=programs_run, now=now)
        b = self._batch(arrays, n, clock)
        b.event_base = event_base
        recs = (self.abi.Recorder * max(len(recorders), 1))(*[r.native for r in recorders])
        try:
            faults = self._drive(b, packed.is_create, status, decided, instructions, None, recs,
                                 len(recorders), clock)
        finally:
            for k, r in enumerate(recorders):
                r.adopt(recs[k])
        return ChainResult(status, decided, instructions, programs_run, now, faults)

    # -- one event -----------------------------------------------------------------------------
    def _setup_one(self) -> None:
        """Buffers kept for `inject`: one event's inputs, the outputs, the strings, and every
        program's run context entered for the chain's life (`release` leaves them)."""
        ct = self._ct
        nl = max(len(self.runs), 1)

        class One(ctypes.Structure):
            _fields_ = [(name, {"<i4": ct.c_int32, "<u4": ct.c_uint32, "<u8": ct.c_uint64,
                                "<i8": ct.c_int64, "|u1": ct.c_uint8}[self.ONE.fields[name][0].str])
                        for name in self.ONE.names]
        one = One()
        out = dict(status=(ct.c_int32 * 1)(), decided_by=(ct.c_int32 * 1)(-1),
                   instructions=(ct.c_uint64 * 1)(), programs_run=(ct.c_uint32 * 1)(),
                   now=(ct.c_int64 * 1)())
        self._link_status = (ct.c_int64 * nl)()
        self._link_count = (ct.c_uint64 * nl)()
        strings = bytearray(self.STRING_ROOM)
        raw = bytearray(144)
        pins = [(ct.c_char * len(strings)).from_buffer(strings),
                (ct.c_char * len(raw)).from_buffer(raw)]
        b = self.abi.Batch()
        base = ct.addressof(one)
        for name in self.ONE.names:
            setattr(b, name, base + getattr(One, name).offset)
        for name, array in out.items():
            setattr(b, name, ct.addressof(array))
        b.strings = ct.addressof(pins[0])
        b.raw_table = ct.addressof(pins[1])
        b.link_status = ct.addressof(self._link_status)
        b.link_count = ct.addressof(self._link_count)
        b.budget = max(-1, min(self.budget, 1 << 62)) & 0xFFFF_FFFF_FFFF_FFFF
        b.command_base = COMMAND_WINDOW_BASE
        b.ncpus = self.ncpus
        b.n = 1
        for run in self.runs:
            run.__enter__()
        self._entered = True
        self._one = (b, ct.byref(b), one, out, strings, raw, pins,
                     [run.state for run in self.runs], ct.c_uint8 * 1)

    def release(self) -> None:
        """Leave the run contexts `inject` entered; point the process regions back at each
        sandbox's own buffers."""
        if getattr(self, "_entered", False):
            for run in reversed(self.runs):
                run.__exit__(None, None, None)
            self._entered = False
        for box in self.sandboxes:
            if box.windows.borrowed:
                box.windows.reset()

    def inject(self, event: ProcessEvent, packed: tuple, clock: list, recorders=(),
               index: int = 0) -> tuple[int, int, int, list[tuple[int, int | None, int, str | None]]]:
        """One event (`packed` by pack_event): (status, deciding link or -1, the time it ran
        at, [(link, status or None when it faulted, instructions, fault) per program run])."""
        if self._one is None:
            self._setup_one()
        b, bref, one, out, strings, raw_buf, _, states, _u8 = self._one
        raw, cmd, image, name, domain = packed
        raw_buf[:] = raw
        o1 = len(cmd)
        strings[0:o1] = cmd
        o2 = o1 + len(image)
        strings[o1:o2] = image
        one.cmd_len, one.img_off, one.img_len = o1, o1, o2 - o1
        if name is None:
            one.name_len = one.dom_len = -1
        else:
            o3 = o2 + len(name)
            strings[o2:o3] = name
            o4 = o3 + len(domain)
            strings[o3:o4] = domain
            one.name_off, one.name_len, one.dom_off, one.dom_len = o2, o3 - o2, o3, o4 - o3
        one.cpu = (event.cpu or 0) % (self.ncpus or 1)
        one.time = event.time
        one.logon_id = event.logon_id & 0xFFFF_FFFF_FFFF_FFFF
        one.start_key = event.process_start_key & 0xFFFF_FFFF_FFFF_FFFF
        one.thread_time = event.thread_create_time & 0xFFFF_FFFF_FFFF_FFFF
        one.exit_tid = exit_thread(event.process_id, event.exit_thread_id)
        one.is_admin = -1 if event.is_admin is None else event.is_admin
        one.is_create = event.is_create
        b.event_base = index
        b.next_event = 0
        b.next_link = 0
        b.last_time = clock[0]
        boot = clock[1]
        b.has_boot_time = boot is not None
        b.boot_time = boot or 0
        for st in states:
            st.native_tail = 1
        L = _lib()
        nlinks = len(states)
        if recorders:
            recs = (self.abi.Recorder * len(recorders))(*[r.native for r in recorders])
            nrecs = len(recorders)
        else:
            recs, nrecs = None, 0
        faults: dict = {}
        try:
            while True:
                rc = L.ntl_batch_run(bref, self.links, nlinks, recs, nrecs)
                if rc == 0:
                    break
                if rc < 0:
                    raise MemoryError("inject: the host ran out of memory")
                self._fault(b, (event.is_create,), out["status"], out["decided_by"],
                            out["instructions"], self._link_count, faults)
        finally:
            if recs is not None:
                for k, r in enumerate(recorders):
                    r.adopt(recs[k])
            for box in self.sandboxes:
                if not box.windows.borrowed:
                    box.windows.hand_over()
            clock[0] = b.last_time
            clock[1] = b.boot_time if b.has_boot_time else boot
        ls, lc = self._link_status, self._link_count
        fault_of = dict(faults.get(0, ()))
        runs: list[tuple[int, int | None, int, str | None]] = []
        for j in range(nlinks):
            s, c = ls[j], lc[j]
            if j in fault_of:
                runs.append((j, None, c, fault_of[j]))
            elif s == -1 and not c:
                break
            else:
                runs.append((j, s, c, None))
        return out["status"][0], out["decided_by"][0], out["now"][0], runs
