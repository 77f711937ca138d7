#include "arch.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Configs come from files a user hands us: every size is checked to be a
 * positive integer below this before it becomes a shape. */
#define ARCH_MAX_DIM (1 << 24)
#define ARCH_MAX_BLOCKS 16

struct walk {
    arch_visit_fn visit;
    void *ctx;
    const char *what;
    struct os_err *err;
    int failed;
};

/* ------------------------------------------------------------ emitting */

static void emit(struct walk *w, enum arch_role role, int64_t fan_in, int ndim, const int64_t *shape,
                 const char *fmt, ...) OS_PRINTF(6, 7);

static void emit(struct walk *w, enum arch_role role, int64_t fan_in, int ndim, const int64_t *shape,
                 const char *fmt, ...)
{
    if (w->failed) return;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name) {
        os_fail(w->err, "%s: parameter name too long", w->what);
        w->failed = 1;
        return;
    }
    struct arch_param p = {0};
    p.name = name;
    p.role = role;
    p.ndim = ndim;
    p.fan_in = fan_in;
    for (int i = 0; i < ndim; i++) p.shape[i] = shape[i];
    if (w->visit(w->ctx, &p, w->err)) w->failed = 1;
}

/* nn.Linear(in, out[, bias]) at `name`: weight [out, in], bias [out]. */
static void linear(struct walk *w, const char *name, int64_t out, int64_t in, int bias)
{
    int64_t ws[2] = {out, in}, bs[1] = {out};
    emit(w, ARCH_MATRIX, in, 2, ws, "%s.weight", name);
    if (bias) emit(w, ARCH_BIAS, 0, 1, bs, "%s.bias", name);
}

/* nn.Conv2d(in, out, k) with bias: weight [out, in, k, k]. */
static void conv(struct walk *w, const char *name, int64_t out, int64_t in, int64_t k)
{
    int64_t ws[4] = {out, in, k, k}, bs[1] = {out};
    emit(w, ARCH_MATRIX, in * k * k, 4, ws, "%s.weight", name);
    emit(w, ARCH_BIAS, 0, 1, bs, "%s.bias", name);
}

/* GroupNorm / LayerNorm with affine parameters. */
static void norm(struct walk *w, const char *name, int64_t c)
{
    int64_t s[1] = {c};
    emit(w, ARCH_NORM_SCALE, 0, 1, s, "%s.weight", name);
    emit(w, ARCH_NORM_SHIFT, 0, 1, s, "%s.bias", name);
}

/* snprintf into a fixed buffer; module paths are short, so truncation is a
 * bug in the caller, reported rather than ignored. */
static const char *path(struct walk *w, char *buf, size_t len, const char *fmt, ...) OS_PRINTF(4, 5);

static const char *path(struct walk *w, char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len) {
        if (!w->failed) os_fail(w->err, "%s: module path too long", w->what);
        w->failed = 1;
        buf[0] = '\0';
    }
    return buf;
}

/* ------------------------------------------------------------ config reading */

static int get_dim(const struct json *cfg, const char *key, int64_t *out, const char *what, struct os_err *err)
{
    if (json_get_int(cfg, key, out, what, err)) return -1;
    if (*out <= 0 || *out > ARCH_MAX_DIM)
        return os_fail(err, "%s: \"%s\" is %lld; expected a positive size up to %d", what, key, (long long)*out,
                       ARCH_MAX_DIM);
    return 0;
}

static int get_dim_or(const struct json *cfg, const char *key, int64_t def, int64_t *out, const char *what,
                      struct os_err *err)
{
    if (json_get_int_or(cfg, key, def, out, what, err)) return -1;
    if (*out <= 0 || *out > ARCH_MAX_DIM)
        return os_fail(err, "%s: \"%s\" is %lld; expected a positive size up to %d", what, key, (long long)*out,
                       ARCH_MAX_DIM);
    return 0;
}

/* An int or a list of n ints (diffusers broadcasts a single value). */
static int get_dims(const struct json *cfg, const char *key, int64_t *out, size_t n, const char *what,
                    struct os_err *err)
{
    const struct json *v = json_get(cfg, key);
    if (v && v->type == JSON_ARRAY)
        for (size_t i = 0; i < v->len; i++)
            if (v->items[i].type == JSON_ARRAY)
                return os_fail(err, "%s: \"%s\" as a list of lists (a value per layer) is not supported", what, key);
    if (json_get_int_list(cfg, key, out, n, what, err)) return -1;
    for (size_t i = 0; i < n; i++)
        if (out[i] <= 0 || out[i] > ARCH_MAX_DIM)
            return os_fail(err, "%s: \"%s\" entry %zu is %lld; expected a positive size", what, key, i,
                           (long long)out[i]);
    return 0;
}

/* get_dims with diffusers' default for an absent or null key (configs
 * written by hand may leave defaults out). */
