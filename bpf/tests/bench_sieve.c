// ntoslab benchmark: sieve of Eratosthenes below 2000 in a 256-byte stack bitmap.
// No maps, no helpers, no global data; the context is ignored, so any program type runs it.
// Expected r0: 303 primes below 2000, their sum 277050; returns
//   (count * 1000003 + sum) & 0x7fffffff = 303277959
// (model: tests/test_bench_programs.py). Written for the Linux verifier as well: every loop
// has a constant bound, the bitmap is zeroed before use and the counting loop has no branches.
#include "bpf_helpers.h"

#define LIMIT 2000
#define WORDS ((LIMIT + 63) / 64) /* 32 x 8 bytes = 256 bytes of stack */

SEC("process") int bench_sieve(void* ctx)
{
    uint64_t composite[WORDS];
    for (int w = 0; w < WORDS; w++)
        composite[w] = 0;

    for (uint32_t i = 2; i * i < LIMIT; i++) {
        if ((composite[i >> 6] >> (i & 63)) & 1)
            continue;
        for (uint32_t j = i * i; j < LIMIT; j += i)
            composite[j >> 6] |= 1ULL << (j & 63);
    }

    uint32_t count = 0;
    uint32_t sum = 0;
    for (uint32_t n = 2; n < LIMIT; n++) {
        uint32_t prime = (uint32_t)((composite[n >> 6] >> (n & 63)) & 1) ^ 1;
        count += prime;
        sum += prime * n;
    }
    return (int)((count * 1000003u + sum) & 0x7fffffff);
}
