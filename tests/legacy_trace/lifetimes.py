"""Process lifetimes and exit codes (with NTSTATUS / Win32 names for the common ones)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .tree import ProcessTree, image_name

if TYPE_CHECKING:
    import pandas as pd

# Public Windows status and error codes seen as process exit codes.
EXIT_CODE_NAMES: dict[int, str] = {
    0x00000000: "STATUS_SUCCESS / ERROR_SUCCESS",
    0x00000001: "ERROR_INVALID_FUNCTION (generic failure)",
    0x00000002: "ERROR_FILE_NOT_FOUND",
    0x00000003: "ERROR_PATH_NOT_FOUND",
    0x00000005: "ERROR_ACCESS_DENIED",
    0x00000057: "ERROR_INVALID_PARAMETER",
    0x00000103: "STILL_ACTIVE (STATUS_PENDING)",
    0x40010004: "DBG_TERMINATE_PROCESS",
    0x80000003: "STATUS_BREAKPOINT",
    0xC0000005: "STATUS_ACCESS_VIOLATION",
    0xC0000017: "STATUS_NO_MEMORY",
    0xC000001D: "STATUS_ILLEGAL_INSTRUCTION",
    0xC0000022: "STATUS_ACCESS_DENIED",
    0xC00000FD: "STATUS_STACK_OVERFLOW",
    0xC0000135: "STATUS_DLL_NOT_FOUND",
    0xC0000142: "STATUS_DLL_INIT_FAILED",
    0xC000013A: "STATUS_CONTROL_C_EXIT",
    0xC0000374: "STATUS_HEAP_CORRUPTION",
    0xC0000409: "STATUS_STACK_BUFFER_OVERRUN",
    0xE0434352: "CLR unhandled exception",
    0xFFFFFFFF: "-1",
    0xFFFFFFFE: "-2",
}


def exit_code_name(code: Any) -> str | None:
    """The name of an exit code (int, signed or unsigned 32-bit), or None when unknown/missing."""
    try:
        value = int(code) & 0xFFFFFFFF
    except (TypeError, ValueError):
        return None
    return EXIT_CODE_NAMES.get(value)


def lifetimes(trace: "pd.DataFrame") -> "pd.DataFrame":
    """One row per process instance: start, end, duration (s), exit code and its name.

    Processes without an exit in the trace have no end (`still_running` True)."""
    import pandas as pd
    tree = ProcessTree.from_trace(trace)
    rows = []
    for key, n in tree.nodes.items():
        start, end = _ns(n.time), _ns(n.exit_time)
        rows.append({"process_key": key, "process_id": n.pid, "image": image_name(n.image),
                     "start": start, "end": end,
                     "duration_s": (end - start) / 1e9 if start is not None and end is not None else None,
                     "exit_code": n.exit_code, "exit_name": exit_code_name(n.exit_code),
                     "still_running": end is None, "parent_key": n.parent})
    return pd.DataFrame(rows)


def exit_code_summary(trace: "pd.DataFrame") -> "pd.DataFrame":
    """Counts of each exit code per image, with names."""
    life = lifetimes(trace)
    done = life[~life["still_running"] & life["exit_code"].notna()]
    if done.empty:
        return done.assign(count=[])[["image", "exit_code", "exit_name", "count"]]
    out = done.groupby(["image", "exit_code"], dropna=False).size().reset_index(name="count")
    out["exit_name"] = out["exit_code"].map(exit_code_name)
    return out.sort_values(["count", "image"], ascending=[False, True]).reset_index(drop=True)


def _ns(t: Any) -> int | None:
    if t is None:
        return None
    try:
        if hasattr(t, "value"):
            return int(t.value)
        if t != t:  # NaN
            return None
        return int(t)
    except (TypeError, ValueError):
        return None
