/* AutoencoderKL (ref/vae.c) against the conformance suite, plus its loader's
 * errors, the measure-then-run protocol, f16 weights, and the arena peak of
 * the full-size SD/SDXL VAE.
 *
 * Every case that decodes with the KL VAE: decode its vae.decode.input and
 * compare every vae.* decoder tensor, vae.decode.output and the uint8 image;
 * img2img cases also encode img2img.image and compare vae.encoder.* and
 * vae.quant_conv. Tolerances are the manifest's. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/vae.h"
#include "lib/check.h"
#include "lib/components.h"
#include "lib/conformance.h"
#include "lib/dumps.h"

/* ----------------------------------------------- measure, then run for real */

/* Run decode (enc = 0) or encode (enc = 1) the way the pipeline does: first on
 * ops_null with a measuring arena, then on ops_ref in an arena of exactly the
 * measured size. *peak gets the measured peak; the real run must use exactly
 * as much (checked when check_peak). */
static int run(const struct vae *v, int enc, const float *in, int h, int w, float *out, struct dumps *col,
               size_t *peak, int check_peak, struct os_err *err)
{
    struct arena m;
    arena_init_measure(&m);
    int rc = enc ? vae_encode(v, ops_null(), &m, in, h, w, out, NULL, err)
                 : vae_decode(v, ops_null(), &m, in, h, w, out, NULL, err);
    size_t measured = m.peak;
    int live = (int)m.nblocks;
    arena_destroy(&m);
    if (rc) return -1;
    if (peak) *peak = measured;
    struct arena a;
    if (arena_init(&a, ops_ref(), measured, err)) return -1;
    struct dump_hook hook = {dumps_fn, col};
    if (col) col->o = ops_ref();
    rc = enc ? vae_encode(v, ops_ref(), &a, in, h, w, out, col ? &hook : NULL, err)
             : vae_decode(v, ops_ref(), &a, in, h, w, out, col ? &hook : NULL, err);
    if (check_peak)
        check(rc == 0 && a.peak == measured && live == 0 && a.nblocks == 0,
              "%s: the real run used exactly the measured peak (%zu bytes) and freed everything it allocated",
              enc ? "encode" : "decode", measured);
    arena_destroy(&a);
    return rc;
}

static void compare_dump(const struct conf_suite *s, const struct json *c, const struct st_file *f,
                         const struct dumps *col, const char *name)
{
    const struct dumped *e = dumps_find(col, name);
    conf_compare(s, c, f, name, e ? e->data : NULL, e ? e->n : 0);
}

/* vae_to_uint8 of our decode against image.uint8 (the suite's rule), and of
 * the golden decode.output (must be exact: that tests the conversion itself). */
static void compare_uint8(const struct json *c, const struct st_file *f, const float *img, int H, int W)
{
    const char *cn = conf_case_name(c);
    unsigned char *rgb = conf_compare_uint8(c, f, img, H, W);
    size_t n;
    float *want = conf_tensor(f, "image.uint8", &n);
    float *gold = conf_tensor(f, "vae.decode.output", NULL);
    if (check(rgb && want && gold && n == (size_t)H * W * 3, "%s image.uint8 and vae.decode.output present", cn)) {
        vae_to_uint8(gold, H, W, rgb);
        size_t exact_diff = 0;
        for (size_t i = 0; i < n; i++) exact_diff += rgb[i] != (unsigned char)want[i];
        check(exact_diff == 0, "%s vae_to_uint8(golden vae.decode.output) == image.uint8 exactly (%zu bytes differ)",
              cn, exact_diff);
    }
    free(rgb);
    free(want);
    free(gold);
}

/* -------------------------------------------------- one conformance case */

static const char *const decoder_names[] = {
    "vae.post_quant_conv",     "vae.decoder.conv_in",     "vae.decoder.mid_block",   "vae.decoder.up_blocks.0",
    "vae.decoder.up_blocks.1", "vae.decoder.up_blocks.2", "vae.decoder.up_blocks.3", "vae.decode.output",
};
static const char *const encoder_names[] = {
    "vae.encoder.conv_in",       "vae.encoder.down_blocks.0", "vae.encoder.down_blocks.1",
    "vae.encoder.down_blocks.2", "vae.encoder.down_blocks.3", "vae.encoder.mid_block",
    "vae.encoder.conv_out",      "vae.quant_conv",
};

static int open_vae(const struct conf_suite *s, const char *model, enum weight_variant var, struct component *c,
                    struct os_err *err)
{
    struct model_dir *m;
    if (model_dir_open(conf_path(s, model), &m, err)) return -1;
    int rc = component_open(m, "vae", "config.json", 1, var, c, err);
    model_dir_close(m);
    return rc;
}

