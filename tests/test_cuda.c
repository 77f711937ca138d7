/* The CUDA backend (simd/cuda/) against the reference.
 *
 * 1. Parity: every kernel of the CUDA table against its ops_ref twin on
 *    awkward shapes (1, 7, 15, 17, 63, 65, 1023 elements; channels that are
 *    not multiples of 32; K from 1 to 2880; f32/f16/bf16 weights; residual
 *    aliasing the output; q/k/v as slices of one fused buffer). Each check
 *    states its tolerance and why (see the tolerance notes below).
 * 2. Conformance: the tiny SD-Turbo / SDXL-Turbo models of the suite run on
 *    the CUDA table (text encoders, every UNet step, VAE decode and encode)
 *    against the diffusers goldens at the manifest's tolerances.
 * 3. Errors: bad ids, unreadable dtypes and absurd allocations become
 *    messages, and error() clears them.
 *
 * Built in every configuration; without `make CUDA=1` it reports one skip,
 * and with it but without a device, one "skipped: no CUDA device" line.
 * `make cuda-emu-test` links it against the kernels compiled for the CPU
 * emulator in tools/cuda_emu, where every check runs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/check.h"

#ifndef ONESTEP_CUDA

int main(void)
{
    check_skip("test_cuda skipped: this build has no CUDA backend (make CUDA=1 test, or make cuda-build)");
    return check_summary();
}

#else

#include "../ref/arena.h"
#include "../ref/clip.h"
#include "../ref/unet.h"
#include "../ref/vae.h"
#include "../simd/cuda/ops_cuda.h"
#include "lib/conformance.h"
#include "lib/dumps.h"

static const struct ops *cu; /* the table under test */
static const struct ops *ref;

/* ---- data ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float urand(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static float *host_rand(size_t n, float scale, float offset)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * urand();
    return p;
}

static float *host_abs(const float *x, size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = fabsf(x[i]);
    return p;
}

/* A weight tensor in dtype dt holding n values drawn uniformly from
 * [-scale, scale); both backends read the same stored (rounded) values. */
struct wt {
    struct tensor t;
    void *data;
    float *f; /* the stored values widened, for |w| bounds */
};

static void wt_make(struct wt *w, const char *name, enum dtype dt, size_t n, float scale)
{
    memset(w, 0, sizeof *w);
    w->data = malloc((n ? n : 1) * 4);
    w->f = malloc((n ? n : 1) * sizeof *w->f);
    for (size_t i = 0; i < n; i++) {
        float v = scale * urand();
        if (dt == DT_F16) ((uint16_t *)w->data)[i] = f32_to_f16(v);
        else if (dt == DT_BF16) ((uint16_t *)w->data)[i] = f32_to_bf16(v);
        else ((float *)w->data)[i] = v;
    }
    w->t.name = name;
    w->t.dtype = dt;
    w->t.ndim = 1;
    w->t.shape[0] = (int64_t)n;
    w->t.data = w->data;
    for (size_t i = 0; i < n; i++) w->f[i] = tensor_get_f32(&w->t, (int64_t)i);
}

/* |w| as an f32 tensor (exact: |v| of any f16/bf16 value is a float) */
static void wt_abs(struct wt *a, const struct wt *w)
{
    size_t n = (size_t)w->t.shape[0];
    memset(a, 0, sizeof *a);
    a->data = host_abs(w->f, n);
    a->f = host_abs(w->f, n);
    a->t = w->t;
    a->t.dtype = DT_F32;
    a->t.data = a->data;
    a->t.backend_cache = NULL;
}

static void wt_free(struct wt *w)
{
    if (cu->release) cu->release(cu, &w->t, 1);
    free(w->data);
    free(w->f);
}

static float *dev_put(const float *host, size_t n)
{
    float *d = cu->alloc(cu, (n ? n : 1) * sizeof *d);
    if (d && n) cu->upload(cu, d, host, n);
    return d;
}

static float *dev_get(const float *dev, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    cu->download(cu, h, dev, n);
    return h;
}

/* ---- comparison ----
 * Element i passes when |got - ref| <= abs + rel*|ref_i| + bound*b_i. A
 * zero tolerance demands the same value (copies, adds, scales: IEEE-exact
 * on both sides). */
#define U32 (1.0 / 16777216.0) /* 2^-24: the unit roundoff of float */

struct tol {
    double abs, rel, bound;
    const float *b;
};

static int compare(const char *what, const float *got, const float *want, size_t n, struct tol t)
{
    double worst = 0.0, maxd = 0.0;
    size_t at = 0, bad_nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(want[i])) {
            if (isnan(got[i]) != isnan(want[i])) bad_nan++;
            continue;
        }
        double d = fabs((double)got[i] - (double)want[i]);
        double tol = t.abs + t.rel * fabs((double)want[i]) + (t.b ? t.bound * t.b[i] : 0.0);
        double r = d == 0.0 ? 0.0 : tol > 0.0 ? d / tol : INFINITY;
        if (d > maxd) maxd = d;
        if (r > worst) {
            worst = r;
            at = i;
        }
    }
    struct os_err err = {{0}};
    int failed = cu->error(cu, &err);
    return check(!failed && !bad_nan && worst <= 1.0, "%s: max|diff| %.3g, worst diff/tol %.3g (at %zu)%s%s", what,
                 maxd, worst, at, failed ? ": " : "", failed ? err.msg : "");
}

static const char *dt_name(enum dtype dt)
{
    return dt == DT_F16 ? "f16" : dt == DT_BF16 ? "bf16" : "f32";
}

/* ---- parity: elementwise ----
 * Activations: ops_ref evaluates them in double and rounds once; the CUDA
 * kernels in float with expf (2 ulp), erfcf (4 ulp), tanhf (2 ulp). GELU's
 * argument -x/sqrt(2) is rounded first, which moves erfc(x) by up to 2x^2
 * ulp (16 for |x| <= 4). Tolerance 64 ulp relative (64 * 2^-24 |ref|) plus
 * 1e-9 absolute for results near zero, where relative error is meaningless. */

static const struct tol TOL_ACT = {1e-9, 64 * U32, 0, NULL};
static const struct tol TOL_EXACT = {0, 0, 0, NULL};

