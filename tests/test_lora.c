/* LoRA merging (weights/lora.c) against the conformance suite's LoRA cases,
 * plus the peft layout, stacking, text-encoder routing and bad LoRA files.
 *
 * Each LoRA case: merge loras/sd-turbo-tiny-lcm-lora.safetensors (kohya
 * layout, 197 modules) into sd-turbo-tiny's UNet at the case's scale, compare
 * the recorded lora.fused.<module>.weight tensors, then run the merged UNet on
 * every step's recorded input and compare stepN.noise_pred and the first
 * call's unet.* tensors: that proves every merged module, not only the four
 * recorded ones. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../ref/onestep.h"
#include "../ref/unet.h"
#include "../tools/lib/rss.h"
#include "../weights/lora.h"
#include "lib/check.h"
#include "lib/conformance.h"
#include "lib/dumps.h"
#include "lib/measured.h"

/* ---- the tiny UNet ---- */

static int open_unet_variant(const struct conf_suite *s, const char *model, enum weight_variant v,
                             struct model_dir **m, struct component *c, struct os_err *err)
{
    if (model_dir_open(conf_path(s, model), m, err)) return -1;
    if (component_open(*m, "unet", "config.json", 1, v, c, err)) {
        model_dir_close(*m);
        return -1;
    }
    return 0;
}

static int open_unet(const struct conf_suite *s, const char *model, struct model_dir **m, struct component *c,
                     struct os_err *err)
{
    return open_unet_variant(s, model, VARIANT_FP32, m, c, err);
}

static void close_unet(struct model_dir *m, struct component *c)
{
    component_close(c);
    model_dir_close(m);
}

/* Is p inside the component's file mapping? */
static int in_mapping(const struct component *c, const void *p)
{
    const unsigned char *b = c->file->map, *q = p;
    return q >= b && q < b + c->file->map_len;
}

static size_t count_merged(const struct component *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->ntensors; i++) n += !in_mapping(c, c->tensors[i].data);
    return n;
}

static float *weight_f32(struct component *c, const char *name, size_t *n)
{
    const struct tensor *t = component_get(c, name);
    if (!t) return NULL;
    *n = (size_t)tensor_numel(t);
    float *d = malloc(*n * sizeof *d);
    tensor_read_f32(t, 0, (int64_t)*n, d);
    return d;
}

/* Run the merged UNet on every step's input of case c and compare. With
 * expect_fail, check instead that step1.noise_pred is NOT within tolerance
 * (the unmerged UNet against a LoRA case: the comparison can fail). */
static void unet_steps(const struct conf_suite *s, const struct json *c, const struct st_file *f,
                       struct component *comp, int expect_fail, const char *label)
{
    const char *cn = conf_case_name(c);
    struct os_err err = {{0}};
    struct unet u;
    if (!check(unet_load(&u, comp, &err) == 0, "%s (%s): unet_load %s", cn, label, err.msg))
        return;
    const struct tensor *ps = st_get(f, "prompt_embeds"), *xs = st_get(f, "step1.latent_model_input");
    float *ctx = conf_tensor(f, "prompt_embeds", NULL);
    if (!check(ps && xs && ctx, "%s: case file has the UNet inputs", cn)) goto out;
    struct unet_cond cond = {ctx, (int)ps->shape[1], (int)ps->shape[2], NULL, NULL};
    const int h = (int)xs->shape[2], w = (int)xs->shape[3];
    const size_t n_out = (size_t)u.out_channels * h * w;
    float *eps = malloc(n_out * sizeof *eps);
    for (int k = 1; k <= 8; k++) {
        char xn[64], tn[64], en[64];
        snprintf(xn, sizeof xn, "step%d.latent_model_input", k);
        snprintf(tn, sizeof tn, "step%d.timestep", k);
        snprintf(en, sizeof en, "step%d.noise_pred", k);
        float *x = conf_tensor(f, xn, NULL), *t = conf_tensor(f, tn, NULL);
        if (!x || !t) {
            free(x);
            free(t);
            break;
        }
        struct dumps ds = {.o = ops_ref()};
        struct dump_hook hook = {dumps_fn, &ds};
        if (check(unet_measured_run(&u, x, h, w, t[0], &cond, eps, k == 1 && !expect_fail ? &hook : NULL, NULL, NULL, &err) > 0,
                  "%s (%s) step %d: unet_forward %s", cn, label, k, err.msg)) {
            if (expect_fail) {
                size_t rn;
                float *ref = conf_tensor(f, en, &rn);
                double atol, rtol;
                conf_tolerance(s, en, &atol, &rtol);
                struct diff_stats st;
                diff_floats(eps, ref, n_out, 0, &st);
                double tol = atol > rtol * st.ref_max_abs ? atol : rtol * st.ref_max_abs;
                check(st.max_abs > 100 * tol,
                      "%s: the UNet without the LoRA misses %s by %.3g (> 100x tol %.3g): the LoRA matters", cn, en,
                      st.max_abs, tol);
                free(ref);
                free(x);
                free(t);
                break;
            }
            conf_compare(s, c, f, en, eps, n_out);
            if (k == 1) {
                const struct json *tensors = json_get(c, "tensors");
                int expected = 0;
                for (size_t i = 0; tensors && i < tensors->len; i++) {
                    const char *name = tensors->keys[i];
                    if (strncmp(name, "unet.", 5) != 0) continue;
                    expected++;
                    const struct dumped *d = dumps_find(&ds, name);
                    if (check(d != NULL, "%s %s: reported", cn, name)) conf_compare(s, c, f, name, d->data, d->n);
                }
                check(expected > 10, "%s: %d unet.* tensors compared", cn, expected);
            }
        }
        dumps_clear(&ds);
        free(x);
        free(t);
    }
    free(eps);
out:
    free(ctx);
    unet_free(&u);
}

