/* clip: the text encoders against the conformance suite (every hidden state,
 * last_hidden_state, pooler_output, text_embeds of every case, fp32 and fp16
 * weights), the measure-then-run arena protocol, the dump names, causality,
 * exact bf16 weights, the pooling rule, and load/forward errors on tiny
 * models written to a temporary directory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../ref/clip.h"
#include "lib/check.h"
#include "lib/conformance.h"
#include "lib/dumps.h"

/* ---- the measure-then-run protocol ---- */

struct outputs {
    float *hidden, *last, *pooled, *embeds;
    struct clip_out out;
};

static void outputs_alloc(struct outputs *r, const struct clip *m, int n)
{
    const struct clip_config *cfg = &m->cfg;
    size_t nD = (size_t)n * cfg->hidden;
    r->hidden = malloc((size_t)(cfg->layers + 1) * nD * sizeof(float));
    r->last = malloc(nD * sizeof(float));
    r->pooled = malloc((size_t)cfg->hidden * sizeof(float));
    r->embeds = malloc((size_t)cfg->projection_dim * sizeof(float));
    /* NaN sentinels: the measuring pass must leave them alone */
    for (size_t i = 0; i < (size_t)(cfg->layers + 1) * nD; i++) r->hidden[i] = NAN;
    for (size_t i = 0; i < nD; i++) r->last[i] = NAN;
    for (int i = 0; i < cfg->hidden; i++) r->pooled[i] = NAN;
    for (int i = 0; i < cfg->projection_dim; i++) r->embeds[i] = NAN;
    memset(&r->out, 0, sizeof r->out);
    r->out.hidden_states = r->hidden;
    r->out.last_hidden = r->last;
    r->out.pooled = r->pooled;
    r->out.text_embeds = m->cfg.with_projection ? r->embeds : NULL;
}

static void outputs_free(struct outputs *r)
{
    free(r->hidden);
    free(r->last);
    free(r->pooled);
    free(r->embeds);
}

static int all_nan(const float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isnan(p[i])) return 0;
    return 1;
}

/* Measure on ops_null, then run for real in an arena of exactly the
 * measured size. Checks are printed under `what`. Returns 0 if the real run
 * happened. */
static int run_protocol(const struct clip *m, const int32_t *ids, int n, struct outputs *r,
                        const struct dump_hook *dump, const char *what)
{
    struct os_err err = {{0}};
    struct arena a;
    arena_init_measure(&a);
    int rc = clip_forward(m, ops_null(), &a, ids, n, &r->out, &err);
    size_t peak = a.peak;
    int left = (int)a.nblocks;
    arena_destroy(&a);
    const struct clip_config *cfg = &m->cfg;
    size_t nD = (size_t)n * cfg->hidden;
    int untouched = all_nan(r->hidden, (size_t)(cfg->layers + 1) * nD) && all_nan(r->last, nD) &&
                    all_nan(r->pooled, (size_t)cfg->hidden) && all_nan(r->embeds, (size_t)cfg->projection_dim);
    if (!check(rc == 0 && peak > 0 && left == 0 && untouched,
               "%s: measuring pass on ops_null: %zu bytes peak, arena empty after, host outputs untouched%s%s", what,
               peak, rc ? ": " : "", rc ? err.msg : ""))
        return -1;
    if (!check(arena_init(&a, ops_ref(), peak, &err) == 0, "%s: arena of the measured size", what)) return -1;
    struct clip_out out = r->out;
    out.dump = dump;
    rc = clip_forward(m, ops_ref(), &a, ids, n, &out, &err);
    check(rc == 0 && a.peak == peak && a.nblocks == 0,
          "%s: real run fits the measured arena exactly (peak %zu of %zu), arena empty after%s%s", what, a.peak, peak,
          rc ? ": " : "", rc ? err.msg : "");
    arena_destroy(&a);
    return rc;
}

/* ---- conformance ---- */

