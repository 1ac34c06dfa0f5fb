"""Traces: the event schema, reading and writing event files, importers of real Windows logs
(Sysmon, Security, Mordor), key linking, the process_monitor reader."""
from .clock import ClockSkew, measure_skew
from .evtx_split import EvtxWorkerError
from .importer import FileReport, ImportResult, import_command, import_logs
from .keys import link_processes, link_rows, normalize_guid
from .schema import (
                     COLUMNS,
                     DTYPES,
                     EXTRA_COLUMNS,
                     RowError,
                     TraceFormatError,
                     as_schema,
                     datetime_to_filetime,
                     events_frame,
                     filetime_to_datetime,
                     filetime_to_ns,
                     ns_to_filetime,
                     parse_time_ns,
                     read_events,
                     read_trace,
                     validate,
                     write_trace,
)

__all__ = ["COLUMNS", "ClockSkew", "DTYPES", "EXTRA_COLUMNS", "EvtxWorkerError", "FileReport",
           "ImportResult", "RowError", "TraceFormatError", "as_schema", "datetime_to_filetime",
           "events_frame",
           "filetime_to_datetime", "filetime_to_ns", "import_command", "import_logs",
           "link_processes", "link_rows", "measure_skew", "normalize_guid", "ns_to_filetime",
           "parse_time_ns", "read_events", "read_trace", "validate", "write_trace"]
