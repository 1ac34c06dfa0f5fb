"""Traces: the event schema, reading and writing event files, the process_monitor reader."""
from .schema import COLUMNS, RowError, TraceFormatError, events_frame, read_events

__all__ = ["COLUMNS", "RowError", "TraceFormatError", "events_frame", "read_events"]
