/* ops_ref.c — the scalar reference of every kernel: THE spec.
 *
 * Rules that make it reproducible bit for bit on any machine and compiler:
 * - built with -ffp-contract=off and without -ffast-math (see Makefile), so
 *   no fused multiply-adds or reassociation sneak in;
 * - single-threaded; every reduction runs in one fixed order (ascending
 *   index) and accumulates in double, then rounds once to float;
 * - transcendental functions come from refmath.c, not libm.
 * Double accumulation also makes the reference *closer* to the float64
 * truth than torch's float32 run, so matching the conformance goldens within
 * their f32-vs-f64 tolerances is a fair test of it.
 *
 * Weights are read through tensor_get_f32 / tensor_read_f32 (exact f16/bf16
 * widening), one output row's worth at a time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "refmath.h"

/* ---- memory: plain host memory ---- */

static void *ref_alloc(const struct ops *o, size_t bytes)
{
    (void)o;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

static void ref_free(const struct ops *o, void *p)
{
    (void)o;
    free(p);
}

static void ref_upload(const struct ops *o, float *dst, const float *src, size_t n)
{
    (void)o;
    if (n) memmove(dst, src, n * sizeof *dst);
}

static void ref_copy2d(const struct ops *o, float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t rows,
                       size_t cols)
{
    (void)o;
    for (size_t r = 0; r < rows; r++) memmove(dst + r * ld_dst, src + r * ld_src, cols * sizeof *dst);
}

static void ref_sync(const struct ops *o)
{
    (void)o;
}

/* Weight row as float (the caller's buffer, len n). */
static void weight_row(const struct tensor *w, int64_t row, int64_t n, float *out)
{
    tensor_read_f32(w, row * n, n, out);
}

static float bias_at(const struct tensor *b, int64_t i)
{
    return b ? tensor_get_f32(b, i) : 0.0f;
}

/* ---- dense ---- */

static void ref_linear(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                       const float *res, int M, int K, int N)
{
    (void)o;
    float *wrow = malloc((size_t)(K ? K : 1) * sizeof *wrow);
    if (!wrow) abort();
    for (int n = 0; n < N; n++) {
        weight_row(w, n, K, wrow);
        double bn = bias_at(b, n);
        for (int m = 0; m < M; m++) {
            const float *xr = x + (size_t)m * K;
            double acc = 0.0;
            for (int k = 0; k < K; k++) acc += (double)xr[k] * wrow[k];
            float v = (float)(acc + bn);
            size_t idx = (size_t)m * N + n;
            y[idx] = res ? v + res[idx] : v;
        }
    }
    free(wrow);
}

static void ref_conv2d(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                       const float *res, const struct conv2d_shape *s)
{
    (void)o;
    const int OH = conv2d_out_h(s), OW = conv2d_out_w(s);
    const size_t fsize = (size_t)s->C * s->KH * s->KW;
    float *filt = malloc((fsize ? fsize : 1) * sizeof *filt);
    if (!filt) abort();
    for (int oc = 0; oc < s->OC; oc++) {
        weight_row(w, oc, (int64_t)fsize, filt);
        double bo = bias_at(b, oc);
        for (int oy = 0; oy < OH; oy++) {
            for (int ox = 0; ox < OW; ox++) {
                double acc = 0.0;
                for (int c = 0; c < s->C; c++) {
                    for (int ky = 0; ky < s->KH; ky++) {
                        int iy = oy * s->stride + ky - s->pad_top;
                        if (iy < 0 || iy >= s->H) continue;
                        for (int kx = 0; kx < s->KW; kx++) {
                            int ix = ox * s->stride + kx - s->pad_left;
                            if (ix < 0 || ix >= s->W) continue;
                            acc += (double)x[((size_t)c * s->H + iy) * s->W + ix] *
                                   filt[((size_t)c * s->KH + ky) * s->KW + kx];
                        }
                    }
                }
                size_t idx = ((size_t)oc * OH + oy) * OW + ox;
                float v = (float)(acc + bo);
                y[idx] = res ? v + res[idx] : v;
            }
        }
    }
    free(filt);
}

static void ref_attention(const struct ops *o, float *out, const float *q, const float *k, const float *v,
                          const struct attn_shape *s)
{
    (void)o;
    double *p = malloc((size_t)(s->nk ? s->nk : 1) * sizeof *p);
    double *acc = malloc((size_t)(s->head_dim ? s->head_dim : 1) * sizeof *acc);
    if (!p || !acc) abort();
    for (int h = 0; h < s->heads; h++) {
        const int off = h * s->head_dim;
        for (int i = 0; i < s->nq; i++) {
            const float *qi = q + (size_t)i * s->ldq + off;
            const int nk = s->causal ? (i + 1 < s->nk ? i + 1 : s->nk) : s->nk;
            double mx = -INFINITY;
            for (int j = 0; j < nk; j++) {
                const float *kj = k + (size_t)j * s->ldk + off;
                double d = 0.0;
                for (int c = 0; c < s->head_dim; c++) d += (double)qi[c] * kj[c];
                p[j] = d * s->scale;
                if (p[j] > mx) mx = p[j];
            }
            double sum = 0.0;
            for (int j = 0; j < nk; j++) {
                p[j] = rm_exp(p[j] - mx);
                sum += p[j];
            }
            for (int c = 0; c < s->head_dim; c++) acc[c] = 0.0;
            for (int j = 0; j < nk; j++) {
                const float *vj = v + (size_t)j * s->ldv + off;
                for (int c = 0; c < s->head_dim; c++) acc[c] += p[j] * vj[c];
            }
            float *oi = out + (size_t)i * s->ldo + off;
            for (int c = 0; c < s->head_dim; c++) oi[c] = (float)(acc[c] / sum);
        }
    }
    free(p);
    free(acc);
}

static void ref_embedding(const struct ops *o, float *y, const struct tensor *table, const int32_t *ids, int n,
                          int dim)
{
    (void)o;
    for (int i = 0; i < n; i++) weight_row(table, ids[i], dim, y + (size_t)i * dim);
}

/* ---- normalisation ---- */

static double apply_act(double v, enum act a)
{
    switch (a) {
    case ACT_SILU: return v / (1.0 + rm_exp(-v));
    case ACT_GELU: return 0.5 * v * rm_erfc(-v * 0.70710678118654752440);
    case ACT_QUICK_GELU: return v / (1.0 + rm_exp(-(double)1.702f * v)); /* torch: 1.702 as a float32 scalar */
    case ACT_RELU: return v > 0 ? v : 0.0;
    case ACT_TANH: return rm_tanh(v);
    case ACT_NONE:
    default: return v;
    }
}

static void ref_layer_norm(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                           const struct tensor *beta, int rows, int dim, float eps)
{
    (void)o;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < dim; i++) mean += xr[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) var += (xr[i] - mean) * (xr[i] - mean);
        var /= dim;
        double inv = 1.0 / sqrt(var + eps);
        for (int i = 0; i < dim; i++)
            yr[i] = (float)((xr[i] - mean) * inv * tensor_get_f32(gamma, i) + bias_at(beta, i));
    }
}

