/* attention.cu — softmax(q k^T * scale) v per head, flash style: keys are
 * streamed in tiles with an online softmax (Milakov & Gimelshein 2018;
 * Dao et al. 2022, FlashAttention, Algorithm 1), so no nq x nk score matrix
 * exists — the SDXL VAE's mid-block attention at 1024² has 16384 tokens,
 * whose score matrix alone would be 1 GiB.
 *
 * Layout: a block of 8 warps serves 8 consecutive queries of one head (one
 * query per warp) and walks the keys in tiles of 32, one key per lane:
 *   1. scores: the tile's K rows are staged in shared memory 128 dims at a
 *      time; lane j accumulates q . k_j over the whole head dimension, in
 *      ascending dim order;
 *   2. online softmax: the warp's running max m and each lane's running sum
 *      of exp(s - m) are rescaled by exp(m_old - m_new);
 *   3. values: V rows are staged the same way; lane l owns output dims
 *      l, l+32, l+64, ... and adds p_j * v_j for the tile's keys, p_j
 *      broadcast by a shuffle.
 * At the end out = acc / sum(lane sums). head_dim up to 32*DPL is held in
 * registers (DPL = dims per lane, a template parameter: 1..32, so head_dim
 * <= 1024; the real models use 64 (UNet, CLIP) and 512 (VAE)).
 *
 * Precision: float with fmaf, as torch's fp32 SDPA; the reference sums in
 * double. Masked keys (beyond nk, or after the query when causal) get
 * probability exactly 0, never exp(-inf - -inf). */
#include <math.h>

#include "state.h"

#define ATT_WARPS 8  /* queries per block */
#define ATT_BK 32    /* keys per tile: one per lane */
#define ATT_CH 128   /* head dims staged in shared memory at a time */
#define ATT_SLICES (ATT_CH / 32)

struct att_args {
    float *out;
    const float *q, *k, *v;
    int nq, nk, head_dim, ldq, ldk, ldv, ldo, causal;
    float scale;
};

