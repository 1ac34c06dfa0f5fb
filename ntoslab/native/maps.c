/* The map types by Windows type id, with eBPF for Windows' semantics (libs/execution_context/
 * ebpf_maps.c). The Python modules under ntoslab/runtime/maps/ document each type's facts; this
 * file is where they are implemented, once, for both engines.
 *
 * Program-side operations return 0 or a negated ebpf_result_t, and value addresses are virtual
 * (0 = NULL). `helper` lookups touch LRU key history; user-side reads never do.
 *
 * LRU maps follow EFW's generations (lru.c) unless created with NTL_MAPF_TRUE_LRU, where the
 * hash index's order list is the exact recency (the head is the next victim).
 */
#include "ntl.h"

#include <stdlib.h>
#include <string.h>

#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_EXIST 2
#define RETIRED_LIMIT 4096

static int is_hash_type(uint32_t t) {
    return t == NTL_MAP_HASH || t == NTL_MAP_PERCPU_HASH || t == NTL_MAP_LRU_HASH ||
           t == NTL_MAP_LRU_PERCPU_HASH || t == NTL_MAP_LPM_TRIE || t == NTL_MAP_SAMPLE_HASH ||
           t == NTL_MAP_HASH_OF_MAPS;
}
static int is_lru(uint32_t t) { return t == NTL_MAP_LRU_HASH || t == NTL_MAP_LRU_PERCPU_HASH; }
static int is_percpu(uint32_t t) {
    return t == NTL_MAP_PERCPU_HASH || t == NTL_MAP_PERCPU_ARRAY || t == NTL_MAP_LRU_PERCPU_HASH;
}
static int is_array(uint32_t t) { return t == NTL_MAP_ARRAY || t == NTL_MAP_PERCPU_ARRAY; }
static int is_queue(uint32_t t) { return t == NTL_MAP_QUEUE || t == NTL_MAP_STACK; }

static uint32_t index_of(const uint8_t *key) {
    uint32_t i;
    memcpy(&i, key, 4);
    return i;
}

