/* CLIP tokenizer: the shared tokenizer cases, every conformance case's
 * input_ids, Unicode / pre-tokenizer semantics, invalid UTF-8, very long
 * prompts, and damaged tokenizer files.
 *
 * Expected values come from upstream runs (tokenizer_cases.json, the
 * conformance manifest), from hand-traced merges on tiny synthetic
 * tokenizers, or from equivalences Python's semantics imply (e.g. "İ" lowers
 * to "i" U+0307, so both prompts give the same ids); never from this code. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../ref/tokenizer.h"
#include "../ref/tokenizer_impl.h" /* TOK_FIRST_WINDOW, for the window-boundary sweep */
#include "../weights/json.h"
#include "lib/check.h"
#include "lib/conformance.h"

#define MAXIDS 4096

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* BPE ids of a C string (up to MAXIDS); -1 on error. */
static long bpe(const struct tokenizer *t, const char *s, int32_t *ids)
{
    struct os_err err = {{0}};
    size_t n;
    if (tokenizer_bpe(t, s, strlen(s), ids, MAXIDS, &n, &err) != 0) return -1;
    return (long)n;
}

static int same_ids(const int32_t *a, long na, const int32_t *b, long nb)
{
    return na == nb && (na <= 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

/* bpe(whole) == bpe(p1) ++ bpe(p2) ++ ... (NULL-terminated list): the
 * pre-tokenizer splits `whole` into exactly those pieces. */
static int splits_as(const struct tokenizer *t, const char *whole, const char *const *parts)
{
    static int32_t got[MAXIDS], want[MAXIDS], one[MAXIDS];
    long ng = bpe(t, whole, got), nw = 0;
    for (size_t i = 0; parts[i]; i++) {
        long k = bpe(t, parts[i], one);
        if (k < 0) return 0;
        memcpy(want + nw, one, (size_t)k * sizeof *one);
        nw += k;
    }
    return same_ids(got, ng, want, nw);
}

static int same_as(const struct tokenizer *t, const char *a, const char *b)
{
    static int32_t x[MAXIDS], y[MAXIDS];
    long nx = bpe(t, a, x), ny = bpe(t, b, y);
    return nx >= 0 && same_ids(x, nx, y, ny);
}

/* ---- 1. the shared clip-tokenizer cases ---- */

static int ids_equal_json(const int32_t *ids, size_t n, const struct json *arr)
{
    if (!arr || arr->type != JSON_ARRAY || arr->len != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!arr->items[i].is_int || arr->items[i].integer != ids[i]) return 0;
    return 1;
}

static void shared_cases(const char *dir, struct tokenizer *t_eot, struct tokenizer *t_bang)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer_cases.json", dir);
    struct os_err err = {{0}};
    struct json *doc = json_parse_file(path, 16u << 20, &err);
    if (!check(doc != NULL, "read %s %s", path, doc ? "" : err.msg)) return;
    const struct json *cases = json_get(doc, "cases");
    check(cases && cases->type == JSON_ARRAY && cases->len > 0, "tokenizer_cases.json has cases");
    size_t ncases = cases ? cases->len : 0;
    for (size_t i = 0; i < ncases; i++) {
        const struct json *c = &cases->items[i];
        const struct json *prompt = json_get(c, "prompt"), *want = json_get(c, "bpe_ids");
        const struct json *tokens = json_get(c, "bpe_tokens"), *trunc = json_get(c, "truncated");
        if (!check(prompt && prompt->type == JSON_STRING && want && tokens, "case %zu is complete", i)) continue;
        char shown[48];
        snprintf(shown, sizeof shown, "%.40s", prompt->str);
        for (char *q = shown; *q; q++)
            if (*q == '\n' || *q == '\t' || *q == '\r') *q = ' ';

        /* All BPE ids (the long cases have up to 92) plus one to see the end. */
        int32_t ids[MAXIDS];
        size_t n = 0;
        int rc = tokenizer_bpe(t_eot, prompt->str, prompt->len, ids, want->len + 1, &n, &err);
        check(rc == 0 && ids_equal_json(ids, n, want), "case %zu \"%s\": %zu bpe ids match", i, shown, want->len);
        int toks_ok = rc == 0 && tokens->len == n;
        for (size_t k = 0; toks_ok && k < n; k++) {
            size_t len;
            const char *s = tokenizer_token(t_eot, ids[k], &len);
            toks_ok = s && tokens->items[k].type == JSON_STRING && tokens->items[k].len == len &&
                      memcmp(s, tokens->items[k].str, len) == 0;
        }
        check(toks_ok, "case %zu: bpe token strings match", i);
        check(trunc && trunc->type == JSON_BOOL && trunc->boolean == (n > TOKENIZER_LEN - 2),
              "case %zu: truncated = %s", i, n > TOKENIZER_LEN - 2 ? "true" : "false");

        int32_t framed[TOKENIZER_LEN];
        rc = tokenizer_encode(t_eot, prompt->str, prompt->len, framed, &err);
        check(rc == 0 && ids_equal_json(framed, TOKENIZER_LEN, json_get(c, "input_ids_pad_49407")),
              "case %zu: 77 input ids, pad 49407", i);
        rc = tokenizer_encode(t_bang, prompt->str, prompt->len, framed, &err);
        check(rc == 0 && ids_equal_json(framed, TOKENIZER_LEN, json_get(c, "input_ids_pad_0")),
              "case %zu: 77 input ids, pad 0", i);
    }
    json_free(doc);
}

/* ---- 2. every conformance case's input_ids ---- */

static void conformance_cases(void)
{
    struct conf_suite s;
    if (conf_open(&s) != 0) return;
    struct {
        char path[1024];
        struct tokenizer *t;
    } cache[8];
    size_t ncache = 0;
    size_t nchecked = 0;
    for (size_t i = 0; i < conf_ncases(&s); i++) {
        const struct json *c = conf_case(&s, i);
        const char *name = conf_case_name(c), *model = conf_str(c, "model");
        const struct json *all = json_get(c, "input_ids");
        const struct json *p1 = json_get(c, "prompt"), *p2 = json_get(c, "prompt_2");
        if (!check(name && model && all && all->type == JSON_OBJECT && p1 && p1->type == JSON_STRING,
                   "manifest case %zu has model, prompt and input_ids", i))
            continue;
        struct st_file *f = conf_case_file(&s, c);
        for (size_t k = 0; k < all->len; k++) {
            const char *which = all->keys[k]; /* "tokenizer" or "tokenizer_2" */
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/%s", conf_path(&s, model), which);
            struct tokenizer *t = NULL;
            for (size_t m = 0; m < ncache; m++)
                if (strcmp(cache[m].path, dir) == 0) t = cache[m].t;
            if (!t) {
                struct os_err err = {{0}};
                if (!check(ncache < 8 && tokenizer_load(dir, &t, &err) == 0, "load %s %s", dir, err.msg)) continue;
                snprintf(cache[ncache].path, sizeof cache[ncache].path, "%s", dir);
                cache[ncache++].t = t;
            }
            /* diffusers' SDXL pipelines feed prompt_2 (default: prompt) to tokenizer_2 */
            const struct json *p = strcmp(which, "tokenizer_2") == 0 && p2 && p2->type == JSON_STRING ? p2 : p1;
            int32_t ids[TOKENIZER_LEN];
            struct os_err err = {{0}};
            int rc = tokenizer_encode(t, p->str, p->len, ids, &err);
            check(rc == 0 && ids_equal_json(ids, TOKENIZER_LEN, &all->items[k]),
                  "%s: %s input_ids (pad %d) match the manifest %s", name, which, (int)tokenizer_pad_id(t), err.msg);
            char tname[64];
            snprintf(tname, sizeof tname, "%s.input_ids", which);
            size_t n = 0;
            float *ref = f ? conf_tensor(f, tname, &n) : NULL;
            int same = rc == 0 && ref && n == TOKENIZER_LEN;
            for (size_t j = 0; same && j < n; j++) same = ref[j] == (float)ids[j];
            check(same, "%s: %s matches the case file's tensor", name, tname);
            free(ref);
            nchecked++;
        }
        if (f) st_close(f);
    }
    check(nchecked >= conf_ncases(&s), "%zu tokenizer rows checked over %zu cases", nchecked, conf_ncases(&s));
    for (size_t m = 0; m < ncache; m++) tokenizer_free(cache[m].t);
    conf_close(&s);
}

/* ---- 3. semantics, as equivalences Python's behaviour implies ---- */

static void semantics(const struct tokenizer *t)
{
    int32_t ids[MAXIDS];
    long n;
    size_t len;

    /* str.lower(): full mapping incl. SpecialCasing, not case folding */
    check(same_as(t, "\xC4\xB0stanbul", "i\xCC\x87stanbul"), "lower(): U+0130 -> i + U+0307 (SpecialCasing)");
    check(!same_as(t, "stra\xC3\x9F" "e", "strasse"), "lower() is not casefold: \"straße\" keeps ß");
    check(same_as(t, "STRA\xE1\xBA\x9E" "E", "stra\xC3\x9F" "e"), "lower(): U+1E9E capital sharp s -> ß");
    check(same_as(t, "\xE2\x84\xAA", "k"), "lower(): U+212A KELVIN SIGN -> k");
    /* Final_Sigma (CPython handle_capital_sigma) */
    check(same_as(t, "\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3", "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82"), "ΟΔΟΣ -> οδος (final ς)");
    check(same_as(t, "\xCE\xA3\xCE\x91", "\xCF\x83\xCE\xB1"), "ΣΑ -> σα (Σ not final at the start)");
    check(same_as(t, "\xCE\xA3", "\xCF\x83"), "a lone Σ -> σ (no cased letter before it)");
    check(same_as(t, "a\xCE\xA3 b", "a\xCF\x82 b"), "aΣ followed by a space -> ς");
    check(same_as(t, "a\xCE\xA3" "b", "a\xCF\x83" "b"), "aΣb -> σ (a cased letter follows)");
    check(same_as(t, "a\xC2\xAD\xCE\xA3", "a\xC2\xAD\xCF\x82"), "a U+00AD Σ -> ς (soft hyphen is Case_Ignorable)");
    check(same_as(t, "a\xCE\xA3\xC2\xAD" "b", "a\xCF\x83\xC2\xAD" "b"), "aΣ U+00AD b -> σ (ignorable skipped forwards)");
    check(same_as(t, "1\xCE\xA3", "1\xCF\x83"), "1Σ -> σ (a digit is not Cased)");

    /* whitespace_clean: regex \s runs -> one space, str.strip() at the ends */
    check(same_as(t, "a\xC2\xA0" "b", "a b"), "U+00A0 is \\s (a space)");
    check(same_as(t, "a\xE3\x80\x80" "b\xE2\x80\xA8" "c\xC2\x85" "d", "a b c d"), "U+3000, U+2028, U+0085 are \\s");
    check(same_as(t, "  a \t\n\r\x0b\x0c b  ", "a b"), "runs of ASCII whitespace collapse and strip");
    check(same_as(t, "\x1c\x1d a \x1e\x1f", "a"), "U+001C..U+001F are stripped at the ends (str.isspace)");
    n = bpe(t, "a\x1f" "b", ids);
    const char *mid = n == 3 ? tokenizer_token(t, ids[1], NULL) : NULL;
    check(mid && strcmp(mid, "\xC4\x9F</w>") == 0 && same_as(t, "a", "a\x1f"),
          "inside the text U+001F is not \\s: its own piece (byte 0x1F = U+011F)");
    check(splits_as(t, "a\xE2\x80\x8B" "b", (const char *const[]){"a", "\xE2\x80\x8B", "b", NULL}),
          "U+200B ZERO WIDTH SPACE is not whitespace (a symbol piece)");

    /* the pre-tokenizer pattern */
    check(same_as(t, "a\xCD\x85" "b", "a b"), "U+0345 matches no alternative (findall skips it)");
    check(splits_as(t, "x'\xC5\xBF", (const char *const[]){"x", "'\xC5\xBF", NULL}) &&
              !splits_as(t, "x'\xC5\xBF", (const char *const[]){"x", "'", "\xC5\xBF", NULL}),
          "IGNORECASE: 's also matches 'ſ (U+017F)");
    check(splits_as(t, "'single'", (const char *const[]){"'s", "ingle", "'", NULL}), "\"'single'\" -> 's ingle '");
    check(splits_as(t, "you'LL''s", (const char *const[]){"you", "'ll", "''", "s", NULL}),
          "contractions after lower(); \"''s\" is a symbol run then a letter");
    check(splits_as(t, "2024", (const char *const[]){"2", "0", "2", "4", NULL}), "each digit is its own piece");
    check(splits_as(t, "\xE2\x85\xA0\xE2\x85\xA1", (const char *const[]){"\xE2\x85\xB0", "\xE2\x85\xB1", NULL}),
          "Roman numerals (Nl) lower-case and are single-character number pieces");
    check(splits_as(t, "(word:1.3) [x]",
                    (const char *const[]){"(", "word", ":", "1", ".", "3", ")", "[", "x", "]", NULL}),
          "weighting syntax is literal text");
    n = bpe(t, "a<|endoftext|>b<|STARTOFTEXT|>", ids);
    check(n == 4 && ids[1] == 49407 && ids[3] == 49406 &&
              splits_as(t, "a<|endoftext|>b<|STARTOFTEXT|>",
                        (const char *const[]){"a", "<|endoftext|>", "b", "<|startoftext|>", NULL}),
          "<|endoftext|> / <|startoftext|> inside a prompt are the special ids");
    n = bpe(t, "<|\xC5\xBFtartoftext|>", ids);
    check(n > 1, "<|ſtartoftext|> matches the special alternative but is not the special token (%ld ids)", n);
    check(splits_as(t, "!<|endoftext|>", (const char *const[]){"!<|", "endoftext", "|>", NULL}),
          "a special token only matches where a piece starts");

    /* NUL is a character: its own symbol piece, byte 0 = U+0100 in CLIP's alphabet */
    struct os_err err = {{0}};
    size_t nn;
    int rc = tokenizer_bpe(t, "a\0b", 3, ids, MAXIDS, &nn, &err);
    const char *tok = rc == 0 && nn == 3 ? tokenizer_token(t, ids[1], &len) : NULL;
    check(tok && strcmp(tok, "\xC4\x80</w>") == 0, "U+0000 inside a prompt is the piece \"\\u0100</w>\"");
    rc = tokenizer_bpe(t, "\0", 1, ids, MAXIDS, &nn, &err);
    check(rc == 0 && nn == 1, "a prompt of one NUL byte gives one token");

    /* framing */
    int32_t framed[TOKENIZER_LEN];
    rc = tokenizer_encode(t, "", 0, framed, &err);
    int ok = rc == 0 && framed[0] == 49406 && framed[1] == 49407;
    for (int i = 2; i < TOKENIZER_LEN; i++) ok = ok && framed[i] == tokenizer_pad_id(t);
    check(ok, "empty prompt: BOS, EOS, then pad");
    rc = tokenizer_encode(t, NULL, 0, framed, &err);
    check(rc == 0 && framed[1] == 49407, "NULL prompt of length 0 is the empty prompt");
    rc = tokenizer_encode(t, " \t\n ", 4, framed, &err);
    check(rc == 0 && framed[1] == 49407, "an all-whitespace prompt is empty");
    check(tokenizer_token(t, -1, NULL) == NULL && tokenizer_token(t, 49408, NULL) == NULL &&
              tokenizer_vocab_size(t) == 49408 && tokenizer_bos_id(t) == 49406 && tokenizer_eos_id(t) == 49407,
          "ids outside the vocabulary have no string; bos/eos/size");
}

/* ---- 4. invalid UTF-8 ---- */

static void invalid_utf8(const struct tokenizer *t)
{
    static const struct {
        const char *bytes;
        size_t len, at;
        const char *what;
    } bad[] = {
        {"abc\xC3", 4, 3, "truncated 2-byte sequence at the end"},
        {"ab\xE2\x82 x", 5, 2, "truncated 3-byte sequence before a space"},
        {"\xF0\x9F\x90", 3, 0, "truncated 4-byte sequence"},
        {"a\xC0\xAF", 3, 1, "overlong '/' (C0 AF)"},
        {"a\xE0\x80\xAF", 4, 1, "overlong 3-byte encoding"},
        {"a\xF0\x80\x80\xAF", 5, 1, "overlong 4-byte encoding"},
        {"x\xED\xA0\x80", 4, 1, "encoded surrogate U+D800"},
        {"x\xED\xBF\xBF", 4, 1, "encoded surrogate U+DFFF"},
        {"\xF4\x90\x80\x80", 4, 0, "U+110000 (above U+10FFFF)"},
        {"\xF5\x80\x80\x80", 4, 0, "lead byte F5"},
        {"\xFF", 1, 0, "byte FF"},
        {"cat\x80", 4, 3, "stray continuation byte"},
        {"caf\xC3\xA9\xA9", 6, 5, "continuation byte after a complete character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct os_err err = {{0}};
        int32_t ids[TOKENIZER_LEN];
        int rc = tokenizer_encode(t, bad[i].bytes, bad[i].len, ids, &err);
        char at[64];
        snprintf(at, sizeof at, "at byte %zu", bad[i].at);
        check(rc == -1 && strstr(err.msg, "invalid UTF-8") && strstr(err.msg, at), "rejects %s: %s", bad[i].what,
              err.msg);
    }
    struct os_err err = {{0}};
    int32_t ids[TOKENIZER_LEN];
    check(tokenizer_encode(t, "\xF4\x8F\xBF\xBF\xEF\xBF\xBF", 7, ids, &err) == 0,
          "U+10FFFF and U+FFFF are valid (noncharacters are still characters)");
    check(tokenizer_encode(t, NULL, 5, ids, &err) == -1, "NULL prompt with a length: %s", err.msg);
}

/* ---- 5. long prompts: linear time, identical results ---- */

static uint32_t rng_state = 12345;
static uint32_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* The first 75 ids of a 10 MB prompt, timed. */
static int big(const struct tokenizer *t, const char *text, size_t len, int32_t *ids, double *secs, struct os_err *err)
{
    double t0 = now_s();
    int32_t framed[TOKENIZER_LEN];
    int rc = tokenizer_encode(t, text, len, framed, err);
    *secs = now_s() - t0;
    memcpy(ids, framed + 1, 75 * sizeof *ids);
    return rc;
}

static void long_prompts(const struct tokenizer *t)
{
    const size_t N = 10u << 20;
    char *p = malloc(N + 1);
    int32_t got[75], want[MAXIDS];
    struct os_err err = {{0}};
    double secs, limit = 2.0; /* measured ~0.01-0.05 s; generous for a loaded machine / sanitizers */
    if (!check(p != NULL, "allocate 10 MB")) return;

    memset(p, 'a', N);
    int rc = big(t, p, N, got, &secs, &err);
    long n = bpe(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", want); /* the 50-'a' shared case */
    int ok = rc == 0 && n == 7;
    for (int i = 0; ok && i < 75; i++) ok = got[i] == want[0]; /* "aaaaaaaa" (8 a's merge from the left) */
    check(ok && secs < limit, "10 MB of 'a' (one word): 75 x \"aaaaaaaa\" in %.3f s", secs);

    static const char phrase[] = "a photo of a cat, ";
    for (size_t i = 0; i < N; i++) p[i] = phrase[i % (sizeof phrase - 1)];
    rc = big(t, p, N, got, &secs, &err);
    char shorter[20 * sizeof phrase];
    shorter[0] = '\0';
    for (int i = 0; i < 19; i++) strcat(shorter, phrase);
    n = bpe(t, shorter, want);
    check(rc == 0 && n >= 75 && memcmp(got, want, sizeof got) == 0 && secs < limit,
          "10 MB of a repeated phrase: the first 75 ids of 19 repetitions, in %.3f s", secs);

    for (size_t i = 0; i < N; i++) p[i] = (char)('a' + rng_next() % 26);
    rc = big(t, p, N, got, &secs, &err);
    int32_t *ref = malloc(MAXIDS * sizeof *ref);
    size_t nref = 0;
    /* same word cut after 64 KiB by a space: the cut is far beyond token 75 */
    char saved = p[65536];
    p[65536] = ' ';
    tokenizer_bpe(t, p, N, ref, 75, &nref, &err);
    p[65536] = saved;
    check(rc == 0 && nref == 75 && memcmp(got, ref, sizeof got) == 0 && secs < limit,
          "10 MB of random letters (one word): same first 75 ids as a 64 KiB word, in %.3f s", secs);
    free(ref);

    memset(p, '!', N);
    rc = big(t, p, N, got, &secs, &err);
    check(rc == 0 && secs < limit, "10 MB of '!' (one symbol run) in %.3f s", secs);

    memset(p, ' ', N);
    memcpy(p + N - 5, "hello", 5);
    rc = big(t, p, N, got, &secs, &err);
    n = bpe(t, "hello", want);
    check(rc == 0 && n == 1 && got[0] == want[0] && got[1] == 49407 && secs < limit,
          "10 MB of spaces then \"hello\" in %.3f s", secs);

    for (size_t i = 0; i + 1 < N; i += 2) p[i] = '\xC3', p[i + 1] = '\xA9';
    rc = big(t, p, N, got, &secs, &err);
    check(rc == 0 && secs < limit, "10 MB of 'é' (2-byte letters) in %.3f s", secs);

    memset(p, 'a', N);
    p[N - 1] = '\xFF';
    rc = big(t, p, N, got, &secs, &err);
    char at[64];
    snprintf(at, sizeof at, "at byte %zu", N - 1);
    check(rc == -1 && strstr(err.msg, at), "invalid UTF-8 at the very end of 10 MB is still an error: %s", err.msg);
    free(p);

    /* Window boundaries: asking for m ids must give the first m ids of the
     * whole word, for every m whose token ends near where a window of a long
     * piece is cut (the part the early stop must get right). */
    char word[3000];
    size_t mismatches = 0, sweeps = 0;
    int32_t *full = malloc(MAXIDS * sizeof *full), *part = malloc(MAXIDS * sizeof *part);
    for (int w = 0; w < 60 && full && part; w++) {
        size_t len = 1100 + rng_next() % 1800;
        const char *alpha = w % 3 == 0 ? "etaoinshrdlu" : "abcdefghijklmnopqrstuvwxyz";
        size_t na = strlen(alpha), period = w % 3 == 2 ? 2 + rng_next() % 5 : len;
        for (size_t i = 0; i < len; i++) word[i] = i < period ? alpha[rng_next() % na] : word[i - period];
        size_t nfull = 0;
        tokenizer_bpe(t, word, len, full, MAXIDS, &nfull, &err);
        size_t end = 0;
        for (size_t m = 1; m <= nfull; m++) {
            size_t tl;
            const char *s = tokenizer_token(t, full[m - 1], &tl);
            for (size_t k = 0; k < tl; k++) end += ((unsigned char)s[k] & 0xC0) != 0x80; /* one char per byte */
            if (tl >= 4 && memcmp(s + tl - 4, "</w>", 4) == 0) end -= 4;
            int near = 0;
            for (size_t wb = TOK_FIRST_WINDOW; wb < len; wb *= 2) near |= end + 64 > wb && end < wb + 64;
            if (!near) continue;
            size_t np = 0;
            tokenizer_bpe(t, word, len, part, m, &np, &err);
            sweeps++;
            if (np != m || memcmp(part, full, m * sizeof *part) != 0) mismatches++;
        }
    }
    check(sweeps > 500 && mismatches == 0, "window boundaries: %zu truncated encodings of long words, %zu differ",
          sweeps, mismatches);
    free(full);
    free(part);
}

/* ---- 6. tiny synthetic tokenizers: hand-traced merges, damaged files ---- */

static char tmpdir[256];

/* CLIP's byte alphabet, written independently of the library: the printable
 * Latin-1 bytes stand for themselves, the others are U+0100.. in order. */
static void byte_utf8(unsigned b, char *out)
{
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    unsigned c = b;
    if (!printable) {
        c = 0x100;
        for (unsigned x = 0; x < b; x++) c += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE));
    }
    if (c < 0x80) {
        out[0] = (char)c, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (c >> 6)), out[1] = (char)(0x80 | (c & 0x3F)), out[2] = 0;
    }
}

