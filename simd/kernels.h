/* kernels.h — what the per-ISA kernel files of simd/ share with each other
 * and with the table (table.c). Every name carries the ISA suffix (SX). */
#ifndef ONESTEP_SIMD_KERNELS_H
#define ONESTEP_SIMD_KERNELS_H

#include "../ref/ops.h"
#include "scratch.h"
#include "state.h"
#include "vec.h"

/* n elements of a float tensor (f32/f16/bf16) as f32 in the calling
 * thread's scratch slot; NULL for a NULL tensor. */
const float *SX(tensor_f32)(const struct tensor *t, size_t n, enum scratch_slot slot);

/* dense.c */
void SX(simd_linear)(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                     const float *res, int M, int K, int N);
void SX(simd_conv2d)(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                     const float *res, const struct conv2d_shape *s);
void SX(simd_embedding)(const struct ops *o, float *y, const struct tensor *table, const int32_t *ids, int n,
                        int dim);

#if VL == 16 && (defined(__x86_64__) || defined(__i386__))
/* bf16dot.c: bf16 weights through vdpbf16ps; 0 if it does not apply. */
int SX(bf16dot_linear)(const struct ops *o, float *y, const float *x, const struct tensor *w, const float *bias,
                       const float *res, int M, int K, int N);
#define HAVE_BF16DOT 1
#endif

/* winograd.c: y = conv3x3(x) for stride 1 through F(4x4, 3x3). */
void SX(winograd_conv3x3)(const struct ops *o, float *y, const float *x, const struct tensor *w, const float *bias,
                          const float *res, const struct conv2d_shape *s);

/* attention.c */
void SX(simd_attention)(const struct ops *o, float *out, const float *q, const float *k, const float *v,
                        const struct attn_shape *s);

/* norm.c */
void SX(simd_layer_norm)(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                         const struct tensor *beta, int rows, int dim, float eps);
void SX(simd_group_norm)(const struct ops *o, float *y, const float *x, const struct tensor *gamma,
                         const struct tensor *beta, int C, int HW, int groups, float eps, enum act act);
void SX(simd_softmax)(const struct ops *o, float *y, const float *x, int rows, int n);

/* elementwise.c */
void SX(simd_act)(const struct ops *o, float *y, const float *x, size_t n, enum act a);
void SX(simd_geglu)(const struct ops *o, float *y, const float *x, int rows, int dim);
void SX(simd_add)(const struct ops *o, float *y, const float *a, const float *b, size_t n);
void SX(simd_add_channel)(const struct ops *o, float *y, const float *x, const float *v, int C, int HW);
void SX(simd_scale)(const struct ops *o, float *y, const float *x, float s, size_t n);
void SX(simd_transpose)(const struct ops *o, float *y, const float *x, int rows, int cols);
void SX(simd_upsample_nearest)(const struct ops *o, float *y, const float *x, int C, int H, int W, int OH, int OW);
void SX(simd_copy2d)(const struct ops *o, float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t rows,
                     size_t cols);

/* table.c: fill an ops table with this ISA's kernels (name, threads and
 * state are the caller's). */
void SX(simd_fill_ops)(struct ops *o);

#endif
