/* pipeline.c — text-to-image and image-to-image, the loop of DESIGN.md:
 *
 *   prompt ─► tokenizer ─► ids[77] ─► text encoder ─► context [77 x D]
 *   seed ─► rng ─► noise ─► x = noise * init_noise_sigma
 *   for each step: eps = UNet(scale(x), t, context); x = scheduler step (fresh noise)
 *   x / scaling_factor ─► VAE decoder ─► image in [-1, 1] ─► uint8
 *
 * following diffusers' StableDiffusion(XL)Pipeline and ...Img2ImgPipeline
 * __call__ step by step (v0.31), including the order in which the one
 * generator is drawn from. Everything model-specific lives in clip.c,
 * unet.c, vae.c and sched.c; this file only wires them and reports
 * intermediates under the conformance manifest's names. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../weights/lora.h"
#include "../weights/model_dir.h"
#include "arena.h"
#include "clip.h"
#include "onestep.h"
#include "ops.h"
#include "refmath.h"
#include "rng.h"
#include "sched.h"
#include "taesd.h"
#include "sysmem.h"
#include "tokenizer.h"
#include "unet.h"
#include "vae.h"
#include "vae_tiling.h"

#define MAX_ENCODERS 2
#define SEQ 77 /* CLIP context length */

struct onestep_ctx {
    struct model_dir *md;
    const struct ops *ops;
    int is_sdxl;
    int nenc;
    struct tokenizer *tok[MAX_ENCODERS];
    struct component te_comp[MAX_ENCODERS];
    struct clip te[MAX_ENCODERS];
    struct component unet_comp;
    struct unet unet;
    struct component vae_comp;
    struct vae vae;
    struct sched sched; /* configured, no timesteps yet: copied per generation */
    int sample_size;    /* unet config sample_size (latent pixels) */
    struct component taesd_comp;
    struct taesd *taesd; /* --taesd: replaces the VAE decoder (NULL otherwise) */
    struct lora **loras; /* applied at load; kept for --dump's lora.fused.* */
    int nloras;
};

/* Pixels per latent pixel: the decoder's (TAESD's when it replaces the VAE),
 * as diffusers' vae_scale_factor follows the vae it was given. */
static int latent_factor(const struct onestep_ctx *ctx)
{
    return ctx->taesd ? ctx->taesd->factor : ctx->vae.factor;
}

static const char *const component_names[MAX_ENCODERS][2] = {{"tokenizer", "text_encoder"},
                                                               {"tokenizer_2", "text_encoder_2"}};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fail(struct onestep_err *err, const struct os_err *e)
{
    if (err) snprintf(err->msg, sizeof err->msg, "%s", e->msg);
    return -1;
}

void onestep_load_default_params(struct onestep_load_params *p)
{
    memset(p, 0, sizeof *p);
    p->model = "weights/sd-turbo";
    p->backend = "auto";
    p->variant = "auto";
}

/* Backends with device memory cache uploaded weights per tensor: drop them
 * before the tensors' memory goes away. */
static void release_weights(struct onestep_ctx *ctx, struct component *c)
{
    if (ctx->ops && ctx->ops->release && c->tensors) ctx->ops->release(ctx->ops, c->tensors, c->ntensors);
}

/* Asynchronous backends (CUDA) report failures after the fact: check at the
 * end of every stage, so a device error is a message, not a garbage image. */
static int backend_ok(const struct ops *o, struct os_err *e)
{
    if (o->sync) o->sync(o);
    return (o->error && o->error(o, e)) ? -1 : 0;
}

void onestep_free(struct onestep_ctx *ctx)
{
    if (!ctx) return;
    for (int i = 0; i < MAX_ENCODERS; i++) release_weights(ctx, &ctx->te_comp[i]);
    release_weights(ctx, &ctx->unet_comp);
    release_weights(ctx, &ctx->vae_comp);
    release_weights(ctx, &ctx->taesd_comp);
    for (int i = 0; i < MAX_ENCODERS; i++) {
        tokenizer_free(ctx->tok[i]);
        clip_free(&ctx->te[i]);
        component_close(&ctx->te_comp[i]);
    }
    unet_free(&ctx->unet);
    component_close(&ctx->unet_comp);
    free(ctx->taesd);
    component_close(&ctx->taesd_comp);
    for (int i = 0; i < ctx->nloras; i++) lora_close(ctx->loras[i]);
    free(ctx->loras);
    component_close(&ctx->vae_comp);
    model_dir_close(ctx->md);
    free(ctx);
}

static int parse_variant(const char *v, enum weight_variant *out, struct os_err *e)
{
    if (!v || !strcmp(v, "auto")) *out = VARIANT_AUTO;
    else if (!strcmp(v, "fp16")) *out = VARIANT_FP16;
    else if (!strcmp(v, "fp32")) *out = VARIANT_FP32;
    else return os_fail(e, "variant \"%s\": expected auto, fp16 or fp32", v);
    return 0;
}

/* The reference keeps merged LoRA weights in f32 (it is the spec); the fast
 * backends keep the checkpoint's dtype, as a float16 diffusers pipeline does. */
static int parse_lora_dtype(const char *v, const struct ops *o, enum lora_merge *out, struct os_err *e)
{
    if (!v || !strcmp(v, "auto")) *out = !strcmp(o->name, "ref") ? LORA_MERGE_F32 : LORA_MERGE_STORED;
    else if (!strcmp(v, "f32")) *out = LORA_MERGE_F32;
    else if (!strcmp(v, "stored")) *out = LORA_MERGE_STORED;
    else return os_fail(e, "LoRA dtype \"%s\": expected auto, f32 or stored", v);
    return 0;
}

