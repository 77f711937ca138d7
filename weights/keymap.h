/* keymap.h — single-file checkpoint keys (the original Stability AI layout)
 * and their diffusers / transformers names: one table, read both ways.
 *
 * The hub's single files (sd_turbo.safetensors, sd_xl_turbo_1.0_fp16.safetensors)
 * hold every component in one state dict, named as the training code
 * (CompVis ldm / Stability sgm, OpenCLIP) names its modules:
 *
 *   model.diffusion_model.*            UNet  (input_blocks / middle_block / output_blocks)
 *   first_stage_model.*                VAE   (encoder.down.N.block.M, mid.attn_1, ...)
 *   cond_stage_model.model.*           SD 2.x text encoder: OpenCLIP ViT-H (24 resblocks)
 *   conditioner.embedders.0.transformer.*  SDXL text encoder 1: transformers CLIP-L (same names)
 *   conditioner.embedders.1.model.*    SDXL text encoder 2: OpenCLIP ViT-bigG
 *
 * Besides renames, three things differ in the data (diffusers'
 * src/diffusers/loaders/single_file_utils.py does the same conversions):
 *   - OpenCLIP fuses q, k, v into attn.in_proj_weight [3C, C] / in_proj_bias [3C]
 *     (rows: q, then k, then v);
 *   - OpenCLIP's text_projection is a matrix applied as x @ P, [width, proj];
 *     transformers' text_projection.weight is the nn.Linear weight [proj, width];
 *   - the VAE mid-block attention's q, k, v, proj_out are 1x1 convolutions
 *     [C, C, 1, 1] in the original, nn.Linear [C, C] in diffusers (same bytes).
 * And some tensors exist only in the original file: OpenCLIP's logit_scale,
 * SD 2.x's 24th text layer (SD 2.x conditions on the penultimate layer, so
 * diffusers' CLIPTextModel config has 23 layers and the conversion drops
 * resblocks.23, see SD_2_TEXT_ENCODER_KEYS_TO_IGNORE upstream) and its
 * text_projection (CLIPTextModel has none), CLIP-L's position_ids buffer.
 *
 * Numbered blocks depend on the component's config: input_blocks.K with
 * K = 1 + block * (layers_per_block + 1) + layer, the up-sampler of an up
 * block sits at .2 behind a transformer and at .1 without one, and the VAE
 * decoder's up blocks are numbered in reverse. */
#ifndef ONESTEP_KEYMAP_H
#define ONESTEP_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

#include "../ref/common.h"
#include "arch.h"
#include "json.h"

#define KM_NAME_MAX 256

enum km_family {
    KM_FAMILY_UNKNOWN,
    KM_FAMILY_SD2,  /* SD 2.x / SD-Turbo: UNet, VAE, OpenCLIP-H text */
    KM_FAMILY_SDXL, /* SDXL / SDXL-Turbo: UNet, VAE, CLIP-L + OpenCLIP-bigG text */
};

/* How a component's keys are written in the single file. */
enum km_style {
    KM_STYLE_UNET,      /* ldm / sgm openaimodel.UNetModel */
    KM_STYLE_VAE,       /* ldm / sgm AutoencoderKL */
    KM_STYLE_CLIP_HF,   /* a transformers CLIPTextModel: diffusers names behind the prefix */
    KM_STYLE_OPEN_CLIP, /* OpenCLIP text tower */
};

struct km_component {
    const char *name;   /* diffusers component: "unet", "vae", "text_encoder", "text_encoder_2" */
    const char *prefix; /* key prefix in the single file, including the trailing dot */
    enum km_style style;
};

/* The components a family's single file holds. */
const struct km_component *km_family(enum km_family f, size_t *n);
const char *km_family_name(enum km_family f);
/* The weights/configs folder whose configs describe the family's models. */
const char *km_family_configs(enum km_family f);

enum km_xform {
    KM_SAME,      /* same shape, same bytes */
    KM_CONV1X1,   /* original [C, C, 1, 1] (or already [C, C]), diffusers [C, C] */
    KM_QKV_PART,  /* rows part*C .. (part+1)*C of the original fused [3C, ...] */
    KM_TRANSPOSE, /* original [width, proj] is the transpose of diffusers' [proj, width] */
};

struct km_target {
    char original[KM_NAME_MAX]; /* full key in the single file, prefix included */
    enum km_xform xform;
    int part; /* KM_QKV_PART: 0 q, 1 k, 2 v */
};

/* diffusers key -> original key. cfg is the component's config.json. */
int km_to_original(const struct km_component *c, const struct json *cfg, const char *diffusers, struct km_target *out,
                   struct os_err *err);

/* original key (with prefix) -> diffusers key; the inverse of km_to_original
 * (for a fused in_proj it gives the q name: part 0). Returns -1 with err set
 * for a key the table does not map. */
int km_to_diffusers(const struct km_component *c, const struct json *cfg, const char *original, char *out, size_t len,
                    struct os_err *err);

/* Is this original key (prefix included) one of the tensors the original
 * file holds beyond the diffusers component (logit_scale, SD 2.x's last
 * text layer and text_projection, position_ids)? */
int km_is_extra(const struct km_component *c, const struct json *cfg, const char *original);

/* The extra tensors a real single file of this component holds, for
 * writers of synthetic single files. Float tensors take the file's dtype;
 * `is_index` marks position_ids (int64 0, 1, 2, ...). */
struct km_extra {
    const char *name; /* valid only during the visit */
    int ndim;
    int64_t shape[4];
    enum arch_role role;
    int64_t fan_in;
    int is_index;
    int is_logit_scale; /* OpenCLIP's learned temperature, ln(1 / 0.07) at init */
};
typedef int (*km_extra_fn)(void *ctx, const struct km_extra *e, struct os_err *err);
int km_extras(const struct km_component *c, const struct json *cfg, km_extra_fn visit, void *ctx, struct os_err *err);

#endif
