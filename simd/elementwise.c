/* elementwise.c — activations, GEGLU, adds, scale, transposes, copies and
 * nearest-neighbour upsampling. All memory-bound: one pass, split across
 * threads in fixed chunks (each element computed once, so any thread count
 * gives the same bits). */
#include <omp.h>
#include <string.h>

#include "kernels.h"
#include "vmath.h"

/* Chunks big enough to amortise the fork, small enough to balance. */
#define CHUNK ((size_t)1 << 16)

static int team(const struct ops *o, size_t n)
{
    return n >= 2 * CHUNK ? o->threads : 1;
}

void SX(simd_act)(const struct ops *o, float *y, const float *x, size_t n, enum act a)
{
    const long nch = (long)((n + CHUNK - 1) / CHUNK);
    const int threads = team(o, n);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (long ch = 0; ch < nch; ch++) {
        size_t i = (size_t)ch * CHUNK, e = n - i < CHUNK ? n : i + CHUNK;
        for (; i + VL <= e; i += VL) vf_store(y + i, vact(vf_load(x + i), a));
        if (i < e) vf_storen(y + i, vact(vf_loadn(x + i, (int)(e - i)), a), (int)(e - i));
    }
}

void SX(simd_geglu)(const struct ops *o, float *y, const float *x, int rows, int dim)
{
    const int threads = team(o, (size_t)rows * dim);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *h = x + (size_t)r * 2 * dim, *gate = h + dim;
        float *yr = y + (size_t)r * dim;
        int i = 0;
        /* the reference rounds gelu(gate) to float, then multiplies */
        for (; i + VL <= dim; i += VL) vf_store(yr + i, vf_mul(vf_load(h + i), vgelu(vf_load(gate + i))));
        if (i < dim) vf_storen(yr + i, vf_mul(vf_loadn(h + i, dim - i), vgelu(vf_loadn(gate + i, dim - i))), dim - i);
    }
}

void SX(simd_add)(const struct ops *o, float *y, const float *a, const float *b, size_t n)
{
    const long nch = (long)((n + CHUNK - 1) / CHUNK);
    const int threads = team(o, n);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (long ch = 0; ch < nch; ch++) {
        size_t i = (size_t)ch * CHUNK, e = n - i < CHUNK ? n : i + CHUNK;
        for (; i + VL <= e; i += VL) vf_store(y + i, vf_add(vf_load(a + i), vf_load(b + i)));
        if (i < e) {
            int k = (int)(e - i);
            vf_storen(y + i, vf_add(vf_loadn(a + i, k), vf_loadn(b + i, k)), k);
        }
    }
}

void SX(simd_add_channel)(const struct ops *o, float *y, const float *x, const float *v, int C, int HW)
{
    const int threads = team(o, (size_t)C * HW);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * HW;
        float *yc = y + (size_t)c * HW;
        const vf vc = vf_set1(v[c]);
        int i = 0;
        for (; i + VL <= HW; i += VL) vf_store(yc + i, vf_add(vf_load(xc + i), vc));
        if (i < HW) vf_storen(yc + i, vf_add(vf_loadn(xc + i, HW - i), vc), HW - i);
    }
}

void SX(simd_scale)(const struct ops *o, float *y, const float *x, float s, size_t n)
{
    const long nch = (long)((n + CHUNK - 1) / CHUNK);
    const int threads = team(o, n);
    const vf sv = vf_set1(s);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (long ch = 0; ch < nch; ch++) {
        size_t i = (size_t)ch * CHUNK, e = n - i < CHUNK ? n : i + CHUNK;
        for (; i + VL <= e; i += VL) vf_store(y + i, vf_mul(vf_load(x + i), sv));
        if (i < e) vf_storen(y + i, vf_mul(vf_loadn(x + i, (int)(e - i)), sv), (int)(e - i));
    }
}

/* y[c][r] = x[r][c]: whole VL x VL blocks in registers, the ragged edges
 * element by element. Threads take bands of VL source rows. */
void SX(simd_transpose)(const struct ops *o, float *y, const float *x, int rows, int cols)
{
    const int bands = (rows + VL - 1) / VL;
    const int threads = team(o, (size_t)rows * cols);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int band = 0; band < bands; band++) {
        const int r0 = band * VL;
        int c0 = 0;
        if (r0 + VL <= rows) {
            for (; c0 + VL <= cols; c0 += VL) {
                vf b[VL];
                for (int t = 0; t < VL; t++) b[t] = vf_load(x + (size_t)(r0 + t) * cols + c0);
                vf_transpose(b);
                for (int t = 0; t < VL; t++) vf_store(y + (size_t)(c0 + t) * rows + r0, b[t]);
            }
        }
        const int r1 = r0 + VL < rows ? r0 + VL : rows;
        for (int r = r0; r < r1; r++)
            for (int c = c0; c < cols; c++) y[(size_t)c * rows + r] = x[(size_t)r * cols + c];
    }
}

/* torch's nearest rule, as ops_ref.c: exactly 2x is dst/2, else
 * floor(dst * (float)in/out) clamped (aten/src/ATen/native/UpSample.h). */
static int nearest_src(int dst, int in, int out)
{
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    float scale = (float)in / (float)out;
    int src = (int)((float)dst * scale); /* non-negative: truncation is floor */
    return src < in - 1 ? src : in - 1;
}

void SX(simd_upsample_nearest)(const struct ops *o, float *y, const float *x, int C, int H, int W, int OH, int OW)
{
    int *ix = simd_scratch(SCRATCH_T2, (size_t)(OW > 0 ? OW : 1) * sizeof(int));
    for (int ox = 0; ox < OW; ox++) ix[ox] = nearest_src(ox, W, OW);
    const int threads = team(o, (size_t)C * OH * OW);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * H * W;
        float *yc = y + (size_t)c * OH * OW;
        int prev = -1;
        for (int oy = 0; oy < OH; oy++) {
            const int iy = nearest_src(oy, H, OH);
            float *row = yc + (size_t)oy * OW;
            if (iy == prev) { /* same source row as the last output row */
                memcpy(row, row - OW, (size_t)OW * sizeof(float));
                continue;
            }
            const float *src = xc + (size_t)iy * W;
            for (int ox = 0; ox < OW; ox++) row[ox] = src[ix[ox]];
            prev = iy;
        }
    }
}

void SX(simd_copy2d)(const struct ops *o, float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t rows,
                     size_t cols)
{
    (void)o;
    for (size_t r = 0; r < rows; r++) memmove(dst + r * ld_dst, src + r * ld_src, cols * sizeof *dst);
}
