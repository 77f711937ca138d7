/* scratch.h — reusable working memory for the SIMD kernels.
 *
 * Kernels need packed panels, transformed tiles and the like. Allocating
 * them per call would put malloc (and, for large blocks, fresh page faults)
 * into every layer, so each thread keeps a few buffers that grow to the
 * largest request seen and are then reused. The peak is bounded by the
 * largest single layer, not by their number. */
#ifndef ONESTEP_SIMD_SCRATCH_H
#define ONESTEP_SIMD_SCRATCH_H

#include <stddef.h>

enum scratch_slot {
    SCRATCH_A,     /* GEMM: packed A panels (shared by the team) */
    SCRATCH_B,     /* GEMM: packed B panels (shared by the team) */
    SCRATCH_W,     /* conv: transformed / converted weights (shared) */
    SCRATCH_T0,    /* per-thread working buffers */
    SCRATCH_T1,
    SCRATCH_T2,
    SCRATCH_NSLOTS
};

/* At least `bytes` of 64-byte aligned memory in the calling thread's slot;
 * previous contents are not kept. Aborts when memory is exhausted, like the
 * reference kernels (the ops interface has no error path for kernels). */
void *simd_scratch(enum scratch_slot slot, size_t bytes);

/* Release the calling thread's buffers (e.g. between pipeline stages). */
void simd_scratch_release(void);

#endif
