"""User-space views of live maps, ring buffers and printk output, as pandas DataFrames."""
from __future__ import annotations

import html
import struct
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ..runtime.maps import Map, PerfEventArrayMap

if TYPE_CHECKING:
    import pandas as pd

    from ..elf.btf import Btf


def _decode(btf: "Btf | None", type_id: int | None, data: bytes) -> Any:
    if btf is None or type_id is None:
        return data
    try:
        return btf.decode(type_id, data)
    except Exception:
        return data


def _unpack(layout: tuple[str, Sequence[str]], data: bytes, where: str) -> dict[str, Any]:
    fmt, names = layout
    need = struct.calcsize(fmt)
    if len(data) < need:
        raise ValueError(f"map {where}: {len(data)} bytes, layout {fmt!r} needs {need}")
    return dict(zip(names, struct.unpack_from(fmt, data)))


def _flatten(prefix: str, value: Any, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = value


class MapView(MutableMapping):
    """A map as a Python mapping, the same on every hook (bcc's `b["map"]`): `m[key]`,
    `m[key] = value`, `del m[key]`, `key in m`, `len(m)`, iteration, plus `to_frame()`.

    Keys and values are bytes, ints (packed little-endian to the key or value size; negative
    ints in two's complement) or, when the object has BTF, what its type decodes to: dicts for
    structs, lists for arrays (`m[{"pid": 4}] = {"count": 1}`). `m[key]` gives the value's
    bytes (`m.value(key)`: decoded by BTF); a per-CPU map gives one value per CPU, and takes a
    list of them or one value for every CPU. A missing key raises KeyError; a refused update
    raises the hook's map error (MapError, or LibbpfError on a live machine).

    >>> counts = obj.map("counts"); counts[7] = 1; counts[7]               # doctest: +SKIP
    b'\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00'
    """

    def __init__(self, backend: Any, spec: Any, btf: "Btf | None" = None,
                 ncpus: int | None = None) -> None:
        self.map = backend
        self.btf = btf
        self.spec = spec
        self.name = spec.name
        self.ncpus = ncpus             # per-CPU maps only: how many values a key has
        self.percpu = ncpus is not None

    # -- conversions ------------------------------------------------------------------------------
    def _pack(self, value: Any, size: int, type_id: int | None, what: str) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
        elif isinstance(value, bool) or not isinstance(value, int):
            if self.btf is None or type_id is None:
                raise TypeError(f"map {self.name}: a {what} is bytes or an int here (the object "
                                f"has no BTF type for it), not {type(value).__name__}")
            raw = self.btf.encode(type_id, value)
        else:
            if not -(1 << (8 * size - 1)) <= value < (1 << 8 * size):
                raise ValueError(f"map {self.name}: {what} {value} does not fit {size} bytes")
            raw = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")
        if len(raw) != size:
            raise ValueError(f"map {self.name}: {what} is {len(raw)} bytes, the map's are "
                             f"{size}")
        return raw

    def _key(self, key: Any) -> bytes:
        return self._pack(key, self.spec.key_size, self.spec.key_type, "key")

    def _value(self, value: Any) -> Any:
        """Value bytes; for a per-CPU map one per CPU: a list of them (unless the value type
        is itself an array, whose value a list is), or one value for every CPU."""
        size, tid = self.spec.value_size, self.spec.value_type
        if self.percpu and isinstance(value, list) and not self._array_typed():
            return [self._pack(v, size, tid, "value") for v in value]
        one = self._pack(value, size, tid, "value")
        return [one] * self.ncpus if self.ncpus is not None else one

    def _array_typed(self) -> bool:
        if self.btf is None or self.spec.value_type is None:
            return False
        return self.btf.type(self.btf.resolve(self.spec.value_type)).kind == "ARRAY"

    def decode_value(self, raw: bytes) -> Any:
        """Value bytes as the map's BTF value type decodes them (the bytes without BTF)."""
        return _decode(self.btf, self.spec.value_type, raw)

    # -- the mapping ------------------------------------------------------------------------------
    def lookup(self, key: Any) -> bytes | list[bytes] | None:
        """The value (per-CPU: one per CPU), or None."""
        return self.map.lookup(self._key(key))

    def __getitem__(self, key: Any) -> bytes | list[bytes]:
        value = self.lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def value(self, key: Any) -> Any:
        """`m[key]` decoded by BTF (per-CPU: a list)."""
        raw = self[key]
        return [self.decode_value(v) for v in raw] if isinstance(raw, list) else \
            self.decode_value(raw)

    def update(self, key: Any = None, value: Any = None, flags: int = 0, **kw: Any) -> None:
        """`update(key, value, flags)`: bpf_map_update_elem from user space (flags BPF_ANY,
        BPF_NOEXIST, BPF_EXIST); `update(mapping)` as for a dict."""
        if value is None and key is not None and not isinstance(key, (bytes, bytearray, int)):
            for k, v in (key.items() if hasattr(key, "items") else key):
                self[k] = v
            return
        if key is None:
            for k, v in kw.items():
                self[k] = v
            return
        self.map.update(self._key(key), self._value(value), flags)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.map.update(self._key(key), self._value(value), 0)

    def delete(self, key: Any) -> None:
        """bpf_map_delete_elem; a missing key raises KeyError."""
        del self[key]

    def __delitem__(self, key: Any) -> None:
        kb = self._key(key)
        if self.map.lookup(kb) is None:
            raise KeyError(key)
        self.map.delete(kb)

    def __contains__(self, key: object) -> bool:
        try:
            return self.map.lookup(self._key(key)) is not None
        except (TypeError, ValueError):
            return False

    def lookup_percpu(self, key: Any) -> list[bytes] | None:
        if not self.percpu:
            raise TypeError(f"map {self.name} is a {self.spec.type_name}, not a per-CPU map")
        values = self.lookup(key)
        assert values is None or isinstance(values, list), "a per-CPU lookup gives a list"
        return values

    def keys(self):   # a snapshot: deleting while iterating is safe
        return list(self.map.keys())

    def items(self):
        return list(self.map.items())

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.keys())

    def __len__(self) -> int:
        return sum(1 for _ in self.map.keys())

    # -- frames -----------------------------------------------------------------------------------
    def to_frame(self, key_layout: tuple[str, Sequence[str]] | None = None,
                 value_layout: tuple[str, Sequence[str]] | None = None, *,
                 raw: bool = False) -> "pd.DataFrame":
        """One row per entry (per-CPU maps: per entry and CPU, with a `cpu` column): `key`/
        `value` decoded by the map's BTF types when the object has them, or by
        `key_layout`/`value_layout` = (struct format, field names); raw bytes otherwise.
        Structs become one column per field. Byte arrays that hold text (UTF-16LE or ASCII
        strings, SIDs) become strings unless `raw`."""
        import pandas as pd

        from .frames import decode_text_columns
        rows = []
        for k, v in self.map.items():
            for cpu, value in (enumerate(v) if isinstance(v, list) else ((None, v),)):
                row: dict[str, Any] = {"key": k}
                if cpu is not None:
                    row["cpu"] = cpu
                row["value"] = value
                dk = _unpack(key_layout, k, self.name) if key_layout else \
                    _decode(self.btf, self.spec.key_type, k)
                if not isinstance(dk, bytes):
                    _flatten("key", dk, row) if isinstance(dk, dict) else \
                        row.__setitem__("key", dk)
                dv = _unpack(value_layout, value, self.name) if value_layout else \
                    _decode(self.btf, self.spec.value_type, value)
                if isinstance(dv, dict):
                    del row["value"]
                    _flatten("", dv, row)
                elif not isinstance(dv, bytes):
                    row["value"] = dv
                rows.append(row)
        frame = pd.DataFrame(rows, columns=None if rows else ["key", "value"])
        return frame if raw else decode_text_columns(frame)

    def __repr__(self) -> str:
        return f"<MapView {self.name} {self.spec.type_name} entries={len(self)}>"

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        return (f"<div><b>map {html.escape(self.name)}</b> ({self.spec.type_name}, key "
                f"{self.spec.key_size} B, value {self.spec.value_size} B, max "
                f"{self.spec.max_entries})" + frame.head(20)._repr_html_() + "</div>")


