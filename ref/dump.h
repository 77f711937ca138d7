/* dump.h — how model code hands intermediates to whoever wants them.
 *
 * Model code calls dump_f32(d, "unet.down_blocks.0", buf, 4, shape) at each
 * point the conformance manifest names. `buf` is backend memory; the hook
 * (the pipeline's --dump writer, a test) downloads it through the ops table.
 * d may be NULL: then nothing happens, at no cost. Names and shapes
 * (batch dimension 1 included) are exactly those of
 * ../shared/conformance/manifest.json, so dumps diff against the suite. */
#ifndef ONESTEP_DUMP_H
#define ONESTEP_DUMP_H

#include <stdint.h>
#include <stdio.h>

struct dump_hook {
    void (*fn)(void *ctx, const char *name, const float *buf, int ndim, const int64_t *shape);
    void *ctx;
};

static inline void dump_f32(const struct dump_hook *d, const char *name, const float *buf, int ndim,
                            const int64_t *shape)
{
    if (d && d->fn) d->fn(d->ctx, name, buf, ndim, shape);
}

/* NCHW feature map with batch 1: shape [1, C, H, W]. */
static inline void dump_chw(const struct dump_hook *d, const char *name, const float *buf, int C, int H, int W)
{
    int64_t shape[4] = {1, C, H, W};
    dump_f32(d, name, buf, 4, shape);
}

/* A name with a printf-style suffix, e.g. dump_chwf(d, buf, C, H, W, "unet.down_blocks.%d", i). */
#define dump_chwf(d, buf, C, H, W, ...)                                                                              \
    do {                                                                                                             \
        if ((d) && (d)->fn) {                                                                                        \
            char dump_name_[128];                                                                                    \
            snprintf(dump_name_, sizeof dump_name_, __VA_ARGS__);                                                   \
            dump_chw((d), dump_name_, (buf), (C), (H), (W));                                                         \
        }                                                                                                            \
    } while (0)

#endif
