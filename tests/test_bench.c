/* ./bench, the harness itself, on the conformance suite's tiny model (no
 * timing assertions: what is checked is that it times what it says, and
 * reports it consistently):
 *   - the FLOP counts it divides by (tools/lib/modelwalk) equal issue 5's
 *     published numbers for the full-size configs;
 *   - the JSON: per stage gflop (equal to modelwalk's), seconds_min and
 *     seconds_median (equal to the min and median of the listed runs),
 *     gflops = gflop / seconds_min, runs = repeat (x steps for the UNet),
 *     peak_rss_bytes, backend, threads, CPU cores and flags;
 *   - --stages and --steps select what is timed;
 *   - the taesd stage (here with the suite's taesd-tiny): its gflop is
 *     modelwalk_taesd's, taesd_vae_ratio is its min over the vae's, and
 *     "total" stays text + UNet + VAE;
 *   - warm-up runs are not counted; the "total" entry times whole calls;
 *   - the budget: stages whose estimate exceeds --budget are skipped with
 *     the estimate and the way to force them (taesd from a small untimed
 *     decode of its own); a named backend is not;
 *   - bad arguments exit 2 with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tools/lib/modelwalk.h"
#include "../weights/json.h"
#include "lib/check.h"
#include "lib/proc.h"

static char tmpdir[64];

static int run(const char *args, char *out, size_t len)
{
    return run_capture(out, len, "%s/bench %s 2>&1", bin_dir(), args);
}

static double num(const struct json *o, const char *key)
{
    const struct json *v = json_get(o, key);
    return v && v->type == JSON_NUMBER ? v->number : NAN;
}

static const char *str(const struct json *o, const char *key)
{
    const struct json *v = json_get(o, key);
    return v && v->type == JSON_STRING ? v->str : "";
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The ref run of a bench JSON file, or NULL (with a failed check). */
static struct json *load(const char *path, const struct json **ref_run)
{
    struct os_err err = {{0}};
    struct json *j = json_parse_file(path, 1 << 20, &err);
    *ref_run = NULL;
    if (!check(j != NULL, "%s parses as JSON%s%s", path, j ? "" : ": ", j ? "" : err.msg)) return NULL;
    const struct json *runs = json_get(j, "runs");
    for (size_t i = 0; runs && runs->type == JSON_ARRAY && i < runs->len; i++)
        if (!strcmp(str(&runs->items[i], "backend"), "ref")) *ref_run = &runs->items[i];
    check(*ref_run != NULL, "%s has a run of backend ref", path);
    return j;
}

/* One timed stage: consistent numbers. */
static void stage_ok(const struct json *stages, const char *name, int runs, double gflop, const char *what)
{
    const struct json *s = json_get(stages, name);
    if (!check(s && s->type == JSON_OBJECT, "%s: stage %s present", what, name)) return;
    const struct json *secs = json_get(s, "seconds");
    int ok = secs && secs->type == JSON_ARRAY && (int)secs->len == runs && num(s, "runs") == runs;
    double v[64], mn = num(s, "seconds_min"), md = num(s, "seconds_median");
    for (size_t i = 0; ok && i < secs->len && i < 64; i++) {
        v[i] = secs->items[i].number;
        ok = v[i] > 0;
    }
    if (ok) {
        qsort(v, secs->len, sizeof *v, cmp);
        double want_md = secs->len % 2 ? v[secs->len / 2] : 0.5 * (v[secs->len / 2 - 1] + v[secs->len / 2]);
        ok = fabs(mn - v[0]) < 1e-6 && fabs(md - want_md) < 1e-6;
    }
    check(ok, "%s %s: %d runs; seconds_min %.4f and seconds_median %.4f are their min and median", what, name, runs, mn,
          md);
    double g = num(s, "gflop"), gs = num(s, "gflops");
    check(fabs(g - gflop) <= 1e-4 + 1e-4 * gflop, "%s %s: gflop %.4f = modelwalk's %.4f", what, name, g, gflop);
    check(mn > 0 && fabs(gs - g / mn) <= 1e-3 * gs + 1e-4, "%s %s: gflops %.4f = gflop / seconds_min", what, name, gs);
    check(num(s, "peak_rss_bytes") > 1e6, "%s %s: a stage peak RSS (%.1f MiB)", what, name,
          num(s, "peak_rss_bytes") / 1048576.0);
}

