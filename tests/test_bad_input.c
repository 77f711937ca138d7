/* The program against bad input: every surface a user or a downloaded file
 * reaches (CLI values, prompts, init images, model directories: safetensors,
 * JSON configs, configs that disagree with the weights, tokenizer files),
 * each case a small break of something good.
 *
 * For each case ./onestep ($ONESTEP_BIN) must exit with status 2, print
 * nothing on stdout and exactly ONE line on stderr, "onestep: ..." naming the
 * input and the problem (the case's distinctive substring), with no control
 * characters; and leave nothing in the output directory (no PNG, no
 * ".out.png.XXXXXX" temporary). The parsers' own corner cases are in
 * test_safetensors, test_json, test_tokenizer and test_image_io; this test is
 * about what the program does with them. Bad models are copies of the
 * suite's sd-turbo-tiny (symlinks, one file replaced by a broken one) and of
 * a synthetic tiny-sd single-file checkpoint (tools/lib/synth.h). A full disk
 * is RLIMIT_FSIZE with SIGXFSZ ignored: writes past it fail with EFBIG. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "../tools/lib/image_io.h"
#include "../tools/lib/synth.h"
#include "../weights/json.h"
#include "../weights/safetensors.h"
#include "lib/check.h"
#include "lib/proc.h"

#define MAX_ARGS 40

static char root[64];        /* scratch: /tmp/onestep-bad-XXXXXX */
static char outdir[128];     /* where every -o / --dump of a case points */
static char out_png[160];    /* outdir/out.png */
static char model[128];      /* root/model: a fresh copy per case */
static char onestep_bin[512];
static const char *tiny, *sdxl_tiny, *init_png; /* in the suite */

/* ------------------------------------------------------------ running */

struct opt {
    const char *env;   /* "NAME=value" for the child, or NULL */
    long fsize_limit;  /* RLIMIT_FSIZE in bytes (0 = none): a full disk */
    int last_line;     /* the failure comes after progress lines: check only the last */
};

struct result {
    int status; /* exit code, or 128 + signal */
    char *out, *err;
};

static char *slurp_fd(int fd)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    lseek(fd, 0, SEEK_SET);
    ssize_t got;
    while (b && (got = read(fd, b + n, cap - n)) > 0) {
        n += (size_t)got;
        if (n == cap) {
            char *b2 = realloc(b, 2 * cap + 1);
            if (!b2) free(b);
            b = b2;
            cap *= 2;
        }
    }
    if (b) b[n] = '\0';
    return b;
}

/* Run onestep with args (NULL-terminated); stdout and stderr captured. */
static void run_argv(const char *const *args, const struct opt *o, struct result *r)
{
    char pout[200], perr[200];
    snprintf(pout, sizeof pout, "%s/stdout", root);
    snprintf(perr, sizeof perr, "%s/stderr", root);
    int fo = open(pout, O_RDWR | O_CREAT | O_TRUNC, 0600), fe = open(perr, O_RDWR | O_CREAT | O_TRUNC, 0600);
    const char *argv[MAX_ARGS + 2];
    int n = 0;
    argv[n++] = onestep_bin;
    for (int i = 0; args[i] && n < MAX_ARGS; i++) argv[n++] = args[i];
    argv[n] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fo, 1);
        dup2(fe, 2);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        unsetenv("ONESTEP_MEMORY_LIMIT");
        if (o && o->env) putenv((char *)o->env);
        if (o && o->fsize_limit) {
            signal(SIGXFSZ, SIG_IGN); /* kept across exec: a write past the limit fails with EFBIG */
            struct rlimit rl = {(rlim_t)o->fsize_limit, (rlim_t)o->fsize_limit};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        alarm(300); /* a hang is a failure, not a stuck test run */
        execv(onestep_bin, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    r->out = slurp_fd(fo);
    r->err = slurp_fd(fe);
    close(fo);
    close(fe);
}

static void result_free(struct result *r)
{
    free(r->out);
    free(r->err);
}

/* Names in outdir, sorted and joined (hidden ones too: temporaries are). */
static char *listing(void)
{
    DIR *d = opendir(outdir);
    char *names[256];
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 256)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    if (d) closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(names[i]) + 1;
    char *s = calloc(1, len);
    for (int i = 0; i < n; i++) {
        strcat(s, names[i]);
        strcat(s, " ");
        free(names[i]);
    }
    return s;
}

/* The case's verdict on what the run printed: NULL if fine, else why not. */
static const char *judge(const struct result *r, int want_status, const char *needle, int last_line)
{
    static char why[256];
    if (r->status != want_status) {
        snprintf(why, sizeof why, "exit status %d, expected %d", r->status, want_status);
        return why;
    }
    if (r->out[0]) return "wrote to stdout";
    const char *line = r->err;
    size_t len = strlen(r->err);
    if (len == 0 || r->err[len - 1] != '\n') return "stderr is not a line ending in a newline";
    if (last_line) {
        for (const char *q = r->err; q < r->err + len - 1; q++)
            if (*q == '\n') line = q + 1;
    } else if (memchr(r->err, '\n', len - 1)) {
        return "more than one line on stderr";
    }
    if (strncmp(line, "onestep: ", 9) != 0) return "the line does not start with \"onestep: \"";
    for (const char *q = line; *q != '\n'; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) return "a control character in the message";
    if (!strstr(line, needle)) {
        snprintf(why, sizeof why, "the message lacks \"%s\"", needle);
        return why;
    }
    return NULL;
}

