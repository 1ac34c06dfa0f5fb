/* bpf_get_prandom_u32 draws from a Mersenne Twister seeded exactly as Python's
 * random.Random(seed) (init_by_array over the seed's 32-bit words), so a seeded emulator gives
 * the same numbers on every engine and matches `random.Random(seed).getrandbits(32)`.
 * (MT19937: Matsumoto & Nishimura, 1998; the algorithm as published.)
 */
#include "ntl.h"

#define N 624
#define M 397

static void init_genrand(ntl_env *env, uint32_t s) {
    env->mt[0] = s;
    for (uint32_t i = 1; i < N; i++)
        env->mt[i] = 1812433253u * (env->mt[i - 1] ^ (env->mt[i - 1] >> 30)) + i;
    env->mti = N;
}

NTL_API void ntl_env_seed(ntl_env *env, const uint32_t *key, uint32_t key_length) {
    uint32_t *mt = env->mt;
    init_genrand(env, 19650218u);
    uint32_t i = 1, j = 0;
    uint32_t k = N > key_length ? N : key_length;
    for (; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525u)) + key[j] + j;
        i++;
        j++;
        if (i >= N) {
            mt[0] = mt[N - 1];
            i = 1;
        }
        if (j >= key_length)
            j = 0;
    }
    for (k = N - 1; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941u)) - i;
        i++;
        if (i >= N) {
            mt[0] = mt[N - 1];
            i = 1;
        }
    }
    mt[0] = 0x80000000u;
}

NTL_API uint32_t ntl_env_random(ntl_env *env) {
    static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
    uint32_t *mt = env->mt;
    uint32_t y;
    if (env->mti >= N) {
        uint32_t kk;
        for (kk = 0; kk < N - M; kk++) {
            y = (mt[kk] & 0x80000000u) | (mt[kk + 1] & 0x7fffffffu);
            mt[kk] = mt[kk + M] ^ (y >> 1) ^ mag01[y & 1u];
        }
        for (; kk < N - 1; kk++) {
            y = (mt[kk] & 0x80000000u) | (mt[kk + 1] & 0x7fffffffu);
            mt[kk] = mt[kk + (M - N)] ^ (y >> 1) ^ mag01[y & 1u];
        }
        y = (mt[N - 1] & 0x80000000u) | (mt[0] & 0x7fffffffu);
        mt[N - 1] = mt[M - 1] ^ (y >> 1) ^ mag01[y & 1u];
        env->mti = 0;
    }
    y = mt[env->mti++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    return y;
}
