#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int os_fail(struct os_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int os_prefix(struct os_err *err, const char *fmt, ...)
{
    if (!err) return -1;
    char prefix[OS_ERR_MAX], old[OS_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    /* prefix first, then as much of the old message as fits */
    size_t n = strlen(prefix), m = strlen(old);
    if (n > sizeof err->msg - 1) n = sizeof err->msg - 1;
    if (m > sizeof err->msg - 1 - n) m = sizeof err->msg - 1 - n;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, old, m);
    err->msg[n + m] = '\0';
    return -1;
}

char *os_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = OS_MALLOC(n);
    if (p) memcpy(p, s, n);
    return p;
}
