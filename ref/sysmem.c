#include "sysmem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "123", "512K", "64M", "2G" (binary units); -1 if malformed. */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE) return -1;
    int shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10;
    else if (*end == 'M' || *end == 'm') shift = 20;
    else if (*end == 'G' || *end == 'g') shift = 30;
    else if (*end == 'T' || *end == 't') shift = 40;
    if (shift) end++;
    if (*end == 'B' || *end == 'b') end++; /* "2GB" means the same to most people */
    if (*end || (shift && v > (UINT64_MAX >> shift))) return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

/* First line of a small file as an unsigned number; -1 if absent or "max". */
static int read_u64_file(const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[64];
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok || line[0] < '0' || line[0] > '9') return -1;
    *out = strtoull(line, NULL, 10);
    return 0;
}

static int meminfo_available(uint64_t *out)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    int rc = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            *out = (uint64_t)kb * 1024;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* A "key value" line of a cgroup memory.stat file. */
static int stat_value(const char *path, const char *key, uint64_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    size_t n = strlen(key);
    int rc = -1;
    while (rc && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ' ') {
            *out = strtoull(line + n + 1, NULL, 10);
            rc = 0;
        }
    fclose(f);
    return rc;
}

/* The limit of this process's memory cgroup minus what it holds that cannot
 * be reclaimed (usage - inactive file cache: the kubelet's "working set").
 * cgroup v2: the "0::/path" line of /proc/self/cgroup, memory.max; v1: the
 * "N:memory:/path" line, memory.limit_in_bytes. In a container the path may
 * not exist inside its own mount, whose root is then the cgroup itself. */
static int cgroup_headroom(uint64_t *out)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return -1;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        const char *rest = strchr(line, ':');
        if (!rest) continue;
        int v2 = !strncmp(rest, "::", 2);
        if (!v2 && strncmp(rest, ":memory:", 8)) continue;
        const char *cg = rest + (v2 ? 2 : 8);
        static const char *const files[2][4] = {
            {"/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"},
            {"/sys/fs/cgroup", "memory.max", "memory.current", "inactive_file"}};
        const char *const *fl = files[v2];
        for (int root = 0; root < 2 && !found; root++) {
            char dir[1200], path[1300];
            snprintf(dir, sizeof dir, "%s%s", fl[0], root || !strcmp(cg, "/") ? "" : cg);
            uint64_t max, cur = 0, inactive = 0;
            snprintf(path, sizeof path, "%s/%s", dir, fl[1]);
            if (read_u64_file(path, &max)) continue; /* absent, or "max": no limit here */
            snprintf(path, sizeof path, "%s/%s", dir, fl[2]);
            if (read_u64_file(path, &cur)) cur = 0;
            snprintf(path, sizeof path, "%s/memory.stat", dir);
            if (stat_value(path, fl[3], &inactive) || inactive > cur) inactive = 0;
            cur -= inactive;
            *out = max > cur ? max - cur : 0;
            found = 1;
        }
    }
    fclose(f);
    return found ? 0 : -1;
}

int sysmem_available(uint64_t *bytes, const char **from, struct os_err *err)
{
    const char *env = getenv("ONESTEP_MEMORY_LIMIT");
    if (env && *env) {
        if (parse_size(env, bytes))
            return os_fail(err, "ONESTEP_MEMORY_LIMIT=%s: expected a number of bytes, optionally with K, M or G", env);
        *from = "ONESTEP_MEMORY_LIMIT";
        return 0;
    }
    uint64_t v;
    int known = 0;
    if (meminfo_available(&v) == 0) {
        *bytes = v;
        *from = "MemAvailable";
        known = 1;
    }
#if defined(_SC_AVPHYS_PAGES) && defined(_SC_PAGESIZE)
    else {
        long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages > 0 && page > 0) {
            *bytes = (uint64_t)pages * (uint64_t)page;
            *from = "free memory";
            known = 1;
        }
    }
#endif
    if (cgroup_headroom(&v) == 0 && (!known || v < *bytes)) {
        *bytes = v;
        *from = "cgroup limit";
        known = 1;
    }
    return known ? 0 : 1;
}

const char *sysmem_format(uint64_t bytes, char *buf, size_t len)
{
    if (bytes >= ((uint64_t)1 << 30)) snprintf(buf, len, "%.1f GiB", (double)bytes / (double)((uint64_t)1 << 30));
    else if (bytes >= ((uint64_t)1 << 20)) snprintf(buf, len, "%.0f MiB", (double)bytes / (double)((uint64_t)1 << 20));
    else snprintf(buf, len, "%.0f KiB", (double)bytes / 1024.0);
    return buf;
}
