/* The ntosebpfext process hook, natively: helpers 65536-65538, the attached chain on one
 * event, and batch replay over columnar events (reference sections 1.3-1.6).
 *
 * The chain: every attached program runs in attach order; a negative 32-bit return on a create
 * denies it with exactly that status and stops later programs; returns on delete are ignored;
 * a program that faults leaves the status 0 (allow), as Windows does when an invocation fails.
 * After each program run its maps end their epoch (EFW frees retired values there).
 *
 * Batch replay packs events column-wise (Python: ntoslab/hooks/batch.py): every event's
 * 144-byte process_md_t in one array and all UTF-16 strings in one buffer. Each object's address
 * space keeps its context and command-line windows at the same fixed indices, so one packed
 * context serves every program; per event the loop only repoints those two windows.
 */
#include "ntl.h"

#include <stdlib.h>
#include <string.h>

#define EINVAL 22
#define ENOENT 2
#define CONTEXT_SIZE 144

/* the event the process helpers answer for (one per object's run) */
typedef struct ntl_event {
    const uint8_t *image;
    uint64_t image_len;
    const uint8_t *account_name;
    int64_t account_name_len;   /* -1: SecLookupAccountSid would fail (-ENOENT) */
    const uint8_t *account_domain;
    int64_t account_domain_len;
    const uint8_t *command;     /* the context's data (perf_event_output capture) */
    uint64_t command_len;
    uint64_t ctx_addr;
    uint64_t is_create;
    uint64_t account_used;      /* an account helper ran (EFW resolves the SID lazily) */
} ntl_event;

int ntl_process_context_data(ntl_run *run, const uint8_t **data, uint64_t *len) {
    ntl_event *ev = run->context;
    if (!ev || !ev->is_create)
        return 0;
    *data = ev->command;
    *len = ev->command_len;
    return 1;
}

static uint64_t copy_string(ntl_run *run, uint64_t id, uint64_t ctx, uint64_t buf, uint64_t size,
                            const uint8_t *value, int64_t len) {
    ntl_event *ev = run->context;
    if (!ev || ctx != ev->ctx_addr) {
        ntl_fault_helper(run, id, NTL_HF_NOT_CONTEXT, ctx, 0);
        return 0;
    }
    if (id != 65536)
        ev->account_used = 1;
    if (len < 0)
        return (uint64_t)-ENOENT;
    if ((uint64_t)len > (size & 0xFFFFFFFFull))
        return (uint64_t)-EINVAL; /* nothing copied: no truncation */
    if (len) {
        uint8_t *dst = ntl_arg(run, id, buf, (uint64_t)len, 1);
        if (!dst)
            return 0;
        memcpy(dst, value, (size_t)len);
    }
    return (uint64_t)len;
}

uint64_t ntl_process_get_image_path(ntl_run *run, uint64_t r1, uint64_t r2, uint64_t r3,
                                    uint64_t r4, uint64_t r5) {
    (void)r4, (void)r5;
    ntl_event *ev = run->context;
    return copy_string(run, 65536, r1, r2, r3, ev ? ev->image : NULL,
                       ev ? (int64_t)ev->image_len : 0);
}

uint64_t ntl_process_get_account_name(ntl_run *run, uint64_t r1, uint64_t r2, uint64_t r3,
                                      uint64_t r4, uint64_t r5) {
    (void)r4, (void)r5;
    ntl_event *ev = run->context;
    return copy_string(run, 65537, r1, r2, r3, ev ? ev->account_name : NULL,
                       ev ? ev->account_name_len : -1);
}

uint64_t ntl_process_get_account_domain(ntl_run *run, uint64_t r1, uint64_t r2, uint64_t r3,
                                        uint64_t r4, uint64_t r5) {
    (void)r4, (void)r5;
    ntl_event *ev = run->context;
    return copy_string(run, 65538, r1, r2, r3, ev ? ev->account_domain : NULL,
                       ev ? ev->account_domain_len : -1);
}