static void run_case(const struct conf_suite *s, const struct json *c)
{
    const char *cn = conf_case_name(c);
    const struct json *vcfg = json_get(c, "vae");
    const char *vcls = conf_str(vcfg, "class");
    if (vcls && strcmp(vcls, "AutoencoderKL") != 0) {
        check_skip("%s: decodes with %s (TAESD, not the KL VAE)", cn, vcls);
        return;
    }
    const char *variant = conf_str(c, "weights_variant");
    int fp16 = variant && strcmp(variant, "fp16") == 0;
    const char *task = conf_str(c, "task");
    int img2img = task && strcmp(task, "img2img") == 0;

    struct os_err err = {{0}};
    struct component comp;
    struct vae v;
    if (!check(open_vae(s, conf_str(c, "model"), fp16 ? VARIANT_FP16 : VARIANT_FP32, &comp, &err) == 0,
               "%s: open %s/vae%s%s", cn, conf_str(c, "model"), fp16 ? " (fp16 variant)" : "", err.msg))
        return;
    struct st_file *f = conf_case_file(s, c);
    if (!f || !check(vae_load(&v, &comp, img2img, &err) == 0, "%s: vae_load %s", cn, err.msg)) goto done;
    if (fp16) check(comp.tensors[0].dtype == DT_F16, "%s: the fp16 variant has F16 weights", cn);

    const struct tensor *zt = st_get(f, "vae.decode.input");
    if (!check(zt && zt->ndim == 4, "%s: vae.decode.input [1, C, h, w] present", cn)) goto done;
    int h = (int)zt->shape[2], w = (int)zt->shape[3], H = h * v.factor, W = w * v.factor;
    float *z = conf_tensor(f, "vae.decode.input", NULL);
    float *img = malloc(sizeof(float) * 3 * H * W);
    struct dumps col = {0};
    if (check(run(&v, 0, z, h, w, img, &col, NULL, 0, &err) == 0, "%s: decode %dx%d latent %s", cn, h, w, err.msg)) {
        for (size_t i = 0; i < sizeof decoder_names / sizeof *decoder_names; i++)
            compare_dump(s, c, f, &col, decoder_names[i]);
        const struct dumped *out = dumps_find(&col, "vae.decode.output");
        check(out && memcmp(out->data, img, sizeof(float) * 3 * H * W) == 0,
              "%s: the returned image is the dumped vae.decode.output", cn);
        compare_uint8(c, f, img, H, W);
    }
    dumps_clear(&col);
    free(z);
    free(img);

    if (img2img) {
        const struct tensor *it = st_get(f, "img2img.image");
        if (!check(it && it->ndim == 4, "%s: img2img.image [1, 3, H, W] present", cn)) goto done;
        H = (int)it->shape[2];
        W = (int)it->shape[3];
        float *x = conf_tensor(f, "img2img.image", NULL);
        size_t mn = (size_t)2 * v.latent_channels * (H / v.factor) * (W / v.factor);
        float *moments = malloc(sizeof(float) * mn);
        if (check(run(&v, 1, x, H, W, moments, &col, NULL, 0, &err) == 0, "%s: encode %dx%d image %s", cn, H, W,
                  err.msg)) {
            for (size_t i = 0; i < sizeof encoder_names / sizeof *encoder_names; i++)
                compare_dump(s, c, f, &col, encoder_names[i]);
            conf_compare(s, c, f, "vae.quant_conv", moments, mn);
        }
        dumps_clear(&col);
        free(x);
        free(moments);
    }
done:
    st_close(f);
    component_close(&comp);
}

/* ------------------------------------------------ in-memory components */

/* The tiny checkpoint's tensors with every value widened to a new F32 array
 * (owned by `owner`), so f16 and f32 checkpoints of the same values can be
 * compared. */
static struct tensor *widened_copy(const struct component *src, struct component *owner)
{
    struct tensor *t = malloc(src->ntensors * sizeof *t);
    for (size_t i = 0; i < src->ntensors; i++) {
        t[i] = src->tensors[i];
        int64_t n = tensor_numel(&t[i]);
        float *d = malloc((size_t)(n ? n : 1) * sizeof *d);
        tensor_read_f32(&src->tensors[i], 0, n, d);
        component_own(owner, d);
        t[i].data = d;
        t[i].dtype = DT_F32;
    }
    return t;
}

/* The sd-turbo-tiny VAE config (the keys that matter), one line. */
static const char tiny_config[] =
    "{\"_class_name\": \"AutoencoderKL\", \"act_fn\": \"silu\", \"block_out_channels\": [4, 8, 16, 16], "
    "\"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", "
    "\"DownEncoderBlock2D\"], \"in_channels\": 3, \"latent_channels\": 4, \"latents_mean\": null, "
    "\"latents_std\": null, \"layers_per_block\": 2, \"mid_block_add_attention\": true, \"norm_num_groups\": 2, "
    "\"out_channels\": 3, \"scaling_factor\": 0.18215, \"shift_factor\": null, \"up_block_types\": "
    "[\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"], "
    "\"use_post_quant_conv\": true, \"use_quant_conv\": true}";

