/* norm.cu — layer norm, group norm (+ SiLU) and softmax.
 *
 * These are memory-bound, so they can afford what ops_ref.c does: sums in
 * double, the two-pass variance (mean first, then the squared deviations —
 * not E[x²] - E[x]², which cancels badly when |mean| >> std), and the
 * normalisation (x - mean) * inv * gamma + beta evaluated in double and
 * rounded once. Only the order of the reduction differs from the reference
 * (a tree instead of ascending index), which double makes invisible in the
 * float result. nvcc is run with -fmad=false, so no FMA contraction changes
 * these expressions either. */
#include <math.h>

#include "state.h"

#define WARPS_PER_BLOCK (CU_THREADS / 32)

/* ---- layer norm: one warp per row (rows are 320..2048 features) ---- */

__global__ void layer_norm_kernel(float *y, const float *x, const void *g, int gdt, const void *b, int bdt,
                                  size_t rows, int dim, float eps)
{
    const int lane = threadIdx.x % 32;
    const size_t first = (size_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32;
    for (size_t r = first; r < rows; r += (size_t)gridDim.x * WARPS_PER_BLOCK) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        double sum = 0.0;
        for (int i = lane; i < dim; i += 32) sum += xr[i];
        const double mean = cu_warp_sum(sum) / dim;
        double sq = 0.0;
        for (int i = lane; i < dim; i += 32) {
            const double d = xr[i] - mean;
            sq += d * d;
        }
        const double var = cu_warp_sum(sq) / dim;
        const double inv = 1.0 / sqrt(var + eps);
        for (int i = lane; i < dim; i += 32) {
            const double bt = b ? (double)cu_ldw(b, bdt, i) : 0.0;
            yr[i] = (float)((xr[i] - mean) * inv * (double)cu_ldw(g, gdt, i) + bt);
        }
    }
}

void cu_layer_norm(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                   const struct tensor *beta, int rows, int dim, float eps)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || rows <= 0 || dim <= 0) return;
    const void *G = cu_weight(s, gamma, dim, "layer_norm");
    const void *B = beta ? cu_weight(s, beta, dim, "layer_norm") : NULL;
    if (s->failed) return;
    size_t blocks = ((size_t)rows + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK;
    if (blocks > 65535) blocks = 65535; /* the kernel strides over the rest */
    layer_norm_kernel<<<(unsigned)blocks, CU_THREADS, 0, s->stream>>>(y, x, G, (int)gamma->dtype, B,
                                                                     beta ? (int)beta->dtype : CU_F32, (size_t)rows,
                                                                     dim, eps);
    cu_launched(s, "layer_norm");
}

/* ---- group norm: a group is one contiguous run of n = C/groups * HW
 * floats (NCHW). The SDXL VAE at 1024² has 32 groups of 4M floats, so a
 * group is split across S blocks; their partial sums land in s->part and
 * the next kernel re-adds the S partials of its group in a fixed order. ---- */

#define GN_SPLIT_MAX 64
#define GN_SPLIT_MIN_FLOATS 16384 /* below this a split is not worth a block */

__device__ double block_sum(double v)
{
    __shared__ double sh[WARPS_PER_BLOCK];
    v = cu_warp_sum(v);
    if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
    __syncthreads();
    v = threadIdx.x < WARPS_PER_BLOCK ? sh[threadIdx.x] : 0.0;
    if (threadIdx.x < 32) v = cu_warp_sum(v);
    return v; /* valid in thread 0 */
}

/* The split [lo, hi) of a group of n floats handled by block `k` of S. */
__device__ __forceinline__ void split_range(size_t n, int S, int k, size_t *lo, size_t *hi)
{
    const size_t len = (n + S - 1) / S;
    *lo = (size_t)k * len;
    *hi = *lo + len < n ? *lo + len : n;
    if (*lo > n) *lo = n;
}

/* part[g*S + k] = sum of split k of group g */
__global__ void gn_sum_kernel(double *part, const float *x, size_t n, int S)
{
    const int g = blockIdx.y, k = blockIdx.x;
    const float *xg = x + (size_t)g * n;
    size_t lo, hi;
    split_range(n, S, k, &lo, &hi);
    double acc = 0.0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) acc += xg[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) part[(size_t)g * S + k] = acc;
}

/* The group's mean from its S partial sums, the same bits in every block. */
__device__ __forceinline__ double group_mean(const double *part, int g, int S, size_t n)
{
    double sum = 0.0;
    for (int k = 0; k < S; k++) sum += part[(size_t)g * S + k];
    return sum / (double)n;
}

/* sq[g*S + k] = sum over split k of (x - mean_g)^2 */
__global__ void gn_sq_kernel(double *sq, const double *part, const float *x, size_t n, int S)
{
    const int g = blockIdx.y, k = blockIdx.x;
    __shared__ double mean_sh;
    if (threadIdx.x == 0) mean_sh = group_mean(part, g, S, n);
    __syncthreads();
    const double mean = mean_sh;
    const float *xg = x + (size_t)g * n;
    size_t lo, hi;
    split_range(n, S, k, &lo, &hi);
    double acc = 0.0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        const double d = xg[i] - mean;
        acc += d * d;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) sq[(size_t)g * S + k] = acc;
}

