/* kbench — kernel benchmark on the real SD-Turbo / SDXL-Turbo shapes at
 * 512x512 (latent 64x64), for tuning the SIMD backend.
 *
 *   ./kbench [--backend avx512|avx2|neon] [-t THREADS] [-r REPEATS] [--only gemm,conv,attn,norm]
 *            [--no-blas] [--blas-core NAME|env] [--no-peak] [--cpu-time]
 *
 * --cpu-time (with -t 1): time by the process's CPU time rather than the
 * wall clock, and the peak likewise: on a machine busy with other work this
 * estimates the idle-machine numbers (cache sharing still costs something).
 *
 * Per case: the kernel's time (min and median of REPEATS), GFLOP/s, the
 * fraction of the measured fp32 FMA peak (simd/peak.c, same thread count),
 * and OpenBLAS sgemm doing the same product (loaded at run time with
 * OPENBLAS_CORETYPE handled, see simd/blas.h: kbench sets it to the best
 * core for this CPU, SkylakeX with AVX-512, even over a value inherited from
 * the environment, unless told --blas-core env) with its speed ratio. Weights
 * are f16 as in the released checkpoints; OpenBLAS gets them pre-converted
 * to f32 (not timed), convolutions as im2col (timed) + sgemm, attention as
 * Q K^T, softmax, P V per head with the full score matrix.
 * FLOPs count 2 per multiply-add of the direct algorithm (Winograd's 3x3
 * convolutions do fewer multiplications, so they can exceed "100% of peak":
 * that is the point). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../ref/common.h"
#include "../ref/ops.h"
#include "../simd/blas.h"
#include "../simd/cpu.h"
#include "../simd/simd.h"

static int use_cpu_time; /* --cpu-time */

static double now(void)
{
    struct timespec ts;
    clock_gettime(use_cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *fbuf(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0) {
        fprintf(stderr, "kbench: out of memory\n");
        exit(1);
    }
    float *f = p;
    uint64_t s = n * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        f[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
    }
    return f;
}

/* an f16 weight tensor (and its f32 twin for OpenBLAS) */
struct weight {
    struct tensor t;
    uint16_t *h;
    float *f;
};

static void weight_make(struct weight *w, size_t n, int ndim, const int64_t *shape, float scale)
{
    w->f = fbuf(n);
    w->h = malloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        w->h[i] = f32_to_f16(w->f[i] * scale);
        w->f[i] = f16_to_f32(w->h[i]);
    }
    memset(&w->t, 0, sizeof w->t);
    w->t.dtype = DT_F16;
    w->t.ndim = ndim;
    for (int i = 0; i < ndim; i++) w->t.shape[i] = shape[i];
    w->t.data = w->h;
}

static void weight_free(struct weight *w)
{
    free(w->h);
    free(w->f);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct timing {
    double min, med;
};

#define MAXREP 32
#define TIME(res, reps, stmt)                                     \
    do {                                                          \
        double t_[MAXREP];                                        \
        stmt; /* warm-up: page faults, scratch growth, caches */  \
        for (int r_ = 0; r_ < (reps); r_++) {                     \
            double t0_ = now();                                   \
            stmt;                                                 \
            t_[r_] = now() - t0_;                                 \
        }                                                         \
        qsort(t_, (size_t)(reps), sizeof(double), cmp_d);         \
        (res).min = t_[0];                                        \
        (res).med = t_[(reps) / 2];                               \
    } while (0)

static const struct ops *O;
static const struct blas_lib *B;
static double peak;
static int reps = 3;
static int threads;

static int quiet; /* the warm-up prints nothing */

static void row(const char *name, const char *shape, double gflop, struct timing ours, struct timing blas)
{
    if (quiet) return;
    double gs = gflop / ours.min;
    printf("%-22s %-26s %8.2f %9.2f %9.2f %8.1f %6.0f%%", name, shape, gflop, ours.min * 1e3, ours.med * 1e3, gs,
           peak > 0 ? 100 * gs / peak : 0.0);
    if (blas.min > 0) printf(" %9.2f %8.1f %6.2fx\n", blas.min * 1e3, gflop / blas.min, blas.min / ours.min);
    else printf(" %9s %8s %7s\n", "-", "-", "-");
    fflush(stdout);
}

static void header(const char *what)
{
    printf("\n%-22s %-26s %8s %9s %9s %8s %7s %9s %8s %7s\n", what, "shape", "GFLOP", "min ms", "med ms", "GFLOP/s",
           "peak", "BLAS ms", "GFLOP/s", "speedup");
}

/* ---- GEMM: y[M,N] = x[M,K] w[N,K]^T + b ---- */
static double bench_linear(const char *name, int M, int K, int N)
{
    float *x = fbuf((size_t)M * K), *y = fbuf((size_t)M * N);
    int64_t ws[2] = {N, K}, bs[1] = {N};
    struct weight w, b;
    weight_make(&w, (size_t)N * K, 2, ws, 1.0f / sqrtf((float)K));
    weight_make(&b, (size_t)N, 1, bs, 1.0f);
    struct timing t, tb = {0, 0};
    TIME(t, reps, O->linear(O, y, x, &w.t, &b.t, NULL, M, K, N));
    if (B) TIME(tb, reps, B->sgemm(BLAS_ROW_MAJOR, BLAS_NO_TRANS, BLAS_TRANS, M, N, K, 1.0f, x, K, w.f, K, 0.0f, y, N));
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%d", M, K, N);
    double gflop = 2.0 * M * N * K * 1e-9;
    row(name, shape, gflop, t, tb);
    free(x);
    free(y);
    weight_free(&w);
    weight_free(&b);
    return t.min;
}

/* ---- convolution, stride 1, pad K/2 ---- */
static void im2col(float *col, const float *x, int C, int H, int W, int K)
{
    const int p = K / 2;
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                float *d = col + ((size_t)(c * K + ky) * K + kx) * H * W;
                for (int oy = 0; oy < H; oy++) {
                    int iy = oy + ky - p;
                    for (int ox = 0; ox < W; ox++) {
                        int ix = ox + kx - p;
                        d[(size_t)oy * W + ox] =
                            iy >= 0 && iy < H && ix >= 0 && ix < W ? x[((size_t)c * H + iy) * W + ix] : 0.0f;
                    }
                }
            }
}

