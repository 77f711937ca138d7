/* vmath.h — exp, erfc and the activations, on whole vectors (vec.h).
 *
 * Accuracy is a few float ulps (tests/test_simd_ops.c measures each against
 * the double-precision reference); the methods:
 *   exp     Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then the Taylor
 *           polynomial of e^r to degree 7 (truncation 6e-9 relative), times 2^n.
 *   erfc    |z| < 0.5: 1 - z P(z^2); above: exp(-z^2) Q(1/(1 + z/2)); negative
 *           z by erfc(z) = 2 - erfc(-z). P and Q are relative-error fits made by
 *           tools/fit_vmath.py (rerun it to regenerate the constants).
 *   expm1   as exp, but 2^n q(r) + (2^n - 1) with q(r) = e^r - 1, so small
 *           arguments keep full relative accuracy (tanh needs it). */
#ifndef ONESTEP_SIMD_VMATH_H
#define ONESTEP_SIMD_VMATH_H

#include "../ref/ops.h" /* enum act */
#include "vec.h"

/* Below this e^x is no longer a normal float: the result is 0 (the
 * reference's denormals differ from it by less than 1.2e-38). */
#define VEXP_LO (-87.33654f)
#define VEXP_HI 88.37626f /* e^x stays below FLT_MAX with n <= 127 */

VINLINE vf vexp_poly(vf x, vf *n_out)
{
    x = vf_min(vf_max(x, vf_set1(VEXP_LO)), vf_set1(VEXP_HI));
    vf n = vf_round(vf_mul(x, vf_set1(1.44269504088896341f)));
    /* ln2 = 0.693359375 - 2.12194440e-4: the first part has 9 significant
     * bits, so n * it is exact for every n here */
    vf r = vf_fma(n, vf_set1(-0.693359375f), x);
    r = vf_fma(n, vf_set1(2.12194440e-4f), r);
    *n_out = n;
    return r;
}

VINLINE vf vexp(vf x)
{
    vf n, r = vexp_poly(x, &n);
    vf p = vf_set1(1.0f / 5040);
    p = vf_fma(p, r, vf_set1(1.0f / 720));
    p = vf_fma(p, r, vf_set1(1.0f / 120));
    p = vf_fma(p, r, vf_set1(1.0f / 24));
    p = vf_fma(p, r, vf_set1(1.0f / 6));
    p = vf_fma(p, r, vf_set1(0.5f));
    p = vf_fma(p, r, vf_set1(1.0f));
    p = vf_fma(p, r, vf_set1(1.0f));
    vf y = vf_mul(p, vf_pow2i(n));
    return vf_sel(vf_lt(x, vf_set1(VEXP_LO)), vf_zero(), y);
}

VINLINE vf vexpm1(vf x)
{
    vf n, r = vexp_poly(x, &n);
    vf q = vf_set1(1.0f / 5040);
    q = vf_fma(q, r, vf_set1(1.0f / 720));
    q = vf_fma(q, r, vf_set1(1.0f / 120));
    q = vf_fma(q, r, vf_set1(1.0f / 24));
    q = vf_fma(q, r, vf_set1(1.0f / 6));
    q = vf_fma(q, r, vf_set1(0.5f));
    q = vf_fma(q, r, vf_set1(1.0f));
    q = vf_mul(q, r); /* e^r - 1 */
    vf s = vf_pow2i(n);
    return vf_add(vf_mul(s, q), vf_sub(s, vf_set1(1.0f)));
}

/* Constants from tools/fit_vmath.py. */
#define ERF_P0 1.128379166e+00f
#define ERF_P1 -3.761260858e-01f
#define ERF_P2 1.128282290e-01f
#define ERF_P3 -2.675718961e-02f
#define ERF_P4 4.718000157e-03f
#define ERFC_Q0 3.837595721e-06f
#define ERFC_Q1 2.819770312e-01f
#define ERFC_Q2 2.836745501e-01f
#define ERFC_Q3 2.346475293e-01f
#define ERFC_Q4 2.360179459e-01f
#define ERFC_Q5 -1.094358563e-01f
#define ERFC_Q6 4.082912663e-01f
#define ERFC_Q7 -6.127386177e-01f
#define ERFC_Q8 3.521869384e-01f
#define ERFC_Q9 -7.463277245e-02f

