"""Records to DataFrames, column-wise: ring-buffer and perf records decoded by their BTF type.

A record type that is a struct of integers, enums, pointers, floats and byte arrays (nested
structs included) is decoded with numpy over all records at once; anything else (bitfields,
arrays of wider elements, unions) falls back to `Btf.decode` record by record. Both give the
same columns and values: one column per leaf field (nested fields dotted, as "hdr.len"),
integers as pandas infers them from Python ints (int64, uint64 only for unsigned 64-bit values
past 2**63), byte arrays as `bytes`.

>>> records_frame(btf, "process_info_t", data, offsets, lengths)   # doctest: +SKIP
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ..elf.btf import Btf

_NP = {(1, False): "<u1", (2, False): "<u2", (4, False): "<u4", (8, False): "<u8",
       (1, True): "<i1", (2, True): "<i2", (4, True): "<i4", (8, True): "<i8"}


def _leaves(btf: "Btf", tid: int, offset: int, prefix: str, out: list) -> bool:
    """Append (column, offset, kind, size, signed) for every leaf of `tid`; False when some leaf
    needs the record-by-record decoder."""
    from ..elf.btf import INT_BOOL
    tid = btf.resolve(tid)
    t = btf.types[tid]
    k = t.kind
    if k == "INT":
        if t.bit_offset or (t.bits and t.bits < 8 * t.size) or t.size not in (1, 2, 4, 8):
            return False
        kind = "bool" if t.encoding & INT_BOOL else "int"
        out.append((prefix, offset, kind, t.size, t.signed))
        return True
    if k in ("ENUM", "ENUM64"):
        if t.size not in (1, 2, 4, 8):
            return False
        out.append((prefix, offset, "int", t.size, bool(t.kind_flag)))
        return True
    if k == "PTR":
        out.append((prefix, offset, "int", 8, False))
        return True
    if k == "FLOAT":
        if t.size not in (4, 8):
            return False
        out.append((prefix, offset, "float", t.size, True))
        return True
    if k == "ARRAY":
        et = btf.types[btf.resolve(t.elem_type)]
        if et.kind == "INT" and et.size == 1 and not et.encoding & INT_BOOL and et.bits in (0, 8):
            out.append((prefix, offset, "bytes", t.nelems, False))
            return True
        return False
    if k == "STRUCT":
        for m in t.members:
            mt = btf.types[btf.resolve(m.type_id)]
            if m.bitfield_size or m.bit_offset % 8:
                return False
            if mt.kind == "INT" and (mt.bit_offset or (mt.bits and mt.bits < 8 * mt.size)):
                return False
            if not m.name:
                if mt.kind not in ("STRUCT", "UNION"):
                    continue          # padding
                if not _leaves(btf, m.type_id, offset + m.bit_offset // 8, prefix, out):
                    return False
                continue
            name = f"{prefix}.{m.name}" if prefix else m.name
            if not _leaves(btf, m.type_id, offset + m.bit_offset // 8, name, out):
                return False
        return True
    return False


def _column(values: np.ndarray, kind: str) -> Any:
    if kind == "int":
        if values.dtype == np.uint64 and len(values) and values.max() >= 1 << 63:
            return values
        return values.astype(np.int64)
    if kind == "bool":
        return values != 0
    if kind == "float":
        return values.astype(np.float64)
    return values


def records_frame(btf: "Btf | None", type_id: int | str | None, data: np.ndarray,
                  offsets: np.ndarray, lengths: np.ndarray, columns: dict | None = None,
                  where: str = "") -> "pd.DataFrame":
    """A DataFrame of the records data[offsets[i]:offsets[i] + lengths[i]]: the given
    `columns` first, then `size`, then the fields of `type_id` (BTF), or `data` (bytes)."""
    import pandas as pd
    n = len(offsets)
    out: dict[str, Any] = dict(columns or {})
    out["size"] = np.asarray(lengths, np.int64)
    if type_id is None:
        out["data"] = np.array([bytes(data[o:o + n_]) for o, n_ in zip(offsets, lengths)],
                               dtype=object)
        return pd.DataFrame(out)
    if btf is None:
        raise ValueError(f"{where}: the object has no BTF to decode {type_id!r}; pass "
                         f"layout=(format, names)")
    tid = btf.resolve(btf._id(type_id))
    size = btf.sizeof(tid)
    leaves: list = []
    short = np.flatnonzero(np.asarray(lengths) < size)
    if len(short):
        i = int(short[0])
        raise ValueError(f"{where}: record {i} has {int(lengths[i])} bytes, the type "
                         f"{btf.type_name(tid)} needs {size}")
    if n and _leaves(btf, tid, 0, "", leaves):
        idx = np.asarray(offsets, np.int64)[:, None] + np.arange(size, dtype=np.int64)
        rows = np.asarray(data, np.uint8)[idx]                  # (n, size)
        for name, off, kind, width, signed in leaves:
            chunk = np.ascontiguousarray(rows[:, off:off + width])
            if kind == "bytes":
                out[name] = np.array([r.tobytes() for r in chunk], dtype=object)
            elif kind == "float":
                out[name] = _column(chunk.view("<f4" if width == 4 else "<f8").ravel(), kind)
            else:
                out[name] = _column(chunk.view(_NP[(width, signed)]).ravel(), kind)
        return pd.DataFrame(out)
    from .views import _flatten
    records = []
    for o, n_ in zip(offsets, lengths):
        row: dict[str, Any] = {}
        _flatten("", btf.decode(tid, bytes(data[o:o + n_])), row)
        records.append(row)
    fields = pd.DataFrame(records) if records else pd.DataFrame()
    frame = pd.DataFrame(out)
    return pd.concat([frame, fields], axis=1) if len(fields.columns) else frame


def buffer_of(records: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data, offsets, lengths) of a list of records."""
    lengths = np.fromiter((len(r) for r in records), np.int64, len(records))
    offsets = np.zeros(len(records), np.int64)
    if len(records) > 1:
        np.cumsum(lengths[:-1], out=offsets[1:])
    data = np.frombuffer(b"".join(records), np.uint8) if records else np.zeros(0, np.uint8)
    return data, offsets, lengths


