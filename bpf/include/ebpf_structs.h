/* ntoslab: map types, update flags, legacy map records and general helper ids as eBPF for
 * Windows numbers them (our own header, written from the published ids). */
#pragma once
#include "ebpf_windows.h"

typedef enum bpf_map_type {
    BPF_MAP_TYPE_UNSPEC = 0,
    BPF_MAP_TYPE_HASH = 1,
    BPF_MAP_TYPE_ARRAY = 2,
    BPF_MAP_TYPE_PROG_ARRAY = 3,       /* program references, for bpf_tail_call */
    BPF_MAP_TYPE_PERCPU_HASH = 4,
    BPF_MAP_TYPE_PERCPU_ARRAY = 5,
    BPF_MAP_TYPE_HASH_OF_MAPS = 6,
    BPF_MAP_TYPE_ARRAY_OF_MAPS = 7,
    BPF_MAP_TYPE_LRU_HASH = 8,
    BPF_MAP_TYPE_LPM_TRIE = 9,
    BPF_MAP_TYPE_QUEUE = 10,
    BPF_MAP_TYPE_LRU_PERCPU_HASH = 11,
    BPF_MAP_TYPE_STACK = 12,
    BPF_MAP_TYPE_RINGBUF = 13,
    BPF_MAP_TYPE_PERF_EVENT_ARRAY = 14,
    BPF_MAP_TYPE_SAMPLE_HASH_MAP = 15, /* provided by the sample extension only */
    BPF_MAP_TYPE_XSKMAP = 16,
    BPF_MAP_TYPE_MAX
} ebpf_map_type_t;

#define BPF_MAP_TYPE_PER_CPU(t) \
    ((t) == BPF_MAP_TYPE_PERCPU_HASH || (t) == BPF_MAP_TYPE_PERCPU_ARRAY || \
     (t) == BPF_MAP_TYPE_LRU_PERCPU_HASH || (t) == BPF_MAP_TYPE_PERF_EVENT_ARRAY)

/* Update flags (bpf_map_update_elem). */
typedef enum ebpf_map_option {
    EBPF_ANY = 0,
    EBPF_NOEXIST = 1,
    EBPF_EXIST = 2,
} ebpf_map_option_t;
#define BPF_ANY 0x0
#define BPF_NOEXIST 0x1
#define BPF_EXIST 0x2

/* Map pinning, with libbpf's values. */
typedef enum ebpf_pin_type {
    LIBBPF_PIN_NONE = 0,
    LIBBPF_PIN_BY_NAME = 1,
} ebpf_pin_type_t;

typedef uint32_t ebpf_id_t;
#define EBPF_ID_NONE 0

#define MAX_TAIL_CALL_CNT 33

/* bpf_perf_event_output flags: the low 32 bits pick the CPU (all ones: the current one); for
 * program types whose context has a data pointer, bits 32-51 ask for that many bytes of it. */
#define EBPF_MAP_FLAG_INDEX_MASK 0xffffffffULL
#define EBPF_MAP_FLAG_INDEX_SHIFT 0
#define EBPF_MAP_FLAG_CURRENT_CPU EBPF_MAP_FLAG_INDEX_MASK
#define EBPF_MAP_FLAG_CTX_LENGTH_SHIFT 32
#define EBPF_MAP_FLAG_CTX_LENGTH_MAX (0xfffffULL)
#define EBPF_MAP_FLAG_CTX_LENGTH_MASK (EBPF_MAP_FLAG_CTX_LENGTH_MAX << EBPF_MAP_FLAG_CTX_LENGTH_SHIFT)
/* The same flags under their Linux names, for programs written for both. */
#ifndef BPF_F_CURRENT_CPU
#define BPF_F_INDEX_MASK EBPF_MAP_FLAG_INDEX_MASK
#define BPF_F_CURRENT_CPU EBPF_MAP_FLAG_CURRENT_CPU
#define BPF_F_CTXLEN_MASK EBPF_MAP_FLAG_CTX_LENGTH_MASK
#endif

/* A map declared the legacy way, in section "maps": a 32-byte record of 4-byte fields. */
typedef struct _ebpf_map_definition_in_file {
    ebpf_map_type_t type;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    uint32_t inner_map_idx; /* map of maps: index of the inner template in section "maps" */
    ebpf_pin_type_t pinning;
    uint32_t id;            /* this record's template id, if any */
    uint32_t inner_id;      /* map of maps: id of the inner template */
} ebpf_map_definition_in_file_t;
_Static_assert(sizeof(ebpf_map_definition_in_file_t) == 32, "legacy map record is 32 bytes");
_Static_assert(__builtin_offsetof(ebpf_map_definition_in_file_t, pinning) == 20, "pinning at 20");
_Static_assert(__builtin_offsetof(ebpf_map_definition_in_file_t, inner_id) == 28, "inner_id at 28");

