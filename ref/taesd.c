/* taesd.c — AutoencoderTiny decoder and encoder (see taesd.h for the shape).
 *
 * Upstream: diffusers v0.31.0 src/diffusers/models/autoencoders/vae.py
 * (EncoderTiny, DecoderTiny), autoencoder_tiny.py (config defaults),
 * unets/unet_2d_blocks.py (AutoencoderTinyBlock). Every conv is 3x3 with
 * padding 1. */
#include "taesd.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "load.h"

#define TAESD_MAX_CHANNELS 65536
#define TAESD_MAX_SIDE 65536 /* image side in pixels */

/* ---------------------------------------------------------------- config */

static const char *config_name(const struct component *c)
{
    return c->config_path ? c->config_path : "taesd config";
}

static int int_in(const struct json *cfg, const char *key, int64_t def, int64_t lo, int64_t hi, int *out,
                  const char *what, struct os_err *err)
{
    int64_t x;
    if (json_get_int_or(cfg, key, def, &x, what, err)) return -1;
    if (x < lo || x > hi)
        return os_fail(err, "%s: \"%s\" is %lld; expected %lld..%lld", what, key, (long long)x, (long long)lo,
                       (long long)hi);
    *out = (int)x;
    return 0;
}

/* A list of positive ints with a default when absent or null. *n gets its
 * length, which must be 1..TAESD_MAX_LEVELS. */
static int int_list(const struct json *cfg, const char *key, const int *def, int ndef, int hi, int *out, int *n,
                    const char *what, struct os_err *err)
{
    const struct json *v = json_get(cfg, key);
    if (!v || v->type == JSON_NULL) {
        memcpy(out, def, sizeof(int) * (size_t)ndef);
        *n = ndef;
        return 0;
    }
    if (v->type != JSON_ARRAY || v->len < 1 || v->len > TAESD_MAX_LEVELS)
        return os_fail(err, "%s: \"%s\" must be a list of 1..%d integers", what, key, TAESD_MAX_LEVELS);
    int64_t x[TAESD_MAX_LEVELS];
    if (json_get_int_list(cfg, key, x, v->len, what, err)) return -1;
    for (size_t i = 0; i < v->len; i++) {
        if (x[i] < 1 || x[i] > hi)
            return os_fail(err, "%s: \"%s\"[%zu] is %lld; expected 1..%d", what, key, i, (long long)x[i], hi);
        out[i] = (int)x[i];
    }
    *n = (int)v->len;
    return 0;
}

/* DecoderTiny builds level i's blocks as AutoencoderTinyBlock(C_i, C_i) and
 * its closing conv as C_i -> C_i, so level i+1 receives C_i channels; the same
 * holds for EncoderTiny's stride-2 convs. Different entries would give a
 * model torch itself cannot run, so every entry must be equal — which also
 * means a block's skip is always nn.Identity (no 1x1 skip conv). */
static int channels(const struct json *cfg, const char *ch_key, const char *nb_key, int *ch, int *nb, int *levels,
                    const int *def_nb, const char *what, struct os_err *err)
{
    static const int def_ch[4] = {64, 64, 64, 64};
    int nch;
    if (int_list(cfg, ch_key, def_ch, 4, TAESD_MAX_CHANNELS, ch, &nch, what, err) ||
        int_list(cfg, nb_key, def_nb, 4, TAESD_MAX_BLOCKS, nb, levels, what, err))
        return -1;
    if (nch != *levels)
        return os_fail(err, "%s: \"%s\" has %d entries but \"%s\" has %d (diffusers requires the same length)", what,
                       ch_key, nch, nb_key, *levels);
    for (int i = 1; i < nch; i++)
        if (ch[i] != ch[0])
            return os_fail(err,
                           "%s: \"%s\" must have equal entries (diffusers' %s feeds level %d's %d channels into "
                           "level %d, built for %d)",
                           what, ch_key, ch_key[0] == 'd' ? "DecoderTiny" : "EncoderTiny", i - 1, ch[i - 1], i, ch[i]);
    return 0;
}

