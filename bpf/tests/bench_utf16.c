// ntoslab benchmark: UTF-16LE text work on a 256-byte stack buffer. Four copies of the
// 32-character phrase "\??\C:\Windows\System32\CMD.EXE " (the 2nd and 4th with ASCII case
// flipped, the 3rd ending in U+00C4 instead of a space) are lower-cased (ASCII A-Z and Latin-1
// U+00C0-U+00DE except U+00D7), then searched for the code units "\cmd".
// No maps, no helpers, no global data; the context is ignored.
// Expected r0: 4 matches; returns (hash ^ (matches << 24)) & 0x7fffffff where hash is
// h = h * 31 + unit over the 128 lower-cased units from h = 0 (32-bit), 0x5b31f88c; r0 =
// 0x5f31f88c = 1597110412
// (model: tests/test_bench_programs.py).
// Linux verifier: constant loop bounds, the buffer is fully written before it is read.
#include "bpf_helpers.h"

#define PHRASE 32             /* UTF-16 code units */
#define COPIES 4
#define UNITS (PHRASE * COPIES) /* 128 units = 256 bytes */

static __attribute__((always_inline)) uint16_t lower(uint16_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c + 0x20;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return c + 0x20;
    return c;
}

SEC("process") int bench_utf16(void* ctx)
{
    uint64_t p[PHRASE / 4]; /* the phrase, four UTF-16LE units per word */
    p[0] = 0x005c003f003f005cULL; /* "\??\" */
    p[1] = 0x0057005c003a0043ULL; /* "C:\W" */
    p[2] = 0x006f0064006e0069ULL; /* "indo" */
    p[3] = 0x0053005c00730077ULL; /* "ws\S" */
    p[4] = 0x0065007400730079ULL; /* "yste" */
    p[5] = 0x005c00320033006dULL; /* "m32\" */
    p[6] = 0x002e0044004d0043ULL; /* "CMD." */
    p[7] = 0x0020004500580045ULL; /* "EXE " */

    uint16_t text[UNITS];
    for (uint32_t i = 0; i < UNITS; i++) {
        uint32_t k = i & (PHRASE - 1);
        uint32_t copy = i / PHRASE;
        uint16_t c = (uint16_t)(p[k >> 2] >> ((k & 3) * 16));
        if ((copy & 1) && ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
            c ^= 0x20;
        if (copy == 2 && k == PHRASE - 1)
            c = 0x00C4; /* LATIN CAPITAL LETTER A WITH DIAERESIS */
        text[i] = c;
    }

    for (uint32_t i = 0; i < UNITS; i++)
        text[i] = lower(text[i]);

    uint32_t matches = 0;
    uint32_t h = 0;
    for (uint32_t i = 0; i < UNITS; i++)
        h = h * 31 + text[i];
    for (uint32_t i = 0; i + 4 <= UNITS; i++) {
        uint32_t d = (uint32_t)(text[i] ^ '\\') | (uint32_t)(text[i + 1] ^ 'c') |
                     (uint32_t)(text[i + 2] ^ 'm') | (uint32_t)(text[i + 3] ^ 'd');
        matches += ((d - 1) >> 31) & 1; /* 1 when d == 0 (d < 0x10000), without a branch */
    }
    return (int)((h ^ (matches << 24)) & 0x7fffffff);
}
