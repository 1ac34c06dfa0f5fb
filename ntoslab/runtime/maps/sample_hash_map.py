"""BPF_MAP_TYPE_SAMPLE_HASH_MAP (Windows type 15).

EFW's core has no built-in implementation: type 15 is absent from ``ebpf_map_metadata_tables``,
so ``ebpf_map_create`` hands it to a *custom map provider* (the sample extension registers one
whose base map type is BPF_MAP_TYPE_HASH, ``_supported_base_map_types`` in ebpf_maps.c).  Its
behaviour is therefore the hash map's; we emulate it as a plain hash map (hash.py), which is what
the sample provider delegates to.
"""
from __future__ import annotations

from .hash import HashMap


class SampleHashMap(HashMap):
    pass
