// ntoslab example: global variables, bpf-to-bpf calls and a tail call.
//
// `Entry` counts events in global data, scores the command line in a subprogram, and tail-calls
// a per-operation stage from a program array initialised in the object itself. The stage
// decides: creates whose score reaches the `threshold` in .rodata are denied.

#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

#define STATUS_ACCESS_DENIED ((int)0xC0000022)
#define MAX_SCAN 128

// Global data: .rodata (configuration) and .data/.bss (state).
static volatile const uint32_t threshold = 3;
static volatile uint64_t events_seen = 0;
static volatile uint64_t denied = 0;
static volatile uint32_t last_score;

int StageCreate(process_md_t* ctx);
int StageDelete(process_md_t* ctx);

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 2);
    __type(key, uint32_t);
    __array(values, int(process_md_t*));
} stages SEC(".maps") = {
    .values = {[PROCESS_OPERATION_CREATE] = (void*)&StageCreate, [PROCESS_OPERATION_DELETE] = (void*)&StageDelete},
};

// Count one suspicious character class at a time; noinline keeps them real bpf-to-bpf calls.
static __attribute__((noinline)) uint32_t is_suspicious(uint16_t c)
{
    return c == '^' || c == '`' || c == '%' || c == '|';
}

static __attribute__((noinline)) uint32_t score(process_md_t* ctx)
{
    uint32_t total = 0;
    const uint8_t* p = ctx->command_start;
    for (int i = 0; i < MAX_SCAN; i++) {
        if (p + 2 * i + 2 > ctx->command_end)
            break;
        total += is_suspicious(*(const uint16_t*)(p + 2 * i));
    }
    return total;
}

SEC("process")
int Entry(process_md_t* ctx)
{
    events_seen++;
    last_score = ctx->operation == PROCESS_OPERATION_CREATE ? score(ctx) : 0;
    bpf_tail_call(ctx, &stages, ctx->operation);
    return 0;  // reached only if the stage is missing
}

SEC("process/stage")
int StageCreate(process_md_t* ctx)
{
    if (last_score >= threshold) {
        denied++;
        return STATUS_ACCESS_DENIED;
    }
    return 0;
}

SEC("process/stage")
int StageDelete(process_md_t* ctx)
{
    return 0;
}
