/* UNet: every conformance case's first UNet call layer by layer (unet.*) and
 * every step's noise prediction against the diffusers goldens; the
 * measure-then-run arena protocol; config and checkpoint errors; and the
 * activation peak of the full-size SD-Turbo / SDXL-Turbo graphs, measured on
 * synthetic shape-only components. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/unet.h"
#include "lib/check.h"
#include "lib/components.h"
#include "lib/conformance.h"
#include "lib/dumps.h"
#include "lib/measured.h"

/* ---- models ---- */

struct model {
    const char *dir;
    enum weight_variant variant;
    struct model_dir *m;
    struct component c;
    struct unet u;
    int ok;
};

static int unet_case_open(const struct conf_suite *s, struct model *md, const char *dir, enum weight_variant v)
{
    struct os_err err = {{0}};
    md->dir = dir;
    md->variant = v;
    md->ok = model_dir_open(conf_path(s, dir), &md->m, &err) == 0 &&
             component_open(md->m, "unet", "config.json", 1, v, &md->c, &err) == 0 && unet_load(&md->u, &md->c, &err) == 0;
    check(md->ok, "load %s/unet%s%s%s", dir, v == VARIANT_FP16 ? " (fp16 variant)" : "", md->ok ? "" : ": ",
          md->ok ? "" : err.msg);
    return md->ok ? 0 : -1;
}

static void model_close(struct model *md)
{
    unet_free(&md->u);
    component_close(&md->c);
    model_dir_close(md->m);
}

static const int64_t *tensor_shape(const struct st_file *f, const char *name, int *ndim)
{
    const struct tensor *t = st_get(f, name);
    *ndim = t ? t->ndim : 0;
    return t ? t->shape : NULL;
}

static void run_case(const struct conf_suite *s, const struct json *c, struct model *md)
{
    const char *cn = conf_case_name(c);
    struct st_file *f = conf_case_file(s, c);
    if (!f) return;
    int nd;
    const int64_t *ps = tensor_shape(f, "prompt_embeds", &nd);
    const int64_t *xs = tensor_shape(f, "step1.latent_model_input", &nd);
    float *ctx = conf_tensor(f, "prompt_embeds", NULL);
    float *te = conf_tensor(f, "add_text_embeds", NULL);
    float *ids = conf_tensor(f, "add_time_ids", NULL);
    if (!check(ps && xs && ctx && (!md->u.text_time || (te && ids)), "%s: case file has the UNet inputs", cn)) goto out;
    struct unet_cond cond = {ctx, (int)ps[1], (int)ps[2], te, ids};
    const int h = (int)xs[2], w = (int)xs[3];
    const size_t n_out = (size_t)md->u.out_channels * h * w;
    float *eps = malloc(n_out * sizeof *eps), *eps2 = malloc(n_out * sizeof *eps2);

    for (int k = 1; k <= 8; k++) {
        char xn[64], tn[64], en[64];
        snprintf(xn, sizeof xn, "step%d.latent_model_input", k);
        snprintf(tn, sizeof tn, "step%d.timestep", k);
        snprintf(en, sizeof en, "step%d.noise_pred", k);
        float *x = conf_tensor(f, xn, NULL), *t = conf_tensor(f, tn, NULL);
        if (!x || !t) {
            free(x);
            free(t);
            break;
        }
        struct os_err err = {{0}};
        struct dumps ds = {.o = ops_ref()};
        struct dump_hook hook = {dumps_fn, &ds};
        size_t real_peak = 0;
        int leftover = -1;
        /* the first UNet call is the one the suite records layer by layer */
        size_t peak = unet_measured_run(&md->u, x, h, w, t[0], &cond, eps, k == 1 ? &hook : NULL, &real_peak, &leftover, &err);
        if (check(peak > 0, "%s step %d: unet_forward (%s)", cn, k, peak ? "ok" : err.msg)) {
            conf_compare(s, c, f, en, eps, n_out);
            if (k == 1) {
                check(!ds.overflow, "%s: dump table large enough", cn);
                const struct json *tensors = json_get(c, "tensors");
                int expected = 0;
                for (size_t i = 0; tensors && i < tensors->len; i++) {
                    const char *name = tensors->keys[i];
                    if (strncmp(name, "unet.", 5) != 0) continue;
                    expected++;
                    const struct dumped *d = dumps_find(&ds, name);
                    if (!check(d != NULL, "%s %s: reported by unet_forward", cn, name)) continue;
                    int rnd;
                    const int64_t *rs = tensor_shape(f, name, &rnd);
                    int same = rs && rnd == d->ndim;
                    for (int j = 0; same && j < rnd; j++) same = rs[j] == d->shape[j];
                    check(same, "%s %s: shape as in the suite", cn, name);
                    conf_compare(s, c, f, name, d->data, d->n);
                }
                check(ds.n == expected, "%s: unet_forward reports exactly the %d unet.* tensors the suite has (got %d)",
                      cn, expected, ds.n);
                /* the protocol: the measured plan is what the real run used, nothing
                 * stays allocated, and reporting intermediates changes nothing */
                check(real_peak == peak && leftover == 0,
                      "%s: measured peak %zu bytes = real run's peak %zu, %d buffers left live", cn, peak, real_peak,
                      leftover);
                size_t peak2 = unet_measured_run(&md->u, x, h, w, t[0], &cond, eps2, NULL, NULL, NULL, &err);
                check(peak2 == peak && memcmp(eps, eps2, n_out * sizeof *eps) == 0,
                      "%s: a run without the dump hook gives the same bits and peak", cn);
            }
        }
        dumps_clear(&ds);
        free(x);
        free(t);
    }
    free(eps);
    free(eps2);
out:
    free(ctx);
    free(te);
    free(ids);
    st_close(f);
}

