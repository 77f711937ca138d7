#!/usr/bin/env python3
"""Generate ref/unicode_tables.c, the character tables of the CLIP tokenizer.

    python3 tools/gen_unicode_tables.py /usr/share/unicode ref/unicode_tables.c
    (or: make unicode-tables)

Input: the Unicode Character Database as Debian's `unicode-data` package
installs it (UnicodeData.txt, PropList.txt, DerivedCoreProperties.txt,
SpecialCasing.txt, CaseFolding.txt). Only the standard library is used, so the
output depends on nothing but those files.

What the tokenizer needs to know about a code point, and whose definition it
follows (upstream = transformers' CLIPTokenizer / openai CLIP's
simple_tokenizer.py, both Python with the `regex` module):

  UNI_WS        `\\s` of the regex module = the White_Space property (PropList).
                whitespace_clean's re.sub(r"\\s+", " ") collapses these.
  UNI_PYSPACE   Python's str.isspace(): general category Zs or bidi class
                WS, B or S (CPython Tools/unicode/makeunicodedata.py). A
                superset of White_Space (adds U+001C..U+001F); str.strip()
                removes these at both ends.
  UNI_LETTER    \\p{L}: general category Lu, Ll, Lt, Lm or Lo.
  UNI_NUMBER    \\p{N}: general category Nd, Nl or No.
  UNI_OTHER     member of [^\\s\\p{L}\\p{N}] in a pattern compiled with
                re.IGNORECASE. The regex module matches a multi-member set
                case-insensitively by trying every case variant of the
                character, so a character whose case variant is a space, letter
                or number is NOT in the negated set, although it is not in
                \\p{L} itself (`[\\p{L}]` alone is reduced to the plain property,
                which ignores case). Such a character matches no alternative of
                the CLIP pattern and findall() skips it: U+0345 COMBINING GREEK
                YPOGEGRAMMENI (case variant of iota) is the only one.
                Case variants = same simple case folding (CaseFolding.txt status
                C and S).
  UNI_CASED, UNI_CASE_IGNORABLE
                DerivedCoreProperties; used by Python's str.lower() for the
                Final_Sigma rule (CPython handle_capital_sigma).
  UNI_LOWER     the code point has a lowercase mapping other than itself.

Lowercase mapping = Python's str.lower(): SpecialCasing.txt entries without a
condition (CPython ignores the language/context conditions and hard-codes only
Final_Sigma), else the simple lowercase mapping of UnicodeData.txt.
"""

import os
import sys

MAX_CP = 0x110000
SHIFT = 7  # block size 128: a good size/speed balance for these flags

FLAGS = [
    ("UNI_WS", 1 << 0),
    ("UNI_PYSPACE", 1 << 1),
    ("UNI_LETTER", 1 << 2),
    ("UNI_NUMBER", 1 << 3),
    ("UNI_OTHER", 1 << 4),
    ("UNI_CASED", 1 << 5),
    ("UNI_CASE_IGNORABLE", 1 << 6),
    ("UNI_LOWER", 1 << 7),
]
F = dict(FLAGS)


