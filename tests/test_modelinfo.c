/* tools/lib/modelwalk (./modelinfo): the shapes it reports are those the
 * upstream pipelines produced, and its FLOP counts agree with a count made
 * here by hand from the architecture.
 *
 * Shapes: for every conformance case with a KL VAE, the walk of the case's
 * model at the case's size must report each text encoder, UNet and VAE
 * tensor of the manifest with the manifest's shape (the manifest records
 * what diffusers produced), and report nothing under those names that the
 * manifest lacks. That covers odd latent sizes (5x9: forward_upsample_size),
 * both families and img2img's encoder.
 *
 * FLOPs: the CLIP text encoder and the KL VAE decoder of the real configs
 * (weights/configs/sd-turbo, sdxl-turbo) and the TAESD decoder
 * (weights/configs/taesd), counted again below from the module structure of
 * transformers' CLIPTextModel and diffusers' Decoder / DecoderTiny, written
 * independently of clip.c / vae.c / taesd.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/lib/modelwalk.h"
#include "lib/check.h"
#include "lib/conformance.h"

static int is_module_tensor(const char *n)
{
    return !strncmp(n, "unet.", 5) || !strncmp(n, "vae.", 4) || !strncmp(n, "text_encoder", 12) ||
           !strcmp(n, "prompt_embeds") || !strcmp(n, "pooled_prompt_embeds") || !strcmp(n, "add_time_ids") ||
           !strcmp(n, "latents.noise") || !strcmp(n, "latents.init") || !strcmp(n, "image.uint8") ||
           (!strncmp(n, "img2img.", 8) && strcmp(n, "img2img.noise_timestep")) ||
           strstr(n, "input_ids") != NULL;
}

static int same_shape(const struct mw_tensor *t, const struct json *shape)
{
    if (!shape || shape->type != JSON_ARRAY || (int)shape->len != t->ndim) return 0;
    for (int i = 0; i < t->ndim; i++)
        if (!shape->items[i].is_int || shape->items[i].integer != t->shape[i]) return 0;
    return 1;
}

static void shapes_of_case(const struct conf_suite *s, const struct json *c)
{
    const char *name = conf_case_name(c);
    const struct json *vae = json_get(c, "vae");
    if (vae && vae->type == JSON_OBJECT && conf_str(vae, "dir")) return; /* TAESD: not walked */
    const struct json *tensors = json_get(c, "tensors");
    if (!check(tensors && tensors->type == JSON_OBJECT, "%s: manifest lists its tensors", name)) return;
    const int W = (int)conf_int(c, "width", 0), H = (int)conf_int(c, "height", 0);
    const int img2img = conf_str(c, "init_image") != NULL;
    struct mw_report r;
    struct os_err err = {{0}};
    if (!check(modelwalk(conf_path(s, conf_str(c, "model")), W, H, img2img, &r, &err) == 0, "%s: walk at %dx%d%s%s", name, W,
               H, err.msg[0] ? ": " : "", err.msg))
        return;
    size_t matched = 0, bad = 0, unknown = 0;
    for (size_t i = 0; i < r.ntensors; i++) {
        const struct mw_tensor *t = &r.tensors[i];
        const struct json *e = json_get(tensors, t->name);
        if (!e) {
            check(0, "%s: the walk reports %s, which the manifest does not have", name, t->name);
            unknown++;
            continue;
        }
        if (same_shape(t, json_get(e, "shape"))) matched++;
        else {
            check(0, "%s: %s has another shape in the manifest", name, t->name);
            bad++;
        }
    }
    size_t missing = 0;
    for (size_t i = 0; i < tensors->len; i++) {
        const char *n = tensors->keys[i];
        if (is_module_tensor(n) && !strstr(n, "lora.") && !mw_tensor(&r, n)) {
            check(0, "%s: %s is in the manifest but not in the walk", name, n);
            missing++;
        }
    }
    check(bad == 0 && unknown == 0 && missing == 0 && matched > 20,
          "%s (%dx%d%s): %zu tensor shapes as in the manifest", name, W, H, img2img ? ", img2img" : "", matched);
    mw_report_free(&r);
}

