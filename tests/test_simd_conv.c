/* SIMD convolutions vs the reference, every ISA this CPU runs, along each
 * path the backend takes: 1x1 (GEMM on the feature map as it stands),
 * general KxK / strided / asymmetrically padded (implicit im2col + GEMM),
 * and 3x3 stride 1 through Winograd F(4x4, 3x3). Each 3x3 stride-1 shape
 * runs three times: ONESTEP_WINOGRAD=2 (Winograd forced, so small shapes
 * exercise it too), =0 (im2col) and the default choice (checked against
 * the Winograd bound, which also covers im2col).
 *
 * Tolerances, per output element:
 *  - GEMM paths: one float FMA chain of K = C KH KW terms from res + bias,
 *    so |simd - ref| <= (K + 4) u (|res| + |b| + sum |w x|), u = 2^-24.
 *  - Winograd: Y = A^T [sum_c (G g G^T) ⊙ (B^T d B)] A in float. Each
 *    transform is a few roundings of sums with the matrices' coefficients,
 *    the channel sum is a chain of C FMAs, so (Higham 3.5, componentwise)
 *        |simd - ref| <= (C + 32) u W + 4 u (|b| + |res|),
 *        W = |A^T| (sum_c (|G||g_c||G^T|) ⊙ (|B^T||d_c||B|)) |A|,
 *    which the test evaluates in double for every element. W exceeds the
 *    direct sum |w x| because the transforms have entries up to 8; the
 *    notes print the measured error in units of both bounds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/ops.h"
#include "lib/check.h"
#include "lib/simd_util.h"

static const double BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
static const double G[6][3] = {{1 / 4.0, 0, 0},           {-1 / 6.0, -1 / 6.0, -1 / 6.0}, {-1 / 6.0, 1 / 6.0, -1 / 6.0},
                               {1 / 24.0, 1 / 12.0, 1 / 6.0}, {1 / 24.0, -1 / 12.0, 1 / 6.0}, {0, 0, 1}};
static const double AT[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

struct cshape {
    int C, OC, H, W, K, stride, pt, pl, pb, pr;
};

static const struct cshape shapes[] = {
    /* 3x3 stride 1 pad 1: Winograd when C >= 16 */
    {16, 1, 1, 1, 3, 1, 1, 1, 1, 1},
    {16, 13, 4, 4, 3, 1, 1, 1, 1, 1},
    {17, 33, 5, 7, 3, 1, 1, 1, 1, 1},
    {32, 12, 9, 17, 3, 1, 1, 1, 1, 1},
    {16, 24, 16, 16, 3, 1, 1, 1, 1, 1},
    {20, 7, 33, 65, 3, 1, 1, 1, 1, 1},
    {48, 25, 8, 64, 3, 1, 1, 1, 1, 1},
    {16, 16, 3, 130, 3, 1, 1, 1, 1, 1},
    {64, 64, 16, 16, 3, 1, 1, 1, 1, 1},
    {512, 16, 4, 4, 3, 1, 1, 1, 1, 1},
    {24, 20, 32, 36, 3, 1, 1, 1, 1, 1},
    /* 3x3 stride 1, other paddings */
    {16, 9, 10, 11, 3, 1, 0, 0, 0, 0},
    {18, 5, 7, 9, 3, 1, 0, 2, 2, 0},
    /* small C: im2col */
    {4, 33, 9, 9, 3, 1, 1, 1, 1, 1},
    {3, 8, 17, 5, 3, 1, 1, 1, 1, 1},
    /* stride 2: UNet downsampler (pad 1), VAE encoder (pad right/bottom only) */
    {17, 9, 9, 9, 3, 2, 1, 1, 1, 1},
    {32, 32, 16, 16, 3, 2, 1, 1, 1, 1},
    {16, 8, 8, 8, 3, 2, 0, 0, 1, 1},
    /* 1x1 */
    {17, 9, 5, 7, 1, 1, 0, 0, 0, 0},
    {64, 33, 16, 16, 1, 1, 0, 0, 0, 0},
    {320, 13, 8, 8, 1, 1, 0, 0, 0, 0},
    {1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
    /* 1x1 with padding, 5x5: im2col */
    {8, 5, 6, 6, 1, 1, 1, 1, 1, 1},
    {6, 7, 9, 8, 5, 1, 2, 2, 2, 2},
};

static const enum dtype dts[] = {DT_F32, DT_F16, DT_BF16};

static int winograd_eligible(const struct cshape *s)
{
    return s->K == 3 && s->stride == 1;
}

static const char *mode_name[] = {"im2col", "default", "winograd"};

