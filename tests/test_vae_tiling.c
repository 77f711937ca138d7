/* Tiled VAE decode (ref/vae_tiling.c):
 *   - the tile plan: every side from 1 to 300 latents, several tile and
 *     overlap sizes: tiles cover the side, never exceed the tile size,
 *     overlap their neighbours by at least the overlap, and no fewer tiles
 *     would do; bad tile arguments are refused;
 *   - an image that fits in one tile decodes to exactly the untiled bits;
 *   - on the conformance suite's tiny SD-Turbo and SDXL-Turbo VAEs (the
 *     real architecture, 8x, with 4..16 channels), at sizes spanning 2..4
 *     tiles per side, the tiled image stays within the stated tolerance of
 *     the untiled one (see TOL_* below for the measured values and why);
 *   - the activation arena of a tiled decode is that of one tile decode,
 *     whatever the image size (measured on 64² .. 400² latents), while the
 *     untiled arena grows with the image. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/onestep.h"
#include "../ref/rng.h"
#include "../ref/vae_tiling.h"
#include "lib/check.h"
#include "lib/conformance.h"

/* Tolerance of tiled vs untiled, on the decoder's output scale (about
 * [-1, 1]; 1/127.5 is one 8-bit level).
 *
 * Tiling is not an approximation that converges: each tile's GroupNorms use
 * the tile's own statistics and its mid-block attention sees only the tile,
 * so a tile decoded alone differs from the same region of the whole decode
 * everywhere, not only near its edges. The blend makes every output pixel a
 * convex combination of the decodes of the tiles covering it, so
 *     |tiled - untiled| <= max over those tiles of |tile decode - untiled|
 * at every pixel: tiling costs exactly the "context error" of decoding a
 * tile on its own, a property of the VAE, never more. The test checks that
 * inequality pixel by pixel, and the blend itself exactly.
 *
 * The suite's tiny VAEs are random and very context-sensitive (two
 * GroupNorm groups, random attention): the 24x28-latent top-left tile of
 * the case below, decoded alone, differs from the whole 40x48 decode by
 * 0.088 (sd) / 0.092 (sdxl) on average where it alone covers the image.
 * With 32-latent tiles overlapping by >= 8 (the defaults' 4:1 proportion,
 * at half size; 2x2 tiles of 24x28) we measured mean |diff| 0.101 / 0.100
 * and max 1.51 / 2.75 over the whole image. The stated
 * tolerance, 1.5x above those: mean 0.15, max 4. A broken blend (weights
 * not summing to 1, a misplaced tile) gives errors of the size of the
 * values themselves (rms 0.5, max 5-7) and fails. A real SD/SDXL VAE is
 * far less sensitive; its tiled error cannot be measured here (no real
 * weights). */
#define TOL_MAX 4.0
#define TOL_MEAN 0.15

static const struct ops *R;

/* Measure-then-run, as the pipeline does; *peak gets the arena peak. */
static int decode(const struct vae *v, int tile, int overlap, const float *z, int h, int w, float *img, size_t *peak,
                  struct os_err *err)
{
    struct arena m;
    arena_init_measure(&m);
    int rc = tile ? vae_decode_tiled(v, ops_null(), &m, z, h, w, tile, overlap, img, NULL, err)
                  : vae_decode(v, ops_null(), &m, z, h, w, img, NULL, err);
    *peak = m.peak;
    arena_destroy(&m);
    if (rc || !R) return rc;
    struct arena a;
    if (arena_init(&a, R, *peak, err)) return -1;
    rc = tile ? vae_decode_tiled(v, R, &a, z, h, w, tile, overlap, img, NULL, err)
              : vae_decode(v, R, &a, z, h, w, img, NULL, err);
    arena_destroy(&a);
    return rc;
}