template <int DPL>
__global__ void __launch_bounds__(ATT_WARPS * 32) attention_kernel(struct att_args a)
{
    __shared__ float ks[ATT_BK][ATT_CH + 1]; /* +1: lane j reads row j, conflict-free */
    __shared__ float vs[ATT_BK][ATT_CH];
    __shared__ float qs[ATT_WARPS][ATT_CH];

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int hd = a.head_dim, off = blockIdx.y * hd;
    const int q0 = blockIdx.x * ATT_WARPS;
    const int i = q0 + warp; /* this warp's query */
    const bool qvalid = i < a.nq;
    /* Keys this block needs: all of them, or with the causal mask up to
     * its last query. Every warp walks the same tiles (the barriers need
     * that), masking per query. */
    const int qlast = min(a.nq - 1, q0 + ATT_WARPS - 1);
    const int kend = a.causal ? min(a.nk, qlast + 1) : a.nk;

    float qr[DPL], acc[DPL];
#pragma unroll
    for (int t = 0; t < DPL; t++) {
        const int c = lane + 32 * t;
        qr[t] = qvalid && c < hd ? a.q[(size_t)i * a.ldq + off + c] : 0.0f;
        acc[t] = 0.0f;
    }
    float m = -INFINITY; /* running max of this query's scores (warp-uniform) */
    float lsum = 0.0f;   /* this lane's share of sum exp(s - m) */

    for (int j0 = 0; j0 < kend; j0 += ATT_BK) {
        const int nt = min(ATT_BK, kend - j0); /* keys in this tile */
        const int j = j0 + lane;

        /* 1. scores */
        float dot = 0.0f;
#pragma unroll
        for (int ch = 0; ch < (DPL + ATT_SLICES - 1) / ATT_SLICES; ch++) {
            const int d0 = ch * ATT_CH;
            if (d0 < hd) { /* uniform: hd is the same for the whole block */
                const int dc = min(ATT_CH, hd - d0);
                __syncthreads(); /* the previous readers of ks/qs are done */
                for (int e = threadIdx.x; e < ATT_BK * dc; e += blockDim.x) {
                    const int r = e / dc, c = e % dc;
                    ks[r][c] = r < nt ? a.k[(size_t)(j0 + r) * a.ldk + off + d0 + c] : 0.0f;
                }
#pragma unroll
                for (int t = ch * ATT_SLICES; t < (ch + 1) * ATT_SLICES && t < DPL; t++)
                    qs[warp][lane + 32 * t - d0] = qr[t];
                __syncthreads();
                for (int c = 0; c < dc; c++) dot = fmaf(qs[warp][c], ks[lane][c], dot);
            }
        }

        /* 2. online softmax */
        const bool valid = lane < nt && (!a.causal || j <= i);
        const float sc = valid ? dot * a.scale : -INFINITY;
        const float mnew = fmaxf(m, cu_warp_max(sc));
        /* m = -inf: nothing seen yet, acc and lsum are 0 and stay so. mnew =
         * -inf: every key so far is masked (only for a padding query). */
        const float corr = m == -INFINITY ? 0.0f : expf(m - mnew);
        const float p = valid ? expf(sc - mnew) : 0.0f;
        lsum = lsum * corr + p;
#pragma unroll
        for (int t = 0; t < DPL; t++) acc[t] *= corr;
        m = mnew;

        /* 3. values */
#pragma unroll
        for (int ch = 0; ch < (DPL + ATT_SLICES - 1) / ATT_SLICES; ch++) {
            const int d0 = ch * ATT_CH;
            if (d0 < hd) {
                const int dc = min(ATT_CH, hd - d0);
                __syncthreads();
                for (int e = threadIdx.x; e < nt * dc; e += blockDim.x) {
                    const int r = e / dc, c = e % dc;
                    vs[r][c] = a.v[(size_t)(j0 + r) * a.ldv + off + d0 + c];
                }
                __syncthreads();
                for (int jj = 0; jj < nt; jj++) {
                    const float pj = __shfl_sync(CU_FULL_MASK, p, jj);
#pragma unroll
                    for (int t = ch * ATT_SLICES; t < (ch + 1) * ATT_SLICES && t < DPL; t++) {
                        const int c = lane + 32 * t - d0;
                        if (c < dc) acc[t] = fmaf(pj, vs[jj][c], acc[t]);
                    }
                }
            }
        }
    }

    const float l = cu_warp_sumf(lsum);
    if (qvalid) {
#pragma unroll
        for (int t = 0; t < DPL; t++) {
            const int c = lane + 32 * t;
            if (c < hd) a.out[(size_t)i * a.ldo + off + c] = acc[t] / l;
        }
    }
}

template <int DPL>
static void launch(struct cuda_state *s, const struct att_args *a, int heads)
{
    const dim3 grid((unsigned)((a->nq + ATT_WARPS - 1) / ATT_WARPS), (unsigned)heads);
    attention_kernel<DPL><<<grid, ATT_WARPS * 32, 0, s->stream>>>(*a);
}

void cu_attention(const struct ops *o, float *out, const float *q, const float *k, const float *v,
                  const struct attn_shape *sh)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || sh->nq <= 0 || sh->heads <= 0 || sh->head_dim <= 0) return;
    if (sh->nk <= 0) {
        cu_fail(s, "attention with %d keys: the softmax over no keys is undefined", sh->nk);
        return;
    }
    if (sh->head_dim > 32 * 32) {
        cu_fail(s, "attention: head_dim %d is above the 1024 this kernel holds in registers", sh->head_dim);
        return;
    }
    if (sh->heads > 65535) {
        cu_fail(s, "attention: %d heads exceed a CUDA grid's 65535 rows", sh->heads);
        return;
    }
    struct att_args a = {out, q, k, v, sh->nq, sh->nk, sh->head_dim, sh->ldq, sh->ldk, sh->ldv, sh->ldo, sh->causal,
                         sh->scale};
    const int dpl = (sh->head_dim + 31) / 32;
    if (dpl <= 1) launch<1>(s, &a, sh->heads);
    else if (dpl <= 2) launch<2>(s, &a, sh->heads);
    else if (dpl <= 4) launch<4>(s, &a, sh->heads);
    else if (dpl <= 8) launch<8>(s, &a, sh->heads);
    else if (dpl <= 16) launch<16>(s, &a, sh->heads);
    else launch<32>(s, &a, sh->heads);
    cu_launched(s, "attention");
}