/* ---- bad configs and checkpoints ---- */

enum tensor_edit { KEEP, DROP_ONE, WRONG_SHAPE, EXTRA_ONE, PROJ_AS_CONV };

/* A tiny model's unet with its config text edited (edits: from, to, from, to, ..., NULL)
 * and its tensor table edited; m == NULL when it could not even be opened. */
struct edited {
    struct model_dir *m;
    struct component c;
    struct unet u;
    int loaded;
};

static int open_edited(const struct conf_suite *s, const char *model, const char *const *edits,
                       enum tensor_edit tensor_edit, struct edited *e, struct os_err *err)
{
    memset(e, 0, sizeof *e);
    if (model_dir_open(conf_path(s, model), &e->m, err)) return -2;
    if (component_open(e->m, "unet", "config.json", 1, VARIANT_FP32, &e->c, err)) return -2;
    if (edits && edits[0]) {
        char *text = read_file(e->c.config_path, NULL);
        for (int i = 0; text && edits[i]; i += 2) {
            char *next = str_replace(text, edits[i], edits[i + 1]);
            free(text);
            text = next;
        }
        struct json *j = text ? json_parse(text, strlen(text), e->c.config_path, err) : NULL;
        free(text);
        if (!j) {
            snprintf(err->msg, sizeof err->msg, "test setup: could not edit the config");
            return -2;
        }
        json_free(e->c.config);
        e->c.config = j;
    }
    if (tensor_edit != KEEP) {
        static const float one = 1.0f;
        size_t n = e->c.ntensors;
        struct tensor *t = malloc((n + 1) * sizeof *t);
        memcpy(t, e->c.tensors, n * sizeof *t);
        for (size_t i = 0; i < n; i++) {
            const char *name = t[i].name;
            size_t len = strlen(name);
            if (tensor_edit == DROP_ONE && strcmp(name, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight") == 0) {
                t[i--] = t[--n];
            } else if (tensor_edit == WRONG_SHAPE && strcmp(name, "up_blocks.1.resnets.2.conv_shortcut.weight") == 0) {
                t[i].shape[1] += 1;
            } else if (tensor_edit == PROJ_AS_CONV && len > 15 &&
                       (strcmp(name + len - 14, "proj_in.weight") == 0 || strcmp(name + len - 15, "proj_out.weight") == 0)) {
                /* SD 1.x layout: the same [out, in] matrix as a 1x1 convolution */
                t[i].ndim = 4;
                t[i].shape[2] = t[i].shape[3] = 1;
            }
        }
        if (tensor_edit == EXTRA_ONE)
            t[n++] = (struct tensor){.name = "down_blocks.0.resnets.0.extra.weight", .dtype = DT_F32, .ndim = 1,
                                     .shape = {1}, .data = &one};
        component_set_tensors(&e->c, t, n);
    }
    if (unet_load(&e->u, &e->c, err)) return -1;
    e->loaded = 1;
    return 0;
}

static void close_edited(struct edited *e)
{
    if (e->loaded) unet_free(&e->u);
    component_close(&e->c);
    model_dir_close(e->m);
}

static void expect_load_error(const struct conf_suite *s, const char *what, const char *model, const char *from,
                              const char *to, enum tensor_edit tensor_edit, const char *needle1, const char *needle2)
{
    struct os_err err = {{0}};
    const char *edits[3] = {from, to, NULL};
    struct edited e;
    int rc = open_edited(s, model, edits, tensor_edit, &e, &err);
    close_edited(&e);
    check(rc == -1 && strstr(err.msg, needle1) && (!needle2 || strstr(err.msg, needle2)), "%s: \"%s\"", what,
          err.msg);
}

/* An equivalent way of writing the model must give the same bits on a case's first UNet call. */
static void expect_same_output(const struct conf_suite *s, const char *what, const struct model *orig,
                               const char *case_name, const char *const *edits, enum tensor_edit tensor_edit)
{
    struct os_err err = {{0}};
    struct edited e;
    const struct json *c = conf_case_by_name(s, case_name);
    struct st_file *f = c ? conf_case_file(s, c) : NULL;
    int rc = f ? open_edited(s, orig->dir, edits, tensor_edit, &e, &err) : -2;
    if (check(rc == 0, "%s: loads%s%s", what, rc ? ": " : "", rc ? err.msg : "")) {
        int nd;
        const int64_t *ps = tensor_shape(f, "prompt_embeds", &nd), *xs = tensor_shape(f, "step1.latent_model_input", &nd);
        float *ctx = conf_tensor(f, "prompt_embeds", NULL), *te = conf_tensor(f, "add_text_embeds", NULL);
        float *ids = conf_tensor(f, "add_time_ids", NULL), *x = conf_tensor(f, "step1.latent_model_input", NULL);
        float *t = conf_tensor(f, "step1.timestep", NULL);
        struct unet_cond cond = {ctx, (int)ps[1], (int)ps[2], te, ids};
        const int h = (int)xs[2], w = (int)xs[3];
        size_t n = (size_t)4 * h * w;
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        int ok = unet_measured_run(&orig->u, x, h, w, t[0], &cond, a, NULL, NULL, NULL, &err) &&
                 unet_measured_run(&e.u, x, h, w, t[0], &cond, b, NULL, NULL, NULL, &err);
        check(ok && memcmp(a, b, n * sizeof *a) == 0, "%s: the same noise prediction, bit for bit (%s)", what,
              case_name);
        free(a);
        free(b);
        free(ctx);
        free(te);
        free(ids);
        free(x);
        free(t);
    }
    if (rc != -2) close_edited(&e);
    st_close(f);
}

static void equivalent_configs(const struct conf_suite *s, const struct model *sd, const struct model *xl)
{
    const char *conv[] = {"\"use_linear_projection\": true", "\"use_linear_projection\": false", NULL};
    expect_same_output(s, "use_linear_projection false with 1x1-conv proj_in/proj_out (SD 1.x layout)", sd,
                       "sd_t2i_1step", conv, PROJ_AS_CONV);
    /* SDXL's [1, 2, 2] written per layer, as diffusers' asymmetric-UNet form */
    const char *nested[] = {"\"transformer_layers_per_block\": [\n    1,\n    2,\n    2\n  ]",
                            "\"transformer_layers_per_block\": [[1, 1], [2, 2], [2, 2]]",
                            "\"reverse_transformer_layers_per_block\": null",
                            "\"reverse_transformer_layers_per_block\": [[2, 2, 2], [2, 2, 2], [1, 1, 1]]", NULL};
    expect_same_output(s, "per-layer transformer_layers_per_block + reverse_transformer_layers_per_block", xl,
                       "sdxl_t2i_1step", nested, KEEP);
    expect_load_error(s, "per-layer transformer_layers_per_block without the reverse list", "sdxl-turbo-tiny",
                      "\"transformer_layers_per_block\": [\n    1,\n    2,\n    2\n  ]",
                      "\"transformer_layers_per_block\": [[1, 1], [2, 2], [2, 2]]", KEEP,
                      "needs \"reverse_transformer_layers_per_block\"", NULL);
    const char *swish[] = {"\"act_fn\": \"silu\"", "\"act_fn\": \"swish\"", "\"upcast_attention\": false",
                           "\"upcast_attention\": true", NULL};
    expect_same_output(s, "act_fn \"swish\" (= silu) and upcast_attention (a no-op in float32)", sd, "sd_t2i_1step",
                       swish, KEEP);
}

static void bad_inputs(const struct conf_suite *s)
{
    expect_load_error(s, "unsupported down block type", "sd-turbo-tiny", "\"CrossAttnDownBlock2D\"",
                      "\"AttnDownBlock2D\"", KEEP, "unet/config.json: \"down_block_types\" entry 0 is \"AttnDownBlock2D\"",
                      NULL);
    expect_load_error(s, "unsupported up block type", "sdxl-turbo-tiny", "\"UpBlock2D\"\n", "\"UpDecoderBlock2D\"\n", KEEP,
                      "\"up_block_types\" entry 2 is \"UpDecoderBlock2D\"", NULL);
    expect_load_error(s, "LCM guidance embedding", "sd-turbo-tiny", "\"time_cond_proj_dim\": null",
                      "\"time_cond_proj_dim\": 256", KEEP, "\"time_cond_proj_dim\" is set", NULL);
    expect_load_error(s, "class embeddings", "sd-turbo-tiny", "\"class_embed_type\": null",
                      "\"class_embed_type\": \"timestep\"", KEEP, "\"class_embed_type\"", NULL);
    expect_load_error(s, "unknown addition embedding", "sdxl-turbo-tiny", "\"text_time\"", "\"text\"", KEEP,
                      "\"addition_embed_type\" is \"text\"", NULL);
    expect_load_error(s, "unsupported mid block", "sd-turbo-tiny", "\"UNetMidBlock2DCrossAttn\"",
                      "\"UNetMidBlock2DSimpleCrossAttn\"", KEEP, "\"mid_block_type\"", NULL);
    expect_load_error(s, "no mid block", "sd-turbo-tiny", "\"mid_block_type\": \"UNetMidBlock2DCrossAttn\"",
                      "\"mid_block_type\": null", KEEP, "\"mid_block_type\" is null", NULL);
    expect_load_error(s, "text_time without its sizes", "sdxl-turbo-tiny", "\"addition_time_embed_dim\": 8",
                      "\"addition_time_embed_dim\": null", KEEP, "missing required key \"addition_time_embed_dim\"",
                      NULL);
    expect_load_error(s, "num_attention_heads set", "sd-turbo-tiny", "\"num_attention_heads\": null",
                      "\"num_attention_heads\": 4", KEEP, "\"num_attention_heads\"", NULL);
    expect_load_error(s, "heads that do not divide the channels", "sd-turbo-tiny", "\"attention_head_dim\": [\n    2,",
                      "\"attention_head_dim\": [\n    3,", KEEP, "unet/config.json: down_blocks.0.attentions.0: its 16 channels do not split into 3 attention heads",
                      NULL);
    expect_load_error(s, "block count mismatch", "sd-turbo-tiny", "\"UpBlock2D\",", "", KEEP, "\"up_block_types\"", NULL);
    expect_load_error(s, "config and weights disagree (channels)", "sd-turbo-tiny", "16,\n    32,", "16,\n    48,", KEEP,
                      "has shape", "implies");
    expect_load_error(s, "config and weights disagree (transformer depth)", "sdxl-turbo-tiny",
                      "\"transformer_layers_per_block\": [\n    1,\n    2,\n    2", "\"transformer_layers_per_block\": [\n    1,\n    1,\n    2",
                      KEEP, "does not use", "transformer_blocks.1");
    expect_load_error(s, "missing tensor", "sd-turbo-tiny", NULL, NULL, DROP_ONE,
                      "missing tensor \"mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight\"", NULL);
    expect_load_error(s, "wrong shape", "sd-turbo-tiny", NULL, NULL, WRONG_SHAPE,
                      "\"up_blocks.1.resnets.2.conv_shortcut.weight\" has shape [32, 49, 1, 1]", "[32, 48, 1, 1]");
    expect_load_error(s, "extra tensor", "sd-turbo-tiny", NULL, NULL, EXTRA_ONE, "\"down_blocks.0.resnets.0.extra.weight\"",
                      "does not use");
}

static void bad_forward(const struct model *sd, const struct model *xl)
{
    float x[4 * 8 * 8] = {0}, eps[4 * 8 * 8], ctx[2 * 40] = {0}, te[16] = {0}, ids[6] = {64, 64, 0, 0, 64, 64};
    struct arena a;
    arena_init_measure(&a);
    struct os_err err = {{0}};
    struct unet_cond cond = {ctx, 2, 40, NULL, NULL};
    check(unet_forward(&sd->u, ops_null(), &a, x, 8, 8, 999, &cond, eps, NULL, &err) == -1 &&
              strstr(err.msg, "40 features") && strstr(err.msg, "24"),
          "context width mismatch: \"%s\"", err.msg);
    check(unet_forward(&xl->u, ops_null(), &a, x, 8, 8, 999, &cond, eps, NULL, &err) == -1 &&
              strstr(err.msg, "time ids"),
          "SDXL without time ids: \"%s\"", err.msg);
    cond.text_embeds = te;
    cond.time_ids = ids;
    check(unet_forward(&xl->u, ops_null(), &a, x, 0, 8, 999, &cond, eps, NULL, &err) == -1 &&
              strstr(err.msg, "0x8"),
          "empty latent: \"%s\"", err.msg);
    check(unet_forward(&xl->u, ops_null(), &a, x, 8, 8, 999, NULL, eps, NULL, &err) == -1,
          "no conditioning: \"%s\"", err.msg);
    check(a.nblocks == 0 && a.peak == 0, "rejected calls allocate nothing");
    arena_destroy(&a);
}

/* ---- full-size graphs on shape-only components ----
 * The tensor list below is written from diffusers' module structure
 * (independently of unet.c) and is first checked against the tiny
 * checkpoints, which must come out name for name and shape for shape. */

struct spec {
    int n, boc[4], down_attn[4], up_attn[4], layers, heads[4], tl[4], ctx, add_in, linear;
};

struct tlist {
    struct tensor *t;
    size_t n, cap;
    char **names;
};

static void add_t(struct tlist *l, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...)
    CHECK_PRINTF(7, 8);

static void add_t(struct tlist *l, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->t = realloc(l->t, l->cap * sizeof *l->t);
        l->names = realloc(l->names, l->cap * sizeof *l->names);
    }
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    l->names[l->n] = strdup(buf);
    struct tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    t->name = l->names[l->n - 1];
    t->dtype = DT_F16;
    t->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3};
    for (int i = 0; i < ndim; i++) t->shape[i] = d[i];
}