static const size_t SIZES[] = {1, 7, 15, 17, 63, 65, 1023, 100003};
#define NSIZES (sizeof SIZES / sizeof SIZES[0])

static void parity_act(void)
{
    static const char *names[] = {"none", "silu", "gelu", "quick_gelu", "relu", "tanh"};
    for (int a = ACT_NONE; a <= ACT_TANH; a++) {
        for (size_t si = 0; si < NSIZES; si++) {
            size_t n = SIZES[si];
            float *x = host_rand(n, 4.0f, 0.0f), *want = malloc(n * sizeof *want);
            ref->act(ref, want, x, n, (enum act)a);
            float *dx = dev_put(x, n), *dy = cu->alloc(cu, n * sizeof *dy);
            cu->act(cu, dy, dx, n, (enum act)a);
            float *got = dev_get(dy, n);
            char what[96];
            snprintf(what, sizeof what, "act %s, n %zu (tol 64 ulp + 1e-9)", names[a], n);
            compare(what, got, want, n, a == ACT_NONE || a == ACT_RELU ? TOL_EXACT : TOL_ACT);
            if (a == ACT_SILU && n == 1023) { /* in place: y == x */
                cu->act(cu, dx, dx, n, (enum act)a);
                float *got2 = dev_get(dx, n);
                compare("act silu in place (y == x), n 1023", got2, want, n, TOL_ACT);
                free(got2);
            }
            cu->free(cu, dx);
            cu->free(cu, dy);
            free(x);
            free(want);
            free(got);
        }
    }
}

static void parity_geglu(void)
{
    static const int rows_[] = {1, 7, 65}, dims[] = {1, 15, 17, 320};
    for (int r = 0; r < 3; r++)
        for (int d = 0; d < 4; d++) {
            int rows = rows_[r], dim = dims[d];
            size_t nin = (size_t)rows * 2 * dim, nout = (size_t)rows * dim;
            float *x = host_rand(nin, 4.0f, 0.0f), *want = malloc(nout * sizeof *want);
            ref->geglu(ref, want, x, rows, dim);
            float *dx = dev_put(x, nin), *dy = cu->alloc(cu, nout * sizeof *dy);
            cu->geglu(cu, dy, dx, rows, dim);
            float *got = dev_get(dy, nout);
            char what[96];
            snprintf(what, sizeof what, "geglu %d x %d (tol 64 ulp + 1e-9: GELU's, one more rounding)", rows, dim);
            compare(what, got, want, nout, TOL_ACT);
            cu->free(cu, dx);
            cu->free(cu, dy);
            free(x);
            free(want);
            free(got);
        }
}

static void parity_simple(void)
{
    for (size_t si = 0; si < NSIZES; si++) {
        size_t n = SIZES[si];
        float *a = host_rand(n, 3.0f, 0.0f), *b = host_rand(n, 3.0f, 0.0f);
        float *w1 = malloc(n * sizeof *w1), *w2 = malloc(n * sizeof *w2);
        ref->add(ref, w1, a, b, n);
        ref->scale(ref, w2, a, 0.18215f, n);
        float *da = dev_put(a, n), *db = dev_put(b, n), *dy = cu->alloc(cu, n * sizeof *dy);
        char what[96];
        cu->add(cu, dy, da, db, n);
        float *g = dev_get(dy, n);
        snprintf(what, sizeof what, "add, n %zu (exact)", n);
        compare(what, g, w1, n, TOL_EXACT);
        free(g);
        cu->scale(cu, da, da, 0.18215f, n); /* in place */
        g = dev_get(da, n);
        snprintf(what, sizeof what, "scale in place, n %zu (exact)", n);
        compare(what, g, w2, n, TOL_EXACT);
        free(g);
        cu->free(cu, da);
        cu->free(cu, db);
        cu->free(cu, dy);
        free(a);
        free(b);
        free(w1);
        free(w2);
    }
    /* add_channel, in place as resnets use it */
    static const int shapes[][2] = {{1, 1}, {7, 65}, {33, 17}, {320, 63}};
    for (int i = 0; i < 4; i++) {
        int C = shapes[i][0], HW = shapes[i][1];
        size_t n = (size_t)C * HW;
        float *x = host_rand(n, 2.0f, 0.0f), *v = host_rand((size_t)C, 2.0f, 0.0f), *want = malloc(n * sizeof *want);
        ref->add_channel(ref, want, x, v, C, HW);
        float *dx = dev_put(x, n), *dv = dev_put(v, (size_t)C);
        cu->add_channel(cu, dx, dx, dv, C, HW);
        float *g = dev_get(dx, n);
        char what[96];
        snprintf(what, sizeof what, "add_channel in place, C %d HW %d (exact)", C, HW);
        compare(what, g, want, n, TOL_EXACT);
        cu->free(cu, dx);
        cu->free(cu, dv);
        free(x);
        free(v);
        free(want);
        free(g);
    }
}

