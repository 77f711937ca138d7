/* modelwalk.c — shapes, FLOPs and activation peaks from configs (modelwalk.h). */
#include "modelwalk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ref/arena.h"
#include "../../ref/clip.h"
#include "../../ref/ops.h"
#include "../../ref/taesd.h"
#include "../../ref/unet.h"
#include "../../ref/vae.h"
#include "../../weights/arch.h"
#include "../../weights/model_dir.h"

#define SEQ 77

/* ---- a weightless component: the tensor list the config implies ---- */

struct tlist {
    struct component *c;
    struct tensor *t;
    size_t n, cap;
};

static int add_param(void *ctx, const struct arch_param *p, struct os_err *err)
{
    struct tlist *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        struct tensor *t = realloc(l->t, cap * sizeof *t);
        if (!t) return os_fail(err, "out of memory");
        l->t = t;
        l->cap = cap;
    }
    struct tensor *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    char *name = os_strdup(p->name);
    if (!name || component_own(l->c, name)) {
        free(name);
        return os_fail(err, "out of memory");
    }
    t->name = name;
    t->dtype = DT_F32;
    t->ndim = p->ndim;
    for (int i = 0; i < p->ndim; i++) t->shape[i] = p->shape[i];
    t->data = NULL; /* never read: the counting backend computes nothing */
    l->n++;
    return 0;
}

/* Give the opened, weightless component c the tensors its config implies;
 * *params is their element count. */
static int bind_weightless(struct component *c, const char *name, uint64_t *params, struct os_err *err)
{
    struct tlist l = {c, NULL, 0, 0};
    if (arch_walk(c->config, c->config_path ? c->config_path : name, add_param, &l, err)) {
        free(l.t);
        return -1;
    }
    *params = 0;
    for (size_t i = 0; i < l.n; i++) {
        uint64_t k = 1;
        for (int d = 0; d < l.t[i].ndim; d++) k *= (uint64_t)l.t[i].shape[d];
        *params += k;
    }
    component_set_tensors(c, l.t, l.n);
    return 0;
}

/* Open component `name` of m without weights and bind its tensors. */
static int open_weightless(const struct model_dir *m, const char *name, struct component *c, uint64_t *params,
                           struct os_err *err)
{
    if (component_open(m, name, "config.json", 0, VARIANT_AUTO, c, err)) return -1;
    return bind_weightless(c, name, params, err);
}

/* ---- the counting backend: ops_null() plus FLOP counters ---- */

struct counter {
    uint64_t linear, conv, attention;
};

static struct counter *counter_of(const struct ops *o)
{
    return (struct counter *)o->state;
}

static void count_linear(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                         const float *res, int M, int K, int N)
{
    (void)y; (void)x; (void)w; (void)b; (void)res;
    counter_of(o)->linear += 2ull * (uint64_t)M * (uint64_t)K * (uint64_t)N;
}

static void count_conv2d(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                         const float *res, const struct conv2d_shape *s)
{
    (void)y; (void)x; (void)w; (void)b; (void)res;
    const uint64_t out = (uint64_t)s->OC * (uint64_t)conv2d_out_h(s) * (uint64_t)conv2d_out_w(s);
    counter_of(o)->conv += 2ull * out * (uint64_t)s->C * (uint64_t)s->KH * (uint64_t)s->KW;
}

static void count_attention(const struct ops *o, float *out, const float *q, const float *k, const float *v,
                            const struct attn_shape *s)
{
    (void)out; (void)q; (void)k; (void)v;
    counter_of(o)->attention += 4ull * (uint64_t)s->heads * (uint64_t)s->nq * (uint64_t)s->nk * (uint64_t)s->head_dim;
}

/* ---- the report ---- */

struct walk {
    struct mw_report *r;
    int stage;
    int failed;
};

