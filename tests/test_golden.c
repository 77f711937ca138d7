/* golden/: the reference's own outputs, remade and compared.
 *
 * 1. The scalar reference ("ref") must reproduce every tensor of every golden
 *    run BIT FOR BIT: same names, dtypes, shapes and bytes. The reference is
 *    IEEE binary32/binary64 arithmetic in a fixed order, built with
 *    -ffp-contract=off and without -ffast-math, single-threaded, with its own
 *    exp/log/erf/tanh/sin/cos (ref/refmath.c) instead of the C library's; so
 *    the same bits must come out of gcc and clang, at -O0 and -O2, on every
 *    machine (`make golden-check` builds and runs this test four ways).
 * 2. Other backends ($ONESTEP_TEST_BACKENDS, a space-separated list; unset:
 *    every SIMD/GPU backend ops_by_name accepts here) must reproduce the
 *    tensors that do not pass through a kernel exactly (token ids, schedule,
 *    noise) and every other tensor within a tolerance (see tolerance()).
 *
 * The models are made afresh from weights/configs, mkmodel's generator and
 * golden/vocab into a temporary directory; golden/SUMS must agree with the
 * files. A failure names the first differing tensor and element, both values
 * and their distance in float32 ulps. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/ops.h"
#include "../tools/lib/golden.h"
#include "../weights/safetensors.h"
#include "lib/check.h"

/* ---------------------------------------------------------------- helpers */

static float f32_at(const void *p, size_t i)
{
    float f;
    memcpy(&f, (const char *)p + 4 * i, 4);
    return f;
}

static double value_at(enum dtype dt, const void *p, size_t i)
{
    if (dt == DT_F32) return f32_at(p, i);
    if (dt == DT_I64) {
        int64_t k;
        memcpy(&k, (const char *)p + 8 * i, 8);
        return (double)k;
    }
    return ((const unsigned char *)p)[i];
}

/* Distance in float32 ulps: the bit patterns mapped onto a line on which
 * adjacent floats are adjacent integers (-0 and +0 coincide). */
static uint64_t ulps(float a, float b)
{
    uint32_t ua, ub;
    memcpy(&ua, &a, 4);
    memcpy(&ub, &b, 4);
    int64_t ka = ua & 0x80000000u ? -(int64_t)(ua & 0x7fffffffu) : (int64_t)ua;
    int64_t kb = ub & 0x80000000u ? -(int64_t)(ub & 0x7fffffffu) : (int64_t)ub;
    return (uint64_t)(ka > kb ? ka - kb : kb - ka);
}

static int same_shape(const struct golden_tensor *g, const struct tensor *t)
{
    if (g->ndim != t->ndim || g->dtype != t->dtype) return 0;
    for (int d = 0; d < g->ndim; d++)
        if (g->shape[d] != t->shape[d]) return 0;
    return 1;
}

static void shape_str(int ndim, const int64_t *shape, const char *dt, char *s, size_t cap)
{
    size_t n = (size_t)snprintf(s, cap, "%s [", dt);
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(s + n, cap - n, "%s%lld", d ? "," : "", (long long)shape[d]);
    if (n < cap) snprintf(s + n, cap - n, "]");
}

static size_t count_named(const struct golden_set *s, const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) k += !strcmp(s->t[i].name, name);
    return k;
}

/* Same names both ways, each once, same dtype and shape. One failed check
 * naming the first problem; returns 1 when the sets match. */
static int same_layout(const char *what, const struct golden_set *got, const struct st_file *f)
{
    for (size_t i = 0; i < got->n; i++) {
        const struct golden_tensor *g = &got->t[i];
        const struct tensor *t = st_get(f, g->name);
        if (!t) return check(0, "%s: %s was reported but is not in the golden file", what, g->name);
        if (count_named(got, g->name) != 1) return check(0, "%s: %s was reported more than once", what, g->name);
        if (!same_shape(g, t)) {
            char a[96], b[96];
            shape_str(g->ndim, g->shape, dtype_name(g->dtype), a, sizeof a);
            shape_str(t->ndim, t->shape, dtype_name(t->dtype), b, sizeof b);
            return check(0, "%s: %s is %s, the golden file has %s", what, g->name, a, b);
        }
    }
    for (size_t i = 0; i < f->ntensors; i++)
        if (!golden_find(got, f->tensors[i].name))
            return check(0, "%s: %s is in the golden file but was not reported", what, f->tensors[i].name);
    return 1;
}

/* ---------------------------------------------------------------- the reference: bit for bit */

