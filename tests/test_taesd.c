/* TAESD (ref/taesd.c) against the conformance suite's AutoencoderTiny cases,
 * plus its loader's errors, component_open_dir, the measure-then-run
 * protocol, an analytic check of the encoder (the suite has no encoder
 * golden) and the activation peak of the full-size TAESD.
 *
 * Every case whose "vae" is AutoencoderTiny: decode its vae.decode.input and
 * compare vae.decoder.clamp, every vae.decoder.layers.N, vae.decode.output
 * (manifest tolerances) and image.uint8 (1 level on at most 1% of the bytes). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../ref/taesd.h"
#include "../ref/vae.h"
#include "lib/check.h"
#include "lib/components.h"
#include "lib/conformance.h"
#include "lib/dumps.h"

/* ----------------------------------------------- measure, then run for real */

/* Decode (enc 0) or encode (enc 1) as the pipeline does: on ops_null with a
 * measuring arena, then on ops_ref in an arena of exactly the measured size;
 * checks that the real run used that peak and freed everything. */
static int run(const struct taesd *t, int enc, const float *in, int h, int w, float *out, struct dumps *col,
               const char *what, struct os_err *err)
{
    struct arena m;
    arena_init_measure(&m);
    int rc = enc ? taesd_encode(t, ops_null(), &m, in, h, w, out, NULL, err)
                 : taesd_decode(t, ops_null(), &m, in, h, w, out, NULL, err);
    size_t measured = m.peak;
    int live = (int)m.nblocks;
    arena_destroy(&m);
    if (rc) return -1;
    struct arena a;
    if (arena_init(&a, ops_ref(), measured, err)) return -1;
    struct dump_hook hook = {dumps_fn, col};
    if (col) col->o = ops_ref();
    rc = enc ? taesd_encode(t, ops_ref(), &a, in, h, w, out, col ? &hook : NULL, err)
             : taesd_decode(t, ops_ref(), &a, in, h, w, out, col ? &hook : NULL, err);
    check(rc == 0 && a.peak == measured && live == 0 && a.nblocks == 0,
          "%s: the real run used exactly the measured peak (%zu bytes) and freed everything", what, measured);
    arena_destroy(&a);
    return rc;
}

/* -------------------------------------------------- one conformance case */

static int ncases;

