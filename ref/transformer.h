/* transformer.h — the attention part of the UNet, as diffusers v0.31 builds it
 * for SD 1.x / 2.x / SDXL:
 *
 *   Transformer2DModel (models/transformers/transformer_2d.py, "continuous
 *   input" path):
 *     x -> GroupNorm(norm_num_groups, eps 1e-6) -> proj_in -> blocks -> proj_out -> + x
 *     proj_in/proj_out are Linear layers on [HW, C] token rows when
 *     use_linear_projection (SD 2.x, SDXL), else 1x1 convolutions applied
 *     before/after the NCHW <-> tokens transpose (SD 1.x).
 *
 *   BasicTransformerBlock (models/attention.py, norm_type "layer_norm"):
 *     h = h + attn1(norm1(h))              self-attention
 *     h = h + attn2(norm2(h), context)     cross-attention on the prompt embeddings
 *     h = h + ff(norm3(h))                 ff = Linear(D, 8D) -> GEGLU -> Linear(4D, D)
 *   LayerNorms have eps 1e-5 (Transformer2DModel's own norm_eps default; the
 *   UNet does not pass its norm_eps down). Attention (attention_processor.py):
 *   to_q/to_k/to_v without bias (attention_bias False), to_out.0 with bias,
 *   softmax(q k^T / sqrt(head_dim)) v per head.
 *
 * Every tensor is bound by its checkpoint key under `prefix`, e.g.
 * "down_blocks.1.attentions.0" + ".transformer_blocks.0.attn2.to_k.weight". */
#ifndef ONESTEP_TRANSFORMER_H
#define ONESTEP_TRANSFORMER_H

#include "../weights/model_dir.h"
#include "arena.h"
#include "ops.h"

/* One diffusers Attention: query_dim -> heads x head_dim -> query_dim. */
struct attention {
    int query_dim, kv_dim, heads, head_dim;
    const struct tensor *to_q_w, *to_k_w, *to_v_w; /* no bias */
    const struct tensor *to_out_0_w, *to_out_0_b;
};

struct transformer_block {
    int dim, ff_inner; /* ff_inner = 4 * dim (FeedForward mult 4) */
    const struct tensor *norm1_w, *norm1_b, *norm2_w, *norm2_b, *norm3_w, *norm3_b;
    struct attention attn1, attn2;
    const struct tensor *ff_net_0_proj_w, *ff_net_0_proj_b; /* GEGLU projection [2 * ff_inner, dim] */
    const struct tensor *ff_net_2_w, *ff_net_2_b;           /* [dim, ff_inner] */
};

struct transformer2d {
    int channels, inner_dim, heads, head_dim, groups, ctx_dim;
    int use_linear_projection;
    int num_layers; /* transformer_layers_per_block entry */
    const struct tensor *norm_w, *norm_b;
    const struct tensor *proj_in_w, *proj_in_b, *proj_out_w, *proj_out_b;
    struct transformer_block *transformer_blocks; /* num_layers entries, owned */
};

/* heads: the head count (diffusers' num_attention_heads, which for these
 * UNets comes from the config's attention_head_dim); head_dim = channels / heads.
 * ctx_dim: cross_attention_dim. groups: the UNet's norm_num_groups. */
int transformer2d_load(struct transformer2d *t, struct component *c, const char *prefix, int channels, int heads,
                       int num_layers, int ctx_dim, int groups, int use_linear_projection, struct os_err *err);
void transformer2d_free(struct transformer2d *t);

/* x: [channels, H, W]; ctx: [ctx_len, ctx_dim] (both backend memory).
 * Returns a new [channels, H, W] buffer from the arena; x is left alone. */
float *transformer2d_forward(const struct transformer2d *t, const struct ops *o, struct arena *a, const float *x,
                             int H, int W, const float *ctx, int ctx_len);

#endif