/* stabilityai/sd-turbo's and sdxl-turbo's vae/config.json, architecture keys
 * (the two differ only in scaling_factor). */
static const char full_config[] =
    "{\"_class_name\": \"AutoencoderKL\", \"act_fn\": \"silu\", \"block_out_channels\": [128, 256, 512, 512], "
    "\"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", "
    "\"DownEncoderBlock2D\"], \"in_channels\": 3, \"latent_channels\": 4, \"layers_per_block\": 2, "
    "\"norm_num_groups\": 32, \"out_channels\": 3, \"sample_size\": 768, \"scaling_factor\": 0.18215, "
    "\"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";

/* ------------------------------------- synthetic checkpoints (shapes only) */

/* The tensor names and shapes of an AutoencoderKL as diffusers' module tree
 * names them (vae.py / unet_2d_blocks.py), written independently of
 * ref/vae.c; checked against the tiny checkpoint below before it is trusted
 * for the full-size config. Data pointers are NULL: only ops_null runs on it. */
struct synth {
    struct tensor_list l;
};

static void add(struct synth *s, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...)
    CHECK_PRINTF(7, 8);
static void add(struct synth *s, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...)
{
    const int64_t d[4] = {d0, d1, d2, d3};
    va_list ap;
    va_start(ap, fmt);
    tensor_list_vadd(&s->l, ndim, d, fmt, ap);
    va_end(ap);
}

