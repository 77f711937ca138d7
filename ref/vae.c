/* vae.c — AutoencoderKL decoder and encoder (see vae.h for the shape of it).
 *
 * Upstream: diffusers v0.31.0 src/diffusers/models/autoencoders/vae.py
 * (Encoder, Decoder), unets/unet_2d_blocks.py (UNetMidBlock2D,
 * DownEncoderBlock2D, UpDecoderBlock2D), attention_processor.py (Attention,
 * AttnProcessor). Every GroupNorm in the VAE uses eps 1e-6 and
 * norm_num_groups groups; every ResnetBlock2D has no time embedding and
 * output_scale_factor 1. */
#include "vae.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "load.h"

#define VAE_EPS 1e-6f         /* resnet_eps and the conv_norm_out eps in vae.py */
#define VAE_MAX_CHANNELS 65536
#define VAE_MAX_SIDE 65536    /* image side in pixels */

/* ---------------------------------------------------------------- config */

static const char *config_name(const struct component *c)
{
    return c->config_path ? c->config_path : "vae config";
}

static int positive_int(const struct json *cfg, const char *key, int64_t def, int64_t max, int *out,
                        const char *what, struct os_err *err)
{
    int64_t x;
    if (json_get_int_or(cfg, key, def, &x, what, err)) return -1;
    if (x < 1 || x > max)
        return os_fail(err, "%s: \"%s\" is %lld; expected 1..%lld", what, key, (long long)x, (long long)max);
    *out = (int)x;
    return 0;
}

/* A list of block type names that must all be `want` (the only block type
 * AutoencoderKL's SD/SDXL configs use). An absent key is diffusers' default,
 * one block of that type. */
static int block_types(const struct json *cfg, const char *key, const char *want, int levels, const char *what,
                       struct os_err *err)
{
    const struct json *v = json_get(cfg, key);
    if (!v || v->type == JSON_NULL) {
        if (levels != 1)
            return os_fail(err, "%s: \"%s\" is missing but block_out_channels has %d entries", what, key, levels);
        return 0;
    }
    if (v->type != JSON_ARRAY) return os_fail(err, "%s: \"%s\" must be a list of strings", what, key);
    if ((int)v->len != levels)
        return os_fail(err, "%s: \"%s\" has %zu entries but block_out_channels has %d", what, key, v->len, levels);
    for (size_t i = 0; i < v->len; i++) {
        if (v->items[i].type != JSON_STRING) return os_fail(err, "%s: \"%s\"[%zu] must be a string", what, key, i);
        if (strcmp(v->items[i].str, want) != 0)
            return os_fail(err, "%s: \"%s\"[%zu] is \"%s\"; only %s is supported", what, key, i, v->items[i].str,
                           want);
    }
    return 0;
}

/* latents_mean / latents_std: null, or one number per latent channel. */
static int latent_stats(const struct json *cfg, const char *key, int n, float *out, int *present, const char *what,
                        struct os_err *err)
{
    const struct json *v = json_get(cfg, key);
    *present = 0;
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_ARRAY || (int)v->len != n)
        return os_fail(err, "%s: \"%s\" must be null or a list of %d numbers (one per latent channel)", what, key, n);
    for (int i = 0; i < n; i++) {
        if (v->items[i].type != JSON_NUMBER || !isfinite(v->items[i].number))
            return os_fail(err, "%s: \"%s\"[%d] must be a finite number", what, key, i);
        out[i] = (float)v->items[i].number;
    }
    *present = 1;
    return 0;
}

