/* image_io.h — PNG out (with generation parameters), PNG/JPEG in.
 *
 * Writing uses stb_image_write from Debian's libstb-dev as it is: the PNG text
 * chunk is spliced into stb's output here rather than by patching stb. Output
 * is written to a temporary file and renamed. Reading, which sees untrusted
 * files, uses libpng and libjpeg-turbo (image_io.c says why). */
#ifndef ONESTEP_IMAGE_IO_H
#define ONESTEP_IMAGE_IO_H

#include "../../ref/common.h"

#define IMAGE_MAX_SIDE 8192 /* larger init images are refused before decoding */

/* Write 8-bit RGB (H x W x 3) as PNG. If key/text are given, add a text
 * chunk after IHDR: tEXt when the text is Latin-1 representable, else iTXt
 * (UTF-8) — what PIL (and so A1111) does for the "parameters" chunk. */
int png_write_rgb(const char *path, const unsigned char *rgb, int w, int h, const char *key, const char *text,
                  struct os_err *err);

/* Read a PNG or JPEG as 8-bit RGB (grayscale is expanded; images with an
 * alpha channel and CMYK JPEGs are refused rather than silently converted;
 * a truncated file is an error). The size is checked from the header before
 * anything is decoded. *rgb is malloc'd. */
int image_read_rgb(const char *path, unsigned char **rgb, int *w, int *h, struct os_err *err);
/* The same on a file already in memory (fuzzing); `what` names it in messages. */
int image_decode_rgb(const void *buf, size_t len, const char *what, unsigned char **rgb, int *w, int *h,
                     struct os_err *err);

/* Resize 8-bit RGB with a Lanczos-3 filter the way PIL's Image.resize(...,
 * LANCZOS) does it (diffusers' VaeImageProcessor default): separable, the
 * kernel widened by the scale factor when shrinking (antialiasing), weights
 * normalised per output pixel. PIL works in 8-bit fixed point between the two
 * passes; this works in float and rounds once, so results can differ from
 * PIL's by a level. Returns a malloc'd dw x dh x 3 buffer or NULL. */
unsigned char *image_resize_rgb(const unsigned char *src, int sw, int sh, int dw, int dh);

/* Read a PNG's text chunk `key` (tEXt or iTXt); malloc'd string or NULL. For
 * tests and for users checking what a file says. */
char *png_read_text(const char *path, const char *key, struct os_err *err);

#endif