static int read_config(struct taesd *t, const struct component *c, struct os_err *err)
{
    const struct json *cfg = c->config;
    const char *what = config_name(c);
    if (!cfg || cfg->type != JSON_OBJECT) return os_fail(err, "%s: TAESD needs a config.json object", what);

    const struct json *cls = json_get(cfg, "_class_name");
    if (cls && cls->type == JSON_STRING && strcmp(cls->str, "AutoencoderTiny") != 0)
        return os_fail(err, "%s: \"_class_name\" is \"%s\"; a TAESD directory holds an AutoencoderTiny", what,
                       cls->str);
    int failed = 0;
    /* get_activation(act_fn) after the first decoder conv and inside every
     * block; every published TAESD uses relu, the only one supported here. */
    const char *act = json_get_str_or(cfg, "act_fn", "relu", what, err, &failed);
    if (failed) return -1;
    if (strcmp(act, "relu") != 0) return os_fail(err, "%s: \"act_fn\" is \"%s\"; only relu is supported", what, act);
    const char *up = json_get_str_or(cfg, "upsample_fn", "nearest", what, err, &failed);
    if (failed) return -1;
    if (strcmp(up, "nearest") != 0)
        return os_fail(err, "%s: \"upsample_fn\" is \"%s\"; only nearest is supported", what, up);

    if (int_in(cfg, "in_channels", 3, 1, TAESD_MAX_CHANNELS, &t->in_channels, what, err) ||
        int_in(cfg, "out_channels", 3, 1, TAESD_MAX_CHANNELS, &t->out_channels, what, err) ||
        int_in(cfg, "latent_channels", 4, 1, TAESD_MAX_CHANNELS, &t->latent_channels, what, err) ||
        int_in(cfg, "upsampling_scaling_factor", 2, 1, 8, &t->upsampling_scaling_factor, what, err))
        return -1;
    static const int dec_nb[4] = {3, 3, 3, 1}, enc_nb[4] = {1, 3, 3, 3};
    if (channels(cfg, "decoder_block_out_channels", "num_decoder_blocks", t->decoder_block_out_channels,
                 t->num_decoder_blocks, &t->dec_levels, dec_nb, what, err) ||
        channels(cfg, "encoder_block_out_channels", "num_encoder_blocks", t->encoder_block_out_channels,
                 t->num_encoder_blocks, &t->enc_levels, enc_nb, what, err))
        return -1;

    double sf;
    if (json_get_num_or(cfg, "scaling_factor", 1.0, &sf, what, err)) return -1;
    if (!isfinite(sf) || sf == 0.0) return os_fail(err, "%s: \"scaling_factor\" must be a finite non-zero number", what);
    t->scaling_factor = (float)sf;

    t->factor = 1;
    for (int i = 1; i < t->dec_levels; i++) {
        if (t->factor > TAESD_MAX_SIDE / t->upsampling_scaling_factor)
            return os_fail(err, "%s: upsampling_scaling_factor %d over %d levels enlarges the latent beyond %d", what,
                           t->upsampling_scaling_factor, t->dec_levels, TAESD_MAX_SIDE);
        t->factor *= t->upsampling_scaling_factor;
    }
    t->enc_factor = 1 << (t->enc_levels - 1);
    return 0;
}

/* --------------------------------------------------------------- loading */

static struct taesd_layer *push(struct taesd_stack *s, enum taesd_kind kind, int in_ch, int out_ch)
{
    struct taesd_layer *l = &s->layers[s->n++]; /* TAESD_MAX_LAYERS covers every valid config */
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->in_ch = in_ch;
    l->out_ch = out_ch;
    l->stride = 1;
    return l;
}