static void s_conv(struct synth *s, const char *p, int out, int in, int k)
{
    add(s, 4, out, in, k, k, "%s.weight", p);
    add(s, 1, out, 0, 0, 0, "%s.bias", p);
}
static void s_norm(struct synth *s, const char *p, int C)
{
    add(s, 1, C, 0, 0, 0, "%s.weight", p);
    add(s, 1, C, 0, 0, 0, "%s.bias", p);
}
static void s_resnet(struct synth *s, const char *p, int in, int out)
{
    char b[200];
    snprintf(b, sizeof b, "%s.norm1", p);
    s_norm(s, b, in);
    snprintf(b, sizeof b, "%s.conv1", p);
    s_conv(s, b, out, in, 3);
    snprintf(b, sizeof b, "%s.norm2", p);
    s_norm(s, b, out);
    snprintf(b, sizeof b, "%s.conv2", p);
    s_conv(s, b, out, out, 3);
    if (in != out) {
        snprintf(b, sizeof b, "%s.conv_shortcut", p);
        s_conv(s, b, out, in, 1);
    }
}
static void s_mid(struct synth *s, const char *p, int C)
{
    char b[200];
    for (int i = 0; i < 2; i++) {
        snprintf(b, sizeof b, "%s.resnets.%d", p, i);
        s_resnet(s, b, C, C);
    }
    snprintf(b, sizeof b, "%s.attentions.0.group_norm", p);
    s_norm(s, b, C);
    const char *lin[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    for (int i = 0; i < 4; i++) {
        add(s, 2, C, C, 0, 0, "%s.attentions.0.%s.weight", p, lin[i]);
        add(s, 1, C, 0, 0, 0, "%s.attentions.0.%s.bias", p, lin[i]);
    }
}

/* AutoencoderKL(block_out_channels=ch[0..L), layers_per_block, latent 4, RGB). */
static void synth_vae(struct synth *s, const int *ch, int L, int lpb)
{
    char b[200];
    const int lat = 4, top = ch[L - 1];
    s_conv(s, "encoder.conv_in", ch[0], 3, 3);
    int prev = ch[0];
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < lpb; j++) {
            snprintf(b, sizeof b, "encoder.down_blocks.%d.resnets.%d", i, j);
            s_resnet(s, b, j ? ch[i] : prev, ch[i]);
        }
        if (i != L - 1) {
            snprintf(b, sizeof b, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            s_conv(s, b, ch[i], ch[i], 3);
        }
        prev = ch[i];
    }
    s_mid(s, "encoder.mid_block", top);
    s_norm(s, "encoder.conv_norm_out", top);
    s_conv(s, "encoder.conv_out", 2 * lat, top, 3);
    s_conv(s, "quant_conv", 2 * lat, 2 * lat, 1);
    s_conv(s, "post_quant_conv", lat, lat, 1);
    s_conv(s, "decoder.conv_in", top, lat, 3);
    s_mid(s, "decoder.mid_block", top);
    prev = top;
    for (int i = 0; i < L; i++) {
        int out = ch[L - 1 - i];
        for (int j = 0; j < lpb + 1; j++) {
            snprintf(b, sizeof b, "decoder.up_blocks.%d.resnets.%d", i, j);
            s_resnet(s, b, j ? out : prev, out);
        }
        if (i != L - 1) {
            snprintf(b, sizeof b, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            s_conv(s, b, out, out, 3);
        }
        prev = out;
    }
    s_norm(s, "decoder.conv_norm_out", ch[0]);
    s_conv(s, "decoder.conv_out", 3, ch[0], 3);
}

/* The generator reproduces the tiny checkpoint's names and shapes exactly. */
static void check_synth_matches(const struct component *tiny)
{
    struct component own = {0};
    struct synth s = {.l.owner = &own};
    int ch[4] = {4, 8, 16, 16};
    synth_vae(&s, ch, 4, 2);
    check(same_layout(s.l.t, s.l.n, tiny), "the test's synthetic AutoencoderKL layout reproduces the tiny checkpoint (%zu tensors)", s.l.n);
    free(s.l.t);
    component_close(&own);
}

/* Arena peaks of the full-size SD/SDXL VAE (block_out_channels 128..512). */
static void full_size_peaks(void)
{
    struct os_err err = {{0}};
    struct component c;
    struct synth s = {0};
    struct component holder = {0};
    s.l.owner = &holder;
    int ch[4] = {128, 256, 512, 512};
    synth_vae(&s, ch, 4, 2);
    if (!check(mem_component(&c, "vae", full_config, s.l.t, s.l.n, &err) == 0, "full-size config parses %s", err.msg)) return;
    struct vae v;
    if (check(vae_load(&v, &c, 1, &err) == 0, "full-size SD/SDXL VAE loads from a shapes-only checkpoint %s",
              err.msg)) {
        const int sizes[2] = {512, 1024};
        for (int i = 0; i < 2; i++) {
            const int S = sizes[i], h = S / v.factor;
            struct arena m;
            arena_init_measure(&m);
            int rc = vae_decode(&v, ops_null(), &m, NULL, h, h, NULL, NULL, &err);
            size_t dec = m.peak;
            arena_destroy(&m);
            arena_init_measure(&m);
            rc |= vae_encode(&v, ops_null(), &m, NULL, S, S, NULL, NULL, &err);
            size_t enc = m.peak;
            arena_destroy(&m);
            /* the smallest conceivable decoder peak: the last up block's first
             * resnet holds its input (256 ch) and its normalised copy at full
             * size while conv1 writes 128 ch */
            size_t floor_dec = (size_t)S * S * 4 * (256 + 256 + 128);
            check(rc == 0 && dec >= floor_dec && dec <= floor_dec + floor_dec / 4,
                  "full-size VAE %dx%d: decode peak %.1f MiB, encode peak %.1f MiB (decode floor %.1f MiB)", S, S,
                  dec / 1048576.0, enc / 1048576.0, floor_dec / 1048576.0);
        }
    }
    component_close(&c);
    component_close(&holder);
    free(s.l.t);
}

/* ------------------------------------------------------- loader errors */

/* vae_load on (config, tensors) must fail with a message containing `needle`. */
static void expect_load_error(const char *what, const char *config, struct tensor *t, size_t n, int enc,
                              const char *needle)
{
    struct os_err err = {{0}};
    struct component c;
    struct vae v;
    int rc = mem_component(&c, "vae", config, t, n, &err);
    if (rc == 0) rc = vae_load(&v, &c, enc, &err);
    check(rc == -1 && strstr(err.msg, needle) != NULL, "%s -> \"%s\"", what, err.msg);
    if (c.name) component_close(&c);
}

static int expect_load_ok(const char *what, const char *config, struct tensor *t, size_t n, int enc, struct vae *v,
                          struct component *c)
{
    struct os_err err = {{0}};
    int rc = mem_component(c, "vae", config, t, n, &err);
    if (rc == 0) rc = vae_load(v, c, enc, &err);
    return check(rc == 0, "%s %s", what, err.msg);
}

/* tiny's tensors without the one named `name` (n - 1 entries, new array). */
static void loader_errors(const struct component *tiny, const float *z, int h, int w)
{
    struct tensor *t = tiny->tensors;
    const size_t n = tiny->ntensors;
    struct { const char *from, *to, *needle, *what; } bad[] = {
        {"\"AutoencoderKL\"", "\"AutoencoderTiny\"", "AutoencoderTiny", "another VAE class"},
        {"\"silu\"", "\"gelu\"", "act_fn", "an unsupported act_fn"},
        {"[\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"]",
         "[\"DownEncoderBlock2D\", \"AttnDownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"]",
         "AttnDownEncoderBlock2D", "an unsupported down block type"},
        {"\"UpDecoderBlock2D\"]", "\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]", "up_block_types",
         "5 up blocks for 4 levels"},
        {"[4, 8, 16, 16]", "[4, 8, 15, 16]", "not divisible by norm_num_groups", "channels not divisible into groups"},
        {"[4, 8, 16, 16]", "[4, 8, 16, 0]", "block_out_channels", "a zero channel count"},
        {"[4, 8, 16, 16]", "[]", "block_out_channels", "empty block_out_channels"},
        {"\"layers_per_block\": 2", "\"layers_per_block\": 2.5", "layers_per_block", "a fractional layers_per_block"},
        {"\"layers_per_block\": 2", "\"layers_per_block\": 3", "decoder.up_blocks.0.resnets.3",
         "layers_per_block 3 for a 2-layer checkpoint"},
        {"\"norm_num_groups\": 2", "\"norm_num_groups\": -1", "norm_num_groups", "negative groups"},
        {"\"latent_channels\": 4", "\"latent_channels\": 1000", "latent_channels", "absurd latent_channels"},
        {"\"latent_channels\": 4", "\"latent_channels\": 8", "post_quant_conv.weight",
         "latent_channels 8 for a 4-channel checkpoint"},
        {"\"scaling_factor\": 0.18215", "\"scaling_factor\": 0", "scaling_factor", "scaling_factor 0"},
        {"\"scaling_factor\": 0.18215", "\"scaling_factor\": \"x\"", "scaling_factor", "a string scaling_factor"},
        {"\"latents_mean\": null", "\"latents_mean\": [1, 2]", "latents_mean", "latents_mean of the wrong length"},
        {"\"use_quant_conv\": true", "\"use_quant_conv\": 1", "use_quant_conv", "a non-boolean use_quant_conv"},
        {"\"use_post_quant_conv\": true", "\"use_post_quant_conv\": false", "post_quant_conv",
         "use_post_quant_conv false with post_quant_conv in the checkpoint (extra tensors)"},
        {"\"mid_block_add_attention\": true", "\"mid_block_add_attention\": false", "attentions.0",
         "mid_block_add_attention false with attention weights present (extra tensors)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *cfg = str_replace(tiny_config, bad[i].from, bad[i].to);
        expect_load_error(bad[i].what, cfg, t, n, 1, bad[i].needle);
        free(cfg);
    }
    expect_load_error("a config that is not JSON", "{\"block_out_channels\": [4,", t, n, 1, "test/vae/config.json");
    expect_load_error("a config that is an array", "[1, 2]", t, n, 1, "config");

    /* missing, wrong shape, extra */
    size_t m;
    struct tensor *fewer = tensors_without(t, n, "decoder.up_blocks.1.resnets.2.conv2.weight", &m);
    expect_load_error("a missing decoder tensor", tiny_config, fewer, m, 0,
                      "missing tensor \"decoder.up_blocks.1.resnets.2.conv2.weight\"");
    free(fewer);
    fewer = tensors_without(t, n, "encoder.down_blocks.0.downsamplers.0.conv.bias", &m);
    expect_load_error("a missing encoder tensor (with the encoder)", tiny_config, fewer, m, 1,
                      "missing tensor \"encoder.down_blocks.0.downsamplers.0.conv.bias\"");
    struct component c;
    struct vae v;
    if (expect_load_ok("the same checkpoint loads without the encoder", tiny_config, fewer, m, 0, &v, &c))
        component_close(&c);
    free(fewer);

    struct tensor *more = malloc((n + 1) * sizeof *more);
    memcpy(more, t, n * sizeof *t);
    more[n] = t[0];
    more[n].name = "decoder.up_blocks.9.resnets.0.conv1.weight";
    expect_load_error("an extra tensor", tiny_config, more, n + 1, 1, "decoder.up_blocks.9.resnets.0.conv1.weight");
    more[n].name = "encoder.extra.weight";
    if (expect_load_ok("an unknown encoder.* tensor is ignored without the encoder", tiny_config, more, n + 1, 0, &v,
                       &c))
        component_close(&c);
    expect_load_error("... and is an error with it", tiny_config, more, n + 1, 1, "encoder.extra.weight");

    memcpy(more, t, n * sizeof *t);
    for (size_t i = 0; i < n; i++)
        if (strcmp(more[i].name, "decoder.mid_block.attentions.0.to_k.weight") == 0) {
            more[i].shape[1] = 8;
            more[i].data = t[i].data; /* 16*8 < 16*16 floats: never read */
        }
    expect_load_error("a wrong shape", tiny_config, more, n, 0, "to_k.weight\" has shape [16, 8]");
    memcpy(more, t, n * sizeof *t);
    for (size_t i = 0; i < n; i++)
        if (strcmp(more[i].name, "post_quant_conv.bias") == 0) more[i].dtype = DT_I32;
    expect_load_error("an integer weight", tiny_config, more, n, 0, "dtype I32");

    /* without post_quant_conv / mid attention: loads when the checkpoint agrees */
    char *cfg = str_replace(tiny_config, "\"use_post_quant_conv\": true", "\"use_post_quant_conv\": false");
    fewer = tensors_without(t, n, "post_quant_conv.weight", &m);
    struct tensor *fewer2 = tensors_without(fewer, m, "post_quant_conv.bias", &m);
    if (expect_load_ok("use_post_quant_conv false without post_quant_conv", cfg, fewer2, m, 1, &v, &c)) {
        struct dumps col = {0};
        float *img = malloc(sizeof(float) * 3 * h * 8 * w * 8);
        struct os_err err = {{0}};
        int rc = run(&v, 0, z, h, w, img, &col, NULL, 0, &err);
        check(rc == 0 && !dumps_find(&col, "vae.post_quant_conv") && dumps_find(&col, "vae.decoder.conv_in"),
              "... decodes, and dumps no vae.post_quant_conv %s", err.msg);
        dumps_clear(&col);
        free(img);
        component_close(&c);
    }
    free(cfg);
    free(fewer);
    free(fewer2);

    /* old attention names (query/key/value/proj_attn) decode to the same bits */
    static const char *const rn[][2] = {{"to_q.", "query."}, {"to_k.", "key."}, {"to_v.", "value."},
                                        {"to_out.0.", "proj_attn."}};
    struct component holder = {0};
    memcpy(more, t, n * sizeof *t);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) {
            const char *p = strstr(more[i].name, rn[k][0]);
            if (!p || !strstr(more[i].name, "mid_block.attentions.0.")) continue;
            char buf[256];
            snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - more[i].name), more[i].name, rn[k][1],
                     p + strlen(rn[k][0]));
            char *nm = os_strdup(buf);
            component_own(&holder, nm);
            more[i].name = nm;
        }
    struct vae v_new;
    struct component c_new;
    if (expect_load_ok("old attention names (query/key/value/proj_attn) load", tiny_config, more, n, 1, &v, &c) &&
        expect_load_ok("(the same with the new names)", tiny_config, t, n, 1, &v_new, &c_new)) {
        size_t N = (size_t)3 * h * 8 * w * 8;
        float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
        struct os_err err = {{0}};
        int rc = run(&v, 0, z, h, w, a, NULL, NULL, 0, &err) | run(&v_new, 0, z, h, w, b, NULL, NULL, 0, &err);
        check(rc == 0 && memcmp(a, b, N * sizeof *a) == 0, "... and decode to the same bits as the new names %s",
              err.msg);
        free(a);
        free(b);
        component_close(&c);
        component_close(&c_new);
    }
    component_close(&holder);
    free(more);

    /* forward-time errors */
    if (expect_load_ok("tiny VAE without the encoder", tiny_config, t, n, 0, &v, &c)) {
        struct os_err err = {{0}};
        struct arena a;
        arena_init_measure(&a);
        int rc = vae_encode(&v, ops_null(), &a, NULL, 64, 64, NULL, NULL, &err);
        check(rc == -1 && strstr(err.msg, "without its encoder"), "encode without the encoder -> \"%s\"", err.msg);
        rc = vae_decode(&v, ops_null(), &a, NULL, 0, 8, NULL, NULL, &err);
        check(rc == -1 && strstr(err.msg, "latent size 0x8"), "decode of a 0x8 latent -> \"%s\"", err.msg);
        rc = vae_decode(&v, ops_null(), &a, NULL, 8, 1 << 30, NULL, NULL, &err);
        check(rc == -1 && strstr(err.msg, "latent size"), "decode of an absurd latent -> \"%s\"", err.msg);
        check(a.peak == 0, "failed calls allocate nothing");
        arena_destroy(&a);
        component_close(&c);
    }
    if (expect_load_ok("tiny VAE with the encoder", tiny_config, t, n, 1, &v, &c)) {
        struct os_err err = {{0}};
        struct arena a;
        arena_init_measure(&a);
        int rc = vae_encode(&v, ops_null(), &a, NULL, 64, 60, NULL, NULL, &err);
        check(rc == -1 && strstr(err.msg, "not a multiple of 8"), "encode of 64x60 -> \"%s\"", err.msg);
        rc = vae_encode(&v, ops_null(), &a, NULL, -8, 64, NULL, NULL, &err);
        check(rc == -1 && strstr(err.msg, "-8x64"), "encode of -8x64 -> \"%s\"", err.msg);
        arena_destroy(&a);
        component_close(&c);
    }
}

