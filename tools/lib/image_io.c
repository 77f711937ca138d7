#include "image_io.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../../weights/atomic_file.h"

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBIW_ZLIB_COMPRESS png_zlib_compress /* real zlib: smaller files than stb's own deflate */
static unsigned char *png_zlib_compress(unsigned char *data, int len, int *out_len, int quality);
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif

static unsigned char *png_zlib_compress(unsigned char *data, int len, int *out_len, int quality)
{
    (void)quality;
    uLongf cap = compressBound((uLong)len);
    unsigned char *out = STBIW_MALLOC(cap);
    if (!out) return NULL;
    if (compress2(out, &cap, data, (uLong)len, 6) != Z_OK) {
        STBIW_FREE(out);
        return NULL;
    }
    *out_len = (int)cap;
    return out;
}

struct membuf {
    unsigned char *p;
    size_t n, cap;
    int oom;
};

static void mem_put(struct membuf *m, const void *data, size_t n)
{
    if (m->oom) return;
    if (m->n + n > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 65536;
        while (cap < m->n + n) cap *= 2;
        unsigned char *p = realloc(m->p, cap);
        if (!p) {
            m->oom = 1;
            return;
        }
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->n, data, n);
    m->n += n;
}

static void stb_sink(void *ctx, void *data, int size)
{
    mem_put(ctx, data, (size_t)size);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* UTF-8 -> Latin-1 if every code point is < 256; returns malloc'd or NULL. */
static char *to_latin1(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    size_t o = 0;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            out[o++] = (char)c;
            i++;
        } else if ((c & 0xe0) == 0xc0 && i + 1 < n && (c & 0x1f) <= 0x03 && ((unsigned char)s[i + 1] & 0xc0) == 0x80) {
            out[o++] = (char)(((c & 0x1f) << 6) | ((unsigned char)s[i + 1] & 0x3f));
            i += 2;
        } else {
            free(out);
            return NULL;
        }
    }
    out[o] = '\0';
    return out;
}

/* A text chunk: tEXt "key\0text" or iTXt "key\0" + flag 0 + method 0 + "" \0 "" \0 + UTF-8 text. */
static int text_chunk(struct membuf *m, const char *key, const char *text)
{
    char *latin = to_latin1(text);
    const char *type = latin ? "tEXt" : "iTXt";
    const char *body = latin ? latin : text;
    size_t klen = strlen(key), blen = strlen(body);
    size_t extra = latin ? 1 : 5; /* NUL after key; iTXt adds flag, method and two empty strings */
    size_t dlen = klen + extra + blen;
    unsigned char *chunk = malloc(12 + dlen);
    if (!chunk) {
        free(latin);
        return -1;
    }
    put_be32(chunk, (uint32_t)dlen);
    memcpy(chunk + 4, type, 4);
    memcpy(chunk + 8, key, klen);
    memset(chunk + 8 + klen, 0, extra);
    memcpy(chunk + 8 + klen + extra, body, blen);
    uLong crc = crc32(0L, chunk + 4, (uInt)(4 + dlen));
    put_be32(chunk + 8 + dlen, (uint32_t)crc);
    mem_put(m, chunk, 12 + dlen);
    free(chunk);
    free(latin);
    return 0;
}

int png_write_rgb(const char *path, const unsigned char *rgb, int w, int h, const char *key, const char *text,
                  struct os_err *err)
{
    struct membuf png = {0}, out = {0};
    if (!stbi_write_png_to_func(stb_sink, &png, w, h, 3, rgb, w * 3) || png.oom || png.n < 33) {
        free(png.p);
        return os_fail(err, "%s: PNG encoding failed", path);
    }
    /* signature (8) + IHDR (4 len + 4 type + 13 data + 4 crc) = 33 bytes, then our chunk */
    mem_put(&out, png.p, 33);
    if (key && text && text_chunk(&out, key, text)) out.oom = 1;
    mem_put(&out, png.p + 33, png.n - 33);
    free(png.p);
    if (out.oom) {
        free(out.p);
        return os_fail(err, "%s: out of memory encoding PNG", path);
    }
    struct atomic_file af;
    if (atomic_open(&af, path, err)) {
        free(out.p);
        return -1;
    }
    size_t wrote = fwrite(out.p, 1, out.n, af.f);
    free(out.p);
    if (wrote != out.n) {
        int e = errno;
        atomic_abort(&af);
        return os_fail(err, "%s: write failed: %s", path, strerror(e));
    }
    return atomic_commit(&af, err);
}

int image_read_rgb(const char *path, unsigned char **rgb, int *w, int *h, struct os_err *err)
{
    *rgb = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return os_fail(err, "%s: cannot open: %s", path, strerror(errno));
    int x, y, comp;
    if (!stbi_info_from_file(f, &x, &y, &comp)) {
        fclose(f);
        return os_fail(err, "%s: not a readable PNG or JPEG (%s)", path, stbi_failure_reason());
    }
    if (x <= 0 || y <= 0) {
        fclose(f);
        return os_fail(err, "%s: image is %dx%d", path, x, y);
    }
    if (x > IMAGE_MAX_SIDE || y > IMAGE_MAX_SIDE) {
        fclose(f);
        return os_fail(err, "%s: image is %dx%d; the largest side accepted is %d", path, x, y, IMAGE_MAX_SIDE);
    }
    if (comp == 2 || comp == 4) {
        fclose(f);
        return os_fail(err, "%s: image has an alpha channel (%d channels); save it as RGB first", path, comp);
    }
    if (comp != 1 && comp != 3) {
        fclose(f);
        return os_fail(err, "%s: unsupported channel count %d (expected RGB or grayscale)", path, comp);
    }
    unsigned char *px = stbi_load_from_file(f, &x, &y, &comp, 3);
    fclose(f);
    if (!px) return os_fail(err, "%s: cannot decode image (%s; truncated file?)", path, stbi_failure_reason());
    size_t n = (size_t)x * (size_t)y * 3;
    *rgb = malloc(n);
    if (!*rgb) {
        stbi_image_free(px);
        return os_fail(err, "%s: out of memory", path);
    }
    memcpy(*rgb, px, n);
    stbi_image_free(px);
    *w = x;
    *h = y;
    return 0;
}

