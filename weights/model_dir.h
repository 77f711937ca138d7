/* model_dir.h — a diffusers model directory and its components.
 *
 *   MODEL/model_index.json            names the pipeline class and components
 *   MODEL/<component>/config.json     shapes (unet, vae, text_encoder*, scheduler_config.json)
 *   MODEL/<component>/diffusion_pytorch_model[.fp16].safetensors   (unet, vae)
 *   MODEL/<component>/model[.fp16].safetensors                     (text encoders)
 *   MODEL/tokenizer[_2]/vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json
 *
 * A component is a config plus a table of named tensors. For a diffusers
 * directory the table is the safetensors file itself; a single-file checkpoint
 * (weights/single_file.c) fills the same table with renamed views into its
 * one mapping. Model code only sees `struct component`.
 *
 * Weights stay in the mapping in their stored dtype. component_require()
 * checks each tensor's shape against what the config implies and marks it
 * used, so after building a model component_check_unused() can report a
 * checkpoint that has tensors the config does not explain. */
#ifndef ONESTEP_MODEL_DIR_H
#define ONESTEP_MODEL_DIR_H

#include <stddef.h>

#include "../ref/common.h"
#include "../ref/tensor.h"
#include "json.h"
#include "safetensors.h"

#define MODEL_JSON_MAX (64u << 20) /* vocab.json is ~1 MB; configs are tiny */

enum weight_variant {
    VARIANT_AUTO, /* the plain file if present, else the .fp16 one (diffusers loads the plain one) */
    VARIANT_FP32, /* only the plain file */
    VARIANT_FP16, /* only the .fp16 file (diffusers' variant="fp16") */
};

struct component {
    char *name;        /* "unet", "text_encoder_2", ... */
    char *dir;         /* MODEL/unet (for messages and tokenizer files) */
    struct json *config;
    char *config_path;
    char *weights_path;
    struct st_file *file;   /* backing mapping, NULL for configs-only components */
    struct tensor *tensors; /* sorted by name (points into file or owned storage) */
    size_t ntensors;
    unsigned char *used;
    void **owned;           /* buffers owned by the component (derived tensors) */
    size_t nowned;
    int tensors_owned;      /* tensors[] was allocated by us, not st_file's */
    const struct st_file *view_of; /* single file: the model's one mapping the tensors view (not owned) */
};

struct single_file; /* weights/single_file.h */

struct model_dir {
    char *path;
    struct json *index;       /* model_index.json (synthesised for single files) */
    const char *pipeline;     /* "_class_name" of model_index.json */
    int is_sdxl;              /* StableDiffusionXL*Pipeline */
    struct single_file *single; /* non-NULL when `path` is a single-file checkpoint */
};

/* Where model_open finds what a single-file checkpoint lacks (all optional). */
struct model_open_opts {
    const char *configs_dir; /* weights/configs; default $ONESTEP_CONFIGS, else "weights/configs" */
    const char *config;      /* a directory laid out like a diffusers model (model_index.json,
                                <component>/config.json, tokenizer configs) describing the checkpoint;
                                default: chosen by the checkpoint's family from configs_dir */
    const char *vocab_dir;   /* vocab.json + merges.txt; default $ONESTEP_VOCAB, then the search
                                weights/configs/README.md describes */
};

/* Open a diffusers model directory, or a single-file checkpoint
 * (sd_turbo.safetensors, sd_xl_turbo_1.0_fp16.safetensors): its components
 * then open with component_open as if it were a directory, their tensors
 * renamed views into the one mapping (weights/single_file.c). opts may be
 * NULL. Close components before the model. */
int model_open(const char *path, const struct model_open_opts *opts, struct model_dir **out, struct os_err *err);

/* The tokenizer files of component `name` ("tokenizer", "tokenizer_2"):
 * MODEL/<name>/ for a directory; for a single file the tokenizer configs of
 * its config directory and vocab.json / merges.txt from the vocab directory.
 * Paths are allocated; free them with model_tokenizer_files_free. */
