/* ops_count.c — see ops_count.h. Every kernel ignores its buffers and adds
 * its arithmetic to the struct flop_count that o->state points to. */
#include "ops_count.h"

#include <string.h>

static struct flop_count *C(const struct ops *o)
{
    struct flop_count *c = o->state;
    c->calls++;
    return c;
}

static void *count_alloc(const struct ops *o, size_t bytes)
{
    (void)o;
    (void)bytes;
    return NULL; /* only measuring arenas are used with this table */
}
static void count_free(const struct ops *o, void *p) { (void)o; (void)p; }
static void count_move(const struct ops *o, float *d, const float *s, size_t n)
{
    (void)d; (void)s; (void)n;
    C(o);
}
static void count_copy2d(const struct ops *o, float *d, size_t a, const float *s, size_t b, size_t r, size_t n)
{
    (void)d; (void)a; (void)s; (void)b; (void)r; (void)n;
    C(o);
}
static void count_sync(const struct ops *o) { (void)o; }

static void count_linear(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                         const float *r, int M, int K, int N)
{
    (void)y; (void)x; (void)w; (void)b; (void)r;
    C(o)->linear += 2.0 * M * K * N;
}

static void count_conv2d(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
                         const float *r, const struct conv2d_shape *s)
{
    (void)y; (void)x; (void)w; (void)b; (void)r;
    C(o)->conv += 2.0 * s->OC * s->C * s->KH * s->KW * conv2d_out_h(s) * conv2d_out_w(s);
}

static void count_attention(const struct ops *o, float *out, const float *q, const float *k, const float *v,
                            const struct attn_shape *s)
{
    (void)out; (void)q; (void)k; (void)v;
    double pairs = 0;
    if (s->causal) {
        /* row i sees min(i + 1, nk) keys */
        for (int i = 0; i < s->nq; i++) pairs += i + 1 < s->nk ? i + 1 : s->nk;
    } else {
        pairs = (double)s->nq * s->nk;
    }
    C(o)->attention += 4.0 * s->heads * pairs * s->head_dim;
}

static void count_embedding(const struct ops *o, float *y, const struct tensor *t, const int32_t *ids, int n, int d)
{
    (void)y; (void)t; (void)ids; (void)n; (void)d;
    C(o);
}

static void count_layer_norm(const struct ops *o, float *y, const float *x, const struct tensor *g,
                             const struct tensor *b, int rows, int dim, float e)
{
    (void)y; (void)x; (void)g; (void)b; (void)e;
    C(o)->elementwise += 5.0 * rows * dim;
}

static void count_group_norm(const struct ops *o, float *y, const float *x, const struct tensor *g,
                             const struct tensor *b, int ch, int HW, int G, float e, enum act a)
{
    (void)y; (void)x; (void)g; (void)b; (void)G; (void)e;
    C(o)->elementwise += (a == ACT_NONE ? 5.0 : 6.0) * ch * HW;
}

static void count_softmax(const struct ops *o, float *y, const float *x, int rows, int n)
{
    (void)y; (void)x;
    C(o)->elementwise += 3.0 * rows * n;
}

static void count_act(const struct ops *o, float *y, const float *x, size_t n, enum act a)
{
    (void)y; (void)x; (void)a;
    C(o)->elementwise += (double)n;
}

static void count_geglu(const struct ops *o, float *y, const float *x, int rows, int dim)
{
    (void)y; (void)x;
    C(o)->elementwise += 2.0 * rows * dim;
}

static void count_add(const struct ops *o, float *y, const float *a, const float *b, size_t n)
{
    (void)y; (void)a; (void)b;
    C(o)->elementwise += (double)n;
}

static void count_add_channel(const struct ops *o, float *y, const float *x, const float *v, int ch, int HW)
{
    (void)y; (void)x; (void)v;
    C(o)->elementwise += (double)ch * HW;
}

static void count_scale(const struct ops *o, float *y, const float *x, float s, size_t n)
{
    (void)y; (void)x; (void)s;
    C(o)->elementwise += (double)n;
}

static void count_transpose(const struct ops *o, float *y, const float *x, int r, int c)
{
    (void)y; (void)x; (void)r; (void)c;
    C(o);
}

static void count_upsample(const struct ops *o, float *y, const float *x, int ch, int H, int W, int OH, int OW)
{
    (void)y; (void)x; (void)ch; (void)H; (void)W; (void)OH; (void)OW;
    C(o);
}

double flop_count_matmul(const struct flop_count *c)
{
    return c->conv + c->linear + c->attention;
}

void ops_count_init(struct ops *o, struct flop_count *c)
{
    memset(o, 0, sizeof *o);
    o->name = "count";
    o->state = c;
    o->threads = 1;
    o->alloc = count_alloc;
    o->free = count_free;
    o->upload = count_move;
    o->download = count_move;
    o->copy2d = count_copy2d;
    o->sync = count_sync;
    o->linear = count_linear;
    o->conv2d = count_conv2d;
    o->attention = count_attention;
    o->embedding = count_embedding;
    o->layer_norm = count_layer_norm;
    o->group_norm = count_group_norm;
    o->softmax = count_softmax;
    o->act = count_act;
    o->geglu = count_geglu;
    o->add = count_add;
    o->add_channel = count_add_channel;
    o->scale = count_scale;
    o->transpose = count_transpose;
    o->upsample_nearest = count_upsample;
}
