/* eBPF for Windows' approximate LRU: key history in hot/cold generations per partition
 * (libs/execution_context/ebpf_maps.c: the comment above ebpf_lru_entry_t, _get_key_state,
 * _merge_hot_into_cold_list_if_needed, _insert_into_hot_list, _initialize_lru_entry,
 * _uninitialize_lru_entry, _create_lru_hash_map, _reap_lru_cold_lists). Written from those
 * facts; maps.c calls it at the points where EFW's hash table sends its notifications
 * (libs/runtime/ebpf_hash_table.c, _ebpf_hash_table_replace_bucket).
 *
 * The model, per map:
 *   - partitions = min(CPU count, 8); a CPU uses partition cpu % partitions;
 *   - each partition has a hot list, a cold list, a generation (starting at 1), the hot list's
 *     size and limit max(max_entries / partitions / 10, 1) (integer divisions);
 *   - each entry has one link per partition: a generation (0 = uninitialised, ~0 = deleted;
 *     equal to the partition's generation = hot, other values = cold) and a last-used time;
 *   - a link that joins a hot list gets the current generation and the next tick of a
 *     per-map logical clock. EFW reads a coarse clock (cxplat_query_time_since_boot_approximate),
 *     so two of its links can carry equal times; ours never do (a clock finer than any two
 *     touches). Where EFW compares equal times, _reap_lru_cold_lists keeps the first partition
 *     in its loop (strict <) and treats neither link as stale;
 *   - the hot list grows past its limit -> it is appended to the cold list, the hot list empties,
 *     the generation advances (so all its links turn cold at once).
 *
 * Links are numbered e * nparts + p (entry e, partition p), one 32-byte record each (list
 * neighbours, generation, time); lists are doubly linked through them, so every list operation
 * is O(1) and nothing is allocated outside
 * ntl_lru_reserve (called when the map's storage grows) and ntl_lru_order (user-side listing).
 */
#include "ntl.h"

#include <stdlib.h>
#include <string.h>

#define LRU_GENERATION_COUNT 10   /* EBPF_LRU_GENERATION_COUNT */
#define LRU_UNINITIALISED 0ull
#define LRU_DELETED UINT64_MAX     /* EBPF_LRU_INVALID_GENERATION */

enum { K_UNINITIALISED, K_COLD, K_HOT, K_DELETED };  /* ebpf_lru_key_state_t */

ntl_lru *ntl_lru_new(uint32_t ncpus, uint32_t max_entries, uint64_t cap) {
    ntl_lru *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->nparts = ncpus < NTL_LRU_MAX_PARTITIONS ? (ncpus ? ncpus : 1) : NTL_LRU_MAX_PARTITIONS;
    uint32_t average = max_entries / l->nparts;
    for (uint32_t p = 0; p < l->nparts; p++) {
        ntl_lru_part *q = &l->part[p];
        q->hot_head = q->hot_tail = q->cold_head = q->cold_tail = -1;
        q->generation = 1; /* EBPF_LRU_INITIAL_GENERATION */
        q->hot_limit = average / LRU_GENERATION_COUNT ? average / LRU_GENERATION_COUNT : 1;
    }
    if (ntl_lru_reserve(l, cap)) {
        ntl_lru_free_all(l);
        return NULL;
    }
    return l;
}

void ntl_lru_free_all(ntl_lru *l) {
    if (!l)
        return;
    free(l->links);
    free(l);
}

int ntl_lru_reserve(ntl_lru *l, uint64_t cap) {
    if (cap <= l->cap)
        return 0;
    ntl_lru_link *links = realloc(l->links, cap * l->nparts * sizeof *links);
    if (!links)
        return -1;
    l->links = links;
    l->cap = cap;
    return 0;
}

static int state(const ntl_lru *l, int64_t link, uint32_t p) {
    uint64_t g = l->links[link].generation;
    if (g == LRU_UNINITIALISED)
        return K_UNINITIALISED;
    if (g == LRU_DELETED)
        return K_DELETED;
    return g == l->part[p].generation ? K_HOT : K_COLD;
}

static void append(ntl_lru *l, int64_t *head, int64_t *tail, int64_t link) {
    l->links[link].prev = *tail;
    l->links[link].next = -1;
    if (*tail >= 0)
        l->links[*tail].next = link;
    else
        *head = link;
    *tail = link;
}

static void unlink_from(ntl_lru *l, int64_t *head, int64_t *tail, int64_t link) {
    ntl_lru_link *k = &l->links[link];
    if (k->prev >= 0)
        l->links[k->prev].next = k->next;
    else
        *head = k->next;
    if (k->next >= 0)
        l->links[k->next].prev = k->prev;
    else
        *tail = k->prev;
}

