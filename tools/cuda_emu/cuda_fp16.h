/* cuda_fp16.h (emulator): the two conversions simd/cuda/ uses. */
#ifndef ONESTEP_CUDA_EMU_FP16_H
#define ONESTEP_CUDA_EMU_FP16_H

#include <stdint.h>
#include <string.h>

extern "C" {
#include "../../ref/tensor.h"
}

struct __half {
    unsigned short bits;
};

static inline __half __ushort_as_half(unsigned short h)
{
    __half r;
    r.bits = h;
    return r;
}

static inline float __half2float(__half h)
{
    return f16_to_f32(h.bits);
}

#endif
