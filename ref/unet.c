#include "unet.h"

#include <stdio.h>
#include <string.h>

#include "load.h"
#include "refmath.h"

/* ---- config ----
 * Defaults are those of UNet2DConditionModel.__init__ (diffusers v0.31), so a
 * config that omits a key means what it means upstream. */

struct cfg {
    const struct json *j;
    const char *path;
    struct os_err *err;
};

static int cfg_int(const struct cfg *g, const char *key, int64_t def, int lo, int hi, int *out)
{
    int64_t v;
    if (json_get_int_or(g->j, key, def, &v, g->path, g->err)) return -1;
    if (v < lo || v > hi)
        return os_fail(g->err, "%s: \"%s\" is %lld; expected %d..%d", g->path, key, (long long)v, lo, hi);
    *out = (int)v;
    return 0;
}

/* An int or a list with one int per block (absent/null: def for every block). */
static int cfg_list(const struct cfg *g, const char *key, int64_t def, int n, int lo, int hi, int *out)
{
    int64_t v[UNET_MAX_BLOCKS];
    const struct json *e = json_get(g->j, key);
    if (!e || e->type == JSON_NULL) {
        for (int i = 0; i < n; i++) v[i] = def;
    } else if (json_get_int_list(g->j, key, v, (size_t)n, g->path, g->err)) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (v[i] < lo || v[i] > hi)
            return os_fail(g->err, "%s: \"%s\" entry %d is %lld; expected %d..%d", g->path, key, i, (long long)v[i],
                           lo, hi);
        out[i] = (int)v[i];
    }
    return 0;
}

/* A key whose only supported value is null / absent. */
static int cfg_null(const struct cfg *g, const char *key, const char *why)
{
    const struct json *e = json_get(g->j, key);
    if (e && e->type != JSON_NULL)
        return os_fail(g->err, "%s: \"%s\" is set, but only null is supported (%s)", g->path, key, why);
    return 0;
}

/* A bool (or list of bools) whose only supported value is false. */
static int cfg_false(const struct cfg *g, const char *key, const char *why)
{
    const struct json *e = json_get(g->j, key);
    if (!e || e->type == JSON_NULL || (e->type == JSON_BOOL && !e->boolean)) return 0;
    if (e->type == JSON_ARRAY) {
        size_t i = 0;
        while (i < e->len && e->items[i].type == JSON_BOOL && !e->items[i].boolean) i++;
        if (i == e->len) return 0;
    }
    return os_fail(g->err, "%s: \"%s\" must be false (%s)", g->path, key, why);
}

/* A string key: absent/null means def; the value must be `want` or `alt` (alt may be NULL). */
static int cfg_str(const struct cfg *g, const char *key, const char *def, const char *want, const char *alt)
{
    int failed;
    const char *s = json_get_str_or(g->j, key, def, g->path, g->err, &failed);
    if (failed) return -1;
    if (s && (strcmp(s, want) == 0 || (alt && strcmp(s, alt) == 0))) return 0;
    return os_fail(g->err, "%s: \"%s\" is \"%s\"; only \"%s\" is supported", g->path, key, s ? s : "null", want);
}

/* One entry of a list of block-type names. */
static int cfg_block_type(const struct cfg *g, const char *key, int i, const char *plain, const char *attn,
                          int *cross_attn)
{
    const struct json *e = json_get(g->j, key);
    const struct json *v = &e->items[i];
    if (v->type != JSON_STRING)
        return os_fail(g->err, "%s: \"%s\" entry %d must be a string, got %s", g->path, key, i,
                       json_type_name(v->type));
    if (strcmp(v->str, plain) == 0) *cross_attn = 0;
    else if (strcmp(v->str, attn) == 0) *cross_attn = 1;
    else
        return os_fail(g->err, "%s: \"%s\" entry %d is \"%s\", which is not supported (only %s and %s)", g->path,
                       key, i, v->str, plain, attn);
    return 0;
}

/* transformer_layers_per_block (or reverse_transformer_layers_per_block) for
 * block b, layer l: one int for every block, one int per block, or (diffusers'
 * "asymmetric UNet") one list per block with an int per layer. */
static int cfg_layers(const struct cfg *g, const char *key, const struct json *spec, int nblocks, int b, int l,
                      int *out)
{
    const struct json *e = spec;
    if (e->type == JSON_ARRAY) {
        if ((int)e->len != nblocks)
            return os_fail(g->err, "%s: \"%s\" has %zu entries, expected %d (one per block)", g->path, key, e->len,
                           nblocks);
        e = &e->items[b];
    }
    if (e->type == JSON_ARRAY) {
        if ((int)e->len <= l)
            return os_fail(g->err, "%s: \"%s\" entry %d has %zu values, but the block has more layers than that",
                           g->path, key, b, e->len);
        e = &e->items[l];
    }
    if (e->type != JSON_NUMBER || !e->is_int || e->integer < 1 || e->integer > 1000)
        return os_fail(g->err, "%s: \"%s\": block %d layer %d needs a positive integer", g->path, key, b, l);
    *out = (int)e->integer;
    return 0;
}

