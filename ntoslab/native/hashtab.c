/* The exact-match index of the hash-table map types: key -> slab entry.
 *
 * Entries are numbered by the slab; per-entry arrays (key bytes, hash, bucket chain, order list)
 * grow with it. Buckets are chained and rehashed at a load factor of 1. The order list gives
 * the iteration order: insertion order for hash maps (an updated key keeps its place), recency
 * for LRU maps created with true_lru (the head is the next eviction victim); other LRU maps keep
 * insertion order here and their key history in lru.c.
 */
#include "ntl.h"

#include <stdlib.h>
#include <string.h>

uint64_t ntl_hash_bytes(const uint8_t *p, uint32_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    }
    h ^= h >> 29;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 32;
    return h;
}

int ntl_htab_init(ntl_htab *h, uint32_t key_size, uint64_t cap) {
    memset(h, 0, sizeof *h);
    h->key_size = key_size;
    h->head = h->tail = -1;
    h->nbuckets = 16;
    while (h->nbuckets < cap)
        h->nbuckets *= 2;
    h->buckets = malloc(h->nbuckets * sizeof(int64_t));
    if (!h->buckets)
        return -1;
    memset(h->buckets, 0xFF, h->nbuckets * sizeof(int64_t));
    return ntl_htab_reserve(h, cap);
}

void ntl_htab_destroy(ntl_htab *h) {
    free(h->keys);
    free(h->hashes);
    free(h->chain);
    free(h->prev);
    free(h->next);
    free(h->buckets);
    memset(h, 0, sizeof *h);
}

#define GROW(field, type, count)                                                                \
    do {                                                                                        \
        type *p_ = realloc(h->field, (count) * sizeof(type));                                    \
        if (!p_)                                                                                \
            return -1;                                                                          \
        h->field = p_;                                                                          \
    } while (0)

int ntl_htab_reserve(ntl_htab *h, uint64_t cap) {
    if (cap <= h->cap)
        return 0;
    uint64_t ks = h->key_size ? h->key_size : 1;
    GROW(keys, uint8_t, cap * ks);
    GROW(hashes, uint64_t, cap);
    GROW(chain, int64_t, cap);
    GROW(prev, int64_t, cap);
    GROW(next, int64_t, cap);
    h->cap = cap;
    return 0;
}

static void rehash(ntl_htab *h) {
    uint64_t nb = h->nbuckets * 2;
    int64_t *b = malloc(nb * sizeof(int64_t));
    if (!b)
        return; /* keep the longer chains */
    memset(b, 0xFF, nb * sizeof(int64_t));
    for (int64_t e = h->head; e >= 0; e = h->next[e]) {
        uint64_t i = h->hashes[e] & (nb - 1);
        h->chain[e] = b[i];
        b[i] = e;
    }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = nb;
}

int64_t ntl_htab_find(const ntl_htab *h, const uint8_t *key, uint64_t hash) {
    for (int64_t e = h->buckets[hash & (h->nbuckets - 1)]; e >= 0; e = h->chain[e])
        if (h->hashes[e] == hash && !memcmp(h->keys + (uint64_t)e * h->key_size, key, h->key_size))
            return e;
    return -1;
}

static void link_tail(ntl_htab *h, int64_t e) {
    h->prev[e] = h->tail;
    h->next[e] = -1;
    if (h->tail >= 0)
        h->next[h->tail] = e;
    else
        h->head = e;
    h->tail = e;
}

static void unlink_order(ntl_htab *h, int64_t e) {
    if (h->prev[e] >= 0)
        h->next[h->prev[e]] = h->next[e];
    else
        h->head = h->next[e];
    if (h->next[e] >= 0)
        h->prev[h->next[e]] = h->prev[e];
    else
        h->tail = h->prev[e];
}

void ntl_htab_insert(ntl_htab *h, int64_t e, const uint8_t *key, uint64_t hash) {
    memcpy(h->keys + (uint64_t)e * h->key_size, key, h->key_size);
    h->hashes[e] = hash;
    uint64_t i = hash & (h->nbuckets - 1);
    h->chain[e] = h->buckets[i];
    h->buckets[i] = e;
    link_tail(h, e);
    h->count++;
    if (h->count > h->nbuckets)
        rehash(h);
}

void ntl_htab_remove(ntl_htab *h, int64_t e) {
    int64_t *p = &h->buckets[h->hashes[e] & (h->nbuckets - 1)];
    while (*p >= 0 && *p != e)
        p = &h->chain[*p];
    if (*p == e)
        *p = h->chain[e];
    unlink_order(h, e);
    h->count--;
}

void ntl_htab_move_to_tail(ntl_htab *h, int64_t e) {
    if (h->tail == e)
        return;
    unlink_order(h, e);
    link_tail(h, e);
}