NTL_API ntl_map *ntl_map_new(ntl_space *s, uint32_t type, uint32_t key_size, uint32_t value_size,
                             uint32_t max_entries, uint32_t ncpus, uint32_t flags, uint32_t id,
                             const uint32_t *cpu, uint64_t initial_entries, uint64_t limit) {
    ntl_map *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->type = type;
    m->key_size = key_size;
    m->value_size = value_size;
    m->max_entries = max_entries;
    m->ncpus = ncpus ? ncpus : 1;
    m->flags = flags;
    m->id = id;
    m->space = s;
    m->cpu = cpu;
    m->handle_window = ntl_space_reserve(s, 1);
    if (!m->handle_window)
        goto fail;
    ntl_space_set(s, m->handle_window, NULL, 0, ntl_live_zero, 0, 0, NTL_WINDOW_SHIFT, NTL_W_HANDLE,
                  m, 0);
    m->handle = ntl_window_base(m->handle_window);
    uint32_t group = is_percpu(type) ? m->ncpus : 1;
    uint32_t writable = !(flags & NTL_MAPF_READONLY);
    if (is_array(type)) {
        if (ntl_slab_init(&m->slab, s, m, value_size, group, writable, max_entries, max_entries))
            goto fail;
        ntl_slab_make_all_live(&m->slab, max_entries);
    } else if (is_hash_type(type)) {
        /* LRU maps keep a little room for values evicted but still readable in this run */
        uint64_t initial = initial_entries;
        if (is_lru(type))
            initial = (uint64_t)max_entries + 16;
        if (ntl_slab_init(&m->slab, s, m, type == NTL_MAP_HASH_OF_MAPS ? 8 : value_size, group,
                          writable, initial, limit) ||
            ntl_htab_init(&m->ht, key_size, initial ? initial : 16))
            goto fail;
        if (is_lru(type) && !(flags & NTL_MAPF_TRUE_LRU) &&
            !(m->lru = ntl_lru_new(m->ncpus, max_entries, m->slab.capacity)))
            goto fail;
        if (type == NTL_MAP_LPM_TRIE) {
            m->lpm_max_prefix = key_size >= 4 ? (key_size - 4) * 8 : 0;
            m->lpm_counts = calloc(m->lpm_max_prefix + 1, sizeof(uint64_t));
            if (!m->lpm_counts)
                goto fail;
        }
    } else if (is_queue(type)) {
        if (ntl_slab_init(&m->slab, s, m, value_size, 1, writable, (uint64_t)max_entries + 16,
                          limit) ||
            !(m->q_order = calloc(max_entries, sizeof(int64_t))))
            goto fail;
    } else if (type == NTL_MAP_RINGBUF) {
        m->rings = ntl_ring_new(max_entries);
        if (!m->rings)
            goto fail;
    } else if (type == NTL_MAP_PERF_EVENT_ARRAY) {
        m->rings = calloc(m->ncpus, sizeof(ntl_ring));
        m->lost = calloc(m->ncpus, sizeof(uint64_t));
        m->passive = 1;
        if (!m->rings || !m->lost)
            goto fail;
        for (uint32_t c = 0; c < m->ncpus; c++) {
            ntl_ring *r = ntl_ring_new(max_entries);
            if (!r)
                goto fail;
            m->rings[c] = *r;
            free(r);
        }
    } else if (type == NTL_MAP_PROG_ARRAY) {
        m->progs = calloc(max_entries ? max_entries : 1, sizeof(void *));
        m->prog_ids = calloc(max_entries ? max_entries : 1, sizeof(uint64_t));
        if (!m->progs || !m->prog_ids)
            goto fail;
    } else if (type == NTL_MAP_ARRAY_OF_MAPS) {
        m->inner = calloc(max_entries ? max_entries : 1, sizeof(uint64_t));
        if (!m->inner)
            goto fail;
    }
    return m;
fail:
    ntl_map_free(m);
    return NULL;
}

NTL_API void ntl_map_free(ntl_map *m) {
    if (!m)
        return;
    if (m->handle_window)
        ntl_space_unmap(m->space, m->handle_window, 1);
    if (m->slab.space)
        ntl_slab_destroy(&m->slab);
    ntl_htab_destroy(&m->ht);
    ntl_lru_free_all(m->lru);
    if (m->type == NTL_MAP_RINGBUF)
        ntl_ring_free(m->rings);
    else if (m->rings) {
        for (uint32_t c = 0; c < m->ncpus; c++)
            free(m->rings[c].data);
        free(m->rings);
    }
    free(m->lost);
    free(m->lpm_counts);
    free(m->lpm_orig);
    free(m->q_order);
    free(m->progs);
    free(m->prog_ids);
    free(m->inner);
    free(m);
}

NTL_API ntl_map *ntl_map_from_handle(ntl_space *s, uint64_t addr) {
    ntl_window *w = ntl_window_of(s, addr);
    if (!w || !(w->flags & NTL_W_HANDLE) || (addr & NTL_WINDOW_MASK))
        return NULL;
    return (ntl_map *)w->owner;
}

/* -- value placement ------------------------------------------------------------------------- */
static uint32_t cpu_of(const ntl_map *m) {
    return is_percpu(m->type) && m->cpu ? *m->cpu : 0;
}
/* the CPU EFW's LRU partitions by (ebpf_get_current_cpu() in _lru_hash_table_notification) */
static uint32_t current_cpu(const ntl_map *m) { return m->cpu ? *m->cpu : 0; }
static uint64_t value_address(const ntl_map *m, uint64_t e) {
    return ntl_slab_address(&m->slab, e, cpu_of(m));
}
static uint8_t *cpu_value(const ntl_map *m, uint64_t e) {
    return ntl_slab_host(&m->slab, e) + (uint64_t)cpu_of(m) * m->slab.pitch;
}
static uint64_t stored_size(const ntl_map *m) {
    return (uint64_t)m->slab.group * m->slab.pitch;
}
/* write a user-side flat value (pad8(value_size) per CPU, or value_size for one CPU) */
static void store_flat(ntl_map *m, uint64_t e, const uint8_t *value) {
    uint8_t *host = ntl_slab_host(&m->slab, e);
    if (m->slab.group == 1) {
        memcpy(host, value, m->slab.elem);
        return;
    }
    memcpy(host, value, stored_size(m));
}

