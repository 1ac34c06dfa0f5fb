/* eBPF for Windows' ring buffer, byte for byte (libs/runtime/ebpf_ring_buffer.c,
 * libs/shared/ebpf_ring_buffer_record.h; ntoslab/runtime/maps/ringbuf.py has the facts).
 *
 * Offsets only grow; byte o lives at o % capacity (EFW maps the data twice, so a record may run
 * over the end and continue at the start). A record is an 8-byte header {u32 length | LOCK |
 * DISCARD; u32 page_offset} and its data, padded to 8 bytes; padding keeps what the ring held.
 * Programs only get bpf_ringbuf_output (reserve + copy + submit): EFW gives them no pointers
 * into the ring.
 */
#include "ntl.h"

#include <stdlib.h>
#include <string.h>

#define PAGE 4096u

static uint64_t record_size(uint64_t length) { return (length + NTL_RING_HEADER + 7) & ~7ull; }

NTL_API ntl_ring *ntl_ring_new(uint64_t capacity) {
    ntl_ring *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->data = calloc(capacity ? capacity : 1, 1);
    if (!r->data) {
        free(r);
        return NULL;
    }
    r->capacity = capacity;
    return r;
}

NTL_API void ntl_ring_free(ntl_ring *r) {
    if (!r)
        return;
    free(r->data);
    free(r);
}

static void put(ntl_ring *r, uint64_t offset, const uint8_t *src, uint64_t n) {
    uint64_t pos = offset % r->capacity;
    uint64_t first = n < r->capacity - pos ? n : r->capacity - pos;
    memcpy(r->data + pos, src, first);
    if (first < n)
        memcpy(r->data, src + first, n - first);
}

NTL_API void ntl_ring_copy_out(const ntl_ring *r, uint64_t offset, uint8_t *out, uint64_t n) {
    uint64_t pos = offset % r->capacity;
    uint64_t first = n < r->capacity - pos ? n : r->capacity - pos;
    memcpy(out, r->data + pos, first);
    if (first < n)
        memcpy(out + first, r->data, n - first);
}

static void set_header(ntl_ring *r, uint64_t offset, uint32_t word0) {
    uint32_t header[2] = {word0, (uint32_t)((offset % r->capacity) / PAGE)};
    put(r, offset, (const uint8_t *)header, 8);
}

int ntl_ring_reserve(ntl_ring *r, uint64_t length, uint64_t max_length, uint8_t **data,
                     uint64_t *offset) {
    uint64_t total = record_size(length);
    if (total > r->capacity || length == 0 || length > max_length) {
        r->rejected++;
        return -EBPF_INVALID_ARGUMENT;
    }
    if (r->producer + total - r->consumer > r->capacity) {
        r->dropped++;
        return -EBPF_NO_MEMORY;
    }
    *offset = r->producer;
    set_header(r, r->producer, (uint32_t)length | NTL_RING_LOCK_BIT);
    r->producer += total;
    if (data) /* contiguous only when the record does not run over the end */
        *data = ((*offset % r->capacity) + NTL_RING_HEADER + length <= r->capacity)
                    ? r->data + (*offset % r->capacity) + NTL_RING_HEADER
                    : NULL;
    return 0;
}

static uint32_t header_at(const ntl_ring *r, uint64_t offset) {
    uint32_t w;
    ntl_ring_copy_out(r, offset, (uint8_t *)&w, 4);
    return w;
}

void ntl_ring_submit(ntl_ring *r, uint64_t offset) {
    set_header(r, offset, header_at(r, offset) & ~NTL_RING_LOCK_BIT);
    r->produced++;
}

void ntl_ring_discard(ntl_ring *r, uint64_t offset) {
    set_header(r, offset, (header_at(r, offset) & ~NTL_RING_LOCK_BIT) | NTL_RING_DISCARD_BIT);
}

NTL_API int ntl_ring_output(ntl_ring *r, const uint8_t *src, uint64_t length, uint64_t max_length) {
    uint64_t offset;
    int code = ntl_ring_reserve(r, length, max_length, NULL, &offset);
    if (code)
        return code;
    put(r, offset + NTL_RING_HEADER, src, length);
    ntl_ring_submit(r, offset);
    return 0;
}

NTL_API uint64_t ntl_ring_walk(const ntl_ring *r, uint64_t *offsets, uint32_t *lengths,
                               uint64_t max, uint64_t *end) {
    uint64_t off = r->consumer, n = 0;
    while (off < r->producer && n < max) {
        uint32_t header = header_at(r, off);
        if (header & NTL_RING_LOCK_BIT)
            break;
        uint32_t length = header & ~(NTL_RING_LOCK_BIT | NTL_RING_DISCARD_BIT);
        offsets[n] = off + NTL_RING_HEADER;
        lengths[n] = length | (header & NTL_RING_DISCARD_BIT);
        n++;
        off += record_size(length);
    }
    if (end)
        *end = off;
    return n;
}
