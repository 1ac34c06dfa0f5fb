"""Map specifications from an object: BTF `.maps`, legacy `maps` sections, and global data.

- `.maps`: each variable is a struct whose members encode the definition (`__uint(type, N)` is
  `int (*type)[N]`, `__type(key, T)` is `T *key`, `__array(values, struct inner)` is an array of
  pointers to the inner map's definition). `.rel.maps` fills `values` slots (prog array, map in map).
- legacy `maps` / `maps/<name>`: 32-byte `{type, key_size, value_size, max_entries,
  inner_map_idx, pinning, id, inner_id}` records, shorter ones zero-padded.
- `.data`, `.rodata*`, `.bss`, `.data.*`: one single-entry array map each, holding the section.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .program import MAP_TYPES, MapSpec, MapType

if TYPE_CHECKING:
    from .loader import Symbol, _Loader

LEGACY_RECORD = 32
LEGACY_FIELDS = ("type", "key_size", "value_size", "max_entries", "inner_map_idx", "pinning",
                 "id", "inner_id")
BTF_MAP_FIELDS = {"type", "key", "key_size", "value", "value_size", "max_entries", "map_flags",
                  "pinning", "values", "numa_node", "map_extra"}
GLOBAL_DATA_PREFIXES = (".data", ".rodata", ".bss")


@dataclass
class MapTable:
    """The object's maps in index order, and how symbols resolve to them."""

    specs: list[MapSpec] = field(default_factory=list)
    by_symbol: dict[tuple[str, int], int] = field(default_factory=dict)  # (section, offset)
    data_sections: dict[str, int] = field(default_factory=dict)  # section name -> index

    def add(self, spec: MapSpec) -> int:
        self.specs.append(spec)
        return len(self.specs) - 1

    def index_for_symbol(self, sym: "Symbol") -> int | None:
        """The map an lddw relocation against `sym` refers to."""
        if sym.section in self.data_sections:
            return self.data_sections[sym.section]
        return self.by_symbol.get((sym.section or "", sym.value))


def parse_maps(ld: "_Loader") -> MapTable:
    table = MapTable()
    if ".maps" in ld.by_name:
        _btf_maps(ld, table)
    for name in ld.by_name:
        if name == "maps" or name.startswith("maps/"):
            _legacy_maps(ld, name, table)
    for name, sec in ld.by_name.items():
        if name.startswith(GLOBAL_DATA_PREFIXES) and not sec["sh_flags"] & 0x4 \
                and sec["sh_type"] in ("SHT_PROGBITS", "SHT_NOBITS"):
            data = ld.section_data(sec)
            readonly = name.startswith(".rodata")
            spec = MapSpec(name, MapType.ARRAY, 4, len(data), 1, section=name,
                           data=bytes(data), readonly=readonly)
            table.data_sections[name] = table.add(spec)
    return table


# -- BTF-defined maps ------------------------------------------------------------------------------
def _btf_maps(ld: "_Loader", table: MapTable) -> None:
    btf = ld.btf
    ld.where = ".maps"
    if btf is None:
        raise ld.error("the object defines BTF maps in .maps but has no .BTF section "
                       "(compile with -g)", section=".maps")
    try:
        variables = btf.datasec(".maps")
    except KeyError:
        raise ld.error("no BTF DATASEC describes .maps", section=".BTF") from None
    symbols = {s.name: s for s in ld.symbols if s.section == ".maps" and s.name}
    relocs = ld.relocations_for(".maps")
    pending_values: list[tuple[MapSpec, int, int]] = []  # (spec, var offset, values offset)
    for var_name, var_type, _offset, _size in variables:
        sym = symbols.get(var_name)
        if sym is None:
            raise ld.error(f"BTF map variable {var_name!r} has no symbol in .maps",
                           section=".maps", symbol=var_name)
        spec, values_off = _btf_map_def(ld, var_name, btf.resolve(var_type))
        table.by_symbol[(".maps", sym.value)] = table.add(spec)
        if values_off is not None:
            pending_values.append((spec, sym.value, values_off))
    # `values` initialisers: relocations whose offset falls in a map's values array
    for spec, var_off, values_off in pending_values:
        for r in relocs:
            slot_off = r.offset - var_off - values_off
            if slot_off < 0 or slot_off % 8 or r.offset >= var_off + values_off + 8 * 65536:
                continue
            slot = slot_off // 8
            if r.symbol.section == ".maps" and r.offset < _next_var_offset(symbols, var_off):
                target = next((s.name for s in symbols.values() if s.value == r.symbol.value),
                              r.symbol.name)
                spec.initial_values[slot] = target
            elif r.symbol.type == "STT_FUNC" and r.offset < _next_var_offset(symbols, var_off):
                spec.initial_values[slot] = r.symbol.name
        if spec.initial_values and max(spec.initial_values) >= spec.max_entries:
            raise ld.error(f"values initialiser sets slot {max(spec.initial_values)} but "
                           f"max_entries is {spec.max_entries}", section=".maps", symbol=spec.name)


def _next_var_offset(symbols: dict, offset: int) -> int:
    later = [s.value for s in symbols.values() if s.value > offset]
    return min(later) if later else 1 << 62