static int get_dims_or(const struct json *cfg, const char *key, int64_t def, int64_t *out, size_t n, const char *what,
                       struct os_err *err)
{
    const struct json *v = json_get(cfg, key);
    if (!v || v->type == JSON_NULL) {
        for (size_t i = 0; i < n; i++) out[i] = def;
        return 0;
    }
    return get_dims(cfg, key, out, n, what, err);
}

/* A list of strings (block types). */
static int get_strs(const struct json *cfg, const char *key, const char **out, size_t *n, const char *what,
                    struct os_err *err)
{
    const struct json *v = json_get(cfg, key);
    if (!v || v->type != JSON_ARRAY) return os_fail(err, "%s: \"%s\" must be a list of block types", what, key);
    if (v->len == 0 || v->len > ARCH_MAX_BLOCKS)
        return os_fail(err, "%s: \"%s\" has %zu entries; expected 1 to %d", what, key, v->len, ARCH_MAX_BLOCKS);
    for (size_t i = 0; i < v->len; i++) {
        if (v->items[i].type != JSON_STRING) return os_fail(err, "%s: \"%s\" entries must be strings", what, key);
        out[i] = v->items[i].str;
    }
    *n = v->len;
    return 0;
}

/* A key that must be absent, null, false or equal to `allowed` because the
 * walker does not implement what it would add. */
static int refuse_unless(const struct json *cfg, const char *key, const char *allowed, const char *what,
                         struct os_err *err)
{
    const struct json *v = json_get(cfg, key);
    if (!v || v->type == JSON_NULL || (v->type == JSON_BOOL && !v->boolean)) return 0;
    if (allowed && v->type == JSON_STRING && strcmp(v->str, allowed) == 0) return 0;
    if (v->type == JSON_STRING) return os_fail(err, "%s: \"%s\": \"%s\" is not supported", what, key, v->str);
    if (v->type == JSON_NUMBER) return os_fail(err, "%s: \"%s\": %g is not supported", what, key, v->number);
    return os_fail(err, "%s: \"%s\" (a %s) is not supported", what, key, json_type_name(v->type));
}

static int str_is(const struct json *cfg, const char *key, const char *def, const char *want, const char *what,
                  struct os_err *err, int *failed)
{
    const char *s = json_get_str_or(cfg, key, def, what, err, failed);
    return !*failed && s && strcmp(s, want) == 0;
}

/* ------------------------------------------------------------ class */

enum arch_class arch_class_of(const struct json *config)
{
    const char *name = NULL;
    const struct json *c = json_get(config, "_class_name");
    if (c && c->type == JSON_STRING) name = c->str;
    const struct json *a = json_get(config, "architectures");
    if (!name && a && a->type == JSON_ARRAY && a->len >= 1 && a->items[0].type == JSON_STRING) name = a->items[0].str;
    if (!name) return ARCH_UNKNOWN;
    if (strcmp(name, "UNet2DConditionModel") == 0) return ARCH_UNET;
    if (strcmp(name, "AutoencoderKL") == 0) return ARCH_VAE;
    if (strcmp(name, "AutoencoderTiny") == 0) return ARCH_TAESD;
    if (strcmp(name, "CLIPTextModel") == 0) return ARCH_CLIP_TEXT;
    if (strcmp(name, "CLIPTextModelWithProjection") == 0) return ARCH_CLIP_TEXT_PROJ;
    return ARCH_UNKNOWN;
}

const char *arch_class_name(enum arch_class c)
{
    switch (c) {
    case ARCH_UNET: return "UNet2DConditionModel";
    case ARCH_VAE: return "AutoencoderKL";
    case ARCH_TAESD: return "AutoencoderTiny";
    case ARCH_CLIP_TEXT: return "CLIPTextModel";
    case ARCH_CLIP_TEXT_PROJ: return "CLIPTextModelWithProjection";
    default: return "unknown";
    }
}

/* ------------------------------------------------------------ shared blocks */

/* ResnetBlock2D (diffusers models/resnet.py). temb = 0: no time_emb_proj
 * (the VAE's blocks). scale_shift doubles time_emb_proj's outputs. */
static void resnet(struct walk *w, const char *p, int64_t in, int64_t out, int64_t temb, int scale_shift)
{
    char b[224];
    norm(w, path(w, b, sizeof b, "%s.norm1", p), in);
    conv(w, path(w, b, sizeof b, "%s.conv1", p), out, in, 3);
    if (temb) linear(w, path(w, b, sizeof b, "%s.time_emb_proj", p), scale_shift ? 2 * out : out, temb, 1);
    norm(w, path(w, b, sizeof b, "%s.norm2", p), out);
    conv(w, path(w, b, sizeof b, "%s.conv2", p), out, out, 3);
    /* use_in_shortcut defaults to in != out: a 1x1 conv matches the channels */
    if (in != out) conv(w, path(w, b, sizeof b, "%s.conv_shortcut", p), out, in, 1);
}

