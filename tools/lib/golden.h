/* golden.h — the reference's own outputs, frozen: what golden/ holds and how
 * a run is remade.
 *
 * golden/ holds, for each run below, every intermediate the pipeline reports
 * through its dump callback (the conformance manifest's names) as a
 * safetensors file compressed with gzip, made by the scalar reference
 * backend. The models are our own: the tiny-sd / tiny-sdxl configs of
 * weights/configs with mkmodel's deterministic weights (tools/lib/synth.h)
 * and the small vocabulary golden/vocab/ (tools/golden_vocab.py), made afresh
 * wherever the goldens are checked; nothing outside this repository is read.
 *
 * tools/mkgolden.c writes the files (`make golden`); tests/test_golden.c
 * remakes every run and compares every tensor bit for bit (reference) or
 * within a tolerance (other backends). */
#ifndef ONESTEP_TOOLS_GOLDEN_H
#define ONESTEP_TOOLS_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

#include "../../ref/common.h"
#include "../../ref/onestep.h"
#include "../../ref/tensor.h"

/* Where golden/ is: $ONESTEP_GOLDEN, else "golden" (the repository root is
 * the working directory of make, the tests and the tools). */
const char *golden_dir(void);

/* A model the runs use: `./mkmodel --model <configs> --layout diffusers
 * --dtype <dtype> --seed <seed> --vocab golden/vocab --out DIR/<name>`. */
struct golden_model {
    const char *name;
    const char *configs; /* folder of weights/configs */
    enum dtype dtype;
    uint64_t seed;
};

/* One golden run: a call of onestep_generate. */
struct golden_run {
    const char *name;      /* golden/<name>.safetensors.gz */
    const char *model;     /* a golden_model name */
    const char *covers;    /* what path of the code it is there for (README, test output) */
    const char *prompt;
    const char *prompt_2;  /* NULL: the prompt (SDXL) */
    int width, height, steps;
    uint64_t seed;
    const char *rng;       /* NULL: "torch" */
    const char *scheduler_config; /* file under golden/, or NULL for the model's own */
    int timesteps[4];      /* custom schedule when ntimesteps > 0 */
    int ntimesteps;
    int img2img;           /* init image: golden_init_image(width, height) */
    double strength;
};

extern const struct golden_model golden_models[];
extern const size_t golden_nmodels;
extern const struct golden_run golden_runs[];
extern const size_t golden_nruns;

/* Write every golden model into models_dir/<name> (models_dir must exist;
 * the model directories must not). */
int golden_make_models(const char *models_dir, struct os_err *err);
/* The same in a fresh directory under $TMPDIR (or /tmp), whose path goes to
 * dir[cap]; remove it with golden_remove_tree. */
int golden_make_models_tmp(char *dir, size_t cap, struct os_err *err);
void golden_remove_tree(const char *path);

/* FNV-1a (64 bit) of a model's weight and tokenizer files, in a fixed order:
 * stored with each golden file so that a test can tell "the model generator
 * changed" from "the reference's arithmetic changed". Hex in out[17]. */
int golden_model_fingerprint(const char *model_path, char out[17], struct os_err *err);

/* The img2img input: a smooth colour ramp with a checkerboard of 4-pixel
 * squares on top (edges for the encoder's convolutions), rgb[h][w][3]. */
void golden_init_image(int width, int height, unsigned char *rgb);

/* The intermediates of one run, in the order they were reported. */
struct golden_tensor {
    char *name;
    enum dtype dtype; /* DT_F32, DT_I64 or DT_U8 */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    void *data;
    size_t bytes;
};

struct golden_set {
    struct golden_tensor *t;
    size_t n, cap;
    int failed; /* a dump could not be kept */
};

/* Run `r` on the model in models_dir/<r->model> with `backend` ("ref", "avx2",
 * ...), collecting every dump. 0 or -1 with err set. */
int golden_generate(const struct golden_run *r, const char *models_dir, const char *backend, struct golden_set *out,
                    struct os_err *err);
const struct golden_tensor *golden_find(const struct golden_set *s, const char *name);
void golden_set_free(struct golden_set *s);

/* Write a set as golden/<name>.safetensors.gz: the tensors in report order,
 * the run's parameters and the model fingerprint in __metadata__, gzip with
 * a fixed header (mtime 0, OS "unknown") so equal contents give equal bytes. */
int golden_save(const struct golden_set *s, const struct golden_run *r, const char *fingerprint, const char *path,
                struct os_err *err);

/* Read a .safetensors.gz into memory (*buf, malloc'd; at most 256 MiB
 * uncompressed). The caller opens it with st_open_buffer. */
int golden_load(const char *path, void **buf, size_t *len, struct os_err *err);

/* FNV-1a 64 of bytes (tensor contents in golden/SUMS). */
uint64_t golden_hash(const void *p, size_t n);

#endif
