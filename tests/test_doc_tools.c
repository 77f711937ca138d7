/* ./dumpviz and ./modelinfo, the programs: what they draw and print for
 * hand-made inputs, and their answers to bad input (a clear line and a
 * non-zero exit, never a crash).
 *
 * dumpviz's grey scale is specified in tools/dumpviz.c: mid-grey 127.5 is 0,
 * white +3 rms, black -3 rms of the whole tensor, values clamped. The checks
 * below build tensors whose rms is known by construction and read the PNG
 * back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tools/lib/image_io.h"
#include "../weights/safetensors.h"
#include "lib/check.h"
#include "lib/proc.h"

static char dir[64];

/* Run "<bin>/ARGS" (ARGS starts with the program's name); out gets stdout
 * and stderr. */
static int prog(const char *args, char *out, size_t len)
{
    return run_capture(out, len, "%s/%s 2>&1", bin_dir(), args);
}

static void write_dump(const char *path)
{
    struct st_writer *w = st_writer_new();
    struct os_err e;
    /* latent-like [1, 2, 2, 3]: channel 0 holds +-1, channel 1 +-3 */
    float lat[12] = {1, -1, 1, -1, 1, -1, 3, -3, 3, -3, 3, -3};
    int64_t ls[4] = {1, 2, 2, 3};
    unsigned char img[2 * 2 * 3] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 250, 251, 255};
    int64_t is[4] = {1, 2, 2, 3};
    float tok[1 * 3 * 2] = {0, 0, 0, 0, 0, 0};
    int64_t ts[3] = {1, 3, 2};
    float sched[3] = {999, 499, 0.5f};
    int64_t ss[1] = {3};
    if (st_writer_add(w, "latents.noise", DT_F32, 4, ls, lat, &e) ||
        st_writer_add(w, "image.uint8", DT_U8, 4, is, img, &e) ||
        st_writer_add(w, "prompt_embeds", DT_F32, 3, ts, tok, &e) ||
        st_writer_add(w, "scheduler.timesteps", DT_F32, 1, ss, sched, &e) || st_writer_write(w, path, &e))
        check(0, "write %s: %s", path, e.msg);
    st_writer_free(w);
}

static void dumpviz(void)
{
    char path[128], out[8192], args[512], png[256];
    snprintf(path, sizeof path, "%s/d.safetensors", dir);
    write_dump(path);

    snprintf(args, sizeof args, "dumpviz %s --list", path);
    int rc = prog(args, out, sizeof out);
    check(rc == 0 && strstr(out, "scheduler.timesteps") && strstr(out, "999 499 0.5") &&
              strstr(out, "latents.noise") && strstr(out, "[1, 2, 2, 3]"),
          "dumpviz --list: shapes, and the values of short tensors (exit %d)", rc);

    snprintf(args, sizeof args, "dumpviz %s -o %s/png --scale 1", path, dir);
    rc = prog(args, out, sizeof out);
    check(rc == 0, "dumpviz -o: exit %d", rc);

    /* the image comes back as it was */
    unsigned char *rgb = NULL;
    int w = 0, h = 0;
    struct os_err e;
    snprintf(png, sizeof png, "%s/png/image.uint8.png", dir);
    if (check(image_read_rgb(png, &rgb, &w, &h, &e) == 0, "image.uint8.png readable")) {
        static const unsigned char want[12] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 250, 251, 255};
        check(w == 2 && h == 2 && !memcmp(rgb, want, 12), "image.uint8 drawn as itself (%dx%d)", w, h);
        free(rgb);
    }

    /* latent: the rms over the tensor is sqrt((6*1 + 6*9)/12) = sqrt(5), so
     * 3 rms = 6.708: +1 -> 146.5, -1 -> 108.5, +3 -> 184.5, -3 -> 70.5 before
     * rounding; the two channel tiles side by side with a 4-pixel white gap. */
    snprintf(png, sizeof png, "%s/png/latents.noise.png", dir);
    rgb = NULL;
    if (check(image_read_rgb(png, &rgb, &w, &h, &e) == 0, "latents.noise.png readable")) {
        const double r3 = 3 * sqrt(5.0);
        int p1 = (int)lrint(127.5 + 127.5 * 1 / r3), m1 = (int)lrint(127.5 - 127.5 * 1 / r3);
        int p3 = (int)lrint(127.5 + 127.5 * 3 / r3), m3 = (int)lrint(127.5 - 127.5 * 3 / r3);
        check(w == 3 + 4 + 3 && h == 2, "two 3x2 channel tiles and a 4-pixel gap: %dx%d", w, h);
        if (w == 10 && h == 2) {
            check(rgb[0] == p1 && rgb[3] == m1 && rgb[0] == rgb[1] && rgb[1] == rgb[2],
                  "channel 0: +1 -> %d, -1 -> %d (got %d, %d)", p1, m1, rgb[0], rgb[3]);
            check(rgb[3 * 3] == 255 && rgb[6 * 3] == 255, "the gap is white");
            check(rgb[7 * 3] == p3 && rgb[8 * 3] == m3, "channel 1: +3 -> %d, -3 -> %d (got %d, %d)", p3, m3,
                  rgb[7 * 3], rgb[8 * 3]);
        }
        free(rgb);
    }
    /* an all-zero token map is all mid-grey (rms 0 draws 0 as mid-grey) */
    snprintf(png, sizeof png, "%s/png/prompt_embeds.png", dir);
    rgb = NULL;
    if (check(image_read_rgb(png, &rgb, &w, &h, &e) == 0, "prompt_embeds.png readable")) {
        int grey = 1;
        for (int i = 0; i < w * h * 3; i++) grey &= rgb[i] == 128;
        check(w == 3 && h == 2 && grey, "3 tokens x 2 features of zeros: a 3x2 mid-grey map (%dx%d)", w, h);
        free(rgb);
    }
    snprintf(png, sizeof png, "%s/png/scheduler.timesteps.png", dir);
    check(access(png, F_OK) != 0, "a vector is listed, not drawn");

    /* bad input */
    rc = prog("dumpviz", out, sizeof out);
    check(rc == 2 && strstr(out, "usage:"), "dumpviz without arguments: usage, exit %d", rc);
    snprintf(args, sizeof args, "dumpviz %s/none.safetensors --list", dir);
    rc = prog(args, out, sizeof out);
    check(rc == 1 && strstr(out, "none.safetensors"), "dumpviz on a missing file names it, exit %d", rc);
    snprintf(args, sizeof args, "%s/junk.safetensors", dir);
    FILE *f = fopen(args, "wb");
    if (f) { /* a header that claims 16 bytes of JSON and holds 5 */
        static const char junk[] = "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":";
        fwrite(junk, 1, sizeof junk - 1, f);
        fclose(f);
    }
    snprintf(args, sizeof args, "dumpviz %s/junk.safetensors -o %s/png2", dir, dir);
    rc = prog(args, out, sizeof out);
    char *nl = strchr(out, '\n');
    if (nl) *nl = '\0';
    check(rc == 1 && strstr(out, "junk.safetensors"), "dumpviz on a damaged file: exit %d, \"%.160s\"", rc, out);
    snprintf(args, sizeof args, "dumpviz %s --only nothing-like-this -o %s/png3", path, dir);
    rc = prog(args, out, sizeof out);
    check(rc == 1 && strstr(out, "nothing to draw"), "dumpviz with nothing to draw says so, exit %d", rc);
    snprintf(args, sizeof args, "dumpviz %s --scale 0 -o %s/png4", path, dir);
    rc = prog(args, out, sizeof out);
    check(rc == 2 && strstr(out, "--scale"), "dumpviz --scale 0 refused, exit %d", rc);
}

