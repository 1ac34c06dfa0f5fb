// ntoslab: capture process creation and exit from this machine's Linux kernel, for the trace
// schema Windows programs are studied with (ntoslab/connectors/linux.py reads the records).
//
//   tp_btf/sched_process_fork  a new process (not a thread): remember who created it (the
//                              forking process and thread), keyed by the child's pid
//   tp_btf/sched_process_exec  the process runs a new image: pid, parent, creator (from the
//                              fork), image path as execve got it, argv from the new image's
//                              memory (mm->arg_start..arg_end, bounded), uid, start and event time
//   tp_btf/sched_process_exit  only when the thread group is gone (signal->live == 0): thread
//                              exits are not process exits; raw exit status, exit time, and
//                              whether the process never ran exec (a fork without exec)
//
// Times are CLOCK_BOOTTIME nanoseconds; user space turns them into UTC and FILETIME.
// Every record that cannot be delivered is counted in `stats`, never silently lost.
#include "linux_bpf.h"

#define FILENAME_MAX_BYTES 1024
#define ARGS_MAX_BYTES 16384  // a power of two: argv beyond it is cut (flag ARGS_TRUNCATED)

enum event_kind { EVENT_EXEC = 1, EVENT_EXIT = 2 };
enum event_flags {
    FLAG_CREATOR_KNOWN = 1,   // creator_pid/tid come from the fork we saw
    FLAG_NEVER_EXECED = 2,    // exit of a process that forked (while we watched) and never exec'd
    FLAG_ARGS_TRUNCATED = 4,
    FLAG_ARGS_FAULT = 8,      // argv could not be read
    FLAG_FILENAME_FAULT = 16,
};
enum stat_index { STAT_RINGBUF_DROPS = 0, STAT_FORK_MAP_FULL = 1, STAT_ARGS_FAULTS = 2,
                  STAT_EVENTS = 3, STAT_COUNT = 4 };

struct creator {
    __u32 pid;
    __u32 tid;
};

// 88-byte header, then (exec only) the file name and argv.
struct event {
    __u32 kind;
    __u32 flags;
    __u32 pid;               // tgid
    __u32 tid;               // the thread that ran exec / exited last
    __u32 ppid;              // real_parent's tgid
    __u32 creator_pid;
    __u32 creator_tid;
    __u32 exit_code;         // raw wait status (exit)
    __u32 uid;               // real uid (exec)
    __u32 old_pid;           // exec: the thread id that called execve
    __u64 time_ns;           // CLOCK_BOOTTIME of the event
    __u64 start_ns;          // the process's start (fork) time, CLOCK_BOOTTIME
    __u64 parent_start_ns;
    __u16 filename_len;      // bytes, without the NUL
    __u16 args_len;          // bytes of argv copied (NUL-separated)
    __u32 reserved;
    char comm[16];
    char filename[FILENAME_MAX_BYTES];
    char args[ARGS_MAX_BYTES];
};
#define HEADER_SIZE __builtin_offsetof(struct event, filename)

struct {
    __uint(type, LINUX_MAP_RINGBUF);
    __uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
    __uint(type, LINUX_MAP_LRU_HASH);
    __type(key, __u32);
    __type(value, struct creator);
    __uint(max_entries, 32768);
} forks SEC(".maps");

struct {
    __uint(type, LINUX_MAP_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, struct event);
    __uint(max_entries, 1);
} scratch SEC(".maps");

struct {
    __uint(type, LINUX_MAP_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, STAT_COUNT);
} stats SEC(".maps");

static __always_inline void count(__u32 index)
{
    __u64* n = bpf_map_lookup_elem(&stats, &index);
    if (n)
        __sync_fetch_and_add(n, 1);
}

