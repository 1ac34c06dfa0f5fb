/* ntoslab: the ntosebpfext process hook (our own header, from the published layout):
 * process_md_t (144 bytes; the first 72 are the pre-0.7 layout), process_hook_t and the
 * process helpers 65536-65538. */
#pragma once
#include "bpf_helpers_platform.h"

#define TOKEN_SID_MAX_SIZE 68

typedef enum _process_operation {
    PROCESS_OPERATION_CREATE = 0,
    PROCESS_OPERATION_DELETE = 1,
} process_operation_t;

typedef struct _process_md {
    uint8_t* command_start;                /* UTF-16LE command line, not NUL-terminated */
    uint8_t* command_end;
    uint64_t process_id;
    uint64_t parent_process_id;            /* create only */
    uint64_t creating_process_id;          /* create only */
    uint64_t creating_thread_id;           /* create only */
    uint64_t creation_time;                /* FILETIME */
    uint64_t exit_time;                    /* FILETIME, delete only */
    uint32_t process_exit_code;            /* delete only */
    process_operation_t operation : 8;
    uint32_t token_sid_size;               /* create only; 0 when not captured */
    uint8_t token_sid[TOKEN_SID_MAX_SIZE]; /* raw SID of the primary token */
} process_md_t;

_Static_assert(sizeof(process_md_t) == 144, "process_md_t is 144 bytes");
_Static_assert(__builtin_offsetof(process_md_t, command_end) == 8, "command_end at 8");
_Static_assert(__builtin_offsetof(process_md_t, creation_time) == 48, "creation_time at 48");
_Static_assert(__builtin_offsetof(process_md_t, process_exit_code) == 64, "exit code at 64");
_Static_assert(__builtin_offsetof(process_md_t, token_sid_size) == 72, "token_sid_size at 72");
_Static_assert(__builtin_offsetof(process_md_t, token_sid) == 76, "token_sid at 76");

/* Return 0 (or any non-negative NTSTATUS) to allow a create, a negative NTSTATUS to deny it
 * with that status; the return value of a delete is ignored. */
typedef int process_hook_t(process_md_t* context);

#define PROCESS_EXT_HELPER_FN_BASE 0xFFFF

#ifndef EBPF_HELPER
#define EBPF_HELPER(ret, name, args) typedef ret(*const name##_t) args
#endif

typedef enum {
    BPF_FUNC_process_get_image_path = PROCESS_EXT_HELPER_FN_BASE + 1,
    BPF_FUNC_process_get_account_name = PROCESS_EXT_HELPER_FN_BASE + 2,
    BPF_FUNC_process_get_account_domain = PROCESS_EXT_HELPER_FN_BASE + 3,
} ebpf_process_helper_id_t;

/* Each copies a UTF-16LE string without terminator and returns its byte length; -22 (EINVAL)
 * and nothing copied when the buffer is too small; the account helpers return -2 (ENOENT)
 * when there is no SID or it cannot be resolved. */
EBPF_HELPER(int, bpf_process_get_image_path, (process_md_t* ctx, uint8_t* path, uint32_t path_length));
#define bpf_process_get_image_path ((bpf_process_get_image_path_t)BPF_FUNC_process_get_image_path)
EBPF_HELPER(int, bpf_process_get_account_name, (process_md_t* ctx, uint8_t* name, uint32_t name_length));
#define bpf_process_get_account_name ((bpf_process_get_account_name_t)BPF_FUNC_process_get_account_name)
EBPF_HELPER(int, bpf_process_get_account_domain, (process_md_t* ctx, uint8_t* domain, uint32_t domain_length));
#define bpf_process_get_account_domain ((bpf_process_get_account_domain_t)BPF_FUNC_process_get_account_domain)
