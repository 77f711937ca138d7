/* lora.c — LoRA files: key layouts, validation and the merge (see lora.h).
 *
 * Upstream semantics: diffusers v0.31.0 loaders/lora_conversion_utils.py
 * (_convert_non_diffusers_lora_to_diffusers: kohya keys -> diffusers module
 * names, alpha -> network_alphas), loaders/lora_base.py (fuse_lora: scale the
 * layer by lora_scale, then merge), peft v0.13.2 tuners/lora/layer.py
 * (Linear/Conv2d.get_delta_weight: (B @ A) * scaling, scaling = alpha / r;
 * conv k x k with a 1x1 B: conv2d(A.permute, B).permute, i.e. a sum over r). */
#include "lora.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum part { PART_DOWN, PART_UP, PART_ALPHA };

/* One table for both layouts. kohya: module names with '_' for '.', resolved
 * against the model; peft: module names as they are. */
static const struct {
    const char *prefix, *component;
    int kohya;
} prefixes[] = {
    {"lora_unet_", "unet", 1},
    {"lora_te_", "text_encoder", 1},
    {"lora_te1_", "text_encoder", 1},
    {"lora_te2_", "text_encoder_2", 1},
    {"unet.", "unet", 0},
    {"text_encoder.", "text_encoder", 0},
    {"text_encoder_2.", "text_encoder_2", 0},
};
#define NPREFIX (sizeof prefixes / sizeof *prefixes)

static const struct {
    const char *suffix;
    enum part part;
    const char *role; /* for messages */
} suffixes[] = {
    {".lora_down.weight", PART_DOWN, "lora_down.weight"},
    {".lora_up.weight", PART_UP, "lora_up.weight"},
    {".lora_A.weight", PART_DOWN, "lora_A.weight"},
    {".lora_B.weight", PART_UP, "lora_B.weight"},
    {".lora.down.weight", PART_DOWN, "lora.down.weight"},
    {".lora.up.weight", PART_UP, "lora.up.weight"},
    {".alpha", PART_ALPHA, "alpha"},
};
#define NSUFFIX (sizeof suffixes / sizeof *suffixes)

struct lora_module {
    char *module;     /* as in the file, e.g. "down_blocks_0_attentions_0_proj_in" (kohya) */
    const char *key;  /* one full key, for messages */
    int prefix;       /* index in prefixes[] */
    const struct tensor *down, *up, *alpha;
    int applied;
    const char *target; /* once applied: the merged weight's name in its component */
};

struct lora {
    char *path;
    struct st_file *file;
    struct lora_module *m;
    size_t n;
};

/* ------------------------------------------------------------- parsing */

struct parsed {
    char *module;
    int prefix;
    enum part part;
    const char *role;
    const struct tensor *t;
};

static int parse_key(const char *key, struct parsed *p)
{
    const size_t len = strlen(key);
    for (size_t i = 0; i < NPREFIX; i++) {
        size_t pl = strlen(prefixes[i].prefix);
        if (strncmp(key, prefixes[i].prefix, pl) != 0) continue;
        for (size_t j = 0; j < NSUFFIX; j++) {
            size_t sl = strlen(suffixes[j].suffix);
            if (len <= pl + sl || strcmp(key + len - sl, suffixes[j].suffix) != 0) continue;
            p->module = OS_MALLOC(len - pl - sl + 1);
            if (!p->module) return -1;
            memcpy(p->module, key + pl, len - pl - sl);
            p->module[len - pl - sl] = '\0';
            p->prefix = (int)i;
            p->part = suffixes[j].part;
            p->role = suffixes[j].role;
            return 1;
        }
    }
    return 0;
}

static int cmp_parsed(const void *a, const void *b)
{
    const struct parsed *x = a, *y = b;
    int c = strcmp(prefixes[x->prefix].component, prefixes[y->prefix].component);
    if (c) return c;
    c = x->prefix - y->prefix; /* lora_te_ and text_encoder. never share a module */
    return c ? c : strcmp(x->module, y->module);
}

