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
    def validate_spec(self) -> None:
        super().validate_spec()
        if self.spec.key_size < 4:
            self.spec_error(f"key_size {self.spec.key_size} is smaller than the 4-byte prefix "
                            f"length")

    @property
    def max_prefix(self) -> int:
        return (self.spec.key_size - 4) * 8

    @staticmethod
    def prefix_length(key: bytes) -> int:
        return int.from_bytes(key[:4], "little")

    def match(self, key: bytes) -> bytes | None:
        """The stored key that `key` matches longest, or None."""
        e = self._lib.ntl_map_lpm_match(self.native, self.check_key(key))
        return None if e < 0 else self.key_of(e)
