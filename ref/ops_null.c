/* ops_null.c — a backend that computes nothing.
 *
 * The model code runs through it once per stage with a measuring arena
 * (arena.h): every allocation is recorded, no kernel touches memory, so the
 * activation peak of a whole UNet or VAE pass is known in microseconds, before
 * a byte is committed. */
#include "ops.h"

static void *null_alloc(const struct ops *o, size_t bytes)
{
    (void)o;
    (void)bytes;
    return NULL;
}
static void null_free(const struct ops *o, void *p) { (void)o; (void)p; }
static void null_move(const struct ops *o, float *d, const float *s, size_t n) { (void)o; (void)d; (void)s; (void)n; }
static void null_copy2d(const struct ops *o, float *d, size_t a, const float *s, size_t b, size_t r, size_t c)
{
    (void)o; (void)d; (void)a; (void)s; (void)b; (void)r; (void)c;
}
static void null_sync(const struct ops *o) { (void)o; }
static void null_linear(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                        const float *r, int M, int K, int N)
{
    (void)o; (void)y; (void)x; (void)w; (void)b; (void)r; (void)M; (void)K; (void)N;
}
static void null_conv2d(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                        const float *r, const struct conv2d_shape *s)
{
    (void)o; (void)y; (void)x; (void)w; (void)b; (void)r; (void)s;
}
static void null_attention(const struct ops *o, float *out, const float *q, const float *k, const float *v,
                           const struct attn_shape *s)
{
    (void)o; (void)out; (void)q; (void)k; (void)v; (void)s;
}
static void null_embedding(const struct ops *o, float *y, const struct tensor *t, const int32_t *ids, int n, int d)
{
    (void)o; (void)y; (void)t; (void)ids; (void)n; (void)d;
}
static void null_layer_norm(const struct ops *o, float *y, const float *x, const struct tensor *g,
                            const struct tensor *b, int r, int d, float e)
{
    (void)o; (void)y; (void)x; (void)g; (void)b; (void)r; (void)d; (void)e;
}
static void null_group_norm(const struct ops *o, float *y, const float *x, const struct tensor *g,
                            const struct tensor *b, int C, int HW, int G, float e, enum act a)
{
    (void)o; (void)y; (void)x; (void)g; (void)b; (void)C; (void)HW; (void)G; (void)e; (void)a;
}
static void null_softmax(const struct ops *o, float *y, const float *x, int r, int n)
{
    (void)o; (void)y; (void)x; (void)r; (void)n;
}
static void null_act(const struct ops *o, float *y, const float *x, size_t n, enum act a)
{
    (void)o; (void)y; (void)x; (void)n; (void)a;
}
static void null_geglu(const struct ops *o, float *y, const float *x, int r, int d)
{
    (void)o; (void)y; (void)x; (void)r; (void)d;
}
static void null_add(const struct ops *o, float *y, const float *a, const float *b, size_t n)
{
    (void)o; (void)y; (void)a; (void)b; (void)n;
}
static void null_add_channel(const struct ops *o, float *y, const float *x, const float *v, int C, int HW)
{
    (void)o; (void)y; (void)x; (void)v; (void)C; (void)HW;
}
static void null_scale(const struct ops *o, float *y, const float *x, float s, size_t n)
{
    (void)o; (void)y; (void)x; (void)s; (void)n;
}
static void null_transpose(const struct ops *o, float *y, const float *x, int r, int c)
{
    (void)o; (void)y; (void)x; (void)r; (void)c;
}
static void null_upsample(const struct ops *o, float *y, const float *x, int C, int H, int W, int OH, int OW)
{
    (void)o; (void)y; (void)x; (void)C; (void)H; (void)W; (void)OH; (void)OW;
}

static const struct ops null_ops = {
    .name = "null",
    .threads = 1,
    .alloc = null_alloc,
    .free = null_free,
    .upload = null_move,
    .download = null_move,
    .copy2d = null_copy2d,
    .sync = null_sync,
    .linear = null_linear,
    .conv2d = null_conv2d,
    .attention = null_attention,
    .embedding = null_embedding,
    .layer_norm = null_layer_norm,
    .group_norm = null_group_norm,
    .softmax = null_softmax,
    .act = null_act,
    .geglu = null_geglu,
    .add = null_add,
    .add_channel = null_add_channel,
    .scale = null_scale,
    .transpose = null_transpose,
    .upsample_nearest = null_upsample,
};

const struct ops *ops_null(void)
{
    return &null_ops;
}
