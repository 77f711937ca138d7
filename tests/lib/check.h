/* check.h — the tiny test harness every tests/test_*.c uses.
 *
 * Each check prints one line ("ok", "FAIL" or "skip" and what was checked);
 * check_summary() prints "N passed, N failed" and returns the exit status. */
#ifndef ONESTEP_CHECK_H
#define ONESTEP_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "../../ref/common.h"

#if defined(__GNUC__) || defined(__clang__)
#define CHECK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CHECK_PRINTF(a, b)
#endif

/* Record one check; returns ok so callers can branch on it. */
int check(int ok, const char *fmt, ...) CHECK_PRINTF(2, 3);
void check_skip(const char *fmt, ...) CHECK_PRINTF(1, 2);
/* Print a note line (no pass/fail). */
void check_note(const char *fmt, ...) CHECK_PRINTF(1, 2);
int check_summary(void);

/* ../shared/conformance (or $ONESTEP_CONFORMANCE); NULL if absent, after
 * printing a line that says so once. */
const char *conformance_dir(void);
/* ../shared/clip-tokenizer (or $ONESTEP_CLIP_TOKENIZER); NULL if absent. */
const char *clip_tokenizer_dir(void);

/* Read a whole file into memory (NUL-terminated); NULL on error. */
char *read_file(const char *path, size_t *len);

/* Element-wise comparison summary. */
struct diff_stats {
    double max_abs;      /* max |a - b| */
    double max_rel;      /* max |a - b| / |b| over elements with b != 0 */
    double ref_max_abs;  /* max |b| */
    size_t worst;        /* index of max_abs */
    size_t mismatches;   /* elements with |a - b| > tol */
    size_t nonfinite;    /* elements where a is NaN/inf and b is not (or vice versa) */
};
void diff_floats(const float *a, const float *b, size_t n, double tol, struct diff_stats *st);

#endif
