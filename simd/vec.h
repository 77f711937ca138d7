/* vec.h — the thin vector layer every SIMD kernel is written against.
 *
 * Each kernel in simd/ is written ONCE, in terms of the type `vf` (VL floats)
 * and the handful of operations below, and the Makefile compiles that one
 * source once per instruction set with the matching -m flags. This header is
 * the only place that knows which instruction set it is: the section chosen
 * by the compiler's predefined macros maps each operation onto intrinsics.
 *
 *   avx512  AVX-512 F/BW/VL/DQ (+ F16C), VL = 16
 *   avx2    AVX2 + FMA + F16C,           VL = 8
 *   neon    AArch64 Advanced SIMD,       VL = 4 (fp16 widening is base ARMv8)
 *
 * Kernels handle whole vectors with these operations; the remainder of a
 * row (n % VL elements) goes through vf_loadn / vf_storen, which copy through
 * a small buffer with one shared scalar loop, so the tail is computed by the
 * very same arithmetic as the body (no separate scalar formula to drift).
 *
 * Function names of the per-ISA objects carry the ISA as a suffix, through
 * SX(name) -> name_avx512 etc., so all tables link into one library. */
#ifndef ONESTEP_SIMD_VEC_H
#define ONESTEP_SIMD_VEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SX_CAT_(a, b) a##_##b
#define SX_CAT(a, b) SX_CAT_(a, b)
#define SX(name) SX_CAT(name, SIMD_ISA)

#define VINLINE static inline __attribute__((always_inline))

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
/* ------------------------------------------------------------------ AVX-512 */
#include <immintrin.h>
#define SIMD_ISA avx512
#define SIMD_ISA_NAME "avx512"
#define VL 16
typedef __m512 vf;
typedef __mmask16 vm;

VINLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
VINLINE void vf_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
VINLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
VINLINE vf vf_set1(float x) { return _mm512_set1_ps(x); }
VINLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
VINLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
VINLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
VINLINE vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
VINLINE vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
VINLINE vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
/* a * b + c with one rounding */
VINLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
VINLINE vf vf_abs(vf a) { return _mm512_abs_ps(a); }
/* |mag| with the sign bit of sgn */
VINLINE vf vf_copysign(vf mag, vf sgn)
{
    __m512i m = _mm512_set1_epi32(0x7fffffff);
    /* 0xca: bitwise m ? mag : sgn */
    return _mm512_castsi512_ps(
        _mm512_ternarylogic_epi32(m, _mm512_castps_si512(mag), _mm512_castps_si512(sgn), 0xca));
}
VINLINE vm vf_lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
VINLINE vm vf_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
/* m ? a : b, lane by lane */
VINLINE vf vf_sel(vm m, vf a, vf b) { return _mm512_mask_blend_ps(m, b, a); }
/* round to nearest integer (ties to even), as a float */
VINLINE vf vf_round(vf x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
/* 2^n for integral n in [-126, 127], exactly */
VINLINE vf vf_pow2i(vf n)
{
    __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(i, 23));
}
/* VL f16 / bf16 values (any alignment) widened exactly to f32 */
/* VL floats at any byte address (weights in a file mapping) */
VINLINE vf vf_load_f32u(const void *p) { return _mm512_loadu_ps(p); }
VINLINE vf vf_load_f16(const void *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
VINLINE vf vf_load_bf16(const void *p)
{
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
VINLINE float vf_hsum(vf v) { return _mm512_reduce_add_ps(v); }
VINLINE float vf_hmax(vf v) { return _mm512_reduce_max_ps(v); }

/* In-register transpose of a VL x VL block: r[i] lane j  <->  r[j] lane i. */
VINLINE void vf_transpose(vf r[VL])
{
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    /* u[4q + j] holds, in 128-bit lane L, element j of rows 4L'..: combine the
     * four 128-bit lanes across groups q. */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512 a = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);      /* lanes 0,2 of u[j], 0,2 of u[4+j] */
        __m512 b = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);      /* lanes 1,3 ... */
        __m512 c = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        __m512 d = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
        r[j] = _mm512_shuffle_f32x4(a, c, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(a, c, 0xdd);
        r[4 + j] = _mm512_shuffle_f32x4(b, d, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(b, d, 0xdd);
    }
}

/* lanes 1 .. VL-1 of a, then x: [a1, a2, ..., a(VL-1), x] */
VINLINE vf vf_shift_in(vf a, float x)
{
    return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(_mm512_set1_ps(x)), _mm512_castps_si512(a), 1));
}