struct encoder {
    char key[128]; /* model/component/variant */
    struct model_dir *md;
    struct component c;
    struct clip m;
    int ok;
};

static struct encoder encoders[8];
static int nencoders;

static struct encoder *get_encoder(const struct conf_suite *s, const char *model, const char *comp, int fp16)
{
    char key[128];
    snprintf(key, sizeof key, "%s/%s/%s", model, comp, fp16 ? "fp16" : "fp32");
    for (int i = 0; i < nencoders; i++)
        if (strcmp(encoders[i].key, key) == 0) return encoders[i].ok ? &encoders[i] : NULL;
    if (nencoders == 8) return NULL;
    struct encoder *e = &encoders[nencoders++];
    snprintf(e->key, sizeof e->key, "%s", key);
    struct os_err err = {{0}};
    e->ok = model_dir_open(conf_path(s, model), &e->md, &err) == 0 &&
            component_open(e->md, comp, "config.json", 1, fp16 ? VARIANT_FP16 : VARIANT_FP32, &e->c, &err) == 0 &&
            clip_load(&e->m, &e->c, &err) == 0;
    if (!check(e->ok, "load %s%s%s", key, e->ok ? "" : ": ", e->ok ? "" : err.msg)) return NULL;
    const struct tensor *t = e->m.token_embedding;
    check(t->dtype == (fp16 ? DT_F16 : DT_F32), "%s: weights are %s as stored", key, dtype_name(t->dtype));
    return e;
}

static void close_encoders(void)
{
    for (int i = 0; i < nencoders; i++) {
        clip_free(&encoders[i].m);
        component_close(&encoders[i].c);
        model_dir_close(encoders[i].md);
    }
    nencoders = 0;
}

/* One encoder of one case: every "<comp>." tensor the manifest lists. */
static void conformance_encoder(const struct conf_suite *s, const struct json *c, const struct st_file *f,
                                const char *comp, const char *tokenizer)
{
    const char *cname = conf_case_name(c);
    const char *model = conf_str(c, "model");
    const char *variant = conf_str(c, "weights_variant");
    int fp16 = variant && strcmp(variant, "fp16") == 0;
    struct encoder *e = get_encoder(s, model, comp, fp16);
    if (!e) return;
    const struct clip *m = &e->m;

    const struct json *idl = json_get(json_get(c, "input_ids"), tokenizer);
    if (!check(idl && idl->type == JSON_ARRAY && idl->len >= 1 && idl->len <= 77, "%s: manifest has %s ids", cname,
               tokenizer))
        return;
    int n = (int)idl->len;
    int32_t ids[77];
    for (int i = 0; i < n; i++) ids[i] = (int32_t)idl->items[i].integer;

    struct outputs r;
    outputs_alloc(&r, m, n);
    struct dumps ds = {.o = ops_ref()};
    struct dump_hook hook = {dumps_fn, &ds};
    char what[160];
    snprintf(what, sizeof what, "%s %s", cname, comp);
    if (run_protocol(m, ids, n, &r, &hook, what) != 0) {
        outputs_free(&r);
        dumps_clear(&ds);
        return;
    }

    /* Compare every tensor of this encoder the manifest lists; each must also
     * have come through the dump hook with the manifest's name, shape and the
     * values of the host buffers. */
    const struct json *tensors = json_get(c, "tensors");
    size_t plen = strlen(comp);
    size_t nD = (size_t)n * m->cfg.hidden;
    int listed = 0, dump_ok = 1;
    char bad[160] = "";
    for (size_t i = 0; tensors && i < tensors->len; i++) {
        const char *name = tensors->keys[i];
        if (strncmp(name, comp, plen) != 0 || name[plen] != '.') continue;
        const char *field = name + plen + 1;
        const float *got = NULL;
        size_t cnt = 0;
        int layer;
        char tail;
        if (sscanf(field, "hidden_states.%d%c", &layer, &tail) == 1 && layer >= 0 && layer <= m->cfg.layers) {
            got = r.hidden + (size_t)layer * nD;
            cnt = nD;
        } else if (strcmp(field, "last_hidden_state") == 0) {
            got = r.last;
            cnt = nD;
        } else if (strcmp(field, "pooler_output") == 0) {
            got = r.pooled;
            cnt = (size_t)m->cfg.hidden;
        } else if (strcmp(field, "text_embeds") == 0 && m->cfg.with_projection) {
            got = r.embeds;
            cnt = (size_t)m->cfg.projection_dim;
        }
        if (!check(got != NULL, "%s %s: an output of clip_forward", cname, name)) continue;
        listed++;
        conf_compare(s, c, f, name, got, cnt);

        const struct dumped *d = dumps_find(&ds, name);
        const struct json *shape = json_get(json_get(tensors, name), "shape");
        int same = d && d->data && shape && shape->type == JSON_ARRAY && (int)shape->len == d->ndim && d->n == cnt &&
                   memcmp(d->data, got, cnt * sizeof *got) == 0;
        for (int k = 0; same && k < d->ndim; k++) same = shape->items[k].integer == d->shape[k];
        if (!same && dump_ok) snprintf(bad, sizeof bad, " (%s differs or is missing)", name);
        dump_ok &= same;
    }
    check(dump_ok && !ds.overflow && ds.n == listed,
          "%s %s: dump hook showed exactly the %d manifest tensors, same shapes and values as the outputs%s", cname,
          comp, listed, bad);
    outputs_free(&r);
    dumps_clear(&ds);
}