static int is_float(enum dtype d)
{
    return d == DT_F32 || d == DT_F16 || d == DT_BF16;
}

/* Shape without trailing 1s past dim 1: [r, in, 1, 1] and [r, in] are the
 * same matrix (a 1x1 conv is a Linear on channels). */
static int squeezed_ndim(const struct tensor *t)
{
    int n = t->ndim;
    while (n > 2 && t->shape[n - 1] == 1) n--;
    return n;
}

static int check_module(const struct lora *l, const struct lora_module *m, struct os_err *err)
{
    const char *pre = prefixes[m->prefix].prefix;
    char a[96], b[96];
    if (!m->down || !m->up)
        return os_fail(err, "%s: LoRA module %s%s has %s but no %s weight", l->path, pre, m->module,
                       m->down ? "a down (A)" : "an up (B)", m->down ? "up (B)" : "down (A)");
    if (!is_float(m->down->dtype) || !is_float(m->up->dtype))
        return os_fail(err, "%s: LoRA module %s%s: weights must be F32, F16 or BF16 (down %s, up %s)", l->path, pre,
                       m->module, dtype_name(m->down->dtype), dtype_name(m->up->dtype));
    const int dn = m->down->ndim, un = squeezed_ndim(m->up);
    if ((dn != 2 && dn != 4) || un != 2)
        return os_fail(err,
                       "%s: LoRA module %s%s: down %s and up %s are not a low-rank pair (down [r, in] or [r, in, kh, "
                       "kw], up [out, r] or [out, r, 1, 1])",
                       l->path, pre, m->module, tensor_shape_str(m->down, a, sizeof a),
                       tensor_shape_str(m->up, b, sizeof b));
    if (m->down->shape[0] < 1 || m->down->shape[0] != m->up->shape[1])
        return os_fail(err, "%s: LoRA module %s%s: rank mismatch: down %s has rank %lld, up %s has %lld", l->path, pre,
                       m->module, tensor_shape_str(m->down, a, sizeof a), (long long)m->down->shape[0],
                       tensor_shape_str(m->up, b, sizeof b), (long long)m->up->shape[1]);
    if (m->alpha) {
        if (tensor_numel(m->alpha) != 1 || m->alpha->ndim > 1 ||
            (!is_float(m->alpha->dtype) && m->alpha->dtype != DT_F64))
            return os_fail(err, "%s: LoRA module %s%s: alpha must be one float number, got %s %s", l->path, pre,
                           m->module, dtype_name(m->alpha->dtype), tensor_shape_str(m->alpha, a, sizeof a));
        if (!isfinite(tensor_get_f32(m->alpha, 0)))
            return os_fail(err, "%s: LoRA module %s%s: alpha is not finite", l->path, pre, m->module);
    }
    return 0;
}

static void free_parsed(struct parsed *p, size_t n)
{
    for (size_t i = 0; i < n; i++) OS_FREE(p[i].module);
    OS_FREE(p);
}

