#include "transformer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "load.h"

/* BasicTransformerBlock's LayerNorms: Transformer2DModel's norm_eps default
 * (models/transformers/transformer_2d.py), which the UNet blocks never override. */
#define BLOCK_LN_EPS 1e-5f
/* Transformer2DModel._init_continuous_input: GroupNorm(..., eps=1e-6). */
#define TRANSFORMER_GN_EPS 1e-6f

static int attention_load(struct attention *at, struct component *c, const char *p, int query_dim, int kv_dim,
                          int heads, struct os_err *err)
{
    at->query_dim = query_dim;
    at->kv_dim = kv_dim;
    at->heads = heads;
    at->head_dim = query_dim / heads;
    const int inner = at->heads * at->head_dim;
    at->to_q_w = load2(c, err, inner, query_dim, "%s.to_q.weight", p);
    at->to_k_w = load2(c, err, inner, kv_dim, "%s.to_k.weight", p);
    at->to_v_w = load2(c, err, inner, kv_dim, "%s.to_v.weight", p);
    at->to_out_0_w = load2(c, err, query_dim, inner, "%s.to_out.0.weight", p);
    at->to_out_0_b = load1(c, err, query_dim, "%s.to_out.0.bias", p);
    return err->msg[0] ? -1 : 0;
}

static int block_load(struct transformer_block *b, struct component *c, const char *p, int dim, int heads,
                      int ctx_dim, struct os_err *err)
{
    char name[288]; /* prefix (< 256, see transformer2d_load) + ".attn1" */
    b->dim = dim;
    b->ff_inner = 4 * dim; /* FeedForward(dim, mult=4) */
    b->norm1_w = load1(c, err, dim, "%s.norm1.weight", p);
    b->norm1_b = load1(c, err, dim, "%s.norm1.bias", p);
    b->norm2_w = load1(c, err, dim, "%s.norm2.weight", p);
    b->norm2_b = load1(c, err, dim, "%s.norm2.bias", p);
    b->norm3_w = load1(c, err, dim, "%s.norm3.weight", p);
    b->norm3_b = load1(c, err, dim, "%s.norm3.bias", p);
    snprintf(name, sizeof name, "%s.attn1", p);
    if (err->msg[0] || attention_load(&b->attn1, c, name, dim, dim, heads, err)) return -1;
    snprintf(name, sizeof name, "%s.attn2", p);
    if (attention_load(&b->attn2, c, name, dim, ctx_dim, heads, err)) return -1;
    b->ff_net_0_proj_w = load2(c, err, 2 * b->ff_inner, dim, "%s.ff.net.0.proj.weight", p);
    b->ff_net_0_proj_b = load1(c, err, 2 * b->ff_inner, "%s.ff.net.0.proj.bias", p);
    b->ff_net_2_w = load2(c, err, dim, b->ff_inner, "%s.ff.net.2.weight", p);
    b->ff_net_2_b = load1(c, err, dim, "%s.ff.net.2.bias", p);
    return err->msg[0] ? -1 : 0;
}

int transformer2d_load(struct transformer2d *t, struct component *c, const char *p, int channels, int heads,
                       int num_layers, int ctx_dim, int groups, int use_linear_projection, struct os_err *err)
{
    memset(t, 0, sizeof *t);
    const char *cfg = c->config_path ? c->config_path : c->name;
    if (heads <= 0 || channels % heads)
        return os_fail(err, "%s: %s: its %d channels do not split into %d attention heads (attention_head_dim)", cfg,
                       p, channels, heads);
    if (channels % groups)
        return os_fail(err, "%s: %s: %d channels are not divisible into %d groups (norm_num_groups)", cfg, p,
                       channels, groups);
    if (num_layers < 1)
        return os_fail(err, "%s: %s: transformer_layers_per_block must be at least 1, got %d", cfg, p, num_layers);
    t->channels = channels;
    t->heads = heads;
    t->head_dim = channels / heads;
    t->inner_dim = heads * t->head_dim;
    t->groups = groups;
    t->ctx_dim = ctx_dim;
    t->use_linear_projection = use_linear_projection;
    t->num_layers = num_layers;
    const int C = channels, D = t->inner_dim;
    err->msg[0] = '\0';
    t->norm_w = load1(c, err, C, "%s.norm.weight", p);
    t->norm_b = load1(c, err, C, "%s.norm.bias", p);
    if (use_linear_projection) {
        t->proj_in_w = load2(c, err, D, C, "%s.proj_in.weight", p);
        t->proj_out_w = load2(c, err, C, D, "%s.proj_out.weight", p);
    } else {
        t->proj_in_w = load4(c, err, D, C, 1, 1, "%s.proj_in.weight", p);
        t->proj_out_w = load4(c, err, C, D, 1, 1, "%s.proj_out.weight", p);
    }
    t->proj_in_b = load1(c, err, D, "%s.proj_in.bias", p);
    t->proj_out_b = load1(c, err, C, "%s.proj_out.bias", p);
    if (err->msg[0]) return -1;
    t->transformer_blocks = OS_CALLOC((size_t)num_layers, sizeof *t->transformer_blocks);
    if (!t->transformer_blocks) return os_fail(err, "out of memory");
    for (int i = 0; i < num_layers; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.transformer_blocks.%d", p, i);
        if (block_load(&t->transformer_blocks[i], c, name, D, heads, ctx_dim, err)) {
            transformer2d_free(t);
            return -1;
        }
    }
    return 0;
}

void transformer2d_free(struct transformer2d *t)
{
    if (!t) return;
    OS_FREE(t->transformer_blocks);
    t->transformer_blocks = NULL;
}

