/* rng.c — torch.randn on a CPU generator, and A1111's Philox generator.
 *
 * Upstream (pytorch v1.13.1, what the conformance suite ran):
 *   aten/src/ATen/core/MT19937RNGEngine.h       mt19937, seeded from 32 bits
 *   aten/src/ATen/core/TransformationHelper.h   uniform_real: (bits & mask) * 2^-digits
 *   aten/src/ATen/core/DistributionsHelper.h    normal_distribution<double>
 *   aten/src/ATen/native/cpu/DistributionTemplates.h
 *       normal_kernel: float32, contiguous, numel >= 16 -> normal_fill_AVX2
 *       (x86 AVX2 builds) or normal_fill (portable kernel); otherwise one
 *       normal_distribution<double> per element
 *   aten/src/ATen/native/cpu/avx_mathfun.h       log256_ps, sincos256_ps
 *
 * Every float operation below is one IEEE operation written out (the file is
 * built with -ffp-contract=off), so the results are the same on every
 * machine with IEEE float32/float64 arithmetic evaluated in its own type
 * (FLT_EVAL_METHOD 0: x86-64, ARM, RISC-V; not x87) and a correct fmaf. */
#include "rng.h"

#include <math.h>
#include <string.h>

#include "refmath.h"

/* c10::pi<double> */
static const double PI = 3.14159265358979323846;

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ---- mt19937 as at::mt19937 ------------------------------------------- */

/* torch's manual_seed keeps the low 32 bits (init_with_uint32); the
 * recurrence is Matsumoto & Nishimura's init_genrand. */
