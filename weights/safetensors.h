/* safetensors.h — read (mmap, validated) and write safetensors files.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the raw little-endian data; offsets are
 * relative to the first byte after the header.
 *
 * The header is untrusted input. st_open checks, before any tensor is
 * returned: header length within the file and under ST_MAX_HEADER; JSON well
 * formed; every dtype known; shape entries non-negative and at most
 * TENSOR_MAX_DIMS of them; numel x dtype size == end - begin without
 * overflow; every span inside the data section; no two spans overlapping.
 * Data alignment is NOT assumed (the format does not promise it): readers use
 * memcpy-based loads (tensor_get_f32). */
#ifndef ONESTEP_SAFETENSORS_H
#define ONESTEP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../ref/common.h"
#include "../ref/tensor.h"

#define ST_MAX_HEADER (100u * 1000u * 1000u) /* the same cap as the reference Rust crate */

struct st_file {
    char *path;
    const unsigned char *map; /* the whole file, read-only */
    size_t map_len;
    int owns_map; /* 1 when st_open mapped it (st_close unmaps) */
    size_t ntensors;
    struct tensor *tensors; /* sorted by name; .data points into map */
    size_t nmeta;
    const char **meta_keys, **meta_values;
    struct json *header; /* owns the name and metadata strings */
};

/* Open and validate. On failure returns -1 and err says which file and what
 * is wrong (e.g. "x.safetensors: tensor \"w\": data_offsets [0, 96] span 96
 * bytes but F32 [4, 5] needs 80"). */
int st_open(const char *path, struct st_file **out, struct os_err *err);
/* Same validation on a buffer already in memory (fuzzing, tests). The buffer
 * must outlive the st_file. `what` names it in messages. */
int st_open_buffer(const void *buf, size_t len, const char *what, struct st_file **out, struct os_err *err);
void st_close(struct st_file *f);

/* Tensor by exact name, or NULL. O(log n). */
const struct tensor *st_get(const struct st_file *f, const char *name);
/* Value of a __metadata__ key, or NULL. */
const char *st_meta(const struct st_file *f, const char *key);

/* Tell the kernel we no longer need the pages (they stay mapped; re-reading
 * faults them back in from the file). Used to drop a component's weights from
 * RSS once a stage is done. */
void st_release_pages(struct st_file *f);
/* The same for the pages under [p, p + len) (rounded out to whole pages,
 * clipped to the mapping; nothing outside it is touched): releases one
 * component's tensors inside a single-file checkpoint's mapping. */
void st_release_range(const struct st_file *f, const void *p, size_t len);

/* ---- writing ---- */

struct st_writer;

/* Fills `bytes` bytes of tensor data at `dst` (the whole tensor); returns 0 or
 * -1 with err set. Lets mkmodel stream multi-GB files without holding them. */
typedef int (*st_fill_fn)(void *ctx, void *dst, size_t bytes, struct os_err *err);

struct st_writer *st_writer_new(void);
/* Add a tensor whose data is copied now. */
int st_writer_add(struct st_writer *w, const char *name, enum dtype dt, int ndim, const int64_t *shape,
                  const void *data, struct os_err *err);
/* Add a tensor whose data is produced by fill(ctx, ...) at write time. ctx
 * must stay valid until st_writer_write returns. */
int st_writer_add_fn(struct st_writer *w, const char *name, enum dtype dt, int ndim, const int64_t *shape,
                     st_fill_fn fill, void *ctx, struct os_err *err);
int st_writer_meta(struct st_writer *w, const char *key, const char *value, struct os_err *err);
/* Write header + data to a temporary file and rename it to `path`. */
int st_writer_write(struct st_writer *w, const char *path, struct os_err *err);
void st_writer_free(struct st_writer *w);

#endif
