/* norm.c — layer norm, group norm (+ SiLU, fused) and softmax.
 *
 * Sums run in float along the vector lanes, but only over blocks of
 * SUM_BLOCK elements; each block's total is added into a double. That keeps
 * the summation error near (SUM_BLOCK / VL) u of the absolute sum however
 * long the row (a VAE group norm at 512x512 reduces a million elements),
 * at the cost of one horizontal add per block. Mean and variance are two
 * passes like the reference (no E[x^2] - E[x]^2 cancellation). */
#include <math.h>
#include <omp.h>

#include "kernels.h"
#include "vmath.h"

#define SUM_BLOCK (64 * VL)

/* sum of x[0..n) */
static double block_sum(const float *x, size_t n)
{
    double total = 0.0;
    for (size_t b = 0; b < n; b += SUM_BLOCK) {
        size_t e = n - b < SUM_BLOCK ? n : b + SUM_BLOCK;
        vf acc = vf_zero();
        size_t i = b;
        for (; i + VL <= e; i += VL) acc = vf_add(acc, vf_load(x + i));
        if (i < e) acc = vf_add(acc, vf_loadn(x + i, (int)(e - i)));
        total += vf_hsum(acc);
    }
    return total;
}

/* sum of (x - mean)^2 over x[0..n) */
static double block_sqdev(const float *x, size_t n, float mean)
{
    const vf mv = vf_set1(mean);
    double total = 0.0;
    for (size_t b = 0; b < n; b += SUM_BLOCK) {
        size_t e = n - b < SUM_BLOCK ? n : b + SUM_BLOCK;
        vf acc = vf_zero();
        size_t i = b;
        for (; i + VL <= e; i += VL) {
            vf d = vf_sub(vf_load(x + i), mv);
            acc = vf_fma(d, d, acc);
        }
        if (i < e) {
            /* the buffer's zero padding must not count: pad with the mean */
            float buf[VL];
            for (int t = 0; t < VL; t++) buf[t] = i + t < e ? x[i + t] : mean;
            vf d = vf_sub(vf_load(buf), mv);
            acc = vf_fma(d, d, acc);
        }
        total += vf_hsum(acc);
    }
    return total;
}

/* mean and 1/sqrt(var + eps) of x[0..n), biased variance as torch */
static void moments(const float *x, size_t n, float eps, float *mean, float *inv)
{
    double mu = block_sum(x, n) / (double)n;
    double var = block_sqdev(x, n, (float)mu) / (double)n;
    *mean = (float)mu;
    *inv = (float)(1.0 / sqrt(var + eps));
}

void SX(simd_layer_norm)(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                         const struct tensor *beta, int rows, int dim, float eps)
{
    const float *g = SX(tensor_f32)(gamma, (size_t)dim, SCRATCH_T1);
    const float *b = SX(tensor_f32)(beta, (size_t)dim, SCRATCH_T2);
    const int threads = o->threads;
#pragma omp parallel for num_threads(threads) if (threads > 1 && (long)rows * dim > 65536) schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        float mean, inv;
        moments(xr, (size_t)dim, eps, &mean, &inv);
        const vf mv = vf_set1(mean), iv = vf_set1(inv);
        int i = 0;
        for (; i + VL <= dim; i += VL) {
            vf v = vf_mul(vf_mul(vf_sub(vf_load(xr + i), mv), iv), vf_load(g + i));
            vf_store(yr + i, b ? vf_add(v, vf_load(b + i)) : v);
        }
        if (i < dim) {
            int n = dim - i;
            vf v = vf_mul(vf_mul(vf_sub(vf_loadn(xr + i, n), mv), iv), vf_loadn(g + i, n));
            vf_storen(yr + i, b ? vf_add(v, vf_loadn(b + i, n)) : v, n);
        }
    }
}

void SX(simd_group_norm)(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                         const struct tensor *beta, int C, int HW, int groups, float eps, enum act act)
{
    const float *g = SX(tensor_f32)(gamma, (size_t)C, SCRATCH_T1);
    const float *b = SX(tensor_f32)(beta, (size_t)C, SCRATCH_T2);
    const int cpg = C / groups, threads = o->threads;
    const size_t n = (size_t)cpg * HW;
#pragma omp parallel for num_threads(threads) if (threads > 1 && (size_t)C * HW > 65536) schedule(static)
    for (int gr = 0; gr < groups; gr++) {
        const float *xg = x + (size_t)gr * n;
        float *yg = y + (size_t)gr * n;
        float mean, inv;
        moments(xg, n, eps, &mean, &inv);
        const vf mv = vf_set1(mean);
        for (int c = 0; c < cpg; c++) {
            /* (x - mean) (inv gamma) + beta: the reference's association up to
             * where inv * gamma rounds */
            const int ch = gr * cpg + c;
            const vf a = vf_set1(inv * g[ch]), bb = vf_set1(b ? b[ch] : 0.0f);
            const float *xc = xg + (size_t)c * HW;
            float *yc = yg + (size_t)c * HW;
            int i = 0;
            for (; i + VL <= HW; i += VL)
                vf_store(yc + i, vact(vf_fma(vf_sub(vf_load(xc + i), mv), a, bb), act));
            if (i < HW)
                vf_storen(yc + i, vact(vf_fma(vf_sub(vf_loadn(xc + i, HW - i), mv), a, bb), act), HW - i);
        }
    }
}

void SX(simd_softmax)(const struct ops *o, float *y, const float *x, int rows, int n)
{
    const int threads = o->threads;
#pragma omp parallel for num_threads(threads) if (threads > 1 && (long)rows * n > 65536) schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        vf mx = vf_set1(-INFINITY);
        int i = 0;
        for (; i + VL <= n; i += VL) mx = vf_max(mx, vf_load(xr + i));
        float m = vf_hmax(mx);
        for (; i < n; i++) m = xr[i] > m ? xr[i] : m;
        const vf mv = vf_set1(m);
        /* y = e^(x - max) first, summed in blocks as block_sum does */
        for (i = 0; i + VL <= n; i += VL) vf_store(yr + i, vexp(vf_sub(vf_load(xr + i), mv)));
        if (i < n) vf_storen(yr + i, vexp(vf_sub(vf_loadn(xr + i, n - i), mv)), n - i);
        const vf inv = vf_set1((float)(1.0 / block_sum(yr, (size_t)n)));
        for (i = 0; i + VL <= n; i += VL) vf_store(yr + i, vf_mul(vf_load(yr + i), inv));
        if (i < n) vf_storen(yr + i, vf_mul(vf_loadn(yr + i, n - i), inv), n - i);
    }
}
