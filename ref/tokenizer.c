/* tokenizer.c — loading a CLIP tokenizer and turning prompts into ids.
 *
 * Files, as transformers' CLIPTokenizer reads them:
 *   vocab.json   {"token": id, ...}: 256 byte characters, the same with
 *                "</w>", one entry per merge, <|startoftext|>, <|endoftext|>
 *   merges.txt   "#version: 0.2" then one merge per line, "left right", in
 *                rank order (line 2 = rank 0)
 *   tokenizer_config.json / special_tokens_map.json   the pad token
 *
 * Upstream accepts files we refuse: it skips line 1 whatever it says, keeps
 * the last of duplicate merges, ignores blank lines and merges it can never
 * apply, and maps a piece missing from vocab.json to <|endoftext|> (the unk
 * token; openai CLIP raises KeyError). Those only happen with damaged files,
 * so we stop with a message naming the file and line instead. What we
 * require, every CLIP / OpenCLIP tokenizer satisfies: every merge's parts are
 * byte symbols or results of earlier merges, every result is in vocab.json
 * and made by one merge only, and vocab ids are 0..N-1 once each. It also
 * makes the merges run in increasing rank order, which tokenizer_bpe.c uses.
 * Like upstream we read at most 48894 merges and ignore any lines after. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../weights/json.h"
#include "tokenizer_impl.h"

#define TOKENIZER_FILE_MAX (64u << 20) /* vocab.json is ~1 MB, merges.txt ~0.5 MB */

static const char START[] = "<|startoftext|>";
static const char END[] = "<|endoftext|>";

/* ---- hashing ---- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

static uint64_t hash_pair(uint64_t key)
{
    key ^= key >> 31;
    key *= 0x9E3779B97F4A7C15u;
    return key ^ (key >> 29);
}

static size_t table_size(size_t n)
{
    size_t s = 64;
    while (s < 2 * n) s *= 2;
    return s;
}

int32_t tok_vocab_id(const struct tokenizer *t, const char *s, size_t len)
{
    for (size_t i = hash_bytes(s, len) & t->vmask;; i = (i + 1) & t->vmask) {
        int32_t id = t->vslot[i];
        if (id < 0) return -1;
        size_t off = t->str_off[id], n = t->str_off[id + 1] - off - 1;
        if (n == len && memcmp(t->pool + off, s, len) == 0) return id;
    }
}

int32_t tok_pair_rank(const struct tokenizer *t, int32_t left, int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = hash_pair(key) & t->pmask;; i = (i + 1) & t->pmask) {
        if (t->pkey[i] == key) return t->prank[i];
        if (t->pkey[i] == PAIR_EMPTY) return -1;
    }
}

/* ---- vocab.json ---- */

