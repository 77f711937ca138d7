/* measured.h — one UNet call the way the pipeline makes it (ref/arena.h):
 * measured on ops_null, then run on the reference in an arena of exactly
 * the measured size. For test_unet and test_lora. */
#ifndef ONESTEP_TEST_MEASURED_H
#define ONESTEP_TEST_MEASURED_H

#include <stddef.h>

#include "../../ref/dump.h"
#include "../../ref/unet.h"

/* eps gets the UNet's output; returns the measured peak in bytes, 0 on
 * failure (err set). real_peak (if non-NULL) gets the real run's peak,
 * leftover (if non-NULL) the arena blocks it left allocated. */
size_t unet_measured_run(const struct unet *u, const float *x, int h, int w, float t, const struct unet_cond *cond,
                         float *eps, const struct dump_hook *dump, size_t *real_peak, int *leftover,
                         struct os_err *err);

#endif
