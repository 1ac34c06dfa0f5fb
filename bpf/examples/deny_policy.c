// ntoslab example: a process-creation deny policy.
//
// Denies (with STATUS_ACCESS_DENIED) a process whose image file name is on a block list, or
// whose command line carries an encoded PowerShell command; counts denials per rule and
// explains each one with bpf_printk.

#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"

#define STATUS_ACCESS_DENIED ((int)0xC0000022)
#define IMAGE_BYTES 400  // UTF-16LE bytes of image path we look at (200 characters)
#define MAX_CMD_CHARS 256

enum rule { RULE_BLOCKED_IMAGE = 1, RULE_ENCODED_COMMAND = 2 };

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, uint32_t);    // rule id
    __type(value, uint64_t);  // times it denied
    __uint(max_entries, 16);
} denials SEC(".maps");

// Lower-case ASCII of one UTF-16 code unit (other characters unchanged).
static __always_inline uint16_t lower(uint16_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Does the UTF-16LE string of `len` bytes end with "\<name>" (ASCII, case-insensitive)?
static __always_inline int ends_with_file(const uint8_t* s, int len, const char* name, int n)
{
    if (len < 2 * (n + 1))
        return 0;
    const uint8_t* tail = s + len - 2 * n;
    if (*(const uint16_t*)(tail - 2) != '\\')
        return 0;
    for (int i = 0; i < n; i++) {
        if (lower(*(const uint16_t*)(tail + 2 * i)) != (uint16_t)name[i])
            return 0;
    }
    return 1;
}

static __always_inline void count(uint32_t rule)
{
    uint64_t one = 1;
    uint64_t* n = bpf_map_lookup_elem(&denials, &rule);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        bpf_map_update_elem(&denials, &rule, &one, BPF_NOEXIST);
}

// Is "-enc" (case-insensitive) followed by a space or "odedcommand" in the command line?
static __always_inline int has_encoded_command(process_md_t* ctx)
{
    const uint8_t* p = ctx->command_start;
    const uint8_t* end = ctx->command_end;
    for (int i = 0; i < MAX_CMD_CHARS; i++) {
        const uint8_t* c = p + 2 * i;
        if (c + 10 > end)
            return 0;
        if (*(const uint16_t*)c == '-' && lower(*(const uint16_t*)(c + 2)) == 'e' &&
            lower(*(const uint16_t*)(c + 4)) == 'n' && lower(*(const uint16_t*)(c + 6)) == 'c' &&
            (*(const uint16_t*)(c + 8) == ' ' || lower(*(const uint16_t*)(c + 8)) == 'o'))
            return 1;
    }
    return 0;
}

SEC("process")
int DenyPolicy(process_md_t* ctx)
{
    if (ctx->operation != PROCESS_OPERATION_CREATE)
        return 0;

    uint8_t image[IMAGE_BYTES];
    int len = bpf_process_get_image_path(ctx, image, sizeof(image));
    if (len > 0 && len <= IMAGE_BYTES &&
        (ends_with_file(image, len, "mimikatz.exe", 12) || ends_with_file(image, len, "psexesvc.exe", 12))) {
        count(RULE_BLOCKED_IMAGE);
        bpf_printk("deny pid %u: blocked image", (uint32_t)ctx->process_id);
        return STATUS_ACCESS_DENIED;
    }
    if (has_encoded_command(ctx)) {
        count(RULE_ENCODED_COMMAND);
        bpf_printk("deny pid %u: encoded command line", (uint32_t)ctx->process_id);
        return STATUS_ACCESS_DENIED;
    }
    return 0;
}
