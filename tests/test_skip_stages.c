/* onestep_params.skip_stages, the hook the benchmark (tools/bench.c) times
 * stages alone with: skipped stages report no progress and leave their
 * outputs zero, the others still run; the arena is sized for the stages
 * that run (onestep_estimate), each stage's peak being what
 * tools/lib/modelwalk measures for it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/onestep.h"
#include "../tools/lib/modelwalk.h"
#include "lib/check.h"
#include "lib/conformance.h"

/* ---- skip_stages on a conformance model ---- */

struct seen {
    int count[4];
};

static void on_progress(void *user, const struct onestep_progress *p)
{
    struct seen *s = user;
    if (p->done) s->count[p->stage]++;
}

struct grab {
    float first_context;
    int got_context;
    double latents_abs;
};

static void on_dump(void *user, const char *name, enum onestep_dtype dt, const void *data, int ndim,
                    const int64_t *shape)
{
    struct grab *g = user;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    if (dt != ONESTEP_F32) return;
    const float *f = data;
    if (!strcmp(name, "prompt_embeds")) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += fabs(f[i]);
        g->first_context = (float)s;
        g->got_context = 1;
    }
    if (!strcmp(name, "latents.final")) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += fabs(f[i]);
        g->latents_abs = s;
    }
}

static void skipping(const struct conf_suite *suite)
{
    struct onestep_load_params lp;
    onestep_load_default_params(&lp);
    lp.model = conf_path(suite, "sd-turbo-tiny");
    lp.backend = "ref";
    struct onestep_ctx *ctx;
    struct onestep_err err;
    int rc = onestep_load(&lp, &ctx, &err);
    if (!check(rc == 0, "load %s%s%s", lp.model, rc ? ": " : "", rc ? err.msg : "")) return;
    struct onestep_params p;
    onestep_default_params(ctx, &p);
    p.prompt = "a photo of a cat";
    p.width = p.height = 64;
    struct seen seen;
    struct grab g;
    p.progress = on_progress;
    p.progress_user = &seen;
    p.dump = on_dump;
    p.dump_user = &g;
    struct onestep_image full = {0}, img = {0};
    memset(&seen, 0, sizeof seen);
    memset(&g, 0, sizeof g);
    rc = onestep_generate(ctx, &p, &full, &err);
    double full_latents = g.latents_abs;
    check(rc == 0 && seen.count[0] == 1 && seen.count[2] == 1 && seen.count[3] == 1 && g.first_context > 0,
          "no skipping: text, UNet and VAE each report once");

    static const struct {
        unsigned skip;
        const char *what;
    } cases[] = {
        {1u << ONESTEP_STAGE_TEXT, "text"},
        {1u << ONESTEP_STAGE_UNET, "UNet"},
        {1u << ONESTEP_STAGE_VAE, "VAE"},
        {(1u << ONESTEP_STAGE_TEXT) | (1u << ONESTEP_STAGE_UNET) | (1u << ONESTEP_STAGE_VAE), "all"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned sk = cases[i].skip;
        p.skip_stages = sk;
        memset(&seen, 0, sizeof seen);
        memset(&g, 0, sizeof g);
        rc = onestep_generate(ctx, &p, &img, &err);
        int ok = rc == 0;
        for (int s = 0; s < 4 && ok; s++)
            if (s != ONESTEP_STAGE_ENCODE) ok = seen.count[s] == !(sk & (1u << s));
        if (ok && (sk & (1u << ONESTEP_STAGE_TEXT))) ok = g.got_context && g.first_context == 0;
        if (ok && (sk & (1u << ONESTEP_STAGE_UNET))) ok = g.latents_abs != full_latents;
        if (ok && (sk & (1u << ONESTEP_STAGE_VAE)))
            for (int k = 0; k < img.width * img.height * 3 && ok; k++) ok = img.rgb[k] == 128;
        if (ok && !(sk & (1u << ONESTEP_STAGE_VAE)) && !(sk & (1u << ONESTEP_STAGE_TEXT)) &&
            (sk & (1u << ONESTEP_STAGE_UNET)))
            ok = memcmp(img.rgb, full.rgb, (size_t)img.width * img.height * 3) != 0;
        check(ok, "skip %s: only the other stages report; the skipped output stays zero (context 0, initial latents, "
              "mid-gray image)", cases[i].what);
        onestep_image_free(&img);
    }
    onestep_image_free(&full);
    onestep_free(ctx);
}

/* onestep_estimate with stages skipped = the largest peak of those run. */
static void arena_sizes(const struct conf_suite *suite)
{
    const char *model = conf_path(suite, "sdxl-turbo-tiny");
    struct mw_report w;
    struct os_err e = {{0}};
    if (!check(modelwalk(model, 64, 48, 0, &w, &e) == 0, "modelwalk %s%s%s", model, e.msg[0] ? ": " : "", e.msg))
        return;
    size_t text = 0, unet = 0, vae = 0;
    for (int i = 0; i < w.nstages; i++) {
        size_t b = w.stages[i].peak_bytes;
        if (w.stages[i].kind == MW_TEXT && b > text) text = b;
        if (w.stages[i].kind == MW_UNET) unet = b;
        if (w.stages[i].kind == MW_VAE_DECODE) vae = b;
    }
    mw_report_free(&w);
    struct onestep_load_params lp;
    onestep_load_default_params(&lp);
    lp.model = model;
    lp.backend = "ref";
    struct onestep_ctx *ctx;
    struct onestep_err err;
    int rc = onestep_load(&lp, &ctx, &err);
    if (!check(rc == 0, "load %s%s%s", model, rc ? ": " : "", rc ? err.msg : "")) return;
    struct onestep_params p;
    onestep_default_params(ctx, &p);
    p.prompt = "x";
    p.width = 64;
    p.height = 48;
    static const struct {
        unsigned skip;
        const char *what;
    } cases[] = {
        {0, "nothing skipped"},
        {1u << ONESTEP_STAGE_VAE, "VAE skipped"},
        {(1u << ONESTEP_STAGE_VAE) | (1u << ONESTEP_STAGE_UNET), "only text"},
        {(1u << ONESTEP_STAGE_TEXT) | (1u << ONESTEP_STAGE_UNET), "only the VAE"},
        {(1u << ONESTEP_STAGE_TEXT) | (1u << ONESTEP_STAGE_VAE), "only the UNet"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned sk = cases[i].skip;
        size_t want = 0, got = 0;
        if (!(sk & (1u << ONESTEP_STAGE_TEXT)) && text > want) want = text;
        if (!(sk & (1u << ONESTEP_STAGE_UNET)) && unet > want) want = unet;
        if (!(sk & (1u << ONESTEP_STAGE_VAE)) && vae > want) want = vae;
        p.skip_stages = sk;
        rc = onestep_estimate(ctx, &p, &got, &err);
        check(rc == 0 && got == want, "estimate, %s: %zu bytes = the largest stage run (text %zu, UNet %zu, VAE %zu)",
              cases[i].what, got, text, unet, vae);
    }
    onestep_free(ctx);
}

int main(void)
{
    struct conf_suite suite;
    if (conf_open(&suite)) return check_summary();
    skipping(&suite);
    arena_sizes(&suite);
    conf_close(&suite);
    return check_summary();
}