/* Attention (diffusers models/attention_processor.py): to_q/k/v without
 * bias in the UNet (attention_bias False), to_out.0 with bias. */
static void attention(struct walk *w, const char *p, int64_t query_dim, int64_t kv_dim, int64_t inner, int qkv_bias)
{
    char b[224];
    linear(w, path(w, b, sizeof b, "%s.to_q", p), inner, query_dim, qkv_bias);
    linear(w, path(w, b, sizeof b, "%s.to_k", p), inner, kv_dim, qkv_bias);
    linear(w, path(w, b, sizeof b, "%s.to_v", p), inner, kv_dim, qkv_bias);
    linear(w, path(w, b, sizeof b, "%s.to_out.0", p), query_dim, inner, 1);
}

struct xattn {
    int64_t heads, cross_dim, depth;
    int linear_proj;
};

/* Transformer2DModel with BasicTransformerBlocks (self-attention, cross
 * attention, GEGLU feed-forward 4x): the UNet's CrossAttn blocks build it as
 * Transformer2DModel(heads, channels // heads, in_channels=channels). */
static void transformer2d(struct walk *w, const char *p, int64_t c, const struct xattn *x)
{
    char b[224], t[224];
    int64_t inner = x->heads * (c / x->heads);
    norm(w, path(w, b, sizeof b, "%s.norm", p), c);
    if (x->linear_proj) linear(w, path(w, b, sizeof b, "%s.proj_in", p), inner, c, 1);
    else conv(w, path(w, b, sizeof b, "%s.proj_in", p), inner, c, 1);
    for (int64_t k = 0; k < x->depth; k++) {
        path(w, t, sizeof t, "%s.transformer_blocks.%lld", p, (long long)k);
        norm(w, path(w, b, sizeof b, "%s.norm1", t), inner);
        attention(w, path(w, b, sizeof b, "%s.attn1", t), inner, inner, inner, 0);
        norm(w, path(w, b, sizeof b, "%s.norm2", t), inner);
        attention(w, path(w, b, sizeof b, "%s.attn2", t), inner, x->cross_dim, inner, 0);
        norm(w, path(w, b, sizeof b, "%s.norm3", t), inner);
        linear(w, path(w, b, sizeof b, "%s.ff.net.0.proj", t), 2 * 4 * inner, inner, 1); /* GEGLU: value and gate */
        linear(w, path(w, b, sizeof b, "%s.ff.net.2", t), inner, 4 * inner, 1);
    }
    if (x->linear_proj) linear(w, path(w, b, sizeof b, "%s.proj_out", p), c, inner, 1);
    else conv(w, path(w, b, sizeof b, "%s.proj_out", p), c, inner, 1);
}

/* ------------------------------------------------------------ UNet2DConditionModel */

struct unet_cfg {
    size_t n;
    const char *down[ARCH_MAX_BLOCKS], *up[ARCH_MAX_BLOCKS];
    int64_t boc[ARCH_MAX_BLOCKS], heads[ARCH_MAX_BLOCKS], cross[ARCH_MAX_BLOCKS], layers[ARCH_MAX_BLOCKS],
        depth[ARCH_MAX_BLOCKS], rdepth[ARCH_MAX_BLOCKS];
    int64_t in_ch, out_ch, k_in, k_out, temb, t_in, cond_proj, add_in;
    int linear_proj, scale_shift, text_time;
};

