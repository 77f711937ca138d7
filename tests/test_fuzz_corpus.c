/* Replays the committed fuzz corpora (tests/fuzz/corpus/<target>/: seeds and
 * the regression input of every finding) through the fuzz targets, so every
 * `make test` and `make sanitize` re-checks them with any compiler; `make
 * fuzz` (clang's libFuzzer) searches for new ones. A broken invariant aborts
 * (the test then counts as failed); a sanitizer report does too. */
#include <dirent.h>
#include <string.h>

#define FUZZ_REPLAY
#include "fuzz/fuzz_image.c"
#include "fuzz/fuzz_json.c"
#include "fuzz/fuzz_safetensors.c"
#include "fuzz/fuzz_tokenizer.c"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every file of tests/fuzz/corpus/<target>, in name order; returns how many
 * ran (-1 if the directory is missing), and how many are regression inputs. */
static int replay(const char *target, int (*fn)(const uint8_t *, size_t), int *regress)
{
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof *names);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int ran = 0;
    *regress = 0;
    for (size_t i = 0; i < n; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len;
        char *data = read_file(path, &len);
        if (data) {
            fn((const uint8_t *)data, len);
            ran++;
            if (strncmp(names[i], "seed-", 5) != 0) ++*regress;
        } else {
            check(0, "read %s", path);
        }
        free(data);
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(void)
{
    static const struct {
        const char *name;
        int (*fn)(const uint8_t *, size_t);
    } targets[] = {{"safetensors", fuzz_safetensors},
                   {"json", fuzz_json},
                   {"tokenizer", fuzz_tokenizer},
                   {"image", fuzz_image}};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        if (!strcmp(targets[i].name, "tokenizer") && fuzz_tokenizer_init() != 0) {
            check_skip("corpus tokenizer: no CLIP vocabulary");
            continue;
        }
        int regress;
        int n = replay(targets[i].name, targets[i].fn, &regress);
        check(n > 0, "corpus %s: %d inputs (%d regression) replayed, every invariant held", targets[i].name, n,
              regress);
    }
    return check_summary();
}