static int is_nested(const struct json *spec)
{
    if (spec->type != JSON_ARRAY) return 0;
    for (size_t i = 0; i < spec->len; i++)
        if (spec->items[i].type == JSON_ARRAY) return 1;
    return 0;
}

/* Everything a SD 1.x / 2.x / SDXL config sets differently from what we
 * implement is an error here, rather than a silently different network. */
static int check_unsupported(const struct cfg *g)
{
    int failed;
    const char *cls = json_get_str_or(g->j, "_class_name", "UNet2DConditionModel", g->path, g->err, &failed);
    if (failed) return -1;
    if (strcmp(cls, "UNet2DConditionModel") != 0)
        return os_fail(g->err, "%s: \"_class_name\" is \"%s\"; only UNet2DConditionModel is supported", g->path,
                       cls);
    /* diffusers v0.31 itself raises for it: the head count comes from attention_head_dim */
    if (cfg_null(g, "num_attention_heads", "diffusers reads the head count from attention_head_dim")) return -1;
    if (cfg_null(g, "class_embed_type", "class embeddings are not implemented")) return -1;
    if (cfg_null(g, "num_class_embeds", "class embeddings are not implemented")) return -1;
    if (cfg_null(g, "time_cond_proj_dim", "the guidance-scale embedding of LCM-distilled UNets is not implemented"))
        return -1;
    if (cfg_null(g, "encoder_hid_dim", "encoder_hid_proj is not implemented")) return -1;
    if (cfg_null(g, "encoder_hid_dim_type", "encoder_hid_proj is not implemented")) return -1;
    if (cfg_null(g, "time_embedding_act_fn", "no activation after the time embedding is implemented")) return -1;
    if (cfg_null(g, "timestep_post_act", "no activation after the time embedding is implemented")) return -1;
    if (cfg_null(g, "cross_attention_norm", "no norm on the context is implemented")) return -1;
    if (cfg_false(g, "dual_cross_attention", "DualTransformer2DModel is not implemented")) return -1;
    if (cfg_false(g, "only_cross_attention", "attn1 is self-attention here")) return -1;
    if (cfg_false(g, "mid_block_only_cross_attention", "attn1 is self-attention here")) return -1;
    if (cfg_false(g, "class_embeddings_concat", "class embeddings are not implemented")) return -1;
    if (cfg_false(g, "center_input_sample", "the input is used as given")) return -1;
    if (cfg_str(g, "act_fn", "silu", "silu", "swish")) return -1;
    if (cfg_str(g, "time_embedding_type", "positional", "positional", NULL)) return -1;
    if (cfg_str(g, "resnet_time_scale_shift", "default", "default", NULL)) return -1;
    if (cfg_str(g, "attention_type", "default", "default", NULL)) return -1;
    const struct json *mid = json_get(g->j, "mid_block_type");
    if (mid && mid->type == JSON_NULL) /* upstream: no mid block at all */
        return os_fail(g->err, "%s: \"mid_block_type\" is null (no mid block), which is not supported", g->path);
    if (cfg_str(g, "mid_block_type", "UNetMidBlock2DCrossAttn", "UNetMidBlock2DCrossAttn", NULL)) return -1;
    /* Not checked, with reason: dropout (inference), sample_size (any latent size
     * runs), upcast_attention (upcasts q k^T to float32: a no-op in a float32
     * engine), resnet_skip_time_act / resnet_out_scale_factor (get_down_block /
     * get_up_block pass them only to block types we reject),
     * addition_embed_type_num_heads (only for addition_embed_type "text"). */
    return 0;
}

/* ---- loading ---- */

struct skip_plan {
    int ch[UNET_MAX_SKIPS];
    int n;
};