static int unet_config(const struct json *cfg, const char *what, struct unet_cfg *u, struct os_err *err)
{
    size_t nup;
    int failed = 0;
    if (get_strs(cfg, "down_block_types", u->down, &u->n, what, err)) return -1;
    if (get_strs(cfg, "up_block_types", u->up, &nup, what, err)) return -1;
    if (nup != u->n)
        return os_fail(err, "%s: %zu down blocks but %zu up blocks; they must match", what, u->n, nup);
    for (size_t i = 0; i < u->n; i++) {
        if (strcmp(u->down[i], "CrossAttnDownBlock2D") && strcmp(u->down[i], "DownBlock2D"))
            return os_fail(err, "%s: down block type \"%s\" is not supported (CrossAttnDownBlock2D, DownBlock2D)",
                           what, u->down[i]);
        if (strcmp(u->up[i], "CrossAttnUpBlock2D") && strcmp(u->up[i], "UpBlock2D"))
            return os_fail(err, "%s: up block type \"%s\" is not supported (CrossAttnUpBlock2D, UpBlock2D)", what,
                           u->up[i]);
    }
    if (get_dims(cfg, "block_out_channels", u->boc, u->n, what, err)) return -1;
    /* diffusers' naming quirk: "attention_head_dim" is the number of heads
     * (num_attention_heads = num_attention_heads or attention_head_dim), and
     * v0.31 refuses num_attention_heads itself for this class. */
    if (refuse_unless(cfg, "num_attention_heads", NULL, what, err)) return -1;
    /* UNet2DConditionModel's defaults */
    if (get_dims_or(cfg, "attention_head_dim", 8, u->heads, u->n, what, err) ||
        get_dims_or(cfg, "cross_attention_dim", 1280, u->cross, u->n, what, err) ||
        get_dims_or(cfg, "layers_per_block", 2, u->layers, u->n, what, err) ||
        get_dims_or(cfg, "transformer_layers_per_block", 1, u->depth, u->n, what, err))
        return -1;
    const struct json *rtl = json_get(cfg, "reverse_transformer_layers_per_block");
    if (rtl && rtl->type != JSON_NULL) {
        if (get_dims(cfg, "reverse_transformer_layers_per_block", u->rdepth, u->n, what, err)) return -1;
    } else {
        for (size_t i = 0; i < u->n; i++) u->rdepth[i] = u->depth[u->n - 1 - i];
    }
    for (size_t i = 0; i < u->n; i++)
        if (u->boc[i] % u->heads[i])
            return os_fail(err, "%s: block %zu has %lld channels, not divisible into %lld heads", what, i,
                           (long long)u->boc[i], (long long)u->heads[i]);
    if (get_dim_or(cfg, "in_channels", 4, &u->in_ch, what, err) ||
        get_dim_or(cfg, "out_channels", 4, &u->out_ch, what, err) ||
        get_dim_or(cfg, "conv_in_kernel", 3, &u->k_in, what, err) ||
        get_dim_or(cfg, "conv_out_kernel", 3, &u->k_out, what, err))
        return -1;
    if (!(u->k_in & 1) || !(u->k_out & 1)) return os_fail(err, "%s: conv_in/conv_out kernels must be odd", what);
    int lin = 0;
    if (json_get_bool_or(cfg, "use_linear_projection", 0, &lin, what, err)) return -1;
    u->linear_proj = lin;
    if (!str_is(cfg, "time_embedding_type", "positional", "positional", what, err, &failed))
        return failed ? -1 : os_fail(err, "%s: only \"time_embedding_type\": \"positional\" is supported", what);
    const char *rts = json_get_str_or(cfg, "resnet_time_scale_shift", "default", what, err, &failed);
    if (failed) return -1;
    if (strcmp(rts, "default") && strcmp(rts, "scale_shift"))
        return os_fail(err, "%s: \"resnet_time_scale_shift\": \"%s\" is not supported", what, rts);
    u->scale_shift = strcmp(rts, "scale_shift") == 0;
    if (!str_is(cfg, "mid_block_type", "UNetMidBlock2DCrossAttn", "UNetMidBlock2DCrossAttn", what, err, &failed))
        return failed ? -1 : os_fail(err, "%s: only \"mid_block_type\": \"UNetMidBlock2DCrossAttn\" is supported", what);
    if (!str_is(cfg, "attention_type", "default", "default", what, err, &failed))
        return failed ? -1 : os_fail(err, "%s: only \"attention_type\": \"default\" is supported", what);
    if (refuse_unless(cfg, "class_embed_type", NULL, what, err) ||
        refuse_unless(cfg, "num_class_embeds", NULL, what, err) ||
        refuse_unless(cfg, "encoder_hid_dim", NULL, what, err) ||
        refuse_unless(cfg, "encoder_hid_dim_type", NULL, what, err) ||
        refuse_unless(cfg, "dual_cross_attention", NULL, what, err) ||
        refuse_unless(cfg, "only_cross_attention", NULL, what, err) ||
        refuse_unless(cfg, "class_embeddings_concat", NULL, what, err) ||
        refuse_unless(cfg, "addition_embed_type", "text_time", what, err))
        return -1;
    const struct json *ng = json_get(cfg, "norm_num_groups");
    if (ng && ng->type == JSON_NULL) return os_fail(err, "%s: \"norm_num_groups\": null is not supported", what);
    /* Timesteps(block_out_channels[0]) feeds TimestepEmbedding(c0, 4 * c0). */
    u->t_in = u->boc[0];
    if (get_dim_or(cfg, "time_embedding_dim", 4 * u->boc[0], &u->temb, what, err)) return -1;
    const struct json *cp = json_get(cfg, "time_cond_proj_dim");
    u->cond_proj = 0;
    if (cp && cp->type != JSON_NULL && get_dim(cfg, "time_cond_proj_dim", &u->cond_proj, what, err)) return -1;
    const struct json *ae = json_get(cfg, "addition_embed_type");
    u->text_time = ae && ae->type == JSON_STRING;
    if (u->text_time && get_dim(cfg, "projection_class_embeddings_input_dim", &u->add_in, what, err)) return -1;
    return 0;
}

