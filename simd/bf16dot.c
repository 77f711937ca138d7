/* bf16dot.c — linear layers with bf16 weights through AVX512_BF16's
 * vdpbf16ps (opt-in: ONESTEP_BF16DOT=1; off by default).
 *
 * vdpbf16ps multiplies pairs of bf16 values and adds both products to an
 * f32 lane: acc += a[2k] b[2k] + a[2k+1] b[2k+1]. The weights are already
 * bf16; the activations are rounded to bf16 (8 significant bits) for it,
 * which is where this path loses accuracy: each product is off by up to
 * 2^-8 of itself, against 2^-24 for the f32 path (tests/test_simd_bf16.c
 * checks that bound). On the CPU this was written for it runs at half the
 * f32 FMA rate, so it saves weight bandwidth and cache, not time; that is
 * why it is not the default.
 *
 * Only the AVX-512 build has it (the file compiles to nothing elsewhere).
 * Layout: A (x) and B (w^T) packed as 32-bit words holding a bf16 pair
 * (k even in the low half), [K/2][MR] and [K/2][NR]; one MR x NR tile per
 * work item over the whole K, items split across threads. */
#include <omp.h>
#include <string.h>

#include "gemm.h"
#include "kernels.h"

#if VL == 16 && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#define BF_MR 6
#define BF_NV 4
#define BF_NR (BF_NV * 16)

#define BF_TARGET __attribute__((target("avx512bf16")))

/* the low 16 bits of a word first: a row of bf16 values read as pairs */
BF_TARGET static void tile(int kp, const uint32_t *restrict a, const uint32_t *restrict b, float *acc_out)
{
    __m512 acc[BF_MR][BF_NV];
#pragma GCC unroll 8
    for (int i = 0; i < BF_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < BF_NV; j++) acc[i][j] = _mm512_setzero_ps();
    for (int k = 0; k < kp; k++) {
        __m512i bv[BF_NV];
#pragma GCC unroll 4
        for (int j = 0; j < BF_NV; j++) bv[j] = _mm512_loadu_si512(b + (size_t)k * BF_NR + j * 16);
#pragma GCC unroll 8
        for (int i = 0; i < BF_MR; i++) {
            __m512i av = _mm512_set1_epi32((int)a[(size_t)k * BF_MR + i]);
#pragma GCC unroll 4
            for (int j = 0; j < BF_NV; j++)
                acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)av, (__m512bh)bv[j]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < BF_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < BF_NV; j++) _mm512_storeu_ps(acc_out + i * BF_NR + j * 16, acc[i][j]);
}

/* x rows m0 .. m0 + BF_MR as bf16 pairs, [kp][BF_MR] (zeros past M and K) */
BF_TARGET static void pack_x(uint32_t *dst, const float *x, int M, int K, int m0, int kp)
{
    uint16_t row[2 * 64];
    for (int i = 0; i < BF_MR; i++) {
        const int m = m0 + i;
        for (int k0 = 0; k0 < kp; k0 += 64) {
            const int kn = kp - k0 < 64 ? kp - k0 : 64; /* pairs in this piece */
            for (int t = 0; t < 2 * kn; t += 32) {
                float f[32];
                for (int u = 0; u < 32; u++) {
                    int k = 2 * k0 + t + u;
                    f[u] = m < M && k < K ? x[(size_t)m * K + k] : 0.0f;
                }
                /* cvtne2ps_pbh(hi, lo): lo's 16 values in the low half, round to nearest even */
                __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(f + 16), _mm512_loadu_ps(f));
                _mm512_storeu_si512(row + t, (__m512i)v);
            }
            for (int p = 0; p < kn; p++) {
                uint32_t w = (uint32_t)row[2 * p] | (uint32_t)row[2 * p + 1] << 16;
                dst[(size_t)(k0 + p) * BF_MR + i] = w;
            }
        }
    }
}

/* w rows n0 .. n0 + BF_NR (bf16 as stored) as pairs, [kp][BF_NR] */
static void pack_w(uint32_t *dst, const unsigned char *w, int N, int K, int n0, int kp)
{
    for (int j = 0; j < BF_NR; j++) {
        const int n = n0 + j;
        for (int p = 0; p < kp; p++) {
            uint16_t lo = 0, hi = 0;
            if (n < N) {
                memcpy(&lo, w + ((size_t)n * K + 2 * p) * 2, 2);
                if (2 * p + 1 < K) memcpy(&hi, w + ((size_t)n * K + 2 * p + 1) * 2, 2);
            }
            dst[(size_t)p * BF_NR + j] = (uint32_t)lo | (uint32_t)hi << 16;
        }
    }
}

int SX(bf16dot_linear)(const struct ops *o, float *y, const float *x, const struct tensor *w, const float *bias,
                       const float *res, int M, int K, int N)
{
    if (w->dtype != DT_BF16 || M <= 0 || N <= 0) return 0;
    const int kp = (K + 1) / 2, mp = (M + BF_MR - 1) / BF_MR, np = (N + BF_NR - 1) / BF_NR;
    uint32_t *ap = simd_scratch(SCRATCH_A, ((size_t)mp * kp * BF_MR + 1) * sizeof(uint32_t));
    uint32_t *bp = simd_scratch(SCRATCH_B, ((size_t)np * kp * BF_NR + 1) * sizeof(uint32_t));
    const long items = (long)mp * np;
    const int threads = o->threads;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
#pragma omp for schedule(static)
        for (int p = 0; p < mp; p++) pack_x(ap + (size_t)p * kp * BF_MR, x, M, K, p * BF_MR, kp);
#pragma omp for schedule(static)
        for (int q = 0; q < np; q++) pack_w(bp + (size_t)q * kp * BF_NR, w->data, N, K, q * BF_NR, kp);
#pragma omp for schedule(static)
        for (long it = 0; it < items; it++) {
            const int p = (int)(it % mp), q = (int)(it / mp);
            float acc[BF_MR * BF_NR];
            tile(kp, ap + (size_t)p * kp * BF_MR, bp + (size_t)q * kp * BF_NR, acc);
            for (int i = 0; i < BF_MR && p * BF_MR + i < M; i++) {
                const int m = p * BF_MR + i;
                for (int j = 0; j < BF_NR && q * BF_NR + j < N; j++) {
                    const int n = q * BF_NR + j;
                    const size_t at = (size_t)m * N + n;
                    float v = acc[i * BF_NR + j];
                    if (bias) v += bias[n];
                    y[at] = res ? v + res[at] : v;
                }
            }
        }
    }
    return 1;
}
#else
typedef int bf16dot_not_in_this_isa; /* (ISO C wants a non-empty file) */
#endif
