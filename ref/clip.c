/* clip.c — CLIP text encoder (transformers' CLIPTextModel and
 * CLIPTextModelWithProjection, src/transformers/models/clip/modeling_clip.py).
 *
 * The graph, one function per box:
 *   embeddings         x = token_embedding[ids] + position_embedding[0..n-1]
 *   self_attention     x = x + out_proj(attn(q_proj(h), k_proj(h), v_proj(h))),  h = layer_norm1(x)
 *   mlp                x = x + fc2(act(fc1(layer_norm2(x))))
 *   final_layer_norm   last = layer_norm(x)
 *   pooling            pooled = last[clip_pool_index(ids)];  text_embeds = text_projection(pooled)
 * Attention is causal (token i sees 0..i; CLIP's _create_4d_causal_attention_mask)
 * with scale head_dim^-0.5. No padding mask: the diffusers pipelines never
 * pass one, so pad tokens are encoded like any other and the UNet sees all n.
 *
 * All arithmetic goes through the ops table; this file only decides shapes
 * and order. Activations live in the arena and are never read here. */
#include "clip.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "load.h"

/* Bounds far above any real CLIP (hidden 1280, 32 layers, 77 positions) that
 * keep every size product of the forward inside int and size_t. */
#define CLIP_MAX_DIM (1 << 16)
#define CLIP_MAX_INTERMEDIATE (1 << 20)
#define CLIP_MAX_LAYERS 1024
#define CLIP_MAX_VOCAB (1 << 26)

/* ---- config ---- */

static int get_int(const struct json *j, const char *key, int64_t def, int64_t lo, int64_t hi, int *out,
                   const char *what, struct os_err *err)
{
    int64_t v;
    if (json_get_int_or(j, key, def, &v, what, err)) return -1;
    if (v < lo || v > hi)
        return os_fail(err, "%s: \"%s\" is %lld; expected %lld to %lld", what, key, (long long)v, (long long)lo,
                       (long long)hi);
    *out = (int)v;
    return 0;
}

/* transformers' CLIPTextConfig says which class the weights belong to in
 * "architectures"; only the projection variant changes the graph. */
static int names_projection(const struct json *config)
{
    const struct json *arch = json_get(config, "architectures");
    if (!arch || arch->type != JSON_ARRAY) return 0;
    for (size_t i = 0; i < arch->len; i++)
        if (arch->items[i].type == JSON_STRING && strcmp(arch->items[i].str, "CLIPTextModelWithProjection") == 0)
            return 1;
    return 0;
}

int clip_config_parse(const struct json *config, const char *what, struct clip_config *cfg, struct os_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (!config || config->type != JSON_OBJECT) return os_fail(err, "%s: must be a JSON object", what);
    /* defaults: CLIPTextConfig.__init__ (configuration_clip.py) */
    if (get_int(config, "hidden_size", 512, 1, CLIP_MAX_DIM, &cfg->hidden, what, err) ||
        get_int(config, "num_attention_heads", 8, 1, CLIP_MAX_DIM, &cfg->heads, what, err) ||
        get_int(config, "num_hidden_layers", 12, 1, CLIP_MAX_LAYERS, &cfg->layers, what, err) ||
        get_int(config, "intermediate_size", 2048, 1, CLIP_MAX_INTERMEDIATE, &cfg->intermediate, what, err) ||
        get_int(config, "vocab_size", 49408, 1, CLIP_MAX_VOCAB, &cfg->vocab, what, err) ||
        get_int(config, "max_position_embeddings", 77, 1, CLIP_MAX_DIM, &cfg->max_pos, what, err) ||
        get_int(config, "projection_dim", 512, 1, CLIP_MAX_DIM, &cfg->projection_dim, what, err) ||
        get_int(config, "eos_token_id", 49407, INT32_MIN, INT32_MAX, &cfg->eos_token_id, what, err))
        return -1;
    if (cfg->hidden % cfg->heads != 0)
        return os_fail(err, "%s: num_attention_heads %d does not divide hidden_size %d", what, cfg->heads,
                       cfg->hidden);

    double eps;
    if (json_get_num_or(config, "layer_norm_eps", 1e-5, &eps, what, err)) return -1;
    if (!(eps >= 0 && eps < 1)) return os_fail(err, "%s: layer_norm_eps %g is not in [0, 1)", what, eps);
    cfg->eps = (float)eps; /* torch's LayerNorm kernel adds eps in float */

    int failed;
    const char *act = json_get_str_or(config, "hidden_act", "quick_gelu", what, err, &failed);
    if (failed) return -1;
    /* transformers' ACT2FN: "gelu" is the exact erf form (GELUActivation),
     * "quick_gelu" is x * sigmoid(1.702 x) (QuickGELUActivation). */
    if (strcmp(act, "gelu") == 0) cfg->act = ACT_GELU;
    else if (strcmp(act, "quick_gelu") == 0) cfg->act = ACT_QUICK_GELU;
    else return os_fail(err, "%s: hidden_act \"%s\" is not supported (CLIP text encoders use gelu or quick_gelu)", what, act);

    cfg->with_projection = names_projection(config);
    return 0;
}