int arch_walk_unet(const struct json *cfg, const char *what, arch_visit_fn visit, void *ctx, struct os_err *err)
{
    struct unet_cfg u;
    if (unet_config(cfg, what, &u, err)) return -1;
    struct walk w = {visit, ctx, what, err, 0};
    char p[160], b[224];
    size_t n = u.n;

    conv(&w, "conv_in", u.boc[0], u.in_ch, u.k_in);
    linear(&w, "time_embedding.linear_1", u.temb, u.t_in, 1);
    if (u.cond_proj) linear(&w, "time_embedding.cond_proj", u.t_in, u.cond_proj, 0);
    linear(&w, "time_embedding.linear_2", u.temb, u.temb, 1);
    if (u.text_time) {
        /* SDXL: TimestepEmbedding(pooled text + 6 * addition_time_embed_dim) */
        linear(&w, "add_embedding.linear_1", u.temb, u.add_in, 1);
        linear(&w, "add_embedding.linear_2", u.temb, u.temb, 1);
    }

    int64_t out = u.boc[0];
    for (size_t i = 0; i < n; i++) {
        int64_t in = out;
        out = u.boc[i];
        int attn = strcmp(u.down[i], "CrossAttnDownBlock2D") == 0;
        struct xattn x = {u.heads[i], u.cross[i], u.depth[i], u.linear_proj};
        for (int64_t j = 0; j < u.layers[i]; j++) {
            resnet(&w, path(&w, p, sizeof p, "down_blocks.%zu.resnets.%lld", i, (long long)j), j ? out : in, out,
                   u.temb, u.scale_shift);
            if (attn) transformer2d(&w, path(&w, p, sizeof p, "down_blocks.%zu.attentions.%lld", i, (long long)j), out, &x);
        }
        if (i + 1 < n) conv(&w, path(&w, b, sizeof b, "down_blocks.%zu.downsamplers.0.conv", i), out, out, 3);
    }

    /* UNetMidBlock2DCrossAttn(num_layers=1): resnet, transformer, resnet */
    int64_t c = u.boc[n - 1];
    struct xattn xm = {u.heads[n - 1], u.cross[n - 1], u.depth[n - 1], u.linear_proj};
    resnet(&w, "mid_block.resnets.0", c, c, u.temb, u.scale_shift);
    transformer2d(&w, "mid_block.attentions.0", c, &xm);
    resnet(&w, "mid_block.resnets.1", c, c, u.temb, u.scale_shift);

    /* Up blocks walk the reversed lists; each has layers + 1 resnets whose
     * inputs are the previous output concatenated with a skip connection. */
    out = u.boc[n - 1];
    for (size_t i = 0; i < n; i++) {
        size_t r = n - 1 - i;
        int64_t prev = out;
        out = u.boc[r];
        int64_t in = u.boc[r ? r - 1 : 0]; /* reversed_block_out_channels[min(i + 1, n - 1)] */
        int64_t layers = u.layers[r] + 1;
        int attn = strcmp(u.up[i], "CrossAttnUpBlock2D") == 0;
        struct xattn x = {u.heads[r], u.cross[r], u.rdepth[i], u.linear_proj};
        for (int64_t j = 0; j < layers; j++) {
            int64_t skip = j == layers - 1 ? in : out;
            int64_t res_in = j == 0 ? prev : out;
            resnet(&w, path(&w, p, sizeof p, "up_blocks.%zu.resnets.%lld", i, (long long)j), res_in + skip, out,
                   u.temb, u.scale_shift);
            if (attn) transformer2d(&w, path(&w, p, sizeof p, "up_blocks.%zu.attentions.%lld", i, (long long)j), out, &x);
        }
        if (i + 1 < n) conv(&w, path(&w, b, sizeof b, "up_blocks.%zu.upsamplers.0.conv", i), out, out, 3);
    }

    norm(&w, "conv_norm_out", u.boc[0]);
    conv(&w, "conv_out", u.out_ch, u.boc[0], u.k_out);
    return w.failed ? -1 : 0;
}

/* ------------------------------------------------------------ AutoencoderKL */

/* UNetMidBlock2D as the VAE builds it: resnet, a single-head attention over
 * all channels (GroupNorm, biased q/k/v/out projections), resnet. */
static void vae_mid(struct walk *w, const char *side, int64_t c, int attn)
{
    char p[160], b[224];
    resnet(w, path(w, p, sizeof p, "%s.mid_block.resnets.0", side), c, c, 0, 0);
    if (attn) {
        norm(w, path(w, b, sizeof b, "%s.mid_block.attentions.0.group_norm", side), c);
        attention(w, path(w, p, sizeof p, "%s.mid_block.attentions.0", side), c, c, c, 1);
    }
    resnet(w, path(w, p, sizeof p, "%s.mid_block.resnets.1", side), c, c, 0, 0);
}

