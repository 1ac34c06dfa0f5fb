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
"""
from __future__ import annotations

import struct
from typing import Iterator

from ...elf.program import MapSpec
from .base import (EBPF_INVALID_ARGUMENT, EBPF_NO_MEMORY,
                   PAGE_SIZE, KeylessMap, Map, MapEnv)

HEADER_SIZE = 8
LOCK_BIT = 1 << 31
DISCARD_BIT = 1 << 30
MAX_RECORD_SIZE = (1 << 30) - 1


def record_size(length: int) -> int:
    """Bytes a record of `length` data bytes occupies in the ring."""
    return (length + HEADER_SIZE + 7) & ~7


class ByteRing:
    """One EFW ring: capacity bytes, producer/consumer offsets, 8-byte-aligned records."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data = bytearray(capacity)
        self.producer_offset = 0
        self.consumer_offset = 0
        self.produced = 0
        self.dropped = 0     # refused: not enough free space
        self.rejected = 0    # refused: empty, larger than the ring, or too long

    @property
    def used(self) -> int:
        return self.producer_offset - self.consumer_offset

    @property
    def free_space(self) -> int:
        return self.capacity - self.used

    def _put(self, offset: int, data: bytes) -> None:
        pos = offset % self.capacity
        first = min(len(data), self.capacity - pos)
        self.data[pos:pos + first] = data[:first]
        if first < len(data):
            self.data[:len(data) - first] = data[first:]

    def _get(self, offset: int, n: int) -> bytes:
        pos = offset % self.capacity
        first = min(n, self.capacity - pos)
        out = bytes(self.data[pos:pos + first])
        if first < n:
            out += bytes(self.data[:n - first])
        return out

    def write(self, data: bytes, max_length: int = MAX_RECORD_SIZE) -> int:
        """Append one record; 0 or a negated ebpf_result (EFW ebpf_ring_buffer_reserve+submit)."""
        length = len(data)
        total = record_size(length)
        if total > self.capacity or length == 0 or length > max_length:
            self.rejected += 1
            return -EBPF_INVALID_ARGUMENT
        if self.producer_offset + total - self.consumer_offset > self.capacity:
            self.dropped += 1
            return -EBPF_NO_MEMORY
        pos = self.producer_offset % self.capacity
        self._put(self.producer_offset, struct.pack("<II", length, pos // PAGE_SIZE) + bytes(data))
        self.producer_offset += total
        self.produced += 1
        return 0

    def _walk(self) -> Iterator[tuple[int, bytes | None]]:
        """(offset after the record, data or None when discarded) from the consumer on."""
        off = self.consumer_offset
        while off < self.producer_offset:
            header = int.from_bytes(self._get(off, 4), "little")
            if header & LOCK_BIT:
                return
            length = header & ~(LOCK_BIT | DISCARD_BIT)
            data = None if header & DISCARD_BIT else self._get(off + HEADER_SIZE, length)
            off += record_size(length)
            yield off, data

    def records(self) -> list[bytes]:
        return [d for _, d in self._walk() if d is not None]

    def consume(self, limit: int | None = None) -> list[bytes]:
        out: list[bytes] = []
        for end, data in self._walk():
            if limit is not None and len(out) >= limit:
                break
            self.consumer_offset = end
            if data is not None:
                out.append(data)
        return out

    @property
    def pending(self) -> int:
        return sum(1 for _, d in self._walk() if d is not None)


class RingBufMap(KeylessMap):
    ZERO_KEY_OK = True
    ZERO_VALUE_OK = True

    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        super().__init__(spec, env)
        self.ring = ByteRing(spec.max_entries)

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
        return self.ring.write(bytes(data))

    # -- consumer side ---------------------------------------------------------------------------
    def records(self) -> list[bytes]:
        """Pending records' data, oldest first (not consumed)."""
        return self.ring.records()

    def consume(self, limit: int | None = None) -> list[bytes]:
        """Pending records' data, oldest first, returning their space to the ring."""
        return self.ring.consume(limit)

    def ring_bytes(self) -> bytes:
        return bytes(self.ring.data)


    capacity = property(lambda self: self.ring.capacity)
    pending = property(lambda self: self.ring.pending)
    produced = property(lambda self: self.ring.produced)
    dropped = property(lambda self: self.ring.dropped)
    rejected = property(lambda self: self.ring.rejected)
    producer_offset = property(lambda self: self.ring.producer_offset)
    consumer_offset = property(lambda self: self.ring.consumer_offset)
    used = property(lambda self: self.ring.used)
    free_space = property(lambda self: self.ring.free_space)