/* ---- weights ---- */

static void bind_layer(struct clip_layer *L, struct component *c, const struct clip_config *cfg, int i,
                       struct os_err *err)
{
    const int64_t D = cfg->hidden, I = cfg->intermediate;
    const char *p = "text_model.encoder.layers";
    L->layer_norm1_weight = load1(c, err, D, "%s.%d.layer_norm1.weight", p, i);
    L->layer_norm1_bias = load1(c, err, D, "%s.%d.layer_norm1.bias", p, i);
    L->q_proj_weight = load2(c, err, D, D, "%s.%d.self_attn.q_proj.weight", p, i);
    L->q_proj_bias = load1(c, err, D, "%s.%d.self_attn.q_proj.bias", p, i);
    L->k_proj_weight = load2(c, err, D, D, "%s.%d.self_attn.k_proj.weight", p, i);
    L->k_proj_bias = load1(c, err, D, "%s.%d.self_attn.k_proj.bias", p, i);
    L->v_proj_weight = load2(c, err, D, D, "%s.%d.self_attn.v_proj.weight", p, i);
    L->v_proj_bias = load1(c, err, D, "%s.%d.self_attn.v_proj.bias", p, i);
    L->out_proj_weight = load2(c, err, D, D, "%s.%d.self_attn.out_proj.weight", p, i);
    L->out_proj_bias = load1(c, err, D, "%s.%d.self_attn.out_proj.bias", p, i);
    L->layer_norm2_weight = load1(c, err, D, "%s.%d.layer_norm2.weight", p, i);
    L->layer_norm2_bias = load1(c, err, D, "%s.%d.layer_norm2.bias", p, i);
    L->fc1_weight = load2(c, err, I, D, "%s.%d.mlp.fc1.weight", p, i);
    L->fc1_bias = load1(c, err, I, "%s.%d.mlp.fc1.bias", p, i);
    L->fc2_weight = load2(c, err, D, I, "%s.%d.mlp.fc2.weight", p, i);
    L->fc2_bias = load1(c, err, D, "%s.%d.mlp.fc2.bias", p, i);
}