static int load_down_block(struct unet *u, struct component *c, const struct cfg *g, int i, const int *layers,
                           const int *heads, const struct json *tl_spec, int linear, int pad_symmetric,
                           struct skip_plan *sp)
{
    struct os_err *err = g->err;
    struct unet_down_block *d = &u->down_blocks[i];
    const int n = u->num_blocks;
    d->in_ch = i == 0 ? u->block_out_channels[0] : u->block_out_channels[i - 1];
    d->out_ch = u->block_out_channels[i];
    d->num_layers = layers[i];
    d->resnets = OS_CALLOC((size_t)d->num_layers, sizeof *d->resnets);
    if (!d->resnets) return os_fail(err, "out of memory");
    if (d->cross_attn) {
        d->attentions = OS_CALLOC((size_t)d->num_layers, sizeof *d->attentions);
        if (!d->attentions) return os_fail(err, "out of memory");
    }
    for (int j = 0; j < d->num_layers; j++) {
        char p[96];
        snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
        if (resnet_load(&d->resnets[j], c, p, j == 0 ? d->in_ch : d->out_ch, d->out_ch, u->time_embed_dim,
                        u->norm_num_groups, u->norm_eps, 1.0f, err))
            return -1;
        if (d->cross_attn) {
            int tl;
            if (cfg_layers(g, "transformer_layers_per_block", tl_spec, n, i, j, &tl)) return -1;
            snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
            if (transformer2d_load(&d->attentions[j], c, p, d->out_ch, heads[i], tl, u->cross_attention_dim,
                                   u->norm_num_groups, linear, err))
                return -1;
        }
        if (sp->n == UNET_MAX_SKIPS) return os_fail(err, "%s: too many layers (over %d skip connections)", g->path,
                                                    UNET_MAX_SKIPS);
        sp->ch[sp->n++] = d->out_ch;
    }
    d->has_downsampler = i < n - 1;
    if (d->has_downsampler) {
        char p[96];
        snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0", i);
        if (downsample_load(&d->downsamplers_0, c, p, d->out_ch, pad_symmetric, err)) return -1;
        if (sp->n == UNET_MAX_SKIPS) return os_fail(err, "%s: too many layers (over %d skip connections)", g->path,
                                                    UNET_MAX_SKIPS);
        sp->ch[sp->n++] = d->out_ch;
    }
    return 0;
}

static int load_mid_block(struct unet *u, struct component *c, const struct cfg *g, const int *heads,
                          const struct json *tl_spec, int linear, float mid_scale)
{
    struct os_err *err = g->err;
    struct unet_mid_block *m = &u->mid_block;
    const int n = u->num_blocks;
    m->ch = u->block_out_channels[n - 1];
    /* UNetMidBlock2DCrossAttn gets transformer_layers_per_block[-1]; as a list it
     * uses its first entry (its one attention is "layer 0") */
    int tl;
    if (cfg_layers(g, "transformer_layers_per_block", tl_spec, n, n - 1, 0, &tl)) return -1;
    for (int j = 0; j < 2; j++) {
        char p[64];
        snprintf(p, sizeof p, "mid_block.resnets.%d", j);
        if (resnet_load(&m->resnets[j], c, p, m->ch, m->ch, u->time_embed_dim, u->norm_num_groups, u->norm_eps,
                        mid_scale, err))
            return -1;
    }
    return transformer2d_load(&m->attentions_0, c, "mid_block.attentions.0", m->ch, heads[n - 1], tl,
                              u->cross_attention_dim, u->norm_num_groups, linear, err);
}

static int load_up_block(struct unet *u, struct component *c, const struct cfg *g, int i, const int *layers,
                         const int *heads, const char *tl_key, const struct json *tl_spec, int tl_reversed, int linear,
                         struct skip_plan *sp)
{
    struct os_err *err = g->err;
    struct unet_up_block *b = &u->up_blocks[i];
    const int n = u->num_blocks, r = n - 1 - i; /* r: the down block at the same resolution */
    /* unet_2d_condition.py: output_channel = reversed_block_out_channels[i], prev_output_channel
     * the previous block's output, input_channel = reversed_block_out_channels[min(i + 1, n - 1)] */
    const int prev_out = u->block_out_channels[i == 0 ? n - 1 : r + 1];
    const int in_ch = u->block_out_channels[r == 0 ? 0 : r - 1];
    b->out_ch = u->block_out_channels[r];
    b->num_layers = layers[r] + 1;
    b->resnets = OS_CALLOC((size_t)b->num_layers, sizeof *b->resnets);
    if (!b->resnets) return os_fail(err, "out of memory");
    if (b->cross_attn) {
        b->attentions = OS_CALLOC((size_t)b->num_layers, sizeof *b->attentions);
        if (!b->attentions) return os_fail(err, "out of memory");
    }
    for (int j = 0; j < b->num_layers; j++) {
        /* CrossAttnUpBlock2D / UpBlock2D: the last resnet's skip comes from the
         * previous (shallower) level, so it has that level's channel count */
        const int skip_ch = j == b->num_layers - 1 ? in_ch : b->out_ch;
        const int h_ch = j == 0 ? prev_out : b->out_ch;
        if (sp->n == 0 || sp->ch[sp->n - 1] != skip_ch)
            return os_fail(err,
                           "%s: up_blocks.%d resnet %d expects a %d-channel skip connection, but the down path %s: "
                           "layers_per_block / block_out_channels do not describe a UNet",
                           g->path, i, j, skip_ch, sp->n ? "leaves a different one" : "has none left");
        sp->n--;
        char p[96];
        snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
        if (resnet_load(&b->resnets[j], c, p, h_ch + skip_ch, b->out_ch, u->time_embed_dim, u->norm_num_groups,
                        u->norm_eps, 1.0f, err))
            return -1;
        if (b->cross_attn) {
            int tl;
            if (cfg_layers(g, tl_key, tl_spec, n, tl_reversed ? i : r, j, &tl)) return -1;
            snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
            if (transformer2d_load(&b->attentions[j], c, p, b->out_ch, heads[r], tl, u->cross_attention_dim,
                                   u->norm_num_groups, linear, err))
                return -1;
        }
    }
    b->has_upsampler = i < n - 1;
    if (b->has_upsampler) {
        char p[96];
        snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0", i);
        if (upsample_load(&b->upsamplers_0, c, p, b->out_ch, err)) return -1;
    }
    return 0;
}