int arch_walk_vae(const struct json *cfg, const char *what, arch_visit_fn visit, void *ctx, struct os_err *err)
{
    const char *down[ARCH_MAX_BLOCKS], *up[ARCH_MAX_BLOCKS];
    size_t n, nup;
    int64_t boc[ARCH_MAX_BLOCKS], layers, in_ch, out_ch, latent;
    if (get_strs(cfg, "down_block_types", down, &n, what, err) || get_strs(cfg, "up_block_types", up, &nup, what, err))
        return -1;
    if (nup != n) return os_fail(err, "%s: %zu down blocks but %zu up blocks; they must match", what, n, nup);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(down[i], "DownEncoderBlock2D"))
            return os_fail(err, "%s: down block type \"%s\" is not supported (DownEncoderBlock2D)", what, down[i]);
        if (strcmp(up[i], "UpDecoderBlock2D"))
            return os_fail(err, "%s: up block type \"%s\" is not supported (UpDecoderBlock2D)", what, up[i]);
    }
    if (get_dims(cfg, "block_out_channels", boc, n, what, err) ||
        get_dim_or(cfg, "layers_per_block", 1, &layers, what, err) ||
        get_dim_or(cfg, "in_channels", 3, &in_ch, what, err) || get_dim_or(cfg, "out_channels", 3, &out_ch, what, err) ||
        get_dim_or(cfg, "latent_channels", 4, &latent, what, err))
        return -1;
    int mid_attn = 1, quant = 1, post_quant = 1;
    if (json_get_bool_or(cfg, "mid_block_add_attention", 1, &mid_attn, what, err) ||
        json_get_bool_or(cfg, "use_quant_conv", 1, &quant, what, err) ||
        json_get_bool_or(cfg, "use_post_quant_conv", 1, &post_quant, what, err))
        return -1;

    struct walk w = {visit, ctx, what, err, 0};
    char p[160], b[224];
    int64_t c = boc[n - 1];

    conv(&w, "encoder.conv_in", boc[0], in_ch, 3);
    int64_t out = boc[0];
    for (size_t i = 0; i < n; i++) {
        int64_t in = out;
        out = boc[i];
        for (int64_t j = 0; j < layers; j++)
            resnet(&w, path(&w, p, sizeof p, "encoder.down_blocks.%zu.resnets.%lld", i, (long long)j), j ? out : in,
                   out, 0, 0);
        if (i + 1 < n) conv(&w, path(&w, b, sizeof b, "encoder.down_blocks.%zu.downsamplers.0.conv", i), out, out, 3);
    }
    vae_mid(&w, "encoder", c, mid_attn);
    norm(&w, "encoder.conv_norm_out", c);
    conv(&w, "encoder.conv_out", 2 * latent, c, 3); /* double_z: mean and log-variance */

    conv(&w, "decoder.conv_in", c, latent, 3);
    vae_mid(&w, "decoder", c, mid_attn);
    out = c;
    for (size_t i = 0; i < n; i++) {
        int64_t prev = out;
        out = boc[n - 1 - i];
        for (int64_t j = 0; j < layers + 1; j++)
            resnet(&w, path(&w, p, sizeof p, "decoder.up_blocks.%zu.resnets.%lld", i, (long long)j), j ? out : prev,
                   out, 0, 0);
        if (i + 1 < n) conv(&w, path(&w, b, sizeof b, "decoder.up_blocks.%zu.upsamplers.0.conv", i), out, out, 3);
    }
    norm(&w, "decoder.conv_norm_out", boc[0]);
    conv(&w, "decoder.conv_out", out_ch, boc[0], 3);
    if (quant) conv(&w, "quant_conv", 2 * latent, 2 * latent, 1);
    if (post_quant) conv(&w, "post_quant_conv", latent, latent, 1);
    return w.failed ? -1 : 0;
}

/* ------------------------------------------------------------ AutoencoderTiny */

#define ARCH_MAX_TINY_BLOCKS 1024 /* AutoencoderTinyBlocks per level */

/* nn.Conv2d(in, out, kernel_size=3, padding=1[, bias]) at `name`. */
static void conv3(struct walk *w, const char *name, int64_t out, int64_t in, int bias)
{
    int64_t ws[4] = {out, in, 3, 3}, bs[1] = {out};
    emit(w, ARCH_MATRIX, in * 9, 4, ws, "%s.weight", name);
    if (bias) emit(w, ARCH_BIAS, 0, 1, bs, "%s.bias", name);
}

/* AutoencoderTinyBlock(c, c): conv = Sequential(Conv2d 0, act 1, Conv2d 2,
 * act 3, Conv2d 4), all 3x3 with bias; skip is a bias-free 1x1 conv only when
 * in != out, which EncoderTiny and DecoderTiny never build (both pass
 * (num_channels, num_channels)), so it is nn.Identity here; fuse is a ReLU. */
static void tiny_block(struct walk *w, const char *p, int64_t c)
{
    char b[224];
    conv3(w, path(w, b, sizeof b, "%s.conv.0", p), c, c, 1);
    conv3(w, path(w, b, sizeof b, "%s.conv.2", p), c, c, 1);
    conv3(w, path(w, b, sizeof b, "%s.conv.4", p), c, c, 1);
}