static void conformance(void)
{
    struct conf_suite s;
    if (conf_open(&s) != 0) return;
    int cases = 0;
    for (size_t i = 0; i < conf_ncases(&s); i++) {
        const struct json *c = conf_case(&s, i);
        const struct json *tensors = json_get(c, "tensors");
        if (!json_get(tensors, "text_encoder.hidden_states.0")) continue;
        struct st_file *f = conf_case_file(&s, c);
        if (!f) continue;
        cases++;
        conformance_encoder(&s, c, f, "text_encoder", "tokenizer");
        if (json_get(tensors, "text_encoder_2.hidden_states.0"))
            conformance_encoder(&s, c, f, "text_encoder_2", "tokenizer_2");
        st_close(f);
    }
    check(cases == (int)conf_ncases(&s), "every case (%d of %zu) has text encoder outputs and was run", cases,
          conf_ncases(&s));
    close_encoders();
    conf_close(&s);
}

/* ---- tiny models written to a temporary directory ---- */

enum tiny_flaw {
    TINY_OK,
    TINY_BAD_SHAPE,    /* layers.1.mlp.fc1.weight is [I, D-1] */
    TINY_EXTRA,        /* a tensor no config explains */
    TINY_MISSING,      /* no final_layer_norm.bias */
    TINY_POSITION_IDS, /* the int64 position_ids buffer older exporters keep: fine */
    TINY_NO_PROJ,      /* config says WithProjection, no text_projection.weight */
};

#define T_D 8
#define T_H 2
#define T_L 2
#define T_I 16
#define T_V 64
#define T_P 4
#define T_POS 8

static uint32_t lcg_state;
static float rnd(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (float)((lcg_state >> 8) & 0xffff) / 32768.0f - 1.0f; /* [-1, 1) in steps of 2^-15 */
}

/* Add a [d0, d1] (d1 = 0: [d0]) tensor of pseudo-random values; bf16 when
 * asked (the values are multiples of 2^-15 in [-1, 1): those with at most 8
 * significant bits survive bf16 exactly, so the f32 twin is built from the
 * rounded values). */
