#include "synth.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../weights/arch.h"
#include "../../weights/atomic_file.h"
#include "../../weights/json.h"
#include "../../weights/keymap.h"
#include "../../weights/model_dir.h"
#include "../../weights/safetensors.h"
#include "../../weights/single_file.h"

/* The components that carry weights, in the order they are reported. */
static const char *const weight_components[] = {"unet", "vae", "text_encoder", "text_encoder_2"};
#define NCOMP 4

/* ---------------------------------------------------------------- values */

/* splitmix64's finaliser: a strong 64-bit mix, so element j of a stream is
 * mix(key + j * golden) and any element can be computed on its own (a
 * transposed copy reads its source in another order). */
static inline uint64_t mix64(uint64_t z)
{
    z ^= z >> 30;
    z *= 0xbf58476d1ce4e5b9ull;
    z ^= z >> 27;
    z *= 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z;
}

static uint64_t stream_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the name */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    return mix64(h ^ mix64(seed + 0x9e3779b97f4a7c15ull));
}

/* Uniform on [-1, 1) from 24 bits; each 64-bit draw gives two. */
static inline float unit24(uint32_t bits)
{
    return (float)bits * (1.0f / 8388608.0f) - 1.0f;
}

static inline float element(uint64_t key, uint64_t i)
{
    uint64_t z = mix64(key + ((i >> 1) + 1) * 0x9e3779b97f4a7c15ull);
    return unit24(i & 1 ? (uint32_t)(z >> 8) & 0xffffffu : (uint32_t)(z >> 40));
}

/* mean and half-width of the uniform for a role: a uniform on [-a, a] has
 * variance a^2 / 3. Linear / Conv weights get variance 1 / fan_in (each
 * output keeps the scale of its inputs), norm scales sit near 1, biases
 * and shifts are small, embedding rows are O(1) before the first LayerNorm. */
static void role_scale(enum arch_role role, int64_t fan_in, float *mean, float *amp)
{
    const float sqrt3 = 1.7320508f;
    *mean = 0.0f;
    switch (role) {
    case ARCH_MATRIX: *amp = sqrt3 / sqrtf((float)(fan_in > 0 ? fan_in : 1)); break;
    case ARCH_NORM_SCALE:
        *mean = 1.0f;
        *amp = sqrt3 * 0.05f;
        break;
    case ARCH_EMBEDDING: *amp = sqrt3 * 0.5f; break;
    default: *amp = sqrt3 * 0.02f; break;
    }
}

static inline void store(enum dtype dt, void *dst, size_t i, float v)
{
    if (dt == DT_F32) {
        memcpy((unsigned char *)dst + 4 * i, &v, 4);
    } else {
        uint16_t h = dt == DT_F16 ? f32_to_f16(v) : f32_to_bf16(v);
        memcpy((unsigned char *)dst + 2 * i, &h, 2);
    }
}

/* n consecutive elements of one stream, two per 64-bit draw. */
static void fill_stream(uint64_t key, float mean, float amp, enum dtype dt, void *dst, uint64_t n)
{
    uint64_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t z = mix64(key + ((i >> 1) + 1) * 0x9e3779b97f4a7c15ull);
        store(dt, dst, (size_t)i, mean + amp * unit24((uint32_t)(z >> 40)));
        store(dt, dst, (size_t)i + 1, mean + amp * unit24((uint32_t)(z >> 8) & 0xffffffu));
    }
    if (i < n) store(dt, dst, (size_t)i, mean + amp * element(key, i));
}

/* ---------------------------------------------------------------- items */

enum item_kind {
    ITEM_PLAIN,     /* one stream */
    ITEM_QKV,       /* three streams stacked by rows (OpenCLIP in_proj) */
    ITEM_TRANSPOSE, /* the stream of a [cols, rows] tensor, written transposed */
    ITEM_INDEX,     /* int64 0, 1, 2, ... (position_ids) */
    ITEM_LOGIT,     /* OpenCLIP logit_scale = ln(1 / 0.07) */
};