int lora_open(const char *path, struct lora **out, struct os_err *err)
{
    *out = NULL;
    struct lora *l = OS_CALLOC(1, sizeof *l);
    if (!l || !(l->path = os_strdup(path))) {
        OS_FREE(l);
        return os_fail(err, "out of memory");
    }
    if (st_open(path, &l->file, err)) {
        lora_close(l);
        return -1;
    }
    const size_t nt = l->file->ntensors;
    struct parsed *p = OS_CALLOC(nt ? nt : 1, sizeof *p);
    if (!p) goto oom;
    char unknown[200] = "";
    size_t nunknown = 0;
    for (size_t i = 0; i < nt; i++) {
        int r = parse_key(l->file->tensors[i].name, &p[i]);
        if (r < 0) {
            free_parsed(p, nt);
            goto oom;
        }
        p[i].t = &l->file->tensors[i];
        if (r == 0) {
            if (nunknown < 3) {
                size_t k = strlen(unknown);
                snprintf(unknown + k, sizeof unknown - k, "%s\"%s\"", nunknown ? ", " : "", l->file->tensors[i].name);
            }
            nunknown++;
        }
    }
    if (nunknown) {
        os_fail(err,
                "%s: %zu key%s of no known LoRA layout (%s%s); expected kohya lora_unet_/lora_te*_<module>"
                ".lora_down.weight/.lora_up.weight/.alpha or peft unet./text_encoder*.<module>.lora_A/.lora_B.weight",
                path, nunknown, nunknown == 1 ? " is" : "s are", unknown, nunknown > 3 ? ", ..." : "");
        free_parsed(p, nt);
        lora_close(l);
        return -1;
    }
    if (nt == 0) {
        free_parsed(p, nt);
        lora_close(l);
        return os_fail(err, "%s: the LoRA file holds no tensors", path);
    }
    qsort(p, nt, sizeof *p, cmp_parsed);
    l->m = OS_CALLOC(nt, sizeof *l->m);
    if (!l->m) {
        free_parsed(p, nt);
        goto oom;
    }
    for (size_t i = 0; i < nt; i++) {
        struct lora_module *m = l->n ? &l->m[l->n - 1] : NULL;
        if (!m || m->prefix != p[i].prefix || strcmp(m->module, p[i].module) != 0) {
            m = &l->m[l->n++];
            m->module = p[i].module;
            m->prefix = p[i].prefix;
            m->key = p[i].t->name;
            p[i].module = NULL; /* moved */
        }
        const struct tensor **slot = p[i].part == PART_DOWN ? &m->down : p[i].part == PART_UP ? &m->up : &m->alpha;
        if (*slot) {
            os_fail(err, "%s: LoRA module %s%s has two %s tensors (\"%s\" and \"%s\")", path, prefixes[m->prefix].prefix,
                    m->module, p[i].part == PART_DOWN ? "down" : p[i].part == PART_UP ? "up" : "alpha", (*slot)->name,
                    p[i].t->name);
            free_parsed(p, nt);
            lora_close(l);
            return -1;
        }
        *slot = p[i].t;
    }
    free_parsed(p, nt);
    for (size_t i = 0; i < l->n; i++)
        if (check_module(l, &l->m[i], err)) {
            lora_close(l);
            return -1;
        }
    *out = l;
    return 0;
oom:
    lora_close(l);
    return os_fail(err, "out of memory");
}

void lora_close(struct lora *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) OS_FREE(l->m[i].module);
    OS_FREE(l->m);
    st_close(l->file);
    OS_FREE(l->path);
    OS_FREE(l);
}

size_t lora_nmodules(const struct lora *l, const char *component)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) n += !component || strcmp(prefixes[l->m[i].prefix].component, component) == 0;
    return n;
}

const char *lora_merged_weight(const struct lora *l, size_t i, const char **component)
{
    if (i >= l->n) return NULL;
    if (component) *component = prefixes[l->m[i].prefix].component;
    return l->m[i].target;
}

/* ---------------------------------------------------------- resolving */

/* The kohya spelling of every weight of c that a LoRA can target (Linear
 * [out, in] and Conv2d [out, in, kh, kw] "<module>.weight"), sorted. */
struct kname {
    char *name;
    size_t idx;
    int ambiguous; /* two modules of c give this spelling */
};

static int cmp_kname(const void *a, const void *b)
{
    return strcmp(((const struct kname *)a)->name, ((const struct kname *)b)->name);
}

static void free_knames(struct kname *k, size_t n)
{
    for (size_t i = 0; i < n; i++) OS_FREE(k[i].name);
    OS_FREE(k);
}

static int has_weight_suffix(const struct tensor *t)
{
    size_t n = strlen(t->name);
    return n > 7 && strcmp(t->name + n - 7, ".weight") == 0 && (t->ndim == 2 || t->ndim == 4);
}

