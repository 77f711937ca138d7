/* tokenizer_impl.h — internals shared by the tokenizer's three files:
 *   tokenizer.c       loading vocab.json / merges.txt / the pad token; framing
 *   tokenizer_text.c  UTF-8, whitespace_clean, lower(), the pre-tokenizer
 *   tokenizer_bpe.c   merging one piece's byte symbols by rank
 * Not a public header. */
#ifndef ONESTEP_TOKENIZER_IMPL_H
#define ONESTEP_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* openai CLIP and transformers both read merges.txt lines [1, 49152-256-2+1):
 * at most 48894 merges (the vocabulary is 256 bytes + 256 bytes with "</w>" +
 * 48894 merges + 2 specials = 49408); later lines are ignored. */
#define TOKENIZER_MAX_MERGES (49152 - 256 - 2)

struct tokenizer {
    /* Vocabulary: id -> string (pool + offsets), string -> id (hash table). */
    size_t nvocab;
    char *pool;
    size_t *str_off; /* [nvocab + 1]: string id spans pool[str_off[id], str_off[id+1] - 1) */
    int32_t *vslot;  /* open addressing, -1 = empty */
    size_t vmask;

    /* Merges by rank. Every symbol is a vocabulary id (checked at load). */
    size_t nmerges;
    int32_t *merge_result; /* [nmerges] */
    uint64_t *pkey;        /* pair table: key = left << 32 | right, or PAIR_EMPTY */
    int32_t *prank;
    size_t pmask;
    /* Ranks at which an id is the left part, ascending (CSR): used to bound
     * how far the unseen rest of a long word can reach back (tokenizer_bpe.c). */
    uint32_t *left_start; /* [nvocab + 1] */
    int32_t *left_ranks;  /* [nmerges] */

    int32_t byte_sym[2][256]; /* id of byte char b, [1]: with "</w>" */
    int32_t bos, eos, pad;
};

#define PAIR_EMPTY UINT64_MAX

/* Rank of merging (left, right), or -1. */
int32_t tok_pair_rank(const struct tokenizer *t, int32_t left, int32_t right);
/* Vocabulary id of a byte string, or -1. */
int32_t tok_vocab_id(const struct tokenizer *t, const char *s, size_t len);

/* ---- tokenizer_text.c ---- */

/* 0 if s[0..len) is valid UTF-8 (RFC 3629), else -1 with *bad_at = byte
 * offset of the offending sequence and *why = a short reason. */
int tok_utf8_check(const unsigned char *s, size_t len, size_t *bad_at, const char **why);

#define TOK_LOOKAHEAD 16 /* >= strlen("<|startoftext|>") */

/* The cleaned, lower-cased text of a validated prompt as a stream of code
 * points, with a little lookahead for the pre-tokenizer. A plain struct:
 * copying it saves the position (tokenizer.c re-reads a long piece). */
struct tok_reader {
    const unsigned char *s;
    size_t len;
    size_t pos;          /* next raw byte */
    size_t interior_end; /* a space run before this offset is known not to be trailing */
    int started;         /* leading spaces stripped */
    int prev_ws;         /* last raw character was \s (runs collapse to one space) */
    int sigma_cased;     /* Final_Sigma: last non-Case_Ignorable character was Cased */
    int has_queued;
    uint32_t queued;     /* second code point of U+0130's lowercase */
    uint32_t ring[TOK_LOOKAHEAD];
    unsigned head, count;
};

void tok_reader_init(struct tok_reader *r, const unsigned char *s, size_t len);

/* The next piece of the pre-tokenizer as UTF-8 appended to buf (capacity
 * cap >= 64 bytes). Returns 0 at the end of the text, else 1 with *n bytes;
 * *open = 1 when the piece (a letter or symbol run) goes on beyond cap bytes:
 * the reader is then left inside the piece and must be restored from a copy. */
int tok_next_piece(struct tok_reader *r, unsigned char *buf, size_t cap, size_t *n, int *open);

/* ---- tokenizer_bpe.c ---- */

/* Bytes of a long piece merged before looking further (then 2x, 4x, ...). */
#define TOK_FIRST_WINDOW 1024

struct bpe_work {
    int32_t *sym, *next, *prev;
    uint64_t *heap;
    size_t cap, nheap; /* room for cap symbols and 3 cap heap entries */
};

/* Merge the byte symbols of one piece, bytes[0..n). With open_end the piece
 * continues after n (no "</w>" on the last byte) and only the symbols the
 * unseen rest cannot change are returned. Writes the final symbol ids to out
 * (room for n) and returns their count, or -1 when out of memory. */
long tok_bpe(const struct tokenizer *t, struct bpe_work *w, const unsigned char *bytes, size_t n, int open_end,
             int32_t *out);
void tok_bpe_free(struct bpe_work *w);

#endif