static int load_all(struct onestep_ctx *ctx, const struct onestep_load_params *p, struct os_err *e)
{
    enum weight_variant variant = VARIANT_AUTO;
    if (parse_variant(p->variant, &variant, e)) return -1;
    if (!p->model || !*p->model) return os_fail(e, "no model given (-m)");
    if (model_open(p->model, NULL, &ctx->md, e)) return -1;
    const char *cls = ctx->md->pipeline;
    static const char *const known[] = {"StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
                                        "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", NULL};
    int ok = 0;
    for (int i = 0; known[i]; i++) ok |= !strcmp(cls, known[i]);
    if (!ok)
        return os_fail(e, "%s/model_index.json: pipeline \"%s\" is not supported (SD 1.x/2.x/Turbo and SDXL/SDXL-Turbo are)",
                       p->model, cls);
    ctx->is_sdxl = ctx->md->is_sdxl;
    ctx->nenc = ctx->is_sdxl ? 2 : 1;

    for (int i = 0; i < ctx->nenc; i++) {
        struct model_tokenizer_files tf;
        if (model_tokenizer_files(ctx->md, component_names[i][0], &tf, e)) return -1;
        int rc = tokenizer_load_paths(tf.vocab_json, tf.merges_txt, tf.tokenizer_config, tf.special_tokens_map,
                                      &ctx->tok[i], e);
        model_tokenizer_files_free(&tf);
        if (rc) return -1;
        if (component_open(ctx->md, component_names[i][1], "config.json", 1, variant, &ctx->te_comp[i], e)) return -1;
    }
    if (component_open(ctx->md, "unet", "config.json", 1, variant, &ctx->unet_comp, e)) return -1;
    ctx->ops = ops_by_name(p->backend, p->threads, e); /* before the LoRAs: it picks their dtype */
    if (!ctx->ops) return -1;
    enum lora_merge merge_mode = LORA_MERGE_F32;
    if (parse_lora_dtype(p->lora_dtype, ctx->ops, &merge_mode, e)) return -1;
    /* LoRAs change weights, so they are merged before the models bind them */
    if (p->nloras) {
        ctx->loras = calloc((size_t)p->nloras, sizeof *ctx->loras);
        if (!ctx->loras) return os_fail(e, "out of memory");
    }
    for (int l = 0; l < p->nloras; l++) {
        if (lora_open(p->loras[l].path, &ctx->loras[l], e)) return -1;
        ctx->nloras++;
        struct lora *lo = ctx->loras[l];
        if (lora_nmodules(lo, "unet") && lora_apply(lo, &ctx->unet_comp, "unet", p->loras[l].scale, merge_mode, e)) return -1;
        for (int i = 0; i < ctx->nenc; i++)
            if (lora_nmodules(lo, component_names[i][1]) &&
                lora_apply(lo, &ctx->te_comp[i], component_names[i][1], p->loras[l].scale, merge_mode, e))
                return -1;
        if (lora_check_applied(lo, e)) return -1;
        lora_release_pages(lo);
    }
    for (int i = 0; i < ctx->nenc; i++)
        if (clip_load(&ctx->te[i], &ctx->te_comp[i], e)) return -1;
    if (unet_load(&ctx->unet, &ctx->unet_comp, e)) return -1;
    int64_t ss;
    if (json_get_int_or(ctx->unet_comp.config, "sample_size", 64, &ss, ctx->unet_comp.config_path, e)) return -1;
    ctx->sample_size = ss > 0 && ss < 4096 ? (int)ss : 64;
    if (component_open(ctx->md, "vae", "config.json", 1, variant, &ctx->vae_comp, e)) return -1;
    int with_encoder = component_get(&ctx->vae_comp, "encoder.conv_in.weight") != NULL;
    if (vae_load(&ctx->vae, &ctx->vae_comp, with_encoder, e)) return -1;

    if (p->scheduler_config) {
        if (sched_load(&ctx->sched, p->scheduler_config, e)) return -1;
    } else {
        struct component sc;
        if (component_open(ctx->md, "scheduler", "scheduler_config.json", 0, variant, &sc, e)) return -1;
        int rc = sched_from_config(&ctx->sched, sc.config, sc.config_path, e);
        component_close(&sc);
        if (rc) return -1;
    }
    if (p->taesd) {
        ctx->taesd = calloc(1, sizeof *ctx->taesd);
        if (!ctx->taesd) return os_fail(e, "out of memory");
        if (component_open_dir(p->taesd, "taesd", "config.json", 1, VARIANT_AUTO, &ctx->taesd_comp, e) ||
            taesd_load(ctx->taesd, &ctx->taesd_comp, e))
            return os_prefix(e, "--taesd: ");
    }

    return 0;
}

int onestep_load(const struct onestep_load_params *p, struct onestep_ctx **out, struct onestep_err *err)
{
    *out = NULL;
    struct os_err e = {{0}};
    struct onestep_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return snprintf(err->msg, sizeof err->msg, "out of memory"), -1;
    if (load_all(ctx, p, &e)) {
        onestep_free(ctx);
        return fail(err, &e);
    }
    *out = ctx;
    return 0;
}

void onestep_get_info(const struct onestep_ctx *ctx, struct onestep_info *info)
{
    memset(info, 0, sizeof *info);
    info->family = ctx->is_sdxl ? "sdxl" : "sd";
    info->pipeline = ctx->md->pipeline;
    info->scheduler = sched_kind_name(ctx->sched.kind);
    info->backend = ctx->ops->name;
    info->threads = ctx->ops->threads;
    info->vae_scale = latent_factor(ctx);
    info->default_width = info->default_height = ctx->sample_size * latent_factor(ctx);
    info->ntokenizers = ctx->nenc;
}

