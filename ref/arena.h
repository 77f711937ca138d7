/* arena.h — activation memory for one run, sized before it is allocated.
 *
 * Model code allocates every activation buffer from an arena and frees it
 * when done (first fit, any order: UNet skip connections outlive many
 * temporaries). A run happens twice:
 *   1. measure: the model runs on ops_null() with a measuring arena; nothing
 *      is computed, the arena only records the high-water mark;
 *   2. real: one block of exactly that size is allocated from the backend
 *      (host or device memory) and the same sequence of allocations replays.
 * So the peak is known before any memory is committed — a too-large request
 * is a clear error, not an OOM kill — and there is no malloc in hot loops. */
#ifndef ONESTEP_ARENA_H
#define ONESTEP_ARENA_H

#include <stddef.h>

#include "common.h"
#include "ops.h"

struct arena_block {
    size_t off, size;
};

struct arena {
    const struct ops *ops;
    char *base;          /* backend memory (NULL while measuring) */
    size_t size;         /* capacity in bytes (measuring: unlimited) */
    size_t peak;         /* high-water mark in bytes */
    int measuring;
    struct arena_block *blocks; /* live allocations sorted by offset */
    size_t nblocks, cap;
};

#define ARENA_ALIGN 64

/* A measuring arena: allocations return a dummy pointer and record the peak. */
void arena_init_measure(struct arena *a);
/* A real arena of `bytes` from the backend. */
int arena_init(struct arena *a, const struct ops *o, size_t bytes, struct os_err *err);
void arena_destroy(struct arena *a);

/* n floats. Never NULL: the measure pass guarantees the real pass fits, so
 * running out here is an internal error (reported and aborted). */
float *arena_alloc(struct arena *a, size_t nfloats);
void arena_free(struct arena *a, const float *p);
/* Free everything (between stages). */
void arena_reset(struct arena *a);

#endif
