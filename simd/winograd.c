/* winograd.c — 3x3 stride-1 convolution through Winograd F(4x4, 3x3).
 *
 * Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016):
 * a 4x4 output tile of a 3x3 convolution is
 *     Y = A^T [ sum_c (G g_c G^T) ⊙ (B^T d_c B) ] A
 * where d_c is the 6x6 input tile of channel c and g_c the 3x3 filter; with
 * the interpolation points 0, ±1, ±2 (and infinity) the matrices are
 *     B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 *            0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *     G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 *            1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * The channel sum becomes 36 independent matrix products (one per position
 * xi of the 6x6 transform domain), M_xi[oc][tile] = U_xi[oc][c] V_xi[c][tile],
 * which run on the GEMM core: 36 products of C multiply-adds per 16 outputs
 * instead of 9 x 16, 4x fewer.
 *
 * Error: every step is a short sum with small integer or simple fractional
 * coefficients, so the result is within a modest multiple of
 * u |A^T| (sum_c |G||g_c||G^T| ⊙ |B^T||d_c||B|) |A| of the exact value —
 * larger than direct convolution's u sum|w x| because the transform
 * matrices have entries up to 8 (tests/test_simd_conv.c evaluates this bound
 * per output element and checks against it).
 *
 * Data flow per call: the weights are transformed once into U, already in
 * the GEMM's packed-A layout; the output tiles are cut into chunks, and per
 * chunk a thread transforms the input tiles straight into the packed-B
 * layout (V), runs the 36 products into M, and transforms M back into the
 * output rows, adding bias and residual. Tiles are numbered row by row and
 * transformed VL at a time, one tile per vector lane: VL neighbours on one
 * tile row move through vector shuffles; a group that wraps to the next
 * tile row (narrow images, the last group) is gathered lane by lane. */
#include <omp.h>
#include <string.h>

#include "gemm.h"
#include "kernels.h"

/* ---- the three 1-D transforms, on vectors (one tile per lane) ---- */

/* (B^T d) for one column d[0..5] */
VINLINE void bt6(const vf d[6], vf o[6])
{
    o[0] = vf_fma(vf_set1(4.0f), d[0], vf_fma(vf_set1(-5.0f), d[2], d[4]));
    o[1] = vf_fma(vf_set1(-4.0f), vf_add(d[1], d[2]), vf_add(d[3], d[4]));
    o[2] = vf_fma(vf_set1(4.0f), vf_sub(d[1], d[2]), vf_sub(d[4], d[3]));
    o[3] = vf_fma(vf_set1(2.0f), vf_sub(d[3], d[1]), vf_sub(d[4], d[2]));
    o[4] = vf_fma(vf_set1(2.0f), vf_sub(d[1], d[3]), vf_sub(d[4], d[2]));
    o[5] = vf_fma(vf_set1(4.0f), d[1], vf_fma(vf_set1(-5.0f), d[3], d[5]));
}

/* (G g) for one column g[0..2] */
VINLINE void g3(const vf g[3], vf o[6])
{
    vf s02 = vf_add(g[0], g[2]);
    o[0] = vf_mul(vf_set1(0.25f), g[0]);
    o[1] = vf_mul(vf_set1(-1.0f / 6.0f), vf_add(s02, g[1]));
    o[2] = vf_mul(vf_set1(-1.0f / 6.0f), vf_sub(s02, g[1]));
    vf p = vf_fma(vf_set1(1.0f / 24.0f), g[0], vf_mul(vf_set1(1.0f / 6.0f), g[2]));
    o[3] = vf_fma(vf_set1(1.0f / 12.0f), g[1], p);
    o[4] = vf_fma(vf_set1(-1.0f / 12.0f), g[1], p);
    o[5] = g[2];
}

/* (A^T m) for one column m[0..5] */
VINLINE void at4(const vf m[6], vf o[4])
{
    vf a = vf_add(m[1], m[2]), b = vf_sub(m[1], m[2]);
    vf c = vf_add(m[3], m[4]), d = vf_sub(m[3], m[4]);
    o[0] = vf_add(vf_add(m[0], a), c);
    o[1] = vf_fma(vf_set1(2.0f), d, b);
    o[2] = vf_fma(vf_set1(4.0f), c, a);
    o[3] = vf_add(vf_fma(vf_set1(8.0f), d, b), m[5]);
}

/* ---- weights: U[xi][oc panel][c][MR] ---- */

#define TAP_BLOCKS ((9 + VL - 1) / VL) /* vectors that hold one filter's 9 taps */