static void ref_group_norm(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                           const struct tensor *beta, int C, int HW, int groups, float eps, enum act act)
{
    (void)o;
    const int cpg = C / groups;
    const size_t n = (size_t)cpg * HW;
    for (int g = 0; g < groups; g++) {
        const float *xg = x + (size_t)g * n;
        float *yg = y + (size_t)g * n;
        double mean = 0.0, var = 0.0;
        for (size_t i = 0; i < n; i++) mean += xg[i];
        mean /= (double)n;
        for (size_t i = 0; i < n; i++) var += (xg[i] - mean) * (xg[i] - mean);
        var /= (double)n;
        double inv = 1.0 / sqrt(var + eps);
        for (int c = 0; c < cpg; c++) {
            double gm = tensor_get_f32(gamma, g * cpg + c), bt = bias_at(beta, g * cpg + c);
            for (int i = 0; i < HW; i++) {
                size_t idx = (size_t)c * HW + i;
                /* round to float after the affine, as torch's GroupNorm output
                 * is a float tensor that SiLU then reads */
                float v = (float)((xg[idx] - mean) * inv * gm + bt);
                yg[idx] = (float)apply_act(v, act);
            }
        }
    }
}

static void ref_softmax(const struct ops *o, float *y, const float *x, int rows, int n)
{
    (void)o;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        double mx = -INFINITY, sum = 0.0;
        for (int i = 0; i < n; i++)
            if (xr[i] > mx) mx = xr[i];
        for (int i = 0; i < n; i++) sum += rm_exp(xr[i] - mx);
        for (int i = 0; i < n; i++) yr[i] = (float)(rm_exp(xr[i] - mx) / sum);
    }
}