struct item {
    char *name; /* as written */
    enum item_kind kind;
    enum arch_role role;
    int64_t fan_in;
    int ndim;
    int64_t shape[4];
    uint64_t key[3];
    int have; /* ITEM_QKV: bit p set when part p was seen */
    enum dtype dtype;
    const struct synth_opts *opts;
};

struct run {
    const struct synth_opts *o;
    struct item **items;
    size_t n, cap;
};

static uint64_t numel_of(int ndim, const int64_t *shape)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (uint64_t)shape[i];
    return n;
}

static int fill_item(void *ctx, void *dst, size_t bytes, struct os_err *err)
{
    struct item *it = ctx;
    (void)bytes;
    if (it->opts->interrupted && *it->opts->interrupted) return os_fail(err, "interrupted");
    float mean, amp;
    role_scale(it->role, it->fan_in, &mean, &amp);
    uint64_t n = numel_of(it->ndim, it->shape);
    size_t es = dtype_size(it->dtype);
    switch (it->kind) {
    case ITEM_PLAIN: fill_stream(it->key[0], mean, amp, it->dtype, dst, n); break;
    case ITEM_QKV:
        for (int p = 0; p < 3; p++)
            fill_stream(it->key[p], mean, amp, it->dtype, (unsigned char *)dst + (size_t)p * (n / 3) * es, n / 3);
        break;
    case ITEM_TRANSPOSE: {
        /* written [rows, cols]; the stream is the diffusers [cols, rows] one */
        uint64_t rows = (uint64_t)it->shape[0], cols = (uint64_t)it->shape[1];
        for (uint64_t r = 0; r < rows; r++)
            for (uint64_t k = 0; k < cols; k++)
                store(it->dtype, dst, (size_t)(r * cols + k), mean + amp * element(it->key[0], k * rows + r));
        break;
    }
    case ITEM_INDEX:
        for (uint64_t i = 0; i < n; i++) {
            int64_t v = (int64_t)i;
            memcpy((unsigned char *)dst + 8 * i, &v, 8);
        }
        break;
    case ITEM_LOGIT: store(it->dtype, dst, 0, 2.6592600369327779f); break;
    }
    return 0;
}

static struct item *new_item(struct run *r, const char *name, struct os_err *err)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 1024;
        struct item **p = OS_REALLOC(r->items, cap * sizeof *p);
        if (!p) {
            os_fail(err, "out of memory");
            return NULL;
        }
        r->items = p;
        r->cap = cap;
    }
    struct item *it = OS_CALLOC(1, sizeof *it);
    if (!it || !(it->name = os_strdup(name))) {
        OS_FREE(it);
        os_fail(err, "out of memory");
        return NULL;
    }
    it->opts = r->o;
    it->dtype = r->o->dtype;
    r->items[r->n++] = it;
    return it;
}

