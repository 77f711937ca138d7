/* dumpviz — look at the intermediates of a run: a --dump file as PNGs.
 *
 *   ./onestep -m MODEL -p "a cat" --steps 2 --dump run.safetensors --preview run-steps
 *   ./dumpviz run.safetensors --list                 name, shape and statistics of every tensor
 *   ./dumpviz run.safetensors -o run-png             one PNG per picture-like tensor
 *   ./dumpviz run.safetensors -o run-png --only step1.
 *
 * What becomes what:
 *   image.uint8 [1, H, W, 3]                  the image itself
 *   [1, 3, H, W] pixel tensors (vae.decode.output, img2img.image, about [-1, 1])
 *                                             an RGB image, postprocessed as the pipeline does
 *   other [1, C, H, W] (latents, noise, eps, x0, feature maps)
 *                                             a grid of the first --max-channels channels
 *   [1, N, D] and [N, D] (token sequences: hidden states, prompt_embeds)
 *                                             a heat map, one column per token
 * Vectors and scalars are listed, not drawn.
 *
 * Grey levels are linear and shared by all channels of one tensor: mid-grey
 * is 0, white +3·rms, black -3·rms (rms over the whole tensor, printed with
 * each file), so unit-variance noise spans the range and the channels of a
 * latent can be compared with each other. Small maps are enlarged with
 * nearest-neighbour pixels so an 8x8 latent stays readable.
 *
 * The decoded x0 of each step is not in the dump: that needs the VAE, and
 * `onestep --preview DIR` writes it (DIR/step-N.png). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../ref/vae.h"
#include "../weights/safetensors.h"
#include "lib/image_io.h"

#define MIN_TILE 128   /* tiles smaller than this are enlarged */
#define MAX_SIDE 4096  /* pictures larger than this are not drawn */

struct opts {
    const char *out_dir, *only;
    int list, max_channels, scale;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dumpviz DUMP.safetensors (--list | -o DIR) [--only TEXT] [--max-channels N] [--scale N]\n"
            "\n"
            "Draws the tensors of an `onestep --dump` file (or a conformance case file) as PNGs.\n"
            "  --list             print name, dtype, shape and min, max, mean, rms (values if <= 8) of every tensor\n"
            "  -o, --out DIR      write DIR/<tensor name>.png for every tensor that is a picture\n"
            "  --only TEXT        only tensors whose name contains TEXT\n"
            "  --max-channels N   feature maps: draw at most the first N channels (default 16)\n"
            "  --scale N          enlarge every pixel N times (default: small maps to >= %d pixels)\n"
            "Grey: mid-grey = 0, white = +3 rms, black = -3 rms of the tensor.\n",
            MIN_TILE);
}

static int is_float(enum dtype d)
{
    return d == DT_F32 || d == DT_F16 || d == DT_BF16 || d == DT_F64;
}

struct stats {
    double min, max, mean, rms;
    size_t nonfinite;
};

static void stats_of(const struct tensor *t, size_t n, struct stats *s)
{
    double sum = 0, sq = 0;
    size_t k = 0;
    memset(s, 0, sizeof *s);
    s->min = INFINITY;
    s->max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double v = tensor_get_f64(t, (int64_t)i);
        if (!isfinite(v)) {
            s->nonfinite++;
            continue;
        }
        if (v < s->min) s->min = v;
        if (v > s->max) s->max = v;
        sum += v;
        sq += v * v;
        k++;
    }
    if (k) {
        s->mean = sum / (double)k;
        s->rms = sqrt(sq / (double)k);
    } else {
        s->min = s->max = 0;
    }
}

static void shape_str(const struct tensor *t, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
}

/* A grey level for v: mid-grey 0, +-3 rms at the ends; NaN/inf red. */
static void grey(double v, double rms, unsigned char *px)
{
    if (!isfinite(v)) {
        px[0] = 255, px[1] = px[2] = 0;
        return;
    }
    double g = rms > 0 ? 127.5 + 127.5 * v / (3.0 * rms) : 127.5;
    g = g < 0 ? 0 : g > 255 ? 255 : g;
    px[0] = px[1] = px[2] = (unsigned char)lrint(g);
}

struct canvas {
    int w, h;
    unsigned char *rgb;
};

static int canvas_new(struct canvas *c, int w, int h, unsigned char bg)
{
    c->w = w;
    c->h = h;
    c->rgb = malloc((size_t)w * h * 3);
    if (!c->rgb) return -1;
    memset(c->rgb, bg, (size_t)w * h * 3);
    return 0;
}

/* Map rows x cols of values (element (r, c) at base + r*rstride + c) into the
 * canvas at (x0, y0), each value a sy x sx block. */