static int add_tensor(struct st_writer *w, const char *name, int64_t d0, int64_t d1, int bf16, struct os_err *err)
{
    int64_t shape[2] = {d0, d1};
    int ndim = d1 ? 2 : 1;
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    float *v = malloc(n * sizeof *v);
    uint16_t *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) {
        h[i] = f32_to_bf16(rnd());
        v[i] = bf16_to_f32(h[i]);
    }
    int rc = bf16 ? st_writer_add(w, name, DT_BF16, ndim, shape, h, err)
                  : st_writer_add(w, name, DT_F32, ndim, shape, v, err);
    free(v);
    free(h);
    return rc;
}

static int write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (!fp) return -1;
    fputs(text, fp);
    return fclose(fp);
}

/* Write <dir>/model_index.json, <dir>/text_encoder/{config.json,model.safetensors}. */
static int write_tiny(const char *dir, enum tiny_flaw flaw, int bf16, int projection)
{
    char path[512];
    struct os_err err = {{0}};
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    if (write_text(path, "{\"_class_name\": \"StableDiffusionPipeline\", \"text_encoder\": [\"transformers\", "
                         "\"CLIPTextModel\"]}\n"))
        return -1;
    snprintf(path, sizeof path, "%s/text_encoder", dir);
    if (access(path, F_OK) != 0 && mkdir(path, 0700) != 0) return -1;
    char config[1024];
    snprintf(config, sizeof config,
             "{\"architectures\": [\"%s\"], \"hidden_size\": %d, \"num_attention_heads\": %d, "
             "\"num_hidden_layers\": %d, \"intermediate_size\": %d, \"vocab_size\": %d, "
             "\"max_position_embeddings\": %d, \"projection_dim\": %d, \"hidden_act\": \"gelu\", "
             "\"layer_norm_eps\": 1e-05, \"eos_token_id\": 2}\n",
             projection || flaw == TINY_NO_PROJ ? "CLIPTextModelWithProjection" : "CLIPTextModel", T_D, T_H, T_L, T_I,
             T_V, T_POS, T_P);
    snprintf(path, sizeof path, "%s/text_encoder/config.json", dir);
    if (write_text(path, config)) return -1;

    lcg_state = 12345;
    struct st_writer *w = st_writer_new();
    char name[160];
    int rc = add_tensor(w, "text_model.embeddings.token_embedding.weight", T_V, T_D, bf16, &err) |
             add_tensor(w, "text_model.embeddings.position_embedding.weight", T_POS, T_D, bf16, &err);
    static const char *const lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"};
    for (int l = 0; l < T_L; l++) {
        const char *p = "text_model.encoder.layers";
        for (int j = 0; j < 4; j++) {
            snprintf(name, sizeof name, "%s.%d.%s.weight", p, l, lin[j]);
            rc |= add_tensor(w, name, T_D, T_D, bf16, &err);
            snprintf(name, sizeof name, "%s.%d.%s.bias", p, l, lin[j]);
            rc |= add_tensor(w, name, T_D, 0, bf16, &err);
        }
        for (int j = 1; j <= 2; j++) {
            snprintf(name, sizeof name, "%s.%d.layer_norm%d.weight", p, l, j);
            rc |= add_tensor(w, name, T_D, 0, bf16, &err);
            snprintf(name, sizeof name, "%s.%d.layer_norm%d.bias", p, l, j);
            rc |= add_tensor(w, name, T_D, 0, bf16, &err);
        }
        snprintf(name, sizeof name, "%s.%d.mlp.fc1.weight", p, l);
        rc |= add_tensor(w, name, T_I, flaw == TINY_BAD_SHAPE && l == 1 ? T_D - 1 : T_D, bf16, &err);
        snprintf(name, sizeof name, "%s.%d.mlp.fc1.bias", p, l);
        rc |= add_tensor(w, name, T_I, 0, bf16, &err);
        snprintf(name, sizeof name, "%s.%d.mlp.fc2.weight", p, l);
        rc |= add_tensor(w, name, T_D, T_I, bf16, &err);
        snprintf(name, sizeof name, "%s.%d.mlp.fc2.bias", p, l);
        rc |= add_tensor(w, name, T_D, 0, bf16, &err);
    }
    rc |= add_tensor(w, "text_model.final_layer_norm.weight", T_D, 0, bf16, &err);
    if (flaw != TINY_MISSING) rc |= add_tensor(w, "text_model.final_layer_norm.bias", T_D, 0, bf16, &err);
    if (projection) rc |= add_tensor(w, "text_projection.weight", T_P, T_D, bf16, &err);
    if (flaw == TINY_EXTRA) rc |= add_tensor(w, "text_model.encoder.layers.2.mlp.fc1.weight", T_I, T_D, bf16, &err);
    if (flaw == TINY_POSITION_IDS) {
        int64_t pos[T_POS], shape[2] = {1, T_POS};
        for (int i = 0; i < T_POS; i++) pos[i] = i;
        rc |= st_writer_add(w, "text_model.embeddings.position_ids", DT_I64, 2, shape, pos, &err);
    }
    snprintf(path, sizeof path, "%s/text_encoder/model.safetensors", dir);
    if (!rc) rc = st_writer_write(w, path, &err);
    st_writer_free(w);
    return rc ? -1 : 0;
}