static void free_run(struct run *r)
{
    for (size_t i = 0; i < r->n; i++) {
        OS_FREE(r->items[i]->name);
        OS_FREE(r->items[i]);
    }
    OS_FREE(r->items);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- walks */

struct collect {
    struct run *r;
    struct st_writer *w;
    const struct km_component *comp; /* NULL: diffusers names */
    const struct json *cfg;
    size_t first; /* first item of this component (fused q/k/v look back to it) */
};

static int add_to_writer(struct collect *c, struct item *it, struct os_err *err)
{
    return st_writer_add_fn(c->w, it->name, it->kind == ITEM_INDEX ? DT_I64 : it->dtype, it->ndim, it->shape,
                            fill_item, it, err);
}

static int collect_param(void *ctx, const struct arch_param *p, struct os_err *err)
{
    struct collect *c = ctx;
    uint64_t key = stream_key(c->r->o->seed, p->name);
    if (!c->comp) { /* diffusers layout: the parameter as it is */
        struct item *it = new_item(c->r, p->name, err);
        if (!it) return -1;
        it->kind = ITEM_PLAIN;
        it->role = p->role;
        it->fan_in = p->fan_in;
        it->ndim = p->ndim;
        memcpy(it->shape, p->shape, sizeof it->shape);
        it->key[0] = key;
        return add_to_writer(c, it, err);
    }
    struct km_target t;
    if (km_to_original(c->comp, c->cfg, p->name, &t, err)) return -1;
    if (t.xform == KM_QKV_PART) {
        /* the parts of one in_proj arrive close together (k, v, q order) */
        for (size_t i = c->r->n; i-- > c->first && i + 8 > c->r->n;) {
            struct item *it = c->r->items[i];
            if (it->kind == ITEM_QKV && strcmp(it->name, t.original) == 0) {
                it->key[t.part] = key;
                it->have |= 1 << t.part;
                return 0;
            }
        }
        struct item *it = new_item(c->r, t.original, err);
        if (!it) return -1;
        it->kind = ITEM_QKV;
        it->role = p->role;
        it->fan_in = p->fan_in;
        it->ndim = p->ndim;
        memcpy(it->shape, p->shape, sizeof it->shape);
        it->shape[0] *= 3;
        it->key[t.part] = key;
        it->have = 1 << t.part;
        return add_to_writer(c, it, err);
    }
    struct item *it = new_item(c->r, t.original, err);
    if (!it) return -1;
    it->role = p->role;
    it->fan_in = p->fan_in;
    it->key[0] = key;
    it->ndim = p->ndim;
    memcpy(it->shape, p->shape, sizeof it->shape);
    if (t.xform == KM_TRANSPOSE) {
        it->kind = ITEM_TRANSPOSE;
        it->shape[0] = p->shape[1];
        it->shape[1] = p->shape[0];
    } else if (t.xform == KM_CONV1X1) {
        it->ndim = 4; /* the original stores the 1x1 convolution */
        it->shape[2] = it->shape[3] = 1;
    }
    return add_to_writer(c, it, err);
}

static int collect_extra(void *ctx, const struct km_extra *e, struct os_err *err)
{
    struct collect *c = ctx;
    struct item *it = new_item(c->r, e->name, err);
    if (!it) return -1;
    it->kind = e->is_index ? ITEM_INDEX : e->is_logit_scale ? ITEM_LOGIT : ITEM_PLAIN;
    it->role = e->role;
    it->fan_in = e->fan_in;
    it->ndim = e->ndim;
    memcpy(it->shape, e->shape, sizeof it->shape);
    it->key[0] = stream_key(c->r->o->seed, e->name);
    return add_to_writer(c, it, err);
}

/* ---------------------------------------------------------------- files */

static int copy_file(const char *src, const char *dst, struct os_err *err)
{
    FILE *in = fopen(src, "rb");
    if (!in) return os_fail(err, "%s: cannot read: %s", src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) {
        int e = errno;
        fclose(in);
        return os_fail(err, "%s: cannot create: %s", dst, strerror(e));
    }
    char buf[1 << 16];
    size_t n;
    int ok = 1;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    ok = ok && !ferror(in);
    fclose(in);
    if (fclose(out) != 0) ok = 0;
    return ok ? 0 : os_fail(err, "%s: copying %s failed", dst, src);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Copy a component folder's configs (and tokenizer files), not its weights. */
static int copy_configs(const char *src_dir, const char *dst_dir, struct os_err *err)
{
    DIR *d = opendir(src_dir);
    if (!d) return os_fail(err, "%s: cannot open: %s", src_dir, strerror(errno));
    if (mkdir(dst_dir, 0777) != 0 && errno != EEXIST) {
        closedir(d);
        return os_fail(err, "%s: cannot create: %s", dst_dir, strerror(errno));
    }
    /* readdir order is the file system's; sort so runs do the same work */
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".json") && !ends_with(e->d_name, ".txt")) continue;
        if (n == 64) {
            rc = os_fail(err, "%s: too many files", src_dir);
            break;
        }
        if (!(names[n] = os_strdup(e->d_name))) {
            rc = os_fail(err, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            char *s = path_join(src_dir, names[i]), *t = path_join(dst_dir, names[i]);
            struct stat st;
            if (!s || !t) rc = os_fail(err, "out of memory");
            else if (stat(s, &st) == 0 && S_ISREG(st.st_mode)) rc = copy_file(s, t, err);
            OS_FREE(s);
            OS_FREE(t);
        }
        OS_FREE(names[i]);
    }
    return rc;
}

