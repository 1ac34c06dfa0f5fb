// ntoslab benchmark: 4096 rounds of a xorshift64 generator feeding a 64-bit FNV-1a hash and a
// 32-slot stack table. No maps, no helpers, no global data; the context is ignored.
// Expected r0: 0x484a06ba = 1212810938 (model: tests/test_bench_programs.py).
// Linux verifier: constant loop bounds, no data-dependent branches, 256 bytes of stack
// written before they are read.
#include "bpf_helpers.h"

#define ROUNDS 4096
#define SLOTS 32
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

SEC("process") int bench_hash(void* ctx)
{
    uint64_t table[SLOTS];
    for (int s = 0; s < SLOTS; s++)
        table[s] = (uint64_t)s * 0x9e3779b97f4a7c15ULL;

    uint64_t x = 0x2545f4914f6cdd1dULL;
    uint64_t h = FNV_OFFSET;
    for (uint32_t i = 0; i < ROUNDS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t slot = table[i & (SLOTS - 1)] ^ x;
        table[i & (SLOTS - 1)] = slot;
        h = (h ^ (slot & 0xff)) * FNV_PRIME;
        h = (h ^ ((slot >> 8) & 0xff)) * FNV_PRIME;
    }
    for (int s = 0; s < SLOTS; s++)
        h = (h ^ table[s]) * FNV_PRIME;
    return (int)((h ^ (h >> 32)) & 0x7fffffff);
}