void onestep_default_params(const struct onestep_ctx *ctx, struct onestep_params *p)
{
    memset(p, 0, sizeof *p);
    p->width = p->height = ctx ? ctx->sample_size * latent_factor(ctx) : 512;
    p->steps = 1;
    p->seed = 42;
    p->rng = "torch";
    p->strength = 0.5;
}

int onestep_tokenize_n(const struct onestep_ctx *ctx, const char *prompt, size_t len, int32_t ids[2][77], int *ntok,
                       struct onestep_err *err)
{
    struct os_err e = {{0}};
    for (int i = 0; i < ctx->nenc; i++)
        if (tokenizer_encode(ctx->tok[i], prompt, len, ids[i], &e)) return fail(err, &e);
    *ntok = ctx->nenc;
    return 0;
}

int onestep_tokenize(const struct onestep_ctx *ctx, const char *prompt, int32_t ids[2][77], int *ntok,
                     struct onestep_err *err)
{
    return onestep_tokenize_n(ctx, prompt, strlen(prompt), ids, ntok, err);
}

/* ---------------------------------------------------------------- checks */

/* The text encoder i reads: prompt_2 for SDXL's second when given (diffusers:
 * prompt_2 = prompt_2 or prompt), with its explicit length when set. */
static const char *prompt_for(const struct onestep_params *p, int i, size_t *len)
{
    if (i == 1 && p->prompt_2) {
        *len = p->prompt_2_len ? p->prompt_2_len : strlen(p->prompt_2);
        return p->prompt_2;
    }
    *len = p->prompt_len ? p->prompt_len : strlen(p->prompt);
    return p->prompt;
}

static int validate(const struct onestep_ctx *ctx, const struct onestep_params *p, struct os_err *e)
{
    const int f = latent_factor(ctx);
    if (!p->prompt) return os_fail(e, "no prompt given (-p)");
    if (p->width <= 0 || p->height <= 0) return os_fail(e, "size %dx%d: width and height must be positive", p->width, p->height);
    if (p->width % f || p->height % f) {
        int tw = (p->width + f / 2) / f * f, th = (p->height + f / 2) / f * f;
        return os_fail(e, "size %dx%d: width and height must be multiples of %d (try %dx%d)", p->width, p->height, f,
                       tw > 0 ? tw : f, th > 0 ? th : f);
    }
    if (p->width > 8192 || p->height > 8192)
        return os_fail(e, "size %dx%d: the largest side supported is 8192", p->width, p->height);
    if (p->ntimesteps == 0 && (p->steps < 1 || p->steps > SCHED_MAX_STEPS))
        return os_fail(e, "steps %d: must be between 1 and %d", p->steps, SCHED_MAX_STEPS);
    if (p->ntimesteps < 0 || p->ntimesteps > SCHED_MAX_STEPS) return os_fail(e, "too many custom timesteps");
    enum rng_kind rk;
    if (rng_kind_from_name(p->rng ? p->rng : "torch", &rk, e)) return -1;
    /* tokenizing is cheap and is what finds invalid UTF-8: do it before any work */
    for (int i = 0; i < ctx->nenc; i++) {
        size_t len;
        const char *text = prompt_for(p, i, &len);
        int32_t ids[SEQ];
        if (tokenizer_encode(ctx->tok[i], text, len, ids, e))
            return i == 1 && p->prompt_2 ? os_prefix(e, "second ") : -1;
    }
    if (p->init_rgb) {
        if (!ctx->vae.has_encoder) return os_fail(e, "img2img: this model's VAE has no encoder weights");
        if (ctx->vae.factor != f)
            return os_fail(e, "img2img with --taesd: the VAE encoder downsamples by %d but TAESD upsamples by %d",
                           ctx->vae.factor, f);
        if (!(p->strength > 0.0 && p->strength <= 1.0))
            return os_fail(e, "strength %g: must be in (0, 1]", p->strength);
        if (p->init_width <= 0 || p->init_height <= 0) return os_fail(e, "init image has no size");
    }
    struct sched s = ctx->sched;
    if (sched_set_timesteps(&s, p->steps, p->timesteps, p->ntimesteps, e)) return -1;
    if (p->init_rgb) {
        int t0;
        if (sched_img2img_start(&s, p->strength, &t0, e)) return -1;
    }
    return 0;
}

int onestep_validate(const struct onestep_ctx *ctx, const struct onestep_params *p, struct onestep_err *err)
{
    struct os_err e = {{0}};
    return validate(ctx, p, &e) ? fail(err, &e) : 0;
}

/* ---------------------------------------------------------------- dumps */

struct dumper {
    const struct onestep_params *p;
    const struct ops *o;
};

static void dump_host(const struct onestep_params *p, const char *name, const float *data, int ndim,
                      const int64_t *shape)
{
    if (p->dump) p->dump(p->dump_user, name, ONESTEP_F32, data, ndim, shape);
}

static void dump_host1(const struct onestep_params *p, const char *name, const float *data, int64_t n)
{
    dump_host(p, name, data, 1, &n);
}

static void dump_latent(const struct onestep_params *p, const char *name, const float *x, int c, int h, int w)
{
    int64_t shape[4] = {1, c, h, w};
    dump_host(p, name, x, 4, shape);
}

