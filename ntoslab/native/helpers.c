/* The general helpers by their Windows ids (reference section 3.1), with eBPF for Windows'
 * semantics (libs/execution_context/ebpf_core.c, libs/runtime/ebpf_strings.c): map helpers
 * return negated ebpf_result_t values, the *_s memory helpers -EINVAL (-22) where the C
 * runtime's checks fail, strncpy_s/strncat_s the NTSTATUS of the RtlStringCb* functions.
 *
 * Every buffer argument is translated through the address space before anything is read,
 * written or allocated; a bad one stops the run as a memory fault naming the helper, whatever
 * its size. Both engines call these same functions (the interpreter through ctypes).
 */
#include "ntl.h"

#include <stdlib.h>
#include <string.h>

#define EINVAL 22
#define MAX_PRINTK 512
#define STATUS_BUFFER_OVERFLOW ((int64_t)(int32_t)0x80000005u)
#define STATUS_INVALID_PARAMETER ((int64_t)(int32_t)0xC000000Du)
#define CURRENT_CPU 0xFFFFFFFFull

#define HELPER(name) static uint64_t name(ntl_run *run, uint64_t r1, uint64_t r2, uint64_t r3, \
                                          uint64_t r4, uint64_t r5)
#define UNUSED(...) (void)run, (void)r1, (void)r2, (void)r3, (void)r4, (void)r5
#define FAILED ((uint64_t)0) /* r0 when the run stops: never seen by the program */

static int32_t i32(uint64_t v) { return (int32_t)(uint32_t)v; }

int ntl_process_context_data(ntl_run *run, const uint8_t **data, uint64_t *len);

static ntl_map *map_arg(ntl_run *run, uint64_t id, uint64_t addr) {
    ntl_map *m = ntl_map_from_handle(run->space, addr);
    if (!m)
        ntl_fault_helper(run, id, NTL_HF_NOT_A_MAP, addr, 0);
    return m;
}

static int cpu_ok(ntl_run *run, uint64_t id, ntl_map *m) {
    if (m->cpu && (m->type == NTL_MAP_PERCPU_ARRAY || m->type == NTL_MAP_PERCPU_HASH ||
                   m->type == NTL_MAP_LRU_PERCPU_HASH) && *m->cpu >= m->ncpus) {
        ntl_fault_helper(run, id, NTL_HF_CPU, *m->cpu, m->id);
        return 0;
    }
    return 1;
}

static const uint8_t empty_key[8];

static const uint8_t *key_arg(ntl_run *run, uint64_t id, ntl_map *m, uint64_t addr) {
    if (m->key_size == 0)
        return empty_key;
    return ntl_arg(run, id, addr, m->key_size, 0);
}

/* -- maps ------------------------------------------------------------------------------------- */
HELPER(map_lookup) {
    UNUSED();
    ntl_map *m = map_arg(run, 1, r1);
    if (!m || !cpu_ok(run, 1, m))
        return FAILED;
    const uint8_t *key = key_arg(run, 1, m, r2);
    return key ? ntl_map_lookup(m, key, 1) : FAILED;
}

HELPER(map_update) {
    UNUSED();
    ntl_map *m = map_arg(run, 2, r1);
    if (!m || !cpu_ok(run, 2, m))
        return FAILED;
    const uint8_t *key = key_arg(run, 2, m, r2);
    if (!key)
        return FAILED;
    const uint8_t *value = m->value_size ? ntl_arg(run, 2, r3, m->value_size, 0) : empty_key;
    if (!value)
        return FAILED;
    return (uint64_t)ntl_map_update(m, key, value, r4, 0);
}

HELPER(map_delete) {
    UNUSED();
    ntl_map *m = map_arg(run, 3, r1);
    if (!m)
        return FAILED;
    const uint8_t *key = key_arg(run, 3, m, r2);
    return key ? (uint64_t)ntl_map_delete(m, key) : FAILED;
}

HELPER(map_lookup_and_delete) {
    UNUSED();
    ntl_map *m = map_arg(run, 4, r1);
    if (!m || !cpu_ok(run, 4, m))
        return FAILED;
    const uint8_t *key = key_arg(run, 4, m, r2);
    return key ? ntl_map_lookup_and_delete(m, key) : FAILED;
}

