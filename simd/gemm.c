/* gemm.c — packing, blocking and threading around the micro-kernel (gemm.h).
 *
 * Loop nest (one parallel team for the whole product):
 *   for each k block (<= GEMM_KC):
 *       pack all of A's panels for this k block            (threads split panels)
 *       for each block of <= GEMM_NCP B panels:
 *           pack those B panels                            (threads split panels)
 *           for each work item (MC rows of A x one B panel): (threads split items)
 *               for each A panel of the item: micro-kernel
 * so each element of A and B is converted and packed exactly once, the B
 * panel of a work item stays in cache while MC/MR tiles stream past it, and
 * the threads never write the same C element. An f32 A (activations) is
 * read in place, with no copy. Small or wide products take a second loop
 * nest without shared packing (gemm_worker_private below).
 *
 * Weights are converted and packed on every call rather than cached per
 * tensor: measured on the UNet's shapes the packing is 1% of a linear
 * layer at 4096 tokens, 4% at 1024, 12% at 256 and 20-30% at 64-77 tokens
 * (where the layer is bound by reading the weights once anyway), while a
 * cached f32 copy would double the weights' memory (SD-Turbo's UNet: 1.7 GB
 * of f16 becoming 3.4 GB more) against a 2.3 GB peak-RSS target. */
#include <omp.h>
#include <string.h>

#include "gemm.h"
#include "scratch.h"

/* ---- loading stored rows of any float dtype ---- */

VINLINE vf load_dt(const void *p, enum dtype dt)
{
    switch (dt) {
    case DT_F16: return vf_load_f16(p);
    case DT_BF16: return vf_load_bf16(p);
    default: return vf_load_f32u(p);
    }
}

static inline float get_dt(const void *base, size_t i, enum dtype dt)
{
    const unsigned char *p = base;
    uint16_t h;
    float f;
    switch (dt) {
    case DT_F16: memcpy(&h, p + 2 * i, 2); return f16_to_f32(h);
    case DT_BF16: memcpy(&h, p + 2 * i, 2); return bf16_to_f32(h);
    default: memcpy(&f, p + 4 * i, 4); return f;
    }
}

static inline size_t dt_size(enum dtype dt)
{
    return dt == DT_F16 || dt == DT_BF16 ? 2 : 4;
}

/* dst[k * W + i] = src row (r0 + i), element k0 + k, for i < nrows (zero for
 * nrows <= i < W), k < kc. Whole VL x VL blocks go through an in-register
 * transpose; when W is not a multiple of VL (then W < VL) each store writes a
 * full vector and the next row's store overwrites the spill, so the panel
 * needs VL floats of slack after it. */
VINLINE void pack_t_dt(float *dst, const int W, const unsigned char *src, enum dtype dt, size_t ld, int r0, int nrows,
                       int k0, int kc)
{
    const size_t es = dt_size(dt);
    int k = 0;
    for (; k + VL <= kc; k += VL) {
        for (int g = 0; g < W; g += VL) {
            vf r[VL];
#pragma GCC unroll 16
            for (int t = 0; t < VL; t++) {
                int i = g + t;
                r[t] = i < nrows ? load_dt(src + ((size_t)(r0 + i) * ld + (size_t)(k0 + k)) * es, dt) : vf_zero();
            }
            vf_transpose(r);
#pragma GCC unroll 16
            for (int t = 0; t < VL; t++) vf_store(dst + (size_t)(k + t) * W + g, r[t]);
        }
    }
    for (; k < kc; k++)
        for (int i = 0; i < W; i++)
            dst[(size_t)k * W + i] = i < nrows ? get_dt(src, (size_t)(r0 + i) * ld + (size_t)(k0 + k), dt) : 0.0f;
}

static void pack_t(float *dst, const int W, const void *src, enum dtype dt, size_t ld, int r0, int nrows, int k0,
                   int kc)
{
    /* one instantiation per (width, dtype) so the inner loops are branch-free */
    if (W == GEMM_MR) {
        switch (dt) {
        case DT_F16: pack_t_dt(dst, GEMM_MR, src, DT_F16, ld, r0, nrows, k0, kc); return;
        case DT_BF16: pack_t_dt(dst, GEMM_MR, src, DT_BF16, ld, r0, nrows, k0, kc); return;
        default: pack_t_dt(dst, GEMM_MR, src, DT_F32, ld, r0, nrows, k0, kc); return;
        }
    }
    switch (dt) {
    case DT_F16: pack_t_dt(dst, GEMM_NR, src, DT_F16, ld, r0, nrows, k0, kc); return;
    case DT_BF16: pack_t_dt(dst, GEMM_NR, src, DT_BF16, ld, r0, nrows, k0, kc); return;
    default: pack_t_dt(dst, GEMM_NR, src, DT_F32, ld, r0, nrows, k0, kc); return;
    }
}

