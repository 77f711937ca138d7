#include "keymap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ the table
 *
 * Each pair is {diffusers name, original name} of a module path; a key
 * matches when it begins with the whole path followed by "." or its end.
 * km_to_original reads the left column, km_to_diffusers the right one. */

struct rename {
    const char *diffusers, *original;
};

/* UNet modules outside the numbered blocks (ldm openaimodel.UNetModel). */
static const struct rename unet_top[] = {
    {"conv_in", "input_blocks.0.0"},
    {"time_embedding.linear_1", "time_embed.0"},
    {"time_embedding.linear_2", "time_embed.2"},
    {"add_embedding.linear_1", "label_emb.0.0"}, /* SDXL's vector conditioning (adm) */
    {"add_embedding.linear_2", "label_emb.0.2"},
    {"conv_norm_out", "out.0"},
    {"conv_out", "out.2"},
};

/* Inside a UNet ResBlock: in_layers = [GroupNorm, SiLU, Conv], emb_layers =
 * [SiLU, Linear], out_layers = [GroupNorm, SiLU, Dropout, Conv]. */
static const struct rename unet_resnet[] = {
    {"norm1", "in_layers.0"},     {"conv1", "in_layers.2"},  {"time_emb_proj", "emb_layers.1"},
    {"norm2", "out_layers.0"},    {"conv2", "out_layers.3"}, {"conv_shortcut", "skip_connection"},
};

/* VAE modules outside the numbered blocks; the rest keep their names. */
static const struct rename vae_top[] = {
    {"encoder.conv_norm_out", "encoder.norm_out"}, {"decoder.conv_norm_out", "decoder.norm_out"},
    {"encoder.conv_in", "encoder.conv_in"},        {"encoder.conv_out", "encoder.conv_out"},
    {"decoder.conv_in", "decoder.conv_in"},        {"decoder.conv_out", "decoder.conv_out"},
    {"quant_conv", "quant_conv"},                  {"post_quant_conv", "post_quant_conv"},
};

static const struct rename vae_resnet[] = {
    {"norm1", "norm1"}, {"conv1", "conv1"}, {"norm2", "norm2"}, {"conv2", "conv2"}, {"conv_shortcut", "nin_shortcut"},
};

/* The VAE mid-block AttnBlock: 1x1 convolutions in the original. */
static const struct rename vae_attn[] = {
    {"group_norm", "norm"}, {"to_q", "q"}, {"to_k", "k"}, {"to_v", "v"}, {"to_out.0", "proj_out"},
};

/* OpenCLIP text tower (open_clip/model.py, transformer.py). */
static const struct rename clip_top[] = {
    {"text_model.embeddings.token_embedding.weight", "token_embedding.weight"},
    {"text_model.embeddings.position_embedding.weight", "positional_embedding"}, /* an nn.Parameter, no .weight */
    {"text_model.final_layer_norm", "ln_final"},
    {"text_projection.weight", "text_projection"},
};

static const struct rename clip_layer[] = {
    {"self_attn.out_proj", "attn.out_proj"}, {"layer_norm1", "ln_1"},    {"layer_norm2", "ln_2"},
    {"mlp.fc1", "mlp.c_fc"},                 {"mlp.fc2", "mlp.c_proj"},
};

/* q, k, v of transformers are row blocks 0, 1, 2 of OpenCLIP's fused
 * nn.MultiheadAttention in_proj (torch's packed in-projection order). */
static const char *const qkv_names[3] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};

#define N_OF(t) (sizeof(t) / sizeof((t)[0]))

/* ================================================================ families */

static const struct km_component sd2_components[] = {
    {"unet", "model.diffusion_model.", KM_STYLE_UNET},
    {"vae", "first_stage_model.", KM_STYLE_VAE},
    {"text_encoder", "cond_stage_model.model.", KM_STYLE_OPEN_CLIP},
};

