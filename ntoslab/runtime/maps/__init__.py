"""Map types by Windows type id, one module each; `create_map` builds one from a MapSpec.

Every module's docstring lists its EFW facts, program-side methods (return 0 or a negated
ebpf_result_t) and user-side methods (raise MapError).  Summary of the program-side entry points
the helpers use:

* helper 1  lookup:            ``m.lookup_address(key) -> int`` (0 = NULL)
* helper 2  update:            ``m.update(key, value, flags) -> int``
* helper 3  delete:            ``m.delete(key) -> int``
* helper 4  lookup_and_delete: ``m.lookup_and_delete_address(key) -> int`` where defined, else NULL
* helper 11 ringbuf_output:    ``RingBufMap.output(data, flags) -> int``
* helpers 16/17/18 push/pop/peek: ``QueueMap/StackMap.push(value, flags) -> int``,
  ``.pop() -> (int, bytes | None)``, ``.peek() -> (int, bytes | None)``
* helper 32 perf_event_output: ``PerfEventArrayMap.perf_output(data, flags, ctx_data) -> int``
  (or ``output_cpu(cpu, data)`` once the CPU is resolved)

After each program run call ``m.end_epoch()`` on every map (frees values retired by deletes).
"""
from __future__ import annotations

from ...elf.program import MAP_TYPES, MapSpec, MapType
from .array import ArrayMap
from .array_of_maps import ArrayOfMapsMap
from .base import Map, MapEnv, MapError, MapSpecError
from .hash import HashMap
from .hash_of_maps import HashOfMapsMap, MapOfMaps
from .lpm_trie import LpmTrieMap
from .lru_hash import LruHashMap
from .lru_percpu_hash import LruPerCpuHashMap
from .percpu_array import PerCpuArrayMap
from .percpu_hash import PerCpuHashMap
from .perf_event_array import PerfEventArrayMap
from .prog_array import ProgArrayMap
from .queue import QueueMap
from .ringbuf import RingBufMap
from .sample_hash_map import SampleHashMap
from .stack import StackMap

MAP_CLASSES: dict[int, type[Map]] = {   # the factory's table: one class per emulated type
    MapType.HASH: HashMap, MapType.ARRAY: ArrayMap, MapType.PROG_ARRAY: ProgArrayMap,
    MapType.PERCPU_HASH: PerCpuHashMap, MapType.PERCPU_ARRAY: PerCpuArrayMap,
    MapType.HASH_OF_MAPS: HashOfMapsMap, MapType.ARRAY_OF_MAPS: ArrayOfMapsMap,
    MapType.LRU_HASH: LruHashMap, MapType.LPM_TRIE: LpmTrieMap, MapType.QUEUE: QueueMap,
    MapType.LRU_PERCPU_HASH: LruPerCpuHashMap, MapType.STACK: StackMap,
    MapType.RINGBUF: RingBufMap, MapType.PERF_EVENT_ARRAY: PerfEventArrayMap,
    MapType.SAMPLE_HASH_MAP: SampleHashMap,
}


def create_map(spec: MapSpec, env: MapEnv, *, true_lru: bool | None = None) -> Map:
    """Instantiate `spec` in `env.memory` (raises MapSpecError where EFW refuses the spec).

    `true_lru` overrides ``env.true_lru`` for an LRU map (exact LRU instead of EFW's
    generations, lru_hash.py); other types ignore it."""
    cls = MAP_CLASSES.get(spec.type)
    if cls is None:
        raise NotImplementedError(f"map {spec.name}: map type {spec.type} "
                                  f"({MAP_TYPES.get(spec.type, '?')}) is not emulated yet")
    if true_lru is not None and issubclass(cls, LruHashMap):
        return cls(spec, env, true_lru=true_lru)
    return cls(spec, env)


__all__ = ["ArrayMap", "ArrayOfMapsMap", "HashMap", "HashOfMapsMap", "LpmTrieMap", "LruHashMap",
           "LruPerCpuHashMap", "MAP_CLASSES", "Map", "MapEnv", "MapError", "MapOfMaps",
           "MapSpecError", "PerCpuArrayMap", "PerCpuHashMap", "PerfEventArrayMap", "ProgArrayMap",
           "QueueMap", "RingBufMap", "SampleHashMap", "StackMap", "create_map"]
