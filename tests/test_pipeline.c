/* End to end: every conformance case through the public API (onestep.h),
 * every intermediate the case file holds compared with the manifest's
 * tolerance, the final image within 1 level on at most 1% of the bytes.
 *
 * Backends: the reference always; others listed in $ONESTEP_TEST_BACKENDS
 * (e.g. "avx2 avx512") or, by default, every SIMD backend this CPU runs,
 * with the manifest's tolerances scaled by 4 for them (float accumulation in
 * blocked order instead of the reference's double; the measured SIMD error
 * is about a tenth of the unscaled tolerance, see tests/test_simd_*). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/common.h"
#include "../ref/onestep.h"
#include "../ref/ops.h"
#include "lib/check.h"
#include "lib/conformance.h"
#include "lib/dumps.h"

/* ---- collect the dumps by name (the public API's hook, host buffers) ---- */

static void on_dump(void *user, const char *name, enum onestep_dtype dtype, const void *data, int ndim,
                    const int64_t *shape)
{
    struct dumped *e = dumps_add(user, name, ndim, shape);
    if (!e) return;
    for (size_t i = 0; i < e->n; i++) {
        if (dtype == ONESTEP_F32) e->data[i] = ((const float *)data)[i];
        else if (dtype == ONESTEP_I64) e->data[i] = (float)((const int64_t *)data)[i];
        else e->data[i] = ((const unsigned char *)data)[i];
    }
}

/* ---- one case ---- */

