/* ntoslab: prototypes of the general helpers, called by id (`call imm`) as on eBPF for Windows.
 * Our own header; names, ids and argument lists are eBPF for Windows' published ones. */
#pragma once
#include "ebpf_structs.h"

#ifndef EBPF_HELPER
#define EBPF_HELPER(ret, name, args) typedef ret(*const name##_t) args
#endif
#define NTOSLAB_HELPER(ret, name, id, args) \
    EBPF_HELPER(ret, name, args);

NTOSLAB_HELPER(void*, bpf_map_lookup_elem, 1, (void* map, const void* key))
#define bpf_map_lookup_elem ((bpf_map_lookup_elem_t)BPF_FUNC_map_lookup_elem)
NTOSLAB_HELPER(int64_t, bpf_map_update_elem, 2, (void* map, const void* key, const void* value, uint64_t flags))
#define bpf_map_update_elem ((bpf_map_update_elem_t)BPF_FUNC_map_update_elem)
NTOSLAB_HELPER(int64_t, bpf_map_delete_elem, 3, (void* map, const void* key))
#define bpf_map_delete_elem ((bpf_map_delete_elem_t)BPF_FUNC_map_delete_elem)
NTOSLAB_HELPER(void*, bpf_map_lookup_and_delete_elem, 4, (void* map, const void* key))
#define bpf_map_lookup_and_delete_elem ((bpf_map_lookup_and_delete_elem_t)BPF_FUNC_map_lookup_and_delete_elem)
NTOSLAB_HELPER(int64_t, bpf_tail_call, 5, (const void* ctx, const void* prog_array_map, uint32_t index))
#define bpf_tail_call ((bpf_tail_call_t)BPF_FUNC_tail_call)
NTOSLAB_HELPER(uint32_t, bpf_get_prandom_u32, 6, ())
#define bpf_get_prandom_u32 ((bpf_get_prandom_u32_t)BPF_FUNC_get_prandom_u32)
NTOSLAB_HELPER(uint64_t, bpf_ktime_get_boot_ns, 7, ())
#define bpf_ktime_get_boot_ns ((bpf_ktime_get_boot_ns_t)BPF_FUNC_ktime_get_boot_ns)
NTOSLAB_HELPER(uint64_t, bpf_get_smp_processor_id, 8, ())
#define bpf_get_smp_processor_id ((bpf_get_smp_processor_id_t)BPF_FUNC_get_smp_processor_id)
NTOSLAB_HELPER(uint64_t, bpf_ktime_get_ns, 9, ())
#define bpf_ktime_get_ns ((bpf_ktime_get_ns_t)BPF_FUNC_ktime_get_ns)
NTOSLAB_HELPER(int, bpf_csum_diff, 10, (const void* from, int from_size, const void* to, int to_size, int seed))
#define bpf_csum_diff ((bpf_csum_diff_t)BPF_FUNC_csum_diff)
NTOSLAB_HELPER(int, bpf_ringbuf_output, 11, (void* ring_buffer, const void* data, uint64_t size, uint64_t flags))
#define bpf_ringbuf_output ((bpf_ringbuf_output_t)BPF_FUNC_ringbuf_output)
NTOSLAB_HELPER(long, bpf_trace_printk2, 12, (const char* fmt, uint32_t fmt_size))
#define bpf_trace_printk2 ((bpf_trace_printk2_t)BPF_FUNC_trace_printk2)
NTOSLAB_HELPER(long, bpf_trace_printk3, 13, (const char* fmt, uint32_t fmt_size, uint64_t arg3))
#define bpf_trace_printk3 ((bpf_trace_printk3_t)BPF_FUNC_trace_printk3)
NTOSLAB_HELPER(long, bpf_trace_printk4, 14, (const char* fmt, uint32_t fmt_size, uint64_t arg3, uint64_t arg4))
#define bpf_trace_printk4 ((bpf_trace_printk4_t)BPF_FUNC_trace_printk4)
NTOSLAB_HELPER(long, bpf_trace_printk5, 15, (const char* fmt, uint32_t fmt_size, uint64_t arg3, uint64_t arg4, uint64_t arg5))
#define bpf_trace_printk5 ((bpf_trace_printk5_t)BPF_FUNC_trace_printk5)
NTOSLAB_HELPER(int64_t, bpf_map_push_elem, 16, (void* map, const void* value, uint64_t flags))
#define bpf_map_push_elem ((bpf_map_push_elem_t)BPF_FUNC_map_push_elem)
NTOSLAB_HELPER(int64_t, bpf_map_pop_elem, 17, (void* map, void* value))
#define bpf_map_pop_elem ((bpf_map_pop_elem_t)BPF_FUNC_map_pop_elem)
NTOSLAB_HELPER(int64_t, bpf_map_peek_elem, 18, (void* map, void* value))
#define bpf_map_peek_elem ((bpf_map_peek_elem_t)BPF_FUNC_map_peek_elem)
NTOSLAB_HELPER(uint64_t, bpf_get_current_pid_tgid, 19, ())
#define bpf_get_current_pid_tgid ((bpf_get_current_pid_tgid_t)BPF_FUNC_get_current_pid_tgid)
NTOSLAB_HELPER(uint64_t, bpf_get_current_logon_id, 20, (const void* ctx))
#define bpf_get_current_logon_id ((bpf_get_current_logon_id_t)BPF_FUNC_get_current_logon_id)
NTOSLAB_HELPER(int32_t, bpf_is_current_admin, 21, (const void* ctx))
#define bpf_is_current_admin ((bpf_is_current_admin_t)BPF_FUNC_is_current_admin)
NTOSLAB_HELPER(long, bpf_memcpy_s, 22, (void* destination, size_t destination_size, const void* source, size_t source_size))
#define bpf_memcpy_s ((bpf_memcpy_s_t)BPF_FUNC_memcpy_s)
NTOSLAB_HELPER(int, bpf_memcmp_s, 23, (const void* memory1, size_t memory1_size, const void* memory2, size_t memory2_size))
#define bpf_memcmp_s ((bpf_memcmp_s_t)BPF_FUNC_memcmp_s)
NTOSLAB_HELPER(long, bpf_memset, 24, (void* memory, size_t size, int value))
#define bpf_memset ((bpf_memset_t)BPF_FUNC_memset)
NTOSLAB_HELPER(long, bpf_memmove_s, 25, (void* destination, size_t destination_size, const void* source, size_t source_size))
#define bpf_memmove_s ((bpf_memmove_s_t)BPF_FUNC_memmove_s)
NTOSLAB_HELPER(int64_t, bpf_get_socket_cookie, 26, (const void* ctx))
#define bpf_get_socket_cookie ((bpf_get_socket_cookie_t)BPF_FUNC_get_socket_cookie)
NTOSLAB_HELPER(int, bpf_strncpy_s, 27, (char* dest, size_t dest_size, const char* src, size_t count))
#define bpf_strncpy_s ((bpf_strncpy_s_t)BPF_FUNC_strncpy_s)
NTOSLAB_HELPER(int, bpf_strncat_s, 28, (char* dest, size_t dest_size, const char* src, size_t count))
#define bpf_strncat_s ((bpf_strncat_s_t)BPF_FUNC_strncat_s)
NTOSLAB_HELPER(size_t, bpf_strnlen_s, 29, (const char* str, size_t str_size))
#define bpf_strnlen_s ((bpf_strnlen_s_t)BPF_FUNC_strnlen_s)
NTOSLAB_HELPER(uint64_t, bpf_ktime_get_boot_ms, 30, ())
#define bpf_ktime_get_boot_ms ((bpf_ktime_get_boot_ms_t)BPF_FUNC_ktime_get_boot_ms)
NTOSLAB_HELPER(uint64_t, bpf_ktime_get_ms, 31, ())
#define bpf_ktime_get_ms ((bpf_ktime_get_ms_t)BPF_FUNC_ktime_get_ms)
NTOSLAB_HELPER(int, bpf_perf_event_output, 32, (const void* ctx, void* perf_event_array, uint64_t flags, const void* data, uint64_t size))
#define bpf_perf_event_output ((bpf_perf_event_output_t)BPF_FUNC_perf_event_output)
NTOSLAB_HELPER(uint64_t, bpf_get_current_process_start_key, 33, ())
#define bpf_get_current_process_start_key ((bpf_get_current_process_start_key_t)BPF_FUNC_get_current_process_start_key)
NTOSLAB_HELPER(int64_t, bpf_get_current_thread_create_time, 34, ())
#define bpf_get_current_thread_create_time ((bpf_get_current_thread_create_time_t)BPF_FUNC_get_current_thread_create_time)
NTOSLAB_HELPER(intptr_t, bpf_redirect_map, 35, (void* map, uint64_t key, uint64_t flags))
#define bpf_redirect_map ((bpf_redirect_map_t)BPF_FUNC_redirect_map)

