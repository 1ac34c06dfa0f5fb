/* ntoslab native runtime: the shared declarations.
 *
 * What lives here, one concept per file:
 *   space.c    the sandboxed address space: 1 TiB windows, one table entry each, every access
 *              translated and checked (the JIT inlines the same check: ntoslab/vm/jit.py)
 *   slab.c     long-lived value storage for maps: slots at a fixed virtual stride, per-slot
 *              liveness, epoch retirement (EFW frees deleted values when the epoch ends)
 *   hashtab.c  the exact-match hash index over slab entries, with an order list (insertion
 *              order, or recency for LRU maps with true_lru)
 *   lru.c      eBPF for Windows' approximate LRU: hot/cold generations per partition
 *   maps.c     the map types by Windows type id and their program/user operations
 *   ringbuf.c  EFW's byte ring (reserve, submit, discard, output, consume)
 *   mt19937.c  Python's random.Random, so both engines draw the same numbers
 *   helpers.c  the general helpers by Windows id, with eBPF for Windows' semantics
 *   process.c  the ntosebpfext process hook: helpers 65536-65538, the event chain, batch replay
 *
 * Everything is single-threaded per address space; Python drives it through ctypes
 * (ntoslab/native/__init__.py declares the same structures).
 */
#ifndef NTL_H
#define NTL_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define NTL_API __declspec(dllexport)
#else
#define NTL_API __attribute__((visibility("default")))
#endif

#define NTL_ABI_VERSION 1

/* -- the address space ------------------------------------------------------------------------ */
#define NTL_WINDOW_SHIFT 40     /* a window is 1 TiB of virtual addresses */
#define NTL_WINDOW_MASK ((1ull << NTL_WINDOW_SHIFT) - 1)
#define NTL_FIRST_WINDOW 256ull /* window i of the table is virtual [(256+i)<<40, (257+i)<<40) */
#define NTL_MAX_WINDOWS (1u << 23) /* (256 + 2^23) << 40 still fits 64 bits */
/* Unmapped bytes after every value of map storage: more than any offset (BPF_MAX_VAR_OFF) a
   verifier accepts on a pointer, so map values are unreachable from each other. */
#define NTL_GUARD_GAP (1ull << 29)

enum { NTL_W_WRITABLE = 1, NTL_W_MAP = 2, NTL_W_HANDLE = 4, NTL_W_PYTHON = 8 };

typedef struct ntl_window {
    uint8_t *host;        /* host address of slot 0 */
    uint64_t pitch;       /* host bytes between slots */
    const uint8_t *live;  /* per slot: nonzero = accessible; never NULL */
    uint32_t length;      /* accessible bytes per slot (a plain region: its size) */
    uint32_t nslots;      /* 0 = not mapped */
    uint32_t shift;       /* log2 of the virtual slot stride (a plain region: NTL_WINDOW_SHIFT) */
    uint32_t flags;       /* NTL_W_* */
    void *owner;          /* the map whose storage or handle this is, or NULL */
    uint64_t first_slot;  /* the owner's number of slot 0 */
} ntl_window;             /* 56 bytes */

typedef struct ntl_space {
    ntl_window *table;    /* table[0] is a permanent unmapped sentinel */
    uint64_t n;           /* entries in use (high-water mark) */
    uint64_t cap;
    uint32_t *free_ring;  /* freed window indices, reused oldest first */
    uint64_t free_head, free_tail, free_cap;
    uint64_t version;     /* bumped whenever a window is mapped, unmapped or repointed */
} ntl_space;

NTL_API ntl_space *ntl_space_new(void);
NTL_API void ntl_space_free(ntl_space *s);
/* Map `count` consecutive windows; returns the index of the first (0 on failure). */
NTL_API uint32_t ntl_space_reserve(ntl_space *s, uint32_t count);
NTL_API void ntl_space_set(ntl_space *s, uint32_t index, uint8_t *host, uint64_t pitch,
                           const uint8_t *live, uint32_t length, uint32_t nslots, uint32_t shift,
                           uint32_t flags, void *owner, uint64_t first_slot);
NTL_API uint32_t ntl_space_map_plain(ntl_space *s, uint8_t *host, uint32_t length, uint32_t flags,
                                     void *owner);
