"""A large EVTX file read by several processes: its chunks split into consecutive shares.

An EVTX file is a 4096-byte file header and 64 KiB chunks that each carry their own string and
template tables, so a run of chunks can be parsed on its own. The `evtx` parser (checked in its
source, `EvtxFileHeader::from_bytes` and `EvtxParser::find_next_chunk`) reads from the file
header only its magic and its header block size, and walks chunk slots by position until the
stream ends: the file header followed by a share's chunks (`share_stream`) is a file it reads
exactly as it reads those chunks in the whole file — the same records, the same errors for a
bad chunk, a last incomplete chunk ignored in both — so nothing in the header needs rewriting.
Record numbers (`event_record_id`, EventRecordID) live in the records, not in their position.

`shares` splits a file of at least `min_bytes` into `workers` runs of whole chunks (the last
run takes the file's tail, a cut chunk included); smaller files, and files whose header is not
a plain 4096-byte one, are read whole in-process as before (no pool is started for them), and
so is every file where processes cannot be forked safely (only Linux splits: Windows has no
fork, macOS's system libraries are not fork-safe).
`run_shares` reads the first share in the calling process and the others in a pool of
`workers - 1` processes, started on first use and kept for later calls (forked: a spawned or
forkserver child re-runs the caller's `__main__`, which breaks a script without a main guard;
the children run only the parser, orjson, numpy and Arrow kernels on the calling thread, none
of which needs a thread of the parent); a worker that raises or dies is an `EvtxWorkerError`
naming the file and its chunks, and a dead pool is replaced on the next call.

>>> parts = run_shares(path, shares(path, 2), read_share, "all")   # doctest: +SKIP
"""
from __future__ import annotations

import io
import mmap
import multiprocessing
import os
import struct
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

from .evtx_layout import CHUNK_SIZE, FILE_MAGIC, HEADER_SIZE

# below this a file is read in-process: starting work in another process, pickling its rows
# back and merging cost more than the second core saves (measured: benchmarks/trace.py)
MIN_PARALLEL_BYTES = 4 << 20

SPLITS = sys.platform.startswith("linux")
Share = tuple[int, int | None]      # first chunk, chunk after the last (None: to the file's end)


class EvtxWorkerError(RuntimeError):
    """A process reading part of an EVTX file raised or died."""


def default_workers() -> int:
    return os.cpu_count() or 1


def shares(path: str | Path, workers: int, min_bytes: int = MIN_PARALLEL_BYTES) -> list[Share] | None:
    """Consecutive runs of whole chunks, one per worker, or None: read the file whole (one
    worker, a file smaller than `min_bytes` or with fewer chunks than workers, a file header
    that is not the plain 4096-byte one, a system that is not Linux)."""
    if workers <= 1 or not SPLITS:
        return None
    try:
        size = os.path.getsize(path)
        if size < max(min_bytes, HEADER_SIZE + CHUNK_SIZE):
            return None
        with open(path, "rb") as f:
            head = f.read(HEADER_SIZE)
    except OSError:
        return None
    if len(head) < HEADER_SIZE or not head.startswith(FILE_MAGIC) or \
            struct.unpack_from("<H", head, 40)[0] != HEADER_SIZE:
        return None
    chunks = (size - HEADER_SIZE) // CHUNK_SIZE
    workers = min(workers, chunks)
    if workers <= 1:
        return None
    bounds = [chunks * i // workers for i in range(workers + 1)]
    return [(a, b if i < workers - 1 else None)
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]


def share_stream(path: str | Path, share: Share) -> io.RawIOBase | io.BytesIO:
    """The file header followed by the share's chunks (to the file's end for the last), as a
    file object over the mapped file (no copy of the share is made)."""
    first, stop = share
    try:
        return ShareReader(path, first, stop)
    except (OSError, ValueError):        # a file that cannot be mapped: the bytes, copied
        with open(path, "rb") as f:
            head = f.read(HEADER_SIZE)
            f.seek(HEADER_SIZE + first * CHUNK_SIZE)
            body = f.read() if stop is None else f.read((stop - first) * CHUNK_SIZE)
        return io.BytesIO(head + body)


class ShareReader(io.RawIOBase):
    """A read-only file of an EVTX file's header and its chunks `first` to `stop` (None: to
    the end), over the mapped file."""

    def __init__(self, path: str | Path, first: int, stop: int | None) -> None:
        super().__init__()
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        size = len(self._map)
        self._lo = min(HEADER_SIZE + first * CHUNK_SIZE, size)
        self._hi = size if stop is None else min(HEADER_SIZE + stop * CHUNK_SIZE, size)
        self._size = min(HEADER_SIZE, size) + max(self._hi - self._lo, 0)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._size)[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        left = max(self._size - self._pos, 0)
        n = left if size is None or size < 0 else min(size, left)
        out = []
        while n > 0:
            if self._pos < HEADER_SIZE:
                k = min(n, HEADER_SIZE - self._pos)
                out.append(self._map[self._pos:self._pos + k])
            else:
                k = n
                at = self._lo + self._pos - HEADER_SIZE
                out.append(self._map[at:at + k])
            self._pos += k
            n -= k
        return b"".join(out)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._map.close()
        super().close()


def describe(share: Share) -> str:
    first, stop = share
    return f"chunks {first}..{'end' if stop is None else stop - 1}"


_pool: tuple[int, ProcessPoolExecutor] | None = None


def _executor(size: int) -> ProcessPoolExecutor:
    global _pool
    if _pool is not None and _pool[0] == size:
        return _pool[1]
    close_pool()
    ctx = multiprocessing.get_context("fork")
    _pool = (size, ProcessPoolExecutor(size, mp_context=ctx))
    return _pool[1]


def close_pool() -> None:
    """Stop the worker processes (a later parallel read starts new ones)."""
    global _pool
    if _pool is not None:
        _pool[1].shutdown(wait=False, cancel_futures=True)
        _pool = None


def run_shares(path: str, parts: list[Share], fn: Callable[..., Any], *args: Any) -> list[Any]:
    """`fn(path, share, *args)` for every share, in share order: the first here, the rest in
    the worker pool (`fn` and its arguments must pickle: a module-level function)."""
    try:
        pool = _executor(len(parts) - 1)
        futures: list[Future] = [pool.submit(fn, path, s, *args) for s in parts[1:]]
    except BrokenProcessPool:          # a pool that died between calls: one more start
        close_pool()
        pool = _executor(len(parts) - 1)
        futures = [pool.submit(fn, path, s, *args) for s in parts[1:]]
    try:
        out = [fn(path, parts[0], *args)]
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    for share, f in zip(parts[1:], futures):
        try:
            out.append(f.result())
        except BrokenProcessPool:
            close_pool()
            for g in futures:
                g.cancel()
            raise EvtxWorkerError(f"{path}: the process reading {describe(share)} died "
                                  f"before it finished (killed, or out of memory?)") from None
        except Exception as exc:
            for g in futures:
                g.cancel()
            raise EvtxWorkerError(f"{path}: the process reading {describe(share)} failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
    return out
