/* SIMD attention (flash style, online softmax) vs the reference, every ISA
 * this CPU runs: self- and cross-attention, causal (CLIP), heads of 8..512
 * dims including ones that are not whole micro-tiles, q/k/v as slices of one
 * fused buffer (row strides), several key and query blocks.
 *
 * Tolerance, per output element o[i][c] = sum_j p_j v_jc / sum_j p_j:
 * a score s_j = scale q.k is a float chain of d FMAs, off by at most
 * (d + 2) u a, a = scale sum |q_c k_c| (u = 2^-24); exp adds a few u, and
 * every rescale of earlier blocks by e^(m_old - m_new) (one per key block,
 * nb of them) adds its own rounding and argument error. So each p_j is
 * within a relative E = (d + 4 + 2 nb) u 2 a_max + (8 + 4 nb) u, and
 *     |o - ref| <= (2 E + 2 (nk + 4) u) (sum_j p_j |v_jc|) / sum_j p_j + 2 u |o|
 * (the nk term covers the float chains of sum p v and sum p). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/ops.h"
#include "lib/check.h"
#include "lib/simd_util.h"

struct ashape {
    int nq, nk, heads, d, causal, fused;
};

static const struct ashape shapes[] = {
    {1, 1, 1, 8, 0, 0},     {7, 7, 2, 8, 1, 1},      {77, 77, 4, 64, 1, 1},  {33, 77, 3, 64, 0, 0},
    {100, 130, 2, 64, 0, 1}, {257, 257, 1, 512, 0, 0}, {65, 17, 5, 18, 0, 0}, {129, 129, 2, 18, 1, 1},
    {300, 300, 1, 64, 1, 0}, {64, 1024, 2, 64, 0, 0}, {31, 5, 3, 20, 0, 1},   {16, 16, 1, 1, 1, 0},
};

#define ATT_BC 128 /* the kernel's key block, for the rescale count */

static void bound(double *tol, const float *q, const float *k, const float *v, const float *want,
                  const struct attn_shape *s)
{
    double *p = malloc((size_t)s->nk * sizeof(double)), *a = malloc((size_t)s->nk * sizeof(double));
    for (int h = 0; h < s->heads; h++) {
        const int off = h * s->head_dim;
        for (int i = 0; i < s->nq; i++) {
            const int nk = s->causal ? (i + 1 < s->nk ? i + 1 : s->nk) : s->nk;
            /* causal: the kernel runs the keys of the whole query block */
            const int nk_block = s->causal ? s->nk : nk;
            const int nb = (nk_block + ATT_BC - 1) / ATT_BC;
            double mx = -INFINITY, amax = 0;
            for (int j = 0; j < nk; j++) {
                double dot = 0, ab = 0;
                for (int c = 0; c < s->head_dim; c++) {
                    double t = (double)q[(size_t)i * s->ldq + off + c] * k[(size_t)j * s->ldk + off + c];
                    dot += t;
                    ab += fabs(t);
                }
                p[j] = dot * s->scale;
                a[j] = ab * fabs(s->scale);
                if (p[j] > mx) mx = p[j];
                if (a[j] > amax) amax = a[j];
            }
            double sum = 0;
            for (int j = 0; j < nk; j++) {
                p[j] = exp(p[j] - mx);
                sum += p[j];
            }
            const double E = (s->head_dim + 4 + 2 * nb) * U32 * 2 * amax + (8 + 4 * nb) * U32;
            for (int c = 0; c < s->head_dim; c++) {
                double pv = 0;
                for (int j = 0; j < nk; j++) pv += p[j] * fabs(v[(size_t)j * s->ldv + off + c]);
                size_t at = (size_t)i * s->ldo + off + c;
                tol[at] = (2 * E + 2 * (nk + 4) * U32) * pv / sum + 2 * U32 * fabs(want[at]);
            }
        }
    }
    free(p);
    free(a);
}

static void one(const char *isa, const struct ashape *sh)
{
    struct attn_shape s = {sh->nq, sh->nk, sh->heads, sh->d, 0, 0, 0, 0, sh->causal, 0};
    const int width = sh->heads * sh->d;
    s.scale = 1.0f / sqrtf((float)sh->d);
    float *qkv, *q, *k, *v;
    size_t nq_floats, nk_floats;
    if (sh->fused) { /* one [n, 3 width] buffer as a fused projection makes */
        const int n = sh->nq > sh->nk ? sh->nq : sh->nk;
        s.ldq = s.ldk = s.ldv = 3 * width;
        nq_floats = nk_floats = (size_t)n * 3 * width;
        qkv = fbuf(nq_floats);
        fill_uniform(qkv, nq_floats, -2, 2, (uint64_t)(sh->nq * 31 + sh->d));
        q = qkv;
        k = qkv + width;
        v = qkv + 2 * width;
    } else {
        s.ldq = s.ldk = s.ldv = width;
        nq_floats = (size_t)sh->nq * width;
        nk_floats = (size_t)sh->nk * width;
        qkv = fbuf(nq_floats + 2 * nk_floats);
        q = qkv;
        k = qkv + nq_floats;
        v = k + nk_floats;
        fill_uniform(q, nq_floats, -2, 2, 1 + sh->nq);
        fill_uniform(k, nk_floats, -2, 2, 2 + sh->nk);
        fill_uniform(v, nk_floats, -1, 1, 3 + sh->d);
    }
    s.ldo = width + 3; /* output rows with a gap: the kernel must honour ldo */
    const size_t no = (size_t)sh->nq * s.ldo;
    float *want = fbuf(no);
    for (size_t i = 0; i < no; i++) want[i] = 0.0f;
    ops_ref()->attention(ops_ref(), want, q, k, v, &s);
    double *tol = dbuf(no);
    bound(tol, q, k, v, want, &s);
    float *got[2];
    for (int t = 1; t <= 2; t++) {
        const struct ops *o = simd_table(isa, t);
        got[t - 1] = fbuf(no);
        for (size_t i = 0; i < no; i++) got[t - 1][i] = 0.0f;
        o->attention(o, got[t - 1], q, k, v, &s);
    }
    char what[128];
    snprintf(what, sizeof what, "%s attention nq=%d nk=%d heads=%d d=%d%s%s", isa, sh->nq, sh->nk, sh->heads, sh->d,
             sh->causal ? " causal" : "", sh->fused ? " fused qkv" : "");
    check_within(what, got[0], want, tol, no);
    check(memcmp(got[0], got[1], no * sizeof(float)) == 0, "%s attention nq=%d nk=%d: 2 threads == 1 thread", isa,
          sh->nq, sh->nk);
    free(got[0]);
    free(got[1]);
    free(qkv);
    free(want);
    free(tol);
}

int main(void)
{
    const char *isas[4];
    int nisa = simd_isas(isas, 4);
    for (int i = 0; i < nisa; i++) {
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) one(isas[i], &shapes[k]);
        check_note("%s attention: worst error / bound %.3f", isas[i], simd_worst_ratio());
    }
    return check_summary();
}