static void put_json_key(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_text(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* vocab.json: byte b = id b, byte b + "</w>" = 256 + b, then the merge
 * results (`results`, one per line) in order, then the two specials; extra
 * JSON members appended verbatim. merges.txt: `merges` as given. */
static void write_tokenizer(const char *results, const char *merges, const char *extra)
{
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.json", tmpdir);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fputc('{', f);
    int id = 0;
    char s[16];
    for (int w = 0; w < 2; w++) {
        for (unsigned b = 0; b < 256; b++) {
            byte_utf8(b, s);
            if (w) strcat(s, "</w>");
            if (id) fputc(',', f);
            put_json_key(f, s);
            fprintf(f, ":%d", id++);
        }
    }
    for (const char *r = results; r && *r;) {
        const char *e = strchr(r, '\n');
        size_t n = e ? (size_t)(e - r) : strlen(r);
        char buf[128];
        snprintf(buf, sizeof buf, "%.*s", (int)n, r);
        fputc(',', f);
        put_json_key(f, buf);
        fprintf(f, ":%d", id++);
        r += n + (e != NULL);
    }
    fprintf(f, ",\"<|startoftext|>\":%d,\"<|endoftext|>\":%d%s}", id, id + 1, extra ? extra : "");
    fclose(f);
    write_text("merges.txt", merges);
}

static void remove_configs(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", tmpdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/special_tokens_map.json", tmpdir);
    unlink(path);
}

/* Load tmpdir; expect failure with both needles in the message. */
static void expect_load_error(const char *what, const char *needle1, const char *needle2)
{
    struct os_err err = {{0}};
    struct tokenizer *t = NULL;
    int rc = tokenizer_load(tmpdir, &t, &err);
    check(rc == -1 && t == NULL && strstr(err.msg, needle1) && (!needle2 || strstr(err.msg, needle2)),
          "%s: \"%s\"", what, err.msg);
    tokenizer_free(t);
}

static struct tokenizer *load_tmp(void)
{
    struct os_err err = {{0}};
    struct tokenizer *t = NULL;
    if (tokenizer_load(tmpdir, &t, &err) != 0) check(0, "load synthetic tokenizer: %s", err.msg);
    return t;
}

/* The token strings of a prompt, space-separated. */
static const char *pieces(const struct tokenizer *t, const char *prompt)
{
    static char out[512];
    int32_t ids[64];
    size_t n = 0;
    struct os_err err = {{0}};
    out[0] = '\0';
    if (tokenizer_bpe(t, prompt, strlen(prompt), ids, 64, &n, &err) != 0) {
        snprintf(out, sizeof out, "%s", err.msg);
        return out;
    }
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(out, " ");
        strncat(out, tokenizer_token(t, ids[i], NULL), sizeof out - strlen(out) - 2);
    }
    return out;
}