static void draw(struct canvas *cv, int x0, int y0, const struct tensor *t, size_t base, int rows, int cols,
                 size_t rstride, int sy, int sx, double rms)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            unsigned char px[3];
            grey(tensor_get_f64(t, (int64_t)(base + (size_t)r * rstride + (size_t)c)), rms, px);
            for (int dy = 0; dy < sy; dy++)
                for (int dx = 0; dx < sx; dx++)
                    memcpy(cv->rgb + ((size_t)(y0 + r * sy + dy) * cv->w + (size_t)(x0 + c * sx + dx)) * 3, px, 3);
        }
}

static int enlarge(int side, int scale)
{
    if (scale > 0) return scale;
    int s = 1;
    while (side * s < MIN_TILE) s++;
    return s;
}

static int write_png(const char *dir, const char *name, const struct canvas *cv, const char *what)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.png", dir, name);
    struct os_err e;
    if (png_write_rgb(path, cv->rgb, cv->w, cv->h, "Comment", what, &e)) {
        fprintf(stderr, "dumpviz: %s\n", e.msg);
        return -1;
    }
    printf("%s  %dx%d  %s\n", path, cv->w, cv->h, what);
    return 0;
}

/* [1, 3, H, W] in about [-1, 1], the VAE's side of the pipeline. */
static int is_pixels(const struct tensor *t)
{
    return t->ndim == 4 && t->shape[0] == 1 && t->shape[1] == 3 &&
           (strstr(t->name, "decode.output") || strstr(t->name, "img2img.image"));
}

/* -1 error, 0 drawn, 1 not a picture */
static int render(const struct tensor *t, const struct opts *o)
{
    const size_t n = (size_t)tensor_numel(t);
    struct canvas cv = {0};
    char what[256];
    int rc;
    if (t->dtype == DT_U8 && t->ndim == 4 && t->shape[0] == 1 && t->shape[3] == 3) {
        const int H = (int)t->shape[1], W = (int)t->shape[2];
        if (H > MAX_SIDE || W > MAX_SIDE || canvas_new(&cv, W, H, 0)) return 1;
        memcpy(cv.rgb, t->data, n);
        snprintf(what, sizeof what, "the image");
    } else if (is_float(t->dtype) && is_pixels(t)) {
        const int H = (int)t->shape[2], W = (int)t->shape[3];
        if (H > MAX_SIDE || W > MAX_SIDE || canvas_new(&cv, W, H, 0)) return 1;
        float *x = malloc(n * sizeof *x);
        if (!x) return -1;
        for (size_t i = 0; i < n; i++) x[i] = (float)tensor_get_f64(t, (int64_t)i);
        vae_to_uint8(x, H, W, cv.rgb); /* the pipeline's postprocess: x/2 + 0.5, clamp, round */
        free(x);
        snprintf(what, sizeof what, "RGB: -1 black, +1 white (x/2 + 0.5, as the pipeline)");
    } else if (is_float(t->dtype) && t->ndim == 4 && t->shape[0] == 1) {
        const int C = (int)t->shape[1], H = (int)t->shape[2], W = (int)t->shape[3];
        const int nc = C < o->max_channels ? C : o->max_channels;
        int cols = nc <= 4 ? nc : (int)ceil(sqrt((double)nc));
        if (cols < 4 && nc > 4) cols = 4;
        const int rows = (nc + cols - 1) / cols, s = enlarge(H > W ? H : W, o->scale), gap = 4;
        const long cw = (long)cols * W * s + (long)(cols - 1) * gap, ch = (long)rows * H * s + (long)(rows - 1) * gap;
        if (nc < 1 || cw > MAX_SIDE || ch > MAX_SIDE || canvas_new(&cv, (int)cw, (int)ch, 255)) return 1;
        struct stats st;
        stats_of(t, n, &st);
        for (int c = 0; c < nc; c++)
            draw(&cv, (c % cols) * (W * s + gap), (c / cols) * (H * s + gap), t, (size_t)c * H * W, H, W, (size_t)W,
                 s, s, st.rms);
        snprintf(what, sizeof what, "channels 0..%d of %d, left to right, top to bottom; grey 0 = mid, +-3 rms = %.3g",
                 nc - 1, C, 3 * st.rms);
    } else if (is_float(t->dtype) && ((t->ndim == 3 && t->shape[0] == 1) || (t->ndim == 2 && t->shape[0] > 1))) {
        /* tokens left to right, as the text reads; features top to bottom */
        const int N = (int)t->shape[t->ndim - 2], D = (int)t->shape[t->ndim - 1];
        int sx = o->scale > 0 ? o->scale : 1, sy = sx;
        while (o->scale <= 0 && N * sx < 2 * MIN_TILE) sx++;
        while (o->scale <= 0 && D * sy < MIN_TILE) sy++;
        if ((long)N * sx > MAX_SIDE || (long)D * sy > MAX_SIDE || canvas_new(&cv, N * sx, D * sy, 255)) return 1;
        struct stats st;
        stats_of(t, n, &st);
        for (int r = 0; r < N; r++) /* token r is column r */
            draw(&cv, r * sx, 0, t, (size_t)r * D, D, 1, 1, sy, sx, st.rms);
        snprintf(what, sizeof what, "%d tokens (left to right) x %d features (top to bottom); grey 0 = mid, +-3 rms = %.3g",
                 N, D, 3 * st.rms);
    } else {
        return 1;
    }
    rc = write_png(o->out_dir, t->name, &cv, what);
    free(cv.rgb);
    return rc;
}

