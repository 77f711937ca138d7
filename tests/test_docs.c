/* docs/ runs as written: every ```sh block of README.md and of the markdown
 * files in docs/ is executed, and the pictures in docs/img/ are remade and must come out
 * identical.
 *
 * The convention (docs/design.md, "Commands in docs/", says it to writers):
 *   ```sh            run by this test, in file order, with `sh -e`; a block
 *                    fails when any command in it fails
 *   ```sh norun      shown, not run: needs the real weights, the network or
 *                    hours (listed as skipped, with its first line)
 *   ```text output   the exact stdout of the ```sh block just before it
 *                    (trailing spaces and blank lines ignored)
 *
 * Each document gets a fresh scratch directory that looks like the
 * repository root: the programs (from $ONESTEP_BIN), weights/configs, docs/
 * and tools/ as links, and ../shared/{conformance,clip-tokenizer} next to it
 * when the real ones exist. So the commands run exactly as a reader types
 * them at the repository root, the outputs they write (scratch/...) vanish
 * with the directory, and two builds can run the test at once. A block that
 * names ../shared is skipped when the suite is absent.
 *
 * Links: every relative link and picture of a page must exist, and every
 * #anchor must name a heading of its page. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"

#define TIMEOUT_S 600

static const char *const programs[] = {"onestep", "mkmodel", "tensordiff", "modelinfo", "dumpviz", NULL};

static char root[PATH_MAX];    /* the repository (the test runs from it) */
static char bindir[PATH_MAX];  /* where the programs are */
static char shared[PATH_MAX];  /* real path of ../shared, or "" */

/* snprintf for paths and commands: -1 when it does not fit (then nothing
 * that uses it can run on a cut path). */
static int fmt(char *buf, size_t len, const char *f, ...) CHECK_PRINTF(3, 4);
static int fmt(char *buf, size_t len, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, len, f, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int sh(const char *cmdfmt, const char *a, const char *b)
{
    char cmd[3 * PATH_MAX];
    if (fmt(cmd, sizeof cmd, cmdfmt, a, b)) return -1;
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int link_to(const char *target, const char *dir, const char *name)
{
    char path[PATH_MAX];
    if (fmt(path, sizeof path, "%s/%s", dir, name)) return -1;
    return symlink(target, path);
}

/* A fresh directory P with P/repo laid out like the repository root. */
static int make_scratch(char *top, size_t len, char *repo, size_t rlen)
{
    const char *tmp = getenv("TMPDIR");
    if (fmt(top, len, "%s/onestep-docs-XXXXXX", tmp && *tmp ? tmp : "/tmp") || !mkdtemp(top)) return -1;
    char p[PATH_MAX];
    if (fmt(repo, rlen, "%s/repo", top) || mkdir(repo, 0777)) return -1;
    if (fmt(p, sizeof p, "%s/weights", repo) || mkdir(p, 0777)) return -1;
    if (fmt(p, sizeof p, "%s/weights/configs", root) || link_to(p, repo, "weights/configs")) return -1;
    if (fmt(p, sizeof p, "%s/docs", root) || link_to(p, repo, "docs")) return -1;
    if (fmt(p, sizeof p, "%s/tools", root) || link_to(p, repo, "tools")) return -1;
    for (int i = 0; programs[i]; i++)
        if (fmt(p, sizeof p, "%s/%s", bindir, programs[i]) || link_to(p, repo, programs[i])) return -1;
    if (shared[0]) {
        char s[PATH_MAX];
        if (fmt(s, sizeof s, "%s/shared", top) || mkdir(s, 0777)) return -1;
        const char *conf = conformance_dir(), *tok = clip_tokenizer_dir();
        char real[PATH_MAX];
        if (conf && realpath(conf, real) && link_to(real, s, "conformance")) return -1;
        if (tok && realpath(tok, real) && link_to(real, s, "clip-tokenizer")) return -1;
    }
    return 0;
}

static void remove_scratch(const char *top)
{
    if (strstr(top, "/onestep-docs-")) sh("rm -rf '%s'%s", top, "");
}

static char *slurp(const char *path)
{
    size_t n;
    return read_file(path, &n);
}

/* Trailing spaces of each line and trailing blank lines dropped. */
static void normalise(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '\n') {
            while (w > s && (w[-1] == ' ' || w[-1] == '\t')) w--;
        }
        *w++ = *r;
    }
    while (w > s && (w[-1] == ' ' || w[-1] == '\t' || w[-1] == '\n')) w--;
    *w = '\0';
}

/* Print the last lines of a command's output under a failed check. */
static void show_tail(const char *label, const char *text)
{
    if (!text || !*text) return;
    size_t n = strlen(text);
    const char *p = n > 1500 ? text + n - 1500 : text;
    check_note("%s:", label);
    char line[512];
    while (*p) {
        size_t k = strcspn(p, "\n");
        snprintf(line, sizeof line, "%.*s", (int)(k < 500 ? k : 500), p);
        check_note("  | %s", line);
        p += k;
        if (*p) p++;
    }
}

