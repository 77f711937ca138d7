/* vae_tiling.h — VAE decode in overlapping tiles, blended linearly:
 * activation memory bounded by the tile, not the image (--vae-tiling).
 *
 * The latent is cut into tiles of at most `tile` x `tile` latents that
 * overlap their neighbours by at least `overlap` latents; each tile is
 * decoded on its own by vae_decode (same arena, one tile at a time, so the
 * measure-then-run protocol of arena.h sizes the arena for one tile decode)
 * and the decoded tiles are cross-faded across their overlaps with linear
 * ramps into the output image.
 *
 * Tiling changes pixels, everywhere, not only at seams: each tile's
 * GroupNorms take their statistics over the tile instead of the whole
 * image and the mid-block attention sees only the tile's tokens. That is
 * expected (diffusers' AutoencoderKL.tiled_decode does the same); the blend
 * hides seams. An image that fits in one tile is decoded exactly as
 * vae_decode would (same bits). tests/test_vae_tiling.c measures and bounds
 * the difference.
 *
 * Defaults: 64-latent tiles (512 pixels: the Turbo models' own resolution,
 * a decode the VAE sees routinely; 704 MiB of activations for the SD/SDXL
 * VAE whatever the image size, against 2.8 GiB untiled at 1024² and 11 GiB
 * at 2048²) overlapping by at least 16 latents (128 pixels: a quarter of
 * the tile, diffusers' tile_overlap_factor, and about the radius of the
 * decoder's 3x3 convolutions' receptive field, 17 latents: 11 convolutions
 * at latent resolution (conv_in, 4 in the mid block, 6 in up_blocks.0),
 * then 7 at 2x, 7 at 4x and 8 at 8x, each adding 1/scale latents:
 * 11 + 3.5 + 1.75 + 1 = 17.25; so where one tile's weight falls off, the
 * other tile has most of its convolutional context). */
#ifndef ONESTEP_VAE_TILING_H
#define ONESTEP_VAE_TILING_H

#include "vae.h"

#define VAE_TILE_DEFAULT 64
#define VAE_TILE_OVERLAP_DEFAULT 16

/* Where tiles go along one axis of n latents. The tile count k is the
 * smallest with k*tile - (k-1)*overlap >= n; the tiles then shrink to the
 * smallest equal size that still covers n with that overlap (less work,
 * never more memory) and their starts spread evenly from 0 to n - size, so
 * every neighbour overlap is >= overlap. n <= tile: one tile of n. */
struct vae_tile_axis {
    int k;      /* tiles */
    int size;   /* latents per tile, the same for all */
    int *start; /* k starts, ascending; start[0] = 0, start[k-1] + size = n */
};

/* 0, or -1 if tile < 1, overlap < 0, 2 * overlap > tile or n < 1. Free with
 * vae_tile_axis_free. */
int vae_tile_axis_plan(int n, int tile, int overlap, struct vae_tile_axis *ax, struct os_err *err);
void vae_tile_axis_free(struct vae_tile_axis *ax);

/* Blend weights along one axis: k rows of size*f floats (pixels), row t
 * for tile t, normalised so the tiles covering a pixel sum to 1. A tile's
 * raw weight ramps linearly from ~0 to 1 across each overlap it shares with
 * a neighbour and is 1 elsewhere (image borders included); the weight of
 * pixel (y, x) in tile (ty, tx) is wy[ty][y] * wx[tx][x]. malloc'd (free()),
 * NULL when out of memory. */
float *vae_tile_axis_weights(const struct vae_tile_axis *ax, int f);

/* vae_decode (vae.h: same z, h, w and img) in tiles. z and img are host
 * memory and must be real buffers even while measuring (the blend runs on
 * the host). The dump hook sees the decode only when there is one tile. */
int vae_decode_tiled(const struct vae *v, const struct ops *o, struct arena *a, const float *z, int h, int w,
                     int tile, int overlap, float *img, const struct dump_hook *d, struct os_err *err);

#endif