static int read_config(struct vae *v, const struct component *c, struct os_err *err)
{
    const struct json *cfg = c->config;
    const char *what = config_name(c);
    if (!cfg || cfg->type != JSON_OBJECT) return os_fail(err, "%s: the VAE needs a config.json object", what);

    const struct json *cls = json_get(cfg, "_class_name");
    if (cls && cls->type == JSON_STRING && strcmp(cls->str, "AutoencoderKL") != 0)
        return os_fail(err, "%s: \"_class_name\" is \"%s\"; this loader reads AutoencoderKL", what, cls->str);

    int failed = 0;
    const char *act = json_get_str_or(cfg, "act_fn", "silu", what, err, &failed);
    if (failed) return -1;
    if (strcmp(act, "silu") != 0 && strcmp(act, "swish") != 0)
        return os_fail(err, "%s: \"act_fn\" is \"%s\"; only silu is supported", what, act);

    const struct json *boc = json_get(cfg, "block_out_channels");
    int64_t ch[VAE_MAX_LEVELS];
    if (!boc || boc->type == JSON_NULL) {
        v->levels = 1;
        ch[0] = 64; /* AutoencoderKL's default (64,) */
    } else {
        if (boc->type != JSON_ARRAY || boc->len < 1 || boc->len > VAE_MAX_LEVELS)
            return os_fail(err, "%s: \"block_out_channels\" must be a list of 1..%d integers", what, VAE_MAX_LEVELS);
        v->levels = (int)boc->len;
        if (json_get_int_list(cfg, "block_out_channels", ch, boc->len, what, err)) return -1;
    }
    if (positive_int(cfg, "in_channels", 3, VAE_MAX_CHANNELS, &v->in_channels, what, err) ||
        positive_int(cfg, "out_channels", 3, VAE_MAX_CHANNELS, &v->out_channels, what, err) ||
        positive_int(cfg, "latent_channels", 4, VAE_MAX_LATENT_CH, &v->latent_channels, what, err) ||
        positive_int(cfg, "layers_per_block", 1, VAE_MAX_LAYERS, &v->layers_per_block, what, err) ||
        positive_int(cfg, "norm_num_groups", 32, VAE_MAX_CHANNELS, &v->norm_num_groups, what, err))
        return -1;
    for (int i = 0; i < v->levels; i++) {
        if (ch[i] < 1 || ch[i] > VAE_MAX_CHANNELS)
            return os_fail(err, "%s: \"block_out_channels\"[%d] is %lld; expected 1..%d", what, i, (long long)ch[i],
                           VAE_MAX_CHANNELS);
        if (ch[i] % v->norm_num_groups)
            return os_fail(err, "%s: \"block_out_channels\"[%d] = %lld is not divisible by norm_num_groups %d", what, i,
                           (long long)ch[i], v->norm_num_groups);
        v->block_out_channels[i] = (int)ch[i];
    }
    if (block_types(cfg, "down_block_types", "DownEncoderBlock2D", v->levels, what, err) ||
        block_types(cfg, "up_block_types", "UpDecoderBlock2D", v->levels, what, err))
        return -1;
    if (json_get_bool_or(cfg, "use_quant_conv", 1, &v->use_quant_conv, what, err) ||
        json_get_bool_or(cfg, "use_post_quant_conv", 1, &v->use_post_quant_conv, what, err) ||
        json_get_bool_or(cfg, "mid_block_add_attention", 1, &v->mid_block_add_attention, what, err))
        return -1;

    double sf, shift;
    if (json_get_num_or(cfg, "scaling_factor", 0.18215, &sf, what, err)) return -1;
    if (!isfinite(sf) || sf == 0.0)
        return os_fail(err, "%s: \"scaling_factor\" must be a finite non-zero number", what);
    v->scaling_factor = (float)sf;
    const struct json *sh = json_get(cfg, "shift_factor");
    v->has_shift_factor = sh && sh->type != JSON_NULL;
    if (json_get_num_or(cfg, "shift_factor", 0.0, &shift, what, err)) return -1;
    if (!isfinite(shift)) return os_fail(err, "%s: \"shift_factor\" must be a finite number", what);
    v->shift_factor = (float)shift;
    int has_mean, has_std;
    if (latent_stats(cfg, "latents_mean", v->latent_channels, v->latents_mean, &has_mean, what, err) ||
        latent_stats(cfg, "latents_std", v->latent_channels, v->latents_std, &has_std, what, err))
        return -1;
    v->has_latents_mean_std = has_mean && has_std;
    v->factor = 1 << (v->levels - 1);
    return 0;
}

/* --------------------------------------------------------------- loading */

/* to_q etc., or the name of diffusers' old AttentionBlock (query, ...) that some VAE
 * files still carry. */
static const struct tensor *attn_param(struct component *c, struct os_err *err, const char *p, const char *name,
                                       const char *old, const char *kind, int ndim, int C)
{
    int64_t shape[2] = {C, C};
    const struct tensor *t = load_optional(c, err, ndim, shape, "%s.%s.%s", p, name, kind);
    if (t || err->msg[0]) return t;
    char oldname[256];
    snprintf(oldname, sizeof oldname, "%s.%s.%s", p, old, kind);
    if (component_get(c, oldname)) return load_tensor(c, err, ndim, shape, "%s", oldname);
    return load_tensor(c, err, ndim, shape, "%s.%s.%s", p, name, kind); /* the error names the new key */
}

