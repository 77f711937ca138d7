/* Backend selection: names, errors, "auto", thread counts, options, and the
 * one-line description for --version / -v. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/common.h"
#include "../ref/ops.h"
#include "../simd/cpu.h"
#include "../simd/simd.h"
#include "lib/check.h"
#include "lib/simd_util.h"

int main(void)
{
    struct os_err err = {{0}};
    struct cpu_features f;
    cpu_detect(&f);
    char feat[256];
    check_note("CPU: %s, %d processors, features: %s", f.brand, f.ncpu, cpu_features_str(&f, feat, sizeof feat));

    check(ops_by_name("ref", 4, &err) == ops_ref(), "\"ref\" is the reference table");
    check(ops_by_name(NULL, 1, &err) != NULL, "a NULL name means auto");

    const struct ops *o = ops_by_name("no-such-isa", 1, &err);
    check(o == NULL && strstr(err.msg, "no-such-isa") && strstr(err.msg, "unknown backend") && strstr(err.msg, "ref"),
          "unknown name: \"%s\"", err.msg);

    const char *isas[4];
    int n = simd_isas(isas, 4);
    const struct ops *a = ops_by_name("auto", 2, &err);
    if (n > 0) {
        check(a && strcmp(a->name, isas[0]) == 0, "auto picks the best ISA this CPU runs: %s", a ? a->name : "NULL");
    } else {
        check(a == ops_ref(), "auto falls back to the reference when no SIMD ISA runs");
    }
#if defined(__x86_64__)
    if (!cpu_has_avx512(&f)) {
        o = ops_by_name("avx512", 1, &err);
        check(o == NULL && strstr(err.msg, "lacks"), "avx512 on a CPU without it: \"%s\"", err.msg);
    }
    o = ops_by_name("neon", 1, &err);
    check(o == NULL && strstr(err.msg, "unknown"), "neon on x86-64: \"%s\"", err.msg);
#endif

    for (int i = 0; i < n; i++) {
        const struct ops *t1 = ops_by_name(isas[i], 1, &err), *t3 = ops_by_name(isas[i], 3, &err);
        const struct ops *t1b = ops_by_name(isas[i], 1, &err), *t0 = ops_by_name(isas[i], 0, &err);
        check(t1 && t3 && t1->threads == 1 && t3->threads == 3, "%s: -t is honoured exactly (1 and 3)", isas[i]);
        check(t1 == t1b, "%s: the same request returns the same table", isas[i]);
        check(t0 && t0->threads == f.ncpu, "%s: threads 0 means one per processor (%d)", isas[i], t0 ? t0->threads : -1);
        const char *d = ops_describe(t3);
        check(strstr(d, isas[i]) && strstr(d, "3 threads") && strstr(d, "Winograd") && strstr(d, f.brand),
              "%s: describe: \"%s\"", isas[i], d);
        setenv("ONESTEP_WINOGRAD", "0", 1);
        const struct ops *nw = ops_by_name(isas[i], 3, &err);
        unsetenv("ONESTEP_WINOGRAD");
        check(nw && nw != t3 && strstr(ops_describe(nw), "im2col"), "%s: ONESTEP_WINOGRAD=0 gives its own table: \"%s\"",
              isas[i], nw ? ops_describe(nw) : "NULL");
        /* every kernel slot filled (error/release at the end are optional: stateful backends only) */
        const void *const *slots = (const void *const *)&t1->alloc;
        size_t nslots = (offsetof(struct ops, error) - offsetof(struct ops, alloc)) / sizeof(void *);
        int all = 1;
        for (size_t k = 0; k < nslots; k++) all &= slots[k] != NULL;
        check(all, "%s: all %zu kernel slots are set", isas[i], nslots);
        double g = simd_peak_gflops(isas[i], 1, 0.05, 0);
        check(g > 0, "%s: fp32 FMA peak measurable (%.1f GFLOP/s in a short run)", isas[i], g);
    }
    check(simd_peak_gflops("no-such-isa", 1, 0.01, 0) < 0, "peak of an unknown ISA: -1");
    const char *rd = ops_describe(ops_ref());
    check(strstr(rd, "ref") && strstr(rd, "1 thread"), "describe ref: \"%s\"", rd);
    return check_summary();
}
