"""Longest-prefix-match tries (Windows type 9).

Key = ``{u32 prefixlen; u8 data[key_size - 4]}`` (little-endian prefixlen); the prefix is the
first ``prefixlen`` bits of ``data``, most significant bit of each byte first, so an IPv4
address is stored in network byte order.  ``max_prefix = (key_size - 4) * 8``.

EFW facts (ebpf_maps.c ``_create_lpm_map``, ``_find_lpm_map_entry``, ``_update_lpm_map_entry``,
``_delete_lpm_map_entry``; it is a hash table whose key identity is prefixlen + the prefix bits):

* creation: key_size < 4 -> EBPF_INVALID_ARGUMENT;
* update: prefixlen > max_prefix -> EBPF_INVALID_ARGUMENT; otherwise hash-map flag rules; two
  keys with the same prefixlen whose data agree on the first prefixlen bits are the same key;
* lookup (program and user side alike): prefixlen > max_prefix -> NULL; else the entry with the
  longest stored prefix length <= the key's prefixlen that matches the key's data;
* delete: prefixlen > max_prefix -> EBPF_INVALID_ARGUMENT; exact key, missing -> KEY_NOT_FOUND;
* lookup_and_delete -> refused (NULL);
* unbounded like a hash map (see hash.py, ``MapEnv.bounded_hash``).

``keys()`` yields the key bytes as first inserted, in insertion order.
"""
from __future__ import annotations

from ...elf.program import MapSpec
from ...vm.memory import Region
from .base import EBPF_INVALID_ARGUMENT, MapEnv
from .hash import HashMap


def mask_prefix(data: bytes, bits: int) -> bytes:
    """`data` with every bit past the first `bits` (MSB first) cleared."""
    out = bytearray(len(data))
    full, rest = divmod(bits, 8)
    out[:full] = data[:full]
    if rest and full < len(data):
        out[full] = data[full] & (0xFF << (8 - rest)) & 0xFF
    return bytes(out)


class LpmTrieMap(HashMap):
    def __init__(self, spec: MapSpec, env: MapEnv) -> None:
        super().__init__(spec, env)
        self.max_prefix = (spec.key_size - 4) * 8
        self.prefix_lengths: set[int] = set()
        self.originals: dict[bytes, bytes] = {}

    def validate_spec(self) -> None:
        super().validate_spec()
        if self.spec.key_size < 4:
            self.spec_error(f"key_size {self.spec.key_size} is smaller than the 4-byte prefix "
                            f"length")

    @staticmethod
    def prefix_length(key: bytes) -> int:
        return int.from_bytes(key[:4], "little")

    def canonical(self, key: bytes) -> bytes:
        plen = self.prefix_length(key)
        return key[:4] + mask_prefix(key[4:], min(plen, self.max_prefix))

    def find(self, key: bytes) -> Region | None:
        """Longest-prefix match (EFW: user-mode lookups match the same way)."""
        plen = self.prefix_length(key)
        if plen > self.max_prefix:
            return None
        data = key[4:]
        for length in sorted((n for n in self.prefix_lengths if n <= plen), reverse=True):
            r = self.entries.get(length.to_bytes(4, "little") + mask_prefix(data, length))
            if r is not None:
                return r
        return None

    def match(self, key: bytes) -> bytes | None:
        """The stored key that `key` matches longest, or None."""
        r = self.find(self.check_key(key))
        if r is None:
            return None
        return next(self.originals[ck] for ck, v in self.entries.items() if v is r)

    def inserted(self, ck: bytes, key: bytes) -> None:
        self.prefix_lengths.add(self.prefix_length(key))
        self.originals[ck] = key

    def remove(self, ck: bytes):
        r = super().remove(ck)
        if r is not None:
            del self.originals[ck]
        return r

    def original_key(self, ck: bytes) -> bytes:
        return self.originals[ck]

    def lookup_address(self, key: bytes) -> int:
        r = self.find(key)
        return 0 if r is None else r.base

    def store(self, key: bytes, data: bytes, flags: int) -> int:
        if self.prefix_length(key) > self.max_prefix:
            return -EBPF_INVALID_ARGUMENT
        return super().store(key, data, flags)

    def delete(self, key: bytes) -> int:
        if self.prefix_length(key) > self.max_prefix:
            return -EBPF_INVALID_ARGUMENT
        return super().delete(key)

    def lookup_and_delete_address(self, key: bytes) -> int:
        return 0  # EFW _find_lpm_map_entry refuses EBPF_MAP_FIND_FLAG_DELETE