/* "<half>.layers.N.weight" (and ".bias" when has_bias). */
static void conv_layer(struct taesd_stack *s, struct component *c, const char *half, int in_ch, int out_ch,
                       int stride, int has_bias, struct os_err *err)
{
    const int N = s->n;
    struct taesd_layer *l = push(s, TAESD_CONV, in_ch, out_ch);
    l->stride = stride;
    l->weight = load4(c, err, out_ch, in_ch, 3, 3, "%s.layers.%d.weight", half, N);
    l->bias = has_bias ? load1(c, err, out_ch, "%s.layers.%d.bias", half, N) : NULL;
}

static void block_layer(struct taesd_stack *s, struct component *c, const char *half, int ch, struct os_err *err)
{
    const int N = s->n;
    struct taesd_block *b = &push(s, TAESD_BLOCK, ch, ch)->block;
    b->conv_0_w = load4(c, err, ch, ch, 3, 3, "%s.layers.%d.conv.0.weight", half, N);
    b->conv_0_b = load1(c, err, ch, "%s.layers.%d.conv.0.bias", half, N);
    b->conv_2_w = load4(c, err, ch, ch, 3, 3, "%s.layers.%d.conv.2.weight", half, N);
    b->conv_2_b = load1(c, err, ch, "%s.layers.%d.conv.2.bias", half, N);
    b->conv_4_w = load4(c, err, ch, ch, 3, 3, "%s.layers.%d.conv.4.weight", half, N);
    b->conv_4_b = load1(c, err, ch, "%s.layers.%d.conv.4.bias", half, N);
}

/* DecoderTiny.__init__'s layer list, in order. */
static int decoder_load(struct taesd *t, struct component *c, struct os_err *err)
{
    struct taesd_stack *s = &t->decoder;
    const int C = t->decoder_block_out_channels[0], L = t->dec_levels;
    conv_layer(s, c, "decoder", t->latent_channels, C, 1, 1, err);
    push(s, TAESD_RELU, C, C);
    for (int i = 0; i < L; i++) {
        const int last = i == L - 1;
        for (int j = 0; j < t->num_decoder_blocks[i]; j++) block_layer(s, c, "decoder", C, err);
        if (!last) push(s, TAESD_UPSAMPLE, C, C);
        conv_layer(s, c, "decoder", C, last ? t->out_channels : C, 1, last, err); /* bias=is_final_block */
    }
    return err->msg[0] ? -1 : 0;
}

/* EncoderTiny.__init__'s layer list, in order. */
static int encoder_load(struct taesd *t, struct component *c, struct os_err *err)
{
    struct taesd_stack *s = &t->encoder;
    const int C = t->encoder_block_out_channels[0], L = t->enc_levels;
    for (int i = 0; i < L; i++) {
        if (i == 0) conv_layer(s, c, "encoder", t->in_channels, C, 1, 1, err);
        else conv_layer(s, c, "encoder", C, C, 2, 0, err);
        for (int j = 0; j < t->num_encoder_blocks[i]; j++) block_layer(s, c, "encoder", C, err);
    }
    conv_layer(s, c, "encoder", C, t->latent_channels, 1, 1, err);
    return err->msg[0] ? -1 : 0;
}

int taesd_load(struct taesd *t, struct component *c, struct os_err *err)
{
    memset(t, 0, sizeof *t);
    err->msg[0] = '\0';
    if (read_config(t, c, err) || decoder_load(t, c, err)) return -1;
    for (size_t i = 0; i < c->ntensors && !t->has_encoder; i++)
        t->has_encoder = strncmp(c->tensors[i].name, "encoder.", 8) == 0;
    if (t->has_encoder && encoder_load(t, c, err)) return -1;
    return component_check_unused(c, NULL, err);
}

/* --------------------------------------------------------------- forward */

static float *conv_run(const struct ops *o, struct arena *a, const float *x, const struct tensor *w,
                       const struct tensor *b, const float *res, int C, int OC, int H, int W, int stride, int *OH,
                       int *OW)
{
    struct conv2d_shape s = {C, H, W, OC, 3, 3, stride, 1, 1, 1, 1};
    *OH = conv2d_out_h(&s);
    *OW = conv2d_out_w(&s);
    float *y = arena_alloc(a, (size_t)OC * *OH * *OW);
    o->conv2d(o, y, x, w, b, res, &s);
    return y;
}

