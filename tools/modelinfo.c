/* modelinfo — a model's shapes and costs at an image size, from its configs.
 *
 *   ./modelinfo -m weights/configs/sd-turbo                 one line per stage
 *   ./modelinfo -m weights/configs/sdxl-turbo --all         every intermediate's shape
 *   ./modelinfo -m weights/sd-turbo -W 768 -H 512 --only unet.down
 *   ./modelinfo -m weights/configs/sd-turbo --taesd weights/configs/taesd   adds the TAESD decoder
 *
 * Works on a folder of configs (no weights needed), a downloaded model or a
 * single-file checkpoint. Nothing is computed: see tools/lib/modelwalk.h for
 * how the real loaders and forwards are walked, and how FLOPs are counted. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/modelwalk.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: modelinfo -m MODEL [-W N] [-H N] [--img2img] [--taesd DIR] [--all] [--only TEXT]\n"
            "\n"
            "Shapes, parameters, FLOPs and activation memory of each stage of a generation,\n"
            "read from the model's configs (weights are not needed and not read).\n"
            "\n"
            "  -m, --model PATH   diffusers directory, folder of configs (weights/configs/sd-turbo)\n"
            "                     or single .safetensors file\n"
            "  -W, --width N      image width (default 512)\n"
            "  -H, --height N     image height (default 512)\n"
            "      --img2img      include the VAE encoder\n"
            "      --taesd DIR    add the TAESD decoder of an AutoencoderTiny directory or config folder\n"
            "                     (weights/configs/taesd), the stage --taesd runs instead of vae.decoder\n"
            "      --all          list every intermediate tensor (the names --dump writes) with its shape\n"
            "      --only TEXT    with --all: only tensors whose name contains TEXT\n"
            "  -h, --help         this text\n");
}

static int parse_size(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 8 || v > 16384) {
        fprintf(stderr, "modelinfo: %s %s: expected an integer from 8 to 16384\n", flag, s);
        exit(2);
    }
    return (int)v;
}

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *only = NULL, *taesd = NULL;
    int W = 512, H = 512, img2img = 0, all = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--img2img")) {
            img2img = 1;
        } else if (!strcmp(a, "--all")) {
            all = 1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-W") || !strcmp(a, "--width") ||
                   !strcmp(a, "-H") || !strcmp(a, "--height") || !strcmp(a, "--only") || !strcmp(a, "--taesd")) {
            if (!v) {
                fprintf(stderr, "modelinfo: %s: missing value\n", a);
                return 2;
            }
            i++;
            if (a[1] == 'm' || !strcmp(a, "--model")) model = v;
            else if (a[1] == 'W' || !strcmp(a, "--width")) W = parse_size(a, v);
            else if (a[1] == 'H' || !strcmp(a, "--height")) H = parse_size(a, v);
            else if (!strcmp(a, "--taesd")) taesd = v;
            else only = v;
        } else {
            fprintf(stderr, "modelinfo: unknown option %s (see modelinfo --help)\n", a);
            return 2;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }
    if (only && !all) {
        fprintf(stderr, "modelinfo: --only needs --all\n");
        return 2;
    }
    if (taesd && all) {
        fprintf(stderr, "modelinfo: --taesd adds a stage to the table; it does not go with --all\n");
        return 2;
    }

    struct mw_report r;
    struct os_err err = {{0}};
    if (modelwalk(model, W, H, img2img, &r, &err)) {
        fprintf(stderr, "modelinfo: %s\n", err.msg);
        return 1;
    }
    struct mw_stage ts;
    if (taesd && modelwalk_taesd(taesd, r.lh, r.lw, &ts, &err)) {
        fprintf(stderr, "modelinfo: %s\n", err.msg);
        mw_report_free(&r);
        return 1;
    }
    char sb[96];
    int64_t lat[4] = {1, r.lc, r.lh, r.lw};
    printf("%s: %s, %dx%d, latents %s\n", model, r.pipeline, r.width, r.height, shape_str(4, lat, sb, sizeof sb));
    if (all) {
        for (size_t i = 0; i < r.ntensors; i++) {
            const struct mw_tensor *t = &r.tensors[i];
            if (only && !strstr(t->name, only)) continue;
            printf("  %-44s %s\n", t->name, shape_str(t->ndim, t->shape, sb, sizeof sb));
        }
    } else {
        printf("  %-14s %11s %10s %8s %8s %8s %12s  %s\n", "stage", "parameters", "GFLOP", "conv", "linear",
               "attn", "activations", "output");
        uint64_t total = 0, vae_decoder = 0;
        for (int i = 0; i < r.nstages + (taesd != NULL); i++) {
            const struct mw_stage *s = i < r.nstages ? &r.stages[i] : &ts;
            if (i < r.nstages) total += s->flops;
            if (s->kind == MW_VAE_DECODE) vae_decoder = s->flops;
            printf("  %-14s %11llu %10.1f %8.1f %8.1f %8.1f %8.1f MiB  %s\n", s->name, (unsigned long long)s->params,
                   s->flops * 1e-9, s->conv_flops * 1e-9, s->linear_flops * 1e-9, s->attention_flops * 1e-9,
                   s->peak_bytes / 1048576.0, shape_str(s->out_ndim, s->out_shape, sb, sizeof sb));
        }
        printf("  total with 1 step: %.1f GFLOP (each further step adds the unet's)\n", total * 1e-9);
        if (taesd)
            printf("  with taesd.decoder instead of vae.decoder: %.1f GFLOP; the decoder does %.1f%% of the VAE's work\n",
                   (total - vae_decoder + ts.flops) * 1e-9, vae_decoder ? 100.0 * ts.flops / vae_decoder : 0.0);
    }
    mw_report_free(&r);
    return 0;
}