def data_lines(path):
    """Fields of each non-comment line, split on ';' and stripped."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                yield [x.strip() for x in line.split(";")]


def cp_range(field):
    if ".." in field:
        a, b = field.split("..")
        return range(int(a, 16), int(b, 16) + 1)
    return range(int(field, 16), int(field, 16) + 1)


def binary_property(path, name):
    s = set()
    for fields in data_lines(path):
        if fields[1] == name:
            s.update(cp_range(fields[0]))
    if not s:
        sys.exit("%s: no code point has property %s" % (path, name))
    return s


def read_unicode_data(path):
    """General category, bidi class and simple lowercase per code point."""
    gc = {}
    bidi = {}
    lower = {}
    first = None
    for fields in data_lines(path):
        cp = int(fields[0], 16)
        name = fields[1]
        if name.endswith(", First>"):
            first = cp
            continue
        if name.endswith(", Last>"):
            cps = range(first, cp + 1)
        else:
            cps = range(cp, cp + 1)
        for c in cps:
            gc[c] = fields[2]
            bidi[c] = fields[4]
            if fields[13]:
                lower[c] = [int(fields[13], 16)]
    return gc, bidi, lower


def read_version(ucd):
    # ReadMe.txt of the UCD names the version; fall back to DerivedAge's header.
    for name in ("DerivedAge.txt", "DerivedCoreProperties.txt"):
        path = os.path.join(ucd, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                head = f.readline().strip()
            # "# DerivedAge-15.0.0.txt"
            if "-" in head and head.endswith(".txt"):
                return head.split("-", 1)[1][:-4]
    return "unknown"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_unicode_tables.py UCD_DIR OUT.c")
    ucd, out = sys.argv[1], sys.argv[2]
    p = lambda n: os.path.join(ucd, n)

    gc, bidi, lower = read_unicode_data(p("UnicodeData.txt"))
    white = binary_property(p("PropList.txt"), "White_Space")
    cased = binary_property(p("DerivedCoreProperties.txt"), "Cased")
    ignorable = binary_property(p("DerivedCoreProperties.txt"), "Case_Ignorable")

    # Python's full lowercase: unconditional SpecialCasing entries win.
    for fields in data_lines(p("SpecialCasing.txt")):
        condition = fields[4] if len(fields) > 4 else ""
        if condition:
            continue
        cp = int(fields[0], 16)
        lower[cp] = [int(x, 16) for x in fields[1].split()]
    lower = {c: m for c, m in lower.items() if m != [c]}
    max_lower = max(len(m) for m in lower.values())
    if max_lower > 2:
        sys.exit("a lowercase mapping has %d code points; struct uni_lower holds 2" % max_lower)

    # Case variants for the IGNORECASE set: classes of equal simple folding.
    fold = {}
    for fields in data_lines(p("CaseFolding.txt")):
        if fields[1] in ("C", "S"):
            fold[int(fields[0], 16)] = int(fields[2], 16)
    classes = {}
    for c, f in fold.items():
        classes.setdefault(f, {f}).add(c)
    variants = {}
    for members in classes.values():
        for c in members:
            variants[c] = members

    def is_letter(c):
        return gc.get(c, "Cn")[0] == "L"

    def is_number(c):
        return gc.get(c, "Cn")[0] == "N"

    def in_set(c):  # [\s\p{L}\p{N}]
        return c in white or is_letter(c) or is_number(c)

    flags = [0] * MAX_CP
    skipped = []
    for c in range(MAX_CP):
        v = 0
        if c in white:
            v |= F["UNI_WS"]
        if c in gc and (gc[c] == "Zs" or bidi[c] in ("WS", "B", "S")):
            v |= F["UNI_PYSPACE"]
        if is_letter(c):
            v |= F["UNI_LETTER"]
        if is_number(c):
            v |= F["UNI_NUMBER"]
        if not any(in_set(d) for d in variants.get(c, (c,))):
            v |= F["UNI_OTHER"]
        elif not in_set(c):
            skipped.append(c)
        if c in cased:
            v |= F["UNI_CASED"]
        if c in ignorable:
            v |= F["UNI_CASE_IGNORABLE"]
        if c in lower:
            v |= F["UNI_LOWER"]
        flags[c] = v

    # Sanity: what the tokenizer code relies on.
    assert white <= {c for c in range(MAX_CP) if flags[c] & F["UNI_PYSPACE"]}
    for c, m in lower.items():
        for d in m:
            assert not flags[d] & F["UNI_PYSPACE"], "lowercasing produced whitespace"
    # Final_Sigma is judged on the raw text (tokenizer_text.c): whitespace must
    # end its scans the way the stripped / collapsed text would.
    for c in range(MAX_CP):
        if flags[c] & F["UNI_PYSPACE"]:
            assert not flags[c] & (F["UNI_CASED"] | F["UNI_CASE_IGNORABLE"]), "U+%04X" % c

    # Two-stage table: stage1[c >> SHIFT] picks a block of stage2.
    block = 1 << SHIFT
    blocks = []
    index = {}
    stage1 = []
    for start in range(0, MAX_CP, block):
        b = tuple(flags[start:start + block])
        if b not in index:
            index[b] = len(blocks)
            blocks.append(b)
        stage1.append(index[b])
    if len(blocks) > 65535:
        sys.exit("too many blocks")

    version = read_version(ucd)
    w = []
    w.append("/* unicode_tables.c — GENERATED by tools/gen_unicode_tables.py from the Unicode")
    w.append(" * Character Database %s (%s). Do not edit: run `make unicode-tables`." % (version, ucd))
    w.append(" * The meaning of each flag is documented in the generator and in unicode_tables.h. */")
    w.append('#include "unicode_tables.h"')
    w.append("")
    w.append('const char uni_version[] = "%s";' % version)
    w.append("")
    w.append("/* Code points that are in no class of the CLIP pattern (see UNI_OTHER): %s */"
             % ", ".join("U+%04X" % c for c in skipped))
    w.append("")
    w.append("const uint16_t uni_stage1[%d] = {" % len(stage1))
    for i in range(0, len(stage1), 32):
        w.append("    " + ",".join(str(x) for x in stage1[i:i + 32]) + ",")
    w.append("};")
    w.append("")
    w.append("const uint8_t uni_stage2[%d][%d] = {" % (len(blocks), block))
    for b in blocks:
        w.append("    {")
        for i in range(0, block, 32):
            w.append("        " + ",".join(str(x) for x in b[i:i + 32]) + ",")
        w.append("    },")
    w.append("};")
    w.append("")
    items = sorted(lower.items())
    w.append("const struct uni_lower uni_lower_map[%d] = {" % len(items))
    for c, m in items:
        m2 = m + [0] * (2 - len(m))
        w.append("    {0x%04X, {0x%04X, 0x%04X}}," % (c, m2[0], m2[1]))
    w.append("};")
    w.append("const size_t uni_lower_count = %d;" % len(items))
    w.append("")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(w))
    print("%s: Unicode %s, %d blocks of %d, %d lowercase mappings, skipped: %s"
          % (out, version, len(blocks), block, len(items), " ".join("U+%04X" % c for c in skipped)))


if __name__ == "__main__":
    main()