int clip_load(struct clip *m, struct component *c, struct os_err *err)
{
    memset(m, 0, sizeof *m);
    err->msg[0] = '\0'; /* load.h keeps the first error: start clean */
    const char *what = c->config_path ? c->config_path : c->name;
    if (!c->config) return os_fail(err, "%s: no config.json was read for the text encoder", c->name);
    if (clip_config_parse(c->config, what, &m->cfg, err)) return -1;
    snprintf(m->name, sizeof m->name, "%s", c->name);

    const struct clip_config *cfg = &m->cfg;
    const int64_t D = cfg->hidden;
    m->token_embedding = load2(c, err, cfg->vocab, D, "text_model.embeddings.token_embedding.weight");
    m->position_embedding = load2(c, err, cfg->max_pos, D, "text_model.embeddings.position_embedding.weight");
    m->layers = OS_CALLOC((size_t)cfg->layers, sizeof *m->layers);
    if (!m->layers) {
        os_fail(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < cfg->layers; i++) bind_layer(&m->layers[i], c, cfg, i, err);
    m->final_layer_norm_weight = load1(c, err, D, "text_model.final_layer_norm.weight");
    m->final_layer_norm_bias = load1(c, err, D, "text_model.final_layer_norm.bias");
    /* A config naming CLIPTextModelWithProjection requires the projection; a
     * checkpoint that carries one without saying so gets it used too. */
    if (component_get(c, "text_projection.weight")) m->cfg.with_projection = 1;
    if (m->cfg.with_projection)
        m->text_projection = load2(c, err, cfg->projection_dim, D, "text_projection.weight");
    if (err->msg[0]) goto fail;

    /* transformers registers position_ids as a non-persistent buffer, but
     * checkpoints written by older versions still contain it. */
    static const char *const ignore[] = {"text_model.embeddings.position_ids", NULL};
    if (component_check_unused(c, ignore, err)) goto fail;

    m->position_ids = OS_MALLOC((size_t)cfg->max_pos * sizeof *m->position_ids);
    if (!m->position_ids) {
        os_fail(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < cfg->max_pos; i++) m->position_ids[i] = i;
    return 0;
fail:
    clip_free(m);
    return -1;
}

void clip_free(struct clip *m)
{
    if (!m) return;
    OS_FREE(m->layers);
    OS_FREE(m->position_ids);
    memset(m, 0, sizeof *m);
}

/* ---- forward ---- */

int clip_pool_index(const struct clip_config *cfg, const int32_t *ids, int n)
{
    int best = 0;
    if (cfg->eos_token_id == 2) { /* legacy configs: the end-of-text token is the largest id */
        for (int i = 1; i < n; i++)
            if (ids[i] > ids[best]) best = i;
        return best;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] == cfg->eos_token_id) return i;
    return 0;
}

/* Download a result to the caller's host buffer and show it to the dump hook. */
static void emit(const struct ops *o, const struct clip_out *out, float *host, const float *buf, size_t count,
                 const char *name, int ndim, const int64_t *shape)
{
    if (host) o->download(o, host, buf, count);
    dump_f32(out->dump, name, buf, ndim, shape);
}

static void emit_tokens(const struct clip *m, const struct ops *o, const struct clip_out *out, float *host,
                        const float *buf, int n, const char *suffix)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", m->name, suffix);
    int64_t shape[3] = {1, n, m->cfg.hidden};
    emit(o, out, host, buf, (size_t)n * m->cfg.hidden, name, 3, shape);
}

/* hidden_states[0] = token_embedding(ids) + position_embedding(0..n-1) */
static void embeddings(const struct clip *m, const struct ops *o, struct arena *a, float *x, const int32_t *ids,
                       int n)
{
    const int D = m->cfg.hidden;
    float *tok = arena_alloc(a, (size_t)n * D);
    float *pos = arena_alloc(a, (size_t)n * D);
    o->embedding(o, tok, m->token_embedding, ids, n, D);
    o->embedding(o, pos, m->position_embedding, m->position_ids, n, D);
    o->add(o, x, tok, pos, (size_t)n * D);
    arena_free(a, pos);
    arena_free(a, tok);
}

/* x += out_proj(softmax(q k^T / sqrt(head_dim) + causal mask) v), on layer_norm1(x) */
static void self_attention(const struct clip *m, const struct clip_layer *L, const struct ops *o, struct arena *a,
                           float *x, int n)
{
    const int D = m->cfg.hidden, H = m->cfg.heads;
    const size_t nD = (size_t)n * D;
    float *h = arena_alloc(a, nD);
    o->layer_norm(o, h, x, L->layer_norm1_weight, L->layer_norm1_bias, n, D, m->cfg.eps);
    float *q = arena_alloc(a, nD), *k = arena_alloc(a, nD), *v = arena_alloc(a, nD);
    o->linear(o, q, h, L->q_proj_weight, L->q_proj_bias, NULL, n, D, D);
    o->linear(o, k, h, L->k_proj_weight, L->k_proj_bias, NULL, n, D, D);
    o->linear(o, v, h, L->v_proj_weight, L->v_proj_bias, NULL, n, D, D);
    struct attn_shape s = {
        .nq = n, .nk = n, .heads = H, .head_dim = D / H,
        .ldq = D, .ldk = D, .ldv = D, .ldo = D,
        .causal = 1,
        .scale = (float)(1.0 / sqrt((double)(D / H))), /* CLIPAttention.scale = head_dim**-0.5 */
    };
    float *ctx = arena_alloc(a, nD);
    o->attention(o, ctx, q, k, v, &s);
    o->linear(o, x, ctx, L->out_proj_weight, L->out_proj_bias, x, n, D, D);
    arena_free(a, ctx);
    arena_free(a, v);
    arena_free(a, k);
    arena_free(a, q);
    arena_free(a, h);
}