static int attention_load(struct vae_attention *at, struct component *c, const char *p, int C, int groups,
                          struct os_err *err)
{
    at->ch = C;
    at->groups = groups;
    at->eps = VAE_EPS;
    at->group_norm_w = load1(c, err, C, "%s.group_norm.weight", p);
    at->group_norm_b = load1(c, err, C, "%s.group_norm.bias", p);
    at->to_q_w = attn_param(c, err, p, "to_q", "query", "weight", 2, C);
    at->to_q_b = attn_param(c, err, p, "to_q", "query", "bias", 1, C);
    at->to_k_w = attn_param(c, err, p, "to_k", "key", "weight", 2, C);
    at->to_k_b = attn_param(c, err, p, "to_k", "key", "bias", 1, C);
    at->to_v_w = attn_param(c, err, p, "to_v", "value", "weight", 2, C);
    at->to_v_b = attn_param(c, err, p, "to_v", "value", "bias", 1, C);
    at->to_out_0_w = attn_param(c, err, p, "to_out.0", "proj_attn", "weight", 2, C);
    at->to_out_0_b = attn_param(c, err, p, "to_out.0", "proj_attn", "bias", 1, C);
    return err->msg[0] ? -1 : 0;
}

static int mid_block_load(struct vae_mid_block *m, struct component *c, const char *p, int C, const struct vae *v,
                          struct os_err *err)
{
    char name[128];
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s.resnets.%d", p, i);
        if (resnet_load(&m->resnets[i], c, name, C, C, 0, v->norm_num_groups, VAE_EPS, 1.0f, err)) return -1;
    }
    m->has_attention = v->mid_block_add_attention;
    if (!m->has_attention) return 0;
    snprintf(name, sizeof name, "%s.attentions.0", p);
    return attention_load(&m->attentions_0, c, name, C, v->norm_num_groups, err);
}

static int decoder_load(struct vae *v, struct component *c, struct os_err *err)
{
    struct vae_decoder *d = &v->decoder;
    const int L = v->levels, G = v->norm_num_groups;
    const int top = v->block_out_channels[L - 1];
    char name[128];
    if (v->use_post_quant_conv &&
        conv_load(&v->post_quant_conv, c, "post_quant_conv", v->latent_channels, v->latent_channels, 1, err))
        return -1;
    if (conv_load(&d->conv_in, c, "decoder.conv_in", v->latent_channels, top, 3, err)) return -1;
    if (mid_block_load(&d->mid_block, c, "decoder.mid_block", top, v, err)) return -1;
    /* up block i runs at reversed(block_out_channels)[i]; its first resnet
     * takes the previous block's channels */
    int prev = top;
    for (int i = 0; i < L; i++) {
        struct vae_up_block *u = &d->up_blocks[i];
        const int out = v->block_out_channels[L - 1 - i];
        u->nresnets = v->layers_per_block + 1;
        for (int j = 0; j < u->nresnets; j++) {
            snprintf(name, sizeof name, "decoder.up_blocks.%d.resnets.%d", i, j);
            if (resnet_load(&u->resnets[j], c, name, j == 0 ? prev : out, out, 0, G, VAE_EPS, 1.0f, err)) return -1;
        }
        u->has_upsampler = i != L - 1;
        snprintf(name, sizeof name, "decoder.up_blocks.%d.upsamplers.0", i);
        if (u->has_upsampler && upsample_load(&u->upsamplers_0, c, name, out, err)) return -1;
        prev = out;
    }
    const int bottom = v->block_out_channels[0];
    d->conv_norm_out_w = load1(c, err, bottom, "decoder.conv_norm_out.weight");
    d->conv_norm_out_b = load1(c, err, bottom, "decoder.conv_norm_out.bias");
    if (err->msg[0]) return -1;
    return conv_load(&d->conv_out, c, "decoder.conv_out", bottom, v->out_channels, 3, err);
}

