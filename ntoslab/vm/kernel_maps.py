"""Linux kernel maps for the kernel oracle: create them with bpf(2), load programs that use them,
read and write them from user space, and read a ring buffer's records through its mmap.

Programs name maps as ntoslab's loader leaves them: ``lddw rN, map`` with src 1 (map fd) and imm
the map's index; `load_with_maps` puts each map's fd in that imm before BPF_PROG_LOAD. Helper
ids 1-3 (map lookup/update/delete) are the same on Linux and Windows; the ring buffer's output
helper is 130 on Linux (11 on Windows).

>>> m = KernelMap(LinuxKernel(), "hash", 4, 8, 16)              # doctest: +SKIP
>>> m.update((1).to_bytes(4, "little"), bytes(8)); m.items()    # doctest: +SKIP
"""
from __future__ import annotations

import ctypes
import mmap
import os
import struct
from typing import Sequence

from .kernel import ATTR_SIZE, LinuxKernel

BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM = 0, 1, 2
BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY = 3, 4
# Linux map type ids (include/uapi/linux/bpf.h), by ntoslab's (Windows) type names
LINUX_MAP_TYPES = {"hash": 1, "array": 2, "percpu_hash": 5, "percpu_array": 6, "lru_hash": 9,
                   "lru_percpu_hash": 10, "ringbuf": 27}
LINUX_HELPER_RINGBUF_OUTPUT = 130
PERCPU = ("percpu_hash", "percpu_array", "lru_percpu_hash")
PAGE = mmap.PAGESIZE
BUSY_BIT, DISCARD_BIT = 1 << 31, 1 << 30


def possible_cpus() -> int:
    """How many value slots a per-CPU map has per key (the kernel's possible CPUs)."""
    text = open("/sys/devices/system/cpu/possible").read().strip()
    last = 0
    for part in text.split(","):
        last = max(last, int(part.split("-")[-1]))
    return last + 1


class KernelMap:
    """One Linux map (its fd), with user-space lookup/update/delete/iteration."""

    def __init__(self, kernel: LinuxKernel, type_name: str, key_size: int, value_size: int,
                 max_entries: int, flags: int = 0, name: str = "ntoslab") -> None:
        self.kernel = kernel
        self.type_name = type_name
        self.key_size, self.value_size, self.max_entries = key_size, value_size, max_entries
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into("<IIIII", attr, 0, LINUX_MAP_TYPES[type_name], key_size, value_size,
                         max_entries, flags)
        struct.pack_into("16s", attr, 28, name.encode()[:15])
        self.fd = kernel._bpf(BPF_MAP_CREATE, attr)
        self.ncpus = possible_cpus() if type_name in PERCPU else 1
        # user space reads and writes pad8(value_size) per possible CPU for per-CPU maps
        self.user_value_size = ((value_size + 7) & ~7) * self.ncpus \
            if type_name in PERCPU else value_size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "KernelMap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _elem(self, cmd: int, key: bytes | None, value: ctypes.Array | None,
              flags: int = 0) -> int:
        k = ctypes.create_string_buffer(bytes(key), len(key)) if key is not None else None
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into("<IIQQQ", attr, 0, self.fd, 0, ctypes.addressof(k) if k else 0,
                         ctypes.addressof(value) if value is not None else 0, flags)
        return self.kernel._bpf(cmd, attr)

    def lookup(self, key: bytes) -> bytes | None:
        """The value (per-CPU maps: every possible CPU's pad8 slot), or None."""
        out = ctypes.create_string_buffer(self.user_value_size)
        try:
            self._elem(BPF_MAP_LOOKUP_ELEM, key, out)
        except OSError as exc:
            if exc.errno == 2:
                return None
            raise
        return out.raw

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        v = ctypes.create_string_buffer(bytes(value), self.user_value_size)
        self._elem(BPF_MAP_UPDATE_ELEM, key, v, flags)

    def delete(self, key: bytes) -> None:
        self._elem(BPF_MAP_DELETE_ELEM, key, None)

    def keys(self) -> list[bytes]:
        """Every key, in the kernel's iteration order."""
        out: list[bytes] = []
        key = None
        while True:
            nxt = ctypes.create_string_buffer(self.key_size)
            try:
                self._elem(BPF_MAP_GET_NEXT_KEY, key, nxt)
            except OSError as exc:
                if exc.errno == 2:
                    return out
                raise
            key = nxt.raw
            out.append(key)

    def items(self) -> dict[bytes, bytes]:
        out = {}
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                out[k] = v
        return out

    def records(self) -> list[bytes]:
        """A ring buffer's committed records between its consumer and producer positions."""
        if self.type_name != "ringbuf":
            raise TypeError(f"{self.type_name} map has no records")
        with mmap.mmap(self.fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                       offset=0) as cons, \
                mmap.mmap(self.fd, PAGE + 2 * self.max_entries, mmap.MAP_SHARED,
                          mmap.PROT_READ, offset=PAGE) as prod:
            consumer, = struct.unpack_from("<Q", cons, 0)
            producer, = struct.unpack_from("<Q", prod, 0)
            data = prod[PAGE:PAGE + 2 * self.max_entries]  # the data pages are mapped twice
        out, pos, mask = [], consumer, self.max_entries - 1
        while pos < producer:
            header, = struct.unpack_from("<I", data, pos & mask)
            if header & BUSY_BIT:
                break
            length = header & ~(BUSY_BIT | DISCARD_BIT)
            start = (pos & mask) + 8
            if not header & DISCARD_BIT:
                out.append(bytes(data[start:start + length]))
            pos += (length + 8 + 7) & ~7
        return out


def relocate(code: bytes, maps: Sequence[KernelMap]) -> bytes:
    """`code` with every map-fd lddw (src 1, imm = map index) carrying that map's fd."""
    out = bytearray(code)
    pc = 0
    while pc * 8 < len(out):
        opcode, regs = out[pc * 8], out[pc * 8 + 1]
        if opcode == 0x18:
            if regs >> 4 == 1:
                index, = struct.unpack_from("<i", out, pc * 8 + 4)
                if not 0 <= index < len(maps):
                    raise LookupError(f"pc {pc}: lddw names map index {index}; "
                                      f"{len(maps)} maps given")
                struct.pack_into("<i", out, pc * 8 + 4, maps[index].fd)
                struct.pack_into("<i", out, pc * 8 + 12, 0)
            pc += 2
        else:
            pc += 1
    return bytes(out)


def load_with_maps(kernel: LinuxKernel, code: bytes, maps: Sequence[KernelMap],
                   name: str = "ntoslab") -> int:
    """Load `code` (a socket filter) with its map-fd lddws bound to `maps`; the program fd."""
    return kernel.load(relocate(code, maps), name)
