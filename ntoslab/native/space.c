/* The sandboxed address space: a table of 1 TiB windows.
 *
 * A virtual address names window (addr >> 40) - 256 of the table and an offset inside it. A
 * window holds `nslots` slots at a virtual stride of 2^shift bytes; slot k starts at host byte
 * k * pitch, and only its first `length` bytes are accessible, and only while live[k] is
 * nonzero. A plain region (a stack frame, the context, the command line) is one slot with
 * shift 40; map storage is many slots (at most 1024 per window) with a stride of the value plus
 * a 2^29-byte guard gap, so running off a value faults instead of reaching the next one. Nothing
 * is ever found by searching: an access costs one table index and four comparisons, here and in
 * the JIT's inline copy.
 */
#include "ntl.h"

#include <stdlib.h>
#include <string.h>

const uint8_t ntl_live_one[1] = {1};
const uint8_t ntl_live_zero[1] = {0};

NTL_API uint64_t ntl_window_base(uint32_t index) {
    return (NTL_FIRST_WINDOW + index) << NTL_WINDOW_SHIFT;
}

static void clear_window(ntl_window *w) {
    memset(w, 0, sizeof *w);
    w->live = ntl_live_zero;
    w->shift = NTL_WINDOW_SHIFT;
}

NTL_API ntl_space *ntl_space_new(void) {
    ntl_space *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cap = 64;
    s->table = calloc(s->cap, sizeof(ntl_window));
    if (!s->table) {
        free(s);
        return NULL;
    }
    for (uint64_t i = 0; i < s->cap; i++)
        clear_window(&s->table[i]);
    s->n = 1; /* the sentinel */
    return s;
}

NTL_API void ntl_space_free(ntl_space *s) {
    if (!s)
        return;
    free(s->table);
    free(s->free_ring);
    free(s);
}

static int grow_table(ntl_space *s, uint64_t need) {
    if (need <= s->cap)
        return 0;
    if (need > NTL_MAX_WINDOWS)
        return -1;
    uint64_t cap = s->cap;
    while (cap < need)
        cap *= 2;
    ntl_window *t = realloc(s->table, cap * sizeof(ntl_window));
    if (!t)
        return -1;
    for (uint64_t i = s->cap; i < cap; i++)
        clear_window(&t[i]);
    s->table = t;
    s->cap = cap;
    return 0;
}

static uint64_t free_count(const ntl_space *s) { return s->free_tail - s->free_head; }

NTL_API uint32_t ntl_space_reserve(ntl_space *s, uint32_t count) {
    if (count == 0)
        return 0;
    /* single windows are reused oldest first, so a stale pointer meets new data as late as
       possible; runs of windows always come from the top */
    if (count == 1 && free_count(s) > 64) {
        uint32_t w = s->free_ring[s->free_head % s->free_cap];
        s->free_head++;
        s->version++;
        return w;
    }
    if (grow_table(s, s->n + count))
        return 0;
    uint32_t first = (uint32_t)s->n;
    s->n += count;
    s->version++;
    return first;
}

NTL_API void ntl_space_set(ntl_space *s, uint32_t index, uint8_t *host, uint64_t pitch,
                           const uint8_t *live, uint32_t length, uint32_t nslots, uint32_t shift,
                           uint32_t flags, void *owner, uint64_t first_slot) {
    if (index == 0 || index >= s->n)
        return;
    ntl_window *w = &s->table[index];
    w->host = host;
    w->pitch = pitch;
    w->live = live ? live : ntl_live_one;
    w->length = length;
    w->nslots = nslots;
    w->shift = shift;
    w->flags = flags;
    w->owner = owner;
    w->first_slot = first_slot;
    s->version++;
}

NTL_API uint32_t ntl_space_map_plain(ntl_space *s, uint8_t *host, uint32_t length, uint32_t flags,
                                     void *owner) {
    uint32_t w = ntl_space_reserve(s, 1);
    if (w)
        ntl_space_set(s, w, host, 0, ntl_live_one, length, 1, NTL_WINDOW_SHIFT, flags, owner, 0);
    return w;
}

NTL_API void ntl_space_repoint(ntl_space *s, uint32_t index, uint8_t *host, uint32_t length) {
    if (index == 0 || index >= s->n)
        return;
    s->table[index].host = host;
    s->table[index].length = length;
    s->version++;
}

NTL_API void ntl_space_unmap(ntl_space *s, uint32_t index, uint32_t count) {
    for (uint32_t i = index; i < index + count && i < s->n; i++) {
        if (i == 0)
            continue;
        clear_window(&s->table[i]);
        if (free_count(s) == s->free_cap) {
            uint64_t cap = s->free_cap ? s->free_cap * 2 : 256;
            uint32_t *ring = malloc(cap * sizeof *ring);
            if (!ring)
                continue; /* the window is simply never reused */
            for (uint64_t k = 0; k < free_count(s); k++)
                ring[k] = s->free_ring[(s->free_head + k) % s->free_cap];
            s->free_tail = free_count(s);
            s->free_head = 0;
            free(s->free_ring);
            s->free_ring = ring;
            s->free_cap = cap;
        }
        s->free_ring[s->free_tail % s->free_cap] = i;
        s->free_tail++;
    }
    s->version++;
}

NTL_API uint8_t *ntl_translate(ntl_space *s, uint64_t addr, uint64_t size, int write) {
    ntl_window *w = ntl_window_of(s, addr);
    if (!w)
        return NULL;
    uint64_t off = addr & NTL_WINDOW_MASK;
    uint64_t slot = off >> w->shift;
    uint64_t inner = off & ((1ull << w->shift) - 1);
    if (slot >= w->nslots || size > w->length || inner > w->length - size || !w->live[slot])
        return NULL;
    if (write && !(w->flags & NTL_W_WRITABLE))
        return NULL;
    return w->host + slot * w->pitch + inner;
}
