/* golden.c — the golden runs, their models, and the .safetensors.gz files.
 * See golden.h; golden/README.md describes each run for a reader. */
#include "golden.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../../weights/atomic_file.h"
#include "../../weights/safetensors.h"
#include "synth.h"

const char *golden_dir(void)
{
    const char *d = getenv("ONESTEP_GOLDEN");
    return d && *d ? d : "golden";
}

/* ---------------------------------------------------------------- the runs */

const struct golden_model golden_models[] = {
    {"tiny-sd", "tiny-sd", DT_F32, 0},
    {"tiny-sd-f16", "tiny-sd", DT_F16, 0},
    {"tiny-sdxl", "tiny-sdxl", DT_F32, 0},
};
const size_t golden_nmodels = sizeof golden_models / sizeof golden_models[0];

/* Sizes are small (latents of 8x8, 4x4, 3x5) so that golden/ stays around
 * two megabytes: float32 noise does not compress, every tensor costs its
 * size, and the VAE decoder's full-resolution maps dominate. */
static const char LONG_PROMPT[] =
    "a highly detailed watercolor painting of an old lighthouse on a small hill at dawn, soft pastel colors, "
    "golden light, film grain, a red fox and a grey cat sitting in the snow near the river bank, the quick "
    "brown fox jumps over the lazy dog, cinematic shot, sharp focus, studio lighting, starry sky";

const struct golden_run golden_runs[] = {
    {"sd_t2i_1step_64", "tiny-sd", "text2img, one step (the SD-Turbo path); latent 8x8, so 4 tokens in the mid block",
     "a photo of a cat sitting on a windowsill, golden hour", NULL, 64, 64, 1, 0, NULL, NULL, {0}, 0, 0, 0},
    {"sd_t2i_3step_euler", "tiny-sd", "three steps of the model's EulerDiscreteScheduler (trailing)",
     "the quick brown fox jumps over the lazy dog", NULL, 32, 32, 3, 42, NULL, NULL, {0}, 0, 0, 0},
    {"sd_t2i_2step_24x40_philox", "tiny-sd",
     "non-square, latent 3x5 (not a multiple of 4: the UNet's forward_upsample_size path), Philox noise",
     "Caf\xC3\xA9 cr\xC3\xA8me on the river bank, 35mm f/1.8!!", NULL, 40, 24, 2, 7, "philox", NULL, {0}, 0, 0, 0},
    {"sd_img2img_4step_s0.5", "tiny-sd", "img2img: VAE encoder, posterior sample, 2 of 4 steps",
     "   an oil painting\tof a   small house\n\nunder a starry sky  ", NULL, 32, 32, 4, 3, NULL, NULL, {0}, 0, 1,
     0.5},
    {"sd_lcm_2step_long_prompt", "tiny-sd",
     "LCMScheduler from golden/lcm_scheduler_config.json; a prompt cut at 75 tokens",
     LONG_PROMPT, NULL, 32, 32, 2, 1234, NULL, "lcm_scheduler_config.json", {0}, 0, 0, 0},
    {"sd_f16_t2i_1step", "tiny-sd-f16", "float16 weights (widened exactly by the kernels)",
     "a photo of a cat sitting on a windowsill, golden hour", NULL, 32, 32, 1, 0, NULL, NULL, {0}, 0, 0, 0},
    {"sdxl_t2i_1step_64", "tiny-sdxl", "SDXL text2img, one step: two text encoders, text_time embedding; latent 8x8",
     "an astronaut riding a horse on the moon, highly detailed", NULL, 64, 64, 1, 0, NULL, NULL, {0}, 0, 0, 0},
    {"sdxl_t2i_4step_ancestral", "tiny-sdxl",
     "four EulerAncestral steps (fresh noise every step); a different prompt_2",
     "a red fox in the snow, cinematic shot", "soft light, film grain", 32, 32, 4, 42, NULL, NULL, {0}, 0, 0, 0},
    {"sdxl_t2i_2step_40x24_empty_prompt", "tiny-sdxl", "non-square, latent 5x3; the empty prompt",
     "", NULL, 24, 40, 2, 11, NULL, NULL, {0}, 0, 0, 0},
    {"sdxl_img2img_3step_s0.7_24x40", "tiny-sdxl", "SDXL img2img at a non-square size, 2 of 3 steps",
     "a cozy cafe in the old town at night, oil painting", NULL, 40, 24, 3, 5, NULL, NULL, {0}, 0, 1, 0.7},
    {"sdxl_lcm_t699_299", "tiny-sdxl", "LCMScheduler with custom timesteps [699, 299] (DMD2-style)",
     "portrait of an old sailor with a grey beard, studio lighting", NULL, 32, 32, 2, 99, NULL,
     "lcm_scheduler_config.json", {699, 299}, 2, 0, 0},
};
const size_t golden_nruns = sizeof golden_runs / sizeof golden_runs[0];

