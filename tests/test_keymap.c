/* weights/keymap: single-file (original Stability) keys <-> diffusers keys.
 *
 * 1. Known pairs, written out by hand from the original checkpoints' module
 *    layout (ldm / sgm openaimodel.UNetModel, AutoencoderKL, OpenCLIP) and
 *    diffusers' conversion (loaders/single_file_utils.py), both directions.
 * 2. For every tensor the full-size and tiny configs imply: diffusers ->
 *    original -> diffusers is the identity, and no two diffusers tensors
 *    share an original key except OpenCLIP's fused q/k/v.
 * 3. The tensors only the original files have (extras). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../weights/keymap.h"
#include "lib/check.h"

static struct json *cfg_of(const char *model, const char *comp)
{
    char path[256];
    snprintf(path, sizeof path, "weights/configs/%s/%s/config.json", model, comp);
    struct os_err err = {{0}};
    struct json *j = json_parse_file(path, 1 << 20, &err);
    if (!j) check(0, "read %s: %s", path, err.msg);
    return j;
}

static const struct km_component *comp_of(enum km_family f, const char *name)
{
    size_t n;
    const struct km_component *c = km_family(f, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].name, name) == 0) return &c[i];
    return NULL;
}

static void pair(enum km_family f, const char *model, const char *comp, const char *diffusers, const char *original,
                 enum km_xform xform, int part)
{
    const struct km_component *c = comp_of(f, comp);
    struct json *cfg = cfg_of(model, comp);
    if (!c || !cfg) {
        json_free(cfg);
        return;
    }
    struct os_err err = {{0}};
    struct km_target t;
    int rc = km_to_original(c, cfg, diffusers, &t, &err);
    check(rc == 0 && strcmp(t.original, original) == 0 && t.xform == xform && (xform != KM_QKV_PART || t.part == part),
          "%s %s: %s -> %s%s%s", model, comp, diffusers, rc ? "(error) " : t.original, rc ? err.msg : "",
          rc == 0 && strcmp(t.original, original) ? " WRONG" : "");
    char back[KM_NAME_MAX];
    rc = km_to_diffusers(c, cfg, original, back, sizeof back, &err);
    /* a fused in_proj maps back to its q part */
    char want[KM_NAME_MAX];
    snprintf(want, sizeof want, "%s", diffusers);
    char *kv = strstr(want, ".k_proj.");
    if (!kv) kv = strstr(want, ".v_proj.");
    if (kv) kv[1] = 'q';
    check(rc == 0 && strcmp(back, want) == 0, "%s %s: %s -> %s", model, comp, original, rc ? err.msg : back);
    json_free(cfg);
}

/* ---- round trip over whole configs ---- */

struct trip {
    const struct km_component *c;
    const struct json *cfg;
    size_t n, bad, fused;
    char first[1024];
    char (*originals)[KM_NAME_MAX];
    size_t cap;
};

