/* Schedulers (ref/sched.c) against diffusers v0.31.0:
 *   1. the suite's scheduler tables (schedule.safetensors, schedule_lcm.safetensors): bit-exact;
 *   2. every conformance case, one step at a time: each step starts from the
 *      case file's own tensors (previous latents, noise_pred, noise), so this
 *      tests the scheduler alone, within the manifest's tolerances;
 *   3. tests/data/sched_upstream.safetensors (tools/sched_goldens.py: the real
 *      diffusers classes on what the suite does not cover): bit-exact;
 *   4. the img2img strength rule and every error path. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/sched.h"
#include "../weights/json.h"
#include "../weights/safetensors.h"
#include "lib/check.h"
#include "lib/conformance.h"

#define UPSTREAM "tests/data/sched_upstream.safetensors"

/* Element-wise identity (NaN equals NaN); returns the count of differences. */
static size_t count_diff(const float *a, const float *b, size_t n, double *max_abs)
{
    size_t bad = 0;
    *max_abs = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == b[i] || (isnan(a[i]) && isnan(b[i]))) continue;
        bad++;
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= *max_abs)) *max_abs = d;
    }
    return bad;
}

/* Bit-exact comparison with tensor `name` of f. */
static int exact(const struct st_file *f, const char *name, const float *got, size_t n, const char *label)
{
    size_t rn;
    float *ref = conf_tensor(f, name, &rn);
    if (!ref) return check(0, "%s: %s not in the reference file", label, name);
    if (rn != n) {
        free(ref);
        return check(0, "%s: %zu values, the reference has %zu", label, n, rn);
    }
    double m;
    size_t bad = count_diff(got, ref, n, &m);
    free(ref);
    return check(bad == 0, "%s: %zu values bit-exact%s (%zu differ, max |diff| %.3g)", label, n, bad ? " FAILED" : "",
                 bad, m);
}

static int exact_quiet(const struct st_file *f, const char *name, const float *got, size_t n, size_t *bad_out)
{
    size_t rn;
    float *ref = conf_tensor(f, name, &rn);
    if (!ref || rn != n) {
        free(ref);
        return 0;
    }
    double m;
    size_t bad = count_diff(got, ref, n, &m);
    free(ref);
    if (bad_out) *bad_out += bad;
    return bad == 0;
}

static int config_from_string(struct sched *s, const char *text, const char *what, struct os_err *err)
{
    struct json *j = json_parse(text, strlen(text), what, err);
    if (!j) return -1;
    int rc = sched_from_config(s, j, what, err);
    json_free(j);
    return rc;
}

/* A JSON list of ints ("null" -> 0 entries, returns 0); -1 on a bad list. */
static int parse_int_list(const struct json *v, int *out, int cap)
{
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_ARRAY || (int)v->len > cap) return -1;
    for (size_t i = 0; i < v->len; i++) {
        if (v->items[i].type != JSON_NUMBER) return -1;
        out[i] = (int)v->items[i].number;
    }
    return (int)v->len;
}

/* ---- 1. suite tables --------------------------------------------------- */

