/* blas.h — OpenBLAS sgemm, loaded at run time (dlopen), for the kernel
 * benchmark's baseline. Nothing links against OpenBLAS.
 *
 * The OPENBLAS_CORETYPE problem: Debian's OpenBLAS 0.3.21 picks its kernels
 * from a CPUID table that does not know recent AMD cores, and silently
 * falls back to its SSE3 "Prescott" kernels (~30 GFLOP/s here instead of
 * ~200). It reads OPENBLAS_CORETYPE once, when the library is loaded, so
 * blas_load() sets it (unless the user already did) to SkylakeX on CPUs
 * with AVX-512 F/BW/VL/DQ and to Haswell on AVX2+FMA, before the dlopen,
 * and reports the core OpenBLAS then says it uses. */
#ifndef ONESTEP_SIMD_BLAS_H
#define ONESTEP_SIMD_BLAS_H

#include "../ref/common.h"

struct blas_lib {
    /* cblas_sgemm(CblasRowMajor = 101, CblasNoTrans = 111 / CblasTrans = 112, ...) */
    void (*sgemm)(int order, int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);
    void (*set_num_threads)(int n);
    char core[64];       /* what openblas_get_corename() says */
    char coretype[96];   /* "OPENBLAS_CORETYPE=SkylakeX (set by onestep)" or "(from the environment)" */
};

#define BLAS_ROW_MAJOR 101
#define BLAS_NO_TRANS 111
#define BLAS_TRANS 112

/* The library, loaded once; NULL with a message if it is not installed. */
const struct blas_lib *blas_load(struct os_err *err);

#endif