/* ---- FLOPs by hand ---- */

/* CLIPEncoderLayer: q, k, v, out_proj (D x D), fc1 (D -> I), fc2 (I -> D) on n
 * tokens; attention q kᵀ and the weighted sum, n x n x D each. Plus the
 * projection of the pooled token for CLIPTextModelWithProjection. */
static double clip_flops(int layers, double n, double D, double I, double proj)
{
    double layer = 2 * n * D * D * 4 + 2 * n * D * I * 2 + 4 * n * n * D;
    return layers * layer + (proj > 0 ? 2 * D * proj : 0);
}

static double conv(double cin, double cout, double k, double pixels)
{
    return 2 * cin * cout * k * k * pixels;
}

/* ResnetBlock2D without time embedding: conv1 3x3 cin->cout, conv2 3x3
 * cout->cout, 1x1 shortcut when the channels change. */
static double resnet(double cin, double cout, double px)
{
    return conv(cin, cout, 3, px) + conv(cout, cout, 3, px) + (cin != cout ? conv(cin, cout, 1, px) : 0);
}

/* diffusers' Decoder (vae.py) for block_out_channels bc[0..L-1], layers_per_block
 * lpb, latent channels zc on an h x w latent; post_quant_conv included. */
static double vae_decoder_flops(const int *bc, int L, int lpb, int zc, double h, double w)
{
    double px = h * w, top = bc[L - 1];
    double f = conv(zc, zc, 1, px) + conv(zc, top, 3, px);
    /* mid: resnet, attention (one head of width top over px tokens), resnet */
    f += 2 * resnet(top, top, px) + 4 * 2 * px * top * top + 4 * px * px * top;
    double prev = top;
    for (int i = 0; i < L; i++) {
        double out = bc[L - 1 - i];
        for (int j = 0; j < lpb + 1; j++) f += resnet(j ? out : prev, out, px);
        if (i != L - 1) {
            px *= 4;
            f += conv(out, out, 3, px); /* the conv after the nearest 2x upsample */
        }
        prev = out;
    }
    return f + conv(bc[0], 3, 3, px); /* conv_out */
}

static void flops_by_hand(void)
{
    struct {
        const char *model;
        int W, H;
    } runs[] = {{"weights/configs/sd-turbo", 512, 512}, {"weights/configs/sdxl-turbo", 512, 512},
                {"weights/configs/sdxl-turbo", 1024, 768}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        struct mw_report r;
        struct os_err err = {{0}};
        if (!check(modelwalk(runs[k].model, runs[k].W, runs[k].H, 0, &r, &err) == 0, "%s: walk%s%s", runs[k].model,
                   err.msg[0] ? ": " : "", err.msg))
            continue;
        const int sdxl = strstr(runs[k].model, "sdxl") != NULL;
        /* sd-turbo: OpenCLIP-H cut to 23 layers, no projection; sdxl-turbo: CLIP-L
         * (12 x 768, MLP 3072) and OpenCLIP-bigG (32 x 1280, MLP 5120, projection 1280) */
        double te = sdxl ? clip_flops(12, 77, 768, 3072, 0) : clip_flops(23, 77, 1024, 4096, 0);
        const struct mw_stage *s = mw_stage(&r, "text_encoder");
        check(s && (double)s->flops == te, "%s text_encoder: %.6g FLOP, by hand %.6g", runs[k].model,
              s ? (double)s->flops : 0.0, te);
        if (sdxl) {
            double te2 = clip_flops(32, 77, 1280, 5120, 1280);
            s = mw_stage(&r, "text_encoder_2");
            check(s && (double)s->flops == te2, "%s text_encoder_2: %.6g FLOP, by hand %.6g", runs[k].model,
                  s ? (double)s->flops : 0.0, te2);
        }
        const int bc[4] = {128, 256, 512, 512};
        double vd = vae_decoder_flops(bc, 4, 2, 4, runs[k].H / 8, runs[k].W / 8);
        s = mw_stage(&r, "vae.decoder");
        check(s && (double)s->flops == vd, "%s %dx%d vae.decoder: %.6g FLOP, by hand %.6g", runs[k].model, runs[k].W,
              runs[k].H, s ? (double)s->flops : 0.0, vd);
        mw_report_free(&r);
    }
}