static int load_config_and_weights(struct unet *u, struct component *c, struct os_err *err)
{
    const char *path = c->config_path ? c->config_path : "unet/config.json";
    if (!c->config) return os_fail(err, "%s: the unet component has no config", c->dir ? c->dir : "unet");
    struct cfg g = {c->config, path, err};
    if (check_unsupported(&g)) return -1;

    const struct json *down = json_get(c->config, "down_block_types");
    const struct json *up = json_get(c->config, "up_block_types");
    if (!down || down->type != JSON_ARRAY || down->len < 1 || down->len > UNET_MAX_BLOCKS)
        return os_fail(err, "%s: \"down_block_types\" must be a list of 1..%d block types", path, UNET_MAX_BLOCKS);
    const int n = (int)down->len;
    u->num_blocks = n;
    if (!up || up->type != JSON_ARRAY || (int)up->len != n)
        return os_fail(err, "%s: \"up_block_types\" must be a list of %d block types, like down_block_types", path,
                       n);
    for (int i = 0; i < n; i++) {
        if (cfg_block_type(&g, "down_block_types", i, "DownBlock2D", "CrossAttnDownBlock2D",
                           &u->down_blocks[i].cross_attn) ||
            cfg_block_type(&g, "up_block_types", i, "UpBlock2D", "CrossAttnUpBlock2D", &u->up_blocks[i].cross_attn))
            return -1;
    }

    int layers[UNET_MAX_BLOCKS], heads[UNET_MAX_BLOCKS], xdim[UNET_MAX_BLOCKS];
    int conv_in_kernel, conv_out_kernel, downsample_padding, linear, time_embedding_dim;
    double mid_scale, eps;
    /* block_out_channels has no per-block default (diffusers' is a 4-entry tuple) */
    const struct json *boc = json_get(c->config, "block_out_channels");
    if (!boc || boc->type != JSON_ARRAY)
        return os_fail(err, "%s: \"block_out_channels\" must be a list with one channel count per block", path);
    if (cfg_list(&g, "block_out_channels", 0, n, 1, 1 << 16, u->block_out_channels) ||
        cfg_list(&g, "layers_per_block", 2, n, 1, 64, layers) ||
        cfg_list(&g, "attention_head_dim", 8, n, 1, 1 << 12, heads) ||
        cfg_list(&g, "cross_attention_dim", 1280, n, 1, 1 << 16, xdim) ||
        cfg_int(&g, "in_channels", 4, 1, 1 << 12, &u->in_channels) ||
        cfg_int(&g, "out_channels", 4, 1, 1 << 12, &u->out_channels) ||
        cfg_int(&g, "norm_num_groups", 32, 1, 1 << 12, &u->norm_num_groups) ||
        cfg_int(&g, "conv_in_kernel", 3, 1, 7, &conv_in_kernel) ||
        cfg_int(&g, "conv_out_kernel", 3, 1, 7, &conv_out_kernel) ||
        cfg_int(&g, "downsample_padding", 1, 0, 1, &downsample_padding) ||
        cfg_int(&g, "time_embedding_dim", 0, 0, 1 << 16, &time_embedding_dim) ||
        json_get_bool_or(c->config, "use_linear_projection", 0, &linear, path, err) ||
        json_get_bool_or(c->config, "flip_sin_to_cos", 1, &u->flip_sin_to_cos, path, err) ||
        json_get_num_or(c->config, "freq_shift", 0, &u->freq_shift, path, err) ||
        json_get_num_or(c->config, "norm_eps", 1e-5, &eps, path, err) ||
        json_get_num_or(c->config, "mid_block_scale_factor", 1.0, &mid_scale, path, err))
        return -1;
    if (json_get(c->config, "norm_num_groups") && json_get(c->config, "norm_num_groups")->type == JSON_NULL)
        return os_fail(err, "%s: \"norm_num_groups\" is null; the output GroupNorm it removes is not supported", path);
    if (conv_in_kernel % 2 == 0 || conv_out_kernel % 2 == 0)
        return os_fail(err, "%s: \"conv_in_kernel\" / \"conv_out_kernel\" must be odd", path);
    if (!(eps > 0 && eps < 1) || !(mid_scale > 0) || !(u->freq_shift > -1e6 && u->freq_shift < 1e6))
        return os_fail(err, "%s: \"norm_eps\", \"mid_block_scale_factor\" or \"freq_shift\" is out of range", path);
    for (int i = 1; i < n; i++)
        if (xdim[i] != xdim[0])
            return os_fail(err, "%s: \"cross_attention_dim\" differs between blocks; one context cannot feed them",
                           path);
    u->cross_attention_dim = xdim[0];
    u->norm_eps = (float)eps;
    u->time_proj_dim = u->block_out_channels[0];
    u->time_embed_dim = time_embedding_dim ? time_embedding_dim : 4 * u->block_out_channels[0];

    /* text_time addition embedding (SDXL): add_time_proj = Timesteps(addition_time_embed_dim),
     * add_embedding = TimestepEmbedding(projection_class_embeddings_input_dim, time_embed_dim) */
    int failed;
    const char *add_type = json_get_str_or(c->config, "addition_embed_type", NULL, path, err, &failed);
    if (failed) return -1;
    int add_in_dim = 0;
    if (add_type) {
        if (strcmp(add_type, "text_time") != 0)
            return os_fail(err, "%s: \"addition_embed_type\" is \"%s\"; only null and \"text_time\" are supported",
                           path, add_type);
        u->text_time = 1;
        int64_t v;
        if (json_get_int(c->config, "addition_time_embed_dim", &v, path, err) ||
            cfg_int(&g, "addition_time_embed_dim", v, 1, 1 << 14, &u->addition_time_embed_dim) ||
            json_get_int(c->config, "projection_class_embeddings_input_dim", &v, path, err) ||
            cfg_int(&g, "projection_class_embeddings_input_dim", v, 1, 1 << 20, &add_in_dim))
            return -1;
        u->text_embeds_dim = add_in_dim - UNET_TIME_IDS * u->addition_time_embed_dim;
        if (u->text_embeds_dim < 1)
            return os_fail(err,
                           "%s: \"projection_class_embeddings_input_dim\" %d leaves no room for the pooled text "
                           "embedding beside %d time ids of %d features",
                           path, add_in_dim, UNET_TIME_IDS, u->addition_time_embed_dim);
    }

    /* transformer layers: the up path reads reverse_transformer_layers_per_block
     * when given, else the down path's list reversed (unet_2d_condition.py) */
    const struct json one = {.type = JSON_NUMBER, .number = 1, .is_int = 1, .integer = 1};
    const struct json *tl = json_get(c->config, "transformer_layers_per_block");
    if (!tl || tl->type == JSON_NULL) tl = &one;
    const struct json *rtl = json_get(c->config, "reverse_transformer_layers_per_block");
    if (rtl && rtl->type == JSON_NULL) rtl = NULL;
    if (!rtl && is_nested(tl))
        return os_fail(err,
                       "%s: \"transformer_layers_per_block\" has per-layer lists, which needs "
                       "\"reverse_transformer_layers_per_block\" (as in diffusers)",
                       path);

    /* ---- weights ---- */
    const int b0 = u->block_out_channels[0], T = u->time_embed_dim;
    err->msg[0] = '\0';
    if (conv_load(&u->conv_in, c, "conv_in", u->in_channels, b0, conv_in_kernel, err)) return -1;
    u->time_embedding_linear_1_w = load2(c, err, T, u->time_proj_dim, "time_embedding.linear_1.weight");
    u->time_embedding_linear_1_b = load1(c, err, T, "time_embedding.linear_1.bias");
    u->time_embedding_linear_2_w = load2(c, err, T, T, "time_embedding.linear_2.weight");
    u->time_embedding_linear_2_b = load1(c, err, T, "time_embedding.linear_2.bias");
    if (u->text_time) {
        u->add_embedding_linear_1_w = load2(c, err, T, add_in_dim, "add_embedding.linear_1.weight");
        u->add_embedding_linear_1_b = load1(c, err, T, "add_embedding.linear_1.bias");
        u->add_embedding_linear_2_w = load2(c, err, T, T, "add_embedding.linear_2.weight");
        u->add_embedding_linear_2_b = load1(c, err, T, "add_embedding.linear_2.bias");
    }
    if (err->msg[0]) return -1;

    struct skip_plan sp = {{b0}, 1}; /* conv_in's output is the first skip connection */
    for (int i = 0; i < n; i++)
        if (load_down_block(u, c, &g, i, layers, heads, tl, linear, downsample_padding == 1, &sp)) return -1;
    if (load_mid_block(u, c, &g, heads, tl, linear, (float)mid_scale)) return -1;
    for (int i = 0; i < n; i++)
        if (load_up_block(u, c, &g, i, layers, heads, rtl ? "reverse_transformer_layers_per_block"
                                                          : "transformer_layers_per_block",
                          rtl ? rtl : tl, rtl != NULL, linear, &sp))
            return -1;
    if (sp.n != 0)
        return os_fail(err, "%s: the up blocks leave %d skip connections unused: layers_per_block does not describe "
                       "a UNet", path, sp.n);

    if (u->block_out_channels[0] % u->norm_num_groups)
        return os_fail(err, "%s: %d channels are not divisible into %d groups", path, b0, u->norm_num_groups);
    u->conv_norm_out_w = load1(c, err, b0, "conv_norm_out.weight");
    u->conv_norm_out_b = load1(c, err, b0, "conv_norm_out.bias");
    if (err->msg[0]) return -1;
    if (conv_load(&u->conv_out, c, "conv_out", b0, u->out_channels, conv_out_kernel, err)) return -1;
    return component_check_unused(c, NULL, err);
}

