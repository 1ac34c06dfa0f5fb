// ntoslab process monitor: records every process create/exit the way the Windows
// process_monitor example does, so its ring records and string maps are interchangeable:
//   - one 112-byte `process_info_t` record per event in the ring buffer `process_ringbuf`;
//   - on create, the UTF-16LE image path, command line, account name and account domain in
//     LRU maps keyed by the 32-bit pid (`process_map`, `command_map`, `account_name_map`,
//     `account_domain_map`), zero-padded.
// A per-CPU array (`temp`) serves as the large scratch buffer (the 512-byte stack is too small);
// `scratch_space` keeps the last command line each creating thread produced, so the object has
// the same seven maps, with the same definitions, as the Windows example.

#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

#define IMAGE_PATH_SIZE 1024
#define ACCOUNT_NAME_SIZE 64
#define ACCOUNT_DOMAIN_SIZE 512
#define COMMAND_SIZE (64 * 1024 - 16)

typedef struct process_info {
    uint32_t process_id;
    uint32_t parent_process_id;
    uint32_t creating_process_id;
    uint32_t creating_thread_id;
    uint64_t creation_time;
    uint64_t exit_time;
    uint32_t process_exit_code;
    uint8_t operation;
    uint32_t token_sid_size;
    uint8_t token_sid[TOKEN_SID_MAX_SIZE];
} process_info_t;
_Static_assert(sizeof(process_info_t) == 112, "ring record is 112 bytes");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, uint64_t);
    __uint(value_size, COMMAND_SIZE);
    __uint(max_entries, 1);
} temp SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, uint64_t);  // pid_tgid of the creating thread
    __uint(value_size, COMMAND_SIZE);
    __uint(max_entries, 1024);
} scratch_space SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, uint32_t);
    __type(value, char[IMAGE_PATH_SIZE]);
    __uint(max_entries, 1024);
} process_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, uint32_t);
    __type(value, char[COMMAND_SIZE]);
    __uint(max_entries, 1024);
} command_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, uint32_t);
    __type(value, char[ACCOUNT_NAME_SIZE]);
    __uint(max_entries, 1024);
} account_name_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, uint32_t);
    __type(value, char[ACCOUNT_DOMAIN_SIZE]);
    __uint(max_entries, 1024);
} account_domain_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} process_ringbuf SEC(".maps");

// Save the strings of a new process; `buf` is COMMAND_SIZE bytes of per-CPU scratch.
static __attribute__((noinline)) void save_strings(process_md_t* ctx, uint8_t* buf, uint32_t pid)
{
    uint64_t length = ctx->command_end - ctx->command_start;
    if (length > COMMAND_SIZE - 2)
        length = COMMAND_SIZE - 2;  // keep a UTF-16 terminator
    bpf_memset(buf, COMMAND_SIZE, 0);
    bpf_memcpy_s(buf, COMMAND_SIZE, ctx->command_start, length);
    bpf_map_update_elem(&command_map, &pid, buf, BPF_ANY);
    uint64_t creator = bpf_get_current_pid_tgid();
    bpf_map_update_elem(&scratch_space, &creator, buf, BPF_ANY);

    bpf_memset(buf, IMAGE_PATH_SIZE, 0);
    if (bpf_process_get_image_path(ctx, buf, IMAGE_PATH_SIZE - 2) >= 0)
        bpf_map_update_elem(&process_map, &pid, buf, BPF_ANY);

    bpf_memset(buf, ACCOUNT_NAME_SIZE, 0);
    if (bpf_process_get_account_name(ctx, buf, ACCOUNT_NAME_SIZE - 2) >= 0)
        bpf_map_update_elem(&account_name_map, &pid, buf, BPF_ANY);

    bpf_memset(buf, ACCOUNT_DOMAIN_SIZE, 0);
    if (bpf_process_get_account_domain(ctx, buf, ACCOUNT_DOMAIN_SIZE - 2) >= 0)
        bpf_map_update_elem(&account_domain_map, &pid, buf, BPF_ANY);
}

// Publish one record (a function of its own, so the record type is described in the BTF and
// readers can decode records by the name process_info_t).
static __attribute__((noinline)) int emit(process_info_t* info)
{
    return bpf_ringbuf_output(&process_ringbuf, info, sizeof(*info), 0);
}

SEC("process")
int ProcessMonitor(process_md_t* ctx)
{
    process_info_t info = {0};
    info.process_id = (uint32_t)ctx->process_id;
    info.parent_process_id = (uint32_t)ctx->parent_process_id;
    info.creating_process_id = (uint32_t)ctx->creating_process_id;
    info.creating_thread_id = (uint32_t)ctx->creating_thread_id;
    info.creation_time = ctx->creation_time;
    info.exit_time = ctx->exit_time;
    info.process_exit_code = ctx->process_exit_code;
    info.operation = (uint8_t)ctx->operation;
    uint32_t sid_size = ctx->token_sid_size;
    if (sid_size > 0 && sid_size <= TOKEN_SID_MAX_SIZE) {
        info.token_sid_size = sid_size;
        __builtin_memcpy(info.token_sid, ctx->token_sid, TOKEN_SID_MAX_SIZE);
    }

    if (ctx->operation == PROCESS_OPERATION_CREATE) {
        uint64_t zero = 0;  // array maps read the first 4 bytes of the key as the index
        uint8_t* buf = bpf_map_lookup_elem(&temp, &zero);
        if (buf)
            save_strings(ctx, buf, info.process_id);
    }
    emit(&info);
    return 0;
}