HELPER(tail_call) {
    UNUSED();
    ntl_map *m = map_arg(run, 5, r2);
    if (!m)
        return FAILED;
    if (m->type != NTL_MAP_PROG_ARRAY) {
        ntl_fault_helper(run, 5, NTL_HF_WRONG_MAP_TYPE, m->id, NTL_MAP_PROG_ARRAY);
        return FAILED;
    }
    uint32_t index = (uint32_t)r3;
    if (index >= m->max_entries || !m->prog_ids[index])
        return (uint64_t)-EBPF_INVALID_ARGUMENT;
    if (run->tail_calls >= run->max_tail_calls) {
        run->tail_calls_failed++;
        return (uint64_t)-EBPF_NO_MORE_TAIL_CALLS;
    }
    if (run->native_tail && !m->progs[index]) {
        ntl_fault_helper(run, 5, NTL_HF_TAIL_TARGET, m->prog_ids[index], index);
        return FAILED;
    }
    run->tail_fn = (ntl_program_fn)m->progs[index];
    run->tail_prog_id = m->prog_ids[index];
    run->tail_ctx = r1;
    return 0;
}

HELPER(push) {
    UNUSED();
    ntl_map *m = map_arg(run, 16, r1);
    if (!m)
        return FAILED;
    if (m->type != NTL_MAP_QUEUE && m->type != NTL_MAP_STACK)
        return (uint64_t)-EBPF_INVALID_ARGUMENT;
    const uint8_t *value = ntl_arg(run, 16, r2, m->value_size, 0);
    return value ? (uint64_t)ntl_map_push(m, value, r3) : FAILED;
}

static uint64_t pop_or_peek(ntl_run *run, uint64_t id, uint64_t map, uint64_t out, int remove) {
    ntl_map *m = map_arg(run, id, map);
    if (!m)
        return FAILED;
    if (m->type != NTL_MAP_QUEUE && m->type != NTL_MAP_STACK)
        return (uint64_t)-EBPF_INVALID_ARGUMENT;
    uint8_t *tmp = malloc(m->value_size ? m->value_size : 1);
    if (!tmp) {
        ntl_fault_helper(run, id, NTL_HF_NO_MEMORY, 0, 0);
        return FAILED;
    }
    int64_t code = ntl_map_pop(m, tmp, remove);
    if (code == 0) {
        uint8_t *dst = ntl_arg(run, id, out, m->value_size, 1);
        if (dst)
            memcpy(dst, tmp, m->value_size);
    }
    free(tmp);
    return run->status ? FAILED : (uint64_t)code;
}

HELPER(pop) {
    UNUSED();
    return pop_or_peek(run, 17, r1, r2, 1);
}

HELPER(peek) {
    UNUSED();
    return pop_or_peek(run, 18, r1, r2, 0);
}

HELPER(ringbuf_output) {
    UNUSED();
    ntl_map *m = map_arg(run, 11, r1);
    if (!m)
        return FAILED;
    if (m->type != NTL_MAP_RINGBUF) {
        ntl_fault_helper(run, 11, NTL_HF_WRONG_MAP_TYPE, m->id, NTL_MAP_RINGBUF);
        return FAILED;
    }
    const uint8_t *data = r3 ? ntl_arg(run, 11, r2, r3, 0) : empty_key;
    if (!data)
        return FAILED;
    return (uint64_t)(int64_t)ntl_ring_output(m->rings, data, r3, NTL_RING_MAX_RECORD);
}

/* EFW ebpf_perf_event_array_map_output_with_capture, in its order of checks: the low 32 bits of
   flags pick the CPU (0xffffffff: the current one), bits 32-51 ask for that many bytes of the
   context's data to be appended; ctx_len < 0 means the program type has no context data */
NTL_API int64_t ntl_perf_output_cpu(ntl_map *m, uint32_t current, uint64_t cpu,
                                    const uint8_t *data, uint64_t size) {
    if (cpu == CURRENT_CPU)
        cpu = current;
    if (cpu != current || cpu >= m->ncpus)
        return -EBPF_INVALID_ARGUMENT;
    int code = ntl_ring_output(&m->rings[cpu], data, size, NTL_RING_MAX_RECORD - 1);
    if (code)
        m->lost[cpu]++;
    return code;
}

