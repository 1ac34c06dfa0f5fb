"""What an opened object holds: `BpfObject`, its `BpfProgram`s and `BpfMap`s, and `BpfLink`s."""
from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..contract import Closing
from .api import BPF_ANY, PERCPU_MAP_TYPES, _cstr

if TYPE_CHECKING:
    from .library import Libbpf, TestRun
    from .ringbuf import RingBuffer


log = logging.getLogger("ntoslab.libbpf")

class BpfObject(Closing):
    """An opened (then loaded) libbpf object. Close it (or use `with`) to release every fd;
    links made from its programs are destroyed first."""

    def __init__(self, libbpf: Libbpf, ptr: int, path: str) -> None:
        self.libbpf = libbpf
        self.ptr = ptr
        self.path = path
        self.loaded = False
        self.links: list[BpfLink] = []
        self.ring_buffers: list[RingBuffer] = []

    @property
    def name(self) -> str:
        return Path(self.path).name

    def _alive(self) -> int:
        if not self.ptr:
            raise ValueError(f"{self.name}: the object is closed")
        return self.ptr

    def load(self) -> "BpfObject":
        """bpf_object__load; on failure the error carries libbpf's log (the verifier's)."""
        lib = self.libbpf
        with lib.capture_log() as lines:
            ret = lib.lib.bpf_object__load(self._alive())
        if ret < 0:
            raise lib.error(ret, f"bpf_object__load({self.name})", "load", "".join(lines))
        self.loaded = True
        return self

    @property
    def programs(self) -> list["BpfProgram"]:
        out: list[BpfProgram] = []
        prev = None
        while True:
            prev = self.libbpf.lib.bpf_object__next_program(self._alive(), prev)
            if not prev:
                return out
            out.append(BpfProgram(self, prev))

    def program(self, name: str) -> "BpfProgram":
        ptr = self.libbpf.lib.bpf_object__find_program_by_name(self._alive(), name.encode())
        if not ptr:
            have = ", ".join(p.name for p in self.programs) or "none"
            raise KeyError(f"{self.name} has no program {name!r} (it has: {have})")
        return BpfProgram(self, ptr)

    @property
    def maps(self) -> list["BpfMap"]:
        out: list[BpfMap] = []
        prev = None
        while True:
            prev = self.libbpf.lib.bpf_object__next_map(self._alive(), prev)
            if not prev:
                return out
            out.append(BpfMap(self, prev))

    def map(self, name: str) -> "BpfMap":
        ptr = self.libbpf.lib.bpf_object__find_map_by_name(self._alive(), name.encode())
        if not ptr:
            have = ", ".join(m.name for m in self.maps) or "none"
            raise KeyError(f"{self.name} has no map {name!r} (it has: {have})")
        return BpfMap(self, ptr)

    def close(self) -> None:
        """Free ring buffers, destroy links, then bpf_object__close (idempotent)."""
        for rb in list(self.ring_buffers):
            rb.free()
        for link in list(self.links):
            link.destroy()
        if self.ptr:
            self.libbpf.lib.bpf_object__close(self.ptr)
            self.ptr = None

    def __repr__(self) -> str:
        state = "closed" if not self.ptr else "loaded" if self.loaded else "opened"
        return f"<BpfObject {self.name} {state}>"


class BpfProgram:
    def __init__(self, obj: BpfObject, ptr: int) -> None:
        self.obj = obj
        self.ptr = ptr
        lib = obj.libbpf.lib
        self.name = _cstr(lib.bpf_program__name(ptr))
        self.section = _cstr(lib.bpf_program__section_name(ptr))

    @property
    def fd(self) -> int:
        """The program fd (negative before load)."""
        self.obj._alive()
        return self.obj.libbpf.lib.bpf_program__fd(self.ptr)

    @property
    def type(self) -> int | None:
        lb = self.obj.libbpf
        return lb.lib.bpf_program__type(self.ptr) if lb.has("bpf_program__type") else None

    @property
    def expected_attach_type(self) -> int | None:
        lb = self.obj.libbpf
        for name in ("bpf_program__expected_attach_type",
                     "bpf_program__get_expected_attach_type"):
            if lb.has(name):
                return getattr(lb.lib, name)(self.ptr)
        return None

    def set_autoload(self, autoload: bool) -> None:
        lb = self.obj.libbpf
        lb._check(lb.lib.bpf_program__set_autoload(self.ptr, autoload),
                  f"bpf_program__set_autoload({self.name})")

    def attach(self) -> "BpfLink":
        """bpf_program__attach: the attach target comes from the section name."""
        lb = self.obj.libbpf
        self.obj._alive()
        with lb.capture_log() as lines:
            ptr = lb.lib.bpf_program__attach(self.ptr)
            if not ptr:
                err = ctypes.get_errno() or _errno.EINVAL
                raise lb.error(err, f"bpf_program__attach({self.name}, section "
                                    f"{self.section!r})", "attach", "".join(lines))
        link = BpfLink(self, ptr)
        self.obj.links.append(link)
        return link

    def test_run(self, **kw) -> TestRun:
        """bpf_prog_test_run_opts on this program (see Libbpf.test_run)."""
        return self.obj.libbpf.test_run(self.fd, what=self.name, **kw)

    def __repr__(self) -> str:
        return f"<BpfProgram {self.name} section={self.section!r}>"