struct wino_plan {
    const struct conv2d_shape *s;
    int OH, OW, nty, ntx;       /* output size and tiles */
    long ntiles;                /* nty * ntx */
    int mp;                     /* U panels (MR output channels each) */
    size_t ups;                 /* U panel stride */
    float *U;
    int tc;                     /* tiles per chunk (a multiple of NR) */
};

/* Filter taps of n (<= VL) output channels oc0.. (zeros past them and past
 * OC) for input channel c, as 9 vectors tap[k] lane i = w[oc0 + i][c][k]. */
static void load_taps(const struct tensor *w, int C, int OC, int oc0, int n, int c, vf tap[TAP_BLOCKS * VL])
{
    const unsigned char *base = w->data;
    const size_t es = dtype_size(w->dtype), total = (size_t)OC * C * 9;
    for (int b = 0; b < TAP_BLOCKS; b++) {
        vf r[VL];
        for (int i = 0; i < VL; i++) {
            int oc = oc0 + i;
            if (i >= n || oc >= OC) {
                r[i] = vf_zero();
                continue;
            }
            size_t at = ((size_t)oc * C + c) * 9 + (size_t)b * VL;
            if (at + VL <= total) {
                switch (w->dtype) {
                case DT_F16: r[i] = vf_load_f16(base + at * es); break;
                case DT_BF16: r[i] = vf_load_bf16(base + at * es); break;
                default: r[i] = vf_load_f32u(base + at * es); break;
                }
            } else { /* the tensor's last filter: do not read past its end */
                float buf[VL] = {0};
                tensor_read_f32(w, (int64_t)at, (int64_t)(total - at), buf);
                r[i] = vf_load(buf);
            }
        }
        vf_transpose(r);
        for (int i = 0; i < VL; i++) tap[b * VL + i] = r[i];
    }
}

/* U for output-channel panel p. Each store is a full vector; when MR < VL
 * it spills into the next row of the panel, which is written afterwards
 * (rows in increasing order), or into the panel's slack. */
static void transform_weights_panel(const struct wino_plan *pl, const struct tensor *w, int p)
{
    const int C = pl->s->C, OC = pl->s->OC;
    const size_t xi_stride = (size_t)pl->mp * pl->ups;
    for (int c = 0; c < C; c++) {
        for (int g = 0; g < GEMM_MR; g += VL) {
            vf tap[TAP_BLOCKS * VL];
            load_taps(w, C, OC, p * GEMM_MR + g, GEMM_MR - g < VL ? GEMM_MR - g : VL, c, tap);
            /* t = G g (columns), then U = t G^T (rows) */
            vf t[6][3];
            for (int j = 0; j < 3; j++) {
                vf col[3] = {tap[j], tap[3 + j], tap[6 + j]}, o[6];
                g3(col, o);
                for (int a = 0; a < 6; a++) t[a][j] = o[a];
            }
            for (int a = 0; a < 6; a++) {
                vf o[6];
                g3(t[a], o);
                for (int b = 0; b < 6; b++)
                    vf_store(pl->U + (size_t)(a * 6 + b) * xi_stride + (size_t)p * pl->ups + (size_t)c * GEMM_MR + g,
                             o[b]);
            }
        }
    }
}

/* ---- input tiles -> V[xi][panel][c][NR] for one chunk ---- */

/* Six input rows of VL tiles starting at tile column tx0 of tile row ty:
 * d[r][j] lane t = x[c][4 ty - pad_top + r][4 (tx0 + t) - pad_left + j]. */
static void gather_tiles(const struct wino_plan *pl, const float *xc, int ty, int tx0, vf d[6][6])
{
    const struct conv2d_shape *s = pl->s;
    const int cs = 4 * tx0 - s->pad_left;
    for (int r = 0; r < 6; r++) {
        const int iy = 4 * ty - s->pad_top + r;
        if (iy < 0 || iy >= s->H) {
            for (int j = 0; j < 6; j++) d[r][j] = vf_zero();
            continue;
        }
        const float *row = xc + (size_t)iy * s->W;
        float buf[4 * VL + 4];
        const float *src;
        if (cs >= 0 && cs + 4 * VL + 4 <= s->W) {
            src = row + cs;
        } else { /* a row end: copy with zeros outside the image */
            const int lo = cs < 0 ? -cs : 0, hi = s->W - cs < 4 * VL + 4 ? s->W - cs : 4 * VL + 4;
            memset(buf, 0, sizeof buf);
            if (hi > lo) memcpy(buf + lo, row + cs + lo, (size_t)(hi - lo) * sizeof(float));
            src = buf;
        }
        vf lo[4];
        vf_deinterleave4(src, lo); /* columns 0..3 of each tile */
        d[r][0] = lo[0];
        d[r][1] = lo[1];
        d[r][2] = lo[2];
        d[r][3] = lo[3];
        /* columns 4, 5 are the next tile's 0, 1 */
        d[r][4] = vf_shift_in(lo[0], src[4 * VL]);
        d[r][5] = vf_shift_in(lo[1], src[4 * VL + 1]);
    }
}

