/* common.h — the few things every onestep file needs: error reporting and
 * allocation hooks.
 *
 * Errors: a function that can fail returns int (0 = ok, -1 = failed) or NULL,
 * and writes one human sentence into a caller-owned `struct os_err`. Library
 * code never prints and never exits; the CLI turns the message into one line
 * on stderr.
 *
 * Allocation goes through OS_MALLOC / OS_FREE so a host program can replace
 * them (the stb habit). */
#ifndef ONESTEP_COMMON_H
#define ONESTEP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifndef OS_MALLOC
#include <stdlib.h>
#define OS_MALLOC(n) malloc(n)
#define OS_CALLOC(n, s) calloc((n), (s))
#define OS_REALLOC(p, n) realloc((p), (n))
#define OS_FREE(p) free(p)
#endif

#define OS_ERR_MAX 512

struct os_err {
    char msg[OS_ERR_MAX];
};

#if defined(__GNUC__) || defined(__clang__)
#define OS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define OS_PRINTF(a, b)
#endif

/* Write a message into err (if non-NULL) and return -1, so callers can write
 * `return os_fail(err, "...")`. */
int os_fail(struct os_err *err, const char *fmt, ...) OS_PRINTF(2, 3);

/* Prefix the message already in err with more context ("vae/config.json: ").
 * Returns -1 like os_fail. */
int os_prefix(struct os_err *err, const char *fmt, ...) OS_PRINTF(2, 3);

/* The whole of a regular file at `path`, NUL-terminated, *len bytes (NUL
 * not counted); NULL with err set ("PATH: cannot open: ...", "PATH: not a
 * regular file", "PATH: file is N bytes, more than the M allowed for
 * <kind>"). For the small untrusted files of a model (configs, vocabularies):
 * a FIFO or device is refused without blocking, and the size is capped
 * before anything is allocated. */
char *os_read_file(const char *path, size_t max_bytes, const char *kind, size_t *len, struct os_err *err);

/* strdup through OS_MALLOC; NULL on out-of-memory. */
char *os_strdup(const char *s);

/* Overflow-checked size arithmetic: return 0 and set *out, or -1 on overflow. */
static inline int os_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

#endif