static void suite_tables(const struct conf_suite *cs)
{
    struct os_err err = {{0}};
    struct sched s;
    char name[64];
    struct st_file *f = NULL;
    if (!check(st_open(conf_path(cs, "schedule.safetensors"), &f, &err) == 0, "open schedule.safetensors")) return;
    /* The suite's EulerAncestral config (manifest "schedule" -> "config") is the tiny models' own file. */
    if (check(sched_load(&s, conf_path(cs, "sd-turbo-tiny/scheduler/scheduler_config.json"), &err) == 0,
              "load sd-turbo-tiny/scheduler/scheduler_config.json %s", err.msg)) {
        exact(f, "betas", s.betas, 1000, "scaled_linear betas (torch 1.13 linspace reproduced)");
        exact(f, "alphas_cumprod", s.alphas_cumprod, 1000, "alphas_cumprod (double-accumulated cumprod)");
        for (int n = 1; n <= 4; n++) {
            if (!check(sched_set_timesteps(&s, n, NULL, 0, &err) == 0, "set_timesteps(%d)", n)) continue;
            snprintf(name, sizeof name, "steps%d.timesteps", n);
            exact(f, name, s.timesteps, (size_t)s.n, name);
            snprintf(name, sizeof name, "steps%d.sigmas", n);
            exact(f, name, s.sigmas, (size_t)s.n + 1, name);
            snprintf(name, sizeof name, "steps%d.init_noise_sigma", n);
            exact(f, name, &s.init_noise_sigma, 1, name);
        }
    }
    st_close(f);

    if (!check(st_open(conf_path(cs, "schedule_lcm.safetensors"), &f, &err) == 0, "open schedule_lcm.safetensors"))
        return;
    if (check(sched_load(&s, conf_path(cs, "schedulers/lcm.json"), &err) == 0, "load schedulers/lcm.json %s",
              err.msg)) {
        exact(f, "alphas_cumprod", s.alphas_cumprod, 1000, "LCM alphas_cumprod");
        /* c_skip / c_out of every t, read back through a 1-step custom
         * schedule's trace (the boundary condition only bites at t < ~205). */
        float c_skip[1000], c_out[1000];
        int ok = 1;
        for (int t = 0; t < 1000 && ok; t++) {
            float x = 1, e = 0, y;
            struct sched_trace tr = {0};
            ok = sched_set_timesteps(&s, 0, &t, 1, &err) == 0 && sched_step(&s, 0, &e, &x, NULL, &y, 1, &tr, &err) == 0;
            c_skip[t] = tr.c_skip;
            c_out[t] = tr.c_out;
        }
        if (check(ok, "LCM step at every t = 0..999 %s", ok ? "" : err.msg)) {
            exact(f, "c_skip", c_skip, 1000, "LCM c_skip for t = 0..999");
            exact(f, "c_out", c_out, 1000, "LCM c_out for t = 0..999");
        }
        for (int n = 1; n <= 8; n++) {
            if (!check(sched_set_timesteps(&s, n, NULL, 0, &err) == 0, "LCM set_timesteps(%d)", n)) continue;
            snprintf(name, sizeof name, "steps%d.timesteps", n);
            char label[96];
            snprintf(label, sizeof label, "LCM %s", name);
            exact(f, name, s.timesteps, (size_t)s.n, label);
        }
    }
    st_close(f);
}

/* ---- 2. conformance cases ---------------------------------------------- */

static float *need(const struct st_file *f, const struct json *c, const char *name, size_t n)
{
    size_t got;
    float *v = conf_tensor(f, name, &got);
    if (!v || got != n) {
        check(0, "%s: %s missing or of the wrong size", conf_case_name(c), name);
        free(v);
        return NULL;
    }
    return v;
}

