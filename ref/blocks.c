#include "blocks.h"

#include <stdio.h>

#include "load.h"

int resnet_load(struct resnet *r, struct component *c, const char *p, int in_ch, int out_ch, int temb_ch, int groups,
                float eps, float output_scale_factor, struct os_err *err)
{
    if (in_ch % groups || out_ch % groups)
        return os_fail(err, "%s: %s: %d/%d channels are not divisible into %d groups", c->name, p, in_ch, out_ch,
                       groups);
    r->in_ch = in_ch;
    r->out_ch = out_ch;
    r->temb_ch = temb_ch;
    r->groups = groups;
    r->eps = eps;
    r->output_scale_factor = output_scale_factor;
    err->msg[0] = '\0';
    r->norm1_w = load1(c, err, in_ch, "%s.norm1.weight", p);
    r->norm1_b = load1(c, err, in_ch, "%s.norm1.bias", p);
    r->conv1_w = load4(c, err, out_ch, in_ch, 3, 3, "%s.conv1.weight", p);
    r->conv1_b = load1(c, err, out_ch, "%s.conv1.bias", p);
    r->time_emb_proj_w = temb_ch ? load2(c, err, out_ch, temb_ch, "%s.time_emb_proj.weight", p) : NULL;
    r->time_emb_proj_b = temb_ch ? load1(c, err, out_ch, "%s.time_emb_proj.bias", p) : NULL;
    r->norm2_w = load1(c, err, out_ch, "%s.norm2.weight", p);
    r->norm2_b = load1(c, err, out_ch, "%s.norm2.bias", p);
    r->conv2_w = load4(c, err, out_ch, out_ch, 3, 3, "%s.conv2.weight", p);
    r->conv2_b = load1(c, err, out_ch, "%s.conv2.bias", p);
    /* diffusers: use_in_shortcut defaults to in_channels != out_channels */
    r->conv_shortcut_w = in_ch != out_ch ? load4(c, err, out_ch, in_ch, 1, 1, "%s.conv_shortcut.weight", p) : NULL;
    r->conv_shortcut_b = in_ch != out_ch ? load1(c, err, out_ch, "%s.conv_shortcut.bias", p) : NULL;
    return err->msg[0] ? -1 : 0;
}

static struct conv2d_shape conv_shape(int C, int H, int W, int OC, int k, int stride, int pad)
{
    struct conv2d_shape s = {C, H, W, OC, k, k, stride, pad, pad, pad, pad};
    return s;
}

float *resnet_forward(const struct resnet *r, const struct ops *o, struct arena *a, const float *x, int H, int W,
                      const float *temb_silu)
{
    const int HW = H * W;
    float *h = arena_alloc(a, (size_t)r->in_ch * HW);
    o->group_norm(o, h, x, r->norm1_w, r->norm1_b, r->in_ch, HW, r->groups, r->eps, ACT_SILU);
    float *h1 = arena_alloc(a, (size_t)r->out_ch * HW);
    struct conv2d_shape s1 = conv_shape(r->in_ch, H, W, r->out_ch, 3, 1, 1);
    o->conv2d(o, h1, h, r->conv1_w, r->conv1_b, NULL, &s1);
    arena_free(a, h);
    if (r->time_emb_proj_w && temb_silu) {
        float *t = arena_alloc(a, (size_t)r->out_ch);
        o->linear(o, t, temb_silu, r->time_emb_proj_w, r->time_emb_proj_b, NULL, 1, r->temb_ch, r->out_ch);
        o->add_channel(o, h1, h1, t, r->out_ch, HW);
        arena_free(a, t);
    }
    float *h2 = arena_alloc(a, (size_t)r->out_ch * HW);
    o->group_norm(o, h2, h1, r->norm2_w, r->norm2_b, r->out_ch, HW, r->groups, r->eps, ACT_SILU);
    arena_free(a, h1);

    const float *skip = x;
    float *shortcut = NULL;
    if (r->conv_shortcut_w) {
        shortcut = arena_alloc(a, (size_t)r->out_ch * HW);
        struct conv2d_shape ss = conv_shape(r->in_ch, H, W, r->out_ch, 1, 1, 0);
        o->conv2d(o, shortcut, x, r->conv_shortcut_w, r->conv_shortcut_b, NULL, &ss);
        skip = shortcut;
    }
    float *y = arena_alloc(a, (size_t)r->out_ch * HW);
    struct conv2d_shape s2 = conv_shape(r->out_ch, H, W, r->out_ch, 3, 1, 1);
    o->conv2d(o, y, h2, r->conv2_w, r->conv2_b, skip, &s2);
    arena_free(a, h2);
    arena_free(a, shortcut);
    /* (input + h) / output_scale_factor; every real config has 1.0 */
    if (r->output_scale_factor != 1.0f) o->scale(o, y, y, 1.0f / r->output_scale_factor, (size_t)r->out_ch * HW);
    return y;
}

