/* ntoslab: the few eBPF-for-Windows platform names that BPF programs and the other headers
 * use (our own header): GUID-typed program/attach types and the helper id split. */
#pragma once
#include "bpf_helpers_platform.h"

#define EBPF_OFFSET_OF(s, m) __builtin_offsetof(s, m)
#define EBPF_FIELD_SIZE(s, m) (sizeof(((s*)0)->m))
#define EBPF_SIZE_INCLUDING_FIELD(s, m) (EBPF_OFFSET_OF(s, m) + EBPF_FIELD_SIZE(s, m))

#ifndef NTOSLAB_GUID
#define NTOSLAB_GUID
typedef uint8_t GUID[16]; /* 16 raw bytes as Windows stores them (Data1..3 little-endian) */
#endif
typedef GUID ebpf_program_type_t;
typedef GUID ebpf_attach_type_t;

/* Helper ids up to this value are general helpers (ids 1-35 in use); a program type's own
 * helpers are numbered from EBPF_MAX_GENERAL_HELPER_FUNCTION + 1 (65536) upwards. */
#define EBPF_MAX_GENERAL_HELPER_FUNCTION 0xFFFF

/* Version and size header that starts eBPF-for-Windows extension data structures. */
typedef struct _ebpf_extension_header {
    uint16_t version;
    size_t size;       /* size of the structure without trailing padding */
    size_t total_size; /* size including padding */
} ebpf_extension_header_t;