static int encoder_load(struct vae *v, struct component *c, struct os_err *err)
{
    struct vae_encoder *e = &v->encoder;
    const int L = v->levels, G = v->norm_num_groups;
    const int top = v->block_out_channels[L - 1];
    char name[128];
    if (conv_load(&e->conv_in, c, "encoder.conv_in", v->in_channels, v->block_out_channels[0], 3, err)) return -1;
    int prev = v->block_out_channels[0];
    for (int i = 0; i < L; i++) {
        struct vae_down_block *b = &e->down_blocks[i];
        const int out = v->block_out_channels[i];
        b->nresnets = v->layers_per_block;
        for (int j = 0; j < b->nresnets; j++) {
            snprintf(name, sizeof name, "encoder.down_blocks.%d.resnets.%d", i, j);
            if (resnet_load(&b->resnets[j], c, name, j == 0 ? prev : out, out, 0, G, VAE_EPS, 1.0f, err)) return -1;
        }
        b->has_downsampler = i != L - 1;
        snprintf(name, sizeof name, "encoder.down_blocks.%d.downsamplers.0", i);
        /* Encoder passes downsample_padding=0: Downsample2D pads (0, 1, 0, 1) itself */
        if (b->has_downsampler && downsample_load(&b->downsamplers_0, c, name, out, 0, err)) return -1;
        prev = out;
    }
    if (mid_block_load(&e->mid_block, c, "encoder.mid_block", top, v, err)) return -1;
    e->conv_norm_out_w = load1(c, err, top, "encoder.conv_norm_out.weight");
    e->conv_norm_out_b = load1(c, err, top, "encoder.conv_norm_out.bias");
    if (err->msg[0]) return -1;
    const int moments = 2 * v->latent_channels;
    if (conv_load(&e->conv_out, c, "encoder.conv_out", top, moments, 3, err)) return -1;
    if (v->use_quant_conv && conv_load(&v->quant_conv, c, "quant_conv", moments, moments, 1, err)) return -1;
    return 0;
}

/* Without the encoder, its tensors are expected and left unread. */
static void skip_encoder_tensors(struct component *c)
{
    for (size_t i = 0; i < c->ntensors; i++) {
        const char *n = c->tensors[i].name;
        if (strncmp(n, "encoder.", 8) == 0 || strncmp(n, "quant_conv.", 11) == 0) component_get(c, n);
    }
}

int vae_load(struct vae *v, struct component *c, int with_encoder, struct os_err *err)
{
    memset(v, 0, sizeof *v);
    err->msg[0] = '\0';
    if (read_config(v, c, err)) return -1;
    if (decoder_load(v, c, err)) return -1;
    if (with_encoder) {
        if (encoder_load(v, c, err)) return -1;
        v->has_encoder = 1;
    } else {
        skip_encoder_tensors(c);
    }
    return component_check_unused(c, NULL, err);
}

/* --------------------------------------------------------------- forward */

/* Attention(x) + x on a [C, HW] map, as AttnProcessor computes it: the group
 * norm on the map, then tokens = its transpose [HW, C], one head with scale
 * 1/sqrt(C) (dim_head**-0.5), to_out.0, back to [C, HW], + residual. The
 * division by rescale_output_factor is by 1 in every VAE (vae.py passes
 * output_scale_factor=1 to the mid blocks). */
static float *attention_forward(const struct vae_attention *at, const struct ops *o, struct arena *a, const float *x,
                                int HW)
{
    const int C = at->ch;
    const size_t n = (size_t)C * HW;
    float *h = arena_alloc(a, n);
    o->group_norm(o, h, x, at->group_norm_w, at->group_norm_b, C, HW, at->groups, at->eps, ACT_NONE);
    float *tok = arena_alloc(a, n);
    o->transpose(o, tok, h, C, HW);
    arena_free(a, h);
    float *q = arena_alloc(a, n), *k = arena_alloc(a, n), *v = arena_alloc(a, n);
    o->linear(o, q, tok, at->to_q_w, at->to_q_b, NULL, HW, C, C);
    o->linear(o, k, tok, at->to_k_w, at->to_k_b, NULL, HW, C, C);
    o->linear(o, v, tok, at->to_v_w, at->to_v_b, NULL, HW, C, C);
    arena_free(a, tok);
    float *att = arena_alloc(a, n);
    struct attn_shape s = {HW, HW, 1, C, C, C, C, C, 0, (float)(1.0 / sqrt((double)C))};
    o->attention(o, att, q, k, v, &s);
    arena_free(a, v);
    arena_free(a, k);
    arena_free(a, q);
    float *proj = arena_alloc(a, n);
    o->linear(o, proj, att, at->to_out_0_w, at->to_out_0_b, NULL, HW, C, C);
    arena_free(a, att);
    float *y = arena_alloc(a, n);
    o->transpose(o, y, proj, HW, C);
    arena_free(a, proj);
    o->add(o, y, y, x, n); /* hidden_states + residual */
    return y;
}

