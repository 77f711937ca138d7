/* component_release_pages (weights/model_dir.c) really lowers RSS, for a
 * diffusers directory (the component's own file mapping) and for a
 * single-file checkpoint (the component's tensors inside the one mapping),
 * and leaves every byte readable afterwards:
 *   - touching a component's tensors raises RssFile by about their size,
 *     releasing it lowers RssFile by about their size again;
 *   - in a single file the other components' pages stay resident;
 *   - after release the tensors read back the same bytes (private read-only
 *     mappings fault them back in from the file), including OpenCLIP's
 *     text_projection, the one tensor a single file holds as a private
 *     malloc'd copy (madvise on it would zero it: the range check keeps it out).
 * Linux-only measurements (/proc/self/status); skipped elsewhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tools/lib/rss.h"
#include "../tools/lib/synth.h"
#include "../weights/model_dir.h"
#include "lib/check.h"

static char tmpdir[64];

static size_t component_bytes(const struct component *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->ntensors; i++) n += (size_t)tensor_numel(&c->tensors[i]) * dtype_size(c->tensors[i].dtype);
    return n;
}

/* FNV-1a over every byte of every tensor: reads (so faults in) all pages. */
static uint64_t component_hash(const struct component *c)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < c->ntensors; i++) {
        const unsigned char *p = c->tensors[i].data;
        size_t n = (size_t)tensor_numel(&c->tensors[i]) * dtype_size(c->tensors[i].dtype);
        for (size_t j = 0; j < n; j++) h = (h ^ p[j]) * 1099511628211ull;
    }
    return h;
}

static int open_comp(struct model_dir *m, const char *name, struct component *c, const char *what)
{
    struct os_err err = {{0}};
    return check(component_open(m, name, "config.json", 1, VARIANT_AUTO, c, &err) == 0, "%s: open %s%s%s", what,
                 name, err.msg[0] ? ": " : "", err.msg);
}

/* The drop must be the component's size within a few pages per end of each
 * of its spans (shared boundary pages) plus noise from the process itself. */
static int about(long long drop, size_t bytes)
{
    const long long slack = 64 * 1024;
    return drop >= (long long)bytes - slack && drop <= (long long)bytes + slack;
}

static void run(const char *path, const char *what, int sdxl)
{
    struct os_err err = {{0}};
    struct model_dir *m = NULL;
    if (!check(model_open(path, NULL, &m, &err) == 0, "%s: model_open%s%s", what, err.msg[0] ? ": " : "", err.msg))
        return;
    struct component unet, vae, te;
    const char *te_name = sdxl ? "text_encoder_2" : "text_encoder";
    if (!open_comp(m, "unet", &unet, what)) goto close_m;
    if (!open_comp(m, "vae", &vae, what)) goto close_unet;
    if (!open_comp(m, te_name, &te, what)) goto close_vae;

    size_t ub = component_bytes(&unet), vb = component_bytes(&vae), tb = component_bytes(&te);
    /* start from nothing resident, so touching shows the component's size */
    component_release_pages(&unet);
    component_release_pages(&vae);
    component_release_pages(&te);
    long long r0 = rss_file_current();
    uint64_t hu = component_hash(&unet);
    long long r1 = rss_file_current();
    uint64_t hv = component_hash(&vae), ht = component_hash(&te);
    long long r2 = rss_file_current();
    check(about(r1 - r0, ub), "%s: reading the unet (%zu bytes) raises RssFile by %lld", what, ub, r1 - r0);
    check(about(r2 - r1, vb + tb), "%s: reading the vae and %s (%zu bytes) raises RssFile by %lld", what, te_name,
          vb + tb, r2 - r1);

    component_release_pages(&unet);
    long long r3 = rss_file_current();
    check(about(r2 - r3, ub), "%s: releasing the unet lowers RssFile by %lld (its %zu bytes)", what, r2 - r3, ub);
    component_release_pages(&vae);
    long long r4 = rss_file_current();
    check(about(r3 - r4, vb), "%s: releasing the vae lowers RssFile by %lld (its %zu bytes), the %s stays", what,
          r3 - r4, vb, te_name);
    component_release_pages(&te);
    long long r5 = rss_file_current();
    check(about(r4 - r5, tb), "%s: releasing the %s lowers RssFile by %lld (its %zu bytes)", what, te_name, r4 - r5,
          tb);

    check(component_hash(&unet) == hu && component_hash(&vae) == hv && component_hash(&te) == ht,
          "%s: after release every tensor reads back the same bytes", what);
    if (sdxl) {
        const struct tensor *p = component_get(&te, "text_projection.weight");
        int inside = 0;
        if (m->single) {
            const struct st_file *f = te.view_of;
            inside = f && (const unsigned char *)p->data >= f->map &&
                     (const unsigned char *)p->data < f->map + f->map_len;
        }
        check(p && (!m->single || !inside), "%s: text_projection.weight is %s", what,
              m->single ? "a private copy outside the mapping (it was read back intact above)" : "in its file");
    }
    component_close(&te);
close_vae:
    component_close(&vae);
close_unet:
    component_close(&unet);
close_m:
    model_dir_close(m);
}

static int make(const char *model, enum synth_layout layout, enum dtype dt, const char *vocab, const char *out)
{
    struct synth_opts o = {0};
    o.model = model;
    o.layout = layout;
    o.dtype = dt;
    o.vocab_dir = vocab;
    o.out = out;
    struct os_err err = {{0}};
    int rc = synth_model(&o, NULL, NULL, &err);
    check(rc == 0, "mkmodel %s %s -> %s%s%s", model, layout == SYNTH_SINGLE ? "single" : "diffusers", out,
          rc ? ": " : "", rc ? err.msg : "");
    return rc;
}

int main(void)
{
    if (rss_file_current() < 0) {
        check_skip("no RssFile in /proc/self/status: page release cannot be measured here");
        return check_summary();
    }
    if (!path_exists("weights/configs/tiny-sdxl/model_index.json")) {
        check(0, "weights/configs/tiny-sdxl missing (run from the repository root)");
        return check_summary();
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/onestep-release-XXXXXX");
    if (!check(mkdtemp(tmpdir) != NULL, "mkdtemp")) return check_summary();
    /* the tokenizer files do not matter here: empty stand-ins */
    char vocab[128], path[256];
    snprintf(vocab, sizeof vocab, "%s/vocab", tmpdir);
    mkdir(vocab, 0777);
    static const char *const files[] = {"vocab.json", "merges.txt"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", vocab, files[i]);
        FILE *f = fopen(path, "w");
        if (f) fclose(f);
    }
    /* f32 so the tiny components span a few MB each: well above the slack */
    static const struct {
        const char *model, *name;
        enum synth_layout layout;
        int sdxl;
    } cases[] = {
        {"tiny-sdxl", "tiny-sdxl.safetensors", SYNTH_SINGLE, 1},
        {"tiny-sdxl", "tiny-sdxl", SYNTH_DIFFUSERS, 1},
        {"tiny-sd", "tiny-sd.safetensors", SYNTH_SINGLE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, cases[i].name);
        if (make(cases[i].model, cases[i].layout, DT_F32, vocab, path)) continue;
        char what[96];
        snprintf(what, sizeof what, "%s (%s)", cases[i].model,
                 cases[i].layout == SYNTH_SINGLE ? "single file" : "diffusers directory");
        run(path, what, cases[i].sdxl);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) check_note("could not remove %s", tmpdir);
    return check_summary();
}
