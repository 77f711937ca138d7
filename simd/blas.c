/* blas.c — see blas.h. */
#include "blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

static struct blas_lib lib;
static const struct blas_lib *loaded;
static char load_error[OS_ERR_MAX];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    struct cpu_features f;
    cpu_detect(&f);
    const char *have = getenv("OPENBLAS_CORETYPE");
    if (have && *have) {
        snprintf(lib.coretype, sizeof lib.coretype, "OPENBLAS_CORETYPE=%s (from the environment)", have);
    } else {
        const char *want = cpu_has_avx512(&f) ? "SkylakeX" : cpu_has_avx2(&f) ? "Haswell" : NULL;
        if (want) {
            setenv("OPENBLAS_CORETYPE", want, 0);
            snprintf(lib.coretype, sizeof lib.coretype, "OPENBLAS_CORETYPE=%s (set by onestep)", want);
        } else {
            snprintf(lib.coretype, sizeof lib.coretype, "OPENBLAS_CORETYPE unset");
        }
    }
    static const char *names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0", NULL};
    void *h = NULL;
    for (int i = 0; names[i] && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_error, sizeof load_error, "OpenBLAS not found (libopenblas.so.0: %s)", dlerror());
        return;
    }
    *(void **)&lib.sgemm = dlsym(h, "cblas_sgemm");
    *(void **)&lib.set_num_threads = dlsym(h, "openblas_set_num_threads");
    char *(*corename)(void);
    *(void **)&corename = dlsym(h, "openblas_get_corename");
    if (!lib.sgemm) {
        snprintf(load_error, sizeof load_error, "OpenBLAS has no cblas_sgemm");
        return;
    }
    snprintf(lib.core, sizeof lib.core, "%s", corename ? corename() : "unknown");
    loaded = &lib;
}

const struct blas_lib *blas_load(struct os_err *err)
{
    pthread_once(&once, load);
    if (!loaded) os_fail(err, "%s", load_error);
    return loaded;
}
