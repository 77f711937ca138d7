#include "conformance.h"

#include "../../ref/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/lib/tensorcmp.h"
#include "check.h"

int conf_open(struct conf_suite *s)
{
    memset(s, 0, sizeof *s);
    s->dir = conformance_dir();
    if (!s->dir) return -1;
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", s->dir);
    struct os_err err;
    s->manifest = json_parse_file(path, 64u << 20, &err);
    if (!check(s->manifest != NULL, "read %s%s%s", path, s->manifest ? "" : ": ", s->manifest ? "" : err.msg))
        return -1;
    s->cases = json_get(s->manifest, "cases");
    const struct json *tol = json_get(s->manifest, "tolerances");
    s->by_tensor = json_get(tol, "by_tensor");
    if (!check(s->cases && s->cases->type == JSON_ARRAY && s->by_tensor, "manifest has cases and tolerances")) {
        conf_close(s);
        return -1;
    }
    return 0;
}

void conf_close(struct conf_suite *s)
{
    json_free(s->manifest);
    memset(s, 0, sizeof *s);
}

size_t conf_ncases(const struct conf_suite *s)
{
    return s->cases ? s->cases->len : 0;
}

const struct json *conf_case(const struct conf_suite *s, size_t i)
{
    return &s->cases->items[i];
}

const struct json *conf_case_by_name(const struct conf_suite *s, const char *name)
{
    for (size_t i = 0; i < conf_ncases(s); i++)
        if (strcmp(conf_case_name(conf_case(s, i)), name) == 0) return conf_case(s, i);
    return NULL;
}

const char *conf_case_name(const struct json *c)
{
    return conf_str(c, "name");
}

const char *conf_str(const struct json *c, const char *key)
{
    const struct json *v = json_get(c, key);
    return v && v->type == JSON_STRING ? v->str : NULL;
}

int64_t conf_int(const struct json *c, const char *key, int64_t def)
{
    const struct json *v = json_get(c, key);
    if (!v || v->type != JSON_NUMBER) return def;
    return v->is_int ? v->integer : (int64_t)v->number;
}

double conf_num(const struct json *c, const char *key, double def)
{
    const struct json *v = json_get(c, key);
    return v && v->type == JSON_NUMBER ? v->number : def;
}

int conf_is_extension(const struct json *c)
{
    const struct json *v = json_get(c, "extension");
    return v && v->type != JSON_NULL;
}

char *conf_path(const struct conf_suite *s, const char *rel)
{
    static char buf[8][1024];
    static int slot;
    char *p = buf[slot++ & 7];
    snprintf(p, 1024, "%s/%s", s->dir, rel);
    return p;
}

struct st_file *conf_case_file(const struct conf_suite *s, const struct json *c)
{
    const char *file = conf_str(c, "file");
    struct st_file *f = NULL;
    struct os_err err;
    if (!file || st_open(conf_path(s, file), &f, &err) != 0) {
        check(0, "%s: open case file: %s", conf_case_name(c), file ? err.msg : "no \"file\" in manifest");
        return NULL;
    }
    return f;
}

float *conf_tensor(const struct st_file *f, const char *name, size_t *n)
{
    const struct tensor *t = st_get(f, name);
    if (!t) return NULL;
    size_t cnt = (size_t)tensor_numel(t);
    float *out = malloc((cnt ? cnt : 1) * sizeof *out);
    if (!out) return NULL;
    for (size_t i = 0; i < cnt; i++) {
        const unsigned char *p = (const unsigned char *)t->data;
        switch (t->dtype) {
        case DT_I64: {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            out[i] = (float)v;
            break;
        }
        case DT_U8: out[i] = p[i]; break;
        default: out[i] = tensor_get_f32(t, (int64_t)i); break;
        }
    }
    if (n) *n = cnt;
    return out;
}

int conf_tolerance(const struct conf_suite *s, const char *name, double *abs_tol, double *rel_to_max)
{
    struct manifest_tol t;
    if (manifest_tolerance(s->by_tensor, name, &t) != 0 || t.is_image) {
        *abs_tol = 0; /* no row: 4 float32 ulps of the tensor's scale, the suite's floor */
        *rel_to_max = 4.8e-7;
        return -1;
    }
    *abs_tol = t.abs_tol;
    *rel_to_max = t.rel_to_max;
    return 0;
}

/* conf_check; *ratio (when not NULL) gets max|diff| / the unscaled
 * tolerance, or -1 when the tensor could not be compared at all. */
