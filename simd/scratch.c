/* scratch.c — per-thread growable buffers; see scratch.h.
 *
 * The buffers hang off a pthread key whose destructor frees them when the
 * thread ends (OpenMP may retire pool threads when a team shrinks), so no
 * memory outlives its thread. */
#include "scratch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct slots {
    void *p[SCRATCH_NSLOTS];
    size_t size[SCRATCH_NSLOTS];
};

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void free_slots(void *v)
{
    struct slots *s = v;
    if (!s) return;
    for (int i = 0; i < SCRATCH_NSLOTS; i++) free(s->p[i]);
    free(s);
}

static void make_key(void)
{
    if (pthread_key_create(&key, free_slots) != 0) {
        fprintf(stderr, "onestep: cannot create the kernel scratch key\n");
        abort();
    }
}

static void oom(size_t n)
{
    fprintf(stderr, "onestep: out of memory for %zu bytes of kernel scratch\n", n);
    abort();
}

void *simd_scratch(enum scratch_slot slot, size_t bytes)
{
    pthread_once(&once, make_key);
    struct slots *s = pthread_getspecific(key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || pthread_setspecific(key, s) != 0) oom(sizeof *s);
    }
    if (bytes <= s->size[slot]) return s->p[slot];
    free(s->p[slot]);
    s->p[slot] = NULL;
    s->size[slot] = 0;
    /* grow by 1/8 extra so a slowly rising sequence does not reallocate each time */
    size_t want = bytes + bytes / 8;
    want = (want + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, want) != 0) oom(want);
    s->p[slot] = p;
    s->size[slot] = want;
    return p;
}

void simd_scratch_release(void)
{
    pthread_once(&once, make_key);
    free_slots(pthread_getspecific(key));
    pthread_setspecific(key, NULL);
}
