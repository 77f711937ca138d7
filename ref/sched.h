/* sched.h — the noise schedulers: which timesteps the UNet sees, how the
 * starting latents are scaled, and how one step turns the UNet's output into
 * the next latents.
 *
 * Three diffusers v0.31.0 classes, chosen by scheduler_config.json's
 * "_class_name" and matched to the bit where the suite can tell:
 *
 *   EulerAncestralDiscreteScheduler  SDXL-Turbo ships it (and the suite uses it
 *                                    for SD-Turbo too). Fresh noise every step.
 *   EulerDiscreteScheduler           the hub's sd-turbo config names it. Same
 *                                    as the ancestral one at 1 step; no noise.
 *   LCMScheduler                     LCM, LCM-LoRA, DMD2 (custom timesteps).
 *
 * This is host-side scalar code: latents are small ([4, h/8, w/8] floats in
 * host memory), so no ops table. The arithmetic copies upstream's precision
 * exactly: float32 tensor math (each torch operation rounds to float), the
 * float64 numpy parts of set_timesteps (np.interp, np.arange, np.linspace),
 * and torch 1.13's own linspace/cumprod for the beta tables (sched.c says how).
 *
 * Use (text2img):
 *     struct sched s;  sched_load(&s, "model/scheduler/scheduler_config.json", &err);
 *     sched_set_timesteps(&s, steps, NULL, 0, &err);
 *     draw noise;  sched_init_latents(&s, noise, x, n);
 *     for (i = 0; i < s.n; i++) {
 *         sched_scale_model_input(&s, i, x, in, n);
 *         eps = UNet(in, sched_timestep(&s, i), ...);
 *         if (sched_needs_noise(&s, i)) draw noise;        (same generator, in order)
 *         sched_step(&s, i, eps, x, noise, x, n, NULL, &err);
 *     }
 * img2img: sched_img2img_start(&s, strength, &i0, &err); draw noise;
 * sched_add_noise(&s, i0, init_latents, noise, x, n); then the same loop from
 * i = i0 (indices always count in the full n-step schedule, as diffusers'
 * step_index does after set_begin_index). */
#ifndef ONESTEP_SCHED_H
#define ONESTEP_SCHED_H

#include <stddef.h>

#include "../weights/json.h"
#include "common.h"

enum sched_kind { SCHED_EULER_ANCESTRAL, SCHED_EULER, SCHED_LCM };

/* What the UNet predicts (config "prediction_type"). */
enum sched_pred {
    SCHED_PRED_EPSILON, /* "epsilon": the noise */
    SCHED_PRED_V,       /* "v_prediction": v = sqrt(a) eps - sqrt(1-a) x0 (Imagen Video 2.4) */
    SCHED_PRED_SAMPLE   /* "sample" (Euler also "original_sample"): x0 itself */
};

/* How set_timesteps(n) spreads n steps over the training steps ("timestep_spacing";
 * Table 2 of "Common Diffusion Noise Schedules and Sample Steps are Flawed"). */
enum sched_spacing { SCHED_SPACING_LINSPACE, SCHED_SPACING_LEADING, SCHED_SPACING_TRAILING };

enum sched_betas { SCHED_BETAS_LINEAR, SCHED_BETAS_SCALED_LINEAR, SCHED_BETAS_SQUAREDCOS, SCHED_BETAS_TRAINED };

#define SCHED_MAX_TRAIN 4096 /* num_train_timesteps limit (every SD model: 1000) */
#define SCHED_MAX_STEPS 1000 /* inference steps limit */

struct sched {
    enum sched_kind kind;
    char what[192]; /* the config's file name, for error messages */

    /* Configuration: the scheduler_config.json keys the class uses, with
     * diffusers' per-class defaults for absent keys. */
    int num_train_timesteps;
    double beta_start, beta_end;
    enum sched_betas beta_schedule;
    enum sched_pred prediction_type;
    enum sched_spacing timestep_spacing; /* Euler, EulerAncestral */
    int steps_offset;                    /* "leading" spacing only */
    int final_sigma_min;                 /* Euler: final_sigmas_type "sigma_min" (else "zero") */
    int original_inference_steps;        /* LCM */
    double timestep_scaling;             /* LCM */
    int clip_sample;                     /* LCM */
    double clip_sample_range;            /* LCM */

    /* Tables over the training steps t = 0 .. num_train_timesteps-1 (float32, as upstream). */
    float betas[SCHED_MAX_TRAIN];
    float alphas_cumprod[SCHED_MAX_TRAIN];

