// ntoslab test program: maps declared the legacy way, as 32-byte bpf_map_def records in
// section "maps" (type, key_size, value_size, max_entries, inner_map_idx, pinning, id,
// inner_id), including an array of maps whose inner template is given by index.
// Expected: LegacyMaps counts process events per operation in `counts` (array, 2 slots) and
// returns the new count for this event's operation: 1 on the first event, 2 on the second...
// It also remembers the last pid in `last_pid` (hash, key 0).
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

SEC("maps")
struct bpf_map_def counts = {
    .type = BPF_MAP_TYPE_ARRAY,
    .key_size = sizeof(uint32_t),
    .value_size = sizeof(uint64_t),
    .max_entries = 2,
};

SEC("maps")
struct bpf_map_def last_pid = {
    .type = BPF_MAP_TYPE_HASH,
    .key_size = sizeof(uint32_t),
    .value_size = sizeof(uint64_t),
    .max_entries = 1,
    .pinning = LIBBPF_PIN_NONE,
};

SEC("maps")
struct bpf_map_def inner_template = {
    .type = BPF_MAP_TYPE_ARRAY,
    .key_size = sizeof(uint32_t),
    .value_size = sizeof(uint32_t),
    .max_entries = 1,
};

SEC("maps")
struct bpf_map_def outer = {
    .type = BPF_MAP_TYPE_ARRAY_OF_MAPS,
    .key_size = sizeof(uint32_t),
    .value_size = sizeof(uint32_t),
    .max_entries = 1,
    .inner_map_idx = 2, /* inner_template: the third record in "maps" */
};

SEC("process") int LegacyMaps(process_md_t* ctx)
{
    uint32_t op = ctx->operation == PROCESS_OPERATION_DELETE ? 1 : 0;
    uint32_t zero = 0;
    uint64_t pid = ctx->process_id;
    uint64_t* count = bpf_map_lookup_elem(&counts, &op);
    if (!count)
        return 0;
    *count += 1;
    bpf_map_update_elem(&last_pid, &zero, &pid, BPF_ANY);
    return (int)*count;
}