/* Remove what a failed run created: the temporary model directory holds
 * files and one level of component folders. */
static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char *p = path_join(path, e->d_name);
            struct stat st;
            if (p && lstat(p, &st) == 0) {
                if (S_ISDIR(st.st_mode)) remove_tree(p);
                else unlink(p);
            }
            OS_FREE(p);
        }
        closedir(d);
    }
    rmdir(path);
}

const char *synth_find_vocab(const char *given, struct os_err *err)
{
    static const char *const candidates[] = {"../shared/clip-tokenizer", "weights/sd-turbo/tokenizer",
                                             "weights/sdxl-turbo/tokenizer", "weights/clip-tokenizer"};
    for (size_t i = 0; i < (given ? 1 : sizeof candidates / sizeof candidates[0]); i++) {
        const char *d = given ? given : candidates[i];
        char *v = path_join(d, "vocab.json"), *m = path_join(d, "merges.txt");
        int ok = v && m && path_exists(v) && path_exists(m);
        OS_FREE(v);
        OS_FREE(m);
        if (ok) return d;
    }
    if (given) os_fail(err, "%s: no vocab.json and merges.txt there", given);
    else
        os_fail(err, "no tokenizer vocabulary found (vocab.json + merges.txt in ../shared/clip-tokenizer, "
                     "weights/sd-turbo/tokenizer, weights/sdxl-turbo/tokenizer or weights/clip-tokenizer); "
                     "pass --vocab DIR");
    return NULL;
}

/* ---------------------------------------------------------------- the model */

struct source {
    char *dir; /* the configs */
    struct json *index;        /* model_index.json; NULL for a single component */
    const char *name;          /* config folder name, NULL for a path */
    int has[NCOMP];
    struct json *cfg[NCOMP];
    uint64_t params[NCOMP];
    size_t tensors[NCOMP];
    /* a single component's directory (config.json and its weights, no
     * model_index.json): only an AutoencoderTiny, the directory --taesd takes */
    struct json *component;
    uint64_t component_params;
    size_t component_tensors;
};

static void free_source(struct source *s)
{
    OS_FREE(s->dir);
    json_free(s->index);
    for (int i = 0; i < NCOMP; i++) json_free(s->cfg[i]);
    json_free(s->component);
}

/* s->dir has config.json and no model_index.json. */
static int open_component(struct source *s, const char *config_path, struct os_err *err)
{
    s->component = json_parse_file(config_path, MODEL_JSON_MAX, err);
    if (!s->component) return -1;
    enum arch_class c = arch_class_of(s->component);
    if (c != ARCH_TAESD)
        return os_fail(err,
                       "%s: a single component directory (config.json, no model_index.json) must hold an "
                       "AutoencoderTiny (TAESD), not %s",
                       config_path, c == ARCH_UNKNOWN ? "an unknown class" : arch_class_name(c));
    return arch_count(s->component, config_path, &s->component_params, &s->component_tensors, err);
}

static int listed(const struct json *index, const char *comp)
{
    const struct json *v = json_get(index, comp);
    return v && v->type == JSON_ARRAY && v->len == 2 && v->items[1].type == JSON_STRING;
}