/* ---------------------------------------------------------------- models */

int golden_make_models(const char *models_dir, struct os_err *err)
{
    char vocab[1024];
    snprintf(vocab, sizeof vocab, "%s/vocab", golden_dir());
    for (size_t i = 0; i < golden_nmodels; i++) {
        const struct golden_model *m = &golden_models[i];
        char out[1024];
        snprintf(out, sizeof out, "%s/%s", models_dir, m->name);
        struct synth_opts o = {0};
        o.model = m->configs;
        o.layout = SYNTH_DIFFUSERS;
        o.dtype = m->dtype;
        o.seed = m->seed;
        o.vocab_dir = vocab;
        o.out = out;
        if (synth_model(&o, NULL, NULL, err)) return os_prefix(err, "golden model %s: ", m->name);
    }
    return 0;
}

void golden_remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[2048];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0) {
                if (S_ISDIR(st.st_mode)) golden_remove_tree(p);
                else unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(path);
}

int golden_make_models_tmp(char *dir, size_t cap, struct os_err *err)
{
    const char *tmp = getenv("TMPDIR");
    if (snprintf(dir, cap, "%s/onestep-golden-XXXXXX", tmp && *tmp ? tmp : "/tmp") >= (int)cap)
        return os_fail(err, "temporary directory name too long");
    if (!mkdtemp(dir)) return os_fail(err, "%s: cannot create: %s", dir, strerror(errno));
    if (golden_make_models(dir, err)) {
        golden_remove_tree(dir);
        return -1;
    }
    return 0;
}

uint64_t golden_hash(const void *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *s = p, *e = s + n; s < e; s++) h = (h ^ *s) * 0x100000001b3ull;
    return h;
}

static uint64_t hash_file(uint64_t h, const char *path, int *found, struct os_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *found = 0;
        return h;
    }
    *found = 1;
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < got; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
    if (ferror(f)) {
        os_fail(err, "%s: read error", path);
        *found = -1;
    }
    fclose(f);
    return h;
}

int golden_model_fingerprint(const char *model_path, char out[17], struct os_err *err)
{
    /* Everything that decides the numbers: weights (either variant name) and
     * the tokenizer. Configs come from weights/configs and are hashed too. */
    static const char *const files[] = {
        "model_index.json",
        "scheduler/scheduler_config.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "text_encoder/model.fp16.safetensors",
        "text_encoder_2/config.json",
        "text_encoder_2/model.safetensors",
        "text_encoder_2/model.fp16.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/tokenizer_config.json",
        "tokenizer/special_tokens_map.json",
        "tokenizer_2/vocab.json",
        "tokenizer_2/merges.txt",
        "tokenizer_2/tokenizer_config.json",
        "tokenizer_2/special_tokens_map.json",
    };
    uint64_t h = 0xcbf29ce484222325ull;
    int any = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", model_path, files[i]);
        int found;
        h = hash_file(h, p, &found, err);
        if (found < 0) return -1;
        if (found) {
            any = 1;
            h = (h ^ (uint64_t)i) * 0x100000001b3ull; /* which file it was */
        }
    }
    if (!any) return os_fail(err, "%s: no model files to fingerprint", model_path);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return 0;
}

void golden_init_image(int width, int height, unsigned char *rgb)
{
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            unsigned char *px = rgb + ((size_t)y * width + x) * 3;
            int check = ((x / 4) + (y / 4)) & 1;
            px[0] = (unsigned char)(255 * x / (width > 1 ? width - 1 : 1));
            px[1] = (unsigned char)(255 * y / (height > 1 ? height - 1 : 1));
            px[2] = (unsigned char)(check ? 200 : 40);
        }
}

/* ---------------------------------------------------------------- running */

