/* dense.c — linear layers, convolutions and embeddings: shapes onto the GEMM
 * core (gemm.h), or onto Winograd for the 3x3 stride-1 convolutions. */
#include "gemm.h"
#include "kernels.h"

const float *SX(tensor_f32)(const struct tensor *t, size_t n, enum scratch_slot slot)
{
    if (!t) return NULL;
    float *d = simd_scratch(slot, (n ? n : 1) * sizeof(float));
    const unsigned char *p = t->data;
    size_t i = 0;
    switch (t->dtype) {
    case DT_F16:
        for (; i + VL <= n; i += VL) vf_store(d + i, vf_load_f16(p + 2 * i));
        break;
    case DT_BF16:
        for (; i + VL <= n; i += VL) vf_store(d + i, vf_load_bf16(p + 2 * i));
        break;
    default: break;
    }
    if (i < n) tensor_read_f32(t, (int64_t)i, (int64_t)(n - i), d + i);
    return d;
}

void SX(simd_linear)(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                     const float *res, int M, int K, int N)
{
#ifdef HAVE_BF16DOT
    const struct simd_state *st = simd_state_of(o);
    if (st && st->bf16dot && w->dtype == DT_BF16 &&
        SX(bf16dot_linear)(o, y, x, w, SX(tensor_f32)(b, (size_t)N, SCRATCH_T2), res, M, K, N))
        return;
#endif
    struct gemm_op g = {
        .M = M, .N = N, .K = K,
        .a_kind = GEMM_A_ROWS, .a = {.p = x, .dt = DT_F32, .ld = (size_t)K},
        .b_kind = GEMM_B_ROWS_T, .b = {.p = w->data, .dt = w->dtype, .ld = (size_t)K},
        .c = y, .ldc = (size_t)N, .res = res,
        .bias_n = SX(tensor_f32)(b, (size_t)N, SCRATCH_T2),
    };
    SX(gemm_run)(&g, o->threads);
}

/* Winograd pays when the channel products dominate its transforms: not
 * below 16 input channels (the UNet's and VAE's conv_in), and not for few
 * output tiles, where transforming the weights (36 values per 9) costs more
 * than it saves (measured with tools/kbench). Its transformed weights U take
 * 36 OC C floats of scratch: above 64 MB (the UNets' 1280-channel
 * upsampler at 32x32: 237 MB) the memory is not worth the few percent it
 * gains there (measured: 120 vs 148 ms). */
#define WINOGRAD_MIN_C 16
#ifndef WINOGRAD_MIN_TILES
#define WINOGRAD_MIN_TILES 64
#endif
#define WINOGRAD_MAX_U_BYTES ((size_t)64 << 20)

static int use_winograd(const struct simd_state *st, const struct conv2d_shape *s)
{
    if (!st || !st->winograd || s->KH != 3 || s->KW != 3 || s->stride != 1) return 0;
    if (st->winograd == 2) return 1;
    long tiles = (long)((conv2d_out_h(s) + 3) / 4) * ((conv2d_out_w(s) + 3) / 4);
    return s->C >= WINOGRAD_MIN_C && s->OC >= WINOGRAD_MIN_C && tiles >= WINOGRAD_MIN_TILES &&
           (size_t)36 * s->C * s->OC * sizeof(float) <= WINOGRAD_MAX_U_BYTES;
}

void SX(simd_conv2d)(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                     const float *res, const struct conv2d_shape *s)
{
    const struct simd_state *st = simd_state_of(o);
    const int OH = conv2d_out_h(s), OW = conv2d_out_w(s);
    const float *bias = SX(tensor_f32)(b, (size_t)s->OC, SCRATCH_T2);
    if (use_winograd(st, s)) {
        SX(winograd_conv3x3)(o, y, x, w, bias, res, s);
        return;
    }
    struct gemm_op g = {
        .M = s->OC, .N = OH * OW, .K = s->C * s->KH * s->KW,
        .a_kind = GEMM_A_ROWS, .a = {.p = w->data, .dt = w->dtype, .ld = (size_t)s->C * s->KH * s->KW},
        .c = y, .ldc = (size_t)OH * OW, .res = res, .bias_m = bias,
    };
    if (s->KH == 1 && s->KW == 1 && s->stride == 1 && !s->pad_top && !s->pad_left && !s->pad_bottom && !s->pad_right) {
        /* 1x1: the input feature map is B as it stands, [C][H W] */
        g.b_kind = GEMM_B_ROWS;
        g.b = (struct gemm_src){.p = x, .dt = DT_F32, .ld = (size_t)s->H * s->W};
    } else {
        g.b_kind = GEMM_B_IM2COL;
        g.b = (struct gemm_src){.p = x, .dt = DT_F32, .conv = s};
    }
    SX(gemm_run)(&g, o->threads);
}

void SX(simd_embedding)(const struct ops *o, float *y, const struct tensor *table, const int32_t *ids, int n, int dim)
{
    (void)o;
    const unsigned char *p = table->data;
    const size_t es = dtype_size(table->dtype);
    for (int r = 0; r < n; r++) {
        const unsigned char *row = p + (size_t)ids[r] * (size_t)dim * es;
        float *d = y + (size_t)r * dim;
        int i = 0;
        if (table->dtype == DT_F16)
            for (; i + VL <= dim; i += VL) vf_store(d + i, vf_load_f16(row + 2 * (size_t)i));
        else if (table->dtype == DT_BF16)
            for (; i + VL <= dim; i += VL) vf_store(d + i, vf_load_bf16(row + 2 * (size_t)i));
        if (i < dim) tensor_read_f32(table, (int64_t)ids[r] * dim + i, dim - i, d + i);
    }
}
