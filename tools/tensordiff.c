/* tensordiff — compare two safetensors files tensor by tensor.
 *
 * The porter's main tool: dump every intermediate of a run with
 * `onestep --dump run.safetensors`, do the same in your port (same tensor
 * names: those of ../shared/conformance/manifest.json), and diff:
 *
 *   tensordiff run.safetensors port.safetensors
 *   tensordiff run.safetensors ../shared/conformance/cases/sd_t2i_1step.safetensors \
 *              --manifest ../shared/conformance/manifest.json
 *
 * For each tensor present in both: shape check, max |a-b|, max relative
 * difference, how many elements are out of tolerance, and the first worst
 * element with both values. Rows come in the order the tensors were written
 * (pipeline order), so the first failing row is where a port goes wrong.
 * Exit status: 0 all within tolerance, 1 something out of tolerance or a
 * shape mismatch, 2 bad usage or unreadable input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../weights/json.h"
#include "../weights/safetensors.h"
#include "lib/tensorcmp.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tensordiff A.safetensors B.safetensors [options]\n"
            "Compares every tensor present in both files (B is the reference).\n"
            "  --atol A        absolute tolerance (default 1e-5)\n"
            "  --rtol R        relative tolerance: element ok if |a-b| <= atol + rtol*|b| (default 1e-4)\n"
            "  --manifest FILE use the conformance manifest's per-tensor tolerances where it has a row\n"
            "                  (|a-b| <= max(abs, rel_to_max * max|b|); image.uint8: max 1 level, <= 1%% of bytes)\n"
            "  --only TEXT     compare only tensors whose name contains TEXT\n"
            "  -q, --quiet     print only failing rows and the summary\n"
            "Exit status: 0 all within tolerance, 1 out of tolerance or shape mismatch, 2 usage/input error.\n");
}

/* cmp_run reads through a getter with a data pointer: pass the tensor itself. */
static double get_tensor(const void *t, size_t i)
{
    return tensor_get_f64((const struct tensor *)t, (int64_t)i);
}

static int is_float(enum dtype d)
{
    return d == DT_F32 || d == DT_F16 || d == DT_BF16 || d == DT_F64;
}

static void fmt_shape(const struct tensor *t, char *buf, size_t len)
{
    size_t pos = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (pos < len) snprintf(buf + pos, len - pos, "]");
}

static void fmt_index(const struct tensor *t, size_t flat, char *buf, size_t len)
{
    int64_t idx[TENSOR_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = t->shape[d] ? (int64_t)(flat % (size_t)t->shape[d]) : 0;
        flat = t->shape[d] ? flat / (size_t)t->shape[d] : 0;
    }
    size_t pos = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%lld", i ? "," : "", (long long)idx[i]);
    if (pos < len) snprintf(buf + pos, len - pos, "]");
}

