/* SIMD normalisations, softmax, activations and the elementwise / data
 * movement kernels vs the reference, every ISA this CPU runs, on lengths
 * 1, 7, 15, 17, 63, 65, 1023 and beyond (every vector tail, every thread
 * chunk boundary). Data movement and plain adds are exact; the rest carry
 * the tolerances derived next to them (u = 2^-24, the float unit roundoff;
 * the reference computes in double and rounds once). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/ops.h"
#include "lib/check.h"
#include "lib/simd_util.h"

static const int lens[] = {1, 7, 15, 17, 63, 65, 1023, 140000};
#define NLENS (int)(sizeof lens / sizeof lens[0])

/* Block-wise summation of the kernels: float lanes over at most 64 vectors,
 * then double. Its relative error on a sum of non-negative terms, and its
 * absolute error in units of sum |x|, is below LSUM. */
#define LSUM (72 * U32)

/* ---- activations ---- */

/* Per-element bounds, from the conditioning of each function and the
 * float vector math (exp: Taylor to degree 7 after exact reduction, <= 4 u;
 * erfc: fits of 1e-9 plus evaluation, <= 12 u):
 *  SiLU x/(1+e^-x): 4 u from exp, 2 roundings, the reference's: 8 u |y|.
 *  GELU 0.5 x erfc(-x/sqrt2): erfc's 12 u, plus the rounding of the argument
 *    z = x/sqrt2 amplified by erfc's condition number ~2 z^2: (16 + 4 z^2) u |y|.
 *  quick GELU x/(1+e^(-1.702x)): the product 1.702 x rounds (relative u),
 *    so exp's argument is off by u |1.702 x|: (1.702 |x| + 12) u |y|.
 *  tanh e/(e+2), e = expm1(2|x|): 10 u |y|.
 *  ReLU: exact.
 * Tiny results (below 1e-30) differ in how they underflow: absolute 1e-30. */
static double act_tol(enum act a, float x, float y)
{
    double ay = fabs(y), ax = fabs(x);
    switch (a) {
    case ACT_SILU: return 8 * U32 * ay + 1e-30;
    case ACT_GELU: return (16 + 2 * ax * ax) * U32 * ay + 1e-30;
    case ACT_QUICK_GELU: return (1.702 * ax + 12) * U32 * ay + 1e-30;
    case ACT_TANH: return 10 * U32 * ay + 1e-30;
    default: return 0;
    }
}

static const char *act_name(enum act a)
{
    static const char *n[] = {"none", "silu", "gelu", "quick_gelu", "relu", "tanh"};
    return n[a];
}

static void test_act(const char *isa)
{
    for (int a = ACT_NONE; a <= ACT_TANH; a++) {
        for (int li = 0; li < NLENS; li++) {
            size_t n = (size_t)lens[li];
            float *x = fbuf(n), *want = fbuf(n), *got = fbuf(n), *got2 = fbuf(n);
            fill_uniform(x, n, -12, 12, n + (size_t)a);
            /* special values up front */
            const float sp[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 100.0f, -100.0f, 88.5f, -88.5f, 0.4999f, -0.5f, 9.5f};
            for (size_t i = 0; i < n && i < sizeof sp / sizeof sp[0]; i++) x[i] = sp[i];
            ops_ref()->act(ops_ref(), want, x, n, (enum act)a);
            const struct ops *o = simd_table(isa, 1), *o2 = simd_table(isa, 2);
            o->act(o, got, x, n, (enum act)a);
            o2->act(o2, got2, x, n, (enum act)a);
            double *tol = dbuf(n);
            for (size_t i = 0; i < n; i++) tol[i] = act_tol((enum act)a, x[i], want[i]);
            char what[96];
            snprintf(what, sizeof what, "%s act %s n=%zu", isa, act_name((enum act)a), n);
            check_within(what, got, want, a == ACT_NONE || a == ACT_RELU ? NULL : tol, n);
            if (n > 100000) check(memcmp(got, got2, n * sizeof(float)) == 0, "%s act %s: 2 threads == 1", isa, act_name((enum act)a));
            free(x);
            free(want);
            free(got);
            free(got2);
            free(tol);
        }
    }
}

