"""Perf event arrays (Windows type 14): one ring per CPU.

EFW facts (ebpf_maps.c ``_create_perf_event_array_map``, ``ebpf_perf_event_array_map_output``,
``ebpf_perf_event_array_map_output_with_capture``; include/ebpf_structs.h, include/ebpf_api.h):

* each of the ``ncpus`` CPUs gets its own ring of **max_entries bytes** (not an entry count), with
  the ring buffer's record format (8-byte header ``{u32 length; u32 page_offset}``, data padded
  to 8 bytes) and fullness rule; so max_entries must be a power of 2 and a multiple of 4096
  (ringbuf.py);
* ``bpf_perf_event_output(ctx, map, flags, data, size)`` (helper 32): the low 32 bits of flags
  pick the CPU (0xffffffff = ``EBPF_MAP_FLAG_CURRENT_CPU``), bits 32-51 ask for that many bytes of
  the context's data to be appended (capture).  Rules, in EFW's order:
    - flags == 0xffffffff exactly: current CPU, no capture;
    - capture requested but the program type has no context data -> -EBPF_OPERATION_NOT_SUPPORTED;
      capture longer than the data -> -EBPF_INVALID_ARGUMENT;
    - at PASSIVE_LEVEL (``passive``, True by default: ntosebpfext calls process programs from its
      process-notify routine at PASSIVE_LEVEL) any explicit CPU index -> -EBPF_INVALID_ARGUMENT;
    - an explicit index other than the current CPU -> -EBPF_INVALID_ARGUMENT (EFW only writes to
      the current CPU's ring);
    - no room in that CPU's ring -> -EBPF_NO_MEMORY and that CPU's ``lost`` counter (EFW's
      ``lost_records`` in the producer page) grows; an empty or oversized record is also
      counted lost (-EBPF_INVALID_ARGUMENT), as EFW counts every failed reservation.
* lookups are NULL, update/delete -EBPF_OPERATION_NOT_SUPPORTED, ``keys()`` empty.

Program side: ``perf_output(data, flags, ctx_data=None) -> int`` implements all of the above
(``ctx_data`` = the bytes of the context's data region, None when the type has none);
``output_cpu(cpu, data) -> int`` is the simple form once the helper resolved the CPU (an index
other than ``env.cpu`` -> -EBPF_INVALID_ARGUMENT).
User side: ``records(cpu)`` / ``consume(cpu)`` per CPU, ``records_all()`` / ``consume_all()``
(list of (cpu, data), CPU by CPU), ``lost[cpu]``, ``lost_total``, ``rings[cpu]`` (ByteRing).
"""
from __future__ import annotations

from ...elf.program import MapSpec
from .base import KeylessMap, MapEnv
from .ringbuf import ByteRing, RingBufMap

CURRENT_CPU = 0xFFFF_FFFF
CTX_LENGTH_SHIFT = 32
CTX_LENGTH_MAX = 0xFFFFF


class PerfEventArrayMap(KeylessMap):
    ZERO_KEY_OK = True
    ZERO_VALUE_OK = True

    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        super().__init__(spec, env)
        self.rings = [ByteRing.native(self._lib.ntl_map_ring(self.native, c), self)
                      for c in range(env.ncpus)]
        self._lost = self._lib.ntl_map_lost(self.native)
        self._passive = True

    def storage_bytes(self) -> int:
        return self.spec.max_entries * self.env.ncpus

    def validate_spec(self) -> None:
        super().validate_spec()
        RingBufMap.validate_ring_size(self)  # same ring allocation rules

    @property
    def passive(self) -> bool:
        """Programs run at PASSIVE_LEVEL (explicit CPU indexes are refused)."""
        return self._passive

    @passive.setter
    def passive(self, value: bool) -> None:
        self._passive = bool(value)
        self._lib.ntl_map_set_passive(self.native, int(bool(value)))

    @property
    def lost(self) -> list[int]:
        return [self._lost[c] for c in range(self.env.ncpus)]

    # -- program side ----------------------------------------------------------------------------
    def output_cpu(self, cpu: int, data: bytes) -> int:
        data = bytes(data)
        return self._lib.ntl_perf_output_cpu(self.native, self.env.cpu, cpu & 0xFFFF_FFFF_FFFF_FFFF,
                                             data, len(data))

    def perf_output(self, data: bytes, flags: int = CURRENT_CPU,
                    ctx_data: bytes | None = None) -> int:
        data = bytes(data)
        ctx = b"" if ctx_data is None else bytes(ctx_data)
        return self._lib.ntl_perf_output(self.native, self.env.cpu, data, len(data),
                                         flags & 0xFFFF_FFFF_FFFF_FFFF, ctx,
                                         -1 if ctx_data is None else len(ctx))

    # -- consumer side ---------------------------------------------------------------------------
    def records(self, cpu: int | None = None) -> list[bytes]:
        """Pending records of `cpu` (default: the current CPU), oldest first, not consumed."""
        return self.rings[self.env.cpu if cpu is None else cpu].records()

    def consume(self, cpu: int | None = None, limit: int | None = None) -> list[bytes]:
        return self.rings[self.env.cpu if cpu is None else cpu].consume(limit)

    def records_all(self) -> list[tuple[int, bytes]]:
        return [(c, d) for c, ring in enumerate(self.rings) for d in ring.records()]

    def consume_all(self) -> list[tuple[int, bytes]]:
        return [(c, d) for c, ring in enumerate(self.rings) for d in ring.consume()]

    @property
    def lost_total(self) -> int:
        return sum(self.lost)

    @property
    def pending(self) -> int:
        return sum(r.pending for r in self.rings)