/* -------------------------------------------- precision: f16 and range */

static void precision_checks(const struct conf_suite *s, const float *z, int h, int w)
{
    struct os_err err = {{0}};
    struct component c16, c32;
    struct vae v16, v32;
    if (!check(open_vae(s, "sd-turbo-tiny", VARIANT_FP16, &c16, &err) == 0, "open the fp16 tiny VAE %s", err.msg))
        return;
    int all_f16 = 1;
    for (size_t i = 0; i < c16.ntensors; i++) all_f16 &= c16.tensors[i].dtype == DT_F16;
    check(all_f16, "every tensor of the fp16 variant is F16 (%zu tensors)", c16.ntensors);
    struct component holder = {0};
    struct tensor *wide = widened_copy(&c16, &holder);
    int ok = check(vae_load(&v16, &c16, 1, &err) == 0, "load the f16 checkpoint %s", err.msg) &&
             expect_load_ok("load an f32 checkpoint of the same (widened) values", tiny_config, wide, c16.ntensors,
                            1, &v32, &c32);
    free(wide);
    if (ok) {
        const int H = h * 8, W = w * 8;
        size_t N = (size_t)3 * H * W;
        float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
        int rc = run(&v16, 0, z, h, w, a, NULL, NULL, 0, &err) | run(&v32, 0, z, h, w, b, NULL, NULL, 0, &err);
        check(rc == 0 && memcmp(a, b, N * sizeof *a) == 0,
              "f16 weights decode to exactly the bits of f32 weights holding the same values %s", err.msg);
        /* encode too */
        float *img = malloc(N * sizeof *img);
        for (size_t i = 0; i < N; i++) img[i] = (float)((int)(i * 37 % 256)) / 127.5f - 1.0f;
        size_t M = (size_t)8 * h * w;
        float *ma = malloc(M * sizeof *ma), *mb = malloc(M * sizeof *mb);
        rc = run(&v16, 1, img, H, W, ma, NULL, NULL, 0, &err) | run(&v32, 1, img, H, W, mb, NULL, NULL, 0, &err);
        check(rc == 0 && memcmp(ma, mb, M * sizeof *ma) == 0,
              "f16 weights encode to exactly the bits of f32 weights holding the same values %s", err.msg);

        /* Activations beyond the f16 range (65504) must stay finite: what
         * breaks the SDXL VAE in half precision. Scale the latent up 1e5. */
        size_t nz = (size_t)4 * h * w;
        float *big = malloc(nz * sizeof *big);
        for (size_t i = 0; i < nz; i++) big[i] = z[i] * 1e5f;
        struct dumps col = {0};
        rc = run(&v16, 0, big, h, w, a, &col, NULL, 0, &err);
        const struct dumped *ci = dumps_find(&col, "vae.decoder.conv_in");
        double mx = 0;
        int finite = 1;
        for (size_t i = 0; ci && i < ci->n; i++) {
            if (fabsf(ci->data[i]) > mx) mx = fabsf(ci->data[i]);
            finite &= isfinite(ci->data[i]) != 0;
        }
        for (size_t i = 0; i < N; i++) finite &= isfinite(a[i]) != 0;
        check(rc == 0 && ci && mx > 65504 && finite,
              "activations beyond the f16 range (|conv_in| up to %.3g) stay finite through the decoder", mx);
        dumps_clear(&col);
        free(big);
        free(img);
        free(ma);
        free(mb);
        free(a);
        free(b);
        component_close(&c32);
    }
    component_close(&holder);
    component_close(&c16);
}

