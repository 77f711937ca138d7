/* Fuzz target: the JSON reader (json_parse) and the typed accessors model
 * code uses on configs.
 *
 * Promise checked: a parsed document is a tree of well-formed nodes (strings
 * NUL-terminated at their length, keys the count the object says, depth within
 * JSON_MAX_DEPTH), and every accessor on it returns a value or an error
 * message, never garbage; a refused document says why. */
#include <string.h>

#include "../../weights/json.h"
#include "fuzz.h"

static void walk(const struct json *v, int depth)
{
    FUZZ_ASSERT(depth <= JSON_MAX_DEPTH + 1);
    switch (v->type) {
    case JSON_STRING:
        FUZZ_ASSERT(v->str && v->str[v->len] == '\0');
        break;
    case JSON_NUMBER:
        /* both are the correctly rounded value of the same digits */
        if (v->is_int) FUZZ_ASSERT((double)v->integer == v->number);
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < v->len; i++) walk(&v->items[i], depth + 1);
        break;
    case JSON_OBJECT:
        for (size_t i = 0; i < v->len; i++) {
            FUZZ_ASSERT(v->keys[i] && v->keys[i][v->key_lens[i]] == '\0');
            /* the first member of a name is the one json_get finds (names are unique) */
            if (strlen(v->keys[i]) == v->key_lens[i]) FUZZ_ASSERT(json_get(v, v->keys[i]) == &v->items[i]);
            walk(&v->items[i], depth + 1);
        }
        break;
    case JSON_NULL:
    case JSON_BOOL:
        break;
    default:
        FUZZ_ASSERT(0);
    }
}

/* What model code asks of a config: every accessor on every member. */
static void accessors(const struct json *obj)
{
    if (obj->type != JSON_OBJECT) return;
    for (size_t i = 0; i < obj->len && i < 64; i++) {
        const char *k = obj->keys[i];
        struct os_err err = {{0}};
        int64_t iv, list[4];
        double d;
        int b, failed = 0;
        if (json_get_int(obj, k, &iv, "fuzz.json", &err)) FUZZ_ASSERT(err.msg[0]);
        if (json_get_int_or(obj, k, 7, &iv, "fuzz.json", &err)) FUZZ_ASSERT(err.msg[0]);
        if (json_get_num(obj, k, &d, "fuzz.json", &err)) FUZZ_ASSERT(err.msg[0]);
        if (json_get_num_or(obj, k, 0.5, &d, "fuzz.json", &err)) FUZZ_ASSERT(err.msg[0]);
        if (json_get_bool_or(obj, k, 0, &b, "fuzz.json", &err)) FUZZ_ASSERT(err.msg[0]);
        const char *s = json_get_str(obj, k, "fuzz.json", &err);
        FUZZ_ASSERT(s || err.msg[0]);
        s = json_get_str_or(obj, k, "x", "fuzz.json", &err, &failed);
        FUZZ_ASSERT(s || failed);
        if (json_get_int_list(obj, k, list, 4, "fuzz.json", &err)) FUZZ_ASSERT(err.msg[0]);
    }
}

int fuzz_json(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1); /* exact size: no NUL after the text */
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    struct os_err err = {{0}};
    struct json *j = json_parse(buf, size, "fuzz.json", &err);
    if (!j) {
        FUZZ_ASSERT(strstr(err.msg, "fuzz.json") != NULL);
    } else {
        walk(j, 0);
        accessors(j);
        json_free(j);
    }
    free(buf);
    return 0;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_json(data, size);
}
#endif
