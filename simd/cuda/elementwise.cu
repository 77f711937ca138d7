/* elementwise.cu — activations, GEGLU, add, scale, transpose and nearest
 * upsampling. One thread per element in grid-stride loops with size_t
 * indices (the SDXL VAE's largest map is 128 x 1024 x 1024 = 134M floats).
 * Each thread reads and writes only its own element, so y may alias an
 * input (model code does `add_channel(h, h, t)` and `scale(y, y, s)`). */
#include <math.h>

#include "state.h"

#define GRID_STRIDE(i, n)                                                                                           \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void act_kernel(float *y, const float *x, size_t n, int a)
{
    GRID_STRIDE(i, n) y[i] = cu_act_f(x[i], a);
}

void cu_act(const struct ops *o, float *y, const float *x, size_t n, enum act a)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || !n) return;
    act_kernel<<<cu_blocks(n), CU_THREADS, 0, s->stream>>>(y, x, n, (int)a);
    cu_launched(s, "act");
}

/* diffusers GEGLU: hidden, gate = proj(x).chunk(2, dim=-1); hidden * gelu(gate) */
__global__ void geglu_kernel(float *y, const float *x, size_t rows, size_t dim)
{
    GRID_STRIDE(i, rows * dim)
    {
        const size_t r = i / dim, c = i % dim;
        const float *h = x + r * 2 * dim;
        y[i] = h[c] * cu_act_f(h[dim + c], ACT_GELU);
    }
}

void cu_geglu(const struct ops *o, float *y, const float *x, int rows, int dim)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || rows <= 0 || dim <= 0) return;
    const size_t n = (size_t)rows * dim;
    geglu_kernel<<<cu_blocks(n), CU_THREADS, 0, s->stream>>>(y, x, (size_t)rows, (size_t)dim);
    cu_launched(s, "geglu");
}

__global__ void add_kernel(float *y, const float *a, const float *b, size_t n)
{
    GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

void cu_add(const struct ops *o, float *y, const float *a, const float *b, size_t n)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || !n) return;
    add_kernel<<<cu_blocks(n), CU_THREADS, 0, s->stream>>>(y, a, b, n);
    cu_launched(s, "add");
}

__global__ void add_channel_kernel(float *y, const float *x, const float *v, size_t n, size_t HW)
{
    GRID_STRIDE(i, n) y[i] = x[i] + v[i / HW];
}

void cu_add_channel(const struct ops *o, float *y, const float *x, const float *v, int C, int HW)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || C <= 0 || HW <= 0) return;
    const size_t n = (size_t)C * HW;
    add_channel_kernel<<<cu_blocks(n), CU_THREADS, 0, s->stream>>>(y, x, v, n, (size_t)HW);
    cu_launched(s, "add_channel");
}

__global__ void scale_kernel(float *y, const float *x, float f, size_t n)
{
    GRID_STRIDE(i, n) y[i] = x[i] * f;
}

void cu_scale(const struct ops *o, float *y, const float *x, float f, size_t n)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || !n) return;
    scale_kernel<<<cu_blocks(n), CU_THREADS, 0, s->stream>>>(y, x, f, n);
    cu_launched(s, "scale");
}

/* y[c, r] = x[r, c] through a 32x32 shared tile (+1 column: no bank
 * conflicts on the transposed read), so both the read and the write are
 * coalesced. Blocks of 32x8 threads; the grid strides over tiles beyond
 * its 65535-row limit. The loops are uniform per block, so the barriers
 * are reached by every thread. */
#define TILE 32
#define TILE_ROWS 8

__global__ void transpose_kernel(float *y, const float *x, long long rows, long long cols)
{
    __shared__ float tile[TILE][TILE + 1];
    for (long long r0 = (long long)blockIdx.y * TILE; r0 < rows; r0 += (long long)gridDim.y * TILE) {
        for (long long c0 = (long long)blockIdx.x * TILE; c0 < cols; c0 += (long long)gridDim.x * TILE) {
            for (int k = threadIdx.y; k < TILE; k += TILE_ROWS) {
                const long long r = r0 + k, c = c0 + threadIdx.x;
                if (r < rows && c < cols) tile[k][threadIdx.x] = x[r * cols + c];
            }
            __syncthreads();
            for (int k = threadIdx.y; k < TILE; k += TILE_ROWS) {
                const long long c = c0 + k, r = r0 + threadIdx.x;
                if (r < rows && c < cols) y[c * rows + r] = tile[threadIdx.x][k];
            }
            __syncthreads();
        }
    }
}

void cu_transpose(const struct ops *o, float *y, const float *x, int rows, int cols)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || rows <= 0 || cols <= 0) return;
    size_t gx = ((size_t)cols + TILE - 1) / TILE, gy = ((size_t)rows + TILE - 1) / TILE;
    if (gx > 65535) gx = 65535;
    if (gy > 65535) gy = 65535;
    transpose_kernel<<<dim3((unsigned)gx, (unsigned)gy), dim3(TILE, TILE_ROWS), 0, s->stream>>>(y, x, rows, cols);
    cu_launched(s, "transpose");
}

/* torch's nearest rule, as ops_ref.c (aten/src/ATen/native/UpSample.h
 * nearest_idx): exact 2x is dst/2; otherwise floor(dst * (float)in/out),
 * clamped. Same float operations in the same order, so the same indices. */
__device__ __forceinline__ int nearest_src(int dst, int in, int out)
{
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    const float scale = (float)in / (float)out;
    const int src = (int)floorf((float)dst * scale);
    return src < in - 1 ? src : in - 1;
}

__global__ void upsample_kernel(float *y, const float *x, size_t C, int H, int W, int OH, int OW)
{
    GRID_STRIDE(i, C * OH * OW)
    {
        const int ox = (int)(i % OW);
        const size_t t = i / OW;
        const int oy = (int)(t % OH);
        const size_t c = t / OH;
        y[i] = x[(c * H + nearest_src(oy, H, OH)) * W + nearest_src(ox, W, OW)];
    }
}

void cu_upsample_nearest(const struct ops *o, float *y, const float *x, int C, int H, int W, int OH, int OW)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || C <= 0 || OH <= 0 || OW <= 0 || H <= 0 || W <= 0) return;
    const size_t n = (size_t)C * OH * OW;
    upsample_kernel<<<cu_blocks(n), CU_THREADS, 0, s->stream>>>(y, x, (size_t)C, H, W, OH, OW);
    cu_launched(s, "upsample_nearest");
}