class EmulatedMap:
    """A runtime map (ntoslab.runtime.maps) in the backend form MapView reads: user-side
    lookups (never refreshing LRU recency), updates and deletes that raise MapError."""

    def __init__(self, m: Map) -> None:
        self.m = m
        self.split = getattr(m, "split", None)

    def __getattr__(self, name: str) -> Any:   # the runtime map's own attributes (evicted ...)
        return getattr(self.m, name)

    def lookup(self, key: bytes) -> bytes | list[bytes] | None:
        flat = self.m.lookup(key)
        return flat if flat is None or self.split is None else self.split(flat)

    def update(self, key: bytes, value: Any, flags: int) -> None:
        self.m.update_user(key, value, flags)

    def delete(self, key: bytes) -> None:
        self.m.delete_user(key)

    def keys(self) -> Iterator[bytes]:
        return self.m.keys()

    def items(self) -> Iterator[tuple[bytes, Any]]:
        for k, v in self.m.items():
            yield k, (v if self.split is None else self.split(v))


class RingRecorder:
    """A reader that keeps up with a ring buffer: after every event the hook moves the ring's
    new records here (natively, batch replay included), as a consumer polling after each event
    would, so the ring never fills for want of a reader. `to_frame(type)` decodes what it holds,
    with the index of the event that produced each record.

    >>> rec = monitor.ringbuf("process_ringbuf").record()      # doctest: +SKIP
    >>> hook.replay(trace); rec.to_frame("process_info_t")      # doctest: +SKIP
    """

    def __init__(self, m: Map, btf: "Btf | None" = None) -> None:
        import ctypes
        import weakref

        from ..native import abi, lib
        self.map = m
        self.btf = btf
        self.name = m.name
        self.native = abi.Recorder()
        self.native.map = m.native
        self._lib = lib()
        self._finalize = weakref.finalize(self, _free_recorder, self._lib, self.native, m)
        self._ct = ctypes

    def drain(self, event: int) -> None:
        """Move the ring's pending records here, attributed to event index `event`."""
        if self._lib.ntl_recorder_drain(self._ct.byref(self.native), event):
            raise MemoryError(f"ring buffer {self.name}: the host ran out of memory recording")

    def adopt(self, state) -> None:
        """Take over the recorder state native code updated (a copy of `self.native`)."""
        self._ct.memmove(self._ct.byref(self.native), self._ct.byref(state),
                         self._ct.sizeof(self.native))

    def buffers(self):
        """(data, offsets, lengths, events) numpy views of what is recorded (valid until the
        next event)."""
        import numpy as np
        r = self.native
        n = r.count

        def view(address, dtype, count):
            if not count:
                return np.zeros(0, dtype)
            return np.ctypeslib.as_array(self._ct.cast(address, self._ct.POINTER(
                np.ctypeslib.as_ctypes_type(dtype))), (count,))
        return (view(r.data, np.uint8, r.len), view(r.offsets, np.uint64, n).astype(np.int64),
                view(r.lengths, np.uint32, n).astype(np.int64),
                view(r.events, np.uint64, n).astype(np.int64))

    def __len__(self) -> int:
        return self.native.count

    def records(self) -> list[bytes]:
        data, offsets, lengths, _ = self.buffers()
        return [bytes(data[o:o + n]) for o, n in zip(offsets, lengths)]

    def to_frame(self, type: str | int | None = None,
                 layout: tuple[str, Sequence[str]] | None = None, *,
                 raw: bool = False) -> "pd.DataFrame":
        """Records as rows (`record`, `event`, `size`, then the fields of BTF `type` or of
        `layout` = (struct format, names), or `data`); text byte arrays decoded unless `raw`."""
        import numpy as np

        from .frames import decode_text_columns, records_frame
        data, offsets, lengths, events = self.buffers()
        cols = {"record": np.arange(len(offsets), dtype=np.int64), "event": events}
        if layout is not None:
            return _layout_frame(layout, [bytes(data[o:o + n]) for o, n in zip(offsets, lengths)],
                                 cols, f"ring buffer {self.name}")
        frame = records_frame(self.btf, type, data, offsets, lengths, cols,
                              f"ring buffer {self.name}")
        return frame if raw or type is None else decode_text_columns(frame)

    def clear(self) -> None:
        """Forget what has been recorded."""
        self._lib.ntl_recorder_free_data(self._ct.byref(self.native))
        self.native.map = self.map.native

    def __repr__(self) -> str:
        return f"<RingRecorder {self.name} records={len(self)}>"

    def _repr_html_(self) -> str:
        if not len(self):
            return _ring_html(f"ring buffer {self.name} (recorded)", 0, None, None)
        _, _, lengths, _ = self.buffers()
        kind = _record_type(self.btf, lengths)
        return _ring_html(f"ring buffer {self.name} (recorded)"
                          + (f", as {kind}" if kind else ""), len(self), None,
                          self.to_frame(kind))