static void retire(ntl_map *m, uint64_t e) {
    ntl_slab_retire(&m->slab, e);
    if (m->slab.nretired > RETIRED_LIMIT) { /* nobody ends the epoch: free the oldest */
        ntl_slab_free_now(&m->slab, m->slab.retired[0]);
        memmove(m->slab.retired, m->slab.retired + 1, --m->slab.nretired * sizeof(uint64_t));
    }
}

/* -- hash types ------------------------------------------------------------------------------ */
static void lpm_mask(const ntl_map *m, const uint8_t *key, uint32_t bits, uint8_t *out) {
    uint32_t n = m->key_size - 4;
    memcpy(out, key, 4);
    memset(out + 4, 0, n);
    uint32_t full = bits / 8, rest = bits % 8;
    memcpy(out + 4, key + 4, full < n ? full : n);
    if (rest && full < n)
        out[4 + full] = key[4 + full] & (uint8_t)(0xFF << (8 - rest));
}

static void canonical(const ntl_map *m, const uint8_t *key, uint8_t *out) {
    if (m->type != NTL_MAP_LPM_TRIE) {
        memcpy(out, key, m->key_size);
        return;
    }
    uint32_t plen = index_of(key);
    lpm_mask(m, key, plen < m->lpm_max_prefix ? plen : m->lpm_max_prefix, out);
}

static int64_t find_exact(const ntl_map *m, const uint8_t *key) {
    uint8_t ck[m->key_size ? m->key_size : 1];
    canonical(m, key, ck);
    return ntl_htab_find(&m->ht, ck, ntl_hash_bytes(ck, m->key_size));
}

NTL_API int64_t ntl_map_lpm_match(ntl_map *m, const uint8_t *key) {
    uint32_t plen = index_of(key);
    if (plen > m->lpm_max_prefix)
        return -1;
    uint8_t ck[m->key_size];
    for (int64_t len = plen; len >= 0; len--) {
        if (!m->lpm_counts[len])
            continue;
        lpm_mask(m, key, (uint32_t)len, ck);
        uint32_t l32 = (uint32_t)len;
        memcpy(ck, &l32, 4);
        int64_t e = ntl_htab_find(&m->ht, ck, ntl_hash_bytes(ck, m->key_size));
        if (e >= 0)
            return e;
    }
    return -1;
}

/* LPM keys are listed as first inserted, not in their canonical (masked) form */
static int lpm_reserve(ntl_map *m, uint64_t cap) {
    if (cap <= m->lpm_orig_cap)
        return 0;
    uint8_t *p = realloc(m->lpm_orig, cap * m->key_size);
    if (!p)
        return -1;
    m->lpm_orig = p;
    m->lpm_orig_cap = cap;
    return 0;
}

static void remove_entry(ntl_map *m, int64_t e) {
    if (m->type == NTL_MAP_LPM_TRIE) {
        uint32_t plen = index_of(m->ht.keys + (uint64_t)e * m->key_size);
        if (plen <= m->lpm_max_prefix && m->lpm_counts[plen])
            m->lpm_counts[plen]--;
    }
    if (m->lru)
        ntl_lru_free(m->lru, e);
    ntl_htab_remove(&m->ht, e);
    retire(m, (uint64_t)e);
}

