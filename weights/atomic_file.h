/* atomic_file.h — write a file so that it either appears whole or not at all.
 *
 * Output goes to a temporary file in the destination's directory (same file
 * system, so rename is atomic), is flushed, and is renamed over the target only
 * when every byte is written. On any failure the temporary file is removed:
 * an interrupted run never leaves a half-written PNG or safetensors file. */
#ifndef ONESTEP_ATOMIC_FILE_H
#define ONESTEP_ATOMIC_FILE_H

#include <stdio.h>

#include "../ref/common.h"

struct atomic_file {
    FILE *f;
    char *final_path;
    char *tmp_path;
};

/* Open a temporary file next to `path`. Fails early (before any work) if the
 * directory is not writable or `path` is a directory. */
int atomic_open(struct atomic_file *af, const char *path, struct os_err *err);
/* Flush, fsync, close and rename onto the final path. */
int atomic_commit(struct atomic_file *af, struct os_err *err);
/* Close and delete the temporary file (safe to call after a failed commit). */
void atomic_abort(struct atomic_file *af);

/* Check, without creating anything, that `path` could be written: its
 * directory exists and is writable, and it is not itself a directory. Used by
 * the CLI to refuse a bad -o before spending minutes on a generation. */
int atomic_check_writable(const char *path, struct os_err *err);

#endif