    /* After sched_set_timesteps: n steps, timesteps[i] is what the UNet gets
     * at step i; sigmas[0..n] (Euler kinds; sigmas[n] is the final sigma). */
    int n;
    int num_inference_steps; /* what was asked for: n, or the custom list's length */
    float timesteps[SCHED_MAX_STEPS + 1];
    float sigmas[SCHED_MAX_STEPS + 2];
    float init_noise_sigma; /* text2img latents = noise * init_noise_sigma */
};

/* What one step computed, for --dump (names as in the conformance files:
 * stepK.pred_original_sample, .denoised, .alpha_prod_t, ...). Pointers may be
 * NULL; the scalars are always filled. */
struct sched_trace {
    float *pred_original_sample; /* [n] x0 prediction */
    float *denoised;             /* [n] LCM: c_out * x0 + c_skip * x */
    float sigma, sigma_next;     /* Euler kinds */
    float sigma_up, sigma_down;  /* EulerAncestral */
    float alpha_prod_t, alpha_prod_t_prev, c_skip, c_out; /* LCM */
};

/* Build a scheduler from a parsed scheduler_config.json. `what` names the file
 * in error messages. Unknown keys are ignored (diffusers ignores them too);
 * a key whose value would change the result in a way not implemented here
 * (karras sigmas, thresholding, zero-SNR rescaling, ...) is an error that
 * names the file and the key. */
int sched_from_config(struct sched *s, const struct json *cfg, const char *what, struct os_err *err);

/* Read and parse the file, then sched_from_config. */
int sched_load(struct sched *s, const char *path, struct os_err *err);

/* set_timesteps: n steps by the config's spacing, or, when custom != NULL,
 * exactly the ncustom given timesteps (n is then ignored, as diffusers'
 * retrieve_timesteps does). Custom timesteps must be strictly descending and
 * in [0, num_train_timesteps); EulerAncestralDiscreteScheduler refuses them
 * (its set_timesteps has no `timesteps` argument in diffusers 0.31). */
int sched_set_timesteps(struct sched *s, int n, const int *custom, int ncustom, struct os_err *err);

/* img2img (StableDiffusion(XL)Img2ImgPipeline.get_timesteps): the index of the
 * first step to run for `strength` in [0, 1]; steps run = s->n - *t_start.
 * Reckoned, as there, on num_inference_steps. Fails, suggesting a strength,
 * when int(num_inference_steps * strength) < 1. */
int sched_img2img_start(const struct sched *s, double strength, int *t_start, struct os_err *err);

/* The timestep the UNet gets at step i. */
float sched_timestep(const struct sched *s, int i);

/* text2img: out = noise * init_noise_sigma (out may be noise). */
void sched_init_latents(const struct sched *s, const float *noise, float *out, size_t n);

/* img2img: noise the clean latents x0 to the level of step i (the first step
 * that runs): Euler kinds x0 + noise * sigmas[i]; LCM sqrt(a) x0 + sqrt(1-a) noise
 * with a = alphas_cumprod[timesteps[i]]. out may alias x0 or noise. i must be
 * a step of the schedule (sched_img2img_start's t_start); others mean step 0. */
void sched_add_noise(const struct sched *s, int i, const float *x0, const float *noise, float *out, size_t n);

/* The UNet's input at step i: x / sqrt(sigma^2 + 1) (Euler kinds), x (LCM).
 * out may be x. An i outside the schedule copies x unchanged. */
void sched_scale_model_input(const struct sched *s, int i, const float *x, float *out, size_t n);

/* Does step i consume a fresh noise draw [n] from the generator?
 * EulerAncestral: every step, the last one too (there sigma_up = 0 but the
 * draw still advances the generator). LCM: every step but the last. Euler: never. */
int sched_needs_noise(const struct sched *s, int i);

/* One step: x (the latents at step i) and eps (the UNet's output) give
 * x_next. noise is that step's draw when sched_needs_noise says so (else
 * ignored, may be NULL). x_next may alias x or eps. tr may be NULL.
 * Fails only on misuse (i out of range, missing noise). */
int sched_step(const struct sched *s, int i, const float *eps, const float *x, const float *noise, float *x_next,
               size_t n, struct sched_trace *tr, struct os_err *err);

const char *sched_kind_name(enum sched_kind k); /* the diffusers class name */

#endif
