/* A stand-in for eBPF for Windows' EbpfApi.dll at its C ABI, for testing the ctypes connector
 * (ntoslab/connectors/libbpf, ntoslab/connectors/windows) on Linux.
 *
 * Every function the connector declares is here with its C prototype (upstream libbpf.h/bpf.h
 * as eBPF for Windows includes them, and EFW include/ebpf_api.h). Each one forwards to a
 * callback Python registers with fake_register(name, fn) (tests/fakes/ebpfapi.py implements
 * them on ntoslab's emulator). What is C-specific stays in C, so the connector's own structs and
 * conversions meet an independent reading: the option structs are read with this compiler's
 * layout of the upstream definitions, attach-type GUIDs are printed from the Windows GUID struct,
 * errno is set for NULL-returning calls, ring-buffer samples are delivered through a real call of
 * the connector's ring_buffer_sample_fn and libbpf's print callback gets a real va_list.
 *
 * The exported set is chosen at link time with a version script (the test fixture writes it):
 * by default the names eBPF for Windows' ebpfapi/Source.def exports, so calls EbpfApi.dll lacks
 * are missing here too.
 *
 * errno values are the MSVC runtime's (ENOSYS 40: a call with no callback registered).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint32_t __u32;
typedef uint64_t __u64;

struct bpf_object;
struct bpf_program;
struct bpf_map;
struct bpf_link;
struct ring_buffer;

/* libbpf bpf.h */
struct bpf_test_run_opts {
    size_t sz;
    const void *data_in;
    void *data_out;
    __u32 data_size_in;
    __u32 data_size_out;
    const void *ctx_in;
    void *ctx_out;
    __u32 ctx_size_in;
    __u32 ctx_size_out;
    __u32 retval;
    int repeat;
    __u32 duration;
    __u32 flags;
    __u32 cpu;
    __u32 batch_size;
};

/* libbpf.h (1.1) */
struct bpf_object_open_opts {
    size_t sz;
    const char *object_name;
    bool relaxed_maps;
    const char *pin_root_path;
    __u32 : 32;
    const char *kconfig;
    const char *btf_custom_path;
    char *kernel_log_buf;
    size_t kernel_log_size;
    __u32 kernel_log_level;
    size_t : 0;
};

struct ring_buffer_opts {
    size_t sz;
};

/* Windows' GUID (guiddef.h) */
typedef struct {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID;
typedef GUID ebpf_attach_type_t;
typedef GUID ebpf_program_type_t;
typedef int ebpf_result_t;
typedef int ebpf_execution_type_t;

typedef int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size);
typedef int (*libbpf_print_fn_t)(int level, const char *fmt, va_list ap);

#define FAKE_ENOSYS 40
#define FAKE_EINVAL 22
#define EBPF_INVALID_ARGUMENT 6
#define EBPF_OPERATION_NOT_SUPPORTED 18
#define EBPF_KEY_NOT_FOUND 19

/* {22ea7b37-1043-4d0d-b60d-cafa1c7b638e}, {66e20687-9805-4458-a0db-38e220d31685} */
static const GUID PROCESS_PROGRAM_TYPE = {0x22ea7b37, 0x1043, 0x4d0d,
                                          {0xb6, 0x0d, 0xca, 0xfa, 0x1c, 0x7b, 0x63, 0x8e}};
static const GUID PROCESS_ATTACH_TYPE = {0x66e20687, 0x9805, 0x4458,
                                         {0xa0, 0xdb, 0x38, 0xe2, 0x20, 0xd3, 0x16, 0x85}};

/* -- the fake's own exports (fake_*) --------------------------------------------------------- */

/* what the next NULL-returning call leaves in errno (set by a callback through
 * fake_set_errno; applied as the call returns, after Python is done touching errno) */
static __thread int pending_errno;

void fake_set_errno(int err) { pending_errno = err; }

int fake_call_sample(void *fn, void *ctx, void *data, size_t size)
{
    return ((ring_buffer_sample_fn)fn)(ctx, data, size);
}

static libbpf_print_fn_t print_fn;

static void emit(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (print_fn)
        print_fn(level, fmt, ap);
    va_end(ap);
}