NTL_API void ntl_space_repoint(ntl_space *s, uint32_t index, uint8_t *host, uint32_t length);
NTL_API void ntl_space_unmap(ntl_space *s, uint32_t index, uint32_t count);
NTL_API uint8_t *ntl_translate(ntl_space *s, uint64_t addr, uint64_t size, int write);
NTL_API uint64_t ntl_window_base(uint32_t index);
extern const uint8_t ntl_live_one[1];
extern const uint8_t ntl_live_zero[1];

static inline ntl_window *ntl_window_of(ntl_space *s, uint64_t addr) {
    uint64_t w = (addr >> NTL_WINDOW_SHIFT) - NTL_FIRST_WINDOW;
    return w < s->n ? &s->table[w] : NULL;
}

/* -- slabs ------------------------------------------------------------------------------------ */
#define NTL_SLAB_MAX_SEGMENTS 48
enum { NTL_SLOT_FREE = 0, NTL_SLOT_LIVE = 1, NTL_SLOT_RETIRED = 2 };

typedef struct ntl_segment {
    uint8_t *host;        /* capacity * group * pitch bytes */
    uint8_t *state;       /* per vslot (capacity * group) */
    uint64_t first;       /* first entry number */
    uint64_t capacity;    /* entries */
    uint32_t window;      /* first window */
    uint32_t nwindows;
} ntl_segment;

typedef struct ntl_slab {
    ntl_space *space;
    void *owner;
    uint32_t elem;        /* accessible bytes per vslot */
    uint32_t pitch;       /* host bytes per vslot */
    uint32_t group;       /* vslots per entry (the CPU count of per-CPU maps, else 1) */
    uint32_t shift;       /* log2 virtual stride per vslot */
    uint32_t writable;
    uint32_t nseg;
    uint64_t capacity;    /* entries over all segments */
    uint64_t limit;       /* most entries the slab may hold (growth stops there) */
    uint64_t next_unused; /* entries never handed out yet */
    uint64_t *free_ring; uint64_t free_head, free_tail, free_cap;   /* freed, reused oldest first */
    uint64_t *retired; uint64_t nretired, retired_cap;              /* deleted in this epoch */
    ntl_segment seg[NTL_SLAB_MAX_SEGMENTS];
} ntl_slab;

int ntl_slab_init(ntl_slab *sl, ntl_space *s, void *owner, uint32_t elem, uint32_t group,
                  uint32_t writable, uint64_t initial, uint64_t limit);
void ntl_slab_destroy(ntl_slab *sl);
int64_t ntl_slab_alloc(ntl_slab *sl);           /* a zeroed live entry, or -1 when full/no memory */
void ntl_slab_retire(ntl_slab *sl, uint64_t e); /* stays readable until ntl_slab_end_epoch */
void ntl_slab_free_now(ntl_slab *sl, uint64_t e);
void ntl_slab_end_epoch(ntl_slab *sl);
void ntl_slab_make_all_live(ntl_slab *sl, uint64_t entries);
NTL_API uint8_t *ntl_slab_host(const ntl_slab *sl, uint64_t e);     /* vslot 0 of entry e */
NTL_API uint64_t ntl_slab_address(const ntl_slab *sl, uint64_t e, uint32_t cpu);
NTL_API int ntl_slab_find(const ntl_slab *sl, uint64_t addr, uint64_t *entry, uint32_t *cpu,
                          uint64_t *offset);

/* -- the hash index --------------------------------------------------------------------------- */
typedef struct ntl_htab {
    uint32_t key_size;
    uint64_t cap;         /* entries the per-entry arrays hold */
    uint8_t *keys;
    uint64_t *hashes;
    int64_t *chain, *prev, *next;
    int64_t *buckets;
    uint64_t nbuckets;
    int64_t head, tail;
    uint64_t count;
} ntl_htab;

int ntl_htab_init(ntl_htab *h, uint32_t key_size, uint64_t cap);
void ntl_htab_destroy(ntl_htab *h);
int ntl_htab_reserve(ntl_htab *h, uint64_t cap);
uint64_t ntl_hash_bytes(const uint8_t *p, uint32_t n);
int64_t ntl_htab_find(const ntl_htab *h, const uint8_t *key, uint64_t hash);
void ntl_htab_insert(ntl_htab *h, int64_t e, const uint8_t *key, uint64_t hash); /* at the tail */
void ntl_htab_remove(ntl_htab *h, int64_t e);
void ntl_htab_move_to_tail(ntl_htab *h, int64_t e);