static void run_case(const struct conf_suite *s, const struct json *c)
{
    const char *cn = conf_case_name(c);
    const struct json *vcfg = json_get(c, "vae");
    const char *vcls = conf_str(vcfg, "class");
    if (!vcls || strcmp(vcls, "AutoencoderTiny") != 0) return;
    ncases++;
    const char *dir = conf_str(vcfg, "dir");
    struct os_err err = {{0}};
    struct component comp;
    if (!check(dir && component_open_dir(conf_path(s, dir), "taesd", "config.json", 1, VARIANT_AUTO, &comp, &err) == 0,
               "%s: open TAESD directory %s %s", cn, dir ? dir : "(none in manifest)", err.msg))
        return;
    struct taesd *t = malloc(sizeof *t);
    struct st_file *f = conf_case_file(s, c);
    if (!f || !check(taesd_load(t, &comp, &err) == 0, "%s: taesd_load %s", cn, err.msg)) goto done;
    check(t->factor == conf_int(vcfg, "vae_scale_factor", -1) && t->scaling_factor == (float)conf_num(vcfg,
                                                                                                      "scaling_factor",
                                                                                                      -1),
          "%s: decoder factor %d and scaling_factor %g are the manifest's", cn, t->factor, t->scaling_factor);

    const struct tensor *zt = st_get(f, "vae.decode.input");
    if (!check(zt && zt->ndim == 4, "%s: vae.decode.input [1, C, h, w] present", cn)) goto done;
    const int h = (int)zt->shape[2], w = (int)zt->shape[3], H = h * t->factor, W = w * t->factor;
    size_t nz;
    float *z = conf_tensor(f, "vae.decode.input", &nz);
    /* scaling_factor 1.0: the decoder gets latents.final as it is */
    float *fin = conf_tensor(f, "latents.final", NULL);
    check(fin && memcmp(fin, z, nz * sizeof *z) == 0, "%s: vae.decode.input == latents.final / %g exactly", cn,
          t->scaling_factor);
    free(fin);
    float *img = malloc(sizeof(float) * (size_t)t->out_channels * H * W);
    struct dumps col = {0};
    char what[128];
    snprintf(what, sizeof what, "%s decode", cn);
    if (check(run(t, 0, z, h, w, img, &col, what, &err) == 0, "%s: decode %dx%d latent %s", cn, h, w, err.msg)) {
        int nrec = 0;
        for (size_t i = 0; i < f->ntensors; i++) {
            const char *name = f->tensors[i].name;
            if (strncmp(name, "vae.decoder.", 12) != 0 && strcmp(name, "vae.decode.output") != 0) continue;
            const struct dumped *e = dumps_find(&col, name);
            conf_compare(s, c, f, name, e ? e->data : NULL, e ? e->n : 0);
            nrec++;
        }
        int ours = 0;
        for (int i = 0; i < col.n; i++) ours += strncmp(col.d[i].name, "vae.decoder.", 12) == 0;
        check(ours + 1 == nrec, "%s: we dump exactly the suite's %d vae.decoder.* tensors (we: %d)", cn, nrec - 1,
              ours);
        const struct dumped *out = dumps_find(&col, "vae.decode.output");
        check(out && memcmp(out->data, img, sizeof(float) * 3 * H * W) == 0,
              "%s: the returned image is the dumped vae.decode.output", cn);
        free(conf_compare_uint8(c, f, img, H, W));
    }
    dumps_clear(&col);
    free(z);
    free(img);
done:
    free(t);
    st_close(f);
    component_close(&comp);
}

/* ------------------------------------------------ in-memory components */

/* taesd-tiny's config (the keys that matter), one line. */
static const char tiny_config[] =
    "{\"_class_name\": \"AutoencoderTiny\", \"act_fn\": \"relu\", \"decoder_block_out_channels\": [8, 8, 8, 8], "
    "\"encoder_block_out_channels\": [8, 8, 8, 8], \"in_channels\": 3, \"latent_channels\": 4, "
    "\"num_decoder_blocks\": [3, 3, 3, 1], \"num_encoder_blocks\": [1, 3, 3, 3], \"out_channels\": 3, "
    "\"scaling_factor\": 1.0, \"upsample_fn\": \"nearest\", \"upsampling_scaling_factor\": 2}";

/* ---------------------------------------- synthetic checkpoints */

/* Names and shapes of an AutoencoderTiny as diffusers' module tree names them
 * (vae.py EncoderTiny/DecoderTiny), written independently of ref/taesd.c and
 * checked against the tiny checkpoint before it is trusted. Data: a value
 * chosen by `fill` (NULL data = shapes only, for ops_null). */
struct synth {
    struct tensor_list l;
    int with_data;
};

enum role { W_CONV, B_CONV, W_BLOCK, B_BLOCK };

/* Analytic weights: every "conv" of the layer list copies channel c to c with
 * its centre tap (channels beyond the input are 0); blocks are all zero, so a
 * block is relu(0 + x) = relu(x). */
static void fill(float *d, enum role r, int64_t out, int64_t in)
{
    size_t n = (size_t)out * (r == W_CONV || r == W_BLOCK ? (size_t)in * 9 : 1);
    memset(d, 0, n * sizeof *d);
    if (r == W_CONV)
        for (int64_t o = 0; o < out && o < in; o++) d[((size_t)o * in + o) * 9 + 4] = 1.0f;
}

