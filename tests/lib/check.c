#include "check.h"

#include "../../tools/lib/tensorcmp.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int n_pass, n_fail, n_skip;

int check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (ok) n_pass++;
    else n_fail++;
    return ok;
}

void check_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("skip ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    n_skip++;
}

void check_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("     ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

int check_summary(void)
{
    if (n_skip) printf("%d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    else printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

static const char *dir_from_env(const char *var, const char *def, const char *what, int *warned)
{
    const char *d = getenv(var);
    if (!d || !*d) d = def;
    struct stat st;
    if (stat(d, &st) == 0 && S_ISDIR(st.st_mode)) return d;
    if (!*warned) {
        printf("skip %s not found at %s (set %s): its checks are skipped\n", what, d, var);
        *warned = 1;
        n_skip++;
    }
    return NULL;
}

const char *conformance_dir(void)
{
    static int warned;
    return dir_from_env("ONESTEP_CONFORMANCE", "../shared/conformance", "conformance suite", &warned);
}

const char *clip_tokenizer_dir(void)
{
    static int warned;
    return dir_from_env("ONESTEP_CLIP_TOKENIZER", "../shared/clip-tokenizer", "CLIP tokenizer data", &warned);
}

char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len) *len = (size_t)n;
    }
    return buf;
}

void diff_floats(const float *a, const float *b, size_t n, double tol, struct diff_stats *st)
{
    struct cmp_stats c;
    cmp_floats(a, b, n, tol, 0.0, &c);
    st->max_abs = c.max_abs;
    st->max_rel = c.max_rel;
    st->ref_max_abs = c.ref_max_abs;
    st->worst = c.worst;
    st->mismatches = c.mismatches;
    st->nonfinite = c.nonfinite;
}
