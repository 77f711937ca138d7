/* clip.h — the CLIP text encoders of SD 2.x / SD-Turbo and SDXL.
 *
 * One model, driven by the component's config.json (transformers'
 * CLIPTextConfig): token + position embeddings, `layers` pre-LayerNorm
 * transformer blocks with causal self-attention, a final LayerNorm, and for
 * CLIPTextModelWithProjection a bias-free projection of the pooled token.
 *
 *   ids ─► token_embedding + position_embedding          = hidden_states[0]
 *        ─► for each layer: x += attn(ln1(x)); x += mlp(ln2(x)) = hidden_states[i]
 *        ─► final_layer_norm                               = last_hidden
 *        ─► row at the pooling position                   = pooled
 *        ─► text_projection (with projection only)         = text_embeds
 *
 * The forward returns every layer's hidden state, so the pipeline takes what
 * it needs:
 *   SD 2.x / SD-Turbo: prompt_embeds = last_hidden (final-layer-normed).
 *   SDXL: prompt_embeds = concat(hidden_states[layers-1] of text_encoder,
 *         hidden_states[layers-1] of text_encoder_2) along features, no final
 *         norm; pooled_prompt_embeds = text_embeds of text_encoder_2.
 *
 * Typical use (the arena protocol of arena.h):
 *   struct clip m;  clip_load(&m, &component, &err);   (component outlives m)
 *   struct arena a; arena_init_measure(&a);
 *   clip_forward(&m, ops_null(), &a, ids, 77, &out, &err);   measure
 *   size_t peak = a.peak; arena_destroy(&a);
 *   arena_init(&a, o, peak, &err);
 *   clip_forward(&m, o, &a, ids, 77, &out, &err);            real run
 */
#ifndef ONESTEP_CLIP_H
#define ONESTEP_CLIP_H

#include <stdint.h>

#include "../weights/json.h"
#include "../weights/model_dir.h"
#include "arena.h"
#include "common.h"
#include "dump.h"
#include "ops.h"

/* The config keys, renamed. Absent keys take CLIPTextConfig's defaults (as
 * transformers does): vocab 49408, hidden 512, intermediate 2048, 12 layers,
 * 8 heads, 77 positions, quick_gelu, eps 1e-5, projection 512, eos 49407. */
struct clip_config {
    int hidden;          /* hidden_size */
    int heads;           /* num_attention_heads (divides hidden) */
    int layers;          /* num_hidden_layers */
    int intermediate;    /* intermediate_size */
    int vocab;           /* vocab_size */
    int max_pos;         /* max_position_embeddings: the longest id sequence */
    int projection_dim;  /* projection_dim: length of text_embeds */
    int eos_token_id;    /* eos_token_id: chooses the pooling rule, see clip_pool_index */
    float eps;           /* layer_norm_eps */
    enum act act;        /* hidden_act: "gelu" -> ACT_GELU (exact erf), "quick_gelu" -> ACT_QUICK_GELU */
    int with_projection; /* architectures names CLIPTextModelWithProjection (clip_load also
                            sets it when the checkpoint has text_projection.weight) */
};

/* Read and check a text encoder config.json. `what` names it in messages. */
int clip_config_parse(const struct json *config, const char *what, struct clip_config *cfg, struct os_err *err);

/* One encoder layer; field names are the checkpoint keys under
 * text_model.encoder.layers.{i}. */
struct clip_layer {
    const struct tensor *layer_norm1_weight, *layer_norm1_bias;
    const struct tensor *q_proj_weight, *q_proj_bias; /* self_attn.* */
    const struct tensor *k_proj_weight, *k_proj_bias;
    const struct tensor *v_proj_weight, *v_proj_bias;
    const struct tensor *out_proj_weight, *out_proj_bias;
    const struct tensor *layer_norm2_weight, *layer_norm2_bias;
    const struct tensor *fc1_weight, *fc1_bias; /* mlp.* */
    const struct tensor *fc2_weight, *fc2_bias;
};

struct clip {
    struct clip_config cfg;
    char name[64]; /* component name ("text_encoder", "text_encoder_2"): the prefix of dump names */
    /* text_model.embeddings.* */
    const struct tensor *token_embedding;    /* [vocab, hidden] */
    const struct tensor *position_embedding; /* [max_pos, hidden] */
    struct clip_layer *layers;               /* cfg.layers of them */
    const struct tensor *final_layer_norm_weight, *final_layer_norm_bias;
    const struct tensor *text_projection; /* [projection_dim, hidden], NULL without projection */
    int32_t *position_ids;                /* 0 .. max_pos-1: the ids the position table is read with */
};

/* Parse c->config and bind every tensor of c (shape-checked against the
 * config; weights f32, f16 or bf16). A tensor the config does not explain is
 * an error, except text_model.embeddings.position_ids (a buffer some
 * exporters keep; positions are always 0..n-1 here). The tensors point into
 * c's mapping: c must stay open while m is used. */
int clip_load(struct clip *m, struct component *c, struct os_err *err);
void clip_free(struct clip *m);

/* Host buffers for the results; any may be NULL. Shapes are those of the
 * conformance manifest without the batch dimension. */
struct clip_out {
    float *hidden_states; /* (layers + 1) x n x hidden: hidden_states[0..layers] */
    float *last_hidden;   /* n x hidden, after final_layer_norm */
    float *pooled;        /* hidden: last_hidden at clip_pool_index() */
    float *text_embeds;   /* projection_dim (models with projection only; else left untouched) */
    /* Optional: every result also goes to this hook as "<name>.hidden_states.<i>",
     * "<name>.last_hidden_state", "<name>.pooler_output" (without projection: the
     * upstream CLIPTextModelWithProjection output has none) and
     * "<name>.text_embeds", with the manifest's shapes ([1, n, hidden] ...). */
    const struct dump_hook *dump;
};

/* Encode n token ids (1 <= n <= max_pos, each in [0, vocab)). `out` may be
 * NULL (nothing is returned; fine for the measuring pass). Activations
 * come from `a` and are all freed before returning; the sequence of arena
 * allocations depends only on the model and n, so a measuring run on
 * ops_null() sizes the real one. Bad ids or n: -1 and a message, before
 * anything is allocated. */
int clip_forward(const struct clip *m, const struct ops *o, struct arena *a, const int32_t *ids, int n,
                 const struct clip_out *out, struct os_err *err);

/* The token whose final hidden state is pooled, as transformers 4.46's
 * CLIPTextTransformer chooses it: configs carrying the legacy eos_token_id 2
 * (SD 2.x, SDXL) pool at argmax(ids) — the first occurrence of the largest
 * id, which is the first end-of-text 49407 of a tokenized prompt; other
 * configs pool at the first id equal to eos_token_id (position 0 if there is
 * none, as torch's argmax of an all-zero mask). */
int clip_pool_index(const struct clip_config *cfg, const int32_t *ids, int n);

#endif