static void suite_case(const struct conf_suite *cs, const struct json *c)
{
    const char *cn = conf_case_name(c);
    struct os_err err = {{0}};
    struct sched s;
    int rc;
    const struct json *inline_cfg = json_get(c, "scheduler_config");
    if (inline_cfg && inline_cfg->type == JSON_OBJECT) {
        rc = sched_from_config(&s, inline_cfg, conf_str(c, "scheduler_config_file"), &err);
    } else {
        char rel[256];
        snprintf(rel, sizeof rel, "%s/scheduler/scheduler_config.json", conf_str(c, "model"));
        rc = sched_load(&s, conf_path(cs, rel), &err);
    }
    if (!check(rc == 0, "%s: scheduler from config %s", cn, rc ? err.msg : "")) return;
    int custom[64];
    int nc = parse_int_list(json_get(c, "timesteps_arg"), custom, 64);
    int steps = (int)conf_int(c, "num_inference_steps", 0);
    if (!check(nc >= 0 && sched_set_timesteps(&s, steps, nc ? custom : NULL, nc, &err) == 0, "%s: set_timesteps %s",
               cn, nc >= 0 ? err.msg : "bad timesteps_arg"))
        return;

    struct st_file *f = conf_case_file(cs, c);
    if (!f) return;
    conf_check(cs, c, f, "scheduler.timesteps", s.timesteps, (size_t)s.n, 1.0);
    if (st_get(f, "scheduler.sigmas")) conf_check(cs, c, f, "scheduler.sigmas", s.sigmas, (size_t)s.n + 1, 1.0);
    conf_check(cs, c, f, "scheduler.init_noise_sigma", &s.init_noise_sigma, 1, 1.0);

    const struct tensor *lt = st_get(f, "latents.init");
    size_t n = lt ? (size_t)tensor_numel(lt) : 0;
    float *x = malloc((n ? n : 1) * sizeof *x), *buf = malloc((n ? n : 1) * sizeof *buf);
    float *x0 = malloc((n ? n : 1) * sizeof *x0), *den = malloc((n ? n : 1) * sizeof *den);
    if (!check(lt && x && buf && x0 && den, "%s: latents.init present", cn)) goto out;

    int t_start = 0;
    const char *task = conf_str(c, "task");
    if (task && strcmp(task, "img2img") == 0) {
        if (!check(sched_img2img_start(&s, conf_num(c, "strength", -1), &t_start, &err) == 0, "%s: img2img start %s",
                   cn, err.msg))
            goto out;
        float exec_ts[SCHED_MAX_STEPS];
        for (int i = t_start; i < s.n; i++) exec_ts[i - t_start] = sched_timestep(&s, i);
        conf_check(cs, c, f, "timesteps", exec_ts, (size_t)(s.n - t_start), 1.0);
        float nt = sched_timestep(&s, t_start);
        conf_check(cs, c, f, "img2img.noise_timestep", &nt, 1, 1.0);
        float *init = need(f, c, "img2img.init_latents", n), *noise = need(f, c, "img2img.noise", n);
        if (init && noise) {
            sched_add_noise(&s, t_start, init, noise, x, n);
            conf_check(cs, c, f, "latents.init", x, n, 1.0);
        }
        free(init);
        free(noise);
    } else {
        float *noise = need(f, c, "latents.noise", n);
        if (noise) {
            sched_init_latents(&s, noise, x, n);
            conf_check(cs, c, f, "latents.init", x, n, 1.0);
        }
        free(noise);
    }
    int executed = s.n - t_start;
    check(executed == (int)conf_int(c, "executed_steps", -1), "%s: %d steps run (manifest: %lld)", cn, executed,
          (long long)conf_int(c, "executed_steps", -1));

    for (int k = 1; k <= executed; k++) {
        int i = t_start + k - 1;
        char name[96];
        /* This step starts from the suite's own previous latents. */
        float *prev = need(f, c, k == 1 ? "latents.init" : (snprintf(name, sizeof name, "step%d.latents", k - 1), name),
                           n);
        snprintf(name, sizeof name, "step%d.noise_pred", k);
        float *eps = need(f, c, name, n);
        if (!prev || !eps) {
            free(prev);
            free(eps);
            break;
        }
        float t = sched_timestep(&s, i);
        snprintf(name, sizeof name, "step%d.timestep", k);
        conf_check(cs, c, f, name, &t, 1, 1.0);
        sched_scale_model_input(&s, i, prev, buf, n);
        snprintf(name, sizeof name, "step%d.latent_model_input", k);
        conf_check(cs, c, f, name, buf, n, 1.0);

        snprintf(name, sizeof name, "step%d.noise", k);
        int has_noise = st_get(f, name) != NULL;
        check(has_noise == sched_needs_noise(&s, i), "%s: step %d %s", cn, k,
              has_noise ? "draws noise" : "draws no noise");
        float *noise = has_noise ? need(f, c, name, n) : NULL;
        struct sched_trace tr = {.pred_original_sample = x0, .denoised = den};
        if (check(sched_step(&s, i, eps, prev, noise, x, n, &tr, &err) == 0, "%s: step %d ran %s", cn, k,
                  err.msg)) {
            snprintf(name, sizeof name, "step%d.pred_original_sample", k);
            conf_check(cs, c, f, name, x0, n, 1.0);
            snprintf(name, sizeof name, "step%d.latents", k);
            conf_check(cs, c, f, name, x, n, 1.0);
            if (s.kind == SCHED_LCM) {
                snprintf(name, sizeof name, "step%d.denoised", k);
                conf_check(cs, c, f, name, den, n, 1.0);
                const char *sc[4] = {"alpha_prod_t", "alpha_prod_t_prev", "c_skip", "c_out"};
                float v[4] = {tr.alpha_prod_t, tr.alpha_prod_t_prev, tr.c_skip, tr.c_out};
                for (int j = 0; j < 4; j++) {
                    snprintf(name, sizeof name, "step%d.%s", k, sc[j]);
                    conf_check(cs, c, f, name, &v[j], 1, 1.0);
                }
            }
        }
        free(prev);
        free(eps);
        free(noise);
    }
out:
    free(x);
    free(buf);
    free(x0);
    free(den);
    st_close(f);
}

