#include "rss.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/* "<key>:   1234 kB" from /proc/self/status, in bytes, or -1. */
static long long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            if (sscanf(line + n + 1, "%lld", &v) != 1) v = -1;
            break;
        }
    }
    fclose(f);
    return v < 0 ? -1 : v * 1024;
}

long long rss_current(void)
{
    return status_kb("VmRSS");
}

long long rss_file_current(void)
{
    return status_kb("RssFile");
}

long long rss_peak(void)
{
    long long v = status_kb("VmHWM");
    if (v >= 0) return v;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
#ifdef __APPLE__
    return (long long)ru.ru_maxrss; /* bytes on macOS */
#else
    return (long long)ru.ru_maxrss * 1024; /* kilobytes on Linux and the BSDs */
#endif
}

int rss_reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

void rss_peaks_init(struct rss_peaks *r)
{
    r->overall = rss_peak();
    r->resettable = 1;
}

void rss_stage_begin(struct rss_peaks *r)
{
    long long p = rss_peak();
    if (p > r->overall) r->overall = p;
    if (r->resettable && rss_reset_peak() != 0) r->resettable = 0;
}

long long rss_stage_end(struct rss_peaks *r)
{
    long long p = rss_peak();
    if (p > r->overall) r->overall = p;
    return p;
}

long long rss_overall(struct rss_peaks *r)
{
    long long p = rss_peak();
    if (p > r->overall) r->overall = p;
    return r->overall;
}