static float *relu(const struct ops *o, struct arena *a, const float *x, size_t n)
{
    float *y = arena_alloc(a, n);
    o->act(o, y, x, n, ACT_RELU);
    return y;
}

/* relu(conv.4(relu(conv.2(relu(conv.0(x))))) + x): the sum is conv2d's
 * residual (conv output rounded to float, then + x, as torch adds the two
 * tensors), then the fuse ReLU. */
static float *block_run(const struct taesd_block *b, const struct ops *o, struct arena *a, const float *x, int C,
                        int H, int W)
{
    const size_t n = (size_t)C * H * W;
    int oh, ow;
    float *h = conv_run(o, a, x, b->conv_0_w, b->conv_0_b, NULL, C, C, H, W, 1, &oh, &ow);
    float *r = relu(o, a, h, n);
    arena_free(a, h);
    h = conv_run(o, a, r, b->conv_2_w, b->conv_2_b, NULL, C, C, H, W, 1, &oh, &ow);
    arena_free(a, r);
    r = relu(o, a, h, n);
    arena_free(a, h);
    h = conv_run(o, a, r, b->conv_4_w, b->conv_4_b, x, C, C, H, W, 1, &oh, &ow);
    arena_free(a, r);
    float *y = relu(o, a, h, n);
    arena_free(a, h);
    return y;
}

/* Run a layer list on x [C, H, W] (consumed). Returns the output; *C, *H, *W
 * become its size. Conv and block outputs are dumped as vae.<half>.layers.N. */
static float *stack_run(const struct taesd_stack *s, int usf, const struct ops *o, struct arena *a, float *x, int *C,
                        int *H, int *W, const struct dump_hook *d, const char *half)
{
    for (int N = 0; N < s->n; N++) {
        const struct taesd_layer *l = &s->layers[N];
        const size_t n = (size_t)*C * *H * *W;
        float *y;
        switch (l->kind) {
        case TAESD_CONV: {
            int OH, OW;
            y = conv_run(o, a, x, l->weight, l->bias, NULL, l->in_ch, l->out_ch, *H, *W, l->stride, &OH, &OW);
            *C = l->out_ch;
            *H = OH;
            *W = OW;
            break;
        }
        case TAESD_RELU: y = relu(o, a, x, n); break;
        case TAESD_UPSAMPLE:
            y = arena_alloc(a, n * usf * usf);
            o->upsample_nearest(o, y, x, *C, *H, *W, *H * usf, *W * usf);
            *H *= usf;
            *W *= usf;
            break;
        case TAESD_BLOCK:
        default: y = block_run(&l->block, o, a, x, *C, *H, *W); break;
        }
        arena_free(a, x);
        x = y;
        if (l->kind == TAESD_CONV || l->kind == TAESD_BLOCK) dump_chwf(d, x, *C, *H, *W, "vae.%s.layers.%d", half, N);
    }
    return x;
}

/* y = x * mul + add with torch's rounding for the two elementwise tensor ops
 * (x.mul(m).sub(1) / x.add(1).div(2) are one rounding each; multiplying by
 * 2 or 0.5 is exact, so fl(x*0.5 + 0.5) == fl(x + 1) / 2). ops has no scalar
 * add: `add` is a per-channel vector filled with one value. */
static float *affine(const struct ops *o, struct arena *a, float *x, int C, int HW, float mul, float add)
{
    const size_t n = (size_t)C * HW;
    float *y = arena_alloc(a, n);
    o->scale(o, y, x, mul, n);
    arena_free(a, x);
    float host[64];
    float *v = arena_alloc(a, (size_t)C);
    for (int i = 0; i < C; i += 64) {
        int m = C - i < 64 ? C - i : 64;
        for (int k = 0; k < m; k++) host[k] = add;
        o->upload(o, v + i, host, (size_t)m);
    }
    o->add_channel(o, y, y, v, C, HW);
    arena_free(a, v);
    return y;
}

