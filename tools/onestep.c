/* onestep — the command-line program: a thin layer over ref/onestep.h.
 *
 *   onestep -m weights/sd-turbo -p "a fox in a spacesuit" -o fox.png
 *   onestep tokenize -m weights/sd-turbo -p "a fox"
 *
 * Flags follow stable-diffusion.cpp where one exists. Every bad value is
 * refused before any work starts, with one line naming the flag. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../ref/onestep.h"
#include "../ref/ops.h"
#include "../ref/rng.h"
#include "../weights/atomic_file.h"
#include "../weights/lora.h"
#include "../weights/safetensors.h"
#include "lib/image_io.h"
#include "lib/rss.h"

#define MAX_LORAS 16
#define MAX_TIMESTEPS 1000

struct cli {
    struct onestep_load_params lp;
    struct onestep_params p;
    const char *model, *prompt, *prompt_2, *output, *dump, *init_img, *preview_dir, *prompt_file;
    size_t prompt_len;  /* of a prompt read from a file: it may hold NUL bytes */
    char *prompt_owned; /* that prompt's buffer */
    int have_seed, have_strength, resize, verbose;
    int timesteps[MAX_TIMESTEPS];
    struct onestep_lora loras[MAX_LORAS];
    int nloras;
};

/* What parse_args and read_prompt_file allocated. */
static void cli_free(struct cli *c)
{
    for (int i = 0; i < c->nloras; i++) free((char *)c->loras[i].path);
    free(c->prompt_owned);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: onestep [options] -p PROMPT\n"
            "       onestep tokenize -m MODEL -p PROMPT\n"
            "\n"
            "One-step text-to-image (SD-Turbo, SDXL-Turbo, LCM, DMD2) on the CPU.\n"
            "\n"
            "  -m, --model PATH        diffusers model directory or single .safetensors file\n"
            "                          (default weights/sd-turbo; get it with weights/download.sh sd-turbo)\n"
            "  -p, --prompt TEXT       the prompt (literal text: no weighting syntax)\n"
            "      --prompt-file FILE  read the prompt from FILE (UTF-8, any length; for long prompts)\n"
            "      --prompt-2 TEXT     SDXL: prompt for the second text encoder (default: the prompt)\n"
            "  -o, --output FILE       PNG to write (default output.png)\n"
            "  -s, --seed N            0 .. 2^64-1 (default 42; torch keeps the low 32 bits)\n"
            "      --steps N           denoising steps, 1 .. 1000 (default 1)\n"
            "  -W, --width N           image width, a multiple of 8 (default: the model's, 512)\n"
            "  -H, --height N          image height, a multiple of 8 (default: the model's, 512)\n"
            "  -i, --init-img FILE     img2img: start from this PNG/JPEG (its size sets W x H)\n"
            "      --strength S        img2img: 0 < S <= 1 (default 0.5); int(steps x S) steps run, so it must be >= 1\n"
            "                          (without --steps: the fewest steps that run one, e.g. 2 at 0.5)\n"
            "      --resize            img2img: resize the init image to -W x -H instead of requiring its size\n"
            "      --scheduler-config FILE  use this scheduler_config.json (e.g. an LCMScheduler one)\n"
            "      --timesteps LIST    custom timesteps, e.g. 399 or 999,749,499,249 (LCM / DMD2)\n"
            "      --lora FILE[:SCALE] apply a LoRA (kohya or diffusers layout); repeatable\n"
            "      --lora-dtype D      merged LoRA weights: f32, stored (f16 weights stay f16: half the memory)\n"
            "                          or auto (default: f32 on --backend ref, stored on the others)\n"
            "      --taesd DIR         decode with TAESD (AutoencoderTiny) instead of the VAE\n"
            "      --preview DIR       write each step's predicted image to DIR/step-N.png\n"
            "      --vae-tiling        decode in overlapping tiles (bounded memory for large images)\n"
            "      --variant V         weights file: auto (default), fp16 or fp32\n"
            "  -t, --threads N         threads (default: all cores)\n"
            "      --backend NAME      auto (default), ref, avx2, avx512, neon, cuda\n"
            "      --rng NAME          torch (default: x86 torch.randn bits), torch-scalar, philox\n"
            "      --dump FILE         write every intermediate tensor to FILE.safetensors\n"
            "  -v, --verbose           per-stage times and peak memory at the end\n"
            "      --version           print version and backend\n"
            "  -h, --help              this text\n");
}

/* One line on stderr, whatever the message holds: a file's tensor names or a
 * prompt can carry newlines or terminal escape sequences, which are shown as
 * \xNN instead. */
