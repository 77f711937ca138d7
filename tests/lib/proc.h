/* proc.h — running the built programs and shell commands from a test.
 *
 * The tests of the command-line tools (bench, dumpviz, modelinfo, mkmodel,
 * download.sh) all run a command and look at its output and exit status;
 * this is that one helper, and where the programs are. */
#ifndef ONESTEP_TEST_PROC_H
#define ONESTEP_TEST_PROC_H

#include <stddef.h>

#include "check.h"

/* The directory of the built programs: $ONESTEP_BIN, else ".". */
const char *bin_dir(void);

/* Run the shell command printf(fmt, ...) (add "2>&1" to capture stderr too);
 * out gets the first len - 1 bytes of its stdout, NUL-terminated, and the
 * rest is read and dropped so the command never blocks on a full pipe.
 * Returns its exit status, or -1 if it could not run or did not exit. */
int run_capture(char *out, size_t len, const char *fmt, ...) CHECK_PRINTF(3, 4);

#endif