static void add(struct synth *s, enum role r, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
    CHECK_PRINTF(6, 7);
static void add(struct synth *s, enum role r, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
{
    const int64_t d[4] = {d0, d1, 3, 3};
    va_list ap;
    va_start(ap, fmt);
    struct tensor *t = tensor_list_vadd(&s->l, ndim, d, fmt, ap);
    va_end(ap);
    if (s->with_data) {
        float *data = malloc(sizeof(float) * (size_t)tensor_numel(t));
        fill(data, r, d0, d1);
        component_own(s->l.owner, data);
        t->data = data;
    }
}

static void s_conv(struct synth *s, const char *half, int N, int out, int in, int bias)
{
    add(s, W_CONV, 4, out, in, "%s.layers.%d.weight", half, N);
    if (bias) add(s, B_CONV, 1, out, 0, "%s.layers.%d.bias", half, N);
}

static void s_block(struct synth *s, const char *half, int N, int C)
{
    for (int k = 0; k <= 4; k += 2) {
        add(s, W_BLOCK, 4, C, C, "%s.layers.%d.conv.%d.weight", half, N, k);
        add(s, B_BLOCK, 1, C, 0, "%s.layers.%d.conv.%d.bias", half, N, k);
    }
}

/* AutoencoderTiny with C channels everywhere and the given block counts. */
static void synth_taesd(struct synth *s, int C, int lat, const int *dec_nb, const int *enc_nb, int L, int encoder)
{
    int N = 0;
    s_conv(s, "decoder", N++, C, lat, 1);
    N++; /* ReLU */
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < dec_nb[i]; j++) s_block(s, "decoder", N++, C);
        if (i != L - 1) N++; /* Upsample */
        s_conv(s, "decoder", N++, i == L - 1 ? 3 : C, C, i == L - 1);
    }
    if (!encoder) return;
    N = 0;
    for (int i = 0; i < L; i++) {
        s_conv(s, "encoder", N++, C, i ? C : 3, i == 0);
        for (int j = 0; j < enc_nb[i]; j++) s_block(s, "encoder", N++, C);
    }
    s_conv(s, "encoder", N++, lat, C, 1);
}

static const int tiny_dec[4] = {3, 3, 3, 1}, tiny_enc[4] = {1, 3, 3, 3};

static void check_synth_matches(const struct component *tiny)
{
    struct component own = {0};
    struct synth s = {.l.owner = &own};
    synth_taesd(&s, 8, 4, tiny_dec, tiny_enc, 4, 1);
    check(same_layout(s.l.t, s.l.n, tiny), "the test's synthetic AutoencoderTiny layout reproduces taesd-tiny (%zu tensors)", s.l.n);
    free(s.l.t);
    component_close(&own);
}

/* ---------------------------------------------------------- loader errors */

static void expect_error(const char *what, const char *config, struct tensor *t, size_t n, const char *needle)
{
    struct os_err err = {{0}};
    struct component c;
    struct taesd *tt = malloc(sizeof *tt);
    int rc = mem_component(&c, "taesd", config, t, n, &err);
    if (rc == 0) rc = taesd_load(tt, &c, &err);
    check(rc != 0 && strstr(err.msg, needle) != NULL, "%s -> error mentioning \"%s\": %s", what, needle, err.msg);
    component_close(&c);
    free(tt);
}