/* The hub's sd-turbo scheduler_config.json names EulerDiscreteScheduler (keys
 * as published, extras that diffusers ignores included); the suite ran
 * EulerAncestral. At one step both end at sigma 0 with no noise term, so the
 * suite's 1-step cases must come out the same. */
static void hub_sd_turbo_config(const struct conf_suite *cs)
{
    static const char *cfg =
        "{\"_class_name\": \"EulerDiscreteScheduler\", \"_diffusers_version\": \"0.24.0.dev0\", "
        "\"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, "
        "\"clip_sample\": false, \"interpolation_type\": \"linear\", \"num_train_timesteps\": 1000, "
        "\"prediction_type\": \"epsilon\", \"sample_max_value\": 1.0, \"set_alpha_to_one\": false, "
        "\"skip_prk_steps\": true, \"steps_offset\": 1, \"timestep_spacing\": \"trailing\", "
        "\"trained_betas\": null, \"use_karras_sigmas\": false}";
    const char *cases[2] = {"sd_t2i_1step", "sd_t2i_1step_40x72_empty_prompt"};
    for (int j = 0; j < 2; j++) {
        const struct json *c = conf_case_by_name(cs, cases[j]);
        struct sched s;
        struct os_err err = {{0}};
        if (!check(c && config_from_string(&s, cfg, "sd-turbo scheduler_config.json", &err) == 0 &&
                       sched_set_timesteps(&s, 1, NULL, 0, &err) == 0,
                   "EulerDiscrete (hub sd-turbo config) for %s %s", cases[j], err.msg))
            continue;
        struct st_file *f = conf_case_file(cs, c);
        if (!f) continue;
        size_t n = 0;
        float *x = conf_tensor(f, "latents.init", &n), *eps = conf_tensor(f, "step1.noise_pred", NULL);
        float *out = malloc((n ? n : 1) * sizeof *out);
        check(!sched_needs_noise(&s, 0), "EulerDiscrete draws no noise");
        if (x && eps && out && sched_step(&s, 0, eps, x, NULL, out, n, NULL, &err) == 0)
            conf_check(cs, c, f, "step1.latents", out, n, 1.0);
        else
            check(0, "%s: EulerDiscrete step", cases[j]);
        free(x);
        free(eps);
        free(out);
        st_close(f);
    }
}

/* ---- 3. upstream goldens ----------------------------------------------- */

static const char *meta(const struct st_file *f, const char *prefix, const char *name, const char *key)
{
    char k[160];
    snprintf(k, sizeof k, "%s.%s.%s", prefix, name, key);
    return st_meta(f, k);
}

/* Schedulers from the golden file's metadata: config, n, custom list. */
static int golden_sched(const struct st_file *f, const char *prefix, const char *name, struct sched *s)
{
    struct os_err err = {{0}};
    const char *cfg = meta(f, prefix, name, "config"), *ns = meta(f, prefix, name, "n");
    const char *cus = meta(f, prefix, name, "custom");
    if (!cfg || !ns || !cus) return check(0, "%s %s: metadata incomplete", prefix, name), -1;
    if (config_from_string(s, cfg, name, &err)) return check(0, "%s %s: config: %s", prefix, name, err.msg), -1;
    int custom[SCHED_MAX_STEPS];
    struct json *cj = json_parse(cus, strlen(cus), "custom", &err);
    int nc = cj ? parse_int_list(cj, custom, SCHED_MAX_STEPS) : -1;
    json_free(cj);
    if (nc < 0) return check(0, "%s %s: custom list", prefix, name), -1;
    if (sched_set_timesteps(s, atoi(ns), nc ? custom : NULL, nc, &err))
        return check(0, "%s %s: set_timesteps: %s", prefix, name, err.msg), -1;
    return 0;
}