static void on_dump(void *user, const char *name, enum onestep_dtype dtype, const void *data, int ndim,
                    const int64_t *shape)
{
    struct golden_set *s = user;
    if (s->failed) return;
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        s->failed = 1;
        return;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct golden_tensor *t = realloc(s->t, cap * sizeof *t);
        if (!t) {
            s->failed = 1;
            return;
        }
        s->t = t;
        s->cap = cap;
    }
    struct golden_tensor *t = &s->t[s->n];
    memset(t, 0, sizeof *t);
    t->dtype = dtype == ONESTEP_F32 ? DT_F32 : dtype == ONESTEP_I64 ? DT_I64 : DT_U8;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    t->ndim = ndim;
    t->bytes = n * dtype_size(t->dtype);
    t->name = strdup(name);
    t->data = malloc(t->bytes ? t->bytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        s->failed = 1;
        return;
    }
    memcpy(t->data, data, t->bytes);
    s->n++;
}

int golden_generate(const struct golden_run *r, const char *models_dir, const char *backend, struct golden_set *out,
                    struct os_err *err)
{
    memset(out, 0, sizeof *out);
    char model[1024], sched[1024];
    snprintf(model, sizeof model, "%s/%s", models_dir, r->model);
    struct onestep_load_params lp;
    onestep_load_default_params(&lp);
    lp.model = model;
    lp.backend = backend;
    lp.threads = 0;
    if (r->scheduler_config) {
        snprintf(sched, sizeof sched, "%s/%s", golden_dir(), r->scheduler_config);
        lp.scheduler_config = sched;
    }
    struct onestep_ctx *ctx;
    struct onestep_err oe;
    if (onestep_load(&lp, &ctx, &oe)) return os_fail(err, "%s: %s", r->name, oe.msg);

    struct onestep_params p;
    onestep_default_params(ctx, &p);
    p.prompt = r->prompt;
    p.prompt_2 = r->prompt_2;
    p.width = r->width;
    p.height = r->height;
    p.steps = r->steps;
    p.seed = r->seed;
    if (r->rng) p.rng = r->rng;
    if (r->ntimesteps) {
        p.timesteps = r->timesteps;
        p.ntimesteps = r->ntimesteps;
    }
    unsigned char *init = NULL;
    if (r->img2img) {
        init = malloc((size_t)r->width * r->height * 3);
        if (!init) {
            onestep_free(ctx);
            return os_fail(err, "%s: out of memory", r->name);
        }
        golden_init_image(r->width, r->height, init);
        p.init_rgb = init;
        p.init_width = r->width;
        p.init_height = r->height;
        p.strength = r->strength;
    }
    p.dump = on_dump;
    p.dump_user = out;
    struct onestep_image img;
    int rc = onestep_generate(ctx, &p, &img, &oe);
    if (rc) os_fail(err, "%s: %s", r->name, oe.msg);
    else onestep_image_free(&img);
    free(init);
    onestep_free(ctx);
    if (!rc && out->failed)
        rc = os_fail(err, "%s: could not keep the intermediates (out of memory, or a dump of more than %d dimensions)",
                     r->name, TENSOR_MAX_DIMS);
    if (rc) golden_set_free(out);
    return rc;
}

const struct golden_tensor *golden_find(const struct golden_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name)) return &s->t[i];
    return NULL;
}

void golden_set_free(struct golden_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->t[i].name);
        free(s->t[i].data);
    }
    free(s->t);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- files */

static int read_all(const char *path, unsigned char **buf, size_t *len, struct os_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return os_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *b = malloc(cap);
    size_t got;
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) return os_fail(err, "%s: out of memory", path);
    if (bad) {
        free(b);
        return os_fail(err, "%s: read error", path);
    }
    *buf = b;
    *len = n;
    return 0;
}

/* Metadata: any failure (out of memory) is kept in *bad and reported once. */
static void meta(struct st_writer *w, const char *key, const char *value, int *bad, struct os_err *err)
{
    if (st_writer_meta(w, key, value, err)) *bad = 1;
}

static void meta_int(struct st_writer *w, const char *key, long long v, int *bad, struct os_err *err)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", v);
    meta(w, key, s, bad, err);
}

