/* Fuzz target: the CLIP tokenizer on the real vocabulary (tokenizer_encode,
 * tokenizer_bpe).
 *
 * Promise checked: any bytes give either 77 ids framed as
 * <|startoftext|> ... <|endoftext|> pad..., every id inside the vocabulary,
 * or an error message (invalid UTF-8); and tokenizer_bpe agrees with the
 * framed ids on the first tokens. */
#include <string.h>

#include "../../ref/tokenizer.h"
#include "../lib/check.h"
#include "fuzz.h"

static struct tokenizer *tok;

int fuzz_tokenizer_init(void)
{
    if (tok) return 0;
    const char *dir = clip_tokenizer_dir();
    if (!dir) return -1;
    char vocab[1024], merges[1024];
    snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    snprintf(merges, sizeof merges, "%s/merges.txt", dir);
    struct os_err err = {{0}};
    if (tokenizer_load_files(vocab, merges, 0, &tok, &err)) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int fuzz_tokenizer(const uint8_t *data, size_t size)
{
    if (!tok) return 0;
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    int32_t ids[TOKENIZER_LEN];
    struct os_err err = {{0}};
    if (tokenizer_encode(tok, buf, size, ids, &err) != 0) {
        FUZZ_ASSERT(err.msg[0] != '\0');
        free(buf);
        return 0;
    }
    const int32_t nv = (int32_t)tokenizer_vocab_size(tok);
    int32_t bpe[TOKENIZER_LEN];
    size_t n = 0;
    FUZZ_ASSERT(tokenizer_bpe(tok, buf, size, bpe, 76, &n, &err) == 0);
    FUZZ_ASSERT(n <= 76);
    /* the text itself may contain "<|endoftext|>": find the frame from n */
    const int end = n > 75 ? TOKENIZER_LEN - 1 : (int)n + 1;
    FUZZ_ASSERT(ids[0] == tokenizer_bos_id(tok) && ids[end] == tokenizer_eos_id(tok));
    for (int i = 1; i < end; i++) FUZZ_ASSERT(ids[i] == bpe[i - 1] && ids[i] >= 0 && ids[i] < nv);
    for (int i = end + 1; i < TOKENIZER_LEN; i++) FUZZ_ASSERT(ids[i] == tokenizer_pad_id(tok));
    free(buf);
    return 0;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (fuzz_tokenizer_init()) {
        fprintf(stderr, "fuzz_tokenizer: no vocabulary (run from the repository root, or set ONESTEP_CLIP_TOKENIZER)\n");
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_tokenizer(data, size);
}
#endif
