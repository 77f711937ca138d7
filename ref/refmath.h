/* refmath.h — the transcendental functions of the reference, in double.
 *
 * The reference must give the same bits on every machine. Basic IEEE
 * arithmetic (+ - * / sqrt) is correctly rounded everywhere, but libm's exp,
 * erf, tanh, sin and cos are not specified to the last bit and differ between
 * glibc versions, musl and macOS. So the reference computes them here, with
 * plain double arithmetic in a fixed order (the file is built with
 * -ffp-contract=off), accurate to a few double ulps — far below the float32
 * rounding of every result that uses them. */
#ifndef ONESTEP_REFMATH_H
#define ONESTEP_REFMATH_H

double rm_exp(double x);
double rm_expm1(double x);
double rm_erf(double x);
double rm_erfc(double x);
double rm_tanh(double x);
double rm_sin(double x);
double rm_cos(double x);
double rm_log(double x);

#endif
