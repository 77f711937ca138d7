#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "json.h"

/* ---------------------------------------------------------------- reading */

struct span {
    uint64_t begin, end;
    size_t index;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const struct tensor *)a)->name, ((const struct tensor *)b)->name);
}

static int get_u64(const struct json *v, uint64_t *out)
{
    if (v->type != JSON_NUMBER || !v->is_int || v->integer < 0) return -1;
    *out = (uint64_t)v->integer;
    return 0;
}

/* Validate one header entry and fill t. */
static int parse_entry(const char *what, const char *name, const struct json *e, uint64_t data_len,
                       struct tensor *t, struct span *sp, struct os_err *err)
{
    if (e->type != JSON_OBJECT)
        return os_fail(err, "%s: tensor \"%s\": header entry must be an object, got %s", what, name,
                       json_type_name(e->type));
    const struct json *jd = json_get(e, "dtype"), *js = json_get(e, "shape"), *jo = json_get(e, "data_offsets");
    if (!jd || !js || !jo)
        return os_fail(err, "%s: tensor \"%s\": header entry lacks %s", what, name,
                       !jd ? "\"dtype\"" : !js ? "\"shape\"" : "\"data_offsets\"");
    if (jd->type != JSON_STRING) return os_fail(err, "%s: tensor \"%s\": dtype must be a string", what, name);
    int dt = dtype_from_name(jd->str);
    if (dt < 0) return os_fail(err, "%s: tensor \"%s\": unknown dtype \"%s\"", what, name, jd->str);
    if (js->type != JSON_ARRAY) return os_fail(err, "%s: tensor \"%s\": shape must be a list", what, name);
    if (js->len > TENSOR_MAX_DIMS)
        return os_fail(err, "%s: tensor \"%s\": %zu dimensions, at most %d supported", what, name, js->len,
                       TENSOR_MAX_DIMS);
    if (jo->type != JSON_ARRAY || jo->len != 2)
        return os_fail(err, "%s: tensor \"%s\": data_offsets must be a list [begin, end]", what, name);
    uint64_t begin, end;
    if (get_u64(&jo->items[0], &begin) || get_u64(&jo->items[1], &end))
        return os_fail(err, "%s: tensor \"%s\": data_offsets must be non-negative integers", what, name);
    if (end < begin)
        return os_fail(err, "%s: tensor \"%s\": data_offsets [%llu, %llu] end before begin", what, name,
                       (unsigned long long)begin, (unsigned long long)end);
    if (end > data_len)
        return os_fail(err,
                       "%s: tensor \"%s\": data_offsets [%llu, %llu] run past the end of the data (%llu bytes; "
                       "file truncated?)",
                       what, name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)data_len);
    uint64_t numel = 1;
    int overflow = 0;
    t->ndim = (int)js->len;
    for (size_t i = 0; i < js->len; i++) {
        uint64_t d;
        if (get_u64(&js->items[i], &d))
            return os_fail(err, "%s: tensor \"%s\": shape entries must be non-negative integers", what, name);
        t->shape[i] = (int64_t)d;
        if (d != 0 && numel > UINT64_MAX / d) overflow = 1;
        else numel *= d;
    }
    uint64_t esize = dtype_size((enum dtype)dt);
    if (overflow || numel > UINT64_MAX / esize)
        return os_fail(err, "%s: tensor \"%s\": shape is too large", what, name);
    if (numel * esize != end - begin) {
        char sh[160];
        t->dtype = (enum dtype)dt;
        return os_fail(err, "%s: tensor \"%s\": data_offsets [%llu, %llu] span %llu bytes but %s %s needs %llu",
                       what, name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)(end - begin), jd->str, tensor_shape_str(t, sh, sizeof sh),
                       (unsigned long long)(numel * esize));
    }
    t->name = name;
    t->dtype = (enum dtype)dt;
    sp->begin = begin;
    sp->end = end;
    return 0;
}

