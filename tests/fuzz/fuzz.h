/* fuzz.h — the fuzz targets: one function per untrusted-input parser.
 *
 * Each target takes arbitrary bytes, must never crash, leak or trip a
 * sanitizer, and aborts when the parser's promise is broken (an accepted
 * safetensors file whose tensor spans leave the buffer, a failure without a
 * message, ...). Two programs call them:
 *   - tests/fuzz/fuzz_<target>.c built by `make fuzz` with clang's libFuzzer
 *     (LLVMFuzzerTestOneInput calls the target);
 *   - tests/test_fuzz_corpus.c, part of `make test` / `make sanitize`, which
 *     replays every committed input of tests/fuzz/corpus/<target>/ (the seeds
 *     and the regression case of every finding) with any compiler.
 * The replay test includes the target files with FUZZ_REPLAY defined, which
 * leaves out the libFuzzer entry points. */
#ifndef ONESTEP_FUZZ_H
#define ONESTEP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A broken promise: report it and abort, so libFuzzer saves the input. */
#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_json(const uint8_t *data, size_t size);
/* The tokenizer needs a vocabulary: fuzz_tokenizer_init loads the real CLIP
 * one (../shared/clip-tokenizer or $ONESTEP_CLIP_TOKENIZER) once; -1 if absent. */
int fuzz_tokenizer_init(void);
int fuzz_tokenizer(const uint8_t *data, size_t size);
int fuzz_image(const uint8_t *data, size_t size);

#endif