/* One bad input: refused as the header comment says. */
static void refused_opt(const char *what, const char *needle, const struct opt *o, const char *const *args)
{
    char *before = listing();
    struct result r;
    run_argv(args, o, &r);
    char *after = listing();
    const char *why = judge(&r, 2, needle, o && o->last_line);
    if (!why && strcmp(before, after)) why = "files were left in the output directory";
    char shown[400];
    const char *line = r.err;
    if (o && o->last_line && strlen(r.err) > 1)
        for (const char *q = r.err; q < r.err + strlen(r.err) - 1; q++)
            if (*q == '\n') line = q + 1;
    snprintf(shown, sizeof shown, "%.*s", (int)strcspn(line, "\n"), line);
    check(!why, "%s: %s%s%s", what, shown, why ? "  <-- " : "", why ? why : "");
    if (why && strcmp(before, after)) check_note("output directory before: [%s] after: [%s]", before, after);
    free(before);
    free(after);
    result_free(&r);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
/* refused("what", "needle", args...): -o outdir/out.png is added first. */
#define refused(what, needle, ...) refused_opt(what, needle, NULL, ARGS("-o", out_png, __VA_ARGS__))

/* A good run: exit 0, nothing on stdout, the PNG and nothing else written. */
static void succeeds(const char *what, const char *const *args)
{
    struct result r;
    run_argv(args, NULL, &r);
    char *after = listing();
    int ok = r.status == 0 && !r.out[0] && !strcmp(after, "out.png ");
    check(ok, "%s: exit %d, output directory [%s]", what, r.status, after);
    if (!ok) check_note("stderr: %s", r.err);
    unlink(out_png);
    free(after);
    result_free(&r);
}

/* ------------------------------------------------------------ bad models */

static int remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    struct dirent *e;
    int rc = d ? 0 : -1;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[PATH_MAX];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (remove_tree(sub)) rc = -1;
    }
    if (d) closedir(d);
    return rmdir(path) || rc ? -1 : 0;
}

/* dst mirrors src: its directories made, its files symlinked. */
static int mirror(const char *src, const char *dst)
{
    if (mkdir(dst, 0700)) return -1;
    DIR *d = opendir(src);
    struct dirent *e;
    int rc = d ? 0 : -1;
    while (d && !rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char s[PATH_MAX], t[PATH_MAX];
        snprintf(s, sizeof s, "%s/%s", src, e->d_name);
        snprintf(t, sizeof t, "%s/%s", dst, e->d_name);
        struct stat st;
        if (stat(s, &st)) rc = -1;
        else if (S_ISDIR(st.st_mode)) rc = mirror(s, t);
        else rc = symlink(s, t);
    }
    if (d) closedir(d);
    return rc;
}

/* root/model: every file of sd-turbo-tiny as a symlink, so breaking one is
 * cheap and the suite stays untouched. */
static int fresh_model(void)
{
    return remove_tree(model) || mirror(tiny, model) ? -1 : 0;
}

static void model_path(const char *rel, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", model, rel);
}

/* Replace model/rel with these bytes. */
static int put(const char *rel, const void *data, size_t n)
{
    char p[400];
    model_path(rel, p, sizeof p);
    unlink(p);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static char *original(const char *rel, size_t *n)
{
    char p[400];
    snprintf(p, sizeof p, "%s/%s", tiny, rel);
    return read_file(p, n);
}

static char *find(char *s, size_t n, const char *what, size_t len)
{
    for (size_t i = 0; s && len <= n && i <= n - len; i++)
        if (!memcmp(s + i, what, len)) return s + i;
    return NULL;
}

/* The suite's file with its first `from` replaced by `to` (binary files too). */
static int edit(const char *rel, const char *from, const char *to)
{
    size_t n;
    char *s = original(rel, &n);
    char *at = find(s, n, from, strlen(from));
    if (!at) {
        free(s);
        return -1;
    }
    size_t a = (size_t)(at - s), lf = strlen(from), lt = strlen(to);
    char *t = malloc(n - lf + lt + 1);
    memcpy(t, s, a);
    memcpy(t + a, to, lt);
    memcpy(t + a + lt, at + lf, n - a - lf);
    int rc = put(rel, t, n - lf + lt);
    free(s);
    free(t);
    return rc;
}

/* The suite's file with n bytes at `off` overwritten. */
static int patched(const char *rel, size_t off, const void *bytes, size_t len)
{
    size_t n;
    char *s = original(rel, &n);
    int rc = -1;
    if (s && off + len <= n) {
        memcpy(s + off, bytes, len);
        rc = put(rel, s, n);
    }
    free(s);
    return rc;
}

static int truncated(const char *rel, size_t keep)
{
    size_t n;
    char *s = original(rel, &n);
    int rc = s && keep < n ? put(rel, s, keep) : -1;
    free(s);
    return rc;
}

/* Only the first `lines` whole lines. */
static int first_lines(const char *rel, int lines)
{
    size_t n, k = 0;
    char *s = original(rel, &n);
    for (int l = 0; s && l < lines && k < n; k++)
        if (s[k] == '\n') l++;
    int rc = s && k < n ? put(rel, s, k) : -1;
    free(s);
    return rc;
}

/* Rewrite a safetensors file of the model without tensor `drop` and/or with
 * an extra tensor `add` (4 floats). */
static int rewrite_st(const char *rel, const char *drop, const char *add)
{
    char src[400], dst[400];
    snprintf(src, sizeof src, "%s/%s", tiny, rel);
    model_path(rel, dst, sizeof dst);
    struct st_file *f;
    struct os_err err = {{0}};
    if (st_open(src, &f, &err)) return -1;
    struct st_writer *w = st_writer_new();
    int rc = 0;
    for (size_t i = 0; i < f->ntensors && !rc; i++) {
        const struct tensor *t = &f->tensors[i];
        if (drop && !strcmp(t->name, drop)) continue;
        rc = st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err);
    }
    if (add && !rc) {
        float v[4] = {1, 2, 3, 4};
        int64_t shape[1] = {4};
        rc = st_writer_add(w, add, DT_F32, 1, shape, v, &err);
    }
    unlink(dst);
    if (!rc) rc = st_writer_write(w, dst, &err);
    st_writer_free(w);
    st_close(f);
    return rc;
}

static int fifo(const char *rel)
{
    char p[400];
    model_path(rel, p, sizeof p);
    unlink(p);
    return mkfifo(p, 0600);
}

/* A model broken by `setup` (0 = done); a failed setup is a failed check. */
#define bad_model(what, needle, setup)                                                                        \
    do {                                                                                                      \
        if (fresh_model() != 0 || (setup) != 0) {                                                             \
            check(0, "%s: could not set up the broken model", what);                                          \
            break;                                                                                            \
        }                                                                                                     \
        refused(what, needle, "-m", model, "-p", "a cat");                                                    \
    } while (0)