/* A list of sizes as long as the config has it (1 to ARCH_MAX_BLOCKS
 * entries), or AutoencoderTiny's 4-entry default when absent or null. */
static int get_level_list(const struct json *cfg, const char *key, const int64_t def[4], int64_t *out, size_t *n,
                          const char *what, struct os_err *err)
{
    const struct json *v = json_get(cfg, key);
    if (!v || v->type == JSON_NULL) {
        memcpy(out, def, 4 * sizeof *out);
        *n = 4;
        return 0;
    }
    if (v->type != JSON_ARRAY || v->len == 0 || v->len > ARCH_MAX_BLOCKS)
        return os_fail(err, "%s: \"%s\" must be a list of 1 to %d sizes", what, key, ARCH_MAX_BLOCKS);
    *n = v->len;
    return get_dims(cfg, key, out, v->len, what, err);
}

/* A block_out_channels / num_blocks pair of one half; diffusers requires
 * equal lengths (AutoencoderTiny.__init__ raises otherwise). */
static int tiny_levels(const struct json *cfg, const char *ch_key, const char *nb_key, const int64_t nb_def[4],
                       int64_t *ch, int64_t *nb, size_t *n, const char *what, struct os_err *err)
{
    static const int64_t ch_def[4] = {64, 64, 64, 64};
    size_t nch;
    if (get_level_list(cfg, ch_key, ch_def, ch, &nch, what, err) ||
        get_level_list(cfg, nb_key, nb_def, nb, n, what, err))
        return -1;
    if (nch != *n)
        return os_fail(err, "%s: \"%s\" has %zu entries but \"%s\" has %zu; they must match", what, ch_key, nch,
                       nb_key, *n);
    for (size_t i = 0; i < *n; i++)
        if (nb[i] > ARCH_MAX_TINY_BLOCKS)
            return os_fail(err, "%s: \"%s\" entry %zu is %lld; expected at most %d", what, nb_key, i,
                           (long long)nb[i], ARCH_MAX_TINY_BLOCKS);
    return 0;
}

/* EncoderTiny then DecoderTiny, each one nn.Sequential "layers" whose index
 * counts every module, weightless ones (activations, upsampling) included.
 * The shapes are the modules diffusers builds from the config, also where
 * unequal channel entries would give a model torch cannot run (ref/taesd.c
 * refuses those; the walker only lists what the config implies). */
int arch_walk_taesd(const struct json *cfg, const char *what, arch_visit_fn visit, void *ctx, struct os_err *err)
{
    static const int64_t enc_nb_def[4] = {1, 3, 3, 3}, dec_nb_def[4] = {3, 3, 3, 1};
    int64_t in_ch, out_ch, latent, ech[ARCH_MAX_BLOCKS], enb[ARCH_MAX_BLOCKS], dch[ARCH_MAX_BLOCKS],
        dnb[ARCH_MAX_BLOCKS];
    size_t ne, nd;
    if (get_dim_or(cfg, "in_channels", 3, &in_ch, what, err) || get_dim_or(cfg, "out_channels", 3, &out_ch, what, err) ||
        get_dim_or(cfg, "latent_channels", 4, &latent, what, err) ||
        tiny_levels(cfg, "encoder_block_out_channels", "num_encoder_blocks", enc_nb_def, ech, enb, &ne, what, err) ||
        tiny_levels(cfg, "decoder_block_out_channels", "num_decoder_blocks", dec_nb_def, dch, dnb, &nd, what, err))
        return -1;

    struct walk w = {visit, ctx, what, err, 0};
    char p[160];
    int N = 0;
    for (size_t i = 0; i < ne; i++) {
        /* level 0: Conv2d(in_channels, C) with bias; later levels: a
         * stride-2 Conv2d(C, C) without bias */
        if (i == 0) conv3(&w, path(&w, p, sizeof p, "encoder.layers.%d", N++), ech[0], in_ch, 1);
        else conv3(&w, path(&w, p, sizeof p, "encoder.layers.%d", N++), ech[i], ech[i], 0);
        for (int64_t j = 0; j < enb[i]; j++) tiny_block(&w, path(&w, p, sizeof p, "encoder.layers.%d", N++), ech[i]);
    }
    conv3(&w, path(&w, p, sizeof p, "encoder.layers.%d", N), latent, ech[ne - 1], 1);

    N = 0;
    conv3(&w, path(&w, p, sizeof p, "decoder.layers.%d", N++), dch[0], latent, 1);
    N++; /* get_activation(act_fn) */
    for (size_t i = 0; i < nd; i++) {
        const int last = i + 1 == nd;
        for (int64_t j = 0; j < dnb[i]; j++) tiny_block(&w, path(&w, p, sizeof p, "decoder.layers.%d", N++), dch[i]);
        if (!last) N++; /* nn.Upsample */
        /* bias=is_final_block; the last level's conv gives the image */
        conv3(&w, path(&w, p, sizeof p, "decoder.layers.%d", N++), last ? out_ch : dch[i], dch[i], last);
    }
    return w.failed ? -1 : 0;
}