/* The functions below consume their input: they free it and return a new
 * buffer, so a dead map never waits for the caller to release it. */
static float *resnet_step(const struct resnet *r, const struct ops *o, struct arena *a, float *x, int H, int W)
{
    float *y = resnet_forward(r, o, a, x, H, W, NULL);
    arena_free(a, x);
    return y;
}

static float *mid_block_forward(const struct vae_mid_block *m, const struct ops *o, struct arena *a, float *x, int H,
                                int W)
{
    x = resnet_step(&m->resnets[0], o, a, x, H, W);
    if (m->has_attention) {
        float *y = attention_forward(&m->attentions_0, o, a, x, H * W);
        arena_free(a, x);
        x = y;
    }
    return resnet_step(&m->resnets[1], o, a, x, H, W);
}

static float *conv_step(const struct conv *cv, const struct ops *o, struct arena *a, float *x, int H, int W)
{
    float *y = conv_forward(cv, o, a, x, H, W);
    arena_free(a, x);
    return y;
}

/* GroupNorm + SiLU + conv_out: the tail of both the Encoder and the Decoder. */
static float *norm_act_conv(const struct tensor *gw, const struct tensor *gb, const struct conv *cv, int groups,
                            const struct ops *o, struct arena *a, float *x, int H, int W)
{
    float *h = arena_alloc(a, (size_t)cv->in_ch * H * W);
    o->group_norm(o, h, x, gw, gb, cv->in_ch, H * W, groups, VAE_EPS, ACT_SILU);
    arena_free(a, x);
    return conv_step(cv, o, a, h, H, W);
}

/* Largest feature map (in floats) the sizes below can produce must fit in
 * size_t and the sides in int. */
static int check_size(const struct vae *v, int H, int W, const char *what, struct os_err *err)
{
    if (H < 1 || W < 1 || H > VAE_MAX_SIDE || W > VAE_MAX_SIDE)
        return os_fail(err, "vae: %s: image size %dx%d is outside 1..%d", what, H, W, VAE_MAX_SIDE);
    int cmax = v->in_channels > v->out_channels ? v->in_channels : v->out_channels;
    for (int i = 0; i < v->levels; i++)
        if (v->block_out_channels[i] > cmax) cmax = v->block_out_channels[i];
    size_t n;
    if (os_mul_size((size_t)H * (size_t)W, (size_t)cmax * sizeof(float), &n))
        return os_fail(err, "vae: %s: a %dx%d image needs feature maps too large to address", what, H, W);
    return 0;
}

int vae_decode(const struct vae *v, const struct ops *o, struct arena *a, const float *z, int h, int w, float *img,
               const struct dump_hook *d, struct os_err *err)
{
    const struct vae_decoder *dec = &v->decoder;
    if (h < 1 || w < 1 || h > VAE_MAX_SIDE / v->factor || w > VAE_MAX_SIDE / v->factor)
        return os_fail(err, "vae: decode: latent size %dx%d is outside 1..%d", h, w, VAE_MAX_SIDE / v->factor);
    if (check_size(v, h * v->factor, w * v->factor, "decode", err)) return -1;
    const int L = v->levels, top = v->block_out_channels[L - 1];
    int H = h, W = w;

    float *x = arena_alloc(a, (size_t)v->latent_channels * H * W);
    o->upload(o, x, z, (size_t)v->latent_channels * H * W);
    dump_chw(d, "vae.decode.input", x, v->latent_channels, H, W);
    if (v->use_post_quant_conv) {
        x = conv_step(&v->post_quant_conv, o, a, x, H, W);
        dump_chw(d, "vae.post_quant_conv", x, v->latent_channels, H, W);
    }
    x = conv_step(&dec->conv_in, o, a, x, H, W);
    dump_chw(d, "vae.decoder.conv_in", x, top, H, W);
    x = mid_block_forward(&dec->mid_block, o, a, x, H, W);
    dump_chw(d, "vae.decoder.mid_block", x, top, H, W);
    for (int i = 0; i < L; i++) {
        const struct vae_up_block *u = &dec->up_blocks[i];
        for (int j = 0; j < u->nresnets; j++) x = resnet_step(&u->resnets[j], o, a, x, H, W);
        if (u->has_upsampler) { /* F.interpolate(scale_factor=2.0, mode="nearest"), then the conv */
            float *y = upsample_forward(&u->upsamplers_0, o, a, x, H, W, 2 * H, 2 * W);
            arena_free(a, x);
            x = y;
            H *= 2;
            W *= 2;
        }
        dump_chwf(d, x, v->block_out_channels[L - 1 - i], H, W, "vae.decoder.up_blocks.%d", i);
    }
    x = norm_act_conv(dec->conv_norm_out_w, dec->conv_norm_out_b, &dec->conv_out, v->norm_num_groups, o, a, x, H, W);
    dump_chw(d, "vae.decode.output", x, v->out_channels, H, W);
    o->download(o, img, x, (size_t)v->out_channels * H * W);
    arena_free(a, x);
    return 0;
}

