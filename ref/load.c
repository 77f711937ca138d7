#include "load.h"

#include <stdarg.h>
#include <stdio.h>

static const struct tensor *vload(struct component *c, struct os_err *err, int ndim, const int64_t *shape,
                                  int optional, const char *fmt, va_list ap)
{
    if (err->msg[0]) return NULL; /* keep the first error */
    char name[256];
    vsnprintf(name, sizeof name, fmt, ap);
    if (optional && !component_get(c, name)) return NULL;
    return component_require(c, name, ndim, shape, err);
}

const struct tensor *load_tensor(struct component *c, struct os_err *err, int ndim, const int64_t *shape,
                                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const struct tensor *t = vload(c, err, ndim, shape, 0, fmt, ap);
    va_end(ap);
    return t;
}

const struct tensor *load_optional(struct component *c, struct os_err *err, int ndim, const int64_t *shape,
                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const struct tensor *t = vload(c, err, ndim, shape, 1, fmt, ap);
    va_end(ap);
    return t;
}

const struct tensor *load1(struct component *c, struct os_err *err, int64_t d0, const char *fmt, ...)
{
    int64_t s[1] = {d0};
    va_list ap;
    va_start(ap, fmt);
    const struct tensor *t = vload(c, err, 1, s, 0, fmt, ap);
    va_end(ap);
    return t;
}

const struct tensor *load2(struct component *c, struct os_err *err, int64_t d0, int64_t d1, const char *fmt, ...)
{
    int64_t s[2] = {d0, d1};
    va_list ap;
    va_start(ap, fmt);
    const struct tensor *t = vload(c, err, 2, s, 0, fmt, ap);
    va_end(ap);
    return t;
}

const struct tensor *load4(struct component *c, struct os_err *err, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                           const char *fmt, ...)
{
    int64_t s[4] = {d0, d1, d2, d3};
    va_list ap;
    va_start(ap, fmt);
    const struct tensor *t = vload(c, err, 4, s, 0, fmt, ap);
    va_end(ap);
    return t;
}
