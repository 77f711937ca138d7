/* ops.h — the kernel interface: one struct of function pointers.
 *
 * Model code (clip.c, unet.c, vae.c, taesd.c) is written once against this
 * table and never knows which backend runs it:
 *   ops_ref.c    the scalar reference — THE spec (fixed order, no threads)
 *   simd/        AVX2, AVX-512, NEON tables (+ OpenMP)
 *   simd/cuda/   CUDA offload
 *
 * Conventions every backend follows:
 * - Activations are f32 buffers in *backend memory* (host memory for the CPU
 *   backends, device memory for CUDA). Model code never dereferences them; it
 *   allocates them from a struct arena and passes them to ops. Host data
 *   crosses the boundary only through upload/download.
 * - Weights are `const struct tensor *` in their stored dtype (f32/f16/bf16),
 *   in host memory (the file mapping). A backend may cache a converted or
 *   uploaded copy in tensor->backend_cache.
 * - Images/feature maps are NCHW with batch 1: x[c*H*W + y*W + x].
 *   Token sequences are row-major [tokens, features].
 * - `res` (residual) arguments may be NULL; when given, the kernel returns
 *   f(x) + res, and res may be the output buffer itself. Inputs never alias
 *   outputs otherwise.
 * - Bias tensors may be NULL.
 */
#ifndef ONESTEP_OPS_H
#define ONESTEP_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

struct os_err;

enum act {
    ACT_NONE,
    ACT_SILU,       /* x * sigmoid(x) */
    ACT_GELU,       /* exact: 0.5 x (1 + erf(x / sqrt 2)) — CLIP "gelu", GEGLU */
    ACT_QUICK_GELU, /* x * sigmoid(1.702 x) — CLIP-L "quick_gelu" */
    ACT_RELU,       /* TAESD */
    ACT_TANH,       /* TAESD's latent clamp tanh(x/3)*3 is scale + tanh + scale */
};

struct conv2d_shape {
    int C, H, W;       /* input channels and size */
    int OC, KH, KW;    /* output channels, kernel size */
    int stride;
    int pad_top, pad_left, pad_bottom, pad_right; /* zero padding (asymmetric for the VAE encoder's downsampler) */
};

static inline int conv2d_out_h(const struct conv2d_shape *s)
{
    return (s->H + s->pad_top + s->pad_bottom - s->KH) / s->stride + 1;
}

static inline int conv2d_out_w(const struct conv2d_shape *s)
{
    return (s->W + s->pad_left + s->pad_right - s->KW) / s->stride + 1;
}

/* Multi-head scaled dot-product attention, softmax(q k^T * scale) v, per head.
 * Row i of q is token i; head h uses columns [h*head_dim, (h+1)*head_dim).
 * ld* are row strides in floats (so q, k, v can be slices of one fused
 * buffer). causal: token i attends to tokens 0..i only (CLIP). */
struct attn_shape {
    int nq, nk, heads, head_dim;
    int ldq, ldk, ldv, ldo;
    int causal;
    float scale; /* usually 1/sqrt(head_dim) */
};

struct ops {
    const char *name;
    void *state;  /* backend-private (thread pool, CUDA handles) */
    int threads;  /* honoured exactly by threaded backends; 1 for ref */

    /* ---- memory ---- */
    void *(*alloc)(const struct ops *o, size_t bytes); /* NULL when out of memory */
    void (*free)(const struct ops *o, void *p);
    void (*upload)(const struct ops *o, float *dst, const float *host_src, size_t n);
    void (*download)(const struct ops *o, float *host_dst, const float *src, size_t n);
    /* 2-D strided copy inside backend memory: rows x cols floats. Concatenation
     * (UNet skip connections, SDXL prompt embeddings) and gathers are copies. */
    void (*copy2d)(const struct ops *o, float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t rows,
                   size_t cols);
    /* Finish queued work (a no-op on synchronous backends). */
    void (*sync)(const struct ops *o);

