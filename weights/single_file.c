#include "single_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"

struct single_file {
    struct st_file *file;
    char *config_dir; /* model_index.json, <component>/config.json, tokenizer configs */
    char *vocab_dir;  /* vocab.json + merges.txt, NULL if none was found */
    enum km_family family;
    struct km_component comps[4];
    size_t ncomps;
};

/* ---------------------------------------------------------------- detection */

/* Does any key start with `prefix`? Keys are sorted: look at the first key
 * not below it. */
static int has_prefix(const struct st_file *f, const char *prefix)
{
    size_t lo = 0, hi = f->ntensors, n = strlen(prefix);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(f->tensors[mid].name, prefix) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < f->ntensors && strncmp(f->tensors[lo].name, prefix, n) == 0;
}

enum km_family single_file_detect(const struct st_file *f, const char **text_prefix, struct os_err *err)
{
    *text_prefix = NULL;
    if (!has_prefix(f, "model.diffusion_model.")) {
        if (st_get(f, "conv_in.weight") || st_get(f, "encoder.conv_in.weight") ||
            st_get(f, "text_model.embeddings.token_embedding.weight"))
            os_fail(err,
                    "%s: this is one component of a diffusers model (keys like conv_in.weight), not a single-file "
                    "checkpoint; pass the model directory instead",
                    f->path);
        else
            os_fail(err, "%s: not a Stable Diffusion single-file checkpoint: no model.diffusion_model.* tensors (%zu "
                         "tensors%s%s%s)",
                    f->path, f->ntensors, f->ntensors ? ", the first is \"" : "",
                    f->ntensors ? f->tensors[0].name : "", f->ntensors ? "\"" : "");
        return KM_FAMILY_UNKNOWN;
    }
    int adm = st_get(f, "model.diffusion_model.label_emb.0.0.weight") != NULL;
    if (has_prefix(f, "conditioner.embedders.1.model.transformer.") &&
        has_prefix(f, "conditioner.embedders.0.transformer.text_model."))
        return KM_FAMILY_SDXL;
    if (adm && has_prefix(f, "conditioner.embedders.0.model.")) {
        os_fail(err, "%s: an SDXL refiner checkpoint (one OpenCLIP-bigG text encoder, no CLIP-L); refiners are not "
                     "supported",
                f->path);
        return KM_FAMILY_UNKNOWN;
    }
    /* SD 2.x as CompVis ldm saves it, or as Stability's sgm does */
    if (!adm && has_prefix(f, "cond_stage_model.model.transformer.")) {
        *text_prefix = "cond_stage_model.model.";
        return KM_FAMILY_SD2;
    }
    if (!adm && has_prefix(f, "conditioner.embedders.0.model.transformer.")) {
        *text_prefix = "conditioner.embedders.0.model.";
        return KM_FAMILY_SD2;
    }
    if (has_prefix(f, "cond_stage_model.transformer."))
        os_fail(err, "%s: an SD 1.x checkpoint (CLIP ViT-L text encoder under cond_stage_model.transformer.); SD 1.x "
                     "is not supported (weights/configs has no configs for it)",
                f->path);
    else
        os_fail(err, "%s: unknown checkpoint family: UNet tensors, but no text encoder this loader knows "
                     "(cond_stage_model.model.* for SD 2.x, conditioner.embedders.0/1.* for SDXL)",
                f->path);
    return KM_FAMILY_UNKNOWN;
}

/* ---------------------------------------------------------------- opening */

static int is_dir_with(const char *dir, const char *file)
{
    char *p = path_join(dir, file);
    int ok = p && path_exists(p);
    OS_FREE(p);
    return ok;
}

static int has_vocab(const char *dir)
{
    return dir && *dir && is_dir_with(dir, "vocab.json") && is_dir_with(dir, "merges.txt");
}

/* A config folder name from the file's metadata: plain characters only, so
 * a crafted file cannot point outside the configs directory. */
