/* load.h — binding a model's tensors by checkpoint name, with shape checks.
 *
 * Model loaders read their config, then ask for each tensor by its
 * checkpoint key with the shape the config implies:
 *   r->conv1_w = load4(c, err, out_ch, in_ch, 3, 3, "%s.conv1.weight", prefix);
 * A missing tensor or wrong shape becomes one clear error naming the file,
 * the key and both shapes; the loader checks err->msg[0] (or the NULL) once
 * at the end of a block instead of after every line. */
#ifndef ONESTEP_LOAD_H
#define ONESTEP_LOAD_H

#include "../weights/model_dir.h"
#include "common.h"
#include "tensor.h"

/* -1 in a dimension accepts any size. fmt/... builds the tensor name.
 * Once an error is recorded in err (msg non-empty) later calls return NULL
 * without overwriting it, so the first problem is the one reported. */
const struct tensor *load_tensor(struct component *c, struct os_err *err, int ndim, const int64_t *shape,
                                 const char *fmt, ...) OS_PRINTF(5, 6);
const struct tensor *load1(struct component *c, struct os_err *err, int64_t d0, const char *fmt, ...) OS_PRINTF(4, 5);
const struct tensor *load2(struct component *c, struct os_err *err, int64_t d0, int64_t d1, const char *fmt, ...)
    OS_PRINTF(5, 6);
const struct tensor *load4(struct component *c, struct os_err *err, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                           const char *fmt, ...) OS_PRINTF(7, 8);
/* Like load_tensor but returns NULL without an error when the tensor is
 * absent (optional biases, conv_shortcut). A present tensor of the wrong
 * shape is still an error. */
const struct tensor *load_optional(struct component *c, struct os_err *err, int ndim, const int64_t *shape,
                                   const char *fmt, ...) OS_PRINTF(5, 6);

#endif