static const struct km_component sdxl_components[] = {
    {"unet", "model.diffusion_model.", KM_STYLE_UNET},
    {"vae", "first_stage_model.", KM_STYLE_VAE},
    {"text_encoder", "conditioner.embedders.0.transformer.", KM_STYLE_CLIP_HF},
    {"text_encoder_2", "conditioner.embedders.1.model.", KM_STYLE_OPEN_CLIP},
};

const struct km_component *km_family(enum km_family f, size_t *n)
{
    switch (f) {
    case KM_FAMILY_SD2: *n = N_OF(sd2_components); return sd2_components;
    case KM_FAMILY_SDXL: *n = N_OF(sdxl_components); return sdxl_components;
    default: *n = 0; return NULL;
    }
}

const char *km_family_name(enum km_family f)
{
    return f == KM_FAMILY_SD2 ? "SD 2.x" : f == KM_FAMILY_SDXL ? "SDXL" : "unknown";
}

const char *km_family_configs(enum km_family f)
{
    return f == KM_FAMILY_SD2 ? "sd-turbo" : f == KM_FAMILY_SDXL ? "sdxl-turbo" : NULL;
}

/* ================================================================ helpers */

struct out {
    char *buf;
    size_t len, n;
    int overflow;
};

static void put(struct out *o, const char *fmt, ...) OS_PRINTF(2, 3);

static void put(struct out *o, const char *fmt, ...)
{
    if (o->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->buf + o->n, o->len - o->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= o->len - o->n) o->overflow = 1;
    else o->n += (size_t)k;
}

/* `s` begins with module path `p` as whole segments: return what follows
 * (after the dot, or "" at the end), else NULL. */
static const char *after(const char *s, const char *p)
{
    size_t n = strlen(p);
    if (strncmp(s, p, n) != 0) return NULL;
    if (s[n] == '\0') return s + n;
    if (s[n] == '.') return s + n + 1;
    return NULL;
}

/* Find the entry whose path (in the chosen column) begins `s`. */
static const struct rename *lookup(const struct rename *t, size_t n, int from_original, const char *s,
                                   const char **rest)
{
    for (size_t i = 0; i < n; i++) {
        const char *r = after(s, from_original ? t[i].original : t[i].diffusers);
        if (r) {
            *rest = r;
            return &t[i];
        }
    }
    return NULL;
}