NTL_API int64_t ntl_perf_output(ntl_map *m, uint32_t current, const uint8_t *data, uint64_t size,
                                uint64_t flags, const uint8_t *ctx_data, int64_t ctx_len) {
    if (flags == CURRENT_CPU)
        return ntl_perf_output_cpu(m, current, current, data, size);
    uint64_t target = flags & 0xFFFFFFFFull;
    uint64_t capture = (flags >> 32) & 0xFFFFF;
    if (capture) {
        if (ctx_len < 0)
            return -EBPF_OPERATION_NOT_SUPPORTED;
        if ((uint64_t)ctx_len < capture)
            return -EBPF_INVALID_ARGUMENT;
    }
    if (m->passive && target != CURRENT_CPU)
        return -EBPF_INVALID_ARGUMENT;
    if (!capture)
        return ntl_perf_output_cpu(m, current, target, data, size);
    uint8_t *buf = malloc(size + capture);
    if (!buf)
        return -EBPF_NO_MEMORY;
    memcpy(buf, data, size);
    memcpy(buf + size, ctx_data, capture);
    int64_t code = ntl_perf_output_cpu(m, current, target, buf, size + capture);
    free(buf);
    return code;
}

HELPER(perf_event_output) {
    UNUSED();
    ntl_map *m = map_arg(run, 32, r2);
    if (!m)
        return FAILED;
    if (m->type != NTL_MAP_PERF_EVENT_ARRAY) {
        ntl_fault_helper(run, 32, NTL_HF_WRONG_MAP_TYPE, m->id, NTL_MAP_PERF_EVENT_ARRAY);
        return FAILED;
    }
    const uint8_t *data = r5 ? ntl_arg(run, 32, r4, r5, 0) : empty_key;
    if (!data)
        return FAILED;
    const uint8_t *ctx_data = NULL;
    uint64_t ctx_len = 0;
    int has = r1 == run->ctx_addr && ntl_process_context_data(run, &ctx_data, &ctx_len);
    return (uint64_t)ntl_perf_output(m, run->env->cpu, data, r5, r3, ctx_data,
                                     has ? (int64_t)ctx_len : -1);
}

/* -- time, randomness, identity -------------------------------------------------------------- */
HELPER(prandom) {
    UNUSED();
    return ntl_env_random(run->env);
}
HELPER(boot_ns) {
    UNUSED();
    return run->env->boot_ns;
}
HELPER(mono_ns) {
    UNUSED();
    return run->env->mono_ns;
}
HELPER(boot_ms) {
    UNUSED();
    return run->env->boot_ns / 1000000u;
}
HELPER(mono_ms) {
    UNUSED();
    return run->env->mono_ns / 1000000u;
}
HELPER(smp_id) {
    UNUSED();
    return run->env->cpu;
}
HELPER(pid_tgid) {
    UNUSED();
    return run->env->pid_tgid;
}
HELPER(logon_id) {
    UNUSED();
    return run->env->logon_id;
}
HELPER(is_admin) {
    UNUSED();
    return (uint64_t)run->env->is_admin;
}
HELPER(start_key) {
    UNUSED();
    return run->env->process_start_key;
}
HELPER(thread_time) {
    UNUSED();
    return run->env->thread_create_time;
}

/* EFW csum_diff: seed + the `to` u16 words + the complemented `from` words, in a C int */
HELPER(csum_diff) {
    UNUSED();
    int32_t from_size = i32(r2), to_size = i32(r4);
    if (from_size % 4 || to_size % 4 || from_size < 0 || to_size < 0)
        return (uint64_t)-EINVAL;
    const uint8_t *from = NULL, *to = NULL;
    if (r1 && from_size && !(from = ntl_arg(run, 10, r1, (uint64_t)from_size, 0)))
        return FAILED;
    if (r3 && to_size && !(to = ntl_arg(run, 10, r3, (uint64_t)to_size, 0)))
        return FAILED;
    int64_t total = i32(r5);
    for (int32_t i = 0; to && i < to_size; i += 2)
        total += (uint16_t)(to[i] | (to[i + 1] << 8));
    for (int32_t i = 0; from && i < from_size; i += 2)
        total += (uint16_t)~(from[i] | (from[i + 1] << 8));
    int32_t wrapped = (int32_t)(uint32_t)total;
    return wrapped < 0 ? (uint64_t)-EINVAL : (uint64_t)wrapped;
}

