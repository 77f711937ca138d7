#include "model_dir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "single_file.h"

char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = OS_MALLOC(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t n = a;
    if (a && dir[a - 1] != '/') p[n++] = '/';
    memcpy(p + n, name, b + 1);
    return p;
}

int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int model_dir_open(const char *path, struct model_dir **out, struct os_err *err)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return os_fail(err,
                       "%s: model not found (%s). Get one with: weights/download.sh sd-turbo "
                       "(or sdxl-turbo), or make a synthetic one with ./mkmodel",
                       path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return os_fail(err, "%s: not a model directory (expected a diffusers folder with model_index.json)", path);
    char *index_path = path_join(path, "model_index.json");
    if (!index_path) return os_fail(err, "out of memory");
    if (!path_exists(index_path)) {
        os_fail(err, "%s: no model_index.json (is this a diffusers model directory?)", path);
        OS_FREE(index_path);
        return -1;
    }
    struct json *idx = json_parse_file(index_path, MODEL_JSON_MAX, err);
    OS_FREE(index_path);
    if (!idx) return -1;
    if (idx->type != JSON_OBJECT) {
        json_free(idx);
        return os_fail(err, "%s/model_index.json: must be a JSON object", path);
    }
    const char *cls = json_get_str(idx, "_class_name", "model_index.json", err);
    if (!cls) {
        json_free(idx);
        return os_prefix(err, "%s/", path);
    }
    struct model_dir *m = OS_CALLOC(1, sizeof *m);
    if (!m || !(m->path = os_strdup(path))) {
        OS_FREE(m);
        json_free(idx);
        return os_fail(err, "out of memory");
    }
    m->index = idx;
    m->pipeline = cls;
    m->is_sdxl = strncmp(cls, "StableDiffusionXL", 17) == 0;
    *out = m;
    return 0;
}

int model_open(const char *path, const struct model_open_opts *opts, struct model_dir **out, struct os_err *err)
{
    struct stat st;
    *out = NULL;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) return single_file_open(path, opts, out, err);
    return model_dir_open(path, out, err);
}

void model_dir_close(struct model_dir *m)
{
    if (!m) return;
    single_file_close(m->single);
    json_free(m->index);
    OS_FREE(m->path);
    OS_FREE(m);
}

int model_dir_has(const struct model_dir *m, const char *component)
{
    const struct json *v = json_get(m->index, component);
    if (!v || v->type != JSON_ARRAY || v->len != 2) return 0;
    return v->items[1].type == JSON_STRING;
}