/* Write the renamed path and the rest. */
static int put_renamed(struct out *o, const struct rename *t, size_t n, int from_original, const char *s)
{
    const char *rest;
    const struct rename *r = lookup(t, n, from_original, s, &rest);
    if (!r) return -1;
    put(o, "%s%s%s", from_original ? r->diffusers : r->original, *rest ? "." : "", rest);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Read "<int>." from *s. */
static int index_of(const char **s, long *v)
{
    const char *p = *s;
    if (*p < '0' || *p > '9') return -1;
    char *end;
    long x = strtol(p, &end, 10);
    if (*end != '.' || x < 0 || x > 100000) return -1;
    *v = x;
    *s = end + 1;
    return 0;
}

/* "<word>.<int>." e.g. "resnets.1." */
static int word_index(const char **s, const char *word, long *v)
{
    const char *r = after(*s, word);
    if (!r || !*r) return -1;
    if (index_of(&r, v)) return -1;
    *s = r;
    return 0;
}

/* ================================================================ UNet */

struct unet_layout {
    long layers; /* resnets per down block; up blocks have one more */
    long nblocks;
    int up_attn[32];
};

static int unet_layout(const struct json *cfg, struct unet_layout *u, struct os_err *err)
{
    const struct json *lp = json_get(cfg, "layers_per_block");
    if (!lp || lp->type == JSON_NULL) {
        u->layers = 2; /* diffusers' default */
    } else if (lp->type != JSON_NUMBER || !lp->is_int || lp->integer < 1 || lp->integer > 64) {
        /* ldm numbers input_blocks with one resnet count for every level */
        return os_fail(err, "single-file UNet keys need one integer layers_per_block in the config");
    } else {
        u->layers = (long)lp->integer;
    }
    const struct json *up = json_get(cfg, "up_block_types");
    if (!up || up->type != JSON_ARRAY || up->len == 0 || up->len > 32)
        return os_fail(err, "single-file UNet keys need up_block_types in the config");
    u->nblocks = (long)up->len;
    for (size_t i = 0; i < up->len; i++)
        u->up_attn[i] = up->items[i].type == JSON_STRING && strncmp(up->items[i].str, "CrossAttn", 9) == 0;
    return 0;
}

static int unet_to_original(const struct unet_layout *u, const char *d, struct out *o)
{
    long L = u->layers, i, j;
    const char *s = d, *rest;
    if (put_renamed(o, unet_top, N_OF(unet_top), 0, d) == 0) return 0;
    if ((rest = after(s, "down_blocks")) && index_of(&rest, &i) == 0) {
        long base = 1 + i * (L + 1); /* input_blocks.0 is conv_in */
        s = rest;
        if (word_index(&s, "resnets", &j) == 0 && j < L) {
            put(o, "input_blocks.%ld.0.", base + j);
            return put_renamed(o, unet_resnet, N_OF(unet_resnet), 0, s);
        }
        if (word_index(&s, "attentions", &j) == 0 && j < L) {
            put(o, "input_blocks.%ld.1.%s", base + j, s);
            return 0;
        }
        if ((rest = after(s, "downsamplers.0.conv")) && *rest) {
            put(o, "input_blocks.%ld.0.op.%s", base + L, rest);
            return 0;
        }
        return -1;
    }
    if ((rest = after(s, "mid_block"))) {
        s = rest;
        if (word_index(&s, "resnets", &j) == 0) {
            put(o, "middle_block.%ld.", 2 * j);
            return put_renamed(o, unet_resnet, N_OF(unet_resnet), 0, s);
        }
        if (word_index(&s, "attentions", &j) == 0) {
            put(o, "middle_block.%ld.%s", 2 * j + 1, s);
            return 0;
        }
        return -1;
    }
    if ((rest = after(s, "up_blocks")) && index_of(&rest, &i) == 0 && i < u->nblocks) {
        long base = i * (L + 1);
        s = rest;
        if (word_index(&s, "resnets", &j) == 0 && j <= L) {
            put(o, "output_blocks.%ld.0.", base + j);
            return put_renamed(o, unet_resnet, N_OF(unet_resnet), 0, s);
        }
        if (word_index(&s, "attentions", &j) == 0 && j <= L) {
            put(o, "output_blocks.%ld.1.%s", base + j, s);
            return 0;
        }
        if ((rest = after(s, "upsamplers.0.conv")) && *rest) {
            /* the Upsample follows the block's last resnet (and transformer) */
            put(o, "output_blocks.%ld.%d.conv.%s", base + L, u->up_attn[i] ? 2 : 1, rest);
            return 0;
        }
    }
    return -1;
}

static int unet_to_diffusers(const struct unet_layout *u, const char *g, struct out *o)
{
    long L = u->layers, k, sub;
    const char *s, *rest;
    if (put_renamed(o, unet_top, N_OF(unet_top), 1, g) == 0) return 0;
    if ((s = after(g, "input_blocks")) && index_of(&s, &k) == 0 && k >= 1 && index_of(&s, &sub) == 0) {
        long i = (k - 1) / (L + 1), j = (k - 1) % (L + 1);
        if (j == L && sub == 0 && (rest = after(s, "op")) && *rest) {
            put(o, "down_blocks.%ld.downsamplers.0.conv.%s", i, rest);
            return 0;
        }
        if (j < L && sub == 0) {
            put(o, "down_blocks.%ld.resnets.%ld.", i, j);
            return put_renamed(o, unet_resnet, N_OF(unet_resnet), 1, s);
        }
        if (j < L && sub == 1) {
            put(o, "down_blocks.%ld.attentions.%ld.%s", i, j, s);
            return 0;
        }
        return -1;
    }
    if ((s = after(g, "middle_block")) && index_of(&s, &k) == 0) {
        if (k % 2 == 0) {
            put(o, "mid_block.resnets.%ld.", k / 2);
            return put_renamed(o, unet_resnet, N_OF(unet_resnet), 1, s);
        }
        put(o, "mid_block.attentions.%ld.%s", k / 2, s);
        return 0;
    }
    if ((s = after(g, "output_blocks")) && index_of(&s, &k) == 0 && index_of(&s, &sub) == 0) {
        long i = k / (L + 1), j = k % (L + 1);
        if (i >= u->nblocks) return -1;
        if (sub == 0) {
            put(o, "up_blocks.%ld.resnets.%ld.", i, j);
            return put_renamed(o, unet_resnet, N_OF(unet_resnet), 1, s);
        }
        if (sub == (u->up_attn[i] ? 2 : 1) && j == L && (rest = after(s, "conv")) && *rest) {
            put(o, "up_blocks.%ld.upsamplers.0.conv.%s", i, rest);
            return 0;
        }
        if (sub == 1 && u->up_attn[i]) {
            put(o, "up_blocks.%ld.attentions.%ld.%s", i, j, s);
            return 0;
        }
    }
    return -1;
}

/* ================================================================ VAE */

static long vae_nblocks(const struct json *cfg)
{
    const struct json *up = json_get(cfg, "up_block_types");
    return up && up->type == JSON_ARRAY ? (long)up->len : -1;
}

static int vae_to_original(long n, const char *d, struct out *o, enum km_xform *x)
{
    long i, j;
    const char *s, *rest;
    if (put_renamed(o, vae_top, N_OF(vae_top), 0, d) == 0) return 0;
    if ((s = after(d, "encoder.down_blocks")) && index_of(&s, &i) == 0) {
        if (word_index(&s, "resnets", &j) == 0) {
            put(o, "encoder.down.%ld.block.%ld.", i, j);
            return put_renamed(o, vae_resnet, N_OF(vae_resnet), 0, s);
        }
        if ((rest = after(s, "downsamplers.0.conv")) && *rest) {
            put(o, "encoder.down.%ld.downsample.conv.%s", i, rest);
            return 0;
        }
        return -1;
    }
    if ((s = after(d, "decoder.up_blocks")) && index_of(&s, &i) == 0 && i < n) {
        /* diffusers runs the decoder's blocks low to high resolution; ldm
         * numbers them by resolution level, so up.0 is the last to run */
        if (word_index(&s, "resnets", &j) == 0) {
            put(o, "decoder.up.%ld.block.%ld.", n - 1 - i, j);
            return put_renamed(o, vae_resnet, N_OF(vae_resnet), 0, s);
        }
        if ((rest = after(s, "upsamplers.0.conv")) && *rest) {
            put(o, "decoder.up.%ld.upsample.conv.%s", n - 1 - i, rest);
            return 0;
        }
        return -1;
    }
    for (int dec = 0; dec < 2; dec++) {
        const char *side = dec ? "decoder" : "encoder";
        char mid[32];
        snprintf(mid, sizeof mid, "%s.mid_block", side);
        if (!(s = after(d, mid))) continue;
        if (word_index(&s, "resnets", &j) == 0) {
            put(o, "%s.mid.block_%ld.", side, j + 1);
            return put_renamed(o, vae_resnet, N_OF(vae_resnet), 0, s);
        }
        if ((rest = after(s, "attentions.0"))) {
            put(o, "%s.mid.attn_1.", side);
            if (put_renamed(o, vae_attn, N_OF(vae_attn), 0, rest)) return -1;
            if (!after(rest, "group_norm") && ends_with(rest, ".weight")) *x = KM_CONV1X1;
            return 0;
        }
    }
    return -1;
}

static int vae_to_diffusers(long n, const char *g, struct out *o)
{
    long i, j;
    const char *s, *rest;
    if (put_renamed(o, vae_top, N_OF(vae_top), 1, g) == 0) return 0;
    if ((s = after(g, "encoder.down")) && index_of(&s, &i) == 0) {
        if (word_index(&s, "block", &j) == 0) {
            put(o, "encoder.down_blocks.%ld.resnets.%ld.", i, j);
            return put_renamed(o, vae_resnet, N_OF(vae_resnet), 1, s);
        }
        if ((rest = after(s, "downsample.conv")) && *rest) {
            put(o, "encoder.down_blocks.%ld.downsamplers.0.conv.%s", i, rest);
            return 0;
        }
        return -1;
    }
    if ((s = after(g, "decoder.up")) && index_of(&s, &i) == 0 && i < n) {
        if (word_index(&s, "block", &j) == 0) {
            put(o, "decoder.up_blocks.%ld.resnets.%ld.", n - 1 - i, j);
            return put_renamed(o, vae_resnet, N_OF(vae_resnet), 1, s);
        }
        if ((rest = after(s, "upsample.conv")) && *rest) {
            put(o, "decoder.up_blocks.%ld.upsamplers.0.conv.%s", n - 1 - i, rest);
            return 0;
        }
        return -1;
    }
    for (int dec = 0; dec < 2; dec++) {
        const char *side = dec ? "decoder" : "encoder";
        char mid[32];
        snprintf(mid, sizeof mid, "%s.mid", side);
        if (!(s = after(g, mid))) continue;
        if (strncmp(s, "block_", 6) == 0) {
            s += 6;
            if (index_of(&s, &j) || j < 1) return -1;
            put(o, "%s.mid_block.resnets.%ld.", side, j - 1);
            return put_renamed(o, vae_resnet, N_OF(vae_resnet), 1, s);
        }
        if ((rest = after(s, "attn_1"))) {
            put(o, "%s.mid_block.attentions.0.", side);
            return put_renamed(o, vae_attn, N_OF(vae_attn), 1, rest);
        }
    }
    return -1;
}

/* ================================================================ OpenCLIP */

static int clip_to_original(const char *d, struct out *o, enum km_xform *x, int *part)
{
    long l;
    const char *s;
    if (put_renamed(o, clip_top, N_OF(clip_top), 0, d) == 0) {
        if (strcmp(d, "text_projection.weight") == 0) *x = KM_TRANSPOSE;
        return 0;
    }
    if (!(s = after(d, "text_model.encoder.layers")) || index_of(&s, &l)) return -1;
    for (int p = 0; p < 3; p++) {
        const char *leaf = after(s, qkv_names[p]);
        if (leaf && (strcmp(leaf, "weight") == 0 || strcmp(leaf, "bias") == 0)) {
            put(o, "transformer.resblocks.%ld.attn.in_proj_%s", l, leaf);
            *x = KM_QKV_PART;
            *part = p;
            return 0;
        }
    }
    put(o, "transformer.resblocks.%ld.", l);
    return put_renamed(o, clip_layer, N_OF(clip_layer), 0, s);
}

static int clip_to_diffusers(const char *g, struct out *o)
{
    long l;
    const char *s, *leaf;
    if (put_renamed(o, clip_top, N_OF(clip_top), 1, g) == 0) return 0;
    if (!(s = after(g, "transformer.resblocks")) || index_of(&s, &l)) return -1;
    if ((leaf = after(s, "attn")) && strncmp(leaf, "in_proj_", 8) == 0) {
        put(o, "text_model.encoder.layers.%ld.%s.%s", l, qkv_names[0], leaf + 8);
        return 0;
    }
    put(o, "text_model.encoder.layers.%ld.", l);
    return put_renamed(o, clip_layer, N_OF(clip_layer), 1, s);
}

/* ================================================================ API */

int km_to_original(const struct km_component *c, const struct json *cfg, const char *diffusers, struct km_target *t,
                   struct os_err *err)
{
    memset(t, 0, sizeof *t);
    struct out o = {t->original, sizeof t->original, 0, 0};
    put(&o, "%s", c->prefix);
    int rc = -1;
    switch (c->style) {
    case KM_STYLE_UNET: {
        struct unet_layout u;
        if (unet_layout(cfg, &u, err)) return -1;
        rc = unet_to_original(&u, diffusers, &o);
        break;
    }
    case KM_STYLE_VAE: rc = vae_to_original(vae_nblocks(cfg), diffusers, &o, &t->xform); break;
    case KM_STYLE_CLIP_HF: put(&o, "%s", diffusers); rc = 0; break;
    case KM_STYLE_OPEN_CLIP: rc = clip_to_original(diffusers, &o, &t->xform, &t->part); break;
    }
    if (rc || o.overflow) return os_fail(err, "%s: \"%s\" has no name in the single-file layout", c->name, diffusers);
    return 0;
}

int km_to_diffusers(const struct km_component *c, const struct json *cfg, const char *original, char *buf, size_t len,
                    struct os_err *err)
{
    size_t np = strlen(c->prefix);
    if (strncmp(original, c->prefix, np) != 0)
        return os_fail(err, "\"%s\" is not under %s (%s)", original, c->prefix, c->name);
    const char *g = original + np;
    struct out o = {buf, len, 0, 0};
    int rc = -1;
    switch (c->style) {
    case KM_STYLE_UNET: {
        struct unet_layout u;
        if (unet_layout(cfg, &u, err)) return -1;
        rc = unet_to_diffusers(&u, g, &o);
        break;
    }
    case KM_STYLE_VAE: rc = vae_to_diffusers(vae_nblocks(cfg), g, &o); break;
    case KM_STYLE_CLIP_HF: put(&o, "%s", g); rc = 0; break;
    case KM_STYLE_OPEN_CLIP: rc = clip_to_diffusers(g, &o); break;
    }
    if (rc || o.overflow) return os_fail(err, "%s: \"%s\" has no diffusers name", c->name, original);
    return 0;
}

/* ================================================================ extras */

static int is_projection_model(const struct json *cfg)
{
    return arch_class_of(cfg) == ARCH_CLIP_TEXT_PROJ;
}

static int64_t cfg_int(const struct json *cfg, const char *key, int64_t def)
{
    const struct json *v = json_get(cfg, key);
    return v && v->type == JSON_NUMBER && v->is_int ? v->integer : def;
}

int km_is_extra(const struct km_component *c, const struct json *cfg, const char *original)
{
    size_t np = strlen(c->prefix);
    if (strncmp(original, c->prefix, np) != 0) return 0;
    const char *g = original + np;
    if (c->style == KM_STYLE_CLIP_HF) return strcmp(g, "text_model.embeddings.position_ids") == 0;
    if (c->style != KM_STYLE_OPEN_CLIP) return 0;
    if (strcmp(g, "logit_scale") == 0 || strcmp(g, "attn_mask") == 0) return 1;
    if (is_projection_model(cfg)) return 0;
    /* SD 2.x: CLIPTextModel without projection, one layer short of the file */
    if (strcmp(g, "text_projection") == 0) return 1;
    const char *s = after(g, "transformer.resblocks");
    long l;
    return s && index_of(&s, &l) == 0 && l == cfg_int(cfg, "num_hidden_layers", -1);
}

static int extra(km_extra_fn visit, void *ctx, struct os_err *err, enum arch_role role, int64_t fan_in, int ndim,
                 int64_t d0, int64_t d1, const char *fmt, ...) OS_PRINTF(9, 10);

static int extra(km_extra_fn visit, void *ctx, struct os_err *err, enum arch_role role, int64_t fan_in, int ndim,
                 int64_t d0, int64_t d1, const char *fmt, ...)
{
    char name[KM_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    struct km_extra e = {0};
    e.name = name;
    e.ndim = ndim;
    e.shape[0] = d0;
    e.shape[1] = d1;
    e.role = role;
    e.fan_in = fan_in;
    return visit(ctx, &e, err);
}

int km_extras(const struct km_component *c, const struct json *cfg, km_extra_fn visit, void *ctx, struct os_err *err)
{
    const char *p = c->prefix;
    if (c->style == KM_STYLE_CLIP_HF) {
        struct km_extra e = {0};
        char name[KM_NAME_MAX];
        snprintf(name, sizeof name, "%stext_model.embeddings.position_ids", p);
        e.name = name;
        e.ndim = 2;
        e.shape[0] = 1;
        e.shape[1] = cfg_int(cfg, "max_position_embeddings", 77);
        e.is_index = 1;
        return visit(ctx, &e, err);
    }
    if (c->style != KM_STYLE_OPEN_CLIP) return 0;
    {
        struct km_extra e = {0};
        char name[KM_NAME_MAX];
        snprintf(name, sizeof name, "%slogit_scale", p);
        e.name = name;
        e.ndim = 0;
        e.is_logit_scale = 1;
        if (visit(ctx, &e, err)) return -1;
    }
    if (is_projection_model(cfg)) return 0;
    /* SD 2.x: the OpenCLIP tower's own last layer and projection. OpenCLIP
     * ViT-H/14 projects to embed_dim 1024 = its width. */
    int64_t d = cfg_int(cfg, "hidden_size", 0), f = cfg_int(cfg, "intermediate_size", 0);
    long l = (long)cfg_int(cfg, "num_hidden_layers", 0);
    if (d <= 0 || f <= 0 || l <= 0) return os_fail(err, "%s: config lacks hidden_size / intermediate_size / layers", c->name);
    const char *r = "transformer.resblocks";
    if (extra(visit, ctx, err, ARCH_MATRIX, d, 2, 3 * d, d, "%s%s.%ld.attn.in_proj_weight", p, r, l) ||
        extra(visit, ctx, err, ARCH_BIAS, 0, 1, 3 * d, 0, "%s%s.%ld.attn.in_proj_bias", p, r, l) ||
        extra(visit, ctx, err, ARCH_MATRIX, d, 2, d, d, "%s%s.%ld.attn.out_proj.weight", p, r, l) ||
        extra(visit, ctx, err, ARCH_BIAS, 0, 1, d, 0, "%s%s.%ld.attn.out_proj.bias", p, r, l) ||
        extra(visit, ctx, err, ARCH_NORM_SCALE, 0, 1, d, 0, "%s%s.%ld.ln_1.weight", p, r, l) ||
        extra(visit, ctx, err, ARCH_NORM_SHIFT, 0, 1, d, 0, "%s%s.%ld.ln_1.bias", p, r, l) ||
        extra(visit, ctx, err, ARCH_MATRIX, d, 2, f, d, "%s%s.%ld.mlp.c_fc.weight", p, r, l) ||
        extra(visit, ctx, err, ARCH_BIAS, 0, 1, f, 0, "%s%s.%ld.mlp.c_fc.bias", p, r, l) ||
        extra(visit, ctx, err, ARCH_MATRIX, f, 2, d, f, "%s%s.%ld.mlp.c_proj.weight", p, r, l) ||
        extra(visit, ctx, err, ARCH_BIAS, 0, 1, d, 0, "%s%s.%ld.mlp.c_proj.bias", p, r, l) ||
        extra(visit, ctx, err, ARCH_NORM_SCALE, 0, 1, d, 0, "%s%s.%ld.ln_2.weight", p, r, l) ||
        extra(visit, ctx, err, ARCH_NORM_SHIFT, 0, 1, d, 0, "%s%s.%ld.ln_2.bias", p, r, l) ||
        extra(visit, ctx, err, ARCH_MATRIX, d, 2, d, d, "%stext_projection", p))
        return -1;
    return 0;
}
