/* dumps.h — a dump hook that keeps a host copy of every tensor it is shown.
 *
 * The module tests (vae, taesd, unet, lora, clip, cuda) run a stage with this
 * hook and look the intermediates up by name to compare them with the
 * conformance suite; test_pipeline fills one from the public API's dump
 * callback through dumps_add(). One copy here instead of one per test. */
#ifndef ONESTEP_TEST_DUMPS_H
#define ONESTEP_TEST_DUMPS_H

#include <stddef.h>
#include <stdint.h>

#include "../../ref/ops.h"

#define DUMPED_MAX_DIMS 8

struct dumped {
    char name[96];
    int ndim;
    int64_t shape[DUMPED_MAX_DIMS];
    float *data; /* n floats (never NULL for a kept tensor) */
    size_t n;
};

/* Start from {.o = the backend} (or {0} and set .o before the run). */
struct dumps {
    const struct ops *o; /* the hooked stage's backend: buffers come back through o->download */
    struct dumped *d;    /* d[0..n), in the order reported */
    int n, cap;
    int overflow;        /* a tensor was not kept (more than DUMPED_MAX_DIMS dims, or out of memory) */
};

/* The dump_hook function: struct dump_hook hook = {dumps_fn, &set}. */
void dumps_fn(void *ctx, const char *name, const float *buf, int ndim, const int64_t *shape);

/* A new entry with room for the shape's element count, for the caller to
 * fill; NULL (and overflow set) when it cannot be kept. */
struct dumped *dumps_add(struct dumps *s, const char *name, int ndim, const int64_t *shape);

/* The first entry of that name, or NULL. */
const struct dumped *dumps_find(const struct dumps *s, const char *name);
/* The entry of that name if it was reported exactly once, else NULL. */
const struct dumped *dumps_find_once(const struct dumps *s, const char *name);

/* Free every copy; the set is empty again (o is kept). */
void dumps_clear(struct dumps *s);

#endif