/* libbpf-style program and attach type numbers (the hooks are identified by GUID underneath). */
enum bpf_prog_type {
    BPF_PROG_TYPE_UNSPEC = 0,
    BPF_PROG_TYPE_XDP = 1,
    BPF_PROG_TYPE_BIND = 2,
    BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 3,
    BPF_PROG_TYPE_SOCK_OPS = 4,
    BPF_PROG_TYPE_NETEVENT = 5,
    BPF_PROG_TYPE_PROCESS = 6, /* ntosebpfext, section "process" */
    BPF_PROG_TYPE_SAMPLE = 999,
};
typedef enum bpf_prog_type bpf_prog_type_t;

enum bpf_attach_type {
    BPF_ATTACH_TYPE_UNSPEC = 0,
    BPF_XDP = 1,
    BPF_ATTACH_TYPE_BIND = 2,
    BPF_CGROUP_INET4_CONNECT = 3,
    BPF_CGROUP_INET6_CONNECT = 4,
    BPF_CGROUP_INET4_RECV_ACCEPT = 5,
    BPF_CGROUP_INET6_RECV_ACCEPT = 6,
    BPF_CGROUP_SOCK_OPS = 7,
    BPF_ATTACH_TYPE_SAMPLE = 8,
    BPF_ATTACH_TYPE_NETEVENT = 10,
    BPF_ATTACH_TYPE_PROCESS = 11, /* ntosebpfext */
    BPF_CGROUP_INET4_CONNECT_AUTHORIZATION = 12,
    BPF_CGROUP_INET6_CONNECT_AUTHORIZATION = 13,
    BPF_CGROUP_INET4_BIND = 14,
    BPF_CGROUP_INET6_BIND = 15,
    BPF_CGROUP_INET4_LISTEN = 16,
    BPF_CGROUP_INET6_LISTEN = 17,
    __MAX_BPF_ATTACH_TYPE,
};
typedef enum bpf_attach_type bpf_attach_type_t;

/* General helper ids (1-35). */
typedef enum {
    BPF_FUNC_map_lookup_elem = 1,
    BPF_FUNC_map_update_elem = 2,
    BPF_FUNC_map_delete_elem = 3,
    BPF_FUNC_map_lookup_and_delete_elem = 4,
    BPF_FUNC_tail_call = 5,
    BPF_FUNC_get_prandom_u32 = 6,
    BPF_FUNC_ktime_get_boot_ns = 7,
    BPF_FUNC_get_smp_processor_id = 8,
    BPF_FUNC_ktime_get_ns = 9,
    BPF_FUNC_csum_diff = 10,
    BPF_FUNC_ringbuf_output = 11,
    BPF_FUNC_trace_printk2 = 12,
    BPF_FUNC_trace_printk3 = 13,
    BPF_FUNC_trace_printk4 = 14,
    BPF_FUNC_trace_printk5 = 15,
    BPF_FUNC_map_push_elem = 16,
    BPF_FUNC_map_pop_elem = 17,
    BPF_FUNC_map_peek_elem = 18,
    BPF_FUNC_get_current_pid_tgid = 19,
    BPF_FUNC_get_current_logon_id = 20,
    BPF_FUNC_is_current_admin = 21,
    BPF_FUNC_memcpy_s = 22,
    BPF_FUNC_memcmp_s = 23,
    BPF_FUNC_memset = 24,
    BPF_FUNC_memmove_s = 25,
    BPF_FUNC_get_socket_cookie = 26,
    BPF_FUNC_strncpy_s = 27,
    BPF_FUNC_strncat_s = 28,
    BPF_FUNC_strnlen_s = 29,
    BPF_FUNC_ktime_get_boot_ms = 30,
    BPF_FUNC_ktime_get_ms = 31,
    BPF_FUNC_perf_event_output = 32,
    BPF_FUNC_get_current_process_start_key = 33,
    BPF_FUNC_get_current_thread_create_time = 34,
    BPF_FUNC_redirect_map = 35,
} ebpf_helper_id_t;