/* ---- elementwise ---- */

static void ref_act(const struct ops *o, float *y, const float *x, size_t n, enum act a)
{
    (void)o;
    for (size_t i = 0; i < n; i++) y[i] = (float)apply_act(x[i], a);
}

static void ref_geglu(const struct ops *o, float *y, const float *x, int rows, int dim)
{
    (void)o;
    for (int r = 0; r < rows; r++) {
        const float *h = x + (size_t)r * 2 * dim, *gate = h + dim;
        for (int i = 0; i < dim; i++) {
            float g = (float)apply_act(gate[i], ACT_GELU);
            y[(size_t)r * dim + i] = h[i] * g;
        }
    }
}

static void ref_add(const struct ops *o, float *y, const float *a, const float *b, size_t n)
{
    (void)o;
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void ref_add_channel(const struct ops *o, float *y, const float *x, const float *v, int C, int HW)
{
    (void)o;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < HW; i++) y[(size_t)c * HW + i] = x[(size_t)c * HW + i] + v[c];
}

static void ref_scale(const struct ops *o, float *y, const float *x, float s, size_t n)
{
    (void)o;
    for (size_t i = 0; i < n; i++) y[i] = x[i] * s;
}

static void ref_transpose(const struct ops *o, float *y, const float *x, int rows, int cols)
{
    (void)o;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) y[(size_t)c * rows + r] = x[(size_t)r * cols + c];
}

/* torch's nearest rule (aten/src/ATen/native/UpSample.h nearest_idx). */
static int nearest_src(int dst, int in, int out)
{
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    float scale = (float)in / (float)out;
    int src = (int)floorf((float)dst * scale);
    return src < in - 1 ? src : in - 1;
}

static void ref_upsample_nearest(const struct ops *o, float *y, const float *x, int C, int H, int W, int OH, int OW)
{
    (void)o;
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < OH; oy++) {
            int iy = nearest_src(oy, H, OH);
            for (int ox = 0; ox < OW; ox++)
                y[((size_t)c * OH + oy) * OW + ox] = x[((size_t)c * H + iy) * W + nearest_src(ox, W, OW)];
        }
}

static const struct ops ref_ops = {
    .name = "ref",
    .threads = 1,
    .alloc = ref_alloc,
    .free = ref_free,
    .upload = ref_upload,
    .download = ref_upload,
    .copy2d = ref_copy2d,
    .sync = ref_sync,
    .linear = ref_linear,
    .conv2d = ref_conv2d,
    .attention = ref_attention,
    .embedding = ref_embedding,
    .layer_norm = ref_layer_norm,
    .group_norm = ref_group_norm,
    .softmax = ref_softmax,
    .act = ref_act,
    .geglu = ref_geglu,
    .add = ref_add,
    .add_channel = ref_add_channel,
    .scale = ref_scale,
    .transpose = ref_transpose,
    .upsample_nearest = ref_upsample_nearest,
};

const struct ops *ops_ref(void)
{
    return &ref_ops;
}