/* -- rings ------------------------------------------------------------------------------------ */
#define NTL_RING_HEADER 8u
#define NTL_RING_LOCK_BIT (1u << 31)
#define NTL_RING_DISCARD_BIT (1u << 30)
#define NTL_RING_MAX_RECORD ((1u << 30) - 1)

typedef struct ntl_ring {
    uint8_t *data;
    uint64_t capacity;
    uint64_t producer, consumer;
    uint64_t produced, dropped, rejected;
} ntl_ring;

NTL_API ntl_ring *ntl_ring_new(uint64_t capacity);
NTL_API void ntl_ring_free(ntl_ring *r);
/* 0 and the record's data pointer (the header LOCKed), or a negated ebpf_result_t */
int ntl_ring_reserve(ntl_ring *r, uint64_t length, uint64_t max_length, uint8_t **data,
                     uint64_t *offset);
void ntl_ring_submit(ntl_ring *r, uint64_t offset);
void ntl_ring_discard(ntl_ring *r, uint64_t offset);
NTL_API int ntl_ring_output(ntl_ring *r, const uint8_t *data, uint64_t length, uint64_t max_length);
NTL_API void ntl_ring_copy_out(const ntl_ring *r, uint64_t offset, uint8_t *out, uint64_t n);
/* Walk pending records from the consumer: fills offsets/lengths (data offsets in ring terms) of
   up to `max` committed records (discarded ones flagged by length | DISCARD), returns how many;
   *end is the consumer offset after the last one. */
NTL_API uint64_t ntl_ring_walk(const ntl_ring *r, uint64_t *offsets, uint32_t *lengths,
                               uint64_t max, uint64_t *end);

/* -- maps ------------------------------------------------------------------------------------- */
enum {
    NTL_MAP_HASH = 1, NTL_MAP_ARRAY = 2, NTL_MAP_PROG_ARRAY = 3, NTL_MAP_PERCPU_HASH = 4,
    NTL_MAP_PERCPU_ARRAY = 5, NTL_MAP_HASH_OF_MAPS = 6, NTL_MAP_ARRAY_OF_MAPS = 7,
    NTL_MAP_LRU_HASH = 8, NTL_MAP_LPM_TRIE = 9, NTL_MAP_QUEUE = 10, NTL_MAP_LRU_PERCPU_HASH = 11,
    NTL_MAP_STACK = 12, NTL_MAP_RINGBUF = 13, NTL_MAP_PERF_EVENT_ARRAY = 14,
    NTL_MAP_SAMPLE_HASH = 15,
};
/* NTL_MAPF_TRUE_LRU: LRU maps evict the exact least recently used key (Linux-like) instead of
   following EFW's generations (lru.c) */
enum { NTL_MAPF_BOUNDED_HASH = 1, NTL_MAPF_READONLY = 2, NTL_MAPF_PYTHON = 4,
       NTL_MAPF_TRUE_LRU = 8 };

/* ebpf_result_t values the maps return negated (EFW include/ebpf_result.h) */
enum {
    EBPF_SUCCESS = 0, EBPF_INVALID_FD = 4, EBPF_INVALID_OBJECT = 5, EBPF_INVALID_ARGUMENT = 6,
    EBPF_OBJECT_NOT_FOUND = 7, EBPF_OBJECT_ALREADY_EXISTS = 8, EBPF_NO_MEMORY = 12,
    EBPF_OPERATION_NOT_SUPPORTED = 18, EBPF_KEY_NOT_FOUND = 19, EBPF_NO_MORE_KEYS = 25,
    EBPF_NO_MORE_TAIL_CALLS = 27, EBPF_OUT_OF_SPACE = 29,
};

struct ntl_env;

/* EFW's LRU key history (lru.c; libs/execution_context/ebpf_maps.c) */
#define NTL_LRU_MAX_PARTITIONS 8   /* EBPF_LRU_MAXIMUM_PARTITIONS */

typedef struct ntl_lru_part {
    int64_t hot_head, hot_tail, cold_head, cold_tail;  /* links: entry * nparts + partition */
    uint64_t generation, hot_size, hot_limit;
} ntl_lru_part;

