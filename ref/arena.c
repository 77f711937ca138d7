#include "arena.h"

#include <stdio.h>
#include <string.h>

/* While measuring, pointers are made from integers (base MEASURE_BASE plus
 * the offset) and never dereferenced: ops_null() touches nothing. They still
 * identify the block, so arena_free works the same in both modes. */
#define MEASURE_BASE ((uintptr_t)1 << 20)

static char *base_of(const struct arena *a)
{
    return a->measuring ? (char *)MEASURE_BASE : a->base;
}

void arena_init_measure(struct arena *a)
{
    memset(a, 0, sizeof *a);
    a->measuring = 1;
    a->size = SIZE_MAX / 4; /* unlimited: the point is to learn the peak */
}

int arena_init(struct arena *a, const struct ops *o, size_t bytes, struct os_err *err)
{
    memset(a, 0, sizeof *a);
    a->ops = o;
    a->size = bytes;
    if (bytes) {
        a->base = o->alloc(o, bytes);
        if (!a->base)
            return os_fail(err, "cannot allocate %.1f MiB of activation memory on backend %s", bytes / 1048576.0,
                           o->name);
    }
    return 0;
}

void arena_destroy(struct arena *a)
{
    if (a->base && a->ops) a->ops->free(a->ops, a->base);
    OS_FREE(a->blocks);
    memset(a, 0, sizeof *a);
}

static void die(const char *msg)
{
    fprintf(stderr, "onestep: internal error: %s\n", msg);
    abort();
}

float *arena_alloc(struct arena *a, size_t nfloats)
{
    size_t need = (nfloats * sizeof(float) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need == 0) need = ARENA_ALIGN;
    /* first fit: the gap before block i, else after the last one */
    size_t pos = 0, at = a->nblocks;
    for (size_t i = 0; i < a->nblocks; i++) {
        if (a->blocks[i].off - pos >= need) {
            at = i;
            break;
        }
        pos = a->blocks[i].off + a->blocks[i].size;
    }
    if (pos + need > a->size) die("activation arena plan exceeded (measure and real runs diverged)");
    if (a->nblocks == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        struct arena_block *b = OS_REALLOC(a->blocks, cap * sizeof *b);
        if (!b) die("out of memory for arena bookkeeping");
        a->blocks = b;
        a->cap = cap;
    }
    memmove(&a->blocks[at + 1], &a->blocks[at], (a->nblocks - at) * sizeof *a->blocks);
    a->blocks[at].off = pos;
    a->blocks[at].size = need;
    a->nblocks++;
    if (pos + need > a->peak) a->peak = pos + need;
    return (float *)(base_of(a) + pos);
}

void arena_free(struct arena *a, const float *p)
{
    if (!p) return;
    size_t off = (size_t)((uintptr_t)p - (uintptr_t)base_of(a));
    for (size_t i = 0; i < a->nblocks; i++) {
        if (a->blocks[i].off == off) {
            memmove(&a->blocks[i], &a->blocks[i + 1], (a->nblocks - i - 1) * sizeof *a->blocks);
            a->nblocks--;
            return;
        }
    }
    die("arena_free of a pointer that is not a live allocation");
}

void arena_reset(struct arena *a)
{
    a->nblocks = 0;
}
