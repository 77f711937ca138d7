/* Single-file checkpoints (weights/single_file.c) against diffusers
 * directories, both written by the synthesiser behind mkmodel
 * (tools/lib/synth.c):
 *   - tiny-sd and tiny-sdxl in both layouts (f16, f32, bf16): every
 *     component opened from the single file has exactly the diffusers
 *     directory's tensor names, shapes, dtypes and bytes (views into the
 *     fused q/k/v, the 1x1-conv VAE attention, the transposed projection);
 *   - writing is deterministic and leaves nothing behind when it fails;
 *   - bad single files (unknown family, SD 1.x, refiner, a diffusers
 *     component file, missing / misshapen / unexplained tensors) give clear
 *     errors. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tools/lib/synth.h"
#include "../weights/arch.h"
#include "../weights/model_dir.h"
#include "../weights/single_file.h"
#include "lib/check.h"

static char tmpdir[64];

static char *tmp_path(const char *name)
{
    static char buf[8][256];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

struct counts {
    char names[4][32];
    uint64_t params[4];
    int n;
};

static void on_report(void *ctx, const char *component, uint64_t params, size_t tensors)
{
    (void)tensors;
    struct counts *c = ctx;
    if (c->n < 4) {
        snprintf(c->names[c->n], sizeof c->names[0], "%s", component);
        c->params[c->n] = params;
    }
    c->n++;
}

/* Where the diffusers layouts copy vocab.json / merges.txt from: the real
 * files if the shared data is there, else stand-ins (the weights do not
 * depend on them). */
static const char *vocab_dir;

