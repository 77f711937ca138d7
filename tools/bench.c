/* bench — time text encoding, each UNet step, the VAE decode and the TAESD
 * decode of the full-size models, per backend, through the public API
 * (ref/onestep.h).
 *
 *   ./bench                                   both models, every backend, 512², 1 step, 3 repeats
 *   ./bench --model sd-turbo --backend ref --stages text --repeat 5
 *   ./bench --model sd-turbo --backend avx512 --stages vae,taesd   the decoders side by side
 *   ./bench --model-dir ../shared/conformance/sd-turbo-tiny --size 64   (any model directory or file)
 *   make bench                                the default set, results in bench.json
 *
 * The models are the synthetic full-size ones (tools/lib/synth.h: the real
 * names, shapes and f16 dtype, pseudo-random values), written once into the
 * cache directory (--cache, default $ONESTEP_BENCH_CACHE or
 * weights/synthetic: about 2.5 GB for SD-Turbo, 6.5 GB for SDXL-Turbo, 5 MB
 * for the TAESD, weights/configs/taesd). Speed does not depend on the values.
 *
 * The taesd stage is the decode stage of a second context loaded with
 * onestep_load_params.taesd (TAESD replaces the VAE decoder for a whole
 * context), in the same child process after the first is freed; it is
 * printed with its ratio to the vae stage of the same run (issue 8's target:
 * at most 1/4). "total" stays the KL VAE pipeline: text + UNet + vae.
 *
 * How a stage is timed: onestep_params.skip_stages runs only the stages
 * being timed, and the progress callback reports each stage's seconds.
 * Every (model, backend) pair runs in its own child process, so its peak
 * RSS (tools/lib/rss.h) is its own and a crashing backend cannot take the
 * bench down. FLOP counts come from tools/lib/modelwalk.h (the model code
 * walked over a counting backend, as ./modelinfo prints them);
 * GFLOP/s = GFLOP / fastest run.
 *
 * Method (docs/performance.md): --warmup untimed generations first (page-in,
 * thread start-up, weight caches), then --repeat timed ones; per stage the
 * minimum and the median; "total" times whole onestep_generate calls.
 *
 * Budget: the scalar reference needs hours for a full-size UNet and VAE.
 * Unless the backend was named with --backend, a stage whose estimated time
 * for all its runs (warm-up included) exceeds --budget or what is left of
 * --time-limit (the whole bench) is skipped with the estimate printed. The
 * estimate divides the stage's FLOPs by the backend's GFLOP/s on text
 * encoding (the small stage, run first untimed; reused for the next model);
 * taesd's by the rate of one untimed 64x64 TAESD decode (time_taesd).
 *
 * Performance targets belong here, in what this prints, never in timed
 * unit tests. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../ref/onestep.h"
#include "../weights/model_dir.h"
#include "lib/modelwalk.h"
#include "lib/rss.h"
#include "lib/synth.h"

/* ST_TAESD is last: the stages before it run in the plain context. */
enum { ST_TEXT, ST_UNET, ST_VAE, ST_TAESD, NSTAGES };
static const char *const stage_names[NSTAGES] = {"text", "unet", "vae", "taesd"};
static const enum onestep_stage stage_api[NSTAGES] = {ONESTEP_STAGE_TEXT, ONESTEP_STAGE_UNET, ONESTEP_STAGE_VAE,
                                                      ONESTEP_STAGE_VAE};
#define TAESD_TARGET 0.25 /* issue 8: TAESD decode at most 1/4 of the VAE decode */

#define MAX_SAMPLES 64
#define PROMPT "a photograph of an astronaut riding a horse"
#define SEED 42

#if defined(__clang__)
#define COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define COMPILER "gcc " __VERSION__
#else
#define COMPILER "unknown"
#endif
#define MAX_BACKENDS 8
#define MAX_MODELS 4

/* Backends tried when none is named: the reference and every optimised
 * table this build might have (the SIMD and CUDA branches add them to
 * ops_by_name; names it does not know are reported as unavailable). */
static const char *const default_backends[] = {"ref", "avx512", "avx2", "neon", "cuda"};

/* Issue 5's peak-RSS targets at 512x512, 1 step (f16 files). */
static const struct {
    const char *model;
    double bytes;
} rss_targets[] = {{"sd-turbo", 2.3e9}, {"sdxl-turbo", 6.0e9}};

struct opts {
    const char *models[MAX_MODELS];
    int nmodels;
    const char *model_dir;
    const char *backends[MAX_BACKENDS];
    int nbackends, forced;
    int size, steps, repeat, warmup, threads;
    int want[NSTAGES];
    const char *json, *cache, *layout;
    const char *taesd; /* --taesd, else the synthetic one in the cache (set in main) */
    double budget, time_limit;
};

struct stage_result {
    int wanted;
    int n; /* samples */
    double secs[MAX_SAMPLES];
    double gflop;       /* per run (UNet: per step) */
    double est_seconds; /* per run, estimated before it ran; 0 = none */
    double est_rate;    /* the GFLOP/s that estimate assumed */
    long long peak_rss; /* highest stage peak over its runs; -1 unknown */
    char skipped[240];
};