static void record(struct mw_report *r, int stage, const char *name, int ndim, const int64_t *shape)
{
    if (r->ntensors == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 128;
        struct mw_tensor *t = realloc(r->tensors, cap * sizeof *t);
        if (!t) return; /* the report is shorter; modelwalk checks the count */
        r->tensors = t;
        r->cap = cap;
    }
    struct mw_tensor *t = &r->tensors[r->ntensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->stage = stage;
    t->ndim = ndim > 4 ? 4 : ndim;
    for (int i = 0; i < t->ndim; i++) t->shape[i] = shape[i];
}

static void on_dump(void *ctx, const char *name, const float *buf, int ndim, const int64_t *shape)
{
    (void)buf;
    struct walk *w = ctx;
    size_t before = w->r->ntensors;
    record(w->r, w->stage, name, ndim, shape);
    if (w->r->ntensors == before) w->failed = 1;
}

static struct mw_stage *begin_stage(struct mw_report *r, const char *name, enum mw_stage_kind kind, uint64_t params)
{
    struct mw_stage *s = &r->stages[r->nstages++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->kind = kind;
    s->params = params;
    return s;
}

static void end_stage(struct mw_stage *s, const struct counter *c, const struct arena *a, int ndim,
                      const int64_t *shape)
{
    s->linear_flops = c->linear;
    s->conv_flops = c->conv;
    s->attention_flops = c->attention;
    s->flops = c->linear + c->conv + c->attention;
    s->peak_bytes = a->peak;
    s->out_ndim = ndim;
    for (int i = 0; i < ndim; i++) s->out_shape[i] = shape[i];
}

/* Everything opened, so one cleanup path closes it all. */
struct models {
    struct model_dir *md;
    struct component te_comp[2], unet_comp, vae_comp;
    struct clip te[2];
    int nte;
    struct unet unet;
    int unet_loaded;
};

static void close_models(struct models *m)
{
    for (int i = 0; i < 2; i++) {
        clip_free(&m->te[i]);
        component_close(&m->te_comp[i]);
    }
    if (m->unet_loaded) unet_free(&m->unet);
    component_close(&m->unet_comp);
    component_close(&m->vae_comp);
    model_dir_close(m->md);
}

/* ops_null (nothing computed) with the three kernels that do the
 * arithmetic counting their FLOPs into *cnt. */
static struct ops counting_ops(struct counter *cnt)
{
    struct ops o = *ops_null();
    o.name = "count";
    o.state = cnt;
    o.linear = count_linear;
    o.conv2d = count_conv2d;
    o.attention = count_attention;
    return o;
}

static int walk_all(struct models *m, const char *path, int W, int H, int with_encoder, struct mw_report *r,
                    struct os_err *err)
{
    static const char *const te_names[2] = {"text_encoder", "text_encoder_2"};
    struct counter cnt;
    struct ops o = counting_ops(&cnt);
    struct walk w = {r, 0, 0};
    struct dump_hook hook = {on_dump, &w};
    struct arena a;
    uint64_t params;

    if (model_open(path, NULL, &m->md, err)) return -1;
    r->is_sdxl = m->md->is_sdxl;
    snprintf(r->pipeline, sizeof r->pipeline, "%s", m->md->pipeline ? m->md->pipeline : "?");
    r->width = W;
    r->height = H;

    /* the loaders, on weightless components */
    m->nte = r->is_sdxl ? 2 : 1;
    for (int i = 0; i < m->nte; i++)
        if (open_weightless(m->md, te_names[i], &m->te_comp[i], &params, err) || clip_load(&m->te[i], &m->te_comp[i], err))
            return -1;
    uint64_t unet_params, vae_params;
    if (open_weightless(m->md, "unet", &m->unet_comp, &unet_params, err)) return -1;
    if (unet_load(&m->unet, &m->unet_comp, err)) return -1;
    m->unet_loaded = 1;
    if (open_weightless(m->md, "vae", &m->vae_comp, &vae_params, err)) return -1;
    struct vae vae;
    if (vae_load(&vae, &m->vae_comp, with_encoder, err)) return -1;

    const int f = vae.factor;
    if (W < 1 || H < 1 || W % f || H % f)
        return os_fail(err, "size %dx%d: width and height must be positive multiples of %d", W, H, f);
    r->lh = H / f;
    r->lw = W / f;
    r->lc = m->unet.in_channels;

    /* 1. text */
    int32_t ids[SEQ];
    int64_t ids_shape[2] = {1, SEQ};
    for (int i = 0; i < m->nte; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.input_ids", i ? "tokenizer_2" : "tokenizer");
        record(r, -1, name, 2, ids_shape);
    }
    r->context_dim = 0;
    for (int i = 0; i < m->nte; i++) {
        const struct clip_config *cfg = &m->te[i].cfg;
        ids[0] = 49406 % cfg->vocab; /* <|startoftext|>, <|endoftext|>, then padding: the shapes do not care */
        for (int t = 1; t < SEQ; t++) ids[t] = 49407 % cfg->vocab;
        uint64_t p = 0;
        for (size_t k = 0; k < m->te_comp[i].ntensors; k++) p += (uint64_t)tensor_numel(&m->te_comp[i].tensors[k]);
        struct mw_stage *s = begin_stage(r, te_names[i], MW_TEXT, p);
        w.stage = r->nstages - 1;
        memset(&cnt, 0, sizeof cnt);
        arena_init_measure(&a);
        struct clip_out out = {0};
        out.dump = &hook;
        int rc = clip_forward(&m->te[i], &o, &a, ids, SEQ, &out, err);
        int64_t shape[3] = {1, SEQ, cfg->hidden};
        end_stage(s, &cnt, &a, 3, shape);
        arena_destroy(&a);
        if (rc) return -1;
        r->context_dim += cfg->hidden;
        if (cfg->with_projection) r->pooled_dim = cfg->projection_dim;
    }
    if (!r->is_sdxl) r->pooled_dim = 0;
    int64_t ctx_shape[3] = {1, SEQ, r->context_dim};
    record(r, -1, "prompt_embeds", 3, ctx_shape);
    if (r->is_sdxl) {
        int64_t pshape[2] = {1, r->pooled_dim}, tshape[2] = {1, 6};
        record(r, -1, "pooled_prompt_embeds", 2, pshape);
        record(r, -1, "add_time_ids", 2, tshape);
    }

    size_t lat_n = (size_t)(r->lc > 8 ? r->lc : 8) * r->lh * r->lw;
    float *lat = calloc(lat_n, sizeof *lat);
    float *img = calloc((size_t)3 * W * H, sizeof *img);
    float *ctx = calloc((size_t)SEQ * r->context_dim, sizeof *ctx);
    float *pooled = calloc((size_t)(m->unet.text_embeds_dim > 0 ? m->unet.text_embeds_dim : 1), sizeof *pooled);
    int rc = -1;
    if (!lat || !img || !ctx || !pooled) {
        os_fail(err, "out of memory");
        goto done;
    }

    /* 2. img2img: the VAE encoder */
    if (with_encoder) {
        int64_t ishape[4] = {1, 3, H, W};
        record(r, -1, "img2img.image", 4, ishape);
        struct mw_stage *s = begin_stage(r, "vae.encoder", MW_VAE_ENCODE, 0);
        w.stage = r->nstages - 1;
        memset(&cnt, 0, sizeof cnt);
        arena_init_measure(&a);
        int e = vae_encode(&vae, &o, &a, img, H, W, lat, &hook, err);
        int64_t shape[4] = {1, 2 * vae.latent_channels, r->lh, r->lw};
        end_stage(s, &cnt, &a, 4, shape);
        arena_destroy(&a);
        if (e) goto done;
    }

    /* 3. the starting latents and one UNet step */
    int64_t lshape[4] = {1, r->lc, r->lh, r->lw};
    if (with_encoder) {
        static const char *const names[] = {"img2img.posterior_noise", "img2img.posterior_sample",
                                            "img2img.init_latents", "img2img.noise"};
        for (int i = 0; i < 4; i++) record(r, -1, names[i], 4, lshape);
    } else {
        record(r, -1, "latents.noise", 4, lshape);
    }
    record(r, -1, "latents.init", 4, lshape);
    {
        struct mw_stage *s = begin_stage(r, "unet", MW_UNET, unet_params);
        w.stage = r->nstages - 1;
        memset(&cnt, 0, sizeof cnt);
        float time_ids[6] = {(float)H, (float)W, 0, 0, (float)H, (float)W};
        struct unet_cond cond = {ctx, SEQ, r->context_dim, m->unet.text_time ? pooled : NULL,
                                 m->unet.text_time ? time_ids : NULL};
        arena_init_measure(&a);
        int e = unet_forward(&m->unet, &o, &a, lat, r->lh, r->lw, 999.0f, &cond, lat, &hook, err);
        int64_t shape[4] = {1, m->unet.out_channels, r->lh, r->lw};
        end_stage(s, &cnt, &a, 4, shape);
        arena_destroy(&a);
        if (e) goto done;
    }

    /* 4. the VAE decoder */
    {
        uint64_t p = 0; /* the decoder's share: everything but encoder.* and quant_conv.* */
        for (size_t k = 0; k < m->vae_comp.ntensors; k++) {
            const char *n = m->vae_comp.tensors[k].name;
            if (strncmp(n, "encoder.", 8) && strncmp(n, "quant_conv.", 11))
                p += (uint64_t)tensor_numel(&m->vae_comp.tensors[k]);
        }
        if (with_encoder) r->stages[r->nstages - 2].params = vae_params - p;
        struct mw_stage *s = begin_stage(r, "vae.decoder", MW_VAE_DECODE, p);
        w.stage = r->nstages - 1;
        memset(&cnt, 0, sizeof cnt);
        arena_init_measure(&a);
        int e = vae_decode(&vae, &o, &a, lat, r->lh, r->lw, img, &hook, err);
        int64_t shape[4] = {1, vae.out_channels, H, W};
        end_stage(s, &cnt, &a, 4, shape);
        arena_destroy(&a);
        if (e) goto done;
    }
    int64_t ushape[4] = {1, H, W, 3};
    record(r, -1, "image.uint8", 4, ushape);
    if (w.failed || r->ntensors == 0 || r->tensors[r->ntensors - 1].ndim != 4) {
        os_fail(err, "out of memory for the list of tensors");
        goto done;
    }
    rc = 0;
done:
    free(lat);
    free(img);
    free(ctx);
    free(pooled);
    return rc;
}

int modelwalk(const char *path, int width, int height, int with_encoder, struct mw_report *r, struct os_err *err)
{
    memset(r, 0, sizeof *r);
    struct models m;
    memset(&m, 0, sizeof m);
    int rc = walk_all(&m, path, width, height, with_encoder, r, err);
    close_models(&m);
    if (rc) mw_report_free(r);
    return rc;
}

int modelwalk_taesd(const char *dir, int lh, int lw, struct mw_stage *s, struct os_err *err)
{
    memset(s, 0, sizeof *s);
    struct component c;
    uint64_t params;
    if (component_open_dir(dir, "taesd", "config.json", 0, VARIANT_AUTO, &c, err)) return -1;
    struct taesd *t = calloc(1, sizeof *t); /* two layer stacks: too big for the stack */
    float *lat = NULL, *img = NULL;
    int rc = -1;
    if (!t) {
        os_fail(err, "out of memory");
        goto done;
    }
    if (bind_weightless(&c, "taesd", &params, err) || taesd_load(t, &c, err)) goto done;
    if (lh < 1 || lw < 1 || lh > 65536 / t->factor || lw > 65536 / t->factor) {
        os_fail(err, "taesd: latent size %dx%d is out of range", lh, lw);
        goto done;
    }
    lat = calloc((size_t)t->latent_channels * lh * lw, sizeof *lat);
    img = calloc((size_t)t->out_channels * lh * t->factor * lw * t->factor, sizeof *img);
    if (!lat || !img) {
        os_fail(err, "out of memory");
        goto done;
    }
    snprintf(s->name, sizeof s->name, "taesd.decoder");
    s->kind = MW_TAESD_DECODE;
    for (size_t k = 0; k < c.ntensors; k++)
        if (!strncmp(c.tensors[k].name, "decoder.", 8)) s->params += (uint64_t)tensor_numel(&c.tensors[k]);
    struct counter cnt = {0, 0, 0};
    struct ops o = counting_ops(&cnt);
    struct arena a;
    arena_init_measure(&a);
    rc = taesd_decode(t, &o, &a, lat, lh, lw, img, NULL, err);
    int64_t shape[4] = {1, t->out_channels, (int64_t)lh * t->factor, (int64_t)lw * t->factor};
    end_stage(s, &cnt, &a, 4, shape);
    arena_destroy(&a);
done:
    free(lat);
    free(img);
    free(t);
    component_close(&c);
    return rc;
}

void mw_report_free(struct mw_report *r)
{
    free(r->tensors);
    memset(r, 0, sizeof *r);
}

const struct mw_stage *mw_stage(const struct mw_report *r, const char *name)
{
    for (int i = 0; i < r->nstages; i++)
        if (!strcmp(r->stages[i].name, name)) return &r->stages[i];
    return NULL;
}

const struct mw_tensor *mw_tensor(const struct mw_report *r, const char *name)
{
    for (size_t i = 0; i < r->ntensors; i++)
        if (!strcmp(r->tensors[i].name, name)) return &r->tensors[i];
    return NULL;
}