/* Model code hands us backend memory: download, then pass to the user. */
static void dump_from_backend(void *ctx, const char *name, const float *buf, int ndim, const int64_t *shape)
{
    struct dumper *d = ctx;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    float *host = malloc((n ? n : 1) * sizeof *host);
    if (!host) return;
    d->o->download(d->o, host, buf, n);
    dump_host(d->p, name, host, ndim, shape);
    free(host);
}

static void progress(const struct onestep_params *p, enum onestep_stage stage, int step, int steps, double secs,
                     int done)
{
    if (!p->progress) return;
    struct onestep_progress pr = {stage, step, steps, secs, done};
    p->progress(p->progress_user, &pr);
}

/* ---------------------------------------------------------------- stages */

/* Per-generation state: host buffers and the one arena. */
struct run {
    struct onestep_ctx *ctx;
    const struct onestep_params *p;
    const struct ops *o; /* the backend, or ops_null() while measuring */
    struct arena *a;
    const struct dump_hook *hook; /* NULL while measuring */
    int measuring;
    int H, W, h, w, lc; /* image and latent size, latent channels */
    int32_t ids[MAX_ENCODERS][SEQ];
    float *context;     /* SEQ x ctx_dim */
    int ctx_dim;
    float *pooled;      /* SDXL text_embeds */
    float time_ids[6];
};

/* SD: prompt_embeds = last_hidden_state of the one encoder.
 * SDXL: concat(hidden_states[-2] of each encoder) along features (no final
 * norm), pooled = text_embeds of text_encoder_2 (diffusers encode_prompt). */
static int encode_text(struct run *r, struct os_err *e)
{
    struct onestep_ctx *ctx = r->ctx;
    int off = 0;
    for (int i = 0; i < ctx->nenc; i++) {
        const struct clip_config *cfg = &ctx->te[i].cfg;
        size_t hs_n = (size_t)(cfg->layers + 1) * SEQ * cfg->hidden;
        float *hs = ctx->is_sdxl ? malloc(hs_n * sizeof *hs) : NULL;
        float *last = ctx->is_sdxl ? NULL : malloc((size_t)SEQ * cfg->hidden * sizeof *last);
        if ((ctx->is_sdxl && !hs) || (!ctx->is_sdxl && !last)) {
            free(hs);
            return os_fail(e, "out of memory for text encoder outputs");
        }
        struct clip_out out = {hs, last, NULL, (ctx->is_sdxl && cfg->with_projection) ? r->pooled : NULL, r->hook};
        /* with a hook the encoder reports every hidden state itself */
        int rc = clip_forward(&ctx->te[i], r->o, r->a, r->ids[i], SEQ, &out, e);
        if (!rc && !r->measuring) {
            if (ctx->is_sdxl) {
                const float *penult = hs + (size_t)(cfg->layers - 1) * SEQ * cfg->hidden;
                for (int t = 0; t < SEQ; t++)
                    memcpy(r->context + (size_t)t * r->ctx_dim + off, penult + (size_t)t * cfg->hidden,
                           (size_t)cfg->hidden * sizeof(float));
            } else {
                memcpy(r->context, last, (size_t)SEQ * cfg->hidden * sizeof(float));
            }
        }
        off += cfg->hidden;
        free(hs);
        free(last);
        if (rc) return -1;
    }
    return 0;
}

static int context_dim(const struct onestep_ctx *ctx)
{
    int d = 0;
    for (int i = 0; i < ctx->nenc; i++) d += ctx->te[i].cfg.hidden;
    return d;
}

/* The decoder call: TAESD when loaded, else the KL VAE, in overlapping
 * tiles with --vae-tiling (an arena of one tile; vae_tiling.h has the
 * defaults and why). z is already scaled. */
static int decode_scaled(struct onestep_ctx *ctx, const struct onestep_params *p, const struct ops *o,
                         struct arena *a, const float *z, int h, int w, float *img, const struct dump_hook *d,
                         struct os_err *e)
{
    if (ctx->taesd) return taesd_decode(ctx->taesd, o, a, z, h, w, img, d, e);
    if (p->vae_tiling)
        return vae_decode_tiled(&ctx->vae, o, a, z, h, w, VAE_TILE_DEFAULT, VAE_TILE_OVERLAP_DEFAULT, img, d, e);
    return vae_decode(&ctx->vae, o, a, z, h, w, img, d, e);
}

/* The measuring arena's peak is stage s's; start afresh for the next. */
static void take_peak(struct arena *a, size_t peaks[4], enum onestep_stage s)
{
    peaks[s] = a->peak;
    arena_destroy(a);
    arena_init_measure(a);
}

/* Run every model stage on ops_null() with a measuring arena: peaks[stage]
 * (by enum onestep_stage) gets each stage's activation peak. */