static void loader_errors(const struct component *tiny)
{
    const size_t n = tiny->ntensors;
    struct tensor *t = malloc(n * sizeof *t);
    memcpy(t, tiny->tensors, n * sizeof *t);

    static const struct {
        const char *from, *to, *what, *needle;
    } bad[] = {
        {"\"act_fn\": \"relu\"", "\"act_fn\": \"gelu\"", "act_fn gelu", "act_fn"},
        {"\"upsample_fn\": \"nearest\"", "\"upsample_fn\": \"bilinear\"", "upsample_fn bilinear", "upsample_fn"},
        {"\"decoder_block_out_channels\": [8, 8, 8, 8]", "\"decoder_block_out_channels\": [8, 8, 16, 8]",
         "unequal decoder channels", "must have equal entries"},
        {"\"num_decoder_blocks\": [3, 3, 3, 1]", "\"num_decoder_blocks\": [3, 3, 1]", "3 block counts for 4 levels",
         "same length"},
        {"\"num_decoder_blocks\": [3, 3, 3, 1]", "\"num_decoder_blocks\": [3, 0, 3, 1]", "a level of 0 blocks",
         "num_decoder_blocks"},
        {"\"num_encoder_blocks\": [1, 3, 3, 3]", "\"num_encoder_blocks\": \"many\"", "block counts as a string",
         "num_encoder_blocks"},
        {"\"latent_channels\": 4", "\"latent_channels\": 0", "latent_channels 0", "latent_channels"},
        {"\"scaling_factor\": 1.0", "\"scaling_factor\": 0", "scaling_factor 0", "scaling_factor"},
        {"\"upsampling_scaling_factor\": 2", "\"upsampling_scaling_factor\": 2.5", "fractional upsampling factor",
         "upsampling_scaling_factor"},
        {"\"AutoencoderTiny\"", "\"AutoencoderKL\"", "an AutoencoderKL config", "_class_name"},
        {"\"latent_channels\": 4", "\"latent_channels\": 16", "latent_channels 16 with 4-channel weights",
         "decoder.layers.0.weight"},
        {"\"num_decoder_blocks\": [3, 3, 3, 1]", "\"num_decoder_blocks\": [3, 3, 3, 2]", "one block too many",
         "decoder.layers.18"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *cfg = str_replace(tiny_config, bad[i].from, bad[i].to);
        expect_error(bad[i].what, cfg, t, n, bad[i].needle);
        free(cfg);
    }
    expect_error("config not an object", "[1, 2]", t, n, "config.json object");

    size_t m;
    struct tensor *miss = tensors_without(t, n, "decoder.layers.7.conv.2.bias", &m);
    expect_error("missing decoder.layers.7.conv.2.bias", tiny_config, miss, m, "missing tensor \"decoder.layers.7.conv.2.bias\"");
    free(miss);
    miss = tensors_without(t, n, "encoder.layers.3.conv.0.weight", &m);
    expect_error("a partial encoder (encoder.layers.3.conv.0.weight missing)", tiny_config, miss, m,
                 "encoder.layers.3.conv.0.weight");
    free(miss);

    struct tensor *extra = malloc((n + 1) * sizeof *extra);
    memcpy(extra, t, n * sizeof *t);
    extra[n] = t[0];
    extra[n].name = "decoder.layers.6.bias"; /* the conv after an upsample has no bias */
    extra[n].ndim = 1;
    extra[n].shape[0] = 8;
    expect_error("an unexpected decoder.layers.6.bias", tiny_config, extra, n + 1, "decoder.layers.6.bias");

    struct tensor *bad_shape = malloc(n * sizeof *bad_shape);
    memcpy(bad_shape, t, n * sizeof *t);
    for (size_t i = 0; i < n; i++)
        if (strcmp(bad_shape[i].name, "decoder.layers.18.weight") == 0) bad_shape[i].shape[0] = 4;
    expect_error("decoder.layers.18.weight with 4 output channels", tiny_config, bad_shape, n, "[4, 8, 3, 3]");

    /* decoder only: accepted, no encoder */
    size_t k = 0;
    struct tensor *dec = malloc(n * sizeof *dec);
    for (size_t i = 0; i < n; i++)
        if (strncmp(t[i].name, "encoder.", 8) != 0) dec[k++] = t[i];
    struct os_err err = {{0}};
    struct component c;
    struct taesd *tt = malloc(sizeof *tt);
    if (check(mem_component(&c, "taesd", tiny_config, dec, k, &err) == 0 && taesd_load(tt, &c, &err) == 0 && !tt->has_encoder,
              "a decoder-only checkpoint loads, without an encoder %s", err.msg)) {
        float img[3 * 8 * 8] = {0}, lat[4];
        struct arena m;
        arena_init_measure(&m);
        int rc = taesd_encode(tt, ops_null(), &m, img, 8, 8, lat, NULL, &err);
        check(rc != 0 && strstr(err.msg, "no encoder"), "encoding with it is a clear error: %s", err.msg);
        arena_destroy(&m);
    }
    component_close(&c);
    free(tt);
    free(dec);
    free(bad_shape);
    free(extra);
    free(t);
}

/* Bad sizes are errors, not crashes or huge allocations. */
static void size_errors(const struct taesd *t)
{
    struct os_err err = {{0}};
    struct arena m;
    arena_init_measure(&m);
    int rc = taesd_decode(t, ops_null(), &m, NULL, 0, 8, NULL, NULL, &err);
    check(rc != 0 && strstr(err.msg, "latent size"), "decode of a 0x8 latent: %s", err.msg);
    rc = taesd_decode(t, ops_null(), &m, NULL, 8, 65536, NULL, NULL, &err);
    check(rc != 0 && strstr(err.msg, "latent size"), "decode of an 8x65536 latent: %s", err.msg);
    rc = taesd_encode(t, ops_null(), &m, NULL, 60, 64, NULL, NULL, &err);
    check(rc != 0 && strstr(err.msg, "multiple of 8"), "encode of a 60x64 image: %s", err.msg);
    arena_destroy(&m);
}

/* component_open_dir errors name the path. */
static void open_dir_errors(const struct conf_suite *s)
{
    struct os_err err = {{0}};
    struct component c;
    int rc = component_open_dir("/nonexistent/taesd", "taesd", "config.json", 1, VARIANT_AUTO, &c, &err);
    check(rc != 0 && strstr(err.msg, "/nonexistent/taesd") && strstr(err.msg, "not found"),
          "component_open_dir on a missing directory: %s", err.msg);
    rc = component_open_dir(conf_path(s, "taesd-tiny/config.json"), "taesd", "config.json", 1, VARIANT_AUTO, &c, &err);
    check(rc != 0 && strstr(err.msg, "directory"), "component_open_dir on a file: %s", err.msg);
    rc = component_open_dir(conf_path(s, "taesd-tiny"), "taesd", "config.json", 1, VARIANT_FP16, &c, &err);
    check(rc != 0 && strstr(err.msg, "fp16"), "component_open_dir asking for an absent fp16 variant: %s", err.msg);
    rc = component_open_dir(conf_path(s, "loras"), "taesd", "config.json", 1, VARIANT_AUTO, &c, &err);
    check(rc != 0 && strstr(err.msg, "config.json"), "component_open_dir on a directory without config.json: %s",
          err.msg);
    rc = component_open_dir(conf_path(s, "taesd-tiny"), "taesd", "config.json", 0, VARIANT_AUTO, &c, &err);
    check(rc == 0 && c.config && !c.file && strcmp(c.name, "taesd") == 0, "component_open_dir config only %s",
          rc ? err.msg : "");
    if (rc == 0) component_close(&c);
}

/* ------------------------------------------------ encoder, analytically */

/* With the analytic weights of fill() the encoder is: (x+1)/2, copy channels
 * 0..2 into C channels, relu (a no-op on [0, 1]), and each stride-2 conv's
 * centre tap picks pixel (2y, 2x) (padding 1: tap 1 of 3 sits on 2y). So
 * latent[c, y, x] = (img[c, 8y, 8x] + 1) / 2 for c < 3 and 0 for c = 3 —
 * exactly, since every step is exact in float. This checks the encoder's
 * layer order, strides, padding and the input scaling; the decoder's wiring
 * is what the conformance cases check. */
static void encoder_analytic(void)
{
    struct component holder = {0}, c;
    struct synth s = {.l.owner = &holder, .with_data = 1};
    synth_taesd(&s, 8, 4, tiny_dec, tiny_enc, 4, 1);
    struct os_err err = {{0}};
    struct taesd *t = malloc(sizeof *t);
    if (!check(mem_component(&c, "taesd", tiny_config, s.l.t, s.l.n, &err) == 0 && taesd_load(t, &c, &err) == 0 && t->has_encoder,
               "analytic AutoencoderTiny loads with its encoder %s", err.msg))
        goto done;
    const int H = 32, W = 48, h = H / 8, w = W / 8;
    check(t->enc_factor == 8, "encoder factor 8 (%d)", t->enc_factor);
    float *img = malloc(sizeof(float) * 3 * H * W), *lat = malloc(sizeof(float) * 4 * h * w);
    for (int i = 0; i < 3 * H * W; i++) img[i] = (float)((i * 7919) % 2001 - 1000) / 1000.0f;
    if (check(run(t, 1, img, H, W, lat, NULL, "analytic encode", &err) == 0, "analytic encode %s", err.msg)) {
        int bad = 0;
        for (int ch = 0; ch < 4; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    float want = ch < 3 ? (img[(ch * H + 8 * y) * W + 8 * x] + 1.0f) / 2.0f : 0.0f;
                    bad += lat[(ch * h + y) * w + x] != want;
                }
        check(bad == 0, "encoder: latent[c, y, x] == (img[c, 8y, 8x] + 1) / 2 exactly (%d of %d differ)", bad,
              4 * h * w);
    }
    free(img);
    free(lat);
done:
    free(t);
    free(s.l.t);
    component_close(&c);
    component_close(&holder);
}

/* ------------------------------------------- full-size TAESD arena peaks */

static void full_size_peaks(void)
{
    struct component holder = {0}, c;
    struct synth s = {.l.owner = &holder};
    synth_taesd(&s, 64, 4, tiny_dec, tiny_enc, 4, 1);
    struct os_err err = {{0}};
    struct taesd *t = malloc(sizeof *t);
    /* madebyollin/taesd's config: every default of AutoencoderTiny */
    if (check(mem_component(&c, "taesd", "{\"_class_name\": \"AutoencoderTiny\"}", s.l.t, s.l.n, &err) == 0 &&
                  taesd_load(t, &c, &err) == 0,
              "the full-size TAESD (64 channels, AutoencoderTiny defaults) loads from a shapes-only checkpoint %s",
              err.msg)) {
        const int sizes[2] = {512, 1024};
        for (int i = 0; i < 2; i++) {
            const int S = sizes[i], h = S / t->factor;
            struct arena m;
            arena_init_measure(&m);
            int rc = taesd_decode(t, ops_null(), &m, NULL, h, h, NULL, NULL, &err);
            size_t dec = m.peak;
            arena_destroy(&m);
            /* a block needs its input, the conv output and the ReLU copy at
             * full size: 3 maps of 64 x S x S floats, at most 4 with the
             * upsample's input */
            size_t map = (size_t)64 * S * S * sizeof(float);
            check(rc == 0 && dec >= 3 * map && dec <= 4 * map + 4096,
                  "full-size TAESD decode %dx%d: measured peak %.1f MiB (3..4 maps of %.1f MiB)", S, S,
                  dec / 1048576.0, map / 1048576.0);
        }
    }
    free(t);
    free(s.l.t);
    component_close(&c);
    component_close(&holder);
}

int main(void)
{
    struct conf_suite s;
    if (conf_open(&s) != 0) return check_summary();
    for (size_t i = 0; i < conf_ncases(&s); i++) run_case(&s, conf_case(&s, i));
    check(ncases == 2, "the suite has 2 TAESD cases and all ran (%d)", ncases);

    struct os_err err = {{0}};
    struct component tiny;
    if (check(component_open_dir(conf_path(&s, "taesd-tiny"), "taesd", "config.json", 1, VARIANT_AUTO, &tiny, &err) ==
                  0,
              "open taesd-tiny %s", err.msg)) {
        check_synth_matches(&tiny);
        loader_errors(&tiny);
        struct taesd *t = malloc(sizeof *t);
        if (check(taesd_load(t, &tiny, &err) == 0 && t->has_encoder, "taesd-tiny loads with its encoder %s", err.msg))
            size_errors(t);
        free(t);
        component_close(&tiny);
    }
    open_dir_errors(&s);
    encoder_analytic();
    full_size_peaks();

    conf_worst_notes("worst max|diff| / tolerance per tensor over the TAESD cases:");
    conf_uint8_note();
    conf_close(&s);
    return check_summary();
}
