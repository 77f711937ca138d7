/* tokenizer_text.c — from prompt bytes to pre-tokenizer pieces.
 *
 * Upstream (transformers' CLIPTokenizer._tokenize with ftfy, openai CLIP's
 * SimpleTokenizer.encode) builds the whole normalised string first:
 *     text = whitespace_clean(text).lower()       # re.sub(r"\s+", " ").strip()
 *     for piece in regex.findall(pat, text): ...
 * We produce the same code points lazily, one at a time, so that work stops
 * with the last token needed (a 10 MB prompt costs a UTF-8 check, not a copy).
 * Character classes come from unicode_tables.h; tools/gen_unicode_tables.py
 * says which upstream definition each one follows. */
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode_tables.h"

int tok_utf8_check(const unsigned char *s, size_t len, size_t *bad_at, const char **why)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            *bad_at = i;
            *why = c <= 0xBF                 ? "a continuation byte without a lead byte"
                   : c <= 0xC1                 ? "an overlong encoding"
                   : c <= 0xF7                 ? "a code point above U+10FFFF"
                                               : "a byte that never occurs in UTF-8";
            return -1;
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80) {
                *bad_at = i;
                *why = "a truncated multi-byte sequence";
                return -1;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min) {
            *bad_at = i;
            *why = "an overlong encoding";
            return -1;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            *bad_at = i;
            *why = "an encoded surrogate (U+D800..U+DFFF)";
            return -1;
        }
        if (cp > 0x10FFFF) {
            *bad_at = i;
            *why = "a code point above U+10FFFF";
            return -1;
        }
        i += need + 1;
    }
    return 0;
}

/* Decode one code point of already validated UTF-8 at *pos. */
static uint32_t utf8_decode(const unsigned char *s, size_t *pos)
{
    size_t i = *pos;
    uint32_t c = s[i];
    if (c < 0x80) {
        *pos = i + 1;
        return c;
    }
    size_t n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
    c &= 0x3F >> n;
    for (size_t k = 1; k <= n; k++) c = (c << 6) | (s[i + k] & 0x3F);
    *pos = i + n + 1;
    return c;
}

static size_t utf8_len(uint32_t c)
{
    return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}