/* p[0 .. 4 VL): d[j] lane t = p[4t + j] (split 4-way interleaved data). */
VINLINE void vf_deinterleave4(const float *p, vf d[4])
{
    __m512 a0 = _mm512_loadu_ps(p), a1 = _mm512_loadu_ps(p + 16), a2 = _mm512_loadu_ps(p + 32),
           a3 = _mm512_loadu_ps(p + 48);
    /* 4x4 transpose inside every 128-bit lane: then d[j] lane 4L+k holds
     * element j of group 4k+L; one permute restores group order. */
    __m512 t0 = _mm512_unpacklo_ps(a0, a1), t1 = _mm512_unpackhi_ps(a0, a1);
    __m512 t2 = _mm512_unpacklo_ps(a2, a3), t3 = _mm512_unpackhi_ps(a2, a3);
    __m512 b0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    __m512 b1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    __m512 b2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    __m512 b3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    d[0] = _mm512_permutexvar_ps(idx, b0);
    d[1] = _mm512_permutexvar_ps(idx, b1);
    d[2] = _mm512_permutexvar_ps(idx, b2);
    d[3] = _mm512_permutexvar_ps(idx, b3);
}

/* The inverse: p[4t + j] = d[j] lane t. */
VINLINE void vf_interleave4(float *p, const vf d[4])
{
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512 b0 = _mm512_permutexvar_ps(idx, d[0]), b1 = _mm512_permutexvar_ps(idx, d[1]);
    __m512 b2 = _mm512_permutexvar_ps(idx, d[2]), b3 = _mm512_permutexvar_ps(idx, d[3]);
    __m512 t0 = _mm512_unpacklo_ps(b0, b1), t1 = _mm512_unpackhi_ps(b0, b1);
    __m512 t2 = _mm512_unpacklo_ps(b2, b3), t3 = _mm512_unpackhi_ps(b2, b3);
    _mm512_storeu_ps(p, _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))));
    _mm512_storeu_ps(p + 16, _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))));
    _mm512_storeu_ps(p + 32, _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))));
    _mm512_storeu_ps(p + 48, _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))));
}

#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
/* -------------------------------------------------------------------- AVX2 */
#include <immintrin.h>
#define SIMD_ISA avx2
#define SIMD_ISA_NAME "avx2"
#define VL 8
typedef __m256 vf;
typedef __m256 vm; /* all-ones / all-zeros lanes */

