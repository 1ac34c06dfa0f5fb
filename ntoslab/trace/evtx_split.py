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
run takes the file's tail, a cut chunk included; the first, read by the calling process, is
`FIRST_SHARE_EXTRA` larger); smaller files, and files whose header is not
a plain 4096-byte one, are read whole in-process as before (no pool is started for them), and
so is every file where processes cannot be forked safely (only Linux splits: Windows has no
fork, macOS's system libraries are not fork-safe).
`run_shares` reads the first share in the calling process and the others in `workers - 1`
worker processes, started on first use and kept for later calls (forked: a spawned or
forkserver child re-runs the caller's `__main__`, which breaks a script without a main guard;
the children run only the parser, orjson, numpy and Arrow kernels on the calling thread, none
of which needs a thread of the parent). Each worker has its own pipe: the job goes down it
before the calling process starts its own share, the result comes back up it (an executor's
feeder threads would wait for the GIL the calling process holds while it parses: measured
10-20 ms late at each end). A worker that raises or dies is an `EvtxWorkerError` naming the
file and its chunks, and dead workers are replaced on the next call.

>>> parts = run_shares(path, shares(path, 2), read_share, "all")   # doctest: +SKIP
"""
from __future__ import annotations

import io
import mmap
import multiprocessing
import os
import pickle
import struct
import sys
from multiprocessing.reduction import recv_handle, send_handle
from pathlib import Path
from typing import Any, Callable

from .evtx_layout import CHUNK_SIZE, FILE_MAGIC, HEADER_SIZE

# below this a file is read in-process: starting work in another process, pickling its rows
# back and merging cost more than the second core saves (measured: benchmarks/trace.py)
MIN_PARALLEL_BYTES = 4 << 20

SPLITS = sys.platform.startswith("linux")
# how much larger the calling process's share is than a worker's: a worker's result takes
# ~8% of its reading time to come back (pickled, through shared memory: benchmarks/trace.py)
FIRST_SHARE_EXTRA = 0.04
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
    # the first share is read here and needs no sending back: it takes a little more
    weights = [1 + FIRST_SHARE_EXTRA] + [1.0] * (workers - 1)
    total, at, bounds = sum(weights), 0.0, [0]
    for w in weights:
        at += w
        bounds.append(min(chunks, int(chunks * at / total + 1e-9)))
    bounds[-1] = chunks
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


class _Worker:
    """A forked process that runs the jobs sent over its pipe, one at a time, and sends back
    ("ok", result) or ("error", what was raised)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, self.conn), daemon=True,
                                   name="ntoslab-evtx-share")
        self.process.start()
        child.close()

    def stop(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5)


def _serve(conn, parent_end) -> None:
    parent_end.close()           # the parent's end, inherited: closed, so a dead parent is EOF
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            result = fn(*args)
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            continue
        try:
            _send_result(conn, result)
        except (EOFError, OSError):
            return
        except Exception as exc:          # a result that does not pickle
            conn.send(("error", f"its result could not be sent back: {type(exc).__name__}: "
                                f"{exc}"))


def _send_result(conn, result: Any) -> None:
    """Pickle `result` with its large buffers (numpy and Arrow) out of band, in an anonymous
    shared file whose descriptor follows the pickle down the pipe: one copy of each buffer,
    none through the pipe, none on the reading side."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(result, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    sizes = [v.nbytes for v in views]
    total = sum(sizes)
    if not total or not hasattr(os, "memfd_create"):
        conn.send(("ok", data, [bytes(v) for v in views]))
        return
    fd = os.memfd_create("ntoslab-share", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, total)
        with mmap.mmap(fd, total) as shared:
            at = 0
            for v in views:
                shared[at:at + v.nbytes] = v
                at += v.nbytes
        conn.send(("shared", data, sizes))
        send_handle(conn, fd, os.getppid())
    finally:
        os.close(fd)


def _receive_result(conn) -> tuple[str, Any]:
    """("ok", result) or ("error", what), as `_serve` sent them."""
    reply = conn.recv()
    if reply[0] == "error":
        return reply
    status, data, parts = reply
    if status == "ok":
        return "ok", pickle.loads(data, buffers=parts)
    fd = recv_handle(conn)
    try:                         # a private mapping: the arrays are writable, as they were
        shared = mmap.mmap(fd, sum(parts), access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
    view, views, at = memoryview(shared), [], 0
    for size in parts:
        views.append(view[at:at + size])
        at += size
    return "ok", pickle.loads(data, buffers=views)


_pool: list[_Worker] | None = None


def _workers(size: int) -> list[_Worker]:
    global _pool
    if _pool is not None and len(_pool) == size and all(w.process.is_alive() for w in _pool):
        return _pool
    close_pool()
    _pool = [_Worker() for _ in range(size)]
    return _pool


def close_pool() -> None:
    """Stop the worker processes (a later parallel read starts new ones)."""
    global _pool
    if _pool is not None:
        for w in _pool:
            w.stop()
        _pool = None


def run_shares(path: str, parts: list[Share], fn: Callable[..., Any], *args: Any) -> list[Any]:
    """`fn(path, share, *args)` for every share, in share order: the first here, the rest in
    the worker processes (`fn` and its arguments must pickle: a module-level function). The
    jobs are sent before the first share starts here, straight down each worker's pipe, and
    the results read back the same way (no thread in between waits for the GIL)."""
    def started() -> list[_Worker]:
        pool = _workers(len(parts) - 1)
        for w, share in zip(pool, parts[1:]):
            w.conn.send((fn, (path, share, *args)))
        return pool
    try:
        pool = started()
    except (OSError, EOFError):         # a worker that died between calls: one more start
        close_pool()
        pool = started()
    try:
        out = [fn(path, parts[0], *args)]
    except BaseException:
        close_pool()                    # their results would answer the next call
        raise
    for share, w in zip(parts[1:], pool):
        try:
            status, value = _receive_result(w.conn)
        except (EOFError, OSError):
            close_pool()
            raise EvtxWorkerError(f"{path}: the process reading {describe(share)} died "
                                  f"before it finished (killed, or out of memory?)") from None
        except BaseException:
            close_pool()
            raise
        if status != "ok":
            close_pool()
            raise EvtxWorkerError(f"{path}: the process reading {describe(share)} failed: "
                                  f"{value}")
        out.append(value)
    return out