static void parity_layout(void)
{
    /* transpose: tiles of 32 with ragged edges, and shapes taller than wide */
    static const int tr[][2] = {{1, 1}, {1, 65}, {65, 1}, {7, 65}, {33, 31}, {63, 1023}, {1023, 7}, {4096, 17}};
    for (int i = 0; i < 8; i++) {
        int rows = tr[i][0], cols = tr[i][1];
        size_t n = (size_t)rows * cols;
        float *x = host_rand(n, 1.0f, 0.0f), *want = malloc(n * sizeof *want);
        ref->transpose(ref, want, x, rows, cols);
        float *dx = dev_put(x, n), *dy = cu->alloc(cu, n * sizeof *dy);
        cu->transpose(cu, dy, dx, rows, cols);
        float *g = dev_get(dy, n);
        char what[96];
        snprintf(what, sizeof what, "transpose %d x %d (exact)", rows, cols);
        compare(what, g, want, n, TOL_EXACT);
        cu->free(cu, dx);
        cu->free(cu, dy);
        free(x);
        free(want);
        free(g);
    }
    /* nearest upsampling: exact 2x, identity, torch's float rule for odd
     * ratios (the UNet's forward_upsample_size path) and shrinking */
    static const int up[][5] = {{3, 7, 5, 14, 10}, {2, 5, 9, 5, 9}, {4, 5, 9, 7, 13}, {1, 3, 3, 17, 63},
                                {5, 9, 7, 4, 3}};
    for (int i = 0; i < 5; i++) {
        int C = up[i][0], H = up[i][1], W = up[i][2], OH = up[i][3], OW = up[i][4];
        size_t nin = (size_t)C * H * W, nout = (size_t)C * OH * OW;
        float *x = host_rand(nin, 1.0f, 0.0f), *want = malloc(nout * sizeof *want);
        ref->upsample_nearest(ref, want, x, C, H, W, OH, OW);
        float *dx = dev_put(x, nin), *dy = cu->alloc(cu, nout * sizeof *dy);
        cu->upsample_nearest(cu, dy, dx, C, H, W, OH, OW);
        float *g = dev_get(dy, nout);
        char what[96];
        snprintf(what, sizeof what, "upsample_nearest %d x %dx%d -> %dx%d (exact)", C, H, W, OH, OW);
        compare(what, g, want, nout, TOL_EXACT);
        cu->free(cu, dx);
        cu->free(cu, dy);
        free(x);
        free(want);
        free(g);
    }
    /* copy2d: one row with ld 0 (as unet.c concatenates), and a strided
     * gather into a wider destination */
    {
        size_t rows = 7, cols = 15, lds = 17, ldd = 33, nsrc = rows * lds, ndst = rows * ldd;
        float *src = host_rand(nsrc, 1.0f, 0.0f), *dst0 = host_rand(ndst, 1.0f, 0.0f);
        float *want = malloc(ndst * sizeof *want);
        memcpy(want, dst0, ndst * sizeof *want);
        ref->copy2d(ref, want, ldd, src, lds, rows, cols);
        float *ds = dev_put(src, nsrc), *dd = dev_put(dst0, ndst);
        cu->copy2d(cu, dd, ldd, ds, lds, rows, cols);
        float *g = dev_get(dd, ndst);
        compare("copy2d 7 x 15, ld 17 -> 33, the gaps untouched (exact)", g, want, ndst, TOL_EXACT);
        free(g);
        memcpy(want, dst0, ndst * sizeof *want);
        ref->copy2d(ref, want + 3, 0, src + 2, 0, 1, 100);
        cu->upload(cu, dd, dst0, ndst);
        cu->copy2d(cu, dd + 3, 0, ds + 2, 0, 1, 100);
        g = dev_get(dd, ndst);
        compare("copy2d one row of 100 with ld 0 (exact)", g, want, ndst, TOL_EXACT);
        cu->free(cu, ds);
        cu->free(cu, dd);
        free(src);
        free(dst0);
        free(want);
        free(g);
    }
}

/* ---- parity: normalisation ----
 * Both sides sum in double with the two-pass variance and evaluate
 * (x - mean) * inv * gamma + beta in double, rounding once: only the
 * reduction order differs, which moves the double result by ~1e-16 of the
 * data's scale, so the float results agree to 1 ulp (2^-23 |ref|) plus
 * 1e-12 of the largest |ref| (for outputs near zero, where x ~ mean).
 * group_norm + SiLU adds float SiLU's few ulp: 64 ulp. */

static void parity_norm(void)
{
    static const int ln[][2] = {{1, 1}, {7, 15}, {65, 17}, {3, 320}, {5, 1023}, {77, 1280}};
    static const enum dtype dts[] = {DT_F32, DT_F16, DT_BF16};
    for (int i = 0; i < 6; i++) {
        int rows = ln[i][0], dim = ln[i][1];
        size_t n = (size_t)rows * dim;
        enum dtype dt = dts[i % 3];
        /* an offset mean: the two-pass variance matters */
        float *x = host_rand(n, 1.5f, 3.0f), *want = malloc(n * sizeof *want);
        struct wt g, b;
        wt_make(&g, "ln.weight", dt, (size_t)dim, 1.0f);
        wt_make(&b, "ln.bias", dt, (size_t)dim, 0.5f);
        int with_beta = i != 2;
        ref->layer_norm(ref, want, x, &g.t, with_beta ? &b.t : NULL, rows, dim, 1e-5f);
        float *dx = dev_put(x, n), *dy = cu->alloc(cu, n * sizeof *dy);
        cu->layer_norm(cu, dy, dx, &g.t, with_beta ? &b.t : NULL, rows, dim, 1e-5f);
        float *got = dev_get(dy, n);
        double mx = 0;
        for (size_t k = 0; k < n; k++) mx = fmax(mx, fabs(want[k]));
        char what[128];
        snprintf(what, sizeof what, "layer_norm %d x %d, %s gamma%s (tol 1 ulp + 1e-12 max)", rows, dim, dt_name(dt),
                 with_beta ? " and beta" : ", no beta");
        struct tol t = {1e-12 * mx, 2 * U32, 0, NULL};
        compare(what, got, want, n, t);
        cu->free(cu, dx);
        cu->free(cu, dy);
        wt_free(&g);
        wt_free(&b);
        free(x);
        free(want);
        free(got);
    }
    /* group norm: groups of 2 channels x 7 px up to 1 channel x 100003 px
     * (split over 7 blocks), channel counts 6, 96, 40, a C % groups != 0 */
    static const int gn[][3] = {{6, 7, 3}, {64, 65, 32}, {96, 1023, 32}, {32, 65536, 32}, {4, 100003, 2}, {40, 63, 8}};
    for (int i = 0; i < 6; i++) {
        int C = gn[i][0], HW = gn[i][1], G = gn[i][2];
        size_t n = (size_t)C * HW;
        enum dtype dt = dts[i % 3];
        float *x = host_rand(n, 2.0f, -1.5f), *want = malloc(n * sizeof *want);
        struct wt g, b;
        wt_make(&g, "gn.weight", dt, (size_t)C, 1.0f);
        wt_make(&b, "gn.bias", dt, (size_t)C, 0.5f);
        for (int a = 0; a < 2; a++) {
            enum act act = a ? ACT_SILU : ACT_NONE;
            ref->group_norm(ref, want, x, &g.t, &b.t, C, HW, G, 1e-6f, act);
            float *dx = dev_put(x, n), *dy = cu->alloc(cu, n * sizeof *dy);
            cu->group_norm(cu, dy, dx, &g.t, &b.t, C, HW, G, 1e-6f, act);
            float *got = dev_get(dy, n);
            double mx = 0;
            for (size_t k = 0; k < n; k++) mx = fmax(mx, fabs(want[k]));
            char what[128];
            snprintf(what, sizeof what, "group_norm C %d HW %d groups %d, %s%s (tol %s)", C, HW, G, dt_name(dt),
                     a ? " + SiLU" : "", a ? "64 ulp + 1e-12 max" : "1 ulp + 1e-12 max");
            struct tol t = {1e-12 * mx, a ? 64 * U32 : 2 * U32, 0, NULL};
            compare(what, got, want, n, t);
            cu->free(cu, dx);
            cu->free(cu, dy);
            free(got);
        }
        wt_free(&g);
        wt_free(&b);
        free(x);
        free(want);
    }
    /* softmax: exp and the sum in double on both sides */
    static const int sm[][2] = {{1, 1}, {7, 17}, {3, 1023}, {2, 4097}};
    for (int i = 0; i < 4; i++) {
        int rows = sm[i][0], nn = sm[i][1];
        size_t n = (size_t)rows * nn;
        float *x = host_rand(n, 8.0f, 0.0f), *want = malloc(n * sizeof *want);
        ref->softmax(ref, want, x, rows, nn);
        float *dx = dev_put(x, n), *dy = cu->alloc(cu, n * sizeof *dy);
        cu->softmax(cu, dy, dx, rows, nn);
        float *got = dev_get(dy, n);
        char what[96];
        snprintf(what, sizeof what, "softmax %d x %d (tol 1 ulp + 1e-15)", rows, nn);
        struct tol t = {1e-15, 2 * U32, 0, NULL};
        compare(what, got, want, n, t);
        cu->free(cu, dx);
        cu->free(cu, dy);
        free(x);
        free(want);
        free(got);
    }
}

