#include "simd_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ref/common.h"
#include "check.h"

int simd_isas(const char *names[], int max)
{
    static const char *all[] = {
#if defined(__x86_64__)
        "avx512", "avx2",
#elif defined(__aarch64__)
        "neon",
#endif
        NULL};
    int n = 0;
    for (int i = 0; all[i]; i++) {
        struct os_err err = {{0}};
        if (!ops_by_name(all[i], 1, &err)) {
            check_skip("%s: %s", all[i], err.msg);
            continue;
        }
        if (n < max) names[n++] = all[i];
    }
    if (n == 0) check_skip("no SIMD instruction set of this architecture runs here: parity checks skipped");
    return n;
}

const struct ops *simd_table(const char *name, int threads)
{
    struct os_err err = {{0}};
    const struct ops *o = ops_by_name(name, threads, &err);
    if (!o) {
        fprintf(stderr, "simd_table: %s\n", err.msg);
        abort();
    }
    return o;
}

void fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        double u = (double)(s >> 11) / 9007199254740992.0;
        x[i] = (float)(lo + (hi - lo) * u);
    }
}

void wtensor_make(struct wtensor *w, enum dtype dt, int ndim, const int64_t *shape, const float *vals, int offset)
{
    memset(w, 0, sizeof *w);
    w->t.dtype = dt;
    w->t.ndim = ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        w->t.shape[i] = shape[i];
        n *= shape[i];
    }
    size_t es = dtype_size(dt);
    w->mem = malloc(64 + (size_t)n * es + 64);
    if (!w->mem) abort();
    unsigned char *p = w->mem + 64 - ((uintptr_t)w->mem % 64) + (size_t)offset;
    if (p + (size_t)n * es > w->mem + 64 + (size_t)n * es + 64) abort();
    for (int64_t i = 0; i < n; i++) {
        if (dt == DT_F32) {
            memcpy(p + 4 * i, &vals[i], 4);
        } else {
            uint16_t h = dt == DT_F16 ? f32_to_f16(vals[i]) : f32_to_bf16(vals[i]);
            memcpy(p + 2 * i, &h, 2);
        }
    }
    w->t.data = p;
    w->t.name = "test.weight";
}

void wtensor_free(struct wtensor *w)
{
    free(w->mem);
    memset(w, 0, sizeof *w);
}

float wtensor_get(const struct wtensor *w, size_t i)
{
    return tensor_get_f32(&w->t, (int64_t)i);
}

static double worst_ratio;

int check_within(const char *what, const float *got, const float *want, const double *tol, size_t n)
{
    double worst_err = 0, ratio = 0;
    size_t worst = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        int ok;
        double e;
        if (isnan(g) || isnan(w)) {
            ok = isnan(g) && isnan(w);
            e = ok ? 0 : INFINITY;
        } else if (!tol) {
            ok = memcmp(&got[i], &want[i], sizeof(float)) == 0;
            e = fabs(g - w);
        } else {
            e = fabs(g - w);
            ok = e <= tol[i];
            if (tol[i] > 0 && e / tol[i] > ratio) ratio = e / tol[i];
        }
        if (!ok) bad++;
        if (e > worst_err || (!ok && bad == 1)) {
            worst_err = e;
            worst = i;
        }
    }
    if (ratio > worst_ratio) worst_ratio = ratio;
    if (!tol)
        return check(bad == 0, "%s: %zu values bit-identical%s (%zu differ, first worst at %zu: %.9g vs %.9g)", what, n,
                     bad ? " FAILED" : "", bad, worst, n ? got[worst] : 0.0, n ? want[worst] : 0.0);
    return check(bad == 0, "%s: max|diff| %.3g at %zu, worst diff/tol %.3f (%zu of %zu outside)", what, worst_err,
                 worst, ratio, bad, n);
}

double simd_worst_ratio(void)
{
    double r = worst_ratio;
    worst_ratio = 0;
    return r;
}

float *fbuf(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0) abort();
    float *f = p;
    for (size_t i = 0; i < n; i++) f[i] = NAN;
    return f;
}

double *dbuf(size_t n)
{
    double *d = calloc(n ? n : 1, sizeof(double));
    if (!d) abort();
    return d;
}
