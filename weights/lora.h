/* lora.h — LoRA adapters (LCM-LoRA, community LoRAs) merged into a
 * component's weights before the model binds them.
 *
 * A LoRA stores, per targeted Linear / Conv2d module, a low-rank update
 * up [out, r] · down [r, in(, kh, kw)] and optionally alpha. Merging it with
 * strength `scale` gives (peft's LoraLayer.merge, via diffusers' fuse_lora)
 *
 *     W' = W + scale · (alpha / r) · up · down
 *
 * with, for a k x k conv, delta[o, i, :, :] = Σ_r up[o, r] · down[r, i, :, :]
 * (a 1x1 `up` after a k x k `down`). alpha absent = r (factor 1).
 *
 * Two key layouts, both mapped to the engine's parameter names (the diffusers
 * keys, e.g. down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q):
 *   kohya / sd-scripts (LCM-LoRA releases and most community LoRAs):
 *     lora_unet_<module with '.' -> '_'>.lora_down.weight / .lora_up.weight / .alpha
 *     lora_te_ / lora_te1_ (text_encoder), lora_te2_ (text_encoder_2) with
 *     transformers' module names (text_model_encoder_layers_0_self_attn_q_proj)
 *   diffusers / peft:
 *     unet.<module>.lora_A.weight / .lora_B.weight (or .lora.down / .lora.up),
 *     optional .alpha; text_encoder.<module>..., text_encoder_2.<module>...
 * The kohya name is ambiguous ('_' both separates and occurs inside names:
 * to_q, proj_in, time_emb_proj), so it is resolved against the component's
 * actual tensor names, as diffusers does.
 *
 * Merged tensors become private copies owned by the component (the LoRA's
 * f16/bf16 values widened exactly, the product accumulated in double and
 * rounded once, then peft's float32 `delta * scaling`); every other tensor
 * stays in the file mapping. Several LoRAs stack: each is added onto the
 * result of the previous ones, in the order applied. The copies' dtype is
 * the caller's choice (enum lora_merge).
 *
 * Order of calls: open the component, lora_apply every LoRA to it, THEN
 * *_load it (unet_load, clip_load): the first merge replaces the component's
 * tensor table, so a model bound before would still see the old weights. */
#ifndef ONESTEP_LORA_H
#define ONESTEP_LORA_H

#include <stddef.h>

#include "model_dir.h"

struct lora;

/* How a merged weight is kept.
 *   LORA_MERGE_F32: a float32 copy, W + delta rounded once (the reference's
 *     choice: nothing is lost to the weight's dtype).
 *   LORA_MERGE_STORED: a weight stored as f16/bf16 stays f16/bf16, merged
 *     as diffusers' fuse_lora leaves a float16 pipeline's weights (peft on
 *     the CPU: delta in float32, rounded to the weight's dtype, then added
 *     in that dtype). Half the memory of LORA_MERGE_F32: LCM-LoRA touches
 *     most of SDXL's UNet, ~5 GB of copies instead of ~10 GB. f32 weights
 *     merge as with LORA_MERGE_F32. */
enum lora_merge { LORA_MERGE_F32, LORA_MERGE_STORED };

/* Open and validate a LoRA safetensors file: every key must be a known layout
 * (prefix, module, .lora_down/.lora_up/.alpha or peft suffixes), every
 * module must have exactly one down and one up of a float dtype with
 * matching rank, alpha a single number. The file is untrusted input: errors
 * name the file and the key. */
int lora_open(const char *path, struct lora **out, struct os_err *err);
void lora_close(struct lora *l);

/* Merge the LoRA's modules for `component` ("unet", "text_encoder",
 * "text_encoder_2") into c with strength `scale`. Every one of those modules
 * must match a weight of c with a compatible shape, else nothing is changed
 * and the error lists a few unmatched modules or names both shapes. */
int lora_apply(struct lora *l, struct component *c, const char *component, float scale, enum lora_merge mode,
               struct os_err *err);

/* Modules of the file for `component` (NULL: all). */
size_t lora_nmodules(const struct lora *l, const char *component);

/* Module i (0 <= i < lora_nmodules(l, NULL)): the name of the weight it was
 * merged into ("down_blocks.0.resnets.0.conv1.weight"; it points into that
 * component's table, so valid while the component is open), NULL before it
 * is applied. *component (if non-NULL) gets "unet", "text_encoder", ... For
 * --dump: the suite names a merged weight lora.fused.<that name>. */
const char *lora_merged_weight(const struct lora *l, size_t i, const char **component);

/* After applying to every component: an error naming modules that were never
 * applied (e.g. text-encoder modules when only the UNet was given). */
int lora_check_applied(const struct lora *l, struct os_err *err);

/* Drop the LoRA file's pages from RSS once it is applied everywhere (the
 * merged copies hold what it contributed; lora_merged_weight still works). */
void lora_release_pages(struct lora *l);

/* open + apply to one component + check_applied + close. */
int lora_apply_file(struct component *c, const char *component, const char *path, float scale, enum lora_merge mode,
                    struct os_err *err);

/* The CLI's "FILE[:SCALE]": *path gets a new string (OS_FREE it), *scale the
 * number after the last ':' when that is a finite number, else 1. */
int lora_parse_arg(const char *arg, char **path, float *scale, struct os_err *err);

#endif
