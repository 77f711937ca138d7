#!/usr/bin/env python3
"""Fit the polynomial coefficients of simd/vmath.h's erfc (used by GELU).

    python3 tools/fit_vmath.py      # prints the C constants and the fit errors

Two pieces, both fitted in relative error by iteratively reweighted least
squares (Lawson's algorithm, which converges towards the minimax fit) on a
dense grid, with mpmath's erf/erfc as the truth:
  |z| < 0.5        erf(z)  = z * P(z^2)                 (then erfc = 1 - erf)
  0.5 <= z < 10    erfc(z) = exp(-z^2) * Q(t),  t = 1 / (1 + z / 2)
The printed max errors are of the fits in double; float32 evaluation adds a
few ulps of rounding (tests/test_simd_ops.c measures the kernels)."""
import mpmath
import numpy as np

mpmath.mp.dps = 40


def lawson(x, f, basis, iters=60):
    A = np.stack([b(x) for b in basis], axis=1)
    w = np.ones_like(x)
    for _ in range(iters):
        sw = np.sqrt(w)
        c, *_ = np.linalg.lstsq(A * sw[:, None], f * sw, rcond=None)
        err = np.abs(A @ c - f)
        w = w * err
        w /= w.sum()
    return c, np.max(np.abs(A @ c - f))


def fit_erf_small(deg=4):
    z = np.linspace(1e-4, 0.5, 4000)
    f = np.array([float(mpmath.erf(v) / v) for v in z])
    # relative error: divide the basis and the target by f
    return lawson(z, np.ones_like(z), [lambda x, k=k: x ** (2 * k) / f for k in range(deg + 1)])


def fit_erfc_large(deg=9):
    z = np.linspace(0.5, 10.0, 6000)
    g = np.array([float(mpmath.erfc(v) * mpmath.exp(v * v)) for v in z])
    t = 1.0 / (1.0 + 0.5 * z)
    # relative error: divide the basis and the target by g
    c, e = lawson(t, np.ones_like(t), [lambda x, k=k, g=g: x ** k / g for k in range(deg + 1)])
    return c, e


if __name__ == "__main__":
    c, e = fit_erf_small()
    print("/* erf(z) = z * P(z^2) on |z| < 0.5: max rel error of the fit %.2e */" % e)
    for i, v in enumerate(c):
        print("static const float ERF_P%d = %.9eF;" % (i, v))
    c, e = fit_erfc_large()
    print("/* erfc(z) = exp(-z^2) * Q(1/(1+z/2)) on [0.5, 10): max rel error of the fit %.2e */" % e)
    for i, v in enumerate(c):
        print("static const float ERFC_Q%d = %.9eF;" % (i, v))
