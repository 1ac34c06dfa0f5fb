"""Ring buffers (Windows type 13): a byte ring of max_entries bytes that programs append records to.

The ring is modelled byte for byte as EFW lays it out (libs/runtime/ebpf_ring_buffer.c,
libs/shared/ebpf_ring_buffer_record.h, reference section 3.3):

* ``producer_offset`` and ``consumer_offset`` only grow; a byte at offset *o* lives at
  ``o % capacity`` of the data ring.  EFW maps the data twice, so a record may straddle the end
  of the ring and simply continues at its start (no wrap padding record);
* a record is an 8-byte header ``{u32 length; u32 page_offset}`` followed by the data, padded to
  8 bytes: it occupies ``(len + 8 + 7) & ~7`` bytes.  ``page_offset`` is the record's position in
  the ring in 4096-byte pages.  Padding bytes keep whatever the ring held before (as in EFW);
* fullness: a record fits iff ``producer + size - consumer <= capacity`` - the ring may be filled
  to the last byte (EFW ``ebpf_ring_buffer_reserve``);
* ``bpf_ringbuf_output`` (helper 11) -> 0, or -EBPF_NO_MEMORY (12) when the record does not fit in
  the free space (nothing is written: the record is dropped whole), or -EBPF_INVALID_ARGUMENT
  (6) for an empty record, a record larger than the ring, or a length >= 2^30.  ``flags`` are
  ignored (EFW's helper leaves them unreferenced; they only pick the consumer wake-up);
* creation: key_size must be 0; max_entries must be a power of 2 (EBPF_INVALID_ARGUMENT) and a
  multiple of the 4096-byte page (EFW's ring allocation fails otherwise, EBPF_NO_MEMORY).

Counters (ours, EFW keeps none for ring buffers): ``produced`` records written, ``dropped``
records refused for lack of space, ``rejected`` records refused as invalid.

Consumer API (the user-mode side): ``records()`` -> pending record data, oldest first, without
consuming; ``consume(limit=None)`` -> the same, advancing ``consumer_offset`` so the space frees
up; ``pending`` (record count), ``used``/``free_space`` (bytes), ``ring_bytes()`` (the raw ring).
Programs get no pointers into the ring (EFW offers no reserve/submit to programs), so lookups
are NULL and update/delete are -EBPF_OPERATION_NOT_SUPPORTED; ``keys()`` is empty.

The ring itself is native (ntoslab/native/ringbuf.c: reserve, submit, discard, output), shared
by both engines and by the consumers here.
"""
from __future__ import annotations

import ctypes
import weakref
from typing import Any

from ...elf.program import MapSpec
from ...native import lib
from .base import EBPF_NO_MEMORY, PAGE_SIZE, KeylessMap, Map, MapEnv

HEADER_SIZE = 8
LOCK_BIT = 1 << 31
DISCARD_BIT = 1 << 30
MAX_RECORD_SIZE = (1 << 30) - 1


def record_size(length: int) -> int:
    """Bytes a record of `length` data bytes occupies in the ring."""
    return (length + HEADER_SIZE + 7) & ~7