class BpfLink:
    def __init__(self, program: BpfProgram | None, ptr: int) -> None:
        self.program = program
        self.ptr = ptr

    @property
    def fd(self) -> int:
        if not self.ptr:
            raise ValueError("the link is destroyed")
        lib = self.program.obj.libbpf.lib if self.program else None
        return lib.bpf_link__fd(self.ptr)

    def detach(self) -> None:
        """Detach without freeing (bpf_link__detach); destroy() still needs calling."""
        lb = self.program.obj.libbpf
        if lb.has("bpf_link__detach"):
            lb._check(lb.lib.bpf_link__detach(self.ptr), f"bpf_link__detach({self.program.name})",
                      "attach")
        else:
            lb._check(lb.lib.bpf_link_detach(self.fd), f"bpf_link_detach({self.program.name})",
                      "attach")

    def destroy(self) -> None:
        """bpf_link__destroy: detach, close the fd, free (idempotent)."""
        if not self.ptr:
            return
        lb = self.program.obj.libbpf
        ptr, self.ptr = self.ptr, None
        ret = lb.lib.bpf_link__destroy(ptr)
        if self in self.program.obj.links:
            self.program.obj.links.remove(self)
        if ret < 0:
            raise lb.error(ret, f"bpf_link__destroy({self.program.name})", "attach")

    @property
    def alive(self) -> bool:
        return bool(self.ptr)

    def __repr__(self) -> str:
        return f"<BpfLink {self.program.name if self.program else '?'}" \
               f"{'' if self.ptr else ' destroyed'}>"


class BpfMap:
    """A map of a loaded object: typed lookups on bytes keys/values (ints are packed
    little-endian to the key size). Per-CPU maps return one value per possible CPU."""

    def __init__(self, obj: BpfObject, ptr: int) -> None:
        self.obj = obj
        self.ptr = ptr
        lib = obj.libbpf.lib
        self.name = _cstr(lib.bpf_map__name(ptr))

    @property
    def _lb(self) -> Libbpf:
        return self.obj.libbpf

    @property
    def fd(self) -> int:
        self.obj._alive()
        return self._lb.lib.bpf_map__fd(self.ptr)

    @property
    def type(self) -> int:
        return self._lb.lib.bpf_map__type(self.ptr)

    @property
    def key_size(self) -> int:
        return self._lb.lib.bpf_map__key_size(self.ptr)

    @property
    def value_size(self) -> int:
        return self._lb.lib.bpf_map__value_size(self.ptr)

    @property
    def max_entries(self) -> int:
        return self._lb.lib.bpf_map__max_entries(self.ptr)

    def set_max_entries(self, n: int) -> None:
        """Before load only (e.g. a ring buffer's size in bytes, a power of two)."""
        self._lb._check(self._lb.lib.bpf_map__set_max_entries(self.ptr, n),
                        f"bpf_map__set_max_entries({self.name}, {n})", "map")

    @property
    def is_percpu(self) -> bool:
        return self.type in PERCPU_MAP_TYPES[self._lb.platform]

    @property
    def lookup_size(self) -> int:
        """Bytes a lookup writes: pad8(value_size) * possible CPUs for per-CPU maps."""
        if self.is_percpu:
            return ((self.value_size + 7) & ~7) * self._lb.num_possible_cpus()
        return self.value_size

    def _key(self, key: bytes | int) -> bytes:
        if isinstance(key, int):
            return key.to_bytes(self.key_size, "little")
        if len(key) != self.key_size:
            raise ValueError(f"map {self.name}: key is {len(key)} bytes, the map's are "
                             f"{self.key_size}")
        return bytes(key)

    def lookup(self, key: bytes | int) -> bytes | list[bytes] | None:
        raw = self._lb.map_lookup(self.fd, self._key(key), self.lookup_size, self.name)
        if raw is None or not self.is_percpu:
            return raw
        step = (self.value_size + 7) & ~7
        return [raw[i:i + self.value_size] for i in range(0, len(raw), step)]

    def update(self, key: bytes | int, value: bytes | list[bytes], flags: int = BPF_ANY) -> None:
        if self.is_percpu:
            step = (self.value_size + 7) & ~7
            values = value if isinstance(value, list) else \
                [value] * self._lb.num_possible_cpus()
            value = b"".join(bytes(v).ljust(step, b"\0") for v in values)
        elif len(value) != self.value_size:
            raise ValueError(f"map {self.name}: value is {len(value)} bytes, the map's are "
                             f"{self.value_size}")
        self._lb.map_update(self.fd, self._key(key), bytes(value), flags, self.name)

    def delete(self, key: bytes | int) -> bool:
        return self._lb.map_delete(self.fd, self._key(key), self.name)

    def keys(self) -> Iterator[bytes]:
        key = None
        fd, size = self.fd, self.key_size
        seen = 0
        while True:
            key = self._lb.map_next_key(fd, key, size, self.name)
            if key is None:
                return
            yield key
            seen += 1
            if seen > max(self.max_entries, 1) * 4:  # a map changing under us: stop, never spin
                return

    def items(self) -> Iterator[tuple[bytes, bytes | list[bytes]]]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def __repr__(self) -> str:
        return f"<BpfMap {self.name} type={self.type} key={self.key_size} " \
               f"value={self.value_size} max={self.max_entries}>"