static int load_vocab(struct tokenizer *t, const char *path, struct os_err *err)
{
    struct json *j = json_parse_file(path, TOKENIZER_FILE_MAX, err);
    if (!j) return -1;
    int rc = -1;
    size_t *len_of = NULL;
    if (j->type != JSON_OBJECT || j->len == 0) {
        os_fail(err, "%s: expected a non-empty JSON object {\"token\": id, ...}, got %s", path,
                j->type == JSON_OBJECT ? "an empty object" : json_type_name(j->type));
        goto out;
    }
    size_t n = j->len;
    if (n > (size_t)INT32_MAX / 2) {
        os_fail(err, "%s: %zu entries is too many", path, n);
        goto out;
    }
    /* Ids must be 0..n-1, each once: then id -> string is an array. */
    len_of = OS_MALLOC(n * sizeof *len_of);
    t->str_off = OS_MALLOC((n + 1) * sizeof *t->str_off);
    if (!len_of || !t->str_off) goto oom;
    for (size_t i = 0; i < n; i++) len_of[i] = SIZE_MAX;
    size_t pool = 0;
    for (size_t i = 0; i < n; i++) {
        const struct json *v = &j->items[i];
        if (v->type != JSON_NUMBER || !v->is_int || v->integer < 0 || (uint64_t)v->integer >= n) {
            os_fail(err, "%s: the id of \"%s\" must be an integer from 0 to %zu (one per entry)", path, j->keys[i],
                    n - 1);
            goto out;
        }
        size_t id = (size_t)v->integer;
        if (len_of[id] != SIZE_MAX) {
            os_fail(err, "%s: id %zu is given to two entries (the second is \"%s\")", path, id, j->keys[i]);
            goto out;
        }
        len_of[id] = j->key_lens[i];
        pool += j->key_lens[i] + 1;
    }
    t->pool = OS_MALLOC(pool);
    t->vmask = table_size(n) - 1;
    t->vslot = OS_MALLOC((t->vmask + 1) * sizeof *t->vslot);
    if (!t->pool || !t->vslot) goto oom;
    t->str_off[0] = 0;
    for (size_t id = 0; id < n; id++) t->str_off[id + 1] = t->str_off[id] + len_of[id] + 1;
    for (size_t i = 0; i <= t->vmask; i++) t->vslot[i] = -1;
    for (size_t i = 0; i < n; i++) {
        size_t id = (size_t)j->items[i].integer, off = t->str_off[id];
        memcpy(t->pool + off, j->keys[i], j->key_lens[i]);
        t->pool[off + j->key_lens[i]] = '\0';
        size_t s = hash_bytes(j->keys[i], j->key_lens[i]) & t->vmask;
        while (t->vslot[s] >= 0) s = (s + 1) & t->vmask; /* keys are unique: json.c rejects duplicates */
        t->vslot[s] = (int32_t)id;
    }
    t->nvocab = n;
    rc = 0;
    goto out;
oom:
    os_fail(err, "%s: out of memory", path);
out:
    OS_FREE(len_of);
    json_free(j);
    return rc;
}

/* CLIP's byte alphabet (bytes_to_unicode in openai CLIP / GPT-2): printable
 * Latin-1 bytes stand for themselves, the other 68 bytes become U+0100.. in
 * byte order, so every byte is a visible character. */
static uint32_t byte_char(unsigned b)
{
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (printable) return b;
    unsigned k = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) k++;
    return 0x100 + k;
}

static int find_byte_symbols(struct tokenizer *t, const char *path, struct os_err *err)
{
    for (unsigned b = 0; b < 256; b++) {
        uint32_t c = byte_char(b);
        char s[8];
        size_t n = 0;
        if (c < 0x80) {
            s[n++] = (char)c;
        } else {
            s[n++] = (char)(0xC0 | (c >> 6));
            s[n++] = (char)(0x80 | (c & 0x3F));
        }
        memcpy(s + n, "</w>", 4);
        t->byte_sym[0][b] = tok_vocab_id(t, s, n);
        t->byte_sym[1][b] = tok_vocab_id(t, s, n + 4);
        for (int w = 0; w < 2; w++)
            if (t->byte_sym[w][b] < 0)
                return os_fail(err, "%s: no entry \"%.*s\" for byte 0x%02X", path, (int)(w ? n + 4 : n), s, b);
    }
    return 0;
}

/* ---- merges.txt ---- */

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Python's str.split() on one line: exactly two parts expected. */
static int split_line(const char *s, size_t n, const char **a, size_t *na, const char **b, size_t *nb)
{
    size_t i = 0;
    const char *part[3];
    size_t len[3];
    int k = 0;
    while (i < n) {
        while (i < n && is_blank(s[i])) i++;
        if (i == n) break;
        size_t start = i;
        while (i < n && !is_blank(s[i])) i++;
        if (k == 3) return -1;
        part[k] = s + start;
        len[k++] = i - start;
    }
    if (k != 2) return -1;
    *a = part[0], *na = len[0], *b = part[1], *nb = len[1];
    return 0;
}

