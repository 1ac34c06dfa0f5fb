"""libbpf failures as `LibbpfError`: errno names on both platforms (EbpfApi.dll uses the MSVC
runtime's numbers), and what to check for each failure a user meets."""
from __future__ import annotations

import errno as _errno
import logging
import os

log = logging.getLogger("ntoslab.libbpf")

# -- errors -----------------------------------------------------------------------------------

# errno numbers differ: EbpfApi.dll uses the MSVC runtime's (reference §4).
MSVC_ERRNO = {1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 7: "E2BIG",
              8: "ENOEXEC", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT",
              16: "EBUSY", 17: "EEXIST", 22: "EINVAL", 24: "EMFILE", 28: "ENOSPC",
              34: "ERANGE", 40: "ENOSYS", 119: "ENOBUFS", 129: "ENOTSUP", 130: "EOPNOTSUPP",
              131: "EOTHER", 138: "ETIMEDOUT"}
# Linux kernel-internal values that leak out of bpf(2), and libbpf's own error numbers.
EXTRA_ERRNO = {524: ("ENOTSUPP", "operation not supported by this program or map type"),
               4000: ("LIBBPF_ERRNO__LIBELF", "something wrong in libelf"),
               4001: ("LIBBPF_ERRNO__FORMAT", "BPF object format invalid"),
               4002: ("LIBBPF_ERRNO__KVERSION", "incorrect or no 'version' section"),
               4003: ("LIBBPF_ERRNO__ENDIAN", "endian mismatch"),
               4004: ("LIBBPF_ERRNO__INTERNAL", "internal error in libbpf"),
               4005: ("LIBBPF_ERRNO__RELOC", "relocation failed"),
               4006: ("LIBBPF_ERRNO__LOAD", "load program failure for unknown reason"),
               4007: ("LIBBPF_ERRNO__VERIFY", "kernel verifier blocks program loading"),
               4008: ("LIBBPF_ERRNO__PROG2BIG", "program too big"),
               4009: ("LIBBPF_ERRNO__KVER", "incorrect kernel version"),
               4010: ("LIBBPF_ERRNO__PROGTYPE", "kernel doesn't support this program type")}

_PRIVS = {"linux": "run as root, or grant CAP_BPF plus CAP_PERFMON (tracing) or CAP_NET_ADMIN "
                   "(networking); check /proc/sys/kernel/unprivileged_bpf_disabled",
          "windows": "run from an elevated (Administrator) prompt"}

# (operation kind, errno name) -> what to check; "*" matches any operation.
HINTS: dict[tuple[str, str], str] = {
    ("open", "ENOENT"): "check that the object file exists (build it with `ntoslab build`)",
    ("open", "LIBBPF_ERRNO__FORMAT"): "the file is not a BPF ELF object (compile with "
                                     "-target bpf -O2 -g)",
    ("open", "EINVAL"): "the object is malformed or uses a section or map definition this "
                        "libbpf does not understand; the libbpf log says which",
    ("open", "ESRCH"): "a tp_btf/fentry target or kernel type was not found in the kernel's "
                       "BTF (/sys/kernel/btf/vmlinux): is the kernel new enough?",
    ("load", "EPERM"): "{privs}",
    ("load", "EACCES"): "the verifier rejected the program: read its log (below / .log)",
    ("load", "EINVAL"): "the kernel refused the program or a map: read the log (below / "
                        ".log); a tracing program needs a kernel with BTF",
    ("load", "ESRCH"): "a CO-RE relocation or attach target is missing from the kernel's BTF "
                       "(/sys/kernel/btf/vmlinux): check the kernel has CONFIG_DEBUG_INFO_BTF "
                       "and the field or tracepoint exists in this version",
    ("load", "ENOENT"): "a CO-RE relocation or BTF type could not be resolved: is "
                        "/sys/kernel/btf/vmlinux present?",
    ("load", "E2BIG"): "the program or a map is too large for this kernel",
    ("load", "LIBBPF_ERRNO__VERIFY"): "the verifier rejected the program: read its log",
    ("load", "LIBBPF_ERRNO__PROG2BIG"): "the program has too many instructions",
    ("load", "LIBBPF_ERRNO__FORMAT"): "a file libbpf read is not valid ELF/BTF (the object, or "
                                     "the kernel BTF given as btf_custom_path)",
    ("load", "LIBBPF_ERRNO__RELOC"): "a relocation failed: a map or BTF type is missing",
    ("attach", "EPERM"): "{privs}",
    ("attach", "ENOENT"): "the attach target (tracepoint, function) does not exist here",
    ("attach", "EINVAL"): "the program's section does not name an attach target libbpf can "
                          "attach automatically (e.g. tp_btf/<tracepoint>)",
    ("attach", "EOPNOTSUPP"): "libbpf cannot attach this section type automatically",
    ("attach", "ENOTSUP"): "this attach type needs bpf_program__attach (or ebpf_program_attach "
                           "with the attach-type GUID), not bpf_prog_attach",
    ("attach", "EBUSY"): "something else is attached exclusively to this target",
    ("map", "ENOENT"): "no such key",
    ("map", "EEXIST"): "the key exists and BPF_NOEXIST was given",
    ("map", "E2BIG"): "the map is full (max_entries reached)",
    ("map", "ENOSPC"): "the map is full",
    ("map", "EINVAL"): "key or value size does not match the map, or the flags are invalid "
                       "for this map type",
    ("map", "EBADF"): "the map fd is closed: was the object closed?",
    ("test_run", "EINVAL"): "ctx_in/data_in sizes do not fit the program type (for the "
                            "Windows process type: ctx_in is the 296-byte "
                            "process_notify_context_t and data_in must hold every string "
                            "the UNICODE_STRING lengths name)",
    ("test_run", "ENOTSUPP"): "this program type cannot be test-run by the kernel",
    ("test_run", "ENOTSUP"): "this program type cannot be test-run (on Windows: the extension "
                             "has no context_create for it, or it is too old)",
    ("test_run", "EPERM"): "{privs}",
    ("ringbuf", "EINVAL"): "the map is not a ring buffer",
    ("ringbuf", "ENOTSUP"): "poll/consume are unavailable: eBPF for Windows older than 1.1 "
                            "delivers ring-buffer records by callback only",
    ("*", "EBADF"): "a file descriptor is closed or invalid: was the object already closed?",
    ("*", "ENOMEM"): "out of memory (or RLIMIT_MEMLOCK too low on kernels before 5.11)",
    ("*", "EPERM"): "{privs}",
}


