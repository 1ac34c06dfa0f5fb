"""Process lifetimes and exit codes (with NTSTATUS / Win32 names for the common ones)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .processes import map_unique, time_ns
from .tree import ProcessTree, as_tree

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


def lifetimes(trace: "pd.DataFrame | ProcessTree") -> "pd.DataFrame":
    """One row per process instance: start and end (UTC datetimes), duration (s), exit code
    and its name.

    Processes without an exit in the trace have no end (`still_running` True). Takes a trace
    or its `ProcessTree`."""
    import pandas as pd
    f = as_tree(trace).frame
    start, end = time_ns(f["start"]), time_ns(f["end"])
    codes = f["exit_code"]
    return pd.DataFrame({
        "process_key": f["process_key"], "process_id": f["process_id"], "image": f["image"],
        "start": pd.to_datetime(start, unit="ns", utc=True),
        "end": pd.to_datetime(end, unit="ns", utc=True),
        "duration_s": (end - start).astype("Float64") / 1e9,
        "exit_code": codes,
        "exit_name": pd.Series(map_unique(codes, exit_code_name), dtype=object),
        "still_running": end.isna().to_numpy(bool), "parent_key": f["parent_key"]})


def as_ns(times: "pd.Series") -> "pd.Series":
    """UTC datetimes (`lifetimes`' start/end) as Int64 nanoseconds, missing kept missing."""
    import pandas as pd
    out = pd.Series(pd.array([None] * len(times), dtype="Int64"), index=times.index)
    ok = times.notna()
    out[ok] = times[ok].astype("datetime64[ns, UTC]").astype("int64")
    return out


def exit_code_summary(trace: "pd.DataFrame | ProcessTree") -> "pd.DataFrame":
    """Counts of each exit code per image, with names."""
    life = lifetimes(trace)
    done = life[~life["still_running"] & life["exit_code"].notna()]
    if done.empty:
        return done.assign(count=[])[["image", "exit_code", "exit_name", "count"]]
    out = done.groupby(["image", "exit_code"], dropna=False).size().reset_index(name="count")
    out["exit_name"] = out["exit_code"].map(exit_code_name)
    return out.sort_values(["count", "image"], ascending=[False, True]).reset_index(drop=True)