    /* ---- dense ---- */
    /* y[M,N] = x[M,K] w[N,K]^T + b[N] (+ res[M,N]) — torch's nn.Linear layout. */
    void (*linear)(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                   const float *res, int M, int K, int N);
    /* y[OC,OH,OW] = conv(x[C,H,W], w[OC,C,KH,KW]) + b[OC] (+ res). */
    void (*conv2d)(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                   const float *res, const struct conv2d_shape *s);
    void (*attention)(const struct ops *o, float *out, const float *q, const float *k, const float *v,
                      const struct attn_shape *s);
    /* y[i,:] = table[ids[i], :] (ids in host memory). */
    void (*embedding)(const struct ops *o, float *y, const struct tensor *table, const int32_t *ids, int n, int dim);

    /* ---- normalisation ---- */
    /* Per row over `dim` features; biased variance (torch). */
    void (*layer_norm)(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                       const struct tensor *beta, int rows, int dim, float eps);
    /* Over groups of C/groups channels x HW pixels, per-channel affine, then
     * the activation (ACT_NONE or ACT_SILU: the fused "norm + SiLU" of every
     * ResNet block). */
    void (*group_norm)(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                       const struct tensor *beta, int C, int HW, int groups, float eps, enum act act);
    void (*softmax)(const struct ops *o, float *y, const float *x, int rows, int n);

    /* ---- elementwise ---- */
    void (*act)(const struct ops *o, float *y, const float *x, size_t n, enum act a);
    /* x[rows, 2*dim] -> y[rows, dim] = x[:, :dim] * gelu(x[:, dim:]) (diffusers GEGLU). */
    void (*geglu)(const struct ops *o, float *y, const float *x, int rows, int dim);
    void (*add)(const struct ops *o, float *y, const float *a, const float *b, size_t n);
    /* y[c, i] = x[c, i] + v[c] for an activation vector v (time embedding into a ResNet). */
    void (*add_channel)(const struct ops *o, float *y, const float *x, const float *v, int C, int HW);
    /* y = x * s */
    void (*scale)(const struct ops *o, float *y, const float *x, float s, size_t n);
    /* y[c, r] = x[r, c]: NCHW feature map <-> [HW, C] token rows. */
    void (*transpose)(const struct ops *o, float *y, const float *x, int rows, int cols);
    /* Nearest-neighbour resize with torch's index rule (exactly 2x: src = dst/2;
     * otherwise src = min(floor(dst * (float)in/out), in-1)). */
    void (*upsample_nearest)(const struct ops *o, float *y, const float *x, int C, int H, int W, int OH, int OW);

    /* ---- backends with state (NULL in the CPU tables) ---- */
    /* An offload backend runs kernels asynchronously and cannot fail inside
     * an op: it records the first failure (no device memory for a weight, a
     * kernel fault) and this reports it. The pipeline calls it after each
     * stage's sync: `if (o->error && o->error(o, err)) return -1;` */
    int (*error)(const struct ops *o, struct os_err *err);
    /* Drop what the backend cached in these tensors' backend_cache (device
     * copies of weights) before the component that owns them is closed. */
    void (*release)(const struct ops *o, struct tensor *tensors, size_t n);
};

/* The reference backend (ops_ref.c). */
const struct ops *ops_ref(void);

/* A backend whose kernels do nothing: model code runs through it once to
 * measure the activation arena before anything real is allocated. */
const struct ops *ops_null(void);

/* Backend by name: "ref", "avx2", "avx512", "neon", "cuda", or "auto" (the
 * fastest this CPU supports). NULL with a message if unknown or unavailable.
 * threads <= 0 means one per online processor. Tables live until exit. */
struct os_err;
const struct ops *ops_by_name(const char *name, int threads, struct os_err *err);

/* One line for --version / -v: the backend, its threads and options, and the
 * CPU features detected. Valid as long as the table. */
const char *ops_describe(const struct ops *o);

#endif