static void run_case(const struct conf_suite *s, const struct json *c, const char *backend, double slack)
{
    const char *name = conf_case_name(c);
    struct st_file *f = conf_case_file(s, c);
    if (!f) return;

    struct onestep_load_params lp;
    onestep_load_default_params(&lp);
    lp.model = conf_path(s, conf_str(c, "model"));
    lp.backend = backend;
    lp.threads = 0;
    const char *variant = conf_str(c, "weights_variant");
    lp.variant = variant ? variant : "fp32";
    const char *schedfile = conf_str(c, "scheduler_config_file");
    char schedpath[1024];
    if (schedfile) {
        snprintf(schedpath, sizeof schedpath, "%s", conf_path(s, schedfile));
        lp.scheduler_config = schedpath;
    }
    /* extension cases: TAESD as the decoder, a LoRA fused into the UNet */
    char taesd[1024];
    const struct json *vae = json_get(c, "vae");
    if (vae && vae->type == JSON_OBJECT && conf_str(vae, "dir")) {
        snprintf(taesd, sizeof taesd, "%s", conf_path(s, conf_str(vae, "dir")));
        lp.taesd = taesd;
    }
    char lora_path[1024];
    struct onestep_lora lora;
    const struct json *lj = json_get(c, "lora");
    if (lj && lj->type == JSON_OBJECT && conf_str(lj, "file")) {
        snprintf(lora_path, sizeof lora_path, "%s", conf_path(s, conf_str(lj, "file")));
        lora.path = lora_path;
        lora.scale = (float)conf_num(lj, "scale", 1.0);
        lp.loras = &lora;
        lp.nloras = 1;
    }
    struct onestep_ctx *ctx = NULL;
    struct onestep_err err = {{0}};
    int loaded = onestep_load(&lp, &ctx, &err) == 0; /* before check(): its arguments have no order */
    if (!check(loaded, "%s [%s]: load %s%s%s", name, backend, lp.model, loaded ? "" : ": ", loaded ? "" : err.msg)) {
        st_close(f);
        return;
    }

    struct onestep_params p;
    onestep_default_params(ctx, &p);
    p.prompt = conf_str(c, "prompt");
    p.prompt_2 = conf_str(c, "prompt_2");
    p.width = (int)conf_int(c, "width", 0);
    p.height = (int)conf_int(c, "height", 0);
    p.steps = (int)conf_int(c, "num_inference_steps", 1);
    p.seed = (uint64_t)conf_num(c, "seed", 0);
    int ts[64];
    const struct json *targ = json_get(c, "timesteps_arg");
    if (targ && targ->type == JSON_ARRAY) {
        for (size_t i = 0; i < targ->len && i < 64; i++) ts[i] = (int)targ->items[i].number;
        p.timesteps = ts;
        p.ntimesteps = (int)targ->len;
    }
    unsigned char *init = NULL;
    const char *init_rel = conf_str(c, "init_image");
    if (init_rel) {
        /* the suite's init image as the pipeline saw it: img2img.image = 2*(p/255)-1 */
        size_t n;
        float *im = conf_tensor(f, "img2img.image", &n);
        if (!im) {
            check(0, "%s: no img2img.image in the case file", name);
            goto out;
        }
        size_t hw = n / 3;
        init = malloc(n);
        for (size_t i = 0; i < hw; i++)
            for (int ch = 0; ch < 3; ch++)
                init[i * 3 + ch] = (unsigned char)lrintf((im[ch * hw + i] + 1.0f) * 127.5f);
        free(im);
        p.init_rgb = init;
        p.init_width = p.width;
        p.init_height = p.height;
        p.strength = conf_num(c, "strength", 0.5);
    }
    struct dumps col = {0};
    p.dump = on_dump;
    p.dump_user = &col;
    struct onestep_image img;
    int rc = onestep_generate(ctx, &p, &img, &err);
    if (check(rc == 0, "%s [%s]: generate (%s)", name, backend, rc ? err.msg : "ok")) {
        check(img.width == p.width && img.height == p.height, "%s [%s]: image is %dx%d", name, backend, img.width,
              img.height);
        /* every tensor of the case file, within tolerance */
        size_t missing = 0;
        for (size_t i = 0; i < f->ntensors; i++) {
            const char *tn = f->tensors[i].name;
            const struct dumped *e = dumps_find_once(&col, tn); /* twice: a bug */
            if (!e) {
                check(0, "%s [%s] %s: not dumped (or dumped twice)", name, backend, tn);
                missing++;
                continue;
            }
            if (!strcmp(tn, "image.uint8")) {
                size_t n;
                float *ref = conf_tensor(f, tn, &n);
                size_t differ = 0;
                double maxd = 0;
                for (size_t j = 0; j < n && j < e->n; j++) {
                    double d = fabs(ref[j] - e->data[j]);
                    if (d > 0) differ++;
                    if (d > maxd) maxd = d;
                }
                double limit = slack > 1 ? 2 : 1; /* SIMD backends: the issue allows 2 levels */
                check(n == e->n && maxd <= limit && differ <= n / 100,
                      "%s [%s] image.uint8: max |diff| %.0f, %zu of %zu bytes differ", name, backend, maxd, differ, n);
                free(ref);
                continue;
            }
            conf_check(s, c, f, tn, e->data, e->n, slack);
        }
        (void)missing;
        onestep_image_free(&img);
    }
    dumps_clear(&col);
out:
    free(init);
    onestep_free(ctx);
    st_close(f);
}

int main(void)
{
    struct conf_suite s;
    if (conf_open(&s) != 0) return check_summary();
    const char *list = getenv("ONESTEP_TEST_BACKENDS");
    char backends[256], found[128] = "";
    if (!list) { /* the header's default: every SIMD backend this CPU runs */
        static const char *simd[] = {"avx512", "avx2", "neon"};
        for (size_t i = 0; i < sizeof simd / sizeof simd[0]; i++) {
            struct os_err e = {{0}};
            if (ops_by_name(simd[i], 0, &e)) {
                strcat(found, " ");
                strcat(found, simd[i]);
            }
        }
        list = found;
    }
    snprintf(backends, sizeof backends, "ref %s", list);
    for (char *tok = strtok(backends, " ,"); tok; tok = strtok(NULL, " ,")) {
        double slack = strcmp(tok, "ref") ? 4.0 : 1.0;
        for (size_t i = 0; i < conf_ncases(&s); i++) run_case(&s, conf_case(&s, i), tok, slack);
    }
    conf_close(&s);
    return check_summary();
}
