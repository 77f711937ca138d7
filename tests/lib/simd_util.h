/* simd_util.h — what the SIMD parity tests (tests/test_simd_*.c) share:
 * the list of ISA tables to test, deterministic random data, weight
 * tensors in any dtype at a deliberately unaligned address, and a
 * comparison against per-element tolerances.
 *
 * Expected values always come from ops_ref(); the tolerances are error
 * bounds each test derives from the operation (reduction length, the
 * conditioning of the function) and states next to its checks. */
#ifndef ONESTEP_TEST_SIMD_UTIL_H
#define ONESTEP_TEST_SIMD_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "../../ref/ops.h"

/* unit roundoff of float32 */
#define U32 (1.0 / 16777216.0)

/* The SIMD ISAs of this architecture that this CPU runs (names into
 * `names`), printing a skip line for each one built but not runnable. */
int simd_isas(const char *names[], int max);
/* ops_by_name(name, threads) or abort with a message (the ISA was listed). */
const struct ops *simd_table(const char *name, int threads);

/* Uniform in [lo, hi), deterministic per seed. */
void fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);

/* A weight tensor of the given shape and dtype whose data sit at an odd
 * address (offset bytes past 64-byte alignment) so unaligned reads are
 * exercised; values from vals rounded to the dtype (RNE). */
struct wtensor {
    struct tensor t;
    unsigned char *mem;
};
void wtensor_make(struct wtensor *w, enum dtype dt, int ndim, const int64_t *shape, const float *vals, int offset);
void wtensor_free(struct wtensor *w);
/* the values as the kernels see them (after rounding to the dtype) */
float wtensor_get(const struct wtensor *w, size_t i);

/* |got - want| <= tol[i] for every i (tol NULL: exact equality, bit for
 * bit except that any two NaNs agree). One check line: the worst element,
 * its error and the largest error / tolerance ratio. Returns 1 if ok. */
int check_within(const char *what, const float *got, const float *want, const double *tol, size_t n);

/* The largest error/tolerance ratio seen by check_within since the last
 * call (for the tests' summary notes). */
double simd_worst_ratio(void);

/* float buffers (64-byte aligned, filled with NaN so unwritten outputs show) */
float *fbuf(size_t n);
double *dbuf(size_t n);

#endif
