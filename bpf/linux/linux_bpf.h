/* ntoslab: the little a Linux CO-RE tracing program needs, declared by hand (no kernel headers,
 * no vmlinux.h, no bpftool). Named linux_bpf.h so it can never be confused with the
 * Windows-compatible bpf_helpers.h in bpf/include, which is always on the include path.
 *
 * Kernel types are declared with only the fields we read and
 * __attribute__((preserve_access_index)): clang records each access as a CO-RE relocation and
 * libbpf moves it to the running kernel's offsets (from /sys/kernel/btf/vmlinux) at load time.
 * libbpf matches fields by name, also inside the kernel's anonymous structs and unions. */
#pragma once

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed int __s32;
typedef signed long long __s64;

#define SEC(NAME) __attribute__((section(NAME), used))
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define CORE __attribute__((preserve_access_index))

/* BTF-defined maps, the libbpf convention (Linux map type numbers). */
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val)* name
enum linux_map_type {
    LINUX_MAP_HASH = 1,
    LINUX_MAP_PERCPU_ARRAY = 6,
    LINUX_MAP_LRU_HASH = 9,
    LINUX_MAP_RINGBUF = 27,
};
#define LINUX_ANY 0

/* Linux helper ids (include/uapi/linux/bpf.h, the __BPF_FUNC_MAPPER order). */
static void* (*bpf_map_lookup_elem)(void* map, const void* key) = (void*)1;
static long (*bpf_map_update_elem)(void* map, const void* key, const void* value,
                                   __u64 flags) = (void*)2;
static long (*bpf_map_delete_elem)(void* map, const void* key) = (void*)3;
static __u64 (*bpf_get_current_uid_gid)(void) = (void*)15;
static long (*bpf_get_current_comm)(void* buf, __u32 size) = (void*)16;
static long (*bpf_probe_read_user)(void* dst, __u32 size, const void* unsafe_ptr) = (void*)112;
static long (*bpf_probe_read_kernel_str)(void* dst, __u32 size,
                                         const void* unsafe_ptr) = (void*)115;
static __u64 (*bpf_ktime_get_boot_ns)(void) = (void*)125;
static long (*bpf_ringbuf_output)(void* ringbuf, void* data, __u64 size, __u64 flags) = (void*)130;

/* Kernel types: only the members read here. */
typedef struct { int counter; } atomic_t;

struct signal_struct {
    atomic_t live;               /* threads still running; 0 once the whole group has exited */
} CORE;

struct mm_struct {
    unsigned long arg_start;     /* argv strings of the current image, NUL-separated */
    unsigned long arg_end;
} CORE;

struct task_struct {
    int pid;                     /* the thread id */
    int tgid;                    /* the process id */
    int exit_code;               /* wait(2) status being reported */
    __u64 start_boottime;        /* CLOCK_BOOTTIME ns at fork (de_thread keeps the leader's) */
    struct task_struct* real_parent;
    struct task_struct* group_leader;
    struct mm_struct* mm;
    struct signal_struct* signal;
} CORE;

struct linux_binprm {
    const char* filename;        /* the path execve was given (PATH already searched) */
} CORE;
