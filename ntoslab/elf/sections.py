"""Program types by ELF section name, as eBPF for Windows maps them (longest prefix wins).

>>> program_type("process/deny")
'process'
"""
from __future__ import annotations

# section prefix -> (program type name, BPF_PROG_TYPE number on Windows, attach type number)
SECTION_TYPES: dict[str, tuple[str, int, int]] = {
    "process": ("process", 6, 11),
    "netevent_monitor": ("netevent", 5, 10),
    "xdp": ("xdp", 1, 1),
    "bind": ("bind", 2, 2),
    "cgroup/connect4": ("cgroup_sock_addr", 3, 3),
    "cgroup/connect6": ("cgroup_sock_addr", 3, 4),
    "cgroup/recv_accept4": ("cgroup_sock_addr", 3, 5),
    "cgroup/recv_accept6": ("cgroup_sock_addr", 3, 6),
    "sockops": ("sock_ops", 4, 7),
    "sample_ext": ("sample", 999, 8),
}


def program_type(section: str) -> str | None:
    """The program type of a section name by longest matching prefix, or None when unknown."""
    best = None
    for prefix, info in SECTION_TYPES.items():
        if section.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, info)
    return best[1][0] if best else None


def nearest_section(section: str) -> str | None:
    """The known section prefix a section of unknown type was probably meant to be (a typo such
    as "proces" for "process"), or None when no known prefix is close."""
    from difflib import get_close_matches
    if program_type(section) is not None:
        return None
    head = section.split("/", 1)[0]
    candidates = [p for p in SECTION_TYPES if "/" not in p]
    for text, pool in ((section, list(SECTION_TYPES)), (head, candidates)):
        match = get_close_matches(text, pool, n=1, cutoff=0.75)
        if match:
            return match[0] + section[len(head):] if pool is candidates else match[0]
    return None
