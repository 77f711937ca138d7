/* table.c — this ISA's ops table: host memory like the reference, the
 * kernels of simd/ for everything else. */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static void *host_alloc(const struct ops *o, size_t bytes)
{
    (void)o;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

static void host_free(const struct ops *o, void *p)
{
    (void)o;
    free(p);
}

static void host_move(const struct ops *o, float *dst, const float *src, size_t n)
{
    (void)o;
    if (n) memmove(dst, src, n * sizeof *dst);
}

static void host_sync(const struct ops *o)
{
    (void)o;
}

void SX(simd_fill_ops)(struct ops *o)
{
    o->alloc = host_alloc;
    o->free = host_free;
    o->upload = host_move;
    o->download = host_move;
    o->copy2d = SX(simd_copy2d);
    o->sync = host_sync;
    o->linear = SX(simd_linear);
    o->conv2d = SX(simd_conv2d);
    o->attention = SX(simd_attention);
    o->embedding = SX(simd_embedding);
    o->layer_norm = SX(simd_layer_norm);
    o->group_norm = SX(simd_group_norm);
    o->softmax = SX(simd_softmax);
    o->act = SX(simd_act);
    o->geglu = SX(simd_geglu);
    o->add = SX(simd_add);
    o->add_channel = SX(simd_add_channel);
    o->scale = SX(simd_scale);
    o->transpose = SX(simd_transpose);
    o->upsample_nearest = SX(simd_upsample_nearest);
}