def _btf_map_def(ld: "_Loader", name: str, struct_id: int) -> tuple[MapSpec, int | None]:
    """Read one map definition struct; return the spec and the byte offset of `values`."""
    btf = ld.btf
    t = btf.type(struct_id)
    if t.kind != "STRUCT":
        raise ld.error(f"BTF type #{struct_id} of map {name!r} is {t.kind}, not a struct",
                       section=".maps", symbol=name)
    fields: dict[str, int] = {}
    key_type = value_type = None
    values_off = None
    inner = None
    for m_name, m_type, bit_off, _bits in btf.members(struct_id):
        if m_name not in BTF_MAP_FIELDS:
            raise ld.error(f"unknown map attribute {m_name!r} (BTF type #{struct_id})",
                           section=".maps", symbol=name)
        mt = btf.type(m_type)
        if m_name in ("key", "value") and mt.kind == "PTR":
            tid = mt.type
            size = btf.sizeof(tid)
            if m_name == "key":
                key_type, fields["key_size"] = tid, size
            else:
                value_type, fields["value_size"] = tid, size
            continue
        if m_name == "values":
            if mt.kind != "ARRAY":
                raise ld.error(f"map attribute 'values' must be an array (BTF type #{m_type})",
                               section=".maps", symbol=name)
            values_off = bit_off // 8
            elem = btf.type(btf.resolve(mt.elem_type))
            if elem.kind == "PTR":
                target = btf.resolve(elem.type)
                if btf.type(target).kind == "STRUCT":
                    inner, _ = _btf_map_def(ld, f"{name}.values", target)
                # a pointer to a FUNC_PROTO: prog array initialiser, no inner map
            continue
        # __uint(name, N) is a pointer to an array of N ints
        if mt.kind != "PTR" or btf.type(mt.type).kind != "ARRAY":
            raise ld.error(f"map attribute {m_name!r} is not encoded as __uint(...) (BTF type "
                           f"#{m_type} is {mt.kind})", section=".maps", symbol=name)
        fields[m_name] = btf.type(mt.type).nelems
    if "type" not in fields:
        raise ld.error("map definition has no 'type'", section=".maps", symbol=name)
    mtype = fields["type"]
    if mtype not in MAP_TYPES or mtype == 0:
        raise ld.error(f"map type {mtype} is not a Windows map type (known: "
                       f"{', '.join(f'{k} {v}' for k, v in MAP_TYPES.items() if k)})",
                       section=".maps", symbol=name)
    spec = MapSpec(name, mtype, fields.get("key_size", 0), fields.get("value_size", 0),
                   fields.get("max_entries", 0), flags=fields.get("map_flags", 0),
                   pinning=fields.get("pinning", 0), key_type=key_type, value_type=value_type,
                   inner=inner)
    if inner is not None and spec.value_size == 0:
        spec.value_size = 4  # map-in-map values are map ids
    if spec.type == MapType.PROG_ARRAY and spec.value_size == 0:
        spec.value_size = 4
    if spec.type in (MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS,
                     MapType.HASH_OF_MAPS) and spec.key_size == 0:
        spec.key_size = 4
    return spec, values_off


# -- legacy maps -------------------------------------------------------------------------------------
def _legacy_maps(ld: "_Loader", section: str, table: MapTable) -> None:
    sec = ld.by_name[section]
    data = ld.section_data(sec)
    ld.where = section
    syms = sorted((s for s in ld.symbols if s.section == section and s.type != "STT_SECTION"
                   and s.name), key=lambda s: s.value)
    if not syms:
        raise ld.error("legacy maps section has no map symbols", section=section)
    record = len(data) // len(syms)
    if record == 0 or len(data) % len(syms) or record > LEGACY_RECORD or record % 4:
        raise ld.error(f"{len(data)} bytes do not divide into {len(syms)} map definitions of at "
                       f"most {LEGACY_RECORD} bytes", section=section)
    base = len(table.specs)
    for k, sym in enumerate(syms):
        if sym.value != k * record:
            raise ld.error(f"map symbol at offset {sym.value}, expected {k * record}",
                           section=section, symbol=sym.name)
        raw = data[sym.value:sym.value + record].ljust(LEGACY_RECORD, b"\0")
        f = dict(zip(LEGACY_FIELDS, struct.unpack("<8I", raw)))
        if f["type"] not in MAP_TYPES or f["type"] == 0:
            raise ld.error(f"map type {f['type']} is not a Windows map type", section=section,
                           symbol=sym.name)
        spec = MapSpec(sym.name, f["type"], f["key_size"], f["value_size"], f["max_entries"],
                       pinning=f["pinning"], section=section, id=f["id"], inner_id=f["inner_id"],
                       inner_map_idx=f["inner_map_idx"])
        table.by_symbol[(section, sym.value)] = table.add(spec)
    # inner map templates by index (map-in-map declared the legacy way)
    for spec in table.specs[base:]:
        if spec.type in (MapType.HASH_OF_MAPS, MapType.ARRAY_OF_MAPS):
            k = spec.inner_map_idx
            if spec.inner_id:
                inner = next((s for s in table.specs[base:] if s.id == spec.inner_id), None)
            else:
                inner = table.specs[base + k] if base + k < len(table.specs) else None
            if inner is None:
                raise ld.error(f"inner map (index {k}, id {spec.inner_id}) not found",
                               section=section, symbol=spec.name)
            spec.inner = inner