/* direct: (K + 4) u (|res| + |b| + sum |w x|) */
static void direct_bound(double *tol, const struct conv2d_shape *s, const float *x, const float *w, const float *b,
                         const float *res)
{
    const int OH = conv2d_out_h(s), OW = conv2d_out_w(s), K = s->C * s->KH * s->KW;
    for (int oc = 0; oc < s->OC; oc++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double a = 0;
                for (int c = 0; c < s->C; c++)
                    for (int ky = 0; ky < s->KH; ky++)
                        for (int kx = 0; kx < s->KW; kx++) {
                            int iy = oy * s->stride + ky - s->pad_top, ix = ox * s->stride + kx - s->pad_left;
                            if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                            a += fabs((double)w[((size_t)(oc * s->C + c) * s->KH + ky) * s->KW + kx] *
                                      x[((size_t)c * s->H + iy) * s->W + ix]);
                        }
                size_t i = ((size_t)oc * OH + oy) * OW + ox;
                if (b) a += fabs(b[oc]);
                if (res) a += fabs(res[i]);
                tol[i] = (K + 4) * U32 * a;
            }
}

/* Winograd: (C + 32) u W + 4 u (|b| + |res|), W as in the header comment */
static void winograd_bound(double *tol, const struct conv2d_shape *s, const float *x, const float *w, const float *b,
                           const float *res)
{
    const int OH = conv2d_out_h(s), OW = conv2d_out_w(s), C = s->C;
    const int nty = (OH + 3) / 4, ntx = (OW + 3) / 4;
    double *U = malloc((size_t)s->OC * C * 36 * sizeof(double)); /* |G||g||G^T| */
    for (int oc = 0; oc < s->OC; oc++)
        for (int c = 0; c < C; c++) {
            const float *g = w + (size_t)(oc * C + c) * 9;
            double t[6][3];
            for (int a = 0; a < 6; a++)
                for (int j = 0; j < 3; j++) {
                    t[a][j] = 0;
                    for (int i = 0; i < 3; i++) t[a][j] += fabs(G[a][i]) * fabs(g[i * 3 + j]);
                }
            for (int a = 0; a < 6; a++)
                for (int bb = 0; bb < 6; bb++) {
                    double v = 0;
                    for (int j = 0; j < 3; j++) v += t[a][j] * fabs(G[bb][j]);
                    U[((size_t)oc * C + c) * 36 + a * 6 + bb] = v;
                }
        }
    double *M = malloc((size_t)s->OC * 36 * sizeof(double));
    for (int ty = 0; ty < nty; ty++)
        for (int tx = 0; tx < ntx; tx++) {
            memset(M, 0, (size_t)s->OC * 36 * sizeof(double));
            for (int c = 0; c < C; c++) {
                double d[6][6], t[6][6], V[6][6];
                for (int r = 0; r < 6; r++)
                    for (int q = 0; q < 6; q++) {
                        int iy = 4 * ty - s->pad_top + r, ix = 4 * tx - s->pad_left + q;
                        d[r][q] = iy >= 0 && iy < s->H && ix >= 0 && ix < s->W
                                      ? fabs(x[((size_t)c * s->H + iy) * s->W + ix])
                                      : 0;
                    }
                for (int a = 0; a < 6; a++)
                    for (int q = 0; q < 6; q++) {
                        t[a][q] = 0;
                        for (int r = 0; r < 6; r++) t[a][q] += fabs(BT[a][r]) * d[r][q];
                    }
                for (int a = 0; a < 6; a++)
                    for (int bb = 0; bb < 6; bb++) {
                        V[a][bb] = 0;
                        for (int q = 0; q < 6; q++) V[a][bb] += t[a][q] * fabs(BT[bb][q]);
                    }
                for (int oc = 0; oc < s->OC; oc++) {
                    const double *u = U + ((size_t)oc * C + c) * 36;
                    for (int k = 0; k < 36; k++) M[oc * 36 + k] += u[k] * V[k / 6][k % 6];
                }
            }
            for (int oc = 0; oc < s->OC; oc++)
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) {
                        int oy = 4 * ty + i, ox = 4 * tx + j;
                        if (oy >= OH || ox >= OW) continue;
                        double v = 0;
                        for (int a = 0; a < 6; a++)
                            for (int bb = 0; bb < 6; bb++) v += fabs(AT[i][a]) * M[oc * 36 + a * 6 + bb] * fabs(AT[j][bb]);
                        size_t at = ((size_t)oc * OH + oy) * OW + ox;
                        double extra = (b ? fabs(b[oc]) : 0) + (res ? fabs(res[at]) : 0);
                        tol[at] = (C + 32) * U32 * v + 4 * U32 * extra;
                    }
        }
    free(U);
    free(M);
}

static double worst_direct_units;

