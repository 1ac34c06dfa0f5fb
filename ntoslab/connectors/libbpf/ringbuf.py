"""`RingBuffer`: a libbpf ring-buffer consumer calling Python per record."""
from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import logging
from typing import TYPE_CHECKING

from .api import RING_BUFFER_SAMPLE_FN
from .errors import errno_name
from .objects import BpfMap

if TYPE_CHECKING:
    from .library import Libbpf


log = logging.getLogger("ntoslab.libbpf")

class RingBuffer:
    """A libbpf ring_buffer consumer. `callback(data: bytes)` runs inside poll()/consume() on
    the polling thread; returning a negative int stops the poll (libbpf's convention). An
    exception in the callback stops the poll and is re-raised from poll()/consume()."""

    def __init__(self, libbpf: Libbpf, map_or_fd: BpfMap | int, callback) -> None:
        self.libbpf = libbpf
        self.callback = callback
        self.error: BaseException | None = None
        self.owner = map_or_fd.obj if isinstance(map_or_fd, BpfMap) else None
        fd = map_or_fd.fd if isinstance(map_or_fd, BpfMap) else int(map_or_fd)
        what = map_or_fd.name if isinstance(map_or_fd, BpfMap) else f"fd {fd}"
        self._fn = RING_BUFFER_SAMPLE_FN(self._on_sample)   # must outlive the ring_buffer
        self._extra: list = []
        with libbpf.capture_log() as lines:
            ptr = libbpf.lib.ring_buffer__new(fd, self._fn, None, None)
            if not ptr:
                raise libbpf.error(ctypes.get_errno() or _errno.EINVAL,
                                   f"ring_buffer__new({what})", "ringbuf", "".join(lines))
        self.ptr = ptr
        self.records = 0
        if self.owner is not None:
            self.owner.ring_buffers.append(self)

    def _on_sample(self, ctx: int, data: int, size: int) -> int:
        try:
            self.records += 1
            ret = self.callback(ctypes.string_at(data, size))
            return int(ret) if isinstance(ret, int) and ret < 0 else 0
        except BaseException as exc:  # noqa: BLE001 - re-raised by poll()
            self.error = exc
            return -_errno.ECANCELED

    def add(self, map_or_fd: BpfMap | int, callback=None) -> None:
        """ring_buffer__add: consume another ring buffer map in the same poll."""
        fd = map_or_fd.fd if isinstance(map_or_fd, BpfMap) else int(map_or_fd)
        fn = self._fn if callback is None else RING_BUFFER_SAMPLE_FN(
            lambda ctx, data, size: (callback(ctypes.string_at(data, size)) or 0))
        self._extra.append(fn)
        self.libbpf._check(self.libbpf.lib.ring_buffer__add(self._ptr(), fd, fn, None),
                           f"ring_buffer__add(fd {fd})", "ringbuf")

    def _ptr(self) -> int:
        if not self.ptr:
            raise ValueError("the ring buffer is freed")
        return self.ptr

    def _run(self, ret: int, what: str) -> int:
        if self.error is not None:
            exc, self.error = self.error, None
            raise exc
        if ret < 0 and errno_name(ret, self.libbpf.platform) == "EINTR":
            return 0
        return self.libbpf._check(ret, what, "ringbuf")

    def poll(self, timeout_ms: int = 100) -> int:
        """Wait up to timeout_ms for records and consume them; the number consumed."""
        if not self.libbpf.has("ring_buffer__poll"):
            raise self.libbpf.error(_errno.ENOTSUP if self.libbpf.platform == "linux" else 129,
                                    "ring_buffer__poll", "ringbuf")
        return self._run(self.libbpf.lib.ring_buffer__poll(self._ptr(), timeout_ms),
                         "ring_buffer__poll")

    def consume(self) -> int:
        """Consume whatever is available now, without waiting."""
        if not self.libbpf.has("ring_buffer__consume"):
            raise self.libbpf.error(_errno.ENOTSUP if self.libbpf.platform == "linux" else 129,
                                    "ring_buffer__consume", "ringbuf")
        return self._run(self.libbpf.lib.ring_buffer__consume(self._ptr()),
                         "ring_buffer__consume")

    def epoll_fd(self) -> int:
        """The epoll fd that becomes readable when records are waiting (-1 if unavailable):
        select() on it with other fds, then consume()."""
        if not self.libbpf.has("ring_buffer__epoll_fd"):
            return -1
        return self.libbpf.lib.ring_buffer__epoll_fd(self._ptr())

    def free(self) -> None:
        """ring_buffer__free (idempotent). Never call it while another thread polls."""
        if self.ptr:
            ptr, self.ptr = self.ptr, None
            self.libbpf.lib.ring_buffer__free(ptr)
        if self.owner is not None and self in self.owner.ring_buffers:
            self.owner.ring_buffers.remove(self)

    def __enter__(self) -> "RingBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.free()