/* ------------------------------------------------- measure-then-run */

static void protocol_checks(const struct conf_suite *s, const float *z, int h, int w)
{
    struct os_err err = {{0}};
    struct component c;
    struct vae v;
    if (!check(open_vae(s, "sdxl-turbo-tiny", VARIANT_FP32, &c, &err) == 0 && vae_load(&v, &c, 1, &err) == 0,
               "load the sdxl-turbo-tiny VAE with its encoder %s", err.msg))
        return;
    check(v.scaling_factor == 0.13025f && v.factor == 8 && !v.has_shift_factor && !v.has_latents_mean_std,
          "sdxl-turbo-tiny: scaling_factor 0.13025, factor 8, no shift_factor or latents_mean/std");
    const int H = h * 8, W = w * 8;
    size_t N = (size_t)3 * H * W, M = (size_t)8 * h * w;
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *img = malloc(N * sizeof *img);
    float *ma = malloc(M * sizeof *ma), *mb = malloc(M * sizeof *mb);
    size_t p1, p2;
    int rc = run(&v, 0, z, h, w, a, NULL, &p1, 1, &err);
    rc |= run(&v, 0, z, h, w, b, NULL, &p2, 0, &err);
    check(rc == 0 && p1 == p2 && memcmp(a, b, N * sizeof *a) == 0, "decode twice: same peak, same bits");
    for (size_t i = 0; i < N; i++) img[i] = a[i] > 1 ? 1 : a[i] < -1 ? -1 : a[i];
    rc = run(&v, 1, img, H, W, ma, NULL, &p1, 1, &err);
    rc |= run(&v, 1, img, H, W, mb, NULL, &p2, 0, &err);
    check(rc == 0 && p1 == p2 && memcmp(ma, mb, M * sizeof *ma) == 0, "encode twice: same peak, same bits");
    /* an odd latent: every level doubles exactly (5x3 -> 40x24) */
    float z53[4 * 5 * 3];
    for (int i = 0; i < 4 * 5 * 3; i++) z53[i] = z[i];
    float *o53 = malloc(sizeof(float) * 3 * 40 * 24);
    struct dumps col = {0};
    rc = run(&v, 0, z53, 5, 3, o53, &col, NULL, 1, &err);
    int finite = rc == 0;
    for (int i = 0; finite && i < 3 * 40 * 24; i++) finite = isfinite(o53[i]);
    const struct dumped *u2 = dumps_find(&col, "vae.decoder.up_blocks.2");
    check(finite && u2 && u2->n == (size_t)8 * 40 * 24, "a 5x3 latent decodes to 40x24 %s", err.msg);
    dumps_clear(&col);
    free(o53);
    free(a);
    free(b);
    free(img);
    free(ma);
    free(mb);
    component_close(&c);
}

