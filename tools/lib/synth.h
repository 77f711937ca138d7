/* synth.h — synthetic models with the real tensor names, shapes and dtypes.
 *
 * The engine behind ./mkmodel. From a model's configs (weights/configs/<name>
 * or any diffusers-style directory) it writes either
 *   - a diffusers directory: model_index.json, the configs, the tokenizer
 *     files and one safetensors file per component, or
 *   - a single-file checkpoint in the original Stability layout, through the
 *     same key table the loader reads it with (weights/keymap.h), including
 *     the tensors only original files carry (keymap.h "extras").
 * The tensor lists come from weights/arch.h: nothing is listed by hand.
 *
 * Values are deterministic pseudo-random numbers: element i of a tensor is a
 * hash of (seed, diffusers name, i) mapped to a uniform with the variance
 * the role calls for (Linear / Conv weights 1/fan_in, norm scales near 1,
 * small biases), so activations stay finite at any depth and the same
 * tensor gets the same bytes in both layouts (a fused q/k/v or a transposed
 * projection is assembled from the parts' own streams). Same arguments,
 * same bytes.
 *
 * Output goes to a hidden temporary file or directory next to the target
 * and is renamed at the end; on any failure (or when *interrupted becomes
 * non-zero) it is removed and nothing is left behind. */
#ifndef ONESTEP_TOOLS_SYNTH_H
#define ONESTEP_TOOLS_SYNTH_H

#include <signal.h>
#include <stdint.h>

#include "../../ref/common.h"
#include "../../ref/tensor.h"

enum synth_layout { SYNTH_DIFFUSERS, SYNTH_SINGLE };

struct synth_opts {
    const char *model;       /* a folder name under configs_dir, or a path to a diffusers-style directory */
    const char *configs_dir; /* NULL: "weights/configs" */
    enum synth_layout layout;
    enum dtype dtype;        /* DT_F32, DT_F16 or DT_BF16 */
    const char *out;         /* must not exist yet */
    uint64_t seed;
    const char *vocab_dir;   /* NULL: search (see synth_find_vocab) */
    int count_only;          /* count parameters, write nothing (out may be NULL) */
    volatile sig_atomic_t *interrupted; /* optional: abort cleanly when it becomes non-zero */
};

/* Called once per component with weights, before anything is written:
 * diffusers component name ("unet", "vae", "text_encoder", "text_encoder_2")
 * and its parameter count in the diffusers layout. */
typedef void (*synth_report_fn)(void *ctx, const char *component, uint64_t params, size_t tensors);

int synth_model(const struct synth_opts *o, synth_report_fn report, void *ctx, struct os_err *err);

/* The directory vocab.json + merges.txt are copied from when the model's own
 * configs lack them: `given` if set, else the first of ../shared/clip-tokenizer,
 * weights/sd-turbo/tokenizer, weights/sdxl-turbo/tokenizer,
 * weights/clip-tokenizer that has both. NULL with err set if none. */
const char *synth_find_vocab(const char *given, struct os_err *err);

#endif