/* h[n, D] += to_out(attention(to_q(x), to_k(kv), to_v(kv))); x: [n, D], kv: [nkv, kv_dim]. */
static void attend(const struct attention *at, const struct ops *o, struct arena *a, float *h, const float *x, int n,
                   const float *kv, int nkv)
{
    const int inner = at->heads * at->head_dim;
    float *q = arena_alloc(a, (size_t)n * inner);
    float *k = arena_alloc(a, (size_t)nkv * inner);
    float *v = arena_alloc(a, (size_t)nkv * inner);
    o->linear(o, q, x, at->to_q_w, NULL, NULL, n, at->query_dim, inner);
    o->linear(o, k, kv, at->to_k_w, NULL, NULL, nkv, at->kv_dim, inner);
    o->linear(o, v, kv, at->to_v_w, NULL, NULL, nkv, at->kv_dim, inner);
    float *out = arena_alloc(a, (size_t)n * inner);
    /* Attention.scale = dim_head**-0.5, handed to torch as a float32 scalar */
    struct attn_shape s = {n, nkv, at->heads, at->head_dim, inner, inner, inner, inner, 0,
                           (float)(1.0 / sqrt((double)at->head_dim))};
    o->attention(o, out, q, k, v, &s);
    arena_free(a, v);
    arena_free(a, k);
    arena_free(a, q);
    o->linear(o, h, out, at->to_out_0_w, at->to_out_0_b, h, n, inner, at->query_dim);
    arena_free(a, out);
}

/* One BasicTransformerBlock on token rows h[n, dim], updated in place. */
static void block_forward(const struct transformer_block *b, const struct ops *o, struct arena *a, float *h, int n,
                          const float *ctx, int ctx_len)
{
    const int D = b->dim, F = b->ff_inner;
    float *x = arena_alloc(a, (size_t)n * D);
    o->layer_norm(o, x, h, b->norm1_w, b->norm1_b, n, D, BLOCK_LN_EPS);
    attend(&b->attn1, o, a, h, x, n, x, n);
    o->layer_norm(o, x, h, b->norm2_w, b->norm2_b, n, D, BLOCK_LN_EPS);
    attend(&b->attn2, o, a, h, x, n, ctx, ctx_len);
    o->layer_norm(o, x, h, b->norm3_w, b->norm3_b, n, D, BLOCK_LN_EPS);
    float *g = arena_alloc(a, (size_t)n * 2 * F);
    o->linear(o, g, x, b->ff_net_0_proj_w, b->ff_net_0_proj_b, NULL, n, D, 2 * F);
    arena_free(a, x);
    float *f = arena_alloc(a, (size_t)n * F);
    o->geglu(o, f, g, n, F); /* first half * gelu(second half): diffusers GEGLU's chunk(2, dim=-1) */
    arena_free(a, g);
    o->linear(o, h, f, b->ff_net_2_w, b->ff_net_2_b, h, n, F, D);
    arena_free(a, f);
}

static struct conv2d_shape conv1x1(int C, int H, int W, int OC)
{
    struct conv2d_shape s = {C, H, W, OC, 1, 1, 1, 0, 0, 0, 0};
    return s;
}

float *transformer2d_forward(const struct transformer2d *t, const struct ops *o, struct arena *a, const float *x,
                             int H, int W, const float *ctx, int ctx_len)
{
    const int C = t->channels, D = t->inner_dim, HW = H * W;
    float *n = arena_alloc(a, (size_t)C * HW);
    o->group_norm(o, n, x, t->norm_w, t->norm_b, C, HW, t->groups, TRANSFORMER_GN_EPS, ACT_NONE);

    /* to token rows h[HW, D]: project then transpose (conv), or transpose then project (linear) */
    float *h;
    if (t->use_linear_projection) {
        float *tok = arena_alloc(a, (size_t)HW * C);
        o->transpose(o, tok, n, C, HW);
        arena_free(a, n);
        h = arena_alloc(a, (size_t)HW * D);
        o->linear(o, h, tok, t->proj_in_w, t->proj_in_b, NULL, HW, C, D);
        arena_free(a, tok);
    } else {
        float *p = arena_alloc(a, (size_t)D * HW);
        struct conv2d_shape s = conv1x1(C, H, W, D);
        o->conv2d(o, p, n, t->proj_in_w, t->proj_in_b, NULL, &s);
        arena_free(a, n);
        h = arena_alloc(a, (size_t)HW * D);
        o->transpose(o, h, p, D, HW);
        arena_free(a, p);
    }

    for (int i = 0; i < t->num_layers; i++) block_forward(&t->transformer_blocks[i], o, a, h, HW, ctx, ctx_len);

    /* back to [C, H, W], then + x (torch adds the residual after proj_out, in float32) */
    float *y;
    if (t->use_linear_projection) {
        float *tok = arena_alloc(a, (size_t)HW * C);
        o->linear(o, tok, h, t->proj_out_w, t->proj_out_b, NULL, HW, D, C);
        arena_free(a, h);
        float *chw = arena_alloc(a, (size_t)C * HW);
        o->transpose(o, chw, tok, HW, C);
        arena_free(a, tok);
        y = arena_alloc(a, (size_t)C * HW);
        o->add(o, y, chw, x, (size_t)C * HW);
        arena_free(a, chw);
    } else {
        float *p = arena_alloc(a, (size_t)D * HW);
        o->transpose(o, p, h, HW, D);
        arena_free(a, h);
        y = arena_alloc(a, (size_t)C * HW);
        struct conv2d_shape s = conv1x1(D, H, W, C);
        o->conv2d(o, y, p, t->proj_out_w, t->proj_out_b, x, &s);
        arena_free(a, p);
    }
    return y;
}