int downsample_load(struct downsample *d, struct component *c, const char *p, int ch, int pad_symmetric,
                    struct os_err *err)
{
    d->ch = ch;
    d->pad_symmetric = pad_symmetric;
    err->msg[0] = '\0';
    d->conv_w = load4(c, err, ch, ch, 3, 3, "%s.conv.weight", p);
    d->conv_b = load1(c, err, ch, "%s.conv.bias", p);
    return err->msg[0] ? -1 : 0;
}

float *downsample_forward(const struct downsample *d, const struct ops *o, struct arena *a, const float *x, int H,
                          int W, int *OH, int *OW)
{
    struct conv2d_shape s = conv_shape(d->ch, H, W, d->ch, 3, 2, 1);
    if (!d->pad_symmetric) { /* F.pad(x, (0, 1, 0, 1)) then padding 0 */
        s.pad_top = s.pad_left = 0;
        s.pad_bottom = s.pad_right = 1;
    }
    *OH = conv2d_out_h(&s);
    *OW = conv2d_out_w(&s);
    float *y = arena_alloc(a, (size_t)d->ch * *OH * *OW);
    o->conv2d(o, y, x, d->conv_w, d->conv_b, NULL, &s);
    return y;
}

int upsample_load(struct upsample *u, struct component *c, const char *p, int ch, struct os_err *err)
{
    u->ch = ch;
    err->msg[0] = '\0';
    u->conv_w = load4(c, err, ch, ch, 3, 3, "%s.conv.weight", p);
    u->conv_b = load1(c, err, ch, "%s.conv.bias", p);
    return err->msg[0] ? -1 : 0;
}

float *upsample_forward(const struct upsample *u, const struct ops *o, struct arena *a, const float *x, int H, int W,
                        int OH, int OW)
{
    float *up = arena_alloc(a, (size_t)u->ch * OH * OW);
    o->upsample_nearest(o, up, x, u->ch, H, W, OH, OW);
    float *y = arena_alloc(a, (size_t)u->ch * OH * OW);
    struct conv2d_shape s = conv_shape(u->ch, OH, OW, u->ch, 3, 1, 1);
    o->conv2d(o, y, up, u->conv_w, u->conv_b, NULL, &s);
    arena_free(a, up);
    return y;
}

int conv_load(struct conv *cv, struct component *c, const char *name, int in_ch, int out_ch, int k,
              struct os_err *err)
{
    cv->in_ch = in_ch;
    cv->out_ch = out_ch;
    cv->k = k;
    err->msg[0] = '\0';
    cv->w = load4(c, err, out_ch, in_ch, k, k, "%s.weight", name);
    cv->b = load1(c, err, out_ch, "%s.bias", name);
    return err->msg[0] ? -1 : 0;
}

float *conv_forward(const struct conv *cv, const struct ops *o, struct arena *a, const float *x, int H, int W)
{
    struct conv2d_shape s = conv_shape(cv->in_ch, H, W, cv->out_ch, cv->k, 1, cv->k / 2);
    float *y = arena_alloc(a, (size_t)cv->out_ch * H * W);
    o->conv2d(o, y, x, cv->w, cv->b, NULL, &s);
    return y;
}