int unet_load(struct unet *u, struct component *c, struct os_err *err)
{
    struct os_err local;
    if (!err) err = &local;
    memset(u, 0, sizeof *u);
    if (load_config_and_weights(u, c, err)) {
        unet_free(u);
        return -1;
    }
    return 0;
}

void unet_free(struct unet *u)
{
    if (!u) return;
    for (int i = 0; i < UNET_MAX_BLOCKS; i++) {
        struct unet_down_block *d = &u->down_blocks[i];
        struct unet_up_block *b = &u->up_blocks[i];
        for (int j = 0; d->attentions && j < d->num_layers; j++) transformer2d_free(&d->attentions[j]);
        for (int j = 0; b->attentions && j < b->num_layers; j++) transformer2d_free(&b->attentions[j]);
        OS_FREE(d->resnets);
        OS_FREE(d->attentions);
        OS_FREE(b->resnets);
        OS_FREE(b->attentions);
    }
    transformer2d_free(&u->mid_block.attentions_0);
    memset(u, 0, sizeof *u);
}

/* ---- forward ---- */

void unet_timestep_embedding(float t, int dim, int flip_sin_to_cos, double freq_shift, float *out)
{
    /* embeddings.py get_timestep_embedding, all in float32 upstream: the
     * arange is float32, -math.log(10000) and (half_dim - shift) are Python
     * scalars that torch applies as float32, and exp/sin/cos run on float32
     * tensors. Each op here is computed in double and rounded once, as a
     * correctly rounded float32 op would be.
     * Known difference: torch's CPU exp/sin/cos are SLEEF's u10 kernels (at
     * most 1 ulp, not always correctly rounded; the suite's goldens are
     * bit-identical to Debian libsleef's Sleef_expf8_u10 / sinf8 / cosf8).
     * For the tiny suite (8 frequencies) that leaves 1-ulp differences; for a
     * 320-wide embedding about 1 in 10 frequencies differs by 1 ulp, which at
     * t = 999 moves some high-frequency components by up to ~6e-5. */
    const int half = dim / 2;
    const float neg_log_period = (float)-rm_log(10000.0);
    const float denom = (float)((double)half - freq_shift);
    for (int i = 0; i < half; i++) {
        const float e = neg_log_period * (float)i;
        const float exponent = e / denom;
        const float freq = (float)rm_exp(exponent);
        const float arg = t * freq;
        const float s = (float)rm_sin(arg), c = (float)rm_cos(arg);
        out[flip_sin_to_cos ? half + i : i] = s; /* flip: cat([cos, sin]) */
        out[flip_sin_to_cos ? i : half + i] = c;
    }
    if (dim % 2) out[dim - 1] = 0.0f; /* F.pad(emb, (0, 1, 0, 0)) */
}