/* Arena peak only (ops_null: nothing computed). */
static size_t peak_of(const struct vae *v, int tile, int overlap, int h, int w)
{
    float *z = calloc((size_t)v->latent_channels * h * w, sizeof *z);
    float *img = calloc((size_t)v->out_channels * h * v->factor * w * v->factor, sizeof *img);
    size_t peak = 0;
    struct os_err err = {{0}};
    const struct ops *keep = R;
    R = NULL;
    if (!z || !img || decode(v, tile, overlap, z, h, w, img, &peak, &err)) peak = 0;
    R = keep;
    free(z);
    free(img);
    return peak;
}

static void plans(void)
{
    static const int tiles[][2] = {{64, 16}, {16, 4}, {24, 6}, {8, 0}, {10, 5}, {5, 2}, {1, 0}};
    size_t bad = 0, total = 0;
    char first[160] = "";
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
        const int T = tiles[t][0], O = tiles[t][1];
        for (int n = 1; n <= 300; n++) {
            struct vae_tile_axis ax;
            struct os_err err = {{0}};
            int ok = vae_tile_axis_plan(n, T, O, &ax, &err) == 0;
            if (ok) {
                ok = ax.k >= 1 && ax.size >= 1 && ax.size <= T && ax.start[0] == 0 &&
                     ax.start[ax.k - 1] + ax.size == n && (n <= T ? ax.k == 1 && ax.size == n : 1);
                for (int i = 1; ok && i < ax.k; i++)
                    ok = ax.start[i] > ax.start[i - 1] && ax.start[i - 1] + ax.size - ax.start[i] >= O;
                /* minimal: k - 1 full-size tiles with the overlap would not cover n */
                if (ok && ax.k > 1) ok = (ax.k - 1) * T - (ax.k - 2) * O < n;
                vae_tile_axis_free(&ax);
            }
            total++;
            if (!ok && !bad++) snprintf(first, sizeof first, "n %d, tile %d, overlap %d", n, T, O);
        }
    }
    check(bad == 0, "tile plans for %zu (side, tile, overlap): cover, fit, overlap enough, minimal%s%s", total,
          bad ? "; first bad " : "", first);
    struct vae_tile_axis ax;
    struct os_err err = {{0}};
    int rc = vae_tile_axis_plan(128, 64, 16, &ax, &err);
    check(rc == 0 && ax.k == 3 && ax.size == 54 && ax.start[1] == 37 && ax.start[2] == 74,
          "1024² SDXL latents (128) with the defaults: 3 tiles of 54 at 0, 37, 74 (overlaps 17)");
    if (rc == 0) vae_tile_axis_free(&ax);
    rc = vae_tile_axis_plan(64, 64, 16, &ax, &err);
    check(rc == 0 && ax.k == 1 && ax.size == 64, "512² (64 latents) with the defaults: one tile, no tiling");
    if (rc == 0) vae_tile_axis_free(&ax);
    static const int badargs[][3] = {{64, 0, 0}, {64, 16, 9}, {64, 16, -1}, {0, 16, 4}};
    for (size_t i = 0; i < sizeof badargs / sizeof badargs[0]; i++) {
        rc = vae_tile_axis_plan(badargs[i][0], badargs[i][1], badargs[i][2], &ax, &err);
        check(rc == -1 && strstr(err.msg, "vae tiling"), "side %d, tile %d, overlap %d refused: %s", badargs[i][0],
              badargs[i][1], badargs[i][2], err.msg);
    }
}

static void crop(const float *src, int C, int H, int W, int y0, int x0, int h, int w, float *dst)
{
    for (int c = 0; c < C; c++)
        for (int y = 0; y < h; y++)
            memcpy(dst + ((size_t)c * h + y) * w, src + ((size_t)c * H + y0 + y) * W + x0, (size_t)w * sizeof *dst);
}