/* mode: the ONESTEP_WINOGRAD value (0 off, 1 default choice, 2 forced) */
static void one(const char *isa, const struct cshape *cs, enum dtype dt, int with_bias, int res_mode, int mode)
{
    struct conv2d_shape s = {cs->C, cs->H, cs->W, cs->OC, cs->K, cs->K, cs->stride, cs->pt, cs->pl, cs->pb, cs->pr};
    const int OH = conv2d_out_h(&s), OW = conv2d_out_w(&s);
    const size_t nx = (size_t)s.C * s.H * s.W, nw = (size_t)s.OC * s.C * s.KH * s.KW, ny = (size_t)s.OC * OH * OW;
    float *x = fbuf(nx), *wv = fbuf(nw), *bv = fbuf((size_t)s.OC), *res = fbuf(ny);
    fill_uniform(x, nx, -1, 1, nx + 3);
    fill_uniform(wv, nw, -0.5f, 0.5f, nw + 5);
    fill_uniform(bv, (size_t)s.OC, -1, 1, 11);
    fill_uniform(res, ny, -2, 2, ny);
    int64_t wshape[4] = {s.OC, s.C, s.KH, s.KW}, bshape[1] = {s.OC};
    struct wtensor w, b;
    wtensor_make(&w, dt, 4, wshape, wv, 1 + res_mode);
    wtensor_make(&b, dt, 1, bshape, bv, 3);
    for (size_t i = 0; i < nw; i++) wv[i] = wtensor_get(&w, i); /* the values the kernels see */
    for (int i = 0; i < s.OC; i++) bv[i] = wtensor_get(&b, (size_t)i);
    const float *r = res_mode ? res : NULL;

    float *want = fbuf(ny);
    ops_ref()->conv2d(ops_ref(), want, x, &w.t, with_bias ? &b.t : NULL, r, &s);
    double *tol = dbuf(ny), *dtol = dbuf(ny);
    direct_bound(dtol, &s, x, wv, with_bias ? bv : NULL, r);
    const int wino = winograd_eligible(cs) && mode > 0;
    if (wino) winograd_bound(tol, &s, x, wv, with_bias ? bv : NULL, r);
    else memcpy(tol, dtol, ny * sizeof(double));

    setenv("ONESTEP_WINOGRAD", mode == 2 ? "2" : mode == 1 ? "1" : "0", 1);
    float *got[3];
    for (int t = 1; t <= 3; t++) {
        const struct ops *o = simd_table(isa, t);
        got[t - 1] = fbuf(ny);
        if (res_mode == 2) {
            memcpy(got[t - 1], res, ny * sizeof(float));
            o->conv2d(o, got[t - 1], x, &w.t, with_bias ? &b.t : NULL, got[t - 1], &s);
        } else {
            o->conv2d(o, got[t - 1], x, &w.t, with_bias ? &b.t : NULL, r, &s);
        }
    }
    unsetenv("ONESTEP_WINOGRAD");
    char what[200];
    snprintf(what, sizeof what, "%s conv %dx%d s%d pad %d,%d,%d,%d C=%d OC=%d %dx%d %s%s%s [%s]", isa, s.KH, s.KW,
             s.stride, s.pad_top, s.pad_left, s.pad_bottom, s.pad_right, s.C, s.OC, s.H, s.W, dtype_name(dt),
             with_bias ? " bias" : "", res_mode == 1 ? " res" : res_mode == 2 ? " res=y" : "",
             wino ? mode_name[mode] : s.KH == 1 && !s.pad_top ? "1x1 gemm" : "im2col");
    check_within(what, got[0], want, tol, ny);
    if (wino && mode == 2) {
        double units = 0;
        for (size_t i = 0; i < ny; i++)
            if (dtol[i] > 0) {
                double e = fabs((double)got[0][i] - want[i]) / dtol[i];
                if (e > units) units = e;
            }
        if (units > worst_direct_units) worst_direct_units = units;
    }
    int same = memcmp(got[0], got[1], ny * sizeof(float)) == 0 && memcmp(got[0], got[2], ny * sizeof(float)) == 0;
    check(same, "%s conv C=%d OC=%d %dx%d: 2 and 3 threads == 1 thread", isa, s.C, s.OC, s.H, s.W);
    for (int t = 0; t < 3; t++) free(got[t]);
    free(x);
    free(wv);
    free(bv);
    free(res);
    free(want);
    free(tol);
    free(dtol);
    wtensor_free(&w);
    wtensor_free(&b);
}

int main(void)
{
    const char *isas[4];
    int nisa = simd_isas(isas, 4);
    for (int i = 0; i < nisa; i++) {
        int v = 0;
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            for (int mode = 2; mode >= 0; mode--) {
                if (mode != 1 && !winograd_eligible(&shapes[k])) continue;
                one(isas[i], &shapes[k], dts[v % 3], v % 2 == 0, v % 3, mode);
                v++;
            }
        }
        check_note("%s conv: worst error / bound %.3f; Winograd's worst error in units of the direct bound %.2f",
                   isas[i], simd_worst_ratio(), worst_direct_units);
        worst_direct_units = 0;
    }
    return check_summary();
}