struct block {
    int line;        /* of the opening fence */
    char lang[32];
    int norun, output;
    char *body;
};

/* Run one block in repo; out gets its stdout. 0 = exit status 0. */
static int run_block(const char *top, const char *repo, const struct block *b, char **out, char **errout)
{
    char script[PATH_MAX], so[PATH_MAX], se[PATH_MAX];
    if (fmt(script, sizeof script, "%s/block.sh", top) || fmt(so, sizeof so, "%s/block.out", top) ||
        fmt(se, sizeof se, "%s/block.err", top))
        return -1;
    FILE *f = fopen(script, "w");
    if (!f) return -1;
    fputs(b->body, f);
    fclose(f);
    char cmd[4 * PATH_MAX];
    if (fmt(cmd, sizeof cmd, "cd '%s' && timeout %d sh -e '%s' >'%s' 2>'%s' </dev/null", repo, TIMEOUT_S, script,
            so, se))
        return -1;
    int st = system(cmd);
    *out = slurp(so);
    *errout = slurp(se);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void first_line(const char *s, char *buf, size_t len)
{
    while (*s == '\n') s++;
    size_t k = strcspn(s, "\n");
    snprintf(buf, len, "%.*s", (int)(k < 90 ? k : 90), s);
}

/* Split a markdown file into its fenced blocks. */
static int parse_blocks(const char *text, struct block **out, int *n)
{
    int cap = 16, cnt = 0, line = 0;
    struct block *bl = malloc((size_t)cap * sizeof *bl);
    if (!bl) return -1;
    const char *p = text;
    while (*p) {
        line++;
        size_t k = strcspn(p, "\n");
        const char *l = p;
        p += k;
        if (*p) p++;
        if (k < 3 || strncmp(l, "```", 3) != 0) continue;
        struct block b;
        memset(&b, 0, sizeof b);
        b.line = line;
        char info[128];
        snprintf(info, sizeof info, "%.*s", (int)(k - 3 < 127 ? k - 3 : 127), l + 3);
        char *save, *w = strtok_r(info, " \t", &save);
        if (w) snprintf(b.lang, sizeof b.lang, "%s", w);
        while ((w = strtok_r(NULL, " \t", &save))) {
            if (!strcmp(w, "norun")) b.norun = 1;
            if (!strcmp(w, "output")) b.output = 1;
        }
        /* body up to the closing fence */
        const char *start = p;
        while (*p) {
            line++;
            size_t m = strcspn(p, "\n");
            int close = m >= 3 && strncmp(p, "```", 3) == 0;
            if (close) {
                b.body = malloc((size_t)(p - start) + 1);
                if (!b.body) return -1;
                memcpy(b.body, start, (size_t)(p - start));
                b.body[p - start] = '\0';
            }
            p += m;
            if (*p) p++;
            if (close) break;
        }
        if (!b.body) { /* unclosed fence */
            free(bl);
            return -2;
        }
        if (cnt == cap) {
            cap *= 2;
            struct block *nb = realloc(bl, (size_t)cap * sizeof *bl);
            if (!nb) return -1;
            bl = nb;
        }
        bl[cnt++] = b;
    }
    *out = bl;
    *n = cnt;
    return 0;
}

static void run_doc(const char *path)
{
    char *text = slurp(path);
    if (!check(text != NULL, "%s: readable", path)) return;
    struct block *bl = NULL;
    int n = 0, rc = parse_blocks(text, &bl, &n);
    free(text);
    if (!check(rc == 0, "%s: every ``` fence is closed", path)) return;
    int runnable = 0;
    for (int i = 0; i < n; i++) runnable += !strcmp(bl[i].lang, "sh") && !bl[i].norun;

    char top[PATH_MAX], repo[PATH_MAX];
    int made = runnable ? make_scratch(top, sizeof top, repo, sizeof repo) : 0;
    if (runnable && !check(made == 0, "%s: scratch directory set up%s%s", path, made ? ": " : "",
                           made ? strerror(errno) : "")) {
        runnable = 0;
        top[0] = '\0';
    }
    char *last_out = NULL;
    int last_ok = 0, last_line = 0;
    for (int i = 0; i < n; i++) {
        struct block *b = &bl[i];
        char head[100];
        first_line(b->body, head, sizeof head);
        if (!strcmp(b->lang, "sh")) {
            free(last_out);
            last_out = NULL;
            last_ok = 0;
            last_line = b->line;
            if (b->norun) {
                check_skip("%s:%d: not run (```sh norun): %s", path, b->line, head);
                continue;
            }
            if (!runnable) continue;
            if (!shared[0] && strstr(b->body, "../shared")) {
                check_skip("%s:%d: needs ../shared (absent): %s", path, b->line, head);
                continue;
            }
            char *err = NULL;
            int st = run_block(top, repo, b, &last_out, &err);
            last_ok = check(st == 0, "%s:%d: runs (exit %d): %s", path, b->line, st, head);
            if (!last_ok) {
                show_tail("stdout", last_out);
                show_tail("stderr", err);
            }
            free(err);
        } else if (b->output) {
            if (!last_line) {
                check(0, "%s:%d: a ```text output block must follow a ```sh block", path, b->line);
            } else if (last_ok && last_out) {
                char *want = strdup(b->body);
                normalise(want);
                normalise(last_out);
                int same = want && strcmp(want, last_out) == 0;
                check(same, "%s:%d: output of the block at line %d is as shown", path, b->line, last_line);
                if (!same) show_tail("it printed", last_out);
                free(want);
            }
            last_line = 0;
        }
    }
    free(last_out);
    for (int i = 0; i < n; i++) free(bl[i].body);
    free(bl);
    if (top[0] && runnable) remove_scratch(top);
}

/* ---- links ---- */

/* GitHub's heading anchor: lower case, spaces to '-', ASCII letters, digits,
 * '-' and '_' kept, everything else dropped. (GitHub keeps non-ASCII letters
 * too; headings linked from these pages avoid them, and a link to one would
 * be reported here, not missed.) */
static void slug(const char *h, size_t n, char *out, size_t len)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == ' ') out[k++] = '-';
        else if (c == '-' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) out[k++] = (char)c;
        else if (c >= 'A' && c <= 'Z') out[k++] = (char)(c - 'A' + 'a');
    }
    out[k] = '\0';
}