static void weights(void)
{
    size_t bad = 0, total = 0;
    static const int tiles[][2] = {{64, 16}, {16, 4}, {10, 5}, {7, 3}};
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
        for (int n = 1; n <= 150; n++) {
            struct vae_tile_axis ax;
            struct os_err err = {{0}};
            if (vae_tile_axis_plan(n, tiles[t][0], tiles[t][1], &ax, &err)) {
                bad++;
                continue;
            }
            const int f = 8, S = ax.size * f;
            float *w = vae_tile_axis_weights(&ax, f);
            double *sum = calloc((size_t)n * f, sizeof *sum);
            int ok = w && sum;
            for (int k = 0; ok && k < ax.k; k++)
                for (int i = 0; i < S; i++) {
                    float v = w[(size_t)k * S + i];
                    ok = ok && v > 0 && v <= 1;
                    sum[ax.start[k] * f + i] += v;
                }
            for (int p = 0; ok && p < n * f; p++) ok = fabs(sum[p] - 1.0) < 1e-6;
            /* one tile: exactly 1 */
            for (int i = 0; ok && ax.k == 1 && i < S; i++) ok = w[i] == 1.0f;
            bad += !ok;
            total++;
            free(w);
            free(sum);
            vae_tile_axis_free(&ax);
        }
    }
    check(bad == 0, "blend weights of %zu plans: in (0, 1], sum to 1 at every pixel, exactly 1 with one tile", total);
}

/* Decode z (h x w latents) tiled and, separately, each tile on its own;
 * check the blend exactly and the bound against the untiled image u. */
static void blend_case(const struct vae *v, const char *model, const float *z, int h, int w, const float *u, int T,
                       int O, int bounded)
{
    struct os_err err = {{0}};
    const int f = v->factor, H = h * f, W = w * f, lc = v->latent_channels;
    struct vae_tile_axis ay, ax;
    if (vae_tile_axis_plan(h, T, O, &ay, &err) || vae_tile_axis_plan(w, T, O, &ax, &err)) {
        check(0, "%s: plan: %s", model, err.msg);
        return;
    }
    const int TH = ay.size * f, TW = ax.size * f;
    const size_t n = (size_t)3 * H * W;
    float *t = malloc(n * sizeof *t), *acc = calloc(n, sizeof *acc), *worst = calloc(n, sizeof *worst);
    float *zt = malloc((size_t)lc * ay.size * ax.size * sizeof *zt), *it = malloc((size_t)3 * TH * TW * sizeof *it);
    float *wy = vae_tile_axis_weights(&ay, f), *wx = vae_tile_axis_weights(&ax, f);
    size_t pt, p1;
    int rc = !t || !acc || !worst || !zt || !it || !wy || !wx || decode(v, T, O, z, h, w, t, &pt, &err);
    /* the reference blend, from each tile decoded on its own */
    for (int ty = 0; !rc && ty < ay.k; ty++)
        for (int tx = 0; !rc && tx < ax.k; tx++) {
            crop(z, lc, h, w, ay.start[ty], ax.start[tx], ay.size, ax.size, zt);
            rc = decode(v, 0, 0, zt, ay.size, ax.size, it, &p1, &err);
            for (int c = 0; !rc && c < 3; c++)
                for (int y = 0; y < TH; y++)
                    for (int x = 0; x < TW; x++) {
                        size_t o = ((size_t)c * H + ay.start[ty] * f + y) * W + ax.start[tx] * f + x;
                        float tile = it[((size_t)c * TH + y) * TW + x];
                        acc[o] += wy[ty * TH + y] * wx[tx * TW + x] * tile;
                        float e = fabsf(tile - u[o]);
                        if (e > worst[o]) worst[o] = e;
                    }
        }
    if (!check(rc == 0, "%s: %dx%d latents, tiles %d/%d: decodes%s%s", model, h, w, T, O, rc ? ": " : "",
               rc ? err.msg : ""))
        goto done;
    double blend_err = 0, excess = 0, mean = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double b = fabs((double)t[i] - acc[i]) / (1.0 + fabs(acc[i]));
        if (!(b <= blend_err)) blend_err = b;
        double d = fabs((double)t[i] - u[i]);
        if (!(d - worst[i] <= excess)) excess = d - worst[i];
        if (!(d <= mx)) mx = d;
        mean += d;
    }
    mean /= (double)n;
    check(blend_err < 1e-6, "%s: %dx%d latents in %dx%d tiles of %dx%d (tile %d, overlap >= %d): each pixel is the "
          "weighted sum of the tiles decoded alone (rel. err %.1e)", model, h, w, ay.k, ax.k, ay.size, ax.size, T, O,
          blend_err);
    check(excess < 1e-5, "%s: ... and never further from the untiled image than the worst covering tile decoded "
          "alone (excess %.1e)", model, excess);
    if (bounded)
        check(mean <= TOL_MEAN && mx <= TOL_MAX, "%s: ... tiled vs untiled: mean |diff| %.4f (tol %.2f), max %.3f "
              "(tol %.1f)", model, mean, TOL_MEAN, mx, TOL_MAX);
    else
        check_note("%s: ... tiled vs untiled: mean |diff| %.4f, max %.3f (tiles smaller than the receptive field: "
                   "no stated bound)", model, mean, mx);
    check(pt == p1, "%s: ... tiled arena %.1f KiB = one %dx%d tile decode's", model, pt / 1024.0, ay.size, ax.size);