def errno_name(err: int, platform: str = "linux") -> str:
    """The symbolic name of an errno value as `platform`'s C runtime numbers it."""
    err = abs(err)
    if err in EXTRA_ERRNO:
        return EXTRA_ERRNO[err][0]
    if platform == "windows":
        return MSVC_ERRNO.get(err, f"errno {err}")
    return _errno.errorcode.get(err, f"errno {err}")


def errno_text(err: int, platform: str = "linux") -> str:
    """A short description of an errno value of `platform`."""
    err = abs(err)
    if err in EXTRA_ERRNO:
        return EXTRA_ERRNO[err][1]
    if platform == "windows":
        name = errno_name(err, "windows")
        if name == "EOTHER":
            return "other error (an ebpf_result_t with no errno equivalent)"
        num = getattr(_errno, name, None)
        return os.strerror(num) if isinstance(num, int) else name
    return os.strerror(err)


class LibbpfError(OSError):
    """A libbpf call failed. `errno` is positive; `operation` says what was attempted (e.g.
    "bpf_object__load(process_capture.o)"); `hint` what to check; `log` libbpf's own messages
    (the verifier log on a load failure)."""

    def __init__(self, err: int, operation: str, hint: str | None = None, log: str = "",
                 platform: str = "linux") -> None:
        err = abs(err)
        self.operation = operation
        self.hint = hint
        self.log = log
        self.name = errno_name(err, platform)
        self.platform = platform
        text = errno_text(err, platform)
        message = f"{operation} failed: {self.name} ({text})"
        if hint:
            message += f"; {hint}"
        if log:
            tail = "\n".join(log.rstrip().splitlines()[-30:])
            message += f"\nlibbpf said:\n{tail}"
        super().__init__(err, message)

    def __str__(self) -> str:
        return self.strerror or ""


class LibbpfUnavailable(RuntimeError):
    """The libbpf library (libbpf.so.1 / EbpfApi.dll) cannot be found or lacks a needed call."""


def translate(err: int, operation: str, kind: str = "*", *, platform: str = "linux",
              log: str = "", hints: dict | None = None) -> LibbpfError:
    """The LibbpfError for a negative (or positive) errno returned by `operation`.

    `kind` picks the hints: open, load, attach, map, test_run, ringbuf. `hints` adds or
    overrides entries (the Windows connector's own advice)."""
    name = errno_name(err, platform)
    table = dict(HINTS)
    if hints:
        table.update(hints)
    hint = table.get((kind, name)) or table.get(("*", name))
    if hint:
        hint = hint.format(privs=_PRIVS.get(platform, _PRIVS["linux"]))
    return LibbpfError(err, operation, hint, log, platform)
