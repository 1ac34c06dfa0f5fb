/* Long-lived value storage: a map's values, never moved once allocated.
 *
 * A slab hands out entries; an entry is `group` vslots (one per CPU for per-CPU maps), each
 * `elem` accessible bytes at a host pitch of `pitch` and a virtual stride of 2^shift (at least
 * 1 GiB: the value plus a guard gap of 2^29 bytes, the largest offset a verifier lets a pointer
 * carry, so an overrun of a value faults before it reaches the next value or region).
 * Storage grows by segments (each a fresh host block and a run of windows, twice the size of
 * everything before it), so the address space changes only when a map grows, never as entries
 * come and go, and host pointers and Python views into storage stay valid for the map's life.
 *
 * Lifetime, as eBPF for Windows' epochs: a deleted entry is *retired* and stays readable until
 * the end of the current program run (ntl_slab_end_epoch), then it is freed and any access to it
 * faults; freed entries are reused oldest first.
 */
#include "ntl.h"

#include <stdlib.h>
#include <string.h>

/* The stride leaves more than NTL_GUARD_GAP unmapped bytes after every value, so no pointer
   into one value reaches another (or the next region) with an offset a verifier accepts. */
static uint32_t stride_shift(uint32_t elem) {
    uint32_t shift = 30;
    while (shift < 32 && (1ull << shift) < (uint64_t)elem + NTL_GUARD_GAP + 8)
        shift++;
    return shift;
}

static int add_segment(ntl_slab *sl, uint64_t capacity) {
    if (sl->nseg == NTL_SLAB_MAX_SEGMENTS || capacity == 0)
        return -1;
    uint64_t vslots = capacity * sl->group;
    uint64_t per_window = 1ull << (NTL_WINDOW_SHIFT - sl->shift);
    uint64_t nwin = (vslots + per_window - 1) / per_window;
    if (nwin > 0xFFFFFFFFull)
        return -1;
    uint8_t *host = calloc(vslots, sl->pitch ? sl->pitch : 1);
    uint8_t *state = calloc(vslots, 1);
    if (!host || !state) {
        free(host);
        free(state);
        return -1;
    }
    uint32_t window = ntl_space_reserve(sl->space, (uint32_t)nwin);
    if (!window) {
        free(host);
        free(state);
        return -1;
    }
    ntl_segment *seg = &sl->seg[sl->nseg++];
    seg->host = host;
    seg->state = state;
    seg->first = sl->capacity;
    seg->capacity = capacity;
    seg->window = window;
    seg->nwindows = (uint32_t)nwin;
    uint32_t flags = NTL_W_MAP | (sl->writable ? NTL_W_WRITABLE : 0);
    for (uint64_t j = 0; j < nwin; j++) {
        uint64_t first = j * per_window;
        uint64_t n = vslots - first < per_window ? vslots - first : per_window;
        ntl_space_set(sl->space, (uint32_t)(window + j), host + first * sl->pitch, sl->pitch,
                      state + first, sl->elem, (uint32_t)n, sl->shift, flags, sl->owner,
                      seg->first * sl->group + first);
    }
    sl->capacity += capacity;
    return 0;
}

int ntl_slab_init(ntl_slab *sl, ntl_space *s, void *owner, uint32_t elem, uint32_t group,
                  uint32_t writable, uint64_t initial, uint64_t limit) {
    memset(sl, 0, sizeof *sl);
    sl->space = s;
    sl->owner = owner;
    sl->elem = elem;
    sl->pitch = (elem + 7u) & ~7u;
    sl->group = group ? group : 1;
    sl->shift = stride_shift(elem);
    sl->writable = writable;
    sl->limit = limit;
    if (initial > limit)
        initial = limit;
    return initial ? add_segment(sl, initial) : 0;
}

void ntl_slab_destroy(ntl_slab *sl) {
    for (uint32_t k = 0; k < sl->nseg; k++) {
        ntl_space_unmap(sl->space, sl->seg[k].window, sl->seg[k].nwindows);
        free(sl->seg[k].host);
        free(sl->seg[k].state);
    }
    free(sl->free_ring);
    free(sl->retired);
    memset(sl, 0, sizeof *sl);
}

static ntl_segment *segment_of(const ntl_slab *sl, uint64_t e) {
    for (uint32_t k = sl->nseg; k-- > 0;)
        if (e >= sl->seg[k].first)
            return (ntl_segment *)&sl->seg[k];
    return NULL;
}