static void synthetic(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/onestep_tok_XXXXXX");
    if (!check(mkdtemp(tmpdir) != NULL, "temporary directory")) return;

    /* Hand-traced merges. "b c</w>" outranks "a b", so "abc" -> a, bc</w>
     * although "a b" is leftmost; "a a" merges left to right without
     * overlap, so "aaaa" -> aa, a, a</w> (then "aa a</w>" needs them
     * adjacent: not here) and "aaa" -> aa, a</w> -> aaa</w>. */
    write_tokenizer("bc</w>\nab\naa\naaa</w>", "#version: 0.2\nb c</w>\na b\na a\naa a</w>\n", NULL);
    remove_configs();
    struct tokenizer *t = load_tmp();
    if (t) {
        check(strcmp(pieces(t, "abc"), "a bc</w>") == 0, "rank beats position: abc -> %s", pieces(t, "abc"));
        check(strcmp(pieces(t, "ab"), "a b</w>") == 0,
              "\"a b\" does not apply to a b</w>: ab -> %s", pieces(t, "ab"));
        check(strcmp(pieces(t, "aaaa"), "aa a a</w>") == 0, "one pass, left to right, no overlap: aaaa -> %s",
              pieces(t, "aaaa"));
        check(strcmp(pieces(t, "aaa"), "aaa</w>") == 0, "later pass on merged symbols: aaa -> %s", pieces(t, "aaa"));
        check(strcmp(pieces(t, "a"), "a</w>") == 0, "one-character word: a -> %s", pieces(t, "a"));
        check(strcmp(pieces(t, "z'sa"), "z</w> ' s</w> a</w>") == 0, "unmerged pieces: z'sa -> %s",
              pieces(t, "z'sa"));
        check(tokenizer_pad_id(t) == 512 + 4 + 1, "no config files: pad is <|endoftext|> (transformers' default)");
        tokenizer_free(t);
    }

    /* pad token resolution */
    write_text("tokenizer_config.json", "{\"pad_token\": \"!\", \"model_max_length\": 77}");
    t = load_tmp();
    check(t && tokenizer_pad_id(t) == '!', "pad_token \"!\" from tokenizer_config.json -> id %d",
          t ? (int)tokenizer_pad_id(t) : -1);
    tokenizer_free(t);
    write_text("tokenizer_config.json", "{\"pad_token\": {\"__type\": \"AddedToken\", \"content\": \"#\"}}");
    t = load_tmp();
    check(t && tokenizer_pad_id(t) == '#', "pad_token as an AddedToken object");
    tokenizer_free(t);
    write_text("special_tokens_map.json", "{\"pad_token\": \"$\"}");
    t = load_tmp();
    check(t && tokenizer_pad_id(t) == '$', "legacy config: special_tokens_map.json overrides tokenizer_config.json");
    tokenizer_free(t);
    write_text("tokenizer_config.json", "{\"pad_token\": \"!\", \"added_tokens_decoder\": {}}");
    t = load_tmp();
    check(t && tokenizer_pad_id(t) == '!', "config with added_tokens_decoder: tokenizer_config.json wins");
    tokenizer_free(t);
    remove_configs();
    write_text("special_tokens_map.json", "{\"pad_token\": \"%\"}");
    t = load_tmp();
    check(t && tokenizer_pad_id(t) == '%', "only special_tokens_map.json: its pad_token");
    tokenizer_free(t);
    remove_configs();
    write_text("tokenizer_config.json", "{\"pad_token\": \"<pad>\"}");
    expect_load_error("pad token not in the vocabulary", "tokenizer_config.json", "<pad>");
    write_text("tokenizer_config.json", "{\"pad_token\": null}");
    expect_load_error("pad_token null", "tokenizer_config.json", "null");
    write_text("tokenizer_config.json", "{\"pad_token\": 5}");
    expect_load_error("pad_token a number", "tokenizer_config.json", "pad_token");
    write_text("tokenizer_config.json", "{\"pad_token\": \"!\", \"model_max_length\": 1000000000000000019884624838656}");
    expect_load_error("model_max_length other than 77", "tokenizer_config.json", "model_max_length");
    write_text("tokenizer_config.json", "{\"pad_token\": \"!\"");
    expect_load_error("truncated tokenizer_config.json", "tokenizer_config.json", "invalid JSON");
    remove_configs();
    write_text("special_tokens_map.json", "[\"!\"]");
    expect_load_error("special_tokens_map.json not an object", "special_tokens_map.json", "object");
    remove_configs();

    /* damaged merges.txt */
    const char *res = "bc</w>\nab\naa\naaa</w>";
    write_tokenizer(res, "b c</w>\na b\na a\naa a</w>\n", NULL);
    expect_load_error("merges.txt without its #version header", "merges.txt", "line 1");
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b x\na a\naa a</w>\n", NULL);
    expect_load_error("three symbols on a line", "merges.txt: line 3", "two symbols");
    write_tokenizer(res, "#version: 0.2\nb c</w>\n\na b\na a\naa a</w>\n", NULL);
    expect_load_error("blank line inside merges.txt", "merges.txt: line 3", "blank");
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\na a\na b\naa a</w>\n", NULL);
    expect_load_error("duplicate merge", "merges.txt: line 5", "already made on line 3");
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\na a\naa a</w>\nq \xE2\x82\xAC\n", NULL);
    expect_load_error("merge of a symbol not in vocab.json", "merges.txt: line 6", "not in vocab.json");
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\naa a</w>\na a\n", NULL);
    expect_load_error("merge using a symbol only a later line makes", "merges.txt: line 4",
                      "neither a byte symbol nor made by an earlier merge");
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\na a\naa a</w>\nx y\n", NULL);
    expect_load_error("merge result not in vocab.json", "merges.txt: line 6", "merged symbol \"xy\"");
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\na a\n", NULL);
    expect_load_error("merges.txt cut short (vocab entry no merge makes)", "merges.txt", "aaa</w>");
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\na a\naa a</w>\n\n\n", NULL);
    t = load_tmp();
    check(t != NULL, "blank lines at the end of merges.txt are fine");
    tokenizer_free(t);
    write_tokenizer(res, "#version: 0.2\r\nb c</w>\r\na b\r\na a\r\naa a</w>\r\n", NULL);
    t = load_tmp();
    check(t && strcmp(pieces(t, "abc aaa"), "a bc</w> aaa</w>") == 0, "CRLF line ends are fine");
    tokenizer_free(t);
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\na a\naa a</w>\n\xC3(\n", NULL);
    expect_load_error("invalid UTF-8 in merges.txt", "merges.txt", "invalid UTF-8");

    /* damaged vocab.json */
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\na a\naa a</w>\n", ",\"zz\":7");
    expect_load_error("two entries with one id", "vocab.json", "id 7");
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\na a\naa a</w>\n", ",\"zz\":99999");
    expect_load_error("id outside 0..N-1", "vocab.json", "\"zz\"");
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\na a\naa a</w>\n", ",\"zz\":\"1\"");
    expect_load_error("id not a number", "vocab.json", "\"zz\"");
    write_text("vocab.json", "[1, 2]");
    expect_load_error("vocab.json not an object", "vocab.json", "object");
    write_text("vocab.json", "{\"a\": 0, \"b\": 1");
    expect_load_error("truncated vocab.json", "vocab.json", "invalid JSON");
    write_text("vocab.json", "{\"a\": 0, \"b\": 1}");
    expect_load_error("vocab.json without the byte symbols", "vocab.json", "for byte 0x");
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.json", tmpdir);
    unlink(path);
    expect_load_error("missing vocab.json", "vocab.json", "cannot open");
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\na a\naa a</w>\n", NULL);
    snprintf(path, sizeof path, "%s/merges.txt", tmpdir);
    unlink(path);
    expect_load_error("missing merges.txt", "merges.txt", "cannot open");

    struct os_err err = {{0}};
    write_tokenizer(res, "#version: 0.2\nb c</w>\na b\na a\naa a</w>\n", NULL);
    snprintf(path, sizeof path, "%s/vocab.json", tmpdir);
    char mpath[512];
    snprintf(mpath, sizeof mpath, "%s/merges.txt", tmpdir);
    t = NULL;
    check(tokenizer_load_files(path, mpath, 9999, &t, &err) == -1 && t == NULL && strstr(err.msg, "pad id 9999"),
          "tokenizer_load_files: pad id outside the vocabulary: %s", err.msg);

    remove_configs();
    unlink(path);
    unlink(mpath);
    rmdir(tmpdir);
}