typedef struct ntl_lru_link {     /* one key's history in one partition */
    int64_t prev, next;           /* neighbours on its hot or cold list (links), -1 = none */
    uint64_t generation;          /* 0 uninitialised, ~0 deleted, else hot iff the current */
    uint64_t time;                /* last used (the map's logical clock) */
} ntl_lru_link;

typedef struct ntl_lru {
    uint32_t nparts, pad_;
    uint64_t clock;               /* logical last-used time: one tick per link that turns hot */
    uint64_t stalls;              /* inserts refused where EFW would retry forever */
    uint64_t cap;                 /* entries `links` holds (nparts links each) */
    ntl_lru_link *links;          /* link e * nparts + p: entry e in partition p */
    ntl_lru_part part[NTL_LRU_MAX_PARTITIONS];
} ntl_lru;

ntl_lru *ntl_lru_new(uint32_t ncpus, uint32_t max_entries, uint64_t cap);
void ntl_lru_free_all(ntl_lru *l);
int ntl_lru_reserve(ntl_lru *l, uint64_t cap);
void ntl_lru_fresh(ntl_lru *l, int64_t e, uint32_t cpu);     /* a new key's first value */
void ntl_lru_replace(ntl_lru *l, int64_t e, uint32_t cpu);   /* an existing key's new value */
void ntl_lru_free(ntl_lru *l, int64_t e);                    /* the key leaves the map */
void ntl_lru_phantom(ntl_lru *l, uint32_t cpu);              /* a value allocated, refused */
void ntl_lru_touch(ntl_lru *l, int64_t e, uint32_t cpu);     /* a helper lookup */
int64_t ntl_lru_reap(ntl_lru *l);                            /* the victim, or -1 */
int ntl_lru_order(const ntl_lru *l, int64_t *entries, uint64_t n);

typedef struct ntl_map {
    uint32_t type, key_size, value_size, max_entries;
    uint32_t flags, ncpus;
    uint32_t handle_window;
    uint32_t id;
    uint64_t handle;             /* what lddw of the map loads */
    ntl_space *space;
    const uint32_t *cpu;         /* the current CPU (the env's) */
    ntl_slab slab;               /* values (array: max_entries entries, all live) */
    ntl_htab ht;                 /* hash types: the key index */
    ntl_ring *rings;             /* ring buffer: 1; perf event array: ncpus */
    uint64_t *lost;              /* perf event array: per CPU */
    uint32_t passive;            /* perf event array: called at PASSIVE_LEVEL (explicit CPUs refused) */
    uint32_t pad_;
    uint64_t evicted;
    uint64_t *lpm_counts;        /* LPM: entries per prefix length */
    uint32_t lpm_max_prefix;
    uint8_t *lpm_orig;           /* LPM: each entry's key as first inserted */
    uint64_t lpm_orig_cap;
    uint64_t q_begin, q_count;   /* queue/stack: entry numbers in a circular order array */
    int64_t *q_order;
    void **progs;                /* prog array: native code per slot (NULL = empty) */
    uint64_t *prog_ids;          /* prog array: the Python-side program id per slot (0 = empty) */
    uint64_t *inner;             /* map-in-map: inner map handle per entry (0 = none) */
    ntl_lru *lru;                /* LRU maps without NTL_MAPF_TRUE_LRU: EFW's generations */
} ntl_map;

NTL_API ntl_map *ntl_map_new(ntl_space *s, uint32_t type, uint32_t key_size, uint32_t value_size,
                             uint32_t max_entries, uint32_t ncpus, uint32_t flags, uint32_t id,
                             const uint32_t *cpu, uint64_t initial_entries, uint64_t limit);
NTL_API void ntl_map_free(ntl_map *m);
NTL_API ntl_map *ntl_map_from_handle(ntl_space *s, uint64_t addr);
NTL_API int ntl_array_inline(ntl_space *s, uint64_t handle, uint64_t out[5]);
/* program side: 0 / negated ebpf_result_t; addresses are virtual (0 = NULL) */
NTL_API uint64_t ntl_map_lookup(ntl_map *m, const uint8_t *key, int helper);
NTL_API int64_t ntl_map_update(ntl_map *m, const uint8_t *key, const uint8_t *value,
                               uint64_t flags, int user);