struct run_result {
    int status; /* 0 ran, 1 backend unavailable, 2 failed */
    char msg[512];
    char backend[32];
    int threads;
    double load_seconds;
    double taesd_load_seconds; /* the second context, with TAESD (0: not loaded) */
    long long peak_rss;
    int rss_per_stage; /* stage peaks are per stage (else: peak so far) */
    double rates[NSTAGES]; /* best GFLOP/s seen per stage (warm-up runs too), 0 = not run */
    struct stage_result st[NSTAGES];
    struct stage_result total; /* whole onestep_generate calls that ran every stage */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench [--model sd-turbo|sdxl-turbo[,..]] [--model-dir PATH] [--backend B[,B..]]\n"
            "             [--size N] [--steps N] [--stages text,unet,vae,taesd] [--repeat N] [--warmup N]\n"
            "             [--threads N] [--json FILE] [--cache DIR] [--layout diffusers|single] [--taesd DIR]\n"
            "             [--budget S] [--time-limit S]\n"
            "\n"
            "  --model       synthetic full-size models to time (default: sd-turbo,sdxl-turbo)\n"
            "  --model-dir   time this model directory or .safetensors file instead (e.g. a tiny test model)\n"
            "  --backend     backends to time (default: ref and every optimised one this build and CPU have);\n"
            "                a backend named here is never skipped for time\n"
            "  --size        image side in pixels (default 512)\n"
            "  --steps       UNet steps per run, each timed (default 1)\n"
            "  --stages      which stages to time (default text,unet,vae,taesd); taesd is the decode with\n"
            "                TAESD in place of the VAE, in a second context; total is text + unet + vae\n"
            "  --repeat      timed runs per stage; min and median are reported (default 3)\n"
            "  --warmup      untimed runs first (page-in, thread start-up, weight caches; default 1)\n"
            "  --threads     threads for threaded backends (default 0 = all cores)\n"
            "  --json        write the results as JSON to FILE\n"
            "  --cache       where the synthetic models are written once (default $ONESTEP_BENCH_CACHE,\n"
            "                else weights/synthetic)\n"
            "  --layout      synthetic model layout: diffusers directory (default) or single file\n"
            "  --taesd       the AutoencoderTiny directory the taesd stage uses (default: the synthetic\n"
            "                full-size one, written once into the cache from weights/configs/taesd)\n"
            "  --budget      skip a stage whose estimated time for all its runs exceeds S seconds (default 300)\n"
            "  --time-limit  ... or exceeds what is left of S seconds for the whole bench (default 1500)\n");
}

static int die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (bench --help)\n");
    va_end(ap);
    return 2;
}

/* Split a comma list into out[] (pointers into s, which is modified). */
static int split(char *s, const char **out, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max) return -1;
        out[n++] = tok;
    }
    return n;
}

static int parse_int(const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) return -1;
    *out = (int)x;
    return 0;
}

static int parse_num(const char *v, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= 0) || !isfinite(x)) return -1;
    *out = x;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->size = 512;
    o->steps = 1;
    o->repeat = 3;
    o->warmup = 1;
    o->budget = 300;
    o->time_limit = 1500;
    o->layout = "diffusers";
    o->cache = getenv("ONESTEP_BENCH_CACHE");
    if (!o->cache || !*o->cache) o->cache = "weights/synthetic";
    for (int s = 0; s < NSTAGES; s++) o->want[s] = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        static const char *const with_value[] = {"--model", "--model-dir", "--backend", "--size", "--steps",
                                                 "--stages", "--repeat", "--warmup", "--threads", "--json", "--cache",
                                                 "--layout", "--taesd", "--budget", "--time-limit"};
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) known |= !strcmp(a, with_value[k]);
        if (!known) return die_usage("unknown option \"%s\"", a);
        if (i + 1 >= argc) return die_usage("%s needs a value", a);
        char *v = argv[++i];
        if (!strcmp(a, "--model")) {
            o->nmodels = split(v, o->models, MAX_MODELS);
            if (o->nmodels <= 0) return die_usage("--model: at most %d models", MAX_MODELS);
            for (int m = 0; m < o->nmodels; m++)
                if (strcmp(o->models[m], "sd-turbo") && strcmp(o->models[m], "sdxl-turbo"))
                    return die_usage("--model %s: expected sd-turbo or sdxl-turbo (or --model-dir PATH)", o->models[m]);
        } else if (!strcmp(a, "--model-dir")) {
            o->model_dir = v;
        } else if (!strcmp(a, "--backend")) {
            o->nbackends = split(v, o->backends, MAX_BACKENDS);
            if (o->nbackends <= 0) return die_usage("--backend: at most %d backends", MAX_BACKENDS);
            o->forced = 1;
        } else if (!strcmp(a, "--size")) {
            if (parse_int(v, 8, 8192, &o->size) || o->size % 8)
                return die_usage("--size %s: a multiple of 8 from 8 to 8192", v);
        } else if (!strcmp(a, "--steps")) {
            if (parse_int(v, 1, 16, &o->steps)) return die_usage("--steps %s: 1 to 16", v);
        } else if (!strcmp(a, "--repeat")) {
            if (parse_int(v, 1, 32, &o->repeat)) return die_usage("--repeat %s: 1 to 32", v);
        } else if (!strcmp(a, "--warmup")) {
            if (parse_int(v, 0, 5, &o->warmup)) return die_usage("--warmup %s: 0 to 5", v);
        } else if (!strcmp(a, "--threads")) {
            if (parse_int(v, 0, 4096, &o->threads)) return die_usage("--threads %s: 0 (all cores) or more", v);
        } else if (!strcmp(a, "--stages")) {
            const char *st[NSTAGES + 1];
            int n = split(v, st, NSTAGES + 1);
            memset(o->want, 0, sizeof o->want);
            if (n <= 0 || n > NSTAGES) return die_usage("--stages: a list of text, unet, vae, taesd");
            for (int k = 0; k < n; k++) {
                int found = 0;
                for (int s = 0; s < NSTAGES; s++)
                    if (!strcmp(st[k], stage_names[s])) found = o->want[s] = 1;
                if (!found) return die_usage("--stages: unknown stage \"%s\" (text, unet, vae, taesd)", st[k]);
            }
        } else if (!strcmp(a, "--json")) {
            o->json = v;
        } else if (!strcmp(a, "--cache")) {
            o->cache = v;
        } else if (!strcmp(a, "--taesd")) {
            o->taesd = v;
        } else if (!strcmp(a, "--layout")) {
            if (strcmp(v, "diffusers") && strcmp(v, "single")) return die_usage("--layout: diffusers or single");
            o->layout = v;
        } else if (!strcmp(a, "--budget")) {
            if (parse_num(v, &o->budget)) return die_usage("--budget %s: seconds, >= 0", v);
        } else if (!strcmp(a, "--time-limit")) {
            if (parse_num(v, &o->time_limit)) return die_usage("--time-limit %s: seconds, >= 0", v);
        }
    }
    if (o->repeat * o->steps > MAX_SAMPLES) return die_usage("--repeat x --steps must be at most %d", MAX_SAMPLES);
    if (o->model_dir && o->nmodels) return die_usage("--model and --model-dir exclude each other");
    if (!o->model_dir && !o->nmodels) {
        o->models[0] = "sd-turbo";
        o->models[1] = "sdxl-turbo";
        o->nmodels = 2;
    }
    if (o->model_dir) {
        o->models[0] = o->model_dir;
        o->nmodels = 1;
    }
    if (!o->nbackends) {
        o->nbackends = (int)(sizeof default_backends / sizeof default_backends[0]);
        for (int b = 0; b < o->nbackends; b++) o->backends[b] = default_backends[b];
    }
    return 0;
}