/* GEGLU y = h gelu(g): GELU's bound plus the product's rounding. */
static void test_geglu(const char *isa)
{
    const int shapes[][2] = {{1, 1}, {3, 7}, {5, 17}, {4, 65}, {2, 1023}, {77, 1280}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int rows = shapes[k][0], dim = shapes[k][1];
        size_t nx = (size_t)rows * 2 * dim, ny = (size_t)rows * dim;
        float *x = fbuf(nx), *want = fbuf(ny), *got = fbuf(ny);
        fill_uniform(x, nx, -6, 6, nx);
        ops_ref()->geglu(ops_ref(), want, x, rows, dim);
        const struct ops *o = simd_table(isa, 2);
        o->geglu(o, got, x, rows, dim);
        double *tol = dbuf(ny);
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < dim; i++) {
                float g = x[(size_t)r * 2 * dim + dim + i];
                tol[(size_t)r * dim + i] = act_tol(ACT_GELU, g, want[(size_t)r * dim + i]) + U32 * fabs(want[(size_t)r * dim + i]);
            }
        char what[64];
        snprintf(what, sizeof what, "%s geglu %dx%d", isa, rows, dim);
        check_within(what, got, want, tol, ny);
        free(x);
        free(want);
        free(got);
        free(tol);
    }
}

/* ---- normalisation ----
 * y = (x - mean) inv gamma + beta, inv = 1/sqrt(var + eps). The mean is off
 * by at most LSUM mean|x|; var is a sum of squares (relative LSUM), so inv
 * is within LSUM/2 + 2u; the affine adds 4 roundings:
 *   |dy| <= |gamma| inv (LSUM mean|x| + (LSUM/2 + 6u) |x - mean|) + 2u (|y| + |beta|)
 * For group norm + SiLU the SiLU bound is added on top (its slope is < 1.1). */
static void moments_d(const float *x, size_t n, double eps, double *mean, double *inv, double *mabs)
{
    double s = 0, a = 0, v = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        a += fabs(x[i]);
    }
    *mean = s / n;
    *mabs = a / n;
    for (size_t i = 0; i < n; i++) v += (x[i] - *mean) * (x[i] - *mean);
    *inv = 1.0 / sqrt(v / n + eps);
}

static const enum dtype dts[] = {DT_F32, DT_F16, DT_BF16};

