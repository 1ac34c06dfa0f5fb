"""Map types by Windows type id, one module each; `create_map` builds one from a MapSpec."""
from __future__ import annotations

from ...elf.program import MAP_TYPES, MapSpec
from .array import ArrayMap
from .base import Map, MapEnv, MapError
from .hash import HashMap
from .prog_array import ProgArrayMap

MAP_CLASSES: dict[int, type[Map]] = {1: HashMap, 2: ArrayMap, 3: ProgArrayMap}


def create_map(spec: MapSpec, env: MapEnv) -> Map:
    """Instantiate `spec` in `env.memory`."""
    cls = MAP_CLASSES.get(spec.type)
    if cls is None:
        raise NotImplementedError(f"map {spec.name}: map type {spec.type} "
                                  f"({MAP_TYPES.get(spec.type, '?')}) is not emulated yet")
    return cls(spec, env)


__all__ = ["ArrayMap", "HashMap", "MAP_CLASSES", "Map", "MapEnv", "MapError", "ProgArrayMap", "create_map"]