static struct kname *kohya_names(const struct component *c, size_t *out_n)
{
    struct kname *k = OS_CALLOC(c->ntensors ? c->ntensors : 1, sizeof *k);
    if (!k) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < c->ntensors; i++) {
        const struct tensor *t = &c->tensors[i];
        if (!has_weight_suffix(t)) continue;
        size_t len = strlen(t->name) - 7;
        char *s = OS_MALLOC(len + 1);
        if (!s) {
            free_knames(k, n);
            return NULL;
        }
        for (size_t j = 0; j < len; j++) s[j] = t->name[j] == '.' ? '_' : t->name[j];
        s[len] = '\0';
        k[n].name = s;
        k[n++].idx = i;
    }
    qsort(k, n, sizeof *k, cmp_kname);
    for (size_t i = 1; i < n; i++)
        if (strcmp(k[i].name, k[i - 1].name) == 0) k[i].ambiguous = k[i - 1].ambiguous = 1;
    *out_n = n;
    return k;
}

/* c's tensor index for module m, -1 if none, -2 if the kohya name fits two. */
static long resolve(const struct component *c, const struct lora_module *m, const struct kname *k, size_t nk)
{
    if (prefixes[m->prefix].kohya) {
        struct kname key = {.name = m->module};
        const struct kname *hit = bsearch(&key, k, nk, sizeof *k, cmp_kname);
        if (!hit) return -1;
        if (hit->ambiguous) return -2;
        return (long)hit->idx;
    }
    size_t len = strlen(m->module);
    char *name = OS_MALLOC(len + 8);
    if (!name) return -1;
    memcpy(name, m->module, len);
    memcpy(name + len, ".weight", 8);
    long i = component_index(c, name);
    OS_FREE(name);
    if (i >= 0 && !has_weight_suffix(&c->tensors[i])) i = -1;
    return i;
}

/* up · down must have W's shape: up [out, r(, 1, 1)], down [r, rest of W]. */
static int shapes_fit(const struct tensor *w, const struct lora_module *m)
{
    if (m->up->shape[0] != w->shape[0]) return 0;
    const int wn = squeezed_ndim(w), dn = squeezed_ndim(m->down);
    if (wn != dn) return 0;
    for (int i = 1; i < wn; i++)
        if (w->shape[i] != m->down->shape[i]) return 0;
    return 1;
}

/* ------------------------------------------------------------- merging */

static int is_owned(const struct component *c, const void *p)
{
    for (size_t i = 0; i < c->nowned; i++)
        if (c->owned[i] == p) return 1;
    return 0;
}

/* W += scaling · up · down on the private copy w[out x inner] (dtype dt).
 * Each element sums its r products in double in ascending r (the products
 * of widened f16/f32 values are exact in double) and rounds once: the
 * float32 B @ A that peft computes, correctly rounded. Then, as peft does in
 * float32, delta * scaling. Into an f32 weight: W + delta, one rounding.
 * Into an f16/bf16 weight (LORA_MERGE_STORED), as peft on the CPU: delta
 * rounded to the weight's dtype, then the in-place half add, which torch
 * computes in float and rounds once.
 *
 * Rows are independent and each element's order is fixed, so the rows are
 * shared among OpenMP threads with the same bits as one thread: LCM-LoRA
 * touches most of a UNet, r = 64 multiply-adds per weight (about 50 G for
 * SD, 160 G for SDXL), the bulk of the load time. */