/* -- batch replay ---------------------------------------------------------------------------- */
typedef struct ntl_link {
    ntl_run *run;               /* the object's run state (its space and env) */
    ntl_program_fn fn;
    uint64_t program_id;
    ntl_map **maps;             /* the object's maps: their epochs end after each run */
    uint64_t nmaps;
    ntl_event *event;           /* the object's current-event block */
    uint32_t ctx_window, cmd_window;
} ntl_link;

typedef struct ntl_recorder {   /* drains a ring after every event, as a reader keeping up */
    ntl_map *map;
    uint8_t *data;              /* record bytes, appended */
    uint64_t len, cap;
    uint64_t *offsets;          /* per record: start in data; lengths; event index */
    uint32_t *lengths;
    uint64_t *events;
    uint64_t count, count_cap;
} ntl_recorder;

typedef struct ntl_batch {
    uint64_t n;
    /* process_md_t, column-wise (creates use ppid/cpid/ctid/sid; deletes exit time and code) */
    const int64_t *pid, *ppid, *cpid, *ctid, *ctime, *etime;
    const uint32_t *exit_code;
    const int32_t *sid;         /* index into sid_table, -1: none */
    const uint8_t *sid_table;   /* 68 bytes per SID */
    const uint32_t *sid_size;
    const int32_t *raw;         /* index into raw_table (144-byte contexts packed by Python) */
    const uint8_t *raw_table;
    const uint8_t *strings;
    const uint64_t *cmd_off, *cmd_len, *img_off, *img_len;
    const int64_t *name_off, *name_len, *dom_off, *dom_len;
    const uint8_t *is_create;
    const int64_t *time;        /* event time (UTC ns), 0 = unknown */
    const uint64_t *logon_id, *start_key, *thread_time;
    const int64_t *is_admin;
    const uint32_t *cpu;
    uint64_t budget;
    uint64_t command_base;      /* the command-line window's address (the same in every sandbox) */
    /* the hook's clock, carried across calls */
    int64_t last_time, boot_time;
    uint32_t has_boot_time, ncpus;
    /* outputs per event */
    int32_t *status;
    int32_t *decided_by;        /* link index, -1 */
    uint64_t *instructions;
    uint32_t *programs_run;
    int64_t *now;
    /* where to go on; set when the loop stops for a fault Python must describe */
    uint64_t next_event;
    uint32_t next_link;
    uint32_t fault_link;
    int32_t fault_status;
    uint32_t pad;
    uint8_t context[CONTEXT_SIZE]; /* the current event's process_md_t, shared by every link */
    uint64_t pid_tgid;
    /* per link, for the last event run (NULL: not wanted): its status (r0 as int32, or the
       NTL_S_* it stopped with, negated minus 1000) and instruction count; -1 = did not run */
    int64_t *link_status;
    uint64_t *link_count;
    uint64_t event_base;        /* the hook's index of event 0 (what recorders attribute to) */
    const uint64_t *exit_tid;   /* delete: the exiting thread (bpf_get_current_pid_tgid) */
} ntl_batch;

static int record(ntl_recorder *rec, uint64_t event) {
    ntl_ring *r = rec->map->rings;
    uint64_t offs[64];
    uint32_t lens[64];
    for (;;) {
        uint64_t end;
        uint64_t k = ntl_ring_walk(r, offs, lens, 64, &end);
        if (!k)
            return 0;
        for (uint64_t i = 0; i < k; i++) {
            if (lens[i] & NTL_RING_DISCARD_BIT)
                continue;
            uint32_t len = lens[i];
            if (rec->count == rec->count_cap) {
                uint64_t cap = rec->count_cap ? rec->count_cap * 2 : 1024;
                uint64_t *o = realloc(rec->offsets, cap * 8), *e;
                if (!o)
                    return -1;
                rec->offsets = o;
                uint32_t *l = realloc(rec->lengths, cap * 4);
                if (!l)
                    return -1;
                rec->lengths = l;
                e = realloc(rec->events, cap * 8);
                if (!e)
                    return -1;
                rec->events = e;
                rec->count_cap = cap;
            }
            if (rec->len + len > rec->cap) {
                uint64_t cap = rec->cap ? rec->cap : 65536;
                while (cap < rec->len + len)
                    cap *= 2;
                uint8_t *d = realloc(rec->data, cap);
                if (!d)
                    return -1;
                rec->data = d;
                rec->cap = cap;
            }
            ntl_ring_copy_out(r, offs[i], rec->data + rec->len, len);
            rec->offsets[rec->count] = rec->len;
            rec->lengths[rec->count] = len;
            rec->events[rec->count] = event;
            rec->count++;
            rec->len += len;
        }
        r->consumer = end;
    }
}

