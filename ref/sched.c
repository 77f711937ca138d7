/* sched.c — EulerAncestralDiscrete, EulerDiscrete and LCM schedulers, as
 * diffusers v0.31.0 defines them (src/diffusers/schedulers/
 * scheduling_euler_ancestral_discrete.py, scheduling_euler_discrete.py,
 * scheduling_lcm.py). See sched.h for the API.
 *
 * Precision is upstream's, operation by operation: every torch operation on
 * float32 tensors (0-dim scalars included) rounds to float here too, which is
 * why the expressions below are written out one rounding at a time and the
 * file is built with -ffp-contract=off. The numpy parts of set_timesteps run
 * in double, as numpy does. */
#include "sched.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "refmath.h"

const char *sched_kind_name(enum sched_kind k)
{
    switch (k) {
    case SCHED_EULER_ANCESTRAL: return "EulerAncestralDiscreteScheduler";
    case SCHED_EULER: return "EulerDiscreteScheduler";
    case SCHED_LCM: return "LCMScheduler";
    }
    return "?";
}

/* ---- beta tables ------------------------------------------------------ */

/* torch.linspace(start, end, steps, dtype=float32) bit for bit as torch 1.13
 * computes it on x86-64 (the suite's reference): aten/src/ATen/native/cpu/
 * RangeFactoriesKernel.cpp counts the first half up from start and the second
 * half down from end, step = (end - start) / (steps - 1) in float. That file is
 * compiled for AVX2 with FMA and contraction on, so `start + step * idx` is one
 * fused multiply-add. Its vectorized loop (TensorIterator's vectorized_loop:
 * two 8-float vectors per iteration, then a scalar tail) computes only each
 * vector's first element that way; Vectorized<float>::arange fills the other
 * seven as base + j * step with two roundings. A plain per-element formula
 * differs in the last bit for ~1/4 of the 1000 scaled_linear betas. */
static float torch_linspace_at(float start, float end, float step, int steps, int i)
{
    return i < steps / 2 ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
}

static void torch_linspace_f32(double start_d, double end_d, int steps, float *out)
{
    const float start = (float)start_d, end = (float)end_d;
    const float step = (end - start) / (float)(steps - 1);
    const int vec = 8;
    int i = 0;
    for (; i <= steps - 2 * vec; i += 2 * vec) /* two vectors per iteration */
        for (int v = i; v < i + 2 * vec; v += vec) {
            float base = torch_linspace_at(start, end, step, steps, v);
            out[v] = base;
            for (int j = 1; j < vec; j++) out[v + j] = base + (float)j * step;
        }
    for (; i < steps; i++) out[i] = torch_linspace_at(start, end, step, steps, i);
}

/* betas_for_alpha_bar (the Glide cosine schedule): Python floats, i.e. double,
 * then torch.tensor(..., float32). Python's math.cos is libm's; rm_cos keeps
 * the reference independent of the C library (a few double ulps at most, far
 * below the float32 rounding of the betas). */
static void squaredcos_betas(int N, float *betas)
{
    const double pi = 3.141592653589793;
    for (int i = 0; i < N; i++) {
        double t1 = (double)i / N, t2 = (double)(i + 1) / N;
        double c1 = rm_cos((t1 + 0.008) / 1.008 * pi / 2), c2 = rm_cos((t2 + 0.008) / 1.008 * pi / 2);
        double b = 1 - (c2 * c2) / (c1 * c1);
        betas[i] = (float)(b < 0.999 ? b : 0.999);
    }
}

static void make_tables(struct sched *s)
{
    int N = s->num_train_timesteps;
    if (s->beta_schedule == SCHED_BETAS_LINEAR) {
        torch_linspace_f32(s->beta_start, s->beta_end, N, s->betas);
    } else if (s->beta_schedule == SCHED_BETAS_SCALED_LINEAR) {
        /* Linear in sqrt(beta) ("very specific to the latent diffusion
         * model"). Python's beta_start**0.5 is libm pow, whose last bit is
         * the C library's business; sqrt is correctly rounded by IEEE 754,
         * so it is the value a correctly rounded pow gives, on every
         * machine (glibc's pow gives it for 0.00085 and 0.012). */
        torch_linspace_f32(sqrt(s->beta_start), sqrt(s->beta_end), N, s->betas);
        for (int i = 0; i < N; i++) s->betas[i] = s->betas[i] * s->betas[i];
    } else if (s->beta_schedule == SCHED_BETAS_SQUAREDCOS) {
        squaredcos_betas(N, s->betas);
    } /* trained: filled by the config reader */
    /* torch.cumprod on CPU accumulates in double (at::acc_type<float, false>)
     * and rounds each output to float. */
    double acc = 1.0;
    for (int i = 0; i < N; i++) {
        float alpha = 1.0f - s->betas[i];
        acc *= alpha;
        s->alphas_cumprod[i] = (float)acc;
    }
}