static int merge(void *w, enum dtype dt, const struct tensor *up, const struct tensor *down, float scaling,
                 int64_t out, int64_t inner, int64_t r)
{
    const size_t nd = (size_t)(r * inner);
    double *dm = OS_MALLOC(nd * sizeof *dm);
    float *tmp = OS_MALLOC(nd * sizeof *tmp);
    if (!dm || !tmp) {
        OS_FREE(dm);
        OS_FREE(tmp);
        return -1;
    }
    tensor_read_f32(down, 0, r * inner, tmp);
    for (size_t i = 0; i < nd; i++) dm[i] = tmp[i];
    OS_FREE(tmp);
    int failed = 0;
    /* Columns in blocks whose slice of down (r x MERGE_COLS doubles, 128 KiB
     * at r = 64) stays in cache while every row passes over it: row by row
     * over whole columns streams all of down from memory once per row. */
    enum { MERGE_COLS = 256 };
#pragma omp parallel
    {
        double *acc = OS_MALLOC(MERGE_COLS * sizeof *acc);
        float *urow = OS_MALLOC((size_t)r * sizeof *urow);
        if (!acc || !urow) {
#pragma omp atomic write
            failed = 1;
        }
        for (int64_t j0 = 0; j0 < inner; j0 += MERGE_COLS) {
            const int64_t jn = inner - j0 < MERGE_COLS ? inner - j0 : MERGE_COLS;
#pragma omp for schedule(static)
            for (int64_t o = 0; o < out; o++) {
                if (!acc || !urow) continue;
                tensor_read_f32(up, o * r, r, urow);
                for (int64_t j = 0; j < jn; j++) acc[j] = 0.0;
                for (int64_t k = 0; k < r; k++) {
                    const double u = urow[k];
                    const double *drow = dm + k * inner + j0;
#pragma omp simd
                    for (int64_t j = 0; j < jn; j++) acc[j] += u * drow[j];
                }
                for (int64_t j = 0; j < jn; j++) {
                    float delta = (float)acc[j];
                    delta = delta * scaling;
                    size_t at = (size_t)(o * inner + j0 + j);
                    if (dt == DT_F32) {
                        float *wr = (float *)w;
                        wr[at] = wr[at] + delta;
                    } else if (dt == DT_F16) {
                        uint16_t *wr = (uint16_t *)w;
                        wr[at] = f32_to_f16(f16_to_f32(wr[at]) + f16_to_f32(f32_to_f16(delta)));
                    } else {
                        uint16_t *wr = (uint16_t *)w;
                        wr[at] = f32_to_bf16(bf16_to_f32(wr[at]) + bf16_to_f32(f32_to_bf16(delta)));
                    }
                }
            }
        }
        OS_FREE(acc);
        OS_FREE(urow);
    }
    OS_FREE(dm);
    return failed ? -1 : 0;
}

/* The module list for messages: up to 3 names and a count. */
static void list_add(char *buf, size_t len, size_t *count, const char *pre, const char *name)
{
    if (*count < 3) {
        size_t k = strlen(buf);
        snprintf(buf + k, len - k, "%s%s%s", *count ? ", " : "", pre, name);
    }
    (*count)++;
}

/* Original-SD (LDM / SGM) block names, which kohya's SDXL LoRAs use. */
static int ldm_name(const char *module)
{
    return strncmp(module, "input_blocks", 12) == 0 || strncmp(module, "middle_block", 12) == 0 ||
           strncmp(module, "output_blocks", 13) == 0;
}

/* A merged weight's original is not read again: its pages leave RSS at
 * once, not when the stage releases the component, so the load's peak is
 * the copies, not copies plus originals. Only the pages wholly inside it:
 * a page shared with a neighbour would be faulted back in by the neighbour's
 * copy (small tensors share pages); those go after the last merge. */
static void release_inner_pages(const struct component *c, const void *p, size_t len)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    if (page == 0 || page == (uintptr_t)-1) page = 4096;
    uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1), b = ((uintptr_t)p + len) & ~(page - 1);
    if (b > a) component_release_range(c, (const void *)a, (size_t)(b - a));
}