static int load_merges(struct tokenizer *t, const char *path, struct os_err *err)
{
    size_t size;
    char *text = os_read_file(path, TOKENIZER_FILE_MAX, "a tokenizer file", &size, err);
    if (!text) return -1;
    int rc = -1;
    char *joined = NULL;
    int32_t *made_on = NULL; /* line that makes each id; -1 for byte symbols, 0 for none */
    size_t bad_at;
    const char *why;
    if (tok_utf8_check((const unsigned char *)text, size, &bad_at, &why) != 0) {
        os_fail(err, "%s: invalid UTF-8 at byte %zu (%s)", path, bad_at, why);
        goto out;
    }
    const char *head = strncmp(text, "\xEF\xBB\xBF", 3) == 0 ? text + 3 : text; /* a BOM is harmless upstream */
    if (strncmp(head, "#version", 8) != 0) {
        /* Upstream drops line 1 unread; without the header the first merge
         * would silently be lost. */
        os_fail(err, "%s: line 1 is not the \"#version\" header", path);
        goto out;
    }
    size_t nmax = TOKENIZER_MAX_MERGES;
    t->merge_result = OS_MALLOC(nmax * sizeof *t->merge_result);
    t->pmask = table_size(nmax) - 1;
    t->pkey = OS_MALLOC((t->pmask + 1) * sizeof *t->pkey);
    t->prank = OS_MALLOC((t->pmask + 1) * sizeof *t->prank);
    made_on = OS_CALLOC(t->nvocab, sizeof *made_on);
    joined = OS_MALLOC(size + 1);
    if (!t->merge_result || !t->pkey || !t->prank || !made_on || !joined) {
        os_fail(err, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i <= t->pmask; i++) t->pkey[i] = PAIR_EMPTY;
    for (unsigned b = 0; b < 256; b++) made_on[t->byte_sym[0][b]] = made_on[t->byte_sym[1][b]] = -1;

    const char *p = strchr(text, '\n');
    size_t line = 1, n = 0;
    while (p && n < nmax) {
        const char *s = p + 1, *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        p = e;
        line++;
        const char *a, *b;
        size_t na, nb;
        if (split_line(s, len, &a, &na, &b, &nb) != 0) {
            size_t k = 0;
            while (k < len && is_blank(s[k])) k++;
            if (k == len) { /* blank: fine only at the end of the file */
                const char *q = s + len;
                while (*q && (is_blank(*q) || *q == '\n')) q++;
                if (!*q) break;
                os_fail(err, "%s: line %zu is blank (only the end of the file may be)", path, line);
                goto out;
            }
            os_fail(err, "%s: line %zu: expected two symbols separated by a space", path, line);
            goto out;
        }
        int32_t left = tok_vocab_id(t, a, na), right = tok_vocab_id(t, b, nb);
        const char *missing = left < 0 ? a : right < 0 ? b : NULL;
        if (missing) {
            os_fail(err, "%s: line %zu: \"%.*s\" is not in vocab.json", path, line,
                    (int)(left < 0 ? na : nb), missing);
            goto out;
        }
        if (!made_on[left] || !made_on[right]) {
            int l = !made_on[left];
            os_fail(err, "%s: line %zu: \"%.*s\" is neither a byte symbol nor made by an earlier merge", path, line,
                    (int)(l ? na : nb), l ? a : b);
            goto out;
        }
        memcpy(joined, a, na);
        memcpy(joined + na, b, nb);
        int32_t result = tok_vocab_id(t, joined, na + nb);
        if (result < 0) {
            os_fail(err, "%s: line %zu: the merged symbol \"%.*s\" is not in vocab.json", path, line, (int)(na + nb),
                    joined);
            goto out;
        }
        if (made_on[result]) {
            if (made_on[result] < 0)
                os_fail(err, "%s: line %zu: merges into \"%.*s\", which is a byte symbol", path, line,
                        (int)(na + nb), joined);
            else
                os_fail(err, "%s: line %zu: \"%.*s\" is already made on line %d (duplicate merge?)", path, line,
                        (int)(na + nb), joined, made_on[result]);
            goto out;
        }
        made_on[result] = (int32_t)line;
        uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
        size_t slot = hash_pair(key) & t->pmask;
        while (t->pkey[slot] != PAIR_EMPTY) slot = (slot + 1) & t->pmask; /* pairs are unique: results are */
        t->pkey[slot] = key;
        t->prank[slot] = (int32_t)n;
        t->merge_result[n++] = result;
    }
    t->nmerges = n;
    /* vocab.json is bytes + merge results + the two specials; an entry no
     * merge makes means the merges were cut short. */
    size_t orphans = 0, example = 0;
    for (size_t id = 0; id < t->nvocab; id++) {
        if (!made_on[id] && id != (size_t)t->bos && id != (size_t)t->eos) {
            if (!orphans) example = id;
            orphans++;
        }
    }
    if (orphans) {
        os_fail(err, "%s: %zu vocab.json entries (e.g. \"%s\") are made by none of its %zu merges%s", path, orphans,
                t->pool + t->str_off[example], n,
                p && n == nmax ? " (only the first 48894 are read, as upstream)" : "; is the file truncated?");
        goto out;
    }

    /* Ranks by left part (CSR), ascending since we fill in rank order. */
    t->left_start = OS_CALLOC(t->nvocab + 1, sizeof *t->left_start);
    t->left_ranks = OS_MALLOC((n ? n : 1) * sizeof *t->left_ranks);
    if (!t->left_start || !t->left_ranks) {
        os_fail(err, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i <= t->pmask; i++)
        if (t->pkey[i] != PAIR_EMPTY) t->left_start[(t->pkey[i] >> 32) + 1]++;
    for (size_t id = 0; id < t->nvocab; id++) t->left_start[id + 1] += t->left_start[id];
    uint32_t *fill = OS_MALLOC((t->nvocab + 1) * sizeof *fill);
    int32_t *left_of = OS_MALLOC((n ? n : 1) * sizeof *left_of);
    if (!fill || !left_of) {
        OS_FREE(fill);
        OS_FREE(left_of);
        os_fail(err, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i <= t->pmask; i++)
        if (t->pkey[i] != PAIR_EMPTY) left_of[t->prank[i]] = (int32_t)(t->pkey[i] >> 32);
    memcpy(fill, t->left_start, (t->nvocab + 1) * sizeof *fill);
    for (size_t r = 0; r < n; r++) t->left_ranks[fill[left_of[r]]++] = (int32_t)r;
    OS_FREE(fill);
    OS_FREE(left_of);
    rc = 0;
out:
    OS_FREE(made_on);
    OS_FREE(joined);
    OS_FREE(text);
    return rc;
}

/* ---- tokenizer_config.json / special_tokens_map.json ---- */

/* A token field is "text" or an AddedToken object {"content": "text", ...};
 * *out = NULL when the key is absent. */
static int token_field(const struct json *obj, const char *key, const char *path, const char **out, size_t *len,
                       struct os_err *err)
{
    const struct json *v = json_get(obj, key);
    *out = NULL;
    if (!v) return 0;
    if (v->type == JSON_NULL)
        return os_fail(err, "%s: \"%s\" is null, but padding to %d ids needs a token", path, key, TOKENIZER_LEN);
    if (v->type == JSON_OBJECT) v = json_get(v, "content");
    if (!v || v->type != JSON_STRING)
        return os_fail(err, "%s: \"%s\" must be a string or an object with a \"content\" string", path, key);
    *out = v->str;
    *len = v->len;
    return 0;
}

static int load_json_if_present(const char *path, struct json **out, struct os_err *err)
{
    struct stat st;
    *out = NULL;
    if (stat(path, &st) != 0) return errno == ENOENT ? 0 : os_fail(err, "%s: %s", path, strerror(errno));
    *out = json_parse_file(path, TOKENIZER_FILE_MAX, err);
    if (!*out) return -1;
    if ((*out)->type != JSON_OBJECT) return os_fail(err, "%s: expected a JSON object", path);
    return 0;
}

/* The pad token as transformers (>= 4.34) resolves it: tokenizer_config.json
 * when it lists "added_tokens_decoder" (the current format); otherwise the
 * legacy rule, where special_tokens_map.json overrides tokenizer_config.json;
 * CLIPTokenizer's default "<|endoftext|>" when neither names one. */
static int load_pad(struct tokenizer *t, const char *cfg_path, const char *map_path, struct os_err *err)
{
    struct json *cfg = NULL, *map = NULL;
    int rc = -1;
    const char *pad = NULL, *from = NULL;
    size_t pad_len = 0;
    if (load_json_if_present(cfg_path, &cfg, err) != 0 || load_json_if_present(map_path, &map, err) != 0) goto out;
    if (cfg) {
        const struct json *m = json_get(cfg, "model_max_length");
        if (m && m->type != JSON_NULL && !(m->type == JSON_NUMBER && m->number == TOKENIZER_LEN)) {
            os_fail(err, "%s: model_max_length must be %d (CLIP's 77 positions)", cfg_path, TOKENIZER_LEN);
            goto out;
        }
    }
    const struct json *src = cfg;
    from = cfg_path;
    if (map && !(cfg && json_get(cfg, "added_tokens_decoder")) && json_get(map, "pad_token")) {
        src = map;
        from = map_path;
    }
    if (src && token_field(src, "pad_token", from, &pad, &pad_len, err) != 0) goto out;
    if (!pad) {
        pad = END;
        pad_len = strlen(END);
        from = cfg ? cfg_path : map_path;
    }
    t->pad = tok_vocab_id(t, pad, pad_len);
    if (t->pad < 0) {
        os_fail(err, "%s: pad token \"%.*s\" is not in vocab.json", from, (int)pad_len, pad);
        goto out;
    }
    rc = 0;
out:
    json_free(cfg);
    json_free(map);
    return rc;
}

/* ---- loading ---- */

static int load_common(struct tokenizer *t, const char *vocab_json, const char *merges_txt, struct os_err *err)
{
    if (load_vocab(t, vocab_json, err) != 0 || find_byte_symbols(t, vocab_json, err) != 0) return -1;
    t->bos = tok_vocab_id(t, START, strlen(START));
    t->eos = tok_vocab_id(t, END, strlen(END));
    if (t->bos < 0 || t->eos < 0)
        return os_fail(err, "%s: no entry for \"%s\"", vocab_json, t->bos < 0 ? START : END);
    return load_merges(t, merges_txt, err);
}

int tokenizer_load_files(const char *vocab_json, const char *merges_txt, int32_t pad_id, struct tokenizer **out,
                         struct os_err *err)
{
    *out = NULL;
    struct tokenizer *t = OS_CALLOC(1, sizeof *t);
    if (!t) return os_fail(err, "%s: out of memory", vocab_json);
    if (load_common(t, vocab_json, merges_txt, err) != 0) {
        tokenizer_free(t);
        return -1;
    }
    if (pad_id < 0 || (size_t)pad_id >= t->nvocab) {
        os_fail(err, "%s: pad id %d is outside the vocabulary (0..%zu)", vocab_json, (int)pad_id, t->nvocab - 1);
        tokenizer_free(t);
        return -1;
    }
    t->pad = pad_id;
    *out = t;
    return 0;
}

int tokenizer_load_paths(const char *vocab_json, const char *merges_txt, const char *tokenizer_config,
                         const char *special_tokens_map, struct tokenizer **out, struct os_err *err)
{
    *out = NULL;
    struct tokenizer *t = OS_CALLOC(1, sizeof *t);
    if (!t) return os_fail(err, "%s: out of memory", vocab_json);
    if (load_common(t, vocab_json, merges_txt, err) != 0 ||
        load_pad(t, tokenizer_config, special_tokens_map, err) != 0) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int tokenizer_load(const char *dir, struct tokenizer **out, struct os_err *err)
{
    *out = NULL;
    char vocab[4096], merges[4096], cfg[4096], map[4096];
    if (snprintf(vocab, sizeof vocab, "%s/vocab.json", dir) >= (int)sizeof vocab ||
        snprintf(merges, sizeof merges, "%s/merges.txt", dir) >= (int)sizeof merges ||
        snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir) >= (int)sizeof cfg ||
        snprintf(map, sizeof map, "%s/special_tokens_map.json", dir) >= (int)sizeof map)
        return os_fail(err, "%s: path too long", dir);
    return tokenizer_load_paths(vocab, merges, cfg, map, out, err);
}

void tokenizer_free(struct tokenizer *t)
{
    if (!t) return;
    OS_FREE(t->pool);
    OS_FREE(t->str_off);
    OS_FREE(t->vslot);
    OS_FREE(t->merge_result);
    OS_FREE(t->pkey);
    OS_FREE(t->prank);
    OS_FREE(t->left_start);
    OS_FREE(t->left_ranks);
    OS_FREE(t);
}

/* ---- encoding ---- */

int tokenizer_bpe(const struct tokenizer *t, const char *prompt, size_t len, int32_t *ids, size_t max, size_t *n,
                  struct os_err *err)
{
    *n = 0;
    if (!prompt && len) return os_fail(err, "prompt: NULL with length %zu", len);
    const unsigned char *s = (const unsigned char *)(prompt ? prompt : "");
    size_t bad_at;
    const char *why;
    if (tok_utf8_check(s, len, &bad_at, &why) != 0)
        return os_fail(err, "prompt: invalid UTF-8 at byte %zu: %s", bad_at, why);

    struct tok_reader r;
    tok_reader_init(&r, s, len);
    struct bpe_work w = {0};
    unsigned char *buf = NULL;
    int32_t *syms = NULL;
    size_t buf_cap = 0;
    int rc = 0;
    while (*n < max) {
        /* A piece is read TOK_FIRST_WINDOW bytes at a time; if its start is not
         * settled by then (tokenizer_bpe.c), it is read again, twice as far. */
        struct tok_reader start = r;
        for (size_t window = TOK_FIRST_WINDOW;; window *= 2) {
            if (window > buf_cap) {
                unsigned char *b2 = OS_REALLOC(buf, window);
                if (b2) buf = b2;
                int32_t *s2 = OS_REALLOC(syms, window * sizeof *syms);
                if (s2) syms = s2;
                if (!b2 || !s2) {
                    rc = os_fail(err, "prompt: out of memory (a word of more than %zu bytes)", window / 2);
                    goto done;
                }
                buf_cap = window;
            }
            size_t plen;
            int open;
            if (!tok_next_piece(&r, buf, window, &plen, &open)) goto done;
            size_t need = max - *n;
            if (!open && plen == strlen(START) && memcmp(buf, START, plen) == 0) {
                ids[(*n)++] = t->bos; /* upstream's bpe cache holds the two specials as they are */
                break;
            }
            if (!open && plen == strlen(END) && memcmp(buf, END, plen) == 0) {
                ids[(*n)++] = t->eos;
                break;
            }
            long got = tok_bpe(t, &w, buf, plen, open, syms);
            if (got < 0) {
                rc = os_fail(err, "prompt: out of memory merging a word of %zu bytes", plen);
                goto done;
            }
            if (!open || (size_t)got >= need) {
                size_t k = (size_t)got < need ? (size_t)got : need;
                memcpy(ids + *n, syms, k * sizeof *ids);
                *n += k;
                break;
            }
            if (window > SIZE_MAX / 4) {
                rc = os_fail(err, "prompt: a word too long to merge");
                goto done;
            }
            r = start;
        }
    }
done:
    tok_bpe_free(&w);
    OS_FREE(buf);
    OS_FREE(syms);
    return rc;
}

int tokenizer_encode(const struct tokenizer *t, const char *prompt, size_t len, int32_t ids[TOKENIZER_LEN],
                     struct os_err *err)
{
    size_t n;
    if (tokenizer_bpe(t, prompt, len, ids + 1, TOKENIZER_LEN - 2, &n, err) != 0) return -1;
    ids[0] = t->bos;
    ids[n + 1] = t->eos;
    for (size_t i = n + 2; i < TOKENIZER_LEN; i++) ids[i] = t->pad;
    return 0;
}

int32_t tokenizer_pad_id(const struct tokenizer *t)
{
    return t->pad;
}

int32_t tokenizer_bos_id(const struct tokenizer *t)
{
    return t->bos;
}

int32_t tokenizer_eos_id(const struct tokenizer *t)
{
    return t->eos;
}

size_t tokenizer_vocab_size(const struct tokenizer *t)
{
    return t->nvocab;
}

const char *tokenizer_token(const struct tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= t->nvocab) return NULL;
    if (len) *len = t->str_off[id + 1] - t->str_off[id] - 1;
    return t->pool + t->str_off[id];
}