/* Weight file names diffusers and transformers use, plain and fp16 variant. */
static const char *const weight_names[][2] = {
    {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"},
    {"model.safetensors", "model.fp16.safetensors"},
};

static char *find_weights(const char *dir, enum weight_variant variant, struct os_err *err)
{
    for (int v = 0; v < 2; v++) { /* pass 0: the preferred kind, pass 1: the fallback (auto only) */
        for (size_t i = 0; i < sizeof weight_names / sizeof weight_names[0]; i++) {
            int fp16 = variant == VARIANT_FP16 || (variant == VARIANT_AUTO && v == 1);
            if (v == 1 && variant != VARIANT_AUTO) continue;
            char *p = path_join(dir, weight_names[i][fp16]);
            if (!p) {
                os_fail(err, "out of memory");
                return NULL;
            }
            if (path_exists(p)) return p;
            OS_FREE(p);
        }
    }
    char *idx = path_join(dir, "diffusion_pytorch_model.safetensors.index.json");
    int sharded = idx && path_exists(idx);
    OS_FREE(idx);
    if (sharded)
        os_fail(err, "%s: sharded weights (*.safetensors.index.json) are not supported; use the fp16 variant file", dir);
    else if (variant == VARIANT_FP16)
        os_fail(err, "%s: no fp16 weights (expected diffusion_pytorch_model.fp16.safetensors or model.fp16.safetensors)",
                dir);
    else if (variant == VARIANT_FP32)
        os_fail(err, "%s: no fp32 weights (expected diffusion_pytorch_model.safetensors or model.safetensors)", dir);
    else
        os_fail(err, "%s: no weights file (expected diffusion_pytorch_model[.fp16].safetensors or model[.fp16].safetensors)",
                dir);
    return NULL;
}

int component_begin(struct component *c, const char *name, char *dir, struct os_err *err)
{
    memset(c, 0, sizeof *c);
    c->name = os_strdup(name);
    c->dir = dir;
    if (!c->name || !c->dir) return os_fail(err, "out of memory");
    return 0;
}

int component_read_config(struct component *c, const char *config_file, struct os_err *err)
{
    c->config_path = path_join(c->dir, config_file);
    if (!c->config_path) return os_fail(err, "out of memory");
    c->config = json_parse_file(c->config_path, MODEL_JSON_MAX, err);
    if (!c->config) return -1;
    if (c->config->type != JSON_OBJECT) return os_fail(err, "%s: must be a JSON object", c->config_path);
    return 0;
}

/* The rest of opening a component that lives in a directory of its own
 * files, once c->name and c->dir are set: its config and its weights file. */
static int component_fill(struct component *c, const char *config_file, int with_weights,
                          enum weight_variant variant, struct os_err *err)
{
    if (config_file && component_read_config(c, config_file, err)) return -1;
    if (!with_weights) return 0;
    c->weights_path = find_weights(c->dir, variant, err);
    if (!c->weights_path || st_open(c->weights_path, &c->file, err)) return -1;
    c->tensors = c->file->tensors;
    c->ntensors = c->file->ntensors;
    c->used = OS_CALLOC(c->ntensors ? c->ntensors : 1, 1);
    if (!c->used) return os_fail(err, "out of memory");
    return 0;
}

int component_open(const struct model_dir *m, const char *name, const char *config_file, int with_weights,
                   enum weight_variant variant, struct component *c, struct os_err *err)
{
    if (m->single) return single_file_component(m, name, config_file, with_weights, c, err);
    if (component_begin(c, name, path_join(m->path, name), err)) goto fail;
    if (!path_exists(c->dir)) {
        os_fail(err, "%s: missing component directory (model_index.json of %s lists \"%s\")", c->dir, m->path, name);
        goto fail;
    }
    if (component_fill(c, config_file, with_weights, variant, err)) goto fail;
    return 0;
fail:
    component_close(c);
    return -1;
}

int component_open_dir(const char *dir, const char *name, const char *config_file, int with_weights,
                       enum weight_variant variant, struct component *c, struct os_err *err)
{
    memset(c, 0, sizeof *c);
    struct stat st;
    if (stat(dir, &st) != 0) return os_fail(err, "%s: %s directory not found (%s)", dir, name, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return os_fail(err, "%s: the %s must be a directory (config.json + weights)", dir, name);
    if (component_begin(c, name, os_strdup(dir), err) || component_fill(c, config_file, with_weights, variant, err)) {
        component_close(c);
        return -1;
    }
    return 0;
}

void component_close(struct component *c)
{
    if (!c) return;
    if (c->tensors_owned) OS_FREE(c->tensors);
    for (size_t i = 0; i < c->nowned; i++) OS_FREE(c->owned[i]);
    OS_FREE(c->owned);
    st_close(c->file);
    json_free(c->config);
    OS_FREE(c->used);
    OS_FREE(c->name);
    OS_FREE(c->dir);
    OS_FREE(c->config_path);
    OS_FREE(c->weights_path);
    memset(c, 0, sizeof *c);
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const struct tensor *)a)->name, ((const struct tensor *)b)->name);
}

void component_set_tensors(struct component *c, struct tensor *tensors, size_t n)
{
    if (c->tensors_owned) OS_FREE(c->tensors);
    qsort(tensors, n, sizeof *tensors, cmp_tensor);
    c->tensors = tensors;
    c->ntensors = n;
    c->tensors_owned = 1;
    OS_FREE(c->used);
    c->used = OS_CALLOC(n ? n : 1, 1);
}

int component_own(struct component *c, void *buffer)
{
    void **o = OS_REALLOC(c->owned, (c->nowned + 1) * sizeof *o);
    if (!o) return -1;
    c->owned = o;
    c->owned[c->nowned++] = buffer;
    return 0;
}