/* Does markdown file `path` have a heading whose anchor is `anchor`? */
static int has_anchor(const char *path, const char *anchor)
{
    char *text = slurp(path);
    if (!text) return 0;
    int found = 0, in_fence = 0;
    for (const char *p = text; *p && !found;) {
        size_t k = strcspn(p, "\n");
        if (k >= 3 && !strncmp(p, "```", 3)) in_fence = !in_fence;
        if (!in_fence && *p == '#') {
            const char *h = p;
            while (h < p + k && *h == '#') h++;
            while (h < p + k && *h == ' ') h++;
            char sl[256];
            slug(h, (size_t)(p + k - h), sl, sizeof sl);
            found = !strcmp(sl, anchor);
        }
        p += k;
        if (*p) p++;
    }
    free(text);
    return found;
}

/* Every relative link and image of a page (outside code blocks) must point
 * at a file of the repository (relative to the page's folder), and an
 * #anchor at a heading of the page. */
static void check_links(const char *path)
{
    char *text = slurp(path);
    if (!text) return;
    int links = 0, bad = 0, in_fence = 0;
    for (const char *p = text; *p;) {
        size_t k = strcspn(p, "\n");
        if (k >= 3 && !strncmp(p, "```", 3)) in_fence = !in_fence;
        for (const char *q = p; !in_fence && q + 1 < p + k; q++) {
            if (q[0] != ']' || q[1] != '(') continue;
            const char *t = q + 2, *e = t;
            while (e < p + k && *e != ')' && *e != ' ') e++;
            char target[PATH_MAX];
            snprintf(target, sizeof target, "%.*s", (int)(e - t), t);
            if (!strncmp(target, "http://", 7) || !strncmp(target, "https://", 8) || !strncmp(target, "mailto:", 7))
                continue;
            links++;
            char *hash = strchr(target, '#');
            char anchor[256] = "";
            if (hash) {
                snprintf(anchor, sizeof anchor, "%s", hash + 1);
                *hash = '\0';
            }
            char file[PATH_MAX];
            int ok;
            if (!target[0]) { /* #anchor within the page */
                snprintf(file, sizeof file, "%s", path);
                ok = 1;
            } else {
                /* relative to the page's own folder, as GitHub resolves it */
                const char *slash = strrchr(path, '/');
                int dirlen = slash ? (int)(slash - path + 1) : 0;
                ok = !fmt(file, sizeof file, "%.*s%s", dirlen, path, target) && access(file, R_OK) == 0;
            }
            if (ok && anchor[0]) ok = strlen(file) > 3 && !strcmp(file + strlen(file) - 3, ".md") && has_anchor(file, anchor);
            if (!ok) {
                check(0, "%s: the link to %.*s leads nowhere", path, (int)(e - t), t);
                bad++;
            }
        }
        p += k;
        if (*p) p++;
    }
    free(text);
    check(bad == 0, "%s: %d relative links and pictures, %d leading nowhere", path, links, bad);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* docs/make_pictures.sh, run into a scratch folder: every committed picture
 * must come back byte for byte (the reference backend gives the same bits on
 * every machine), and the script must make no picture that is not committed. */
static void check_pictures(void)
{
    if (access("docs/make_pictures.sh", R_OK) != 0) {
        check(0, "docs/make_pictures.sh exists");
        return;
    }
    if (!shared[0]) {
        check_skip("docs/make_pictures.sh: needs the CLIP vocabulary from ../shared/clip-tokenizer");
        return;
    }
    char top[PATH_MAX], repo[PATH_MAX];
    if (!check(make_scratch(top, sizeof top, repo, sizeof repo) == 0, "pictures: scratch directory set up")) return;
    char cmd[4 * PATH_MAX];
    char logp[PATH_MAX];
    int st = -1;
    if (!fmt(cmd, sizeof cmd, "cd '%s' && timeout %d sh docs/make_pictures.sh '%s/img' >'%s/pics.log' 2>&1", repo,
             TIMEOUT_S, top, top) &&
        !fmt(logp, sizeof logp, "%s/pics.log", top))
        st = system(cmd);
    int ok = check(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "docs/make_pictures.sh runs");
    if (!ok) {
        char *log = slurp(logp);
        show_tail("its output", log);
        free(log);
    }
    DIR *d = opendir("docs/img");
    if (!check(d != NULL, "docs/img exists")) {
        remove_scratch(top);
        return;
    }
    struct dirent *e;
    int committed = 0, same = 0;
    while ((e = readdir(d))) {
        size_t k = strlen(e->d_name);
        if (k < 5 || strcmp(e->d_name + k - 4, ".png")) continue;
        committed++;
        char a[PATH_MAX], b[PATH_MAX];
        size_t na = 0, nb = 0;
        char *da = NULL, *db = NULL;
        if (!fmt(a, sizeof a, "docs/img/%s", e->d_name) && !fmt(b, sizeof b, "%s/img/%s", top, e->d_name)) {
            da = read_file(a, &na);
            db = read_file(b, &nb);
        }
        int eq = da && db && na == nb && memcmp(da, db, na) == 0;
        if (!eq) check(0, "docs/img/%s: remade identically by docs/make_pictures.sh%s", e->d_name,
                       db ? "" : " (not made at all)");
        same += eq;
        if (na > 200 * 1000) check(0, "docs/img/%s: %zu bytes, over the 200 KB a committed picture may have", e->d_name, na);
        free(da);
        free(db);
    }
    closedir(d);
    check(committed > 0 && same == committed, "docs/img: %d of %d pictures remade identically", same, committed);
    /* and nothing made that is not committed */
    char made[PATH_MAX];
    d = fmt(made, sizeof made, "%s/img", top) ? NULL : opendir(made);
    int extra = 0;
    while (d && (e = readdir(d))) {
        size_t k = strlen(e->d_name);
        if (k < 5 || strcmp(e->d_name + k - 4, ".png")) continue;
        char a[PATH_MAX];
        if (fmt(a, sizeof a, "docs/img/%s", e->d_name) || access(a, R_OK) != 0) {
            check(0, "docs/make_pictures.sh makes %s, which docs/img does not have", e->d_name);
            extra++;
        }
    }
    if (d) closedir(d);
    check(extra == 0, "docs/make_pictures.sh makes only committed pictures");
    remove_scratch(top);
}

int main(void)
{
    if (!getcwd(root, sizeof root) || access("docs", R_OK) != 0) {
        check(0, "docs/ found (run from the repository root)");
        return check_summary();
    }
    char given[PATH_MAX];
    snprintf(given, sizeof given, "%s", bin_dir());
    if (!realpath(given, bindir)) {
        check(0, "program directory %s exists", given);
        return check_summary();
    }
    for (int i = 0; programs[i]; i++) {
        char p[PATH_MAX];
        if (!check(fmt(p, sizeof p, "%s/%s", bindir, programs[i]) == 0 && access(p, X_OK) == 0, "%s exists (make builds it)", p)) return check_summary();
    }
    shared[0] = '\0';
    if (conformance_dir() && clip_tokenizer_dir()) snprintf(shared, sizeof shared, "yes");

    DIR *d = opendir("docs");
    char *names[256];
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 256) {
        size_t k = strlen(e->d_name);
        if (k > 3 && !strcmp(e->d_name + k - 3, ".md")) {
            char p[PATH_MAX];
            if (!fmt(p, sizeof p, "docs/%s", e->d_name)) names[n++] = strdup(p);
        }
    }
    if (d) closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    check(n > 0, "docs/ has %d markdown files", n);
    /* README.md last: its first blocks (install + download, `make test`
     * itself) are norun; the offline examples after them run. */
    if (n < 256) names[n++] = strdup("README.md");
    for (int i = 0; i < n; i++) {
        check_links(names[i]);
        run_doc(names[i]);
        free(names[i]);
    }
    check_pictures();
    return check_summary();
}