VINLINE vf verfc(vf z)
{
    vf a = vf_abs(z), a2 = vf_mul(a, a);
    /* |z| < 0.5: 1 - erf(a) */
    vf p = vf_set1(ERF_P4);
    p = vf_fma(p, a2, vf_set1(ERF_P3));
    p = vf_fma(p, a2, vf_set1(ERF_P2));
    p = vf_fma(p, a2, vf_set1(ERF_P1));
    p = vf_fma(p, a2, vf_set1(ERF_P0));
    vf small = vf_sub(vf_set1(1.0f), vf_mul(a, p));
    /* above: exp(-a^2) Q(t); a^2 = a2 + lo exactly, exp(-a2 - lo) ~ exp(-a2)(1 - lo) */
    vf t = vf_div(vf_set1(1.0f), vf_fma(a, vf_set1(0.5f), vf_set1(1.0f)));
    vf q = vf_set1(ERFC_Q9);
    q = vf_fma(q, t, vf_set1(ERFC_Q8));
    q = vf_fma(q, t, vf_set1(ERFC_Q7));
    q = vf_fma(q, t, vf_set1(ERFC_Q6));
    q = vf_fma(q, t, vf_set1(ERFC_Q5));
    q = vf_fma(q, t, vf_set1(ERFC_Q4));
    q = vf_fma(q, t, vf_set1(ERFC_Q3));
    q = vf_fma(q, t, vf_set1(ERFC_Q2));
    q = vf_fma(q, t, vf_set1(ERFC_Q1));
    q = vf_fma(q, t, vf_set1(ERFC_Q0));
    vf lo = vf_fma(a, a, vf_sub(vf_zero(), a2));
    vf e = vexp(vf_sub(vf_zero(), a2));
    e = vf_sub(e, vf_mul(e, lo));
    vf large = vf_mul(e, q);
    vf r = vf_sel(vf_lt(a, vf_set1(0.5f)), small, large);
    return vf_sel(vf_lt(z, vf_zero()), vf_sub(vf_set1(2.0f), r), r);
}

/* x * sigmoid(k x) = x / (1 + e^(-k x)); k = 1 (SiLU) or 1.702 (quick GELU) */
VINLINE vf vsilu_k(vf x, float k)
{
    vf e = vexp(vf_mul(vf_set1(-k), x));
    return vf_div(x, vf_add(vf_set1(1.0f), e));
}

/* exact GELU: 0.5 x erfc(-x / sqrt 2), the reference's formulation */
VINLINE vf vgelu(vf x)
{
    vf z = vf_mul(x, vf_set1(-0.70710678118654752f));
    return vf_mul(vf_mul(vf_set1(0.5f), x), verfc(z));
}

/* tanh(x) = sign(x) e / (e + 2), e = expm1(2|x|); |x| >= 9 gives 1 in float */
VINLINE vf vtanh(vf x)
{
    vf a = vf_min(vf_abs(x), vf_set1(9.0f));
    vf e = vexpm1(vf_add(a, a));
    return vf_copysign(vf_div(e, vf_add(e, vf_set1(2.0f))), x);
}

VINLINE vf vact(vf x, int act)
{
    switch (act) {
    case ACT_SILU: return vsilu_k(x, 1.0f);
    case ACT_GELU: return vgelu(x);
    case ACT_QUICK_GELU: return vsilu_k(x, 1.702f);
    case ACT_RELU: return vf_max(x, vf_zero());
    case ACT_TANH: return vtanh(x);
    default: return x;
    }
}

#endif