/* ---- parity: GEMMs ----
 * cuBLAS sums K products in float in its own order; the reference in
 * double. The classic bound for a float dot product in any summation order
 * is |err| <= K u sum|x_k w_k| (Higham, Accuracy and Stability of Numerical
 * Algorithms, 2nd ed., eq. 3.5), plus a rounding each for the bias and the
 * residual and one for the reference's own result: tolerance
 * (K + 3) * 2^-24 * B_i, where B = the same op on |x|, |w|, |b|, |res|
 * (computed by ops_ref). An indexing or layout mistake is off by O(|y|),
 * far outside it. */

/* One linear (s NULL: M x K -> N) or conv2d case of the above on the
 * reference and on CUDA: mode 0 no bias or residual, 1 bias + a separate
 * residual, 2 bias and the residual in y itself. Takes the weights w, b and
 * their magnitudes wa, ba (for the bound) and frees them. */
struct gemm {
    int M, K, N;
    const struct conv2d_shape *s;
};

static void gemm_op(const struct ops *o, const struct gemm *g, float *y, const float *x, const struct tensor *w,
                    const struct tensor *b, const float *r)
{
    if (g->s) o->conv2d(o, y, x, w, b, r, g->s);
    else o->linear(o, y, x, w, b, r, g->M, g->K, g->N);
}

static void gemm_parity(const struct gemm *g, size_t nx, size_t ny, int mode, struct wt *w, struct wt *b, struct wt *wa,
                        struct wt *ba, const char *what)
{
    float *x = host_rand(nx, 1.0f, 0.0f), *res = host_rand(ny, 2.0f, 0.0f);
    float *xa = host_abs(x, nx), *resa = host_abs(res, ny);
    float *want = malloc(ny * sizeof *want), *bound = malloc(ny * sizeof *bound);
    const struct tensor *bias = mode ? &b->t : NULL;
    if (mode == 2) memcpy(want, res, ny * sizeof *want);
    gemm_op(ref, g, want, x, &w->t, bias, mode == 1 ? res : mode == 2 ? want : NULL);
    gemm_op(ref, g, bound, xa, &wa->t, mode ? &ba->t : NULL, mode ? resa : NULL);
    float *dx = dev_put(x, nx), *dres = dev_put(res, ny), *dy = cu->alloc(cu, ny * sizeof *dy);
    if (mode == 2) cu->upload(cu, dy, res, ny);
    gemm_op(cu, g, dy, dx, &w->t, bias, mode == 1 ? dres : mode == 2 ? dy : NULL);
    float *got = dev_get(dy, ny);
    struct tol t = {0, 0, (g->K + 3) * U32, bound};
    compare(what, got, want, ny, t);
    cu->free(cu, dx);
    cu->free(cu, dres);
    cu->free(cu, dy);
    wt_free(w);
    wt_free(b);
    wt_free(wa);
    wt_free(ba);
    free(x);
    free(res);
    free(xa);
    free(resa);
    free(want);
    free(bound);
    free(got);
}

static void parity_linear(void)
{
    static const int mkn[][3] = {{1, 1, 1}, {1, 7, 17}, {7, 15, 65}, {65, 63, 17}, {77, 1023, 33}, {17, 1, 15},
                                 {4, 320, 1280}, {130, 2560, 7}};
    static const enum dtype dts[] = {DT_F32, DT_F16, DT_BF16};
    for (int i = 0; i < 8; i++) {
        for (int d = 0; d < 3; d++) {
            for (int mode = 0; mode < 3; mode++) { /* 0: no bias/res; 1: bias + separate res; 2: bias, res == y */
                int M = mkn[i][0], K = mkn[i][1], N = mkn[i][2];
                size_t nx = (size_t)M * K, ny = (size_t)M * N;
                struct wt w, b, wa, ba;
                wt_make(&w, "linear.weight", dts[d], (size_t)N * K, 1.0f);
                wt_make(&b, "linear.bias", dts[d], (size_t)N, 1.0f);
                wt_abs(&wa, &w);
                wt_abs(&ba, &b);
                w.t.ndim = wa.t.ndim = 2;
                w.t.shape[0] = wa.t.shape[0] = N;
                w.t.shape[1] = wa.t.shape[1] = K;
                char what[160];
                snprintf(what, sizeof what, "linear M %d K %d N %d, %s weights%s (tol (K+3) u sum|x w|)", M, K, N,
                         dt_name(dts[d]), mode == 0 ? "" : mode == 1 ? ", bias + residual" : ", bias, residual == y");
                struct gemm g = {M, K, N, NULL};
                gemm_parity(&g, nx, ny, mode, &w, &b, &wa, &ba, what);
            }
        }
    }
}

