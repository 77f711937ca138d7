/* json.h — a small, strict JSON reader (RFC 8259) for configs, safetensors
 * headers and vocab.json.
 *
 * Own code rather than a Debian library: we need exact control over limits
 * (nesting depth, sizes) because headers come from untrusted files, line and
 * column in error messages, and duplicate-key detection; cJSON/json-c give
 * neither the limits nor the messages, and the whole reader is ~500 lines.
 *
 * The whole document lives in one allocation pool owned by the root; free it
 * with json_free(root). Strings are UTF-8, NUL-terminated, with their length
 * kept (a string may contain an escaped U+0000). Object members keep file
 * order; duplicate keys are an error (Python would keep the last silently,
 * which hides corrupt files). */
#ifndef ONESTEP_JSON_H
#define ONESTEP_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "../ref/common.h"

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
    enum json_type type;
    int boolean;           /* JSON_BOOL */
    double number;         /* JSON_NUMBER, as strtod reads it */
    int is_int;            /* JSON_NUMBER written as an integer that fits int64 */
    int64_t integer;       /* valid when is_int */
    const char *str;       /* JSON_STRING: UTF-8, NUL-terminated */
    size_t len;            /* JSON_STRING: bytes; ARRAY/OBJECT: element count */
    struct json *items;    /* ARRAY/OBJECT: elements / member values */
    const char **keys;     /* OBJECT: member names (same order as items) */
    size_t *key_lens;      /* OBJECT: member name lengths */
};

#define JSON_MAX_DEPTH 64

/* Parse exactly one JSON value (whitespace around it allowed). `what` names
 * the input in error messages ("unet/config.json"). NULL on error. */
struct json *json_parse(const char *text, size_t len, const char *what, struct os_err *err);

/* Read and parse a file (size cap: max_bytes). */
struct json *json_parse_file(const char *path, size_t max_bytes, struct os_err *err);

void json_free(struct json *root);

/* Member of an object by name, or NULL (also NULL if obj is not an object). */
const struct json *json_get(const struct json *obj, const char *key);

const char *json_type_name(enum json_type t);

/* Typed config accessors. They return 0 and set *out, or -1 with a message
 * naming `what` and the key. "_or" variants return the default when the key
 * is absent or null (diffusers' convention for defaults). */
int json_get_int(const struct json *obj, const char *key, int64_t *out, const char *what, struct os_err *err);
int json_get_int_or(const struct json *obj, const char *key, int64_t def, int64_t *out, const char *what,
                    struct os_err *err);
int json_get_num(const struct json *obj, const char *key, double *out, const char *what, struct os_err *err);
int json_get_num_or(const struct json *obj, const char *key, double def, double *out, const char *what,
                    struct os_err *err);
int json_get_bool_or(const struct json *obj, const char *key, int def, int *out, const char *what, struct os_err *err);
/* Returns the string (owned by the document) or NULL with an error. */
const char *json_get_str(const struct json *obj, const char *key, const char *what, struct os_err *err);
const char *json_get_str_or(const struct json *obj, const char *key, const char *def, const char *what,
                            struct os_err *err, int *failed);

/* An array of ints, or a single int broadcast to n entries (diffusers accepts
 * both, e.g. attention_head_dim: 8 or [5, 10, 20, 20]). Fills out[0..n-1];
 * an array must have exactly n entries. */
int json_get_int_list(const struct json *obj, const char *key, int64_t *out, size_t n, const char *what,
                      struct os_err *err);

#endif