/* -- printk ---------------------------------------------------------------------------------- */
/* EFW's trace_printk (libs/execution_context/ebpf_core.c `_ebpf_core_trace_printk`, then
   libs/runtime/ebpf_platform.c `ebpf_platform_printk`):
   - the format's text is its first fmt_size bytes with the terminator placed as EFW places it:
     over the next-to-last byte when that is a newline, else over the last byte (a well-formed
     format ends "...\n\0" or "...\0"), then up to the first NUL;
   - specifiers: %d %i %u %x, each with an optional l or ll, and %%; anything else, or a count
     different from the arguments, gives -1;
   - Windows is LLP64: %d and %ld (and %lx ...) print the low 32 bits of the argument, only
     %lld/%llx print 64 bits (RtlStringCchVPrintfA reading each 8-byte argument slot);
   - the output buffer is PLATFORM_PRINTK bytes with its NUL: a longer output gives -1.
   Returns the output length or -1. */
#define PLATFORM_PRINTK 554
NTL_API int32_t ntl_format_printk(const char *fmt, uint64_t fmt_len, const uint64_t *args,
                                  uint32_t nargs, char *out, uint64_t out_cap) {
    if (fmt_len < 2)
        return -1;
    uint64_t cut = fmt[fmt_len - 2] == '\n' ? fmt_len - 2 : fmt_len - 1;
    uint64_t len = 0;
    while (len < cut && fmt[len])
        len++;
    uint64_t o = 0;
    uint32_t n = 0;
#define EMIT(c)                                                                                 \
    do {                                                                                        \
        if (o < out_cap)                                                                        \
            out[o] = (c);                                                                       \
        o++;                                                                                    \
    } while (0)
    /* validate first, as EFW does, then format */
    for (uint64_t i = 0; i < len; i++) {
        if (fmt[i] != '%')
            continue;
        if (i + 1 >= len)
            return -1;
        if (fmt[i + 1] == '%') {
            i++;
            continue;
        }
        uint64_t j = i + 1;
        if (fmt[j] == 'l')
            j++;
        if (j < len && j == i + 2 && fmt[j] == 'l')
            j++;
        if (j >= len || !strchr("diux", fmt[j]) || !fmt[j])
            return -1;
        n++;
        i = j;
    }
    if (n != nargs)
        return -1;
    n = 0;
    for (uint64_t i = 0; i < len;) {
        char ch = fmt[i];
        if (ch != '%') {
            EMIT(ch);
            i++;
            continue;
        }
        if (fmt[i + 1] == '%') {
            EMIT('%');
            i += 2;
            continue;
        }
        uint64_t j = i + 1;
        int longs = 0;
        while (fmt[j] == 'l' && longs < 2) {
            longs++;
            j++;
        }
        char conv = fmt[j];
        uint64_t v = args[n++];
        int wide = longs == 2; /* LLP64: long is 32 bits */
        if (!wide)
            v &= 0xFFFFFFFFull;
        char digits[24];
        int k = 0, negative = 0;
        if (conv == 'd' || conv == 'i') {
            int64_t s = wide ? (int64_t)v : (int64_t)(int32_t)(uint32_t)v;
            if (s < 0) {
                negative = 1;
                v = (uint64_t)0 - (uint64_t)s;
            } else {
                v = (uint64_t)s;
            }
        }
        unsigned base = conv == 'x' ? 16 : 10;
        do {
            digits[k++] = "0123456789abcdef"[v % base];
            v /= base;
        } while (v);
        if (negative)
            EMIT('-');
        while (k)
            EMIT(digits[--k]);
        i = j + 1;
    }
#undef EMIT
    if (o > PLATFORM_PRINTK - 1) /* RtlStringCchVPrintfA: STATUS_BUFFER_OVERFLOW */
        return -1;
    return (int32_t)o;
}

static int append_printk(ntl_env *env, uint64_t program, uint32_t helper, const char *text,
                         uint64_t len) {
    if (env->nprintk == env->printk_cap) {
        uint64_t cap = env->printk_cap ? env->printk_cap * 2 : 64;
        ntl_printk *p = realloc(env->printk, cap * sizeof *p);
        if (!p)
            return -1;
        env->printk = p;
        env->printk_cap = cap;
    }
    if (env->printk_text_len + len > env->printk_text_cap) {
        uint64_t cap = env->printk_text_cap ? env->printk_text_cap : 4096;
        while (cap < env->printk_text_len + len)
            cap *= 2;
        char *t = realloc(env->printk_text, cap);
        if (!t)
            return -1;
        env->printk_text = t;
        env->printk_text_cap = cap;
    }
    memcpy(env->printk_text + env->printk_text_len, text, len);
    ntl_printk *rec = &env->printk[env->nprintk++];
    rec->time = env->now;
    rec->program = (uint32_t)program;
    rec->helper = helper;
    rec->offset = (uint32_t)env->printk_text_len;
    rec->length = (uint32_t)len;
    env->printk_text_len += len;
    return 0;
}