static void parity_conv(void)
{
    /* C, H, W, OC, KH, KW, stride, pad t, l, b, r */
    static const int cs[][11] = {
        {3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1},       /* tiny, odd channels */
        {17, 8, 8, 33, 1, 1, 1, 0, 0, 0, 0},     /* pointwise: the direct GEMM */
        {4, 9, 7, 7, 3, 3, 2, 0, 0, 1, 1},       /* the VAE encoder's asymmetric downsampler */
        {8, 17, 15, 8, 3, 3, 2, 1, 1, 1, 1},     /* the UNet's symmetric downsampler */
        {65, 5, 5, 15, 3, 3, 1, 1, 1, 1, 1},     /* K = 585 */
        {64, 33, 31, 20, 3, 3, 1, 1, 1, 1, 1},   /* 576 x 1023 im2col: chunked under a 1 MiB cap */
        {320, 8, 8, 17, 3, 3, 1, 1, 1, 1, 1},    /* K = 2880 */
        {5, 6, 6, 3, 1, 1, 1, 1, 1, 1, 1},       /* 1x1 with padding: not the direct path */
        {2, 1, 1, 3, 3, 3, 1, 1, 1, 1, 1},       /* 1 pixel, every tap but one in the padding */
        {3, 6, 7, 4, 3, 3, 1, 0, 1, 2, 0},       /* four different pads: top/left/bottom/right not confused */
        {3, 7, 8, 5, 3, 1, 1, 1, 0, 1, 0},       /* a 3x1 kernel: KH and KW not confused */
    };
    static const enum dtype dts[] = {DT_F32, DT_F16, DT_BF16};
    for (int i = 0; i < (int)(sizeof cs / sizeof cs[0]); i++) {
        for (int mode = 0; mode < 3; mode++) {
            const int *c = cs[i];
            struct conv2d_shape s = {c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]};
            enum dtype dt = dts[(i + mode) % 3];
            const int OH = conv2d_out_h(&s), OW = conv2d_out_w(&s);
            const size_t nx = (size_t)s.C * s.H * s.W, ny = (size_t)s.OC * OH * OW;
            const size_t nw = (size_t)s.OC * s.C * s.KH * s.KW;
            const int K = s.C * s.KH * s.KW;
            struct wt w, b, wa, ba;
            wt_make(&w, "conv.weight", dt, nw, 1.0f);
            wt_make(&b, "conv.bias", dt, (size_t)s.OC, 1.0f);
            wt_abs(&wa, &w);
            wt_abs(&ba, &b);
            char what[200];
            snprintf(what, sizeof what, "conv2d %d x %dx%d -> %d x %dx%d, %dx%d/%d pad %d,%d,%d,%d, %s%s (tol (K+3) u sum|x w|)",
                     s.C, s.H, s.W, s.OC, OH, OW, s.KH, s.KW, s.stride, s.pad_top, s.pad_left, s.pad_bottom,
                     s.pad_right, dt_name(dt), mode == 0 ? "" : mode == 1 ? ", bias + residual" : ", bias, residual == y");
            struct gemm g = {0, K, 0, &s};
            gemm_parity(&g, nx, ny, mode, &w, &b, &wa, &ba, what);
        }
    }
}

static void parity_embedding(void)
{
    static const enum dtype dts[] = {DT_F32, DT_F16, DT_BF16};
    for (int d = 0; d < 3; d++) {
        const int rows = 50, dim = 17, n = 6;
        struct wt t;
        wt_make(&t, "token_embedding.weight", dts[d], (size_t)rows * dim, 1.0f);
        t.t.ndim = 2;
        t.t.shape[0] = rows;
        t.t.shape[1] = dim;
        int32_t ids[6] = {0, 49, 3, 3, 17, 0};
        float *want = malloc((size_t)n * dim * sizeof *want);
        ref->embedding(ref, want, &t.t, ids, n, dim);
        float *dy = cu->alloc(cu, (size_t)n * dim * sizeof *dy);
        cu->embedding(cu, dy, &t.t, ids, n, dim);
        float *got = dev_get(dy, (size_t)n * dim);
        char what[96];
        snprintf(what, sizeof what, "embedding of 6 ids from a 50 x 17 %s table (exact widening)", dt_name(dts[d]));
        compare(what, got, want, (size_t)n * dim, TOL_EXACT);
        cu->free(cu, dy);
        wt_free(&t);
        free(want);
        free(got);
    }
}

/* ---- parity: attention ----
 * Float scores q.k (fmaf over head_dim) scaled: absolute error E <=
 * (head_dim + 2) u scale max_ij sum_c |q_ic k_jc|. Softmax weights then carry
 * relative error <= 2E plus a few ulp from expf and the shifted argument,
 * the running-max rescales and the sums over nk keys add about 2 nk u, and
 * the output is a weighted mean of v: tolerance (4E + (2 nk + 32) u) max|v|.
 * A wrong key, head or stride moves outputs by O(max|v|). */

