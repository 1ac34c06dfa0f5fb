"""What kind of event file a file is, and the small format rules the readers share.

`intake.py` reads the records: EVTX files with the `evtx` package (Rust), which walks every
chunk in the file rather than trusting the header's chunk count (files copied from a live log
have a dirty header that says 1 chunk where there are 17), one thread (`EVTX_THREADS`);
Mordor/OTRF JSON lines decoded with orjson (the standard library's wording of why a line is not
JSON is the one reported); `.zip` members read whole. This module says which is which
(`kind_of`: by magic, then by suffix), splits JSON lines, and sizes inputs for progress bars.

>>> kind_of(b"ElfFile\x00", "Security.evtx")     # doctest: +SKIP
'evtx'
"""
from __future__ import annotations

import zipfile
from pathlib import Path

EVTX_MAGIC = b"ElfFile\x00"
ZIP_MAGIC = b"PK\x03\x04"
EVTX_THREADS = 1      # the parser's own threads: one is fastest on a shared 2-core machine


class SourceError(ValueError):
    """A file that cannot be read as an event log at all."""


def _json_reason(line, exc) -> str:
    """The standard library's wording of why a line is not JSON (stable across parsers)."""
    import json
    try:
        json.loads(line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line)
    except json.JSONDecodeError as std:
        return std.msg
    except Exception:
        pass
    return str(exc).split(":", 1)[0]


def _json_type(obj) -> str:
    return {list: "list", str: "str", int: "int", float: "float", bool: "bool"}.get(
        type(obj), type(obj).__name__) if obj is not None else "NoneType"


def kind_of(head: bytes, name: str) -> str:
    if head.startswith(EVTX_MAGIC):
        return "evtx"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    suffix = Path(name).suffix.lower()
    if suffix in (".json", ".jsonl", ".ndjson", ".log", ".txt"):
        return "json"
    if suffix == ".evtx":
        return "evtx"
    if head.lstrip()[:1] == b"{":
        return "json"
    raise SourceError(f"{name}: neither EVTX, a zip archive nor JSON lines")


def _lines(data: bytes) -> list[bytes]:
    """The lines of a whole JSON-lines file (a UTF-8 byte-order mark dropped)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.split(b"\n")


def input_size(path: str | Path) -> int:
    """Bytes of event data a file holds (uncompressed size for archives); for progress bars."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return sum(i.file_size for i in z.infolist())
        return path.stat().st_size
    except OSError:
        return 0