NTL_API uint8_t *ntl_slab_host(const ntl_slab *sl, uint64_t e) {
    ntl_segment *seg = segment_of(sl, e);
    return seg->host + (e - seg->first) * sl->group * sl->pitch;
}

NTL_API uint64_t ntl_slab_address(const ntl_slab *sl, uint64_t e, uint32_t cpu) {
    ntl_segment *seg = segment_of(sl, e);
    uint64_t v = (e - seg->first) * sl->group + cpu;
    return ntl_window_base(seg->window) + (v << sl->shift);
}

static void set_state(ntl_slab *sl, uint64_t e, uint8_t state) {
    ntl_segment *seg = segment_of(sl, e);
    memset(seg->state + (e - seg->first) * sl->group, state, sl->group);
}

void ntl_slab_make_all_live(ntl_slab *sl, uint64_t entries) {
    for (uint64_t e = 0; e < entries && e < sl->capacity; e++)
        set_state(sl, e, NTL_SLOT_LIVE);
    if (sl->next_unused < entries)
        sl->next_unused = entries < sl->capacity ? entries : sl->capacity;
}

int64_t ntl_slab_alloc(ntl_slab *sl) {
    uint64_t e;
    if (sl->free_tail > sl->free_head && (sl->next_unused >= sl->capacity ||
                                          sl->free_tail - sl->free_head > 1024)) {
        e = sl->free_ring[sl->free_head % sl->free_cap];
        sl->free_head++;
    } else {
        if (sl->next_unused >= sl->capacity) {
            if (sl->capacity >= sl->limit)
                return -1;
            uint64_t more = sl->capacity ? sl->capacity : 16;
            if (more > sl->limit - sl->capacity)
                more = sl->limit - sl->capacity;
            if (add_segment(sl, more))
                return -1;
        }
        e = sl->next_unused++;
    }
    memset(ntl_slab_host(sl, e), 0, (size_t)sl->group * sl->pitch);
    set_state(sl, e, NTL_SLOT_LIVE);
    return (int64_t)e;
}

void ntl_slab_free_now(ntl_slab *sl, uint64_t e) {
    set_state(sl, e, NTL_SLOT_FREE);
    if (sl->free_tail - sl->free_head == sl->free_cap) {
        uint64_t cap = sl->free_cap ? sl->free_cap * 2 : 64;
        uint64_t *ring = malloc(cap * sizeof *ring);
        if (!ring)
            return; /* this entry is never reused */
        uint64_t n = sl->free_tail - sl->free_head;
        for (uint64_t k = 0; k < n; k++)
            ring[k] = sl->free_ring[(sl->free_head + k) % sl->free_cap];
        free(sl->free_ring);
        sl->free_ring = ring;
        sl->free_cap = cap;
        sl->free_head = 0;
        sl->free_tail = n;
    }
    sl->free_ring[sl->free_tail % sl->free_cap] = e;
    sl->free_tail++;
}

void ntl_slab_retire(ntl_slab *sl, uint64_t e) {
    set_state(sl, e, NTL_SLOT_RETIRED);
    if (sl->nretired == sl->retired_cap) {
        uint64_t cap = sl->retired_cap ? sl->retired_cap * 2 : 16;
        uint64_t *r = realloc(sl->retired, cap * sizeof *r);
        if (!r) {
            ntl_slab_free_now(sl, e); /* cannot keep it readable: free at once */
            return;
        }
        sl->retired = r;
        sl->retired_cap = cap;
    }
    sl->retired[sl->nretired++] = e;
}

void ntl_slab_end_epoch(ntl_slab *sl) {
    for (uint64_t k = 0; k < sl->nretired; k++)
        ntl_slab_free_now(sl, sl->retired[k]);
    sl->nretired = 0;
}

NTL_API int ntl_slab_find(const ntl_slab *sl, uint64_t addr, uint64_t *entry, uint32_t *cpu,
                          uint64_t *offset) {
    for (uint32_t k = 0; k < sl->nseg; k++) {
        const ntl_segment *seg = &sl->seg[k];
        uint64_t base = ntl_window_base(seg->window);
        uint64_t span = (uint64_t)seg->nwindows << NTL_WINDOW_SHIFT;
        if (addr < base || addr - base >= span)
            continue;
        uint64_t v = (addr - base) >> sl->shift;
        if (v >= seg->capacity * sl->group)
            return 0;
        *entry = seg->first + v / sl->group;
        *cpu = (uint32_t)(v % sl->group);
        *offset = (addr - base) & ((1ull << sl->shift) - 1);
        return 1;
    }
    return 0;
}
