/* unicode_tables.h — the character properties the CLIP tokenizer needs.
 *
 * The tables (ref/unicode_tables.c) are generated from the Unicode Character
 * Database by tools/gen_unicode_tables.py (`make unicode-tables`); that script
 * documents whose definition each flag follows (Python's str.isspace /
 * str.lower, the `regex` module's \s, \p{L}, \p{N} and IGNORECASE sets). */
#ifndef ONESTEP_UNICODE_TABLES_H
#define ONESTEP_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

enum {
    UNI_WS = 1 << 0,             /* regex \s (White_Space): collapsed to one space */
    UNI_PYSPACE = 1 << 1,        /* Python str.isspace(): stripped at both ends */
    UNI_LETTER = 1 << 2,         /* \p{L} */
    UNI_NUMBER = 1 << 3,         /* \p{N} */
    UNI_OTHER = 1 << 4,          /* [^\s\p{L}\p{N}] under IGNORECASE */
    UNI_CASED = 1 << 5,          /* Cased (Final_Sigma context) */
    UNI_CASE_IGNORABLE = 1 << 6, /* Case_Ignorable (Final_Sigma context) */
    UNI_LOWER = 1 << 7,          /* has a lowercase mapping (uni_lower_map) */
};

#define UNI_SHIFT 7
#define UNI_MAX_CP 0x110000u

/* Full lowercase mapping of one code point: one or two code points (the only
 * two-code-point case is U+0130 -> U+0069 U+0307); to[1] == 0 if one. */
struct uni_lower {
    uint32_t cp;
    uint32_t to[2];
};

extern const char uni_version[];
extern const uint16_t uni_stage1[UNI_MAX_CP >> UNI_SHIFT];
extern const uint8_t uni_stage2[][1u << UNI_SHIFT];
extern const struct uni_lower uni_lower_map[];
extern const size_t uni_lower_count;

/* Flags of a code point (cp < UNI_MAX_CP). */
static inline unsigned uni_flags(uint32_t cp)
{
    return uni_stage2[uni_stage1[cp >> UNI_SHIFT]][cp & ((1u << UNI_SHIFT) - 1)];
}

#endif