# -- byte columns that hold text ------------------------------------------------------------------
def _printable(text: str) -> bool:
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def _utf16(value: bytes) -> str | None:
    """UTF-16LE up to the first (aligned) NUL unit, or None when it does not read as text."""
    end = 0
    while True:
        end = value.find(b"\x00\x00", end)
        if end < 0:
            end = len(value) - len(value) % 2
            break
        if end % 2 == 0:
            break
        end += 1
    body = value[:end]
    if not body:
        return ""
    # ASCII text read as UTF-16 pairs two letters in one unit: require zero high bytes for
    # most Latin-range units, as Windows paths and command lines have
    if sum(1 for b in body[1::2] if b == 0) * 2 < len(body) // 2:
        return None
    try:
        text = body.decode("utf-16-le")
    except UnicodeDecodeError:
        return None
    return text if _printable(text) else None


def _ascii(value: bytes) -> str | None:
    body = value.split(b"\x00", 1)[0]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if _printable(text) else None


def _sid(value: bytes) -> str | None:
    from ..hooks.process import sid_from_bytes
    if len(value) < 8 or value[0] != 1 or value[1] > 15 or len(value) < 8 + 4 * value[1]:
        return None
    if any(value[8 + 4 * value[1]:]):          # a SID buffer is zero past the SID
        return None
    return sid_from_bytes(value[:8 + 4 * value[1]])


def decode_text_columns(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Byte-array columns that hold text become strings: SIDs ("S-1-5-18", in columns whose
    name says sid), UTF-16LE (Windows strings) or UTF-8/ASCII, each trimmed at its terminator.
    A column is decoded only when every non-empty value reads as that kind of text; otherwise
    it stays bytes. The data is not truncated (only pandas' display is)."""
    import pandas as pd
    for name in list(frame.columns):
        col = frame[name]
        if col.dtype != object:
            continue
        values = col.tolist()
        if not values or not all(isinstance(v, (bytes, bytearray)) or v is None
                                 for v in values):
            continue
        present = [bytes(v) for v in values if v is not None]
        if not present or not any(any(v) for v in present):
            continue
        decoders = [_utf16, _ascii]
        if "sid" in str(name).lower():
            decoders.insert(0, _sid)
        for decode in decoders:
            decoded = [None if v is None else (decode(bytes(v)) if any(v) else "")
                       for v in values]
            if all(d is not None for d, v in zip(decoded, values) if v is not None):
                frame[name] = pd.array(decoded, dtype="string")
                break
    return frame


def with_utc_times(frame: "pd.DataFrame", columns: tuple[str, ...] = ("time",)) -> "pd.DataFrame":
    """Event times (nanoseconds since 1970) as UTC datetimes, NaT where unknown (0), as every
    hook's `verdicts()` shows them."""
    import pandas as pd
    for name in columns:
        if name in frame.columns and pd.api.types.is_numeric_dtype(frame[name].dtype):
            ns = pd.to_numeric(frame[name], errors="coerce")
            frame[name] = pd.to_datetime(ns.where(ns > 0), unit="ns", utc=True)
    return frame


def text_dtype() -> "pd.StringDtype":
    """The dtype of every text column a hook's frames have: pyarrow strings whose missing value
    is <NA> (an allowed event's `decided_by` reads <NA>, not NaN)."""
    import pandas as pd
    return pd.StringDtype("pyarrow")


def as_text(frame: "pd.DataFrame", columns: tuple[str, ...]) -> "pd.DataFrame":
    """`columns` of `frame` (those it has) in text_dtype(), whatever the rows held (all missing
    included); None and NaN become <NA>."""
    dtype = text_dtype()
    for name in columns:
        if name in frame.columns and frame[name].dtype != dtype:
            frame[name] = frame[name].astype(dtype)
    return frame
