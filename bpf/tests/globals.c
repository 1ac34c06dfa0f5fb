// ntoslab test program: global data and bpf-to-bpf calls.
//   .data            counter (starts at 5)
//   .rodata          weights[4] = {3, 1, 4, 1} (const volatile, so the loads stay)
//   .bss             scratch[4] (zeroed)
//   .rodata.str1.1   the string literal "ntoslab"
// and two noinline subprograms, weighted_sum() and string_hash().
// Expected: the first three runs after a load return 3258219, 3258235, 3258252.
// Run N (1-based) sets counter = 5 + N and scratch[1] = 6 + 7 + ... + (5 + N), and returns
//   weighted_sum(counter) + string_hash("ntoslab", 7) + scratch[1]
// where weighted_sum(n) = 3n + (n+1) + 4(n+2) + (n+3) = 9n + 12 and string_hash is
// h = (h * 31 + c) & 0xffffff over the 7 characters from h = 0, = 3258147.
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

int counter = 5;
const volatile int weights[4] = {3, 1, 4, 1};
int scratch[4];

static __attribute__((noinline)) int weighted_sum(int n)
{
    int sum = 0;
    for (int i = 0; i < 4; i++)
        sum += weights[i] * (n + i);
    return sum;
}

static __attribute__((noinline)) uint32_t string_hash(const char* s, int n)
{
    uint32_t h = 0;
    for (int i = 0; i < n && i < 16; i++)
        h = (h * 31 + (uint8_t)s[i]) & 0xffffff;
    return h;
}

SEC("process") int Globals(process_md_t* ctx)
{
    counter += 1;
    scratch[1] += counter;
    /* read through a volatile pointer, so the literal stays in .rodata.str1.1 and is read at
     * run time (otherwise clang folds the whole hash into a constant) */
    const char* volatile text = "ntoslab";
    return weighted_sum(counter) + (int)string_hash(text, 7) + scratch[1];
}
