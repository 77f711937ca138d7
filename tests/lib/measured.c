#include "measured.h"

#include "../../ref/arena.h"
#include "../../ref/ops.h"

size_t unet_measured_run(const struct unet *u, const float *x, int h, int w, float t, const struct unet_cond *cond,
                         float *eps, const struct dump_hook *dump, size_t *real_peak, int *leftover,
                         struct os_err *err)
{
    struct arena meas;
    arena_init_measure(&meas);
    if (unet_forward(u, ops_null(), &meas, x, h, w, t, cond, eps, NULL, err)) {
        arena_destroy(&meas);
        return 0;
    }
    size_t peak = meas.peak;
    arena_destroy(&meas);
    struct arena a;
    if (arena_init(&a, ops_ref(), peak, err)) return 0;
    int rc = unet_forward(u, ops_ref(), &a, x, h, w, t, cond, eps, dump, err);
    if (real_peak) *real_peak = a.peak;
    if (leftover) *leftover = (int)a.nblocks;
    arena_destroy(&a);
    return rc ? 0 : peak;
}