static void add_resnet(struct tlist *l, const char *p, int in, int out, int temb)
{
    add_t(l, 1, in, 0, 0, 0, "%s.norm1.weight", p);
    add_t(l, 1, in, 0, 0, 0, "%s.norm1.bias", p);
    add_t(l, 4, out, in, 3, 3, "%s.conv1.weight", p);
    add_t(l, 1, out, 0, 0, 0, "%s.conv1.bias", p);
    add_t(l, 2, out, temb, 0, 0, "%s.time_emb_proj.weight", p);
    add_t(l, 1, out, 0, 0, 0, "%s.time_emb_proj.bias", p);
    add_t(l, 1, out, 0, 0, 0, "%s.norm2.weight", p);
    add_t(l, 1, out, 0, 0, 0, "%s.norm2.bias", p);
    add_t(l, 4, out, out, 3, 3, "%s.conv2.weight", p);
    add_t(l, 1, out, 0, 0, 0, "%s.conv2.bias", p);
    if (in != out) {
        add_t(l, 4, out, in, 1, 1, "%s.conv_shortcut.weight", p);
        add_t(l, 1, out, 0, 0, 0, "%s.conv_shortcut.bias", p);
    }
}

static void add_transformer(struct tlist *l, const char *p, int C, int depth, int ctx, int linear)
{
    add_t(l, 1, C, 0, 0, 0, "%s.norm.weight", p);
    add_t(l, 1, C, 0, 0, 0, "%s.norm.bias", p);
    add_t(l, linear ? 2 : 4, C, C, 1, 1, "%s.proj_in.weight", p);
    add_t(l, 1, C, 0, 0, 0, "%s.proj_in.bias", p);
    add_t(l, linear ? 2 : 4, C, C, 1, 1, "%s.proj_out.weight", p);
    add_t(l, 1, C, 0, 0, 0, "%s.proj_out.bias", p);
    for (int b = 0; b < depth; b++) {
        for (int k = 1; k <= 3; k++) {
            add_t(l, 1, C, 0, 0, 0, "%s.transformer_blocks.%d.norm%d.weight", p, b, k);
            add_t(l, 1, C, 0, 0, 0, "%s.transformer_blocks.%d.norm%d.bias", p, b, k);
        }
        for (int k = 1; k <= 2; k++) {
            int kv = k == 1 ? C : ctx;
            add_t(l, 2, C, C, 0, 0, "%s.transformer_blocks.%d.attn%d.to_q.weight", p, b, k);
            add_t(l, 2, C, kv, 0, 0, "%s.transformer_blocks.%d.attn%d.to_k.weight", p, b, k);
            add_t(l, 2, C, kv, 0, 0, "%s.transformer_blocks.%d.attn%d.to_v.weight", p, b, k);
            add_t(l, 2, C, C, 0, 0, "%s.transformer_blocks.%d.attn%d.to_out.0.weight", p, b, k);
            add_t(l, 1, C, 0, 0, 0, "%s.transformer_blocks.%d.attn%d.to_out.0.bias", p, b, k);
        }
        add_t(l, 2, 8 * C, C, 0, 0, "%s.transformer_blocks.%d.ff.net.0.proj.weight", p, b);
        add_t(l, 1, 8 * C, 0, 0, 0, "%s.transformer_blocks.%d.ff.net.0.proj.bias", p, b);
        add_t(l, 2, C, 4 * C, 0, 0, "%s.transformer_blocks.%d.ff.net.2.weight", p, b);
        add_t(l, 1, C, 0, 0, 0, "%s.transformer_blocks.%d.ff.net.2.bias", p, b);
    }
}