static int measure(struct onestep_ctx *ctx, const struct onestep_params *p, int H, int W, size_t peaks[4],
                   struct os_err *e)
{
    memset(peaks, 0, 4 * sizeof *peaks);
    struct arena a;
    arena_init_measure(&a);
    struct run r = {0};
    r.ctx = ctx;
    r.p = p;
    r.o = ops_null();
    r.a = &a;
    r.measuring = 1;
    r.ctx_dim = context_dim(ctx);
    r.context = calloc((size_t)SEQ * r.ctx_dim, sizeof(float));
    r.pooled = calloc(4096, sizeof(float));
    const int f = latent_factor(ctx), h = H / f, w = W / f, lc = ctx->unet.in_channels;
    float *lat = calloc((size_t)(lc > 8 ? lc : 8) * h * w, sizeof(float));
    float *img = calloc((size_t)3 * H * W, sizeof(float));
    int rc = -1;
    if (!r.context || !r.pooled || !lat || !img) {
        os_fail(e, "out of memory");
        goto done;
    }
    if (encode_text(&r, e)) goto done;
    take_peak(&a, peaks, ONESTEP_STAGE_TEXT);
    float time_ids[6] = {0};
    struct unet_cond cond = {r.context, SEQ, r.ctx_dim, ctx->unet.text_time ? r.pooled : NULL,
                             ctx->unet.text_time ? time_ids : NULL};
    if (unet_forward(&ctx->unet, r.o, &a, lat, h, w, 999.0f, &cond, lat, NULL, e)) goto done;
    take_peak(&a, peaks, ONESTEP_STAGE_UNET);
    if (decode_scaled(ctx, p, r.o, &a, lat, h, w, img, NULL, e)) goto done;
    take_peak(&a, peaks, ONESTEP_STAGE_VAE); /* --preview decodes x0 the same way: no larger */
    if (p->init_rgb) {
        if (vae_encode(&ctx->vae, r.o, &a, img, H, W, lat, NULL, e)) goto done;
        take_peak(&a, peaks, ONESTEP_STAGE_ENCODE);
    }
    rc = 0;
done:
    arena_destroy(&a);
    free(r.context);
    free(r.pooled);
    free(lat);
    free(img);
    return rc;
}

static int skipped(const struct onestep_params *p, enum onestep_stage s)
{
    return s != ONESTEP_STAGE_ENCODE && (p->skip_stages & (1u << s));
}

/* The arena a generation allocates: the largest stage it runs (--preview
 * decodes each step's x0 even when the final decode is skipped). */
static size_t arena_needed(const struct onestep_params *p, const size_t peaks[4])
{
    size_t peak = 0;
    for (int s = 0; s < 4; s++) {
        int runs = !skipped(p, (enum onestep_stage)s) || (s == ONESTEP_STAGE_VAE && p->preview);
        if (runs && peaks[s] > peak) peak = peaks[s];
    }
    return peak;
}

/* The stage whose arena arena_needed chose (the first of equals). */
static enum onestep_stage largest_stage(const struct onestep_params *p, const size_t peaks[4])
{
    const size_t need = arena_needed(p, peaks);
    static const enum onestep_stage order[4] = {ONESTEP_STAGE_TEXT, ONESTEP_STAGE_UNET, ONESTEP_STAGE_VAE,
                                                ONESTEP_STAGE_ENCODE};
    for (int i = 0; i < 4; i++)
        if (peaks[order[i]] == need) return order[i];
    return ONESTEP_STAGE_TEXT;
}

int onestep_estimate(struct onestep_ctx *ctx, const struct onestep_params *p, size_t *bytes, struct onestep_err *err)
{
    struct os_err e = {{0}};
    size_t peaks[4];
    if (validate(ctx, p, &e) || measure(ctx, p, p->height, p->width, peaks, &e)) return fail(err, &e);
    *bytes = arena_needed(p, peaks);
    return 0;
}

/* ---------------------------------------------------------------- memory */

static uint64_t weight_bytes(const struct component *c)
{
    uint64_t n = 0;
    for (size_t i = 0; i < c->ntensors; i++)
        n += (uint64_t)tensor_numel(&c->tensors[i]) * dtype_size(c->tensors[i].dtype);
    return n;
}

/* What generate() holds on the host besides the arena: the latent buffers,
 * the float and 8-bit images, img2img's encoder input and moments, and the
 * caller's init image (see generate and img2img_latents). */
static uint64_t host_bytes(const struct onestep_ctx *ctx, const struct onestep_params *p)
{
    const uint64_t HW = (uint64_t)p->width * (uint64_t)p->height;
    const uint64_t n = (uint64_t)ctx->unet.in_channels * (HW / ((uint64_t)ctx->vae.factor * ctx->vae.factor));
    uint64_t b = 6 * n * 4 + HW * 3 * 4 + HW * 3;
    if (p->init_rgb) b += HW * 3 * 4 + 3 * n * 4 + HW * 3;
    return b;
}

/* Refuse a generation that cannot fit rather than let the OOM killer end it:
 * the measured arena, the host buffers, and the weights of the largest stage
 * (mapped from the file; each stage's must be resident while it runs, and the
 * pipeline drops a stage's pages when it is done). */
static int check_memory(const struct onestep_ctx *ctx, const struct onestep_params *p, size_t arena,
                        enum onestep_stage peak_stage, struct os_err *e)
{
    uint64_t avail;
    const char *from;
    int known = sysmem_available(&avail, &from, e);
    if (known < 0) return -1;
    if (known > 0) return 0;
    uint64_t te = 0, w;
    for (int i = 0; i < ctx->nenc; i++) te += weight_bytes(&ctx->te_comp[i]);
    w = te;
    if (weight_bytes(&ctx->unet_comp) > w) w = weight_bytes(&ctx->unet_comp);
    if (weight_bytes(&ctx->vae_comp) > w) w = weight_bytes(&ctx->vae_comp);
    const uint64_t need = (uint64_t)arena + host_bytes(ctx, p) + w;
    if (need <= avail) return 0;
    char a[32], b[32];
    /* tiling bounds the VAE decoder's memory: it helps only when that is the peak */
    const int tiling_helps = !p->vae_tiling && peak_stage == ONESTEP_STAGE_VAE;
    const char *who = !strcmp(from, "ONESTEP_MEMORY_LIMIT") ? "ONESTEP_MEMORY_LIMIT allows %s"
                      : !strcmp(from, "cgroup limit")         ? "this container's memory limit leaves %s"
                                                              : "this machine has %s available";
    char have[96];
    snprintf(have, sizeof have, who, sysmem_format(avail, b, sizeof b));
    return os_fail(e, "size %dx%d needs about %s of memory, %s (try %sa smaller size)", p->width, p->height,
                   sysmem_format(need, a, sizeof a), have, tiling_helps ? "--vae-tiling or " : "");
}