static int check_tensor(const struct conf_suite *s, const struct json *c, const struct st_file *f, const char *name,
                        const float *got, size_t n, double slack, double *ratio)
{
    if (ratio) *ratio = -1;
    size_t rn;
    float *ref = conf_tensor(f, name, &rn);
    const char *cn = conf_case_name(c);
    if (!ref) return check(0, "%s %s: not in the case file", cn, name);
    if (rn != n) {
        free(ref);
        return check(0, "%s %s: %zu elements, the suite has %zu", cn, name, n, rn);
    }
    double atol, rtol;
    conf_tolerance(s, name, &atol, &rtol);
    struct diff_stats st;
    diff_floats(got, ref, n, 0, &st);
    double tol = atol > rtol * st.ref_max_abs ? atol : rtol * st.ref_max_abs;
    if (ratio)
        *ratio = st.nonfinite ? INFINITY : tol > 0 ? st.max_abs / tol : st.max_abs > 0 ? INFINITY : 0;
    tol *= slack;
    diff_floats(got, ref, n, tol, &st);
    int ok = st.mismatches == 0;
    check(ok, "%s %s: max|diff| %.3g (rel to max %.3g) at [%zu] got %.9g want %.9g; tol %.3g%s", cn, name, st.max_abs,
          st.ref_max_abs > 0 ? st.max_abs / st.ref_max_abs : 0.0, st.worst, n ? got[st.worst] : 0.0,
          n ? ref[st.worst] : 0.0, tol, st.nonfinite ? " NON-FINITE VALUES" : "");
    free(ref);
    return ok;
}

int conf_check(const struct conf_suite *s, const struct json *c, const struct st_file *f, const char *name,
               const float *got, size_t n, double slack)
{
    return check_tensor(s, c, f, name, got, n, slack, NULL);
}

#define MAX_WORST 64
static struct conf_worst worst[MAX_WORST];
static int nworst;

int conf_compare(const struct conf_suite *s, const struct json *c, const struct st_file *f, const char *name,
                 const float *got, size_t n)
{
    const char *cn = conf_case_name(c);
    if (!got) return check(0, "%s %s: not dumped", cn, name);
    double ratio;
    int ok = check_tensor(s, c, f, name, got, n, 1.0, &ratio);
    if (ratio < 0) return ok;
    char fam[sizeof worst[0].name];
    snprintf(fam, sizeof fam, "%s", name);
    if (strncmp(name, "step", 4) == 0 && strchr(name, '.')) snprintf(fam, sizeof fam, "step*%s", strchr(name, '.'));
    int i = 0;
    while (i < nworst && strcmp(worst[i].name, fam) != 0) i++;
    if (i == nworst) {
        if (nworst == MAX_WORST) return ok;
        snprintf(worst[i].name, sizeof worst[i].name, "%s", fam);
        worst[nworst++].ratio = -1;
    }
    if (ratio > worst[i].ratio) {
        worst[i].ratio = ratio;
        snprintf(worst[i].where, sizeof worst[i].where, "%s", cn);
    }
    return ok;
}

const struct conf_worst *conf_worst(int *n)
{
    *n = nworst;
    return worst;
}

void conf_worst_notes(const char *heading)
{
    int width = 0;
    for (int i = 0; i < nworst; i++)
        if ((int)strlen(worst[i].name) > width) width = (int)strlen(worst[i].name);
    check_note("%s", heading);
    for (int i = 0; i < nworst; i++) check_note("  %-*s %.3f  (%s)", width, worst[i].name, worst[i].ratio, worst[i].where);
}

static int uint8_worst;
static size_t uint8_differing, uint8_total;

unsigned char *conf_compare_uint8(const struct json *c, const struct st_file *f, const float *img, int H, int W)
{
    const char *cn = conf_case_name(c);
    size_t n;
    float *want = conf_tensor(f, "image.uint8", &n);
    if (!check(want && n == (size_t)H * W * 3, "%s image.uint8 present with %dx%dx3 bytes", cn, H, W)) {
        free(want);
        return NULL;
    }
    unsigned char *rgb = malloc(n);
    vae_to_uint8(img, H, W, rgb);
    size_t differing = 0;
    int maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)rgb[i] - (int)want[i]);
        differing += d != 0;
        if (d > maxd) maxd = d;
    }
    check(maxd <= 1 && differing <= n / 100,
          "%s image.uint8: %zu of %zu bytes differ, by at most %d (allowed: 1 on 1%%)", cn, differing, n, maxd);
    if (maxd > uint8_worst) uint8_worst = maxd;
    uint8_differing += differing;
    uint8_total += n;
    free(want);
    return rgb;
}

void conf_uint8_note(void)
{
    check_note("image.uint8: %zu of %zu bytes differ over all cases, by at most %d", uint8_differing, uint8_total,
               uint8_worst);
}