/* take `link` (of partition p) out of whichever list holds it */
static void unlink_link(ntl_lru *l, int64_t link, uint32_t p) {
    ntl_lru_part *q = &l->part[p];
    switch (state(l, link, p)) {
    case K_HOT:
        unlink_from(l, &q->hot_head, &q->hot_tail, link);
        q->hot_size--;
        break;
    case K_COLD:
        unlink_from(l, &q->cold_head, &q->cold_tail, link);
        break;
    default:
        break;
    }
}

/* the hot list joins the cold list's tail; a new generation starts */
static void merge(ntl_lru *l, uint32_t p) {
    ntl_lru_part *q = &l->part[p];
    if (q->hot_head >= 0) {
        l->links[q->hot_head].prev = q->cold_tail;
        if (q->cold_tail >= 0)
            l->links[q->cold_tail].next = q->hot_head;
        else
            q->cold_head = q->hot_head;
        q->cold_tail = q->hot_tail;
    }
    q->hot_head = q->hot_tail = -1;
    q->hot_size = 0;
    q->generation++;
}

/* _merge_hot_into_cold_list_if_needed */
static void merge_if_needed(ntl_lru *l, uint32_t p) {
    if (l->part[p].hot_size > l->part[p].hot_limit)
        merge(l, p);
}

/* a link joins partition p's hot list with the current generation and a fresh time */
static void link_hot(ntl_lru *l, int64_t link, uint32_t p) {
    ntl_lru_part *q = &l->part[p];
    l->links[link].generation = q->generation;
    l->links[link].time = ++l->clock;
    append(l, &q->hot_head, &q->hot_tail, link);
    q->hot_size++;
    merge_if_needed(l, p);
}

static uint32_t partition_of(const ntl_lru *l, uint32_t cpu) {
    return cpu < l->nparts ? cpu : cpu % l->nparts;
}

static void clear_links(ntl_lru *l, int64_t e) {
    for (uint32_t p = 0; p < l->nparts; p++) {
        l->links[(uint64_t)e * l->nparts + p].generation = LRU_UNINITIALISED;
        l->links[(uint64_t)e * l->nparts + p].time = 0;
    }
}

/* ALLOCATE of a new value that the table accepts (_initialize_lru_entry) */
void ntl_lru_fresh(ntl_lru *l, int64_t e, uint32_t cpu) {
    clear_links(l, e);
    uint32_t p = partition_of(l, cpu);
    link_hot(l, (int64_t)((uint64_t)e * l->nparts + p), p);
}

/* FREE (_uninitialize_lru_entry): every link leaves its list; the entry is deleted */
void ntl_lru_free(ntl_lru *l, int64_t e) {
    for (uint32_t p = 0; p < l->nparts; p++) {
        int64_t link = (int64_t)((uint64_t)e * l->nparts + p);
        unlink_link(l, link, p);
        l->links[link].generation = LRU_DELETED;
    }
}

/* ALLOCATE of a value the table then refuses, and its FREE (_ebpf_hash_table_replace_bucket:
   the notification comes before the bucket operation can fail): the new link counts in the
   hot list long enough to trigger a merge. */
void ntl_lru_phantom(ntl_lru *l, uint32_t cpu) {
    uint32_t p = partition_of(l, cpu);
    if (l->part[p].hot_size + 1 > l->part[p].hot_limit)
        merge(l, p);
}

/* an update of an existing key: ALLOCATE of the new value (fresh history at the current
   partition's hot tail, possibly merging), the bucket update, FREE of the old value. The new
   value reuses entry e, so the old links go first; the final lists are EFW's. */
void ntl_lru_replace(ntl_lru *l, int64_t e, uint32_t cpu) {
    uint32_t p = partition_of(l, cpu);
    ntl_lru_part *q = &l->part[p];
    int merges = q->hot_size + 1 > q->hot_limit;   /* counted with the old link still in */
    ntl_lru_free(l, e);
    clear_links(l, e);
    int64_t link = (int64_t)((uint64_t)e * l->nparts + p);
    if (!merges) {
        link_hot(l, link, p);
        return;
    }
    merge(l, p);                    /* the new link was the merged hot list's last */
    l->links[link].generation = q->generation - 1;
    l->links[link].time = ++l->clock;
    append(l, &q->cold_head, &q->cold_tail, link);
}

/* a helper lookup (_find_lru_hash_map_entry with EBPF_MAP_FLAG_HELPER, _insert_into_hot_list):
   a hot key changes nothing; a cold or uninitialised link moves to the hot tail */
