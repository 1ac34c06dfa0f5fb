"""`ebpf_result_t`: eBPF for Windows' status codes (EFW include/ebpf_result.h, in order from 0)
and the errno each becomes in user mode (EFW libs/api_common/api_common.hpp)."""
from __future__ import annotations

NAMES = ["SUCCESS", "VERIFICATION_FAILED", "JIT_COMPILATION_FAILED", "PROGRAM_LOAD_FAILED",
         "INVALID_FD", "INVALID_OBJECT", "INVALID_ARGUMENT", "OBJECT_NOT_FOUND",
         "OBJECT_ALREADY_EXISTS", "FILE_NOT_FOUND", "ALREADY_PINNED", "NOT_PINNED", "NO_MEMORY",
         "PROGRAM_TOO_LARGE", "RPC_EXCEPTION", "ALREADY_INITIALIZED", "ELF_PARSING_FAILED",
         "FAILED", "OPERATION_NOT_SUPPORTED", "KEY_NOT_FOUND", "ACCESS_DENIED",
         "BLOCKED_BY_POLICY", "ARITHMETIC_OVERFLOW", "EXTENSION_FAILED_TO_LOAD",
         "INSUFFICIENT_BUFFER", "NO_MORE_KEYS", "KEY_ALREADY_EXISTS", "NO_MORE_TAIL_CALLS",
         "PENDING", "OUT_OF_SPACE", "CANCELED", "INVALID_POINTER", "TIMEOUT", "STALE_ID",
         "INVALID_STATE", "TRY_AGAIN"]
CODES = {name: i for i, name in enumerate(NAMES)}

# errno values of the Windows C runtime (they differ from Linux for ENOTSUP/ENOBUFS)
EPERM, ENOENT, EBADF, ENOMEM, EACCES, EFAULT, EEXIST = 1, 2, 9, 12, 13, 14, 17
EINVAL, ENOSPC, ENOBUFS, ENOTSUP, EOTHER = 22, 28, 119, 129, 131

ERRNO = {
    "NO_MEMORY": ENOMEM, "INVALID_ARGUMENT": EINVAL, "INVALID_OBJECT": EINVAL,
    "EXTENSION_FAILED_TO_LOAD": EINVAL, "INVALID_FD": EBADF, "OPERATION_NOT_SUPPORTED": ENOTSUP,
    "INSUFFICIENT_BUFFER": ENOBUFS, "FILE_NOT_FOUND": ENOENT, "KEY_NOT_FOUND": ENOENT,
    "NO_MORE_KEYS": ENOENT, "OBJECT_NOT_FOUND": ENOENT, "OBJECT_ALREADY_EXISTS": EEXIST,
    "VERIFICATION_FAILED": EACCES, "INVALID_POINTER": EFAULT, "OUT_OF_SPACE": ENOSPC,
    "ACCESS_DENIED": EPERM,
}


def name(result: int) -> str:
    """`name(25)` → "NO_MORE_KEYS" (a negated helper return is accepted too)."""
    result = abs(result)
    return NAMES[result] if result < len(NAMES) else f"ebpf_result_t {result}"


def errno(result: int) -> int:
    """The errno user mode reports for `result` (EOTHER for the rest, as EFW does)."""
    return ERRNO.get(name(result), EOTHER)