static int make(const char *model, enum synth_layout layout, enum dtype dt, uint64_t seed, const char *out,
                struct counts *counts, struct os_err *err)
{
    struct synth_opts o = {0};
    o.vocab_dir = vocab_dir;
    o.model = model;
    o.layout = layout;
    o.dtype = dt;
    o.seed = seed;
    o.out = out;
    return synth_model(&o, counts ? on_report : NULL, counts, err);
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = read_file(a, &na), *y = read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* Open one component both ways and compare every tensor. */
static void compare_component(struct model_dir *dir, struct model_dir *single, const char *name, const char *what)
{
    struct component a, b;
    struct os_err err = {{0}};
    if (!check(component_open(dir, name, "config.json", 1, VARIANT_AUTO, &a, &err) == 0, "%s: open %s from the "
               "directory%s%s", what, name, err.msg[0] ? ": " : "", err.msg))
        return;
    if (!check(component_open(single, name, "config.json", 1, VARIANT_AUTO, &b, &err) == 0,
               "%s: open %s from the single file%s%s", what, name, err.msg[0] ? ": " : "", err.msg)) {
        component_close(&a);
        return;
    }
    size_t bad = 0;
    const char *first = NULL;
    int same_count = a.ntensors == b.ntensors;
    for (size_t i = 0; same_count && i < a.ntensors; i++) {
        const struct tensor *x = &a.tensors[i], *y = &b.tensors[i];
        int ok = strcmp(x->name, y->name) == 0 && x->dtype == y->dtype && x->ndim == y->ndim;
        for (int d = 0; ok && d < x->ndim; d++) ok = x->shape[d] == y->shape[d];
        ok = ok && memcmp(x->data, y->data, (size_t)tensor_numel(x) * dtype_size(x->dtype)) == 0;
        if (!ok) {
            bad++;
            if (!first) first = x->name;
        }
    }
    check(same_count && bad == 0, "%s %s: single file = directory, %zu tensors, names, shapes, dtypes and bytes (%zu "
          "vs %zu tensors, %zu differ%s%s)",
          what, name, a.ntensors, a.ntensors, b.ntensors, bad, first ? ", first " : "", first ? first : "");
    component_close(&b);
    component_close(&a);
}

static void round_trip(const char *model, enum dtype dt, const char *tag, const char *const *comps, size_t ncomps)
{
    char dir_name[64], file_name[64];
    snprintf(dir_name, sizeof dir_name, "%s-%s", model, tag);
    snprintf(file_name, sizeof file_name, "%s-%s.safetensors", model, tag);
    const char *dir = tmp_path(dir_name), *file = tmp_path(file_name);
    struct os_err err = {{0}};
    struct counts c1 = {0}, c2 = {0};
    int rc1 = make(model, SYNTH_DIFFUSERS, dt, 7, dir, &c1, &err);
    check(rc1 == 0, "mkmodel %s diffusers %s%s%s", model, tag, rc1 ? ": " : "", rc1 ? err.msg : "");
    int rc2 = make(model, SYNTH_SINGLE, dt, 7, file, &c2, &err);
    check(rc2 == 0, "mkmodel %s single %s%s%s", model, tag, rc2 ? ": " : "", rc2 ? err.msg : "");
    if (rc1 || rc2) return;
    check(c1.n == (int)ncomps && c2.n == (int)ncomps && memcmp(c1.params, c2.params, sizeof c1.params) == 0,
          "%s: both layouts report %d components with the same counts", model, c1.n);
    struct model_dir *md = NULL, *ms = NULL;
    if (!check(model_open(dir, NULL, &md, &err) == 0, "model_open(%s)%s%s", dir, err.msg[0] ? ": " : "", err.msg))
        return;
    if (!check(model_open(file, NULL, &ms, &err) == 0, "model_open(%s)%s%s", file, err.msg[0] ? ": " : "",
               err.msg)) {
        model_dir_close(md);
        return;
    }
    check(ms->single && strcmp(ms->pipeline, md->pipeline) == 0 && ms->is_sdxl == md->is_sdxl &&
              single_file_family(ms) == (md->is_sdxl ? KM_FAMILY_SDXL : KM_FAMILY_SD2),
          "%s: the single file opens as a %s (%s family)", model, ms->pipeline, km_family_name(single_file_family(ms)));
    check(strstr(single_file_config_dir(ms), model) != NULL, "%s: configs chosen from the file's metadata (%s)", model,
          single_file_config_dir(ms));
    for (size_t i = 0; i < ncomps; i++) compare_component(md, ms, comps[i], tag);

    /* scheduler and tokenizer configs open the same way */
    struct component sa, sb;
    int ok = component_open(ms, "scheduler", "scheduler_config.json", 0, VARIANT_AUTO, &sb, &err) == 0;
    ok = ok && component_open(md, "scheduler", "scheduler_config.json", 0, VARIANT_AUTO, &sa, &err) == 0;
    if (ok) {
        ok = strcmp(json_get(sa.config, "_class_name")->str, json_get(sb.config, "_class_name")->str) == 0;
        component_close(&sa);
        component_close(&sb);
    }
    check(ok, "%s: scheduler config opens from the single file too (%s)", model, err.msg);
    struct model_tokenizer_files tf;
    if (clip_tokenizer_dir()) {
        int rc = model_tokenizer_files(ms, "tokenizer", &tf, &err);
        check(rc == 0 && path_exists(tf.vocab_json) && path_exists(tf.merges_txt) && path_exists(tf.tokenizer_config),
              "%s: single-file tokenizer files found (vocab %s)%s", model, rc ? "-" : tf.vocab_json, rc ? err.msg : "");
        if (rc == 0) model_tokenizer_files_free(&tf);
    }
    int rc = model_tokenizer_files(md, "tokenizer", &tf, &err);
    check(rc == 0 && path_exists(tf.vocab_json) && path_exists(tf.merges_txt) && path_exists(tf.special_tokens_map),
          "%s: directory tokenizer files present", model);
    if (rc == 0) model_tokenizer_files_free(&tf);
    {
        struct component x;
        rc = component_open(ms, "tokenizer", NULL, 1, VARIANT_AUTO, &x, &err);
        check(rc == -1 && strstr(err.msg, "no weights for \"tokenizer\""), "%s: weights of a non-weight component "
              "refused: %s", model, err.msg);
    }
    model_dir_close(ms);
    model_dir_close(md);
}

/* ---- rewriting a single file into a bad one ---- */

struct edit {
    const char *drop;        /* leave this tensor out */
    const char *reshape;     /* give this tensor another (same-size) shape: [numel] */
    const char *add;         /* add a small extra tensor */
    const char *rename_from; /* rename every key with this prefix ... */
    const char *rename_to;   /* ... to this one */
    const char *squeeze;     /* store this [C, C, 1, 1] tensor as [C, C] */
    const char *meta;        /* onestep_config metadata value (NULL: keep) */
};

static int rewrite_file(const char *src, const char *dst, const struct edit *e, struct os_err *err);

static int rewrite(const char *src, const char *dst, const struct edit *e, struct os_err *err)
{
    int rc = rewrite_file(src, dst, e, err);
    if (rc) check(0, "rewrite %s into %s: %s", src, dst, err->msg);
    return rc;
}

static int rewrite_file(const char *src, const char *dst, const struct edit *e, struct os_err *err)
{
    struct st_file *f;
    if (st_open(src, &f, err)) return -1;
    struct st_writer *w = st_writer_new();
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < f->ntensors; i++) {
        const struct tensor *t = &f->tensors[i];
        if (e->drop && strcmp(t->name, e->drop) == 0) continue;
        char name[300];
        size_t np = e->rename_from ? strlen(e->rename_from) : 0;
        if (np && strncmp(t->name, e->rename_from, np) == 0) snprintf(name, sizeof name, "%s%s", e->rename_to, t->name + np);
        else snprintf(name, sizeof name, "%s", t->name);
        int64_t shape[8];
        int ndim = t->ndim;
        for (int d = 0; d < ndim; d++) shape[d] = t->shape[d];
        if (e->reshape && strcmp(t->name, e->reshape) == 0) {
            shape[0] = tensor_numel(t);
            ndim = 1;
        }
        if (e->squeeze && strcmp(t->name, e->squeeze) == 0) ndim = 2;
        rc = st_writer_add(w, name, t->dtype, ndim, shape, t->data, err);
    }
    if (rc == 0 && e->add) {
        int64_t one = 1;
        uint16_t v = 0;
        rc = st_writer_add(w, e->add, DT_F16, 1, &one, &v, err);
    }
    const char *meta = e->meta ? e->meta : st_meta(f, SINGLE_FILE_CONFIG_META);
    if (rc == 0 && meta) rc = st_writer_meta(w, SINGLE_FILE_CONFIG_META, meta, err);
    if (rc == 0) rc = st_writer_write(w, dst, err);
    st_writer_free(w);
    st_close(f);
    return rc;
}