static void parity_attention(void)
{
    /* nq, nk, heads, head_dim, causal, fused (q/k/v slices of one buffer) */
    static const int as[][6] = {
        {1, 1, 1, 1, 0, 0},    {7, 7, 2, 8, 1, 1},       /* CLIP-like, tiny */
        {77, 77, 3, 64, 1, 1}, {65, 77, 5, 64, 0, 0},    /* CLIP; cross-attention to 77 tokens */
        {17, 1023, 1, 40, 0, 0}, {65, 65, 2, 130, 0, 1}, /* head_dim not a multiple of 32, 2 chunks */
        {9, 40, 1, 512, 0, 0}, {5, 33, 1, 1000, 0, 0},   /* the VAE's 512; the 1024 limit */
        {100, 100, 2, 64, 1, 0},                        /* causal across several query blocks */
    };
    for (int i = 0; i < (int)(sizeof as / sizeof as[0]); i++) {
        const int nq = as[i][0], nk = as[i][1], H = as[i][2], hd = as[i][3], causal = as[i][4], fused = as[i][5];
        const int width = H * hd;
        struct attn_shape s = {nq, nk, H, hd, width, width, width, width + 3, causal, 1.0f / sqrtf((float)hd)};
        size_t nqb, nkb, nvb;
        float *q, *k, *v, *buf = NULL;
        if (fused) { /* one [tokens, 3*width] buffer: q | k | v, as a fused projection would give */
            if (nq != nk) continue;
            s.ldq = s.ldk = s.ldv = 3 * width;
            buf = host_rand((size_t)nq * 3 * width, 1.0f, 0.0f);
            q = buf;
            k = buf + width;
            v = buf + 2 * width;
            nqb = nkb = nvb = (size_t)nq * 3 * width;
        } else {
            q = host_rand((size_t)nq * width, 1.0f, 0.0f);
            k = host_rand((size_t)nk * width, 1.0f, 0.0f);
            v = host_rand((size_t)nk * width, 1.0f, 0.0f);
            nqb = (size_t)nq * width;
            nkb = nvb = (size_t)nk * width;
        }
        const size_t no = (size_t)nq * s.ldo;
        float *want = calloc(no, sizeof *want);
        ref->attention(ref, want, q, k, v, &s);
        double qk = 0, vmax = 0;
        for (int h = 0; h < H; h++)
            for (int a = 0; a < nq; a++)
                for (int b = 0; b < nk; b++) {
                    double d = 0;
                    for (int c = 0; c < hd; c++)
                        d += fabs((double)q[(size_t)a * s.ldq + h * hd + c] * k[(size_t)b * s.ldk + h * hd + c]);
                    if (d > qk) qk = d;
                }
        for (int b = 0; b < nk; b++)
            for (int c = 0; c < width; c++) vmax = fmax(vmax, fabs(v[(size_t)b * s.ldv + c]));
        const double E = (hd + 2) * U32 * s.scale * qk;
        const double tol = (4 * E + (2.0 * nk + 32) * U32) * vmax;
        float *dq, *dk, *dv, *dbuf = NULL;
        if (fused) {
            dbuf = dev_put(buf, nqb);
            dq = dbuf;
            dk = dbuf + width;
            dv = dbuf + 2 * width;
        } else {
            dq = dev_put(q, nqb);
            dk = dev_put(k, nkb);
            dv = dev_put(v, nvb);
        }
        float *zero = calloc(no, sizeof *zero);
        float *dout = dev_put(zero, no);
        cu->attention(cu, dout, dq, dk, dv, &s);
        float *got = dev_get(dout, no);
        char what[200];
        snprintf(what, sizeof what, "attention nq %d nk %d heads %d head_dim %d%s%s, ldo %d (tol %.2g)", nq, nk, H, hd,
                 causal ? " causal" : "", fused ? " fused qkv" : "", s.ldo, tol);
        struct tol t = {tol, 0, 0, NULL};
        compare(what, got, want, no, t); /* the ldo gaps stay 0 on both sides */
        cu->free(cu, dout);
        if (fused) {
            cu->free(cu, dbuf);
            free(buf);
        } else {
            cu->free(cu, dq);
            cu->free(cu, dk);
            cu->free(cu, dv);
            free(q);
            free(k);
            free(v);
        }
        free(want);
        free(zero);
        free(got);
    }
}

/* ---- errors ---- */

static void errors(void)
{
    struct os_err err = {{0}};
    check(cu->error(cu, &err) == 0, "no failure recorded before the error checks");
    check(cu->alloc(cu, (size_t)1 << 52) == NULL && cu->error(cu, &err) == 0,
          "an impossible cudaMalloc returns NULL and is not a backend failure");
    struct arena a;
    check(arena_init(&a, cu, (size_t)1 << 52, &err) == -1 && strstr(err.msg, "on backend cuda") != NULL,
          "the arena names the backend that lacked memory: \"%s\"", err.msg);

    struct wt t;
    wt_make(&t, "token_embedding.weight", DT_F32, 50 * 17, 1.0f);
    int32_t ids[2] = {3, 50};
    float *dy = cu->alloc(cu, 2 * 17 * sizeof *dy);
    cu->embedding(cu, dy, &t.t, ids, 2, 17);
    err.msg[0] = '\0';
    check(cu->error(cu, &err) == -1 && strstr(err.msg, "id 50") && strstr(err.msg, "50 rows"),
          "an id past the table is a message: \"%s\"", err.msg);
    check(cu->error(cu, &err) == 0, "reading the error clears it");
    ids[1] = 4;
    cu->embedding(cu, dy, &t.t, ids, 2, 17);
    check(cu->error(cu, &err) == 0, "the backend works again after a reported failure");

    struct tensor bad = t.t;
    bad.dtype = DT_I32;
    bad.backend_cache = NULL;
    bad.name = "odd.weight";
    cu->linear(cu, dy, dy, &bad, NULL, NULL, 1, 17, 2);
    check(cu->error(cu, &err) == -1 && strstr(err.msg, "odd.weight") && strstr(err.msg, "I32"),
          "a weight in an unreadable dtype is a message: \"%s\"", err.msg);
    struct tensor small = t.t;
    small.backend_cache = NULL;
    small.shape[0] = 10;
    cu->linear(cu, dy, dy, &small, NULL, NULL, 1, 17, 2);
    check(cu->error(cu, &err) == -1 && strstr(err.msg, "10 elements"),
          "a weight smaller than the op needs is a message, not a read past it: \"%s\"", err.msg);
    cu->release(cu, &small, 1);
    cu->free(cu, dy);
    wt_free(&t);
    check(ops_cuda_weight_bytes(cu) == 0, "every cached weight released (%zu bytes left)", ops_cuda_weight_bytes(cu));
}

/* ---- conformance: the tiny models on the CUDA table ---- */

