#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

char *os_read_file(const char *path, size_t max_bytes, const char *kind, size_t *len, struct os_err *err)
{
    /* O_NONBLOCK: opening a FIFO (say, in a crafted model archive) would
     * otherwise wait forever for a writer; it is refused just below */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "rb");
    if (!f) {
        os_fail(err, "%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        os_fail(err, "%s: not a regular file", path);
        return NULL;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        os_fail(err, "%s: file is %lld bytes, more than the %zu allowed for %s", path, (long long)st.st_size,
                max_bytes, kind);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = OS_MALLOC(n + 1);
    if (!buf) {
        fclose(f);
        os_fail(err, "%s: out of memory", path);
        return NULL;
    }
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        OS_FREE(buf);
        os_fail(err, "%s: short read", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}