static void upstream_sets(const struct st_file *f)
{
    const char *list = st_meta(f, "sets");
    if (!check(list != NULL, "golden file lists its schedules")) return;
    char *names = os_strdup(list), *save = NULL;
    int count = 0, fails = 0;
    size_t bad = 0;
    char failed[512] = "";
    for (char *name = strtok_r(names, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        struct sched s;
        count++;
        if (golden_sched(f, "set", name, &s)) {
            fails++;
            continue;
        }
        char k[160];
        int ok = 1;
        snprintf(k, sizeof k, "set.%s.timesteps", name);
        ok &= exact_quiet(f, k, s.timesteps, (size_t)s.n, &bad);
        if (s.kind != SCHED_LCM) {
            snprintf(k, sizeof k, "set.%s.sigmas", name);
            ok &= exact_quiet(f, k, s.sigmas, (size_t)s.n + 1, &bad);
        }
        snprintf(k, sizeof k, "set.%s.init_noise_sigma", name);
        ok &= exact_quiet(f, k, &s.init_noise_sigma, 1, &bad);
        if (!ok) {
            fails++;
            size_t l = strlen(failed);
            snprintf(failed + l, sizeof failed - l, " %s", name);
        }
    }
    free(names);
    check(fails == 0 && count > 150, "upstream set_timesteps: %d schedules (3 spacings x 20 step counts x 2 Euler "
          "classes, custom lists, sigma_min, LCM n = 1..50): timesteps, sigmas, init_noise_sigma bit-exact; %d "
          "differ (%zu values)%s",
          count, fails, bad, failed);
}

static void upstream_chain(const struct st_file *f, const char *name)
{
    struct sched s;
    if (golden_sched(f, "chain", name, &s)) return;
    const char *st = meta(f, "chain", name, "strength"), *ts = meta(f, "chain", name, "t_start");
    const char *run = meta(f, "chain", name, "steps_run");
    char k[192];
    snprintf(k, sizeof k, "chain.%s.latents0", name);
    const struct tensor *t0 = st_get(f, k);
    if (!check(st && ts && run && t0, "chain %s: metadata and latents0", name)) return;
    size_t n = (size_t)tensor_numel(t0);
    float *x = malloc(n * sizeof *x), *in = malloc(n * sizeof *in), *x0 = malloc(n * sizeof *x0);
    float *den = malloc(n * sizeof *den);
    int t_start = 0;
    struct os_err err = {{0}};
    size_t bad = 0;
    int ok = x && in && x0 && den;
    snprintf(k, sizeof k, "chain.%s.noise0", name);
    float *noise0 = conf_tensor(f, k, NULL);
    if (ok && strcmp(st, "null") != 0) {
        ok = sched_img2img_start(&s, strtod(st, NULL), &t_start, &err) == 0 && t_start == atoi(ts);
        snprintf(k, sizeof k, "chain.%s.clean", name);
        float *clean = conf_tensor(f, k, NULL);
        if (ok && clean && noise0) sched_add_noise(&s, t_start, clean, noise0, x, n);
        else ok = 0;
        free(clean);
    } else if (ok && noise0) {
        sched_init_latents(&s, noise0, x, n);
    }
    free(noise0);
    snprintf(k, sizeof k, "chain.%s.latents0", name);
    ok = ok && exact_quiet(f, k, x, n, &bad);
    int steps = s.n - t_start;
    ok = ok && steps == atoi(run);
    for (int j = 1; ok && j <= steps; j++) {
        int i = t_start + j - 1;
        float t = sched_timestep(&s, i);
        snprintf(k, sizeof k, "chain.%s.step%d.timestep", name, j);
        ok &= exact_quiet(f, k, &t, 1, &bad);
        /* Chain through upstream's own previous latents. */
        snprintf(k, sizeof k, j == 1 ? "chain.%s.latents0" : "chain.%s.step%d.latents", name, j - 1);
        float *prev = conf_tensor(f, k, NULL);
        snprintf(k, sizeof k, "chain.%s.step%d.eps", name, j);
        float *eps = conf_tensor(f, k, NULL);
        snprintf(k, sizeof k, "chain.%s.step%d.noise", name, j);
        float *noise = conf_tensor(f, k, NULL);
        ok &= prev && eps && (noise != NULL) == sched_needs_noise(&s, i);
        if (ok) {
            sched_scale_model_input(&s, i, prev, in, n);
            snprintf(k, sizeof k, "chain.%s.step%d.model_input", name, j);
            ok &= exact_quiet(f, k, in, n, &bad);
            struct sched_trace tr = {.pred_original_sample = x0, .denoised = den};
            ok &= sched_step(&s, i, eps, prev, noise, x, n, &tr, &err) == 0;
            snprintf(k, sizeof k, "chain.%s.step%d.pred_original_sample", name, j);
            if (st_get(f, k)) ok &= exact_quiet(f, k, x0, n, &bad);
            snprintf(k, sizeof k, "chain.%s.step%d.denoised", name, j);
            if (st_get(f, k)) ok &= exact_quiet(f, k, den, n, &bad);
            snprintf(k, sizeof k, "chain.%s.step%d.latents", name, j);
            ok &= exact_quiet(f, k, x, n, &bad);
        }
        free(prev);
        free(eps);
        free(noise);
    }
    check(ok, "upstream chain %s (%s, %d step%s from index %d): model input, x0, %slatents bit-exact (%zu values "
          "differ)",
          name, sched_kind_name(s.kind), steps, steps == 1 ? "" : "s", t_start,
          s.kind == SCHED_LCM ? "denoised, " : "", bad);
    free(x);
    free(in);
    free(x0);
    free(den);
}

static void upstream(void)
{
    struct st_file *f = NULL;
    struct os_err err = {{0}};
    if (!check(st_open(UPSTREAM, &f, &err) == 0, "open %s %s", UPSTREAM, err.msg)) return;
    check_note("goldens: diffusers %s, torch %s, numpy %s", st_meta(f, "diffusers"), st_meta(f, "torch"),
               st_meta(f, "numpy"));
    upstream_sets(f);
    const char *list = st_meta(f, "chains");
    char *names = list ? os_strdup(list) : NULL, *save = NULL;
    for (char *name = names ? strtok_r(names, ",", &save) : NULL; name; name = strtok_r(NULL, ",", &save))
        upstream_chain(f, name);
    free(names);

    /* Beta tables of other configs: linear, other ranges and lengths (the
     * torch 1.13 linspace blocks), the Glide cosine schedule. */
    list = st_meta(f, "tables");
    names = list ? os_strdup(list) : NULL;
    for (char *name = names ? strtok_r(names, ",", &save) : NULL; name; name = strtok_r(NULL, ",", &save)) {
        struct sched s;
        const char *cfg = meta(f, "table", name, "config");
        if (!check(cfg && config_from_string(&s, cfg, name, &err) == 0, "table %s: config %s", name, err.msg))
            continue;
        char k[128], label[128];
        snprintf(k, sizeof k, "table.%s.betas", name);
        snprintf(label, sizeof label, "%s betas", name);
        exact(f, k, s.betas, (size_t)s.num_train_timesteps, label);
        snprintf(k, sizeof k, "table.%s.alphas_cumprod", name);
        snprintf(label, sizeof label, "%s alphas_cumprod", name);
        exact(f, k, s.alphas_cumprod, (size_t)s.num_train_timesteps, label);
    }
    free(names);
    st_close(f);
}

/* ---- 4. strength rule and errors --------------------------------------- */

static struct sched euler_a(int n)
{
    struct sched s;
    struct os_err err = {{0}};
    const char *cfg = "{\"_class_name\": \"EulerAncestralDiscreteScheduler\", \"beta_start\": 0.00085, "
                      "\"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", \"timestep_spacing\": \"trailing\"}";
    if (config_from_string(&s, cfg, "ea", &err) || sched_set_timesteps(&s, n, NULL, 0, &err)) memset(&s, 0, sizeof s);
    return s;
}

static void strength_rule(void)
{
    struct os_err err = {{0}};
    int t0 = -1;
    /* int(n * strength) as Python computes it: 3 * 0.7 = 2.0999999999999996,
     * 10 * 0.3 = 3.0000000000000004, 100 * 0.29 = 28.999999999999996. */
    struct sched s = euler_a(3);
    check(sched_img2img_start(&s, 0.7, &t0, &err) == 0 && t0 == 1, "3 steps, strength 0.7: start at 1 (got %d)", t0);
    s = euler_a(10);
    check(sched_img2img_start(&s, 0.3, &t0, &err) == 0 && t0 == 7, "10 steps, strength 0.3: start at 7 (got %d)",
          t0);
    s = euler_a(100);
    check(sched_img2img_start(&s, 0.29, &t0, &err) == 0 && t0 == 72, "100 steps, strength 0.29: 28 run (start %d)",
          t0);
    s = euler_a(4);
    check(sched_img2img_start(&s, 1.0, &t0, &err) == 0 && t0 == 0, "strength 1: the whole schedule");
    check(sched_img2img_start(&s, 0.25, &t0, &err) == 0 && t0 == 3, "4 steps, strength 0.25: the last step only");
    int rc = sched_img2img_start(&s, 0.2, &t0, &err);
    check(rc == -1 && strstr(err.msg, "strength >= 0.25"), "4 steps, strength 0.2 runs no step: \"%s\"", err.msg);
    s = euler_a(3);
    rc = sched_img2img_start(&s, 0.3, &t0, &err);
    check(rc == -1 && strstr(err.msg, "strength >="), "3 steps, strength 0.3: \"%s\"", err.msg);
    double suggested = strtod(strstr(err.msg, ">= ") + 3, NULL);
    check(sched_img2img_start(&s, suggested, &t0, &err) == 0 && t0 == 2, "the suggested strength %.9g runs one step",
          suggested);
    check(sched_img2img_start(&s, 1.5, &t0, &err) == -1 && strstr(err.msg, "outside [0, 1]"), "strength 1.5: \"%s\"",
          err.msg);
    check(sched_img2img_start(&s, NAN, &t0, &err) == -1, "strength NaN rejected");
}

static void expect_config_error(const char *cfg, const char *needle, const char *what)
{
    struct os_err err = {{0}};
    struct sched s;
    int rc = config_from_string(&s, cfg, "x/scheduler_config.json", &err);
    check(rc == -1 && strstr(err.msg, needle) && strstr(err.msg, "x/scheduler_config.json"), "%s: \"%s\"", what,
          err.msg);
}

static void errors(void)
{
    expect_config_error("{\"_class_name\": \"DDIMScheduler\"}", "\"_class_name\" is \"DDIMScheduler\"",
                        "unknown class");
    expect_config_error("{\"beta_start\": 0.1}", "missing required key \"_class_name\"", "no class");
    expect_config_error("[1]", "not a JSON object", "not an object");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"timestep_spacing\": \"even\"}",
                        "\"timestep_spacing\" is \"even\"", "unknown spacing");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_schedule\": \"cosine\"}",
                        "\"beta_schedule\" is \"cosine\"", "unknown beta schedule");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"prediction_type\": \"flow\"}",
                        "\"prediction_type\" is \"flow\"", "unknown prediction type");
    expect_config_error("{\"_class_name\": \"EulerAncestralDiscreteScheduler\", \"prediction_type\": \"sample\"}",
                        "\"prediction_type\" is \"sample\"", "EulerAncestral has no sample prediction in 0.31");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"use_karras_sigmas\": true}",
                        "\"use_karras_sigmas\"", "karras sigmas");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"interpolation_type\": \"log_linear\"}",
                        "\"interpolation_type\"", "log_linear interpolation");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"rescale_betas_zero_snr\": true}",
                        "\"rescale_betas_zero_snr\"", "zero-SNR rescaling");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"timestep_type\": \"continuous\", "
                        "\"prediction_type\": \"v_prediction\"}",
                        "\"timestep_type\"", "EDM continuous timesteps");
    expect_config_error("{\"_class_name\": \"LCMScheduler\", \"thresholding\": true}", "\"thresholding\"",
                        "LCM thresholding");
    expect_config_error("{\"_class_name\": \"LCMScheduler\", \"original_inference_steps\": 0}",
                        "\"original_inference_steps\"", "LCM original steps 0");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"num_train_timesteps\": 1e9}",
                        "\"num_train_timesteps\"", "absurd num_train_timesteps");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"num_train_timesteps\": \"1000\"}",
                        "\"num_train_timesteps\"", "string where a number belongs");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"trained_betas\": [0.1, 0.2]}",
                        "\"trained_betas\" has 2 values", "trained_betas of the wrong length");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_end\": 2}", "\"beta_end\"",
                        "beta_end out of range");

    /* Keys the class does not take are ignored, as diffusers does: the hub's
     * sdxl-turbo config carries use_karras_sigmas etc. for EulerAncestral. */
    struct sched s;
    struct os_err err = {{0}};
    check(config_from_string(&s,
                             "{\"_class_name\": \"EulerAncestralDiscreteScheduler\", \"use_karras_sigmas\": true, "
                             "\"skip_prk_steps\": true, \"clip_sample\": false, \"set_alpha_to_one\": false}",
                             "x", &err) == 0,
          "keys EulerAncestral does not take are ignored %s", err.msg);
    struct sched d;
    check(config_from_string(&d, "{\"_class_name\": \"EulerDiscreteScheduler\"}", "x", &err) == 0 &&
              d.beta_schedule == SCHED_BETAS_LINEAR && d.beta_start == 0.0001 && d.beta_end == 0.02 &&
              d.timestep_spacing == SCHED_SPACING_LINSPACE && d.steps_offset == 0 &&
              d.prediction_type == SCHED_PRED_EPSILON,
          "EulerDiscrete defaults: linear 0.0001..0.02, linspace, offset 0, epsilon");
    check(config_from_string(&d, "{\"_class_name\": \"LCMScheduler\"}", "x", &err) == 0 &&
              d.beta_schedule == SCHED_BETAS_SCALED_LINEAR && d.beta_start == 0.00085 &&
              d.original_inference_steps == 50 && d.timestep_scaling == 10.0,
          "LCM defaults: scaled_linear 0.00085..0.012, 50 original steps, timestep_scaling 10");

    s = euler_a(2);
    int ts[3] = {999, 499, 0};
    check(sched_set_timesteps(&s, 0, ts, 3, &err) == -1 && strstr(err.msg, "custom timesteps"),
          "EulerAncestral refuses custom timesteps: \"%s\"", err.msg);
    check(sched_set_timesteps(&s, 0, NULL, 0, &err) == -1 && strstr(err.msg, "0 inference steps"), "0 steps: \"%s\"",
          err.msg);
    check(sched_set_timesteps(&s, 1001, NULL, 0, &err) == -1, "1001 steps: \"%s\"", err.msg);
    if (config_from_string(&s, "{\"_class_name\": \"LCMScheduler\"}", "lcm.json", &err) == 0) {
        int up[2] = {499, 999}, neg[2] = {999, -1}, big[1] = {1000};
        check(sched_set_timesteps(&s, 0, up, 2, &err) == -1 && strstr(err.msg, "descending"),
              "ascending custom timesteps: \"%s\"", err.msg);
        check(sched_set_timesteps(&s, 0, neg, 2, &err) == -1 && strstr(err.msg, "outside"),
              "negative custom timestep: \"%s\"", err.msg);
        check(sched_set_timesteps(&s, 0, big, 1, &err) == -1 && strstr(err.msg, "outside"),
              "custom timestep 1000: \"%s\"", err.msg);
        check(sched_set_timesteps(&s, 51, NULL, 0, &err) == -1 && strstr(err.msg, "original_inference_steps"),
              "LCM 51 steps of 50: \"%s\"", err.msg);
        check(sched_set_timesteps(&s, 2, NULL, 0, &err) == 0 && sched_needs_noise(&s, 0) && !sched_needs_noise(&s, 1),
              "LCM draws noise on every step but the last");
        float x = 1, e = 0, y;
        check(sched_step(&s, 0, &e, &x, NULL, &y, 1, NULL, &err) == -1 && strstr(err.msg, "noise"),
              "a step that needs noise without it: \"%s\"", err.msg);
        check(sched_step(&s, 2, &e, &x, NULL, &y, 1, NULL, &err) == -1 && strstr(err.msg, "outside"),
              "step index past the schedule: \"%s\"", err.msg);
        check(isnan(sched_timestep(&s, 7)), "timestep past the schedule is NaN");
    }
    struct sched empty;
    memset(&empty, 0, sizeof empty);
    check(sched_img2img_start(&empty, 0.5, &ts[0], &err) == -1 && strstr(err.msg, "not set"),
          "img2img before set_timesteps: \"%s\"", err.msg);
    check(sched_load(&s, "no/such/scheduler_config.json", &err) == -1 && strstr(err.msg, "no/such"),
          "missing file: \"%s\"", err.msg);
}

int main(void)
{
    struct conf_suite cs;
    if (conf_open(&cs) == 0) {
        suite_tables(&cs);
        for (size_t i = 0; i < conf_ncases(&cs); i++) suite_case(&cs, conf_case(&cs, i));
        hub_sd_turbo_config(&cs);
        conf_close(&cs);
    }
    upstream();
    strength_rule();
    errors();
    return check_summary();
}