static int open_source(const struct synth_opts *o, struct source *s, struct os_err *err)
{
    memset(s, 0, sizeof *s);
    struct stat st;
    int is_path = strchr(o->model, '/') != NULL || (stat(o->model, &st) == 0 && S_ISDIR(st.st_mode));
    if (is_path) {
        s->dir = os_strdup(o->model);
    } else {
        s->name = o->model;
        s->dir = path_join(o->configs_dir ? o->configs_dir : "weights/configs", o->model);
    }
    if (!s->dir) return os_fail(err, "out of memory");
    char *ip = path_join(s->dir, "model_index.json");
    if (!ip) return os_fail(err, "out of memory");
    if (!path_exists(ip)) {
        OS_FREE(ip);
        char *cp = path_join(s->dir, "config.json");
        if (!cp) return os_fail(err, "out of memory");
        int rc = path_exists(cp) ? open_component(s, cp, err) : 1;
        OS_FREE(cp);
        if (rc <= 0) return rc;
        return os_fail(err,
                       "%s: no model_index.json (model \"%s\": a folder of %s such as sd-turbo, sdxl-turbo, "
                       "tiny-sd, tiny-sdxl, taesd, or a diffusers-style directory)",
                       s->dir, o->model, o->configs_dir ? o->configs_dir : "weights/configs");
    }
    s->index = json_parse_file(ip, MODEL_JSON_MAX, err);
    OS_FREE(ip);
    if (!s->index) return -1;
    for (int i = 0; i < NCOMP; i++) {
        if (!listed(s->index, weight_components[i])) continue;
        char *cd = path_join(s->dir, weight_components[i]);
        char *cp = cd ? path_join(cd, "config.json") : NULL;
        OS_FREE(cd);
        if (!cp) return os_fail(err, "out of memory");
        s->cfg[i] = json_parse_file(cp, MODEL_JSON_MAX, err);
        if (s->cfg[i] && arch_count(s->cfg[i], cp, &s->params[i], &s->tensors[i], err)) {
            json_free(s->cfg[i]);
            s->cfg[i] = NULL;
        }
        OS_FREE(cp);
        if (!s->cfg[i]) return -1;
        s->has[i] = 1;
    }
    if (!s->has[0]) return os_fail(err, "%s: model_index.json lists no unet", s->dir);
    return 0;
}

static int make_temp_dir(const char *out, char **tmp, struct os_err *err)
{
    const char *slash = strrchr(out, '/');
    size_t dirlen = slash ? (size_t)(slash - out) + 1 : 0;
    size_t n = strlen(out) + 16;
    *tmp = OS_MALLOC(n);
    if (!*tmp) return os_fail(err, "out of memory");
    memcpy(*tmp, out, dirlen);
    snprintf(*tmp + dirlen, n - dirlen, ".%s.XXXXXX", out + dirlen);
    if (!mkdtemp(*tmp)) {
        int e = errno;
        OS_FREE(*tmp);
        *tmp = NULL;
        return os_fail(err, "%s: cannot create a temporary directory beside it: %s", out, strerror(e));
    }
    return 0;
}

static const char *weights_name(int comp, enum dtype dt)
{
    int text = comp >= 2, fp16 = dt == DT_F16;
    if (text) return fp16 ? "model.fp16.safetensors" : "model.safetensors";
    return fp16 ? "diffusion_pytorch_model.fp16.safetensors" : "diffusion_pytorch_model.safetensors";
}

