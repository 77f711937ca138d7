/* Fuzz target: the img2img image loader (image_decode_rgb: stb_image's PNG
 * and JPEG decoders behind our header checks).
 *
 * Promise checked: an accepted image has a size within IMAGE_MAX_SIDE and
 * w x h x 3 readable bytes; a refused one says why. */
#include <string.h>

#include "../../tools/lib/image_io.h"
#include "fuzz.h"

int fuzz_image(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    unsigned char *rgb = (unsigned char *)1;
    int w = -1, h = -1;
    struct os_err err = {{0}};
    if (image_decode_rgb(buf, size, "fuzz.png", &rgb, &w, &h, &err) != 0) {
        FUZZ_ASSERT(rgb == NULL && strstr(err.msg, "fuzz.png") != NULL);
    } else {
        FUZZ_ASSERT(w > 0 && h > 0 && w <= IMAGE_MAX_SIDE && h <= IMAGE_MAX_SIDE && rgb);
        size_t n = (size_t)w * h * 3;
        volatile unsigned char sink = rgb[0] ^ rgb[n - 1];
        (void)sink;
        free(rgb);
    }
    free(buf);
    return 0;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_image(data, size);
}
#endif