int onestep_check_memory(struct onestep_ctx *ctx, const struct onestep_params *p, struct onestep_err *err)
{
    struct os_err e = {{0}};
    size_t peaks[4];
    if (validate(ctx, p, &e) || measure(ctx, p, p->height, p->width, peaks, &e) ||
        check_memory(ctx, p, arena_needed(p, peaks), largest_stage(p, peaks), &e))
        return fail(err, &e);
    return 0;
}

/* diffusers' VaeImageProcessor: uint8 / 255 then 2x - 1, in float32, HWC -> CHW. */
static void image_to_float(const unsigned char *rgb, int H, int W, float *out)
{
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < H * W; i++) {
            float v = (float)rgb[(size_t)i * 3 + c] / 255.0f;
            out[(size_t)c * H * W + i] = 2.0f * v - 1.0f;
        }
}

/* img2img start: encode, sample the posterior (first draw), scale, add noise
 * at the first executed step (second draw). */
static int img2img_latents(struct run *r, struct sched *s, int t0, struct rng *g, float *x, struct os_err *e)
{
    struct onestep_ctx *ctx = r->ctx;
    const struct onestep_params *p = r->p;
    const size_t n = (size_t)r->lc * r->h * r->w;
    float *img = malloc((size_t)3 * r->H * r->W * sizeof *img);
    float *moments = malloc(2 * n * sizeof *moments);
    float *noise = malloc(n * sizeof *noise);
    int rc = -1;
    if (!img || !moments || !noise) {
        os_fail(e, "out of memory");
        goto done;
    }
    if (p->init_width != r->W || p->init_height != r->H) {
        os_fail(e, "init image is %dx%d but the requested size is %dx%d", p->init_width, p->init_height, r->W, r->H);
        goto done;
    }
    image_to_float(p->init_rgb, r->H, r->W, img);
    dump_latent(p, "img2img.image", img, 3, r->H, r->W);
    double t = now();
    progress(p, ONESTEP_STAGE_ENCODE, 1, 1, 0, 0);
    if (vae_encode(&ctx->vae, r->o, r->a, img, r->H, r->W, moments, r->hook, e) || backend_ok(r->o, e)) goto done;
    progress(p, ONESTEP_STAGE_ENCODE, 1, 1, now() - t, 1);
    /* DiagonalGaussianDistribution.sample: mean + exp(0.5 * clamp(logvar, -30, 20)) * randn */
    rng_randn(g, noise, n);
    dump_latent(p, "img2img.posterior_noise", noise, r->lc, r->h, r->w);
    const float *mean = moments, *logvar = moments + n;
    for (size_t i = 0; i < n; i++) {
        float lv = logvar[i] < -30.0f ? -30.0f : logvar[i] > 20.0f ? 20.0f : logvar[i];
        /* rm_exp, not libm's exp: the reference's bits must not depend on
         * the C library (ref/refmath.h). */
        float sd = (float)rm_exp((double)(0.5f * lv));
        x[i] = mean[i] + sd * noise[i];
    }
    dump_latent(p, "img2img.posterior_sample", x, r->lc, r->h, r->w);
    for (size_t i = 0; i < n; i++) x[i] = ctx->vae.scaling_factor * x[i];
    dump_latent(p, "img2img.init_latents", x, r->lc, r->h, r->w);
    rng_randn(g, noise, n);
    dump_latent(p, "img2img.noise", noise, r->lc, r->h, r->w);
    float ts = sched_timestep(s, t0);
    dump_host1(p, "img2img.noise_timestep", &ts, 1);
    sched_add_noise(s, t0, x, noise, x, n);
    rc = 0;
done:
    free(img);
    free(moments);
    free(noise);
    return rc;
}

/* latents -> image in [-1, 1]. The pipelines decode latents / scaling_factor
 * (SDXL with latents_mean/std set: latents * std / scaling_factor + mean);
 * TAESD's scaling_factor is 1: it takes UNet-space latents as they are.
 * scratch: n floats. */
static int decode(struct onestep_ctx *ctx, const struct onestep_params *p, const struct ops *o, struct arena *a,
                  const float *x, float *scratch, int h, int w, float *img, const struct dump_hook *hook,
                  struct os_err *e)
{
    const size_t hw = (size_t)h * w, n = (size_t)ctx->unet.out_channels * hw;
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i / hw);
        if (ctx->taesd)
            scratch[i] = x[i] / ctx->taesd->scaling_factor;
        else if (ctx->vae.has_latents_mean_std)
            scratch[i] = x[i] * ctx->vae.latents_std[c] / ctx->vae.scaling_factor + ctx->vae.latents_mean[c];
        else
            scratch[i] = x[i] / ctx->vae.scaling_factor;
    }
    return decode_scaled(ctx, p, o, a, scratch, h, w, img, hook, e);
}

