/* ntoslab: the header eBPF-for-Windows programs include (our own, written from the published
 * facts): section and BTF map macros, map types, legacy map records and the general helpers. */
#pragma once
#include "bpf_helpers_platform.h"
#include "ebpf_structs.h"

/* Put a function or variable in an ELF section: SEC("process"), SEC(".maps"), SEC("maps"). */
#define SEC(NAME) __attribute__((section(NAME), used))

/* BTF-defined maps (section ".maps"): each member's type, not its value, carries the fact:
 *   __uint(max_entries, 8)  -> int (*max_entries)[8]
 *   __type(key, uint32_t)   -> uint32_t *key
 *   __array(values, T)      -> T *values[]   (inner map template or program type) */
#define __uint(field_name, field_value) int(*field_name)[field_value]
#define __type(field_name, field_type) typeof(field_type)* field_name
#define __array(field_name, map_template) typeof(map_template)* field_name[]

/* Legacy map records (section "maps"). */
#define bpf_map_def _ebpf_map_definition_in_file

/* Network hook contexts (xdp_md_t, bind_md_t, ...) are not part of ntoslab; when eBPF for
 * Windows' own ebpf_nethooks.h is on the include path, it is included as Windows does. */
#if defined(__has_include)
#if __has_include("ebpf_nethooks.h")
#include "ebpf_nethooks.h"
#endif
#endif

#ifndef NULL
#define NULL ((void*)0)
#endif

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#ifndef EBPF_HELPER
#define EBPF_HELPER(ret, name, args) typedef ret(*const name##_t) args
#endif
#include "bpf_helper_defs.h"

/* Windows programs may test for the platform. */
#ifndef _WIN32
#define _WIN32
#endif