static void mt_seed(struct rng *r, uint64_t seed)
{
    r->mt[0] = (uint32_t)seed;
    for (uint32_t i = 1; i < RNG_MT_N; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + i;
    r->mt_pos = RNG_MT_N;
}

static void mt_regenerate(struct rng *r)
{
    enum { M = 397 };
    for (int i = 0; i < RNG_MT_N; i++) {
        uint32_t y = (r->mt[i] & 0x80000000u) | (r->mt[(i + 1) % RNG_MT_N] & 0x7fffffffu);
        r->mt[i] = r->mt[(i + M) % RNG_MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    r->mt_pos = 0;
}

uint32_t rng_u32(struct rng *r)
{
    if (r->mt_pos >= RNG_MT_N) mt_regenerate(r);
    uint32_t y = r->mt[r->mt_pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* uniform_real_distribution<float>(0, 1): 24 bits of one draw. (torch
 * computes x * (to - from) + from after this; with 0 and 1 that is x.) */
static float uniform_f32(struct rng *r)
{
    return (float)(rng_u32(r) & 0xffffffu) * (1.0f / 16777216.0f);
}

/* uniform_real_distribution<double>(0, 1): 53 bits of random64(), which is
 * (first draw << 32) | second draw. */
static double uniform_f64(struct rng *r)
{
    uint64_t hi = rng_u32(r);
    uint64_t lo = rng_u32(r);
    uint64_t bits = (hi << 32) | lo;
    return (double)(bits & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* ---- numel < 16: at::normal_distribution<double> ------------------------ */

/* Box-Muller in double; the pair's second value is kept in the generator
 * and returned by the next call, even one in a later randn. Note the uniform
 * roles: u2 feeds the radius and u1 the angle. The double log/sin/cos are
 * refmath's (portable, a few double ulps) rather than libm's: after the
 * cast to float32 they agree with glibc except with a probability of order
 * 1e-9 per value (none in 2e8 tried). */
static double normal_f64(struct rng *r)
{
    if (r->has_cached_normal) {
        r->has_cached_normal = 0;
        return r->cached_normal;
    }
    double u1 = uniform_f64(r);
    double u2 = uniform_f64(r);
    double radius = sqrt(-2.0 * rm_log(1.0 - u2));
    double theta = 2.0 * PI * u1;
    r->cached_normal = radius * rm_sin(theta);
    r->has_cached_normal = 1;
    return radius * rm_cos(theta);
}

/* ---- numel >= 16, x86 AVX2 kernel: avx_mathfun's log and sincos --------
 *
 * log256_ps / sincos256_ps are Cephes' logf / sinf polynomials. They are
 * written with separate _mm256_mul_ps / _mm256_add_ps, but GCC compiles
 * those as plain vector arithmetic and, with -mfma and its default
 * -ffp-contract=fast, fuses every product whose only use is an add. The
 * fusions below are the ones in the shipped binary (Debian's libtorch_cpu
 * 1.13.1, disassembled): vfmadd / vfmsub / vfnmadd exactly where fmaf is
 * written, a separate vmulps / vaddps everywhere else. Lanes are independent,
 * so one lane is computed at a time. Constants are the header's double
 * literals rounded to float, as its float array initialisers do. */

static const float LOG_P[9] = {
    (float)7.0376836292E-2,  (float)-1.1514610310E-1, (float)1.1676998740E-1,
    (float)-1.2420140846E-1, (float)1.4249322787E-1,  (float)-1.6668057665E-1,
    (float)2.0000714765E-1,  (float)-2.4999993993E-1, (float)3.3333331174E-1,
};
static const float LOG_Q1 = (float)-2.12194440e-4;
static const float LOG_Q2 = (float)0.693359375;
static const float SQRTHF = (float)0.707106781186547524;

/* Defined for x > 0 only (the caller passes 1 - u, u in [0, 1)); x <= 0
 * would give NaN like the vector code. */
static float avx2_log(float x)
{
    int invalid = x <= 0.0f;
    float min_norm = f32_from_bits(0x00800000u);
    if (!(x > min_norm)) x = min_norm; /* _mm256_max_ps(x, min_norm) */
    uint32_t xb = f32_bits(x);
    int32_t exponent = (int32_t)(xb >> 23) - 0x7f;
    x = f32_from_bits((xb & ~0x7f800000u) | f32_bits(0.5f)); /* mantissa in [0.5, 1) */
    float e = (float)exponent;
    e = e + 1.0f;
    /* if x < sqrt(1/2): e -= 1, x = x + x - 1; else x = x - 1 */
    int below = x < SQRTHF;
    float tmp = below ? x : 0.0f;
    x = x - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    x = x + tmp;
    float z = x * x;
    float y = LOG_P[0];
    for (int i = 1; i < 9; i++) y = fmaf(y, x, LOG_P[i]);
    y = y * x;
    float eq1 = e * LOG_Q1;
    y = fmaf(y, z, eq1);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, LOG_Q2, x);
    return invalid ? f32_from_bits(0xffffffffu) : x; /* x | all-ones mask */
}

static const float FOPI = (float)1.27323954473516; /* 4 / pi */
static const float MINUS_DP1 = (float)-0.78515625;
static const float MINUS_DP2 = (float)-2.4187564849853515625e-4;
static const float MINUS_DP3 = (float)-3.77489497744594108e-8;
static const float SINCOF_P0 = (float)-1.9515295891E-4;
static const float SINCOF_P1 = (float)8.3321608736E-3;
static const float SINCOF_P2 = (float)-1.6666654611E-1;
static const float COSCOF_P0 = (float)2.443315711809948E-005;
static const float COSCOF_P1 = (float)-1.388731625493765E-003;
static const float COSCOF_P2 = (float)4.166664568298827E-002;

/* Defined for 0 <= x < 2^31 / (4/pi) (the caller passes 2*pi*u, u < 1), where
 * the conversion to int32 that the vector code does cannot overflow. */
static void avx2_sincos(float x, float *s, float *c)
{
    uint32_t sign_sin = f32_bits(x) & 0x80000000u;
    x = fabsf(x);
    /* octant j = (int(x * 4/pi) + 1) & ~1, reduced argument x - j * pi/4
     * with pi/4 split in three parts (Cody & Waite) */
    float y = x * FOPI;
    int32_t j = (int32_t)y;
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sign_sin = ((uint32_t)j & 4u) << 29;
    int use_sin_poly = (j & 2) == 0; /* the sine of x is the sin polynomial */
    x = fmaf(y, MINUS_DP1, x);
    x = fmaf(y, MINUS_DP2, x);
    x = fmaf(y, MINUS_DP3, x);
    uint32_t sign_cos = (~((uint32_t)j - 2u) & 4u) << 29;
    sign_sin ^= swap_sign_sin;

    float z = x * x;
    float yc = COSCOF_P0;
    yc = fmaf(yc, z, COSCOF_P1);
    yc = fmaf(yc, z, COSCOF_P2);
    yc = yc * z;
    float half_z = z * 0.5f;
    yc = fmaf(yc, z, -half_z);
    yc = yc + 1.0f;

    float ys = SINCOF_P0;
    ys = fmaf(ys, z, SINCOF_P1);
    ys = fmaf(ys, z, SINCOF_P2);
    ys = ys * z;
    ys = fmaf(ys, x, x);

    /* The vector code selects with masks and then adds: keep its adds (with
     * a masked-out lane being +0.0f) so that signed zeros come out the same. */
    float ysin2 = use_sin_poly ? ys : 0.0f;
    float ysin1 = use_sin_poly ? 0.0f : yc;
    ys = ys - ysin2;
    yc = yc - ysin1;
    float sin_v = ysin1 + ysin2;
    float cos_v = yc + ys;
    *s = f32_from_bits(f32_bits(sin_v) ^ sign_sin);
    *c = f32_from_bits(f32_bits(cos_v) ^ sign_cos);
}

/* normal_fill_16_AVX2 with mean 0, std 1: pairs 8 apart. The final
 * _mm256_fmadd_ps(n, std, mean) only turns -0 into +0, which happens when a
 * uniform is exactly 0 (radius sqrt(-0) = -0). */
static void fill16_avx2(float *d)
{
    const float two_pi = (float)(2.0 * PI);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float m2log = -2.0f * avx2_log(u1);
        float radius = sqrtf(m2log);
        float theta = two_pi * u2;
        float s, c;
        avx2_sincos(theta, &s, &c);
        float n1 = radius * c;
        float n2 = radius * s;
        d[j] = fmaf(n1, 1.0f, 0.0f);
        d[j + 8] = fmaf(n2, 1.0f, 0.0f);
    }
}

/* ---- numel >= 16, portable kernel: normal_fill_16<float> ----------------
 *
 * std::log / std::cos / std::sin on float are the C library's logf / cosf /
 * sinf, called here exactly as torch calls them, so this matches torch's
 * portable kernel run against the same C library. glibc's are not correctly
 * rounded (its logf misrounds about 0.7% of the 2^24 possible 1 - u, sinf
 * and cosf about 1.3% of the angles), so a correctly rounded formula would
 * not give torch's numbers either. glibc 2.36 gives the same values for every
 * possible input with and without FMA and on arm64; on musl, macOS or Windows
 * torch and this both give that library's values, which may differ from the
 * suite's in the last bit. The angle is computed in double and rounded
 * (theta = 2.0f * c10::pi<double> * u2 is a double expression). */
static void fill16_scalar(float *d)
{
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float m2log = -2.0f * logf(u1);
        float radius = sqrtf(m2log);
        float theta = (float)(2.0 * PI * (double)u2);
        float n1 = radius * cosf(theta);
        float n2 = radius * sinf(theta);
        d[j] = n1 * 1.0f + 0.0f; /* * std + mean: -0 becomes +0 */
        d[j + 8] = n2 * 1.0f + 0.0f;
    }
}

/* normal_fill / normal_fill_AVX2: every slot gets a uniform first, then each
 * whole block of 16 is transformed in place. A ragged end is not padded:
 * the last 16 slots (overlapping finished values) get 16 fresh uniforms and
 * are transformed again. */
static void randn_blocks(struct rng *r, float *out, size_t n)
{
    void (*fill16)(float *) = r->kind == RNG_TORCH ? fill16_avx2 : fill16_scalar;
    for (size_t i = 0; i < n; i++) out[i] = uniform_f32(r);
    for (size_t i = 0; i + 16 <= n; i += 16) fill16(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(r);
        fill16(tail);
    }
}

/* ---- Philox-4x32-10, A1111's "NV" generator ------------------------------
 *
 * modules/rng_philox.py: element i of the k-th randn call of a generator is
 * Philox-4x32-10 (Salmon et al., SC'11) of counter {k, 0, i, 0} under key
 * {seed low 32 bits, seed high 32 bits}; words 0 and 1 of the result go
 * through the first half of Box-Muller. A1111 wraps i at 2^32; here its high
 * bits go to counter word 3, so only tensors A1111 cannot make differ. */

static void philox4x32_10(uint32_t ctr[4], uint32_t k0, uint32_t k1)
{
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)ctr[0] * 0xD2511F53u;
        uint64_t p1 = (uint64_t)ctr[2] * 0xCD9E8D57u;
        uint32_t c0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0;
        uint32_t c2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
        ctr[0] = c0;
        ctr[1] = (uint32_t)p1;
        ctr[2] = c2;
        ctr[3] = (uint32_t)p0;
        k0 += 0x9E3779B9u; /* the key schedule (Weyl sequence) */
        k1 += 0xBB67AE85u;
    }
}

/* A1111's box_muller: numpy promotes uint32 * float32 to float64, so all
 * arithmetic is double; only the constants are float32 (2^-32 and 2*pi*2^-32
 * as A1111 spells them). The +half offsets keep u in (0, 1]. Returns
 * sqrt(-2 ln u) sin(v) only. */
static float philox_box_muller(uint32_t x, uint32_t y)
{
    static const float TWO_POW32_INV = (float)2.3283064e-10;
    static const float TWO_POW32_INV_2PI = (float)(2.3283064e-10 * 6.2831855);
    double u = (double)x * (double)TWO_POW32_INV;
    u = u + (double)(TWO_POW32_INV / 2.0f);
    double v = (double)y * (double)TWO_POW32_INV_2PI;
    v = v + (double)(TWO_POW32_INV_2PI / 2.0f);
    double s = sqrt(-2.0 * rm_log(u));
    return (float)(s * rm_sin(v));
}

static void randn_philox(struct rng *r, float *out, size_t n)
{
    uint32_t k0 = (uint32_t)r->seed, k1 = (uint32_t)(r->seed >> 32);
    for (size_t i = 0; i < n; i++) {
        uint64_t index = (uint64_t)i;
        uint32_t ctr[4] = {r->philox_offset, 0, (uint32_t)index, (uint32_t)(index >> 32)};
        philox4x32_10(ctr, k0, k1);
        out[i] = philox_box_muller(ctr[0], ctr[1]);
    }
    r->philox_offset++;
}

/* ---- public ------------------------------------------------------------- */

void rng_init(struct rng *r, enum rng_kind kind, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->seed = seed;
    mt_seed(r, seed);
}

void rng_randn(struct rng *r, float *out, size_t n)
{
    if (r->kind == RNG_PHILOX) {
        randn_philox(r, out, n);
    } else if (n >= 16) {
        randn_blocks(r, out, n);
    } else {
        /* transformation::normal: value * std + mean in double, then cast */
        for (size_t i = 0; i < n; i++) out[i] = (float)(normal_f64(r) * 1.0 + 0.0);
    }
}

static const char *const KIND_NAMES[] = {"torch", "torch-scalar", "philox"};

const char *rng_kind_name(enum rng_kind k)
{
    if ((unsigned)k < sizeof KIND_NAMES / sizeof KIND_NAMES[0]) return KIND_NAMES[k];
    return "unknown";
}

int rng_kind_from_name(const char *name, enum rng_kind *out, struct os_err *err)
{
    for (unsigned i = 0; i < sizeof KIND_NAMES / sizeof KIND_NAMES[0]; i++) {
        if (strcmp(name, KIND_NAMES[i]) == 0) {
            *out = (enum rng_kind)i;
            return 0;
        }
    }
    return os_fail(err, "unknown rng \"%.64s\": expected torch, torch-scalar or philox", name);
}

int rng_parse_seed(const char *s, uint64_t *out, struct os_err *err)
{
    if (s[0] == '\0') return os_fail(err, "empty seed: expected an integer from 0 to 18446744073709551615");
    if (s[0] == '-')
        return os_fail(err, "seed \"%.64s\" is negative: seeds are integers from 0 to 18446744073709551615", s);
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return os_fail(err, "seed \"%.64s\" is not a decimal integer (0 to 18446744073709551615)", s);
        unsigned digit = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return os_fail(err, "seed \"%.64s\" is too large: seeds are integers from 0 to 18446744073709551615", s);
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}