struct tiny {
    struct model_dir *md;
    struct component c;
    struct clip m;
};

/* 0 and a loaded model, or -1 with err set. */
static int open_tiny(const char *dir, struct tiny *t, struct os_err *err)
{
    memset(t, 0, sizeof *t);
    if (model_dir_open(dir, &t->md, err)) return -1;
    if (component_open(t->md, "text_encoder", "config.json", 1, VARIANT_AUTO, &t->c, err)) {
        model_dir_close(t->md);
        return -1;
    }
    if (clip_load(&t->m, &t->c, err)) {
        component_close(&t->c);
        model_dir_close(t->md);
        return -1;
    }
    return 0;
}

static void close_tiny(struct tiny *t)
{
    clip_free(&t->m);
    component_close(&t->c);
    model_dir_close(t->md);
}

static void expect_load_error(const char *dir, enum tiny_flaw flaw, const char *what, const char *needle1,
                              const char *needle2)
{
    struct os_err err = {{0}};
    struct tiny t;
    if (!check(write_tiny(dir, flaw, 0, 0) == 0, "write tiny model (%s)", what)) return;
    int rc = open_tiny(dir, &t, &err);
    if (rc == 0) close_tiny(&t);
    check(rc == -1 && strstr(err.msg, needle1) && strstr(err.msg, needle2), "%s: \"%s\"", what, err.msg);
}

static void expect_config_error(const char *json, const char *what, const char *needle)
{
    struct os_err err = {{0}};
    struct json *j = json_parse(json, strlen(json), "config.json", &err);
    struct clip_config cfg;
    int rc = j ? clip_config_parse(j, "text_encoder/config.json", &cfg, &err) : 0;
    check(j && rc == -1 && strstr(err.msg, needle) && strstr(err.msg, "text_encoder/config.json"), "%s: \"%s\"",
          what, err.msg);
    json_free(j);
}