struct model_tokenizer_files {
    char *vocab_json, *merges_txt, *tokenizer_config, *special_tokens_map;
};
int model_tokenizer_files(const struct model_dir *m, const char *name, struct model_tokenizer_files *out,
                          struct os_err *err);
void model_tokenizer_files_free(struct model_tokenizer_files *f);
/* The four paths from the directories that hold them: vocab.json and
 * merges.txt in vocab_dir, the two tokenizer configs in config_dir. */
int model_tokenizer_files_in(const char *vocab_dir, const char *config_dir, struct model_tokenizer_files *out,
                             struct os_err *err);

/* Open MODEL/model_index.json; errors name the path, and a missing directory
 * says how to get the weights. */
int model_dir_open(const char *path, struct model_dir **out, struct os_err *err);
void model_dir_close(struct model_dir *m);

/* Does model_index.json list this component (with a non-null class)? */
int model_dir_has(const struct model_dir *m, const char *component);

/* Load MODEL/<name>/config.json (or `config_file` inside it, e.g.
 * "scheduler_config.json") and, if with_weights, map its weights file. */
int component_open(const struct model_dir *m, const char *name, const char *config_file, int with_weights,
                   enum weight_variant variant, struct component *c, struct os_err *err);
void component_close(struct component *c);

/* A component that lives in a directory of its own rather than inside a
 * model directory (--taesd DIR: config.json + diffusion_pytorch_model
 * [.fp16].safetensors, the layout of the madebyollin/taesd repos). `name`
 * names it in messages ("taesd"); config_file and with_weights as above. */
int component_open_dir(const char *dir, const char *name, const char *config_file, int with_weights,
                       enum weight_variant variant, struct component *c, struct os_err *err);

/* Tensor by name (marks it used) or NULL. */
const struct tensor *component_get(struct component *c, const char *name);
/* Index of a tensor in c->tensors (sorted by name), or -1; does not mark it
 * used (the LoRA merger looks up before the model's loader binds). */
long component_index(const struct component *c, const char *name);

/* Tensor by name with an expected shape (ndim values, -1 = any). Error text:
 * "unet: down_blocks.0.resnets.0.conv1.weight: shape [320, 4, 3, 3] in the
 * checkpoint, the config implies [320, 320, 3, 3]" or "... missing". */
const struct tensor *component_require(struct component *c, const char *name, int ndim, const int64_t *shape,
                                       struct os_err *err);

/* Error listing up to 5 tensors nobody asked for ("extra tensors"). Names
 * matching any of the NULL-terminated `ignore` suffixes are allowed
 * (e.g. "position_ids" buffers some exporters keep). */
int component_check_unused(const struct component *c, const char *const *ignore, struct os_err *err);

/* Drop the component's weight pages from RSS (they stay mapped and fault
 * back in if read again). A component of a single-file checkpoint releases
 * the pages under its own tensors only; other components' pages stay. */
void component_release_pages(struct component *c);
/* The same for the pages under [p, p + len) only, when they belong to c's
 * mapping (a LoRA-merged tensor's original, no longer read). */
void component_release_range(const struct component *c, const void *p, size_t len);

/* For loaders that fill a component their own way (weights/single_file.c).
 * component_begin: c zeroed, c->name a copy of `name`, c->dir = `dir`
 * (taken over; NULL counts as out of memory). component_read_config:
 * c->dir/config_file parsed into c->config, which must be a JSON object.
 * On failure both leave c for component_close. */
int component_begin(struct component *c, const char *name, char *dir, struct os_err *err);
int component_read_config(struct component *c, const char *config_file, struct os_err *err);

/* Replace the table (used by single-file and LoRA loaders). The component
 * takes ownership of `tensors` (and of `owned` buffers added with
 * component_own). */
void component_set_tensors(struct component *c, struct tensor *tensors, size_t n);
int component_own(struct component *c, void *buffer);

/* Join dir + "/" + name into a new string. */
char *path_join(const char *dir, const char *name);
int path_exists(const char *path);

#endif