/* sigma(t) = sqrt((1 - alphas_cumprod) / alphas_cumprod), in float32 as the
 * torch expression computes it. */
static float sigma_of(const struct sched *s, int t)
{
    float a = s->alphas_cumprod[t];
    return sqrtf((1.0f - a) / a);
}

/* ---- config ----------------------------------------------------------- */

static int get_enum(const struct json *cfg, const char *key, const char *def, const char *const *names, int count,
                    int *out, const char *what, struct os_err *err)
{
    int failed;
    const char *v = json_get_str_or(cfg, key, def, what, err, &failed);
    if (failed) return -1;
    for (int i = 0; i < count; i++)
        if (names[i] && strcmp(v, names[i]) == 0) {
            *out = i;
            return 0;
        }
    char list[256] = "";
    for (int i = 0; i < count; i++) {
        if (!names[i]) continue;
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s\"%s\"", l ? ", " : "", names[i]);
    }
    return os_fail(err, "%s: \"%s\" is \"%s\"; supported: %s", what, key, v, list);
}

/* A boolean key that must stay at the value we implement. */
static int require_bool(const struct json *cfg, const char *key, int want, const char *why, const char *what,
                        struct os_err *err)
{
    int v;
    if (json_get_bool_or(cfg, key, want, &v, what, err)) return -1;
    if (v != want) return os_fail(err, "%s: \"%s\": %s is not supported (%s)", what, key, v ? "true" : "false", why);
    return 0;
}

static int read_trained_betas(struct sched *s, const struct json *cfg, const char *what, struct os_err *err)
{
    const struct json *tb = json_get(cfg, "trained_betas");
    if (!tb || tb->type == JSON_NULL) return 0;
    if (tb->type != JSON_ARRAY) return os_fail(err, "%s: \"trained_betas\" must be a list of numbers or null", what);
    if ((int)tb->len != s->num_train_timesteps)
        return os_fail(err, "%s: \"trained_betas\" has %zu values but num_train_timesteps is %d", what, tb->len,
                       s->num_train_timesteps);
    for (size_t i = 0; i < tb->len; i++) {
        const struct json *v = &tb->items[i];
        if (v->type != JSON_NUMBER || !(v->number >= 0 && v->number < 1))
            return os_fail(err, "%s: \"trained_betas\"[%zu] must be a number in [0, 1)", what, i);
        s->betas[i] = (float)v->number;
    }
    s->beta_schedule = SCHED_BETAS_TRAINED;
    return 0;
}