static int write_diffusers(const struct synth_opts *o, const struct source *s, struct os_err *err)
{
    char *tmp = NULL;
    if (make_temp_dir(o->out, &tmp, err)) return -1;
    struct run r = {o, NULL, 0, 0};
    int rc = 0;
    const char *vocab = NULL;
    char *ip = path_join(s->dir, "model_index.json"), *op = path_join(tmp, "model_index.json");
    if (!ip || !op) rc = os_fail(err, "out of memory");
    else rc = copy_file(ip, op, err);
    OS_FREE(ip);
    OS_FREE(op);
    /* every folder model_index.json lists: configs and tokenizer files */
    for (size_t k = 0; rc == 0 && k < s->index->len; k++) {
        const char *comp = s->index->keys[k];
        if (!listed(s->index, comp)) continue;
        char *src = path_join(s->dir, comp), *dst = path_join(tmp, comp);
        if (!src || !dst) rc = os_fail(err, "out of memory");
        else if (!path_exists(src)) rc = os_fail(err, "%s: missing (model_index.json lists \"%s\")", src, comp);
        else rc = copy_configs(src, dst, err);
        if (rc == 0 && strncmp(comp, "tokenizer", 9) == 0) {
            char *v = path_join(dst, "vocab.json"), *m = path_join(dst, "merges.txt");
            if (!v || !m) rc = os_fail(err, "out of memory");
            else if (!path_exists(v) || !path_exists(m)) {
                if (!vocab) vocab = synth_find_vocab(o->vocab_dir, err);
                if (!vocab) rc = -1;
                char *sv = vocab ? path_join(vocab, "vocab.json") : NULL, *sm = vocab ? path_join(vocab, "merges.txt") : NULL;
                if (rc == 0) rc = copy_file(sv, v, err);
                if (rc == 0) rc = copy_file(sm, m, err);
                OS_FREE(sv);
                OS_FREE(sm);
            }
            OS_FREE(v);
            OS_FREE(m);
        }
        OS_FREE(src);
        OS_FREE(dst);
    }
    for (int i = 0; rc == 0 && i < NCOMP; i++) {
        if (!s->has[i]) continue;
        struct st_writer *w = st_writer_new();
        char *cd = path_join(tmp, weight_components[i]);
        char *wp = cd ? path_join(cd, weights_name(i, o->dtype)) : NULL;
        OS_FREE(cd);
        if (!w || !wp) rc = os_fail(err, "out of memory");
        struct collect c = {&r, w, NULL, s->cfg[i], r.n};
        if (rc == 0) rc = arch_walk(s->cfg[i], weight_components[i], collect_param, &c, err);
        if (rc == 0) rc = st_writer_write(w, wp, err);
        st_writer_free(w);
        OS_FREE(wp);
    }
    if (rc == 0 && rename(tmp, o->out) != 0)
        rc = os_fail(err, "%s: cannot move the finished model into place: %s", o->out, strerror(errno));
    if (rc) remove_tree(tmp);
    OS_FREE(tmp);
    free_run(&r);
    return rc;
}

/* A single component's directory: its configs and one weights file, as
 * save_pretrained writes an AutoencoderTiny. */
static int write_component(const struct synth_opts *o, const struct source *s, struct os_err *err)
{
    char *tmp = NULL;
    if (make_temp_dir(o->out, &tmp, err)) return -1;
    struct run r = {o, NULL, 0, 0};
    int rc = copy_configs(s->dir, tmp, err);
    struct st_writer *w = st_writer_new();
    char *wp = path_join(tmp, weights_name(0, o->dtype));
    if (rc == 0 && (!w || !wp)) rc = os_fail(err, "out of memory");
    struct collect c = {&r, w, NULL, s->component, 0};
    if (rc == 0) rc = arch_walk(s->component, "config.json", collect_param, &c, err);
    if (rc == 0) rc = st_writer_write(w, wp, err);
    st_writer_free(w);
    OS_FREE(wp);
    if (rc == 0 && rename(tmp, o->out) != 0)
        rc = os_fail(err, "%s: cannot move the finished component into place: %s", o->out, strerror(errno));
    if (rc) remove_tree(tmp);
    OS_FREE(tmp);
    free_run(&r);
    return rc;
}

