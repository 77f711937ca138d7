/* vae_tiling.c — see vae_tiling.h. */
#include "vae_tiling.h"

#include <stdlib.h>
#include <string.h>

int vae_tile_axis_plan(int n, int tile, int overlap, struct vae_tile_axis *ax, struct os_err *err)
{
    memset(ax, 0, sizeof *ax);
    if (tile < 1 || overlap < 0 || 2 * overlap > tile)
        return os_fail(err, "vae tiling: tile %d with overlap %d: need tile >= 1 and 0 <= overlap <= tile / 2", tile,
                       overlap);
    if (n < 1) return os_fail(err, "vae tiling: latent side %d is not positive", n);
    int k = 1, size = n;
    if (n > tile) {
        const int stride = tile - overlap; /* >= tile / 2 >= 1 */
        k = (n - overlap + stride - 1) / stride;
        size = (n + (k - 1) * overlap + k - 1) / k;
    }
    ax->start = malloc((size_t)k * sizeof *ax->start);
    if (!ax->start) return os_fail(err, "vae tiling: out of memory");
    ax->k = k;
    ax->size = size;
    for (int i = 0; i < k; i++)
        ax->start[i] = k == 1 ? 0 : (int)(((long long)i * (n - size) * 2 + (k - 1)) / (2 * (k - 1))); /* rounded */
    return 0;
}

void vae_tile_axis_free(struct vae_tile_axis *ax)
{
    free(ax->start);
    memset(ax, 0, sizeof *ax);
}

/* The ramp across an overlap of L pixels is (i + 0.5) / L from a tile's
 * start (the mirror image towards its end): the two tiles sharing an
 * overlap get weights summing to exactly 1 in real arithmetic, so the
 * normalisation only matters where three tiles overlap (tiles under twice
 * the overlap) and for rounding. With one tile every weight is exactly 1. */
float *vae_tile_axis_weights(const struct vae_tile_axis *ax, int f)
{
    const int S = ax->size * f;
    float *w = malloc((size_t)ax->k * S * sizeof *w);
    double *sum = calloc((size_t)(ax->start[ax->k - 1] + ax->size) * f, sizeof *sum);
    if (!w || !sum) {
        free(w);
        free(sum);
        return NULL;
    }
    for (int t = 0; t < ax->k; t++) {
        const int s = ax->start[t] * f, e = s + S;
        const int left = t > 0 ? (ax->start[t - 1] + ax->size) * f - s : 0;  /* pixels shared with the previous */
        const int right = t + 1 < ax->k ? e - ax->start[t + 1] * f : 0;        /* ... and with the next tile */
        for (int i = 0; i < S; i++) {
            double v = 1.0;
            if (left > 0 && (i + 0.5) / left < v) v = (i + 0.5) / left;
            if (right > 0 && (S - i - 0.5) / right < v) v = (S - i - 0.5) / right;
            w[(size_t)t * S + i] = (float)v;
            sum[s + i] += (float)v;
        }
    }
    for (int t = 0; t < ax->k; t++) {
        const int s = ax->start[t] * f;
        for (int i = 0; i < S; i++) w[(size_t)t * S + i] = (float)(w[(size_t)t * S + i] / sum[s + i]);
    }
    free(sum);
    return w;
}

int vae_decode_tiled(const struct vae *v, const struct ops *o, struct arena *a, const float *z, int h, int w,
                     int tile, int overlap, float *img, const struct dump_hook *d, struct os_err *err)
{
    struct vae_tile_axis ay, ax;
    if (vae_tile_axis_plan(h, tile, overlap, &ay, err)) return -1;
    if (vae_tile_axis_plan(w, tile, overlap, &ax, err)) {
        vae_tile_axis_free(&ay);
        return -1;
    }
    if (ay.k == 1 && ax.k == 1) { /* one tile: exactly the untiled decode */
        vae_tile_axis_free(&ay);
        vae_tile_axis_free(&ax);
        return vae_decode(v, o, a, z, h, w, img, d, err);
    }
    const int f = v->factor, lc = v->latent_channels, oc = v->out_channels;
    const int th = ay.size, tw = ax.size, TH = th * f, TW = tw * f, H = h * f, W = w * f;
    float *zt = malloc((size_t)lc * th * tw * sizeof *zt);
    float *it = calloc((size_t)oc * TH * TW, sizeof *it); /* zero: measuring passes download nothing */
    float *wy = vae_tile_axis_weights(&ay, f), *wx = vae_tile_axis_weights(&ax, f);
    int rc = -1;
    if (!zt || !it || !wy || !wx) {
        os_fail(err, "vae tiling: out of memory for a %dx%d tile", TW, TH);
        goto done;
    }
    memset(img, 0, (size_t)oc * H * W * sizeof *img);
    for (int ty = 0; ty < ay.k; ty++) {
        for (int tx = 0; tx < ax.k; tx++) {
            const int y0 = ay.start[ty], x0 = ax.start[tx];
            for (int c = 0; c < lc; c++)
                for (int y = 0; y < th; y++)
                    memcpy(zt + ((size_t)c * th + y) * tw, z + ((size_t)c * h + y0 + y) * w + x0, (size_t)tw * sizeof *zt);
            if (vae_decode(v, o, a, zt, th, tw, it, NULL, err)) {
                os_prefix(err, "tile (%d, %d) of %dx%d: ", ty, tx, ay.k, ax.k);
                goto done;
            }
            const float *wyt = wy + (size_t)ty * TH, *wxt = wx + (size_t)tx * TW;
            for (int c = 0; c < oc; c++)
                for (int y = 0; y < TH; y++) {
                    float *row = img + ((size_t)c * H + (size_t)y0 * f + y) * W + (size_t)x0 * f;
                    const float *src = it + ((size_t)c * TH + y) * TW;
                    for (int x = 0; x < TW; x++) row[x] += wyt[y] * wxt[x] * src[x];
                }
        }
    }
    rc = 0;
done:
    free(zt);
    free(it);
    free(wy);
    free(wx);
    vae_tile_axis_free(&ay);
    vae_tile_axis_free(&ax);
    return rc;
}