static void test_layer_norm(const char *isa)
{
    const int shapes[][2] = {{1, 1}, {3, 7}, {5, 17}, {2, 63}, {4, 65}, {2, 1023}, {77, 1024}, {300, 320}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int rows = shapes[k][0], dim = shapes[k][1];
        enum dtype dt = dts[k % 3];
        size_t n = (size_t)rows * dim;
        float *x = fbuf(n), *gv = fbuf((size_t)dim), *bv = fbuf((size_t)dim), *want = fbuf(n), *got = fbuf(n),
              *got2 = fbuf(n);
        fill_uniform(x, n, -2, 4, n); /* mean ~1: the subtraction matters */
        fill_uniform(gv, (size_t)dim, 0.5f, 1.5f, 1);
        fill_uniform(bv, (size_t)dim, -1, 1, 2);
        int64_t sh[1] = {dim};
        struct wtensor g, b;
        wtensor_make(&g, dt, 1, sh, gv, 1);
        wtensor_make(&b, dt, 1, sh, bv, 3);
        const float eps = 1e-5f;
        ops_ref()->layer_norm(ops_ref(), want, x, &g.t, &b.t, rows, dim, eps);
        const struct ops *o = simd_table(isa, 1), *o2 = simd_table(isa, 2);
        o->layer_norm(o, got, x, &g.t, &b.t, rows, dim, eps);
        o2->layer_norm(o2, got2, x, &g.t, &b.t, rows, dim, eps);
        double *tol = dbuf(n);
        for (int r = 0; r < rows; r++) {
            double mean, inv, mabs;
            moments_d(x + (size_t)r * dim, (size_t)dim, eps, &mean, &inv, &mabs);
            for (int i = 0; i < dim; i++) {
                size_t at = (size_t)r * dim + i;
                double gi = fabs(wtensor_get(&g, (size_t)i)), bi = fabs(wtensor_get(&b, (size_t)i));
                tol[at] = gi * inv * (LSUM * mabs + (LSUM / 2 + 6 * U32) * fabs(x[at] - mean)) +
                          2 * U32 * (fabs(want[at]) + bi);
            }
        }
        char what[80];
        snprintf(what, sizeof what, "%s layer_norm %dx%d %s", isa, rows, dim, dtype_name(dt));
        check_within(what, got, want, tol, n);
        check(memcmp(got, got2, n * sizeof(float)) == 0, "%s layer_norm %dx%d: 2 threads == 1", isa, rows, dim);
        free(x);
        free(gv);
        free(bv);
        free(want);
        free(got);
        free(got2);
        free(tol);
        wtensor_free(&g);
        wtensor_free(&b);
    }
}

static void test_group_norm(const char *isa)
{
    const int shapes[][3] = {{4, 1, 2}, {8, 7, 4}, {32, 15, 32}, {64, 63, 32}, {6, 65, 3}, {128, 1023, 32}, {32, 4096, 32}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        for (int act = 0; act < 2; act++) {
            int C = shapes[k][0], HW = shapes[k][1], groups = shapes[k][2];
            enum dtype dt = dts[(k + act) % 3];
            size_t n = (size_t)C * HW;
            float *x = fbuf(n), *gv = fbuf((size_t)C), *bv = fbuf((size_t)C), *want = fbuf(n), *got = fbuf(n),
                  *got2 = fbuf(n);
            fill_uniform(x, n, -3, 5, n + 7);
            fill_uniform(gv, (size_t)C, 0.5f, 1.5f, 5);
            fill_uniform(bv, (size_t)C, -1, 1, 6);
            int64_t sh[1] = {C};
            struct wtensor g, b;
            wtensor_make(&g, dt, 1, sh, gv, 2);
            wtensor_make(&b, dt, 1, sh, bv, 1);
            const float eps = 1e-6f;
            enum act a = act ? ACT_SILU : ACT_NONE;
            ops_ref()->group_norm(ops_ref(), want, x, &g.t, &b.t, C, HW, groups, eps, a);
            const struct ops *o = simd_table(isa, 1), *o2 = simd_table(isa, 2);
            o->group_norm(o, got, x, &g.t, &b.t, C, HW, groups, eps, a);
            o2->group_norm(o2, got2, x, &g.t, &b.t, C, HW, groups, eps, a);
            double *tol = dbuf(n);
            const int cpg = C / groups;
            for (int gr = 0; gr < groups; gr++) {
                double mean, inv, mabs;
                const size_t base = (size_t)gr * cpg * HW;
                moments_d(x + base, (size_t)cpg * HW, eps, &mean, &inv, &mabs);
                for (size_t i = 0; i < (size_t)cpg * HW; i++) {
                    int ch = gr * cpg + (int)(i / HW);
                    double gi = fabs(wtensor_get(&g, (size_t)ch)), bi = fabs(wtensor_get(&b, (size_t)ch));
                    double v = (x[base + i] - mean) * inv * wtensor_get(&g, (size_t)ch) + wtensor_get(&b, (size_t)ch);
                    double t = gi * inv * (LSUM * mabs + (LSUM / 2 + 6 * U32) * fabs(x[base + i] - mean)) +
                               2 * U32 * (fabs(v) + bi);
                    tol[base + i] = act ? 1.1 * t + act_tol(ACT_SILU, (float)v, want[base + i]) : t;
                }
            }
            char what[96];
            snprintf(what, sizeof what, "%s group_norm%s C=%d HW=%d groups=%d %s", isa, act ? "+silu" : "", C, HW,
                     groups, dtype_name(dt));
            check_within(what, got, want, tol, n);
            check(memcmp(got, got2, n * sizeof(float)) == 0, "%s group_norm C=%d HW=%d: 2 threads == 1", isa, C, HW);
            free(x);
            free(gv);
            free(bv);
            free(want);
            free(got);
            free(got2);
            free(tol);
            wtensor_free(&g);
            wtensor_free(&b);
        }
    }
}