_Static_assert(GEMM_MR <= VL || GEMM_MR % VL == 0, "pack_t's overlapping stores need W <= VL or W % VL == 0");
_Static_assert(GEMM_NR % VL == 0, "NR is whole vectors");

/* B[k][n] = src[k * ld + n] (f32): rows are already vectors. */
static void pack_b_rows(float *dst, const float *src, size_t ld, int n0, int nvalid, int k0, int kc)
{
    for (int k = 0; k < kc; k++) {
        const float *s = src + (size_t)(k0 + k) * ld + n0;
        float *d = dst + (size_t)k * GEMM_NR;
        if (nvalid == GEMM_NR) {
            for (int j = 0; j < GEMM_NV; j++) vf_store(d + j * VL, vf_load(s + j * VL));
        } else {
            for (int j = 0; j < GEMM_NR; j++) d[j] = j < nvalid ? s[j] : 0.0f;
        }
    }
}

/* Implicit im2col: the panel of NR output pixels n0.. for kernel taps k0..
 * The panel's pixels fall into runs along output rows (one run when the
 * image is wider than the panel, several when it is narrower); for each
 * tap a run reads one input row, contiguous at stride 1: vector copies when
 * the whole panel is one run inside the image, else a copy loop with zero
 * ends (the padding). */
struct im2col_run {
    int j, oy, ox, len; /* panel columns j .. j + len - 1 are pixels (oy, ox ..) */
};

static void pack_b_im2col(float *dst, const float *x, const struct conv2d_shape *s, int n0, int nvalid, int k0,
                          int kc)
{
    const int OW = conv2d_out_w(s), taps = s->KH * s->KW, st = s->stride;
    struct im2col_run runs[GEMM_NR];
    int nruns = 0;
    for (int j = 0; j < nvalid;) {
        int n = n0 + j, ox = n % OW, len = OW - ox < nvalid - j ? OW - ox : nvalid - j;
        runs[nruns++] = (struct im2col_run){j, n / OW, ox, len};
        j += len;
    }
    for (int kk = 0; kk < kc; kk++) {
        const int k = k0 + kk, c = k / taps, ky = (k % taps) / s->KW, kx = k % s->KW;
        float *d = dst + (size_t)kk * GEMM_NR;
        const float *plane = x + (size_t)c * s->H * s->W;
        if (nruns == 1 && nvalid == GEMM_NR && st == 1) {
            const int iy = runs[0].oy + ky - s->pad_top, ix = runs[0].ox + kx - s->pad_left;
            if (iy >= 0 && iy < s->H && ix >= 0 && ix + GEMM_NR <= s->W) {
                const float *row = plane + (size_t)iy * s->W + ix;
                for (int j = 0; j < GEMM_NV; j++) vf_store(d + j * VL, vf_load(row + j * VL));
                continue;
            }
        }
        for (int j = nvalid; j < GEMM_NR; j++) d[j] = 0.0f;
        for (int r = 0; r < nruns; r++) {
            const struct im2col_run *u = &runs[r];
            float *o = d + u->j;
            const int iy = u->oy * st + ky - s->pad_top;
            if (iy < 0 || iy >= s->H) {
                for (int j = 0; j < u->len; j++) o[j] = 0.0f;
                continue;
            }
            const float *row = plane + (size_t)iy * s->W;
            /* output columns whose input column ix = ox st + kx - pad_left is inside [0, W) */
            const int off = kx - s->pad_left;
            int lo = off >= 0 ? 0 : (-off + st - 1) / st - u->ox;
            int hi = (s->W - 1 - off) / st + 1 - u->ox; /* exclusive, in run coordinates */
            if (s->W - 1 - off < 0) hi = 0;
            if (lo < 0) lo = 0;
            if (hi > u->len) hi = u->len;
            if (lo > hi) lo = hi;
            for (int j = 0; j < lo; j++) o[j] = 0.0f;
            if (st == 1) {
                if (hi > lo) memcpy(o + lo, row + u->ox + lo + off, (size_t)(hi - lo) * sizeof(float));
            } else {
                for (int j = lo; j < hi; j++) o[j] = row[(u->ox + j) * st + off];
            }
            for (int j = hi; j < u->len; j++) o[j] = 0.0f;
        }
    }
}