static void die(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fputs("onestep: ", stderr);
    for (const unsigned char *c = (const unsigned char *)msg; *c; c++) {
        if (*c < 0x20 || *c == 0x7f) fprintf(stderr, "\\x%02x", *c);
        else fputc(*c, stderr);
    }
    fputc('\n', stderr);
    exit(2);
}

static long long parse_int(const char *flag, const char *s, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end) die("%s %s: not an integer", flag, s);
    if (errno == ERANGE || v < lo || v > hi) die("%s %s: must be between %lld and %lld", flag, s, lo, hi);
    return v;
}

static double parse_double(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || v != v) die("%s %s: not a number", flag, s);
    return v;
}

static int parse_timesteps(const char *s, int *out)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno == ERANGE || v < 0 || v > 999)
            die("--timesteps %s: expected integers 0..999 separated by commas", s);
        if (n == MAX_TIMESTEPS) die("--timesteps: at most %d values", MAX_TIMESTEPS);
        if (n && v >= out[n - 1]) die("--timesteps %s: must be strictly decreasing (e.g. 999,749,499,249)", s);
        out[n++] = (int)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) die("--timesteps %s: expected integers 0..999 separated by commas", s);
    }
    if (!n) die("--timesteps: empty list");
    return n;
}

static void print_version(const char *backend, int threads)
{
    struct os_err e;
    const struct ops *o = ops_by_name(backend ? backend : "auto", threads, &e);
    printf("onestep %s\n", ONESTEP_VERSION);
    if (o) printf("backend: %s\n", ops_describe(o)); /* ISA, threads, options, CPU features */
    else printf("backend: %s\n", e.msg);
}

static const char *need(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) die("%s: missing value", argv[*i]);
    return argv[++*i];
}

static void parse_args(struct cli *c, int argc, char **argv, int first)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            c->model = need(argc, argv, &i);
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            c->prompt = need(argc, argv, &i);
        } else if (!strcmp(a, "--prompt-file")) {
            c->prompt_file = need(argc, argv, &i);
        } else if (!strcmp(a, "--prompt-2")) {
            c->prompt_2 = need(argc, argv, &i);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            c->output = need(argc, argv, &i);
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            struct os_err se;
            if (rng_parse_seed(need(argc, argv, &i), &c->p.seed, &se)) die("--seed: %s", se.msg);
            c->have_seed = 1;
        } else if (!strcmp(a, "--steps")) {
            c->p.steps = (int)parse_int(a, need(argc, argv, &i), 1, 1000);
        } else if (!strcmp(a, "-W") || !strcmp(a, "--width")) {
            c->p.width = (int)parse_int(a, need(argc, argv, &i), 8, 16384);
        } else if (!strcmp(a, "-H") || !strcmp(a, "--height")) {
            c->p.height = (int)parse_int(a, need(argc, argv, &i), 8, 16384);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            c->lp.threads = (int)parse_int(a, need(argc, argv, &i), 1, 1024);
        } else if (!strcmp(a, "--backend")) {
            c->lp.backend = need(argc, argv, &i);
        } else if (!strcmp(a, "--rng")) {
            c->p.rng = need(argc, argv, &i);
        } else if (!strcmp(a, "--dump")) {
            c->dump = need(argc, argv, &i);
        } else if (!strcmp(a, "-i") || !strcmp(a, "--init-img")) {
            c->init_img = need(argc, argv, &i);
        } else if (!strcmp(a, "--strength")) {
            double s = parse_double(a, need(argc, argv, &i));
            if (!(s > 0.0 && s <= 1.0)) die("--strength %s: must be in (0, 1]", argv[i]);
            c->p.strength = s;
            c->have_strength = 1;
        } else if (!strcmp(a, "--resize")) {
            c->resize = 1;
        } else if (!strcmp(a, "--scheduler-config")) {
            c->lp.scheduler_config = need(argc, argv, &i);
        } else if (!strcmp(a, "--timesteps")) {
            c->p.ntimesteps = parse_timesteps(need(argc, argv, &i), c->timesteps);
            c->p.timesteps = c->timesteps;
        } else if (!strcmp(a, "--lora")) {
            const char *v = need(argc, argv, &i);
            if (c->nloras == MAX_LORAS) die("--lora: at most %d LoRAs", MAX_LORAS);
            char *path;
            float scale;
            struct os_err le;
            if (lora_parse_arg(v, &path, &scale, &le)) die("--lora %s", le.msg);
            c->loras[c->nloras].path = path;
            c->loras[c->nloras].scale = scale;
            c->nloras++;
        } else if (!strcmp(a, "--lora-dtype")) {
            c->lp.lora_dtype = need(argc, argv, &i);
            if (strcmp(c->lp.lora_dtype, "auto") && strcmp(c->lp.lora_dtype, "f32") && strcmp(c->lp.lora_dtype, "stored"))
                die("--lora-dtype %s: expected auto, f32 or stored", c->lp.lora_dtype);
        } else if (!strcmp(a, "--taesd")) {
            c->lp.taesd = need(argc, argv, &i);
        } else if (!strcmp(a, "--preview")) {
            c->preview_dir = need(argc, argv, &i);
        } else if (!strcmp(a, "--vae-tiling")) {
            c->p.vae_tiling = 1;
        } else if (!strcmp(a, "--variant")) {
            c->lp.variant = need(argc, argv, &i);
            if (strcmp(c->lp.variant, "auto") && strcmp(c->lp.variant, "fp16") && strcmp(c->lp.variant, "fp32"))
                die("--variant %s: expected auto, fp16 or fp32", c->lp.variant);
        } else if (!strcmp(a, "--version")) {
            print_version(c->lp.backend, c->lp.threads);
            exit(0);
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            c->verbose = 1;
        } else {
            die("unknown option %s (see onestep --help)", a);
        }
    }
}

