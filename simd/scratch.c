/* scratch.c — per-thread growable buffers; see scratch.h. */
#include "scratch.h"

#include <stdio.h>
#include <stdlib.h>

struct slot {
    void *p;
    size_t size;
};

static _Thread_local struct slot slots[SCRATCH_NSLOTS];

void *simd_scratch(enum scratch_slot s, size_t bytes)
{
    struct slot *sl = &slots[s];
    if (bytes <= sl->size) return sl->p;
    free(sl->p);
    sl->p = NULL;
    sl->size = 0;
    /* grow by 1/8 extra so a slowly rising sequence does not reallocate each time */
    size_t want = bytes + bytes / 8;
    want = (want + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, want) != 0) {
        fprintf(stderr, "onestep: out of memory for %zu bytes of kernel scratch\n", want);
        abort();
    }
    sl->p = p;
    sl->size = want;
    return p;
}

void simd_scratch_release(void)
{
    for (int s = 0; s < SCRATCH_NSLOTS; s++) {
        free(slots[s].p);
        slots[s].p = NULL;
        slots[s].size = 0;
    }
}