static int check_side(int h, int w, int factor, const char *what, struct os_err *err)
{
    if (h < 1 || w < 1 || h > TAESD_MAX_SIDE / factor || w > TAESD_MAX_SIDE / factor)
        return os_fail(err, "taesd: %s: latent size %dx%d is outside 1..%d", what, h, w, TAESD_MAX_SIDE / factor);
    return 0;
}

/* The largest map (channels x pixels) must be addressable. */
static int check_bytes(int C, int H, int W, const char *what, struct os_err *err)
{
    size_t n;
    if (os_mul_size((size_t)H * (size_t)W, (size_t)C * sizeof(float), &n))
        return os_fail(err, "taesd: %s: a %dx%d image needs feature maps too large to address", what, H, W);
    return 0;
}

int taesd_decode(const struct taesd *t, const struct ops *o, struct arena *a, const float *z, int h, int w,
                 float *img, const struct dump_hook *d, struct os_err *err)
{
    if (check_side(h, w, t->factor, "decode", err)) return -1;
    int C = t->latent_channels, H = h, W = w;
    int cmax = t->decoder_block_out_channels[0];
    if (t->out_channels > cmax) cmax = t->out_channels;
    if (check_bytes(cmax, H * t->factor, W * t->factor, "decode", err)) return -1;

    const size_t n = (size_t)C * H * W;
    float *x = arena_alloc(a, n);
    o->upload(o, x, z, n);
    dump_chw(d, "vae.decode.input", x, C, H, W);
    /* torch.tanh(x / 3) * 3: the division becomes a multiplication by the
     * float nearest 1/3 (ops has no division), at most 1 ulp from x / 3 */
    float *y = arena_alloc(a, n);
    o->scale(o, y, x, 1.0f / 3.0f, n);
    arena_free(a, x);
    x = arena_alloc(a, n);
    o->act(o, x, y, n, ACT_TANH);
    o->scale(o, y, x, 3.0f, n);
    arena_free(a, x);
    x = y;
    dump_chw(d, "vae.decoder.clamp", x, C, H, W);
    x = stack_run(&t->decoder, t->upsampling_scaling_factor, o, a, x, &C, &H, &W, d, "decoder");
    x = affine(o, a, x, C, H * W, 2.0f, -1.0f); /* [0, 1] -> [-1, 1]: x.mul(2).sub(1), no clamp */
    dump_chw(d, "vae.decode.output", x, C, H, W);
    o->download(o, img, x, (size_t)C * H * W);
    arena_free(a, x);
    return 0;
}

int taesd_encode(const struct taesd *t, const struct ops *o, struct arena *a, const float *img, int H, int W,
                 float *latents, const struct dump_hook *d, struct os_err *err)
{
    if (!t->has_encoder) return os_fail(err, "taesd: encode: this checkpoint has no encoder (no encoder.* tensors)");
    if (H < 1 || W < 1 || H > TAESD_MAX_SIDE || W > TAESD_MAX_SIDE)
        return os_fail(err, "taesd: encode: image size %dx%d is outside 1..%d", H, W, TAESD_MAX_SIDE);
    if (H % t->enc_factor || W % t->enc_factor)
        return os_fail(err, "taesd: encode: image size %dx%d is not a multiple of %d (the encoder's downsampling)", H,
                       W, t->enc_factor);
    int cmax = t->encoder_block_out_channels[0];
    if (t->in_channels > cmax) cmax = t->in_channels;
    if (check_bytes(cmax, H, W, "encode", err)) return -1;
    int C = t->in_channels;
    float *x = arena_alloc(a, (size_t)C * H * W);
    o->upload(o, x, img, (size_t)C * H * W);
    x = affine(o, a, x, C, H * W, 0.5f, 0.5f); /* [-1, 1] -> [0, 1]: x.add(1).div(2) */
    x = stack_run(&t->encoder, 1, o, a, x, &C, &H, &W, d, "encoder");
    o->download(o, latents, x, (size_t)C * H * W);
    arena_free(a, x);
    return 0;
}
