/* refmath.c — see refmath.h for why the reference has its own exp/erf/...
 *
 * Methods (textbook, chosen for being short and obviously right rather than
 * fast): argument reduction by ln2 or pi/2 with constants split so the
 * products are exact (Cody & Waite), then Taylor series evaluated to well
 * past double precision. erfc for large arguments uses its continued
 * fraction (Abramowitz & Stegun 7.1.14) evaluated backwards at fixed depth. */
#include "refmath.h"

#include <math.h> /* only scalbn/frexp (exact) and INFINITY/NAN */

/* ln2 = LN2_HI + LN2_LO, LN2_HI with 21 trailing zero bits so k * LN2_HI is
 * exact for |k| < 2^21. */
static const double LN2_HI = 6.93147180369123816490e-01;
static const double LN2_LO = 1.90821492927058770002e-10;
static const double INV_LN2 = 1.44269504088896338700e+00;

double rm_exp(double x)
{
    if (x != x) return x;
    if (x > 709.78) return INFINITY;
    if (x < -745.2) return 0.0;
    double k = floor(x * INV_LN2 + 0.5);
    double r = (x - k * LN2_HI) - k * LN2_LO; /* |r| <= 0.35 */
    /* sum r^n / n! for n = 0..17, highest term first */
    double p = 1.0;
    for (int n = 17; n >= 1; n--) p = 1.0 + p * r / n;
    return scalbn(p, (int)k);
}

double rm_expm1(double x)
{
    if (x > -0.5 && x < 0.5) {
        /* x + x^2/2! + ... : no cancellation near 0 */
        double p = 1.0;
        for (int n = 22; n >= 2; n--) p = 1.0 + p * x / n;
        return x * p;
    }
    return rm_exp(x) - 1.0;
}

double rm_log(double x)
{
    if (x != x || x < 0) return NAN;
    if (x == 0) return -INFINITY;
    if (x == INFINITY) return x;
    int e;
    double m = frexp(x, &e); /* x = m * 2^e, m in [0.5, 1) */
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    /* log(m) = 2 atanh(f), f = (m-1)/(m+1), |f| <= 0.1716 */
    double f = (m - 1.0) / (m + 1.0);
    double f2 = f * f;
    double s = 0.0;
    for (int n = 31; n >= 3; n -= 2) s = (s + 1.0 / n) * f2;
    double logm = 2.0 * f + 2.0 * f * s;
    return e * LN2_HI + (logm + e * LN2_LO);
}

static const double TWO_OVER_SQRTPI = 1.12837916709551257390e+00;
static const double INV_SQRTPI = 5.64189583547756286948e-01;

/* erf by its Maclaurin series, for |x| <= 2 (terms peak near 2.4, so at most
 * one digit is lost to cancellation). */
static double erf_series(double x)
{
    double x2 = x * x, term = x, sum = x;
    for (int n = 1; n < 60; n++) {
        term *= -x2 / n;
        double t = term / (2 * n + 1);
        sum += t;
        if (fabs(t) < 1e-18 * fabs(sum)) break;
    }
    return TWO_OVER_SQRTPI * sum;
}

/* erfc(x) for x >= 2: exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + (2/2)/(x + (3/2)/(x + ...)))) */
static double erfc_cf(double x)
{
    double t = x;
    for (int n = 120; n >= 1; n--) t = x + (n * 0.5) / t;
    return rm_exp(-x * x) * INV_SQRTPI / t;
}

double rm_erf(double x)
{
    if (x != x) return x;
    if (x > 6.0) return 1.0;
    if (x < -6.0) return -1.0;
    if (x >= -2.0 && x <= 2.0) return erf_series(x);
    return x > 0 ? 1.0 - erfc_cf(x) : erfc_cf(-x) - 1.0;
}

double rm_erfc(double x)
{
    if (x != x) return x;
    if (x > 27.3) return 0.0;
    if (x < -6.0) return 2.0;
    if (x > 2.0) return erfc_cf(x);
    if (x < -2.0) return 2.0 - erfc_cf(-x);
    return 1.0 - erf_series(x);
}

double rm_tanh(double x)
{
    if (x != x) return x;
    double a = fabs(x);
    if (a > 20.0) return x > 0 ? 1.0 : -1.0;
    double e = rm_expm1(2.0 * a);
    double t = e / (e + 2.0);
    return x < 0 ? -t : t;
}

/* pi/2 in three 33-bit parts: k * PIO2_i is exact for |k| < 2^20. */
static const double PIO2_1 = 1.57079632673412561417e+00;
static const double PIO2_2 = 6.07710050630396597660e-11;
static const double PIO2_3 = 2.02226624871116645580e-21;
static const double TWO_OVER_PI = 6.36619772367581382433e-01;

static double sin_poly(double r) /* |r| <= pi/4 */
{
    double r2 = r * r, p = 1.0;
    for (int n = 23; n >= 3; n -= 2) p = 1.0 - p * r2 / ((double)n * (n - 1));
    return r * p;
}

static double cos_poly(double r)
{
    double r2 = r * r, p = 1.0;
    for (int n = 22; n >= 2; n -= 2) p = 1.0 - p * r2 / ((double)n * (n - 1));
    return p;
}

static double reduce(double x, int *quadrant)
{
    double k = floor(x * TWO_OVER_PI + 0.5);
    double r = ((x - k * PIO2_1) - k * PIO2_2) - k * PIO2_3;
    long q = (long)fmod(k, 4.0);
    if (q < 0) q += 4;
    *quadrant = (int)q;
    return r;
}

double rm_sin(double x)
{
    if (x != x || x == INFINITY || x == -INFINITY) return NAN;
    int q;
    double r = reduce(x, &q);
    switch (q) {
    case 0: return sin_poly(r);
    case 1: return cos_poly(r);
    case 2: return -sin_poly(r);
    default: return -cos_poly(r);
    }
}

double rm_cos(double x)
{
    if (x != x || x == INFINITY || x == -INFINITY) return NAN;
    int q;
    double r = reduce(x, &q);
    switch (q) {
    case 0: return cos_poly(r);
    case 1: return -sin_poly(r);
    case 2: return -cos_poly(r);
    default: return sin_poly(r);
    }
}