/* TimestepEmbedding: linear_2(silu(linear_1(x))) on a [in] vector; x is freed. */
static float *timestep_embedding_mlp(const struct ops *o, struct arena *a, float *x, int in, int T,
                                     const struct tensor *w1, const struct tensor *b1, const struct tensor *w2,
                                     const struct tensor *b2)
{
    float *h = arena_alloc(a, (size_t)T);
    o->linear(o, h, x, w1, b1, NULL, 1, in, T);
    arena_free(a, x);
    float *hs = arena_alloc(a, (size_t)T);
    o->act(o, hs, h, (size_t)T, ACT_SILU);
    arena_free(a, h);
    float *y = arena_alloc(a, (size_t)T);
    o->linear(o, y, hs, w2, b2, NULL, 1, T, T);
    arena_free(a, hs);
    return y;
}

struct skip {
    float *buf;
    int C, H, W;
};

static int check_inputs(const struct unet *u, const float *x, int h, int w, const struct unet_cond *cond,
                        const float *eps, struct os_err *err)
{
    if (!x || !eps) return os_fail(err, "unet_forward: no input latent or output buffer");
    if (h < 1 || w < 1 || h > 16384 || w > 16384 || (int64_t)h * w > (1 << 26))
        return os_fail(err, "unet_forward: latent size %dx%d is out of range", h, w);
    if (!cond || !cond->context) return os_fail(err, "unet_forward: no prompt embeddings (context)");
    if (cond->ctx_len < 1 || cond->ctx_len > 1 << 16)
        return os_fail(err, "unet_forward: context length %d is out of range", cond->ctx_len);
    if (cond->ctx_dim != u->cross_attention_dim)
        return os_fail(err, "unet_forward: the prompt embeddings have %d features, but the UNet's cross_attention_dim "
                       "is %d", cond->ctx_dim, u->cross_attention_dim);
    if (u->text_time && (!cond->text_embeds || !cond->time_ids))
        return os_fail(err, "unet_forward: this UNet (addition_embed_type \"text_time\", SDXL) needs the pooled "
                       "text embedding and the 6 time ids");
    return 0;
}

