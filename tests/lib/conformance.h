/* conformance.h — reading ../shared/conformance from tests.
 *
 * The suite (see its README) has tiny models, a manifest with one entry per
 * case, and per case a safetensors file holding every intermediate tensor of
 * the upstream diffusers run. Tests feed our modules the case's inputs and
 * compare our outputs with conf_check(), which applies the manifest's
 * recommended tolerance for that tensor name (tolerances.by_tensor; "stepN."
 * names use the "step*." rows). */
#ifndef ONESTEP_TEST_CONFORMANCE_H
#define ONESTEP_TEST_CONFORMANCE_H

#include <stddef.h>
#include <stdint.h>

#include "../../weights/json.h"
#include "../../weights/safetensors.h"

struct conf_suite {
    const char *dir;
    struct json *manifest;
    const struct json *cases; /* array */
    const struct json *by_tensor;
};

/* 0 on success; -1 if the suite is absent (already reported as skipped) or
 * unreadable (reported as a failed check). */
int conf_open(struct conf_suite *s);
void conf_close(struct conf_suite *s);

size_t conf_ncases(const struct conf_suite *s);
const struct json *conf_case(const struct conf_suite *s, size_t i);
const struct json *conf_case_by_name(const struct conf_suite *s, const char *name);
const char *conf_case_name(const struct json *c);
/* Field helpers on a case entry (NULL / default when absent or null). */
const char *conf_str(const struct json *c, const char *key);
int64_t conf_int(const struct json *c, const char *key, int64_t def);
double conf_num(const struct json *c, const char *key, double def);
/* A case of the later "extension" (LCM, DMD2, TAESD, LoRA)? */
int conf_is_extension(const struct json *c);

/* Path under the suite: conf_path(s, "sd-turbo-tiny") -> "<dir>/sd-turbo-tiny" (static buffer per call slot). */
char *conf_path(const struct conf_suite *s, const char *rel);

/* Open cases/<name>.safetensors. NULL (with a failed check) on error. */
struct st_file *conf_case_file(const struct conf_suite *s, const struct json *c);

/* A tensor of a case file converted to a new f32 array (I64 ids and U8
 * pixels are converted too). NULL if absent. *n gets the element count. */
float *conf_tensor(const struct st_file *f, const char *name, size_t *n);

/* Recommended tolerances for a tensor name: abs and rel-to-max-abs. Returns
 * 0, or -1 when the manifest has no row (then a strict default is used). */
int conf_tolerance(const struct conf_suite *s, const char *name, double *abs_tol, double *rel_to_max);

/* Compare got[0..n) with tensor `name` of the case file: one check line
 * "<case> <name>: max|diff| ... (tol ...)". Passes when every element is
 * within max(abs_tol, rel_to_max * max|ref|) scaled by `slack` (1.0 for the
 * reference; SIMD backends pass a justified factor). Returns 1 if ok. */
int conf_check(const struct conf_suite *s, const struct json *c, const struct st_file *f, const char *name,
               const float *got, size_t n, double slack);

/* The reference tests' comparison: conf_check at slack 1.0 (a NULL got is a
 * failed check "<case> <name>: not dumped"), and the worst max|diff| /
 * tolerance per tensor over the whole run ("stepN.x" tensors together as
 * "step*.x"), for the summary each test prints at the end from conf_worst():
 * how close to its tolerance every tensor family came, over all cases. */
int conf_compare(const struct conf_suite *s, const struct json *c, const struct st_file *f, const char *name,
                 const float *got, size_t n);

struct conf_worst {
    char name[96];  /* the tensor, or "step*.x" */
    double ratio;   /* worst max|diff| / tolerance (INFINITY: non-finite values) */
    char where[96]; /* the case it came from */
};
/* The tensors conf_compare has seen, in first-seen order; *n gets the count. */
const struct conf_worst *conf_worst(int *n);
/* Print them as notes: the heading, then one line per tensor. */
void conf_worst_notes(const char *heading);

/* A decoded image [3, H, W] in [-1, 1] against the case's image.uint8,
 * through vae_to_uint8, with the suite's rule: at most 1 level on at most 1%
 * of the bytes. Checks it, adds to the totals conf_uint8_note prints, and
 * returns the 8-bit image (free it), NULL when image.uint8 is missing. */
unsigned char *conf_compare_uint8(const struct json *c, const struct st_file *f, const float *img, int H, int W);
void conf_uint8_note(void);

#endif
