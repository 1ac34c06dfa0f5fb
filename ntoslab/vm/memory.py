"""The sandboxed address space eBPF programs run in.

Every byte a program may touch lives in a named `Region` (a stack frame, the context, the
command-line "packet", a map value, global data, a helper buffer). Regions sit at widely spaced
virtual addresses so that a pointer that strays off one region never lands in another; every
load and store is checked, and a stray access raises `MemoryFault` naming the region it came
closest to.

>>> mem = AddressSpace()
>>> r = mem.add("scratch", bytearray(16))
>>> mem.store(r.base + 8, 4, 0xdeadbeef); hex(mem.load(r.base + 8, 4))
'0xdeadbeef'
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

# Regions are placed this far apart (and never at address 0), so an access off the end of one
# region cannot reach the next one.
REGION_SPACING = 1 << 32
FIRST_BASE = 1 << 40


class MemoryFault(Exception):
    """An access outside every region, or a write to a read-only region."""

    def __init__(self, message: str, address: int, size: int, write: bool,
                 region: str | None = None) -> None:
        super().__init__(message)
        self.address = address
        self.size = size
        self.write = write
        self.region = region


@dataclass(eq=False)
class Region:
    """A contiguous range of addressable bytes."""

    name: str
    base: int
    data: bytearray | memoryview
    writable: bool = True
    kind: str = "data"
    end: int = field(init=False)

    def __post_init__(self) -> None:
        self.end = self.base + len(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        rw = "rw" if self.writable else "ro"
        return f"<Region {self.name!r} {self.kind} {rw} [{self.base:#x}, {self.end:#x}) {len(self)} bytes>"


class AddressSpace:
    """The set of regions one program run may access."""

    def __init__(self) -> None:
        self._bases: list[int] = []
        self._regions: list[Region] = []
        self._next_base = FIRST_BASE
        self._free_bases: list[int] = []
        self._last: Region | None = None
        self.version = 0  # bumped whenever a region is mapped or unmapped

    # -- region management -------------------------------------------------------------------
    def add(self, name: str, data: bytearray | memoryview | bytes, *, writable: bool = True,
            kind: str = "data") -> Region:
        """Map `data` (shared, not copied, unless it is immutable bytes) at a fresh address."""
        if isinstance(data, bytes):
            data = bytearray(data)
        span = REGION_SPACING * max(1, -(-len(data) // REGION_SPACING) + 1)
        if span == REGION_SPACING and self._free_bases:
            base = self._free_bases.pop()
        else:
            base = self._next_base
            self._next_base += span
        region = Region(name, base, data, writable, kind)
        i = bisect.bisect_left(self._bases, base)
        self._bases.insert(i, base)
        self._regions.insert(i, region)
        self.version += 1
        return region

    def remove(self, region: Region) -> None:
        """Unmap a region; later accesses to it fault."""
        i = bisect.bisect_left(self._bases, region.base)
        if i < len(self._bases) and self._regions[i] is region:
            del self._bases[i]
            del self._regions[i]
            self.version += 1
            if len(region.data) < REGION_SPACING:
                self._free_bases.append(region.base)
        if self._last is region:
            self._last = None

    @property
    def regions(self) -> list[Region]:
        return list(self._regions)

    def region_at(self, address: int) -> Region | None:
        """The region containing `address`, or None."""
        i = bisect.bisect_right(self._bases, address) - 1
        if i >= 0:
            r = self._regions[i]
            if address < r.end:
                return r
        return None

    # -- checked access ----------------------------------------------------------------------
    def locate(self, address: int, size: int, write: bool = False) -> tuple[Region, int]:
        """Return (region, offset) for an access of `size` bytes, or raise MemoryFault."""
        r = self._last
        if r is None or address < r.base or address + size > r.end:
            r = self.region_at(address)
            if r is None or address + size > r.end:
                raise self._fault(address, size, write)
            self._last = r
        if write and not r.writable:
            raise MemoryFault(
                f"write of {size} byte(s) at {address:#x} into read-only region {r.name!r} "
                f"(offset {address - r.base})", address, size, write, r.name)
        return r, address - r.base

    def load(self, address: int, size: int) -> int:
        r = self._last
        if r is None or address < r.base or address + size > r.end:
            r, off = self.locate(address, size)
        else:
            off = address - r.base
        return int.from_bytes(r.data[off:off + size], "little")

    def store(self, address: int, size: int, value: int) -> None:
        r = self._last
        if r is None or address < r.base or address + size > r.end or not r.writable:
            r, off = self.locate(address, size, True)
        else:
            off = address - r.base
        r.data[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def read(self, address: int, size: int) -> bytes:
        """Copy `size` bytes out of the sandbox (size 0 is allowed anywhere)."""
        if size == 0:
            return b""
        r, off = self.locate(address, size)
        return bytes(r.data[off:off + size])

    def write(self, address: int, data: bytes) -> None:
        """Copy bytes into the sandbox."""
        if not data:
            return
        r, off = self.locate(address, len(data), True)
        r.data[off:off + len(data)] = data

    def view(self, address: int, size: int, write: bool = False) -> memoryview:
        """A live view of `size` bytes (for helpers that fill buffers in place)."""
        r, off = self.locate(address, size, write)
        return memoryview(r.data)[off:off + size]

    def read_cstring(self, address: int, limit: int) -> bytes:
        """Bytes up to (not including) the first NUL, reading at most `limit` bytes."""
        r, off = self.locate(address, 1)
        end = min(r.end - r.base, off + limit)
        chunk = bytes(r.data[off:end])
        nul = chunk.find(b"\0")
        if nul < 0:
            if len(chunk) < limit:
                raise self._fault(address + len(chunk), 1, False)
            return chunk
        return chunk[:nul]

    # -- fault description -------------------------------------------------------------------
    def nearest(self, address: int) -> tuple[Region | None, str]:
        """The region closest to `address` and how the address relates to it."""
        best: tuple[int, Region] | None = None
        for r in self._regions:
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

    def _fault(self, address: int, size: int, write: bool) -> MemoryFault:
        verb = "write" if write else "read"
        if address < 4096:
            return MemoryFault(f"{verb} of {size} byte(s) at {address:#x}: null pointer dereference",
                               address, size, write, None)
        r, rel = self.nearest(address)
        if r is not None and r.base <= address < r.end:
            rel = f"runs {address + size - r.end} byte(s) past the end of {r.name!r} " \
                  f"(offset {address - r.base}, region size {len(r)})"
        return MemoryFault(f"{verb} of {size} byte(s) at {address:#x} is outside every region; "
                           f"closest: {rel}", address, size, write, r.name if r else None)