static int compare_exact(const char *what, const char *file, const struct golden_set *got, const struct st_file *f)
{
    if (!same_layout(what, got, f)) return 0;
    enum { NOTES = 8 };
    char notes[NOTES][200];
    size_t ndiff = 0;
    char first[400] = "";
    for (size_t i = 0; i < got->n; i++) { /* report order = pipeline order: the first difference is the cause */
        const struct golden_tensor *g = &got->t[i];
        const struct tensor *t = st_get(f, g->name);
        if (memcmp(g->data, t->data, g->bytes) == 0) continue;
        size_t esz = dtype_size(g->dtype), n = g->bytes / esz, differ = 0, at = 0;
        double maxd = 0;
        for (size_t j = 0; j < n; j++) {
            if (memcmp((const char *)g->data + j * esz, (const char *)t->data + j * esz, esz) == 0) continue;
            if (!differ++) at = j;
            double d = fabs(value_at(g->dtype, g->data, j) - value_at(g->dtype, t->data, j));
            if (d > maxd || d != d) maxd = d;
        }
        if (!ndiff) {
            if (g->dtype == DT_F32)
                snprintf(first, sizeof first,
                         "first %s element %zu of %zu: %.9g, golden %.9g (%llu ulp); %zu elements differ, "
                         "max|diff| %.3g",
                         g->name, at, n, f32_at(g->data, at), f32_at(t->data, at),
                         (unsigned long long)ulps(f32_at(g->data, at), f32_at(t->data, at)), differ, maxd);
            else
                snprintf(first, sizeof first, "first %s element %zu of %zu: %.17g, golden %.17g; %zu elements differ",
                         g->name, at, n, value_at(g->dtype, g->data, at), value_at(g->dtype, t->data, at), differ);
        }
        if (ndiff < NOTES)
            snprintf(notes[ndiff], sizeof notes[ndiff], "%s differs in %zu of %zu elements (max|diff| %.3g)", g->name,
                     differ, n, maxd);
        ndiff++;
    }
    if (!ndiff) return check(1, "%s: all %zu tensors bit-identical to %s", what, got->n, file);
    check(0, "%s: %zu of %zu tensors differ from %s; %s", what, ndiff, got->n, file, first);
    for (size_t i = 0; i < ndiff && i < NOTES; i++) check_note("  %s", notes[i]);
    if (ndiff > NOTES) check_note("  ... and %zu more", ndiff - NOTES);
    return 0;
}

/* ---------------------------------------------------------------- other backends: tolerances */

static int starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int ends(const char *s, const char *p)
{
    size_t n = strlen(s), m = strlen(p);
    return n >= m && !strcmp(s + n - m, p);
}

/* Tensors computed on the host from exact inputs (ids, schedule, noise draws,
 * the init image): no kernel touches them, so every backend gives the bits. */
static int host_exact(const char *name)
{
    static const char *const exact[] = {"scheduler.timesteps", "scheduler.sigmas", "scheduler.init_noise_sigma",
                                        "timesteps",           "latents.noise",    "add_time_ids",
                                        "img2img.image",       "img2img.posterior_noise",
                                        "img2img.noise",       "img2img.noise_timestep"};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (!strcmp(name, exact[i])) return 1;
    if (ends(name, ".input_ids")) return 1;
    if (starts(name, "step"))
        return ends(name, ".timestep") || ends(name, ".noise") || ends(name, ".alpha_prod_t") ||
               ends(name, ".alpha_prod_t_prev") || ends(name, ".c_skip") || ends(name, ".c_out");
    return 0;
}

/* Allowed |got - golden| for a float tensor, as a fraction of the golden
 * tensor's largest |value|. A backend that accumulates in float32 (in any
 * order, with FMA) where the reference accumulates in double differs from it
 * about as much as float32 torch differs from float64 torch: the conformance
 * suite measured <= 6e-7 of max|x| for the text encoders and <= 8e-6 for the
 * UNet, latents and VAE (its README, "float32 vs float64 (measured)"), and
 * the AVX2 / AVX-512 / NEON backends measured here stay below 1e-6 (text
 * encoders) and 6e-6 (UNet, VAE). The bounds are about 10x those, and grow
 * linearly with the number of UNet evaluations a tensor depends on, because
 * each step feeds the previous step's error back through the UNet. A kernel
 * bug (a wrong index, a lost tail, a missed bias) moves values by far more. */
static double tolerance(const char *name, int nsteps)
{
    if (starts(name, "text_encoder") || !strcmp(name, "prompt_embeds") || !strcmp(name, "pooled_prompt_embeds") ||
        !strcmp(name, "add_text_embeds"))
        return 1e-5;
    int depth = 1;
    if (starts(name, "step")) depth = atoi(name + 4);
    else if (!strcmp(name, "latents.final") || starts(name, "vae.decode") || starts(name, "vae.post_quant_conv"))
        depth = nsteps;
    if (depth < 1) depth = 1;
    return 5e-5 * depth;
}

