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

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* GFLOP/s of `threads` threads each running `iters` iterations. By wall
 * time; or by the process's CPU time (threads x threads x flops / CPU
 * seconds), which is what the threads would do each on an idle core: the
 * hardware's number even while other programs share the cores. */
static double run(int threads, long iters, int by_cpu)
{
    volatile float sink = 0;
    const double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
#pragma omp parallel num_threads(threads)
    {
        float s = fma_chains(iters);
#pragma omp atomic
        sink += s;
    }
    const double wall = clock_s(CLOCK_MONOTONIC) - w0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    const double flops = 2.0 * CHAINS * VL * (double)iters * threads;
    return by_cpu ? flops * threads / cpu * 1e-9 : flops / wall * 1e-9;
}

double SX(simd_peak_gflops)(int threads, double seconds, int by_cpu)
{
    long iters = 1 << 14;
    for (;;) { /* calibrate one thread to about a quarter of the time */
        double t0 = clock_s(CLOCK_MONOTONIC);
        run(1, iters, 0);
        if (clock_s(CLOCK_MONOTONIC) - t0 > seconds / 4 || iters > (1L << 40)) break;
        iters *= 2;
    }
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double g = run(threads, iters, by_cpu);
        if (g > best) best = g;
    }
    return best;
}
