/* blocks.h — the convolutional building blocks the UNet and the VAE share,
 * as diffusers defines them (src/diffusers/models/resnet.py, downsampling.py,
 * upsampling.py).
 *
 * Every forward takes its input in backend memory and returns a NEW buffer
 * from the arena (the caller frees the input when it no longer needs it), so
 * skip connections can be kept simply by not freeing them. */
#ifndef ONESTEP_BLOCKS_H
#define ONESTEP_BLOCKS_H

#include "../weights/model_dir.h"
#include "arena.h"
#include "ops.h"

/* ResnetBlock2D, time_embedding_norm "default":
 *   h = conv1(silu(norm1(x)))
 *   h = h + time_emb_proj(silu(temb))[:, None, None]      (UNet only)
 *   h = conv2(dropout(silu(norm2(h))))                     (dropout is identity at inference)
 *   y = (shortcut(x) + h) / output_scale_factor           (shortcut = 1x1 conv when channels change)
 */
struct resnet {
    int in_ch, out_ch, temb_ch, groups;
    float eps, output_scale_factor;
    const struct tensor *norm1_w, *norm1_b, *conv1_w, *conv1_b;
    const struct tensor *time_emb_proj_w, *time_emb_proj_b; /* NULL without a time embedding (VAE) */
    const struct tensor *norm2_w, *norm2_b, *conv2_w, *conv2_b;
    const struct tensor *conv_shortcut_w, *conv_shortcut_b; /* NULL when in_ch == out_ch */
};

/* prefix: checkpoint key prefix, e.g. "down_blocks.0.resnets.1". temb_ch 0 = no time embedding. */
int resnet_load(struct resnet *r, struct component *c, const char *prefix, int in_ch, int out_ch, int temb_ch,
                int groups, float eps, float output_scale_factor, struct os_err *err);
/* x: [in_ch, H, W]; temb_silu: silu(temb) [temb_ch] in backend memory (computed once per UNet call), or NULL. */
float *resnet_forward(const struct resnet *r, const struct ops *o, struct arena *a, const float *x, int H, int W,
                      const float *temb_silu);

/* Downsample2D with a conv: 3x3, stride 2. pad_symmetric 1 = padding 1 on every side (UNet,
 * downsample_padding 1); 0 = the VAE encoder's padding 0 after F.pad(x, (0, 1, 0, 1)), i.e. one
 * zero row/column at the bottom/right only. */
struct downsample {
    int ch, pad_symmetric;
    const struct tensor *conv_w, *conv_b;
};
int downsample_load(struct downsample *d, struct component *c, const char *prefix, int ch, int pad_symmetric,
                    struct os_err *err);
float *downsample_forward(const struct downsample *d, const struct ops *o, struct arena *a, const float *x, int H,
                          int W, int *OH, int *OW);

/* Upsample2D with a conv: nearest-neighbour resize to (OH, OW) — 2x, or the
 * skip connection's size when the latent is not a multiple of 2^levels
 * (diffusers' forward_upsample_size) — then a 3x3 conv, padding 1. */
struct upsample {
    int ch;
    const struct tensor *conv_w, *conv_b;
};
int upsample_load(struct upsample *u, struct component *c, const char *prefix, int ch, struct os_err *err);
float *upsample_forward(const struct upsample *u, const struct ops *o, struct arena *a, const float *x, int H, int W,
                        int OH, int OW);

/* 3x3 (padding 1) or 1x1 convolution from checkpoint tensors "<name>.weight" / "<name>.bias". */
struct conv {
    int in_ch, out_ch, k;
    const struct tensor *w, *b;
};
int conv_load(struct conv *cv, struct component *c, const char *name, int in_ch, int out_ch, int k,
              struct os_err *err);
float *conv_forward(const struct conv *cv, const struct ops *o, struct arena *a, const float *x, int H, int W);

#endif
