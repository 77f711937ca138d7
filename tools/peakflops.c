/* peakflops — this CPU's fp32 fused multiply-add peak, 1 .. N threads.
 *
 *   ./peakflops [-t N] [-s SECONDS]
 *
 * For each vector instruction set the CPU runs, independent FMA chains on
 * every thread (simd/peak.c). This is the ceiling the kernel benchmark
 * (kbench) and `make bench` compare against: "x% of peak" in their tables
 * means of this measurement, not of a datasheet. Two numbers: by the wall
 * clock, and by CPU time (what the threads do while they run: the same on
 * an idle machine, the hardware's peak on a busy one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../simd/cpu.h"
#include "../simd/simd.h"

int main(int argc, char **argv)
{
    int threads = 0;
    double seconds = 1.0;
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
    if (threads <= 0) threads = f.ncpu;
    char feat[256];
    printf("cpu: %s, %d online processors\nfeatures: %s\n", f.brand, f.ncpu, cpu_features_str(&f, feat, sizeof feat));
    static const char *isas[] = {"avx512", "avx2", "neon"};
    int any = 0;
    for (int k = 0; k < 3; k++) {
        for (int t = 1;; t = t * 2 < threads ? t * 2 : threads) {
            double g = simd_peak_gflops(isas[k], t, seconds, 0);
            if (g < 0) break;
            any = 1;
            double gc = simd_peak_gflops(isas[k], t, seconds, 1);
            printf("fp32 FMA peak %-6s %2d thread%s %8.1f GFLOP/s wall clock, %8.1f by CPU time\n", isas[k], t,
                   t > 1 ? "s:" : ": ", g, gc);
            if (t == threads) break;
        }
    }
    if (!any) printf("no SIMD instruction set of this build runs here\n");
    return any ? 0 : 1;
}
