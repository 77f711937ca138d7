#include "image_io.h"

#include <errno.h>
#include <math.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "../../weights/atomic_file.h"

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBIW_ZLIB_COMPRESS png_zlib_compress /* real zlib: smaller files than stb's own deflate */
static unsigned char *png_zlib_compress(unsigned char *data, int len, int *out_len, int quality);
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

/* ---- reading: libpng and libjpeg(-turbo), not stb_image ----
 *
 * Init images come from anywhere. stb_image asks not to be used on untrusted
 * files, and the Debian version (2.27) writes out of bounds on crafted JPEG
 * Huffman tables (nothings/stb #1289, #1291; fixed upstream in 2.28): our
 * fuzzer (tests/fuzz/fuzz_image.c) hit it within seconds. libpng and
 * libjpeg-turbo are fuzzed continuously by OSS-Fuzz. libjpeg-turbo is also
 * the decoder PIL uses, so a JPEG gives the very pixels diffusers'
 * load_image(...).convert("RGB") sees; PNG decoding is lossless either way.
 *
 * Both libraries report errors by longjmp; each decoder keeps the state that
 * must survive it in a struct it owns, so no local is clobbered. */

#define JPEG_MAX_SCANS 1000 /* a real progressive JPEG has ~10; thousands only cost time */

struct decoded {
    const char *what;
    const unsigned char *buf;
    size_t len, off;
    unsigned char *rgb; /* the result, w x h x 3 */
    unsigned char **rows;
    char msg[JMSG_LENGTH_MAX > 200 ? JMSG_LENGTH_MAX : 200];
};

/* The size is checked from the header before anything is decoded. */
static int check_size(const char *what, unsigned long w, unsigned long h, struct os_err *err)
{
    if (w == 0 || h == 0) return os_fail(err, "%s: image is %lux%lu", what, w, h);
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE)
        return os_fail(err, "%s: image is %lux%lu; the largest side accepted is %d", what, w, h, IMAGE_MAX_SIDE);
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