int st_open_buffer(const void *buf, size_t len, const char *what, struct st_file **out, struct os_err *err)
{
    const unsigned char *p = buf;
    *out = NULL;
    if (len < 8) return os_fail(err, "%s: too short to be a safetensors file (%zu bytes)", what, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > ST_MAX_HEADER)
        return os_fail(err, "%s: header length %llu is larger than the %u-byte limit (not a safetensors file?)",
                       what, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > len - 8)
        return os_fail(err, "%s: header length %llu runs past the end of the file (%zu bytes; truncated?)", what,
                       (unsigned long long)hlen, len);
    if (hlen < 2) return os_fail(err, "%s: header is %llu bytes, too short for JSON", what, (unsigned long long)hlen);
    if (p[8] != '{') return os_fail(err, "%s: header does not start with '{' (not a safetensors file?)", what);

    /* The writer may pad the header with spaces (allowed) but not NULs. */
    char what_header[OS_ERR_MAX / 2];
    snprintf(what_header, sizeof what_header, "%s: header", what); /* "x.safetensors: header: invalid JSON ..." */
    struct json *h = json_parse((const char *)p + 8, (size_t)hlen, what_header, err);
    if (!h) return -1;
    if (h->type != JSON_OBJECT) {
        json_free(h);
        return os_fail(err, "%s: header must be a JSON object", what);
    }
    uint64_t data_len = len - 8 - hlen;

    struct st_file *f = OS_CALLOC(1, sizeof *f);
    struct span *spans = NULL;
    if (!f) goto oom;
    f->header = h;
    f->map = p;
    f->map_len = len;
    f->path = os_strdup(what);
    size_t n = 0;
    for (size_t i = 0; i < h->len; i++)
        if (strcmp(h->keys[i], "__metadata__") != 0) n++;
    f->tensors = OS_CALLOC(n ? n : 1, sizeof *f->tensors);
    spans = OS_CALLOC(n ? n : 1, sizeof *spans);
    if (!f->path || !f->tensors || !spans) goto oom;

    size_t k = 0;
    for (size_t i = 0; i < h->len; i++) {
        const char *key = h->keys[i];
        const struct json *e = &h->items[i];
        if (strcmp(key, "__metadata__") == 0) {
            if (e->type == JSON_NULL) continue;
            if (e->type != JSON_OBJECT) {
                os_fail(err, "%s: __metadata__ must be an object of strings", what);
                goto fail;
            }
            f->nmeta = e->len;
            f->meta_keys = OS_CALLOC(e->len ? e->len : 1, sizeof *f->meta_keys);
            f->meta_values = OS_CALLOC(e->len ? e->len : 1, sizeof *f->meta_values);
            if (!f->meta_keys || !f->meta_values) goto oom;
            for (size_t j = 0; j < e->len; j++) {
                if (e->items[j].type != JSON_STRING) {
                    os_fail(err, "%s: __metadata__ value \"%s\" must be a string", what, e->keys[j]);
                    goto fail;
                }
                f->meta_keys[j] = e->keys[j];
                f->meta_values[j] = e->items[j].str;
            }
            continue;
        }
        if (strlen(key) != h->key_lens[i]) {
            os_fail(err, "%s: a tensor name contains a NUL character", what);
            goto fail;
        }
        if (parse_entry(what, key, e, data_len, &f->tensors[k], &spans[k], err)) goto fail;
        spans[k].index = k;
        k++;
    }
    f->ntensors = k;

    /* Overlap check on spans sorted by start; empty tensors overlap nothing. */
    qsort(spans, k, sizeof *spans, cmp_span);
    uint64_t prev_end = 0;
    size_t prev = SIZE_MAX;
    for (size_t i = 0; i < k; i++) {
        if (spans[i].begin == spans[i].end) continue;
        if (prev != SIZE_MAX && spans[i].begin < prev_end) {
            os_fail(err, "%s: tensors \"%s\" and \"%s\" overlap in the data section", what,
                    f->tensors[spans[prev].index].name, f->tensors[spans[i].index].name);
            goto fail;
        }
        prev_end = spans[i].end;
        prev = i;
    }
    const unsigned char *data = p + 8 + hlen;
    for (size_t i = 0; i < k; i++) f->tensors[spans[i].index].data = data + spans[i].begin;
    OS_FREE(spans);
    qsort(f->tensors, k, sizeof *f->tensors, cmp_tensor_name);
    *out = f;
    return 0;
oom:
    os_fail(err, "%s: out of memory reading the header", what);
fail:
    OS_FREE(spans);
    if (f) {
        st_close(f); /* owns_map is 0: the caller's buffer stays */
    } else {
        json_free(h);
    }
    return -1;
}

