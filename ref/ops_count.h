/* ops_count.h — a backend that counts arithmetic instead of doing it.
 *
 * Like ops_null() it touches no memory (run it with a measuring arena); each
 * kernel adds what it would compute to a struct flop_count. Running the model
 * code through it once gives the exact FLOP count of a stage for any config —
 * the same walk over the config the real run makes, so the count cannot drift
 * from the code — in microseconds. The benchmark divides these counts by
 * measured seconds.
 *
 * Conventions (the usual ones for these models):
 *   conv2d     2·OC·C·KH·KW·OH·OW   (a multiply-add is 2 FLOP; bias ignored)
 *   linear     2·M·K·N
 *   attention  4·heads·Nq·Nk·head_dim  (q·kᵀ and p·v; a causal row i counts
 *              its i+1 keys, as the kernels compute it)
 *   elementwise (norms, activations, softmax, adds, scales): per element, an
 *              approximate count kept apart from the three above, because what
 *              a "FLOP" of erf or exp is has no agreed answer:
 *              add/scale/add_channel/act 1, geglu 2, softmax 3, layer_norm and
 *              group_norm 5 (+1 with a fused SiLU). Copies, transposes,
 *              upsampling and embedding lookups count 0. */
#ifndef ONESTEP_OPS_COUNT_H
#define ONESTEP_OPS_COUNT_H

#include "ops.h"

struct flop_count {
    double conv, linear, attention; /* FLOP */
    double elementwise;             /* approximate, see above */
    long long calls;                /* kernel calls of any kind */
};

/* The matrix work: conv + linear + attention. */
double flop_count_matmul(const struct flop_count *c);

/* Fill *o with the counting table; its kernels add into *c (not reset here). */
void ops_count_init(struct ops *o, struct flop_count *c);

#endif