void ntl_lru_touch(ntl_lru *l, int64_t e, uint32_t cpu) {
    uint32_t p = partition_of(l, cpu);
    int64_t link = (int64_t)((uint64_t)e * l->nparts + p);
    uint64_t g = l->links[link].generation;
    if (g == l->part[p].generation || g == LRU_DELETED)
        return;
    if (g != LRU_UNINITIALISED)
        unlink_from(l, &l->part[p].cold_head, &l->part[p].cold_tail, link);
    link_hot(l, link, p);
}

static uint64_t highest_time(const ntl_lru *l, int64_t e) {
    uint64_t best = 0;
    for (uint32_t p = 0; p < l->nparts; p++)
        if (l->links[(uint64_t)e * l->nparts + p].time > best)
            best = l->links[(uint64_t)e * l->nparts + p].time;
    return best;
}

/* _reap_lru_cold_lists: the cold-list heads of every partition; a head whose time is not its
   entry's highest is stale (unlinked, uninitialised in that partition); the live head with the
   lowest time is the victim. -1 when every cold list is (or becomes) empty. */
int64_t ntl_lru_reap(ntl_lru *l) {
    for (;;) {
        int nonempty = 0;
        int64_t oldest = -1;
        uint64_t oldest_time = UINT64_MAX;
        for (uint32_t p = 0; p < l->nparts; p++) {
            ntl_lru_part *q = &l->part[p];
            int64_t link = q->cold_head;
            if (link < 0)
                continue;
            nonempty = 1;
            int64_t e = link / l->nparts;
            uint64_t t = highest_time(l, e);
            if (t != l->links[link].time) {
                unlink_from(l, &q->cold_head, &q->cold_tail, link);
                l->links[link].generation = LRU_UNINITIALISED;
                continue;
            }
            if (t < oldest_time) {
                oldest_time = t;
                oldest = e;
            }
        }
        if (oldest >= 0 || !nonempty)
            return oldest;
    }
}

typedef struct { uint64_t rank; int64_t entry; } ranked;

static int by_rank(const void *a, const void *b) {
    uint64_t x = ((const ranked *)a)->rank, y = ((const ranked *)b)->rank;
    return x < y ? -1 : x > y;
}

/* Entries in eviction order as far as it is defined: those whose latest link is cold, oldest
   first (what successive reaps would take), then those whose latest link is hot, oldest first.
   `entries` lists the live entries (any order); sorted in place. -1 when out of memory. */
int ntl_lru_order(const ntl_lru *l, int64_t *entries, uint64_t n) {
    if (n < 2)
        return 0;
    ranked *r = malloc(n * sizeof *r);
    if (!r)
        return -1;
    for (uint64_t i = 0; i < n; i++) {
        int64_t e = entries[i];
        uint64_t best = 0;
        uint32_t at = 0;
        for (uint32_t p = 0; p < l->nparts; p++)
            if (l->links[(uint64_t)e * l->nparts + p].time > best) {
                best = l->links[(uint64_t)e * l->nparts + p].time;
                at = p;
            }
        int hot = state(l, (int64_t)((uint64_t)e * l->nparts + at), at) == K_HOT;
        r[i].rank = ((uint64_t)hot << 63) | best;
        r[i].entry = e;
    }
    qsort(r, n, sizeof *r, by_rank);
    for (uint64_t i = 0; i < n; i++)
        entries[i] = r[i].entry;
    free(r);
    return 0;
}

/* -- inspection for Python (LruHashMap.partitions) --------------------------------------------- */
NTL_API uint32_t ntl_lru_partitions(const ntl_map *m) { return m->lru ? m->lru->nparts : 0; }

/* out = {generation, hot_size, hot_limit}; 0, or -1 for no such partition */
NTL_API int ntl_lru_partition_info(const ntl_map *m, uint32_t p, uint64_t out[3]) {
    if (!m->lru || p >= m->lru->nparts)
        return -1;
    out[0] = m->lru->part[p].generation;
    out[1] = m->lru->part[p].hot_size;
    out[2] = m->lru->part[p].hot_limit;
    return 0;
}

/* the entries on partition p's hot (cold = 0) or cold (cold = 1) list, head first */
NTL_API uint64_t ntl_lru_list(const ntl_map *m, uint32_t p, int cold, int64_t *out,
                              uint64_t max) {
    if (!m->lru || p >= m->lru->nparts)
        return 0;
    const ntl_lru *l = m->lru;
    uint64_t n = 0;
    for (int64_t link = cold ? l->part[p].cold_head : l->part[p].hot_head; link >= 0 && n < max;
         link = l->links[link].next)
        out[n++] = link / l->nparts;
    return n;
}

NTL_API uint64_t ntl_lru_stalls(const ntl_map *m) { return m->lru ? m->lru->stalls : 0; }