/* ---- the driver ---- */

struct gemm_plan {
    const struct gemm_op *g;
    int nkb, kcb;        /* k blocks and their (balanced) size */
    int mp, np, ncp;     /* A panels, B panels, B panels per block */
    size_t a_ps, b_ps;   /* panel strides in the pack buffers */
    float *abuf, *bbuf;
    int a_direct;        /* A is an f32 row-major matrix read in place (only a ragged last panel is packed) */
    long *next;          /* the next unclaimed work item of the current block (shared by the team) */
};

/* where packed A panel p lives (direct mode packs only the last one) */
static float *a_slot(const struct gemm_plan *pl, int p)
{
    return pl->abuf + (pl->a_direct ? 0 : (size_t)p * pl->a_ps);
}

static int a_panel_direct(const struct gemm_plan *pl, int p)
{
    return pl->a_direct && (p + 1) * GEMM_MR <= pl->g->M;
}

static void pack_a_panel(const struct gemm_plan *pl, int p, int k0, int kc)
{
    const struct gemm_op *g = pl->g;
    int m0 = p * GEMM_MR, rows = g->M - m0 < GEMM_MR ? g->M - m0 : GEMM_MR;
    pack_t(a_slot(pl, p), GEMM_MR, g->a.p, g->a.dt, g->a.ld, m0, rows, k0, kc);
}

static void pack_b_panel(const struct gemm_plan *pl, int q, float *dst, int k0, int kc)
{
    const struct gemm_op *g = pl->g;
    int n0 = q * GEMM_NR, cols = g->N - n0 < GEMM_NR ? g->N - n0 : GEMM_NR;
    switch (g->b_kind) {
    case GEMM_B_ROWS: pack_b_rows(dst, g->b.p, g->b.ld, n0, cols, k0, kc); break;
    case GEMM_B_ROWS_T: pack_t(dst, GEMM_NR, g->b.p, g->b.dt, g->b.ld, n0, cols, k0, kc); break;
    case GEMM_B_IM2COL: pack_b_im2col(dst, g->b.p, g->b.conv, n0, cols, k0, kc); break;
    case GEMM_B_PACKED: break;
    }
}

/* One MR x NR tile: A panel p (A[i][k] at a[k acs + i ars]), B panel q,
 * both already at k0. */
static void do_tile(const struct gemm_op *g, int p, int q, const float *a, size_t acs, size_t ars, const float *b,
                    size_t ldb, int kc, int first)
{
    const int m0 = p * GEMM_MR, n0 = q * GEMM_NR;
    const int mr = g->M - m0 < GEMM_MR ? g->M - m0 : GEMM_MR;
    const int nr = g->N - n0 < GEMM_NR ? g->N - n0 : GEMM_NR;
    const size_t cvs = g->c_vs ? g->c_vs : VL;
    const size_t at = (size_t)m0 * g->ldc + (size_t)(n0 / VL) * cvs; /* n0 is whole vectors */
    float *c = g->c + at;
    /* the first k block starts from res + bias, later ones from C */
    const float *cin = first ? (g->res ? g->res + at : NULL) : c;
    const float *bn = first && g->bias_n ? g->bias_n + n0 : NULL;
    const float *bm = first && g->bias_m ? g->bias_m + m0 : NULL;
    if (mr == GEMM_MR && nr == GEMM_NR) {
        if (acs == GEMM_MR && cvs == VL && ldb == GEMM_NR) /* packed, plain: constants for the compiler */
            gemm_tile(GEMM_MR, GEMM_NV, kc, a, GEMM_MR, 1, b, GEMM_NR, c, g->ldc, cin, g->ldc, bn, bm);
        else if (cvs == VL && ldb == GEMM_NR)
            gemm_tile(GEMM_MR, GEMM_NV, kc, a, 1, ars, b, GEMM_NR, c, g->ldc, cin, g->ldc, bn, bm);
        else
            gemm_tile_vs(GEMM_MR, GEMM_NV, kc, a, acs, ars, b, ldb, c, g->ldc, cvs, cin, g->ldc, bn, bm);
        return;
    }
    /* edge tile: through a full-size buffer, padded with zeros */
    float tile[GEMM_MR * GEMM_NR], bnp[GEMM_NR], bmp[GEMM_MR];
    memset(tile, 0, sizeof tile);
    if (cin)
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) tile[i * GEMM_NR + j] = cin[(size_t)i * g->ldc + (size_t)(j / VL) * cvs + j % VL];
    if (bn) {
        memset(bnp, 0, sizeof bnp);
        memcpy(bnp, bn, (size_t)nr * sizeof(float));
    }
    if (bm) {
        memset(bmp, 0, sizeof bmp);
        memcpy(bmp, bm, (size_t)mr * sizeof(float));
    }
    gemm_tile(GEMM_MR, GEMM_NV, kc, a, acs, ars, b, ldb, tile, GEMM_NR, tile, GEMM_NR, bn ? bnp : NULL,
              bm ? bmp : NULL);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) c[(size_t)i * g->ldc + (size_t)(j / VL) * cvs + j % VL] = tile[i * GEMM_NR + j];
}

