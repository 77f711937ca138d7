/* unet.h — UNet2DConditionModel (diffusers v0.31,
 * src/diffusers/models/unets/unet_2d_condition.py), built from unet/config.json.
 *
 * The noise predictor of SD 1.x / 2.x (SD-Turbo) and SDXL (SDXL-Turbo):
 *
 *   t ─► sinusoidal time_proj ─► time_embedding (linear, SiLU, linear) ─► emb
 *        SDXL: + add_embedding(concat(text_embeds, time_proj(time_ids)))
 *   x ─► conv_in ─► down blocks ─► mid block ─► up blocks ─► GroupNorm, SiLU ─► conv_out ─► eps
 *                   │ every resnet/attention output and every downsampler    ▲
 *                   └─ output is kept as a skip connection; each up-block ───┘
 *                      resnet concatenates the most recent one to its input
 *
 * Blocks: DownBlock2D / CrossAttnDownBlock2D, UNetMidBlock2DCrossAttn,
 * UpBlock2D / CrossAttnUpBlock2D (models/unets/unet_2d_blocks.py); resnets,
 * down- and upsamplers from blocks.h; the attention blocks from transformer.h.
 * unet_load() rejects every config option these models do not use with an
 * error naming the file and the key. */
#ifndef ONESTEP_UNET_H
#define ONESTEP_UNET_H

#include "../weights/model_dir.h"
#include "arena.h"
#include "blocks.h"
#include "dump.h"
#include "ops.h"
#include "transformer.h"

#define UNET_MAX_BLOCKS 8  /* resolution levels (SD: 4, SDXL: 3) */
#define UNET_MAX_SKIPS 64  /* skip connections (SD: 12, SDXL: 9) */
#define UNET_TIME_IDS 6    /* SDXL: original size (2), crop top-left (2), target size (2) */

struct unet_down_block {
    int cross_attn;                   /* CrossAttnDownBlock2D (else DownBlock2D) */
    int in_ch, out_ch, num_layers;
    struct resnet *resnets;           /* num_layers */
    struct transformer2d *attentions; /* num_layers, NULL for DownBlock2D */
    int has_downsampler;              /* every block but the last */
    struct downsample downsamplers_0;
};

/* UNetMidBlock2DCrossAttn as UNet2DConditionModel builds it (num_layers 1):
 * resnets.0 -> attentions.0 -> resnets.1, resnets scaled by mid_block_scale_factor. */
struct unet_mid_block {
    int ch;
    struct resnet resnets[2];
    struct transformer2d attentions_0;
};

struct unet_up_block {
    int cross_attn;                   /* CrossAttnUpBlock2D (else UpBlock2D) */
    int out_ch, num_layers;           /* num_layers = layers_per_block + 1 */
    struct resnet *resnets;
    struct transformer2d *attentions;
    int has_upsampler;                /* every block but the last */
    struct upsample upsamplers_0;
};

struct unet {
    /* from the config */
    int in_channels, out_channels, num_blocks;
    int block_out_channels[UNET_MAX_BLOCKS];
    int time_proj_dim;           /* Timesteps(block_out_channels[0]) */
    int time_embed_dim;          /* time_embedding_dim or 4 * block_out_channels[0] */
    int flip_sin_to_cos;
    double freq_shift;
    int cross_attention_dim;     /* features of the context every attention block reads */
    int text_time;               /* addition_embed_type "text_time" (SDXL) */
    int addition_time_embed_dim; /* text_time: Timesteps width per time id */
    int text_embeds_dim;         /* text_time: pooled text embedding width
                                    (projection_class_embeddings_input_dim - 6 * addition_time_embed_dim) */
    int norm_num_groups;
    float norm_eps;

    /* weights, named as in the checkpoint */
    struct conv conv_in;
    const struct tensor *time_embedding_linear_1_w, *time_embedding_linear_1_b;
    const struct tensor *time_embedding_linear_2_w, *time_embedding_linear_2_b;
    const struct tensor *add_embedding_linear_1_w, *add_embedding_linear_1_b; /* text_time only */
    const struct tensor *add_embedding_linear_2_w, *add_embedding_linear_2_b;
    struct unet_down_block down_blocks[UNET_MAX_BLOCKS];
    struct unet_mid_block mid_block;
    struct unet_up_block up_blocks[UNET_MAX_BLOCKS];
    const struct tensor *conv_norm_out_w, *conv_norm_out_b;
    struct conv conv_out;
};

/* Read c->config (unet/config.json), validate it, bind every tensor of c with
 * the shape the config implies, and fail if c has tensors the config does not
 * explain. The struct points into c: keep c open while u is used. */
int unet_load(struct unet *u, struct component *c, struct os_err *err);
void unet_free(struct unet *u);

struct unet_cond {
    const float *context; /* host [ctx_len x ctx_dim]: prompt_embeds */
    int ctx_len, ctx_dim;
    const float *text_embeds; /* SDXL text_time: host [text_embeds_dim] (pooled prompt embedding); else NULL */
    const float *time_ids;    /* SDXL text_time: host [6]; else NULL */
};

/* eps = UNet(x, timestep, cond). x: host [in_channels x h x w] (batch 1),
 * eps: host [out_channels x h x w]. Runs entirely through `o` on buffers
 * from `a`; run it first on ops_null() with a measuring arena to learn the
 * peak (the allocation sequence is the same for the same h, w and ctx_len).
 * `dump` (may be NULL) receives unet.conv_in, unet.time_proj, ...,
 * unet.conv_out under the conformance manifest's names and shapes. */
int unet_forward(const struct unet *u, const struct ops *o, struct arena *a, const float *x, int h, int w,
                 float timestep, const struct unet_cond *cond, float *eps, const struct dump_hook *dump,
                 struct os_err *err);

/* diffusers' get_timestep_embedding for one (possibly fractional) timestep,
 * with every float32 rounding of the upstream computation:
 *   half = dim / 2; e_i = f32(f32(-ln 10000) * i) / f32(half - freq_shift)
 *   arg_i = f32(t * f32(exp(e_i)));  out = [sin(arg), cos(arg)] (flip: [cos, sin]), zero-padded if dim is odd.
 * out: host [dim]. */
void unet_timestep_embedding(float t, int dim, int flip_sin_to_cos, double freq_shift, float *out);

#endif
