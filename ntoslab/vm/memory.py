"""The sandboxed address space eBPF programs run in.

Every byte a program may touch lives in a window of the native address space
(ntoslab/native/space.c): 1 TiB of virtual addresses per window, one table entry each. A plain
`Region` (a stack frame, the context, the command-line "packet", a helper buffer) is one window;
a map's values live in windows of slots at a stride of the value plus a 2**29-byte guard gap
(the largest offset a verifier accepts), so an access that strays off a value faults instead of
reaching the next value or region, and a stale pointer to a freed
value faults too. Every load and store is checked, here for the interpreter and in the JIT's
inlined copy of the same rule; a stray access raises `MemoryFault` naming the region it came
closest to.

>>> mem = AddressSpace()
>>> r = mem.add("scratch", bytearray(16))
>>> mem.store(r.base + 8, 4, 0xdeadbeef); hex(mem.load(r.base + 8, 4))
'0xdeadbeef'
"""
from __future__ import annotations

import ctypes
import struct
import weakref
from enum import StrEnum
from typing import Any, Callable

from ..native import lib
from ..native.abi import FIRST_WINDOW, W_MAP, W_WRITABLE, WINDOW_MASK, WINDOW_SHIFT

WINDOW = 1 << WINDOW_SHIFT
MAX_REGION = (1 << 32) - 1        # a window's accessible length is 32 bits


class MemoryFault(Exception):
    """An access outside every region, or a write to a read-only region."""

    def __init__(self, message: str, address: int, size: int, write: bool,
                 region: str | None = None) -> None:
        super().__init__(message)
        self.address = address
        self.size = size
        self.write = write
        self.region = region


class RegionKind(StrEnum):
    """What a region holds (a str: `region.kind == "stack"` reads as before)."""

    DATA = "data"            # global data, helper buffers, anything else
    STACK = "stack"          # a program's stack frame
    CONTEXT = "context"      # the program's context (process_md_t)
    PACKET = "packet"        # data behind the context (the command line)
    MAP_VALUE = "map value"  # one map entry's value
    MAP_STORAGE = "map storage"  # a whole segment of a map's value slots


class Region:
    """A contiguous range of addressable bytes (plain regions are one window each; the value of
    a map entry is described by a Region too, made when a fault or a lookup needs one)."""

    __slots__ = ("name", "base", "data", "writable", "kind", "end", "window", "_pin", "_source",
                 "__weakref__")

    def __init__(self, name: str, base: int, data: Any, writable: bool = True,
                 kind: str = RegionKind.DATA, window: int = 0) -> None:
        self.name = name
        self.base = base
        self.data = data
        self.writable = writable
        self.kind = RegionKind(kind)
        self.end = base + len(data)
        self.window = window
        self._pin = None       # keeps the host buffer's address fixed (ctypes view of _source)
        self._source = None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def host(self) -> int:
        """The host address of the bytes this region shows (0 when it has none)."""
        return ctypes.addressof(self._pin) if self._pin is not None else 0

    def __repr__(self) -> str:
        rw = "rw" if self.writable else "ro"
        return f"<Region {self.name!r} {self.kind} {rw} [{self.base:#x}, {self.end:#x}) {len(self)} bytes>"


def _pin(data: bytearray) -> tuple[Any, int]:
    """(keep-alive, host address) of a bytearray's bytes; the bytearray cannot resize while
    the keep-alive lives, so the address stays valid."""
    if not len(data):
        return None, 0
    buf = (ctypes.c_char * len(data)).from_buffer(data)
    return buf, ctypes.addressof(buf)


def host_view(address: int, size: int) -> memoryview:
    """A writable memoryview of `size` bytes of native memory at `address`."""
    if size == 0:
        return memoryview(bytearray())
    return memoryview((ctypes.c_uint8 * size).from_address(address)).cast("B")


class _MapWindow:
    """What the interpreter needs to check an access to one window of map storage."""

    __slots__ = ("view", "pitch", "live", "length", "nslots", "shift", "mask", "writable",
                 "owner", "first_slot", "base")

    def __init__(self, w, key: int) -> None:
        self.pitch = w.pitch
        self.length = w.length
        self.nslots = w.nslots
        self.shift = w.shift
        self.mask = (1 << w.shift) - 1
        self.writable = bool(w.flags & W_WRITABLE)
        span = (w.nslots - 1) * w.pitch + w.length if w.nslots else 0
        self.view = host_view(w.host, span) if span else memoryview(b"")
        self.live = host_view(w.live, w.nslots) if w.nslots else b""
        self.owner = w.owner
        self.first_slot = w.first_slot
        self.base = key << WINDOW_SHIFT

    def locate(self, address: int, size: int) -> int:
        """Host offset of an access inside this window, or -1."""
        off = address & WINDOW_MASK
        slot = off >> self.shift
        inner = off & self.mask
        if slot < self.nslots and inner + size <= self.length and self.live[slot]:
            return slot * self.pitch + inner
        return -1


