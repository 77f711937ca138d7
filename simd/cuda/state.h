/* state.h — what the CUDA kernels share: the backend state, error
 * recording, the weight cache and small device helpers. Internal to
 * simd/cuda/ (C++ compiled by nvcc). */
#ifndef ONESTEP_CUDA_STATE_H
#define ONESTEP_CUDA_STATE_H

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "ops_cuda.h"

struct cuda_state {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasComputeType_t compute; /* CUBLAS_COMPUTE_32F, or _FAST_TF32 when asked for */
    int sync_each;               /* ONESTEP_CUDA_SYNC: attribute faults to ops */

    int failed;
    char msg[OS_ERR_MAX]; /* the first failure */

    /* Scratch outside the arena, grown on demand and kept: */
    float *wbuf;       /* an f16/bf16 weight widened to f32 for one GEMM */
    size_t wbuf_bytes;
    float *col;        /* one chunk of an im2col matrix */
    size_t col_bytes;
    size_t col_cap;    /* floats one im2col chunk may use (ONESTEP_CUDA_IM2COL_MIB) */
    double *part;      /* group-norm partial sums */
    size_t part_bytes;
    int32_t *ids;      /* embedding ids copied from the host */
    size_t ids_bytes;

    size_t weight_bytes; /* device copies of weights currently cached */
    char desc[320];
};

static inline struct cuda_state *cu_state(const struct ops *o)
{
    return (struct cuda_state *)o->state;
}

/* Record the first failure (later ones are consequences). printf-style. */
void cu_fail(struct cuda_state *s, const char *fmt, ...) OS_PRINTF(2, 3);
/* 0 if e is cudaSuccess, else record "<what>: <CUDA's words>" and -1. */
int cu_check(struct cuda_state *s, cudaError_t e, const char *what);
int cu_check_blas(struct cuda_state *s, cublasStatus_t e, const char *what);
/* After a kernel launch: catch a bad launch now (and, with
 * ONESTEP_CUDA_SYNC, a fault in the kernel itself). */
int cu_launched(struct cuda_state *s, const char *kernel);

/* The device copy of a weight in its stored dtype (uploaded on first use).
 * `need` is the element count the op will read: a smaller tensor is an
 * error, not an out-of-bounds read. NULL after recording a failure. */
const void *cu_weight(struct cuda_state *s, const struct tensor *t, int64_t need, const char *op);
/* The weight as f32: the cached copy itself for f32 weights, else widened
 * into s->wbuf, which stays valid until the next cu_weight_f32 call (stream
 * order makes that safe for the GEMM that reads it). */
const float *cu_weight_f32(struct cuda_state *s, const struct tensor *t, int64_t need, const char *op);
/* Grow a scratch buffer to at least `bytes` (it keeps no contents). */
void *cu_scratch(struct cuda_state *s, void **buf, size_t *have, size_t bytes, const char *what);

/* dtype codes the kernels understand for small weight vectors */
enum { CU_F32 = DT_F32, CU_F16 = DT_F16, CU_BF16 = DT_BF16 };

/* Kernel launch shapes: 256 threads, a grid of at most 2^20 blocks that
 * grid-stride loops cover (every index is size_t: the SDXL VAE at 1024²
 * has 134M-element feature maps). */
#define CU_THREADS 256
static inline unsigned cu_blocks(size_t n)
{
    size_t b = (n + CU_THREADS - 1) / CU_THREADS;
    if (b < 1) b = 1;
    if (b > ((size_t)1 << 20)) b = (size_t)1 << 20;
    return (unsigned)b;
}

#ifdef __CUDACC__
/* Element i of a small weight vector (bias, norm scale) in its stored dtype;
 * the widening is exact, as tensor_get_f32's. */
__device__ __forceinline__ float cu_ldw(const void *p, int dt, size_t i)
{
    if (dt == CU_F32) return ((const float *)p)[i];
    unsigned short h = ((const unsigned short *)p)[i];
    if (dt == CU_F16) return __half2float(__ushort_as_half(h));
    return __uint_as_float((unsigned)h << 16);
}

#define CU_FULL_MASK 0xffffffffu

/* ops.h's activations in float (ops_ref.c evaluates them in double and
 * rounds once; these are within a few ulp: expf 2 ulp, erfcf 4 ulp). */
__device__ __forceinline__ float cu_act_f(float v, int a)
{
    switch (a) {
    case ACT_SILU: return v / (1.0f + expf(-v));
    case ACT_GELU: return 0.5f * v * erfcf(-v * 0.70710678118654752440f);
    case ACT_QUICK_GELU: return v / (1.0f + expf(-1.702f * v));
    case ACT_RELU: return v > 0.0f ? v : 0.0f;
    case ACT_TANH: return tanhf(v);
    default: return v;
    }
}

/* Butterfly sums: every lane ends with the same bits (each step adds the
 * same two values, and IEEE addition commutes). */
__device__ __forceinline__ double cu_warp_sum(double v)
{
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(CU_FULL_MASK, v, off);
    return v;
}

__device__ __forceinline__ float cu_warp_sumf(float v)
{
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(CU_FULL_MASK, v, off);
    return v;
}

__device__ __forceinline__ float cu_warp_max(float v)
{
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(CU_FULL_MASK, v, off));
    return v;
}
#endif

/* Kernel families (dense.cu, norm.cu, attention.cu, elementwise.cu). */
void cu_linear(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
               const float *res, int M, int K, int N);
void cu_conv2d(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
               const float *res, const struct conv2d_shape *sh);
void cu_embedding(const struct ops *o, float *y, const struct tensor *table, const int32_t *ids, int n, int dim);
void cu_attention(const struct ops *o, float *out, const float *q, const float *k, const float *v,
                  const struct attn_shape *sh);
void cu_layer_norm(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                   const struct tensor *beta, int rows, int dim, float eps);
void cu_group_norm(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                   const struct tensor *beta, int C, int HW, int groups, float eps, enum act act);
void cu_softmax(const struct ops *o, float *y, const float *x, int rows, int n);
void cu_act(const struct ops *o, float *y, const float *x, size_t n, enum act a);
void cu_geglu(const struct ops *o, float *y, const float *x, int rows, int dim);
void cu_add(const struct ops *o, float *y, const float *a, const float *b, size_t n);
void cu_add_channel(const struct ops *o, float *y, const float *x, const float *v, int C, int HW);
void cu_scale(const struct ops *o, float *y, const float *x, float s, size_t n);
void cu_transpose(const struct ops *o, float *y, const float *x, int rows, int cols);
void cu_upsample_nearest(const struct ops *o, float *y, const float *x, int C, int H, int W, int OH, int OW);

/* y[r, c] = bias (per row or per column, may be NULL) + res[r, c] (may be
 * NULL, may be y): the part of a GEMM's epilogue that cuBLAS then adds to
 * with beta = 1 (dense.cu). */
void cu_prefill(struct cuda_state *s, float *y, const void *bias, int bias_dt, int bias_per_row, const float *res,
                size_t rows, size_t cols);

#endif