/* EFW's LRU insert into a full map (_update_hash_map_entry_operation_context): each attempt
   allocates the value (its ALLOCATE notification may merge the current partition's hot list),
   fails with EBPF_OUT_OF_SPACE, frees the value and reaps one cold entry; then it retries.
   A reap that finds nothing has left every cold list empty, and the next attempt cannot merge
   (the current hot list is below its limit: it was not merged, or it just was), so EFW would
   retry forever. That takes a full map whose every key was last used in the hot list of
   another partition, so max_entries < partitions. We refuse the insert instead and count it. */
static int lru_make_room(ntl_map *m) {
    while (m->ht.count >= m->max_entries) {
        ntl_lru_phantom(m->lru, current_cpu(m));
        int64_t victim = ntl_lru_reap(m->lru);
        if (victim < 0) {
            m->lru->stalls++;
            return 0;
        }
        remove_entry(m, victim);
        m->evicted++;
    }
    return 1;
}

/* make room for one more key when the map is at max_entries: LRU evicts, bounded hash maps
   refuse, EFW's plain hash maps do not fill up (max_entries sizes the buckets only) */
static int make_room(ntl_map *m) {
    if (m->lru)
        return lru_make_room(m);
    if (is_lru(m->type)) {
        while (m->ht.count >= m->max_entries && m->ht.head >= 0) {
            remove_entry(m, m->ht.head);
            m->evicted++;
        }
        return 1;
    }
    return !(m->flags & NTL_MAPF_BOUNDED_HASH);
}

/* insert `key` (new) with a zeroed value; the entry number or a negated ebpf_result_t */
static int64_t insert(ntl_map *m, const uint8_t *key) {
    if (m->ht.count >= m->max_entries && !make_room(m))
        return -EBPF_OUT_OF_SPACE;
    int64_t e = ntl_slab_alloc(&m->slab);
    if (e < 0)
        return -EBPF_NO_MEMORY;
    if (ntl_htab_reserve(&m->ht, m->slab.capacity) ||
        (m->lru && ntl_lru_reserve(m->lru, m->slab.capacity)) ||
        (m->type == NTL_MAP_LPM_TRIE && lpm_reserve(m, m->slab.capacity))) {
        ntl_slab_free_now(&m->slab, (uint64_t)e);
        return -EBPF_NO_MEMORY;
    }
    uint8_t ck[m->key_size ? m->key_size : 1];
    canonical(m, key, ck);
    ntl_htab_insert(&m->ht, e, ck, ntl_hash_bytes(ck, m->key_size));
    if (m->lru)
        ntl_lru_fresh(m->lru, e, current_cpu(m));
    if (m->type == NTL_MAP_LPM_TRIE) {
        m->lpm_counts[index_of(key)]++;
        memcpy(m->lpm_orig + (uint64_t)e * m->key_size, key, m->key_size);
    }
    return e;
}

/* an update EFW's hash table refuses after allocating the new value (_ebpf_hash_table_replace_
   bucket sends ALLOCATE before it looks at the bucket): LRU history sees the value come and go */
static int64_t refused(ntl_map *m, int64_t result) {
    if (m->lru)
        ntl_lru_phantom(m->lru, current_cpu(m));
    return result;
}

/* EFW _update_hash_map_entry: insert or replace the whole stored value */
static int64_t hash_store(ntl_map *m, const uint8_t *key, const uint8_t *flat, uint64_t flags) {
    if (flags > BPF_EXIST)
        return -EBPF_INVALID_ARGUMENT;
    if (m->type == NTL_MAP_LPM_TRIE && index_of(key) > m->lpm_max_prefix)
        return -EBPF_INVALID_ARGUMENT;
    int64_t e = find_exact(m, key);
    if (e >= 0) {
        if (flags == BPF_NOEXIST)
            return refused(m, -EBPF_OBJECT_ALREADY_EXISTS);
        store_flat(m, (uint64_t)e, flat);
        if (m->lru)
            ntl_lru_replace(m->lru, e, current_cpu(m));
        else if (is_lru(m->type))
            ntl_htab_move_to_tail(&m->ht, e);
        return 0;
    }
    if (flags == BPF_EXIST)
        return refused(m, -EBPF_KEY_NOT_FOUND);
    e = insert(m, key);
    if (e < 0)
        return e;
    store_flat(m, (uint64_t)e, flat);
    return 0;
}