NTL_API int64_t ntl_map_delete(ntl_map *m, const uint8_t *key);
NTL_API uint64_t ntl_map_lookup_and_delete(ntl_map *m, const uint8_t *key);
NTL_API int64_t ntl_map_push(ntl_map *m, const uint8_t *value, uint64_t flags);
NTL_API int64_t ntl_map_pop(ntl_map *m, uint8_t *out, int remove);
NTL_API void ntl_map_end_epoch(ntl_map *m);
/* user side */
NTL_API int64_t ntl_map_find_entry(ntl_map *m, const uint8_t *key);   /* entry number or -1 */
NTL_API uint64_t ntl_map_count(const ntl_map *m);
NTL_API uint64_t ntl_map_entries(const ntl_map *m, int64_t *out, uint64_t max); /* in order */
NTL_API const uint8_t *ntl_map_key_of(const ntl_map *m, int64_t e);
NTL_API int64_t ntl_map_lpm_match(ntl_map *m, const uint8_t *key);
NTL_API void ntl_map_set_prog(ntl_map *m, uint32_t index, void *code, uint64_t prog_id);
NTL_API int64_t ntl_perf_output(ntl_map *m, uint32_t current, const uint8_t *data, uint64_t size,
                                uint64_t flags, const uint8_t *ctx_data, int64_t ctx_len);
NTL_API int64_t ntl_perf_output_cpu(ntl_map *m, uint32_t current, uint64_t cpu,
                                    const uint8_t *data, uint64_t size);
NTL_API int64_t ntl_map_set_inner(ntl_map *m, const uint8_t *key, uint64_t inner_handle,
                                  uint64_t flags);

/* -- runs ------------------------------------------------------------------------------------- */
#define NTL_STACK_FRAMES 8
#define NTL_STACK_SIZE 512

/* why a run stopped (a program's return value / run->status) */
enum {
    NTL_S_EXIT = 0, NTL_S_MEMORY = 1, NTL_S_BUDGET = 2, NTL_S_CALL_DEPTH = 3, NTL_S_FELL_OFF = 4,
    NTL_S_HELPER = 5, NTL_S_PYTHON = 6, NTL_S_INDEX = 7, NTL_S_STOP = 8, NTL_S_INTERNAL = 9,
};
/* helper faults (run->fault_code when status is NTL_S_HELPER) */
enum {
    NTL_HF_NOT_A_MAP = 1,        /* arg: the address */
    NTL_HF_WRONG_MAP_TYPE = 2,   /* arg: the map id; arg2: the type expected */
    NTL_HF_NOT_CONTEXT = 3,      /* arg: the address */
    NTL_HF_MEMORY = 4,           /* a buffer argument outside every region: addr/size/write */
    NTL_HF_CPU = 5,              /* the current CPU is outside the map's CPUs */
    NTL_HF_NO_MEMORY = 6,        /* the host ran out of memory */
    NTL_HF_UNKNOWN = 7,          /* no native helper with this id */
    NTL_HF_TAIL_TARGET = 8,      /* the tail call's target has no native code; arg: its id */
};

struct ntl_run;
typedef int32_t (*ntl_program_fn)(struct ntl_run *run, uint64_t r1);
typedef uint64_t (*ntl_python_fn)(struct ntl_run *run, uint64_t helper_id);

typedef struct ntl_printk {
    uint64_t time;
    uint32_t program;   /* run->program_id */
    uint32_t helper;
    uint32_t offset;    /* text in the env's printk buffer */
    uint32_t length;
} ntl_printk;

typedef struct ntl_env {
    /* what the "current" helpers answer (the hook sets it per event) */
    uint64_t pid_tgid, logon_id, process_start_key, thread_create_time;
    int64_t is_admin;
    uint64_t boot_ns, mono_ns, now;
    uint32_t cpu, ncpus;
    uint32_t printk_enabled, printk_session;
    /* Python's random.Random state (mt19937.c) */
    uint32_t mt[624];
    uint32_t mti;
    uint32_t pad0;
    /* printk records */
    ntl_printk *printk; uint64_t nprintk, printk_cap;
    char *printk_text; uint64_t printk_text_len, printk_text_cap;
} ntl_env;

