/* arch.h — the parameter list a diffusers / transformers config implies.
 *
 * One walker per model class reads a component's config.json and visits
 * every parameter the upstream module tree would create, with the checkpoint
 * key diffusers or transformers uses and its shape, in module order:
 *
 *   UNet2DConditionModel        (diffusers src/diffusers/models/unets/unet_2d_condition.py,
 *                                unet_2d_blocks.py, resnet.py, transformers/transformer_2d.py, attention.py)
 *   AutoencoderKL               (diffusers models/autoencoders/autoencoder_kl.py, vae.py)
 *   AutoencoderTiny (TAESD)     (diffusers models/autoencoders/autoencoder_tiny.py, vae.py
 *                                EncoderTiny / DecoderTiny, unets/unet_2d_blocks.py AutoencoderTinyBlock)
 *   CLIPTextModel[WithProjection] (transformers models/clip/modeling_clip.py)
 *
 * It is an independent derivation of the names the model loaders (clip.c,
 * unet.c, vae.c, taesd.c) bind, used to write synthetic checkpoints (tools/mkmodel),
 * to map single-file checkpoints onto diffusers names (single_file.c) and to
 * count parameters. It only knows shapes: no tensor data, no arithmetic.
 *
 * Config features that change the tensor list and are not implemented here
 * (class embeddings, encoder_hid_dim, dual cross-attention, gated attention,
 * ...) are refused with an error naming the key, never silently ignored. */
#ifndef ONESTEP_ARCH_H
#define ONESTEP_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "../ref/common.h"
#include "json.h"

enum arch_class {
    ARCH_UNKNOWN,
    ARCH_UNET,           /* UNet2DConditionModel */
    ARCH_VAE,            /* AutoencoderKL */
    ARCH_CLIP_TEXT,      /* CLIPTextModel */
    ARCH_CLIP_TEXT_PROJ, /* CLIPTextModelWithProjection */
    ARCH_TAESD,          /* AutoencoderTiny */
};

/* What a parameter is, so a synthesiser can give it a sensible scale. */
enum arch_role {
    ARCH_MATRIX,     /* Linear / Conv weight: fan_in inputs per output */
    ARCH_BIAS,
    ARCH_NORM_SCALE, /* GroupNorm / LayerNorm weight (1 at init upstream) */
    ARCH_NORM_SHIFT, /* GroupNorm / LayerNorm bias (0 at init upstream) */
    ARCH_EMBEDDING,  /* token / position embedding tables */
};

struct arch_param {
    const char *name; /* checkpoint key; valid only during the visit */
    enum arch_role role;
    int ndim;
    int64_t shape[4];
    int64_t fan_in; /* ARCH_MATRIX: in_features, or in_channels * kh * kw */
};

/* Return 0 to continue, -1 (with err set) to stop the walk. */
typedef int (*arch_visit_fn)(void *ctx, const struct arch_param *p, struct os_err *err);

/* The class a config describes: diffusers' "_class_name" or transformers'
 * "architectures"[0]. ARCH_UNKNOWN if neither names a class we know. */
enum arch_class arch_class_of(const struct json *config);
const char *arch_class_name(enum arch_class c);

/* Visit every parameter of the component `config` describes. `what` names
 * the config in error messages ("unet/config.json"). */
int arch_walk(const struct json *config, const char *what, arch_visit_fn visit, void *ctx, struct os_err *err);

/* The same walk for a known class (the CLIP walkers take the projection from
 * the class, not the config, so a caller can ask for the tower alone). */
int arch_walk_unet(const struct json *config, const char *what, arch_visit_fn visit, void *ctx, struct os_err *err);
int arch_walk_vae(const struct json *config, const char *what, arch_visit_fn visit, void *ctx, struct os_err *err);
int arch_walk_taesd(const struct json *config, const char *what, arch_visit_fn visit, void *ctx, struct os_err *err);
int arch_walk_clip_text(const struct json *config, const char *what, int with_projection, arch_visit_fn visit,
                        void *ctx, struct os_err *err);

/* Number of parameters (elements) and tensors of a component. */
int arch_count(const struct json *config, const char *what, uint64_t *params, size_t *ntensors, struct os_err *err);

#endif