/* ---------------------------------------------------------------- models */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void report_component(void *ctx, const char *component, uint64_t params, size_t tensors)
{
    (void)ctx;
    fprintf(stderr, "bench:   %s: %llu parameters in %zu tensors\n", component, (unsigned long long)params, tensors);
}

static int mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* The synthetic model's path, written first if it is not in the cache. */
static int synthetic_model(const struct opts *o, const char *model, char *path, size_t len)
{
    int single = !strcmp(o->layout, "single");
    if (single)
        snprintf(path, len, "%s/%s", o->cache,
                 !strcmp(model, "sd-turbo") ? "sd_turbo.safetensors" : "sd_xl_turbo_1.0_fp16.safetensors");
    else
        snprintf(path, len, "%s/%s", o->cache, model);
    if (path_exists(path)) return 0;
    if (mkdirs(o->cache)) {
        fprintf(stderr, "bench: cannot create the cache directory %s: %s\n", o->cache, strerror(errno));
        return -1;
    }
    fprintf(stderr, "bench: writing the synthetic %s (%s layout, f16) to %s, once: %s of disk\n", model, o->layout, path,
            !strcmp(model, "sd-turbo") ? "about 2.5 GB" : "about 6.5 GB");
    struct synth_opts so = {0};
    so.model = model;
    so.layout = single ? SYNTH_SINGLE : SYNTH_DIFFUSERS;
    so.dtype = DT_F16;
    so.out = path;
    so.interrupted = &interrupted;
    struct os_err err = {{0}};
    double t = now();
    if (synth_model(&so, report_component, NULL, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    fprintf(stderr, "bench: wrote %s in %.0f s\n", path, now() - t);
    return 0;
}

/* The synthetic full-size TAESD (weights/configs/taesd), written into the
 * cache once: about 5 MB, under a second. */
static int synthetic_taesd(const struct opts *o, char *path, size_t len)
{
    snprintf(path, len, "%s/taesd", o->cache);
    if (path_exists(path)) return 0;
    if (mkdirs(o->cache)) {
        fprintf(stderr, "bench: cannot create the cache directory %s: %s\n", o->cache, strerror(errno));
        return -1;
    }
    fprintf(stderr, "bench: writing the synthetic taesd (AutoencoderTiny, f16) to %s, once\n", path);
    struct synth_opts so = {0};
    so.model = "taesd";
    so.layout = SYNTH_DIFFUSERS;
    so.dtype = DT_F16;
    so.out = path;
    so.interrupted = &interrupted;
    struct os_err err = {{0}};
    if (synth_model(&so, report_component, NULL, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* GFLOP per stage (text: all encoders; UNet: one step; the VAE decoder;
 * with a TAESD directory its decoder at the model's latent size) from the
 * configs. */
static int stage_gflop(const char *path, int size, const char *taesd, double g[NSTAGES])
{
    struct mw_report rep;
    struct os_err err = {{0}};
    if (modelwalk(path, size, size, 0, &rep, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    memset(g, 0, NSTAGES * sizeof *g);
    for (int i = 0; i < rep.nstages; i++) {
        const struct mw_stage *st = &rep.stages[i];
        int s = st->kind == MW_TEXT ? ST_TEXT : st->kind == MW_UNET ? ST_UNET : st->kind == MW_VAE_DECODE ? ST_VAE : -1;
        if (s >= 0) g[s] += (double)st->flops * 1e-9;
    }
    if (taesd) {
        struct mw_stage ts;
        if (modelwalk_taesd(taesd, rep.lh, rep.lw, &ts, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            mw_report_free(&rep);
            return -1;
        }
        g[ST_TAESD] = (double)ts.flops * 1e-9;
    }
    mw_report_free(&rep);
    return 0;
}

/* ---------------------------------------------------------------- one run */

struct timing {
    struct run_result *r;
    struct rss_peaks rss;
    const char *label;
    int warming;       /* a warm-up or calibration run: no samples */
    int taesd;         /* the context decodes with TAESD: its decode stage is ST_TAESD */
    int calibration;   /* image side of a TAESD rate measurement (untimed), else 0 */
    double best[NSTAGES]; /* fastest seconds per stage, warm-up and calibration runs included */
};

static void on_progress(void *user, const struct onestep_progress *p)
{
    struct timing *t = user;
    int s = -1;
    for (int k = 0; k < ST_TAESD; k++)
        if (stage_api[k] == p->stage) s = k;
    if (s < 0) return;
    if (s == ST_VAE && t->taesd) s = ST_TAESD;
    if (!p->done) {
        rss_stage_begin(&t->rss);
        return;
    }
    struct stage_result *st = &t->r->st[s];
    long long peak = rss_stage_end(&t->rss);
    if (peak > st->peak_rss) st->peak_rss = peak;
    if (p->seconds > 0 && (t->best[s] == 0 || p->seconds < t->best[s])) t->best[s] = p->seconds;
    if (!t->warming && st->n < MAX_SAMPLES) st->secs[st->n++] = p->seconds;
    char w[64] = "";
    if (t->calibration) snprintf(w, sizeof w, " (rate calibration at %dx%d)", t->calibration, t->calibration);
    else if (t->warming) snprintf(w, sizeof w, " (warm-up)");
    if (s == ST_UNET)
        fprintf(stderr, "bench: %s: unet step %d/%d %.3f s%s\n", t->label, p->step, p->steps, p->seconds, w);
    else
        fprintf(stderr, "bench: %s: %s %.3f s%s\n", t->label, stage_names[s], p->seconds, w);
}

/* One generation running only the stages in `mask` (bits by ST_*; the
 * ST_TAESD bit runs the decode stage of a context loaded with TAESD). */
static int generate_at(struct onestep_ctx *ctx, const struct opts *o, struct timing *t, unsigned mask, int size,
                       struct onestep_err *err)
{
    struct onestep_params p;
    onestep_default_params(ctx, &p);
    p.prompt = PROMPT;
    p.seed = SEED;
    p.width = p.height = size;
    p.steps = o->steps;
    p.progress = on_progress;
    p.progress_user = t;
    if (mask & (1u << ST_TAESD)) mask = (mask & ~(1u << ST_TAESD)) | 1u << ST_VAE;
    for (int s = 0; s < ST_TAESD; s++)
        if (!(mask & (1u << s))) p.skip_stages |= 1u << stage_api[s];
    struct onestep_image img;
    double t0 = now();
    if (onestep_generate(ctx, &p, &img, err)) return -1;
    double secs = now() - t0;
    onestep_image_free(&img);
    struct stage_result *tot = &t->r->total;
    /* "total": whole generations of the plain (KL VAE) pipeline */
    if (mask == (1u << ST_TAESD) - 1 && !t->taesd && !t->warming && tot->n < MAX_SAMPLES) tot->secs[tot->n++] = secs;
    return 0;
}

static int generate(struct onestep_ctx *ctx, const struct opts *o, struct timing *t, unsigned mask,
                    struct onestep_err *err)
{
    return generate_at(ctx, o, t, mask, o->size, err);
}

/* The GFLOP/s to expect of stage s: its own rate if known, else the best
 * one seen (for the SIMD backends the text encoder's small GEMMs are the
 * slowest: the estimate errs towards running less). 0 if nothing is known. */
static double expected_rate(const double rates[NSTAGES], int s)
{
    if (rates[s] > 0) return rates[s];
    double best = 0;
    for (int k = 0; k < NSTAGES; k++)
        if (rates[k] > best) best = rates[k];
    return best;
}

/* "6440 s", "12.5 s", "0.097 s". */
static void seconds_str(double x, char *buf, size_t len)
{
    snprintf(buf, len, x >= 100 ? "%.0f s" : "%.3g s", x);
}

/* Decide whether stage s fits: not if its estimated time for its remaining
 * runs exceeds the budget or the time left. */
static void decide(const struct opts *o, struct run_result *r, int s, int runs_left, double time_left,
                   double elapsed, const char *backend)
{
    struct stage_result *st = &r->st[s];
    const int per_gen = s == ST_UNET ? o->steps : 1;
    double rate = expected_rate(r->rates, s);
    if (!st->wanted || o->forced || rate <= 0) return;
    st->est_rate = rate;
    st->est_seconds = st->gflop * per_gen / rate;
    double left = time_left - elapsed, limit = o->budget < left ? o->budget : left;
    if (st->est_seconds * runs_left > limit) {
        char est[32], lim[32];
        seconds_str(st->est_seconds * runs_left, est, sizeof est);
        seconds_str(limit, lim, sizeof lim);
        snprintf(st->skipped, sizeof st->skipped,
                 "estimated %s for %d run%s (warm-up included) at %.3g GFLOP/s > %s %s; --backend %s forces it", est,
                 runs_left, runs_left == 1 ? "" : "s", rate, o->budget <= left ? "--budget" : "the time left of --time-limit",
                 lim, backend);
    }
}

/* Fold the fastest times seen so far into the per-stage rates (the UNet's
 * times and GFLOP are both per step). */
static void update_rates(struct run_result *r, const struct timing *t)
{
    for (int s = 0; s < NSTAGES; s++) {
        if (t->best[s] <= 0 || r->st[s].gflop <= 0) continue;
        double rate = r->st[s].gflop / t->best[s];
        if (rate > r->rates[s]) r->rates[s] = rate;
    }
}

/* Side of the image a backend's TAESD rate is measured on before the
 * budget decision: the decoder's FLOPs scale with the pixel count, so at
 * 64x64 the run costs 1/64 of one at 512x512. */
#define TAESD_CALIBRATION_SIZE 64

/* The taesd stage: the plain context *ctx is freed first (so the peak RSS is
 * the larger of the two contexts', not their sum), the model is loaded again
 * with o->taesd replacing the VAE decoder, and generations that run only
 * the decode stage are warmed up and timed like the others.
 *
 * The budget decision needs this backend's rate on TAESD's convolutions,
 * which can be far from its rate on the text encoder (the reference: about
 * 1.3 against 2.9 GFLOP/s): unless the backend was named or an earlier model
 * measured it, one untimed decode at TAESD_CALIBRATION_SIZE² measures it. */
static int time_taesd(const struct opts *o, struct onestep_load_params *lp, struct onestep_ctx **ctx,
                      struct timing *t, double time_left, double start, const char *backend, struct onestep_err *err)
{
    struct run_result *r = t->r;
    onestep_free(*ctx);
    *ctx = NULL;
    lp->taesd = o->taesd;
    double t0 = now();
    if (onestep_load(lp, ctx, err)) return -1;
    r->taesd_load_seconds = now() - t0;
    t->taesd = 1;
    t->warming = 1;
    const int cs = o->size < TAESD_CALIBRATION_SIZE ? o->size : TAESD_CALIBRATION_SIZE;
    if (!o->forced && r->rates[ST_TAESD] <= 0) {
        t->calibration = cs;
        int rc = generate_at(*ctx, o, t, 1u << ST_TAESD, cs, err);
        t->calibration = 0;
        if (rc) return -1;
        double secs = t->best[ST_TAESD], frac = (double)cs * cs / ((double)o->size * o->size);
        t->best[ST_TAESD] = 0; /* not a sample of the full size */
        if (secs > 0) r->rates[ST_TAESD] = r->st[ST_TAESD].gflop * frac / secs;
    }
    decide(o, r, ST_TAESD, o->warmup + o->repeat, time_left, now() - start, backend);
    if (r->st[ST_TAESD].skipped[0]) return 0;
    for (int k = 0; k < o->warmup; k++)
        if (generate(*ctx, o, t, 1u << ST_TAESD, err)) return -1;
    t->warming = 0;
    for (int k = 0; k < o->repeat; k++)
        if (generate(*ctx, o, t, 1u << ST_TAESD, err)) return -1;
    update_rates(r, t);
    return 0;
}

/* In the child: load, calibrate, decide, warm up, time. `hint` holds this
 * backend's per-stage GFLOP/s from an earlier model (0: unknown);
 * `time_left` the seconds the whole bench has left.
 *
 * Decisions are made as late as possible, each with the best rate known by
 * then: the text encoder is run twice untimed (cold, then warm) when
 * nothing is known; the UNet is decided from that and warmed up; the VAE
 * is decided from the UNet's warm-up (closer to a VAE's large
 * convolutions than the text encoder's small GEMMs) and warmed up; then
 * the timed runs. The taesd stage comes last, in its own context
 * (time_taesd). */
static void run_one(const struct opts *o, const char *model, const char *path, const double gflop[NSTAGES],
                    const char *backend, const double hint[NSTAGES], double time_left, struct run_result *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->backend, sizeof r->backend, "%s", backend);
    for (int s = 0; s < NSTAGES; s++) {
        r->st[s].wanted = o->want[s];
        r->st[s].peak_rss = -1;
    }
    struct timing t = {r, {0, 0}, NULL, 0, 0, 0, {0}};
    char label[160];
    snprintf(label, sizeof label, "%s/%s", model, backend);
    t.label = label;
    rss_peaks_init(&t.rss);

    struct onestep_load_params lp;
    onestep_load_default_params(&lp);
    lp.model = path;
    lp.backend = backend;
    lp.threads = o->threads;
    struct onestep_ctx *ctx;
    struct onestep_err err;
    double t0 = now();
    if (onestep_load(&lp, &ctx, &err)) {
        /* the model itself is checked by the reference: only others may be "unavailable" */
        r->status = strcmp(backend, "ref") && strstr(err.msg, "backend") ? 1 : 2;
        snprintf(r->msg, sizeof r->msg, "%s", err.msg);
        return;
    }
    r->load_seconds = now() - t0;
    struct onestep_info info;
    onestep_get_info(ctx, &info);
    snprintf(r->backend, sizeof r->backend, "%s", info.backend);
    r->threads = info.threads;

    for (int s = 0; s < NSTAGES; s++) {
        r->st[s].gflop = gflop[s];
        r->rates[s] = hint[s];
    }
    const double start = now();
    int warm[NSTAGES] = {0}; /* untimed runs each stage has had */

    const int plain = o->want[ST_TEXT] || o->want[ST_UNET] || o->want[ST_VAE]; /* a stage of this context */
    if (plain && !o->forced && expected_rate(r->rates, ST_TEXT) <= 0) {
        t.warming = 1;
        for (int k = 0; k < 2; k++)
            if (generate(ctx, o, &t, 1u << ST_TEXT, &err)) goto failed;
        warm[ST_TEXT] = 2;
        update_rates(r, &t);
    }
    /* text and UNet now; the VAE after the UNet's warm-up */
    for (int s = ST_TEXT; s <= ST_UNET; s++) {
        int more = warm[s] >= o->warmup ? 0 : o->warmup - warm[s];
        decide(o, r, s, o->repeat + more, time_left, now() - start, backend);
    }
    t.warming = 1;
    unsigned first = 0;
    for (int s = ST_TEXT; s <= ST_UNET; s++)
        if (r->st[s].wanted && !r->st[s].skipped[0] && warm[s] < o->warmup) first |= 1u << s;
    if (first) {
        if (generate(ctx, o, &t, first, &err)) goto failed;
        for (int s = ST_TEXT; s <= ST_UNET; s++) warm[s] += (first >> s) & 1;
        update_rates(r, &t);
    }
    decide(o, r, ST_VAE, o->repeat + o->warmup, time_left, now() - start, backend);
    unsigned timed = 0;
    for (int s = 0; s < ST_TAESD; s++)
        if (r->st[s].wanted && !r->st[s].skipped[0]) timed |= 1u << s;
    /* the remaining warm-ups: the VAE's first, then whatever --warmup asks */
    for (int k = 0; k < o->warmup; k++) {
        unsigned mask = 0;
        for (int s = 0; s < ST_TAESD; s++)
            if (((timed >> s) & 1) && warm[s] <= k) mask |= 1u << s;
        if (!mask) continue;
        if (generate(ctx, o, &t, mask, &err)) goto failed;
        for (int s = 0; s < ST_TAESD; s++) warm[s] += (mask >> s) & 1;
    }
    t.warming = 0;
    for (int rep = 0; rep < o->repeat && timed; rep++)
        if (generate(ctx, o, &t, timed, &err)) goto failed;
    update_rates(r, &t);
    if (r->st[ST_TAESD].wanted && time_taesd(o, &lp, &ctx, &t, time_left, start, backend, &err)) goto failed;
    r->peak_rss = rss_overall(&t.rss);
    r->rss_per_stage = t.rss.resettable;
    onestep_free(ctx);
    return;
failed:
    r->status = 2;
    snprintf(r->msg, sizeof r->msg, "%s", err.msg);
    r->peak_rss = rss_overall(&t.rss);
    onestep_free(ctx); /* NULL when time_taesd's load failed */
}

/* Run run_one in a child process; the result comes back through a pipe. */
static void run_child(const struct opts *o, const char *model, const char *path, const double gflop[NSTAGES],
                      const char *backend, const double hint[NSTAGES], double time_left, struct run_result *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->backend, sizeof r->backend, "%s", backend);
    int fd[2];
    if (pipe(fd) != 0) {
        r->status = 2;
        snprintf(r->msg, sizeof r->msg, "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        r->status = 2;
        snprintf(r->msg, sizeof r->msg, "fork: %s", strerror(errno));
        close(fd[0]);
        close(fd[1]);
        return;
    }
    if (pid == 0) {
        close(fd[0]);
        struct run_result *mine = calloc(1, sizeof *mine);
        if (!mine) _exit(3);
        run_one(o, model, path, gflop, backend, hint, time_left, mine);
        const char *p = (const char *)mine;
        size_t left = sizeof *mine;
        while (left > 0) {
            ssize_t w = write(fd[1], p, left);
            if (w <= 0) _exit(3);
            p += w;
            left -= (size_t)w;
        }
        fflush(NULL);
        _exit(0);
    }
    close(fd[1]);
    char *p = (char *)r;
    size_t got = 0;
    while (got < sizeof *r) {
        ssize_t n = read(fd[0], p + got, sizeof *r - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof *r) {
        memset(r, 0, sizeof *r);
        snprintf(r->backend, sizeof r->backend, "%s", backend);
        r->status = 2;
        if (WIFSIGNALED(status))
            snprintf(r->msg, sizeof r->msg, "the run died of signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            snprintf(r->msg, sizeof r->msg, "the run exited with status %d before reporting", WEXITSTATUS(status));
    }
}

/* ---------------------------------------------------------------- report */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double stage_min(const struct stage_result *s)
{
    double m = s->n ? s->secs[0] : 0;
    for (int i = 1; i < s->n; i++)
        if (s->secs[i] < m) m = s->secs[i];
    return m;
}

static double stage_median(const struct stage_result *s)
{
    if (!s->n) return 0;
    double v[MAX_SAMPLES];
    memcpy(v, s->secs, (size_t)s->n * sizeof *v);
    qsort(v, (size_t)s->n, sizeof *v, cmp_double);
    return s->n % 2 ? v[s->n / 2] : 0.5 * (v[s->n / 2 - 1] + v[s->n / 2]);
}

struct cpu {
    char model[128];
    long cores;
    char flags[1024]; /* the SIMD-relevant ones, space separated */
    char os[200];
    double memory;    /* bytes of RAM */
};

/* Model name and the flags that matter for our kernels, from /proc/cpuinfo
 * (x86 "flags", arm64 "Features"); empty where it does not exist. */
static void cpu_info(struct cpu *c)
{
    memset(c, 0, sizeof *c);
    c->cores = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    c->memory = pages > 0 && psize > 0 ? (double)pages * (double)psize : 0;
    struct utsname u;
    if (uname(&u) == 0) snprintf(c->os, sizeof c->os, "%s %s %s", u.sysname, u.release, u.machine);
    static const char *const relevant[] = {"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                                           "avx512dq", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_tile",
                                           "amx_bf16", "asimd", "fphp", "asimdhp", "asimddp", "bf16", "i8mm", "sve",
                                           "sve2", NULL};
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[8192];
    int have_flags = 0;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        v[strcspn(v, "\n")] = 0;
        if (!c->model[0] && (!strncmp(line, "model name", 10) || !strncmp(line, "Model", 5) ||
                             !strncmp(line, "CPU part", 8)))
            snprintf(c->model, sizeof c->model, "%s", v);
        if (!have_flags && (!strncmp(line, "flags", 5) || !strncmp(line, "Features", 8))) {
            have_flags = 1;
            for (const char *const *r = relevant; *r; r++) {
                size_t n = strlen(*r);
                for (const char *p = v; (p = strstr(p, *r)) != NULL; p += n) {
                    if ((p == v || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) {
                        size_t used = strlen(c->flags);
                        snprintf(c->flags + used, sizeof c->flags - used, "%s%s", used ? " " : "", *r);
                        break;
                    }
                }
            }
        }
    }
    fclose(f);
}

static int model_w = 12; /* the model column's width: the longest label */

/* TAESD decode time / VAE decode time (minimums, both measured in this
 * run), or 0. */
static double taesd_ratio(const struct run_result *r)
{
    const struct stage_result *v = &r->st[ST_VAE], *t = &r->st[ST_TAESD];
    double vm = stage_min(v);
    return v->n && t->n && vm > 0 ? stage_min(t) / vm : 0;
}

static void print_rows(const char *model, const struct run_result *r, const struct opts *o)
{
    if (r->status == 1) {
        printf("%-*s %-8s not available: %s\n", model_w, model, r->backend, r->msg);
        return;
    }
    if (r->status == 2) printf("%-*s %-8s FAILED: %s\n", model_w, model, r->backend, r->msg);
    for (int s = 0; s < NSTAGES; s++) {
        const struct stage_result *st = &r->st[s];
        if (!st->wanted) continue;
        char name[16];
        snprintf(name, sizeof name, "%s", s == ST_UNET ? "unet/step" : stage_names[s]);
        if (st->n) {
            double mn = stage_min(st), md = stage_median(st);
            char rss[32] = "-";
            if (st->peak_rss > 0) snprintf(rss, sizeof rss, "%.2f GiB", st->peak_rss / 1073741824.0);
            printf("%-*s %-8s %7d  %-9s %9.3f %10.3f %10.3f %9.2f %10s %3d\n", model_w, model, r->backend, r->threads, name,
                   st->gflop, mn, md, mn > 0 ? st->gflop / mn : 0.0, rss, st->n);
        } else if (st->skipped[0]) {
            printf("%-*s %-8s %7d  %-9s %9.3f   skipped: %s\n", model_w, model, r->backend, r->threads, name, st->gflop,
                   st->skipped);
        }
    }
    if (r->total.n) {
        const struct stage_result *st = &r->total;
        double g = r->st[ST_TEXT].gflop + o->steps * r->st[ST_UNET].gflop + r->st[ST_VAE].gflop, mn = stage_min(st);
        printf("%-*s %-8s %7d  %-9s %9.3f %10.3f %10.3f %9.2f %10s %3d\n", model_w, model, r->backend, r->threads,
               "total", g, mn, stage_median(st), mn > 0 ? g / mn : 0.0, "-", st->n);
    }
    double ratio = taesd_ratio(r);
    if (ratio > 0 && o->model_dir) /* the target is about the full-size models */
        printf("%-*s %-8s taesd/vae = %.3f (min times, this run)\n", model_w, model, r->backend, ratio);
    else if (ratio > 0)
        printf("%-*s %-8s taesd/vae = %.3f (min times, this run; issue 8 target <= %.2f: %s)\n", model_w, model,
               r->backend, ratio, TAESD_TARGET, ratio <= TAESD_TARGET ? "met" : "MISSED");
    if (r->status == 0) {
        int all = 1; /* the plain pipeline's stages: the peak RSS target is about them */
        for (int s = 0; s < ST_TAESD; s++) all &= r->st[s].n > 0;
        char note[160] = "";
        for (size_t k = 0; k < sizeof rss_targets / sizeof rss_targets[0]; k++) {
            if (strcmp(rss_targets[k].model, model) || !all || o->size != 512 || o->steps != 1) continue;
            snprintf(note, sizeof note, "; issue 5 target <= %.1f GB: %s", rss_targets[k].bytes / 1e9,
                     r->peak_rss <= rss_targets[k].bytes ? "met" : "MISSED");
        }
        printf("%-*s %-8s peak RSS %.2f GB (%.0f MiB) over %s; load %.2f s%s\n", model_w, model, r->backend, r->peak_rss / 1e9,
               r->peak_rss / 1048576.0, all ? "all stages" : "the stages run", r->load_seconds, note);
    }
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* The reference's seconds for a stage: measured (its min) or estimated. */
static double ref_seconds(const struct run_result *ref, int s, int *estimated)
{
    *estimated = 0;
    if (!ref || ref->status != 0) return 0;
    if (ref->st[s].n) return stage_min(&ref->st[s]);
    double rate = expected_rate(ref->rates, s);
    if (rate > 0) {
        *estimated = 1;
        return ref->st[s].gflop / rate;
    }
    return 0;
}

static int write_json(const char *path, const struct opts *o, const struct cpu *cpu, const char *const *labels,
                      const char *const *paths, struct run_result (*res)[MAX_BACKENDS], int nb)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\n  \"onestep_version\": \"%s\",\n  \"cpu\": {\"model\": ", ONESTEP_VERSION);
    json_string(f, cpu->model);
    fprintf(f, ", \"cores\": %ld, \"memory_bytes\": %.0f, \"os\": ", cpu->cores, cpu->memory);
    json_string(f, cpu->os);
    fprintf(f, ", \"compiler\": ");
    json_string(f, COMPILER);
    fprintf(f, ", \"flags\": [");
    char flags[sizeof cpu->flags];
    snprintf(flags, sizeof flags, "%s", cpu->flags);
    int first = 1;
    for (char *tok = strtok(flags, " "); tok; tok = strtok(NULL, " ")) {
        fprintf(f, "%s", first ? "" : ", ");
        json_string(f, tok);
        first = 0;
    }
    fprintf(f, "]},\n  \"settings\": {\"size\": %d, \"steps\": %d, \"repeat\": %d, \"warmup\": %d, \"seed\": %d, "
               "\"prompt\": \"%s\", \"synthetic_layout\": \"%s\", \"synthetic_dtype\": \"f16\", \"budget_seconds\": %g, "
               "\"time_limit_seconds\": %g, \"gflops_from\": \"seconds_min\"},\n  \"runs\": [",
            o->size, o->steps, o->repeat, o->warmup, SEED, PROMPT, o->model_dir ? "-" : o->layout, o->budget,
            o->time_limit);
    int firstrun = 1;
    for (int m = 0; m < o->nmodels; m++) {
        for (int b = 0; b < nb; b++) {
            const struct run_result *r = &res[m][b];
            fprintf(f, "%s\n    {\"model\": ", firstrun ? "" : ",");
            firstrun = 0;
            json_string(f, labels[m]);
            fprintf(f, ", \"path\": ");
            json_string(f, paths[m]);
            fprintf(f, ", \"backend\": ");
            json_string(f, r->backend);
            fprintf(f, ", \"status\": \"%s\"", r->status == 0 ? "ok" : r->status == 1 ? "unavailable" : "failed");
            if (r->msg[0]) {
                fprintf(f, ", \"message\": ");
                json_string(f, r->msg);
            }
            if (r->status == 1) {
                fprintf(f, "}");
                continue;
            }
            fprintf(f, ", \"threads\": %d, \"load_seconds\": %.4f, \"peak_rss_bytes\": %lld", r->threads,
                    r->load_seconds, r->peak_rss);
            if (r->taesd_load_seconds > 0) fprintf(f, ", \"taesd_load_seconds\": %.4f", r->taesd_load_seconds);
            if (o->taesd && r->st[ST_TAESD].wanted) {
                fprintf(f, ", \"taesd\": ");
                json_string(f, o->taesd);
            }
            double ratio = taesd_ratio(r);
            if (ratio > 0)
                fprintf(f, ", \"taesd_vae_ratio\": %.6g, \"taesd_vae_target\": %.2f", ratio, TAESD_TARGET);
            fprintf(f, ",\n     \"stages\": {");
            int firststage = 1;
            for (int s = 0; s < NSTAGES; s++) {
                const struct stage_result *st = &r->st[s];
                if (!st->wanted) continue;
                fprintf(f, "%s\n       \"%s\": {\"gflop\": %.9g", firststage ? "" : ",", stage_names[s], st->gflop);
                firststage = 0;
                if (s == ST_UNET) fprintf(f, ", \"per\": \"step\"");
                if (st->n) {
                    double mn = stage_min(st);
                    fprintf(f, ", \"seconds_min\": %.9g, \"seconds_median\": %.9g, \"gflops\": %.9g, \"runs\": %d",
                            mn, stage_median(st), mn > 0 ? st->gflop / mn : 0.0, st->n);
                    fprintf(f, ", \"seconds\": [");
                    for (int i = 0; i < st->n; i++) fprintf(f, "%s%.9g", i ? ", " : "", st->secs[i]);
                    fprintf(f, "]");
                    if (st->peak_rss > 0)
                        fprintf(f, ", \"peak_rss_bytes\": %lld, \"peak_rss_is\": \"%s\"", st->peak_rss,
                                r->rss_per_stage ? "stage" : "so far");
                }
                if (st->est_seconds > 0)
                    fprintf(f, ", \"estimated_seconds\": %.3f, \"estimated_at_gflops\": %.4f", st->est_seconds,
                            st->est_rate);
                if (st->skipped[0]) {
                    fprintf(f, ", \"skipped\": ");
                    json_string(f, st->skipped);
                }
                fprintf(f, "}");
            }
            if (r->total.n) {
                const struct stage_result *st = &r->total;
                double g = r->st[ST_TEXT].gflop + o->steps * r->st[ST_UNET].gflop + r->st[ST_VAE].gflop;
                double mn = stage_min(st);
                fprintf(f, ",\n       \"total\": {\"gflop\": %.9g, \"seconds_min\": %.9g, \"seconds_median\": %.9g, "
                           "\"gflops\": %.9g, \"runs\": %d}",
                        g, mn, stage_median(st), mn > 0 ? g / mn : 0.0, st->n);
            }
            fprintf(f, "}}");
        }
    }
    fprintf(f, "\n  ],\n  \"speedups_vs_ref\": [");
    first = 1;
    for (int m = 0; m < o->nmodels; m++) {
        const struct run_result *ref = NULL;
        for (int b = 0; b < nb; b++)
            if (!strcmp(res[m][b].backend, "ref")) ref = &res[m][b];
        for (int b = 0; b < nb; b++) {
            const struct run_result *r = &res[m][b];
            if (r == ref || r->status != 0) continue;
            for (int s = 0; s < NSTAGES; s++) {
                int est;
                double rs = ref_seconds(ref, s, &est), mine = stage_min(&r->st[s]);
                if (!(rs > 0 && r->st[s].n && mine > 0)) continue;
                fprintf(f, "%s\n    {\"model\": ", first ? "" : ",");
                first = 0;
                json_string(f, labels[m]);
                fprintf(f, ", \"backend\": ");
                json_string(f, r->backend);
                fprintf(f, ", \"stage\": \"%s\", \"speedup\": %.3f, \"ref_estimated\": %s}", stage_names[s], rs / mine,
                        est ? "true" : "false");
            }
        }
    }
    fprintf(f, "\n  ]\n}\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* The last component of a path ("a/b/sd-turbo-tiny/" -> "sd-turbo-tiny"). */
static void label_of(const char *path, char *out, size_t len)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    snprintf(out, len, "%.*s", (int)(n - b), path + b);
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    const double t_start = now();

    struct cpu cpu;
    cpu_info(&cpu);
    static char paths[MAX_MODELS][4096], label_buf[MAX_MODELS][256], taesd_path[4096];
    double gflop[MAX_MODELS][NSTAGES];
    const char *labels[MAX_MODELS], *pathp[MAX_MODELS];
    if (!o.want[ST_TAESD]) {
        o.taesd = NULL;
    } else if (!o.taesd) {
        if (synthetic_taesd(&o, taesd_path, sizeof taesd_path)) return 1;
        o.taesd = taesd_path;
    }
    for (int m = 0; m < o.nmodels; m++) {
        if (o.model_dir) {
            snprintf(paths[m], sizeof paths[m], "%s", o.model_dir);
            label_of(o.model_dir, label_buf[m], sizeof label_buf[m]);
            labels[m] = label_buf[m];
        } else {
            if (synthetic_model(&o, o.models[m], paths[m], sizeof paths[m])) return 1;
            labels[m] = o.models[m];
        }
        pathp[m] = paths[m];
        if (stage_gflop(paths[m], o.size, o.taesd, gflop[m])) return 1;
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);

    printf("onestep bench %s: %dx%d, %d step%s, seed %d, %d warm-up + %d timed run%s (min and median)\n",
           ONESTEP_VERSION, o.size, o.size, o.steps, o.steps == 1 ? "" : "s", SEED, o.warmup, o.repeat,
           o.repeat == 1 ? "" : "s");
    printf("CPU: %s, %ld cores, %.1f GiB; %s; %s; flags: %s\n", cpu.model[0] ? cpu.model : "unknown", cpu.cores,
           cpu.memory / 1073741824.0, cpu.os, COMPILER, cpu.flags[0] ? cpu.flags : "-");
    for (int m = 0; m < o.nmodels; m++)
        if ((int)strlen(labels[m]) > model_w) model_w = (int)strlen(labels[m]);
    printf("%-*s %-8s %7s  %-9s %9s %10s %10s %9s %10s %3s\n", model_w, "model", "backend", "threads", "stage", "GFLOP",
           "min s", "median s", "GFLOP/s", "peak RSS", "n");
    fflush(stdout);

    static struct run_result res[MAX_MODELS][MAX_BACKENDS];
    static double rates[MAX_BACKENDS][NSTAGES];
    int unavailable[MAX_BACKENDS] = {0};
    for (int m = 0; m < o.nmodels; m++) {
        for (int b = 0; b < o.nbackends; b++) {
            struct run_result *r = &res[m][b];
            if (unavailable[b]) {
                *r = res[m - 1][b];
                continue;
            }
            double left = o.time_limit - (now() - t_start);
            run_child(&o, labels[m], paths[m], gflop[m], o.backends[b], rates[b], left > 0 ? left : 0, r);
            if (r->status == 1) unavailable[b] = 1;
            for (int s = 0; s < NSTAGES; s++)
                if (r->rates[s] > rates[b][s]) rates[b][s] = r->rates[s];
            print_rows(labels[m], r, &o);
            fflush(stdout);
        }
    }

    /* speed-ups over the reference, measured in this run */
    int header = 0;
    for (int m = 0; m < o.nmodels; m++) {
        const struct run_result *ref = NULL;
        for (int b = 0; b < o.nbackends; b++)
            if (!strcmp(res[m][b].backend, "ref")) ref = &res[m][b];
        for (int b = 0; b < o.nbackends; b++) {
            const struct run_result *r = &res[m][b];
            if (r == ref || r->status != 0) continue;
            for (int s = 0; s < NSTAGES; s++) {
                int est;
                double rs = ref_seconds(ref, s, &est), mine = stage_min(&r->st[s]);
                if (!(rs > 0 && r->st[s].n && mine > 0)) continue;
                if (!header)
                    printf("speed-up over ref (min times, this run; ~ = the ref time is an estimate, from its GFLOP/s "
                           "on a stage it ran):\n");
                header = 1;
                printf("  %-*s %-8s %-9s %s%.1fx\n", model_w, labels[m], r->backend, stage_names[s], est ? "~" : "",
                       rs / mine);
            }
        }
    }
    if (!header) printf("speed-up over ref: no other backend ran in this build\n");
    int failed = 0;
    for (int m = 0; m < o.nmodels; m++)
        for (int b = 0; b < o.nbackends; b++) failed |= res[m][b].status == 2;
    if (o.json) {
        if (write_json(o.json, &o, &cpu, labels, pathp, res, o.nbackends)) {
            fprintf(stderr, "bench: cannot write %s: %s\n", o.json, strerror(errno));
            return 1;
        }
        printf("results: %s\n", o.json);
    }
    printf("bench took %.0f s\n", now() - t_start);
    return failed ? 1 : 0;
}
