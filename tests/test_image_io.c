/* PNG writing with a parameters chunk, PNG/JPEG reading, and bad images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../tools/lib/image_io.h"
#include "lib/check.h"

static void put_be32(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A PNG that is only a signature and an IHDR claiming w x h (valid CRC). */
static void write_ihdr_only(const char *path, unsigned w, unsigned h, int color_type)
{
    unsigned char b[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    put_be32(b + 8, 13);
    memcpy(b + 12, "IHDR", 4);
    put_be32(b + 16, w);
    put_be32(b + 20, h);
    b[24] = 8;
    b[25] = (unsigned char)color_type;
    put_be32(b + 29, (unsigned)crc32(0, b + 12, 17));
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, 33, f);
    fclose(f);
}

static int no_temp_files(const char *dir, const char *base)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -q '^\\.%s\\.'", dir, base);
    return system(cmd) != 0;
}

int main(void)
{
    struct os_err err = {{0}};
    char dir[] = "/tmp/onestep_img_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char path[600], bad[600];
    snprintf(path, sizeof path, "%s/out.png", dir);

    int w = 13, h = 7;
    unsigned char *rgb = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) rgb[i] = (unsigned char)(i * 37 + 11);
    const char *latin = "a caf\xc3\xa9 at night\nSteps: 1, Seed: 42";
    check(png_write_rgb(path, rgb, w, h, "parameters", latin, &err) == 0, "writes a PNG (%s)", err.msg);
    char *t = png_read_text(path, "parameters", &err);
    check(t && strcmp(t, latin) == 0, "parameters chunk round-trips (Latin-1 text stored as tEXt)");
    free(t);
    unsigned char *back = NULL;
    int bw = 0, bh = 0;
    check(image_read_rgb(path, &back, &bw, &bh, &err) == 0 && bw == w && bh == h &&
              memcmp(back, rgb, (size_t)w * h * 3) == 0,
          "pixels round-trip exactly");
    free(back);
    const char *cjk = "\xe7\x8c\xab in space \xf0\x9f\x9a\x80";
    check(png_write_rgb(path, rgb, w, h, "parameters", cjk, &err) == 0, "writes a PNG with non-Latin-1 text");
    t = png_read_text(path, "parameters", &err);
    check(t && strcmp(t, cjk) == 0, "non-Latin-1 text round-trips (iTXt)");
    free(t);
    check(no_temp_files(dir, "out.png"), "no temporary file left behind");

    /* unwritable and directory targets fail before anything is written */
    check(png_write_rgb(dir, rgb, w, h, NULL, NULL, &err) == -1 && strstr(err.msg, "is a directory"),
          "output path that is a directory: %s", err.msg);
    snprintf(bad, sizeof bad, "%s/missing/sub/out.png", dir);
    check(png_write_rgb(bad, rgb, w, h, NULL, NULL, &err) == -1 && strstr(err.msg, "does not exist"),
          "output in a missing directory: %s", err.msg);
    if (geteuid() != 0) {
        snprintf(bad, sizeof bad, "%s/ro", dir);
        mkdir(bad, 0555);
        snprintf(bad, sizeof bad, "%s/ro/out.png", dir);
        check(png_write_rgb(bad, rgb, w, h, NULL, NULL, &err) == -1 && strstr(err.msg, "not writable"),
              "output in a read-only directory: %s", err.msg);
    } else {
        check_skip("read-only directory check (running as root)");
    }

    /* bad inputs */
    snprintf(bad, sizeof bad, "%s/none.png", dir);
    check(image_read_rgb(bad, &back, &bw, &bh, &err) == -1 && strstr(err.msg, "cannot open"), "missing file: %s",
          err.msg);
    snprintf(bad, sizeof bad, "%s/trunc.png", dir);
    {
        size_t n;
        char *data = read_file(path, &n);
        FILE *f = fopen(bad, "wb");
        fwrite(data, 1, n / 2, f);
        fclose(f);
        free(data);
    }
    check(image_read_rgb(bad, &back, &bw, &bh, &err) == -1 && strstr(err.msg, "trunc.png"), "truncated PNG: %s",
          err.msg);
    snprintf(bad, sizeof bad, "%s/huge.png", dir);
    write_ihdr_only(bad, 100000, 100000, 2);
    check(image_read_rgb(bad, &back, &bw, &bh, &err) == -1 && strstr(err.msg, "huge.png"),
          "100000x100000 header refused before decoding: %s", err.msg);
    snprintf(bad, sizeof bad, "%s/zero.png", dir);
    write_ihdr_only(bad, 0, 0, 2);
    check(image_read_rgb(bad, &back, &bw, &bh, &err) == -1, "0x0 image: %s", err.msg);
    snprintf(bad, sizeof bad, "%s/rgba.png", dir);
    write_ihdr_only(bad, 8, 8, 6);
    check(image_read_rgb(bad, &back, &bw, &bh, &err) == -1 && strstr(err.msg, "alpha"), "RGBA image: %s", err.msg);
    snprintf(bad, sizeof bad, "%s/text.png", dir);
    {
        FILE *f = fopen(bad, "wb");
        fputs("this is not an image", f);
        fclose(f);
    }
    check(image_read_rgb(bad, &back, &bw, &bh, &err) == -1 && strstr(err.msg, "not a readable PNG or JPEG"),
          "not an image: %s", err.msg);

    /* Lanczos resize: a flat image stays flat, same size is the identity, a
     * horizontal ramp stays a ramp (monotonic) when shrunk */
    {
        int sw = 40, sh = 24;
        unsigned char *flat = malloc((size_t)sw * sh * 3), *ramp = malloc((size_t)sw * sh * 3);
        for (int y = 0; y < sh; y++)
            for (int x = 0; x < sw; x++)
                for (int c = 0; c < 3; c++) {
                    flat[(y * sw + x) * 3 + c] = (unsigned char)(50 + 60 * c);
                    ramp[(y * sw + x) * 3 + c] = (unsigned char)(x * 6);
                }
        unsigned char *r = image_resize_rgb(flat, sw, sh, 17, 31);
        int ok = r != NULL;
        for (int i = 0; ok && i < 17 * 31 * 3; i++) ok = r[i] == 50 + 60 * (i % 3);
        check(ok, "resize keeps a flat image flat (40x24 -> 17x31)");
        free(r);
        r = image_resize_rgb(ramp, sw, sh, sw, sh);
        check(r && memcmp(r, ramp, (size_t)sw * sh * 3) == 0, "resize to the same size is the identity");
        free(r);
        r = image_resize_rgb(ramp, sw, sh, 16, 8);
        ok = r != NULL;
        for (int x = 1; ok && x < 16; x++) ok = r[(3 * 16 + x) * 3] > r[(3 * 16 + x - 1) * 3];
        check(ok, "a shrunk ramp is still increasing");
        free(r);
        free(flat);
        free(ramp);
    }

    /* the conformance suite's init images */
    const char *conf = conformance_dir();
    if (conf) {
        char p[1024];
        snprintf(p, sizeof p, "%s/init_images/init_64x96.png", conf);
        check(image_read_rgb(p, &back, &bw, &bh, &err) == 0 && bw == 96 && bh == 64, "reads init_64x96.png (%dx%d)",
              bw, bh);
        free(back);
    }
    free(rgb);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", dir, dir);
    if (system(cmd) != 0) check_note("could not remove %s", dir);
    return check_summary();
}