/* ---- the LoRA conformance cases ---- */

static const char *lora_file_path(const struct conf_suite *s, const struct json *lc)
{
    const char *file = conf_str(lc, "file");
    return file ? conf_path(s, file) : NULL;
}

static int ncases;

static void run_case(const struct conf_suite *s, const struct json *c)
{
    const struct json *lc = json_get(c, "lora");
    if (!lc || lc->type != JSON_OBJECT) return;
    ncases++;
    const char *cn = conf_case_name(c);
    const char *path = lora_file_path(s, lc);
    const float scale = (float)conf_num(lc, "scale", NAN);
    struct os_err err = {{0}};
    struct model_dir *m;
    struct component comp;
    if (!check(open_unet(s, conf_str(c, "model"), &m, &comp, &err) == 0, "%s: open unet %s", cn, err.msg)) return;
    struct st_file *f = conf_case_file(s, c);
    if (!f) goto done;

    /* the baseline: without the LoRA the UNet does not reproduce this case */
    unet_steps(s, c, f, &comp, 1, "no LoRA");

    struct lora *l = NULL;
    if (!check(path && lora_open(path, &l, &err) == 0, "%s: lora_open %s %s", cn, path ? path : "(no file)", err.msg))
        goto done;
    const size_t before = comp.ntensors;
    const char *cname = NULL;
    int ok = check(lora_merged_weight(l, 0, &cname) == NULL && cname && strcmp(cname, "unet") == 0,
                   "%s: before lora_apply no module names a merged weight", cn);
    ok = check(lora_apply(l, &comp, "unet", scale, LORA_MERGE_F32, &err) == 0 && lora_check_applied(l, &err) == 0,
               "%s: lora_apply at scale %g %s", cn, scale, err.msg);
    /* every module names its merged weight, and that weight is a private copy */
    size_t named = 0;
    for (size_t i = 0; i < lora_nmodules(l, NULL); i++) {
        const char *wn = lora_merged_weight(l, i, NULL);
        const struct tensor *t = wn ? component_get(&comp, wn) : NULL;
        named += t && !in_mapping(&comp, t->data);
    }
    check(named == 197, "%s: lora_merged_weight names 197 distinct merged weights (%zu)", cn, named);
    lora_close(l);
    if (!ok) goto done;
    const size_t merged = count_merged(&comp);
    check(comp.ntensors == before && merged == 197,
          "%s: 197 weights became private copies, the other %zu stay in the mapping (%zu merged, %zu tensors)", cn,
          before - 197, merged, comp.ntensors);

    const struct json *rec = json_get(lc, "fused_weights_recorded");
    int nrec = 0;
    for (size_t i = 0; rec && i < rec->len; i++) {
        char wname[200], gname[220];
        snprintf(wname, sizeof wname, "%s.weight", rec->items[i].str);
        snprintf(gname, sizeof gname, "lora.fused.%s", wname);
        size_t n = 0;
        float *w = weight_f32(&comp, wname, &n);
        if (check(w != NULL, "%s: merged %s present", cn, wname)) conf_compare(s, c, f, gname, w, n);
        free(w);
        nrec++;
    }
    check(nrec == 4, "%s: the 4 recorded fused weights compared (%d)", cn, nrec);
    unet_steps(s, c, f, &comp, 0, "merged");
done:
    st_close(f);
    close_unet(m, &comp);
}

/* ---- writing LoRA files ---- */

static char tmpdir[] = "/tmp/onestep_test_lora_XXXXXX";

static char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int slot;
    char *p = buf[slot++ & 3];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

/* Copy every tensor of src into a writer under rename(name) (NULL = drop). */
typedef const char *(*rename_fn)(const char *name, char *buf, size_t len);

static int convert(const char *src, const char *dst, rename_fn rn)
{
    struct os_err err = {{0}};
    struct st_file *f;
    if (st_open(src, &f, &err)) return -1;
    struct st_writer *w = st_writer_new();
    int rc = 0;
    for (size_t i = 0; i < f->ntensors && !rc; i++) {
        char buf[512];
        const struct tensor *t = &f->tensors[i];
        const char *name = rn(t->name, buf, sizeof buf);
        if (name) rc = st_writer_add(w, name, t->dtype, t->ndim, t->shape, t->data, &err);
    }
    if (!rc) rc = st_writer_write(w, dst, &err);
    if (rc) fprintf(stderr, "test_lora: convert: %s\n", err.msg);
    st_writer_free(w);
    st_close(f);
    return rc;
}

/* kohya -> peft names through the manifest's module list (diffusers names),
 * not through the code under test. */
static const struct json *g_modules;

