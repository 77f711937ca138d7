#include "tensorcmp.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void cmp_run(const void *a, cmp_get_fn geta, const void *b, cmp_get_fn getb, size_t n, double tol_abs,
             double tol_rel, struct cmp_stats *st)
{
    memset(st, 0, sizeof *st);
    st->n = n;
    for (size_t i = 0; i < n; i++) {
        double x = geta(a, i), y = getb(b, i);
        if (isfinite(y) && fabs(y) > st->ref_max_abs) st->ref_max_abs = fabs(y);
        if (!isfinite(x) || !isfinite(y)) {
            int same = (isnan(x) && isnan(y)) || x == y;
            if (!same) {
                st->nonfinite++;
                st->mismatches++;
            }
            continue;
        }
        double d = fabs(x - y);
        if (d > st->max_abs) {
            st->max_abs = d;
            st->worst = i;
        }
        if (y != 0 && d / fabs(y) > st->max_rel) st->max_rel = d / fabs(y);
        if (d > tol_abs + tol_rel * fabs(y)) st->mismatches++;
    }
}

static double get_f32(const void *p, size_t i)
{
    return ((const float *)p)[i];
}

void cmp_floats(const float *a, const float *b, size_t n, double tol_abs, double tol_rel, struct cmp_stats *st)
{
    cmp_run(a, get_f32, b, get_f32, n, tol_abs, tol_rel, st);
}

int manifest_tolerance(const struct json *by_tensor, const char *name, struct manifest_tol *t)
{
    memset(t, 0, sizeof *t);
    const struct json *row = json_get(by_tensor, name);
    if (!row && strncmp(name, "step", 4) == 0 && strchr(name, '.')) {
        char key[256];
        snprintf(key, sizeof key, "step*%s", strchr(name, '.'));
        row = json_get(by_tensor, key);
    }
    const struct json *rec = json_get(row, "recommended");
    if (!rec) return -1;
    const struct json *a = json_get(rec, "abs"), *r = json_get(rec, "rel_to_max_abs");
    const struct json *ma = json_get(rec, "max_abs"), *fr = json_get(rec, "max_frac_differing");
    if (a && r && a->type == JSON_NUMBER && r->type == JSON_NUMBER) {
        t->abs_tol = a->number;
        t->rel_to_max = r->number;
        return 0;
    }
    if (ma && fr && ma->type == JSON_NUMBER && fr->type == JSON_NUMBER) {
        t->is_image = 1;
        t->abs_tol = ma->number;
        t->frac = fr->number;
        return 0;
    }
    return -1;
}
