/* SIMD linear layers and embeddings vs the reference, every ISA this CPU runs.
 *
 * Tolerance (per output element): the SIMD GEMM computes one float FMA
 * chain per element, started from res + bias; the reference sums in double
 * and rounds twice (after + bias, after + res). Each of the K + 1 float
 * roundings of the chain errs by at most u = 2^-24 of a partial sum, and
 * every partial sum is bounded by S = |res| + |bias| + sum_k |x_k w_k|, so
 *     |simd - ref| <= (K + 4) u S
 * (Higham, Accuracy and Stability of Numerical Algorithms, 3.1). The shapes
 * sweep the register tile (MR rows, NR columns of every ISA) and the cache
 * blocks (k blocks of 256, 16-panel row blocks, 128-panel column blocks)
 * by one either side, tiny and large K, all three weight dtypes at odd
 * addresses, with and without bias and residual, the residual also being
 * the output buffer itself; and thread counts 1, 2 and 3 must agree bit for
 * bit (each element is computed by one thread in one fixed order). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/ops.h"
#include "lib/check.h"
#include "lib/simd_util.h"

struct shape {
    int M, K, N;
};

static const struct shape shapes[] = {
    {1, 1, 1},     {1, 7, 15},    {7, 17, 33},    {13, 63, 31},   {12, 16, 32},  {11, 65, 17},  {6, 8, 16},
    {5, 15, 13},   {25, 100, 65}, {77, 255, 12},  {64, 256, 96},  {9, 257, 47},  {49, 513, 20}, {193, 31, 40},
    {192, 64, 64}, {3, 1023, 7},  {2, 40, 4097},  {100, 320, 64}, {1, 1280, 97}, {31, 9, 1023}, {5, 385, 70},
    /* big enough for a thread team: shared packing, and B-panel items with k blocks inside */
    {200, 300, 200}, {130, 700, 256}, {150, 800, 640},
};

static const enum dtype dts[] = {DT_F32, DT_F16, DT_BF16};

/* tol[m][n] = (K + 4) u (|res| + |b| + sum |x w|) */
static void bound(double *tol, const float *x, const struct wtensor *w, const struct wtensor *b, const float *res,
                  int M, int K, int N)
{
    float *wf = malloc((size_t)N * K * sizeof(float));
    for (size_t i = 0; i < (size_t)N * K; i++) wf[i] = wtensor_get(w, i);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += fabs((double)x[(size_t)m * K + k] * wf[(size_t)n * K + k]);
            if (b) s += fabs(wtensor_get(b, (size_t)n));
            if (res) s += fabs(res[(size_t)m * N + n]);
            tol[(size_t)m * N + n] = (K + 4) * U32 * s;
        }
    free(wf);
}

static void one(const char *isa, const struct shape *sh, enum dtype dt, int with_bias, int res_mode, int offset)
{
    const int M = sh->M, K = sh->K, N = sh->N;
    const size_t nx = (size_t)M * K, nw = (size_t)N * K, ny = (size_t)M * N;
    float *x = fbuf(nx), *wv = fbuf(nw), *bv = fbuf((size_t)N), *res = fbuf(ny);
    fill_uniform(x, nx, -1, 1, (uint64_t)(M * 131 + K));
    fill_uniform(wv, nw, -1, 1, (uint64_t)(N * 7 + K));
    fill_uniform(bv, (size_t)N, -1, 1, (uint64_t)N);
    fill_uniform(res, ny, -2, 2, (uint64_t)(M + N));
    int64_t ws[2] = {N, K}, bs[1] = {N};
    struct wtensor w, b;
    wtensor_make(&w, dt, 2, ws, wv, offset);
    wtensor_make(&b, dt, 1, bs, bv, offset + 1);
    const struct tensor *bt = with_bias ? &b.t : NULL;

    /* res_mode 0: none; 1: separate buffer; 2: the output buffer itself */
    float *want = fbuf(ny);
    const float *r = res_mode ? res : NULL;
    ops_ref()->linear(ops_ref(), want, x, &w.t, bt, r, M, K, N);
    double *tol = dbuf(ny);
    bound(tol, x, &w, with_bias ? &b : NULL, r, M, K, N);

    float *got[3];
    for (int t = 1; t <= 3; t++) {
        const struct ops *o = simd_table(isa, t);
        got[t - 1] = fbuf(ny);
        if (res_mode == 2) {
            memcpy(got[t - 1], res, ny * sizeof(float));
            o->linear(o, got[t - 1], x, &w.t, bt, got[t - 1], M, K, N);
        } else {
            o->linear(o, got[t - 1], x, &w.t, bt, r, M, K, N);
        }
    }
    char what[160];
    snprintf(what, sizeof what, "%s linear M=%d K=%d N=%d %s%s%s +%d", isa, M, K, N, dtype_name(dt),
             with_bias ? " bias" : "", res_mode == 1 ? " res" : res_mode == 2 ? " res=y" : "", offset);
    check_within(what, got[0], want, tol, ny);
    snprintf(what, sizeof what, "%s linear M=%d K=%d N=%d: 2 and 3 threads == 1 thread", isa, M, K, N);
    int same = memcmp(got[0], got[1], ny * sizeof(float)) == 0 && memcmp(got[0], got[2], ny * sizeof(float)) == 0;
    check(same, "%s", what);
    for (int t = 0; t < 3; t++) free(got[t]);
    free(x);
    free(wv);
    free(bv);
    free(res);
    free(want);
    free(tol);
    wtensor_free(&w);
    wtensor_free(&b);
}

static void embedding(const char *isa, enum dtype dt, int dim)
{
    const int rows = 50, n = 9;
    float *vals = fbuf((size_t)rows * dim);
    fill_uniform(vals, (size_t)rows * dim, -3, 3, (uint64_t)dim);
    int64_t shape[2] = {rows, dim};
    struct wtensor t;
    wtensor_make(&t, dt, 2, shape, vals, 3);
    int32_t ids[9] = {0, 49, 7, 7, 1, 48, 25, 3, 0};
    float *want = fbuf((size_t)n * dim), *got = fbuf((size_t)n * dim);
    ops_ref()->embedding(ops_ref(), want, &t.t, ids, n, dim);
    const struct ops *o = simd_table(isa, 2);
    o->embedding(o, got, &t.t, ids, n, dim);
    char what[96];
    snprintf(what, sizeof what, "%s embedding %s dim %d (exact widening)", isa, dtype_name(dt), dim);
    check_within(what, got, want, NULL, (size_t)n * dim);
    free(vals);
    free(want);
    free(got);
    wtensor_free(&t);
}

int main(void)
{
    const char *isas[4];
    int nisa = simd_isas(isas, 4);
    for (int i = 0; i < nisa; i++) {
        int v = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            for (int d = 0; d < 3; d++) {
                /* rotate the bias / residual variants through the shapes */
                one(isas[i], &shapes[s], dts[d], (v % 2) == 0, v % 3, 1 + (v % 3));
                v++;
            }
        }
        check_note("%s linear: worst error / bound %.3f", isas[i], simd_worst_ratio());
        for (int d = 0; d < 3; d++) {
            embedding(isas[i], dts[d], 1);
            embedding(isas[i], dts[d], 17);
            embedding(isas[i], dts[d], 1024);
        }
    }
    return check_summary();
}