/* ---- --dump: collect every intermediate, write one file at the end ---- */

struct dumper {
    struct st_writer *w;
    int failed;
    struct onestep_err err;
};

static void on_dump(void *user, const char *name, enum onestep_dtype dtype, const void *data, int ndim,
                    const int64_t *shape)
{
    struct dumper *d = user;
    if (d->failed) return;
    enum dtype dt = dtype == ONESTEP_I64 ? DT_I64 : dtype == ONESTEP_U8 ? DT_U8 : DT_F32;
    struct os_err e;
    if (st_writer_add(d->w, name, dt, ndim, shape, data, &e)) {
        d->failed = 1;
        snprintf(d->err.msg, sizeof d->err.msg, "--dump: %.480s", e.msg);
    }
}

/* ---- progress on stderr ---- */

struct progress {
    int verbose;
    double t[4];
    int count[4];
    struct rss_peaks rss; /* -v: peak RSS per stage and overall */
};

static const char *stage_name[] = {"text encoder", "vae encoder", "unet", "vae decoder"};

static void on_progress(void *user, const struct onestep_progress *p)
{
    struct progress *pr = user;
    if (!p->done) {
        if (pr->verbose) rss_stage_begin(&pr->rss);
        return;
    }
    pr->t[p->stage] += p->seconds;
    pr->count[p->stage]++;
    char mem[64] = "";
    if (pr->verbose) {
        long long peak = rss_stage_end(&pr->rss), now = rss_current();
        if (peak >= 0)
            snprintf(mem, sizeof mem, "  (RSS: %s %.0f MiB, now %.0f MiB)", pr->rss.resettable ? "stage peak" : "peak so far",
                     peak / 1048576.0, now / 1048576.0);
    }
    if (p->stage == ONESTEP_STAGE_UNET)
        fprintf(stderr, "onestep: %s step %d/%d  %.2f s%s\n", stage_name[p->stage], p->step, p->steps, p->seconds, mem);
    else
        fprintf(stderr, "onestep: %s  %.2f s%s\n", stage_name[p->stage], p->seconds, mem);
}

struct previewer {
    const char *dir;
    int failed;
};

static void on_preview(void *user, int step, const unsigned char *rgb, int w, int h)
{
    struct previewer *pv = user;
    char path[4096];
    snprintf(path, sizeof path, "%s/step-%d.png", pv->dir, step);
    struct os_err e;
    if (png_write_rgb(path, rgb, w, h, NULL, NULL, &e)) {
        fprintf(stderr, "onestep: --preview: %s\n", e.msg);
        pv->failed = 1;
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *basename_of(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    static char buf[256];
    size_t start = n;
    while (start > 0 && path[start - 1] != '/') start--;
    snprintf(buf, sizeof buf, "%.*s", (int)(n - start), path + start);
    return buf;
}

/* --prompt-file: the file's bytes are the prompt, as they are (the tokenizer
 * folds whitespace, so a trailing newline changes nothing; a NUL byte is a
 * character, as in a Python str). Exactly one of -p and --prompt-file. */
#define PROMPT_FILE_MAX (64u << 20)

static void read_prompt_file(struct cli *c)
{
    if (!c->prompt_file) return;
    if (c->prompt) die("-p and --prompt-file: give one of them");
    FILE *f = fopen(c->prompt_file, "rb");
    if (!f) die("--prompt-file %s: cannot open: %s", c->prompt_file, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            if (cap >= PROMPT_FILE_MAX) {
                fclose(f);
                free(buf);
                die("--prompt-file %s: larger than %u MiB", c->prompt_file, PROMPT_FILE_MAX >> 20);
            }
            char *b2 = realloc(buf, 2 * cap + 1);
            if (!b2) free(buf);
            buf = b2;
            cap *= 2;
        }
    }
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf) die("--prompt-file %s: out of memory", c->prompt_file);
    if (rerr) {
        free(buf);
        die("--prompt-file %s: read failed: %s", c->prompt_file, strerror(rerr));
    }
    buf[n] = '\0';
    c->prompt = c->prompt_owned = buf;
    c->prompt_len = n;
}

