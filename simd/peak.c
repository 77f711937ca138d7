/* peak.c — the fp32 FMA peak of this ISA: independent FMA chains, more of
 * them than FMA latency x FMA ports on any current core, so the units
 * never wait; 2 flops per lane per FMA. tools/peakflops and tools/kbench
 * report kernel speed as a fraction of this measurement. */
#include <omp.h>
#include <time.h>

#include "kernels.h"

#if VL == 8
#define CHAINS 12 /* 16 ymm registers */
#else
#define CHAINS 24
#endif

static float fma_chains(long iters)
{
    const vf m = vf_set1(0.999999f), a = vf_set1(1e-7f);
    vf c[CHAINS];
#pragma GCC unroll 24
    for (int i = 0; i < CHAINS; i++) c[i] = vf_set1((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < CHAINS; i++) c[i] = vf_fma(c[i], m, a);
    }
    vf s = vf_zero();
    for (int i = 0; i < CHAINS; i++) s = vf_add(s, c[i]);
    return vf_hsum(s);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* GFLOP/s of `threads` threads each running `iters` iterations */
static double run(int threads, long iters)
{
    volatile float sink = 0;
    double t0 = now();
#pragma omp parallel num_threads(threads)
    {
        float s = fma_chains(iters);
#pragma omp atomic
        sink += s;
    }
    double dt = now() - t0;
    int n = threads;
    return 2.0 * CHAINS * VL * (double)iters * n / dt * 1e-9;
}

double SX(simd_peak_gflops)(int threads, double seconds)
{
    long iters = 1 << 14;
    for (;;) { /* calibrate one thread to about a quarter of the time */
        double t0 = now();
        run(1, iters);
        if (now() - t0 > seconds / 4 || iters > (1L << 40)) break;
        iters *= 2;
    }
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double g = run(threads, iters);
        if (g > best) best = g;
    }
    return best;
}