/* EFW _update_entry_per_cpu: an existing key gets the current CPU's value with flags unchecked
   (and no LRU refresh); a new key is inserted zeroed under `flags`, then written */
static int64_t percpu_update(ntl_map *m, const uint8_t *key, const uint8_t *value,
                             uint64_t flags) {
    int64_t e = find_exact(m, key);
    if (e < 0) {
        if (flags > BPF_EXIST)
            return -EBPF_INVALID_ARGUMENT;
        if (flags == BPF_EXIST)
            return refused(m, -EBPF_KEY_NOT_FOUND);
        e = insert(m, key);
        if (e < 0)
            return e;
    }
    memcpy(cpu_value(m, (uint64_t)e), value, m->value_size);
    return 0;
}

/* -- queue and stack ------------------------------------------------------------------------- */
static int64_t q_take(ntl_map *m, int remove) {
    if (!m->q_count)
        return -1;
    uint64_t at = m->type == NTL_MAP_QUEUE ? m->q_begin : m->q_begin + m->q_count - 1;
    int64_t e = m->q_order[at % m->max_entries];
    if (remove) {
        if (m->type == NTL_MAP_QUEUE)
            m->q_begin++;
        m->q_count--;
        retire(m, (uint64_t)e);
    }
    return e;
}

NTL_API int64_t ntl_map_push(ntl_map *m, const uint8_t *value, uint64_t flags) {
    if (!is_queue(m->type))
        return -EBPF_INVALID_ARGUMENT;
    if (m->q_count >= m->max_entries) {
        if (!(flags & BPF_EXIST))
            return -EBPF_OUT_OF_SPACE;
        /* both types drop the element at `begin`: the oldest */
        int64_t old = m->q_order[m->q_begin % m->max_entries];
        m->q_begin++;
        m->q_count--;
        retire(m, (uint64_t)old);
    }
    int64_t e = ntl_slab_alloc(&m->slab);
    if (e < 0)
        return -EBPF_NO_MEMORY;
    memcpy(ntl_slab_host(&m->slab, (uint64_t)e), value, m->value_size);
    m->q_order[(m->q_begin + m->q_count) % m->max_entries] = e;
    m->q_count++;
    return 0;
}

NTL_API int64_t ntl_map_pop(ntl_map *m, uint8_t *out, int remove) {
    if (!is_queue(m->type))
        return -EBPF_INVALID_ARGUMENT;
    int64_t e = q_take(m, remove);
    if (e < 0)
        return -EBPF_OBJECT_NOT_FOUND;
    if (out)
        memcpy(out, ntl_slab_host(&m->slab, (uint64_t)e), m->value_size);
    return 0;
}