/* Compare every collected tensor the case file also has; empties col. */
static int check_collected(const struct conf_suite *s, const struct json *c, const struct st_file *f,
                           struct dumps *col)
{
    int compared = 0;
    for (int i = 0; i < col->n; i++) {
        if (st_get(f, col->d[i].name)) {
            conf_check(s, c, f, col->d[i].name, col->d[i].data, col->d[i].n, 1.0);
            compared++;
        }
    }
    dumps_clear(col);
    return compared;
}

/* Size the arena on ops_null, then run on CUDA in exactly that much device
 * memory; the backend's error() after the stage. */
enum stage { CLIP, UNET, DECODE, ENCODE };

struct stage_args {
    const void *model;
    const float *in;
    int h, w;
    float t;
    const struct unet_cond *cond;
    const int32_t *ids;
    int n;
    float *out;
    struct clip_out *cout;
};

static int run(enum stage st, const struct stage_args *a, const struct ops *o, struct arena *ar,
               const struct dump_hook *d, struct os_err *err)
{
    switch (st) {
    case CLIP: {
        struct clip_out co = *a->cout;
        co.dump = d;
        return clip_forward(a->model, o, ar, a->ids, a->n, o == ops_null() ? NULL : &co, err);
    }
    case UNET: return unet_forward(a->model, o, ar, a->in, a->h, a->w, a->t, a->cond, a->out, d, err);
    case DECODE: return vae_decode(a->model, o, ar, a->in, a->h, a->w, a->out, d, err);
    case ENCODE: return vae_encode(a->model, o, ar, a->in, a->h, a->w, a->out, d, err);
    }
    return -1;
}

static int run_stage(enum stage st, const struct stage_args *a, struct dumps *col, struct os_err *err)
{
    struct arena m;
    arena_init_measure(&m);
    int rc = run(st, a, ops_null(), &m, NULL, err);
    size_t peak = m.peak;
    arena_destroy(&m);
    if (rc) return rc;
    struct arena ar;
    if (arena_init(&ar, cu, peak, err)) return -1;
    struct dump_hook hook = {dumps_fn, col};
    rc = run(st, a, cu, &ar, &hook, err);
    cu->sync(cu);
    if (!rc && cu->error(cu, err)) rc = -1;
    arena_destroy(&ar);
    return rc;
}

struct opened {
    struct model_dir *md;
    struct component c;
    int open;
};

static int open_comp(const struct conf_suite *s, struct opened *op, const char *model, const char *comp, int fp16,
                     struct os_err *err)
{
    memset(op, 0, sizeof *op);
    if (model_dir_open(conf_path(s, model), &op->md, err)) return -1;
    if (component_open(op->md, comp, "config.json", 1, fp16 ? VARIANT_FP16 : VARIANT_FP32, &op->c, err)) {
        model_dir_close(op->md);
        return -1;
    }
    op->open = 1;
    return 0;
}

static void close_comp(struct opened *op)
{
    if (!op->open) return;
    cu->release(cu, op->c.tensors, op->c.ntensors); /* before the mapping goes */
    component_close(&op->c);
    model_dir_close(op->md);
    op->open = 0;
}

static void conf_clip(const struct conf_suite *s, const struct json *c, const struct st_file *f, const char *comp,
                      const char *ids_name, int fp16)
{
    const char *cn = conf_case_name(c);
    struct os_err err = {{0}};
    struct opened op;
    struct clip m;
    if (!check(open_comp(s, &op, conf_str(c, "model"), comp, fp16, &err) == 0 && clip_load(&m, &op.c, &err) == 0,
               "%s: load %s%s", cn, comp, err.msg)) {
        close_comp(&op);
        return;
    }
    size_t n;
    float *idf = conf_tensor(f, ids_name, &n);
    int32_t ids[77];
    for (size_t i = 0; idf && i < n && i < 77; i++) ids[i] = (int32_t)idf[i];
    const size_t nD = n * (size_t)m.cfg.hidden;
    float *hidden = malloc((size_t)(m.cfg.layers + 1) * nD * sizeof *hidden), *last = malloc(nD * sizeof *last);
    float *embeds = malloc((size_t)(m.cfg.projection_dim > 0 ? m.cfg.projection_dim : 1) * sizeof *embeds);
    struct clip_out co = {hidden, last, NULL, m.cfg.with_projection ? embeds : NULL, NULL};
    struct stage_args a = {.model = &m, .ids = ids, .n = (int)n, .cout = &co};
    struct dumps col = {.o = cu};
    if (check(idf && n <= 77 && run_stage(CLIP, &a, &col, &err) == 0, "%s: %s on cuda%s%s", cn, comp,
              err.msg[0] ? ": " : "", err.msg)) {
        int k = check_collected(s, c, f, &col);
        check(k >= m.cfg.layers + 1, "%s: %s: %d tensors compared with the suite", cn, comp, k);
    }
    dumps_clear(&col);
    free(idf);
    free(hidden);
    free(last);
    free(embeds);
    clip_free(&m);
    close_comp(&op);
}

