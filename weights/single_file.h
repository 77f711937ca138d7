/* single_file.h — a single-file checkpoint opened as a diffusers model.
 *
 * `model_open("sd_turbo.safetensors", ...)` (weights/model_dir.h) lands
 * here. The file is mapped once; its family (SD 2.x or SDXL) is read from
 * its keys; the configs come from weights/configs/<family's model>/ (or the
 * caller's config directory); each component_open then walks the
 * component's config (weights/arch.h), maps every diffusers name to its
 * original key (weights/keymap.h) and fills the component's table with
 * views into the mapping:
 *   - renamed tensors and the VAE's 1x1-conv attention weights: the very
 *     bytes of the file (a [C, C, 1, 1] weight is viewed as [C, C]);
 *   - OpenCLIP's fused q/k/v: three views, rows 0..C-1, C..2C-1, 2C..3C-1;
 *   - OpenCLIP's text_projection: a transposed private copy (the only data
 *     copied, width x proj elements).
 * Model code cannot tell the difference from a diffusers directory.
 *
 * Checks: every tensor the config implies must be in the file with the
 * right shape, and every tensor under a component's prefix must be used
 * or be one of the known extras (keymap.h), so a checkpoint whose
 * architecture differs from the config fails with a clear message instead
 * of loading half a model. */
#ifndef ONESTEP_SINGLE_FILE_H
#define ONESTEP_SINGLE_FILE_H

#include "keymap.h"
#include "model_dir.h"

/* The metadata key mkmodel writes into synthetic single files to name their
 * config folder under weights/configs (e.g. "tiny-sd"); real checkpoints do
 * not have it and get their family's configs. */
#define SINGLE_FILE_CONFIG_META "onestep_config"

int single_file_open(const char *path, const struct model_open_opts *opts, struct model_dir **out, struct os_err *err);
void single_file_close(struct single_file *s);

/* component_open for a model opened from a single file. */
int single_file_component(const struct model_dir *m, const char *name, const char *config_file, int with_weights,
                          struct component *c, struct os_err *err);
int single_file_tokenizer_files(const struct model_dir *m, const char *name, struct model_tokenizer_files *out,
                                struct os_err *err);

/* The family of an open single file (KM_FAMILY_UNKNOWN for a directory),
 * the config directory in use and the mapped file. */
enum km_family single_file_family(const struct model_dir *m);
const char *single_file_config_dir(const struct model_dir *m);
const struct st_file *single_file_st(const struct model_dir *m);

/* Family of a safetensors file from its keys, or KM_FAMILY_UNKNOWN with err
 * saying what was found instead (SD 1.x, SDXL refiner, a diffusers
 * component file, ...). *text_prefix gets the SD 2.x text tower's prefix
 * (cond_stage_model.model. as ldm saves it, conditioner.embedders.0.model.
 * as sgm does). */
enum km_family single_file_detect(const struct st_file *f, const char **text_prefix, struct os_err *err);

#endif