/* ------------------------------------------------------------- uint8 */

static void uint8_unit(void)
{
    /* x -> x/2 + 0.5 -> *255 -> round half to even, clamp at the ends */
    const float x[6] = {-1.5f, -1.0f, 0.0f, 1.0f, 2.0f, NAN};
    unsigned char rgb[6 * 3];
    float img[3 * 6];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 6; i++) img[c * 6 + i] = c == 0 ? x[i] : (float)c / 10;
    vae_to_uint8(img, 1, 6, rgb);
    const unsigned char want_r[6] = {0, 0, 128, 255, 255, 0}; /* 127.5 -> 128 (even) */
    int ok = 1;
    for (int i = 0; i < 6; i++) ok &= rgb[i * 3] == want_r[i];
    /* (0.1/2 + 0.5) * 255 = 140.25 -> 140; (0.2/2 + 0.5) * 255 = 153.0 -> 153 */
    ok &= rgb[1] == 140 && rgb[2] == 153;
    check(ok, "vae_to_uint8: clamp, half to even (0 -> 128), NaN -> 0, CHW -> HWC");
    /* Ties: inputs whose float32 (x/2 + 0.5) * 255 is exactly k + 0.5 must
     * round to the even neighbour (numpy), not away from zero (roundf). */
    int ties = 0, even = 1;
    for (int k = 0; k < 255; k++) {
        float x0 = (float)(2.0 * ((k + 0.5) / 255.0) - 1.0), xv = x0;
        for (int step = 0; step < 4096; step++) {
            xv = nextafterf(xv, step < 2048 ? -2.0f : 2.0f);
            if (step == 2048) xv = x0;
            float tt = xv / 2.0f;
            tt = tt + 0.5f;
            if (tt * 255.0f != (float)k + 0.5f) continue;
            img[0] = xv;
            vae_to_uint8(img, 1, 1, rgb);
            ties++;
            even &= rgb[0] == (k % 2 ? k + 1 : k);
            break;
        }
    }
    check(ties > 10 && even, "vae_to_uint8: %d exact ties found, each rounded half to even", ties);
}