/* -- the operations -------------------------------------------------------------------------- */
NTL_API uint64_t ntl_map_lookup(ntl_map *m, const uint8_t *key, int helper) {
    switch (m->type) {
    case NTL_MAP_ARRAY:
    case NTL_MAP_PERCPU_ARRAY: {
        uint32_t i = index_of(key);
        return i < m->max_entries ? value_address(m, i) : 0;
    }
    case NTL_MAP_LPM_TRIE: {
        int64_t e = ntl_map_lpm_match(m, key);
        return e < 0 ? 0 : value_address(m, (uint64_t)e);
    }
    case NTL_MAP_HASH_OF_MAPS: {
        int64_t e = find_exact(m, key);
        uint64_t h = 0;
        if (e >= 0)
            memcpy(&h, ntl_slab_host(&m->slab, (uint64_t)e), 8);
        return h;
    }
    case NTL_MAP_ARRAY_OF_MAPS: {
        uint32_t i = index_of(key);
        return i < m->max_entries ? m->inner[i] : 0;
    }
    case NTL_MAP_QUEUE:
    case NTL_MAP_STACK: {
        int64_t e = q_take(m, 0);
        return e < 0 ? 0 : value_address(m, (uint64_t)e);
    }
    default:
        if (!is_hash_type(m->type))
            return 0;
        int64_t e = find_exact(m, key);
        if (e < 0)
            return 0;
        if (helper && m->lru)
            ntl_lru_touch(m->lru, e, current_cpu(m));
        else if (helper && is_lru(m->type))
            ntl_htab_move_to_tail(&m->ht, e);
        return value_address(m, (uint64_t)e);
    }
}

NTL_API int64_t ntl_map_update(ntl_map *m, const uint8_t *key, const uint8_t *value,
                               uint64_t flags, int user) {
    switch (m->type) {
    case NTL_MAP_ARRAY:
    case NTL_MAP_PERCPU_ARRAY: {
        uint32_t i = index_of(key);
        if (m->type == NTL_MAP_PERCPU_ARRAY && !user) { /* flags ignored (_update_entry_per_cpu) */
            if (i >= m->max_entries)
                return -EBPF_INVALID_ARGUMENT;
            memcpy(cpu_value(m, i), value, m->value_size);
            return 0;
        }
        if (flags == BPF_NOEXIST || i >= m->max_entries)
            return -EBPF_INVALID_ARGUMENT;
        store_flat(m, i, value);
        return 0;
    }
    case NTL_MAP_PERCPU_HASH:
    case NTL_MAP_LRU_PERCPU_HASH:
        return user ? hash_store(m, key, value, flags) : percpu_update(m, key, value, flags);
    case NTL_MAP_QUEUE:
    case NTL_MAP_STACK:
        return ntl_map_push(m, value, flags);
    case NTL_MAP_HASH:
    case NTL_MAP_LRU_HASH:
    case NTL_MAP_LPM_TRIE:
    case NTL_MAP_SAMPLE_HASH:
        return hash_store(m, key, value, flags);
    default: /* prog arrays, map-in-map (user side goes through set_prog/set_inner), rings */
        return -EBPF_OPERATION_NOT_SUPPORTED;
    }
}

NTL_API int64_t ntl_map_delete(ntl_map *m, const uint8_t *key) {
    switch (m->type) {
    case NTL_MAP_ARRAY:
    case NTL_MAP_PERCPU_ARRAY: {
        uint32_t i = index_of(key);
        if (i >= m->max_entries)
            return -EBPF_INVALID_ARGUMENT;
        memset(ntl_slab_host(&m->slab, i), 0, stored_size(m));
        return 0;
    }
    case NTL_MAP_PROG_ARRAY: {
        uint32_t i = index_of(key);
        if (i >= m->max_entries)
            return -EBPF_OBJECT_NOT_FOUND;
        m->progs[i] = NULL;
        m->prog_ids[i] = 0;
        return 0;
    }
    case NTL_MAP_ARRAY_OF_MAPS: {
        uint32_t i = index_of(key);
        if (i >= m->max_entries)
            return -EBPF_OBJECT_NOT_FOUND;
        m->inner[i] = 0;
        return 0;
    }
    case NTL_MAP_HASH_OF_MAPS: {
        int64_t e = find_exact(m, key);
        if (e < 0)
            return -EBPF_OBJECT_NOT_FOUND;
        remove_entry(m, e);
        return 0;
    }
    case NTL_MAP_LPM_TRIE:
        if (index_of(key) > m->lpm_max_prefix)
            return -EBPF_INVALID_ARGUMENT;
        /* fall through */
    case NTL_MAP_HASH:
    case NTL_MAP_PERCPU_HASH:
    case NTL_MAP_LRU_HASH:
    case NTL_MAP_LRU_PERCPU_HASH:
    case NTL_MAP_SAMPLE_HASH: {
        int64_t e = find_exact(m, key);
        if (e < 0)
            return -EBPF_KEY_NOT_FOUND;
        remove_entry(m, e);
        return 0;
    }
    default:
        return -EBPF_OPERATION_NOT_SUPPORTED;
    }
}