int st_open(const char *path, struct st_file **out, struct os_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us: refused below */
    if (fd < 0) return os_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return os_fail(err, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    if (len < 8) {
        close(fd);
        return os_fail(err, "%s: too short to be a safetensors file (%zu bytes)", path, len);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return os_fail(err, "%s: cannot map: %s", path, strerror(errno));
    struct st_file *f;
    if (st_open_buffer(map, len, path, &f, err)) {
        munmap(map, len);
        return -1;
    }
    f->owns_map = 1; /* st_close unmaps */
    *out = f;
    return 0;
}

void st_close(struct st_file *f)
{
    if (!f) return;
    if (f->owns_map) munmap((void *)f->map, f->map_len);
    OS_FREE(f->path);
    OS_FREE(f->tensors);
    OS_FREE((void *)f->meta_keys);
    OS_FREE((void *)f->meta_values);
    json_free(f->header);
    OS_FREE(f);
}

const struct tensor *st_get(const struct st_file *f, const char *name)
{
    size_t lo = 0, hi = f->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *st_meta(const struct st_file *f, const char *key)
{
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

void st_release_pages(struct st_file *f)
{
    if (f && f->owns_map) madvise((void *)f->map, f->map_len, MADV_DONTNEED);
}

void st_release_range(const struct st_file *f, const void *p, size_t len)
{
    if (!f || !f->owns_map || !len) return;
    uintptr_t lo = (uintptr_t)f->map, hi = lo + f->map_len, a = (uintptr_t)p, b = a + len;
    if (b <= lo || a >= hi) return; /* not ours (e.g. a private copy) */
    if (a < lo) a = lo;
    if (b > hi) b = hi;
    /* A page shared with a neighbouring tensor is dropped too: the mapping
     * is read-only and private, so the next read faults the same bytes back
     * in from the file. Only the mapping's own first page can start before
     * lo, and mmap returns page-aligned addresses. */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    if (page == 0 || page == (uintptr_t)-1) page = 4096;
    a &= ~(page - 1);
    b = (b + page - 1) & ~(page - 1);
    madvise((void *)a, (size_t)(b - a), MADV_DONTNEED);
}

/* ---------------------------------------------------------------- writing */

struct st_item {
    char *name;
    enum dtype dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    size_t bytes;
    void *copy;
    st_fill_fn fill;
    void *ctx;
};

struct st_writer {
    struct st_item *items;
    size_t n, cap;
    char **meta; /* key, value pairs */
    size_t nmeta;
};

struct st_writer *st_writer_new(void)
{
    return OS_CALLOC(1, sizeof(struct st_writer));
}

void st_writer_free(struct st_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        OS_FREE(w->items[i].name);
        OS_FREE(w->items[i].copy);
    }
    for (size_t i = 0; i < 2 * w->nmeta; i++) OS_FREE(w->meta[i]);
    OS_FREE(w->meta);
    OS_FREE(w->items);
    OS_FREE(w);
}

static struct st_item *add_item(struct st_writer *w, const char *name, enum dtype dt, int ndim,
                                const int64_t *shape, struct os_err *err)
{
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        os_fail(err, "tensor \"%s\": %d dimensions not supported", name, ndim);
        return NULL;
    }
    if (!dtype_size(dt)) {
        os_fail(err, "tensor \"%s\": unknown dtype", name);
        return NULL;
    }
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->items[i].name, name) == 0) {
            os_fail(err, "tensor \"%s\" added twice", name);
            return NULL;
        }
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        struct st_item *it = OS_REALLOC(w->items, cap * sizeof *it);
        if (!it) {
            os_fail(err, "out of memory");
            return NULL;
        }
        w->items = it;
        w->cap = cap;
    }
    struct st_item *it = &w->items[w->n];
    memset(it, 0, sizeof *it);
    size_t bytes = dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || os_mul_size(bytes, (size_t)shape[i], &bytes)) {
            os_fail(err, "tensor \"%s\": bad shape", name);
            return NULL;
        }
        it->shape[i] = shape[i];
    }
    it->name = os_strdup(name);
    if (!it->name) {
        os_fail(err, "out of memory");
        return NULL;
    }
    it->dtype = dt;
    it->ndim = ndim;
    it->bytes = bytes;
    w->n++;
    return it;
}

int st_writer_add(struct st_writer *w, const char *name, enum dtype dt, int ndim, const int64_t *shape,
                  const void *data, struct os_err *err)
{
    struct st_item *it = add_item(w, name, dt, ndim, shape, err);
    if (!it) return -1;
    it->copy = OS_MALLOC(it->bytes ? it->bytes : 1);
    if (!it->copy) {
        OS_FREE(it->name);
        w->n--;
        return os_fail(err, "tensor \"%s\": out of memory", name);
    }
    if (it->bytes) memcpy(it->copy, data, it->bytes);
    return 0;
}

