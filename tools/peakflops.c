/* peakflops — this CPU's fp32 fused multiply-add peak, 1 and N threads.
 *
 *   ./peakflops [-t N] [-s SECONDS]
 *
 * Each thread runs a loop of independent FMA chains (24 accumulators, more
 * than latency x ports on any current core, so the FMA units never wait) on
 * the widest vectors the CPU has (AVX-512, AVX2+FMA, NEON), and we count
 * 2 flops per lane per FMA. The number is the ceiling the kernel benchmark
 * (kbench) and `make bench` compare against: "x% of peak" in their tables
 * means of this measurement, not of a datasheet. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../simd/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
    X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)

__attribute__((target("avx512f"))) static float fma_loop_avx512(long iters)
{
    __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
#define DECL(i) __m512 c##i = _mm512_set1_ps((float)(i));
#define STEP(i) c##i = _mm512_fmadd_ps(c##i, m, a);
#define SUM(i) s = _mm512_add_ps(s, c##i);
    CHAINS(DECL)
    for (long it = 0; it < iters; it++) {
        CHAINS(STEP)
    }
    __m512 s = _mm512_setzero_ps();
    CHAINS(SUM)
    return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long iters)
{
    __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
#define DECL(i) __m256 c##i = _mm256_set1_ps((float)(i));
#define STEP(i) c##i = _mm256_fmadd_ps(c##i, m, a);
#define SUM(i) s = _mm256_add_ps(s, c##i);
    CHAINS(DECL)
    for (long it = 0; it < iters; it++) {
        CHAINS(STEP)
    }
    __m256 s = _mm256_setzero_ps();
    CHAINS(SUM)
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
#undef DECL
#undef STEP
#undef SUM
}
#elif defined(__aarch64__)
#include <arm_neon.h>
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
    X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
static float fma_loop_neon(long iters)
{
    float32x4_t m = vdupq_n_f32(0.999999f), a = vdupq_n_f32(1e-7f);
#define DECL(i) float32x4_t c##i = vdupq_n_f32((float)(i));
#define STEP(i) c##i = vfmaq_f32(a, c##i, m);
#define SUM(i) s = vaddq_f32(s, c##i);
    CHAINS(DECL)
    for (long it = 0; it < iters; it++) {
        CHAINS(STEP)
    }
    float32x4_t s = vdupq_n_f32(0);
    CHAINS(SUM)
    return vaddvq_f32(s);
}
#endif

struct isa {
    const char *name;
    int lanes;
    float (*loop)(long);
};

struct job {
    const struct isa *isa;
    long iters;
    float sink;
};

static void *run_job(void *p)
{
    struct job *j = p;
    j->sink = j->isa->loop(j->iters);
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* GFLOP/s with `threads` threads each running `iters` iterations. */
static double measure(const struct isa *isa, int threads, long iters)
{
    pthread_t tid[64];
    struct job jobs[64];
    double t0 = now();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){isa, iters, 0};
        if (t > 0) pthread_create(&tid[t], NULL, run_job, &jobs[t]);
    }
    run_job(&jobs[0]);
    for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
    double dt = now() - t0;
    return 2.0 * 24 * isa->lanes * (double)iters * threads / dt * 1e-9;
}

int main(int argc, char **argv)
{
    int threads = 0;
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: peakflops [-t THREADS] [-s SECONDS]\n");
            return 2;
        }
    }
    struct cpu_features f;
    cpu_detect(&f);
    if (threads <= 0) threads = f.ncpu > 0 ? f.ncpu : 1;
    if (threads > 64) threads = 64;

    struct isa isas[3];
    int n = 0;
#if defined(__x86_64__) || defined(__i386__)
    if (f.avx512f) isas[n++] = (struct isa){"avx512", 16, fma_loop_avx512};
    if (f.avx2 && f.fma) isas[n++] = (struct isa){"avx2", 8, fma_loop_avx2};
#elif defined(__aarch64__)
    isas[n++] = (struct isa){"neon", 4, fma_loop_neon};
#endif
    char feat[256];
    printf("cpu: %s\nfeatures: %s\n", f.brand, cpu_features_str(&f, feat, sizeof feat));
    if (n == 0) {
        printf("no FMA vector unit found\n");
        return 1;
    }
    for (int k = 0; k < n; k++) {
        /* calibrate to ~seconds on one thread, then best of 3 */
        long iters = 1 << 16;
        while (1) {
            double t0 = now();
            measure(&isas[k], 1, iters);
            if (now() - t0 > seconds / 4 || iters > (1L << 40)) break;
            iters *= 2;
        }
        for (int t = 1;; t = t * 2 < threads ? t * 2 : threads) {
            double best = 0;
            for (int r = 0; r < 3; r++) {
                double g = measure(&isas[k], t, iters);
                if (g > best) best = g;
            }
            printf("fp32 FMA peak %-7s %2d thread%s: %8.1f GFLOP/s\n", isas[k].name, t, t > 1 ? "s" : " ", best);
            if (t == threads) break;
        }
    }
    return 0;
}