static void conf_unet(const struct conf_suite *s, const struct json *c, const struct st_file *f, int fp16)
{
    const char *cn = conf_case_name(c);
    struct os_err err = {{0}};
    struct opened op;
    struct unet u;
    if (!check(open_comp(s, &op, conf_str(c, "model"), "unet", fp16, &err) == 0 && unet_load(&u, &op.c, &err) == 0,
               "%s: load unet%s", cn, err.msg)) {
        close_comp(&op);
        return;
    }
    const struct tensor *ps = st_get(f, "prompt_embeds"), *xs = st_get(f, "step1.latent_model_input");
    float *ctx = conf_tensor(f, "prompt_embeds", NULL);
    float *te = conf_tensor(f, "add_text_embeds", NULL), *tid = conf_tensor(f, "add_time_ids", NULL);
    if (check(ps && xs && ctx, "%s: the case has the UNet inputs", cn)) {
        struct unet_cond cond = {ctx, (int)ps->shape[1], (int)ps->shape[2], te, tid};
        const int h = (int)xs->shape[2], w = (int)xs->shape[3];
        float *eps = malloc((size_t)u.out_channels * h * w * sizeof *eps);
        for (int k = 1; k <= 8; k++) {
            char xn[48], tn[48];
            snprintf(xn, sizeof xn, "step%d.latent_model_input", k);
            snprintf(tn, sizeof tn, "step%d.timestep", k);
            float *x = conf_tensor(f, xn, NULL), *t = conf_tensor(f, tn, NULL);
            if (!x || !t) {
                free(x);
                free(t);
                break;
            }
            struct stage_args a = {.model = &u, .in = x, .h = h, .w = w, .t = t[0], .cond = &cond, .out = eps};
            struct dumps col = {.o = cu};
            if (check(run_stage(UNET, &a, &col, &err) == 0, "%s step %d: unet on cuda%s%s", cn, k,
                      err.msg[0] ? ": " : "", err.msg)) {
                char en[48];
                snprintf(en, sizeof en, "step%d.noise_pred", k);
                conf_check(s, c, f, en, eps, (size_t)u.out_channels * h * w, 1.0);
                if (k == 1) { /* the suite records the first call layer by layer */
                    int nc = check_collected(s, c, f, &col);
                    check(nc >= 10, "%s: %d unet.* tensors compared with the suite", cn, nc);
                }
            }
            dumps_clear(&col);
            free(x);
            free(t);
        }
        free(eps);
    }
    free(ctx);
    free(te);
    free(tid);
    unet_free(&u);
    close_comp(&op);
}

static void conf_vae(const struct conf_suite *s, const struct json *c, const struct st_file *f, int fp16)
{
    const char *cn = conf_case_name(c);
    struct os_err err = {{0}};
    struct opened op;
    struct vae v;
    const int img2img = st_get(f, "img2img.image") != NULL;
    if (!check(open_comp(s, &op, conf_str(c, "model"), "vae", fp16, &err) == 0 &&
                   vae_load(&v, &op.c, img2img, &err) == 0,
               "%s: load vae%s", cn, err.msg)) {
        close_comp(&op);
        return;
    }
    const struct tensor *zs = st_get(f, "vae.decode.input");
    float *z = conf_tensor(f, "vae.decode.input", NULL);
    if (check(zs && z, "%s: the case has vae.decode.input", cn)) {
        const int h = (int)zs->shape[2], w = (int)zs->shape[3];
        const size_t nimg = (size_t)v.out_channels * h * v.factor * w * v.factor;
        float *img = malloc(nimg * sizeof *img);
        struct stage_args a = {.model = &v, .in = z, .h = h, .w = w, .out = img};
        struct dumps col = {.o = cu};
        if (check(run_stage(DECODE, &a, &col, &err) == 0, "%s: vae decode on cuda%s%s", cn, err.msg[0] ? ": " : "",
                  err.msg)) {
            conf_check(s, c, f, "vae.decode.output", img, nimg, 1.0);
            int nc = check_collected(s, c, f, &col);
            check(nc >= 4, "%s: %d vae decoder tensors compared with the suite", cn, nc);
        }
        dumps_clear(&col);
        free(img);
    }
    free(z);
    const struct tensor *is = st_get(f, "img2img.image");
    float *im = img2img ? conf_tensor(f, "img2img.image", NULL) : NULL;
    if (im && is) {
        const int H = (int)is->shape[2], W = (int)is->shape[3];
        const size_t nm = (size_t)2 * v.latent_channels * (H / v.factor) * (W / v.factor);
        float *mom = malloc(nm * sizeof *mom);
        struct stage_args a = {.model = &v, .in = im, .h = H, .w = W, .out = mom};
        struct dumps col = {.o = cu};
        if (check(run_stage(ENCODE, &a, &col, &err) == 0, "%s: vae encode on cuda%s%s", cn, err.msg[0] ? ": " : "",
                  err.msg)) {
            conf_check(s, c, f, "vae.quant_conv", mom, nm, 1.0);
            int nc = check_collected(s, c, f, &col);
            check(nc >= 4, "%s: %d vae encoder tensors compared with the suite", cn, nc);
        }
        dumps_clear(&col);
        free(mom);
    }
    free(im);
    close_comp(&op);
}

static void conformance(void)
{
    struct conf_suite s;
    if (conf_open(&s) != 0) return;
    for (size_t i = 0; i < conf_ncases(&s); i++) {
        const struct json *c = conf_case(&s, i);
        if (conf_is_extension(c)) continue;
        struct st_file *f = conf_case_file(&s, c);
        if (!f) continue;
        const char *variant = conf_str(c, "weights_variant");
        const int fp16 = variant && strcmp(variant, "fp16") == 0;
        conf_clip(&s, c, f, "text_encoder", "tokenizer.input_ids", fp16);
        if (st_get(f, "tokenizer_2.input_ids")) conf_clip(&s, c, f, "text_encoder_2", "tokenizer_2.input_ids", fp16);
        conf_unet(&s, c, f, fp16);
        conf_vae(&s, c, f, fp16);
        st_close(f);
    }
    conf_close(&s);
}

int main(void)
{
    char why[160];
    if (ops_cuda_devices(why, sizeof why) == 0) {
        check_skip("test_cuda skipped: no CUDA device (%s)", why);
        return check_summary();
    }
    /* the parity tolerances are fp32's: no TF32; a 1 MiB im2col cap so the
     * chunked convolution path runs on small shapes too */
    unsetenv("ONESTEP_CUDA_TF32");
    setenv("ONESTEP_CUDA_IM2COL_MIB", "1", 1);
    struct os_err err = {{0}};
    cu = ops_cuda(1, &err);
    ref = ops_ref();
    if (!check(cu != NULL, "ops_cuda: %s", cu ? "made" : err.msg)) return check_summary();
    check_note("%s", ops_cuda_describe(cu));
    check(cu->error && cu->release && strcmp(cu->name, "cuda") == 0, "the table names itself and has error/release");
    parity_act();
    parity_geglu();
    parity_simple();
    parity_layout();
    parity_norm();
    parity_linear();
    parity_conv();
    parity_embedding();
    parity_attention();
    errors();
    conformance();
    check(ops_cuda_weight_bytes(cu) == 0, "no weights left on the device after every component was released");
    return check_summary();
}

#endif
