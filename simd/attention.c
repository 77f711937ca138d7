/* attention.c — multi-head attention, flash style (Dao et al. 2022): the
 * nq x nk score matrix is never stored. Queries go in blocks of ATT_NR; for
 * each block the keys stream past in blocks of ATT_BC with an online softmax
 * (running max m and sum l per query, earlier partial sums rescaled by
 * e^(m_old - m_new) when the max grows).
 *
 * Everything is kept transposed, queries along the vector lanes:
 *   S^T[j][i] = sum_c K[j][c] Q[i][c]      (micro-kernel: A = K^T panels, B = Q^T)
 *   P^T[j][i] = exp(scale S^T[j][i] - m[i])
 *   O^T[c][i] += sum_j V[j][c] P^T[j][i]   (micro-kernel: A = V as stored, B = P^T)
 * so the per-query max, sum and rescale are plain vector operations across
 * lanes (no horizontal reductions), P^T is directly the B operand of the
 * second product, and V is read in place. Each (head, query block) is one
 * work item of one thread: results do not depend on the thread count. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "gemm.h"
#include "kernels.h"
#include "vmath.h"

#if defined(ATT_MR16) && VL == 16
#define ATT_MR ATT_MR16
#define ATT_NV ATT_NV16
#elif VL == 16
/* 4 x 64: 64 queries per block; measured 7-9% faster than 8 x 32 and 8 x 48
 * on the UNet's and the VAE's self-attention */
#define ATT_MR 4
#define ATT_NV 4
#elif VL == 8
#define ATT_MR 4
#define ATT_NV 3
#else
#define ATT_MR 4
#define ATT_NV 4
#endif
#define ATT_NR (ATT_NV * VL) /* queries per block */
#ifndef ATT_BC
#define ATT_BC 128           /* keys per block (a multiple of ATT_MR) */
#endif

/* K of head h as panels of ATT_MR keys, [head_dim][ATT_MR] each, zero keys past nk. */
static void pack_keys(const float *k, const struct attn_shape *s, int h, int panel, float *dst)
{
    const int d = s->head_dim, j0 = panel * ATT_MR;
    for (int c = 0; c < d; c++)
        for (int jj = 0; jj < ATT_MR; jj++) {
            int j = j0 + jj;
            dst[(size_t)c * ATT_MR + jj] = j < s->nk ? k[(size_t)j * s->ldk + (size_t)h * d + c] : 0.0f;
        }
}

struct att_plan {
    const struct attn_shape *s;
    const float *q, *k, *v;
    float *out;
    const float *kpack; /* [heads][kpanels][d][ATT_MR] */
    int kpanels, qblocks;
};