/* The same for VL arbitrary tiles t0 .. t0 + n - 1 (n <= VL; lanes past n are zero). */
static void gather_tiles_lanes(const struct wino_plan *pl, const float *xc, long t0, int n, vf d[6][6])
{
    const struct conv2d_shape *s = pl->s;
    float buf[6][6][VL];
    for (int l = 0; l < VL; l++) {
        const int ty = l < n ? (int)((t0 + l) / pl->ntx) : 0, tx = l < n ? (int)((t0 + l) % pl->ntx) : 0;
        for (int r = 0; r < 6; r++) {
            const int iy = 4 * ty - s->pad_top + r;
            for (int j = 0; j < 6; j++) {
                const int ix = 4 * tx - s->pad_left + j;
                buf[r][j][l] = l < n && iy >= 0 && iy < s->H && ix >= 0 && ix < s->W ? xc[(size_t)iy * s->W + ix] : 0.0f;
            }
        }
    }
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < 6; j++) d[r][j] = vf_load(buf[r][j]);
}

/* V[panel][c][xi][NR]: the 36 outputs of a group are stored side by side
 * (the product for xi reads its B panel rows at a stride of 36 NR). */
static void transform_input(const struct wino_plan *pl, const float *x, long t0, int tn, float *V, int nq, int c0,
                            int c1)
{
    const struct conv2d_shape *s = pl->s;
    const size_t plane = (size_t)s->H * s->W, xi_stride = GEMM_NR;
    const int ngroups = (tn + VL - 1) / VL, gpp = GEMM_NR / VL;
    for (int q = 0; q < nq; q++) {
        for (int c = c0; c < c1; c++) {
            const float *xc = x + (size_t)c * plane;
            float *row = V + ((size_t)q * s->C + c) * 36 * GEMM_NR;
            for (int g = 0; g < gpp; g++) {
                const int gi = q * gpp + g;
                float *dst = row + g * VL;
                if (gi >= ngroups) { /* past the chunk's last tile: zeros for the GEMM */
                    for (int xi = 0; xi < 36; xi++) vf_store(dst + (size_t)xi * xi_stride, vf_zero());
                    continue;
                }
                const long t = t0 + (long)gi * VL;
                const int n = tn - gi * VL < VL ? tn - gi * VL : VL;
                const int ty = (int)(t / pl->ntx), tx0 = (int)(t % pl->ntx);
                vf d[6][6], e[6][6];
                if (n == VL && tx0 + VL <= pl->ntx) gather_tiles(pl, xc, ty, tx0, d);
                else gather_tiles_lanes(pl, xc, t, n, d);
                for (int r = 0; r < 6; r++) bt6(d[r], e[r]); /* d B, row by row */
                for (int b = 0; b < 6; b++) {
                    vf col[6] = {e[0][b], e[1][b], e[2][b], e[3][b], e[4][b], e[5][b]}, o[6];
                    bt6(col, o); /* B^T (d B), column by column */
                    for (int a = 0; a < 6; a++) vf_store(dst + (size_t)(a * 6 + b) * xi_stride, o[a]);
                }
            }
        }
    }
}

/* ---- M[xi][oc][tile] -> output rows ---- */

/* M[oc][group of VL tiles][xi][VL] (row stride ldm): the 36 products a
 * group's output transform needs are 36 consecutive vectors (lanes past tn
 * are not used). */