/* Work item: the A panels of row block ic against B panel q0 + q. */
static void run_item(const struct gemm_plan *pl, int ic, int q0, int q, int kb, int k0, int kc)
{
    const struct gemm_op *g = pl->g;
    const size_t ldb = g->b_kind == GEMM_B_PACKED && g->b_ld ? g->b_ld : GEMM_NR;
    const float *b = g->b_kind == GEMM_B_PACKED ? g->b_packed + (size_t)(q0 + q) * g->b_pstride + (size_t)k0 * ldb
                                                : pl->bbuf + (size_t)q * pl->b_ps;
    const int p1 = (ic + 1) * GEMM_MCP < pl->mp ? (ic + 1) * GEMM_MCP : pl->mp;
    for (int p = ic * GEMM_MCP; p < p1; p++) {
        if (a_panel_direct(pl, p)) {
            const float *a = (const float *)g->a.p + (size_t)p * GEMM_MR * g->a.ld + k0;
            do_tile(g, p, q0 + q, a, 1, g->a.ld, b, ldb, kc, kb == 0);
        } else {
            const float *a = g->a_kind == GEMM_A_PACKED ? g->a_packed + (size_t)p * g->a_pstride + (size_t)k0 * GEMM_MR
                                                        : a_slot(pl, p);
            do_tile(g, p, q0 + q, a, GEMM_MR, 1, b, ldb, kc, kb == 0);
        }
    }
}

static void gemm_worker(const struct gemm_plan *pl, int tid, int nt)
{
    const struct gemm_op *g = pl->g;
    for (int kb = 0; kb < pl->nkb; kb++) {
        const int k0 = kb * pl->kcb, kc = g->K - k0 < pl->kcb ? g->K - k0 : pl->kcb;
        if (g->a_kind != GEMM_A_PACKED) {
            for (int p = tid; p < pl->mp; p += nt)
                if (!a_panel_direct(pl, p)) pack_a_panel(pl, p, k0, kc);
        }
        for (int q0 = 0; q0 < pl->np; q0 += pl->ncp) {
            const int nq = pl->np - q0 < pl->ncp ? pl->np - q0 : pl->ncp;
            if (g->b_kind != GEMM_B_PACKED) {
                for (int q = tid; q < nq; q += nt) pack_b_panel(pl, q0 + q, pl->bbuf + (size_t)q * pl->b_ps, k0, kc);
            }
            if (tid == 0) *pl->next = 0; /* nobody claims items before the barrier */
            if (nt > 1) {
#pragma omp barrier
            }
            /* Threads claim work items as they go rather than in fixed halves,
             * so a thread the OS descheduled (a busy machine) is covered by
             * the other. Whole rows of items (one A block against every B
             * panel) while there are enough of them, to keep each thread's A
             * block in its own L2. Which thread computes an item does not
             * change its result. */
            const int nic = (pl->mp + GEMM_MCP - 1) / GEMM_MCP;
            const long items = (long)nic * nq, grab = nic >= 2 * nt ? nq : 1;
            for (;;) {
                long it0;
                if (nt > 1) {
#pragma omp atomic capture
                    {
                        it0 = *pl->next;
                        *pl->next += grab;
                    }
                } else {
                    it0 = *pl->next;
                    *pl->next += grab;
                }
                if (it0 >= items) break;
                const long it1 = it0 + grab < items ? it0 + grab : items;
                for (long it = it0; it < it1; it++) run_item(pl, (int)(it / nq), q0, (int)(it % nq), kb, k0, kc);
            }
            if (nt > 1) {
#pragma omp barrier
            }
        }
    }
}