static void compare_tol(const char *what, const struct golden_set *got, const struct st_file *f)
{
    if (!same_layout(what, got, f)) return;
    int nsteps = 0;
    for (size_t i = 0; i < got->n; i++)
        if (starts(got->t[i].name, "step") && ends(got->t[i].name, ".noise_pred")) nsteps++;
    double worst = 0;
    char worst_s[300] = "", bad[400] = "";
    size_t nbad = 0;
    for (size_t i = 0; i < got->n; i++) {
        const struct golden_tensor *g = &got->t[i];
        const struct tensor *t = st_get(f, g->name);
        size_t n = g->bytes / dtype_size(g->dtype);
        if (host_exact(g->name) || g->dtype == DT_I64) {
            if (memcmp(g->data, t->data, g->bytes) != 0 && !nbad++)
                snprintf(bad, sizeof bad, "%s is computed on the host and must be bit-identical, but differs", g->name);
            continue;
        }
        if (g->dtype == DT_U8) { /* image.uint8: as tests/test_pipeline allows SIMD backends */
            size_t differ = 0;
            int maxd = 0;
            for (size_t j = 0; j < n; j++) {
                int d = abs((int)((const unsigned char *)g->data)[j] - (int)((const unsigned char *)t->data)[j]);
                differ += d > 0;
                if (d > maxd) maxd = d;
            }
            if ((maxd > 2 || differ > n / 100) && !nbad++)
                snprintf(bad, sizeof bad, "%s: max|diff| %d levels, %zu of %zu bytes differ (allowed 2, 1%%)", g->name,
                         maxd, differ, n);
            continue;
        }
        double ref_max = 0, maxd = 0;
        size_t at = 0;
        int nonfinite = 0;
        for (size_t j = 0; j < n; j++) {
            double r = f32_at(t->data, j), x = f32_at(g->data, j);
            if (fabs(r) > ref_max) ref_max = fabs(r);
            if (!isfinite(x)) nonfinite = 1;
            double d = fabs(x - r);
            if (d > maxd) maxd = d, at = j;
        }
        double rel = tolerance(g->name, nsteps), tol = rel * ref_max;
        double ratio = tol > 0 ? maxd / tol : (maxd > 0 ? INFINITY : 0);
        if (ratio > worst) {
            worst = ratio;
            snprintf(worst_s, sizeof worst_s, "%s (max|diff| %.3g = %.3g of max|x| %.3g; allowed %.3g)", g->name, maxd,
                     ref_max > 0 ? maxd / ref_max : 0.0, ref_max, rel);
        }
        if ((nonfinite || ratio > 1) && !nbad++)
            snprintf(bad, sizeof bad, "%s element %zu: %.9g, golden %.9g: |diff| %.3g > %.3g (%g of max|x| %.3g)%s",
                     g->name, at, f32_at(g->data, at), f32_at(t->data, at), maxd, tol, rel, ref_max,
                     nonfinite ? ", not finite" : "");
    }
    if (nbad)
        check(0, "%s: %zu tensors out of tolerance; first %s", what, nbad, bad);
    else
        check(1, "%s: %zu tensors within tolerance; closest to its limit: %s at %.2g of it", what, got->n,
              worst_s[0] ? worst_s : "-", worst);
}

/* ---------------------------------------------------------------- golden/SUMS */

/* Every tensor's hash in SUMS must match the file: the two are written
 * together by `make golden`, and SUMS is what a review reads. */
