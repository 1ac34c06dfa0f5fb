// ntoslab test program: one BTF-defined map (section ".maps") of each Windows map type that a
// process program can use, with initialisers for the program array and the maps of maps.
// Loaders check: each map's type id, key/value sizes and max_entries as declared here;
// `hash` is pinned by name; `programs` slots 0 and 2 hold tail_a and tail_b; `outer_array`
// holds inner_a and inner_b in slots 0 and 1; `outer_hash` holds inner_b under key 1.
// Expected: on a fresh load MapsBtf returns 7 = 3 + 4 lookups that hit (array[0],
// percpu_array[0], outer_array[0] and inner_a[0]; the hash-like maps are empty and
// outer_hash has no key 0); the tail call to the empty slot 3 falls through. It also pushes
// the pid on `queue` (u32) and `stack` (u64) and writes it (8 bytes) to `ringbuf`.
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

struct key_value {
    uint32_t a;
    uint32_t b;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, uint32_t);
    __type(value, uint64_t);
    __uint(max_entries, 16);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, uint32_t);
    __type(value, struct key_value);
    __uint(max_entries, 4);
} array SEC(".maps");

SEC("process") int tail_a(process_md_t* ctx);
SEC("process") int tail_b(process_md_t* ctx);

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __type(key, uint32_t);
    __type(value, uint32_t);
    __uint(max_entries, 4);
    __array(values, int(process_md_t* ctx));
} programs SEC(".maps") = {
    .values = {[0] = &tail_a, [2] = &tail_b},
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __type(key, uint64_t);
    __type(value, uint32_t);
    __uint(max_entries, 8);
} percpu_hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, uint32_t);
    __type(value, uint64_t);
    __uint(max_entries, 2);
} percpu_array SEC(".maps");

struct inner_template {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, uint32_t);
    __type(value, uint32_t);
    __uint(max_entries, 1);
};
struct inner_template inner_a SEC(".maps");
struct inner_template inner_b SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __type(key, uint32_t);
    __type(value, uint32_t);
    __uint(max_entries, 2);
    __array(values, struct inner_template);
} outer_array SEC(".maps") = {
    .values = {&inner_a, &inner_b},
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
    __type(key, uint32_t);
    __type(value, uint32_t);
    __uint(max_entries, 4);
    __array(values, struct inner_template);
} outer_hash SEC(".maps") = {
    .values = {[1] = &inner_b},
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, uint32_t);
    __type(value, uint64_t);
    __uint(max_entries, 32);
} lru_hash SEC(".maps");

struct lpm_key {
    uint32_t prefix_len;
    uint8_t data[4];
};

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __type(key, struct lpm_key);
    __type(value, uint32_t);
    __uint(max_entries, 8);
} lpm SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_QUEUE);
    __type(value, uint32_t);
    __uint(max_entries, 8);
} queue SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_STACK);
    __type(value, uint64_t);
    __uint(max_entries, 8);
} stack SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 65536);
} ringbuf SEC(".maps");

SEC("process") int tail_a(process_md_t* ctx) { return 100; }

SEC("process") int tail_b(process_md_t* ctx) { return 200; }

SEC("process") int MapsBtf(process_md_t* ctx)
{
    uint32_t key = 0;
    uint64_t pid = ctx->process_id;
    uint32_t small = (uint32_t)pid;
    int found = 0;

    if (bpf_map_lookup_elem(&hash, &key))
        found++;
    if (bpf_map_lookup_elem(&array, &key))
        found++;
    if (bpf_map_lookup_elem(&percpu_hash, &pid))
        found++;
    if (bpf_map_lookup_elem(&percpu_array, &key))
        found++;
    void* inner = bpf_map_lookup_elem(&outer_array, &key);
    if (inner) {
        found++;
        if (bpf_map_lookup_elem(inner, &key))
            found++;
    }
    if (bpf_map_lookup_elem(&outer_hash, &key))
        found++;
    if (bpf_map_lookup_elem(&lru_hash, &small))
        found++;
    struct lpm_key lk = {32, {10, 0, 0, 1}};
    if (bpf_map_lookup_elem(&lpm, &lk))
        found++;
    bpf_map_push_elem(&queue, &small, BPF_ANY);
    bpf_map_push_elem(&stack, &pid, BPF_ANY);
    bpf_ringbuf_output(&ringbuf, &pid, sizeof(pid), 0);

    bpf_tail_call(ctx, &programs, 3); /* empty slot: falls through */
    return 3 + found;
}