static void transform_output(const struct wino_plan *pl, const float *M, size_t ldm, long t0, int tn, float *y,
                             const float *bias, const float *res, int oc0, int oc1)
{
    const size_t oplane = (size_t)pl->OH * pl->OW;
    const int ngroups = (tn + VL - 1) / VL;
    for (int oc = oc0; oc < oc1; oc++) {
        const vf bv = vf_set1(bias ? bias[oc] : 0.0f);
        float *yc = y + (size_t)oc * oplane;
        const float *rc = res ? res + (size_t)oc * oplane : NULL;
        for (int gi = 0; gi < ngroups; gi++) {
            const long t = t0 + (long)gi * VL;
            const int n = tn - gi * VL < VL ? tn - gi * VL : VL;
            const int ty = (int)(t / pl->ntx), tx0 = (int)(t % pl->ntx);
            const float *m = M + (size_t)oc * ldm + (size_t)gi * 36 * VL;
            vf e[6][4];
            for (int a = 0; a < 6; a++) { /* (m A) row by row */
                vf row[6];
#pragma GCC unroll 6
                for (int b = 0; b < 6; b++) row[b] = vf_load(m + (size_t)(a * 6 + b) * VL);
                at4(row, e[a]);
            }
            vf Y[4][4];
            for (int j = 0; j < 4; j++) { /* A^T (m A) column by column */
                vf col[6] = {e[0][j], e[1][j], e[2][j], e[3][j], e[4][j], e[5][j]}, o[4];
                at4(col, o);
                for (int i = 0; i < 4; i++) Y[i][j] = vf_add(o[i], bv);
            }
            /* res may be y itself: each element is read before it is written */
            if (n == VL && tx0 + VL <= pl->ntx) { /* VL tiles on one tile row */
                const int ox0 = 4 * tx0, nx = pl->OW - ox0 < 4 * VL ? pl->OW - ox0 : 4 * VL;
                for (int i = 0; i < 4; i++) {
                    const int oy = 4 * ty + i;
                    if (oy >= pl->OH) break;
                    const size_t at = (size_t)oy * pl->OW + ox0;
                    float buf[4 * VL];
                    vf_interleave4(buf, Y[i]);
                    if (nx == 4 * VL) {
                        for (int k = 0; k < 4; k++) {
                            vf v = vf_load(buf + k * VL);
                            if (rc) v = vf_add(v, vf_load(rc + at + k * VL));
                            vf_store(yc + at + k * VL, v);
                        }
                    } else {
                        for (int k = 0; k < nx; k++) yc[at + k] = rc ? buf[k] + rc[at + k] : buf[k];
                    }
                }
            } else { /* lane by lane */
                float buf[4][4][VL];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) vf_store(buf[i][j], Y[i][j]);
                for (int l = 0; l < n; l++) {
                    const int tyl = (int)((t + l) / pl->ntx), txl = (int)((t + l) % pl->ntx);
                    for (int i = 0; i < 4; i++) {
                        const int oy = 4 * tyl + i;
                        if (oy >= pl->OH) break;
                        for (int j = 0; j < 4; j++) {
                            const int ox = 4 * txl + j;
                            if (ox >= pl->OW) break;
                            const size_t at = (size_t)oy * pl->OW + ox;
                            yc[at] = rc ? buf[i][j][l] + rc[at] : buf[i][j][l];
                        }
                    }
                }
            }
        }
    }
}

/* ---- driver ---- */

static size_t chunk_v_floats(const struct wino_plan *pl)
{
    return (size_t)((pl->tc + GEMM_NR - 1) / GEMM_NR) * pl->s->C * 36 * GEMM_NR;
}

static size_t chunk_m_floats(const struct wino_plan *pl)
{
    return (size_t)pl->s->OC * ((size_t)(pl->tc + VL - 1) / VL * 36 * VL);
}

/* One chunk of tiles, by thread tid of a team of nt sharing V and M (nt 1:
 * one thread alone): input channels, products (by xi) and output channels
 * are split between the team, with a barrier after each phase. */
static void run_chunk(const struct wino_plan *pl, const float *x, float *y, const float *bias, const float *res,
                      long chunk, float *V, float *M, int tid, int nt)
{
    const struct conv2d_shape *s = pl->s;
    const long t0 = chunk * pl->tc;
    const int tn = (int)(pl->ntiles - t0 < pl->tc ? pl->ntiles - t0 : pl->tc);
    const int nq = (tn + GEMM_NR - 1) / GEMM_NR;
    const size_t ldm = (size_t)(tn + VL - 1) / VL * 36 * VL;
    transform_input(pl, x, t0, tn, V, nq, s->C * tid / nt, s->C * (tid + 1) / nt);
    if (nt > 1) {
#pragma omp barrier
    }
    for (int xi = tid; xi < 36; xi += nt) {
        struct gemm_op g = {
            .M = s->OC, .N = tn, .K = s->C,
            .a_kind = GEMM_A_PACKED, .a_packed = pl->U + (size_t)xi * pl->mp * pl->ups, .a_pstride = pl->ups,
            .b_kind = GEMM_B_PACKED, .b_packed = V + (size_t)xi * GEMM_NR,
            .b_pstride = (size_t)s->C * 36 * GEMM_NR, .b_ld = (size_t)36 * GEMM_NR,
            .c = M + (size_t)xi * VL, .ldc = ldm, .c_vs = (size_t)36 * VL,
        };
        SX(gemm_run)(&g, 1);
    }
    if (nt > 1) {
#pragma omp barrier
    }
    transform_output(pl, M, ldm, t0, tn, y, bias, res, s->OC * tid / nt, s->OC * (tid + 1) / nt);
    if (nt > 1) { /* V and M are reused by the next chunk */
#pragma omp barrier
    }
}