NTL_API uint64_t ntl_map_lookup_and_delete(ntl_map *m, const uint8_t *key) {
    switch (m->type) {
    case NTL_MAP_HASH:
    case NTL_MAP_PERCPU_HASH:
    case NTL_MAP_LRU_HASH:
    case NTL_MAP_LRU_PERCPU_HASH:
    case NTL_MAP_SAMPLE_HASH: {
        int64_t e = find_exact(m, key);
        if (e < 0)
            return 0;
        uint64_t addr = value_address(m, (uint64_t)e);
        remove_entry(m, e);
        return addr;
    }
    case NTL_MAP_QUEUE:
    case NTL_MAP_STACK: {
        int64_t e = q_take(m, 1);
        return e < 0 ? 0 : value_address(m, (uint64_t)e);
    }
    default: /* EFW refuses the delete flag for the other types: NULL */
        return 0;
    }
}

NTL_API void ntl_map_end_epoch(ntl_map *m) {
    if (m->slab.space && m->slab.nretired)
        ntl_slab_end_epoch(&m->slab);
}

/* -- user side ------------------------------------------------------------------------------- */
NTL_API int64_t ntl_map_find_entry(ntl_map *m, const uint8_t *key) {
    if (is_array(m->type)) {
        uint32_t i = index_of(key);
        return i < m->max_entries ? (int64_t)i : -1;
    }
    if (m->type == NTL_MAP_LPM_TRIE)
        return ntl_map_lpm_match(m, key);
    if (is_hash_type(m->type))
        return find_exact(m, key);
    return -1;
}

NTL_API uint64_t ntl_map_count(const ntl_map *m) {
    if (is_array(m->type) || m->type == NTL_MAP_ARRAY_OF_MAPS)
        return m->max_entries;
    if (is_hash_type(m->type))
        return m->ht.count;
    if (is_queue(m->type))
        return m->q_count;
    return 0;
}

NTL_API uint64_t ntl_map_entries(const ntl_map *m, int64_t *out, uint64_t max) {
    uint64_t n = 0;
    if (is_array(m->type)) {
        for (uint64_t i = 0; i < m->max_entries && n < max; i++)
            out[n++] = (int64_t)i;
    } else if (m->lru) { /* eviction order (lru.c): sort them all, then give the first `max` */
        uint64_t count = m->ht.count;
        int64_t *all = count <= max ? out : malloc(count * sizeof *all);
        if (!all)
            return 0;
        for (int64_t e = m->ht.head; e >= 0 && n < count; e = m->ht.next[e])
            all[n++] = e;
        if (ntl_lru_order(m->lru, all, n))
            n = 0;      /* no memory to sort: nothing rather than a wrong order */
        if (all != out) {
            n = n < max ? n : max;
            memcpy(out, all, n * sizeof *all);
            free(all);
        }
    } else if (is_hash_type(m->type)) {
        for (int64_t e = m->ht.head; e >= 0 && n < max; e = m->ht.next[e])
            out[n++] = e;
    } else if (is_queue(m->type)) { /* pop order */
        for (uint64_t k = 0; k < m->q_count && n < max; k++) {
            uint64_t at = m->type == NTL_MAP_QUEUE ? m->q_begin + k
                                                   : m->q_begin + m->q_count - 1 - k;
            out[n++] = m->q_order[at % m->max_entries];
        }
    }
    return n;
}