/* emb: time embedding (+ text_time addition embedding); returns silu(emb),
 * which every ResnetBlock2D applies before its time_emb_proj. */
static float *time_conditioning(const struct unet *u, const struct ops *o, struct arena *a, float timestep,
                                const struct unet_cond *cond, float *host, const struct dump_hook *dump)
{
    const int T = u->time_embed_dim, D = u->time_proj_dim;
    unet_timestep_embedding(timestep, D, u->flip_sin_to_cos, u->freq_shift, host);
    float *tp = arena_alloc(a, (size_t)D);
    o->upload(o, tp, host, (size_t)D);
    int64_t s_tp[2] = {1, D};
    dump_f32(dump, "unet.time_proj", tp, 2, s_tp);
    float *emb = timestep_embedding_mlp(o, a, tp, D, T, u->time_embedding_linear_1_w, u->time_embedding_linear_1_b,
                                        u->time_embedding_linear_2_w, u->time_embedding_linear_2_b);
    int64_t s_emb[2] = {1, T};
    dump_f32(dump, "unet.time_embedding", emb, 2, s_emb);

    if (u->text_time) {
        /* get_aug_embed: concat(text_embeds, add_time_proj(time_ids.flatten()).reshape(1, -1)) */
        const int P = u->text_embeds_dim, A = u->addition_time_embed_dim, N = P + UNET_TIME_IDS * A;
        memcpy(host, cond->text_embeds, (size_t)P * sizeof *host);
        for (int k = 0; k < UNET_TIME_IDS; k++)
            unet_timestep_embedding(cond->time_ids[k], A, u->flip_sin_to_cos, u->freq_shift, host + P + k * A);
        float *in = arena_alloc(a, (size_t)N);
        o->upload(o, in, host, (size_t)N);
        int64_t s_atp[2] = {UNET_TIME_IDS, A};
        dump_f32(dump, "unet.add_time_proj", in + P, 2, s_atp);
        float *aug = timestep_embedding_mlp(o, a, in, N, T, u->add_embedding_linear_1_w, u->add_embedding_linear_1_b,
                                            u->add_embedding_linear_2_w, u->add_embedding_linear_2_b);
        dump_f32(dump, "unet.add_embedding", aug, 2, s_emb);
        float *sum = arena_alloc(a, (size_t)T);
        o->add(o, sum, emb, aug, (size_t)T);
        arena_free(a, aug);
        arena_free(a, emb);
        emb = sum;
    }
    float *temb_silu = arena_alloc(a, (size_t)T);
    o->act(o, temb_silu, emb, (size_t)T, ACT_SILU);
    arena_free(a, emb);
    return temb_silu;
}

int unet_forward(const struct unet *u, const struct ops *o, struct arena *a, const float *x, int h, int w,
                 float timestep, const struct unet_cond *cond, float *eps, const struct dump_hook *dump,
                 struct os_err *err)
{
    struct os_err local;
    if (!err) err = &local;
    if (check_inputs(u, x, h, w, cond, eps, err)) return -1;
    size_t host_n = (size_t)u->time_proj_dim;
    if (u->text_time && (size_t)(u->text_embeds_dim + UNET_TIME_IDS * u->addition_time_embed_dim) > host_n)
        host_n = (size_t)(u->text_embeds_dim + UNET_TIME_IDS * u->addition_time_embed_dim);
    float *host = OS_MALLOC(host_n * sizeof *host);
    if (!host) return os_fail(err, "unet_forward: out of memory");

    float *temb = time_conditioning(u, o, a, timestep, cond, host, dump);
    OS_FREE(host);
    const size_t ctx_n = (size_t)cond->ctx_len * cond->ctx_dim;
    float *ctx = arena_alloc(a, ctx_n);
    o->upload(o, ctx, cond->context, ctx_n);

    int H = h, W = w, C = u->in_channels;
    float *in = arena_alloc(a, (size_t)C * H * W);
    o->upload(o, in, x, (size_t)C * H * W);
    float *cur = conv_forward(&u->conv_in, o, a, in, H, W);
    arena_free(a, in);
    C = u->block_out_channels[0];
    dump_chw(dump, "unet.conv_in", cur, C, H, W);