static const char *to_peft(const char *name, char *buf, size_t len, int keep_alpha)
{
    static const struct {
        const char *kohya, *peft;
    } parts[] = {{".lora_down.weight", ".lora_A.weight"}, {".lora_up.weight", ".lora_B.weight"}, {".alpha", ".alpha"}};
    for (size_t i = 0; i < g_modules->len; i++) {
        const char *mod = g_modules->items[i].str;
        char k[300] = "lora_unet_";
        size_t n = strlen(k);
        for (const char *p = mod; *p && n + 1 < sizeof k; p++) k[n++] = *p == '.' ? '_' : *p;
        k[n] = '\0';
        if (strncmp(name, k, n) != 0) continue;
        for (size_t j = 0; j < 3; j++)
            if (strcmp(name + n, parts[j].kohya) == 0) {
                if (j == 2 && !keep_alpha) return NULL;
                snprintf(buf, len, "unet.%s%s", mod, parts[j].peft);
                return buf;
            }
    }
    return "UNMAPPED";
}

static const char *to_peft_alpha(const char *name, char *buf, size_t len)
{
    return to_peft(name, buf, len, 1);
}

static const char *to_peft_no_alpha(const char *name, char *buf, size_t len)
{
    return to_peft(name, buf, len, 0);
}

/* Same data, every tensor of the two components bit-identical? */
static int same_weights(const struct component *a, const struct component *b)
{
    if (a->ntensors != b->ntensors) return 0;
    for (size_t i = 0; i < a->ntensors; i++) {
        const struct tensor *x = &a->tensors[i], *y = &b->tensors[i];
        if (strcmp(x->name, y->name) || x->dtype != y->dtype || tensor_numel(x) != tensor_numel(y) ||
            memcmp(x->data, y->data, (size_t)tensor_numel(x) * dtype_size(x->dtype)))
            return 0;
    }
    return 1;
}

static int merged_with(const struct conf_suite *s, const char *path, float scale, struct model_dir **m,
                       struct component *c, struct os_err *err)
{
    if (open_unet(s, "sd-turbo-tiny", m, c, err)) return -1;
    if (lora_apply_file(c, "unet", path, scale, LORA_MERGE_F32, err)) {
        close_unet(*m, c);
        return -1;
    }
    return 0;
}

static void peft_layout(const struct conf_suite *s, const char *kohya)
{
    const char *peft = tmp_path("peft.safetensors"), *peft_na = tmp_path("peft_no_alpha.safetensors");
    if (!check(convert(kohya, peft, to_peft_alpha) == 0 && convert(kohya, peft_na, to_peft_no_alpha) == 0,
               "peft-layout copies of the kohya LoRA written (unet.<module>.lora_A/lora_B.weight)"))
        return;
    struct os_err err = {{0}};
    struct model_dir *m1, *m2, *m3;
    struct component a, b, c3;
    if (!check(merged_with(s, kohya, 1.0f, &m1, &a, &err) == 0, "kohya at 1.0 %s", err.msg)) return;
    if (check(merged_with(s, peft, 1.0f, &m2, &b, &err) == 0, "peft layout (with .alpha) applies %s", err.msg)) {
        check(same_weights(&a, &b), "peft layout at 1.0 merges to bit-identical weights as the kohya file");
        close_unet(m2, &b);
    }
    /* without alpha, scaling = scale (alpha = r): 0.5 here = alpha/r of the kohya file */
    if (check(merged_with(s, peft_na, 0.5f, &m3, &c3, &err) == 0, "peft layout without alpha applies %s", err.msg)) {
        check(same_weights(&a, &c3), "peft without alpha at 0.5 == kohya alpha 2 / rank 4 at 1.0, bit for bit");
        close_unet(m3, &c3);
    }
    close_unet(m1, &a);
}

/* Two half-strength LoRAs stacked (kohya then peft) reproduce the scale-1.0
 * case; the second merge adds onto the first's private copies in place. */