static void spec_tensors(const struct spec *s, struct tlist *l)
{
    const int b0 = s->boc[0], T = 4 * b0;
    char p[128];
    add_t(l, 4, b0, 4, 3, 3, "conv_in.weight");
    add_t(l, 1, b0, 0, 0, 0, "conv_in.bias");
    add_t(l, 2, T, b0, 0, 0, "time_embedding.linear_1.weight");
    add_t(l, 1, T, 0, 0, 0, "time_embedding.linear_1.bias");
    add_t(l, 2, T, T, 0, 0, "time_embedding.linear_2.weight");
    add_t(l, 1, T, 0, 0, 0, "time_embedding.linear_2.bias");
    if (s->add_in) {
        add_t(l, 2, T, s->add_in, 0, 0, "add_embedding.linear_1.weight");
        add_t(l, 1, T, 0, 0, 0, "add_embedding.linear_1.bias");
        add_t(l, 2, T, T, 0, 0, "add_embedding.linear_2.weight");
        add_t(l, 1, T, 0, 0, 0, "add_embedding.linear_2.bias");
    }
    for (int i = 0; i < s->n; i++) {
        int out = s->boc[i];
        for (int j = 0; j < s->layers; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
            add_resnet(l, p, j ? out : s->boc[i ? i - 1 : 0], out, T);
            snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
            if (s->down_attn[i]) add_transformer(l, p, out, s->tl[i], s->ctx, s->linear);
        }
        if (i < s->n - 1) {
            add_t(l, 4, out, out, 3, 3, "down_blocks.%d.downsamplers.0.conv.weight", i);
            add_t(l, 1, out, 0, 0, 0, "down_blocks.%d.downsamplers.0.conv.bias", i);
        }
    }
    const int top = s->boc[s->n - 1];
    add_resnet(l, "mid_block.resnets.0", top, top, T);
    add_resnet(l, "mid_block.resnets.1", top, top, T);
    add_transformer(l, "mid_block.attentions.0", top, s->tl[s->n - 1], s->ctx, s->linear);
    for (int i = 0; i < s->n; i++) {
        int r = s->n - 1 - i, out = s->boc[r], prev = s->boc[i ? r + 1 : r], in = s->boc[r ? r - 1 : 0];
        for (int j = 0; j <= s->layers; j++) {
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            add_resnet(l, p, (j ? out : prev) + (j == s->layers ? in : out), out, T);
            snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
            if (s->up_attn[i]) add_transformer(l, p, out, s->tl[r], s->ctx, s->linear);
        }
        if (i < s->n - 1) {
            add_t(l, 4, out, out, 3, 3, "up_blocks.%d.upsamplers.0.conv.weight", i);
            add_t(l, 1, out, 0, 0, 0, "up_blocks.%d.upsamplers.0.conv.bias", i);
        }
    }
    add_t(l, 1, b0, 0, 0, 0, "conv_norm_out.weight");
    add_t(l, 1, b0, 0, 0, 0, "conv_norm_out.bias");
    add_t(l, 4, 4, b0, 3, 3, "conv_out.weight");
    add_t(l, 1, 4, 0, 0, 0, "conv_out.bias");
}