static int plain_name(const char *s)
{
    if (!s || !*s || strlen(s) > 64 || s[0] == '.') return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return os_strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = OS_MALLOC(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

static int find_vocab(struct single_file *s, const char *path, const struct model_open_opts *opts, struct os_err *err)
{
    const char *given = opts && opts->vocab_dir ? opts->vocab_dir : getenv("ONESTEP_VOCAB");
    if (given && *given) {
        if (!has_vocab(given))
            return os_fail(err, "%s: no vocab.json and merges.txt there (the tokenizer vocabulary for single-file "
                                "checkpoints)",
                           given);
        s->vocab_dir = os_strdup(given);
        return s->vocab_dir ? 0 : os_fail(err, "out of memory");
    }
    char *dir = dir_of(path);
    char *beside = dir ? path_join(dir, "clip-tokenizer") : NULL;
    OS_FREE(dir);
    if (!beside) return os_fail(err, "out of memory");
    const char *candidates[] = {beside, "weights/clip-tokenizer", "../shared/clip-tokenizer", "weights/sd-turbo/tokenizer",
                                "weights/sdxl-turbo/tokenizer"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && !s->vocab_dir; i++)
        if (has_vocab(candidates[i])) s->vocab_dir = os_strdup(candidates[i]);
    OS_FREE(beside);
    return 0; /* none found is an error only when a tokenizer is asked for */
}

void single_file_close(struct single_file *s)
{
    if (!s) return;
    st_close(s->file);
    OS_FREE(s->config_dir);
    OS_FREE(s->vocab_dir);
    OS_FREE(s);
}

int single_file_open(const char *path, const struct model_open_opts *opts, struct model_dir **out, struct os_err *err)
{
    *out = NULL;
    struct single_file *s = OS_CALLOC(1, sizeof *s);
    struct model_dir *m = OS_CALLOC(1, sizeof *m);
    if (!s || !m) {
        OS_FREE(s);
        OS_FREE(m);
        return os_fail(err, "out of memory");
    }
    m->single = s;
    const char *text_prefix = NULL;
    if (st_open(path, &s->file, err)) goto fail;
    s->family = single_file_detect(s->file, &text_prefix, err);
    if (s->family == KM_FAMILY_UNKNOWN) goto fail;
    const struct km_component *fc = km_family(s->family, &s->ncomps);
    for (size_t i = 0; i < s->ncomps; i++) {
        s->comps[i] = fc[i];
        if (s->family == KM_FAMILY_SD2 && fc[i].style == KM_STYLE_OPEN_CLIP) s->comps[i].prefix = text_prefix;
    }

    if (opts && opts->config) {
        s->config_dir = os_strdup(opts->config);
    } else {
        const char *base = opts && opts->configs_dir ? opts->configs_dir : getenv("ONESTEP_CONFIGS");
        if (!base || !*base) base = "weights/configs";
        const char *named = st_meta(s->file, SINGLE_FILE_CONFIG_META);
        if (named && !plain_name(named)) {
            os_fail(err, "%s: metadata %s = \"%s\" is not a plain folder name", path, SINGLE_FILE_CONFIG_META, named);
            goto fail;
        }
        s->config_dir = path_join(base, named ? named : km_family_configs(s->family));
    }
    if (!s->config_dir) goto oom;
    if (!is_dir_with(s->config_dir, "model_index.json")) {
        os_fail(err,
                "%s: no model_index.json in %s, the configs this %s checkpoint needs (run from the onestep source "
                "directory, or set ONESTEP_CONFIGS to its weights/configs)",
                path, s->config_dir, km_family_name(s->family));
        goto fail;
    }
    if (find_vocab(s, path, opts, err)) goto fail;

    char *index_path = path_join(s->config_dir, "model_index.json");
    if (!index_path) goto oom;
    m->index = json_parse_file(index_path, MODEL_JSON_MAX, err);
    OS_FREE(index_path);
    if (!m->index) goto fail;
    m->pipeline = json_get_str(m->index, "_class_name", "model_index.json", err);
    if (!m->pipeline) {
        os_prefix(err, "%s/", s->config_dir);
        goto fail;
    }
    m->is_sdxl = strncmp(m->pipeline, "StableDiffusionXL", 17) == 0;
    if (m->is_sdxl != (s->family == KM_FAMILY_SDXL)) {
        os_fail(err, "%s: the checkpoint is %s, but %s/model_index.json describes a %s", path,
                km_family_name(s->family), s->config_dir, m->pipeline);
        goto fail;
    }
    if (!(m->path = os_strdup(path))) goto oom;
    *out = m;
    return 0;
oom:
    os_fail(err, "out of memory");
fail:
    model_dir_close(m);
    return -1;
}

enum km_family single_file_family(const struct model_dir *m)
{
    return m->single ? m->single->family : KM_FAMILY_UNKNOWN;
}

const char *single_file_config_dir(const struct model_dir *m)
{
    return m->single ? m->single->config_dir : NULL;
}

const struct st_file *single_file_st(const struct model_dir *m)
{
    return m->single ? m->single->file : NULL;
}

/* ---------------------------------------------------------------- mapping */

struct mapping {
    const struct single_file *s;
    const struct km_component *comp;
    const struct json *cfg;
    const char *cfg_path;
    struct component *c;
    struct tensor *t;
    size_t n, cap;
    size_t *name_off; /* names live in one block; pointers are set at the end */
    char *names;
    size_t names_len, names_cap;
    unsigned char *used; /* per tensor of the file */
};

static char *shape_str(const int64_t *shape, int ndim, char *buf, size_t len)
{
    struct tensor t = {0};
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    tensor_shape_str(&t, buf, len);
    return buf;
}

static int shape_is(const struct tensor *t, int ndim, const int64_t *shape)
{
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

/* OpenCLIP text_projection [width, proj] -> nn.Linear weight [proj, width],
 * element by element in the stored dtype. */
static void *transposed(const struct tensor *o)
{
    size_t es = dtype_size(o->dtype), rows = (size_t)o->shape[0], cols = (size_t)o->shape[1];
    size_t bytes = rows * cols * es; /* the mapping already holds this many */
    unsigned char *dst = OS_MALLOC(bytes > 0 ? bytes : 1);
    const unsigned char *src = o->data;
    if (!dst) return NULL;
    for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < cols; k++) memcpy(dst + (k * rows + r) * es, src + (r * cols + k) * es, es);
    return dst;
}

static int map_visit(void *ctx, const struct arch_param *p, struct os_err *err)
{
    struct mapping *mp = ctx;
    const char *file = mp->s->file->path;
    struct km_target k;
    if (km_to_original(mp->comp, mp->cfg, p->name, &k, err)) return os_prefix(err, "%s: ", file);
    const struct st_file *f = mp->s->file;
    const struct tensor *o = st_get(f, k.original);
    if (!o)
        return os_fail(err, "%s: missing tensor \"%s\" (%s %s), which %s implies: checkpoint and config disagree",
                       file, k.original, mp->comp->name, p->name, mp->cfg_path);
    if (o->dtype != DT_F32 && o->dtype != DT_F16 && o->dtype != DT_BF16)
        return os_fail(err, "%s: tensor \"%s\" has dtype %s; weights must be F32, F16 or BF16", file, k.original,
                       dtype_name(o->dtype));
    /* The shape the original file stores for this parameter. */
    int64_t want[4];
    int wn = p->ndim, ok;
    for (int i = 0; i < p->ndim; i++) want[i] = p->shape[i];
    const unsigned char *data = o->data;
    void *copy = NULL;
    switch (k.xform) {
    case KM_CONV1X1:
        want[2] = want[3] = 1;
        ok = shape_is(o, p->ndim, p->shape) || shape_is(o, 4, want); /* some exports already squeezed it */
        if (!ok) wn = 4;
        break;
    case KM_QKV_PART:
        want[0] = 3 * p->shape[0];
        ok = shape_is(o, p->ndim, want);
        if (ok) data += (size_t)k.part * (size_t)tensor_numel(o) / 3 * dtype_size(o->dtype);
        break;
    case KM_TRANSPOSE:
        want[0] = p->shape[1];
        want[1] = p->shape[0];
        ok = shape_is(o, 2, want);
        if (ok && !(data = copy = transposed(o))) return os_fail(err, "out of memory");
        break;
    default: ok = shape_is(o, p->ndim, p->shape); break;
    }
    if (!ok) {
        char have[96], need[96];
        return os_fail(err, "%s: tensor \"%s\" (%s %s) has shape %s, but %s implies %s", file, k.original,
                       mp->comp->name, p->name, tensor_shape_str(o, have, sizeof have), mp->cfg_path,
                       shape_str(want, wn, need, sizeof need));
    }
    if (copy && component_own(mp->c, copy)) {
        OS_FREE(copy);
        return os_fail(err, "out of memory");
    }
    mp->used[o - f->tensors] = 1;

    if (mp->n == mp->cap) {
        size_t cap = mp->cap ? 2 * mp->cap : 256;
        struct tensor *t = OS_REALLOC(mp->t, cap * sizeof *t);
        if (t) mp->t = t;
        size_t *off = OS_REALLOC(mp->name_off, cap * sizeof *off);
        if (off) mp->name_off = off;
        if (!t || !off) return os_fail(err, "out of memory");
        mp->cap = cap;
    }
    size_t len = strlen(p->name) + 1;
    if (mp->names_len + len > mp->names_cap) {
        size_t cap = mp->names_cap ? 2 * mp->names_cap : 16384;
        while (cap < mp->names_len + len) cap *= 2;
        char *nb = OS_REALLOC(mp->names, cap);
        if (!nb) return os_fail(err, "out of memory");
        mp->names = nb;
        mp->names_cap = cap;
    }
    memcpy(mp->names + mp->names_len, p->name, len);
    struct tensor *t = &mp->t[mp->n];
    memset(t, 0, sizeof *t);
    mp->name_off[mp->n] = mp->names_len;
    mp->names_len += len;
    t->dtype = o->dtype;
    t->ndim = p->ndim;
    for (int i = 0; i < p->ndim; i++) t->shape[i] = p->shape[i];
    t->data = data;
    mp->n++;
    return 0;
}

/* Every tensor under the component's prefix must have been used, or be one
 * of the extras the original layout is known to carry. */
static int check_leftovers(const struct mapping *mp, struct os_err *err)
{
    const struct st_file *f = mp->s->file;
    size_t np = strlen(mp->comp->prefix), extra = 0;
    const char *first = NULL;
    for (size_t i = 0; i < f->ntensors; i++) {
        const char *name = f->tensors[i].name;
        if (mp->used[i] || strncmp(name, mp->comp->prefix, np) != 0) continue;
        if (km_is_extra(mp->comp, mp->cfg, name)) continue;
        if (!first) first = name;
        extra++;
    }
    if (!extra) return 0;
    return os_fail(err, "%s: %zu tensor%s under %s that %s does not explain (first \"%s\"): checkpoint and config "
                        "disagree",
                   f->path, extra, extra == 1 ? "" : "s", mp->comp->prefix, mp->cfg_path, first);
}

static int map_component(const struct single_file *s, const struct km_component *comp, const struct json *cfg,
                         const char *cfg_path, struct component *c, struct os_err *err)
{
    struct mapping mp = {0};
    mp.s = s;
    mp.comp = comp;
    mp.cfg = cfg;
    mp.cfg_path = cfg_path;
    mp.c = c;
    mp.used = OS_CALLOC(s->file->ntensors ? s->file->ntensors : 1, 1);
    int rc = -1;
    if (!mp.used) {
        os_fail(err, "out of memory");
        goto done;
    }
    if (arch_walk(cfg, cfg_path, map_visit, &mp, err) || check_leftovers(&mp, err)) goto done;
    for (size_t i = 0; i < mp.n; i++) mp.t[i].name = mp.names + mp.name_off[i];
    if (component_own(c, mp.names)) {
        os_fail(err, "out of memory");
        goto done;
    }
    mp.names = NULL;
    component_set_tensors(c, mp.t, mp.n);
    mp.t = NULL;
    if (!c->used) {
        os_fail(err, "out of memory");
        goto done;
    }
    rc = 0;
done:
    OS_FREE(mp.t);
    OS_FREE(mp.names);
    OS_FREE(mp.name_off);
    OS_FREE(mp.used);
    return rc;
}

int single_file_component(const struct model_dir *m, const char *name, const char *config_file, int with_weights,
                          struct component *c, struct os_err *err)
{
    const struct single_file *s = m->single;
    struct json *walk_cfg = NULL;
    char *walk_path = NULL;
    if (component_begin(c, name, path_join(s->config_dir, name), err)) goto fail;
    if (!path_exists(c->dir)) {
        os_fail(err, "%s: missing component directory (configs for \"%s\" of the single-file checkpoint %s)", c->dir,
                name, m->path);
        goto fail;
    }
    if (config_file && component_read_config(c, config_file, err)) goto fail;
    if (with_weights) {
        const struct km_component *comp = NULL;
        for (size_t i = 0; i < s->ncomps; i++)
            if (strcmp(s->comps[i].name, name) == 0) comp = &s->comps[i];
        if (!comp) {
            os_fail(err, "%s: a single-file %s checkpoint has no weights for \"%s\"", m->path,
                    km_family_name(s->family), name);
            goto fail;
        }
        /* the walk needs the model config even if the caller asked for another file */
        const struct json *cfg = c->config;
        const char *cfg_path = c->config_path;
        if (!config_file || strcmp(config_file, "config.json") != 0) {
            if (!(walk_path = path_join(c->dir, "config.json"))) goto oom;
            if (!(walk_cfg = json_parse_file(walk_path, MODEL_JSON_MAX, err))) goto fail;
            cfg = walk_cfg;
            cfg_path = walk_path;
        }
        if (!(c->weights_path = os_strdup(m->path))) goto oom;
        if (map_component(s, comp, cfg, cfg_path, c, err)) goto fail;
        c->view_of = s->file; /* for component_release_pages */
    }
    json_free(walk_cfg);
    OS_FREE(walk_path);
    return 0;
oom:
    os_fail(err, "out of memory");
fail:
    json_free(walk_cfg);
    OS_FREE(walk_path);
    component_close(c);
    return -1;
}

int single_file_tokenizer_files(const struct model_dir *m, const char *name, struct model_tokenizer_files *out,
                                struct os_err *err)
{
    const struct single_file *s = m->single;
    memset(out, 0, sizeof *out);
    char *dir = path_join(s->config_dir, name);
    if (!dir) return os_fail(err, "out of memory");
    if (!path_exists(dir)) {
        os_fail(err, "%s: no tokenizer configs for \"%s\"", dir, name);
        OS_FREE(dir);
        return -1;
    }
    if (!s->vocab_dir) {
        OS_FREE(dir);
        return os_fail(err,
                       "%s: a single-file checkpoint has no tokenizer vocabulary; get vocab.json and merges.txt with "
                       "weights/download.sh --single (into weights/clip-tokenizer) or set ONESTEP_VOCAB to a "
                       "directory holding them",
                       m->path);
    }
    int rc = model_tokenizer_files_in(s->vocab_dir, dir, out, err);
    OS_FREE(dir);
    return rc;
}