static size_t utf8_encode(uint32_t c, unsigned char *out)
{
    if (c < 0x80) {
        out[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (unsigned char)(0xC0 | (c >> 6));
        out[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (c >> 12));
        out[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (c >> 18));
    out[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

void tok_reader_init(struct tok_reader *r, const unsigned char *s, size_t len)
{
    memset(r, 0, sizeof *r);
    r->s = s;
    r->len = len;
}

/* whitespace_clean one code point at a time. re.sub(r"\s+", " ") turns each
 * run of White_Space into one space; str.strip() then removes every
 * str.isspace() character at both ends, which also takes U+001C..U+001F (bidi
 * class B/S, but not White_Space: inside the text they stay and become pieces
 * of their own). Returns 0 at the end. */
static int clean_next(struct tok_reader *r, uint32_t *out)
{
    while (r->pos < r->len) {
        size_t at = r->pos, after = at;
        uint32_t c = utf8_decode(r->s, &after);
        unsigned f = uni_flags(c);
        if (!(f & UNI_PYSPACE)) {
            r->started = 1;
            r->pos = after;
            r->prev_ws = 0;
            *out = c;
            return 1;
        }
        if (!r->started) { /* leading strip */
            r->pos = after;
            continue;
        }
        if (at >= r->interior_end) {
            /* First character of a space run: it is dropped if the run
             * reaches the end (trailing strip). Each byte is scanned here at
             * most once, so this stays linear. */
            size_t q = at;
            while (q < r->len) {
                size_t q2 = q;
                if (!(uni_flags(utf8_decode(r->s, &q2)) & UNI_PYSPACE)) break;
                q = q2;
            }
            if (q == r->len) {
                r->pos = r->len;
                return 0;
            }
            r->interior_end = q;
        }
        r->pos = after;
        if (f & UNI_WS) {
            if (r->prev_ws) continue;
            r->prev_ws = 1;
            *out = ' ';
            return 1;
        }
        r->prev_ws = 0;
        *out = c;
        return 1;
    }
    return 0;
}

/* CPython's handle_capital_sigma: U+03A3 lowers to final ς when preceded by
 * a Cased character (skipping Case_Ignorable ones) and not followed by one
 * (again skipping Case_Ignorable). The context is the cleaned text; the raw
 * text differs only in whitespace, which is neither Cased nor Case_Ignorable
 * and ends both scans alike, so we scan the raw bytes after the sigma. */
static int sigma_is_final(const struct tok_reader *r)
{
    if (!r->sigma_cased) return 0;
    size_t q = r->pos;
    while (q < r->len) {
        unsigned f = uni_flags(utf8_decode(r->s, &q));
        if (!(f & UNI_CASE_IGNORABLE)) return !(f & UNI_CASED);
    }
    return 1;
}

static const struct uni_lower *lower_entry(uint32_t c)
{
    size_t lo = 0, hi = uni_lower_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (uni_lower_map[mid].cp < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < uni_lower_count && uni_lower_map[lo].cp == c ? &uni_lower_map[lo] : NULL;
}

/* str.lower() of the cleaned text, one code point at a time. */
static int lower_next(struct tok_reader *r, uint32_t *out)
{
    if (r->has_queued) {
        r->has_queued = 0;
        *out = r->queued;
        return 1;
    }
    uint32_t c;
    if (!clean_next(r, &c)) return 0;
    unsigned f = uni_flags(c);
    if (c == 0x03A3) {
        *out = sigma_is_final(r) ? 0x03C2 : 0x03C3;
    } else if (f & UNI_LOWER) {
        const struct uni_lower *e = lower_entry(c);
        *out = e ? e->to[0] : c;
        if (e && e->to[1]) {
            r->queued = e->to[1];
            r->has_queued = 1;
        }
    } else {
        *out = c;
    }
    if (!(f & UNI_CASE_IGNORABLE)) r->sigma_cased = (f & UNI_CASED) != 0;
    return 1;
}

/* k-th code point ahead (k < TOK_LOOKAHEAD); 0 past the end. */
static int peek(struct tok_reader *r, unsigned k, uint32_t *c)
{
    while (r->count <= k) {
        uint32_t x;
        if (!lower_next(r, &x)) return 0;
        r->ring[(r->head + r->count) % TOK_LOOKAHEAD] = x;
        r->count++;
    }
    *c = r->ring[(r->head + k) % TOK_LOOKAHEAD];
    return 1;
}

static void drop(struct tok_reader *r, unsigned k)
{
    r->head = (r->head + k) % TOK_LOOKAHEAD;
    r->count -= k;
}

/* Literal match under IGNORECASE on lower-cased text: the pattern's letters
 * (a d e f l m n o r s t v x) have no case variants left after lower() except
 * U+017F LATIN SMALL LETTER LONG S, which the regex module matches to "s"
 * (simple case folding); so "'ſ" is the contraction piece "'ſ". */
static int literal_at(struct tok_reader *r, unsigned from, const char *lit)
{
    for (unsigned i = 0; lit[i]; i++) {
        uint32_t c;
        if (!peek(r, from + i, &c)) return 0;
        if (c != (unsigned char)lit[i] && !(lit[i] == 's' && c == 0x017F)) return 0;
    }
    return 1;
}

/* Move k code points from the lookahead into the piece. */
static void take(struct tok_reader *r, unsigned k, unsigned char *buf, size_t *n)
{
    for (unsigned i = 0; i < k; i++) {
        uint32_t c;
        peek(r, 0, &c);
        *n += utf8_encode(c, buf + *n);
        drop(r, 1);
    }
}

/* The pattern, tried in this order at each position (regex alternation is
 * ordered, the runs are greedy, and findall skips a position no alternative
 * matches):
 *   <\|startoftext\|> | <\|endoftext\|> | 's|'t|'re|'ve|'m|'ll|'d |
 *   [\p{L}]+ | [\p{N}] | [^\s\p{L}\p{N}]+
 * The contractions match wherever an apostrophe is followed by those letters,
 * also inside quotes: "'single'" gives "'s", "ingle", "'". */
int tok_next_piece(struct tok_reader *r, unsigned char *buf, size_t cap, size_t *n, int *open)
{
    static const char *const specials[] = {"<|startoftext|>", "<|endoftext|>"};
    static const char *const contractions[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    *n = 0;
    *open = 0;
    for (;;) {
        uint32_t c;
        if (!peek(r, 0, &c)) return 0;
        if (c == '<') {
            for (size_t i = 0; i < 2; i++) {
                if (literal_at(r, 0, specials[i])) {
                    take(r, (unsigned)strlen(specials[i]), buf, n);
                    return 1;
                }
            }
        }
        if (c == '\'') {
            for (size_t i = 0; i < 7; i++) {
                if (literal_at(r, 1, contractions[i])) {
                    take(r, 1 + (unsigned)strlen(contractions[i]), buf, n);
                    return 1;
                }
            }
        }
        unsigned f = uni_flags(c);
        if (f & UNI_NUMBER) {
            take(r, 1, buf, n);
            return 1;
        }
        unsigned run = f & (UNI_LETTER | UNI_OTHER);
        if (!run) { /* the space between pieces, or U+0345 (matches nothing) */
            drop(r, 1);
            continue;
        }
        while (peek(r, 0, &c) && (uni_flags(c) & run)) {
            if (*n + utf8_len(c) > cap) {
                *open = 1;
                return 1;
            }
            take(r, 1, buf, n);
        }
        return 1;
    }
}