int lora_apply(struct lora *l, struct component *c, const char *component, float scale, enum lora_merge mode,
               struct os_err *err)
{
    if (!isfinite(scale)) return os_fail(err, "%s: the LoRA scale must be a finite number", l->path);
    size_t nk = 0;
    struct kname *k = kohya_names(c, &nk);
    long *idx = OS_CALLOC(l->n ? l->n : 1, sizeof *idx);
    if (!k || !idx) {
        free_knames(k, nk);
        OS_FREE(idx);
        return os_fail(err, "out of memory");
    }
    /* resolve and check every module before touching anything */
    char list[300] = "";
    size_t unmatched = 0, ldm = 0;
    int rc = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        const struct lora_module *m = &l->m[i];
        idx[i] = -1;
        if (strcmp(prefixes[m->prefix].component, component) != 0) continue;
        long t = resolve(c, m, k, nk);
        if (t == -2) {
            rc = os_fail(err, "%s: LoRA module %s%s matches two %s weights (ambiguous kohya name)", l->path,
                         prefixes[m->prefix].prefix, m->module, component);
        } else if (t < 0) {
            list_add(list, sizeof list, &unmatched, prefixes[m->prefix].prefix, m->module);
            ldm += ldm_name(m->module);
        } else {
            const struct tensor *w = &c->tensors[t];
            if (!shapes_fit(w, m)) {
                char a[96], b[96], d[96];
                rc = os_fail(err,
                             "%s: LoRA module %s%s: up %s x down %s does not give the shape of %s weight \"%s\" %s",
                             l->path, prefixes[m->prefix].prefix, m->module, tensor_shape_str(m->up, a, sizeof a),
                             tensor_shape_str(m->down, b, sizeof b), component, w->name,
                             tensor_shape_str(w, d, sizeof d));
            } else if (w->dtype != DT_F32 && w->dtype != DT_F16 && w->dtype != DT_BF16) {
                rc = os_fail(err, "%s: %s weight \"%s\" has dtype %s; LoRA merges into F32, F16 or BF16 weights",
                             l->path, component, w->name, dtype_name(w->dtype));
            } else if (w->backend_cache) {
                rc = os_fail(err, "%s: %s weight \"%s\" is already in use by a backend; apply LoRAs before loading the model",
                             l->path, component, w->name);
            }
            idx[i] = t;
        }
    }
    free_knames(k, nk);
    if (!rc && unmatched)
        rc = os_fail(err, "%s: %zu LoRA module%s match%s no %s weight (%s%s)%s", l->path, unmatched,
                     unmatched == 1 ? "" : "s", unmatched == 1 ? "es" : "", component, list,
                     unmatched > 3 ? ", ..." : "",
                     ldm ? "; original-SD block names (input_blocks/middle_block/output_blocks) are not supported" : "");
    if (rc) {
        OS_FREE(idx);
        return -1;
    }

    struct span {
        const void *p;
        size_t len;
    } *orig = OS_MALLOC((l->n ? l->n : 1) * sizeof *orig);
    size_t norig = 0;
    if (!orig) {
        OS_FREE(idx);
        return os_fail(err, "out of memory");
    }
    /* the component's own copy of its table, once: entries of merged weights
     * will point at private copies, all others still into the mapping */
    int any = 0;
    for (size_t i = 0; i < l->n; i++) any |= idx[i] >= 0;
    if (any && !c->tensors_owned) {
        struct tensor *copy = OS_MALLOC(c->ntensors * sizeof *copy);
        if (!copy) {
            OS_FREE(orig);
            OS_FREE(idx);
            return os_fail(err, "out of memory");
        }
        memcpy(copy, c->tensors, c->ntensors * sizeof *copy);
        component_set_tensors(c, copy, c->ntensors); /* same sorted order: indices stay valid */
    }
    for (size_t i = 0; i < l->n && !rc; i++) {
        if (idx[i] < 0) continue;
        struct lora_module *m = &l->m[i];
        struct tensor *w = &c->tensors[idx[i]];
        const int64_t r = m->down->shape[0], out = w->shape[0], inner = tensor_numel(w) / (out ? out : 1);
        /* peft: scaling = lora_alpha / r (Python floats), fuse_lora multiplies
         * it by lora_scale, and the float32 tensor product is multiplied by it
         * as a float32 scalar */
        const double alpha = m->alpha ? tensor_get_f32(m->alpha, 0) : (double)r;
        const float scaling = (float)(alpha / (double)r * (double)scale);
        /* the private copy: f32, or (LORA_MERGE_STORED) the weight's own f16/bf16 */
        enum dtype dt = mode == LORA_MERGE_STORED && (w->dtype == DT_F16 || w->dtype == DT_BF16) ? w->dtype : DT_F32;
        if (w->dtype != dt || !is_owned(c, w->data)) {
            const size_t n = (size_t)(out * inner);
            void *data = OS_MALLOC(n * dtype_size(dt));
            if (!data || component_own(c, data)) {
                OS_FREE(data);
                rc = os_fail(err, "out of memory for the merged copy of %s", w->name);
                break;
            }
            if (dt == DT_F32) tensor_read_f32(w, 0, out * inner, data);
            else memcpy(data, w->data, n * dtype_size(dt));
            orig[norig].p = w->data;
            orig[norig++].len = n * dtype_size(w->dtype);
            release_inner_pages(c, w->data, n * dtype_size(w->dtype));
            w->data = data;
            w->dtype = dt;
        }
        if (merge((void *)w->data, dt, m->up, m->down, scaling, out, inner, r)) rc = os_fail(err, "out of memory");
        m->applied = 1;
        m->target = w->name;
    }
    /* ... and the pages they share with neighbours, now that no later copy
     * will fault them back in. */
    for (size_t i = 0; i < norig; i++) component_release_range(c, orig[i].p, orig[i].len);
    OS_FREE(orig);
    OS_FREE(idx);
    return rc;
}

