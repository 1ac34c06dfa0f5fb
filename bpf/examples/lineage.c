// ntoslab example: a process lineage tracker.
//
// Keeps, for every live process, its parent, its depth in the process tree and the pid of its
// root ancestor the tracker has seen; entries are removed when processes exit. Each create is
// also published on a ring buffer as a `lineage_t` record.

#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

typedef struct lineage {
    uint32_t process_id;
    uint32_t parent_process_id;
    uint32_t root_process_id;  // oldest known ancestor
    uint32_t depth;            // 0 for a process whose parent was never seen
    uint64_t creation_time;
} lineage_t;

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, uint32_t);
    __type(value, lineage_t);
    __uint(max_entries, 4096);
} lineage SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 * 1024);
} lineage_events SEC(".maps");

SEC("process")
int LineageTracker(process_md_t* ctx)
{
    uint32_t pid = (uint32_t)ctx->process_id;
    if (ctx->operation == PROCESS_OPERATION_DELETE) {
        bpf_map_delete_elem(&lineage, &pid);
        return 0;
    }
    lineage_t entry = {
        .process_id = pid,
        .parent_process_id = (uint32_t)ctx->parent_process_id,
        .root_process_id = (uint32_t)ctx->parent_process_id,
        .depth = 0,
        .creation_time = ctx->creation_time,
    };
    uint32_t ppid = entry.parent_process_id;
    lineage_t* parent = bpf_map_lookup_elem(&lineage, &ppid);
    if (parent) {
        entry.depth = parent->depth + 1;
        entry.root_process_id = parent->root_process_id;
    }
    bpf_map_update_elem(&lineage, &pid, &entry, BPF_ANY);
    bpf_ringbuf_output(&lineage_events, &entry, sizeof(entry), 0);
    return 0;
}