static int trip_visit(void *ctx, const struct arch_param *p, struct os_err *err)
{
    struct trip *t = ctx;
    struct km_target k;
    char back[KM_NAME_MAX], want[KM_NAME_MAX];
    int ok = km_to_original(t->c, t->cfg, p->name, &k, err) == 0 &&
             km_to_diffusers(t->c, t->cfg, k.original, back, sizeof back, err) == 0;
    snprintf(want, sizeof want, "%s", p->name);
    if (ok && k.xform == KM_QKV_PART) {
        char *s = strstr(want, k.part == 1 ? ".k_proj." : ".v_proj.");
        if (k.part && s) s[1] = 'q';
        t->fused += k.part != 0;
    }
    ok = ok && strcmp(back, want) == 0 && !km_is_extra(t->c, t->cfg, k.original);
    if (!ok && !t->first[0]) snprintf(t->first, sizeof t->first, "%s -> %s -> %s", p->name, k.original, back);
    t->bad += !ok;
    if (t->n < t->cap) snprintf(t->originals[t->n], KM_NAME_MAX, "%s", k.original);
    t->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

struct extras {
    size_t n;
};

static int count_extra(void *ctx, const struct km_extra *e, struct os_err *err)
{
    (void)e;
    (void)err;
    ((struct extras *)ctx)->n++;
    return 0;
}

static void round_trip(enum km_family f, const char *model, const char *comp, size_t want_original)
{
    const struct km_component *c = comp_of(f, comp);
    struct json *cfg = cfg_of(model, comp);
    if (!c || !cfg) {
        json_free(cfg);
        return;
    }
    struct trip t = {c, cfg, 0, 0, 0, "", NULL, 4096};
    t.originals = calloc(t.cap, KM_NAME_MAX);
    struct os_err err = {{0}};
    int rc = t.originals ? arch_walk(cfg, comp, trip_visit, &t, &err) : -1;
    size_t distinct = 0;
    if (rc == 0 && t.n <= t.cap) {
        qsort(t.originals, t.n, KM_NAME_MAX, cmp_str);
        for (size_t i = 0; i < t.n; i++) distinct += i == 0 || strcmp(t.originals[i], t.originals[i - 1]) != 0;
    }
    struct extras ex = {0};
    if (rc == 0) rc = km_extras(c, cfg, count_extra, &ex, &err);
    check(rc == 0 && t.bad == 0 && distinct == t.n - t.fused,
          "%s %s: %zu tensors round-trip through the original names (%zu bad%s%s), %zu distinct original keys",
          model, comp, t.n, t.bad, t.first[0] ? ": " : "", t.first, distinct);
    if (want_original)
        check(distinct + ex.n == want_original, "%s %s: the original file holds %zu keys (%zu mapped + %zu extra)",
              model, comp, want_original, distinct, ex.n);
    free(t.originals);
    json_free(cfg);
}

static void extra_is(enum km_family f, const char *model, const char *comp, const char *original, int want)
{
    const struct km_component *c = comp_of(f, comp);
    struct json *cfg = cfg_of(model, comp);
    if (c && cfg)
        check(km_is_extra(c, cfg, original) == want, "%s %s: %s is %s", model, comp, original,
              want ? "an extra of the original file" : "not an extra");
    json_free(cfg);
}

#define SD KM_FAMILY_SD2, "sd-turbo"
#define XL KM_FAMILY_SDXL, "sdxl-turbo"
#define U "model.diffusion_model."
#define V "first_stage_model."

int main(void)
{
    /* UNet, SD 2.x: 4 levels (CrossAttn x3, plain last), 2 resnets per block */
    pair(SD, "unet", "conv_in.weight", U "input_blocks.0.0.weight", KM_SAME, 0);
    pair(SD, "unet", "time_embedding.linear_2.bias", U "time_embed.2.bias", KM_SAME, 0);
    pair(SD, "unet", "down_blocks.0.resnets.0.norm1.weight", U "input_blocks.1.0.in_layers.0.weight", KM_SAME, 0);
    pair(SD, "unet", "down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight",
         U "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight", KM_SAME, 0);
    pair(SD, "unet", "down_blocks.0.downsamplers.0.conv.weight", U "input_blocks.3.0.op.weight", KM_SAME, 0);
    pair(SD, "unet", "down_blocks.1.resnets.0.conv_shortcut.weight", U "input_blocks.4.0.skip_connection.weight",
         KM_SAME, 0);
    pair(SD, "unet", "down_blocks.3.resnets.1.time_emb_proj.bias", U "input_blocks.11.0.emb_layers.1.bias", KM_SAME, 0);
    pair(SD, "unet", "mid_block.resnets.0.conv1.weight", U "middle_block.0.in_layers.2.weight", KM_SAME, 0);
    pair(SD, "unet", "mid_block.attentions.0.proj_in.weight", U "middle_block.1.proj_in.weight", KM_SAME, 0);
    pair(SD, "unet", "mid_block.resnets.1.conv2.weight", U "middle_block.2.out_layers.3.weight", KM_SAME, 0);
    pair(SD, "unet", "up_blocks.0.resnets.2.norm2.bias", U "output_blocks.2.0.out_layers.0.bias", KM_SAME, 0);
    pair(SD, "unet", "up_blocks.0.upsamplers.0.conv.weight", U "output_blocks.2.1.conv.weight", KM_SAME, 0);
    pair(SD, "unet", "up_blocks.1.attentions.0.norm.weight", U "output_blocks.3.1.norm.weight", KM_SAME, 0);
    pair(SD, "unet", "up_blocks.1.upsamplers.0.conv.bias", U "output_blocks.5.2.conv.bias", KM_SAME, 0);
    pair(SD, "unet", "up_blocks.3.resnets.2.conv_shortcut.weight", U "output_blocks.11.0.skip_connection.weight",
         KM_SAME, 0);
    pair(SD, "unet", "up_blocks.3.attentions.2.proj_out.weight", U "output_blocks.11.1.proj_out.weight", KM_SAME, 0);
    pair(SD, "unet", "conv_norm_out.weight", U "out.0.weight", KM_SAME, 0);
    pair(SD, "unet", "conv_out.bias", U "out.2.bias", KM_SAME, 0);
    /* UNet, SDXL: 3 levels (plain first), depth-2 and -10 transformers, label_emb */
    pair(XL, "unet", "add_embedding.linear_1.weight", U "label_emb.0.0.weight", KM_SAME, 0);
    pair(XL, "unet", "add_embedding.linear_2.bias", U "label_emb.0.2.bias", KM_SAME, 0);
    pair(XL, "unet", "down_blocks.0.downsamplers.0.conv.bias", U "input_blocks.3.0.op.bias", KM_SAME, 0);
    pair(XL, "unet", "down_blocks.1.attentions.1.transformer_blocks.1.ff.net.0.proj.weight",
         U "input_blocks.5.1.transformer_blocks.1.ff.net.0.proj.weight", KM_SAME, 0);
    pair(XL, "unet", "down_blocks.2.attentions.1.transformer_blocks.9.attn1.to_out.0.weight",
         U "input_blocks.8.1.transformer_blocks.9.attn1.to_out.0.weight", KM_SAME, 0);
    pair(XL, "unet", "up_blocks.0.upsamplers.0.conv.weight", U "output_blocks.2.2.conv.weight", KM_SAME, 0);
    pair(XL, "unet", "up_blocks.1.attentions.2.transformer_blocks.1.norm3.bias",
         U "output_blocks.5.1.transformer_blocks.1.norm3.bias", KM_SAME, 0);
    pair(XL, "unet", "up_blocks.2.resnets.2.conv_shortcut.weight", U "output_blocks.8.0.skip_connection.weight",
         KM_SAME, 0);
    /* VAE */
    pair(SD, "vae", "encoder.conv_norm_out.weight", V "encoder.norm_out.weight", KM_SAME, 0);
    pair(SD, "vae", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight", V "encoder.down.1.block.0.nin_shortcut.weight",
         KM_SAME, 0);
    pair(SD, "vae", "encoder.down_blocks.2.downsamplers.0.conv.bias", V "encoder.down.2.downsample.conv.bias", KM_SAME,
         0);
    pair(SD, "vae", "encoder.mid_block.attentions.0.to_q.weight", V "encoder.mid.attn_1.q.weight", KM_CONV1X1, 0);
    pair(SD, "vae", "encoder.mid_block.attentions.0.to_q.bias", V "encoder.mid.attn_1.q.bias", KM_SAME, 0);
    pair(SD, "vae", "decoder.mid_block.attentions.0.to_out.0.weight", V "decoder.mid.attn_1.proj_out.weight",
         KM_CONV1X1, 0);
    pair(SD, "vae", "decoder.mid_block.attentions.0.group_norm.bias", V "decoder.mid.attn_1.norm.bias", KM_SAME, 0);
    pair(SD, "vae", "decoder.mid_block.resnets.1.norm2.weight", V "decoder.mid.block_2.norm2.weight", KM_SAME, 0);
    pair(SD, "vae", "decoder.up_blocks.0.resnets.0.conv1.weight", V "decoder.up.3.block.0.conv1.weight", KM_SAME, 0);
    pair(SD, "vae", "decoder.up_blocks.2.upsamplers.0.conv.weight", V "decoder.up.1.upsample.conv.weight", KM_SAME, 0);
    pair(SD, "vae", "decoder.up_blocks.3.resnets.0.conv_shortcut.bias", V "decoder.up.0.block.0.nin_shortcut.bias",
         KM_SAME, 0);
    pair(SD, "vae", "post_quant_conv.weight", V "post_quant_conv.weight", KM_SAME, 0);
    /* Text encoders */
    pair(SD, "text_encoder", "text_model.embeddings.token_embedding.weight", "cond_stage_model.model.token_embedding.weight",
         KM_SAME, 0);
    pair(SD, "text_encoder", "text_model.embeddings.position_embedding.weight",
         "cond_stage_model.model.positional_embedding", KM_SAME, 0);
    pair(SD, "text_encoder", "text_model.encoder.layers.5.self_attn.q_proj.weight",
         "cond_stage_model.model.transformer.resblocks.5.attn.in_proj_weight", KM_QKV_PART, 0);
    pair(SD, "text_encoder", "text_model.encoder.layers.5.self_attn.k_proj.weight",
         "cond_stage_model.model.transformer.resblocks.5.attn.in_proj_weight", KM_QKV_PART, 1);
    pair(SD, "text_encoder", "text_model.encoder.layers.22.self_attn.v_proj.bias",
         "cond_stage_model.model.transformer.resblocks.22.attn.in_proj_bias", KM_QKV_PART, 2);
    pair(SD, "text_encoder", "text_model.encoder.layers.0.self_attn.out_proj.weight",
         "cond_stage_model.model.transformer.resblocks.0.attn.out_proj.weight", KM_SAME, 0);
    pair(SD, "text_encoder", "text_model.encoder.layers.0.layer_norm2.bias",
         "cond_stage_model.model.transformer.resblocks.0.ln_2.bias", KM_SAME, 0);
    pair(SD, "text_encoder", "text_model.encoder.layers.0.mlp.fc2.bias",
         "cond_stage_model.model.transformer.resblocks.0.mlp.c_proj.bias", KM_SAME, 0);
    pair(SD, "text_encoder", "text_model.final_layer_norm.weight", "cond_stage_model.model.ln_final.weight", KM_SAME, 0);
    pair(XL, "text_encoder", "text_model.encoder.layers.11.mlp.fc1.weight",
         "conditioner.embedders.0.transformer.text_model.encoder.layers.11.mlp.fc1.weight", KM_SAME, 0);
    pair(XL, "text_encoder_2", "text_model.encoder.layers.31.mlp.fc1.weight",
         "conditioner.embedders.1.model.transformer.resblocks.31.mlp.c_fc.weight", KM_SAME, 0);
    pair(XL, "text_encoder_2", "text_projection.weight", "conditioner.embedders.1.model.text_projection", KM_TRANSPOSE,
         0);

    /* Whole configs. Key counts of the original files: UNet 686 / 1680 and
     * VAE 248 tensors as in diffusers; OpenCLIP-H for SD 2.x: 24 resblocks of
     * 12 tensors + token and positional embedding, ln_final (2),
     * text_projection, logit_scale = 294; CLIP-L 196 + position_ids = 197;
     * bigG 32 * 12 + 6 = 390. */
    round_trip(SD, "unet", 686);
    round_trip(SD, "vae", 248);
    round_trip(SD, "text_encoder", 294);
    round_trip(XL, "unet", 1680);
    round_trip(XL, "vae", 248);
    round_trip(XL, "text_encoder", 197);
    round_trip(XL, "text_encoder_2", 390);
    round_trip(KM_FAMILY_SD2, "tiny-sd", "unet", 0);
    round_trip(KM_FAMILY_SD2, "tiny-sd", "vae", 0);
    round_trip(KM_FAMILY_SD2, "tiny-sd", "text_encoder", 0);
    round_trip(KM_FAMILY_SDXL, "tiny-sdxl", "unet", 0);
    round_trip(KM_FAMILY_SDXL, "tiny-sdxl", "text_encoder", 0);
    round_trip(KM_FAMILY_SDXL, "tiny-sdxl", "text_encoder_2", 0);

    extra_is(SD, "text_encoder", "cond_stage_model.model.transformer.resblocks.23.ln_1.weight", 1);
    extra_is(SD, "text_encoder", "cond_stage_model.model.transformer.resblocks.24.ln_1.weight", 0);
    extra_is(SD, "text_encoder", "cond_stage_model.model.text_projection", 1);
    extra_is(SD, "text_encoder", "cond_stage_model.model.logit_scale", 1);
    extra_is(XL, "text_encoder_2", "conditioner.embedders.1.model.text_projection", 0);
    extra_is(XL, "text_encoder_2", "conditioner.embedders.1.model.transformer.resblocks.32.ln_1.weight", 0);
    extra_is(XL, "text_encoder_2", "conditioner.embedders.1.model.logit_scale", 1);
    extra_is(XL, "text_encoder", "conditioner.embedders.0.transformer.text_model.embeddings.position_ids", 1);
    extra_is(XL, "unet", "model.diffusion_model.label_emb.0.0.weight", 0);

    /* Keys the table does not know are errors, not guesses. */
    {
        const struct km_component *c = comp_of(KM_FAMILY_SD2, "unet");
        struct json *cfg = cfg_of("sd-turbo", "unet");
        struct os_err err = {{0}};
        char buf[KM_NAME_MAX];
        struct km_target t;
        if (c && cfg) {
            check(km_to_diffusers(c, cfg, U "input_blocks.1.2.weight", buf, sizeof buf, &err) == -1 &&
                      strstr(err.msg, "input_blocks.1.2.weight"),
                  "unknown original key refused: %s", err.msg);
            check(km_to_diffusers(c, cfg, U "output_blocks.99.0.in_layers.0.weight", buf, sizeof buf, &err) == -1,
                  "out-of-range block refused: %s", err.msg);
            check(km_to_original(c, cfg, "time_embedding.cond_proj.weight", &t, &err) == -1 &&
                      strstr(err.msg, "cond_proj"),
                  "diffusers key without an original refused: %s", err.msg);
        }
        json_free(cfg);
    }
    return check_summary();
}