static int generate(struct onestep_ctx *ctx, const struct onestep_params *p, struct onestep_image *out,
                    struct os_err *e)
{
    const struct ops *o = ctx->ops;
    if (validate(ctx, p, e)) return -1;
    struct run r = {0};
    r.ctx = ctx;
    r.p = p;
    r.o = o;
    r.H = p->height;
    r.W = p->width;
    r.h = r.H / latent_factor(ctx);
    r.w = r.W / latent_factor(ctx);
    r.lc = ctx->unet.in_channels;
    r.ctx_dim = context_dim(ctx);
    const size_t n = (size_t)r.lc * r.h * r.w;
    struct dumper dumper = {p, o};
    struct dump_hook hook = {dump_from_backend, &dumper};
    r.hook = p->dump ? &hook : NULL;

    size_t peaks[4];
    if (measure(ctx, p, r.H, r.W, peaks, e) ||
        check_memory(ctx, p, arena_needed(p, peaks), largest_stage(p, peaks), e))
        return -1;
    struct arena arena;
    if (arena_init(&arena, o, arena_needed(p, peaks), e)) return -1;
    r.a = &arena;

    struct sched s = ctx->sched;
    float *x = malloc(n * sizeof *x), *xin = malloc(n * sizeof *xin), *eps = malloc(n * sizeof *eps);
    float *noise = malloc(n * sizeof *noise), *x0 = malloc(n * sizeof *x0), *den = malloc(n * sizeof *den);
    float *img = calloc((size_t)3 * r.H * r.W, sizeof *img); /* zero when the VAE stage is skipped */
    r.context = calloc((size_t)SEQ * r.ctx_dim, sizeof(float)); /* zero when the text stage is skipped */
    r.pooled = calloc(4096, sizeof(float));
    unsigned char *rgb = malloc((size_t)3 * r.H * r.W);
    int rc = -1;
    if (!x || !xin || !eps || !noise || !x0 || !den || !img || !r.context || !r.pooled || !rgb) {
        os_fail(e, "out of memory for a %dx%d image", r.W, r.H);
        goto done;
    }

    /* merged LoRA weights, under the suite's lora.fused.<weight name> */
    for (int l = 0; p->dump && l < ctx->nloras; l++) {
        for (size_t i = 0; i < lora_nmodules(ctx->loras[l], NULL); i++) {
            const char *comp;
            const char *wname = lora_merged_weight(ctx->loras[l], i, &comp);
            struct component *c = NULL;
            if (wname && !strcmp(comp, "unet")) c = &ctx->unet_comp;
            for (int k = 0; wname && k < ctx->nenc; k++)
                if (!strcmp(comp, component_names[k][1])) c = &ctx->te_comp[k];
            const struct tensor *t = c ? component_get(c, wname) : NULL;
            if (!t) continue;
            char name[256];
            snprintf(name, sizeof name, "lora.fused.%s", wname);
            if (t->dtype == DT_F32) {
                dump_host(p, name, t->data, t->ndim, t->shape);
                continue;
            }
            /* kept in the checkpoint's f16/bf16 (lora_dtype "stored"): widened exactly */
            float *wide = malloc((size_t)tensor_numel(t) * sizeof *wide);
            if (!wide) {
                os_fail(e, "out of memory dumping %s", name);
                goto done;
            }
            tensor_read_f32(t, 0, tensor_numel(t), wide);
            dump_host(p, name, wide, t->ndim, t->shape);
            free(wide);
        }
    }

    /* 1. prompt -> token ids -> context */
    for (int i = 0; i < ctx->nenc; i++) {
        size_t len;
        const char *text = prompt_for(p, i, &len);
        if (tokenizer_encode(ctx->tok[i], text, len, r.ids[i], e)) goto done;
        if (p->dump) {
            int64_t ids64[SEQ], shape[2] = {1, SEQ};
            for (int t = 0; t < SEQ; t++) ids64[t] = r.ids[i][t];
            char name[64];
            snprintf(name, sizeof name, "%s.input_ids", component_names[i][0]);
            p->dump(p->dump_user, name, ONESTEP_I64, ids64, 2, shape);
        }
    }
    double t = now();
    if (!skipped(p, ONESTEP_STAGE_TEXT)) {
        progress(p, ONESTEP_STAGE_TEXT, 1, 1, 0, 0);
        if (encode_text(&r, e) || backend_ok(o, e)) goto done;
        for (int i = 0; i < ctx->nenc; i++) component_release_pages(&ctx->te_comp[i]);
        progress(p, ONESTEP_STAGE_TEXT, 1, 1, now() - t, 1);
    }
    int64_t cshape[3] = {1, SEQ, r.ctx_dim};
    dump_host(p, "prompt_embeds", r.context, 3, cshape);
    if (ctx->is_sdxl) {
        /* add_time_ids = original_size + crops_coords_top_left + target_size, height first */
        float tid[6] = {(float)r.H, (float)r.W, 0.0f, 0.0f, (float)r.H, (float)r.W};
        memcpy(r.time_ids, tid, sizeof tid);
        int64_t pshape[2] = {1, ctx->te[1].cfg.projection_dim}, tshape[2] = {1, 6};
        dump_host(p, "pooled_prompt_embeds", r.pooled, 2, pshape);
        dump_host(p, "add_text_embeds", r.pooled, 2, pshape);
        dump_host(p, "add_time_ids", r.time_ids, 2, tshape);
    }

    /* 2. schedule and starting latents */
    if (sched_set_timesteps(&s, p->steps, p->timesteps, p->ntimesteps, e)) goto done;
    dump_host1(p, "scheduler.timesteps", s.timesteps, s.n);
    if (s.kind != SCHED_LCM) dump_host1(p, "scheduler.sigmas", s.sigmas, s.n + 1);
    dump_host1(p, "scheduler.init_noise_sigma", &s.init_noise_sigma, 1);
    int t0 = 0;
    if (p->init_rgb && sched_img2img_start(&s, p->strength, &t0, e)) goto done;
    dump_host1(p, "timesteps", s.timesteps + t0, s.n - t0);

