/* modelwalk.h — what a model costs at a given image size, from its configs
 * alone: every intermediate's shape, the multiply-add work and the activation
 * memory of each stage, without weights and without computing anything.
 *
 * How: each component's tensor list comes from its config (weights/arch.h),
 * bound to a weightless component, so the real loaders (clip_load,
 * unet_load, vae_load) build the real model structs; then each forward runs
 * once on a backend that computes nothing (ops_null()) but counts the
 * floating-point operations of every linear, conv2d and attention call, with
 * a measuring arena (the peak) and a dump hook (names and shapes). So the
 * shapes are those of the very code that runs, under the names --dump and
 * the conformance manifest use, and a full-size SDXL walk takes milliseconds.
 *
 * FLOPs count a multiply-add as 2: linear 2·M·K·N, conv 2·OC·OH·OW·C·KH·KW,
 * attention 4·heads·nq·nk·head_dim (q kᵀ and the weighted sum of v; CLIP's
 * causal mask is not subtracted, kernels compute the full product).
 * Normalisations, activations and additions are not counted: they are a few
 * operations per element, under 1% of the total for these models. */
#ifndef ONESTEP_TOOLS_MODELWALK_H
#define ONESTEP_TOOLS_MODELWALK_H

#include <stddef.h>
#include <stdint.h>

#include "../../ref/common.h"

enum mw_stage_kind { MW_TEXT, MW_UNET, MW_VAE_DECODE, MW_VAE_ENCODE, MW_TAESD_DECODE };

struct mw_tensor {
    char name[96];
    int stage; /* index into mw_report.stages */
    int ndim;
    int64_t shape[4];
};

struct mw_stage {
    char name[32];     /* "text_encoder", "text_encoder_2", "unet", "vae.decoder", "vae.encoder", "taesd.decoder" */
    enum mw_stage_kind kind;
    uint64_t params;   /* parameters the loader bound */
    uint64_t flops;    /* one call (one UNet step) */
    uint64_t linear_flops, conv_flops, attention_flops;
    size_t peak_bytes; /* activation arena for one call */
    int out_ndim;
    int64_t out_shape[4];
};

#define MW_MAX_STAGES 6

struct mw_report {
    int is_sdxl;
    char pipeline[64];
    int width, height;   /* image */
    int lh, lw, lc;      /* latent */
    int context_dim;     /* prompt_embeds features (SDXL: both encoders' widths) */
    int pooled_dim;      /* SDXL text_embeds width, else 0 */
    struct mw_stage stages[MW_MAX_STAGES];
    int nstages;
    struct mw_tensor *tensors; /* every dump, in pipeline order */
    size_t ntensors, cap;
};

/* Walk the model at `path` (a diffusers directory, a folder of configs such as
 * weights/configs/sd-turbo, or a single-file checkpoint) for a width x height
 * image; with_encoder adds the VAE encoder (img2img). Returns 0, or -1 with a
 * message (bad config, size not a multiple of the VAE factor). */
int modelwalk(const char *path, int width, int height, int with_encoder, struct mw_report *r, struct os_err *err);
void mw_report_free(struct mw_report *r);

/* The TAESD decoder alone: `dir` is an AutoencoderTiny directory or config
 * folder (only its config.json is read, e.g. weights/configs/taesd), lh x lw
 * the latent it decodes. Fills one stage named "taesd.decoder" (kind
 * MW_TAESD_DECODE): the decoder's parameters, FLOPs, activation peak and the
 * image shape, from ref/taesd.c's own layer list run on the counting
 * backend. Returns 0, or -1 with a message. */
int modelwalk_taesd(const char *dir, int lh, int lw, struct mw_stage *s, struct os_err *err);

/* The stage by name, or NULL. */
const struct mw_stage *mw_stage(const struct mw_report *r, const char *name);
/* The tensor by name, or NULL. */
const struct mw_tensor *mw_tensor(const struct mw_report *r, const char *name);

#endif