def _free_recorder(L, native, keep) -> None:
    import ctypes
    L.ntl_recorder_free_data(ctypes.byref(native))


def _layout_frame(layout, records: list[bytes], columns: dict, where: str) -> "pd.DataFrame":
    import pandas as pd
    fmt, names = layout
    need = struct.calcsize(fmt)
    rows = []
    for i, rec in enumerate(records):
        if len(rec) < need:
            raise ValueError(f"{where}: record {i} has {len(rec)} bytes, layout needs {need}")
        rows.append(dict(zip(names, struct.unpack_from(fmt, rec))))
    frame = pd.DataFrame(dict(columns, size=[len(r) for r in records]))
    return pd.concat([frame, pd.DataFrame(rows)], axis=1) if rows else frame


class RingBufView:
    """A ring buffer's records (not consumed by reading them here)."""

    def __init__(self, m: Map, btf: "Btf | None" = None, recorders: list | None = None) -> None:
        if not hasattr(m, "records"):
            raise TypeError(f"map {m.name} is a {m.spec.type_name}, not a ring buffer")
        self.map = m
        self.btf = btf
        self.name = m.name
        self._recorders = recorders

    def record(self) -> RingRecorder:
        """A recorder the hook drains after every event (the same one each time)."""
        if self._recorders is None:
            raise ValueError(f"ring buffer {self.name}: only a hook's ring buffers can be "
                             f"recorded")
        for r in self._recorders:
            if r.map is self.map:
                return r
        r = RingRecorder(self.map, self.btf)
        self._recorders.append(r)
        return r

    def records(self) -> list[bytes]:
        return list(self.map.records())

    @property
    def dropped(self) -> int:
        return getattr(self.map, "dropped", 0)

    def to_frame(self, type: str | int | None = None,
                 layout: tuple[str, Sequence[str]] | None = None, *,
                 raw: bool = False) -> "pd.DataFrame":
        """Records as rows: decoded by BTF `type` name, or by `layout` = (struct format, names);
        otherwise `size` and `data` (bytes). Text byte arrays decoded unless `raw`."""
        import numpy as np

        from .frames import buffer_of, decode_text_columns, records_frame
        records = self.records()
        cols = {"record": np.arange(len(records), dtype=np.int64)}
        if layout is not None:
            return _layout_frame(layout, records, cols, f"ring buffer {self.name}")
        data, offsets, lengths = buffer_of(records)
        frame = records_frame(self.btf, type, data, offsets, lengths, cols,
                              f"ring buffer {self.name}")
        return frame if raw or type is None else decode_text_columns(frame)

    def __repr__(self) -> str:
        return f"<RingBufView {self.name} records={len(self.records())} dropped={self.dropped}>"

    def _repr_html_(self) -> str:
        records = self.records()
        kind = _record_type(self.btf, [len(r) for r in records]) if records else None
        return _ring_html(f"ring buffer {self.name}" + (f", as {kind}" if kind else ""),
                          len(records), self.dropped, self.to_frame(kind) if records else None)