static double bench_conv(const char *name, int C, int OC, int H, int W, int K, int count)
{
    struct conv2d_shape s = {C, H, W, OC, K, K, 1, K / 2, K / 2, K / 2, K / 2};
    float *x = fbuf((size_t)C * H * W), *y = fbuf((size_t)OC * H * W);
    int64_t ws[4] = {OC, C, K, K}, bs[1] = {OC};
    struct weight w, b;
    weight_make(&w, (size_t)OC * C * K * K, 4, ws, 1.0f / sqrtf((float)C * K * K));
    weight_make(&b, (size_t)OC, 1, bs, 1.0f);
    struct timing t, tb = {0, 0};
    TIME(t, reps, O->conv2d(O, y, x, &w.t, &b.t, NULL, &s));
    if (B) {
        float *col = K == 1 ? NULL : fbuf((size_t)C * K * K * H * W);
        const int KK = C * K * K, HW = H * W;
        TIME(tb, reps, {
            if (col) im2col(col, x, C, H, W, K);
            B->sgemm(BLAS_ROW_MAJOR, BLAS_NO_TRANS, BLAS_NO_TRANS, OC, HW, KK, 1.0f, w.f, KK, col ? col : x, HW, 0.0f,
                     y, HW);
        });
        free(col);
    }
    char shape[64];
    snprintf(shape, sizeof shape, "%d->%d %dx%d k%d%s", C, OC, H, W, K, count > 1 ? "" : "");
    if (count > 1) snprintf(shape + strlen(shape), sizeof shape - strlen(shape), " (x%d)", count);
    double gflop = 2.0 * OC * C * K * K * (double)H * W * 1e-9;
    row(name, shape, gflop, t, tb);
    free(x);
    free(y);
    weight_free(&w);
    weight_free(&b);
    return t.min * count;
}

/* ---- attention ---- */
static void blas_attention(float *out, const float *q, const float *k, const float *v, float *S,
                           const struct attn_shape *s)
{
    for (int h = 0; h < s->heads; h++) {
        const int off = h * s->head_dim;
        B->sgemm(BLAS_ROW_MAJOR, BLAS_NO_TRANS, BLAS_TRANS, s->nq, s->nk, s->head_dim, s->scale, q + off, s->ldq,
                 k + off, s->ldk, 0.0f, S, s->nk);
        for (int i = 0; i < s->nq; i++) {
            float *r = S + (size_t)i * s->nk, mx = -INFINITY, sum = 0;
            for (int j = 0; j < s->nk; j++) mx = r[j] > mx ? r[j] : mx;
            for (int j = 0; j < s->nk; j++) {
                r[j] = expf(r[j] - mx);
                sum += r[j];
            }
            for (int j = 0; j < s->nk; j++) r[j] /= sum;
        }
        B->sgemm(BLAS_ROW_MAJOR, BLAS_NO_TRANS, BLAS_NO_TRANS, s->nq, s->head_dim, s->nk, 1.0f, S, s->nk, v + off,
                 s->ldv, 0.0f, out + off, s->ldo);
    }
}

