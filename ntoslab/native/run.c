/* One program run: the state native code and helpers share, tail calls, faults, the env.
 *
 * A compiled program is `int32_t fn(ntl_run *run, uint64_t r1)`: it starts at pc 0 with r1 the
 * context and r10 the top of stack frame 0, charges run->count against run->budget, and returns
 * NTL_S_EXIT with r0 in run->regs[0], or why it stopped (the fault's pc, address... in run).
 * Tail calls follow eBPF for Windows: bpf_tail_call records the target and returns 0, the
 * program runs on to its exit, then the target starts with a fresh stack.
 */
#include "ntl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

NTL_API void ntl_run_init(ntl_run *run, ntl_space *s, ntl_env *env) {
    memset(run, 0, sizeof *run);
    run->space = s;
    run->env = env;
    run->max_tail_calls = 33;
}

NTL_API int32_t ntl_run_program(ntl_run *run, ntl_program_fn fn, uint64_t ctx, uint64_t budget) {
    run->budget = budget;
    run->count = 0;
    run->status = 0;
    run->fault_code = 0;
    run->regs[1] = ctx;
    run->tail_calls = 0;
    run->tail_fn = NULL;
    run->tail_prog_id = 0;
    run->ctx_addr = ctx;
    for (;;) {
        memset((void *)(uintptr_t)run->stack_host[0], 0, NTL_STACK_SIZE);
        int32_t status = fn(run, ctx);
        if (status != NTL_S_EXIT || !run->tail_prog_id)
            return status;
        if (!run->tail_fn)
            return NTL_S_PYTHON; /* the target has no native code: the caller starts it */
        fn = run->tail_fn;
        ctx = run->tail_ctx;
        for (int i = 1; i <= 5; i++)
            run->regs[i] = 0;
        run->regs[1] = ctx;
        run->program_id = run->tail_prog_id;
        run->tail_fn = NULL;
        run->tail_prog_id = 0;
        run->tail_calls++;
    }
}

NTL_API int32_t ntl_repeat_run(ntl_run *run, ntl_program_fn fn, uint64_t ctx, uint64_t budget,
                               ntl_map **maps, uint64_t nmaps, uint64_t repeat,
                               uint64_t *elapsed_ns, uint64_t *done) {
    struct timespec a, b;
    int32_t status = NTL_S_EXIT;
    uint64_t i = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (; i < repeat; i++) {
        status = ntl_run_program(run, fn, ctx, budget);
        if (nmaps)
            ntl_end_epochs(maps, nmaps);
        if (status != NTL_S_EXIT)
            break;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    *elapsed_ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec -
                  (uint64_t)a.tv_nsec;
    *done = i;
    return status;
}

void ntl_fault_memory(ntl_run *run, uint64_t helper_id, uint64_t addr, uint64_t size, int write) {
    run->status = NTL_S_MEMORY;
    run->fault_code = NTL_HF_MEMORY;
    run->helper_id = helper_id;
    run->fault_addr = addr;
    run->fault_size = size;
    run->fault_write = (uint64_t)write;
}

void ntl_fault_helper(ntl_run *run, uint64_t helper_id, uint64_t code, uint64_t arg,
                      uint64_t arg2) {
    run->status = NTL_S_HELPER;
    run->fault_code = code;
    run->helper_id = helper_id;
    run->fault_arg = arg;
    run->fault_arg2 = arg2;
}

uint8_t *ntl_arg(ntl_run *run, uint64_t helper_id, uint64_t addr, uint64_t size, int write) {
    uint8_t *p = ntl_translate(run->space, addr, size, write);
    if (!p)
        ntl_fault_memory(run, helper_id, addr, size, write);
    return p;
}

/* -- the environment ------------------------------------------------------------------------- */
NTL_API ntl_env *ntl_env_new(uint32_t ncpus) {
    ntl_env *env = calloc(1, sizeof *env);
    if (!env)
        return NULL;
    env->ncpus = ncpus ? ncpus : 1;
    env->is_admin = -1;
    env->printk_enabled = 1;
    env->printk_session = 1;
    uint32_t zero = 0;
    ntl_env_seed(env, &zero, 1);
    return env;
}

NTL_API void ntl_env_free(ntl_env *env) {
    if (!env)
        return;
    free(env->printk);
    free(env->printk_text);
    free(env);
}

NTL_API void ntl_env_clear_printk(ntl_env *env) {
    env->nprintk = 0;
    env->printk_text_len = 0;
}

/* A helper implemented in Python, called from compiled code: the arguments go through the run
   state (run->regs[1..5]); the callback returns r0, or sets run->status. */
NTL_API uint64_t ntl_call_python(ntl_run *run, uint64_t id, uint64_t r1, uint64_t r2,
                                 uint64_t r3, uint64_t r4, uint64_t r5) {
    run->regs[1] = r1;
    run->regs[2] = r2;
    run->regs[3] = r3;
    run->regs[4] = r4;
    run->regs[5] = r5;
    run->helper_id = id;
    if (!run->python) {
        run->status = NTL_S_INTERNAL;
        return 0;
    }
    return run->python(run, id);
}

/* sizes of the shared structures, so Python can check its mirror (ntoslab/native/abi.py) */
NTL_API uint64_t ntl_sizeof(int which) {
    switch (which) {
    case 0: return sizeof(ntl_window);
    case 1: return sizeof(ntl_space);
    case 2: return sizeof(ntl_env);
    case 3: return sizeof(ntl_run);
    case 4: return sizeof(ntl_slab);
    case 5: return sizeof(ntl_ring);
    case 6: return NTL_ABI_VERSION;
    default: return 0;
    }
}