int sched_from_config(struct sched *s, const struct json *cfg, const char *what, struct os_err *err)
{
    memset(s, 0, sizeof *s);
    snprintf(s->what, sizeof s->what, "%s", what ? what : "scheduler config");
    what = s->what;
    if (!cfg || cfg->type != JSON_OBJECT) return os_fail(err, "%s: not a JSON object", what);

    const char *cls = json_get_str(cfg, "_class_name", what, err);
    if (!cls) return -1;
    if (strcmp(cls, "EulerAncestralDiscreteScheduler") == 0) s->kind = SCHED_EULER_ANCESTRAL;
    else if (strcmp(cls, "EulerDiscreteScheduler") == 0) s->kind = SCHED_EULER;
    else if (strcmp(cls, "LCMScheduler") == 0) s->kind = SCHED_LCM;
    else
        return os_fail(err,
                       "%s: \"_class_name\" is \"%s\"; supported: \"EulerAncestralDiscreteScheduler\", "
                       "\"EulerDiscreteScheduler\", \"LCMScheduler\"",
                       what, cls);
    int lcm = s->kind == SCHED_LCM;

    /* Defaults: each class's __init__ signature in diffusers 0.31. */
    int64_t iv;
    if (json_get_int_or(cfg, "num_train_timesteps", 1000, &iv, what, err)) return -1;
    if (iv < 2 || iv > SCHED_MAX_TRAIN)
        return os_fail(err, "%s: \"num_train_timesteps\" is %lld; supported: 2 to %d", what, (long long)iv,
                       SCHED_MAX_TRAIN);
    s->num_train_timesteps = (int)iv;
    if (json_get_num_or(cfg, "beta_start", lcm ? 0.00085 : 0.0001, &s->beta_start, what, err)) return -1;
    if (json_get_num_or(cfg, "beta_end", lcm ? 0.012 : 0.02, &s->beta_end, what, err)) return -1;
    if (!(s->beta_start >= 0 && s->beta_start < 1 && s->beta_end >= 0 && s->beta_end < 1))
        return os_fail(err, "%s: \"beta_start\" and \"beta_end\" must lie in [0, 1)", what);
    static const char *const betas[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
    int e;
    if (get_enum(cfg, "beta_schedule", lcm ? "scaled_linear" : "linear", betas, 3, &e, what, err)) return -1;
    s->beta_schedule = (enum sched_betas)e;
    if (read_trained_betas(s, cfg, what, err)) return -1;

    static const char *const preds[] = {"epsilon", "v_prediction", "sample", "original_sample"};
    /* EulerAncestral raises NotImplementedError for "sample" in 0.31, and only
     * EulerDiscrete knows the legacy name "original_sample". */
    const char *const *pred_names = preds;
    const char *const ea_preds[] = {"epsilon", "v_prediction", NULL, NULL};
    const char *const lcm_preds[] = {"epsilon", "v_prediction", "sample", NULL};
    if (s->kind == SCHED_EULER_ANCESTRAL) pred_names = ea_preds;
    if (lcm) pred_names = lcm_preds;
    if (get_enum(cfg, "prediction_type", "epsilon", pred_names, 4, &e, what, err)) return -1;
    s->prediction_type = e == 3 ? SCHED_PRED_SAMPLE : (enum sched_pred)e;

    if (json_get_int_or(cfg, "steps_offset", 0, &iv, what, err)) return -1;
    if (!lcm && (iv < 0 || iv >= s->num_train_timesteps))
        return os_fail(err, "%s: \"steps_offset\" is %lld; it must lie in [0, num_train_timesteps)", what,
                       (long long)iv);
    s->steps_offset = (int)iv;
    if (require_bool(cfg, "rescale_betas_zero_snr", 0, "zero-terminal-SNR rescaling is not implemented", what, err))
        return -1;

    if (lcm) {
        /* LCMScheduler ignores timestep_spacing and steps_offset. */
        if (json_get_int_or(cfg, "original_inference_steps", 50, &iv, what, err)) return -1;
        if (iv < 1 || iv > s->num_train_timesteps)
            return os_fail(err, "%s: \"original_inference_steps\" is %lld; it must lie in [1, num_train_timesteps]",
                           what, (long long)iv);
        s->original_inference_steps = (int)iv;
        if (json_get_num_or(cfg, "timestep_scaling", 10.0, &s->timestep_scaling, what, err)) return -1;
        if (!isfinite(s->timestep_scaling))
            return os_fail(err, "%s: \"timestep_scaling\" must be a finite number", what);
        if (json_get_bool_or(cfg, "clip_sample", 0, &s->clip_sample, what, err)) return -1;
        if (json_get_num_or(cfg, "clip_sample_range", 1.0, &s->clip_sample_range, what, err)) return -1;
        if (require_bool(cfg, "thresholding", 0, "dynamic thresholding is not implemented", what, err)) return -1;
    } else {
        static const char *const spacings[] = {"linspace", "leading", "trailing"};
        if (get_enum(cfg, "timestep_spacing", "linspace", spacings, 3, &e, what, err)) return -1;
        s->timestep_spacing = (enum sched_spacing)e;
    }
    if (s->kind == SCHED_EULER) {
        static const char *const interp[] = {"linear"};
        static const char *const finals[] = {"zero", "sigma_min"};
        if (get_enum(cfg, "interpolation_type", "linear", interp, 1, &e, what, err)) return -1;
        if (get_enum(cfg, "final_sigmas_type", "zero", finals, 2, &e, what, err)) return -1;
        s->final_sigma_min = e == 1;
        if (require_bool(cfg, "use_karras_sigmas", 0, "Karras sigmas are not implemented", what, err) ||
            require_bool(cfg, "use_exponential_sigmas", 0, "exponential sigmas are not implemented", what, err) ||
            require_bool(cfg, "use_beta_sigmas", 0, "beta sigmas are not implemented", what, err))
            return -1;
        static const char *const ttypes[] = {"discrete", "continuous"};
        if (get_enum(cfg, "timestep_type", "discrete", ttypes, 2, &e, what, err)) return -1;
        /* "continuous" only changes anything for v_prediction (EDM-style
         * timesteps 0.25 * log(sigma)). */
        if (e == 1 && s->prediction_type == SCHED_PRED_V)
            return os_fail(err,
                           "%s: \"timestep_type\": \"continuous\" with v_prediction (EDM timesteps) is not supported",
                           what);
    }
    make_tables(s);
    return 0;
}

int sched_load(struct sched *s, const char *path, struct os_err *err)
{
    struct json *cfg = json_parse_file(path, 1u << 20, err);
    if (!cfg) return -1;
    int rc = sched_from_config(s, cfg, path, err);
    json_free(cfg);
    return rc;
}

/* ---- set_timesteps ---------------------------------------------------- */

/* np.arange(start, 0, -step) for float step: numpy sizes it as
 * ceil((stop - start) / step), stores start and start + step, and fills the
 * rest as start + i * ((start + step) - start) (DOUBLE_fill). The length can
 * exceed the intended count by one when the division rounds up (for
 * num_train_timesteps 1000: 61, 103, 121, ... steps); diffusers then runs that
 * extra step at timestep -1, and so do we. */
static int numpy_arange_down(double start, double step, double *out, int cap)
{
    double len = ceil((0.0 - start) / -step);
    if (!(len > 0)) return 0;
    if (len > cap) return -1;
    int L = (int)len;
    out[0] = start;
    if (L > 1) out[1] = start + -step;
    double delta = (L > 1 ? out[1] : start) - start;
    for (int i = 2; i < L; i++) out[i] = start + i * delta;
    return L;
}

/* np.interp(t, arange(N), sigma table) in double: exact table values at
 * integer t, else slope * (t - t0) + sigma(t0); the ends are clamped. */
static float interp_sigma(const struct sched *s, double t)
{
    int N = s->num_train_timesteps;
    if (isnan(t)) return (float)t;
    if (t <= 0) return sigma_of(s, 0);
    if (t >= N - 1) return sigma_of(s, N - 1);
    int j = (int)floor(t);
    double y0 = sigma_of(s, j), y1 = sigma_of(s, j + 1);
    if ((double)j == t) return (float)y0;
    double slope = y1 - y0; /* over xp[j+1] - xp[j] = 1 */
    return (float)(slope * (t - j) + y0);
}

static int euler_timesteps(struct sched *s, int n)
{
    int N = s->num_train_timesteps;
    switch (s->timestep_spacing) {
    case SCHED_SPACING_LINSPACE:
        /* np.linspace(0, N-1, n, dtype=float32)[::-1]: computed in double as
         * i * ((N-1) / (n-1)), the last point set to N-1 exactly, then cast.
         * With n = 1 numpy returns [0]: one step at t = 0. */
        for (int i = 0; i < n; i++) {
            double v = n == 1 ? 0.0 : (i == n - 1 ? (double)(N - 1) : i * ((double)(N - 1) / (n - 1)));
            s->timesteps[n - 1 - i] = (float)v;
        }
        return n;
    case SCHED_SPACING_LEADING: {
        /* (arange(n) * (N // n)).round()[::-1] + steps_offset: integers. */
        int ratio = N / n;
        for (int i = 0; i < n; i++) s->timesteps[n - 1 - i] = (float)((long)i * ratio) + (float)s->steps_offset;
        return n;
    }
    case SCHED_SPACING_TRAILING: {
        /* np.arange(N, 0, -N / n).round() - 1: numpy's round is half to even (rint). */
        double a[SCHED_MAX_STEPS + 1];
        int L = numpy_arange_down((double)N, (double)N / n, a, SCHED_MAX_STEPS + 1);
        for (int i = 0; i < L; i++) s->timesteps[i] = (float)rint(a[i]) - 1.0f;
        return L;
    }
    }
    return 0;
}

int sched_set_timesteps(struct sched *s, int n, const int *custom, int ncustom, struct os_err *err)
{
    const char *what = s->what, *cls = sched_kind_name(s->kind);
    int N = s->num_train_timesteps;
    s->n = 0;
    s->num_inference_steps = 0;
    if (custom) {
        if (s->kind == SCHED_EULER_ANCESTRAL)
            return os_fail(err,
                           "%s: %s does not accept custom timesteps (its set_timesteps has no `timesteps` argument "
                           "in diffusers 0.31); use EulerDiscreteScheduler or LCMScheduler",
                           what, cls);
        if (ncustom < 1 || ncustom > SCHED_MAX_STEPS)
            return os_fail(err, "%s: %d custom timesteps; give 1 to %d", what, ncustom, SCHED_MAX_STEPS);
        for (int i = 0; i < ncustom; i++) {
            if (custom[i] < 0 || custom[i] >= N)
                return os_fail(err, "%s: custom timestep %d is outside [0, %d]", what, custom[i], N - 1);
            if (i > 0 && custom[i] >= custom[i - 1])
                return os_fail(err, "%s: custom timesteps must be strictly descending (%d follows %d)", what,
                               custom[i], custom[i - 1]);
            s->timesteps[i] = (float)custom[i];
        }
        s->n = ncustom;
        s->num_inference_steps = ncustom;
    } else {
        s->num_inference_steps = n;
        if (n < 1 || n > SCHED_MAX_STEPS || n > N)
            return os_fail(err, "%s: %d inference steps; %s supports 1 to %d", what, n, cls,
                           N < SCHED_MAX_STEPS ? N : SCHED_MAX_STEPS);
        if (s->kind == SCHED_LCM) {
            /* LCM's schedule is a subset of the distillation schedule
             * t = k*i - 1 (i = 1..original_inference_steps, k = N // that),
             * taken at floor(linspace(0, len, n, endpoint=False)) from the top. */
            int orig = s->original_inference_steps, k = N / orig;
            if (n > orig)
                return os_fail(err,
                               "%s: %d inference steps is more than original_inference_steps (%d), of which the "
                               "LCM schedule is a subset",
                               what, n, orig);
            double stride = (double)orig / n;
            for (int i = 0; i < n; i++) {
                int idx = (int)floor(i * stride);
                s->timesteps[i] = (float)((orig - idx) * k - 1);
            }
            s->n = n;
        } else {
            int L = euler_timesteps(s, n);
            if (L < 1 || L > SCHED_MAX_STEPS) return os_fail(err, "%s: %d inference steps give no schedule", what, n);
            s->n = L;
        }
    }

    if (s->kind == SCHED_LCM) {
        s->init_noise_sigma = 1.0f;
        return 0;
    }
    /* sigmas = interp(timesteps) + [final], cast to float32; "sigma_min" ends
     * at sigma(t = 0) instead of 0. */
    float max = 0;
    for (int i = 0; i < s->n; i++) {
        s->sigmas[i] = interp_sigma(s, s->timesteps[i]);
        if (s->sigmas[i] > max) max = s->sigmas[i];
    }
    s->sigmas[s->n] = s->kind == SCHED_EULER && s->final_sigma_min ? sigma_of(s, 0) : 0.0f;
    if (s->sigmas[s->n] > max) max = s->sigmas[s->n];
    /* init_noise_sigma: sigma_max for "linspace"/"trailing", but
     * sqrt(sigma_max^2 + 1) for "leading" (the property in both Euler classes;
     * custom timesteps keep the configured spacing's rule). */
    if (s->timestep_spacing == SCHED_SPACING_LEADING) {
        float sq = max * max;
        s->init_noise_sigma = sqrtf(sq + 1.0f);
    } else {
        s->init_noise_sigma = max;
    }
    return 0;
}

int sched_img2img_start(const struct sched *s, double strength, int *t_start, struct os_err *err)
{
    /* The pipeline reckons with retrieve_timesteps' count: the requested n
     * (custom: the list's length), not len(timesteps), which "trailing" can
     * make one longer; the slice then keeps that extra step. */
    int n = s->num_inference_steps;
    if (n < 1 || s->n < 1)
        return os_fail(err, "%s: img2img: the schedule is not set (call sched_set_timesteps first)", s->what);
    if (!(strength >= 0 && strength <= 1))
        return os_fail(err, "img2img: strength %g is outside [0, 1]", strength);
    /* get_timesteps: init_timestep = min(int(n * strength), n), a Python float
     * product truncated toward zero. */
    double prod = n * strength;
    int init = (int)prod;
    if (init > n) init = n;
    if (init < 1) {
        /* Suggest the shortest decimal strength that runs one step. */
        double need = 1.0;
        int digits = 2;
        for (; digits <= 17; digits++) {
            double scale = pow(10, digits), v = ceil(1.0 / n * scale) / scale;
            if ((int)(n * v) >= 1) {
                need = v;
                break;
            }
        }
        return os_fail(err,
                       "img2img: strength %g with %d steps runs no step (int(%d * %g) = 0); use strength >= %.*g or "
                       "more steps",
                       strength, n, n, strength, digits, need);
    }
    *t_start = n - init;
    return 0;
}

float sched_timestep(const struct sched *s, int i)
{
    return i >= 0 && i < s->n ? s->timesteps[i] : NAN;
}

void sched_init_latents(const struct sched *s, const float *noise, float *out, size_t n)
{
    /* LCM: init_noise_sigma is the Python float 1.0, so this is exact. */
    for (size_t k = 0; k < n; k++) out[k] = noise[k] * s->init_noise_sigma;
}

void sched_add_noise(const struct sched *s, int i, const float *x0, const float *noise, float *out, size_t n)
{
    if (i < 0 || i >= s->n) i = 0;
    if (s->kind == SCHED_LCM) {
        /* DDPMScheduler.add_noise (LCMScheduler copies it). */
        float a = s->alphas_cumprod[(int)s->timesteps[i]];
        float sa = sqrtf(a), sb = sqrtf(1.0f - a);
        for (size_t k = 0; k < n; k++) {
            float p = sa * x0[k], q = sb * noise[k];
            out[k] = p + q;
        }
        return;
    }
    /* Euler kinds, with begin_index set by the pipeline: sigma of step i. */
    float sigma = s->sigmas[i];
    for (size_t k = 0; k < n; k++) {
        float q = noise[k] * sigma;
        out[k] = x0[k] + q;
    }
}

void sched_scale_model_input(const struct sched *s, int i, const float *x, float *out, size_t n)
{
    if (s->kind == SCHED_LCM || i < 0 || i >= s->n) {
        if (out != x) memmove(out, x, n * sizeof *out);
        return;
    }
    float sigma = s->sigmas[i];
    float sq = sigma * sigma;
    float d = sqrtf(sq + 1.0f);
    for (size_t k = 0; k < n; k++) out[k] = x[k] / d;
}

int sched_needs_noise(const struct sched *s, int i)
{
    switch (s->kind) {
    case SCHED_EULER_ANCESTRAL: return 1;
    case SCHED_EULER: return 0; /* s_churn = 0, the pipelines' default */
    case SCHED_LCM: return i != s->n - 1;
    }
    return 0;
}

/* x0 from the Euler parameterisation x = x0 + sigma * eps (Karras et al. 2022,
 * "Elucidating the Design Space", Table 1 with c_skip/c_out for v). */
static float euler_x0(enum sched_pred p, float sigma, float v_cout, float v_div, float eps, float x)
{
    switch (p) {
    case SCHED_PRED_EPSILON: {
        float se = sigma * eps;
        return x - se;
    }
    case SCHED_PRED_V: {
        float a = eps * v_cout, b = x / v_div;
        return a + b;
    }
    case SCHED_PRED_SAMPLE: return eps;
    }
    return 0;
}

static int step_euler(const struct sched *s, int i, const float *eps, const float *x, const float *noise,
                      float *x_next, size_t n, struct sched_trace *tr)
{
    const int ancestral = s->kind == SCHED_EULER_ANCESTRAL;
    float sigma = s->sigmas[i], sigma_next = s->sigmas[i + 1];
    /* v_prediction: x0 = eps * (-sigma / sqrt(sigma^2 + 1)) + x / (sigma^2 + 1). */
    float sq = sigma * sigma;
    float sq1 = sq + 1.0f;
    float v_cout = -sigma / sqrtf(sq1), v_div = sq1;
    float dt, sigma_up = 0, sigma_down = 0;
    if (ancestral) {
        /* Ancestral split of the move to sigma_next (k-diffusion's
         * get_ancestors_step, eta = 1): go deterministically to sigma_down,
         * then add fresh noise of std sigma_up. */
        float from2 = sigma * sigma, to2 = sigma_next * sigma_next;
        float diff = from2 - to2;
        float num = to2 * diff;
        sigma_up = sqrtf(num / from2);
        float up2 = sigma_up * sigma_up;
        sigma_down = sqrtf(to2 - up2);
        dt = sigma_down - sigma;
    } else {
        /* EulerDiscrete with s_churn = 0: gamma = 0, sigma_hat = sigma * 1.0. */
        dt = sigma_next - sigma;
    }
    for (size_t k = 0; k < n; k++) {
        float xk = x[k], ek = eps[k];
        float x0 = euler_x0(s->prediction_type, sigma, v_cout, v_div, ek, xk);
        if (tr && tr->pred_original_sample) tr->pred_original_sample[k] = x0;
        float deriv = (xk - x0) / sigma; /* the probability-flow ODE's dx/dsigma */
        float mv = deriv * dt;
        float xn = xk + mv;
        if (ancestral) {
            float nz = noise[k] * sigma_up;
            xn = xn + nz;
        }
        x_next[k] = xn;
    }
    if (tr) {
        tr->sigma = sigma;
        tr->sigma_next = sigma_next;
        tr->sigma_up = sigma_up;
        tr->sigma_down = sigma_down;
    }
    return 0;
}

static int step_lcm(const struct sched *s, int i, const float *eps, const float *x, const float *noise,
                    float *x_next, size_t n, struct sched_trace *tr)
{
    int t = (int)s->timesteps[i];
    /* On the last step prev_timestep = t (then unused). */
    int t_prev = i + 1 < s->n ? (int)s->timesteps[i + 1] : t;
    float a = s->alphas_cumprod[t], a_prev = s->alphas_cumprod[t_prev];
    float b = 1.0f - a, b_prev = 1.0f - a_prev;
    float sa = sqrtf(a), sb = sqrtf(b), sa_prev = sqrtf(a_prev), sb_prev = sqrtf(b_prev);

    /* Consistency-model boundary condition (Song et al. 2023, eq. 3 with
     * sigma_data = 0.5, LCM's scaled discrete time): c_skip -> 1, c_out -> 0
     * as t -> 0. upstream: get_scalings_for_boundary_condition_discrete, whose
     * 0.25 / x is torch's __rtruediv__, i.e. reciprocal(x) * 0.25. */
    float st = (float)t * (float)s->timestep_scaling;
    float st2 = st * st;
    float den = st2 + 0.25f;
    float c_skip = (1.0f / den) * 0.25f;
    float c_out = st / sqrtf(den);
    const int last = i == s->n - 1;
    const float lo = (float)-s->clip_sample_range, hi = (float)s->clip_sample_range;

    for (size_t k = 0; k < n; k++) {
        float xk = x[k], ek = eps[k], x0;
        switch (s->prediction_type) {
        case SCHED_PRED_EPSILON: {
            float m = sb * ek;
            float num = xk - m;
            x0 = num / sa;
            break;
        }
        case SCHED_PRED_V: {
            float p = sa * xk, q = sb * ek;
            x0 = p - q;
            break;
        }
        default: x0 = ek; break;
        }
        if (s->clip_sample) x0 = x0 < lo ? lo : (x0 > hi ? hi : x0);
        float p = c_out * x0, q = c_skip * xk;
        float den_k = p + q;
        if (tr && tr->pred_original_sample) tr->pred_original_sample[k] = x0;
        if (tr && tr->denoised) tr->denoised[k] = den_k;
        if (last) {
            x_next[k] = den_k;
        } else {
            float u = sa_prev * den_k, v = sb_prev * noise[k];
            x_next[k] = u + v;
        }
    }
    if (tr) {
        tr->alpha_prod_t = a;
        tr->alpha_prod_t_prev = a_prev;
        tr->c_skip = c_skip;
        tr->c_out = c_out;
    }
    return 0;
}

int sched_step(const struct sched *s, int i, const float *eps, const float *x, const float *noise, float *x_next,
               size_t n, struct sched_trace *tr, struct os_err *err)
{
    if (i < 0 || i >= s->n)
        return os_fail(err, "%s: step %d is outside the %d-step schedule", s->what, i, s->n);
    if (sched_needs_noise(s, i) && !noise)
        return os_fail(err, "%s: %s step %d needs a noise draw and none was given", s->what,
                       sched_kind_name(s->kind), i);
    if (s->kind == SCHED_LCM) return step_lcm(s, i, eps, x, noise, x_next, n, tr);
    return step_euler(s, i, eps, x, noise, x_next, n, tr);
}