def _record_type(btf, lengths) -> str | None:
    """For display only: the one named struct of the object's BTF whose size every record
    has (process_monitor's process_info_t), or None."""
    sizes = {int(n) for n in lengths}
    if btf is None or len(sizes) != 1:
        return None
    size = sizes.pop()
    names = set()
    for tid, t in enumerate(btf.types):
        if getattr(t, "kind", None) == "STRUCT" and getattr(t, "name", "") and \
                btf.sizeof(tid) == size:
            names.add(t.name)
    return names.pop() if len(names) == 1 else None


def _ring_html(title: str, count: int, dropped: int | None, frame) -> str:
    """A ring buffer's face in a notebook: counts (drops in red) and its first records."""
    drops = "" if dropped is None else (
        f", <b style='color:#b00'>{dropped:,} dropped</b> (nothing read it: use "
        f"<code>.record()</code> before injecting)" if dropped else ", 0 dropped")
    body = frame.head(20)._repr_html_() if frame is not None else "<i>no records</i>"
    return f"<div><b>{html.escape(title)}</b>: {count:,} record(s){drops}{body}</div>"


class PerfView:
    """A perf event array's records per CPU (not consumed by reading them here)."""

    def __init__(self, m: Map, btf: "Btf | None" = None) -> None:
        if not isinstance(m, PerfEventArrayMap):
            raise TypeError(f"map {m.name} is a {m.spec.type_name}, not a perf event array")
        self.map = m
        self.btf = btf
        self.name = m.name

    @property
    def lost(self) -> int:
        return self.map.lost_total

    def to_frame(self, type: str | int | None = None,
                 layout: tuple[str, Sequence[str]] | None = None) -> "pd.DataFrame":
        """One row per record with its `cpu`; decoded like `RingBufView.to_frame`."""
        import pandas as pd
        rows = []
        for i, (cpu, rec) in enumerate(self.map.records_all()):
            row: dict[str, Any] = {"record": i, "cpu": cpu, "size": len(rec)}
            if type is not None and self.btf is not None:
                _flatten("", self.btf.decode(type, rec), row)
            elif layout is not None:
                row.update(_unpack(layout, rec, self.name))
            else:
                row["data"] = rec
            rows.append(row)
        return pd.DataFrame(rows, columns=None if rows else ["record", "cpu", "size"])


def printk_frame(records) -> "pd.DataFrame":
    import pandas as pd
    return pd.DataFrame([{"time": r.time, "program": r.program, "helper": r.helper,
                          "text": r.text} for r in records],
                        columns=["time", "program", "helper", "text"])