static double bench_attention(const char *name, int nq, int nk, int heads, int d, int causal)
{
    const int width = heads * d;
    struct attn_shape s = {nq, nk, heads, d, width, width, width, width, causal, 1.0f / sqrtf((float)d)};
    float *q = fbuf((size_t)nq * width), *k = fbuf((size_t)nk * width), *v = fbuf((size_t)nk * width),
          *o = fbuf((size_t)nq * width);
    struct timing t, tb = {0, 0};
    TIME(t, reps, O->attention(O, o, q, k, v, &s));
    if (B && !causal) {
        float *S = fbuf((size_t)nq * nk);
        TIME(tb, reps, blas_attention(o, q, k, v, S, &s));
        free(S);
    }
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d h%d d%d%s", nq, nk, heads, d, causal ? " causal" : "");
    double gflop = 4.0 * nq * (double)nk * d * heads * 1e-9;
    row(name, shape, gflop, t, tb);
    free(q);
    free(k);
    free(v);
    free(o);
    return t.min;
}

static double bench_group_norm(const char *name, int C, int HW)
{
    float *x = fbuf((size_t)C * HW), *y = fbuf((size_t)C * HW);
    int64_t cs[1] = {C};
    struct weight g, b;
    weight_make(&g, (size_t)C, 1, cs, 1.0f);
    weight_make(&b, (size_t)C, 1, cs, 1.0f);
    struct timing t, tb = {0, 0};
    TIME(t, reps, O->group_norm(O, y, x, &g.t, &b.t, C, HW, 32, 1e-6f, ACT_SILU));
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d +silu", C, HW);
    /* report memory traffic instead of flops: 2 reads + 1 write pass of 4 bytes */
    double gb = 3.0 * 4.0 * C * (double)HW * 1e-9;
    printf("%-22s %-26s %8s %9.2f %9.2f %6.1f GB/s\n", name, shape, "-", t.min * 1e3, t.med * 1e3, gb / t.min);
    (void)tb;
    free(x);
    free(y);
    weight_free(&g);
    weight_free(&b);
    return t.min;
}

static int want(const char *only, const char *what)
{
    return !only || strstr(only, what) != NULL;
}