long component_index(const struct component *c, const char *name)
{
    size_t lo = 0, hi = c->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(c->tensors[mid].name, name);
        if (r == 0) return (long)mid;
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

const struct tensor *component_get(struct component *c, const char *name)
{
    long i = component_index(c, name);
    if (i < 0) return NULL;
    if (c->used) c->used[i] = 1;
    return &c->tensors[i];
}

const struct tensor *component_require(struct component *c, const char *name, int ndim, const int64_t *shape,
                                       struct os_err *err)
{
    const struct tensor *t = component_get(c, name);
    const char *where = c->weights_path ? c->weights_path : c->name;
    if (!t) {
        os_fail(err, "%s: missing tensor \"%s\" (the %s config needs it)", where, name, c->name);
        return NULL;
    }
    if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16) {
        os_fail(err, "%s: tensor \"%s\" has dtype %s; weights must be F32, F16 or BF16", where, name,
                dtype_name(t->dtype));
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        if (shape[i] >= 0 && shape[i] != t->shape[i]) ok = 0;
    if (!ok) {
        char have[160], want[160];
        struct tensor w = {0};
        w.ndim = ndim;
        for (int i = 0; i < ndim; i++) w.shape[i] = shape[i];
        os_fail(err, "%s: tensor \"%s\" has shape %s, but the %s config implies %s", where, name,
                tensor_shape_str(t, have, sizeof have), c->name, tensor_shape_str(&w, want, sizeof want));
        return NULL;
    }
    return t;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int component_check_unused(const struct component *c, const char *const *ignore, struct os_err *err)
{
    char list[300] = "";
    size_t extra = 0;
    for (size_t i = 0; i < c->ntensors; i++) {
        if (c->used[i]) continue;
        int skip = 0;
        for (const char *const *s = ignore; s && *s && !skip; s++) skip = has_suffix(c->tensors[i].name, *s);
        if (skip) continue;
        if (extra < 5) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof list - n, "%s\"%s\"", extra ? ", " : "", c->tensors[i].name);
        }
        extra++;
    }
    if (!extra) return 0;
    return os_fail(err, "%s: %zu tensor%s the %s config does not use (%s%s): config and weights disagree",
                   c->weights_path ? c->weights_path : c->name, extra, extra == 1 ? "" : "s", c->name, list,
                   extra > 5 ? ", ..." : "");
}

struct span {
    uintptr_t a, b;
};

static int cmp_span(const void *x, const void *y)
{
    uintptr_t a = ((const struct span *)x)->a, b = ((const struct span *)y)->a;
    return a < b ? -1 : a > b;
}

void component_release_pages(struct component *c)
{
    if (c->file) {
        st_release_pages(c->file);
        return;
    }
    if (!c->view_of || !c->ntensors) return;
    /* A single-file component's tensors are scattered views (q/k/v rows of
     * one fused tensor, ...): sort and merge their byte spans so a component
     * costs a few madvise calls, not one per tensor. Without memory for the
     * list, release tensor by tensor. */
    struct span *s = OS_MALLOC(c->ntensors * sizeof *s);
    if (!s) {
        for (size_t i = 0; i < c->ntensors; i++)
            st_release_range(c->view_of, c->tensors[i].data,
                             (size_t)tensor_numel(&c->tensors[i]) * dtype_size(c->tensors[i].dtype));
        return;
    }
    for (size_t i = 0; i < c->ntensors; i++) {
        s[i].a = (uintptr_t)c->tensors[i].data;
        s[i].b = s[i].a + (size_t)tensor_numel(&c->tensors[i]) * dtype_size(c->tensors[i].dtype);
    }
    qsort(s, c->ntensors, sizeof *s, cmp_span);
    size_t n = 0;
    for (size_t i = 1; i < c->ntensors; i++) {
        if (s[i].a <= s[n].b) {
            if (s[i].b > s[n].b) s[n].b = s[i].b;
        } else {
            s[++n] = s[i];
        }
    }
    for (size_t i = 0; i <= n; i++) st_release_range(c->view_of, (const void *)s[i].a, s[i].b - s[i].a);
    OS_FREE(s);
}

void component_release_range(const struct component *c, const void *p, size_t len)
{
    st_release_range(c->file ? c->file : c->view_of, p, len);
}

void model_tokenizer_files_free(struct model_tokenizer_files *f)
{
    OS_FREE(f->vocab_json);
    OS_FREE(f->merges_txt);
    OS_FREE(f->tokenizer_config);
    OS_FREE(f->special_tokens_map);
    memset(f, 0, sizeof *f);
}

int model_tokenizer_files_in(const char *vocab_dir, const char *config_dir, struct model_tokenizer_files *out,
                             struct os_err *err)
{
    out->vocab_json = path_join(vocab_dir, "vocab.json");
    out->merges_txt = path_join(vocab_dir, "merges.txt");
    out->tokenizer_config = path_join(config_dir, "tokenizer_config.json");
    out->special_tokens_map = path_join(config_dir, "special_tokens_map.json");
    if (!out->vocab_json || !out->merges_txt || !out->tokenizer_config || !out->special_tokens_map) {
        model_tokenizer_files_free(out);
        return os_fail(err, "out of memory");
    }
    return 0;
}

int model_tokenizer_files(const struct model_dir *m, const char *name, struct model_tokenizer_files *out,
                          struct os_err *err)
{
    memset(out, 0, sizeof *out);
    if (m->single) return single_file_tokenizer_files(m, name, out, err);
    char *dir = path_join(m->path, name);
    if (!dir) return os_fail(err, "out of memory");
    int rc = model_tokenizer_files_in(dir, dir, out, err);
    OS_FREE(dir);
    return rc;
}