static __always_inline struct event* new_event(__u32 kind, struct task_struct* p)
{
    __u32 zero = 0;
    struct event* ev = bpf_map_lookup_elem(&scratch, &zero);
    if (!ev)
        return 0;
    ev->kind = kind;
    ev->flags = 0;
    ev->pid = p->tgid;
    ev->tid = p->pid;
    ev->ppid = p->real_parent->tgid;
    ev->parent_start_ns = p->real_parent->start_boottime;
    ev->start_ns = p->group_leader->start_boottime;
    ev->creator_pid = 0;
    ev->creator_tid = 0;
    ev->exit_code = 0;
    ev->uid = 0;
    ev->old_pid = 0;
    ev->filename_len = 0;
    ev->args_len = 0;
    ev->reserved = 0;
    ev->time_ns = bpf_ktime_get_boot_ns();
    bpf_get_current_comm(ev->comm, sizeof(ev->comm));
    return ev;
}

static __always_inline void take_creator(struct event* ev)
{
    __u32 pid = ev->pid;
    struct creator* c = bpf_map_lookup_elem(&forks, &pid);
    if (c) {
        ev->creator_pid = c->pid;
        ev->creator_tid = c->tid;
        ev->flags |= FLAG_CREATOR_KNOWN;
        bpf_map_delete_elem(&forks, &pid);
    }
}

static __always_inline void emit(struct event* ev, __u64 size)
{
    if (bpf_ringbuf_output(&events, ev, size, 0))
        count(STAT_RINGBUF_DROPS);
    else
        count(STAT_EVENTS);
}

SEC("tp_btf/sched_process_fork")
int on_fork(__u64* ctx)
{
    struct task_struct* parent = (struct task_struct*)ctx[0];
    struct task_struct* child = (struct task_struct*)ctx[1];
    if (child->pid != child->tgid)  // a new thread, not a new process
        return 0;
    struct creator c = {.pid = parent->tgid, .tid = parent->pid};
    __u32 pid = child->tgid;
    if (bpf_map_update_elem(&forks, &pid, &c, LINUX_ANY))
        count(STAT_FORK_MAP_FULL);
    return 0;
}

SEC("tp_btf/sched_process_exec")
int on_exec(__u64* ctx)
{
    struct task_struct* p = (struct task_struct*)ctx[0];
    struct linux_binprm* bprm = (struct linux_binprm*)ctx[2];
    struct event* ev = new_event(EVENT_EXEC, p);
    if (!ev)
        return 0;
    ev->old_pid = (__u32)ctx[1];
    ev->uid = (__u32)bpf_get_current_uid_gid();
    take_creator(ev);

    long n = bpf_probe_read_kernel_str(ev->filename, FILENAME_MAX_BYTES, bprm->filename);
    if (n > 0)
        ev->filename_len = n - 1;
    else
        ev->flags |= FLAG_FILENAME_FAULT;

    struct mm_struct* mm = p->mm;  // the new image's: exec has set it up by now
    unsigned long start = mm->arg_start;
    unsigned long len = mm->arg_end - start;
    if (len > ARGS_MAX_BYTES) {
        len = ARGS_MAX_BYTES;
        ev->flags |= FLAG_ARGS_TRUNCATED;
    }
    __u32 size = len;
    if (size > ARGS_MAX_BYTES)  // the same bound again, on the 32-bit value the verifier sees
        size = ARGS_MAX_BYTES;
    if (size && bpf_probe_read_user(ev->args, size, (const void*)start)) {
        ev->flags |= FLAG_ARGS_FAULT;
        count(STAT_ARGS_FAULTS);
        size = 0;
    }
    ev->args_len = size;
    emit(ev, HEADER_SIZE + FILENAME_MAX_BYTES + (__u64)size);
    return 0;
}

SEC("tp_btf/sched_process_exit")
int on_exit(__u64* ctx)
{
    struct task_struct* p = (struct task_struct*)ctx[0];
    if (p->signal->live.counter != 0)  // other threads of the process still run
        return 0;
    struct event* ev = new_event(EVENT_EXIT, p);
    if (!ev)
        return 0;
    ev->exit_code = p->exit_code;
    take_creator(ev);  // still there: the process forked and never ran exec
    if (ev->flags & FLAG_CREATOR_KNOWN)
        ev->flags |= FLAG_NEVER_EXECED;
    emit(ev, HEADER_SIZE);
    return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
