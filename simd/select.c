/* select.c — pick a backend by name (--backend) or by what this CPU can do,
 * and describe it (onestep --version / -v).
 *
 * Names: "ref" (the scalar reference), "avx512", "avx2" (x86-64), "neon"
 * (arm64), "auto" (the best of those this CPU runs). Options read from the
 * environment when a table is made:
 *   ONESTEP_WINOGRAD=0   3x3 convolutions by im2col + GEMM instead of Winograd
 *   ONESTEP_WINOGRAD=2   Winograd for every 3x3 stride-1 convolution, even where
 *                        it is slower (tests use it on small shapes)
 *   ONESTEP_BF16DOT=1    avx512 with AVX512_BF16: linear layers with bf16 weights
 *                        through vdpbf16ps (activations rounded to bf16; off by default)
 * A table is made once per (ISA, thread count, options) and kept for the
 * life of the process, so callers never free it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/common.h"
#include "../ref/ops.h"
#ifdef ONESTEP_CUDA
#include "cuda/ops_cuda.h"
#endif
#include "cpu.h"
#include "simd.h"
#include "state.h"

#if defined(__x86_64__)
void simd_fill_ops_avx512(struct ops *o);
void simd_fill_ops_avx2(struct ops *o);
double simd_peak_gflops_avx512(int threads, double seconds, int by_cpu);
double simd_peak_gflops_avx2(int threads, double seconds, int by_cpu);
#define HAVE_X86_TABLES 1
#elif defined(__aarch64__)
void simd_fill_ops_neon(struct ops *o);
double simd_peak_gflops_neon(int threads, double seconds, int by_cpu);
#define HAVE_NEON_TABLE 1
#endif

struct backend {
    struct ops ops;
    struct simd_state state;
    struct backend *next;
};

static struct backend *tables;
static pthread_mutex_t tables_lock = PTHREAD_MUTEX_INITIALIZER;

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    return atoi(v);
}

struct isa_entry {
    const char *name;
    const char *what;
    void (*fill)(struct ops *o);
    int (*available)(const struct cpu_features *f);
    double (*peak)(int threads, double seconds, int by_cpu);
};

static const struct isa_entry isas[] = {
#ifdef HAVE_X86_TABLES
    {"avx512", "AVX-512 F/BW/VL/DQ kernels", simd_fill_ops_avx512, cpu_has_avx512, simd_peak_gflops_avx512},
    {"avx2", "AVX2+FMA+F16C kernels", simd_fill_ops_avx2, cpu_has_avx2, simd_peak_gflops_avx2},
#endif
#ifdef HAVE_NEON_TABLE
    {"neon", "NEON kernels", simd_fill_ops_neon, cpu_has_neon, simd_peak_gflops_neon},
#endif
    {NULL, NULL, NULL, NULL, NULL},
};

static const char *available_list(const struct cpu_features *f, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "ref");
    for (const struct isa_entry *e = isas; e->name; e++)
        if (e->available(f) && used < len) used += (size_t)snprintf(buf + used, len - used, ", %s", e->name);
    return buf;
}

static const struct ops *get_table(const struct isa_entry *e, int threads, const struct cpu_features *f)
{
    struct simd_state st = {0};
    st.winograd = env_int("ONESTEP_WINOGRAD", 1);
    if (st.winograd < 0 || st.winograd > 2) st.winograd = 1;
    st.bf16dot = env_int("ONESTEP_BF16DOT", 0) == 1 && f->avx512bf16 && strcmp(e->name, "avx512") == 0;
    pthread_mutex_lock(&tables_lock);
    for (struct backend *b = tables; b; b = b->next) {
        if (strcmp(b->ops.name, e->name) == 0 && b->ops.threads == threads && b->state.winograd == st.winograd &&
            b->state.bf16dot == st.bf16dot) {
            pthread_mutex_unlock(&tables_lock);
            return &b->ops;
        }
    }
    struct backend *b = OS_CALLOC(1, sizeof *b);
    if (!b) {
        pthread_mutex_unlock(&tables_lock);
        return NULL;
    }
    b->state = st;
    e->fill(&b->ops);
    b->ops.name = e->name;
    b->ops.threads = threads;
    b->ops.state = &b->state;
    char feat[200];
    snprintf(b->state.desc, sizeof b->state.desc, "%s: %s, %d thread%s, 3x3 convolutions by %s%s (CPU: %s; %s)",
             e->name, e->what, threads, threads == 1 ? "" : "s",
             st.winograd == 2 ? "Winograd F(4x4,3x3) always"
             : st.winograd    ? "Winograd F(4x4,3x3) where faster"
                              : "im2col + GEMM",
             st.bf16dot ? ", bf16 weights by vdpbf16ps" : "", f->brand, cpu_features_str(f, feat, sizeof feat));
    b->next = tables;
    tables = b;
    pthread_mutex_unlock(&tables_lock);
    return &b->ops;
}

const struct ops *ops_by_name(const char *name, int threads, struct os_err *err)
{
    struct cpu_features f;
    cpu_detect(&f);
    if (threads <= 0) threads = f.ncpu;
    if (!name) name = "auto";
    if (strcmp(name, "ref") == 0) return ops_ref();
    if (strcmp(name, "cuda") == 0) {
#ifdef ONESTEP_CUDA
        return ops_cuda(threads, err);
#else
        os_fail(err, "--backend cuda: this build has no CUDA support; rebuild with make CUDA=1");
        return NULL;
#endif
    }
    int want_auto = strcmp(name, "auto") == 0;
    for (const struct isa_entry *e = isas; e->name; e++) {
        if (!want_auto && strcmp(name, e->name) != 0) continue;
        if (!e->available(&f)) {
            if (want_auto) continue;
            char feat[200];
            os_fail(err, "--backend %s: this CPU lacks the instructions it needs (has: %s)", name,
                    cpu_features_str(&f, feat, sizeof feat));
            return NULL;
        }
        const struct ops *o = get_table(e, threads, &f);
        if (!o) os_fail(err, "--backend %s: out of memory", name);
        return o;
    }
    if (want_auto) return ops_ref();
    char avail[128];
    os_fail(err, "--backend %s: unknown backend (available here: %s)", name, available_list(&f, avail, sizeof avail));
    return NULL;
}

static char ref_desc[320];

static void make_ref_desc(void)
{
    struct cpu_features f;
    char feat[200];
    cpu_detect(&f);
    snprintf(ref_desc, sizeof ref_desc, "ref: scalar reference kernels, 1 thread (CPU: %s; %s)", f.brand,
             cpu_features_str(&f, feat, sizeof feat));
}

const char *ops_describe(const struct ops *o)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (!o) return "none";
    if (o == ops_ref()) {
        pthread_once(&once, make_ref_desc);
        return ref_desc;
    }
#ifdef ONESTEP_CUDA
    if (strcmp(o->name, "cuda") == 0) return ops_cuda_describe(o);
#endif
    const char *d = o->name;
    pthread_mutex_lock(&tables_lock);
    for (struct backend *b = tables; b; b = b->next)
        if (&b->ops == o) d = b->state.desc;
    pthread_mutex_unlock(&tables_lock);
    return d;
}

double simd_peak_gflops(const char *isa, int threads, double seconds, int by_cpu_time)
{
    struct cpu_features f;
    cpu_detect(&f);
    for (const struct isa_entry *e = isas; e->name; e++)
        if (strcmp(e->name, isa) == 0 && e->available(&f))
            return e->peak(threads > 0 ? threads : f.ncpu, seconds, by_cpu_time);
    return -1;
}