/* softmax y = e_i / sum e: each e_i within 4u (exp) plus the rounding of
 * x - max (u |x - max|, amplified by exp's condition |x - max|... folded
 * in as 2u |x - max|), the sum within LSUM: (LSUM + 8u + 2u |x - max|) |y|. */
static void test_softmax(const char *isa)
{
    const int shapes[][2] = {{1, 1}, {3, 7}, {2, 17}, {5, 65}, {2, 1023}, {3, 4096}, {40, 77}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int rows = shapes[k][0], n = shapes[k][1];
        size_t nn = (size_t)rows * n;
        float *x = fbuf(nn), *want = fbuf(nn), *got = fbuf(nn);
        fill_uniform(x, nn, -8, 8, nn);
        ops_ref()->softmax(ops_ref(), want, x, rows, n);
        const struct ops *o = simd_table(isa, 2);
        o->softmax(o, got, x, rows, n);
        double *tol = dbuf(nn);
        for (int r = 0; r < rows; r++) {
            double mx = -INFINITY;
            for (int i = 0; i < n; i++) mx = fmax(mx, x[(size_t)r * n + i]);
            for (int i = 0; i < n; i++) {
                size_t at = (size_t)r * n + i;
                tol[at] = (LSUM + 8 * U32 + 2 * U32 * fabs(x[at] - mx)) * fabs(want[at]) + 1e-30;
            }
        }
        char what[64];
        snprintf(what, sizeof what, "%s softmax %dx%d", isa, rows, n);
        check_within(what, got, want, tol, nn);
        free(x);
        free(want);
        free(got);
        free(tol);
    }
}

/* ---- exact kernels: the same float operation per element, or a copy ---- */