static int same_shape(const struct tensor *a, const struct tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static int by_offset(const void *x, const void *y)
{
    const struct tensor *a = *(const struct tensor *const *)x, *b = *(const struct tensor *const *)y;
    const char *pa = a->data, *pb = b->data;
    return pa < pb ? -1 : pa > pb ? 1 : strcmp(a->name, b->name);
}

int main(int argc, char **argv)
{
    const char *pa = NULL, *pb = NULL, *manifest_path = NULL, *only = NULL;
    double atol = 1e-5, rtol = 1e-4;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "--atol") || !strcmp(a, "--rtol")) && i + 1 < argc) {
            char *end;
            double v = strtod(argv[++i], &end);
            if (*end || !(v >= 0) || !isfinite(v)) {
                fprintf(stderr, "tensordiff: %s %s: expected a non-negative number\n", a, argv[i]);
                return 2;
            }
            if (!strcmp(a, "--atol")) atol = v;
            else rtol = v;
        } else if (!strcmp(a, "--manifest") && i + 1 < argc) {
            manifest_path = argv[++i];
        } else if (!strcmp(a, "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tensordiff: unknown or incomplete option %s (see --help)\n", a);
            return 2;
        } else if (!pa) {
            pa = a;
        } else if (!pb) {
            pb = a;
        } else {
            fprintf(stderr, "tensordiff: too many files (%s); give exactly two\n", a);
            return 2;
        }
    }
    if (!pa || !pb) {
        usage(stderr);
        return 2;
    }

    struct os_err err;
    struct st_file *A = NULL, *B = NULL;
    struct json *manifest = NULL;
    const struct json *by_tensor = NULL;
    if (st_open(pa, &A, &err) || st_open(pb, &B, &err)) {
        fprintf(stderr, "tensordiff: %s\n", err.msg);
        st_close(A);
        return 2;
    }
    if (manifest_path) {
        manifest = json_parse_file(manifest_path, 64u << 20, &err);
        if (!manifest) {
            fprintf(stderr, "tensordiff: %s\n", err.msg);
            return 2;
        }
        by_tensor = json_get(json_get(manifest, "tolerances"), "by_tensor");
        if (!by_tensor) {
            fprintf(stderr, "tensordiff: %s: no tolerances.by_tensor (not a conformance manifest?)\n", manifest_path);
            return 2;
        }
    }

    const struct tensor **order = malloc((A->ntensors ? A->ntensors : 1) * sizeof *order);
    if (!order) return 2;
    for (size_t i = 0; i < A->ntensors; i++) order[i] = &A->tensors[i];
    qsort(order, A->ntensors, sizeof *order, by_offset);

    int namew = 6;
    for (size_t i = 0; i < A->ntensors; i++) {
        int n = (int)strlen(order[i]->name);
        if (n > namew && st_get(B, order[i]->name)) namew = n;
    }
    if (namew > 60) namew = 60;

    printf("A: %s (%zu tensors)\nB: %s (%zu tensors, the reference)\n", pa, A->ntensors, pb, B->ntensors);
    if (manifest_path) printf("tolerance: per tensor from %s; otherwise ", manifest_path);
    else printf("tolerance: ");
    printf("|a-b| <= %g + %g*|b|\n\n", atol, rtol);
    printf("     %-*s %-16s %10s %10s %14s  %-14s %14s %14s\n", namew, "tensor", "shape", "max|a-b|", "max rel",
           "out of tol", "worst at", "a", "b");

    size_t compared = 0, failed = 0, only_a = 0, skipped = 0;
    for (size_t i = 0; i < A->ntensors; i++) {
        const struct tensor *ta = order[i];
        if (only && !strstr(ta->name, only)) {
            skipped++;
            continue;
        }
        const struct tensor *tb = st_get(B, ta->name);
        if (!tb) {
            only_a++;
            continue;
        }
        compared++;
        char shape[64], where[64];
        fmt_shape(ta, shape, sizeof shape);
        if (!same_shape(ta, tb)) {
            char sb[64];
            fmt_shape(tb, sb, sizeof sb);
            printf("FAIL %-*s %-16s shape differs: B has %s\n", namew, ta->name, shape, sb);
            failed++;
            continue;
        }
        size_t n = (size_t)tensor_numel(ta);
        struct manifest_tol mt;
        int have_row = by_tensor && manifest_tolerance(by_tensor, ta->name, &mt) == 0;
        struct cmp_stats st;
        int ok;
        char tolnote[64] = "";
        if (have_row && mt.is_image) {
            cmp_run(ta, get_tensor, tb, get_tensor, n, 0, 0, &st); /* count every differing byte */
            ok = st.max_abs <= mt.abs_tol && st.nonfinite == 0 && (double)st.mismatches <= mt.frac * (double)n;
            snprintf(tolnote, sizeof tolnote, "  (<= %g, <= %g%% of bytes)", mt.abs_tol, 100 * mt.frac);
        } else if (have_row) {
            cmp_run(ta, get_tensor, tb, get_tensor, n, 0, 0, &st);
            double tol = fmax(mt.abs_tol, mt.rel_to_max * st.ref_max_abs);
            cmp_run(ta, get_tensor, tb, get_tensor, n, tol, 0, &st);
            ok = st.mismatches == 0;
            snprintf(tolnote, sizeof tolnote, "  (tol %.2g)", tol);
        } else {
            int exact = !is_float(ta->dtype) && !is_float(tb->dtype);
            cmp_run(ta, get_tensor, tb, get_tensor, n, exact ? 0 : atol, exact ? 0 : rtol, &st);
            ok = st.mismatches == 0;
        }
        if (!ok) failed++;
        if (quiet && ok) continue;
        fmt_index(ta, st.worst, where, sizeof where);
        char bad[32];
        snprintf(bad, sizeof bad, "%zu/%zu", st.mismatches, n);
        printf("%s %-*s %-16s %10.3g %10.3g %14s  %-14s %14.8g %14.8g%s%s\n", ok ? "ok  " : "FAIL", namew, ta->name,
               shape, st.max_abs, st.max_rel, bad, where, n ? tensor_get_f64(ta, (int64_t)st.worst) : 0.0,
               n ? tensor_get_f64(tb, (int64_t)st.worst) : 0.0, st.nonfinite ? "  NaN/inf disagree" : "", ok ? "" : tolnote);
    }
    size_t only_b = 0;
    for (size_t i = 0; i < B->ntensors; i++)
        if (!st_get(A, B->tensors[i].name) && (!only || strstr(B->tensors[i].name, only))) only_b++;
    if (!quiet && (only_a || only_b)) {
        printf("\n");
        for (size_t i = 0; i < A->ntensors; i++)
            if (!st_get(B, order[i]->name) && (!only || strstr(order[i]->name, only)))
                printf("only in A: %s\n", order[i]->name);
        for (size_t i = 0; i < B->ntensors; i++)
            if (!st_get(A, B->tensors[i].name) && (!only || strstr(B->tensors[i].name, only)))
                printf("only in B: %s\n", B->tensors[i].name);
    }
    printf("\n%zu compared: %zu within tolerance, %zu out of tolerance; %zu only in A, %zu only in B\n", compared,
           compared - failed, failed, only_a, only_b);
    (void)skipped;
    free(order);
    json_free(manifest);
    st_close(A);
    st_close(B);
    if (compared == 0) {
        fprintf(stderr, "tensordiff: no tensor names in common\n");
        return 2;
    }
    return failed ? 1 : 0;
}
