/* simd.h — what the SIMD backend offers beyond the ops table (ref/ops.h). */
#ifndef ONESTEP_SIMD_SIMD_H
#define ONESTEP_SIMD_SIMD_H

/* Measured fp32 FMA peak of an ISA ("avx512", "avx2", "neon") with
 * `threads` threads, best of 3 runs of about `seconds` / 4 each; -1 if the
 * ISA is not built or not runnable here. by_cpu_time: from the process's
 * CPU time instead of the wall clock, i.e. what the threads achieve while
 * they run (the hardware's peak even on a machine busy with other work). */
double simd_peak_gflops(const char *isa, int threads, double seconds, int by_cpu_time);

#endif
