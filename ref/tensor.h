/* tensor.h — the one tensor type: a dtype, a shape and a pointer.
 *
 * Weights point straight into the mmap'd safetensors file and keep their
 * stored dtype (f32, f16 or bf16); kernels read them element by element (the
 * reference) or convert panels on the fly (SIMD). Activations are always f32
 * and never use this struct: model code passes plain `float *` buffers from
 * the run's arena, with shapes as ints, so a learner sees the loops. */
#ifndef ONESTEP_TENSOR_H
#define ONESTEP_TENSOR_H

#include <stdint.h>
#include <string.h>

enum dtype {
    DT_F32,
    DT_F16,
    DT_BF16,
    DT_F64,
    DT_I64,
    DT_I32,
    DT_I16,
    DT_I8,
    DT_U8,
    DT_BOOL,
    DT_COUNT
};

#define TENSOR_MAX_DIMS 8

struct tensor {
    const char *name;        /* checkpoint key, e.g. "down_blocks.0.resnets.0.conv1.weight" */
    enum dtype dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    const void *data;        /* little-endian, row-major, possibly unaligned */
    void *backend_cache;     /* owned by a backend (packed panels, device copy); NULL at load */
};

/* Bytes of one element; 0 for an unknown dtype. */
size_t dtype_size(enum dtype t);
/* Safetensors name of a dtype ("F32", "BF16", ...) and back (-1 if unknown). */
const char *dtype_name(enum dtype t);
int dtype_from_name(const char *name);

int64_t tensor_numel(const struct tensor *t);

/* Exact widening conversions. f16 -> f32 and bf16 -> f32 are exact for every
 * input (subnormals, infinities, NaN payloads kept), so a model stored in f16
 * computes on the very values torch sees after `.to(float32)`. */
static inline float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Round-to-nearest-even narrowing, as torch's `.half()` / `.bfloat16()`. */
uint16_t f32_to_f16(float f);
uint16_t f32_to_bf16(float f);

/* Element i of a float tensor (f32/f16/bf16/f64) as float. Reads through
 * memcpy: the data may be unaligned (safetensors does not promise alignment). */
static inline float tensor_get_f32(const struct tensor *t, int64_t i)
{
    const unsigned char *p = (const unsigned char *)t->data;
    switch (t->dtype) {
    case DT_F32: {
        float v;
        memcpy(&v, p + 4 * i, 4);
        return v;
    }
    case DT_F16: {
        uint16_t v;
        memcpy(&v, p + 2 * i, 2);
        return f16_to_f32(v);
    }
    case DT_BF16: {
        uint16_t v;
        memcpy(&v, p + 2 * i, 2);
        return bf16_to_f32(v);
    }
    case DT_F64: {
        double v;
        memcpy(&v, p + 8 * i, 8);
        return (float)v;
    }
    default:
        return 0.0f;
    }
}

/* Element i of a tensor of any dtype (integers and bool too) as double: for
 * the tools that print and compare dumps, not for model code. */
double tensor_get_f64(const struct tensor *t, int64_t i);

/* Convert n elements starting at element `off` of a float tensor to f32. */
void tensor_read_f32(const struct tensor *t, int64_t off, int64_t n, float *out);

/* Shape as "[320, 4, 3, 3]" for messages. */
const char *tensor_shape_str(const struct tensor *t, char *buf, size_t len);

#endif