static double lanczos3(double x)
{
    const double pi = 3.14159265358979323846;
    if (x == 0.0) return 1.0;
    if (x <= -3.0 || x >= 3.0) return 0.0;
    double a = pi * x, b = pi * x / 3.0;
    return (sin(a) / a) * (sin(b) / b);
}

/* One pass along an axis: out[o] = sum_i w(o, i) * in[i], for n lines of
 * `count` samples at stride `step` (3 channels interleaved). */
static void resample_axis(const float *in, int insize, float *out, int outsize, int lines, size_t in_line,
                          size_t out_line, size_t step)
{
    double scale = (double)insize / outsize;
    double fscale = scale > 1.0 ? scale : 1.0;
    double support = 3.0 * fscale;
    double *w = malloc(((size_t)support * 2 + 3) * sizeof *w);
    if (!w) return;
    for (int o = 0; o < outsize; o++) {
        double center = (o + 0.5) * scale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > insize) hi = insize;
        double sum = 0;
        for (int i = lo; i < hi; i++) sum += w[i - lo] = lanczos3((i - center + 0.5) / fscale);
        for (int l = 0; l < lines; l++)
            for (int c = 0; c < 3; c++) {
                double acc = 0;
                for (int i = lo; i < hi; i++) acc += w[i - lo] * in[l * in_line + (size_t)i * step + c];
                out[l * out_line + (size_t)o * step + c] = (float)(sum != 0 ? acc / sum : 0);
            }
    }
    free(w);
}

unsigned char *image_resize_rgb(const unsigned char *src, int sw, int sh, int dw, int dh)
{
    if (sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0) return NULL;
    float *a = malloc((size_t)sw * sh * 3 * sizeof *a), *b = malloc((size_t)dw * sh * 3 * sizeof *b);
    float *c = malloc((size_t)dw * dh * 3 * sizeof *c);
    unsigned char *out = malloc((size_t)dw * dh * 3);
    if (!a || !b || !c || !out) {
        free(a), free(b), free(c), free(out);
        return NULL;
    }
    for (size_t i = 0; i < (size_t)sw * sh * 3; i++) a[i] = src[i];
    /* horizontal: sh lines of sw pixels; vertical: treat columns as lines */
    resample_axis(a, sw, b, dw, sh, (size_t)sw * 3, (size_t)dw * 3, 3);
    resample_axis(b, sh, c, dh, dw, 3, 3, (size_t)dw * 3);
    for (size_t i = 0; i < (size_t)dw * dh * 3; i++) {
        float v = c[i] < 0 ? 0 : c[i] > 255 ? 255 : c[i];
        out[i] = (unsigned char)lrintf(v);
    }
    free(a), free(b), free(c);
    return out;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

char *png_read_text(const char *path, const char *key, struct os_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        os_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char sig[8], hdr[8];
    char *result = NULL;
    if (fread(sig, 1, 8, f) != 8 || memcmp(sig, "\x89PNG\r\n\x1a\n", 8) != 0) {
        fclose(f);
        os_fail(err, "%s: not a PNG file", path);
        return NULL;
    }
    size_t klen = strlen(key);
    while (!result && fread(hdr, 1, 8, f) == 8) {
        uint32_t len = be32(hdr);
        if (len > (64u << 20)) break;
        int is_text = !memcmp(hdr + 4, "tEXt", 4), is_itxt = !memcmp(hdr + 4, "iTXt", 4);
        if (!is_text && !is_itxt) {
            if (fseek(f, (long)len + 4, SEEK_CUR) != 0) break;
            continue;
        }
        unsigned char *d = malloc((size_t)len + 1);
        if (!d || fread(d, 1, len, f) != len || fseek(f, 4, SEEK_CUR) != 0) {
            free(d);
            break;
        }
        d[len] = 0;
        if (len > klen && !memcmp(d, key, klen) && d[klen] == 0) {
            size_t off = klen + 1;
            if (is_itxt) { /* flag, method, language\0, translated keyword\0 */
                off += 2;
                for (int z = 0; z < 2 && off < len; z++) off += strlen((char *)d + off) + 1;
            }
            if (off <= len && is_itxt) {
                result = strdup((char *)d + off);
            } else if (off <= len) { /* tEXt is Latin-1: hand back UTF-8 */
                result = malloc(2 * (len - off) + 1);
                size_t o = 0;
                for (size_t i = off; result && i < len; i++) {
                    if (d[i] < 0x80) {
                        result[o++] = (char)d[i];
                    } else {
                        result[o++] = (char)(0xc0 | (d[i] >> 6));
                        result[o++] = (char)(0x80 | (d[i] & 0x3f));
                    }
                }
                if (result) result[o] = '\0';
            }
        }
        free(d);
    }
    fclose(f);
    if (!result) os_fail(err, "%s: no \"%s\" text chunk", path, key);
    return result;
}