/* a libbpf log line: `text` is the format (no arguments), so it must not hold '%' */
int fake_print(int level, const char *text)
{
    if (!print_fn)
        return -1;
    emit(level, text);
    return 0;
}

/* -- forwarding ------------------------------------------------------------------------------ */

/* a pointer-returning call: NULL sets errno */
#define PTR_CALL(ret, name, params, args)                                                     \
    typedef ret(*name##_fn) params;                                                           \
    static name##_fn name##_cb;                                                               \
    ret name params                                                                           \
    {                                                                                         \
        pending_errno = 0;                                                                    \
        if (!name##_cb) {                                                                     \
            errno = FAKE_ENOSYS;                                                              \
            return NULL;                                                                      \
        }                                                                                     \
        ret result = name##_cb args;                                                          \
        if (!result)                                                                          \
            errno = pending_errno;                                                            \
        return result;                                                                        \
    }

/* a value-returning call (0 / -errno, an ebpf_result_t, a size ...) */
#define VAL_CALL(ret, name, params, args, missing)                                            \
    typedef ret(*name##_fn) params;                                                           \
    static name##_fn name##_cb;                                                               \
    ret name params                                                                           \
    {                                                                                         \
        if (!name##_cb)                                                                       \
            return missing;                                                                   \
        return name##_cb args;                                                                \
    }

#define VOID_CALL(name, params, args)                                                         \
    typedef void(*name##_fn) params;                                                          \
    static name##_fn name##_cb;                                                               \
    void name params                                                                          \
    {                                                                                         \
        if (name##_cb)                                                                        \
            name##_cb args;                                                                   \
    }

PTR_CALL(struct bpf_object *, bpf_object__open, (const char *path), (path))
VAL_CALL(int, bpf_object__load, (struct bpf_object *obj), (obj), -FAKE_ENOSYS)
VOID_CALL(bpf_object__close, (struct bpf_object *obj), (obj))
PTR_CALL(const char *, bpf_object__name, (const struct bpf_object *obj), (obj))
PTR_CALL(struct bpf_program *, bpf_object__find_program_by_name,
         (const struct bpf_object *obj, const char *name), (obj, name))
PTR_CALL(struct bpf_program *, bpf_object__next_program,
         (const struct bpf_object *obj, struct bpf_program *prev), (obj, prev))
PTR_CALL(struct bpf_map *, bpf_object__find_map_by_name,
         (const struct bpf_object *obj, const char *name), (obj, name))
VAL_CALL(int, bpf_object__find_map_fd_by_name, (const struct bpf_object *obj, const char *name),
         (obj, name), -FAKE_ENOSYS)
PTR_CALL(struct bpf_map *, bpf_object__next_map,
         (const struct bpf_object *obj, const struct bpf_map *prev), (obj, prev))
VAL_CALL(int, bpf_program__fd, (const struct bpf_program *prog), (prog), -FAKE_ENOSYS)
PTR_CALL(const char *, bpf_program__name, (const struct bpf_program *prog), (prog))
PTR_CALL(const char *, bpf_program__section_name, (const struct bpf_program *prog), (prog))
VAL_CALL(int, bpf_program__type, (const struct bpf_program *prog), (prog), 0)
VAL_CALL(int, bpf_program__expected_attach_type, (const struct bpf_program *prog), (prog), 0)
VAL_CALL(int, bpf_program__get_expected_attach_type, (const struct bpf_program *prog), (prog), 0)
VAL_CALL(int, bpf_program__set_autoload, (struct bpf_program *prog, bool autoload),
         (prog, autoload), -FAKE_ENOSYS)
PTR_CALL(struct bpf_link *, bpf_program__attach, (const struct bpf_program *prog), (prog))
VAL_CALL(int, bpf_link__fd, (const struct bpf_link *link), (link), -FAKE_ENOSYS)
VAL_CALL(int, bpf_link__destroy, (struct bpf_link *link), (link), -FAKE_ENOSYS)
VAL_CALL(int, bpf_link__detach, (struct bpf_link *link), (link), -FAKE_ENOSYS)
VAL_CALL(int, bpf_link_detach, (int link_fd), (link_fd), -FAKE_ENOSYS)
VAL_CALL(int, bpf_map__fd, (const struct bpf_map *map), (map), -FAKE_ENOSYS)
PTR_CALL(const char *, bpf_map__name, (const struct bpf_map *map), (map))
VAL_CALL(int, bpf_map__type, (const struct bpf_map *map), (map), 0)
VAL_CALL(__u32, bpf_map__key_size, (const struct bpf_map *map), (map), 0)
VAL_CALL(__u32, bpf_map__value_size, (const struct bpf_map *map), (map), 0)
VAL_CALL(__u32, bpf_map__max_entries, (const struct bpf_map *map), (map), 0)
VAL_CALL(int, bpf_map__set_max_entries, (struct bpf_map *map, __u32 max_entries),
         (map, max_entries), -FAKE_ENOSYS)
VAL_CALL(int, bpf_map_lookup_elem, (int fd, const void *key, void *value), (fd, key, value),
         -FAKE_ENOSYS)
VAL_CALL(int, bpf_map_update_elem, (int fd, const void *key, const void *value, __u64 flags),
         (fd, key, value, flags), -FAKE_ENOSYS)
VAL_CALL(int, bpf_map_delete_elem, (int fd, const void *key), (fd, key), -FAKE_ENOSYS)
VAL_CALL(int, bpf_map_get_next_key, (int fd, const void *key, void *next_key),
         (fd, key, next_key), -FAKE_ENOSYS)
VAL_CALL(int, bpf_map_lookup_and_delete_elem, (int fd, const void *key, void *value),
         (fd, key, value), -FAKE_ENOSYS)
VAL_CALL(int, ring_buffer__poll, (struct ring_buffer *rb, int timeout_ms), (rb, timeout_ms),
         -FAKE_ENOSYS)
VAL_CALL(int, ring_buffer__consume, (struct ring_buffer *rb), (rb), -FAKE_ENOSYS)
VOID_CALL(ring_buffer__free, (struct ring_buffer *rb), (rb))
VAL_CALL(int, ring_buffer__epoll_fd, (const struct ring_buffer *rb), (rb), -FAKE_ENOSYS)
VAL_CALL(int, libbpf_num_possible_cpus, (void), (), -FAKE_ENOSYS)
VAL_CALL(int, libbpf_strerror, (int err, char *buf, size_t size), (err, buf, size), -FAKE_ENOSYS)
PTR_CALL(const char *, libbpf_version_string, (void), ())
VAL_CALL(__u32, libbpf_major_version, (void), (), 0)
VAL_CALL(__u32, libbpf_minor_version, (void), (), 0)
VAL_CALL(ebpf_result_t, ebpf_object_set_execution_type,
         (struct bpf_object *obj, ebpf_execution_type_t type), (obj, type),
         EBPF_OPERATION_NOT_SUPPORTED)
VAL_CALL(ebpf_execution_type_t, ebpf_object_get_execution_type, (const struct bpf_object *obj),
         (obj), 0)

/* -- calls whose arguments C takes apart -------------------------------------------------- */

/* libbpf's OPTS_GET: a field counts only when the caller's struct (sz bytes) reaches it */
#define OPT(opts, field)                                                                      \
    ((opts) && (opts)->sz >= offsetof(struct bpf_object_open_opts, field) +                   \
                                 sizeof((opts)->field) ? (opts)->field : NULL)

static bool open_opts_valid(const struct bpf_object_open_opts *opts)
{
    return !opts || opts->sz >= sizeof(size_t);
}

typedef struct bpf_object *(*bpf_object__open_file_fn)(const char *path, const char *object_name,
                                                       const char *pin_root_path);
static bpf_object__open_file_fn bpf_object__open_file_cb;

struct bpf_object *bpf_object__open_file(const char *path, const struct bpf_object_open_opts *opts)
{
    pending_errno = 0;
    if (!open_opts_valid(opts)) {
        errno = FAKE_EINVAL;
        return NULL;
    }
    if (!bpf_object__open_file_cb) {
        errno = FAKE_ENOSYS;
        return NULL;
    }
    struct bpf_object *obj = bpf_object__open_file_cb(path, OPT(opts, object_name),
                                                      OPT(opts, pin_root_path));
    if (!obj)
        errno = pending_errno;
    return obj;
}

typedef struct bpf_object *(*bpf_object__open_mem_fn)(const void *buf, size_t size,
                                                      const char *object_name);
static bpf_object__open_mem_fn bpf_object__open_mem_cb;

struct bpf_object *bpf_object__open_mem(const void *buf, size_t size,
                                        const struct bpf_object_open_opts *opts)
{
    pending_errno = 0;
    if (!open_opts_valid(opts) || !buf || !size) {
        errno = FAKE_EINVAL;
        return NULL;
    }
    if (!bpf_object__open_mem_cb) {
        errno = FAKE_ENOSYS;
        return NULL;
    }
    struct bpf_object *obj = bpf_object__open_mem_cb(buf, size, OPT(opts, object_name));
    if (!obj)
        errno = pending_errno;
    return obj;
}

/* EFW libs/api/libbpf_program.cpp: the opts become ebpf_test_run_options_t; only on success
 * are data_size_out, ctx_size_out, retval and duration written back */
typedef int (*bpf_prog_test_run_opts_fn)(int fd, const void *ctx_in, __u32 ctx_size_in,
                                         void *ctx_out, __u32 *ctx_size_out, const void *data_in,
                                         __u32 data_size_in, void *data_out,
                                         __u32 *data_size_out, int repeat, __u32 flags, __u32 cpu,
                                         __u32 *retval, __u32 *duration);
static bpf_prog_test_run_opts_fn bpf_prog_test_run_opts_cb;

int bpf_prog_test_run_opts(int prog_fd, struct bpf_test_run_opts *opts)
{
    if (!bpf_prog_test_run_opts_cb)
        return -FAKE_ENOSYS;
    if (!opts)
        return -FAKE_EINVAL;
    __u32 ctx_size_out = opts->ctx_size_out, data_size_out = opts->data_size_out;
    __u32 retval = 0, duration = 0;
    int ret = bpf_prog_test_run_opts_cb(prog_fd, opts->ctx_in, opts->ctx_size_in, opts->ctx_out,
                                        &ctx_size_out, opts->data_in, opts->data_size_in,
                                        opts->data_out, &data_size_out, opts->repeat, opts->flags,
                                        opts->cpu, &retval, &duration);
    if (ret < 0)
        return ret;
    opts->data_size_out = data_size_out;
    opts->ctx_size_out = ctx_size_out;
    opts->retval = retval;
    opts->duration = duration;
    return 0;
}

typedef struct ring_buffer *(*ring_buffer__new_fn)(int map_fd, void *sample_fn, void *ctx);
static ring_buffer__new_fn ring_buffer__new_cb;

struct ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn sample_cb, void *ctx,
                                     const struct ring_buffer_opts *opts)
{
    pending_errno = 0;
    if (opts && opts->sz < sizeof(size_t)) {
        errno = FAKE_EINVAL;
        return NULL;
    }
    if (!ring_buffer__new_cb) {
        errno = FAKE_ENOSYS;
        return NULL;
    }
    struct ring_buffer *rb = ring_buffer__new_cb(map_fd, (void *)sample_cb, ctx);
    if (!rb)
        errno = pending_errno;
    return rb;
}

typedef int (*ring_buffer__add_fn)(struct ring_buffer *rb, int map_fd, void *sample_fn,
                                   void *ctx);
static ring_buffer__add_fn ring_buffer__add_cb;

int ring_buffer__add(struct ring_buffer *rb, int map_fd, ring_buffer_sample_fn sample_cb,
                     void *ctx)
{
    if (!ring_buffer__add_cb)
        return -FAKE_ENOSYS;
    return ring_buffer__add_cb(rb, map_fd, (void *)sample_cb, ctx);
}

/* libbpf_set_print lives in C: the previous callback comes back, as in libbpf */
libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn)
{
    libbpf_print_fn_t old = print_fn;
    print_fn = fn;
    return old;
}

/* the GUID as Windows prints it, from the GUID struct: what the connector's 16 bytes mean */
static void guid_text(const GUID *g, char out[37])
{
    snprintf(out, 37, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", g->Data1, g->Data2,
             g->Data3, g->Data4[0], g->Data4[1], g->Data4[2], g->Data4[3], g->Data4[4],
             g->Data4[5], g->Data4[6], g->Data4[7]);
}

typedef ebpf_result_t (*ebpf_program_attach_fn)(const struct bpf_program *prog,
                                                const char *attach_type, void *params,
                                                size_t params_size, struct bpf_link **link);
static ebpf_program_attach_fn ebpf_program_attach_cb;

ebpf_result_t ebpf_program_attach(const struct bpf_program *prog,
                                  const ebpf_attach_type_t *attach_type, void *attach_params,
                                  size_t attach_params_size, struct bpf_link **link)
{
    char text[37];
    if (!ebpf_program_attach_cb)
        return EBPF_OPERATION_NOT_SUPPORTED;
    if (attach_type)
        guid_text(attach_type, text);
    return ebpf_program_attach_cb(prog, attach_type ? text : NULL, attach_params,
                                  attach_params_size, link);
}

typedef ebpf_result_t (*ebpf_get_program_type_by_name_fn)(const char *name);
static ebpf_get_program_type_by_name_fn ebpf_get_program_type_by_name_cb;

/* the store answers for the names it holds; ntosebpfext's export_program_info writes "process" */
ebpf_result_t ebpf_get_program_type_by_name(const char *name, ebpf_program_type_t *program_type,
                                            ebpf_attach_type_t *expected_attach_type)
{
    if (!ebpf_get_program_type_by_name_cb)
        return EBPF_OPERATION_NOT_SUPPORTED;
    if (!name || !program_type || !expected_attach_type)
        return EBPF_INVALID_ARGUMENT;
    ebpf_result_t result = ebpf_get_program_type_by_name_cb(name);
    if (result)
        return result;
    if (strcmp(name, "process") != 0)
        return EBPF_KEY_NOT_FOUND;
    *program_type = PROCESS_PROGRAM_TYPE;
    *expected_attach_type = PROCESS_ATTACH_TYPE;
    return 0;
}

/* -- the callback table ---------------------------------------------------------------------
 * name, C signature (return:arguments; p pointer, s char*, f function pointer, i int/enum,
 * I __u32, Q __u64, z size_t, b bool, v void), the slot its callback goes in */
#define ENTRY(name, sig) {#name, sig, (void **)&name##_cb}
static const struct {
    const char *name;
    const char *signature;
    void **slot;
} table[] = {
    ENTRY(bpf_object__open, "p:s"),
    ENTRY(bpf_object__open_file, "p:sp"),
    ENTRY(bpf_object__open_mem, "p:pzp"),
    ENTRY(bpf_object__load, "i:p"),
    ENTRY(bpf_object__close, "v:p"),
    ENTRY(bpf_object__name, "s:p"),
    ENTRY(bpf_object__find_program_by_name, "p:ps"),
    ENTRY(bpf_object__next_program, "p:pp"),
    ENTRY(bpf_object__find_map_by_name, "p:ps"),
    ENTRY(bpf_object__find_map_fd_by_name, "i:ps"),
    ENTRY(bpf_object__next_map, "p:pp"),
    ENTRY(bpf_program__fd, "i:p"),
    ENTRY(bpf_program__name, "s:p"),
    ENTRY(bpf_program__section_name, "s:p"),
    ENTRY(bpf_program__type, "i:p"),
    ENTRY(bpf_program__expected_attach_type, "i:p"),
    ENTRY(bpf_program__get_expected_attach_type, "i:p"),
    ENTRY(bpf_program__set_autoload, "i:pb"),
    ENTRY(bpf_program__attach, "p:p"),
    ENTRY(bpf_link__fd, "i:p"),
    ENTRY(bpf_link__destroy, "i:p"),
    ENTRY(bpf_link__detach, "i:p"),
    ENTRY(bpf_link_detach, "i:i"),
    ENTRY(bpf_map__fd, "i:p"),
    ENTRY(bpf_map__name, "s:p"),
    ENTRY(bpf_map__type, "i:p"),
    ENTRY(bpf_map__key_size, "I:p"),
    ENTRY(bpf_map__value_size, "I:p"),
    ENTRY(bpf_map__max_entries, "I:p"),
    ENTRY(bpf_map__set_max_entries, "i:pI"),
    ENTRY(bpf_map_lookup_elem, "i:ipp"),
    ENTRY(bpf_map_update_elem, "i:ippQ"),
    ENTRY(bpf_map_delete_elem, "i:ip"),
    ENTRY(bpf_map_get_next_key, "i:ipp"),
    ENTRY(bpf_map_lookup_and_delete_elem, "i:ipp"),
    ENTRY(bpf_prog_test_run_opts, "i:ip"),
    ENTRY(ring_buffer__new, "p:ifpp"),
    ENTRY(ring_buffer__add, "i:pifp"),
    ENTRY(ring_buffer__poll, "i:pi"),
    ENTRY(ring_buffer__consume, "i:p"),
    ENTRY(ring_buffer__free, "v:p"),
    ENTRY(ring_buffer__epoll_fd, "i:p"),
    ENTRY(libbpf_num_possible_cpus, "i:"),
    ENTRY(libbpf_strerror, "i:isz"),
    {"libbpf_set_print", "p:f", NULL},
    ENTRY(libbpf_version_string, "s:"),
    ENTRY(libbpf_major_version, "I:"),
    ENTRY(libbpf_minor_version, "I:"),
    ENTRY(ebpf_object_set_execution_type, "i:pi"),
    ENTRY(ebpf_object_get_execution_type, "i:p"),
    ENTRY(ebpf_program_attach, "i:pppzp"),
    ENTRY(ebpf_get_program_type_by_name, "i:spp"),
};
#define ENTRIES (sizeof(table) / sizeof(table[0]))

/* 0, or -1 for a name this fake does not implement (or one with no callback: set_print) */
int fake_register(const char *name, void *fn)
{
    for (size_t i = 0; i < ENTRIES; i++) {
        if (strcmp(table[i].name, name) == 0) {
            if (!table[i].slot)
                return -1;
            *table[i].slot = fn;
            return 0;
        }
    }
    return -1;
}

size_t fake_count(void) { return ENTRIES; }
const char *fake_name(size_t i) { return i < ENTRIES ? table[i].name : NULL; }
const char *fake_signature(size_t i) { return i < ENTRIES ? table[i].signature : NULL; }

/* the upstream structs as this compiler lays them out: sizeof (field NULL) or an offset; -1
 * for an unknown struct or field */
#define FIELD(s, f) {#s, #f, offsetof(struct s, f)}
static const struct {
    const char *type;
    const char *field;
    size_t offset;
} fields[] = {
    FIELD(bpf_test_run_opts, sz),         FIELD(bpf_test_run_opts, data_in),
    FIELD(bpf_test_run_opts, data_out),   FIELD(bpf_test_run_opts, data_size_in),
    FIELD(bpf_test_run_opts, data_size_out), FIELD(bpf_test_run_opts, ctx_in),
    FIELD(bpf_test_run_opts, ctx_out),    FIELD(bpf_test_run_opts, ctx_size_in),
    FIELD(bpf_test_run_opts, ctx_size_out), FIELD(bpf_test_run_opts, retval),
    FIELD(bpf_test_run_opts, repeat),     FIELD(bpf_test_run_opts, duration),
    FIELD(bpf_test_run_opts, flags),      FIELD(bpf_test_run_opts, cpu),
    FIELD(bpf_test_run_opts, batch_size),
    FIELD(bpf_object_open_opts, sz),      FIELD(bpf_object_open_opts, object_name),
    FIELD(bpf_object_open_opts, relaxed_maps), FIELD(bpf_object_open_opts, pin_root_path),
    FIELD(bpf_object_open_opts, kconfig), FIELD(bpf_object_open_opts, btf_custom_path),
    FIELD(bpf_object_open_opts, kernel_log_buf), FIELD(bpf_object_open_opts, kernel_log_size),
    FIELD(bpf_object_open_opts, kernel_log_level),
    FIELD(ring_buffer_opts, sz),
};

long fake_layout(const char *type, const char *field)
{
    if (!field) {
        if (strcmp(type, "bpf_test_run_opts") == 0)
            return sizeof(struct bpf_test_run_opts);
        if (strcmp(type, "bpf_object_open_opts") == 0)
            return sizeof(struct bpf_object_open_opts);
        if (strcmp(type, "ring_buffer_opts") == 0)
            return sizeof(struct ring_buffer_opts);
        return -1;
    }
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strcmp(fields[i].type, type) == 0 && strcmp(fields[i].field, field) == 0)
            return (long)fields[i].offset;
    return -1;
}