void SX(winograd_conv3x3)(const struct ops *o, float *y, const float *x, const struct tensor *w, const float *bias,
                          const float *res, const struct conv2d_shape *s)
{
    struct wino_plan pl = {.s = s};
    pl.OH = conv2d_out_h(s);
    pl.OW = conv2d_out_w(s);
    if (pl.OH <= 0 || pl.OW <= 0 || s->OC <= 0) return;
    pl.nty = (pl.OH + 3) / 4;
    pl.ntx = (pl.OW + 3) / 4;
    pl.ntiles = (long)pl.nty * pl.ntx;
    pl.mp = (s->OC + GEMM_MR - 1) / GEMM_MR;
    pl.ups = (size_t)s->C * GEMM_MR + VL;
    pl.U = simd_scratch(SCRATCH_W, (size_t)36 * pl.mp * pl.ups * sizeof(float));
    /* Chunk size: each product reuses a U_xi panel across the chunk's tiles,
     * so too few tiles make U (36 OC C floats: 38 MB at 512 channels)
     * stream from memory for little work; too many make V and M outgrow
     * the caches. Measured (tools/kbench, 1 thread): when U is small
     * (128 channels: 2.4 MB, cache-resident) one B panel of tiles per chunk
     * is fastest, V and M staying near L2; when it is large, ~24 MB of V + M
     * per thread (hundreds of tiles) amortises its reads. */
    const size_t ubytes = (size_t)36 * s->C * s->OC * sizeof(float);
    const long budget = ubytes <= (4u << 20) ? 4L << 20 : 24L << 20;
    const long min_tc = (ubytes <= (4u << 20) ? 1 : 2) * GEMM_NR;
    long tc = budget / ((long)36 * (s->C + s->OC) * (long)sizeof(float));
    tc = tc / GEMM_NR * GEMM_NR;
    if (tc < min_tc) tc = min_tc;
    /* and a multiple of the thread count of equal chunks, so no thread idles */
    const int threads = o->threads > 0 ? o->threads : 1;
    long nchunks = (pl.ntiles + tc - 1) / tc;
    nchunks = (nchunks + threads - 1) / threads * threads;
    tc = ((pl.ntiles + nchunks - 1) / nchunks + GEMM_NR - 1) / GEMM_NR * GEMM_NR;
    pl.tc = (int)tc;
    nchunks = (pl.ntiles + pl.tc - 1) / pl.tc;
    /* fewer chunks than threads (a small image): the team shares each chunk */
    const int team = nchunks < threads;
    float *tV = NULL, *tM = NULL;
    if (team) {
        tV = simd_scratch(SCRATCH_T0, chunk_v_floats(&pl) * sizeof(float));
        tM = simd_scratch(SCRATCH_T1, chunk_m_floats(&pl) * sizeof(float));
    }

#pragma omp parallel num_threads(threads) if (threads > 1)
    {
#pragma omp for schedule(static)
        for (int p = 0; p < pl.mp; p++) transform_weights_panel(&pl, w, p);
        if (team) {
            const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
            for (long ch = 0; ch < nchunks; ch++) run_chunk(&pl, x, y, bias, res, ch, tV, tM, tid, nt);
        } else {
#pragma omp for schedule(dynamic, 1)
            for (long ch = 0; ch < nchunks; ch++) {
                float *V = simd_scratch(SCRATCH_T0, chunk_v_floats(&pl) * sizeof(float));
                float *M = simd_scratch(SCRATCH_T1, chunk_m_floats(&pl) * sizeof(float));
                run_chunk(&pl, x, y, bias, res, ch, V, M, 0, 1);
            }
        }
    }
}