static uint64_t printk(ntl_run *run, uint32_t id, uint64_t fmt, uint64_t fmt_size,
                       const uint64_t *args, uint32_t nargs) {
    fmt_size &= 0xFFFFFFFFull;
    if (fmt_size < 2 || fmt_size > MAX_PRINTK - 1)
        return (uint64_t)-1;
    /* no trace session listening for the printk keyword: 0, before anything is validated */
    if (!run->env->printk_session)
        return 0;
    const uint8_t *f = ntl_arg(run, id, fmt, fmt_size, 0);
    if (!f)
        return FAILED;
    char out[4 * MAX_PRINTK];
    int32_t n = ntl_format_printk((const char *)f, fmt_size, args, nargs, out, sizeof out);
    if (n < 0)
        return (uint64_t)-1;
    if (run->env->printk_enabled &&
        append_printk(run->env, run->program_id, id, out, (uint64_t)n < sizeof out ? n : sizeof out)) {
        ntl_fault_helper(run, id, NTL_HF_NO_MEMORY, 0, 0);
        return FAILED;
    }
    return (uint64_t)(int64_t)n;
}

HELPER(printk2) {
    UNUSED();
    return printk(run, 12, r1, r2, NULL, 0);
}
HELPER(printk3) {
    UNUSED();
    uint64_t a[1] = {r3};
    return printk(run, 13, r1, r2, a, 1);
}
HELPER(printk4) {
    UNUSED();
    uint64_t a[2] = {r3, r4};
    return printk(run, 14, r1, r2, a, 2);
}
HELPER(printk5) {
    UNUSED();
    uint64_t a[3] = {r3, r4, r5};
    return printk(run, 15, r1, r2, a, 3);
}

/* -- memory and strings ---------------------------------------------------------------------- */
static uint64_t copy_s(ntl_run *run, uint64_t id, uint64_t dst, uint64_t dst_size, uint64_t src,
                       uint64_t src_size) {
    if (src_size > dst_size)
        return (uint64_t)-EINVAL;
    if (!src_size)
        return 0;
    const uint8_t *s = ntl_arg(run, id, src, src_size, 0);
    if (!s)
        return FAILED;
    uint8_t *d = ntl_arg(run, id, dst, src_size, 1);
    if (!d)
        return FAILED;
    memmove(d, s, src_size);
    return 0;
}

HELPER(memcpy_s) {
    UNUSED();
    return copy_s(run, 22, r1, r2, r3, r4);
}
HELPER(memmove_s) {
    UNUSED();
    return copy_s(run, 25, r1, r2, r3, r4);
}

HELPER(memcmp_s) {
    UNUSED();
    uint64_t n = r2 < r4 ? r2 : r4;
    int c = 0;
    if (n) {
        const uint8_t *a = ntl_arg(run, 23, r1, n, 0);
        if (!a)
            return FAILED;
        const uint8_t *b = ntl_arg(run, 23, r3, n, 0);
        if (!b)
            return FAILED;
        c = memcmp(a, b, n);
    }
    if (c)
        return c < 0 ? (uint64_t)-1 : 1;
    return r2 < r4 ? (uint64_t)-1 : r2 > r4 ? 1 : 0;
}

HELPER(memset_) {
    UNUSED();
    if (r2) {
        uint8_t *d = ntl_arg(run, 24, r1, r2, 1);
        if (!d)
            return FAILED;
        memset(d, (int)(r3 & 0xFF), r2);
    }
    return r1;
}

static uint64_t cstring_len(const uint8_t *p, uint64_t n) {
    const uint8_t *z = memchr(p, 0, n);
    return z ? (uint64_t)(z - p) : n;
}