static void config_errors(void)
{
    expect_config_error("{\"hidden_size\": 24, \"num_attention_heads\": 5}", "heads not dividing hidden",
                        "num_attention_heads 5 does not divide hidden_size 24");
    expect_config_error("{\"hidden_act\": \"gelu_new\"}", "unknown hidden_act", "hidden_act \"gelu_new\"");
    expect_config_error("{\"hidden_act\": 3}", "hidden_act not a string", "hidden_act");
    expect_config_error("{\"num_hidden_layers\": 0}", "zero layers", "num_hidden_layers");
    expect_config_error("{\"hidden_size\": -8}", "negative hidden_size", "hidden_size");
    expect_config_error("{\"intermediate_size\": 1e30}", "non-integer intermediate_size", "intermediate_size");
    expect_config_error("{\"intermediate_size\": 1099511627776}", "absurd intermediate_size",
                        "\"intermediate_size\" is 1099511627776; expected 1 to 1048576");
    expect_config_error("{\"layer_norm_eps\": -1}", "negative eps", "layer_norm_eps");
    expect_config_error("[1, 2]", "config not an object", "object");

    /* defaults are CLIPTextConfig's; the SD 2.x config keys are read as written */
    struct os_err err = {{0}};
    const char *sd2 = "{\"architectures\": [\"CLIPTextModel\"], \"hidden_act\": \"gelu\", \"hidden_size\": 1024, "
                      "\"intermediate_size\": 4096, \"num_attention_heads\": 16, \"num_hidden_layers\": 23, "
                      "\"projection_dim\": 512, \"eos_token_id\": 2}";
    struct json *j = json_parse(sd2, strlen(sd2), "sd2", &err);
    struct clip_config cfg;
    int rc = j ? clip_config_parse(j, "sd2", &cfg, &err) : -1;
    check(rc == 0 && cfg.hidden == 1024 && cfg.heads == 16 && cfg.layers == 23 && cfg.intermediate == 4096 &&
              cfg.act == ACT_GELU && cfg.vocab == 49408 && cfg.max_pos == 77 && cfg.eps == 1e-5f &&
              cfg.eos_token_id == 2 && !cfg.with_projection,
          "SD 2.x text encoder config (absent keys take CLIPTextConfig defaults)");
    json_free(j);
    j = json_parse("{}", 2, "empty", &err);
    rc = j ? clip_config_parse(j, "empty", &cfg, &err) : -1;
    check(rc == 0 && cfg.hidden == 512 && cfg.heads == 8 && cfg.layers == 12 && cfg.intermediate == 2048 &&
              cfg.act == ACT_QUICK_GELU && cfg.projection_dim == 512 && cfg.eos_token_id == 49407,
          "empty config gives CLIPTextConfig's defaults");
    json_free(j);
    const char *xl2 = "{\"architectures\": [\"CLIPTextModelWithProjection\"], \"projection_dim\": 1280}";
    j = json_parse(xl2, strlen(xl2), "xl2", &err);
    rc = j ? clip_config_parse(j, "xl2", &cfg, &err) : -1;
    check(rc == 0 && cfg.with_projection && cfg.projection_dim == 1280, "CLIPTextModelWithProjection config");
    json_free(j);
}

static void pooling_rule(void)
{
    struct clip_config legacy = {.eos_token_id = 2}, modern = {.eos_token_id = 49407};
    const int32_t prompt[6] = {49406, 320, 2368, 49407, 0, 0};
    const int32_t xl_pad[5] = {49406, 320, 49407, 49407, 49407};
    const int32_t with_two[5] = {49406, 2, 2, 49407, 0};
    const int32_t extra_vocab[5] = {49406, 49410, 320, 49407, 0}; /* a textual-inversion token above 49407 */
    const int32_t no_eos[3] = {49406, 320, 5};
    check(clip_pool_index(&legacy, prompt, 6) == 3, "legacy eos_token_id 2: pool at the first largest id (EOS)");
    check(clip_pool_index(&legacy, xl_pad, 5) == 2, "legacy: EOS padding pools at the first EOS");
    check(clip_pool_index(&legacy, with_two, 5) == 3, "legacy: token id 2 is not looked for");
    check(clip_pool_index(&legacy, extra_vocab, 5) == 1, "legacy: argmax even when an added token exceeds 49407");
    check(clip_pool_index(&modern, extra_vocab, 5) == 3, "eos_token_id 49407: pool at the first EOS");
    check(clip_pool_index(&modern, xl_pad, 5) == 2, "eos_token_id 49407: first of several EOS");
    check(clip_pool_index(&modern, no_eos, 3) == 0, "eos_token_id 49407, no EOS: position 0 (torch argmax of zeros)");
}

/* Forward on a loaded tiny model into fresh outputs (measured arena). */
static int tiny_run(const struct clip *m, const int32_t *ids, int n, struct outputs *r, const char *what)
{
    outputs_alloc(r, m, n);
    return run_protocol(m, ids, n, r, NULL, what);
}

