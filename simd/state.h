/* state.h — what a SIMD ops table carries in ops->state: the options chosen
 * when the table was made (select.c), read by the kernels of every ISA. */
#ifndef ONESTEP_SIMD_STATE_H
#define ONESTEP_SIMD_STATE_H

#include "../ref/ops.h"

struct simd_state {
    int winograd;   /* 3x3 stride-1 convolutions through Winograd F(4x4, 3x3): 0 never (ONESTEP_WINOGRAD=0),
                     * 1 where it is faster (default), 2 always (ONESTEP_WINOGRAD=2, for tests) */
    int blas;       /* GEMMs through OpenBLAS sgemm ("avx512+blas", or ONESTEP_BLAS=1) */
    int bf16dot;    /* bf16 weights through vdpbf16ps (ONESTEP_BF16DOT=1; off by default) */
    char desc[320]; /* ops_describe() */
};

static inline const struct simd_state *simd_state_of(const struct ops *o)
{
    return (const struct simd_state *)o->state;
}

#endif