void lora_release_pages(struct lora *l)
{
    if (l) st_release_pages(l->file);
}

int lora_check_applied(const struct lora *l, struct os_err *err)
{
    char list[300] = "";
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (!l->m[i].applied) list_add(list, sizeof list, &n, prefixes[l->m[i].prefix].prefix, l->m[i].module);
    if (!n) return 0;
    return os_fail(err, "%s: %zu LoRA module%s not applied to any model component (%s%s)", l->path, n,
                   n == 1 ? " was" : "s were", list, n > 3 ? ", ..." : "");
}

int lora_apply_file(struct component *c, const char *component, const char *path, float scale, enum lora_merge mode,
                    struct os_err *err)
{
    struct lora *l;
    if (lora_open(path, &l, err)) return -1;
    /* refuse before merging anything if part of the file would be dropped */
    char list[300] = "";
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(prefixes[l->m[i].prefix].component, component) != 0)
            list_add(list, sizeof list, &n, prefixes[l->m[i].prefix].prefix, l->m[i].module);
    int rc = n ? os_fail(err, "%s: %zu LoRA module%s to another component than the %s and would not be applied (%s%s)",
                         path, n, n == 1 ? " belongs" : "s belong", component, list, n > 3 ? ", ..." : "")
               : lora_apply(l, c, component, scale, mode, err);
    lora_close(l);
    return rc;
}

int lora_parse_arg(const char *arg, char **path, float *scale, struct os_err *err)
{
    *path = NULL;
    *scale = 1.0f;
    const char *colon = strrchr(arg, ':');
    size_t len = strlen(arg);
    if (colon && colon[1]) {
        char *end;
        errno = 0;
        double v = strtod(colon + 1, &end);
        if (*end == '\0' && errno == 0 && isfinite(v)) {
            *scale = (float)v;
            len = (size_t)(colon - arg);
        }
    }
    if (len == 0) return os_fail(err, "--lora \"%s\": expected FILE or FILE:SCALE", arg);
    *path = OS_MALLOC(len + 1);
    if (!*path) return os_fail(err, "out of memory");
    memcpy(*path, arg, len);
    (*path)[len] = '\0';
    return 0;
}