int main(int argc, char **argv)
{
    const char *backend = "auto", *only = NULL, *blas_core = NULL;
    int use_blas = 1, use_peak = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) backend = argv[++i];
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "--no-blas") == 0) use_blas = 0;
        else if (strcmp(argv[i], "--blas-core") == 0 && i + 1 < argc) blas_core = argv[++i];
        else if (strcmp(argv[i], "--no-peak") == 0) use_peak = 0;
        else if (strcmp(argv[i], "--cpu-time") == 0) use_cpu_time = 1;
        else {
            fprintf(stderr, "usage: kbench [--backend B] [-t THREADS] [-r REPEATS] [--only gemm,conv,attn,norm] "
                            "[--no-blas] [--blas-core NAME|env] [--no-peak] [--cpu-time]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (reps > MAXREP) reps = MAXREP;
    struct cpu_features f;
    cpu_detect(&f);
    if (threads <= 0) threads = f.ncpu;
    struct os_err err = {{0}};
    O = ops_by_name(backend, threads, &err);
    if (!O) {
        fprintf(stderr, "kbench: %s\n", err.msg);
        return 2;
    }
    printf("backend: %s\n", ops_describe(O));
    if (use_peak) {
        peak = simd_peak_gflops(O->name, threads, 1.0, use_cpu_time);
        printf("measured fp32 FMA peak (%s, %d thread%s%s): %.1f GFLOP/s\n", O->name, threads, threads > 1 ? "s" : "",
               use_cpu_time ? ", by CPU time" : "", peak);
    }
    if (use_blas) {
        /* the baseline is OpenBLAS at its best on this CPU, whatever the shell says */
        const char *core = blas_core ? blas_core : cpu_has_avx512(&f) ? "SkylakeX" : cpu_has_avx2(&f) ? "Haswell" : NULL;
        if (core && strcmp(core, "env") != 0) setenv("OPENBLAS_CORETYPE", core, 1);
        B = blas_load(&err);
        if (B) {
            if (B->set_num_threads) B->set_num_threads(threads);
            printf("OpenBLAS: core %s, %s, %d thread%s\n", B->core, B->coretype, threads, threads > 1 ? "s" : "");
        } else {
            printf("OpenBLAS: %s (no baseline)\n", err.msg);
        }
    }
    printf("repeats: %d (+1 warm-up); times in ms%s; speedup = OpenBLAS time / ours\n", reps,
           use_cpu_time ? " of CPU time" : "");

    { /* warm up: thread pools, scratch growth, clocks (the first row would pay for it) */
        int saved = reps;
        reps = 2;
        quiet = 1;
        bench_linear("warm-up", 1024, 320, 1024);
        quiet = 0;
        reps = saved;
    }
    if (want(only, "gemm")) {
        header("GEMM (linear, f16 w)");
        bench_linear("sd unet 64^2 attn proj", 4096, 320, 320);
        bench_linear("sd unet 64^2 geglu in", 4096, 320, 2560);
        bench_linear("sd unet 64^2 ff out", 4096, 1280, 320);
        bench_linear("sd unet 32^2 attn proj", 1024, 640, 640);
        bench_linear("sd unet 32^2 geglu in", 1024, 640, 5120);
        bench_linear("sd unet 16^2 attn proj", 256, 1280, 1280);
        bench_linear("sd unet 16^2 geglu in", 256, 1280, 10240);
        bench_linear("sd unet 8^2 attn proj", 64, 1280, 1280);
        bench_linear("sd unet cross k/v", 77, 1024, 320);
        bench_linear("openclip-h mlp fc1", 77, 1024, 4096);
        bench_linear("openclip-h mlp fc2", 77, 4096, 1024);
        bench_linear("sdxl unet 32^2 proj", 1024, 1280, 1280);
        bench_linear("sdxl unet 32^2 geglu", 1024, 1280, 10240);
        bench_linear("sdxl unet 64^2 proj", 4096, 640, 640);
    }
    if (want(only, "conv")) {
        header("conv (f16 w)");
        bench_conv("sd unet 64^2", 320, 320, 64, 64, 3, 1);
        bench_conv("sd unet 32^2", 640, 640, 32, 32, 3, 1);
        bench_conv("sd unet 16^2", 1280, 1280, 16, 16, 3, 1);
        bench_conv("sd unet 8^2", 1280, 1280, 8, 8, 3, 1);
        bench_conv("sd unet 1x1 32^2", 640, 1280, 32, 32, 1, 1);
        double vae = 0, vae_gflop = 0;
        /* the decoder's 3x3 convolutions at 512x512 output, with their counts */
        static const struct {
            const char *name;
            int C, OC, HW, count;
        } vc[] = {
            {"vae 512@64^2", 512, 512, 64, 10},    {"vae 512@128^2", 512, 512, 128, 7},
            {"vae 512@256^2", 512, 512, 256, 1},   {"vae 512->256@256^2", 512, 256, 256, 1},
            {"vae 256@256^2", 256, 256, 256, 5},   {"vae 256@512^2", 256, 256, 512, 1},
            {"vae 256->128@512^2", 256, 128, 512, 1}, {"vae 128@512^2", 128, 128, 512, 5},
        };
        for (size_t i = 0; i < sizeof vc / sizeof vc[0]; i++) {
            vae += bench_conv(vc[i].name, vc[i].C, vc[i].OC, vc[i].HW, vc[i].HW, 3, vc[i].count);
            vae_gflop += 2.0 * vc[i].C * vc[i].OC * 9.0 * vc[i].HW * vc[i].HW * vc[i].count * 1e-9;
        }
        printf("VAE decoder 3x3 convolutions (counts as listed): %.0f GFLOP in %.2f s = %.0f GFLOP/s "
               "(%.0f%% of peak; naive floor at peak %.2f s)\n",
               vae_gflop, vae, vae_gflop / vae, peak > 0 ? 100 * vae_gflop / vae / peak : 0.0,
               peak > 0 ? vae_gflop / peak : 0.0);
    }
    if (want(only, "attn")) {
        header("attention");
        bench_attention("sd unet 64^2 self", 4096, 4096, 5, 64, 0);
        bench_attention("sd unet 64^2 cross", 4096, 77, 5, 64, 0);
        bench_attention("sd unet 32^2 self", 1024, 1024, 10, 64, 0);
        bench_attention("vae mid self", 4096, 4096, 1, 512, 0);
        bench_attention("openclip-h text", 77, 77, 16, 64, 1);
    }
    if (want(only, "norm")) {
        printf("\n%-22s %-26s %8s %9s %9s %s\n", "group norm", "shape", "", "min ms", "med ms", "bandwidth");
        bench_group_norm("sd unet 64^2", 320, 4096);
        bench_group_norm("vae 512@128^2", 512, 128 * 128);
        bench_group_norm("vae 128@512^2", 128, 512 * 512);
    }
    return 0;
}