static void png_on_error(png_structp png, png_const_charp msg)
{
    struct decoded *d = png_get_error_ptr(png);
    snprintf(d->msg, sizeof d->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png; /* benign problems (a bad ancillary chunk CRC, ...): PIL ignores them too */
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, size_t n)
{
    struct decoded *d = png_get_io_ptr(png);
    if (n > d->len - d->off) png_error(png, "file is truncated");
    memcpy(out, d->buf + d->off, n);
    d->off += n;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* 8-bit RGB out of any PNG without alpha: palette expanded, gray replicated,
 * 16-bit reduced to its high byte, no gamma applied: PIL's convert("RGB")
 * pixels, except 16-bit grayscale, which PIL clips at 255 instead. */
static int decode_png(struct decoded *d, int *w, int *h, struct os_err *err)
{
    /* IHDR is always first: refuse an absurd size or an alpha channel before
     * libpng reads (or allocates) anything more */
    if (d->len >= 26 && !memcmp(d->buf + 12, "IHDR", 4)) {
        if (check_size(d->what, be32(d->buf + 16), be32(d->buf + 20), err)) return -1;
        if (d->buf[25] == PNG_COLOR_TYPE_RGB_ALPHA || d->buf[25] == PNG_COLOR_TYPE_GRAY_ALPHA)
            return os_fail(err, "%s: image has an alpha channel; save it as RGB first", d->what);
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return os_fail(err, "%s: out of memory", d->what);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return os_fail(err, "%s: cannot decode PNG (%s)", d->what, d->msg);
    }
    png_set_read_fn(png, d, png_read_mem);
    png_set_chunk_malloc_max(png, 8u << 20); /* a text or ICC chunk cannot inflate to gigabytes */
    png_read_info(png, info);
    png_uint_32 pw, ph;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &pw, &ph, &depth, &ctype, &interlace, NULL, NULL);
    if (check_size(d->what, pw, ph, err)) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    if ((ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) {
        png_destroy_read_struct(&png, &info, NULL);
        return os_fail(err, "%s: image has an alpha channel; save it as RGB first", d->what);
    }
    if (depth == 16) png_set_strip_16(png);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (ctype == PNG_COLOR_TYPE_GRAY) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != 3 || png_get_rowbytes(png, info) != (size_t)pw * 3)
        png_error(png, "unexpected pixel layout after conversion to RGB");
    d->rgb = malloc((size_t)pw * ph * 3);
    d->rows = malloc((size_t)ph * sizeof *d->rows);
    if (!d->rgb || !d->rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < ph; y++) d->rows[y] = d->rgb + (size_t)y * pw * 3;
    png_read_image(png, d->rows);
    png_read_end(png, NULL); /* the chunks after the pixels, up to IEND: a truncated file fails here */
    png_destroy_read_struct(&png, &info, NULL);
    *w = (int)pw;
    *h = (int)ph;
    return 0;
}

struct jpeg_fail {
    struct jpeg_error_mgr mgr; /* first: libjpeg hands us a pointer to it */
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    struct decoded *d;
};

static void jpeg_on_error(j_common_ptr c)
{
    struct jpeg_fail *f = (struct jpeg_fail *)c->err;
    c->err->format_message(c, f->d->msg);
    longjmp(f->jb, 1);
}

/* Warnings are how libjpeg reports damage it can paper over. PIL refuses a
 * truncated file ("image file is truncated") and accepts the rest; so do we. */
static void jpeg_on_message(j_common_ptr c, int level)
{
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(c);
}

static void jpeg_on_progress(j_common_ptr c)
{
    j_decompress_ptr di = (j_decompress_ptr)c;
    struct jpeg_fail *f = (struct jpeg_fail *)c->err;
    if (di->input_scan_number > JPEG_MAX_SCANS) {
        snprintf(f->d->msg, sizeof f->d->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(f->jb, 1);
    }
}

static int decode_jpeg(struct decoded *d, int *w, int *h, struct os_err *err)
{
    struct jpeg_decompress_struct ci;
    struct jpeg_fail f;
    memset(&f, 0, sizeof f);
    f.d = d;
    ci.err = jpeg_std_error(&f.mgr);
    f.mgr.error_exit = jpeg_on_error;
    f.mgr.emit_message = jpeg_on_message;
    if (setjmp(f.jb)) {
        jpeg_destroy_decompress(&ci);
        return os_fail(err, "%s: cannot decode JPEG (%s)", d->what, d->msg);
    }
    jpeg_create_decompress(&ci);
    f.progress.progress_monitor = jpeg_on_progress;
    ci.progress = &f.progress;
    jpeg_mem_src(&ci, d->buf, (unsigned long)d->len);
    if (jpeg_read_header(&ci, TRUE) != JPEG_HEADER_OK) ERREXIT(&ci, JERR_NO_IMAGE);
    if (check_size(d->what, ci.image_width, ci.image_height, err)) {
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    if (ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&ci);
        return os_fail(err, "%s: CMYK JPEG is not supported; save it as RGB first", d->what);
    }
    ci.out_color_space = JCS_RGB; /* defaults otherwise, as PIL: ISLOW IDCT, fancy upsampling */
    jpeg_start_decompress(&ci);
    if (ci.output_components != 3 || ci.output_width != ci.image_width || ci.output_height != ci.image_height)
        ERREXIT(&ci, JERR_CONVERSION_NOTIMPL);
    const size_t stride = (size_t)ci.output_width * 3;
    d->rgb = malloc(stride * ci.output_height);
    if (!d->rgb) ERREXIT1(&ci, JERR_OUT_OF_MEMORY, 0);
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = d->rgb + stride * ci.output_scanline;
        if (jpeg_read_scanlines(&ci, &row, 1) != 1) ERREXIT(&ci, JERR_INPUT_EMPTY);
    }
    *w = (int)ci.output_width;
    *h = (int)ci.output_height;
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    return 0;
}

int image_decode_rgb(const void *buf, size_t len, const char *what, unsigned char **rgb, int *w, int *h,
                     struct os_err *err)
{
    *rgb = NULL;
    struct decoded d;
    memset(&d, 0, sizeof d);
    d.what = what;
    d.buf = buf;
    d.len = len;
    int rc;
    if (len >= 8 && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8)) rc = decode_png(&d, w, h, err);
    else if (len >= 3 && !memcmp(buf, "\xff\xd8\xff", 3)) rc = decode_jpeg(&d, w, h, err);
    else rc = os_fail(err, "%s: not a readable PNG or JPEG (unknown file signature)", what);
    free(d.rows);
    if (rc) {
        free(d.rgb);
        return -1;
    }
    *rgb = d.rgb;
    return 0;
}

/* The whole file is read first, so the header check and the decoder see the
 * same bytes. An accepted image (8192 x 8192 RGB) is at most ~200 MB even
 * stored uncompressed; a bigger file is refused without reading it all. */
#define IMAGE_MAX_FILE (512u << 20)

int image_read_rgb(const char *path, unsigned char **rgb, int *w, int *h, struct os_err *err)
{
    *rgb = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return os_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct membuf m = {0};
    unsigned char chunk[65536];
    size_t got;
    while (!m.oom && m.n <= IMAGE_MAX_FILE && (got = fread(chunk, 1, sizeof chunk, f)) > 0) mem_put(&m, chunk, got);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    int rc;
    if (rerr) rc = os_fail(err, "%s: read failed: %s", path, strerror(rerr));
    else if (m.oom) rc = os_fail(err, "%s: out of memory", path);
    else if (m.n > IMAGE_MAX_FILE) rc = os_fail(err, "%s: file is larger than any image accepted (%u MiB)", path, IMAGE_MAX_FILE >> 20);
    else rc = image_decode_rgb(m.p, m.n, path, rgb, w, h, err);
    free(m.p);
    return rc;
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
