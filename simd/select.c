/* select.c — pick a backend by name (--backend) or by what this CPU can do. */
#include <string.h>

#include "../ref/common.h"
#include "../ref/ops.h"

const struct ops *ops_by_name(const char *name, int threads, struct os_err *err)
{
    (void)threads;
    if (!name || strcmp(name, "auto") == 0 || strcmp(name, "ref") == 0) return ops_ref();
    os_fail(err, "--backend %s: unknown backend (available: ref)", name);
    return NULL;
}
