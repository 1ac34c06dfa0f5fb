// ntoslab test program: bpf_tail_call through a program array filled from user space.
// Slots: 0 = Stage1, 1 = Stage2 (the loader or the test fills them; nothing is preset here).
// Expected: TailCallEntry records 1 in `trail`[0] and tail-calls slot 0; Stage1 adds 10 and
// tail-calls slot 1; Stage2 adds 100 and returns the trail total, 111. With an empty slot the
// tail call falls through and the caller returns -1 (entry) or -2 (Stage1).
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __type(key, uint32_t);
    __type(value, uint32_t);
    __uint(max_entries, 4);
} jump_table SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, uint32_t);
    __type(value, uint32_t);
    __uint(max_entries, 1);
} trail SEC(".maps");

static __attribute__((always_inline)) uint32_t add_trail(uint32_t amount)
{
    uint32_t zero = 0;
    uint32_t* total = bpf_map_lookup_elem(&trail, &zero);
    if (!total)
        return 0;
    *total += amount;
    return *total;
}

SEC("process") int TailCallEntry(process_md_t* ctx)
{
    add_trail(1);
    bpf_tail_call(ctx, &jump_table, 0);
    return -1;
}

SEC("process/stage1") int Stage1(process_md_t* ctx)
{
    add_trail(10);
    bpf_tail_call(ctx, &jump_table, 1);
    return -2;
}

SEC("process/stage2") int Stage2(process_md_t* ctx) { return (int)add_trail(100); }