done:
    free(t);
    free(acc);
    free(worst);
    free(zt);
    free(it);
    free(wy);
    free(wx);
    vae_tile_axis_free(&ay);
    vae_tile_axis_free(&ax);
}

static void with_vae(const struct conf_suite *s, const char *model, int more)
{
    struct os_err err = {{0}};
    struct model_dir *md = NULL;
    struct component c;
    struct vae v;
    if (!check(model_open(conf_path(s, model), NULL, &md, &err) == 0, "open %s%s%s", model, err.msg[0] ? ": " : "",
               err.msg))
        return;
    if (!check(component_open(md, "vae", "config.json", 1, VARIANT_AUTO, &c, &err) == 0 &&
                   vae_load(&v, &c, 0, &err) == 0,
               "%s: load the VAE%s%s", model, err.msg[0] ? ": " : "", err.msg)) {
        model_dir_close(md);
        return;
    }
    /* latents: unit-variance noise / scaling_factor, as a decode sees them */
    const int h = 40, w = 48, f = v.factor;
    const size_t zn = (size_t)v.latent_channels * h * w, n = (size_t)3 * h * f * w * f;
    float *z = malloc(zn * sizeof *z), *u = malloc(n * sizeof *u), *t = malloc(n * sizeof *t);
    float *z2 = malloc(zn * sizeof *z2), *u2 = malloc(n * sizeof *u2);
    size_t pu, pt;
    if (!check(z && u && t && z2 && u2, "%s: buffers", model)) goto done;
    struct rng g;
    rng_init(&g, RNG_TORCH, 7);
    rng_randn(&g, z, zn);
    for (size_t i = 0; i < zn; i++) z[i] /= v.scaling_factor;
    int rc = decode(&v, 0, 0, z, h, w, u, &pu, &err);
    if (!check(rc == 0, "%s: untiled decode of %dx%d latents%s%s", model, h, w, rc ? ": " : "", rc ? err.msg : ""))
        goto done;

    /* fits in one tile: the same bits */
    rc = decode(&v, VAE_TILE_DEFAULT, VAE_TILE_OVERLAP_DEFAULT, z, h, w, t, &pt, &err);
    check(rc == 0 && memcmp(u, t, n * sizeof *u) == 0 && pt == pu,
          "%s: %dx%d latents with the default 64-latent tiles = untiled decode, bit for bit, same arena", model, h, w);

    /* the defaults' proportions at half size: 2 x 2 tiles, the stated bound */
    blend_case(&v, model, z, h, w, u, 32, 8, 1);
    if (more) {
        /* odd sides, 3 x 2 small tiles (under the receptive field: no bound) */
        const int h2 = 33, w2 = 21;
        crop(z, v.latent_channels, h, w, 0, 0, h2, w2, z2);
        rc = decode(&v, 0, 0, z2, h2, w2, u2, &pu, &err);
        if (check(rc == 0, "%s: untiled decode of %dx%d latents", model, h2, w2))
            blend_case(&v, model, z2, h2, w2, u2, 16, 4, 0);
    }

    /* the arena does not grow with the image */
    {
        size_t tile_peak = peak_of(&v, 0, 0, 16, 16), worst = 0, untiled_big = peak_of(&v, 0, 0, 256, 256);
        int ok = tile_peak > 0;
        static const int sides[] = {16, 40, 64, 100, 256, 400};
        for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++) {
            size_t p = peak_of(&v, 16, 4, sides[i], sides[i]);
            ok = ok && p > 0 && p <= tile_peak;
            if (p > worst) worst = p;
        }
        check(ok, "%s: tiled (16/4) arena for 16² .. 400² latents is at most one 16² tile decode's (%.1f KiB; "
              "untiled at 256² latents: %.1f MiB)", model, worst / 1024.0, untiled_big / 1048576.0);
    }