    /* down: every resnet/attention output and every downsampler output is
     * kept (down_block_res_samples) until an up block consumes it */
    struct skip skips[UNET_MAX_SKIPS];
    int ns = 0;
    skips[ns++] = (struct skip){cur, C, H, W};
    for (int i = 0; i < u->num_blocks; i++) {
        const struct unet_down_block *d = &u->down_blocks[i];
        for (int j = 0; j < d->num_layers; j++) {
            float *r = resnet_forward(&d->resnets[j], o, a, cur, H, W, temb);
            if (d->cross_attn) {
                float *t = transformer2d_forward(&d->attentions[j], o, a, r, H, W, ctx, cond->ctx_len);
                arena_free(a, r);
                r = t;
            }
            cur = r;
            C = d->out_ch;
            skips[ns++] = (struct skip){cur, C, H, W};
            dump_chwf(dump, cur, C, H, W, "unet.down_blocks.%d.res_samples.%d", i, j);
        }
        if (d->has_downsampler) {
            int OH, OW;
            cur = downsample_forward(&d->downsamplers_0, o, a, cur, H, W, &OH, &OW);
            H = OH;
            W = OW;
            skips[ns++] = (struct skip){cur, C, H, W};
            dump_chwf(dump, cur, C, H, W, "unet.down_blocks.%d.res_samples.%d", i, d->num_layers);
        }
        dump_chwf(dump, cur, C, H, W, "unet.down_blocks.%d", i);
    }

    /* mid: its input is the last skip connection, so it stays */
    const struct unet_mid_block *m = &u->mid_block;
    float *m0 = resnet_forward(&m->resnets[0], o, a, cur, H, W, temb);
    float *m1 = transformer2d_forward(&m->attentions_0, o, a, m0, H, W, ctx, cond->ctx_len);
    arena_free(a, m0);
    cur = resnet_forward(&m->resnets[1], o, a, m1, H, W, temb);
    arena_free(a, m1);
    dump_chw(dump, "unet.mid_block", cur, C, H, W);

    /* up: each resnet takes cat([hidden, most recent skip], channels) */
    for (int i = 0; i < u->num_blocks; i++) {
        const struct unet_up_block *b = &u->up_blocks[i];
        for (int j = 0; j < b->num_layers; j++) {
            const struct skip s = skips[--ns];
            const size_t HW = (size_t)H * W;
            float *cat = arena_alloc(a, (size_t)(C + s.C) * HW);
            o->copy2d(o, cat, 0, cur, 0, 1, (size_t)C * HW);
            o->copy2d(o, cat + (size_t)C * HW, 0, s.buf, 0, 1, (size_t)s.C * HW);
            arena_free(a, cur);
            arena_free(a, s.buf);
            float *r = resnet_forward(&b->resnets[j], o, a, cat, H, W, temb);
            arena_free(a, cat);
            if (b->cross_attn) {
                float *t = transformer2d_forward(&b->attentions[j], o, a, r, H, W, ctx, cond->ctx_len);
                arena_free(a, r);
                r = t;
            }
            cur = r;
            C = b->out_ch;
        }
        if (b->has_upsampler) {
            /* Upsample to the next skip connection's size. When h and w are
             * multiples of 2^(levels-1) that is exactly 2x; otherwise it is
             * diffusers' forward_upsample_size path (F.interpolate(size=...)
             * to down_block_res_samples[-1].shape), e.g. 5x9 -> 3x5 -> 2x3 -> 3x5 -> 5x9. */
            const int TH = skips[ns - 1].H, TW = skips[ns - 1].W;
            float *up = upsample_forward(&b->upsamplers_0, o, a, cur, H, W, TH, TW);
            arena_free(a, cur);
            cur = up;
            H = TH;
            W = TW;
        }
        dump_chwf(dump, cur, C, H, W, "unet.up_blocks.%d", i);
    }

    /* out: conv_norm_out, conv_act (SiLU), conv_out; kept apart so the
     * GroupNorm output can be reported as the manifest records it */
    const size_t HW = (size_t)H * W;
    float *nrm = arena_alloc(a, (size_t)C * HW);
    o->group_norm(o, nrm, cur, u->conv_norm_out_w, u->conv_norm_out_b, C, (int)HW, u->norm_num_groups, u->norm_eps,
                  ACT_NONE);
    arena_free(a, cur);
    dump_chw(dump, "unet.conv_norm_out", nrm, C, H, W);
    float *act = arena_alloc(a, (size_t)C * HW);
    o->act(o, act, nrm, (size_t)C * HW, ACT_SILU);
    arena_free(a, nrm);
    float *out = conv_forward(&u->conv_out, o, a, act, H, W);
    arena_free(a, act);
    dump_chw(dump, "unet.conv_out", out, u->out_channels, H, W);
    o->download(o, eps, out, (size_t)u->out_channels * HW);
    arena_free(a, out);
    arena_free(a, ctx);
    arena_free(a, temb);
    return 0;
}
