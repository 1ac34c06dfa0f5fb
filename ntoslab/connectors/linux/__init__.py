"""Live process events from this machine's Linux kernel, behind the ProcessHook API.

Our own CO-RE program (`bpf/linux/process_capture.c`, loaded with libbpf.so.1) watches the
scheduler's BTF tracepoints: `sched_process_fork` remembers who created each new process,
`sched_process_exec` reports a process starting an image (path, argv read from its memory,
parent, creator, uid, start time), `sched_process_exit` reports a process ending (only when its
whole thread group has exited: thread exits are not process exits). Records become
`ProcessEvent`s in the trace schema with `source="linux-live"`.

Mapping to the Windows model (where a process is created with its image):
- `create` row at each exec: `time` is the exec, `creation_time` the fork (task start time),
  `parent_process_id` the real parent, `creating_process_id`/`creating_thread_id` the process
  and thread that forked it (seen at the fork; if the fork predates the capture, the parent and
  thread 0). A process that execs again gets another create row (same pid, key suffixed "/2",
  "/3", ...); its delete row carries the key of its last image.
- A process that forks and exits without exec gets a create row (at its fork time, with the
  image and command line of the process that forked it) just before its delete row.
- `delete` row at exit: `exit_code` is the exit status (0-255), or 128 + the signal number when a
  signal killed it; `exit_time`, and `image_path`/`command_line` of its image when known.
- `image_path` is the path execve was given (after PATH search, symlinks not resolved);
  `command_line` is argv joined with spaces (arguments with blanks or quotes are shell-quoted);
  `token_sid` is the Unix-user SID S-1-22-1-<uid>, `account_name` the user name and
  `account_domain` "Unix User" (the convention Samba and Windows NFS use for Unix accounts).
- `process_key` is "host:pid:creation_time" (FILETIME), as the other importers derive it.

Shadow mode: `attach(program)` runs a Windows `process` program in the emulator on every live
event (its verdicts, ring buffers and maps are recorded); **nothing is enforced on Linux**: a
deny verdict does not stop the real process.

>>> with LinuxHook() as hook:                                     # doctest: +SKIP
...     frame = hook.capture(duration=5)

Layout: `records` (the capture program's record layout), `lifecycle` (records -> ProcessEvents),
`hook` (LinuxHook, EventStream), `capture` (the `ntoslab capture` command).
"""
from __future__ import annotations

from ...trace.schema import trace_frame
from .capture import capture_command, write_trace
from .hook import EventStream, LinuxHook, Recording, build_program
from .lifecycle import BootClock, Decoder, exit_code_of, join_argv
from .records import (
    ARGS_MAX_BYTES,
    ARGS_OFFSET,
    DEFAULT_RINGBUF_BYTES,
    EVENT_EXEC,
    EVENT_EXIT,
    FILENAME_BYTES,
    FLAG_ARGS_FAULT,
    FLAG_ARGS_TRUNCATED,
    FLAG_CREATOR_KNOWN,
    FLAG_FILENAME_FAULT,
    FLAG_NEVER_EXECED,
    HEADER,
    PROGRAM_HEADER,
    PROGRAM_SOURCE,
    ROOT,
    SOURCE,
    STATS,
    UNIX_USER_DOMAIN,
    RawEvent,
    text,
)

__all__ = ['ARGS_MAX_BYTES', 'ARGS_OFFSET', 'BootClock', 'DEFAULT_RINGBUF_BYTES', 'Decoder', 'EVENT_EXEC', 'EVENT_EXIT', 'EventStream', 'FILENAME_BYTES', 'FLAG_ARGS_FAULT', 'FLAG_ARGS_TRUNCATED', 'FLAG_CREATOR_KNOWN', 'FLAG_FILENAME_FAULT', 'FLAG_NEVER_EXECED', 'HEADER', 'LinuxHook', 'PROGRAM_HEADER', 'PROGRAM_SOURCE', 'ROOT', 'RawEvent', 'Recording', 'SOURCE', 'STATS', 'UNIX_USER_DOMAIN', 'build_program', 'capture_command', 'exit_code_of', 'join_argv', 'text', 'trace_frame', 'write_trace']