VINLINE vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
VINLINE void vf_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
VINLINE vf vf_zero(void) { return _mm256_setzero_ps(); }
VINLINE vf vf_set1(float x) { return _mm256_set1_ps(x); }
VINLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
VINLINE vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
VINLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
VINLINE vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
VINLINE vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
VINLINE vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
VINLINE vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
VINLINE vf vf_abs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
VINLINE vf vf_copysign(vf mag, vf sgn)
{
    const __m256 s = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sgn));
}
VINLINE vm vf_lt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
VINLINE vm vf_gt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
VINLINE vf vf_sel(vm m, vf a, vf b) { return _mm256_blendv_ps(b, a, m); }
VINLINE vf vf_round(vf x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
VINLINE vf vf_pow2i(vf n)
{
    __m256i i = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(i, 23));
}
VINLINE vf vf_load_f32u(const void *p) { return _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)p)); }
VINLINE vf vf_load_f16(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
VINLINE vf vf_load_bf16(const void *p)
{
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
VINLINE float vf_hsum(vf v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
VINLINE float vf_hmax(vf v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

VINLINE void vf_transpose(vf r[VL])
{
    __m256 t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

VINLINE vf vf_shift_in(vf a, float x)
{
    const __m256i idx = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7);
    return _mm256_blend_ps(_mm256_permutevar8x32_ps(a, idx), _mm256_set1_ps(x), 0x80);
}

VINLINE void vf_deinterleave4(const float *p, vf d[4])
{
    __m256 a0 = _mm256_loadu_ps(p), a1 = _mm256_loadu_ps(p + 8), a2 = _mm256_loadu_ps(p + 16),
           a3 = _mm256_loadu_ps(p + 24);
    __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
    __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
    __m256 b0 = _mm256_shuffle_ps(t0, t2, 0x44), b1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 b2 = _mm256_shuffle_ps(t1, t3, 0x44), b3 = _mm256_shuffle_ps(t1, t3, 0xee);
    /* lane 4L+k now holds group 2k+L */
    const __m256i idx = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    d[0] = _mm256_permutevar8x32_ps(b0, idx);
    d[1] = _mm256_permutevar8x32_ps(b1, idx);
    d[2] = _mm256_permutevar8x32_ps(b2, idx);
    d[3] = _mm256_permutevar8x32_ps(b3, idx);
}

VINLINE void vf_interleave4(float *p, const vf d[4])
{
    const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    __m256 b0 = _mm256_permutevar8x32_ps(d[0], idx), b1 = _mm256_permutevar8x32_ps(d[1], idx);
    __m256 b2 = _mm256_permutevar8x32_ps(d[2], idx), b3 = _mm256_permutevar8x32_ps(d[3], idx);
    __m256 t0 = _mm256_unpacklo_ps(b0, b1), t1 = _mm256_unpackhi_ps(b0, b1);
    __m256 t2 = _mm256_unpacklo_ps(b2, b3), t3 = _mm256_unpackhi_ps(b2, b3);
    _mm256_storeu_ps(p, _mm256_shuffle_ps(t0, t2, 0x44));
    _mm256_storeu_ps(p + 8, _mm256_shuffle_ps(t0, t2, 0xee));
    _mm256_storeu_ps(p + 16, _mm256_shuffle_ps(t1, t3, 0x44));
    _mm256_storeu_ps(p + 24, _mm256_shuffle_ps(t1, t3, 0xee));
}

#elif defined(__aarch64__) && defined(__ARM_NEON)
/* -------------------------------------------------------------------- NEON */
#include <arm_neon.h>
#define SIMD_ISA neon
#define SIMD_ISA_NAME "neon"
#define VL 4
typedef float32x4_t vf;
typedef uint32x4_t vm;

VINLINE vf vf_load(const float *p) { return vld1q_f32(p); }
VINLINE void vf_store(float *p, vf v) { vst1q_f32(p, v); }
VINLINE vf vf_zero(void) { return vdupq_n_f32(0.0f); }
VINLINE vf vf_set1(float x) { return vdupq_n_f32(x); }
VINLINE vf vf_add(vf a, vf b) { return vaddq_f32(a, b); }
VINLINE vf vf_sub(vf a, vf b) { return vsubq_f32(a, b); }
VINLINE vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
VINLINE vf vf_div(vf a, vf b) { return vdivq_f32(a, b); }
VINLINE vf vf_max(vf a, vf b) { return vmaxq_f32(a, b); }
VINLINE vf vf_min(vf a, vf b) { return vminq_f32(a, b); }
VINLINE vf vf_fma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
VINLINE vf vf_abs(vf a) { return vabsq_f32(a); }
VINLINE vf vf_copysign(vf mag, vf sgn)
{
    return vbslq_f32(vdupq_n_u32(0x7fffffffu), mag, sgn);
}
VINLINE vm vf_lt(vf a, vf b) { return vcltq_f32(a, b); }
VINLINE vm vf_gt(vf a, vf b) { return vcgtq_f32(a, b); }
VINLINE vf vf_sel(vm m, vf a, vf b) { return vbslq_f32(m, a, b); }
VINLINE vf vf_round(vf x) { return vrndnq_f32(x); }
VINLINE vf vf_pow2i(vf n)
{
    int32x4_t i = vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127));
    return vreinterpretq_f32_s32(vshlq_n_s32(i, 23));
}
/* byte loads / memcpy: the weights may sit at any byte address */
VINLINE vf vf_load_f32u(const void *p) { return vreinterpretq_f32_u8(vld1q_u8((const uint8_t *)p)); }
VINLINE vf vf_load_f16(const void *p)
{
    uint64_t b;
    memcpy(&b, p, 8);
    return vcvt_f32_f16(vreinterpret_f16_u64(vcreate_u64(b)));
}
VINLINE vf vf_load_bf16(const void *p)
{
    uint64_t b;
    memcpy(&b, p, 8);
    return vreinterpretq_f32_u32(vshll_n_u16(vreinterpret_u16_u64(vcreate_u64(b)), 16));
}
VINLINE float vf_hsum(vf v) { return vaddvq_f32(v); }
VINLINE float vf_hmax(vf v) { return vmaxvq_f32(v); }

VINLINE void vf_transpose(vf r[VL])
{
    float32x4x2_t a = vtrnq_f32(r[0], r[1]), b = vtrnq_f32(r[2], r[3]);
    r[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(a.val[0]), vreinterpretq_f64_f32(b.val[0])));
    r[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(a.val[1]), vreinterpretq_f64_f32(b.val[1])));
    r[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(a.val[0]), vreinterpretq_f64_f32(b.val[0])));
    r[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(a.val[1]), vreinterpretq_f64_f32(b.val[1])));
}

VINLINE vf vf_shift_in(vf a, float x)
{
    return vextq_f32(a, vdupq_n_f32(x), 1);
}

VINLINE void vf_deinterleave4(const float *p, vf d[4])
{
    float32x4x4_t v = vld4q_f32(p);
    d[0] = v.val[0];
    d[1] = v.val[1];
    d[2] = v.val[2];
    d[3] = v.val[3];
}

VINLINE void vf_interleave4(float *p, const vf d[4])
{
    float32x4x4_t v = {{d[0], d[1], d[2], d[3]}};
    vst4q_f32(p, v);
}

#else
#error "simd/: compile with the flags of one instruction set (see Makefile SIMD_FLAGS_*)"
#endif

/* ---- shared by every ISA: partial vectors through a buffer ---- */

/* The first n (< VL) floats of p, zeros after. */
VINLINE vf vf_loadn(const float *p, int n)
{
    float buf[VL] = {0};
    for (int i = 0; i < n; i++) buf[i] = p[i];
    return vf_load(buf);
}

VINLINE void vf_storen(float *p, vf v, int n)
{
    float buf[VL];
    vf_store(buf, v);
    for (int i = 0; i < n; i++) p[i] = buf[i];
}

#endif