static int cmd_tokenize(int argc, char **argv)
{
    struct cli c;
    memset(&c, 0, sizeof c);
    onestep_load_default_params(&c.lp);
    parse_args(&c, argc, argv, 2);
    read_prompt_file(&c);
    if (!c.model) die("tokenize: -m MODEL_DIR is required");
    if (!c.prompt) die("tokenize: -p PROMPT (or --prompt-file FILE) is required");
    c.lp.model = c.model;
    c.lp.backend = "ref";
    struct onestep_err err;
    struct onestep_ctx *ctx;
    if (onestep_load(&c.lp, &ctx, &err)) die("%s", err.msg);
    int32_t ids[2][77];
    int n;
    if (onestep_tokenize_n(ctx, c.prompt, c.prompt_len ? c.prompt_len : strlen(c.prompt), ids, &n, &err)) {
        onestep_free(ctx);
        die("%s", err.msg);
    }
    for (int t = 0; t < n; t++)
        for (int i = 0; i < 77; i++) printf("%d%c", ids[t][i], i == 76 ? '\n' : ' ');
    onestep_free(ctx);
    cli_free(&c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "tokenize")) return cmd_tokenize(argc, argv);
    struct cli c;
    memset(&c, 0, sizeof c);
    onestep_load_default_params(&c.lp);
    parse_args(&c, argc, argv, 1);
    read_prompt_file(&c);

    if (!c.prompt) die("-p PROMPT (or --prompt-file FILE) is required (see onestep --help)");
    if (!c.output) c.output = "output.png";
    if (!c.model) c.model = "weights/sd-turbo";
    if (c.have_strength && !c.init_img) die("--strength needs -i/--init-img");
    if (c.resize && !c.init_img) die("--resize needs -i/--init-img");
    struct os_err oe;
    if (atomic_check_writable(c.output, &oe)) die("-o %s", oe.msg);
    if (c.dump && atomic_check_writable(c.dump, &oe)) die("--dump %s", oe.msg);
    if (c.preview_dir) {
        char probe[4096];
        snprintf(probe, sizeof probe, "%s/step-1.png", c.preview_dir);
        if (atomic_check_writable(probe, &oe)) die("--preview %s: not a writable directory (%s)", c.preview_dir, oe.msg);
    }

    c.lp.model = c.model;
    c.lp.loras = c.loras;
    c.lp.nloras = c.nloras;
    struct onestep_err err;
    struct onestep_ctx *ctx;
    double t0 = now();
    if (onestep_load(&c.lp, &ctx, &err)) die("%s", err.msg);
    double t_load = now() - t0;

    struct onestep_params p;
    onestep_default_params(ctx, &p);
    /* copy what the user set over the defaults */
    if (c.have_seed) p.seed = c.p.seed;
    if (c.p.steps) p.steps = c.p.steps;
    if (c.p.width) p.width = c.p.width;
    if (c.p.height) p.height = c.p.height;
    if (c.p.rng) p.rng = c.p.rng;
    if (c.p.timesteps) {
        p.timesteps = c.p.timesteps;
        p.ntimesteps = c.p.ntimesteps;
    }
    if (c.have_strength) p.strength = c.p.strength;
    /* img2img without --steps: the fewest steps that run one (diffusers runs int(steps * strength)) */
    if (c.init_img && !c.p.steps && !c.p.timesteps) {
        p.steps = 1;
        while ((int)(p.steps * p.strength) < 1) p.steps++;
    }
    p.vae_tiling = c.p.vae_tiling;
    p.prompt = c.prompt;
    p.prompt_len = c.prompt_len;
    p.prompt_2 = c.prompt_2;

    unsigned char *init = NULL;
    if (c.init_img) {
        int w, h;
        if (image_read_rgb(c.init_img, &init, &w, &h, &oe)) die("-i %s", oe.msg);
        if (c.resize) {
            /* only when asked: otherwise the image's own size sets W x H */
            if (!c.p.width || !c.p.height) die("--resize needs -W and -H (the size to resize the init image to)");
            unsigned char *r = image_resize_rgb(init, w, h, c.p.width, c.p.height);
            if (!r) die("-i %s: out of memory resizing to %dx%d", c.init_img, c.p.width, c.p.height);
            free(init);
            init = r;
            w = c.p.width;
            h = c.p.height;
        } else {
            if ((c.p.width && c.p.width != w) || (c.p.height && c.p.height != h))
                die("-i %s: image is %dx%d but -W/-H ask for %dx%d (add --resize to resize it)", c.init_img, w, h,
                    c.p.width ? c.p.width : w, c.p.height ? c.p.height : h);
            if (w % 8 || h % 8) {
                int tw = w / 8 * 8, th = h / 8 * 8;
                die("-i %s: image is %dx%d; img2img needs a multiple of 8 (crop it, or use --resize -W %d -H %d)",
                    c.init_img, w, h, tw > 0 ? tw : 8, th > 0 ? th : 8);
            }
            p.width = w;
            p.height = h;
        }
        p.init_rgb = init;
        p.init_width = w;
        p.init_height = h;
    }

    struct progress pr = {c.verbose, {0}, {0}, {0, 0}};
    rss_peaks_init(&pr.rss);
    p.progress = on_progress;
    p.progress_user = &pr;
    struct dumper dumper = {0};
    if (c.dump) {
        dumper.w = st_writer_new();
        p.dump = on_dump;
        p.dump_user = &dumper;
    }
    struct previewer pv = {c.preview_dir, 0};
    if (c.preview_dir) {
        p.preview = on_preview;
        p.preview_user = &pv;
    }

    if (onestep_validate(ctx, &p, &err) || onestep_check_memory(ctx, &p, &err)) {
        onestep_free(ctx);
        die("%s", err.msg);
    }
    struct onestep_info info;
    onestep_get_info(ctx, &info);
    fprintf(stderr, "onestep: %s (%s, %s scheduler), %dx%d, %d step%s, seed %llu, backend %s, %d thread%s\n",
            c.model, info.family, info.scheduler, p.width, p.height, p.ntimesteps ? p.ntimesteps : p.steps,
            (p.ntimesteps ? p.ntimesteps : p.steps) == 1 ? "" : "s", (unsigned long long)p.seed, info.backend,
            info.threads, info.threads == 1 ? "" : "s");

    struct onestep_image img;
    double t1 = now();
    int rc = onestep_generate(ctx, &p, &img, &err);
    double t_gen = now() - t1;
    free(init);
    if (rc) {
        st_writer_free(dumper.w);
        onestep_free(ctx);
        die("%s", err.msg);
    }

    /* A1111's "parameters" text: prompt line, then "key: value" pairs */
    char params[4096], strength[48] = "";
    if (c.init_img) snprintf(strength, sizeof strength, ", Denoising strength: %g", p.strength);
    snprintf(params, sizeof params,
             "%s\nSteps: %d, Sampler: %s, CFG scale: 0, Seed: %llu, Size: %dx%d, Model: %s, RNG: %s%s, "
             "Version: onestep %s",
             c.prompt, p.ntimesteps ? p.ntimesteps : p.steps, info.scheduler, (unsigned long long)p.seed, img.width,
             img.height, basename_of(c.model), p.rng ? p.rng : "torch", strength, ONESTEP_VERSION);
    if (png_write_rgb(c.output, img.rgb, img.width, img.height, "parameters", params, &oe)) {
        onestep_image_free(&img);
        st_writer_free(dumper.w);
        onestep_free(ctx);
        die("-o %s", oe.msg);
    }
    onestep_image_free(&img);
    if (c.dump) {
        if (dumper.failed) die("%s", dumper.err.msg);
        if (st_writer_write(dumper.w, c.dump, &oe)) die("--dump %s", oe.msg);
        st_writer_free(dumper.w);
    }
    fprintf(stderr, "onestep: wrote %s (%.2f s)\n", c.output, t_gen);
    if (c.verbose) {
        fprintf(stderr, "onestep: load %.2f s", t_load);
        for (int s = 0; s < 4; s++)
            if (pr.count[s]) fprintf(stderr, ", %s %.2f s", stage_name[s], pr.t[s]);
        fprintf(stderr, ", total %.2f s; peak RSS %.1f MiB\n", t_gen, rss_overall(&pr.rss) / 1048576.0);
    }
    onestep_free(ctx);
    cli_free(&c);
    return pv.failed ? 1 : 0;
}