int golden_save(const struct golden_set *s, const struct golden_run *r, const char *fingerprint, const char *path,
                struct os_err *err)
{
    struct st_writer *w = st_writer_new();
    if (!w) return os_fail(err, "%s: out of memory", path);
    int rc = -1, bad = 0;
    unsigned char *raw = NULL, *z = NULL;
    size_t rawlen = 0;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.uncompressed", path);
    /* the parameters, so that a file says what made it */
    meta(w, "run", r->name, &bad, err);
    meta(w, "model", r->model, &bad, err);
    meta(w, "model_fingerprint", fingerprint, &bad, err);
    meta(w, "prompt", r->prompt, &bad, err);
    if (r->prompt_2) meta(w, "prompt_2", r->prompt_2, &bad, err);
    meta_int(w, "width", r->width, &bad, err);
    meta_int(w, "height", r->height, &bad, err);
    meta_int(w, "steps", r->steps, &bad, err);
    meta_int(w, "seed", (long long)r->seed, &bad, err);
    meta(w, "rng", r->rng ? r->rng : "torch", &bad, err);
    if (r->scheduler_config) meta(w, "scheduler_config", r->scheduler_config, &bad, err);
    if (r->ntimesteps) {
        char ts[64] = "";
        for (int i = 0; i < r->ntimesteps; i++)
            snprintf(ts + strlen(ts), sizeof ts - strlen(ts), "%s%d", i ? "," : "", r->timesteps[i]);
        meta(w, "timesteps", ts, &bad, err);
    }
    if (r->img2img) {
        char st[32];
        snprintf(st, sizeof st, "%.15g", r->strength);
        meta(w, "strength", st, &bad, err);
    }
    meta(w, "backend", "ref", &bad, err);
    if (bad) goto out;
    for (size_t i = 0; i < s->n; i++) {
        const struct golden_tensor *t = &s->t[i];
        if (st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, err)) goto out;
    }
    if (st_writer_write(w, tmp, err) || read_all(tmp, &raw, &rawlen, err)) goto out;

    /* gzip through deflate with our own header: gzopen would stamp the
     * platform's OS code, and equal contents must give equal files. */
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
        os_fail(err, "%s: zlib deflateInit2 failed", path);
        goto out;
    }
    gz_header gh;
    memset(&gh, 0, sizeof gh);
    gh.os = 255;
    deflateSetHeader(&zs, &gh);
    uLong cap = deflateBound(&zs, (uLong)rawlen) + 64;
    z = malloc(cap);
    if (!z) {
        deflateEnd(&zs);
        os_fail(err, "%s: out of memory", path);
        goto out;
    }
    zs.next_in = raw;
    zs.avail_in = (uInt)rawlen;
    zs.next_out = z;
    zs.avail_out = (uInt)cap;
    int zrc = deflate(&zs, Z_FINISH);
    size_t zlen = cap - zs.avail_out;
    deflateEnd(&zs);
    if (zrc != Z_STREAM_END) {
        os_fail(err, "%s: zlib deflate failed (%d)", path, zrc);
        goto out;
    }
    struct atomic_file af;
    if (atomic_open(&af, path, err)) goto out;
    if (fwrite(z, 1, zlen, af.f) != zlen) {
        atomic_abort(&af);
        os_fail(err, "%s: write error", path);
        goto out;
    }
    if (atomic_commit(&af, err)) goto out;
    rc = 0;
out:
    unlink(tmp);
    free(raw);
    free(z);
    st_writer_free(w);
    return rc;
}

#define GOLDEN_MAX_BYTES ((size_t)256 << 20)

int golden_load(const char *path, void **buf, size_t *len, struct os_err *err)
{
    gzFile g = gzopen(path, "rb");
    if (!g) return os_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = malloc(cap);
    int rc = 0;
    for (;;) {
        if (!b) {
            rc = os_fail(err, "%s: out of memory", path);
            break;
        }
        if (n == cap) {
            if (cap >= GOLDEN_MAX_BYTES) {
                rc = os_fail(err, "%s: more than %zu bytes uncompressed", path, GOLDEN_MAX_BYTES);
                break;
            }
            unsigned char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
            continue;
        }
        int got = gzread(g, b + n, (unsigned)(cap - n));
        if (got < 0) {
            int e;
            const char *msg = gzerror(g, &e);
            rc = os_fail(err, "%s: not a valid gzip file (%s)", path, msg);
            break;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    /* A stream cut short reads as a short file; zlib tells only at close. */
    int zc = gzclose(g);
    if (!rc && zc != Z_OK)
        rc = os_fail(err, "%s: %s", path,
                     zc == Z_BUF_ERROR ? "gzip stream cut short (truncated file)" : "gzip error at close");
    if (rc) {
        free(b);
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}