static void tlist_free(struct tlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    free(l->t);
}

/* The spec's tensor list must be exactly the checkpoint's (names and shapes). */
static void spec_matches_checkpoint(const struct spec *s, const struct model *md)
{
    struct tlist l = {0};
    spec_tensors(s, &l);
    size_t same = 0;
    const char *bad = NULL;
    for (size_t i = 0; i < l.n; i++) {
        const struct tensor *t = st_get(md->c.file, l.t[i].name);
        int ok = t && t->ndim == l.t[i].ndim;
        for (int k = 0; ok && k < t->ndim; k++) ok = t->shape[k] == l.t[i].shape[k];
        if (ok) same++;
        else if (!bad) bad = l.t[i].name;
    }
    check(same == l.n && l.n == md->c.file->ntensors,
          "%s: the test's independent tensor list matches the checkpoint (%zu of %zu listed, file has %zu%s%s)", md->dir,
          same, l.n, md->c.file->ntensors, bad ? "; first mismatch " : "", bad ? bad : "");
    tlist_free(&l);
}

/* Peak activation memory of a full-size UNet call, from the config alone. */
static void full_size_peak(const char *what, const struct spec *s, const char *config, int h, int w, int ctx_len,
                           size_t max_bytes)
{
    struct os_err err = {{0}};
    struct component c;
    memset(&c, 0, sizeof c);
    c.name = os_strdup("unet");
    c.config = json_parse(config, strlen(config), what, &err);
    struct tlist l = {0};
    spec_tensors(s, &l);
    struct tensor *t = malloc(l.n * sizeof *t);
    memcpy(t, l.t, l.n * sizeof *t);
    component_set_tensors(&c, t, l.n);
    struct unet u;
    int ok = c.config && unet_load(&u, &c, &err) == 0;
    if (check(ok, "%s: config and %zu shape-only tensors load%s%s", what, l.n, ok ? "" : ": ", ok ? "" : err.msg)) {
        size_t nx = (size_t)4 * h * w, nctx = (size_t)ctx_len * s->ctx;
        float *x = calloc(nx, sizeof *x), *eps = calloc(nx, sizeof *eps), *ctx = calloc(nctx, sizeof *ctx);
        float te[1280] = {0}, ids[6] = {0};
        struct unet_cond cond = {ctx, ctx_len, s->ctx, s->add_in ? te : NULL, s->add_in ? ids : NULL};
        struct arena a;
        arena_init_measure(&a);
        int rc = unet_forward(&u, ops_null(), &a, x, h, w, 999, &cond, eps, NULL, &err);
        check(rc == 0 && a.nblocks == 0 && a.peak > 0 && a.peak <= max_bytes,
              "%s: %dx%d latent, activation peak %.1f MiB (guard: <= %.0f MiB)%s%s", what, h, w, a.peak / 1048576.0,
              max_bytes / 1048576.0, rc ? ": " : "", rc ? err.msg : "");
        arena_destroy(&a);
        free(x);
        free(eps);
        free(ctx);
        unet_free(&u);
    }
    component_close(&c);
    tlist_free(&l);
}