static void modelinfo(void)
{
    char out[16384];
    int rc = prog("modelinfo -m weights/configs/tiny-sd -W 64 -H 64", out, sizeof out);
    check(rc == 0 && strstr(out, "latents [1, 4, 8, 8]") && strstr(out, "vae.decoder") && strstr(out, "[1, 3, 64, 64]"),
          "modelinfo on tiny-sd: one line per stage, exit %d", rc);
    rc = prog("modelinfo -m weights/configs/tiny-sdxl -W 64 -H 64 --all --only add_time", out, sizeof out);
    check(rc == 0 && strstr(out, "add_time_ids") && strstr(out, "[1, 6]") && strstr(out, "unet.add_time_proj") &&
              !strstr(out, "unet.conv_in"),
          "modelinfo --all --only filters the names, exit %d", rc);
    rc = prog("modelinfo", out, sizeof out);
    check(rc == 2 && strstr(out, "usage:"), "modelinfo without -m: usage, exit %d", rc);
    rc = prog("modelinfo -m weights/configs/tiny-sd --only unet", out, sizeof out);
    check(rc == 2 && strstr(out, "--only needs --all"), "--only without --all refused, exit %d", rc);
    rc = prog("modelinfo -m weights/configs/tiny-sd -W 60", out, sizeof out);
    check(rc == 1 && strstr(out, "multiples of 8"), "a width of 60 refused with the reason, exit %d", rc);
    rc = prog("modelinfo -m weights/configs/tiny-sd -W 7", out, sizeof out);
    check(rc == 2 && strstr(out, "-W 7"), "a width below 8 refused, exit %d", rc);
    rc = prog("modelinfo -m no/such/dir", out, sizeof out);
    check(rc == 1 && strstr(out, "no/such/dir"), "a missing model is named, exit %d", rc);
    rc = prog("modelinfo -m weights/configs/tiny-sd --frobnicate", out, sizeof out);
    check(rc == 2 && strstr(out, "unknown option --frobnicate"), "unknown option refused, exit %d", rc);
}

int main(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/dumpviz", bin_dir());
    if (!check(access(p, X_OK) == 0, "%s exists (make builds it)", p)) return check_summary();
    snprintf(dir, sizeof dir, "/tmp/onestep-tools-XXXXXX");
    if (!check(mkdtemp(dir) != NULL, "temporary directory")) return check_summary();
    dumpviz();
    modelinfo();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) check_note("could not remove %s", dir);
    return check_summary();
}
