/* tokenizer.h — the CLIP BPE tokenizer, as diffusers users get it.
 *
 * A prompt becomes 77 ids as the conformance suite defines them: openai
 * CLIP's SimpleTokenizer.encode (ftfy treated as the identity, and without
 * its html.unescape, which transformers' CLIPTokenizer does not do either),
 * framed and padded like transformers' CLIPTokenizer(prompt,
 * padding="max_length", max_length=77, truncation=True):
 *
 *   1. whitespace_clean: runs of \s (the regex module's White_Space) become one
 *      space, then Python's str.strip() (which also removes U+001C..U+001F).
 *   2. Python's str.lower(): full Unicode lowercase mapping incl. the
 *      unconditional SpecialCasing entries ("İ" -> "i̇") and Final_Sigma; not
 *      case folding ("ß" stays "ß").
 *   3. The CLIP pre-tokenizer, regex findall with IGNORECASE:
 *        <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d |
 *        [\p{L}]+ | [\p{N}] | [^\s\p{L}\p{N}]+
 *      (each digit its own piece; "'single'" -> "'s" "ingle" "'").
 *   4. Each piece's UTF-8 bytes mapped to CLIP's printable byte characters,
 *      the last one marked "</w>", merged pairwise by merges.txt rank.
 *   5. [<|startoftext|>] + ids[:75] + [<|endoftext|>], padded to 77 with the
 *      tokenizer's pad token ("!" = 0 for OpenCLIP tokenizers: SD 2.x /
 *      SD-Turbo tokenizer/, SDXL tokenizer_2/; "<|endoftext|>" = 49407 for the
 *      CLIP ViT-L tokenizer: SDXL tokenizer/).
 *
 * Special tokens are recognised only where a piece starts (step 3), and the
 * pad token plays no part inside the text. transformers differs here: its
 * PreTrainedTokenizer first splits every special token (bos, eos, unk, pad)
 * out of the raw text, so with a "!" pad token each "!" of a prompt becomes
 * id 0 ("f/1.8!!" ends in 0 0, not "!!</w>" = 748; diffusers issue #4153).
 * The suite follows openai here (case sd_t2i_2step expects 748), and so do we.
 *
 * Prompts are literal: "(word:1.3)" and "[x]" are text, not weighting syntax.
 * Not done, as in transformers: html.unescape (openai CLIP does it) and ftfy's
 * repairs (fix_text is the identity on clean NFC text; transformers without
 * ftfy installed uses a BERT BasicTokenizer instead, which differs on control
 * characters and CJK — we follow the ftfy path, as the conformance suite does).
 *
 * Input is UTF-8 of explicit length; invalid UTF-8 (truncated, overlong,
 * surrogate, > U+10FFFF, stray continuation byte) is an error. U+0000 is an
 * ordinary character, as in a Python str: not whitespace, not a letter or
 * number, so it forms a [^\s\p{L}\p{N}]+ piece (byte 0 has a vocab entry).
 * A character none of the pattern's classes accepts (only U+0345, whose case
 * variant is a letter; see tools/gen_unicode_tables.py) is skipped, as
 * regex.findall skips it. The Unicode tables are generated from the Unicode
 * Character Database (version in uni_version, ref/unicode_tables.h).
 *
 * Cost is linear in the prompt: everything after the 75th token is only
 * validated as UTF-8, never tokenized (the result is identical; see
 * tokenizer_bpe.c for why this holds even inside one very long word).
 *
 * The loaded tokenizer is immutable: one can serve several threads. */
#ifndef ONESTEP_TOKENIZER_H
#define ONESTEP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define TOKENIZER_LEN 77 /* BOS + up to 75 tokens + EOS, padded */

struct tokenizer;

/* Load DIR/vocab.json, DIR/merges.txt and the pad token, resolved as
 * transformers does: DIR/tokenizer_config.json's "pad_token", overridden by
 * DIR/special_tokens_map.json's unless the config is in the current format
 * (has "added_tokens_decoder"); "<|endoftext|>" when neither names one.
 * Damaged files are refused (see tokenizer.c); errors name the file and the
 * problem. */
int tokenizer_load(const char *dir, struct tokenizer **out, struct os_err *err);
/* The same with each file named (a single-file checkpoint's tokenizer files
 * come from different directories); the two JSON files may be absent. */
int tokenizer_load_paths(const char *vocab_json, const char *merges_txt, const char *tokenizer_config,
                         const char *special_tokens_map, struct tokenizer **out, struct os_err *err);

/* Load from explicit files with an explicit pad id (the shared clip-tokenizer
 * data has only vocab.json + merges.txt). */
int tokenizer_load_files(const char *vocab_json, const char *merges_txt, int32_t pad_id, struct tokenizer **out,
                         struct os_err *err);

void tokenizer_free(struct tokenizer *t);

/* prompt: UTF-8 bytes, length len (NUL bytes are characters). ids: BOS, the
 * first 75 BPE ids, EOS, then the pad id up to 77. Returns 0, or -1 with a
 * message (invalid UTF-8 names the byte offset). */
int tokenizer_encode(const struct tokenizer *t, const char *prompt, size_t len, int32_t ids[TOKENIZER_LEN],
                     struct os_err *err);

/* The BPE ids before framing and truncation: writes the first min(total, max)
 * ids of the prompt to ids[] and that count to *n. Ask for one more than you
 * need to learn whether the prompt would be truncated. Work stops after max
 * ids (the prompt is still validated as a whole). */
int tokenizer_bpe(const struct tokenizer *t, const char *prompt, size_t len, int32_t *ids, size_t max, size_t *n,
                  struct os_err *err);

int32_t tokenizer_pad_id(const struct tokenizer *t);
int32_t tokenizer_bos_id(const struct tokenizer *t); /* <|startoftext|> */
int32_t tokenizer_eos_id(const struct tokenizer *t); /* <|endoftext|> */
size_t tokenizer_vocab_size(const struct tokenizer *t);

/* The vocabulary string of an id, in CLIP's byte alphabet ("cat</w>",
 * "cafÃ©</w>"), or NULL if out of range. NUL-terminated; *len (if non-NULL)
 * gets its length in bytes. */
const char *tokenizer_token(const struct tokenizer *t, int32_t id, size_t *len);

#endif
