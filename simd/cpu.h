/* cpu.h — what this CPU can do (CPUID + XGETBV on x86, HWCAP on arm64).
 *
 * The SIMD tables are chosen from this at start-up; a feature counts only
 * when the OS also saves its registers (XCR0), as a hypervisor may hide
 * AVX-512 state even when CPUID reports the instructions. */
#ifndef ONESTEP_SIMD_CPU_H
#define ONESTEP_SIMD_CPU_H

#include <stddef.h>

struct cpu_features {
    int ncpu;                   /* online processors */
    int fma, f16c, avx2;        /* x86 */
    int avx512f, avx512bw, avx512vl, avx512dq, avx512bf16;
    int neon, fp16;             /* arm64: Advanced SIMD; half-precision arithmetic (conversion is base) */
    char brand[64];
};

/* Detected once, then cached (thread-safe). */
void cpu_detect(struct cpu_features *f);

/* "avx2 fma f16c avx512f ..." into buf; returns buf. */
const char *cpu_features_str(const struct cpu_features *f, char *buf, size_t len);

/* The instruction-set levels this build and CPU can run, best first. */
int cpu_has_avx512(const struct cpu_features *f); /* F + BW + VL + DQ (+ F16C) */
int cpu_has_avx2(const struct cpu_features *f);   /* AVX2 + FMA + F16C */
int cpu_has_neon(const struct cpu_features *f);

#endif