class AddressSpace:
    """The set of regions one sandbox's programs may access (one native address space)."""

    def __init__(self) -> None:
        L = lib()
        self._lib = L
        self.native = L.ntl_space_new()
        if not self.native:
            raise MemoryError("cannot create a native address space")
        self._finalize = weakref.finalize(self, L.ntl_space_free, self.native)
        self._plain: dict[int, Region] = {}            # window key -> region
        self._fast: dict[int, tuple] = {}              # window key -> (data, length, writable)
        self._mapwin: dict[int, _MapWindow] = {}       # window key -> map storage (lazily)
        self._maps: dict[int, Callable[[], Any]] = {}  # native map address -> weakref to Map

    # -- region management -------------------------------------------------------------------
    def add(self, name: str, data: bytearray | memoryview | bytes, *, writable: bool = True,
            kind: str = RegionKind.DATA) -> Region:
        """Map `data` (shared, not copied, when it is a bytearray) in a window of its own."""
        if not isinstance(data, bytearray):
            data = bytearray(data)
        if len(data) > MAX_REGION:
            raise ValueError(f"region {name!r} of {len(data)} bytes is larger than a region may be "
                             f"({MAX_REGION} bytes)")
        pin, host = _pin(data)
        flags = W_WRITABLE if writable else 0
        w = self._lib.ntl_space_map_plain(self.native, host, len(data), flags, None)
        if not w:
            raise MemoryError(f"the address space has no window left for region {name!r}")
        key = FIRST_WINDOW + w
        region = Region(name, key << WINDOW_SHIFT, data, writable, kind, w)
        region._pin, region._source = pin, data
        self._plain[key] = region
        self._fast[key] = (data, len(data), writable)
        return region

    def repoint(self, region: Region, data: bytearray, length: int | None = None) -> None:
        """Let `region` show the first `length` bytes of `data` from now on (same address)."""
        length = len(data) if length is None else length
        if region._source is not data:
            region._pin, _ = _pin(data)
            region._source = data
        host = region.host
        self._lib.ntl_space_repoint(self.native, region.window, host, length)
        region.data = data if length == len(data) else memoryview(data)[:length]
        region.end = region.base + length
        self._fast[region.base >> WINDOW_SHIFT] = (data, length, region.writable)

    def hand_over(self, region: Region) -> None:
        """Native code repoints `region` from now on: Python reads the native table for it
        (until `repoint` takes it back)."""
        self._fast.pop(region.base >> WINDOW_SHIFT, None)

    def resync(self, region: Region, cache: bool = True) -> None:
        """Take over what native code repointed `region`'s window at (memory Python does not
        own: repoint the region to its own buffer again before that memory goes away);
        `cache=False` while native code keeps repointing it."""
        w = self.native.contents.table[region.window]
        view = host_view(w.host, w.length) if w.host else bytearray()
        region.data, region.end = view, region.base + w.length
        region._pin = region._source = None
        if cache:
            self._fast[region.base >> WINDOW_SHIFT] = (view, w.length, region.writable)

    def remove(self, region: Region) -> None:
        """Unmap a region; later accesses to it fault."""
        key = region.base >> WINDOW_SHIFT
        if self._plain.get(key) is region:
            del self._plain[key]
            del self._fast[key]
            self._lib.ntl_space_unmap(self.native, region.window, 1)

    def register_map(self, native_map: int, owner: Any) -> None:
        """Let fault messages and views name the values of a native map."""
        self._maps[native_map] = weakref.ref(owner)

    def forget_map(self, native_map: int) -> None:
        self._maps.pop(native_map, None)
        for key in [k for k, m in self._mapwin.items() if m.owner == native_map]:
            del self._mapwin[key]

    def map_window(self, key: int) -> _MapWindow | None:
        """The map-storage window with key `key` (address >> WINDOW_SHIFT), or None."""
        m = self._mapwin.get(key)
        if m is not None:
            return m
        index = key - FIRST_WINDOW
        space = self.native.contents
        if not 0 < index < space.n:
            return None
        w = space.table[index]
        if not w.flags & W_MAP or not w.nslots:
            return None
        m = self._mapwin[key] = _MapWindow(w, key)
        return m

    def map_of(self, native_map: int) -> Any:
        ref = self._maps.get(native_map)
        return ref() if ref is not None else None

    @property
    def regions(self) -> list[Region]:
        """The plain regions and one region per segment of map storage, by address."""
        for key, r in self._plain.items():
            if key not in self._fast:           # handed over to native code: as it is now
                self.resync(r, cache=False)
        out = list(self._plain.values())
        for ref in list(self._maps.values()):
            m = ref()
            if m is not None:
                out.extend(m.storage_regions())
        return sorted(out, key=lambda r: r.base)

    def region_at(self, address: int) -> Region | None:
        """The region containing `address` (a map value is described as a region), or None."""
        r = self._plain.get(address >> WINDOW_SHIFT)
        if r is not None:
            return r if address < r.end else None
        return self._value_region(address, 1)

    def _value_region(self, address: int, size: int) -> Region | None:
        m = self.map_window(address >> WINDOW_SHIFT)
        if m is None or m.locate(address, size) < 0:
            return None
        owner = self.map_of(m.owner)
        slot = (address & WINDOW_MASK) >> m.shift
        start = slot * m.pitch
        base = m.base + (slot << m.shift)
        name = owner.value_name(m.first_slot + slot) if owner is not None else "map value"
        return Region(name, base, m.view[start:start + m.length], m.writable,
                      RegionKind.MAP_VALUE)

    # -- checked access ----------------------------------------------------------------------
    def locate(self, address: int, size: int, write: bool = False) -> tuple[Region, int]:
        """Return (region, offset) for an access of `size` bytes, or raise MemoryFault."""
        key = address >> WINDOW_SHIFT
        r = self._plain.get(key)
        if r is not None:
            off = address - r.base
            if off + size <= r.end - r.base:
                if write and not r.writable:
                    raise self._read_only(r, address, size)
                return r, off
            raise self._fault(address, size, write)
        v = self._value_region(address, size)
        if v is None:
            raise self._fault(address, size, write)
        if write and not v.writable:
            raise self._read_only(v, address, size)
        return v, address - v.base

    def _host(self, address: int, size: int, write: bool) -> tuple[Any, int]:
        """(buffer, offset) of a checked access (the slow path of load/store/read/write)."""
        key = address >> WINDOW_SHIFT
        e = self._fast.get(key)
        if e is not None:
            off = address & WINDOW_MASK
            if off + size <= e[1]:
                if write and not e[2]:
                    raise self._read_only(self._plain[key], address, size)
                return e[0], off
            raise self._fault(address, size, write)
        m = self.map_window(key)
        if m is not None:
            at = m.locate(address, size)
            if at >= 0:
                if write and not m.writable:
                    raise self._read_only(self._value_region(address, size), address, size)
                return m.view, at
        r = self._plain.get(key)
        if r is not None:                       # a plain window native code repoints
            self.resync(r, cache=False)
            off = address & WINDOW_MASK
            if off + size <= r.end - r.base:
                if write and not r.writable:
                    raise self._read_only(r, address, size)
                return r.data, off
        raise self._fault(address, size, write)

    def load(self, address: int, size: int) -> int:
        e = self._fast.get(address >> WINDOW_SHIFT)
        if e is not None:
            off = address & WINDOW_MASK
            if off + size <= e[1]:
                return int.from_bytes(e[0][off:off + size], "little")
        buf, off = self._host(address, size, False)
        return int.from_bytes(buf[off:off + size], "little")

    def store(self, address: int, size: int, value: int) -> None:
        e = self._fast.get(address >> WINDOW_SHIFT)
        if e is not None:
            off = address & WINDOW_MASK
            if off + size <= e[1] and e[2]:
                e[0][off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
                return
        buf, off = self._host(address, size, True)
        buf[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def accessors(self) -> dict[str, Callable]:
        """load1/2/4/8(address) and store1/2/4/8(address, value): `load` and `store` specialised
        by size (what the interpreter's generated code calls)."""
        fast = self._fast
        host = self._host
        out: dict[str, Callable] = {}
        for size, code in ((1, "B"), (2, "H"), (4, "I"), (8, "Q")):
            st = struct.Struct("<" + code)
            mask = (1 << (8 * size)) - 1

            def load(address: int, size=size, unpack=st.unpack_from) -> int:
                e = fast.get(address >> WINDOW_SHIFT)
                if e is not None:
                    off = address & WINDOW_MASK
                    if off + size <= e[1]:
                        return unpack(e[0], off)[0]
                buf, off = host(address, size, False)
                return unpack(buf, off)[0]

            def store(address: int, value: int, size=size, pack=st.pack_into, mask=mask) -> None:
                e = fast.get(address >> WINDOW_SHIFT)
                if e is not None:
                    off = address & WINDOW_MASK
                    if off + size <= e[1] and e[2]:
                        pack(e[0], off, value & mask)
                        return
                buf, off = host(address, size, True)
                pack(buf, off, value & mask)

            out[f"load{size}"] = load
            out[f"store{size}"] = store
        return out

    def read(self, address: int, size: int) -> bytes:
        """Copy `size` bytes out of the sandbox (size 0 is allowed anywhere)."""
        if size == 0:
            return b""
        buf, off = self._host(address, size, False)
        return bytes(buf[off:off + size])

    def write(self, address: int, data: bytes) -> None:
        """Copy bytes into the sandbox."""
        if not data:
            return
        buf, off = self._host(address, len(data), True)
        buf[off:off + len(data)] = data

    def view(self, address: int, size: int, write: bool = False) -> memoryview:
        """A live view of `size` bytes (for helpers that fill buffers in place)."""
        buf, off = self._host(address, size, write)
        return memoryview(buf)[off:off + size]

    def read_cstring(self, address: int, limit: int) -> bytes:
        """Bytes up to (not including) the first NUL, reading at most `limit` bytes."""
        region, off = self.locate(address, 1)
        end = min(len(region.data), off + limit)
        chunk = bytes(region.data[off:end])
        nul = chunk.find(b"\0")
        if nul < 0:
            if len(chunk) < limit:
                raise self._fault(address + len(chunk), 1, False)
            return chunk
        return chunk[:nul]

    # -- fault description -------------------------------------------------------------------
    def _read_only(self, r: Region, address: int, size: int) -> MemoryFault:
        return MemoryFault(f"write of {size} byte(s) at {address:#x} into read-only region "
                           f"{r.name!r} (offset {address - r.base})", address, size, True, r.name)

    def _candidates(self, address: int) -> list[Region]:
        """Regions worth comparing `address` with: the plain regions, and the values of the map
        window it falls in (or the nearest map value below it)."""
        out = list(self._plain.values())
        key = address >> WINDOW_SHIFT
        m = self.map_window(key)
        if m is not None and m.nslots:
            slot = min((address & WINDOW_MASK) >> m.shift, m.nslots - 1)
            out += self._live_values(m, (slot - 1, slot, slot + 1))
        # an access just below a window's first value lands in the window before it
        above = self.map_window(key + 1)
        if above is not None and above.nslots:
            out += self._live_values(above, (0,))
        return out

    def _live_values(self, m: _MapWindow, slots) -> list[Region]:
        owner = self.map_of(m.owner)
        out = []
        for s in slots:
            if 0 <= s < m.nslots and m.live[s]:
                start = s * m.pitch
                name = owner.value_name(m.first_slot + s) if owner is not None else "map value"
                out.append(Region(name, m.base + (s << m.shift),
                                  m.view[start:start + m.length], m.writable,
                                  RegionKind.MAP_VALUE))
        return out

    def nearest(self, address: int) -> tuple[Region | None, str]:
        """The region closest to `address` and how the address relates to it."""
        best: tuple[int, Region] | None = None
        for r in self._candidates(address):
            if address < r.base:
                dist = r.base - address
            elif address >= r.end:
                dist = address - r.end + 1
            else:
                dist = 0
            if best is None or dist < best[0]:
                best = (dist, r)
        if best is None:
            return None, "no region is mapped"
        r = best[1]
        if address < r.base:
            rel = f"{r.base - address} byte(s) before the start of {r.name!r}"
        elif address == r.end:
            rel = f"just past the end of {r.name!r}"
        elif address > r.end:
            rel = f"{address - r.end} byte(s) past the end of {r.name!r}"
        else:
            rel = f"at offset {address - r.base} of {r.name!r}"
        return r, f"{rel} [{r.base:#x}, {r.end:#x}) size {len(r)}"

    def _stale(self, address: int) -> str | None:
        """A description when `address` points into a map value slot that is free (a value
        deleted in an earlier run, or never allocated)."""
        m = self.map_window(address >> WINDOW_SHIFT)
        if m is None:
            return None
        slot = (address & WINDOW_MASK) >> m.shift
        if slot >= m.nslots or m.live[slot]:
            return None
        owner = self.map_of(m.owner)
        name = owner.name if owner is not None else "?"
        return f"it points into a free value slot of map {name} (a value deleted in an " \
               f"earlier run, or never allocated)"

    def _fault(self, address: int, size: int, write: bool) -> MemoryFault:
        verb = "write" if write else "read"
        if address < 4096:
            return MemoryFault(f"{verb} of {size} byte(s) at {address:#x}: null pointer dereference",
                               address, size, write, None)
        stale = self._stale(address)
        r, rel = self.nearest(address)
        if r is not None and r.base <= address < r.end:
            rel = f"runs {address + size - r.end} byte(s) past the end of {r.name!r} " \
                  f"(offset {address - r.base}, region size {len(r)})"
        if stale:
            rel = f"{stale}; {rel}" if r is not None and r.kind == RegionKind.MAP_VALUE else stale
        return MemoryFault(f"{verb} of {size} byte(s) at {address:#x} is outside every region; "
                           f"closest: {rel}", address, size, write, r.name if r else None)