static void stacking(const struct conf_suite *s, const char *kohya)
{
    const struct json *c = conf_case_by_name(s, "sd_lcm_lora_4step_scale1.0");
    if (!check(c != NULL, "case sd_lcm_lora_4step_scale1.0 present")) return;
    struct os_err err = {{0}};
    struct model_dir *m;
    struct component comp;
    if (!check(open_unet(s, "sd-turbo-tiny", &m, &comp, &err) == 0, "open unet %s", err.msg)) return;
    struct st_file *f = conf_case_file(s, c);
    int ok = check(lora_apply_file(&comp, "unet", kohya, 0.5f, LORA_MERGE_F32, &err) == 0, "stack: kohya LoRA at 0.5 %s", err.msg);
    const struct tensor *t0 = comp.tensors;
    const void *q = NULL;
    const struct tensor *tq = component_get(&comp, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight");
    if (tq) q = tq->data;
    ok = ok && check(lora_apply_file(&comp, "unet", tmp_path("peft.safetensors"), 0.5f, LORA_MERGE_F32, &err) == 0,
                     "stack: then the peft copy at 0.5 %s", err.msg);
    if (ok && f) {
        check(comp.tensors == t0 && tq && tq->data == q && count_merged(&comp) == 197,
              "stack: the second LoRA merges in place (same table, same private buffers, still 197 merged)");
        const struct json *rec = json_get(json_get(c, "lora"), "fused_weights_recorded");
        for (size_t i = 0; rec && i < rec->len; i++) {
            char wname[200], gname[220];
            snprintf(wname, sizeof wname, "%s.weight", rec->items[i].str);
            snprintf(gname, sizeof gname, "lora.fused.%s", wname);
            size_t n;
            float *w = weight_f32(&comp, wname, &n);
            if (w) conf_compare(s, c, f, gname, w, n);
            free(w);
        }
        unet_steps(s, c, f, &comp, 0, "0.5 + 0.5 stacked");
    }
    st_close(f);
    close_unet(m, &comp);
}

/* ---- bad LoRA files ---- */

struct wt {
    const char *name;
    enum dtype dt;
    int ndim;
    int64_t shape[4];
};

static const uint16_t f16_data[4096]; /* zeros: values do not matter for shape errors */

static const char *write_lora(const char *file, const struct wt *t, int n)
{
    struct os_err err = {{0}};
    struct st_writer *w = st_writer_new();
    for (int i = 0; i < n; i++) {
        if (st_writer_add(w, t[i].name, t[i].dt, t[i].ndim, t[i].shape, f16_data, &err)) {
            fprintf(stderr, "test_lora: %s\n", err.msg);
            abort();
        }
    }
    const char *p = tmp_path(file);
    if (st_writer_write(w, p, &err)) {
        fprintf(stderr, "test_lora: %s\n", err.msg);
        abort();
    }
    st_writer_free(w);
    return p;
}

#define Q "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"

static void expect_error(const struct conf_suite *s, const char *what, const char *path, float scale,
                         const char *needle, const char *needle2)
{
    struct os_err err = {{0}};
    struct model_dir *m;
    struct component c;
    if (open_unet(s, "sd-turbo-tiny", &m, &c, &err)) {
        check(0, "%s: open unet %s", what, err.msg);
        return;
    }
    const void *data0 = c.tensors[0].data;
    int rc = lora_apply_file(&c, "unet", path, scale, LORA_MERGE_F32, &err);
    check(rc != 0 && strstr(err.msg, needle) && (!needle2 || strstr(err.msg, needle2)) &&
              (strstr(err.msg, path) || strstr(err.msg, "lora")),
          "%s -> error naming \"%s\"%s%s: %s", what, needle, needle2 ? " and " : "", needle2 ? needle2 : "", err.msg);
    check(!c.tensors_owned && c.tensors[0].data == data0, "%s: the component is left untouched", what);
    close_unet(m, &c);
}

static void bad_files(const struct conf_suite *s)
{
    {
        struct wt t[] = {{Q ".lora_down.weight", DT_F16, 2, {4, 16}}, {Q ".lora_up.weight", DT_F16, 2, {16, 4}},
                         {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_z.lora_down.weight",
                          DT_F16, 2, {4, 16}},
                         {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_z.lora_up.weight",
                          DT_F16, 2, {16, 4}}};
        expect_error(s, "unknown module", write_lora("unknown.safetensors", t, 4), 1.0f, "no unet weight",
                     "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_z");
    }
    {
        struct wt t[] = {{Q ".lora_down.weight", DT_F16, 2, {4, 16}}, {Q ".lora_up.weight", DT_F16, 2, {16, 3}}};
        expect_error(s, "rank mismatch between up and down", write_lora("rank.safetensors", t, 2), 1.0f,
                     "rank mismatch", "[16, 3]");
    }
    {
        struct wt t[] = {{Q ".lora_down.weight", DT_F16, 2, {4, 32}}, {Q ".lora_up.weight", DT_F16, 2, {16, 4}}};
        expect_error(s, "shape mismatch with the model", write_lora("shape.safetensors", t, 2), 1.0f, "[4, 32]",
                     "[16, 16]");
    }
    {
        struct wt t[] = {{"lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", DT_F16, 4, {4, 16, 1, 1}},
                         {"lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", DT_F16, 4, {16, 4, 1, 1}}};
        expect_error(s, "a 1x1 LoRA on a 3x3 conv", write_lora("conv.safetensors", t, 2), 1.0f, "[4, 16, 1, 1]",
                     "[16, 16, 3, 3]");
    }
    {
        struct wt t[] = {{Q ".lora_down.weight", DT_F16, 2, {4, 16}}, {Q ".alpha", DT_F16, 0, {0}}};
        expect_error(s, "missing up of a pair", write_lora("noup.safetensors", t, 2), 1.0f, "no up (B)", Q);
    }
    {
        struct wt t[] = {{Q ".lora_up.weight", DT_F16, 2, {16, 4}}};
        expect_error(s, "missing down of a pair", write_lora("nodown.safetensors", t, 1), 1.0f, "no down (A)", Q);
    }
    {
        struct wt t[] = {{Q ".lora_down.weight", DT_F16, 2, {4, 16}}, {Q ".lora_up.weight", DT_F16, 2, {16, 4}},
                         {Q ".alpha", DT_F16, 1, {2}}};
        expect_error(s, "alpha of shape [2]", write_lora("alpha.safetensors", t, 3), 1.0f, "alpha must be one", "[2]");
    }
    {
        struct wt t[] = {{Q ".lora_down.weight", DT_I16, 2, {4, 16}}, {Q ".lora_up.weight", DT_F16, 2, {16, 4}}};
        expect_error(s, "integer down weights", write_lora("int.safetensors", t, 2), 1.0f, "F32, F16 or BF16", "I16");
    }
    {
        struct wt t[] = {{Q ".lora_down.weight", DT_F16, 2, {4, 16}}, {Q ".lora_up.weight", DT_F16, 2, {16, 4}},
                         {Q ".hada_w1_a", DT_F16, 2, {4, 16}}, {"some.other.key", DT_F16, 1, {1}}};
        expect_error(s, "keys of no LoRA layout (LyCORIS, stray)", write_lora("layout.safetensors", t, 4), 1.0f,
                     "no known LoRA layout", "some.other.key");
    }
    {
        struct wt t[] = {{"lora_unet_input_blocks_1_1_proj_in.lora_down.weight", DT_F16, 2, {4, 16}},
                         {"lora_unet_input_blocks_1_1_proj_in.lora_up.weight", DT_F16, 2, {16, 4}}};
        expect_error(s, "original-SD block names", write_lora("ldm.safetensors", t, 2), 1.0f, "input_blocks",
                     "original-SD");
    }
    {
        struct wt t[] = {{"unet.down_blocks.0.resnets.0.conv1.lora_A.weight", DT_F16, 4, {4, 16, 3, 3}},
                         {"unet.down_blocks.0.resnets.0.conv1.lora.down.weight", DT_F16, 4, {4, 16, 3, 3}},
                         {"unet.down_blocks.0.resnets.0.conv1.lora_B.weight", DT_F16, 4, {16, 4, 1, 1}}};
        expect_error(s, "two down weights for one module", write_lora("dup.safetensors", t, 3), 1.0f, "two down",
                     "lora.down.weight");
    }
    {
        struct wt t[] = {{Q ".lora_down.weight", DT_F16, 2, {4, 16}}, {Q ".lora_up.weight", DT_F16, 2, {16, 4}},
                         {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", DT_F16, 2, {4, 24}},
                         {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", DT_F16, 2, {24, 4}}};
        expect_error(s, "text-encoder modules when only the UNet is given", write_lora("te.safetensors", t, 4), 1.0f,
                     "not be applied", "lora_te_text_model_encoder_layers_0_self_attn_q_proj");
    }
    {
        struct wt t[] = {{Q ".lora_down.weight", DT_F16, 2, {4, 16}}, {Q ".lora_up.weight", DT_F16, 2, {16, 4}}};
        expect_error(s, "a NaN scale", write_lora("ok.safetensors", t, 2), NAN, "scale", NULL);
    }
    expect_error(s, "an empty LoRA file", write_lora("empty.safetensors", NULL, 0), 1.0f, "no tensors", NULL);
    {
        /* the real file cut short: st_open's validation names it */
        size_t len;
        char *all = read_file(conf_path(s, "loras/sd-turbo-tiny-lcm-lora.safetensors"), &len);
        const char *p = tmp_path("truncated.safetensors");
        FILE *fp = fopen(p, "wb");
        if (all && fp) fwrite(all, 1, len / 2, fp);
        if (fp) fclose(fp);
        free(all);
        expect_error(s, "a truncated LoRA file", p, 1.0f, "truncated.safetensors", NULL);
    }
    expect_error(s, "a missing LoRA file", tmp_path("absent.safetensors"), 1.0f, "absent.safetensors", NULL);
}

/* ---- text encoders: the same mechanism with transformers' module names ---- */

/* W' = W + scale * alpha / r * up @ down for one Linear of a text encoder,
 * checked element by element against a direct double computation (the suite
 * has no text-encoder LoRA golden: this checks the routing and the formula). */
static void text_encoder(const struct conf_suite *s, const char *model, const char *comp_name, const char *prefix)
{
    struct os_err err = {{0}};
    struct model_dir *m;
    struct component c;
    if (model_dir_open(conf_path(s, model), &m, &err) ||
        component_open(m, comp_name, "config.json", 1, VARIANT_FP32, &c, &err)) {
        check(0, "open %s/%s %s", model, comp_name, err.msg);
        return;
    }
    const struct tensor *q = component_get(&c, "text_model.encoder.layers.0.self_attn.q_proj.weight");
    const struct tensor *fc = component_get(&c, "text_model.encoder.layers.1.mlp.fc1.weight");
    if (!check(q && fc && q->ndim == 2 && fc->ndim == 2, "%s/%s has q_proj and fc1", model, comp_name)) goto done;
    const int64_t D = q->shape[0], F = fc->shape[0], r = 3;
    /* a few distinct f16 values: k/64 - 1 is exact in f16 */
    uint16_t down[3 * 4096], up[4096 * 3], down2[3 * 4096], up2[4096 * 3], alpha = f32_to_f16(1.5f);
    for (int i = 0; i < 3 * 4096; i++) {
        down[i] = f32_to_f16((float)(i % 97) / 64.0f - 0.75f);
        up[i] = f32_to_f16((float)(i % 89) / 128.0f - 0.3f);
        down2[i] = f32_to_f16((float)(i % 61) / 32.0f - 0.9f);
        up2[i] = f32_to_f16((float)(i % 53) / 256.0f - 0.1f);
    }
    if (!check(D * r <= 3 * 4096 && F * r <= 3 * 4096, "test buffers large enough")) goto done;
    char k1[200], k2[200];
    snprintf(k1, sizeof k1, "%stext_model_encoder_layers_0_self_attn_q_proj", prefix);
    snprintf(k2, sizeof k2, "%stext_model_encoder_layers_1_mlp_fc1", prefix);
    struct st_writer *w = st_writer_new();
    char name[256];
    int64_t sd[2] = {r, D}, su[2] = {D, r}, sd2[2] = {r, D}, su2[2] = {F, r};
    int rc = 0;
    snprintf(name, sizeof name, "%s.lora_down.weight", k1);
    rc |= st_writer_add(w, name, DT_F16, 2, sd, down, &err);
    snprintf(name, sizeof name, "%s.lora_up.weight", k1);
    rc |= st_writer_add(w, name, DT_F16, 2, su, up, &err);
    snprintf(name, sizeof name, "%s.alpha", k1);
    rc |= st_writer_add(w, name, DT_F16, 0, sd, &alpha, &err);
    snprintf(name, sizeof name, "%s.lora_down.weight", k2);
    rc |= st_writer_add(w, name, DT_F16, 2, sd2, down2, &err);
    snprintf(name, sizeof name, "%s.lora_up.weight", k2);
    rc |= st_writer_add(w, name, DT_F16, 2, su2, up2, &err);
    char file[64];
    snprintf(file, sizeof file, "te_%s.safetensors", comp_name);
    const char *path = tmp_path(file);
    rc |= st_writer_write(w, path, &err);
    st_writer_free(w);
    if (!check(rc == 0, "write a %s LoRA %s", prefix, err.msg)) goto done;

    size_t nq = (size_t)tensor_numel(q), nf = (size_t)tensor_numel(fc);
    float *q0 = malloc(nq * sizeof *q0), *f0 = malloc(nf * sizeof *f0);
    tensor_read_f32(q, 0, (int64_t)nq, q0);
    tensor_read_f32(fc, 0, (int64_t)nf, f0);
    const float scale = 0.75f;
    if (check(lora_apply_file(&c, comp_name, path, scale, LORA_MERGE_F32, &err) == 0, "%s LoRA (%s...) applies to %s/%s %s", prefix,
              prefix, model, comp_name, err.msg)) {
        q = component_get(&c, "text_model.encoder.layers.0.self_attn.q_proj.weight");
        fc = component_get(&c, "text_model.encoder.layers.1.mlp.fc1.weight");
        double worst = 0;
        for (int pass = 0; pass < 2; pass++) {
            const struct tensor *t = pass ? fc : q;
            const float *w0 = pass ? f0 : q0;
            const uint16_t *U = pass ? up2 : up, *Dn = pass ? down2 : down;
            const double sc = scale * (pass ? 1.0 : 1.5 / 3.0); /* no alpha on fc1: alpha = r */
            const int64_t out = t->shape[0], in = t->shape[1];
            for (int64_t o = 0; o < out; o++)
                for (int64_t j = 0; j < in; j++) {
                    double d = 0;
                    for (int64_t k = 0; k < r; k++) d += (double)f16_to_f32(U[o * r + k]) * f16_to_f32(Dn[k * in + j]);
                    double want = w0[o * in + j] + sc * d;
                    double got = tensor_get_f32(t, o * in + j);
                    /* three float32 roundings (the product, * scaling, + W), each within
                     * 2^-24 of its operands' scale */
                    double e = fabs(got - want) / (fabs(w0[o * in + j]) + fabs(sc * d) + 1e-30);
                    if (e > worst) worst = e;
                }
        }
        check(worst < 4 * 0x1p-24, "%s/%s: q_proj and fc1 == W + scale * alpha/r * up @ down (worst error %.3g of "
                                   "the terms' scale, limit 4 float32 half-ulps)",
              model,
              comp_name, worst);
        check(count_merged(&c) == 2, "%s/%s: exactly the 2 targeted weights were copied (%zu)", model, comp_name,
              count_merged(&c));
    }
    free(q0);
    free(f0);
done:
    component_close(&c);
    model_dir_close(m);
}

/* LORA_MERGE_STORED on the suite's float16 UNet file: the merged weights
 * stay F16 (half the bytes of the f32 copies), the untouched ones stay in
 * the mapping, and each element is peft's CPU float16 merge,
 * f16(W + f16(delta)): within two f16 roundings of the f32 merge
 * W + delta, i.e. |stored - f32| <= 2^-11 (|delta| + |W + delta|)
 * (2^-11: half an f16 ulp, relative), times 1 + 2^-10 for the float32
 * roundings on both sides (2^-24 relative each), plus 2^-23 for the
 * absolute half-ulps (2^-25) of f16 subnormals. A second LoRA merges into
 * the same f16 buffers in place. */
static void stored_dtype(const struct conf_suite *s, const char *kohya)
{
    struct os_err err = {{0}};
    struct model_dir *m0, *m1, *m2;
    struct component w0, f32m, st;
    if (!check(open_unet_variant(s, "sd-turbo-tiny", VARIANT_FP16, &m0, &w0, &err) == 0,
               "stored: open the fp16 UNet file %s", err.msg))
        return;
    if (!check(open_unet_variant(s, "sd-turbo-tiny", VARIANT_FP16, &m1, &f32m, &err) == 0, "stored: open it again %s",
               err.msg)) {
        close_unet(m0, &w0);
        return;
    }
    if (!check(open_unet_variant(s, "sd-turbo-tiny", VARIANT_FP16, &m2, &st, &err) == 0, "stored: and a third time %s",
               err.msg)) {
        close_unet(m0, &w0);
        close_unet(m1, &f32m);
        return;
    }
    int ok = check(lora_apply_file(&f32m, "unet", kohya, 1.0f, LORA_MERGE_F32, &err) == 0,
                   "stored: f32 merge into the f16 UNet %s", err.msg);
    /* every page of st's mapping resident, so the release below shows */
    volatile unsigned sink = 0;
    for (size_t i = 0; i < st.ntensors; i++) {
        const unsigned char *b = st.tensors[i].data;
        size_t n = (size_t)tensor_numel(&st.tensors[i]) * dtype_size(st.tensors[i].dtype);
        for (size_t j = 0; j < n; j += 512) sink += b[j];
    }
    (void)sink;
    long long file0 = rss_file_current();
    ok = ok && check(lora_apply_file(&st, "unet", kohya, 1.0f, LORA_MERGE_STORED, &err) == 0,
                     "stored: stored-dtype merge into the f16 UNet %s", err.msg);
    long long file1 = rss_file_current();
    if (ok) {
        size_t merged = 0, f16s = 0, bytes_st = 0, bytes_f32 = 0, over = 0;
        double worst = 0;
        for (size_t i = 0; i < st.ntensors; i++) {
            const struct tensor *t = &st.tensors[i];
            if (in_mapping(&st, t->data)) continue;
            merged++;
            f16s += t->dtype == DT_F16;
            const struct tensor *a = component_get(&f32m, t->name), *o = component_get(&w0, t->name);
            if (!a || !o) continue;
            bytes_st += (size_t)tensor_numel(t) * dtype_size(t->dtype);
            bytes_f32 += (size_t)tensor_numel(a) * dtype_size(a->dtype);
            for (int64_t k = 0; k < tensor_numel(t); k++) {
                double got = tensor_get_f32(t, k), want = tensor_get_f32(a, k), w = tensor_get_f32(o, k);
                double tol = 0x1p-11 * (fabs(want - w) + fabs(want)) * (1 + 0x1p-10) + 0x1p-23;
                double e = fabs(got - want) / tol;
                if (e > worst) worst = e;
                over += e > 1;
            }
        }
        check(merged == 197 && f16s == 197, "stored: the 197 merged weights are F16 copies (%zu merged, %zu F16)",
              merged, f16s);
        check(bytes_f32 == 2 * bytes_st, "stored: %zu bytes of copies instead of %zu", bytes_st, bytes_f32);
        /* the originals' pages leave RSS at the merge (rounded out to whole
         * pages, so a little more; the LoRA file was read meanwhile) */
        if (file0 < 0 || file1 < 0)
            check_skip("stored: RssFile not reported here");
        else
            check(file0 - file1 >= (long long)bytes_st * 9 / 10,
                  "stored: the merged originals' pages left RSS (RssFile %lld -> %lld KiB, %zu KiB merged)",
                  file0 / 1024, file1 / 1024, bytes_st / 1024);
        check(over == 0, "stored: every element within two f16 roundings of the f32 merge (worst %.3f of the bound, "
                         "%zu over)", worst, over);
        /* stacking: the second merge reuses the f16 buffers */
        const struct tensor *tq = component_get(&st, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight");
        const void *q = tq ? tq->data : NULL;
        const struct tensor *t0 = st.tensors;
        check(lora_apply_file(&st, "unet", kohya, 0.5f, LORA_MERGE_STORED, &err) == 0 && st.tensors == t0 && tq &&
                  tq->data == q && tq->dtype == DT_F16 && count_merged(&st) == 197,
              "stored: a second LoRA merges into the same F16 buffers %s", err.msg);
    }
    close_unet(m0, &w0);
    close_unet(m1, &f32m);
    close_unet(m2, &st);
}

/* The library's default (onestep_load_params.lora_dtype NULL = "auto"): the
 * reference keeps merged weights in f32, the fast backends in the weights'
 * own dtype. Seen through --dump's lora.fused.* of the fp16 UNet: with
 * "stored" every fused value is an f16 value; with f32 (W + delta rounded
 * to float32) most are not. */
struct fused_count {
    size_t values, not_f16;
};

static void count_fused(void *user, const char *name, enum onestep_dtype dtype, const void *data, int ndim,
                        const int64_t *shape)
{
    struct fused_count *c = user;
    if (strncmp(name, "lora.fused.", 11) != 0 || dtype != ONESTEP_F32) return;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    const float *f = data;
    for (size_t i = 0; i < n; i++) c->not_f16 += f16_to_f32(f32_to_f16(f[i])) != f[i];
    c->values += n;
}

static void default_dtype(const struct conf_suite *s, const char *kohya)
{
    static const char *const backends[] = {"ref", "auto"};
    static const char *const modes[] = {NULL, "f32", "stored"};
    for (int b = 0; b < 2; b++)
        for (int md = 0; md < 3; md++) {
            struct onestep_lora lora = {kohya, 1.0f};
            struct onestep_load_params lp;
            onestep_load_default_params(&lp);
            lp.model = conf_path(s, "sd-turbo-tiny");
            lp.variant = "fp16";
            lp.backend = backends[b];
            lp.loras = &lora;
            lp.nloras = 1;
            lp.lora_dtype = modes[md];
            struct onestep_ctx *ctx = NULL;
            struct onestep_err err = {{0}};
            int loaded = onestep_load(&lp, &ctx, &err) == 0;
            if (!check(loaded, "lora_dtype %s on %s: load%s%s", modes[md] ? modes[md] : "auto", backends[b],
                       loaded ? "" : ": ", loaded ? "" : err.msg))
                continue;
            struct onestep_info info;
            onestep_get_info(ctx, &info);
            if (b == 1 && !strcmp(info.backend, "ref")) {
                check_skip("lora_dtype: no backend other than ref here");
                onestep_free(ctx);
                continue;
            }
            struct onestep_params p;
            onestep_default_params(ctx, &p);
            p.prompt = "a cat";
            p.width = p.height = 64;
            p.skip_stages = 1u << ONESTEP_STAGE_TEXT | 1u << ONESTEP_STAGE_UNET | 1u << ONESTEP_STAGE_VAE;
            struct fused_count c = {0, 0};
            p.dump = count_fused;
            p.dump_user = &c;
            struct onestep_image img = {0};
            int rc = onestep_generate(ctx, &p, &img, &err);
            onestep_image_free(&img);
            onestep_free(ctx);
            int want_f16 = modes[md] ? !strcmp(modes[md], "stored") : b == 1;
            check(rc == 0 && c.values > 0 && (want_f16 ? c.not_f16 == 0 : c.not_f16 > c.values / 2),
                  "lora_dtype %s on %s: merged weights kept as %s (%zu of %zu fused values not f16) %s",
                  modes[md] ? modes[md] : "auto", info.backend, want_f16 ? "f16" : "f32", c.not_f16, c.values,
                  rc ? err.msg : "");
        }
}

/* ---- --lora FILE[:SCALE] ---- */

static void parse_arg(void)
{
    static const struct {
        const char *arg, *path;
        float scale;
    } ok[] = {
        {"lcm.safetensors", "lcm.safetensors", 1.0f},
        {"lcm.safetensors:0.5", "lcm.safetensors", 0.5f},
        {"dir/lcm.safetensors:-1.25", "dir/lcm.safetensors", -1.25f},
        {"a:b/lcm.safetensors", "a:b/lcm.safetensors", 1.0f},
        {"lcm.safetensors:", "lcm.safetensors:", 1.0f},
        {"x:y:2", "x:y", 2.0f},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char *p = NULL;
        float sc = 0;
        struct os_err err = {{0}};
        int rc = lora_parse_arg(ok[i].arg, &p, &sc, &err);
        check(rc == 0 && p && strcmp(p, ok[i].path) == 0 && sc == ok[i].scale, "--lora %s -> \"%s\" at %g (got \"%s\" %g)",
              ok[i].arg, ok[i].path, ok[i].scale, p ? p : "", sc);
        free(p);
    }
    char *p = NULL;
    float sc;
    struct os_err err = {{0}};
    check(lora_parse_arg(":0.5", &p, &sc, &err) != 0 && strstr(err.msg, "FILE"), "--lora :0.5 -> %s", err.msg);
    free(p);
}

int main(void)
{
    struct conf_suite s;
    if (conf_open(&s) != 0) return check_summary();
    if (!check(mkdtemp(tmpdir) != NULL, "temporary directory")) return check_summary();

    const struct json *info = json_get(json_get(s.manifest, "loras"), "sd-turbo-tiny-lcm-lora");
    char kohya_buf[1024];
    const char *kohya = lora_file_path(&s, info);
    if (kohya) kohya = strcpy(kohya_buf, kohya); /* conf_path's buffers are reused */
    g_modules = json_get(info, "modules");
    struct lora *l;
    struct os_err err = {{0}};
    if (check(kohya && g_modules && lora_open(kohya, &l, &err) == 0, "open the suite's kohya LoRA %s", err.msg)) {
        check(lora_nmodules(l, "unet") == (size_t)conf_int(info, "n_modules", -1) && lora_nmodules(l, NULL) == 197 &&
                  g_modules->len == 197,
              "197 UNet modules, as the manifest lists (%zu)", lora_nmodules(l, "unet"));
        lora_close(l);
    }
    for (size_t i = 0; i < conf_ncases(&s); i++) run_case(&s, conf_case(&s, i));
    check(ncases == 2, "the suite's 2 LoRA cases ran (%d)", ncases);
    if (kohya && g_modules) {
        peft_layout(&s, kohya);
        stacking(&s, kohya);
        stored_dtype(&s, kohya);
        default_dtype(&s, kohya);
    }
    bad_files(&s);
    text_encoder(&s, "sd-turbo-tiny", "text_encoder", "lora_te_");
    text_encoder(&s, "sdxl-turbo-tiny", "text_encoder", "lora_te1_");
    text_encoder(&s, "sdxl-turbo-tiny", "text_encoder_2", "lora_te2_");
    parse_arg();

    conf_worst_notes("worst max|diff| / tolerance per tensor family over the LoRA cases:");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) check_note("could not remove %s", tmpdir);
    conf_close(&s);
    return check_summary();
}