typedef struct ntl_run {
    ntl_space *space;
    ntl_env *env;
    uint64_t regs[11];          /* r0 on exit; r1..r5 for Python helpers; all at a resume */
    uint64_t count;             /* instructions executed (at exit / at a helper call / at a fault) */
    uint64_t budget;
    uint64_t pc;                /* fault pc */
    uint64_t status;            /* set by a helper that stops the run (NTL_S_*) */
    uint64_t fault_code, fault_addr, fault_size, fault_write, fault_arg, fault_arg2;
    uint64_t helper_id;         /* the helper that faulted */
    uint64_t stack_host[NTL_STACK_FRAMES];
    uint64_t stack_end[NTL_STACK_FRAMES];
    uint64_t depth;             /* at a budget resume: the call depth */
    uint64_t frames[NTL_STACK_FRAMES * 6]; /* saved r6..r10 + return site per depth */
    /* tail calls (EFW: recorded by the helper, started after the program exits) */
    ntl_program_fn tail_fn;
    uint64_t tail_prog_id;      /* the Python-side program id of the target */
    uint64_t tail_ctx;
    uint32_t tail_calls, max_tail_calls;
    uint64_t tail_calls_failed;
    uint64_t program_id;        /* the running program (for printk records) */
    ntl_python_fn python;       /* helpers implemented in Python */
    void *context;              /* the hook's current event (process.c) */
    uint64_t ctx_addr;          /* the context's virtual address (for helpers that check it) */
    uint64_t stop_r0;           /* NTL_S_STOP: the r0 a helper ended the run with */
    uint64_t native_tail;       /* compiled code runs: a tail call needs the target's code */
} ntl_run;

NTL_API void ntl_run_init(ntl_run *run, ntl_space *s, ntl_env *env);
/* Run `fn` (and the tail calls it makes) with r1 = ctx; returns NTL_S_*; r0 in run->regs[0]. */
NTL_API int32_t ntl_run_program(ntl_run *run, ntl_program_fn fn, uint64_t ctx, uint64_t budget);
/* BPF_PROG_TEST_RUN's repeat: run `repeat` times (stopping at the first run that does not exit
   normally), ending the maps' epoch after each run as the sandbox does; *elapsed_ns gets the
   wall time of the loop, *done the runs completed. */
NTL_API void ntl_end_epochs(ntl_map **maps, uint64_t n);
NTL_API int32_t ntl_repeat_run(ntl_run *run, ntl_program_fn fn, uint64_t ctx, uint64_t budget,
                               ntl_map **maps, uint64_t nmaps, uint64_t repeat,
                               uint64_t *elapsed_ns, uint64_t *done);
void ntl_fault_memory(ntl_run *run, uint64_t helper_id, uint64_t addr, uint64_t size, int write);
void ntl_fault_helper(ntl_run *run, uint64_t helper_id, uint64_t code, uint64_t arg,
                      uint64_t arg2);
/* translate a helper's buffer argument or record the fault; NULL means the run must stop */
uint8_t *ntl_arg(ntl_run *run, uint64_t helper_id, uint64_t addr, uint64_t size, int write);

/* -- the environment -------------------------------------------------------------------------- */
NTL_API ntl_env *ntl_env_new(uint32_t ncpus);
NTL_API void ntl_env_free(ntl_env *env);
NTL_API void ntl_env_seed(ntl_env *env, const uint32_t *key, uint32_t key_length);
NTL_API uint32_t ntl_env_random(ntl_env *env);
NTL_API void ntl_env_clear_printk(ntl_env *env);

/* -- helpers ---------------------------------------------------------------------------------- */
typedef uint64_t (*ntl_helper_fn)(ntl_run *run, uint64_t r1, uint64_t r2, uint64_t r3,
                                  uint64_t r4, uint64_t r5);
/* the native implementation of helper `id`, or NULL when it has none */
NTL_API ntl_helper_fn ntl_helper(uint64_t id);
NTL_API uint64_t ntl_call_helper(ntl_run *run, uint64_t id, uint64_t r1, uint64_t r2,
                                 uint64_t r3, uint64_t r4, uint64_t r5);
NTL_API int32_t ntl_format_printk(const char *fmt, uint64_t fmt_len, const uint64_t *args,
                                  uint32_t nargs, char *out, uint64_t out_cap);

#endif