static int write_single(const struct synth_opts *o, const struct source *s, struct os_err *err)
{
    const char *cls = json_get_str(s->index, "_class_name", "model_index.json", err);
    if (!cls) return -1;
    enum km_family fam = strncmp(cls, "StableDiffusionXL", 17) == 0 ? KM_FAMILY_SDXL
                         : strcmp(cls, "StableDiffusionPipeline") == 0 ? KM_FAMILY_SD2
                                                                       : KM_FAMILY_UNKNOWN;
    if (fam == KM_FAMILY_UNKNOWN)
        return os_fail(err, "%s: no single-file layout for a %s (SD 2.x and SDXL pipelines only)", s->dir, cls);
    size_t nc;
    const struct km_component *comps = km_family(fam, &nc);
    struct st_writer *w = st_writer_new();
    struct run r = {o, NULL, 0, 0};
    int rc = w ? 0 : os_fail(err, "out of memory");
    for (size_t k = 0; rc == 0 && k < nc; k++) {
        int i = 0;
        while (i < NCOMP && strcmp(weight_components[i], comps[k].name)) i++;
        if (i == NCOMP || !s->has[i]) {
            rc = os_fail(err, "%s: a %s single file needs \"%s\", which model_index.json does not list", s->dir,
                         km_family_name(fam), comps[k].name);
            break;
        }
        struct collect c = {&r, w, &comps[k], s->cfg[i], r.n};
        rc = arch_walk(s->cfg[i], comps[k].name, collect_param, &c, err);
        for (size_t j = c.first; rc == 0 && j < r.n; j++)
            if (r.items[j]->kind == ITEM_QKV && r.items[j]->have != 7)
                rc = os_fail(err, "%s: q, k and v of \"%s\" did not all arrive", comps[k].name, r.items[j]->name);
        if (rc == 0) rc = km_extras(&comps[k], s->cfg[i], collect_extra, &c, err);
    }
    /* A folder that is not the family's default names itself, so the
     * loader picks the matching configs (weights/single_file.h). */
    if (rc == 0 && s->name && strcmp(s->name, km_family_configs(fam)) != 0)
        rc = st_writer_meta(w, SINGLE_FILE_CONFIG_META, s->name, err);
    if (rc == 0) rc = st_writer_write(w, o->out, err);
    st_writer_free(w);
    free_run(&r);
    return rc;
}

int synth_model(const struct synth_opts *o, synth_report_fn report, void *ctx, struct os_err *err)
{
    if (!o->model) return os_fail(err, "no model given");
    if (o->dtype != DT_F32 && o->dtype != DT_F16 && o->dtype != DT_BF16)
        return os_fail(err, "dtype must be f32, f16 or bf16");
    if (!o->count_only) {
        struct stat st;
        if (!o->out || !*o->out) return os_fail(err, "no output path given");
        if (stat(o->out, &st) == 0) return os_fail(err, "%s: already exists; remove it first", o->out);
        if (atomic_check_writable(o->out, err)) return -1;
    }
    struct source s;
    int rc = open_source(o, &s, err);
    if (rc == 0 && s.component) {
        if (report) report(ctx, "taesd", s.component_params, s.component_tensors);
        if (!o->count_only && o->layout == SYNTH_SINGLE)
            rc = os_fail(err, "%s: a TAESD is a directory (config.json + weights); the single-file layout is for SD 2.x "
                              "and SDXL pipelines",
                         s.dir);
        else if (!o->count_only)
            rc = write_component(o, &s, err);
        free_source(&s);
        return rc;
    }
    for (int i = 0; rc == 0 && i < NCOMP; i++)
        if (s.has[i] && report) report(ctx, weight_components[i], s.params[i], s.tensors[i]);
    if (rc == 0 && !o->count_only)
        rc = o->layout == SYNTH_SINGLE ? write_single(o, &s, err) : write_diffusers(o, &s, err);
    free_source(&s);
    return rc;
}