NTL_API const uint8_t *ntl_map_key_of(const ntl_map *m, int64_t e) {
    if (!is_hash_type(m->type) || e < 0 || (uint64_t)e >= m->ht.cap)
        return NULL;
    if (m->type == NTL_MAP_LPM_TRIE)
        return m->lpm_orig + (uint64_t)e * m->key_size;
    return m->ht.keys + (uint64_t)e * m->key_size;
}

NTL_API void ntl_map_set_prog(ntl_map *m, uint32_t index, void *code, uint64_t prog_id) {
    if (m->type != NTL_MAP_PROG_ARRAY || index >= m->max_entries)
        return;
    m->progs[index] = code;
    m->prog_ids[index] = prog_id;
}

NTL_API int64_t ntl_map_set_inner(ntl_map *m, const uint8_t *key, uint64_t inner_handle,
                                  uint64_t flags) {
    if (m->type == NTL_MAP_ARRAY_OF_MAPS) {
        uint32_t i = index_of(key);
        if (i >= m->max_entries)
            return -EBPF_INVALID_ARGUMENT;
        m->inner[i] = inner_handle;
        return 0;
    }
    if (m->type != NTL_MAP_HASH_OF_MAPS)
        return -EBPF_INVALID_ARGUMENT;
    uint8_t value[8];
    memcpy(value, &inner_handle, 8);
    return hash_store(m, key, value, flags);
}

/* -- accessors for Python (ntoslab/native/abi.py) -------------------------------------------- */
NTL_API uint64_t ntl_map_handle(const ntl_map *m) { return m->handle; }
NTL_API uint64_t ntl_map_evicted(const ntl_map *m) { return m->evicted; }
NTL_API ntl_slab *ntl_map_slab(ntl_map *m) { return &m->slab; }
NTL_API ntl_ring *ntl_map_ring(ntl_map *m, uint32_t cpu) {
    if (m->type == NTL_MAP_RINGBUF)
        return cpu == 0 ? m->rings : NULL;
    if (m->type == NTL_MAP_PERF_EVENT_ARRAY)
        return cpu < m->ncpus ? &m->rings[cpu] : NULL;
    return NULL;
}
NTL_API uint64_t *ntl_map_lost(ntl_map *m) { return m->lost; }
NTL_API uint64_t ntl_map_prog_id(const ntl_map *m, uint32_t index) {
    return m->type == NTL_MAP_PROG_ARRAY && index < m->max_entries ? m->prog_ids[index] : 0;
}
NTL_API void ntl_map_set_passive(ntl_map *m, uint32_t passive) { m->passive = passive; }
NTL_API void ntl_end_epochs(ntl_map **maps, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        ntl_map_end_epoch(maps[i]);
}

/* What a JIT needs to inline bpf_map_lookup_elem on an (per-CPU) array, or 0 when it cannot:
   out = {address of value 0, log2 stride, max_entries, vslots per entry, address of the
   current-CPU word (0: not per-CPU)}. The values of an array never move (one segment, all
   live, for the map's life), so the address of value i on CPU c is
   out[0] + ((i * out[3] + c) << out[1]) -- what ntl_map_lookup returns. */
NTL_API int ntl_array_inline(ntl_space *s, uint64_t handle, uint64_t out[5]) {
    ntl_map *m = ntl_map_from_handle(s, handle);
    if (!m || !is_array(m->type) || m->key_size != 4 || m->slab.nseg != 1 ||
        m->slab.seg[0].first != 0 || m->slab.capacity < m->max_entries)
        return 0;
    out[0] = ntl_slab_address(&m->slab, 0, 0);
    out[1] = m->slab.shift;
    out[2] = m->max_entries;
    out[3] = m->slab.group;
    out[4] = m->type == NTL_MAP_PERCPU_ARRAY ? (uint64_t)(uintptr_t)m->cpu : 0;
    if (m->type == NTL_MAP_PERCPU_ARRAY && !m->cpu)
        return 0;
    return 1;
}