/* ------------------------------------------------------------ CLIP text */

int arch_walk_clip_text(const struct json *cfg, const char *what, int with_projection, arch_visit_fn visit, void *ctx,
                        struct os_err *err)
{
    int64_t d, inter, layers, heads, vocab, npos, proj = 0;
    if (get_dim(cfg, "hidden_size", &d, what, err) || get_dim(cfg, "intermediate_size", &inter, what, err) ||
        get_dim(cfg, "num_hidden_layers", &layers, what, err) ||
        get_dim(cfg, "num_attention_heads", &heads, what, err) || get_dim(cfg, "vocab_size", &vocab, what, err) ||
        get_dim_or(cfg, "max_position_embeddings", 77, &npos, what, err))
        return -1;
    if (with_projection && get_dim(cfg, "projection_dim", &proj, what, err)) return -1;
    if (d % heads)
        return os_fail(err, "%s: hidden_size %lld is not divisible by num_attention_heads %lld", what, (long long)d,
                       (long long)heads);
    if (layers > 1024) return os_fail(err, "%s: num_hidden_layers %lld is absurd", what, (long long)layers);

    struct walk w = {visit, ctx, what, err, 0};
    char p[160], b[224];
    int64_t tok[2] = {vocab, d}, pos[2] = {npos, d};
    emit(&w, ARCH_EMBEDDING, 0, 2, tok, "text_model.embeddings.token_embedding.weight");
    emit(&w, ARCH_EMBEDDING, 0, 2, pos, "text_model.embeddings.position_embedding.weight");
    for (int64_t l = 0; l < layers; l++) {
        path(&w, p, sizeof p, "text_model.encoder.layers.%lld", (long long)l);
        /* transformers registers k, v, q, out in this order */
        linear(&w, path(&w, b, sizeof b, "%s.self_attn.k_proj", p), d, d, 1);
        linear(&w, path(&w, b, sizeof b, "%s.self_attn.v_proj", p), d, d, 1);
        linear(&w, path(&w, b, sizeof b, "%s.self_attn.q_proj", p), d, d, 1);
        linear(&w, path(&w, b, sizeof b, "%s.self_attn.out_proj", p), d, d, 1);
        norm(&w, path(&w, b, sizeof b, "%s.layer_norm1", p), d);
        linear(&w, path(&w, b, sizeof b, "%s.mlp.fc1", p), inter, d, 1);
        linear(&w, path(&w, b, sizeof b, "%s.mlp.fc2", p), d, inter, 1);
        norm(&w, path(&w, b, sizeof b, "%s.layer_norm2", p), d);
    }
    norm(&w, "text_model.final_layer_norm", d);
    if (with_projection) linear(&w, "text_projection", proj, d, 0);
    return w.failed ? -1 : 0;
}

/* ------------------------------------------------------------ dispatch */

int arch_walk(const struct json *config, const char *what, arch_visit_fn visit, void *ctx, struct os_err *err)
{
    if (!config || config->type != JSON_OBJECT) return os_fail(err, "%s: config must be a JSON object", what);
    switch (arch_class_of(config)) {
    case ARCH_UNET: return arch_walk_unet(config, what, visit, ctx, err);
    case ARCH_VAE: return arch_walk_vae(config, what, visit, ctx, err);
    case ARCH_TAESD: return arch_walk_taesd(config, what, visit, ctx, err);
    case ARCH_CLIP_TEXT: return arch_walk_clip_text(config, what, 0, visit, ctx, err);
    case ARCH_CLIP_TEXT_PROJ: return arch_walk_clip_text(config, what, 1, visit, ctx, err);
    default: break;
    }
    return os_fail(err,
                   "%s: unknown model class (expected \"_class_name\" UNet2DConditionModel, AutoencoderKL or "
                   "AutoencoderTiny, or \"architectures\" [\"CLIPTextModel\"] or [\"CLIPTextModelWithProjection\"])",
                   what);
}

struct counter {
    uint64_t params;
    size_t tensors;
};

static int count_one(void *ctx, const struct arch_param *p, struct os_err *err)
{
    (void)err;
    struct counter *c = ctx;
    uint64_t n = 1;
    for (int i = 0; i < p->ndim; i++) n *= (uint64_t)p->shape[i];
    c->params += n;
    c->tensors++;
    return 0;
}

int arch_count(const struct json *config, const char *what, uint64_t *params, size_t *ntensors, struct os_err *err)
{
    struct counter c = {0, 0};
    if (arch_walk(config, what, count_one, &c, err)) return -1;
    if (params) *params = c.params;
    if (ntensors) *ntensors = c.tensors;
    return 0;
}