/* x += fc2(act(fc1(layer_norm2(x)))) */
static void mlp(const struct clip *m, const struct clip_layer *L, const struct ops *o, struct arena *a, float *x,
                int n)
{
    const int D = m->cfg.hidden, I = m->cfg.intermediate;
    float *h = arena_alloc(a, (size_t)n * D);
    o->layer_norm(o, h, x, L->layer_norm2_weight, L->layer_norm2_bias, n, D, m->cfg.eps);
    float *up = arena_alloc(a, (size_t)n * I), *g = arena_alloc(a, (size_t)n * I);
    o->linear(o, up, h, L->fc1_weight, L->fc1_bias, NULL, n, D, I);
    o->act(o, g, up, (size_t)n * I, m->cfg.act);
    o->linear(o, x, g, L->fc2_weight, L->fc2_bias, x, n, I, D);
    arena_free(a, g);
    arena_free(a, up);
    arena_free(a, h);
}

int clip_forward(const struct clip *m, const struct ops *o, struct arena *a, const int32_t *ids, int n,
                 const struct clip_out *out, struct os_err *err)
{
    const struct clip_config *cfg = &m->cfg;
    static const struct clip_out none = {0};
    if (!out) out = &none;
    if (n < 1 || n > cfg->max_pos)
        return os_fail(err, "%s: %d tokens; the model takes 1 to %d (max_position_embeddings)", m->name, n,
                       cfg->max_pos);
    if (!ids) return os_fail(err, "%s: no token ids given", m->name);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= cfg->vocab)
            return os_fail(err, "%s: token id %ld at position %d is outside the vocabulary (vocab_size %d)",
                           m->name, (long)ids[i], i, cfg->vocab);

    const int D = cfg->hidden;
    const size_t nD = (size_t)n * D;
    char name[160];
    float *x = arena_alloc(a, nD); /* the residual stream */
    embeddings(m, o, a, x, ids, n);
    emit_tokens(m, o, out, out->hidden_states, x, n, "hidden_states.0");
    for (int i = 0; i < cfg->layers; i++) {
        self_attention(m, &m->layers[i], o, a, x, n);
        mlp(m, &m->layers[i], o, a, x, n);
        snprintf(name, sizeof name, "hidden_states.%d", i + 1);
        emit_tokens(m, o, out, out->hidden_states ? out->hidden_states + (size_t)(i + 1) * nD : NULL, x, n, name);
    }

    float *last = arena_alloc(a, nD);
    o->layer_norm(o, last, x, m->final_layer_norm_weight, m->final_layer_norm_bias, n, D, cfg->eps);
    emit_tokens(m, o, out, out->last_hidden, last, n, "last_hidden_state");

    /* pooling reads a row of `last` in place; the ids are on the host */
    const float *pooled = last + (size_t)clip_pool_index(cfg, ids, n) * D;
    int64_t shape[2] = {1, D};
    if (!cfg->with_projection) {
        snprintf(name, sizeof name, "%s.pooler_output", m->name);
        emit(o, out, out->pooled, pooled, (size_t)D, name, 2, shape);
    } else {
        /* CLIPTextModelWithProjection's output has text_embeds instead of pooler_output */
        if (out->pooled) o->download(o, out->pooled, pooled, (size_t)D);
        const int P = cfg->projection_dim;
        float *e = arena_alloc(a, (size_t)P);
        o->linear(o, e, pooled, m->text_projection, NULL, NULL, 1, D, P);
        shape[1] = P;
        snprintf(name, sizeof name, "%s.text_embeds", m->name);
        emit(o, out, out->text_embeds, e, (size_t)P, name, 2, shape);
        arena_free(a, e);
    }
    arena_free(a, last);
    arena_free(a, x);
    return 0;
}
