/* mkgolden — write golden/: every run of tools/lib/golden.c through the
 * scalar reference, frozen (`make golden`).
 *
 *   ./mkgolden            all runs, then golden/SUMS
 *   ./mkgolden --list     the runs, one a line
 *
 * Per run it writes golden/<run>.safetensors.gz (every intermediate) and
 * golden/<run>.png (the image, so a review shows it), and golden/SUMS lists a
 * hash of every tensor: when the reference's numerics change, the diff of
 * SUMS says which tensors of which runs moved. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../weights/atomic_file.h"
#include "lib/golden.h"
#include "lib/image_io.h"

static void shape_str(const struct golden_tensor *t, char *s, size_t cap)
{
    size_t n = (size_t)snprintf(s, cap, "[");
    for (int d = 0; d < t->ndim && n < cap; d++)
        n += (size_t)snprintf(s + n, cap - n, "%s%lld", d ? "," : "", (long long)t->shape[d]);
    if (n < cap) snprintf(s + n, cap - n, "]");
}

/* largest |x| of a tensor, for the reader of SUMS (exact: printed from the bits) */
static double max_abs(const struct golden_tensor *t)
{
    double m = 0;
    size_t n = t->bytes / dtype_size(t->dtype);
    for (size_t i = 0; i < n; i++) {
        double v;
        if (t->dtype == DT_F32) {
            float f;
            memcpy(&f, (const char *)t->data + 4 * i, 4);
            v = f;
        } else if (t->dtype == DT_I64) {
            int64_t k;
            memcpy(&k, (const char *)t->data + 8 * i, 8);
            v = (double)k;
        } else {
            v = ((const unsigned char *)t->data)[i];
        }
        if (v < 0) v = -v;
        if (v > m || v != v) m = v;
    }
    return m;
}

static int sums_run(FILE *f, const struct golden_run *r, const char *fp, const struct golden_set *s)
{
    int ok = fprintf(f, "\n%s  model %s %s\n", r->name, r->model, fp) > 0;
    for (size_t i = 0; i < s->n && ok; i++) {
        const struct golden_tensor *t = &s->t[i];
        char sh[128];
        shape_str(t, sh, sizeof sh);
        ok = fprintf(f, "%s  %s %s %s %016llx  max|x| %.9g\n", r->name, t->name, dtype_name(t->dtype), sh,
                     (unsigned long long)golden_hash(t->data, t->bytes), max_abs(t)) > 0;
    }
    return ok;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--list")) {
        for (size_t i = 0; i < golden_nruns; i++)
            printf("%-36s %-12s %s\n", golden_runs[i].name, golden_runs[i].model, golden_runs[i].covers);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: mkgolden [--list]   (writes %s/ from the scalar reference)\n", golden_dir());
        return 2;
    }
    const char *gdir = golden_dir();
    struct os_err err = {{0}};
    char models[1024];
    if (golden_make_models_tmp(models, sizeof models, &err)) {
        fprintf(stderr, "mkgolden: %s\n", err.msg);
        return 1;
    }
    char sums_path[1100];
    snprintf(sums_path, sizeof sums_path, "%s/SUMS", gdir);
    struct atomic_file sums;
    if (atomic_open(&sums, sums_path, &err)) {
        fprintf(stderr, "mkgolden: %s\n", err.msg);
        golden_remove_tree(models);
        return 1;
    }
    fprintf(sums.f, "# golden/SUMS: FNV-1a 64 of every tensor of every golden run (written by `make golden`).\n"
                    "# A change of the reference's numerics shows here as changed lines.\n"
                    "# run  tensor dtype shape hash  max|x|\n");
    int rc = 0;
    for (size_t i = 0; i < golden_nruns && !rc; i++) {
        const struct golden_run *r = &golden_runs[i];
        char mpath[1100], fp[17], path[1100];
        snprintf(mpath, sizeof mpath, "%s/%s", models, r->model);
        struct golden_set s;
        if (golden_model_fingerprint(mpath, fp, &err) || golden_generate(r, models, "ref", &s, &err)) {
            rc = 1;
            break;
        }
        snprintf(path, sizeof path, "%s/%s.safetensors.gz", gdir, r->name);
        if (golden_save(&s, r, fp, path, &err)) rc = 1;
        const struct golden_tensor *img = golden_find(&s, "image.uint8");
        if (!rc && img) {
            snprintf(path, sizeof path, "%s/%s.png", gdir, r->name);
            if (png_write_rgb(path, img->data, r->width, r->height, NULL, NULL, &err)) rc = 1;
        }
        if (!rc && !sums_run(sums.f, r, fp, &s)) {
            os_fail(&err, "%s: write error", sums_path);
            rc = 1;
        }
        if (!rc) printf("mkgolden: %-36s %3zu tensors\n", r->name, s.n);
        golden_set_free(&s);
    }
    golden_remove_tree(models);
    if (rc) {
        atomic_abort(&sums);
        fprintf(stderr, "mkgolden: %s\n", err.msg);
        return 1;
    }
    if (atomic_commit(&sums, &err)) {
        fprintf(stderr, "mkgolden: %s\n", err.msg);
        return 1;
    }
    printf("mkgolden: wrote %zu runs and %s\n", golden_nruns, sums_path);
    return 0;
}