HELPER(strncpy_s) {
    UNUSED();
    uint64_t dst_size = r2;
    if (dst_size == 0)
        return (uint64_t)STATUS_INVALID_PARAMETER;
    const uint8_t *src = r4 ? ntl_arg(run, 27, r3, r4, 0) : empty_key;
    if (!src)
        return FAILED;
    uint8_t *dst = ntl_arg(run, 27, r1, dst_size, 1);
    if (!dst)
        return FAILED;
    uint64_t len = cstring_len(src, r4);
    int64_t status = 0;
    if (len > dst_size - 1) {
        len = dst_size - 1;
        status = STATUS_BUFFER_OVERFLOW;
    }
    memmove(dst, src, len);
    memset(dst + len, 0, dst_size - len); /* STRSAFE_FILL_BEHIND_NULL with 0 */
    return (uint64_t)status;
}

HELPER(strncat_s) {
    UNUSED();
    uint64_t dst_size = r2;
    if (dst_size == 0)
        return (uint64_t)STATUS_INVALID_PARAMETER;
    uint8_t *dst = ntl_arg(run, 28, r1, dst_size, 0);
    if (!dst)
        return FAILED;
    uint64_t end = cstring_len(dst, dst_size);
    if (end == dst_size)
        return (uint64_t)STATUS_INVALID_PARAMETER;
    const uint8_t *src = r4 ? ntl_arg(run, 28, r3, r4, 0) : empty_key;
    if (!src)
        return FAILED;
    if (!ntl_arg(run, 28, r1, dst_size, 1))
        return FAILED;
    uint64_t add = cstring_len(src, r4);
    int64_t status = 0;
    if (end + add > dst_size - 1) {
        add = dst_size - 1 - end;
        status = STATUS_BUFFER_OVERFLOW;
    }
    memmove(dst + end, src, add);
    memset(dst + end + add, 0, dst_size - end - add);
    return (uint64_t)status;
}

HELPER(strnlen_s) {
    UNUSED();
    if (r1 == 0 || r2 == 0)
        return 0;
    const uint8_t *s = ntl_arg(run, 29, r1, r2, 0);
    return s ? cstring_len(s, r2) : FAILED;
}

/* -- the table ------------------------------------------------------------------------------- */
extern uint64_t ntl_process_get_image_path(ntl_run *, uint64_t, uint64_t, uint64_t, uint64_t,
                                           uint64_t);
extern uint64_t ntl_process_get_account_name(ntl_run *, uint64_t, uint64_t, uint64_t, uint64_t,
                                             uint64_t);
extern uint64_t ntl_process_get_account_domain(ntl_run *, uint64_t, uint64_t, uint64_t,
                                               uint64_t, uint64_t);

static const ntl_helper_fn general[36] = {
    [1] = map_lookup,      [2] = map_update,   [3] = map_delete,  [4] = map_lookup_and_delete,
    [5] = tail_call,       [6] = prandom,      [7] = boot_ns,     [8] = smp_id,
    [9] = mono_ns,         [10] = csum_diff,   [11] = ringbuf_output, [12] = printk2,
    [13] = printk3,        [14] = printk4,     [15] = printk5,    [16] = push,
    [17] = pop,            [18] = peek,        [19] = pid_tgid,   [20] = logon_id,
    [21] = is_admin,       [22] = memcpy_s,    [23] = memcmp_s,   [24] = memset_,
    [25] = memmove_s,      [27] = strncpy_s,   [28] = strncat_s,  [29] = strnlen_s,
    [30] = boot_ms,        [31] = mono_ms,     [32] = perf_event_output, [33] = start_key,
    [34] = thread_time,
};

NTL_API ntl_helper_fn ntl_helper(uint64_t id) {
    if (id < 36)
        return general[id];
    switch (id) {
    case 65536:
        return ntl_process_get_image_path;
    case 65537:
        return ntl_process_get_account_name;
    case 65538:
        return ntl_process_get_account_domain;
    default:
        return NULL;
    }
}

NTL_API uint64_t ntl_call_helper(ntl_run *run, uint64_t id, uint64_t r1, uint64_t r2,
                                 uint64_t r3, uint64_t r4, uint64_t r5) {
    ntl_helper_fn fn = ntl_helper(id);
    if (!fn) {
        ntl_fault_helper(run, id, NTL_HF_UNKNOWN, 0, 0);
        return 0;
    }
    return fn(run, r1, r2, r3, r4, r5);
}