static void check_sums(const char *sums, const struct golden_run *r, const struct st_file *f, const char *fp)
{
    size_t ok = 0;
    char line[600];
    snprintf(line, sizeof line, "\n%s  model %s %s\n", r->name, r->model, fp);
    if (!strstr(sums, line)) {
        check(0, "golden/SUMS: no line \"%s  model %s %s\" (run make golden)", r->name, r->model, fp);
        return;
    }
    for (size_t i = 0; i < f->ntensors; i++) {
        const struct tensor *t = &f->tensors[i];
        size_t bytes = (size_t)tensor_numel(t) * dtype_size(t->dtype);
        int64_t shape[TENSOR_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        char sh[128];
        shape_str(t->ndim, shape, dtype_name(t->dtype), sh, sizeof sh);
        snprintf(line, sizeof line, "\n%s  %s %s %016llx  ", r->name, t->name, sh,
                 (unsigned long long)golden_hash(t->data, bytes));
        if (!strstr(sums, line)) {
            check(0, "golden/SUMS disagrees with %s.safetensors.gz at %s (run make golden)", r->name, t->name);
            return;
        }
        ok++;
    }
    check(1, "golden/SUMS lists the %zu tensors of %s with their hashes", ok, r->name);
}

/* ---------------------------------------------------------------- main */

static const char *compiler(void)
{
    static char s[64];
#if defined(__clang__)
    snprintf(s, sizeof s, "clang %d.%d.%d", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
    snprintf(s, sizeof s, "gcc %d.%d.%d", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
    snprintf(s, sizeof s, "an unknown compiler");
#endif
    return s;
}

static const char *opt_level(void)
{
#if defined(__OPTIMIZE__)
    return "optimised (__OPTIMIZE__ set)";
#else
    return "unoptimised (-O0)";
#endif
}

int main(void)
{
    const char *gdir = golden_dir();
    char path[1100];
    snprintf(path, sizeof path, "%s/SUMS", gdir);
    size_t sums_len;
    char *sums = read_file(path, &sums_len);
    if (!check(sums != NULL, "%s is readable (tests run from the repository root, or set $ONESTEP_GOLDEN)", path))
        return check_summary();

    struct os_err err = {{0}};
    char models[1024];
    int made = golden_make_models_tmp(models, sizeof models, &err) == 0;
    if (!check(made, "the golden models are made (%s)", made ? "mkmodel's generator, golden/vocab" : err.msg)) {
        free(sums);
        return check_summary();
    }

    /* the backends besides the reference */
    const char *env = getenv("ONESTEP_TEST_BACKENDS");
    char list[256];
    snprintf(list, sizeof list, "%s", env ? env : "avx512 avx2 neon cuda");
    const char *backends[16];
    int nb = 0;
    for (char *tok = strtok(list, " ,"); tok && nb < 16; tok = strtok(NULL, " ,")) {
        if (!strcmp(tok, "ref")) continue;
        struct os_err be = {{0}};
        if (!ops_by_name(tok, 0, &be)) {
            /* named explicitly: the user expects it to run */
            if (env) check(0, "backend %s requested by $ONESTEP_TEST_BACKENDS: %s", tok, be.msg);
            else check_skip("backend %s: not available here (%s)", tok, be.msg);
            continue;
        }
        backends[nb++] = tok;
    }

    size_t identical_runs = 0;
    for (size_t i = 0; i < golden_nruns; i++) {
        const struct golden_run *r = &golden_runs[i];
        char mpath[1100], fp[17], what[160];
        snprintf(path, sizeof path, "%s/%s.safetensors.gz", gdir, r->name);
        snprintf(mpath, sizeof mpath, "%s/%s", models, r->model);
        void *buf = NULL;
        size_t len;
        struct st_file *f = NULL;
        int read_ok = golden_load(path, &buf, &len, &err) == 0 && st_open_buffer(buf, len, path, &f, &err) == 0;
        if (!check(read_ok, "%s: read (%s)", path, read_ok ? "ok" : err.msg)) {
            free(buf);
            err.msg[0] = 0;
            continue;
        }
        if (golden_model_fingerprint(mpath, fp, &err)) {
            check(0, "%s: fingerprint of the model: %s", r->name, err.msg);
            goto next;
        }
        const char *want = st_meta(f, "model_fingerprint");
        if (!check(want && !strcmp(want, fp),
                   "%s: the model %s made here (fingerprint %s) is the one the golden file was made from (%s)%s",
                   r->name, r->model, fp, want ? want : "none",
                   want && !strcmp(want, fp) ? ""
                                             : ": mkmodel's generator, weights/configs or golden/vocab changed (then "
                                               "run make golden and review), or this build rounds differently (FMA "
                                               "contraction?)"))
            goto next;
        check_sums(sums, r, f, fp);

        struct golden_set got;
        snprintf(what, sizeof what, "%s [ref]", r->name);
        int gen_ok = golden_generate(r, models, "ref", &got, &err) == 0;
        if (check(gen_ok, "%s: generate (%s)", what, gen_ok ? "ok" : err.msg)) {
            identical_runs += compare_exact(what, path, &got, f);
            golden_set_free(&got);
        }
        for (int b = 0; b < nb; b++) {
            snprintf(what, sizeof what, "%s [%s]", r->name, backends[b]);
            gen_ok = golden_generate(r, models, backends[b], &got, &err) == 0;
            if (!check(gen_ok, "%s: generate (%s)", what, gen_ok ? "ok" : err.msg)) continue;
            compare_tol(what, &got, f);
            golden_set_free(&got);
        }
    next:
        err.msg[0] = 0;
        st_close(f);
        free(buf);
    }
    if (identical_runs == golden_nruns)
        check_note("bit-exact: all %zu golden runs came out with the same bits from this build: %s, %s, "
                   "FLT_EVAL_METHOD %d",
                   golden_nruns, compiler(), opt_level(), (int)FLT_EVAL_METHOD);
    golden_remove_tree(models);
    free(sums);
    return check_summary();
}
