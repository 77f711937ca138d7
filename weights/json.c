#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- allocation pool: every node, string and array of one document ---- */

struct pool_chunk {
    struct pool_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

/* The root node is the first allocation of the first chunk, so json_free can
 * find the pool from the root pointer alone. */
struct doc {
    struct pool_chunk *chunks;
    struct json root;
};

struct parser {
    const char *s, *end, *start;
    const char *what;
    struct os_err *err;
    struct doc *doc;
    int depth;
};

static void *pool_alloc(struct doc *d, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct pool_chunk *c = d->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = OS_MALLOC(sizeof *c + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = d->chunks;
        d->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

static int fail_at(struct parser *p, const char *at, const char *fmt, const char *detail)
{
    int line = 1, col = 1;
    for (const char *q = p->start; q < at && q < p->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char msg[256];
    snprintf(msg, sizeof msg, fmt, detail ? detail : "");
    return os_fail(p->err, "%s: invalid JSON at line %d, column %d: %s", p->what, line, col, msg);
}

static const char *skip_ws(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
    return s;
}

/* ---- strings ---- */

static int hex4(const char *s, const char *end, unsigned *out)
{
    if (end - s < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of a valid UTF-8 sequence at s (1..4), or 0 if invalid (overlong,
 * surrogate, > U+10FFFF, truncated). */
static size_t utf8_valid_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) { n = 2; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { n = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)(end - s) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

/* p->s points at the opening quote. */
static int parse_string(struct parser *p, const char **out, size_t *out_len)
{
    const char *s = p->s + 1;
    /* First pass: find the end and an upper bound of the decoded size. */
    const char *q = s;
    while (q < p->end && *q != '"') {
        if (*q == '\\' && q + 1 < p->end) q++;
        q++;
    }
    if (q >= p->end) return fail_at(p, p->s, "unterminated string%s", NULL);
    char *buf = pool_alloc(p->doc, (size_t)(q - s) + 1);
    if (!buf) return os_fail(p->err, "%s: out of memory parsing JSON", p->what);
    size_t n = 0;
    while (s < q) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20) return fail_at(p, s, "control character in string%s", NULL);
        if (c == '\\') {
            s++;
            switch (*s) {
            case '"': buf[n++] = '"'; s++; break;
            case '\\': buf[n++] = '\\'; s++; break;
            case '/': buf[n++] = '/'; s++; break;
            case 'b': buf[n++] = '\b'; s++; break;
            case 'f': buf[n++] = '\f'; s++; break;
            case 'n': buf[n++] = '\n'; s++; break;
            case 'r': buf[n++] = '\r'; s++; break;
            case 't': buf[n++] = '\t'; s++; break;
            case 'u': {
                unsigned cp;
                if (hex4(s + 1, q, &cp)) return fail_at(p, s - 1, "bad \\u escape%s", NULL);
                s += 5;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned lo;
                    if (q - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, q, &lo) || lo < 0xdc00 ||
                        lo > 0xdfff)
                        return fail_at(p, s - 6, "unpaired UTF-16 surrogate in \\u escape%s", NULL);
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    s += 6;
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return fail_at(p, s - 6, "unpaired UTF-16 surrogate in \\u escape%s", NULL);
                }
                n += put_utf8(buf + n, cp); /* never longer than the 6-12 escape bytes */
                break;
            }
            default:
                return fail_at(p, s - 1, "unknown escape in string%s", NULL);
            }
        } else {
            size_t k = utf8_valid_len((const unsigned char *)s, (const unsigned char *)q);
            if (!k) return fail_at(p, s, "invalid UTF-8 in string%s", NULL);
            memcpy(buf + n, s, k);
            n += k;
            s += k;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    p->s = q + 1;
    return 0;
}

/* ---- numbers ---- */

static int parse_number(struct parser *p, struct json *v)
{
    const char *s = p->s, *b = s;
    int integral = 1;
    if (s < p->end && *s == '-') s++;
    if (p->end - s >= 8 && memcmp(s, "Infinity", 8) == 0) { /* Python's json.dump writes these */
        v->type = JSON_NUMBER;
        v->number = (*b == '-') ? -INFINITY : INFINITY;
        p->s = s + 8;
        return 0;
    }
    if (s >= p->end || !(*s >= '0' && *s <= '9')) return fail_at(p, b, "unexpected character%s", NULL);
    if (*s == '0') {
        s++;
    } else {
        while (s < p->end && *s >= '0' && *s <= '9') s++;
    }
    if (s < p->end && *s == '.') {
        integral = 0;
        s++;
        if (s >= p->end || !(*s >= '0' && *s <= '9')) return fail_at(p, s, "digit expected after '.'%s", NULL);
        while (s < p->end && *s >= '0' && *s <= '9') s++;
    }
    if (s < p->end && (*s == 'e' || *s == 'E')) {
        integral = 0;
        s++;
        if (s < p->end && (*s == '+' || *s == '-')) s++;
        if (s >= p->end || !(*s >= '0' && *s <= '9')) return fail_at(p, s, "digit expected in exponent%s", NULL);
        while (s < p->end && *s >= '0' && *s <= '9') s++;
    }
    char tmp[64];
    size_t n = (size_t)(s - b);
    v->type = JSON_NUMBER;
    if (n < sizeof tmp) {
        memcpy(tmp, b, n);
        tmp[n] = '\0';
        v->number = strtod(tmp, NULL);
        if (integral) {
            errno = 0;
            long long ll = strtoll(tmp, NULL, 10);
            if (errno == 0) {
                v->is_int = 1;
                v->integer = ll;
            }
        }
    } else { /* absurdly long literal: keep it valid JSON, but as +-inf/0 */
        char *heap = OS_MALLOC(n + 1);
        if (!heap) return os_fail(p->err, "%s: out of memory parsing JSON", p->what);
        memcpy(heap, b, n);
        heap[n] = '\0';
        v->number = strtod(heap, NULL);
        OS_FREE(heap);
    }
    p->s = s;
    return 0;
}

/* ---- values ---- */

static int parse_value(struct parser *p, struct json *v);

/* Growable temporary arrays while reading a container; copied into the pool
 * once the count is known. */
struct growbuf {
    struct json *items;
    const char **keys;
    size_t *lens;
    size_t n, cap;
};

static int grow(struct growbuf *g, int with_keys)
{
    if (g->n < g->cap) return 0;
    size_t cap = g->cap ? g->cap * 2 : 8;
    struct json *it = OS_REALLOC(g->items, cap * sizeof *it);
    if (!it) return -1;
    g->items = it;
    if (with_keys) {
        const char **k = OS_REALLOC((void *)g->keys, cap * sizeof *k);
        if (!k) return -1;
        g->keys = k;
        size_t *l = OS_REALLOC(g->lens, cap * sizeof *l);
        if (!l) return -1;
        g->lens = l;
    }
    g->cap = cap;
    return 0;
}

static void growbuf_free(struct growbuf *g)
{
    OS_FREE(g->items);
    OS_FREE((void *)g->keys);
    OS_FREE(g->lens);
}

static int finish_container(struct parser *p, struct growbuf *g, struct json *v, int with_keys)
{
    v->len = g->n;
    if (g->n) {
        v->items = pool_alloc(p->doc, g->n * sizeof *v->items);
        if (!v->items) return -1;
        memcpy(v->items, g->items, g->n * sizeof *v->items);
        if (with_keys) {
            v->keys = pool_alloc(p->doc, g->n * sizeof *v->keys);
            v->key_lens = pool_alloc(p->doc, g->n * sizeof *v->key_lens);
            if (!v->keys || !v->key_lens) return -1;
            memcpy((void *)v->keys, g->keys, g->n * sizeof *v->keys);
            memcpy(v->key_lens, g->lens, g->n * sizeof *v->key_lens);
        }
    }
    return 0;
}

/* Duplicate keys: a linear check is quadratic for vocab.json (49k keys), so
 * check with a small open-addressing hash set over the growbuf. */
static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int find_duplicate(const struct growbuf *g, size_t *dup)
{
    if (g->n < 2) return 0;
    size_t cap = 16;
    while (cap < g->n * 2) cap <<= 1;
    size_t *slot = OS_MALLOC(cap * sizeof *slot);
    if (!slot) return -1;
    for (size_t i = 0; i < cap; i++) slot[i] = SIZE_MAX;
    int found = 0;
    for (size_t i = 0; i < g->n && !found; i++) {
        size_t h = (size_t)hash_bytes(g->keys[i], g->lens[i]) & (cap - 1);
        while (slot[h] != SIZE_MAX) {
            size_t j = slot[h];
            if (g->lens[j] == g->lens[i] && memcmp(g->keys[j], g->keys[i], g->lens[i]) == 0) {
                *dup = i;
                found = 1;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        if (!found) slot[h] = i;
    }
    OS_FREE(slot);
    return found;
}

static int parse_array(struct parser *p, struct json *v)
{
    struct growbuf g = {0};
    v->type = JSON_ARRAY;
    p->s = skip_ws(p->s + 1, p->end);
    if (p->s < p->end && *p->s == ']') {
        p->s++;
        return 0;
    }
    for (;;) {
        if (grow(&g, 0)) goto oom;
        memset(&g.items[g.n], 0, sizeof g.items[0]);
        if (parse_value(p, &g.items[g.n])) goto fail;
        g.n++;
        p->s = skip_ws(p->s, p->end);
        if (p->s < p->end && *p->s == ',') {
            p->s = skip_ws(p->s + 1, p->end);
            continue;
        }
        if (p->s < p->end && *p->s == ']') {
            p->s++;
            break;
        }
        fail_at(p, p->s, "expected ',' or ']' in array%s", NULL);
        goto fail;
    }
    if (finish_container(p, &g, v, 0)) goto oom;
    growbuf_free(&g);
    return 0;
oom:
    os_fail(p->err, "%s: out of memory parsing JSON", p->what);
fail:
    growbuf_free(&g);
    return -1;
}

static int parse_object(struct parser *p, struct json *v)
{
    struct growbuf g = {0};
    const char *open = p->s;
    v->type = JSON_OBJECT;
    p->s = skip_ws(p->s + 1, p->end);
    if (p->s < p->end && *p->s == '}') {
        p->s++;
        return 0;
    }
    for (;;) {
        if (p->s >= p->end || *p->s != '"') {
            fail_at(p, p->s, "expected a string key in object%s", NULL);
            goto fail;
        }
        if (grow(&g, 1)) goto oom;
        if (parse_string(p, &g.keys[g.n], &g.lens[g.n])) goto fail;
        p->s = skip_ws(p->s, p->end);
        if (p->s >= p->end || *p->s != ':') {
            fail_at(p, p->s, "expected ':' after key%s", NULL);
            goto fail;
        }
        p->s = skip_ws(p->s + 1, p->end);
        memset(&g.items[g.n], 0, sizeof g.items[0]);
        if (parse_value(p, &g.items[g.n])) goto fail;
        g.n++;
        p->s = skip_ws(p->s, p->end);
        if (p->s < p->end && *p->s == ',') {
            p->s = skip_ws(p->s + 1, p->end);
            continue;
        }
        if (p->s < p->end && *p->s == '}') {
            p->s++;
            break;
        }
        fail_at(p, p->s, "expected ',' or '}' in object%s", NULL);
        goto fail;
    }
    size_t dup;
    int d = find_duplicate(&g, &dup);
    if (d < 0) goto oom;
    if (d) {
        fail_at(p, open, "duplicate key \"%s\" in object", g.keys[dup]);
        goto fail;
    }
    if (finish_container(p, &g, v, 1)) goto oom;
    growbuf_free(&g);
    return 0;
oom:
    os_fail(p->err, "%s: out of memory parsing JSON", p->what);
fail:
    growbuf_free(&g);
    return -1;
}

static int literal(struct parser *p, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, word, n) != 0) return 0;
    p->s += n;
    return 1;
}

static int parse_value(struct parser *p, struct json *v)
{
    p->s = skip_ws(p->s, p->end);
    if (p->s >= p->end) return fail_at(p, p->s, "unexpected end of input%s", NULL);
    int rc;
    switch (*p->s) {
    case '{':
    case '[':
        if (++p->depth > JSON_MAX_DEPTH) return fail_at(p, p->s, "nesting deeper than 64 levels%s", NULL);
        rc = *p->s == '{' ? parse_object(p, v) : parse_array(p, v);
        p->depth--;
        return rc;
    case '"':
        v->type = JSON_STRING;
        return parse_string(p, &v->str, &v->len);
    case 't':
        if (literal(p, "true")) {
            v->type = JSON_BOOL;
            v->boolean = 1;
            return 0;
        }
        break;
    case 'f':
        if (literal(p, "false")) {
            v->type = JSON_BOOL;
            return 0;
        }
        break;
    case 'n':
        if (literal(p, "null")) {
            v->type = JSON_NULL;
            return 0;
        }
        break;
    case 'N':
        if (literal(p, "NaN")) {
            v->type = JSON_NUMBER;
            v->number = NAN;
            return 0;
        }
        break;
    default:
        return parse_number(p, v);
    }
    return fail_at(p, p->s, "unexpected character%s", NULL);
}

static void doc_free(struct doc *d)
{
    struct pool_chunk *c = d->chunks;
    while (c) {
        struct pool_chunk *next = c->next;
        OS_FREE(c);
        c = next;
    }
    OS_FREE(d);
}

struct json *json_parse(const char *text, size_t len, const char *what, struct os_err *err)
{
    struct doc *d = OS_CALLOC(1, sizeof *d);
    if (!d) {
        os_fail(err, "%s: out of memory parsing JSON", what);
        return NULL;
    }
    struct parser p = {text, text + len, text, what, err, d, 0};
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) p.s += 3; /* tolerate a UTF-8 BOM */
    if (parse_value(&p, &d->root)) {
        doc_free(d);
        return NULL;
    }
    p.s = skip_ws(p.s, p.end);
    if (p.s != p.end) {
        fail_at(&p, p.s, "trailing characters after the JSON value%s", NULL);
        doc_free(d);
        return NULL;
    }
    return &d->root;
}

void json_free(struct json *root)
{
    if (!root) return;
    struct doc *d = (struct doc *)((char *)root - offsetof(struct doc, root));
    doc_free(d);
}

struct json *json_parse_file(const char *path, size_t max_bytes, struct os_err *err)
{
    size_t n;
    char *buf = os_read_file(path, max_bytes, "a JSON file", &n, err);
    if (!buf) return NULL;
    struct json *j = json_parse(buf, n, path, err);
    OS_FREE(buf);
    return j;
}

const struct json *json_get(const struct json *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->len; i++)
        if (obj->key_lens[i] == n && memcmp(obj->keys[i], key, n) == 0) return &obj->items[i];
    return NULL;
}

const char *json_type_name(enum json_type t)
{
    static const char *names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
    return (unsigned)t <= JSON_OBJECT ? names[t] : "?";
}

static int want_int(const struct json *v, int64_t *out, const char *what, const char *key, struct os_err *err)
{
    if (v->type == JSON_NUMBER && v->is_int) {
        *out = v->integer;
        return 0;
    }
    if (v->type == JSON_NUMBER && isfinite(v->number) && v->number == floor(v->number) &&
        fabs(v->number) < 9.0e15) { /* 2.0 where an int is meant: accept */
        *out = (int64_t)v->number;
        return 0;
    }
    if (v->type == JSON_NUMBER)
        return os_fail(err, "%s: \"%s\" must be an integer, got %g", what, key, v->number);
    return os_fail(err, "%s: \"%s\" must be an integer, got %s", what, key, json_type_name(v->type));
}

int json_get_int(const struct json *obj, const char *key, int64_t *out, const char *what, struct os_err *err)
{
    const struct json *v = json_get(obj, key);
    if (!v || v->type == JSON_NULL) return os_fail(err, "%s: missing required key \"%s\"", what, key);
    return want_int(v, out, what, key, err);
}

int json_get_int_or(const struct json *obj, const char *key, int64_t def, int64_t *out, const char *what,
                    struct os_err *err)
{
    const struct json *v = json_get(obj, key);
    if (!v || v->type == JSON_NULL) {
        *out = def;
        return 0;
    }
    return want_int(v, out, what, key, err);
}

int json_get_num(const struct json *obj, const char *key, double *out, const char *what, struct os_err *err)
{
    const struct json *v = json_get(obj, key);
    if (!v || v->type == JSON_NULL) return os_fail(err, "%s: missing required key \"%s\"", what, key);
    if (v->type != JSON_NUMBER)
        return os_fail(err, "%s: \"%s\" must be a number, got %s", what, key, json_type_name(v->type));
    *out = v->number;
    return 0;
}

int json_get_num_or(const struct json *obj, const char *key, double def, double *out, const char *what,
                    struct os_err *err)
{
    const struct json *v = json_get(obj, key);
    if (!v || v->type == JSON_NULL) {
        *out = def;
        return 0;
    }
    return json_get_num(obj, key, out, what, err);
}

int json_get_bool_or(const struct json *obj, const char *key, int def, int *out, const char *what, struct os_err *err)
{
    const struct json *v = json_get(obj, key);
    if (!v || v->type == JSON_NULL) {
        *out = def;
        return 0;
    }
    if (v->type != JSON_BOOL)
        return os_fail(err, "%s: \"%s\" must be true or false, got %s", what, key, json_type_name(v->type));
    *out = v->boolean;
    return 0;
}

const char *json_get_str(const struct json *obj, const char *key, const char *what, struct os_err *err)
{
    const struct json *v = json_get(obj, key);
    if (!v || v->type == JSON_NULL) {
        os_fail(err, "%s: missing required key \"%s\"", what, key);
        return NULL;
    }
    if (v->type != JSON_STRING) {
        os_fail(err, "%s: \"%s\" must be a string, got %s", what, key, json_type_name(v->type));
        return NULL;
    }
    return v->str;
}

const char *json_get_str_or(const struct json *obj, const char *key, const char *def, const char *what,
                            struct os_err *err, int *failed)
{
    const struct json *v = json_get(obj, key);
    *failed = 0;
    if (!v || v->type == JSON_NULL) return def;
    if (v->type != JSON_STRING) {
        *failed = 1;
        os_fail(err, "%s: \"%s\" must be a string, got %s", what, key, json_type_name(v->type));
        return NULL;
    }
    return v->str;
}

int json_get_int_list(const struct json *obj, const char *key, int64_t *out, size_t n, const char *what,
                      struct os_err *err)
{
    const struct json *v = json_get(obj, key);
    if (!v || v->type == JSON_NULL) return os_fail(err, "%s: missing required key \"%s\"", what, key);
    if (v->type == JSON_NUMBER) {
        int64_t x;
        if (want_int(v, &x, what, key, err)) return -1;
        for (size_t i = 0; i < n; i++) out[i] = x;
        return 0;
    }
    if (v->type != JSON_ARRAY)
        return os_fail(err, "%s: \"%s\" must be an integer or a list of integers, got %s", what, key,
                       json_type_name(v->type));
    if (v->len != n)
        return os_fail(err, "%s: \"%s\" has %zu entries, expected %zu (one per block)", what, key, v->len, n);
    for (size_t i = 0; i < n; i++)
        if (want_int(&v->items[i], &out[i], what, key, err)) return -1;
    return 0;
}