static void tiny_models(void)
{
    char dir[] = "/tmp/onestep_test_clip_XXXXXX";
    if (!check(mkdtemp(dir) != NULL, "temporary directory")) return;
    struct os_err err = {{0}};
    struct tiny t;

    /* ---- a good model: loads, errors on bad ids, is causal ---- */
    int rc_t = write_tiny(dir, TINY_OK, 0, 1);
    if (check(rc_t == 0, "write tiny model with projection")) {
        rc_t = open_tiny(dir, &t, &err);
        check(rc_t == 0, "tiny model loads%s%s", rc_t ? ": " : "", rc_t ? err.msg : "");
    }
    if (rc_t == 0) {
        const struct clip *m = &t.m;
        check(m->cfg.with_projection && m->text_projection && m->cfg.act == ACT_GELU, "tiny model: projection bound");
        int32_t ids[T_POS] = {1, 7, 3, 63, 0, 0, 0, 0};
        struct arena a;
        arena_init_measure(&a);
        struct clip_out none = {0};
        int32_t bad[3] = {1, T_V, 2};
        int rc = clip_forward(m, ops_null(), &a, bad, 3, &none, &err);
        check(rc == -1 && strstr(err.msg, "token id 64 at position 1") && strstr(err.msg, "vocab_size 64") &&
                  a.nblocks == 0 && a.peak == 0,
              "id = vocab_size is an error before any allocation: \"%s\"", err.msg);
        bad[1] = -5;
        rc = clip_forward(m, ops_null(), &a, bad, 3, &none, &err);
        check(rc == -1 && strstr(err.msg, "token id -5"), "negative id: \"%s\"", err.msg);
        rc = clip_forward(m, ops_null(), &a, ids, T_POS + 1, &none, &err);
        check(rc == -1 && strstr(err.msg, "9 tokens") && strstr(err.msg, "max_position_embeddings"),
              "more tokens than positions: \"%s\"", err.msg);
        rc = clip_forward(m, ops_null(), &a, ids, 0, &none, &err);
        check(rc == -1 && strstr(err.msg, "0 tokens"), "zero tokens: \"%s\"", err.msg);
        arena_destroy(&a);

        /* Causality: changing token 5 leaves every hidden state of tokens
         * 0..4 bit-identical and changes token 5's. */
        struct outputs r1, r2;
        int32_t ids2[T_POS];
        memcpy(ids2, ids, sizeof ids);
        ids2[5] = 42;
        if (tiny_run(m, ids, T_POS, &r1, "tiny ids A") == 0 && tiny_run(m, ids2, T_POS, &r2, "tiny ids B") == 0) {
            int prefix_same = 1, changed = 1;
            for (int l = 1; l <= T_L; l++) {
                const float *h1 = r1.hidden + (size_t)l * T_POS * T_D, *h2 = r2.hidden + (size_t)l * T_POS * T_D;
                prefix_same &= memcmp(h1, h2, 5 * T_D * sizeof(float)) == 0;
                changed &= memcmp(h1 + 5 * T_D, h2 + 5 * T_D, T_D * sizeof(float)) != 0;
            }
            check(prefix_same && changed, "causal mask: a later token does not change earlier hidden states");
            /* pooling reads last_hidden at the largest id (63 at position 3) */
            check(memcmp(r1.pooled, r1.last + 3 * T_D, T_D * sizeof(float)) == 0, "pooled = last_hidden[argmax ids]");
            int finite = 1;
            for (int i = 0; i < T_P; i++) finite &= isfinite(r1.embeds[i]);
            check(finite, "text_embeds computed");
            /* a shorter sequence gives the same prefix (positions start at 0) */
            struct outputs r3;
            if (tiny_run(m, ids, 4, &r3, "tiny 4 tokens") == 0) {
                int same = 1;
                for (int l = 0; l <= T_L; l++)
                    same &= memcmp(r1.hidden + (size_t)l * T_POS * T_D, r3.hidden + (size_t)l * 4 * T_D,
                                   4 * T_D * sizeof(float)) == 0;
                check(same, "n = 4 gives the hidden states of the first 4 of 8 tokens");
            }
            outputs_free(&r3);
        }
        outputs_free(&r1);
        outputs_free(&r2);

        /* bf16 weights widen exactly: the same values stored as bf16 give
         * bit-identical results */
        struct tiny tb;
        int rc_b = write_tiny(dir, TINY_OK, 1, 1);
        if (check(rc_b == 0, "write tiny model in bf16")) {
            rc_b = open_tiny(dir, &tb, &err);
            check(rc_b == 0, "bf16 tiny model loads%s%s", rc_b ? ": " : "", rc_b ? err.msg : "");
        }
        if (rc_b == 0) {
            struct outputs rf, rb;
            check(tb.m.token_embedding->dtype == DT_BF16, "weights are bf16 as stored");
            if (tiny_run(&t.m, ids, T_POS, &rf, "tiny f32") == 0 && tiny_run(&tb.m, ids, T_POS, &rb, "tiny bf16") == 0)
                check(memcmp(rf.hidden, rb.hidden, (size_t)(T_L + 1) * T_POS * T_D * sizeof(float)) == 0 &&
                          memcmp(rf.embeds, rb.embeds, T_P * sizeof(float)) == 0,
                      "bf16 weights give the bits of their f32 values");
            outputs_free(&rf);
            outputs_free(&rb);
            close_tiny(&tb);
        }
        close_tiny(&t);
    }

    /* ---- a model without projection leaves text_embeds alone ---- */
    if (check(write_tiny(dir, TINY_OK, 0, 0) == 0, "write tiny model without projection") &&
        check(open_tiny(dir, &t, &err) == 0, "tiny CLIPTextModel loads")) {
        check(!t.m.cfg.with_projection && !t.m.text_projection, "no projection bound");
        int32_t ids[3] = {1, 63, 0};
        struct outputs r;
        outputs_alloc(&r, &t.m, 3);
        r.out.text_embeds = r.embeds; /* given, but there is nothing to write */
        if (run_protocol(&t.m, ids, 3, &r, NULL, "tiny without projection") == 0)
            check(all_nan(r.embeds, T_P) && !isnan(r.pooled[0]), "text_embeds untouched, pooled written");
        outputs_free(&r);
        close_tiny(&t);
    }

    /* ---- load errors ---- */
    expect_load_error(dir, TINY_BAD_SHAPE, "wrong-shape tensor", "text_model.encoder.layers.1.mlp.fc1.weight",
                      "[16, 7], but the text_encoder config implies [16, 8]");
    expect_load_error(dir, TINY_EXTRA, "extra tensor", "text_model.encoder.layers.2.mlp.fc1.weight",
                      "does not use");
    expect_load_error(dir, TINY_MISSING, "missing tensor", "text_model.final_layer_norm.bias", "missing");
    expect_load_error(dir, TINY_NO_PROJ, "WithProjection config without the projection", "text_projection.weight",
                      "missing");
    if (check(write_tiny(dir, TINY_POSITION_IDS, 0, 0) == 0, "write tiny model with position_ids")) {
        int rc = open_tiny(dir, &t, &err);
        check(rc == 0, "a position_ids buffer in the checkpoint is accepted and ignored%s%s", rc ? ": " : "",
              rc ? err.msg : "");
        if (rc == 0) close_tiny(&t);
    }

    char path[512];
    snprintf(path, sizeof path, "%s/text_encoder/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/text_encoder/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/text_encoder", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    config_errors();
    pooling_rule();
    tiny_models();
    conformance();
    conf_worst_notes("worst max|diff| / tolerance per tensor over the text encoder cases:");
    return check_summary();
}
