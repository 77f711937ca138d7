#include "components.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mem_component(struct component *c, const char *name, const char *config, const struct tensor *t, size_t n,
                  struct os_err *err)
{
    char path[128];
    snprintf(path, sizeof path, "test/%s/config.json", name);
    memset(c, 0, sizeof *c);
    c->name = os_strdup(name);
    c->config_path = os_strdup(path);
    c->config = json_parse(config, strlen(config), c->config_path, err);
    if (!c->config) {
        component_close(c);
        return -1;
    }
    struct tensor *copy = malloc((n ? n : 1) * sizeof *copy);
    if (n) memcpy(copy, t, n * sizeof *t);
    component_set_tensors(c, copy, n);
    return 0;
}

char *str_replace(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    if (!p) {
        fprintf(stderr, "str_replace: \"%s\" not in the template\n", from);
        abort();
    }
    size_t a = (size_t)(p - s), b = strlen(from), t = strlen(to), n = strlen(s);
    char *r = malloc(n - b + t + 1);
    memcpy(r, s, a);
    memcpy(r + a, to, t);
    memcpy(r + a + t, p + b, n - a - b + 1);
    return r;
}

struct tensor *tensors_without(const struct tensor *t, size_t n, const char *name, size_t *out_n)
{
    struct tensor *r = malloc((n ? n : 1) * sizeof *r);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) != 0) r[k++] = t[i];
    *out_n = k;
    return r;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct tensor *)a)->name, ((const struct tensor *)b)->name);
}

int same_layout(struct tensor *t, size_t n, const struct component *c)
{
    qsort(t, n, sizeof *t, cmp_name);
    int same = n == c->ntensors;
    for (size_t i = 0; same && i < n; i++) {
        const struct tensor *a = &t[i], *b = &c->tensors[i];
        same = strcmp(a->name, b->name) == 0 && a->ndim == b->ndim;
        for (int k = 0; same && k < a->ndim; k++) same = a->shape[k] == b->shape[k];
    }
    return same;
}

struct tensor *tensor_list_vadd(struct tensor_list *l, int ndim, const int64_t *shape, const char *fmt, va_list ap)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        struct tensor *t = realloc(l->t, l->cap * sizeof *t);
        if (!t) abort(); /* a test harness out of memory: nothing to check */
        l->t = t;
    }
    char name[256];
    vsnprintf(name, sizeof name, fmt, ap);
    struct tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    char *nm = os_strdup(name);
    component_own(l->owner, nm);
    t->name = nm;
    t->dtype = DT_F32;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    return t;
}