/* Without shared packing: the work items are B panels, each a thread's own
 * from packing to the last k block: the item's C block (all M rows x NR)
 * stays in cache across the k blocks and the team never waits at a
 * barrier (on a busy machine each barrier can cost a whole time slice).
 * Used when A needs no packing (f32 activations read in place) or is small
 * (a single row block: the text encoders, the UNet's smallest level), and
 * there are enough B panels to share out, and M <= 1024 (each item reads
 * all of A: with more rows that costs more than the C traffic it saves; a
 * packed, large A would even be repacked per item). Measured: the wide
 * GEGLU products with K > 384 gain 10-20% (C is no longer read and written
 * once per k block). */
static void gemm_worker_private(const struct gemm_plan *pl, int nt)
{
    const struct gemm_op *g = pl->g;
    const int nic = (pl->mp + GEMM_MCP - 1) / GEMM_MCP;
    struct gemm_plan me = *pl;
    if (g->a_kind != GEMM_A_PACKED)
        me.abuf = simd_scratch(SCRATCH_A, (size_t)(pl->a_direct ? 1 : pl->mp) * pl->a_ps * sizeof(float));
    if (g->b_kind != GEMM_B_PACKED) me.bbuf = simd_scratch(SCRATCH_B, pl->b_ps * sizeof(float));
    for (;;) {
        long q;
        if (nt > 1) {
#pragma omp atomic capture
            q = (*pl->next)++;
        } else {
            q = (*pl->next)++;
        }
        if (q >= pl->np) break;
        for (int kb = 0; kb < pl->nkb; kb++) {
            const int k0 = kb * pl->kcb, kc = g->K - k0 < pl->kcb ? g->K - k0 : pl->kcb;
            if (g->a_kind != GEMM_A_PACKED)
                for (int p = 0; p < pl->mp; p++)
                    if (!a_panel_direct(&me, p)) pack_a_panel(&me, p, k0, kc);
            if (g->b_kind != GEMM_B_PACKED) pack_b_panel(&me, (int)q, me.bbuf, k0, kc);
            for (int ic = 0; ic < nic; ic++) run_item(&me, ic, (int)q, 0, kb, k0, kc);
        }
    }
}

void SX(gemm_run)(const struct gemm_op *g, int threads)
{
    if (g->M <= 0 || g->N <= 0) return;
    struct gemm_plan pl = {.g = g};
    pl.nkb = g->K > 0 ? (g->K + GEMM_KC - 1) / GEMM_KC : 1;
    pl.kcb = g->K > 0 ? (g->K + pl.nkb - 1) / pl.nkb : 0;
    pl.mp = (g->M + GEMM_MR - 1) / GEMM_MR;
    pl.np = (g->N + GEMM_NR - 1) / GEMM_NR;
    pl.ncp = pl.np < GEMM_NCP ? pl.np : GEMM_NCP;
    pl.a_ps = (size_t)pl.kcb * GEMM_MR + VL;
    pl.b_ps = (size_t)pl.kcb * GEMM_NR + VL;
    /* f32 rows are read in place (no copy of the activations); weights
     * (converted) and unaligned data are packed */
    pl.a_direct = g->a_kind == GEMM_A_ROWS && g->a.dt == DT_F32 && (uintptr_t)g->a.p % sizeof(float) == 0;
    long next = 0;
    pl.next = &next;
    /* below ~1M multiply-adds (a few microseconds) waking a second thread
     * costs about what it brings */
    const double work = (double)g->M * g->N * (g->K + 1);
    const int team = threads > 1 && work > 1e6 ? threads : 1;
    /* (the item's C block, M x NR floats, must stay in L2: M <= 1024) */
    if ((pl.mp <= GEMM_MCP || (pl.a_direct && pl.nkb > 1 && g->M <= 1024)) && pl.np >= 4 * team) {
#pragma omp parallel num_threads(team) if (team > 1)
        gemm_worker_private(&pl, omp_get_num_threads());
        return;
    }
    if (g->a_kind != GEMM_A_PACKED)
        pl.abuf = simd_scratch(SCRATCH_A, (size_t)(pl.a_direct ? 1 : pl.mp) * pl.a_ps * sizeof(float));
    if (g->b_kind != GEMM_B_PACKED) pl.bbuf = simd_scratch(SCRATCH_B, (size_t)pl.ncp * pl.b_ps * sizeof(float));
    if (team > 1) {
#pragma omp parallel num_threads(team)
        gemm_worker(&pl, omp_get_thread_num(), omp_get_num_threads());
    } else {
        gemm_worker(&pl, 0, 1);
    }
}