/* bpf_trace_printk(fmt, size, ...) picks trace_printk2..5 by the number of extra arguments;
 * bpf_printk(fmt, ...) measures the format string itself. */
#define NTOSLAB_NTH5(_1, _2, _3, _4, _5, N, ...) N
#define NTOSLAB_COUNT(...) NTOSLAB_NTH5(__VA_ARGS__, 5, 4, 3, 2, 1, 0)
#define NTOSLAB_CAT(a, b) a##b
#define NTOSLAB_SELECT(prefix, n) NTOSLAB_CAT(prefix, n)
#define bpf_trace_printk(fmt, size, ...) \
    ({ NTOSLAB_SELECT(bpf_trace_printk, NTOSLAB_COUNT(fmt, size, ##__VA_ARGS__))(fmt, size, ##__VA_ARGS__); })
#define bpf_printk(fmt, ...)                                        \
    ({                                                              \
        char ____ntoslab_fmt[] = fmt;                               \
        bpf_trace_printk(____ntoslab_fmt, sizeof(____ntoslab_fmt), ##__VA_ARGS__); \
    })

/* The C library names, mapped onto the size-checked helpers as eBPF for Windows maps them. */
#define memcpy(dest, src, dest_size) bpf_memcpy_s(dest, dest_size, src, dest_size)
#define memcmp(mem1, mem2, mem1_size) bpf_memcmp_s(mem1, mem1_size, mem2, mem1_size)
#define memset(mem, value, mem_size) bpf_memset(mem, mem_size, value)
#define memmove(dest, src, dest_size) bpf_memmove_s(dest, dest_size, src, dest_size)
#define memcpy_s bpf_memcpy_s
#define memmove_s bpf_memmove_s
