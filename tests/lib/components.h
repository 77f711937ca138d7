/* components.h — components built in memory, for the loader tests.
 *
 * test_vae and test_taesd feed their loaders a config text and a tensor
 * table (a key changed, a tensor dropped or misshapen) without writing files,
 * and check that the synthetic tensor lists they use for the full-size
 * models reproduce the tiny checkpoints' layout; test_unet edits configs
 * the same way. */
#ifndef ONESTEP_TEST_COMPONENTS_H
#define ONESTEP_TEST_COMPONENTS_H

#include <stdarg.h>
#include <stddef.h>

#include "../../weights/model_dir.h"

/* A component called `name` from a config text and a copy of the tensor
 * table t[0..n) (names and data must outlive it unless owned by it). */
int mem_component(struct component *c, const char *name, const char *config, const struct tensor *t, size_t n,
                  struct os_err *err);

/* A tensor table built name by name, for the synthetic checkpoints of
 * test_vae and test_taesd: F32 tensors, data NULL until the caller sets it,
 * names owned by `owner` (freed with it); free(t) when done. */
struct tensor_list {
    struct tensor *t;
    size_t n, cap;
    struct component *owner;
};
/* Append a tensor named by fmt/ap with dims shape[0..ndim); returns it. */
struct tensor *tensor_list_vadd(struct tensor_list *l, int ndim, const int64_t *shape, const char *fmt, va_list ap);

/* s with the first `from` replaced by `to` (a new string); aborts when s
 * has no `from` (a broken test, not a failed check). */
char *str_replace(const char *s, const char *from, const char *to);

/* A new table of t[0..n) without the tensor called name; *out_n gets its size. */
struct tensor *tensors_without(const struct tensor *t, size_t n, const char *name, size_t *out_n);

/* Sorts t[0..n) by name; 1 if it then has the names, ranks and shapes of
 * c's tensors (in their order), else 0. */
int same_layout(struct tensor *t, size_t n, const struct component *c);

#endif
