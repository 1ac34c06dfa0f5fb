"""What an EVTX file's headers promise, against what the parser read: truncated files and
unreadable chunks made visible.

Layout (the public format notes of libevtx, "Windows XML Event Log (EVTX) format"): a 4096-byte
file header — `ElfFile\\0`, first chunk number (u64 at 8), last chunk number (u64 at 16), next
record identifier (u64 at 24), header size (u32 at 32, 128), minor/major version (u16 at 36/38),
header block size (u16 at 40, 4096), chunk count (u16 at 42), flags (u32 at 120: 1 dirty,
2 full) — then 64 KiB chunks, each opening with `ElfChnk\\0`, first/last event record number
(u64 at 8/16) and first/last event record identifier (u64 at 24/32). Unused chunks of a
pre-allocated log are zeros.

`unread_parts` reads only those headers (a seek per chunk) and compares them with the record
identifiers the parser returned: records a chunk header or a clean file header lists that were
not read, a file that ends inside a chunk, chunks the file header counts that are not there.
A dirty header (copied from a live log) may understate chunks and the next record id, so only
a clean header's counts are trusted; the chunk headers always are.

>>> with open("cut.evtx", "rb") as f:                           # doctest: +SKIP
...     print(unread_parts(f, "cut.evtx", parsed_ids)[0].describe())
"""
from __future__ import annotations

import contextlib
import io
import mmap
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterable

FILE_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
HEADER_SIZE = 4096
CHUNK_SIZE = 65536
DIRTY = 1


@dataclass(frozen=True)
class Unread:
    """The part of one EVTX file that was not read."""

    file: str
    size: int                       # bytes in the file
    cut_bytes: int                  # bytes of a last, incomplete chunk (0: whole chunks)
    cut_chunk: int | None           # that chunk's index
    header_chunks: int | None       # chunks the (clean) file header counts
    absent_chunks: int              # of those, not in the file
    next_record_id: int | None      # the clean file header's next record identifier
    missing: tuple[tuple[int, int], ...] = field(default=())   # record id ranges not read
    bad_chunks: tuple[int, ...] = ()  # chunks with a header whose records were not all read
    unparsed_bytes: int = 0

    @property
    def records(self) -> int:
        """Records the headers list that were not read."""
        return sum(b - a + 1 for a, b in self.missing)

    def ranges(self, limit: int = 4) -> str:
        parts = [f"{a}" if a == b else f"{a}..{b}" for a, b in self.missing[:limit]]
        if len(self.missing) > limit:
            parts.append(f"... ({len(self.missing) - limit} more ranges)")
        return ", ".join(parts)

    def describe(self) -> str:
        what = []
        if self.cut_bytes:
            what.append(f"TRUNCATED: the file ends {self.cut_bytes} bytes into chunk "
                        f"{self.cut_chunk} (chunks are {CHUNK_SIZE} bytes)")
        if self.absent_chunks:
            what.append(f"the header counts {self.header_chunks} chunks, {self.absent_chunks} "
                        f"of them are not in the file")
        if self.bad_chunks and not self.cut_bytes and not self.absent_chunks:
            what.append(f"UNREADABLE chunk(s) {', '.join(map(str, self.bad_chunks[:8]))}")
        elif self.bad_chunks:
            what.append(f"records missing from chunk(s) {', '.join(map(str, self.bad_chunks[:8]))}")
        text = f"{self.file}: " + "; ".join(what)
        if self.missing:
            src = f" (header: next record id {self.next_record_id})" \
                if self.next_record_id is not None else " (chunk headers)"
            text += (f"; {self.records} record(s) the headers list were not read: record ids "
                     f"{self.ranges()}{src}")
        else:
            text += "; no record the headers list is missing (the cut part held none)"
        if self.unparsed_bytes:
            text += f"; {self.unparsed_bytes} bytes not parsed"
        return text


def unread_parts(f: BinaryIO, name: str, parsed: Iterable[int]) -> list[Unread]:
    """[] when the file is whole and every record its headers list was read; else one Unread
    describing what was not (see the module docstring). `parsed`: the record identifiers the
    parser returned."""
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    head = f.read(128)
    if len(head) < 128 or not head.startswith(FILE_MAGIC):
        return []
    _first, _last, next_id = struct.unpack_from("<QQQ", head, 8)
    count, = struct.unpack_from("<H", head, 42)
    flags, = struct.unpack_from("<I", head, 120)
    clean = not flags & DIRTY
    body = max(size - HEADER_SIZE, 0)
    slots = -(-body // CHUNK_SIZE)
    cut = body % CHUNK_SIZE
    ranges: list[tuple[int, int, int]] = []           # (first id, last id, chunk)
    with _whole(f) as data:             # the chunk headers without a read call each
        for i in range(slots):
            at = HEADER_SIZE + i * CHUNK_SIZE
            ch = data[at:at + 40]
            if len(ch) == 40 and ch.startswith(CHUNK_MAGIC):
                first_id, last_id = struct.unpack_from("<QQ", ch, 24)
                if first_id <= last_id:
                    ranges.append((first_id, last_id, i))
    ids = sorted(set(parsed))
    expected = [(a, b) for a, b, _ in ranges]
    absent = max(count - slots, 0) if clean else 0
    if clean and next_id > 0:
        lo = min([a for a, _ in expected] + ids[:1] or [1])
        top = max([b for _, b in expected] + ids[-1:] or [0])
        if next_id - 1 > top:
            expected.append((max(lo, top + 1), next_id - 1))
    missing = _merge([gap for a, b in expected for gap in _gaps(ids, a, b)])
    bad = tuple(sorted({c for a, b, c in ranges if _gaps(ids, a, b)}))
    if not cut and not absent and not missing:
        return []
    unparsed = cut + sum(CHUNK_SIZE for c in bad if c != slots - 1 or not cut)
    return [Unread(name, size, cut, (slots - 1) if cut else None,
                   count if clean else None, absent, next_id if clean else None,
                   tuple(missing), bad, unparsed)]


@contextlib.contextmanager
def _whole(f: BinaryIO):
    """The file's bytes: mapped when it is a file on disk, else read."""
    try:
        data: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        f.seek(0)
        yield f.read()
        return
    try:
        yield data
    finally:
        data.close()


def _gaps(ids: list[int], lo: int, hi: int) -> list[tuple[int, int]]:
    """Ranges of [lo, hi] not in the sorted, distinct `ids`."""
    import bisect
    i = bisect.bisect_left(ids, lo)
    if bisect.bisect_right(ids, hi) - i == hi - lo + 1:
        return []                               # all there (the usual case): no walk
    out = []
    at = lo
    while i < len(ids) and ids[i] <= hi:
        if ids[i] > at:
            out.append((at, ids[i] - 1))
        at = ids[i] + 1
        i += 1
    if at <= hi:
        out.append((at, hi))
    return out


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