/* DecoderTiny, counted from its module list (diffusers vae.py): conv
 * latent->C at the latent size, then per level num_blocks blocks of three 3x3
 * C->C convs, and after each level but the last a 2x nearest upsample and a
 * C->C conv at the new size; the last level ends with conv C->3. */
static double taesd_decoder_flops(int C, const int *nb, int levels, int latent, int lh, int lw)
{
    double hw = (double)lh * lw, f = 2.0 * C * hw * latent * 9;
    for (int i = 0; i < levels; i++) {
        f += nb[i] * 3 * 2.0 * C * hw * C * 9;
        if (i + 1 < levels) {
            hw *= 4;
            f += 2.0 * C * hw * C * 9;
        }
    }
    return f + 2.0 * 3 * hw * C * 9;
}

static void taesd_by_hand(void)
{
    static const int nb[4] = {3, 3, 3, 1};
    const int sizes[2][2] = {{64, 64}, {128, 96}};
    for (int k = 0; k < 2; k++) {
        struct mw_stage s;
        struct os_err err = {{0}};
        int lh = sizes[k][0], lw = sizes[k][1];
        if (!check(modelwalk_taesd("weights/configs/taesd", lh, lw, &s, &err) == 0, "taesd walk %dx%d%s%s", lh, lw,
                   err.msg[0] ? ": " : "", err.msg))
            continue;
        double want = taesd_decoder_flops(64, nb, 4, 4, lh, lw);
        check((double)s.flops == want && s.flops == s.conv_flops && s.kind == MW_TAESD_DECODE,
              "taesd.decoder at latent %dx%d: %.6g FLOP (all conv), by hand %.6g", lh, lw, (double)s.flops, want);
        check(s.params == 1222531 && s.out_ndim == 4 && s.out_shape[1] == 3 && s.out_shape[2] == 8 * lh &&
                  s.out_shape[3] == 8 * lw,
              "taesd.decoder: %llu parameters, image %lldx%lld", (unsigned long long)s.params,
              (long long)s.out_shape[2], (long long)s.out_shape[3]);
    }
    struct mw_stage s;
    struct os_err err = {{0}};
    check(modelwalk_taesd("no/such/taesd", 64, 64, &s, &err) == -1 && strstr(err.msg, "no/such/taesd"),
          "a missing TAESD directory is refused by name: %s", err.msg);
    err.msg[0] = '\0';
    check(modelwalk_taesd("weights/configs/sd-turbo/vae", 64, 64, &s, &err) == -1 && strstr(err.msg, "AutoencoderTiny"),
          "a KL VAE config is not a TAESD: %s", err.msg);
}

static void bad_input(void)
{
    struct mw_report r;
    struct os_err err = {{0}};
    check(modelwalk("weights/configs/sd-turbo", 500, 512, 0, &r, &err) == -1 && strstr(err.msg, "multiples of 8"),
          "a width that is not a multiple of 8 is refused: %s", err.msg);
    err.msg[0] = '\0';
    check(modelwalk("no/such/model", 512, 512, 0, &r, &err) == -1 && strstr(err.msg, "no/such/model"),
          "a missing model is refused by name: %s", err.msg);
}

int main(void)
{
    flops_by_hand();
    taesd_by_hand();
    bad_input();
    struct conf_suite s;
    if (conf_open(&s) == 0) {
        for (size_t i = 0; i < conf_ncases(&s); i++) shapes_of_case(&s, conf_case(&s, i));
        conf_close(&s);
    }
    return check_summary();
}