/* Damaged copies of the real 49408-entry files. */
static void real_files_damaged(const char *dir)
{
    char vpath[1024], mpath[1024];
    snprintf(vpath, sizeof vpath, "%s/vocab.json", dir);
    snprintf(mpath, sizeof mpath, "%s/merges.txt", dir);
    size_t vlen = 0, mlen = 0;
    char *v = read_file(vpath, &vlen), *m = read_file(mpath, &mlen);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/onestep_tok_XXXXXX");
    if (!check(v && m && mkdtemp(tmpdir) != NULL, "read the real files, make a temporary directory")) {
        free(v);
        free(m);
        return;
    }
    char tv[512], tm[512];
    snprintf(tv, sizeof tv, "%s/vocab.json", tmpdir);
    snprintf(tm, sizeof tm, "%s/merges.txt", tmpdir);
    struct os_err err = {{0}};
    struct tokenizer *t = NULL;
    FILE *f;

    /* merges.txt cut in the middle of a line, then at a line boundary */
    if ((f = fopen(tv, "wb"))) fwrite(v, 1, vlen, f), fclose(f);
    size_t cut = mlen / 2;
    while (m[cut] != ' ') cut++;
    if ((f = fopen(tm, "wb"))) fwrite(m, 1, cut, f), fclose(f);
    check(tokenizer_load_files(tv, tm, 0, &t, &err) == -1 && strstr(err.msg, "merges.txt: line"),
          "real merges.txt cut mid-line: %s", err.msg);
    while (m[cut] != '\n') cut++;
    if ((f = fopen(tm, "wb"))) fwrite(m, 1, cut + 1, f), fclose(f);
    check(tokenizer_load_files(tv, tm, 0, &t, &err) == -1 && strstr(err.msg, "truncated"),
          "real merges.txt cut at a line end: %s", err.msg);
    /* vocab.json cut short */
    if ((f = fopen(tm, "wb"))) fwrite(m, 1, mlen, f), fclose(f);
    if ((f = fopen(tv, "wb"))) fwrite(v, 1, vlen / 3, f), fclose(f);
    check(tokenizer_load_files(tv, tm, 0, &t, &err) == -1 && strstr(err.msg, "vocab.json") &&
              strstr(err.msg, "invalid JSON"),
          "real vocab.json cut short: %s", err.msg);
    /* one merge line doubled */
    if ((f = fopen(tv, "wb"))) fwrite(v, 1, vlen, f), fclose(f);
    char *nl = strchr(m, '\n'), *nl2 = nl ? strchr(nl + 1, '\n') : NULL;
    if (nl2 && (f = fopen(tm, "wb"))) {
        fwrite(m, 1, (size_t)(nl2 + 1 - m), f);
        fwrite(nl + 1, 1, (size_t)(nl2 - nl), f); /* line 2 again */
        fwrite(nl2 + 1, 1, mlen - (size_t)(nl2 + 1 - m), f);
        fclose(f);
    }
    check(tokenizer_load_files(tv, tm, 0, &t, &err) == -1 && strstr(err.msg, "line 3") &&
              strstr(err.msg, "already made on line 2"),
          "real merges.txt with a repeated line: %s", err.msg);
    unlink(tv);
    unlink(tm);
    rmdir(tmpdir);
    free(v);
    free(m);
}

int main(void)
{
    const char *dir = clip_tokenizer_dir();
    struct tokenizer *t_eot = NULL, *t_bang = NULL;
    if (dir) {
        char vocab[1024], merges[1024];
        snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
        snprintf(merges, sizeof merges, "%s/merges.txt", dir);
        struct os_err err = {{0}};
        double t0 = now_s();
        int rc = tokenizer_load_files(vocab, merges, 49407, &t_eot, &err);
        double secs = now_s() - t0;
        check(rc == 0 && tokenizer_vocab_size(t_eot) == 49408 && secs < 2.0,
              "load the 49408-entry vocab.json + 48894 merges in %.3f s %s", secs, err.msg);
        rc = tokenizer_load_files(vocab, merges, 0, &t_bang, &err);
        check(rc == 0 && tokenizer_pad_id(t_bang) == 0, "load again with pad id 0 %s", err.msg);
    }
    if (t_eot && t_bang) {
        shared_cases(dir, t_eot, t_bang);
        semantics(t_eot);
        invalid_utf8(t_eot);
        long_prompts(t_eot);
        real_files_damaged(dir);
    }
    conformance_cases();
    synthetic();
    tokenizer_free(t_eot);
    tokenizer_free(t_bang);
    return check_summary();
}