/* GFLOP of text (all encoders), one UNet step and the VAE decoder. */
static int walk(const char *path, int size, double g[3])
{
    struct mw_report r;
    struct os_err err = {{0}};
    if (!check(modelwalk(path, size, size, 0, &r, &err) == 0, "modelwalk %s at %d²%s%s", path, size,
               err.msg[0] ? ": " : "", err.msg))
        return 0;
    g[0] = g[1] = g[2] = 0;
    for (int i = 0; i < r.nstages; i++) {
        int s = r.stages[i].kind == MW_TEXT ? 0 : r.stages[i].kind == MW_UNET ? 1 : r.stages[i].kind == MW_VAE_DECODE ? 2 : -1;
        if (s >= 0) g[s] += (double)r.stages[i].flops * 1e-9;
    }
    mw_report_free(&r);
    return 1;
}

int main(void)
{
    char path[512], out[65536], args[2048];
    snprintf(path, sizeof path, "%s/bench", bin_dir());
    if (!check(access(path, X_OK) == 0, "%s exists (make builds it)", path)) return check_summary();

    int rc = run("--help", out, sizeof out);
    check(rc == 0 && strstr(out, "usage: bench"), "--help: usage, exit 0");
    static const struct {
        const char *args, *msg;
    } bad[] = {
        {"--model sd-15", "expected sd-turbo or sdxl-turbo"},
        {"--size 100", "multiple of 8"},
        {"--stages text,decode", "unknown stage"},
        {"--repeat 0", "--repeat"},
        {"--frobnicate", "unknown option"},
        {"--json", "needs a value"},
        {"--model sd-turbo --model-dir x", "exclude each other"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = run(bad[i].args, out, sizeof out);
        check(rc == 2 && strstr(out, bad[i].msg), "bench %s: exit 2, \"%s\"", bad[i].args, bad[i].msg);
    }

    /* issue 5: "SD-Turbo text 45 GFLOP, UNet 804 GFLOP, VAE decode 2,515 GFLOP,
     * SDXL UNet 1,589 GFLOP at 512²", rounded to whole GFLOP */
    double sd[3], xl[3];
    if (walk("weights/configs/sd-turbo", 512, sd) && walk("weights/configs/sdxl-turbo", 512, xl)) {
        check(fabs(sd[0] - 45) <= 0.5 && fabs(sd[1] - 804) <= 0.5 && fabs(sd[2] - 2515) <= 0.5,
              "SD-Turbo at 512²: text %.2f, UNet %.2f, VAE decode %.2f GFLOP (issue 5: 45, 804, 2515)", sd[0], sd[1],
              sd[2]);
        check(fabs(xl[1] - 1589) <= 0.5 && fabs(xl[2] - sd[2]) < 1e-9,
              "SDXL-Turbo at 512²: UNet %.2f GFLOP (issue 5: 1589), the same VAE decoder", xl[1]);
    }

    const char *suite = conformance_dir();
    if (!suite) return check_summary();
    char model[512];
    snprintf(model, sizeof model, "%s/sd-turbo-tiny", suite);

    /* the counts bench divides by: stage GFLOP of the tiny model at 64² */
    double g[3];
    if (!walk(model, 64, g)) return check_summary();
    char taesd[512];
    snprintf(taesd, sizeof taesd, "%s/taesd-tiny", suite);
    struct mw_stage ts;
    struct os_err terr = {{0}};
    if (!check(modelwalk_taesd(taesd, 8, 8, &ts, &terr) == 0, "modelwalk_taesd %s%s%s", taesd, terr.msg[0] ? ": " : "",
               terr.msg))
        return check_summary();
    const double g_taesd = (double)ts.flops * 1e-9;

    snprintf(tmpdir, sizeof tmpdir, "/tmp/onestep-bench-XXXXXX");
    if (!check(mkdtemp(tmpdir) != NULL, "mkdtemp")) return check_summary();
    char json1[600], json2[600], json3[600];
    snprintf(json1, sizeof json1, "%s/all.json", tmpdir);
    snprintf(json2, sizeof json2, "%s/unet.json", tmpdir);
    snprintf(json3, sizeof json3, "%s/budget.json", tmpdir);

    /* every stage, the reference named (so never skipped) */
    snprintf(args, sizeof args, "--model-dir %s --backend ref --size 64 --repeat 3 --taesd %s --json %s", model, taesd,
             json1);
    rc = run(args, out, sizeof out);
    check(rc == 0 && strstr(out, "GFLOP/s") && strstr(out, "peak RSS"), "bench --model-dir tiny --backend ref: exit "
          "%d, a table with GFLOP/s and peak RSS", rc);
    const struct json *r;
    struct json *j = load(json1, &r);
    if (j && r) {
        check(!strcmp(str(r, "status"), "ok") && num(r, "threads") == 1 && num(r, "peak_rss_bytes") > 1e6 &&
                  !strcmp(str(r, "model"), "sd-turbo-tiny"),
              "run: status ok, model sd-turbo-tiny, ref with 1 thread, peak_rss_bytes %.0f", num(r, "peak_rss_bytes"));
        const struct json *st = json_get(r, "stages");
        stage_ok(st, "text", 3, g[0], "all");
        stage_ok(st, "unet", 3, g[1], "all");
        stage_ok(st, "vae", 3, g[2], "all");
        stage_ok(st, "taesd", 3, g_taesd, "all");
        const struct json *sv = json_get(st, "vae"), *stt = json_get(st, "taesd");
        double ratio = num(r, "taesd_vae_ratio");
        check(sv && stt && fabs(ratio - num(stt, "seconds_min") / num(sv, "seconds_min")) < 1e-4 * ratio &&
                  num(r, "taesd_load_seconds") > 0 && !strcmp(str(r, "taesd"), taesd),
              "taesd_vae_ratio %.4f = taesd min / vae min, the TAESD directory and its load time recorded", ratio);
        check(strstr(out, "taesd/vae = ") != NULL, "the table has the taesd/vae line");
        const struct json *cpu = json_get(j, "cpu"), *flags = cpu ? json_get(cpu, "flags") : NULL;
        check(cpu && num(cpu, "cores") >= 1 && flags && flags->type == JSON_ARRAY && json_get(cpu, "model"),
              "cpu: model, %.0f cores, %zu flags", cpu ? num(cpu, "cores") : 0, flags ? flags->len : 0);
        const struct json *tot = json_get(st, "total");
        check(tot && num(tot, "runs") == 3 && num(tot, "seconds_min") > 0 &&
                  fabs(num(tot, "gflop") - (g[0] + g[1] + g[2])) < 1e-4,
              "total: 3 whole calls timed (the warm-up not counted), gflop = text + UNet step + VAE");
        const struct json *set = json_get(j, "settings");
        check(set && num(set, "size") == 64 && num(set, "repeat") == 3 && num(set, "steps") == 1,
              "settings: size 64, repeat 3, steps 1");
    }
    json_free(j);

    /* only the UNet, two steps a run: each step is a sample */
    snprintf(args, sizeof args, "--model-dir %s --backend ref --size 64 --repeat 2 --steps 2 --stages unet --json %s",
             model, json2);
    rc = run(args, out, sizeof out);
    j = load(json2, &r);
    if (j && r) {
        const struct json *st = json_get(r, "stages");
        check(rc == 0 && st && st->len == 1, "--stages unet: exit %d, one stage in the JSON", rc);
        stage_ok(st, "unet", 4, g[1], "unet-only");
    }
    json_free(j);

    /* no backend named, no time allowed: the calibration run, then skips */
    snprintf(args, sizeof args, "--model-dir %s --size 64 --budget 0 --taesd %s --json %s", model, taesd, json3);
    rc = run(args, out, sizeof out);
    check(rc == 0 && strstr(out, "skipped: estimated") && strstr(out, "--backend ref forces it"),
          "--budget 0: stages skipped, with the estimate and how to force them (exit %d)", rc);
    check(strstr(out, "taesd") && strstr(out, "(rate calibration at 64x64)"),
          "--budget 0: the TAESD rate measured on one untimed decode before deciding");
    j = load(json3, &r);
    if (j && r) {
        const struct json *st = json_get(r, "stages");
        int ok = st != NULL;
        for (int s = 0; ok && s < 4; s++) {
            static const char *const names[] = {"text", "unet", "vae", "taesd"};
            const struct json *x = json_get(st, names[s]);
            ok = x && json_get(x, "skipped") && num(x, "estimated_seconds") > 0 && num(x, "estimated_at_gflops") > 0 &&
                 json_get(x, "seconds_min") == NULL;
        }
        check(ok, "--budget 0 JSON: every stage skipped with estimated_seconds at the rate of an untimed "
              "calibration (text; taesd: its own small decode), and no timings");
    }
    json_free(j);

    snprintf(args, sizeof args, "rm -rf %s", tmpdir);
    if (system(args) != 0) check_note("could not remove %s", tmpdir);
    return check_summary();
}