static void attend_block(const struct att_plan *pl, int h, int qb)
{
    const struct attn_shape *s = pl->s;
    const int d = s->head_dim, i0 = qb * ATT_NR;
    const int nqv = s->nq - i0 < ATT_NR ? s->nq - i0 : ATT_NR;
    /* causal: the last query of the block sees keys 0 .. i0 + nqv - 1 */
    const int nk = s->causal && i0 + nqv < s->nk ? i0 + nqv : s->nk;
    const int dpad = (d + ATT_MR - 1) / ATT_MR * ATT_MR;

    float *qt = simd_scratch(SCRATCH_T0, ((size_t)d * ATT_NR + (size_t)ATT_BC * ATT_NR + (size_t)dpad * ATT_NR +
                                          (size_t)ATT_BC * ATT_MR + 2 * ATT_NR) * sizeof(float));
    float *st = qt + (size_t)d * ATT_NR;      /* S^T, then P^T: [ATT_BC][ATT_NR] */
    float *ot = st + (size_t)ATT_BC * ATT_NR; /* O^T: [dpad][ATT_NR] */
    float *vpad = ot + (size_t)dpad * ATT_NR; /* V columns of a partial c panel */
    float *m = vpad + (size_t)ATT_BC * ATT_MR, *l = m + ATT_NR;

    for (int c = 0; c < d; c++)
        for (int i = 0; i < ATT_NR; i++)
            qt[(size_t)c * ATT_NR + i] = i < nqv ? pl->q[(size_t)(i0 + i) * s->ldq + (size_t)h * d + c] : 0.0f;
    for (int i = 0; i < ATT_NR; i += VL) {
        vf_store(m + i, vf_set1(-INFINITY));
        vf_store(l + i, vf_zero());
    }
    memset(ot, 0, (size_t)dpad * ATT_NR * sizeof(float));

    const vf scale = vf_set1(s->scale);
    for (int j0 = 0; j0 < nk; j0 += ATT_BC) {
        const int jn = nk - j0 < ATT_BC ? nk - j0 : ATT_BC;
        const int jpn = (jn + ATT_MR - 1) / ATT_MR; /* key panels in this block */
        for (int p = 0; p < jpn; p++) {
            const float *kp = pl->kpack + ((size_t)h * pl->kpanels + (size_t)(j0 / ATT_MR + p)) * d * ATT_MR;
            gemm_tile(ATT_MR, ATT_NV, d, kp, ATT_MR, 1, qt, ATT_NR, st + (size_t)p * ATT_MR * ATT_NR, ATT_NR, NULL, 0,
                      NULL, NULL);
        }
        /* scale, mask, new running max */
        vf mnew[ATT_NV];
        for (int v = 0; v < ATT_NV; v++) mnew[v] = vf_load(m + v * VL);
        for (int j = 0; j < jn; j++) {
            float *row = st + (size_t)j * ATT_NR;
            for (int v = 0; v < ATT_NV; v++) {
                vf x = vf_mul(vf_load(row + v * VL), scale);
                if (s->causal && j0 + j > i0 + v * VL) { /* key j is after some of these queries */
                    float idx[VL];
                    for (int t = 0; t < VL; t++) idx[t] = (float)(i0 + v * VL + t);
                    x = vf_sel(vf_lt(vf_load(idx), vf_set1((float)(j0 + j))), vf_set1(-INFINITY), x);
                }
                vf_store(row + v * VL, x);
                mnew[v] = vf_max(mnew[v], x);
            }
        }
        /* P^T = exp(S^T - m_new); l = l e^(m_old - m_new) + sum_j P^T; O^T *= e^(m_old - m_new) */
        for (int v = 0; v < ATT_NV; v++) {
            vf alpha = vexp(vf_sub(vf_load(m + v * VL), mnew[v]));
            vf sum = vf_zero();
            for (int j = 0; j < jn; j++) {
                float *row = st + (size_t)j * ATT_NR + v * VL;
                vf pj = vexp(vf_sub(vf_load(row), mnew[v]));
                vf_store(row, pj);
                sum = vf_add(sum, pj);
            }
            vf_store(l + v * VL, vf_fma(vf_load(l + v * VL), alpha, sum));
            vf_store(m + v * VL, mnew[v]);
            for (int c = 0; c < d; c++) {
                float *o = ot + (size_t)c * ATT_NR + v * VL;
                vf_store(o, vf_mul(vf_load(o), alpha));
            }
        }
        /* O^T += V^T P^T, V rows j0 .. j0 + jn (only real keys) */
        const float *vb = pl->v + (size_t)j0 * s->ldv + (size_t)h * d;
        for (int c0 = 0; c0 < d; c0 += ATT_MR) {
            const float *a = vb + c0;
            size_t lda = s->ldv;
            if (c0 + ATT_MR > d) { /* head_dim not a multiple of ATT_MR: pad the last columns */
                for (int j = 0; j < jn; j++)
                    for (int cc = 0; cc < ATT_MR; cc++)
                        vpad[(size_t)j * ATT_MR + cc] = c0 + cc < d ? vb[(size_t)j * s->ldv + c0 + cc] : 0.0f;
                a = vpad;
                lda = ATT_MR;
            }
            float *o = ot + (size_t)c0 * ATT_NR;
            gemm_tile(ATT_MR, ATT_NV, jn, a, lda, 1, st, ATT_NR, o, ATT_NR, o, ATT_NR, NULL, NULL);
        }
    }
    /* out[i][h d + c] = O^T[c][i] / l[i] */
    for (int i = 0; i < nqv; i++) {
        float *dst = pl->out + (size_t)(i0 + i) * s->ldo + (size_t)h * d;
        const float inv = 1.0f / l[i];
        for (int c = 0; c < d; c++) dst[c] = ot[(size_t)c * ATT_NR + i] * inv;
    }
}

void SX(simd_attention)(const struct ops *o, float *out, const float *q, const float *k, const float *v,
                        const struct attn_shape *s)
{
    if (s->nq <= 0 || s->heads <= 0 || s->head_dim <= 0) return;
    struct att_plan pl = {.s = s, .q = q, .k = k, .v = v, .out = out};
    pl.kpanels = (s->nk + ATT_MR - 1) / ATT_MR;
    pl.qblocks = (s->nq + ATT_NR - 1) / ATT_NR;
    const size_t kpanel_size = (size_t)s->head_dim * ATT_MR;
    float *kpack = simd_scratch(SCRATCH_W, ((size_t)s->heads * pl.kpanels * kpanel_size + 1) * sizeof(float));
    pl.kpack = kpack;
    const long npack = (long)s->heads * pl.kpanels, items = (long)s->heads * pl.qblocks;
    const int threads = o->threads;
#pragma omp parallel num_threads(threads) if (threads > 1 && items > 1)
    {
#pragma omp for schedule(static)
        for (long i = 0; i < npack; i++)
            pack_keys(k, s, (int)(i / pl.kpanels), (int)(i % pl.kpanels), kpack + (size_t)i * kpanel_size);
#pragma omp for schedule(dynamic, 1)
        for (long i = 0; i < items; i++) attend_block(&pl, (int)(i / pl.qblocks), (int)(i % pl.qblocks));
    }
}
