#include "tensor.h"

#include <stdio.h>

static const struct {
    const char *name;
    size_t size;
} dtype_info[DT_COUNT] = {
    [DT_F32] = {"F32", 4}, [DT_F16] = {"F16", 2}, [DT_BF16] = {"BF16", 2},
    [DT_F64] = {"F64", 8}, [DT_I64] = {"I64", 8}, [DT_I32] = {"I32", 4},
    [DT_I16] = {"I16", 2}, [DT_I8] = {"I8", 1},   [DT_U8] = {"U8", 1},
    [DT_BOOL] = {"BOOL", 1},
};

size_t dtype_size(enum dtype t)
{
    return (unsigned)t < DT_COUNT ? dtype_info[t].size : 0;
}

const char *dtype_name(enum dtype t)
{
    return (unsigned)t < DT_COUNT ? dtype_info[t].name : "?";
}

int dtype_from_name(const char *name)
{
    for (int i = 0; i < DT_COUNT; i++)
        if (strcmp(dtype_info[i].name, name) == 0) return i;
    return -1;
}

int64_t tensor_numel(const struct tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan (keep nan quiet) */
        return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u | ((absx >> 13) & 0x3ffu) : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (absx < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign; /* < 2^-25 rounds to 0 */
        uint32_t e = absx >> 23;
        uint32_t man = (absx & 0x7fffffu) | 0x800000u;
        uint32_t total = 126 - e; /* value / 2^-24 = man * 2^(e - 126), e <= 112 */
        uint32_t half = man >> total;
        uint32_t rem = man & ((1u << total) - 1);
        uint32_t mid = 1u << (total - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t r = absx + 0xfffu + ((absx >> 13) & 1u); /* round to nearest even at bit 13 */
    r -= (127u - 15u) << 23;
    return (uint16_t)(sign | (r >> 13));
}

uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

void tensor_read_f32(const struct tensor *t, int64_t off, int64_t n, float *out)
{
    if (t->dtype == DT_F32) {
        memcpy(out, (const char *)t->data + 4 * off, (size_t)n * 4);
        return;
    }
    for (int64_t i = 0; i < n; i++) out[i] = tensor_get_f32(t, off + i);
}

const char *tensor_shape_str(const struct tensor *t, char *buf, size_t len)
{
    size_t pos = 0;
    pos += (size_t)snprintf(buf + pos, len - pos, "[");
    for (int i = 0; i < t->ndim && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (pos < len) snprintf(buf + pos, len - pos, "]");
    return buf;
}

double tensor_get_f64(const struct tensor *t, int64_t i)
{
    const unsigned char *p = (const unsigned char *)t->data;
    switch (t->dtype) {
    case DT_I64: {
        int64_t v;
        memcpy(&v, p + 8 * i, 8);
        return (double)v;
    }
    case DT_I32: {
        int32_t v;
        memcpy(&v, p + 4 * i, 4);
        return v;
    }
    case DT_I16: {
        int16_t v;
        memcpy(&v, p + 2 * i, 2);
        return v;
    }
    case DT_I8: return (int8_t)p[i];
    case DT_U8:
    case DT_BOOL: return p[i];
    case DT_F64: {
        double v;
        memcpy(&v, p + 8 * i, 8);
        return v;
    }
    default: return tensor_get_f32(t, i);
    }
}
