#include "dumps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dumped *dumps_add(struct dumps *s, const char *name, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > DUMPED_MAX_DIMS) {
        s->overflow = 1;
        return NULL;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        struct dumped *d = realloc(s->d, (size_t)cap * sizeof *d);
        if (!d) {
            s->overflow = 1;
            return NULL;
        }
        s->d = d;
        s->cap = cap;
    }
    struct dumped *e = &s->d[s->n];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    e->n = 1;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->n *= (size_t)shape[i];
    }
    e->data = malloc((e->n ? e->n : 1) * sizeof *e->data);
    if (!e->data) {
        s->overflow = 1;
        return NULL;
    }
    s->n++;
    return e;
}

void dumps_fn(void *ctx, const char *name, const float *buf, int ndim, const int64_t *shape)
{
    struct dumps *s = ctx;
    struct dumped *e = dumps_add(s, name, ndim, shape);
    if (e) s->o->download(s->o, e->data, buf, e->n);
}

const struct dumped *dumps_find(const struct dumps *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->d[i].name, name) == 0) return &s->d[i];
    return NULL;
}

const struct dumped *dumps_find_once(const struct dumps *s, const char *name)
{
    const struct dumped *hit = NULL;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->d[i].name, name) == 0) {
            if (hit) return NULL;
            hit = &s->d[i];
        }
    return hit;
}

void dumps_clear(struct dumps *s)
{
    for (int i = 0; i < s->n; i++) free(s->d[i].data);
    free(s->d);
    s->d = NULL;
    s->n = s->cap = 0;
    s->overflow = 0;
}
