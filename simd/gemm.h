/* gemm.h — the one matrix-multiply core of the SIMD backend (per ISA).
 *
 *   C[M,N] = res + bias + A[M,K] B[K,N]
 *
 * Linear layers, 1x1 and general convolutions (implicit im2col), the
 * Winograd transform-domain products and nothing else go through it; only
 * the packing of A and B differs (struct gemm_op says how). The design is
 * the classic one of GotoBLAS/BLIS: A and B are copied into contiguous
 * panels (MR rows of A, NR columns of B, K in blocks of at most GEMM_KC) and
 * a register-blocked micro-kernel multiplies one MR x NR tile at a time,
 * broadcasting A values and loading B as vectors.
 *
 * Reduction order: every C element is a float FMA chain over each k block
 * (k increasing), added to the running value (res for the first block) and
 * then the bias, in the same order whatever the thread count, so results
 * are deterministic and identical for any number of threads. Against the
 * double-accumulating reference the error is bounded by
 * (K + 4) u (|res| + |bias| + sum_k |a_k b_k|), u = 2^-24. */
#ifndef ONESTEP_SIMD_GEMM_H
#define ONESTEP_SIMD_GEMM_H

#include "../ref/ops.h"
#include "vec.h"

/* Register tile MR x NR (NR = NV vectors). The accumulators MR*NV plus NV B
 * vectors and one broadcast must fit the register file: 24+5 of 32 zmm,
 * 12+3 of 16 ymm, 24+4 of 32 q registers. On AVX-512, 6 x 64 needs fewer
 * loads per FMA than 12 x 32 (10 vs 14 per 24) and NR = 64 divides every
 * channel count of the models, so B has no ragged edge panels. Measured
 * on the UNet's linear shapes, 6x64 and 8x48 came out ahead of 12x32 and
 * 14x32 by 5-10% (all reach 97-100% of peak on data in L1). */
#if defined(GEMM_MR16) && VL == 16
/* set from outside (tuning experiments) */
#define GEMM_MR GEMM_MR16
#define GEMM_NV GEMM_NV16
#elif VL == 16
#define GEMM_MR 6
#define GEMM_NV 4
#elif VL == 8
#define GEMM_MR 6
#define GEMM_NV 2
#else
#define GEMM_MR 8
#define GEMM_NV 3
#endif
#define GEMM_NR (GEMM_NV * VL)
#ifndef GEMM_KC
#define GEMM_KC 384   /* k block: the MR x KC A panel stays in L1, the KC x NR B panel in L2; K = 320 (the
                       * UNet's first level) in one block, so C is written once (measured: 10-15% faster
                       * than 256 on the wide GEGLU shapes) */
#endif
#ifndef GEMM_MCP
#define GEMM_MCP 16   /* A panels (MC = 16 MR rows) per work item: the A block stays in L2 */
#endif
#ifndef GEMM_NCP
#define GEMM_NCP 128  /* B panels per packed block (NC = 128 NR columns) */
#endif

enum gemm_a_kind {
    GEMM_A_ROWS,   /* A[m][k] = a.p[m * a.ld + k], dtype a.dt */
    GEMM_A_PACKED, /* panels prepared by the caller (see a_packed) */
};

enum gemm_b_kind {
    GEMM_B_ROWS,   /* B[k][n] = b.p[k * b.ld + n], f32 */
    GEMM_B_ROWS_T, /* B[k][n] = b.p[n * b.ld + k], dtype b.dt (nn.Linear weights) */
    GEMM_B_IM2COL, /* B[(c, ky, kx)][(oy, ox)] = x[c][oy s + ky - pad][ox s + kx - pad] */
    GEMM_B_PACKED,
};

struct gemm_src {
    const void *p;
    enum dtype dt;
    size_t ld;
    const struct conv2d_shape *conv; /* GEMM_B_IM2COL */
};

struct gemm_op {
    int M, N, K;
    enum gemm_a_kind a_kind;
    struct gemm_src a;
    /* GEMM_A_PACKED: panel p (rows p MR ..) is a_packed + p a_pstride, laid
     * out [K][MR] (row k of the panel at + k MR) */
    const float *a_packed;
    size_t a_pstride;
    enum gemm_b_kind b_kind;
    struct gemm_src b;
    /* GEMM_B_PACKED: panel q (columns q NR ..) is b_packed + q b_pstride,
     * its row k (NR floats) at + k b_ld (0: NR, rows back to back) */
    const float *b_packed;
    size_t b_pstride, b_ld;
    float *c;
    size_t ldc;
    size_t c_vs;         /* distance between C's vectors of VL columns (0: VL, i.e. contiguous rows);
                          * Winograd interleaves its 36 products this way */
    const float *res;    /* laid out like c, may be c itself, or NULL */
    const float *bias_n; /* bias per column n (linear), or NULL */
    const float *bias_m; /* bias per row m (convolution: per output channel), or NULL */
};

/* threads 1: run in the calling thread (also from inside a parallel region). */
void SX(gemm_run)(const struct gemm_op *g, int threads);

/* The micro-kernel, exposed for the attention kernel's tiles:
 * C[MR x NR] = (sum_k A[i][k] B[k][j] + cin) + bias, A[i][k] at
 * a[k acs + i ars] (packed panels: acs = MR, ars = 1; a row-major matrix
 * read in place: acs = 1, ars = its row length), B[k][j] at b[k ldb + j]. */
/* The same with C's (and cin's) vector j of row i at c + i ldc + j cvs. */
VINLINE void gemm_tile_vs(const int MR, const int NV, int kc, const float *restrict a, size_t acs, size_t ars,
                          const float *restrict b, size_t ldb, float *c, size_t ldc, size_t cvs, const float *cin,
                          size_t ldcin, const float *bias_n, const float *bias_m)
{
    /* The products are summed from zero and C's old value is added at the
     * end: its cache lines, requested here, arrive while the k loop runs
     * instead of stalling the start of every tile. */
    if (cin) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++) __builtin_prefetch(cin + (size_t)i * ldcin + j * cvs, 0, 3);
        }
    }
    vf acc[16][4];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) acc[i][j] = vf_zero();
    }
    for (int k = 0; k < kc; k++) {
        vf bv[4];
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) bv[j] = vf_load(b + (size_t)k * ldb + j * VL);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            vf av = vf_set1(a[(size_t)k * acs + (size_t)i * ars]);
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++) acc[i][j] = vf_fma(av, bv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) {
            vf v = acc[i][j];
            if (cin) v = vf_add(v, vf_load(cin + (size_t)i * ldcin + j * cvs));
            if (bias_n) v = vf_add(v, vf_load(bias_n + j * VL));
            if (bias_m) v = vf_add(v, vf_set1(bias_m[i]));
            vf_store(c + (size_t)i * ldc + j * cvs, v);
        }
    }
}

VINLINE void gemm_tile(const int MR, const int NV, int kc, const float *restrict a, size_t acs, size_t ars,
                       const float *restrict b, size_t ldb, float *c, size_t ldc, const float *cin, size_t ldcin,
                       const float *bias_n, const float *bias_m)
{
    gemm_tile_vs(MR, NV, kc, a, acs, ars, b, ldb, c, ldc, VL, cin, ldcin, bias_n, bias_m);
}

#endif
