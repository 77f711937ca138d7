/* Fuzz target: the safetensors header and spans (st_open_buffer).
 *
 * Promise checked: an accepted file's every tensor lies inside the data
 * section, its byte length is numel x dtype size, st_get finds it by name,
 * and reading every element touches only those bytes (ASan would see it); a
 * refused file leaves *out NULL and says why. */
#include <string.h>

#include "../../weights/safetensors.h"
#include "fuzz.h"

int fuzz_safetensors(const uint8_t *data, size_t size)
{
    /* A private copy of exactly `size` bytes, so ASan catches a read one past the end. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    struct st_file *f = (struct st_file *)1;
    struct os_err err = {{0}};
    if (st_open_buffer(buf, size, "fuzz.safetensors", &f, &err) != 0) {
        FUZZ_ASSERT(f == NULL);
        FUZZ_ASSERT(err.msg[0] != '\0');
        free(buf);
        return 0;
    }
    const uint8_t *end = buf + size;
    for (size_t i = 0; i < f->ntensors; i++) {
        const struct tensor *t = &f->tensors[i];
        FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= TENSOR_MAX_DIMS);
        FUZZ_ASSERT(st_get(f, t->name) == t);
        int64_t n = tensor_numel(t);
        FUZZ_ASSERT(n >= 0);
        size_t bytes = (size_t)n * dtype_size(t->dtype);
        const uint8_t *p = t->data;
        FUZZ_ASSERT(p >= buf + 8 && p <= end && bytes <= (size_t)(end - p));
        volatile uint8_t sink = 0;
        if (bytes) sink ^= p[0] ^ p[bytes - 1];
        if (t->dtype == DT_F32 || t->dtype == DT_F16 || t->dtype == DT_BF16 || t->dtype == DT_F64) {
            float v[64];
            int64_t k = n < 64 ? n : 64;
            tensor_read_f32(t, n - k, k, v);
            for (int64_t j = 0; j < k; j++) sink ^= (uint8_t)(v[j] == v[j]);
        }
        (void)sink;
    }
    for (size_t i = 0; i < f->nmeta; i++) FUZZ_ASSERT(st_meta(f, f->meta_keys[i]) != NULL);
    st_close(f);
    free(buf);
    return 0;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_safetensors(data, size);
}
#endif