    enum rng_kind rk;
    if (rng_kind_from_name(p->rng ? p->rng : "torch", &rk, e)) goto done;
    struct rng g;
    rng_init(&g, rk, p->seed);
    if (p->init_rgb) {
        if (img2img_latents(&r, &s, t0, &g, x, e)) goto done;
    } else {
        rng_randn(&g, noise, n);
        dump_latent(p, "latents.noise", noise, r.lc, r.h, r.w);
        sched_init_latents(&s, noise, x, n);
    }
    dump_latent(p, "latents.init", x, r.lc, r.h, r.w);

    /* 3. the denoising loop */
    struct unet_cond cond = {r.context, SEQ, r.ctx_dim, ctx->unet.text_time ? r.pooled : NULL,
                             ctx->unet.text_time ? r.time_ids : NULL};
    const int nsteps = s.n - t0;
    for (int i = t0; i < s.n && !skipped(p, ONESTEP_STAGE_UNET); i++) {
        const int k = i - t0 + 1; /* 1-based executed step, the manifest's stepk */
        char name[64];
        float ts = sched_timestep(&s, i);
        snprintf(name, sizeof name, "step%d.timestep", k);
        dump_host1(p, name, &ts, 1);
        sched_scale_model_input(&s, i, x, xin, n);
        snprintf(name, sizeof name, "step%d.latent_model_input", k);
        dump_latent(p, name, xin, r.lc, r.h, r.w);
        t = now();
        progress(p, ONESTEP_STAGE_UNET, k, nsteps, 0, 0);
        if (unet_forward(&ctx->unet, o, &arena, xin, r.h, r.w, ts, &cond, eps, k == 1 ? r.hook : NULL, e) ||
            backend_ok(o, e))
            goto done;
        progress(p, ONESTEP_STAGE_UNET, k, nsteps, now() - t, 1);
        snprintf(name, sizeof name, "step%d.noise_pred", k);
        dump_latent(p, name, eps, r.lc, r.h, r.w);
        int draws = sched_needs_noise(&s, i);
        if (draws) {
            rng_randn(&g, noise, n);
            snprintf(name, sizeof name, "step%d.noise", k);
            dump_latent(p, name, noise, r.lc, r.h, r.w);
        }
        struct sched_trace tr;
        memset(&tr, 0, sizeof tr);
        tr.pred_original_sample = x0;
        tr.denoised = den;
        if (sched_step(&s, i, eps, x, draws ? noise : NULL, x, n, &tr, e)) goto done;
        if (s.kind == SCHED_LCM) {
            static const char *const fields[] = {"alpha_prod_t", "alpha_prod_t_prev", "c_skip", "c_out"};
            const float vals[4] = {tr.alpha_prod_t, tr.alpha_prod_t_prev, tr.c_skip, tr.c_out};
            for (int j = 0; j < 4; j++) {
                snprintf(name, sizeof name, "step%d.%s", k, fields[j]);
                dump_host1(p, name, &vals[j], 1);
            }
            snprintf(name, sizeof name, "step%d.denoised", k);
            dump_latent(p, name, den, r.lc, r.h, r.w);
        }
        snprintf(name, sizeof name, "step%d.pred_original_sample", k);
        dump_latent(p, name, x0, r.lc, r.h, r.w);
        snprintf(name, sizeof name, "step%d.latents", k);
        dump_latent(p, name, x, r.lc, r.h, r.w);
        if (p->preview) { /* this step's x0 prediction as a picture */
            if (decode(ctx, p, o, &arena, x0, xin, r.h, r.w, img, NULL, e) || backend_ok(o, e)) goto done;
            vae_to_uint8(img, r.H, r.W, rgb);
            p->preview(p->preview_user, k, rgb, r.W, r.H);
        }
    }
    component_release_pages(&ctx->unet_comp);
    dump_latent(p, "latents.final", x, r.lc, r.h, r.w);

    /* 4. decode */
    if (!skipped(p, ONESTEP_STAGE_VAE)) {
        t = now();
        progress(p, ONESTEP_STAGE_VAE, 1, 1, 0, 0);
        if (decode(ctx, p, o, &arena, x, xin, r.h, r.w, img, r.hook, e) || backend_ok(o, e)) goto done;
        component_release_pages(&ctx->vae_comp);
        component_release_pages(&ctx->taesd_comp);
        progress(p, ONESTEP_STAGE_VAE, 1, 1, now() - t, 1);
    }
    vae_to_uint8(img, r.H, r.W, rgb);
    if (p->dump) {
        int64_t ishape[4] = {1, r.H, r.W, 3};
        p->dump(p->dump_user, "image.uint8", ONESTEP_U8, rgb, 4, ishape);
    }
    out->width = r.W;
    out->height = r.H;
    out->rgb = rgb;
    rgb = NULL;
    rc = 0;
done:
    arena_destroy(&arena);
    free(x);
    free(xin);
    free(eps);
    free(noise);
    free(x0);
    free(den);
    free(img);
    free(r.context);
    free(r.pooled);
    free(rgb);
    return rc;
}

int onestep_generate(struct onestep_ctx *ctx, const struct onestep_params *p, struct onestep_image *out,
                     struct onestep_err *err)
{
    struct os_err e = {{0}};
    memset(out, 0, sizeof *out);
    return generate(ctx, p, out, &e) ? fail(err, &e) : 0;
}

void onestep_image_free(struct onestep_image *img)
{
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
}