/* SD-Turbo (SD 2.1-base UNet) and SDXL-Turbo unet/config.json, the keys that
 * shape the network (the rest take diffusers' defaults, as in the real files). */
static const char *SD_TURBO_CONFIG =
    "{\"_class_name\": \"UNet2DConditionModel\", \"attention_head_dim\": [5, 10, 20, 20],"
    " \"block_out_channels\": [320, 640, 1280, 1280], \"cross_attention_dim\": 1024,"
    " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
    " \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\","
    " \"CrossAttnUpBlock2D\"], \"layers_per_block\": 2, \"norm_num_groups\": 32, \"norm_eps\": 1e-05,"
    " \"sample_size\": 64, \"use_linear_projection\": true, \"upcast_attention\": false}";
static const char *SDXL_TURBO_CONFIG =
    "{\"_class_name\": \"UNet2DConditionModel\", \"addition_embed_type\": \"text_time\","
    " \"addition_time_embed_dim\": 256, \"attention_head_dim\": [5, 10, 20],"
    " \"block_out_channels\": [320, 640, 1280], \"cross_attention_dim\": 2048,"
    " \"down_block_types\": [\"DownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\"],"
    " \"up_block_types\": [\"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"UpBlock2D\"], \"layers_per_block\": 2,"
    " \"projection_class_embeddings_input_dim\": 2816, \"transformer_layers_per_block\": [1, 2, 10],"
    " \"sample_size\": 64, \"use_linear_projection\": true}";