done:
    free(z);
    free(u);
    free(t);
    free(z2);
    free(u2);
    component_close(&c);
    model_dir_close(md);
}

/* The pipeline's --vae-tiling (onestep_params.vae_tiling): the default
 * tiles change nothing where the image fits in one, and bound the arena. */
static void pipeline(const struct conf_suite *s)
{
    struct onestep_load_params lp;
    onestep_load_default_params(&lp);
    lp.model = conf_path(s, "sd-turbo-tiny");
    lp.backend = "ref";
    struct onestep_ctx *ctx;
    struct onestep_err err;
    int rc = onestep_load(&lp, &ctx, &err);
    if (!check(rc == 0, "load %s%s%s", lp.model, rc ? ": " : "", rc ? err.msg : "")) return;
    struct onestep_params p;
    onestep_default_params(ctx, &p);
    p.prompt = "a photo of a cat";
    p.width = p.height = 64;
    struct onestep_image a = {0}, b = {0};
    rc = onestep_generate(ctx, &p, &a, &err);
    p.vae_tiling = 1;
    rc |= onestep_generate(ctx, &p, &b, &err);
    check(rc == 0 && memcmp(a.rgb, b.rgb, (size_t)64 * 64 * 3) == 0, "pipeline: --vae-tiling at 64x64 (one tile) "
          "gives the same image");
    onestep_image_free(&a);
    onestep_image_free(&b);
    /* the arena of the decode alone: the other stages skipped */
    size_t one = 0, untiled = 0, tiled = 0;
    p.skip_stages = (1u << ONESTEP_STAGE_TEXT) | (1u << ONESTEP_STAGE_UNET);
    p.width = p.height = 512;
    rc = onestep_estimate(ctx, &p, &one, &err);
    p.width = p.height = 2048;
    rc |= onestep_estimate(ctx, &p, &tiled, &err);
    p.vae_tiling = 0;
    rc |= onestep_estimate(ctx, &p, &untiled, &err);
    check(rc == 0 && tiled <= one && untiled > 8 * one,
          "pipeline: at 2048² the tiled VAE arena (%.1f MiB) is at most a 512² decode's (%.1f MiB); untiled %.1f MiB",
          tiled / 1048576.0, one / 1048576.0, untiled / 1048576.0);
    onestep_free(ctx);
}

int main(void)
{
    R = ops_ref();
    plans();
    weights();
    struct conf_suite s;
    if (conf_open(&s) == 0) {
        with_vae(&s, "sd-turbo-tiny", 1);
        with_vae(&s, "sdxl-turbo-tiny", 0);
        pipeline(&s);
        conf_close(&s);
    }
    return check_summary();
}
