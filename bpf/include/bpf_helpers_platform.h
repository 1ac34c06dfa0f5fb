/* ntoslab: platform basics for eBPF-for-Windows style programs (our own header).
 * Self-contained: no system headers, so it works with any clang -target bpf. */
#pragma once

#ifndef NTOSLAB_BASIC_TYPES
#define NTOSLAB_BASIC_TYPES
/* The same types <stdint.h>/<stddef.h> give on an LP64 target; identical typedefs may repeat. */
typedef __INT8_TYPE__ int8_t;
typedef __INT16_TYPE__ int16_t;
typedef __INT32_TYPE__ int32_t;
typedef __INT64_TYPE__ int64_t;
typedef __UINT8_TYPE__ uint8_t;
typedef __UINT16_TYPE__ uint16_t;
typedef __UINT32_TYPE__ uint32_t;
typedef __UINT64_TYPE__ uint64_t;
typedef __INTPTR_TYPE__ intptr_t;
typedef __UINTPTR_TYPE__ uintptr_t;
typedef __SIZE_TYPE__ size_t;
#ifndef __cplusplus
#ifndef bool
#define bool _Bool
#define true 1
#define false 0
#endif
#endif
#endif

/* eBPF for Windows' headers put this one-byte marker section in every object they build. */
const bool __ebpf_for_windows_tag __attribute__((section(".ebpf_for_windows"), used)) = true;

/* Programs pass pointers to legacy map records where Linux passes struct bpf_map. */
#define bpf_map _ebpf_map_definition_in_file

typedef int32_t __s32;
typedef int64_t __s64;
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
typedef uint16_t __be16;
typedef uint32_t __be32;
typedef uint32_t __wsum;
