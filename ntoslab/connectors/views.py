"""User-space views of live maps, ring buffers and printk output, as pandas DataFrames."""
from __future__ import annotations

import html
import struct
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ..runtime.maps import Map

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


class MapView:
    """A live map: libbpf-style lookup/update/delete/iteration, plus `to_frame()`."""

    def __init__(self, m: Map, btf: "Btf | None" = None) -> None:
        self.map = m
        self.btf = btf
        self.name = m.name
        self.spec = m.spec

    def _key(self, key: Any) -> bytes:
        if isinstance(key, (bytes, bytearray)):
            return bytes(key)
        if isinstance(key, int):
            return key.to_bytes(self.spec.key_size, "little", signed=key < 0)
        raise TypeError(f"map {self.name}: a key is bytes or an int, not {type(key).__name__}")

    def lookup(self, key: Any) -> bytes | None:
        return self.map.lookup(self._key(key))

    def __getitem__(self, key: Any) -> bytes:
        value = self.lookup(key)
        if value is None:
            raise KeyError(f"map {self.name}: no key {key!r}")
        return value

    def update(self, key: Any, value: bytes | list[bytes], flags: int = 0) -> None:
        """Update from user space (per-CPU maps take one value per CPU, or the flat buffer)."""
        self.map.update_user(self._key(key), value, flags)

    def delete(self, key: Any) -> None:
        self.map.delete_user(self._key(key))

    def lookup_percpu(self, key: Any) -> list[bytes] | None:
        fn = getattr(self.map, "lookup_percpu", None)
        if fn is None:
            raise TypeError(f"map {self.name} is a {self.spec.type_name}, not a per-CPU map")
        return fn(self._key(key))

    def keys(self) -> Iterator[bytes]:
        return iter(list(self.map.keys()))

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return self.map.items()

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def __len__(self) -> int:
        return sum(1 for _ in self.map.items())

    def to_frame(self, key_layout: tuple[str, Sequence[str]] | None = None,
                 value_layout: tuple[str, Sequence[str]] | None = None) -> "pd.DataFrame":
        """One row per entry: `key`/`value` decoded by the map's BTF types when the object has
        them, or by `key_layout`/`value_layout` = (struct format, field names); raw bytes
        otherwise. Structs become one column per field."""
        import pandas as pd
        rows = []
        for k, v in self.map.items():
            row: dict[str, Any] = {"key": k, "value": v}
            dk = _unpack(key_layout, k, self.name) if key_layout else \
                _decode(self.btf, self.spec.key_type, k)
            if not isinstance(dk, bytes):
                _flatten("key", dk, row) if isinstance(dk, dict) else row.__setitem__("key", dk)
            dv = _unpack(value_layout, v, self.name) if value_layout else \
                _decode(self.btf, self.spec.value_type, v)
            if isinstance(dv, dict):
                del row["value"]
                _flatten("", dv, row)
            elif not isinstance(dv, bytes):
                row["value"] = dv
            rows.append(row)
        return pd.DataFrame(rows, columns=None if rows else ["key", "value"])

    def __repr__(self) -> str:
        return f"<MapView {self.name} {self.spec.type_name} entries={len(self)}>"

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        return (f"<div><b>map {html.escape(self.name)}</b> ({self.spec.type_name}, key "
                f"{self.spec.key_size} B, value {self.spec.value_size} B, max "
                f"{self.spec.max_entries})" + frame.head(20)._repr_html_() + "</div>")


class RingBufView:
    """A ring buffer's records (not consumed by reading them here)."""

    def __init__(self, m: Map, btf: "Btf | None" = None) -> None:
        if not hasattr(m, "records"):
            raise TypeError(f"map {m.name} is a {m.spec.type_name}, not a ring buffer")
        self.map = m
        self.btf = btf
        self.name = m.name

    def records(self) -> list[bytes]:
        return list(self.map.records())

    @property
    def dropped(self) -> int:
        return getattr(self.map, "dropped", 0)

    def to_frame(self, type: str | int | None = None,
                 layout: tuple[str, Sequence[str]] | None = None) -> "pd.DataFrame":
        """Records as rows: decoded by BTF `type` name, or by `layout` = (struct format, names);
        otherwise `size` and `data` (bytes)."""
        import pandas as pd
        rows = []
        for i, rec in enumerate(self.records()):
            row: dict[str, Any] = {"record": i, "size": len(rec)}
            if type is not None:
                if self.btf is None:
                    raise ValueError(f"ring buffer {self.name}: the object has no BTF to decode "
                                     f"{type!r}; pass layout=(format, names)")
                _flatten("", self.btf.decode(type, rec), row)
            elif layout is not None:
                fmt, names = layout
                need = struct.calcsize(fmt)
                if len(rec) < need:
                    raise ValueError(f"ring buffer {self.name}: record {i} has {len(rec)} bytes, "
                                     f"layout needs {need}")
                row.update(zip(names, struct.unpack_from(fmt, rec)))
            else:
                row["data"] = rec
            rows.append(row)
        return pd.DataFrame(rows, columns=None if rows else ["record", "size"])

    def __repr__(self) -> str:
        return f"<RingBufView {self.name} records={len(self.records())} dropped={self.dropped}>"


class PerfView:
    """A perf event array's records per CPU (not consumed by reading them here)."""

    def __init__(self, m: Map, btf: "Btf | None" = None) -> None:
        if not hasattr(m, "records_all"):
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