static int by_offset(const void *x, const void *y)
{
    const struct tensor *a = *(const struct tensor *const *)x, *b = *(const struct tensor *const *)y;
    const char *pa = a->data, *pb = b->data;
    return pa < pb ? -1 : pa > pb ? 1 : strcmp(a->name, b->name);
}

static int parse_count(const char *flag, const char *v, int lo, int hi)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "dumpviz: %s %s: expected an integer from %d to %d\n", flag, v, lo, hi);
        exit(2);
    }
    return (int)x;
}

int main(int argc, char **argv)
{
    struct opts o = {NULL, NULL, 0, 16, 0};
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--list")) {
            o.list = 1;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out") || !strcmp(a, "--only") || !strcmp(a, "--max-channels") ||
                   !strcmp(a, "--scale")) {
            if (!v) {
                fprintf(stderr, "dumpviz: %s: missing value\n", a);
                return 2;
            }
            i++;
            if (!strcmp(a, "--only")) o.only = v;
            else if (!strcmp(a, "--max-channels")) o.max_channels = parse_count(a, v, 1, 4096);
            else if (!strcmp(a, "--scale")) o.scale = parse_count(a, v, 1, 64);
            else o.out_dir = v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dumpviz: unknown option %s (see dumpviz --help)\n", a);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "dumpviz: one dump file at a time (%s)\n", a);
            return 2;
        }
    }
    if (!path || (!o.list && !o.out_dir)) {
        usage(stderr);
        return 2;
    }

    struct os_err err;
    struct st_file *f;
    if (st_open(path, &f, &err)) {
        fprintf(stderr, "dumpviz: %s\n", err.msg);
        return 1;
    }
    if (o.out_dir && mkdir(o.out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "dumpviz: -o %s: cannot create the directory (%s)\n", o.out_dir, strerror(errno));
        st_close(f);
        return 1;
    }
    /* file order is pipeline order: the dump writer keeps it */
    const struct tensor **order = malloc((f->ntensors ? f->ntensors : 1) * sizeof *order);
    if (!order) {
        st_close(f);
        return 1;
    }
    for (size_t i = 0; i < f->ntensors; i++) order[i] = &f->tensors[i];
    qsort(order, f->ntensors, sizeof *order, by_offset);

    int rc = 0, drawn = 0;
    for (size_t i = 0; i < f->ntensors; i++) {
        const struct tensor *t = order[i];
        if (o.only && !strstr(t->name, o.only)) continue;
        if (o.list) {
            char sb[96];
            shape_str(t, sb, sizeof sb);
            const size_t n = (size_t)tensor_numel(t);
            printf("%-44s %-4s %-20s", t->name, dtype_name(t->dtype), sb);
            if (n <= 8) { /* timesteps, sigmas, scalars: the values themselves */
                for (size_t k = 0; k < n; k++) printf(" %.9g", tensor_get_f64(t, (int64_t)k));
                printf("\n");
            } else {
                struct stats st;
                stats_of(t, n, &st);
                printf(" min %10.4g  max %10.4g  mean %10.4g  rms %10.4g%s\n", st.min, st.max, st.mean, st.rms,
                       st.nonfinite ? "  (non-finite values)" : "");
            }
        }
        if (o.out_dir) {
            int r = render(t, &o);
            if (r < 0) rc = 1;
            if (r == 0) drawn++;
        }
    }
    if (o.out_dir && !drawn && !rc) {
        fprintf(stderr, "dumpviz: nothing to draw in %s%s%s\n", path, o.only ? " matching " : "", o.only ? o.only : "");
        rc = 1;
    }
    free(order);
    st_close(f);
    return rc;
}
