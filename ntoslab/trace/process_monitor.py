"""Read process_monitor output the way the Windows reader does (reference §2.2).

For every 112-byte `process_info_t` ring record (other sizes are skipped and counted), look the
pid up in `process_map`, `command_map`, `account_name_map` and `account_domain_map`, decode the
UTF-16LE strings with NULs trimmed, turn the SID bytes into a string, and emit a row in the
trace schema. Like the Windows reader, the join happens when the record is consumed: poll after
each event (`hook.subscribe(reader)`) to see the maps as they were at that moment.

>>> reader = ProcessMonitorReader(hook.load("bpf/process_monitor.o"))   # doctest: +SKIP
>>> hook.subscribe(reader); hook.replay(trace); reader.to_frame()      # doctest: +SKIP
"""
from __future__ import annotations

import struct
from typing import Any

from ..filetime import filetime_to_ns
from ..hooks.process import sid_from_bytes
from .schema import COLUMNS

RECORD_SIZE = 112
RECORD_FORMAT = "<IIIIQQIB3xI68s"
STRING_MAPS = {"image_path": "process_map", "command_line": "command_map",
               "account_name": "account_name_map", "account_domain": "account_domain_map"}


def decode_utf16(value: bytes | None) -> str | None:
    """A zero-padded UTF-16LE map value as text (None when the key is missing)."""
    if value is None:
        return None
    n = len(value) - len(value) % 2
    text = value[:n].decode("utf-16-le", errors="replace")
    end = text.find("\0")
    return text if end < 0 else text[:end]


def parse_record(rec: bytes) -> dict[str, Any]:
    (pid, ppid, cpid, ctid, ctime, etime, code, op, sid_size, sid) = struct.unpack(RECORD_FORMAT, rec)
    return {"process_id": pid, "parent_process_id": ppid, "creating_process_id": cpid,
            "creating_thread_id": ctid, "creation_time": ctime, "exit_time": etime,
            "exit_code": code, "operation": "create" if op == 0 else "delete" if op == 1 else f"op{op}",
            "token_sid": sid_from_bytes(sid[:sid_size]) if 0 < sid_size <= 68 else None}


class ProcessMonitorReader:
    """Consumes a loaded process_monitor's ring buffer and joins each record with its maps."""

    def __init__(self, loaded, ringbuf: str = "process_ringbuf", host: str | None = None,
                 source: str = "emulator") -> None:
        self.loaded = loaded
        self.ring = loaded.sandbox.maps[ringbuf]
        self.maps = {field: loaded.sandbox.maps.get(name) for field, name in STRING_MAPS.items()}
        self.rows: list[dict[str, Any]] = []
        self.skipped = 0          # records whose size is not 112 (the Windows reader ignores them)
        self.host = host
        self.source = source

    def poll(self) -> int:
        """Consume every pending record; return how many became rows."""
        n = 0
        for rec in self.ring.consume():
            if len(rec) != RECORD_SIZE:
                self.skipped += 1
                continue
            row = parse_record(rec)
            key = row["process_id"].to_bytes(4, "little")
            for field, m in self.maps.items():
                row[field] = decode_utf16(m.lookup(key)) if m is not None else None
            if row["operation"] == "create":
                row["time"] = filetime_to_ns(row["creation_time"]) if row["creation_time"] else 0
            else:
                row["time"] = filetime_to_ns(row["exit_time"]) if row["exit_time"] else 0
            row["host"], row["source"] = self.host, self.source
            self.rows.append(row)
            n += 1
        return n

    def __call__(self, verdict=None) -> None:  # as a hook subscriber
        self.poll()

    def to_frame(self):
        """Rows so far in the trace schema (with `process_key`/`parent_key` from pid and time)."""
        import pandas as pd
        self.poll()
        frame = pd.DataFrame(self.rows, columns=COLUMNS)
        created: dict[int, str] = {}
        keys, parents = [], []
        for row in frame.itertuples(index=False):
            if row.operation == "create":
                key = f"{self.host or 'emulator'}:{row.process_id}:{row.creation_time}"
                parents.append(created.get(row.parent_process_id))
                created[row.process_id] = key
            else:
                key = created.get(row.process_id) or \
                    f"{self.host or 'emulator'}:{row.process_id}:{row.creation_time}"
                parents.append(None)
            keys.append(key)
        frame["process_key"] = keys
        frame["parent_key"] = parents
        return frame
