/* cpu.c — CPU feature detection; see cpu.h. */
#include "cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect_arch(struct cpu_features *f)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    int ymm_ok = avx && (xcr0 & 0x6) == 0x6;        /* XMM + YMM state */
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;   /* opmask + ZMM_Hi256 + Hi16_ZMM */
    f->fma = ymm_ok && ((c >> 12) & 1);
    f->f16c = ymm_ok && ((c >> 29) & 1);
    if ((unsigned)__get_cpuid_max(0, NULL) >= 7u) {
        __cpuid_count(7, 0, a, b, c, d);
        f->avx2 = ymm_ok && ((b >> 5) & 1);
        f->avx512f = zmm_ok && ((b >> 16) & 1);
        f->avx512dq = zmm_ok && ((b >> 17) & 1);
        f->avx512bw = zmm_ok && ((b >> 30) & 1);
        f->avx512vl = zmm_ok && ((b >> 31) & 1);
        unsigned max_sub = a;
        if (max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            f->avx512bf16 = zmm_ok && ((a >> 5) & 1);
        }
    }
    if ((unsigned)__get_cpuid_max(0x80000000, NULL) >= 0x80000004u) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        memcpy(f->brand, r, 48);
        f->brand[48] = '\0';
    }
}
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1 << 10)
#endif
static void detect_arch(struct cpu_features *f)
{
    unsigned long hw = getauxval(AT_HWCAP);
    f->neon = (hw & HWCAP_ASIMD) != 0;
    f->fp16 = (hw & HWCAP_ASIMDHP) != 0;
    snprintf(f->brand, sizeof f->brand, "aarch64");
}
#else
static void detect_arch(struct cpu_features *f)
{
    snprintf(f->brand, sizeof f->brand, "unknown");
}
#endif

static struct cpu_features cached;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void detect_once(void)
{
    memset(&cached, 0, sizeof cached);
    detect_arch(&cached);
    /* trim the brand string's padding */
    char *s = cached.brand;
    while (*s == ' ') s++;
    memmove(cached.brand, s, strlen(s) + 1);
    for (size_t n = strlen(cached.brand); n > 0 && cached.brand[n - 1] == ' '; n--) cached.brand[n - 1] = '\0';
    if (!cached.brand[0]) snprintf(cached.brand, sizeof cached.brand, "unknown CPU");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cached.ncpu = n > 0 ? (int)n : 1;
}

void cpu_detect(struct cpu_features *f)
{
    pthread_once(&once, detect_once);
    *f = cached;
}

const char *cpu_features_str(const struct cpu_features *f, char *buf, size_t len)
{
    static const struct {
        const char *name;
        size_t off;
    } names[] = {
        {"fma", offsetof(struct cpu_features, fma)},
        {"f16c", offsetof(struct cpu_features, f16c)},
        {"avx2", offsetof(struct cpu_features, avx2)},
        {"avx512f", offsetof(struct cpu_features, avx512f)},
        {"avx512bw", offsetof(struct cpu_features, avx512bw)},
        {"avx512vl", offsetof(struct cpu_features, avx512vl)},
        {"avx512dq", offsetof(struct cpu_features, avx512dq)},
        {"avx512bf16", offsetof(struct cpu_features, avx512bf16)},
        {"neon", offsetof(struct cpu_features, neon)},
        {"fp16", offsetof(struct cpu_features, fp16)},
    };
    size_t used = 0;
    if (len) buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int on;
        memcpy(&on, (const char *)f + names[i].off, sizeof on);
        if (!on) continue;
        int w = snprintf(buf + used, len > used ? len - used : 0, "%s%s", used ? " " : "", names[i].name);
        if (w > 0) used += (size_t)w;
        if (used >= len) break;
    }
    if (len && !buf[0]) snprintf(buf, len, "none");
    return buf;
}

int cpu_has_avx512(const struct cpu_features *f)
{
    return f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && f->f16c && f->fma;
}

int cpu_has_avx2(const struct cpu_features *f)
{
    return f->avx2 && f->fma && f->f16c;
}

int cpu_has_neon(const struct cpu_features *f)
{
    return f->neon;
}