int main(void)
{
    /* timestep embedding: values that need no golden (t = 0: sin 0, cos 1) and
     * the layout rules (flip, odd width) */
    float e[9];
    unet_timestep_embedding(0.0f, 8, 1, 0, e);
    check(e[0] == 1 && e[3] == 1 && e[4] == 0 && e[7] == 0, "time_proj(0), flip_sin_to_cos: [cos..., sin...]");
    unet_timestep_embedding(0.0f, 9, 0, 1, e);
    check(e[0] == 0 && e[4] == 1 && e[8] == 0, "time_proj(0), no flip, odd width: [sin..., cos..., 0]");
    unet_timestep_embedding(1.0f, 8, 0, 0, e);
    check(fabsf(e[0] - sinf(1.0f)) < 1e-7f && fabsf(e[4] - cosf(1.0f)) < 1e-7f, "time_proj(1): frequency 1 first");

    struct conf_suite s;
    if (conf_open(&s) != 0) return check_summary();

    struct model sd = {0}, sd16 = {0}, xl = {0};
    unet_case_open(&s, &sd, "sd-turbo-tiny", VARIANT_FP32);
    unet_case_open(&s, &sd16, "sd-turbo-tiny", VARIANT_FP16);
    unet_case_open(&s, &xl, "sdxl-turbo-tiny", VARIANT_FP32);
    if (sd16.ok) {
        const struct tensor *t = st_get(sd16.c.file, "conv_in.weight");
        check(t && t->dtype == DT_F16, "fp16 variant: weights are stored as F16 (%s)", sd16.c.weights_path);
    }

    for (size_t i = 0; i < conf_ncases(&s); i++) {
        const struct json *c = conf_case(&s, i);
        const char *model = conf_str(c, "model"), *variant = conf_str(c, "weights_variant");
        const char *ext = conf_str(c, "extension");
        if (ext && strcmp(ext, "lora") == 0) {
            check_skip("%s: LoRA case (fused LoRA weights are a later issue)", conf_case_name(c));
            continue;
        }
        struct model *md = NULL;
        if (model && strcmp(model, "sd-turbo-tiny") == 0) md = variant && strcmp(variant, "fp16") == 0 ? &sd16 : &sd;
        else if (model && strcmp(model, "sdxl-turbo-tiny") == 0) md = &xl;
        if (!check(md != NULL, "%s: model %s is known", conf_case_name(c), model ? model : "(none)")) continue;
        if (!md->ok) continue;
        run_case(&s, c, md);
    }
    conf_worst_notes("worst max|diff| / tolerance per tensor family over the UNet cases:");

    if (sd.ok && xl.ok) {
        bad_inputs(&s);
        bad_forward(&sd, &xl);
        equivalent_configs(&s, &sd, &xl);
        struct spec sd_tiny = {3, {16, 32, 32}, {1, 1, 0}, {0, 1, 1}, 2, {2, 4, 4}, {1, 1, 1}, 24, 0, 1};
        struct spec xl_tiny = {3, {16, 32, 32}, {0, 1, 1}, {1, 1, 0}, 2, {2, 4, 4}, {1, 2, 2}, 40, 68, 1};
        spec_matches_checkpoint(&sd_tiny, &sd);
        spec_matches_checkpoint(&xl_tiny, &xl);
        struct spec sd_full = {4, {320, 640, 1280, 1280}, {1, 1, 1, 0}, {0, 1, 1, 1}, 2, {5, 10, 20, 20},
                               {1, 1, 1, 1}, 1024, 0, 1};
        struct spec xl_full = {3, {320, 640, 1280}, {0, 1, 1}, {1, 1, 0}, 2, {5, 10, 20}, {1, 2, 10}, 2048, 2816, 1};
        full_size_peak("SD-Turbo 512x512", &sd_full, SD_TURBO_CONFIG, 64, 64, 77, (size_t)128 << 20);
        full_size_peak("SDXL-Turbo 512x512", &xl_full, SDXL_TURBO_CONFIG, 64, 64, 77, (size_t)96 << 20);
        full_size_peak("SDXL-Turbo 1024x1024", &xl_full, SDXL_TURBO_CONFIG, 128, 128, 77, (size_t)384 << 20);
    }
    model_close(&sd);
    model_close(&sd16);
    model_close(&xl);
    conf_close(&s);
    return check_summary();
}