NTL_API int ntl_recorder_drain(ntl_recorder *rec, uint64_t event) { return record(rec, event); }

NTL_API void ntl_recorder_free_data(ntl_recorder *rec) {
    free(rec->data);
    free(rec->offsets);
    free(rec->lengths);
    free(rec->events);
    memset(rec, 0, sizeof *rec);
}

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint64_t get64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* The event's process_md_t, as ntoslab/hooks/process.py pack_event lays it out. */
static void build_context(ntl_batch *b, uint64_t i) {
    uint8_t *c = b->context;
    if (b->raw[i] >= 0) {
        memcpy(c, b->raw_table + (uint64_t)b->raw[i] * CONTEXT_SIZE, CONTEXT_SIZE);
    } else {
        memset(c, 0, CONTEXT_SIZE);
        put64(c + 16, (uint64_t)b->pid[i]);
        put64(c + 48, (uint64_t)b->ctime[i]);
        if (b->is_create[i]) {
            put64(c + 0, b->command_base);
            put64(c + 8, b->command_base + b->cmd_len[i]);
            put64(c + 24, (uint64_t)b->ppid[i]);
            put64(c + 32, (uint64_t)b->cpid[i]);
            put64(c + 40, (uint64_t)b->ctid[i]);
            if (b->sid[i] >= 0) {
                put32(c + 72, b->sid_size[b->sid[i]]);
                memcpy(c + 76, b->sid_table + (uint64_t)b->sid[i] * 68, 68);
            }
        } else {
            put64(c + 56, (uint64_t)b->etime[i]);
            put32(c + 64, b->exit_code[i]);
            c[68] = 1; /* PROCESS_OPERATION_DELETE */
        }
    }
    /* what bpf_get_current_pid_tgid answers: the creator on create, the process and its
       exiting thread on delete */
    b->pid_tgid = b->is_create[i] ? (get64(c + 32) << 32) | (get64(c + 40) & 0xFFFFFFFFull)
                                  : (get64(c + 16) << 32) | (b->exit_tid[i] & 0xFFFFFFFFull);
}

static void setup_event(const ntl_batch *b, uint64_t i, ntl_link *l, int64_t now) {
    ntl_run *run = l->run;
    ntl_env *env = run->env;
    env->pid_tgid = b->pid_tgid;
    env->logon_id = b->logon_id[i];
    env->is_admin = b->is_admin[i];
    env->process_start_key = b->start_key[i];
    env->thread_create_time = b->thread_time[i];
    int64_t up = now - b->boot_time;
    env->boot_ns = env->mono_ns = up > 0 ? (uint64_t)up : 0;
    env->now = (uint64_t)now;
    env->cpu = b->ncpus ? b->cpu[i] % b->ncpus : 0;
    run->program_id = l->program_id;
    memset(run->regs, 0, sizeof run->regs);
    ntl_space_repoint(run->space, l->ctx_window, (uint8_t *)b->context, CONTEXT_SIZE);
    ntl_event *ev = l->event;
    ev->is_create = b->is_create[i];
    ev->ctx_addr = ntl_window_base(l->ctx_window);
    if (ev->is_create) {
        ntl_space_repoint(run->space, l->cmd_window, (uint8_t *)(b->strings + b->cmd_off[i]),
                          (uint32_t)b->cmd_len[i]);
        ev->command = b->strings + b->cmd_off[i];
        ev->command_len = b->cmd_len[i];
        ev->image = b->strings + b->img_off[i];
        ev->image_len = b->img_len[i];
        ev->account_name = b->name_len[i] >= 0 ? b->strings + b->name_off[i] : NULL;
        ev->account_name_len = b->name_len[i];
        ev->account_domain = b->dom_len[i] >= 0 ? b->strings + b->dom_off[i] : NULL;
        ev->account_domain_len = b->dom_len[i];
    } else {
        ntl_space_repoint(run->space, l->cmd_window, NULL, 0);
        ev->command = NULL;
        ev->command_len = 0;
        ev->image = NULL;
        ev->image_len = 0;
        ev->account_name = ev->account_domain = NULL;
        ev->account_name_len = ev->account_domain_len = -1;
    }
    run->context = ev;
}