/* Open `path` and its component `comp` (NULL: just the model); expect the
 * failure message to contain `needle`. */
static void expect_bad(const char *path, const char *comp, const char *needle, const char *what)
{
    struct os_err err = {{0}};
    struct model_dir *m = NULL;
    int rc = model_open(path, NULL, &m, &err);
    if (rc == 0 && comp) {
        struct component c;
        rc = component_open(m, comp, "config.json", 1, VARIANT_AUTO, &c, &err);
        if (rc == 0) component_close(&c);
    }
    model_dir_close(m);
    check(rc == -1 && strstr(err.msg, needle) != NULL, "%s: \"%s\"", what, err.msg);
}

static void expect_good_same(const char *path, const char *good, const char *comp, const char *what)
{
    struct os_err err = {{0}};
    struct model_dir *a = NULL, *b = NULL;
    if (model_open(path, NULL, &a, &err) || model_open(good, NULL, &b, &err)) {
        check(0, "%s: %s", what, err.msg);
        model_dir_close(a);
        return;
    }
    compare_component(b, a, comp, what);
    model_dir_close(a);
    model_dir_close(b);
}

static void write_keys(const char *path, const char *const *names)
{
    struct st_writer *w = st_writer_new();
    struct os_err err = {{0}};
    int64_t one = 1;
    float v = 0;
    for (; *names; names++) st_writer_add(w, *names, DT_F32, 1, &one, &v, &err);
    st_writer_write(w, path, &err);
    st_writer_free(w);
}

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d) closedir(d);
    return d ? n : -1;
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/onestep-single-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        check(0, "mkdtemp");
        return check_summary();
    }
    if (!path_exists("weights/configs/tiny-sd/model_index.json")) {
        check(0, "weights/configs/tiny-sd missing (run from the repository root)");
        return check_summary();
    }
    vocab_dir = clip_tokenizer_dir();
    if (!vocab_dir) {
        static char stand_in[128];
        snprintf(stand_in, sizeof stand_in, "%s/vocab", tmpdir);
        mkdir(stand_in, 0777);
        char p[256];
        snprintf(p, sizeof p, "%s/vocab.json", stand_in);
        FILE *f = fopen(p, "w");
        if (f) fclose(f);
        snprintf(p, sizeof p, "%s/merges.txt", stand_in);
        f = fopen(p, "w");
        if (f) fclose(f);
        vocab_dir = stand_in;
    }
    static const char *const sd[] = {"unet", "vae", "text_encoder"};
    static const char *const xl[] = {"unet", "vae", "text_encoder", "text_encoder_2"};
    round_trip("tiny-sd", DT_F16, "f16", sd, 3);
    round_trip("tiny-sdxl", DT_F32, "f32", xl, 4);
    round_trip("tiny-sdxl", DT_BF16, "bf16", xl, 4);

    struct os_err err = {{0}};
    /* determinism */
    char good[256];
    snprintf(good, sizeof good, "%s", tmp_path("tiny-sd-f16.safetensors"));
    int rc = make("tiny-sd", SYNTH_SINGLE, DT_F16, 7, tmp_path("again.safetensors"), NULL, &err);
    check(rc == 0 && same_file(good, tmp_path("again.safetensors")), "same arguments give byte-identical files");
    rc = make("tiny-sd", SYNTH_SINGLE, DT_F16, 8, tmp_path("seed8.safetensors"), NULL, &err);
    check(rc == 0 && !same_file(good, tmp_path("seed8.safetensors")), "another seed gives other bytes");

    /* failures leave nothing behind */
    rc = make("tiny-sd", SYNTH_SINGLE, DT_F16, 7, good, NULL, &err);
    check(rc == -1 && strstr(err.msg, "already exists"), "an existing output is refused: %s", err.msg);
    rc = make("tiny-sd", SYNTH_DIFFUSERS, DT_F16, 7, tmp_path("nodir/x"), NULL, &err);
    check(rc == -1 && strstr(err.msg, "does not exist"), "an output in a missing directory is refused: %s", err.msg);
    rc = make("no-such-model", SYNTH_DIFFUSERS, DT_F16, 7, tmp_path("x"), NULL, &err);
    check(rc == -1 && strstr(err.msg, "no-such-model"), "an unknown model is refused: %s", err.msg);
    {
        char sub[256];
        snprintf(sub, sizeof sub, "%s/interrupt", tmpdir);
        mkdir(sub, 0777);
        volatile sig_atomic_t stop = 1;
        struct synth_opts o = {0};
        o.model = "tiny-sdxl";
        o.dtype = DT_F16;
        o.interrupted = &stop;
        char out[300];
        snprintf(out, sizeof out, "%s/m", sub);
        o.out = out;
        rc = synth_model(&o, NULL, NULL, &err);
        check(rc == -1 && strstr(err.msg, "interrupted") && dir_entries(sub) == 0,
              "an interrupted diffusers write leaves nothing: %s", err.msg);
        o.layout = SYNTH_SINGLE;
        rc = synth_model(&o, NULL, NULL, &err);
        check(rc == -1 && strstr(err.msg, "interrupted") && dir_entries(sub) == 0,
              "an interrupted single-file write leaves nothing: %s", err.msg);
    }

    /* bad single files */
    {
        static const char *const sd1[] = {"model.diffusion_model.out.2.bias",
                                          "cond_stage_model.transformer.text_model.final_layer_norm.bias", NULL};
        static const char *const refiner[] = {"model.diffusion_model.label_emb.0.0.weight",
                                              "conditioner.embedders.0.model.text_projection", NULL};
        static const char *const unknown[] = {"model.diffusion_model.out.2.bias", "something.else", NULL};
        static const char *const nothing[] = {"a.b", NULL};
        write_keys(tmp_path("sd1.safetensors"), sd1);
        write_keys(tmp_path("refiner.safetensors"), refiner);
        write_keys(tmp_path("unknown.safetensors"), unknown);
        write_keys(tmp_path("nothing.safetensors"), nothing);
    }
    expect_bad(tmp_path("sd1.safetensors"), NULL, "SD 1.x", "SD 1.x refused");
    expect_bad(tmp_path("refiner.safetensors"), NULL, "refiner", "SDXL refiner refused");
    expect_bad(tmp_path("unknown.safetensors"), NULL, "unknown checkpoint family", "unknown family refused");
    expect_bad(tmp_path("nothing.safetensors"), NULL, "no model.diffusion_model", "unrelated safetensors refused");
    expect_bad(tmp_path("tiny-sd-f16/unet/diffusion_pytorch_model.fp16.safetensors"), NULL, "one component",
               "a diffusers component file refused");
    expect_bad(tmp_path("missing.safetensors"), NULL, "not found", "a missing path");
    {
        FILE *f = fopen(tmp_path("trunc.safetensors"), "wb");
        if (f) {
            fwrite("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":", 1, 13, f);
            fclose(f);
        }
    }
    expect_bad(tmp_path("trunc.safetensors"), NULL, "trunc.safetensors", "a truncated file");

    struct edit e;
    memset(&e, 0, sizeof e);
    e.drop = "model.diffusion_model.input_blocks.4.0.skip_connection.weight";
    if (rewrite(good, tmp_path("drop.safetensors"), &e, &err) == 0)
        expect_bad(tmp_path("drop.safetensors"), "unet", "missing tensor \"model.diffusion_model.input_blocks.4.0.skip_connection.weight\"",
                   "a missing tensor named");
    memset(&e, 0, sizeof e);
    e.drop = "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight";
    if (rewrite(good, tmp_path("dropqkv.safetensors"), &e, &err) == 0)
        expect_bad(tmp_path("dropqkv.safetensors"), "text_encoder", "resblocks.1.attn.in_proj_weight",
                   "a missing fused in_proj named");
    memset(&e, 0, sizeof e);
    e.reshape = "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight";
    if (rewrite(good, tmp_path("shape.safetensors"), &e, &err) == 0)
        expect_bad(tmp_path("shape.safetensors"), "vae", "has shape [32]", "a misshapen tensor named with both shapes");
    memset(&e, 0, sizeof e);
    e.add = "model.diffusion_model.input_blocks.1.1.transformer_blocks.1.norm1.weight";
    if (rewrite(good, tmp_path("extra.safetensors"), &e, &err) == 0)
        expect_bad(tmp_path("extra.safetensors"), "unet", "does not explain", "an unexplained tensor (deeper transformer)");
    memset(&e, 0, sizeof e);
    e.add = "cond_stage_model.model.transformer.resblocks.5.ln_1.weight";
    if (rewrite(good, tmp_path("extra2.safetensors"), &e, &err) == 0)
        expect_bad(tmp_path("extra2.safetensors"), "text_encoder", "does not explain",
                   "a second extra text layer is not the known penultimate cut");
    memset(&e, 0, sizeof e);
    e.meta = "../../etc";
    if (rewrite(good, tmp_path("meta.safetensors"), &e, &err) == 0)
        expect_bad(tmp_path("meta.safetensors"), NULL, "plain folder name", "a config name with a path refused");
    memset(&e, 0, sizeof e);
    e.meta = "sdxl-turbo";
    if (rewrite(good, tmp_path("meta2.safetensors"), &e, &err) == 0)
        expect_bad(tmp_path("meta2.safetensors"), NULL, "describes a StableDiffusionXLPipeline",
                   "configs of the other family refused");
    memset(&e, 0, sizeof e);
    e.meta = "sd-turbo";
    if (rewrite(good, tmp_path("meta3.safetensors"), &e, &err) == 0)
        expect_bad(tmp_path("meta3.safetensors"), "unet", "has shape", "full-size configs on a tiny file: shape error");

    /* accepted variants of the original layout */
    memset(&e, 0, sizeof e);
    e.rename_from = "cond_stage_model.model.";
    e.rename_to = "conditioner.embedders.0.model.";
    if (rewrite(good, tmp_path("sgm.safetensors"), &e, &err) == 0)
        expect_good_same(tmp_path("sgm.safetensors"), tmp_path("tiny-sd-f16"), "text_encoder",
                         "SD 2.x text tower under sgm's conditioner.embedders.0.model.");
    memset(&e, 0, sizeof e);
    e.squeeze = "first_stage_model.decoder.mid.attn_1.v.weight";
    if (rewrite(good, tmp_path("squeezed.safetensors"), &e, &err) == 0)
        expect_good_same(tmp_path("squeezed.safetensors"), tmp_path("tiny-sd-f16"), "vae",
                         "VAE attention stored as [C, C] (already squeezed)");

    /* explicit config directory and the configs-dir override */
    {
        struct model_open_opts opts = {0};
        opts.config = "weights/configs/tiny-sd";
        struct model_dir *m = NULL;
        rc = model_open(tmp_path("meta3.safetensors"), &opts, &m, &err);
        struct component c;
        int rc2 = rc == 0 ? component_open(m, "unet", "config.json", 1, VARIANT_AUTO, &c, &err) : -1;
        check(rc2 == 0, "an explicit config directory wins over the file's metadata%s%s", rc2 ? ": " : "",
              rc2 ? err.msg : "");
        if (rc2 == 0) component_close(&c);
        model_dir_close(m);
        struct model_open_opts o2 = {0};
        o2.configs_dir = tmp_path("no-configs-here");
        m = NULL;
        rc = model_open(good, &o2, &m, &err);
        check(rc == -1 && strstr(err.msg, "no model_index.json"), "a missing configs directory is a clear error: %s",
              err.msg);
        model_dir_close(m);
        struct model_open_opts o3 = {0};
        o3.vocab_dir = tmpdir;
        rc = model_open(good, &o3, &m, &err);
        check(rc == -1 && strstr(err.msg, "vocab.json"), "a vocab directory without the files is refused: %s",
              err.msg);
    }

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) check_note("could not remove %s", tmpdir);
    return check_summary();
}
