/* sysmem.h — how much memory this process can still use, so a generation
 * that cannot fit is refused with a message instead of ending in an OOM kill.
 *
 * The answer is the smallest of:
 *   - $ONESTEP_MEMORY_LIMIT (bytes, or with a K/M/G suffix: "512M", "2G"),
 *     for tests and for users who know better;
 *   - MemAvailable of /proc/meminfo (free memory plus the page cache the
 *     kernel can reclaim; Linux >= 3.14), else sysconf's free pages;
 *   - the limit of this process's memory cgroup (v2 memory.max or v1
 *     memory.limit_in_bytes) minus what it holds beyond reclaimable file
 *     cache: in a container that, not the machine, is where the OOM killer
 *     strikes. */
#ifndef ONESTEP_SYSMEM_H
#define ONESTEP_SYSMEM_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* 0 with the bytes available and `from` naming where the figure came from
 * ("ONESTEP_MEMORY_LIMIT", "MemAvailable", "cgroup limit"); 1 when nothing
 * could be read (then nothing should be refused); -1 when
 * $ONESTEP_MEMORY_LIMIT is malformed (err says so). */
int sysmem_available(uint64_t *bytes, const char **from, struct os_err *err);

/* "1.5 GiB", "320 MiB", "12 KiB" into buf (for messages). */
const char *sysmem_format(uint64_t bytes, char *buf, size_t len);

#endif