/* Returns 0 when every event ran, 1 when it stopped at a fault (b->next_event/next_link say
   where to resume, b->fault_link/fault_status what happened; the faulting run's state is
   intact for Python to describe), -1 when the host ran out of memory. */
NTL_API int ntl_batch_run(ntl_batch *b, ntl_link *links, uint32_t nlinks, ntl_recorder *recs,
                          uint32_t nrecs) {
    for (uint64_t i = b->next_event; i < b->n; i++) {
        uint32_t first = 0;
        int64_t now;
        if (b->next_link && i == b->next_event) {
            first = b->next_link; /* resuming after a fault on this event */
            now = b->now[i];
        } else {
            now = b->time[i] ? b->time[i] : (b->last_time ? b->last_time + 1000000 : 0);
            if (!b->has_boot_time) {
                b->boot_time = (now ? now : 3600000000000LL) - 3600000000000LL;
                b->has_boot_time = 1;
            }
            if (now > b->last_time)
                b->last_time = now;
            b->now[i] = now;
            b->status[i] = 0;
            b->decided_by[i] = -1;
            b->instructions[i] = 0;
            b->programs_run[i] = 0;
        }
        b->next_link = 0;
        build_context(b, i);
        if (b->link_status && first == 0)
            for (uint32_t j = 0; j < nlinks; j++)
                b->link_status[j] = -1, b->link_count[j] = 0;
        for (uint32_t j = first; j < nlinks; j++) {
            ntl_link *l = &links[j];
            setup_event(b, i, l, now);
            int32_t st = ntl_run_program(l->run, l->fn, ntl_window_base(l->ctx_window),
                                         b->budget);
            b->programs_run[i]++;
            b->instructions[i] += l->run->count;
            if (b->link_status) {
                b->link_count[j] = l->run->count;
                b->link_status[j] = st == NTL_S_EXIT ? (int64_t)(int32_t)(uint32_t)l->run->regs[0]
                                                     : -1000 - st;
            }
            if (st != NTL_S_EXIT) { /* Python describes it, then ends the epoch */
                b->next_event = i;
                b->next_link = j + 1;
                b->fault_link = j;
                b->fault_status = st;
                return 1;
            }
            for (uint64_t k = 0; k < l->nmaps; k++)
                ntl_map_end_epoch(l->maps[k]);
            int32_t status = (int32_t)(uint32_t)l->run->regs[0];
            if (b->is_create[i] && status < 0) {
                b->status[i] = status;
                b->decided_by[i] = (int32_t)j;
                break;
            }
        }
        for (uint32_t k = 0; k < nrecs; k++)
            if (record(&recs[k], b->event_base + i))
                return -1;
    }
    b->next_event = b->n;
    b->next_link = 0;
    return 0;
}

/* sizes of this file's shared structures (ntl_sizeof covers ntl.h's), for abi.py's check */
NTL_API uint64_t ntl_process_sizeof(int which) {
    switch (which) {
    case 0: return sizeof(ntl_event);
    case 1: return sizeof(ntl_link);
    case 2: return sizeof(ntl_recorder);
    case 3: return sizeof(ntl_batch);
    default: return 0;
    }
}
