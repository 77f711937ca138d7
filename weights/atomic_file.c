#include "atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return os_strdup(".");
    if (slash == path) return os_strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = OS_MALLOC(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

int atomic_check_writable(const char *path, struct os_err *err)
{
    struct stat st;
    if (!path || !*path) return os_fail(err, "output path is empty");
    if (path[strlen(path) - 1] == '/') return os_fail(err, "%s: is a directory, expected a file name", path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return os_fail(err, "%s: is a directory, expected a file name", path);
    /* The finished file is renamed over the target: over /dev/null or a FIFO
     * that would replace the device node itself (and as root, it can). */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return os_fail(err, "%s: exists and is not a regular file (a device, FIFO or socket); give a file name",
                       path);
    char *dir = dir_of(path);
    if (!dir) return os_fail(err, "out of memory");
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    long name_max = pathconf(dir, _PC_NAME_MAX);
    int rc = 0;
    if (stat(dir, &st) != 0) rc = os_fail(err, "%s: directory %s does not exist", path, dir);
    else if (!S_ISDIR(st.st_mode)) rc = os_fail(err, "%s: %s is not a directory", path, dir);
    else if (access(dir, W_OK | X_OK) != 0) rc = os_fail(err, "%s: directory %s is not writable", path, dir);
    else if (name_max > 0 && strlen(base) + 8 > (size_t)name_max) /* + the temporary name's "." and ".XXXXXX" */
        rc = os_fail(err, "%s: file name too long (at most %ld bytes here)", path, name_max - 8);
    OS_FREE(dir);
    return rc;
}

int atomic_open(struct atomic_file *af, const char *path, struct os_err *err)
{
    memset(af, 0, sizeof *af);
    if (atomic_check_writable(path, err)) return -1;
    size_t n = strlen(path);
    af->final_path = os_strdup(path);
    af->tmp_path = OS_MALLOC(n + 16);
    if (!af->final_path || !af->tmp_path) {
        atomic_abort(af);
        return os_fail(err, "out of memory");
    }
    /* Hidden name in the same directory: ".name.tmp.XXXXXX". */
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    memcpy(af->tmp_path, path, dirlen);
    snprintf(af->tmp_path + dirlen, n + 16 - dirlen, ".%s.XXXXXX", path + dirlen);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        int e = errno;
        OS_FREE(af->tmp_path); /* nothing was created: do not unlink whatever the template now names */
        af->tmp_path = NULL;
        atomic_abort(af);
        return os_fail(err, "%s: cannot create a temporary file: %s", path, strerror(e));
    }
    /* mkstemp makes 0600; give the result the mode a plain fopen would. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) { /* not fatal: the file is still ours */
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        atomic_abort(af);
        return os_fail(err, "%s: cannot open a temporary file: %s", path, strerror(e));
    }
    return 0;
}

int atomic_commit(struct atomic_file *af, struct os_err *err)
{
    int bad = ferror(af->f);
    if (fflush(af->f) != 0) bad = 1;
    int e = errno;
    if (!bad && fsync(fileno(af->f)) != 0 && errno != EINVAL) {
        bad = 1;
        e = errno;
    }
    if (fclose(af->f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    af->f = NULL;
    if (bad) {
        os_fail(err, "%s: write failed: %s", af->final_path, strerror(e));
        atomic_abort(af);
        return -1;
    }
    if (rename(af->tmp_path, af->final_path) != 0) {
        e = errno;
        os_fail(err, "%s: cannot move the finished file into place: %s", af->final_path, strerror(e));
        atomic_abort(af);
        return -1;
    }
    OS_FREE(af->tmp_path);
    OS_FREE(af->final_path);
    af->tmp_path = af->final_path = NULL;
    return 0;
}

void atomic_abort(struct atomic_file *af)
{
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
    }
    if (af->tmp_path) {
        unlink(af->tmp_path); /* may not exist yet: fine */
        OS_FREE(af->tmp_path);
        af->tmp_path = NULL;
    }
    OS_FREE(af->final_path);
    af->final_path = NULL;
}