/* ------------------------------------------------------------ images */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void chunk(FILE *f, const char *type, const unsigned char *data, uint32_t n)
{
    unsigned char b[8];
    put_be32(b, n);
    memcpy(b + 4, type, 4);
    fwrite(b, 1, 8, f);
    if (n) fwrite(data, 1, n, f);
    uLong crc = crc32(0, (const Bytef *)type, 4);
    if (n) crc = crc32(crc, data, n); /* crc32(crc, NULL, 0) would restart at 0 */
    put_be32(b, (uint32_t)crc);
    fwrite(b, 1, 4, f);
}

/* A PNG of w x h pixels of `channels` 8-bit samples (color type from the
 * count: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA); pixel data = a gradient.
 * With ihdr_only the file stops after IHDR (the size is all a check needs). */
static void write_png(const char *path, uint32_t w, uint32_t h, int channels, int ihdr_only)
{
    static const int ctype[5] = {0, 0, 4, 2, 6};
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite("\x89PNG\r\n\x1a\n", 1, 8, f);
    unsigned char ihdr[13];
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8;
    ihdr[9] = (unsigned char)ctype[channels];
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    chunk(f, "IHDR", ihdr, 13);
    if (!ihdr_only) {
        size_t row = 1 + (size_t)w * channels, n = row * h;
        unsigned char *raw = calloc(1, n);
        for (size_t y = 0; y < h; y++)
            for (size_t x = 1; x < row; x++) raw[y * row + x] = (unsigned char)(x * 3 + y * 5);
        uLongf cap = compressBound((uLong)n);
        unsigned char *z = malloc(cap);
        compress(z, &cap, raw, (uLong)n);
        chunk(f, "IDAT", z, (uint32_t)cap);
        chunk(f, "IEND", NULL, 0);
        free(raw);
        free(z);
    }
    fclose(f);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

/* ------------------------------------------------------------ cases */

static void cli_values(void)
{
    refused("--steps 0", "--steps 0: must be between 1 and 1000", "-m", tiny, "-p", "a cat", "--steps", "0");
    refused("--steps -3", "--steps -3: must be between 1 and 1000", "-m", tiny, "-p", "a cat", "--steps", "-3");
    refused("--steps 1001", "--steps 1001: must be between 1 and 1000", "-m", tiny, "-p", "a cat", "--steps",
            "1001");
    refused("--steps past 64 bits", "must be between 1 and 1000", "-m", tiny, "-p", "a cat", "--steps",
            "99999999999999999999");
    refused("--steps 2x", "--steps 2x: not an integer", "-m", tiny, "-p", "a cat", "--steps", "2x");
    refused("-W 65 (not a multiple of 8)", "size 65x64: width and height must be multiples of 8 (try 64x64)", "-m",
            tiny, "-p", "a cat", "-W", "65");
    refused("-H 100 (not a multiple of 8)", "multiples of 8", "-m", tiny, "-p", "a cat", "-H", "100");
    refused("-W 0", "-W 0: must be between 8 and 16384", "-m", tiny, "-p", "a cat", "-W", "0");
    refused("-W -64", "-W -64: must be between 8 and 16384", "-m", tiny, "-p", "a cat", "-W", "-64");
    refused("-H 100000", "-H 100000: must be between 8 and 16384", "-m", tiny, "-p", "a cat", "-H", "100000");
    refused("-W 16384 (over the 8192 the library accepts)", "the largest side supported is 8192", "-m", tiny, "-p",
            "a cat", "-W", "16384");
    refused("--strength 0", "--strength 0: must be in (0, 1]", "-m", tiny, "-p", "a cat", "-i", init_png,
            "--strength", "0");
    refused("--strength 1.5", "--strength 1.5: must be in (0, 1]", "-m", tiny, "-p", "a cat", "-i", init_png,
            "--strength", "1.5");
    refused("--strength -0.1", "must be in (0, 1]", "-m", tiny, "-p", "a cat", "-i", init_png, "--strength", "-0.1");
    refused("--strength nan", "--strength nan: not a number", "-m", tiny, "-p", "a cat", "-i", init_png,
            "--strength", "nan");
    refused("--strength 1e999", "--strength 1e999: not a number", "-m", tiny, "-p", "a cat", "-i", init_png,
            "--strength", "1e999");
    refused("--strength without -i", "--strength needs -i/--init-img", "-m", tiny, "-p", "a cat", "--strength",
            "0.5");
    refused("--strength 0.1 with 4 steps (no step would run)", "runs no step", "-m", tiny, "-p", "a cat", "-i",
            init_png, "--steps", "4", "--strength", "0.1");
    refused("--seed 2^64", "too large", "-m", tiny, "-p", "a cat", "-s", "18446744073709551616");
    refused("--seed -1", "is negative", "-m", tiny, "-p", "a cat", "-s", "-1");
    refused("--seed 12abc", "not a decimal integer", "-m", tiny, "-p", "a cat", "-s", "12abc");
    refused("--timesteps 999,abc", "expected integers 0..999", "-m", tiny, "-p", "a cat", "--timesteps", "999,abc");
    refused("--timesteps 1,2 (increasing)", "must be strictly decreasing", "-m", tiny, "-p", "a cat", "--timesteps",
            "1,2");
    refused("--timesteps 1000", "expected integers 0..999", "-m", tiny, "-p", "a cat", "--timesteps", "1000");
    refused("--threads 0", "-t 0: must be between 1 and 1024", "-m", tiny, "-p", "a cat", "-t", "0");
    refused("--backend nonsense", "unknown backend", "-m", tiny, "-p", "a cat", "--backend", "nonsense");
    refused("--rng nonsense", "unknown rng \"nonsense\"", "-m", tiny, "-p", "a cat", "--rng", "nonsense");
    refused("--lora-dtype f64", "--lora-dtype f64: expected auto, f32 or stored", "-m", tiny, "-p", "a cat",
            "--lora-dtype", "f64");
    refused("--variant fp8", "--variant fp8: expected auto, fp16 or fp32", "-m", tiny, "-p", "a cat", "--variant",
            "fp8");
    refused("unknown option", "unknown option --frobnicate", "-m", tiny, "-p", "a cat", "--frobnicate");
    refused("option without its value", "--steps: missing value", "-m", tiny, "-p", "a cat", "--steps");
    refused("no prompt", "-p PROMPT (or --prompt-file FILE) is required", "-m", tiny);
    refused("a control character in a value", "-W 1\\x1b[31m: not an integer", "-m", tiny, "-p", "a cat", "-W",
            "1\x1b[31m");
    char p[400];
    snprintf(p, sizeof p, "%s/sched.json", root);
    refused("--scheduler-config missing", "sched.json: cannot open", "-m", tiny, "-p", "a cat", "--scheduler-config",
            p);
    const char *cut = "{\"_class_name\": \"EulerAncestralDiscreteScheduler\", \"beta";
    write_bytes(p, cut, strlen(cut));
    refused("--scheduler-config truncated", "sched.json: invalid JSON", "-m", tiny, "-p", "a cat",
            "--scheduler-config", p);
    const char *other = "{\"_class_name\": \"DPMSolverSDEScheduler\"}";
    write_bytes(p, other, strlen(other));
    refused("--scheduler-config of an unsupported class", "DPMSolverSDEScheduler", "-m", tiny, "-p", "a cat",
            "--scheduler-config", p);
    unlink(p);
    refused_opt("tokenize: invalid UTF-8", "prompt: invalid UTF-8 at byte 0", NULL,
                ARGS("tokenize", "-m", tiny, "-p", "\xff"));
}

static void outputs(void)
{
    char p[400];
    refused_opt("-o a directory", "is a directory, expected a file name", NULL,
                ARGS("-m", tiny, "-p", "a cat", "-o", outdir));
    snprintf(p, sizeof p, "%s/", root);
    refused_opt("-o ending in /", "is a directory", NULL, ARGS("-m", tiny, "-p", "a cat", "-o", p));
    snprintf(p, sizeof p, "%s/missing/out.png", outdir);
    refused_opt("-o in a missing directory", "missing does not exist", NULL, ARGS("-m", tiny, "-p", "a cat", "-o", p));
    snprintf(p, sizeof p, "%s/stdout/out.png", root); /* root/stdout is a file */
    refused_opt("-o under a file", "stdout is not a directory", NULL, ARGS("-m", tiny, "-p", "a cat", "-o", p));
    refused_opt("-o \"\"", "output path is empty", NULL, ARGS("-m", tiny, "-p", "a cat", "-o", ""));
    snprintf(p, sizeof p, "%s/fifo", root);
    mkfifo(p, 0600);
    refused_opt("-o a FIFO (renaming over it would replace it)", "exists and is not a regular file", NULL,
                ARGS("-m", tiny, "-p", "a cat", "-o", p));
    char longname[400];
    snprintf(longname, sizeof longname, "%s/", outdir);
    size_t n = strlen(longname);
    memset(longname + n, 'a', 250);
    strcpy(longname + n + 250, ".png");
    refused_opt("-o with a 254-byte file name", "file name too long", NULL,
                ARGS("-m", tiny, "-p", "a cat", "-o", longname));
    if (geteuid() != 0) {
        snprintf(p, sizeof p, "%s/ro", root);
        mkdir(p, 0555);
        snprintf(p, sizeof p, "%s/ro/out.png", root);
        refused_opt("-o in a read-only directory", "is not writable", NULL, ARGS("-m", tiny, "-p", "a cat", "-o", p));
    } else {
        check_skip("-o in a read-only directory: running as root, which may write anywhere");
    }
    refused("--dump a directory", "is a directory", "-m", tiny, "-p", "a cat", "--dump", outdir);
    snprintf(p, sizeof p, "%s/missing/d.safetensors", outdir);
    refused("--dump in a missing directory", "missing does not exist", "-m", tiny, "-p", "a cat", "--dump", p);

    /* a full disk: the PNG write fails after the generation; nothing is left */
    struct opt full = {NULL, 4096, 1};
    refused_opt("disk full while writing the PNG (RLIMIT_FSIZE 4 KiB)", "write failed", &full,
                ARGS("-m", tiny, "-p", "a cat", "-o", out_png));
    /* room for the PNG, not for the dump: the PNG is whole, the dump absent */
    struct opt half = {NULL, 256 << 10, 1};
    snprintf(p, sizeof p, "%s/d.safetensors", outdir);
    struct result r;
    run_argv(ARGS("-m", tiny, "-p", "a cat", "-o", out_png, "--dump", p), &half, &r);
    char *after = listing();
    const char *why = judge(&r, 2, "d.safetensors: write failed", 1);
    unsigned char *rgb = NULL;
    int w = 0, h = 0;
    struct os_err err = {{0}};
    if (!why && strcmp(after, "out.png ")) why = "the output directory holds more than out.png";
    if (!why && image_read_rgb(out_png, &rgb, &w, &h, &err)) why = "the PNG does not decode";
    check(!why, "disk full while writing --dump (RLIMIT_FSIZE 256 KiB): the PNG whole (%dx%d), no dump, exit 2%s%s",
          w, h, why ? "  <-- " : "", why ? why : "");
    free(rgb);
    free(after);
    result_free(&r);
    unlink(out_png);
}

static void prompts(void)
{
    refused("invalid UTF-8 (0xff)", "prompt: invalid UTF-8 at byte 2", "-m", tiny, "-p", "a \xff cat");
    refused("overlong UTF-8 (C0 AF)", "prompt: invalid UTF-8 at byte 0", "-m", tiny, "-p", "\xc0\xaf");
    refused("UTF-16 surrogate in UTF-8 (ED A0 80)", "prompt: invalid UTF-8 at byte 1", "-m", tiny, "-p",
            "x\xed\xa0\x80");
    refused("truncated UTF-8 at the end", "prompt: invalid UTF-8 at byte 5", "-m", tiny, "-p", "a cat\xe7\x8c");
    if (sdxl_tiny)
        refused("SDXL: invalid UTF-8 in --prompt-2", "second prompt: invalid UTF-8", "-m", sdxl_tiny, "-p", "a cat",
                "--prompt-2", "\xfe");

    char pf[400];
    snprintf(pf, sizeof pf, "%s/prompt.txt", root);
    write_bytes(pf, "a cat\n\x80", 7);
    refused("--prompt-file with invalid UTF-8", "prompt: invalid UTF-8 at byte 6", "-m", tiny, "--prompt-file", pf);
    refused("-p and --prompt-file", "-p and --prompt-file: give one of them", "-m", tiny, "-p", "x", "--prompt-file",
            pf);
    snprintf(pf, sizeof pf, "%s/none.txt", root);
    refused("--prompt-file missing", "none.txt: cannot open", "-m", tiny, "--prompt-file", pf);
    refused("--prompt-file a directory", "read failed", "-m", tiny, "--prompt-file", root);
    snprintf(pf, sizeof pf, "%s/huge.txt", root);
    int fd = open(pf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int sparse = fd >= 0 && ftruncate(fd, (off_t)65 << 20) == 0; /* sparse: no 65 MB written */
    if (fd >= 0) close(fd);
    if (sparse) refused("--prompt-file of 65 MiB", "larger than 64 MiB", "-m", tiny, "--prompt-file", pf);
    unlink(pf);

    /* NUL is a character (U+0000), as in diffusers: the prompt works */
    snprintf(pf, sizeof pf, "%s/nul.txt", root);
    write_bytes(pf, "a photo of a cat\0", 17);
    succeeds("--prompt-file holding a NUL byte generates", ARGS("-m", tiny, "--prompt-file", pf, "-o", out_png));

    /* ... and tokenizes to the upstream ids: "a photo of a cat" from the
     * shared tokenizer cases, then byte 0, which CLIP's byte alphabet spells
     * U+0100 ("Ā</w>" in vocab.json) */
    const char *tokdir = clip_tokenizer_dir();
    char path[600];
    struct os_err err = {{0}};
    struct json *cases = NULL, *vocab = NULL;
    if (tokdir) {
        snprintf(path, sizeof path, "%s/tokenizer_cases.json", tokdir);
        cases = json_parse_file(path, 1 << 24, &err);
        snprintf(path, sizeof path, "%s/sd-turbo-tiny/tokenizer/vocab.json", conformance_dir());
        vocab = json_parse_file(path, 1 << 24, &err);
    }
    const struct json *c0 = cases ? json_get(cases, "cases") : NULL;
    c0 = c0 && c0->type == JSON_ARRAY && c0->len ? &c0->items[0] : NULL;
    const struct json *bpe = c0 ? json_get(c0, "bpe_ids") : NULL, *nul = vocab ? json_get(vocab, "\xc4\x80</w>") : NULL;
    const struct json *prompt0 = c0 ? json_get(c0, "prompt") : NULL;
    if (bpe && nul && prompt0 && !strcmp(prompt0->str, "a photo of a cat") && bpe->len == 5) {
        char want[1200] = "49406";
        for (size_t i = 0; i < 5; i++) snprintf(want + strlen(want), sizeof want - strlen(want), " %lld",
                                                (long long)bpe->items[i].integer);
        snprintf(want + strlen(want), sizeof want - strlen(want), " %lld 49407", (long long)nul->integer);
        for (int i = 8; i < 77; i++) strcat(want, " 0"); /* SD-Turbo's OpenCLIP tokenizer pads with "!" = 0 */
        strcat(want, "\n");
        struct result r;
        run_argv(ARGS("tokenize", "-m", tiny, "--prompt-file", pf), NULL, &r);
        check(r.status == 0 && !strcmp(r.out, want), "tokenize --prompt-file with a NUL: the upstream ids (%s)",
              r.status ? r.err : "exit 0");
        result_free(&r);

        /* a 10 MB prompt: read whole, tokenized to its first 75 tokens, fast */
        snprintf(pf, sizeof pf, "%s/long.txt", root);
        FILE *f = fopen(pf, "wb");
        for (int i = 0; f && i < 10 * 1000 * 1000 / 17; i++) fputs("a photo of a cat ", f);
        if (f) fclose(f);
        strcpy(want, "49406");
        for (int k = 0; k < 15; k++)
            for (size_t i = 0; i < 5; i++) snprintf(want + strlen(want), sizeof want - strlen(want), " %lld",
                                                    (long long)bpe->items[i].integer);
        strcat(want, " 49407\n");
        run_argv(ARGS("tokenize", "-m", tiny, "--prompt-file", pf), NULL, &r);
        check(r.status == 0 && !strcmp(r.out, want), "tokenize a 10 MB --prompt-file: the first 75 tokens (%s)",
              r.status ? r.err : "exit 0");
        result_free(&r);
        succeeds("a 10 MB --prompt-file generates", ARGS("-m", tiny, "--prompt-file", pf, "-o", out_png));
        unlink(pf);
    } else {
        check_skip("NUL and 10 MB prompt ids: no tokenizer_cases.json / vocab.json (%s)", err.msg);
    }
    json_free(cases);
    json_free(vocab);
}

static void images(void)
{
    char p[400], good_jpg[400];
    size_t n;
    char *png = read_file(init_png, &n);
    snprintf(good_jpg, sizeof good_jpg, "tests/bad_input/init_64x64.jpg");

    snprintf(p, sizeof p, "%s/trunc.png", root);
    write_bytes(p, png, n / 2);
    refused("init image: truncated PNG", "trunc.png: cannot decode PNG (file is truncated)", "-m", tiny, "-p",
            "a cat", "-i", p);
    if (png && n > 100) {
        png[n - 40] ^= 0x55; /* inside IDAT: its CRC no longer matches */
        snprintf(p, sizeof p, "%s/crc.png", root);
        write_bytes(p, png, n);
        refused("init image: PNG with a corrupt IDAT", "crc.png: cannot decode PNG", "-m", tiny, "-p", "a cat", "-i",
                p);
    }
    free(png);
    size_t jn;
    char *jpg = read_file(good_jpg, &jn);
    if (check(jpg != NULL, "tests/bad_input/init_64x64.jpg is there (tools/gen_bad_input_images.py)")) {
        snprintf(p, sizeof p, "%s/trunc.jpg", root);
        write_bytes(p, jpg, jn * 2 / 3);
        refused("init image: truncated JPEG", "trunc.jpg: cannot decode JPEG (Premature end of JPEG file)", "-m",
                tiny, "-p", "a cat", "-i", p);
        succeeds("init image: a good JPEG", ARGS("-m", tiny, "-p", "a cat", "-i", good_jpg, "--strength", "1",
                                                  "-o", out_png));
    }
    free(jpg);
    refused("init image: CMYK JPEG", "CMYK JPEG is not supported", "-m", tiny, "-p", "a cat", "-i",
            "tests/bad_input/cmyk_8x8.jpg");
    snprintf(p, sizeof p, "%s/zero.png", root);
    write_png(p, 0, 0, 3, 1);
    refused("init image: 0x0", "zero.png: image is 0x0", "-m", tiny, "-p", "a cat", "-i", p);
    snprintf(p, sizeof p, "%s/huge.png", root);
    write_png(p, 100000, 100000, 3, 1);
    refused("init image: 100000x100000 header", "huge.png: image is 100000x100000; the largest side accepted is 8192",
            "-m", tiny, "-p", "a cat", "-i", p);
    snprintf(p, sizeof p, "%s/rgba.png", root);
    write_png(p, 64, 64, 4, 0);
    refused("init image: RGBA (4 channels)", "rgba.png: image has an alpha channel", "-m", tiny, "-p", "a cat", "-i",
            p);
    snprintf(p, sizeof p, "%s/ga.png", root);
    write_png(p, 64, 64, 2, 0);
    refused("init image: gray + alpha (2 channels)", "image has an alpha channel", "-m", tiny, "-p", "a cat", "-i", p);
    snprintf(p, sizeof p, "%s/gray.png", root);
    write_png(p, 64, 64, 1, 0);
    succeeds("init image: grayscale (1 channel) is expanded to RGB",
             ARGS("-m", tiny, "-p", "a cat", "-i", p, "--strength", "1", "-o", out_png));
    snprintf(p, sizeof p, "%s/odd.png", root);
    write_png(p, 60, 64, 3, 0);
    refused("init image: 60x64 (not a multiple of 8)", "odd.png: image is 60x64; img2img needs a multiple of 8", "-m",
            tiny, "-p", "a cat", "-i", p);
    refused("init image: size differs from -W", "image is 64x64 but -W/-H ask for 128x64", "-m", tiny, "-p", "a cat",
            "-i", init_png, "-W", "128");
    snprintf(p, sizeof p, "%s/text.png", root);
    write_bytes(p, "not an image at all\n", 20);
    refused("init image: not an image", "text.png: not a readable PNG or JPEG", "-m", tiny, "-p", "a cat", "-i", p);
    snprintf(p, sizeof p, "%s/none.png", root);
    refused("init image: missing", "none.png: cannot open", "-m", tiny, "-p", "a cat", "-i", p);
    refused("init image: a directory", "read failed", "-m", tiny, "-p", "a cat", "-i", root);
}

static void safetensors_files(void)
{
    const char *U = "unet/diffusion_pytorch_model.safetensors", *V = "vae/diffusion_pytorch_model.safetensors";
    size_t n = 0;
    free(original(U, &n));
    bad_model("unet weights truncated to half", "diffusion_pytorch_model.safetensors: tensor", truncated(U, n / 2));
    bad_model("unet weights truncated inside the header", "runs past the end of the file", truncated(U, 2000));
    bad_model("unet weights empty", "too short to be a safetensors file (0 bytes)", put(U, "", 0));
    bad_model("header length 2^63-1", "header length 9223372036854775807 is larger than the 100000000-byte limit",
              patched(V, 0, "\xff\xff\xff\xff\xff\xff\xff\x7f", 8));
    bad_model("header is not JSON (a byte flipped)", "vae/diffusion_pytorch_model.safetensors: header: invalid JSON",
              edit(V, "{\"__metadata__\"", "{\"__metadata__\x01"));
    bad_model("unknown dtype", "tensor \"encoder.conv_in.weight\": unknown dtype \"F33\"",
              edit(V, "\"dtype\":\"F32\"", "\"dtype\":\"F33\""));
    bad_model("data_offsets disagree with the shape", "span 436 bytes but F32 [4, 3, 3, 3] needs 432",
              edit(V, "\"data_offsets\":[0,432]", "\"data_offsets\":[0,436]"));
    bad_model("two tensors overlap", "overlap in the data section",
              edit(V, "\"data_offsets\":[432,448]", "\"data_offsets\":[400,416]"));
    char p[400];
    bad_model("weights file is a directory", "diffusion_pytorch_model.safetensors: not a regular file",
              (model_path(U, p, sizeof p), unlink(p) || mkdir(p, 0700)));
    bad_model("weights file is a FIFO", "not a regular file", fifo(V));
    bad_model("no unet weights at all", "no weights file",
              (model_path(U, p, sizeof p), unlink(p)) ||
                  (model_path("unet/diffusion_pytorch_model.fp16.safetensors", p, sizeof p), unlink(p)));
}

static void configs(void)
{
    const char *UC = "unet/config.json";
    size_t n = 0;
    free(original(UC, &n));
    bad_model("unet config truncated", "unet/config.json: invalid JSON at line", truncated(UC, n / 2));
    bad_model("unet config empty", "unet/config.json: invalid JSON at line 1, column 1: unexpected end of input",
              put(UC, "", 0));
    bad_model("unet config is a list", "unet/config.json: must be a JSON object", put(UC, "[1, 2]", 6));
    char deep[200002];
    memset(deep, '[', 100000);
    memset(deep + 100000, ']', 100000);
    bad_model("unet config nested 100000 deep", "nesting deeper than 64 levels", put(UC, deep, 200000));
    bad_model("unet config with a duplicate key", "duplicate key \"a\"", put(UC, "{\"a\": 1, \"a\": 2}", 16));
    bad_model("unet config: block_out_channels of the wrong type",
              "\"block_out_channels\" must be a list with one channel count per block",
              edit(UC, "\"block_out_channels\": [", "\"block_out_channels\": \"abc\", \"x\": ["));
    bad_model("unet config: layers_per_block huge", "\"layers_per_block\" entry 0 is 99999999999; expected 1..64",
              edit(UC, "\"layers_per_block\": 2", "\"layers_per_block\": 99999999999"));
    bad_model("unet config: sample_size 1e30", "\"sample_size\" must be an integer",
              edit(UC, "\"sample_size\": 8", "\"sample_size\": 1e30"));
    bad_model("unet config: norm_num_groups 0 (a divisor)", "\"norm_num_groups\" is 0",
              edit(UC, "\"norm_num_groups\": 4", "\"norm_num_groups\": 0"));
    bad_model("unet config: norm_num_groups 3 (does not divide 16)", "not divisible into 3 groups",
              edit(UC, "\"norm_num_groups\": 4", "\"norm_num_groups\": 3"));
    bad_model("unet config: attention_head_dim 0 (a divisor)", "\"attention_head_dim\" entry 0 is 0",
              edit(UC, "\"attention_head_dim\": [\n    2,", "\"attention_head_dim\": [\n    0,"));
    bad_model("unet config: a missing key with no default (down_block_types)", "\"down_block_types\" must be a list",
              edit(UC, "\"down_block_types\"", "\"down_block_types_\""));
    bad_model("vae config: scaling_factor 1e400 (infinite)", "\"scaling_factor\" must be a finite non-zero number",
              edit("vae/config.json", "\"scaling_factor\": 0.18215", "\"scaling_factor\": 1e400"));
    bad_model("scheduler config: num_train_timesteps 0", "\"num_train_timesteps\" is 0",
              edit("scheduler/scheduler_config.json", "\"num_train_timesteps\": 1000", "\"num_train_timesteps\": 0"));
    bad_model("model_index.json without _class_name", "model_index.json: missing required key \"_class_name\"",
              edit("model_index.json", "\"_class_name\"", "\"_klass_name\""));
    bad_model("model_index.json: an unsupported pipeline", "pipeline \"FluxPipeline\" is not supported",
              edit("model_index.json", "\"StableDiffusionPipeline\"", "\"FluxPipeline\""));
    char p[400];
    bad_model("no model_index.json", "no model_index.json", (model_path("model_index.json", p, sizeof p), unlink(p)));
    bad_model("no unet/config.json", "unet/config.json: cannot open", (model_path(UC, p, sizeof p), unlink(p)));
    bad_model("unet/config.json is a FIFO", "unet/config.json: not a regular file", fifo(UC));

    /* configs that disagree with the weights */
    bad_model("unet config: cross_attention_dim 32, weights made for 24",
              "has shape [16, 24], but the unet config implies [16, 32]",
              edit(UC, "\"cross_attention_dim\": 24", "\"cross_attention_dim\": 32"));
    bad_model("text_encoder config: vocab_size 10, weights have 49408 rows",
              "has shape [49408, 24], but the text_encoder config implies [10, 24]",
              edit("text_encoder/config.json", "\"vocab_size\": 49408", "\"vocab_size\": 10"));
    bad_model("a tensor missing from the weights", "decoder.conv_in.bias",
              rewrite_st("vae/diffusion_pytorch_model.safetensors", "decoder.conv_in.bias", NULL));
    bad_model("an extra tensor in the weights", "decoder.made_up.weight",
              rewrite_st("vae/diffusion_pytorch_model.safetensors", NULL, "decoder.made_up.weight"));
}

static void tokenizer_files(void)
{
    const char *V = "tokenizer/vocab.json", *M = "tokenizer/merges.txt";
    char p[400];
    size_t nv = 0, nm = 0;
    free(original(V, &nv));
    free(original(M, &nm));
    bad_model("vocab.json missing", "tokenizer/vocab.json: cannot open", (model_path(V, p, sizeof p), unlink(p)));
    bad_model("merges.txt missing", "tokenizer/merges.txt: cannot open", (model_path(M, p, sizeof p), unlink(p)));
    bad_model("vocab.json truncated", "tokenizer/vocab.json: invalid JSON", truncated(V, nv / 2));
    bad_model("merges.txt truncated mid-line", "tokenizer/merges.txt: line", truncated(M, nm / 2 + 1));
    bad_model("merges.txt cut after 1000 whole lines", "is the file truncated?", first_lines(M, 1000));
    bad_model("vocab.json with a duplicate entry", "duplicate key \"cat</w>\"",
              edit(V, "\"cat</w>\": 2368,", "\"cat</w>\": 2368, \"cat</w>\": 2368,"));
    bad_model("vocab.json with an id given twice", "is given to two entries",
              edit(V, "\"cat</w>\": 2368,", "\"cat</w>\": 2369,"));
    bad_model("merges.txt with a duplicate line", "(duplicate merge?)", edit(M, "\ni n\n", "\ni n\ni n\n"));
    bad_model("merges.txt without its #version line", "line 1 is not the \"#version\" header", edit(M, "#version", "#"));
    bad_model("merges.txt is a FIFO", "tokenizer/merges.txt: not a regular file", fifo(M));
    bad_model("pad token not in the vocabulary", "pad token \"<nope>\" is not in vocab.json",
              (model_path("tokenizer/special_tokens_map.json", p, sizeof p), unlink(p)) ||
                  put("tokenizer/tokenizer_config.json", "{\"pad_token\": \"<nope>\"}", 23));
}

/* A copy of a good single-file checkpoint (Stability layout) without tensor
 * `drop`, or with tensor `shrink` half as long: 0 = done. */
static int single_rewrite(const char *good, const char *out, const char *drop, const char *shrink)
{
    struct st_file *f;
    struct os_err err = {{0}};
    if (st_open(good, &f, &err)) return -1;
    struct st_writer *w = st_writer_new();
    int rc = 0;
    for (size_t i = 0; i < f->ntensors && !rc; i++) {
        struct tensor t = f->tensors[i];
        if (drop && !strcmp(t.name, drop)) continue;
        if (shrink && !strcmp(t.name, shrink)) t.shape[0] /= 2; /* a consistent file, the wrong size */
        rc = st_writer_add(w, t.name, t.dtype, t.ndim, t.shape, t.data, &err);
    }
    for (size_t i = 0; i < f->nmeta && !rc; i++) /* mkmodel's metadata names the configs to use */
        rc = st_writer_meta(w, f->meta_keys[i], f->meta_values[i], &err);
    if (!rc) rc = st_writer_write(w, out, &err);
    st_writer_free(w);
    st_close(f);
    return rc;
}

static void single_files(void)
{
    char good[300], bad[300];
    snprintf(good, sizeof good, "%s/single.safetensors", root);
    struct synth_opts so = {0};
    so.model = "tiny-sd";
    so.layout = SYNTH_SINGLE;
    so.dtype = DT_F32;
    so.out = good;
    struct os_err err = {{0}};
    if (synth_model(&so, NULL, NULL, &err) != 0) {
        check(0, "a synthetic tiny-sd single file: %s", err.msg);
        return;
    }
    snprintf(bad, sizeof bad, "%s/single-missing.safetensors", root);
    if (single_rewrite(good, bad, "first_stage_model.decoder.conv_in.bias", NULL) == 0)
        refused("single file: a tensor missing", "missing tensor \"first_stage_model.decoder.conv_in.bias\"", "-m",
                bad, "-p", "a cat");
    snprintf(bad, sizeof bad, "%s/single-shape.safetensors", root);
    if (single_rewrite(good, bad, NULL, "model.diffusion_model.input_blocks.0.0.bias") == 0)
        refused("single file: a tensor of the wrong shape", "has shape [8], but", "-m", bad, "-p", "a cat");
    size_t n;
    char *data = read_file(good, &n);
    snprintf(bad, sizeof bad, "%s/single-trunc.safetensors", root);
    write_bytes(bad, data, n / 2);
    free(data);
    refused("single file: truncated", "file truncated?", "-m", bad, "-p", "a cat");
    snprintf(bad, sizeof bad, "%s/single-none.safetensors", root);
    write_bytes(bad, "\x02\0\0\0\0\0\0\0{}", 10);
    refused("single file: no tensors", "not a Stable Diffusion single-file checkpoint", "-m", bad, "-p", "a cat");
}

static void model_paths(void)
{
    char p[400];
    snprintf(p, sizeof p, "%s/none", root);
    refused("-m missing", "model not found", "-m", p, "-p", "a cat");
    snprintf(p, sizeof p, "%s/notes.txt", root);
    write_bytes(p, "these are not weights\n", 22);
    refused("-m a text file", "notes.txt: header length", "-m", p, "-p", "a cat");
    snprintf(p, sizeof p, "%s/random.safetensors", root);
    unsigned char junk[3000];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 2654435761u >> 13);
    write_bytes(p, junk, sizeof junk);
    refused("-m random bytes named .safetensors", "random.safetensors:", "-m", p, "-p", "a cat");
    snprintf(p, sizeof p, "%s/vae/diffusion_pytorch_model.safetensors", tiny);
    refused("-m one component's weights", "this is one component of a diffusers model", "-m", p, "-p", "a cat");
    snprintf(p, sizeof p, "%s/empty", root);
    mkdir(p, 0700);
    refused("-m an empty directory", "no model_index.json", "-m", p, "-p", "a cat");
}

static void memory(void)
{
    struct opt tight = {"ONESTEP_MEMORY_LIMIT=1M", 0, 0};
    refused_opt("more memory than available (ONESTEP_MEMORY_LIMIT=1M)",
                "size 64x64 needs about", &tight, ARGS("-m", tiny, "-p", "a cat", "-o", out_png));
    refused_opt("the message says where the limit comes from", "ONESTEP_MEMORY_LIMIT allows 1 MiB", &tight,
                ARGS("-m", tiny, "-p", "a cat", "-o", out_png));
    struct opt malformed = {"ONESTEP_MEMORY_LIMIT=lots", 0, 0};
    refused_opt("ONESTEP_MEMORY_LIMIT=lots", "ONESTEP_MEMORY_LIMIT=lots: expected a number of bytes", &malformed,
                ARGS("-m", tiny, "-p", "a cat", "-o", out_png));
    /* enough: the same run goes through */
    struct result r;
    const struct opt roomy = {"ONESTEP_MEMORY_LIMIT=64M", 0, 0};
    run_argv(ARGS("-m", tiny, "-p", "a cat", "-o", out_png), &roomy, &r);
    check(r.status == 0 && access(out_png, F_OK) == 0, "ONESTEP_MEMORY_LIMIT=64M: the run fits (exit %d)", r.status);
    unlink(out_png);
    result_free(&r);
}

int main(void)
{
    snprintf(onestep_bin, sizeof onestep_bin, "%s/onestep", bin_dir());
    if (!check(access(onestep_bin, X_OK) == 0, "%s exists (make builds it)", onestep_bin)) return check_summary();
    const char *suite_rel = conformance_dir();
    char suite[PATH_MAX];
    if (!suite_rel) return check_summary();
    if (!realpath(suite_rel, suite)) return check(0, "realpath %s", suite_rel), check_summary();
    static char tiny_buf[PATH_MAX + 32], sdxl_buf[PATH_MAX + 32], init_buf[PATH_MAX + 48];
    snprintf(tiny_buf, sizeof tiny_buf, "%s/sd-turbo-tiny", suite);
    snprintf(sdxl_buf, sizeof sdxl_buf, "%s/sdxl-turbo-tiny", suite);
    snprintf(init_buf, sizeof init_buf, "%s/init_images/init_64x64.png", suite);
    tiny = tiny_buf;
    sdxl_tiny = access(sdxl_buf, F_OK) == 0 ? sdxl_buf : NULL;
    init_png = init_buf;

    strcpy(root, "/tmp/onestep-bad-XXXXXX");
    if (!mkdtemp(root)) return check(0, "mkdtemp"), check_summary();
    snprintf(outdir, sizeof outdir, "%s/out", root);
    snprintf(out_png, sizeof out_png, "%s/out.png", outdir);
    snprintf(model, sizeof model, "%s/model", root);
    mkdir(outdir, 0700);
    write_bytes(out_png, "", 0); /* root/stdout must exist before the first run: it is the "file" of a case */
    unlink(out_png);
    {
        struct result r;
        run_argv(ARGS("--version"), NULL, &r);
        result_free(&r);
    }

    succeeds("the unbroken tiny model generates (the baseline every case breaks)",
             ARGS("-m", tiny, "-p", "a cat", "-o", out_png));
    cli_values();
    outputs();
    prompts();
    images();
    safetensors_files();
    configs();
    tokenizer_files();
    model_paths();
    single_files();
    memory();

    if (remove_tree(root) != 0) check_note("could not remove %s", root);
    return check_summary();
}