static void test_exact(const char *isa)
{
    const struct ops *o = simd_table(isa, 2), *r = ops_ref();
    char what[96];
    for (int li = 0; li < NLENS; li++) {
        size_t n = (size_t)lens[li];
        float *a = fbuf(n), *b = fbuf(n), *want = fbuf(n), *got = fbuf(n);
        fill_uniform(a, n, -5, 5, n);
        fill_uniform(b, n, -5, 5, n + 1);
        r->add(r, want, a, b, n);
        o->add(o, got, a, b, n);
        snprintf(what, sizeof what, "%s add n=%zu", isa, n);
        check_within(what, got, want, NULL, n);
        memcpy(got, a, n * sizeof(float)); /* in place, y == a */
        o->add(o, got, got, b, n);
        snprintf(what, sizeof what, "%s add n=%zu in place", isa, n);
        check_within(what, got, want, NULL, n);
        r->scale(r, want, a, 0.18215f, n);
        o->scale(o, got, a, 0.18215f, n);
        snprintf(what, sizeof what, "%s scale n=%zu", isa, n);
        check_within(what, got, want, NULL, n);
        free(a);
        free(b);
        free(want);
        free(got);
    }
    const int ac[][2] = {{1, 1}, {3, 7}, {17, 65}, {320, 1023}, {5, 40000}};
    for (size_t k = 0; k < sizeof ac / sizeof ac[0]; k++) {
        int C = ac[k][0], HW = ac[k][1];
        size_t n = (size_t)C * HW;
        float *x = fbuf(n), *v = fbuf((size_t)C), *want = fbuf(n), *got = fbuf(n);
        fill_uniform(x, n, -5, 5, n);
        fill_uniform(v, (size_t)C, -5, 5, 3);
        r->add_channel(r, want, x, v, C, HW);
        o->add_channel(o, got, x, v, C, HW);
        snprintf(what, sizeof what, "%s add_channel C=%d HW=%d", isa, C, HW);
        check_within(what, got, want, NULL, n);
        free(x);
        free(v);
        free(want);
        free(got);
    }
    const int tr[][2] = {{1, 1}, {7, 15}, {16, 16}, {17, 33}, {63, 65}, {8, 1023}, {320, 4096}, {4096, 77}};
    for (size_t k = 0; k < sizeof tr / sizeof tr[0]; k++) {
        int rows = tr[k][0], cols = tr[k][1];
        size_t n = (size_t)rows * cols;
        float *x = fbuf(n), *want = fbuf(n), *got = fbuf(n);
        fill_uniform(x, n, -5, 5, n);
        r->transpose(r, want, x, rows, cols);
        o->transpose(o, got, x, rows, cols);
        snprintf(what, sizeof what, "%s transpose %dx%d", isa, rows, cols);
        check_within(what, got, want, NULL, n);
        free(x);
        free(want);
        free(got);
    }
    /* 2x, identity, and diffusers' forward_upsample_size (to a skip's odd size) */
    const int up[][5] = {{3, 4, 4, 8, 8}, {2, 5, 9, 10, 18}, {2, 5, 9, 10, 17}, {1, 3, 3, 3, 3}, {4, 7, 5, 13, 11},
                         {64, 32, 32, 64, 64}};
    for (size_t k = 0; k < sizeof up / sizeof up[0]; k++) {
        int C = up[k][0], H = up[k][1], W = up[k][2], OH = up[k][3], OW = up[k][4];
        size_t nx = (size_t)C * H * W, ny = (size_t)C * OH * OW;
        float *x = fbuf(nx), *want = fbuf(ny), *got = fbuf(ny);
        fill_uniform(x, nx, -5, 5, nx);
        r->upsample_nearest(r, want, x, C, H, W, OH, OW);
        o->upsample_nearest(o, got, x, C, H, W, OH, OW);
        snprintf(what, sizeof what, "%s upsample_nearest C=%d %dx%d -> %dx%d", isa, C, H, W, OH, OW);
        check_within(what, got, want, NULL, ny);
        free(x);
        free(want);
        free(got);
    }
    {
        float *src = fbuf(20 * 33), *want = fbuf(20 * 50), *got = fbuf(20 * 50);
        fill_uniform(src, 20 * 33, -1, 1, 9);
        for (int i = 0; i < 20 * 50; i++) want[i] = got[i] = 7.0f;
        r->copy2d(r, want + 3, 50, src + 1, 33, 20, 31);
        o->copy2d(o, got + 3, 50, src + 1, 33, 20, 31);
        check_within("copy2d 20x31 between strides 33 and 50", got, want, NULL, 20 * 50);
        free(src);
        free(want);
        free(got);
    }
}

int main(void)
{
    const char *isas[4];
    int nisa = simd_isas(isas, 4);
    for (int i = 0; i < nisa; i++) {
        test_act(isas[i]);
        test_geglu(isas[i]);
        check_note("%s activations: worst error / bound %.3f", isas[i], simd_worst_ratio());
        test_layer_norm(isas[i]);
        test_group_norm(isas[i]);
        check_note("%s norms: worst error / bound %.3f", isas[i], simd_worst_ratio());
        test_softmax(isas[i]);
        check_note("%s softmax: worst error / bound %.3f", isas[i], simd_worst_ratio());
        test_exact(isas[i]);
    }
    return check_summary();
}
