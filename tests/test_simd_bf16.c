/* The opt-in bf16 path (ONESTEP_BF16DOT=1: bf16 weights through AVX512_BF16
 * vdpbf16ps) vs the reference, where the CPU has it.
 *
 * Tolerance: the activations are rounded to bf16 (8 significant bits, unit
 * roundoff 2^-8), so each product x_k w_k is off by up to 2^-8 |x_k w_k|;
 * the products of two bf16 values are exact in f32 and summed by a chain of
 * K rounded adds, as the f32 path: (K + 4) u S with S = |res| + |b| +
 * sum |x w|, u = 2^-24. The instruction flushes denormals: 1e-35 absolute.
 *     |simd - ref| <= 2^-8 sum |x w| + (K + 4) u S + 1e-35
 * A check that the path really ran: its error must exceed the f32 path's
 * bound somewhere (it rounds the activations). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/ops.h"
#include "../simd/cpu.h"
#include "lib/check.h"
#include "lib/simd_util.h"

struct shape {
    int M, K, N;
};

static const struct shape shapes[] = {{1, 1, 1},   {7, 17, 33},   {13, 64, 64},  {5, 15, 65},
                                      {77, 1024, 70}, {64, 320, 128}, {100, 257, 64}, {3, 2049, 9}};

int main(void)
{
    struct cpu_features f;
    cpu_detect(&f);
    if (!cpu_has_avx512(&f) || !f.avx512bf16) {
        check_skip("this CPU has no AVX512_BF16: the vdpbf16ps path is not built into a table");
        return check_summary();
    }
    setenv("ONESTEP_BF16DOT", "1", 1);
    const struct ops *o[3] = {simd_table("avx512", 1), simd_table("avx512", 2), simd_table("avx512", 3)};
    unsetenv("ONESTEP_BF16DOT");
    check(strstr(ops_describe(o[0]), "vdpbf16ps") != NULL, "ONESTEP_BF16DOT=1 table: \"%s\"", ops_describe(o[0]));
    int beyond_f32 = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s].M, K = shapes[s].K, N = shapes[s].N;
        for (int variant = 0; variant < 3; variant++) {
            const size_t ny = (size_t)M * N;
            float *x = fbuf((size_t)M * K), *wv = fbuf((size_t)N * K), *bv = fbuf((size_t)N), *res = fbuf(ny);
            fill_uniform(x, (size_t)M * K, -1, 1, (uint64_t)(M + K));
            fill_uniform(wv, (size_t)N * K, -1, 1, (uint64_t)(N + K));
            fill_uniform(bv, (size_t)N, -1, 1, 5);
            fill_uniform(res, ny, -1, 1, 6);
            int64_t ws[2] = {N, K}, bs[1] = {N};
            struct wtensor w, b;
            wtensor_make(&w, DT_BF16, 2, ws, wv, 1 + variant);
            wtensor_make(&b, DT_BF16, 1, bs, bv, 2);
            const struct tensor *bt = variant != 1 ? &b.t : NULL;
            const float *r = variant >= 1 ? res : NULL;
            float *want = fbuf(ny), *got[3];
            ops_ref()->linear(ops_ref(), want, x, &w.t, bt, r, M, K, N);
            for (int t = 0; t < 3; t++) {
                got[t] = fbuf(ny);
                if (variant == 2) { /* residual is the output buffer */
                    memcpy(got[t], res, ny * sizeof(float));
                    o[t]->linear(o[t], got[t], x, &w.t, bt, got[t], M, K, N);
                } else {
                    o[t]->linear(o[t], got[t], x, &w.t, bt, r, M, K, N);
                }
            }
            double *tol = dbuf(ny);
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    double sxw = 0;
                    for (int k = 0; k < K; k++) sxw += fabs((double)x[(size_t)m * K + k] * wtensor_get(&w, (size_t)n * K + k));
                    double S = sxw + (bt ? fabs(wtensor_get(&b, (size_t)n)) : 0) + (r ? fabs(res[(size_t)m * N + n]) : 0);
                    size_t at = (size_t)m * N + n;
                    tol[at] = sxw / 256.0 + (K + 4) * U32 * S + 1e-35;
                    if (fabs((double)got[0][at] - want[at]) > (K + 4) * U32 * S) beyond_f32 = 1;
                }
            char what[96];
            snprintf(what, sizeof what, "avx512 bf16dot linear M=%d K=%d N=%d%s%s", M, K, N, bt ? " bias" : "",
                     variant == 1 ? " res" : variant == 2 ? " res=y" : "");
            check_within(what, got[0], want, tol, ny);
            check(memcmp(got[0], got[1], ny * sizeof(float)) == 0 && memcmp(got[0], got[2], ny * sizeof(float)) == 0,
                  "avx512 bf16dot M=%d K=%d N=%d: 2 and 3 threads == 1 thread", M, K, N);
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
    }
    check(beyond_f32, "the vdpbf16ps path ran (its error exceeds the f32 path's bound somewhere)");
    check_note("bf16dot: worst error / bound %.3f", simd_worst_ratio());
    return check_summary();
}
