/* onestep.h — the library: load a model once, generate many images.
 *
 *   struct onestep_load_params lp;
 *   onestep_load_default_params(&lp);
 *   lp.model = "weights/sd-turbo";
 *   struct onestep_ctx *ctx;
 *   struct onestep_err err;
 *   if (onestep_load(&lp, &ctx, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
 *
 *   struct onestep_params p;
 *   onestep_default_params(ctx, &p);
 *   p.prompt = "a fox in a spacesuit";
 *   struct onestep_image img;
 *   if (onestep_generate(ctx, &p, &img, &err) == 0) { ... img.rgb ...; onestep_image_free(&img); }
 *   onestep_free(ctx);
 *
 * The context holds what is loaded once (configs, tokenizers, weight
 * mappings, the backend); everything a generation needs beyond that (the
 * activation arena, the noise generator) lives only for that call, so one
 * context can serve calls one after another. Functions return 0 on success
 * or -1 with one sentence in err->msg; nothing here prints or exits. */
#ifndef ONESTEP_H
#define ONESTEP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ONESTEP_VERSION "0.1.0"

struct onestep_err {
    char msg[512];
};

struct onestep_ctx;

struct onestep_lora {
    const char *path;
    float scale;
};

struct onestep_load_params {
    const char *model;            /* diffusers directory or single .safetensors file */
    const char *backend;          /* "auto" (default), "ref", "avx2", "avx512", "neon", "cuda" */
    int threads;                  /* 0 = all cores */
    const char *variant;          /* "auto" (default: plain file, else .fp16), "fp16", "fp32" */
    const char *scheduler_config; /* override scheduler/scheduler_config.json (e.g. an LCMScheduler config) */
    const char *taesd;            /* AutoencoderTiny directory replacing the VAE decoder, or NULL */
    const struct onestep_lora *loras;
    int nloras;
    const char *lora_dtype;       /* merged LoRA weights: "f32", "stored" (an f16/bf16 weight stays f16/bf16: half
                                   * the memory, as diffusers' fuse_lora on a float16 pipeline), or "auto" / NULL:
                                   * f32 on the ref backend, stored on the others (weights/lora.h) */
};

enum onestep_stage { ONESTEP_STAGE_TEXT, ONESTEP_STAGE_ENCODE, ONESTEP_STAGE_UNET, ONESTEP_STAGE_VAE };

struct onestep_progress {
    enum onestep_stage stage;
    int step, steps;     /* UNet: 1-based step of steps; others 1 of 1 */
    double seconds;      /* time this stage took */
    int done;            /* 0 = starting, 1 = finished */
};

enum onestep_dtype { ONESTEP_F32, ONESTEP_I64, ONESTEP_U8 };

struct onestep_params {
    const char *prompt;
    const char *prompt_2;       /* SDXL's second text encoder; NULL = prompt (as diffusers) */
    size_t prompt_len, prompt_2_len; /* bytes, for prompts holding U+0000; 0 = strlen */
    int width, height;          /* 0 = the model's default (512 for the Turbo models) */
    int steps;                  /* default 1 */
    uint64_t seed;              /* default 42; torch keeps the low 32 bits */
    const char *rng;            /* "torch" (default), "torch-scalar", "philox" */
    const int *timesteps;       /* custom schedule (LCM/DMD2: {399}); NULL = from steps */
    int ntimesteps;
    /* img2img: 8-bit RGB, row-major; size must match width/height (or leave those 0) */
    const unsigned char *init_rgb;
    int init_width, init_height;
    double strength;            /* (0, 1], default 0.5; double: steps run = int(steps * strength) as Python computes it */
    int vae_tiling;             /* decode in overlapping tiles (bounded memory) */
    /* benchmarks (tools/bench.c): bit (1u << ONESTEP_STAGE_x) set skips that
     * stage (TEXT, UNET and VAE only). Its output stays zero: a zero
     * context, the initial latents unchanged, a mid-gray image. 0 (the
     * default) runs everything. */
    unsigned skip_stages;
    /* every stage start/end */
    void (*progress)(void *user, const struct onestep_progress *p);
    void *progress_user;
    /* every intermediate, under the conformance manifest's names, in host memory */
    void (*dump)(void *user, const char *name, enum onestep_dtype dtype, const void *data, int ndim,
                 const int64_t *shape);
    void *dump_user;
    /* each step's predicted x0 decoded (TAESD when loaded, else the VAE): for --preview */
    void (*preview)(void *user, int step, const unsigned char *rgb, int width, int height);
    void *preview_user;
};

struct onestep_image {
    int width, height;
    unsigned char *rgb; /* width x height x 3; free with onestep_image_free */
};

struct onestep_info {
    const char *family;    /* "sd" or "sdxl" */
    const char *pipeline;  /* model_index.json _class_name */
    const char *scheduler; /* scheduler class in use */
    const char *backend;
    int threads;
    int default_width, default_height;
    int vae_scale;         /* pixels per latent (8) */
    int ntokenizers;       /* 1 or 2 */
};

void onestep_load_default_params(struct onestep_load_params *p);
int onestep_load(const struct onestep_load_params *p, struct onestep_ctx **out, struct onestep_err *err);
void onestep_free(struct onestep_ctx *ctx);
void onestep_get_info(const struct onestep_ctx *ctx, struct onestep_info *info);

void onestep_default_params(const struct onestep_ctx *ctx, struct onestep_params *p);
/* Check parameters without running anything (size multiple of 8, steps, strength, ...). */
int onestep_validate(const struct onestep_ctx *ctx, const struct onestep_params *p, struct onestep_err *err);
/* Bytes of activation memory a generation with these parameters needs (measured, not guessed). */
int onestep_estimate(struct onestep_ctx *ctx, const struct onestep_params *p, size_t *bytes, struct onestep_err *err);
/* Fail ("size WxH needs about N GiB of memory, this machine has M GiB
 * available ...") when the activations, the host buffers and the largest
 * stage's weights would not fit in the memory available (ref/sysmem.h:
 * MemAvailable, the cgroup limit, or $ONESTEP_MEMORY_LIMIT). onestep_generate
 * checks this itself; call it to learn before printing or starting anything. */
int onestep_check_memory(struct onestep_ctx *ctx, const struct onestep_params *p, struct onestep_err *err);
int onestep_generate(struct onestep_ctx *ctx, const struct onestep_params *p, struct onestep_image *out,
                     struct onestep_err *err);
void onestep_image_free(struct onestep_image *img);

/* The 77 token ids of each tokenizer (ids[0] = tokenizer, ids[1] = tokenizer_2). */
int onestep_tokenize(const struct onestep_ctx *ctx, const char *prompt, int32_t ids[2][77], int *ntokenizers,
                     struct onestep_err *err);
/* The same for a prompt of explicit length (which may hold NUL bytes). */
int onestep_tokenize_n(const struct onestep_ctx *ctx, const char *prompt, size_t len, int32_t ids[2][77],
                       int *ntokenizers, struct onestep_err *err);

#ifdef __cplusplus
}
#endif
#endif
