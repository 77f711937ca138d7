/* rng.h — the initial and per-step noise, reproducing torch.randn bit for bit.
 *
 * diffusers draws every latent with torch.randn(shape, generator=
 * torch.Generator("cpu").manual_seed(seed)), so a seed means nothing unless
 * the engine makes exactly torch's numbers. Three generators:
 *
 *   RNG_TORCH         torch's CPU generator as x86-64 builds run it (the
 *                     default, and what the conformance suite's noise is):
 *                     mt19937 + Box-Muller, with the >= 16 element path done
 *                     by torch's AVX2 kernel, whose float32 log / sincos
 *                     polynomials are reproduced here in portable C, so ARM
 *                     and every other IEEE machine gives the x86 bits.
 *   RNG_TORCH_SCALAR  the same generator through torch's portable kernel
 *                     (ATEN_CPU_CAPABILITY=default, and non-x86 builds): float
 *                     logf / cosf / sinf from the C library, exactly the calls
 *                     torch makes, so it matches torch on the same C library
 *                     (bit for bit on glibc; see rng.c).
 *   RNG_PHILOX        Philox-4x32-10 + Box-Muller as A1111's "NV" generator
 *                     (modules/rng_philox.py) and stable-diffusion.cpp's
 *                     --rng cuda compute it: an imitation of torch.randn on
 *                     an NVIDIA GPU.
 *
 * A generator is plain state, seeded once; every draw advances it the way
 * the upstream generator advances (the Euler-ancestral sampler draws again
 * every step). */
#ifndef ONESTEP_RNG_H
#define ONESTEP_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

enum rng_kind { RNG_TORCH, RNG_TORCH_SCALAR, RNG_PHILOX };

#define RNG_MT_N 624

struct rng {
    enum rng_kind kind;
    /* torch kinds: at::mt19937 state and torch's cached second value of the
     * double-precision Box-Muller pair (CPUGeneratorImpl's
     * next_double_normal_sample_): it outlives a randn call. */
    uint32_t mt[RNG_MT_N];
    int mt_pos; /* next word of mt[] to temper; RNG_MT_N = regenerate first */
    int has_cached_normal;
    double cached_normal;
    /* philox: the key is the whole 64-bit seed; every randn call uses the
     * next counter offset. */
    uint64_t seed;
    uint32_t philox_offset;
};

/* torch.Generator("cpu").manual_seed(seed) (torch keeps only the low 32 bits
 * for mt19937: seeds 2^32 and 0 are the same stream), or a fresh Philox
 * generator with key = seed. */
void rng_init(struct rng *r, enum rng_kind kind, uint64_t seed);

/* torch.randn(n) (float32, contiguous) into out[0..n), advancing the
 * generator exactly as torch does: n < 16 takes torch's per-element double
 * path, n >= 16 its block-of-16 float path. The tensor's shape does not
 * matter, only n. Works in place in out (no allocation, any n). */
void rng_randn(struct rng *r, float *out, size_t n);

/* One raw 32-bit mt19937 draw (torch's generator->random()); torch kinds
 * only. Exposed for tests and for other torch distributions. */
uint32_t rng_u32(struct rng *r);

/* "torch", "torch-scalar", "philox". */
int rng_kind_from_name(const char *name, enum rng_kind *out, struct os_err *err);
const char *rng_kind_name(enum rng_kind k);

/* A seed as the CLI takes it: decimal 0 .. 2^64-1, nothing else (no sign,
 * no spaces, no hex). */
int rng_parse_seed(const char *s, uint64_t *out, struct os_err *err);

#endif