int main(void)
{
    uint8_unit();
    struct conf_suite s;
    if (conf_open(&s) != 0) return check_summary();

    for (size_t i = 0; i < conf_ncases(&s); i++) run_case(&s, conf_case(&s, i));

    /* a latent for the non-suite checks: sd_t2i_1step's */
    const struct json *c1 = conf_case_by_name(&s, "sd_t2i_1step");
    struct st_file *f = c1 ? conf_case_file(&s, c1) : NULL;
    float *z = f ? conf_tensor(f, "vae.decode.input", NULL) : NULL;
    if (check(z != NULL, "sd_t2i_1step vae.decode.input for the remaining checks")) {
        struct os_err err = {{0}};
        struct component tiny;
        if (check(open_vae(&s, "sd-turbo-tiny", VARIANT_FP32, &tiny, &err) == 0, "open sd-turbo-tiny/vae %s",
                  err.msg)) {
            check_synth_matches(&tiny);
            loader_errors(&tiny, z, 8, 8);
            component_close(&tiny);
        }
        precision_checks(&s, z, 8, 8);
        protocol_checks(&s, z, 8, 8);
        full_size_peaks();
    }
    free(z);
    st_close(f);

    conf_worst_notes("worst max|diff| / tolerance per tensor (over all cases):");
    conf_uint8_note();
    conf_close(&s);
    return check_summary();
}