int st_writer_add_fn(struct st_writer *w, const char *name, enum dtype dt, int ndim, const int64_t *shape,
                     st_fill_fn fill, void *ctx, struct os_err *err)
{
    struct st_item *it = add_item(w, name, dt, ndim, shape, err);
    if (!it) return -1;
    it->fill = fill;
    it->ctx = ctx;
    return 0;
}

int st_writer_meta(struct st_writer *w, const char *key, const char *value, struct os_err *err)
{
    char **m = OS_REALLOC(w->meta, (2 * w->nmeta + 2) * sizeof *m);
    if (!m) return os_fail(err, "out of memory");
    w->meta = m;
    m[2 * w->nmeta] = os_strdup(key);
    m[2 * w->nmeta + 1] = os_strdup(value);
    w->nmeta++;
    if (!m[2 * w->nmeta - 2] || !m[2 * w->nmeta - 1]) return os_fail(err, "out of memory");
    return 0;
}

/* A growable string for the header. */
struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
};

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = OS_REALLOC(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static void sb_json_string(struct sbuf *b, const char *s)
{
    sb_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            sb_putn(b, tmp, 2);
        } else if (c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            sb_puts(b, tmp);
        } else {
            sb_putn(b, (const char *)&c, 1);
        }
    }
    sb_puts(b, "\"");
}

int st_writer_write(struct st_writer *w, const char *path, struct os_err *err)
{
    struct sbuf h = {0};
    char tmp[64];
    uint64_t off = 0;
    sb_puts(&h, "{");
    if (w->nmeta) {
        sb_puts(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < w->nmeta; i++) {
            if (i) sb_puts(&h, ",");
            sb_json_string(&h, w->meta[2 * i]);
            sb_puts(&h, ":");
            sb_json_string(&h, w->meta[2 * i + 1]);
        }
        sb_puts(&h, "}");
    }
    for (size_t i = 0; i < w->n; i++) {
        const struct st_item *it = &w->items[i];
        if (i || w->nmeta) sb_puts(&h, ",");
        sb_json_string(&h, it->name);
        sb_puts(&h, ":{\"dtype\":\"");
        sb_puts(&h, dtype_name(it->dtype));
        sb_puts(&h, "\",\"shape\":[");
        for (int d = 0; d < it->ndim; d++) {
            snprintf(tmp, sizeof tmp, "%s%lld", d ? "," : "", (long long)it->shape[d]);
            sb_puts(&h, tmp);
        }
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + it->bytes));
        sb_puts(&h, tmp);
        off += it->bytes;
    }
    sb_puts(&h, "}");
    while (h.n % 8) sb_puts(&h, " "); /* data starts 8-aligned, as the Python writer does */
    if (h.oom) {
        OS_FREE(h.s);
        return os_fail(err, "%s: out of memory building the header", path);
    }

    struct atomic_file af;
    if (atomic_open(&af, path, err)) {
        OS_FREE(h.s);
        return -1;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    int ok = fwrite(len8, 1, 8, af.f) == 8 && fwrite(h.s, 1, h.n, af.f) == h.n;
    OS_FREE(h.s);
    for (size_t i = 0; ok && i < w->n; i++) {
        const struct st_item *it = &w->items[i];
        if (!it->bytes) continue;
        if (it->copy) {
            ok = fwrite(it->copy, 1, it->bytes, af.f) == it->bytes;
        } else {
            void *buf = OS_MALLOC(it->bytes);
            if (!buf) {
                atomic_abort(&af);
                return os_fail(err, "%s: out of memory for tensor \"%s\"", path, it->name);
            }
            if (it->fill(it->ctx, buf, it->bytes, err)) {
                OS_FREE(buf);
                atomic_abort(&af);
                return os_prefix(err, "%s: tensor \"%s\": ", path, it->name);
            }
            ok = fwrite(buf, 1, it->bytes, af.f) == it->bytes;
            OS_FREE(buf);
        }
    }
    if (!ok) {
        int e = errno;
        atomic_abort(&af);
        return os_fail(err, "%s: write failed: %s", path, strerror(e));
    }
    return atomic_commit(&af, err);
}