int vae_encode(const struct vae *v, const struct ops *o, struct arena *a, const float *img, int H, int W,
               float *moments, const struct dump_hook *d, struct os_err *err)
{
    const struct vae_encoder *enc = &v->encoder;
    if (!v->has_encoder) return os_fail(err, "vae: encode: the VAE was loaded without its encoder");
    if (check_size(v, H, W, "encode", err)) return -1;
    if (H % v->factor || W % v->factor)
        return os_fail(err, "vae: encode: image size %dx%d is not a multiple of %d (the VAE's downsampling factor)", H,
                       W, v->factor);
    const int L = v->levels, top = v->block_out_channels[L - 1], M = 2 * v->latent_channels;

    float *x = arena_alloc(a, (size_t)v->in_channels * H * W);
    o->upload(o, x, img, (size_t)v->in_channels * H * W);
    x = conv_step(&enc->conv_in, o, a, x, H, W);
    dump_chw(d, "vae.encoder.conv_in", x, v->block_out_channels[0], H, W);
    for (int i = 0; i < L; i++) {
        const struct vae_down_block *b = &enc->down_blocks[i];
        for (int j = 0; j < b->nresnets; j++) x = resnet_step(&b->resnets[j], o, a, x, H, W);
        if (b->has_downsampler) {
            int OH, OW;
            float *y = downsample_forward(&b->downsamplers_0, o, a, x, H, W, &OH, &OW);
            arena_free(a, x);
            x = y;
            H = OH;
            W = OW;
        }
        dump_chwf(d, x, v->block_out_channels[i], H, W, "vae.encoder.down_blocks.%d", i);
    }
    x = mid_block_forward(&enc->mid_block, o, a, x, H, W);
    dump_chw(d, "vae.encoder.mid_block", x, top, H, W);
    x = norm_act_conv(enc->conv_norm_out_w, enc->conv_norm_out_b, &enc->conv_out, v->norm_num_groups, o, a, x, H, W);
    dump_chw(d, "vae.encoder.conv_out", x, M, H, W);
    if (v->use_quant_conv) {
        x = conv_step(&v->quant_conv, o, a, x, H, W);
        dump_chw(d, "vae.quant_conv", x, M, H, W);
    }
    o->download(o, moments, x, (size_t)M * H * W);
    arena_free(a, x);
    return 0;
}

/* ------------------------------------------------------------ to pixels */

/* VaeImageProcessor.postprocess (image_processor.py): denormalize is
 * (x / 2 + 0.5).clamp(0, 1) on the float32 tensor, numpy_to_pil is
 * (x * 255).round().astype("uint8") on the float32 array. Each step rounds to
 * float32 as there; rintf rounds half to even like numpy's round. */
void vae_to_uint8(const float *img, int H, int W, unsigned char *rgb)
{
    const size_t HW = (size_t)H * W;
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < HW; i++) {
            float x = img[c * HW + i];
            float t = x / 2.0f;
            t = t + 0.5f;
            if (!(t >= 0.0f)) t = 0.0f; /* also NaN */
            if (t > 1.0f) t = 1.0f;
            float s = t * 255.0f;
            rgb[i * 3 + c] = (unsigned char)rintf(s);
        }
    }
}
