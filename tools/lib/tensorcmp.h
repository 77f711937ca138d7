/* tensorcmp.h — comparing two tensors element by element: the core of
 * tools/tensordiff and of every numeric test. */
#ifndef ONESTEP_TENSORCMP_H
#define ONESTEP_TENSORCMP_H

#include <stddef.h>

#include "../../weights/json.h"

struct cmp_stats {
    size_t n;
    double max_abs;     /* max |a - b| over finite pairs */
    double max_rel;     /* max |a - b| / |b| over b != 0 */
    double ref_max_abs; /* max |b| */
    size_t worst;       /* index of max_abs */
    size_t mismatches;  /* elements outside tolerance (non-finite disagreements included) */
    size_t nonfinite;   /* NaN/inf in one and not the same in the other */
};

/* Element i passes when |a - b| <= tol_abs + tol_rel * |b| (and non-finite
 * values agree). The element data are converted with a getter so any dtype
 * (f32/f16/bf16/i64/u8) compares as double. */
typedef double (*cmp_get_fn)(const void *data, size_t i);
void cmp_run(const void *a, cmp_get_fn geta, const void *b, cmp_get_fn getb, size_t n, double tol_abs,
             double tol_rel, struct cmp_stats *st);
void cmp_floats(const float *a, const float *b, size_t n, double tol_abs, double tol_rel, struct cmp_stats *st);

/* The conformance manifest's recommended tolerance for a tensor name
 * (tolerances.by_tensor; "stepN.x" uses the "step*.x" row): abs and
 * rel_to_max_abs, to be applied as max(abs, rel_to_max_abs * max|ref|).
 * For image.uint8 the row gives max_abs and max_frac_differing instead
 * (returned as abs_tol and frac). Returns 0, or -1 when there is no row. */
struct manifest_tol {
    double abs_tol, rel_to_max, frac;
    int is_image;
};
int manifest_tolerance(const struct json *by_tensor, const char *name, struct manifest_tol *t);

#endif
