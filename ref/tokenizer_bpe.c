/* tokenizer_bpe.c — byte-pair merging of one pre-tokenizer piece.
 *
 * Upstream (openai CLIP simple_tokenizer.py SimpleTokenizer.bpe, copied into
 * transformers' CLIPTokenizer.bpe) works in passes: the word starts as its
 * byte characters with "</w>" glued to the last one; each pass takes the pair
 * of adjacent symbols with the lowest merge rank and merges every occurrence
 * of it from left to right, an occurrence being skipped when its left symbol
 * was just eaten by the occurrence before ("a a a" -> "aa a"); passes repeat
 * until no adjacent pair has a rank. A word of one symbol is just "x</w>";
 * a word that is itself a vocabulary entry gets no shortcut: it is merged
 * like any other (and usually, not always, ends as that one entry).
 *
 * We get the same result with a heap of (rank, position) entries: popping in
 * that order visits the occurrences of one rank left to right, and an entry
 * whose pair has changed since it was pushed is skipped, which is exactly the
 * overlap rule. It relies on passes running in increasing rank order: a merge
 * of rank r only creates pairs of rank > r. tokenizer.c guarantees this at
 * load time (every merge's parts are bytes or results of earlier merges, and
 * each result is made by one merge only), as in every CLIP merges.txt.
 * O(n log n) per piece instead of upstream's O(n^2).
 *
 * Long pieces (a 10 MB word) need not be merged whole: only 75 tokens are
 * kept. With open_end the piece is a prefix of the real word and we find
 * which leading symbols the unseen rest cannot change. Influence travels
 * leftwards only through merges at the boundary: within a pass the overlap
 * rule looks left, never right. Call B the last symbol we trust, T the first
 * we do not. In the real word, B's right neighbour may differ from T, so B is
 * at risk at the first later rank at which B's symbol is the left part of
 * some merge (the ranks are in tok->left_ranks); if B is still B when the
 * passes reach that rank (a merge from its left would have replaced it
 * first, identically in both words), it joins the untrusted part and its
 * left neighbour becomes the new B. Each step needs a larger rank, so the
 * untrusted part is bounded; everything left of it is final. tokenizer.c
 * retries with a longer prefix when too few final symbols come out. */
#include <limits.h>

#include "tokenizer_impl.h"

#define NONE (-1)
#define NO_RANK INT64_MAX

static void heap_push(struct bpe_work *w, uint64_t key)
{
    size_t i = w->nheap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (w->heap[parent] <= key) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = key;
}

static uint64_t heap_pop(struct bpe_work *w)
{
    uint64_t top = w->heap[0], last = w->heap[--w->nheap];
    size_t i = 0, n = w->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && w->heap[c + 1] < w->heap[c]) c++;
        if (last <= w->heap[c]) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

static void push_pair(const struct tokenizer *t, struct bpe_work *w, int32_t pos)
{
    int32_t r = tok_pair_rank(t, w->sym[pos], w->sym[w->next[pos]]);
    if (r >= 0) heap_push(w, (uint64_t)r << 32 | (uint32_t)pos);
}

/* First rank > after at which `id` is the left part of a merge. */
static int64_t next_left_rank(const struct tokenizer *t, int32_t id, int64_t after)
{
    uint32_t lo = t->left_start[id], hi = t->left_start[id + 1];
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->left_ranks[mid] <= after) lo = mid + 1;
        else hi = mid;
    }
    return lo < t->left_start[id + 1] ? t->left_ranks[lo] : NO_RANK;
}

static int reserve(struct bpe_work *w, size_t n)
{
    if (n <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < n) cap *= 2;
    int32_t *sym = OS_REALLOC(w->sym, cap * sizeof *sym);
    if (sym) w->sym = sym;
    int32_t *next = OS_REALLOC(w->next, cap * sizeof *next);
    if (next) w->next = next;
    int32_t *prev = OS_REALLOC(w->prev, cap * sizeof *prev);
    if (prev) w->prev = prev;
    /* each merge pushes at most two pairs: n - 1 + 2 (n - 1) entries */
    uint64_t *heap = OS_REALLOC(w->heap, 3 * cap * sizeof *heap);
    if (heap) w->heap = heap;
    if (!sym || !next || !prev || !heap) return -1;
    w->cap = cap;
    return 0;
}

long tok_bpe(const struct tokenizer *t, struct bpe_work *w, const unsigned char *bytes, size_t n, int open_end,
             int32_t *out)
{
    if (n == 0) return 0;
    if (n > (size_t)INT32_MAX / 4 || reserve(w, n) != 0) return -1;
    int32_t *sym = w->sym, *next = w->next, *prev = w->prev;
    int32_t len = (int32_t)n;
    for (int32_t i = 0; i < len; i++) {
        sym[i] = t->byte_sym[0][bytes[i]];
        next[i] = i + 1 < len ? i + 1 : NONE;
        prev[i] = i - 1;
    }
    if (!open_end) sym[len - 1] = t->byte_sym[1][bytes[len - 1]];

    /* Symbols at positions >= untrusted may differ in the real word. */
    int32_t untrusted = open_end ? len - 1 : len;
    w->nheap = 0;
    for (int32_t i = 0; i + 1 < untrusted; i++) push_pair(t, w, i);
    int32_t b = open_end ? prev[untrusted] : NONE; /* B: last trusted symbol */
    int64_t b_rank = b != NONE ? next_left_rank(t, sym[b], -1) : NO_RANK;

    for (;;) {
        int64_t top = w->nheap ? (int64_t)(w->heap[0] >> 32) : NO_RANK;
        if (b_rank < top) {
            /* All passes below b_rank are done and B is unchanged: in the
             * real word it may merge with its right neighbour now. */
            untrusted = b;
            b = prev[b];
            b_rank = b != NONE ? next_left_rank(t, sym[b], b_rank) : NO_RANK;
            continue;
        }
        if (top == NO_RANK) break;
        uint64_t e = heap_pop(w);
        int32_t r = (int32_t)(e >> 32), i = (int32_t)(uint32_t)e;
        if (sym[i] == NONE || i >= untrusted) continue;
        int32_t j = next[i];
        if (j == NONE || j >= untrusted || tok_pair_rank(t, sym[i], sym[j]) != r) continue;

        sym[i] = t->merge_result[r];
        sym[j] = NONE;
        next[i] = next[j];
        if (next[j] != NONE) prev[next[j]] = i;
        if (prev[i] != NONE) push_pair(t, w, prev[i]);
        if (next[i] != NONE && next[i] < untrusted) push_pair(t, w, i);
        if (j == b) { /* B was eaten from the left: the merged symbol is B now */
            b = i;
            b_rank = next_left_rank(t, sym[b], r);
        }
    }

    long count = 0;
    for (int32_t i = 0; i != NONE && i < untrusted; i = next[i]) out[count++] = sym[i];
    return count;
}

void tok_bpe_free(struct bpe_work *w)
{
    OS_FREE(w->sym);
    OS_FREE(w->next);
    OS_FREE(w->prev);
    OS_FREE(w->heap);
    *w = (struct bpe_work){0};
}
