/* ./mkmodel, the program: its output lines, exit codes and options. The
 * writing itself is tested through the library in test_single_file.c; the
 * TAESD component directory here, down to a generation that decodes with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../ref/onestep.h"
#include "../weights/safetensors.h"
#include "lib/check.h"
#include "lib/proc.h"

static int run(const char *args, char *out, size_t len, int with_stderr)
{
    return run_capture(out, len, "%s/mkmodel %s%s", bin_dir(), args, with_stderr ? " 2>&1" : " 2>/dev/null");
}

/* Sum of the element counts of a safetensors file. */
static unsigned long long file_params(const char *path)
{
    struct st_file *f;
    struct os_err err = {{0}};
    if (st_open(path, &f, &err)) return 0;
    unsigned long long n = 0;
    for (size_t i = 0; i < f->ntensors; i++) n += (unsigned long long)tensor_numel(&f->tensors[i]);
    st_close(f);
    return n;
}

int main(void)
{
    char path[512], out[8192];
    snprintf(path, sizeof path, "%s/mkmodel", bin_dir());
    if (!check(access(path, X_OK) == 0, "%s exists (make builds it)", path)) return check_summary();

    int rc = run("--model sd-turbo --count-only", out, sizeof out, 0);
    check(rc == 0 && strcmp(out, "unet 865910724\nvae 83653863\ntext_encoder 340387840\n") == 0,
          "sd-turbo counts, one line per component: exit %d", rc);
    rc = run("--model sdxl-turbo --count-only", out, sizeof out, 0);
    check(rc == 0 && strcmp(out, "unet 2567463684\nvae 83653863\ntext_encoder 123060480\ntext_encoder_2 694659840\n") ==
                         0,
          "sdxl-turbo counts, one line per component: exit %d", rc);

    /* a config directory from the suite: counts equal the suite's files */
    const char *suite = conformance_dir();
    if (suite) {
        char args[600], f[700];
        snprintf(args, sizeof args, "--model %s/sdxl-turbo-tiny --count-only", suite);
        rc = run(args, out, sizeof out, 0);
        static const char *const comps[] = {"unet", "vae", "text_encoder", "text_encoder_2"};
        char want[512] = "";
        for (int i = 0; i < 4; i++) {
            snprintf(f, sizeof f, "%s/sdxl-turbo-tiny/%s/%s", suite, comps[i],
                     i < 2 ? "diffusion_pytorch_model.safetensors" : "model.safetensors");
            size_t n = strlen(want);
            snprintf(want + n, sizeof want - n, "%s %llu\n", comps[i], file_params(f));
        }
        check(rc == 0 && strcmp(out, want) == 0, "a directory's configs (the suite's sdxl-turbo-tiny): counts equal its "
              "files' (%s)", rc ? "failed" : "4 components");
    }

    rc = run("--model taesd --count-only", out, sizeof out, 0);
    check(rc == 0 && strcmp(out, "taesd 2445063\n") == 0, "taesd (a single AutoencoderTiny component) counts: exit %d",
          rc);
    if (suite) {
        char args[600], f[700];
        snprintf(args, sizeof args, "--model %s/taesd-tiny --count-only", suite);
        rc = run(args, out, sizeof out, 0);
        snprintf(f, sizeof f, "%s/taesd-tiny/diffusion_pytorch_model.safetensors", suite);
        char want[64];
        snprintf(want, sizeof want, "taesd %llu\n", file_params(f));
        check(rc == 0 && strcmp(out, want) == 0, "the suite's taesd-tiny config: count equals its file's (%s)", want);
    }
    rc = run("--model weights/configs/sd-turbo/unet --count-only", out, sizeof out, 1);
    check(rc == 1 && strstr(out, "must hold an AutoencoderTiny"), "a single component other than TAESD: exit 1");

    rc = run("--help", out, sizeof out, 0);
    check(rc == 0 && strstr(out, "usage: mkmodel"), "--help: usage, exit 0");
    rc = run("", out, sizeof out, 1);
    check(rc == 2 && strstr(out, "--model and --out are required"), "no arguments: exit 2");
    rc = run("--model tiny-sd --out x --layout zip", out, sizeof out, 1);
    check(rc == 2 && strstr(out, "--layout must be"), "bad --layout: exit 2");
    rc = run("--model tiny-sd --out x --dtype f8", out, sizeof out, 1);
    check(rc == 2 && strstr(out, "--dtype must be"), "bad --dtype: exit 2");
    rc = run("--model tiny-sd --out x --seed 1x", out, sizeof out, 1);
    check(rc == 2 && strstr(out, "--seed must be"), "bad --seed: exit 2");
    rc = run("--model tiny-sd --out", out, sizeof out, 1);
    check(rc == 2 && strstr(out, "needs a value"), "option without a value: exit 2");
    rc = run("--frobnicate", out, sizeof out, 1);
    check(rc == 2 && strstr(out, "unknown option"), "unknown option: exit 2");
    rc = run("--model sd-9 --count-only", out, sizeof out, 1);
    check(rc == 1 && strstr(out, "mkmodel: weights/configs/sd-9: no model_index.json"),
          "unknown model: exit 1, one line naming it");

    char dir[] = "/tmp/onestep-mkmodel-XXXXXX";
    if (mkdtemp(dir)) {
        char args[600];
        snprintf(args, sizeof args, "--model tiny-sdxl --layout single --dtype bf16 --seed 3 --out %s/m.safetensors",
                 dir);
        rc = run(args, out, sizeof out, 0);
        snprintf(path, sizeof path, "%s/m.safetensors", dir);
        struct st_file *f = NULL;
        struct os_err err = {{0}};
        int ok = rc == 0 && st_open(path, &f, &err) == 0;
        const struct tensor *t = ok ? st_get(f, "conditioner.embedders.1.model.text_projection") : NULL;
        check(ok && t && t->dtype == DT_BF16 && strstr(out, "text_encoder_2 805168"),
              "writes a bf16 SDXL single file (exit %d)", rc);
        st_close(f);
        rc = run(args, out, sizeof out, 1);
        check(rc == 1 && strstr(out, "already exists"), "refuses to overwrite: exit %d", rc);

        /* a TAESD directory (f32: the plain file name) that --taesd loads and decodes with */
        char model[64], taesd[64];
        snprintf(model, sizeof model, "%s/tiny-sd", dir);
        snprintf(taesd, sizeof taesd, "%s/taesd", dir);
        snprintf(args, sizeof args, "--model tiny-sd --out %s", model);
        int rc1 = run(args, out, sizeof out, 0);
        snprintf(args, sizeof args, "--model taesd --dtype f32 --out %s", taesd);
        rc = run(args, out, sizeof out, 0);
        snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", taesd);
        check(rc == 0 && file_params(path) == 2445063ull, "writes a TAESD directory: %s (exit %d)", path, rc);
        snprintf(path, sizeof path, "%s/config.json", taesd);
        check(access(path, R_OK) == 0, "... with its config.json");
        struct onestep_load_params lp;
        onestep_load_default_params(&lp);
        lp.model = model;
        lp.backend = "ref";
        lp.taesd = taesd;
        struct onestep_ctx *ctx = NULL;
        struct onestep_err oerr = {"mkmodel failed"};
        int loaded = rc1 == 0 && rc == 0 && onestep_load(&lp, &ctx, &oerr) == 0;
        if (!check(loaded, "onestep loads tiny-sd with --taesd %s%s%s", taesd, loaded ? "" : ": ",
                   loaded ? "" : oerr.msg))
            ctx = NULL;
        if (ctx) {
            struct onestep_params p;
            onestep_default_params(ctx, &p);
            p.prompt = "a cat";
            p.width = p.height = 64;
            struct onestep_image img = {0};
            int g = onestep_generate(ctx, &p, &img, &oerr);
            int varied = 0;
            for (int i = 1; g == 0 && i < img.width * img.height * 3; i++) varied |= img.rgb[i] != img.rgb[0];
            check(g == 0 && img.width == 64 && img.height == 64 && varied,
                  "a 64x64 generation decodes through the synthetic TAESD (%s)", g ? oerr.msg : "not one flat colour");
            onestep_image_free(&img);
            onestep_free(ctx);
        }
        snprintf(args, sizeof args, "--model taesd --layout single --out %s/t.safetensors", dir);
        rc = run(args, out, sizeof out, 1);
        check(rc == 1 && strstr(out, "a TAESD is a directory"), "--layout single for a TAESD: exit 1, says why");
        snprintf(args, sizeof args, "rm -rf %s", dir);
        if (system(args) != 0) check_note("could not remove %s", dir);
    }
    return check_summary();
}