class ByteRing:
    """One EFW ring: capacity bytes, producer/consumer offsets, 8-byte-aligned records.

    ``ByteRing(capacity)`` makes a ring of its own; maps wrap their native rings
    (``ByteRing.native(pointer, owner)``)."""

    def __init__(self, capacity: int) -> None:
        L = self._lib = lib()
        ptr = L.ntl_ring_new(capacity)
        if not ptr:
            raise MemoryError(f"cannot allocate a ring of {capacity} bytes")
        self._ptr = ptr
        self._owner: Any = weakref.finalize(self, L.ntl_ring_free, ptr)
        self._ring = ptr.contents

    @classmethod
    def native(cls, ptr, owner: Any) -> "ByteRing":
        ring = cls.__new__(cls)
        ring._lib = lib()
        ring._ptr = ptr
        ring._owner = owner          # keeps the map (and so the ring) alive
        ring._ring = ptr.contents
        return ring

    capacity = property(lambda self: self._ring.capacity)
    producer_offset = property(lambda self: self._ring.producer)
    consumer_offset = property(lambda self: self._ring.consumer)
    produced = property(lambda self: self._ring.produced)
    dropped = property(lambda self: self._ring.dropped)      # refused: not enough free space
    rejected = property(lambda self: self._ring.rejected)    # refused: empty, too large, too long

    @property
    def used(self) -> int:
        return self._ring.producer - self._ring.consumer

    @property
    def free_space(self) -> int:
        return self._ring.capacity - self.used

    @property
    def data(self) -> bytes:
        return ctypes.string_at(self._ring.data, self._ring.capacity)

    def write(self, data: bytes, max_length: int = MAX_RECORD_SIZE) -> int:
        """Append one record; 0 or a negated ebpf_result (EFW ebpf_ring_buffer_reserve+submit)."""
        data = bytes(data)
        return self._lib.ntl_ring_output(self._ptr, data, len(data), max_length)

    def _walk(self) -> tuple[list[tuple[int, int]], int]:
        """[(data offset, length | DISCARD)] of the committed records, and the offset after."""
        n = max(self.used // HEADER_SIZE, 1)
        offsets = (ctypes.c_uint64 * n)()
        lengths = (ctypes.c_uint32 * n)()
        end = ctypes.c_uint64()
        got = self._lib.ntl_ring_walk(self._ptr, offsets, lengths, n, ctypes.byref(end))
        return list(zip(offsets[:got], lengths[:got])), end.value

    def _data(self, offset: int, length: int) -> bytes:
        out = ctypes.create_string_buffer(length)
        self._lib.ntl_ring_copy_out(self._ptr, offset, out, length)
        return out.raw

    def records(self) -> list[bytes]:
        return [self._data(o, n) for o, n in self._walk()[0] if not n & DISCARD_BIT]

    def consume(self, limit: int | None = None) -> list[bytes]:
        out: list[bytes] = []
        walked, _ = self._walk()
        for o, n in walked:
            if limit is not None and len(out) >= limit:
                break
            length = n & ~DISCARD_BIT
            self._ring.consumer = o + record_size(length) - HEADER_SIZE
            if not n & DISCARD_BIT:
                out.append(self._data(o, length))
        return out

    @property
    def pending(self) -> int:
        return sum(1 for _, n in self._walk()[0] if not n & DISCARD_BIT)


class RingBufMap(KeylessMap):
    ZERO_KEY_OK = True
    ZERO_VALUE_OK = True

    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        super().__init__(spec, env)
        self.ring = ByteRing.native(self._lib.ntl_map_ring(self.native, 0), self)

    def storage_bytes(self) -> int:
        return self.spec.max_entries

    def validate_spec(self) -> None:
        super().validate_spec()
        if self.spec.key_size != 0:
            self.spec_error(f"key_size is {self.spec.key_size}; a ring buffer has no key "
                            f"(key_size 0)")
        self.validate_ring_size()

    def validate_ring_size(self: Map) -> None:
        """EFW ebpf_ring_buffer_allocate_ring + the page-granular ring allocation."""
        size = self.spec.max_entries
        if size & (size - 1):
            self.spec_error(f"max_entries {size} (the ring size in bytes) is not a power of 2")
        if size % PAGE_SIZE:
            self.spec_error(f"max_entries {size} (the ring size in bytes) is not a multiple of "
                            f"the {PAGE_SIZE}-byte page", EBPF_NO_MEMORY)

    # -- program side ----------------------------------------------------------------------------
    def output(self, data: bytes, flags: int = 0) -> int:
        """bpf_ringbuf_output (helper 11): 0, -EBPF_NO_MEMORY (no room: dropped) or
        -EBPF_INVALID_ARGUMENT (empty or larger than the ring)."""
        return self.ring.write(data)

    # -- consumer side ---------------------------------------------------------------------------
    def records(self) -> list[bytes]:
        """Pending records' data, oldest first (not consumed)."""
        return self.ring.records()

    def consume(self, limit: int | None = None) -> list[bytes]:
        """Pending records' data, oldest first, returning their space to the ring."""
        return self.ring.consume(limit)

    def ring_bytes(self) -> bytes:
        return self.ring.data

    capacity = property(lambda self: self.ring.capacity)
    pending = property(lambda self: self.ring.pending)
    produced = property(lambda self: self.ring.produced)
    dropped = property(lambda self: self.ring.dropped)
    rejected = property(lambda self: self.ring.rejected)
    producer_offset = property(lambda self: self.ring.producer_offset)
    consumer_offset = property(lambda self: self.ring.consumer_offset)
    used = property(lambda self: self.ring.used)
    free_space = property(lambda self: self.ring.free_space)