__global__ void gn_apply_kernel(float *y, const float *x, const double *part, const double *sq, size_t n, int S,
                                int HW, int cpg, const void *gm, int gdt, const void *bt, int bdt, float eps, int act)
{
    const int g = blockIdx.y;
    __shared__ double stat[2];
    if (threadIdx.x == 0) {
        const double mean = group_mean(part, g, S, n);
        double v = 0.0;
        for (int k = 0; k < S; k++) v += sq[(size_t)g * S + k];
        v /= (double)n;
        stat[0] = mean;
        stat[1] = 1.0 / sqrt(v + eps);
    }
    __syncthreads();
    const double mean = stat[0], inv = stat[1];
    const float *xg = x + (size_t)g * n;
    float *yg = y + (size_t)g * n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t ch = (size_t)g * cpg + i / HW;
        const double b = bt ? (double)cu_ldw(bt, bdt, ch) : 0.0;
        /* rounded to float after the affine, as torch's GroupNorm output
         * is a float tensor that SiLU then reads (ops_ref.c does the same) */
        const float v = (float)((xg[i] - mean) * inv * (double)cu_ldw(gm, gdt, ch) + b);
        yg[i] = cu_act_f(v, act);
    }
}

void cu_group_norm(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                   const struct tensor *beta, int C, int HW, int groups, float eps, enum act act)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || C <= 0 || HW <= 0 || groups <= 0) return;
    if (groups > 65535) {
        cu_fail(s, "group_norm: %d groups exceed a CUDA grid's 65535 rows", groups);
        return;
    }
    const int cpg = C / groups; /* as the reference: C % groups channels are left alone */
    const size_t n = (size_t)cpg * HW;
    if (n == 0) return;
    const void *G = cu_weight(s, gamma, C, "group_norm");
    const void *B = beta ? cu_weight(s, beta, C, "group_norm") : NULL;
    if (s->failed) return;
    size_t S = (n + GN_SPLIT_MIN_FLOATS - 1) / GN_SPLIT_MIN_FLOATS;
    if (S > GN_SPLIT_MAX) S = GN_SPLIT_MAX;
    const size_t npart = (size_t)groups * S;
    double *part = (double *)cu_scratch(s, (void **)&s->part, &s->part_bytes, 2 * npart * sizeof(double),
                                        "group_norm partial sums");
    if (!part) return;
    double *sq = part + npart;
    const dim3 split_grid((unsigned)S, (unsigned)groups);
    gn_sum_kernel<<<split_grid, CU_THREADS, 0, s->stream>>>(part, x, n, (int)S);
    if (cu_launched(s, "group_norm sum")) return;
    gn_sq_kernel<<<split_grid, CU_THREADS, 0, s->stream>>>(sq, part, x, n, (int)S);
    if (cu_launched(s, "group_norm variance")) return;
    size_t bx = (n + CU_THREADS - 1) / CU_THREADS;
    const size_t bx_max = 8192 / (size_t)groups + 1; /* enough blocks to fill any GPU; the kernel strides */
    if (bx > bx_max) bx = bx_max;
    gn_apply_kernel<<<dim3((unsigned)bx, (unsigned)groups), CU_THREADS, 0, s->stream>>>(
        y, x, part, sq, n, (int)S, HW, cpg, G, (int)gamma->dtype, B, beta ? (int)beta->dtype : CU_F32, eps, (int)act);
    cu_launched(s, "group_norm apply");
}

/* ---- softmax: one warp per row; exp and the sum in double as the
 * reference (model code uses the fused attention instead; this op serves
 * tools and tests) ---- */

__global__ void softmax_kernel(float *y, const float *x, size_t rows, int n)
{
    const int lane = threadIdx.x % 32;
    const size_t first = (size_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32;
    for (size_t r = first; r < rows; r += (size_t)gridDim.x * WARPS_PER_BLOCK) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float mx = -INFINITY;
        for (int i = lane; i < n; i += 32) mx = fmaxf(mx, xr[i]);
        const double m = cu_warp_max(mx);
        double sum = 0.0;
        for (int i = lane; i < n; i += 32) sum += exp(xr[i] - m);
        sum = cu_warp_sum(sum);
        for (int i = lane; i < n; i += 32) yr[i] = (float)(exp(xr[i] - m) / sum);
    }
}

void cu_softmax(const struct ops *o, float *y, const float *x, int rows, int n)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || rows <= 0 || n <= 0) return;
    size_t blocks = ((size_t)rows + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK;
    if (blocks > 65535) blocks = 65535;
    softmax_kernel<<<(unsigned)blocks, CU_THREADS, 0, s->stream>>>(y, x, (size_t)rows, n);
    cu_launched(s, "softmax");
}
