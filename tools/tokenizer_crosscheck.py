#!/usr/bin/env python3
"""Cross-check the C tokenizer against Python's own semantics (investigation tool).

    make && python3 tools/tokenizer_crosscheck.py [--seed N] [--count N] [--tables]

Needs python3 with the `regex` module (Debian: python3-regex) and a C compiler;
the C build and its tests never need this. It compiles a tiny driver against
build/libonestep.a and feeds it random prompts; the Python side computes what
transformers' CLIPTokenizer (with ftfy as the identity) would give:

  whitespace_clean = regex.sub(r"\\s+", " ", text).strip(); .lower();
  regex.findall(CLIP pattern, re.IGNORECASE); bytes -> CLIP's byte alphabet;
  BPE by merge rank in passes (written here from the description in
  ref/tokenizer_bpe.c, not copied)

so normalisation and the pre-tokenizer are judged by the real Python `str`
methods and the real `regex` module. Prompts use only code points assigned in
Python's Unicode version: a newer `regex` module classifies code points that
our Unicode 15 tables (and Python's unicodedata) call unassigned.

--tables also compares every flag of ref/unicode_tables.c with Python / regex
for every code point assigned in both Unicode versions.

Prompt classes: short mixed prompts (ASCII, punctuation, contractions,
special tokens, every kind of whitespace incl. U+001C..U+001F and U+0085,
Greek sigma contexts, İ, ſ, U+0345, NUL, accents, Cyrillic, CJK, emoji,
number forms, random code points), and long single words truncated at every
token count near the C code's window boundaries (its early stop).
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import unicodedata

try:
    import regex
except ImportError:
    sys.exit("needs the regex module (apt install python3-regex)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
WINDOW = 1024  # TOK_FIRST_WINDOW in ref/tokenizer_impl.h

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "ref/tokenizer.h"
/* stdin: records "MAX LEN\n" + LEN bytes; stdout: one line of ids (or ERR) each */
int main(int argc, char **argv)
{
    struct os_err err = {{0}};
    struct tokenizer *t;
    if (argc != 3 || tokenizer_load_files(argv[1], argv[2], 0, &t, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t max, len, n;
    while (scanf("%zu %zu", &max, &len) == 2) {
        getchar();
        char *buf = malloc(len + 1);
        int32_t *ids = malloc((max + 1) * sizeof *ids);
        if (!buf || !ids || fread(buf, 1, len, stdin) != len) return 2;
        if (tokenizer_bpe(t, buf, len, ids, max, &n, &err)) printf("ERR %s\n", err.msg);
        else for (size_t i = 0; i < n; i++) printf(i + 1 < n ? "%d " : "%d", ids[i]);
        printf("\n");
        free(buf);
        free(ids);
    }
    tokenizer_free(t);
    return 0;
}
"""


class Reference:
    def __init__(self, vocab_path, merges_path):
        with open(vocab_path, encoding="utf-8") as f:
            self.vocab = json.load(f)
        with open(merges_path, encoding="utf-8") as f:
            lines = f.read().strip().split("\n")[1:49152 - 256 - 2 + 1]
        self.ranks = {tuple(line.split()): i for i, line in enumerate(lines)}
        printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
        self.byte_char = {}
        extra = 0
        for b in range(256):
            if b in printable:
                self.byte_char[b] = chr(b)
            else:
                self.byte_char[b] = chr(0x100 + extra)
                extra += 1
        self.pattern = regex.compile(PATTERN, regex.IGNORECASE)

    def merge(self, word):
        word = list(word)
        while len(word) > 1:
            rank, pair = min((self.ranks.get((a, b), float("inf")), (a, b)) for a, b in zip(word, word[1:]))
            if rank == float("inf"):
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return word

    def encode(self, text):
        text = regex.sub(r"\s+", " ", text).strip().lower()
        ids = []
        for piece in self.pattern.findall(text):
            if piece in ("<|startoftext|>", "<|endoftext|>"):
                ids.append(self.vocab[piece])
                continue
            chars = [self.byte_char[b] for b in piece.encode("utf-8")]
            chars[-1] += "</w>"
            ids.extend(self.vocab[s] for s in self.merge(chars))
        return ids


class Driver:
    def __init__(self, vocab_path, merges_path):
        lib = os.path.join(ROOT, "build", "libonestep.a")
        if not os.path.exists(lib):
            sys.exit("build/libonestep.a is missing: run make first")
        self.tmp = tempfile.mkdtemp(prefix="tokcheck_")
        src = os.path.join(self.tmp, "driver.c")
        self.exe = os.path.join(self.tmp, "driver")
        with open(src, "w") as f:
            f.write(DRIVER)
        subprocess.run(["cc", "-O2", "-I", ROOT, src, lib, "-lm", "-lz", "-o", self.exe], check=True)
        self.args = [vocab_path, merges_path]

    def run(self, records):
        data = b"".join(b"%d %d\n" % (m, len(p)) + p for p, m in records)
        out = subprocess.run([self.exe] + self.args, input=data, capture_output=True, check=True)
        lines = out.stdout.decode().split("\n")
        return [[int(x) for x in line.split()] if not line.startswith("ERR") else line
                for line in lines[:len(records)]]

    def close(self):
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)


POOLS = [
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", "'''''",
    "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~",
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u202f\u205f\u3000\u200b\u180e",
    "ΣσςΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΤΥΦΧΨΩαβγ\u0345\u0301\u00ad\u2019\u02bc.:",
    "İıſKÅßẞǅǈǋ\u0130\u03a3", "\x00\x01\x7f", "éèêëÉÈàâäöüÖÜçñÑ",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВ", "日本語中文한국어ひらがなカタカナ",
    "🐱🚀👍🏽😀\u200d\ufe0f", "ⅠⅡⅰⅱ①②Ⓐⓐ½²₃٣۴߅", "\u0300\u0301\u0302\u0308\u0327",
]
SPECIALS = ["<|startoftext|>", "<|endoftext|>", "<|ENDOFTEXT|>", "<|ſtartoftext|>", "'s", "'S", "'ſ", "'t",
            "'re", "'ve", "'m", "'ll", "'LL", "'d", " 's", "''s"]


def assigned(c):
    return not 0xD800 <= ord(c) < 0xE000 and unicodedata.category(c) != "Cn"


def random_prompt(rng):
    parts = []
    for _ in range(rng.choice([1, 2, 3, 5, 8, 13, 30, 60, 120])):
        x = rng.random()
        if x < 0.1:
            parts.append(rng.choice(SPECIALS))
        elif x < 0.15:
            parts.append(chr(rng.choice([rng.randrange(0x20, 0x3000), rng.randrange(0x10000, 0x30000),
                                         rng.randrange(0xE000, 0x110000)])))
        else:
            pool = rng.choice(POOLS)
            parts.append("".join(rng.choice(pool) for _ in range(rng.choice([1, 1, 2, 4, 9]))))
    return "".join(c for c in "".join(parts) if assigned(c))


def long_word(rng):
    n = rng.choice([1100, 1500, 2100, 3000])
    kind = rng.randrange(4)
    if kind == 0:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))
    if kind == 1:
        unit = "".join(rng.choice("abcdeilnorst") for _ in range(rng.randrange(1, 7)))
        return (unit * n)[:n]
    if kind == 2:
        return "".join(rng.choice("!?.,-*#@$%^&()[]{}<>|/\\'\"") for _ in range(n))
    return "".join(rng.choice("éèàöüçßабвгдαβγ") for _ in range(n // 2))


def check_tables():
    src = open(os.path.join(ROOT, "ref", "unicode_tables.c"), encoding="utf-8").read()
    shift = 7
    stage1 = [int(x) for x in re.search(r"uni_stage1\[\d+\] = \{(.*?)\};", src, re.S).group(1).split(",") if x.strip()]
    body = re.search(r"uni_stage2\[\d+\]\[\d+\] = \{(.*?)\n\};", src, re.S).group(1)
    stage2 = [int(x) for x in re.findall(r"\d+", re.sub(r"[{}]", " ", body))]
    lower = {int(a, 16): [int(b, 16), int(c, 16)]
             for a, b, c in re.findall(r"\{0x([0-9A-F]+), \{0x([0-9A-F]+), 0x([0-9A-F]+)\}\}", src)}
    flag = lambda c: stage2[(stage1[c >> shift] << shift) + (c & ((1 << shift) - 1))]
    ucd_assigned = set()
    first = None
    with open("/usr/share/unicode/UnicodeData.txt", encoding="utf-8") as f:
        for line in f:
            fields = line.split(";")
            c = int(fields[0], 16)
            if fields[1].endswith("First>"):
                first = c
            elif fields[1].endswith("Last>"):
                ucd_assigned.update(range(first, c + 1))
            else:
                ucd_assigned.add(c)
    cls = {name: regex.compile(p, regex.IGNORECASE) for name, p in
           (("L", r"[\p{L}]"), ("N", r"[\p{N}]"), ("O", r"[^\s\p{L}\p{N}]"), ("S", r"\s"))}
    bits = {"S": 1, "L": 4, "N": 8, "O": 16}
    bad = 0
    for c in range(0x110000):
        ch = chr(c)
        if c not in ucd_assigned or not assigned(ch):
            continue
        f = flag(c)
        for name, rx in cls.items():
            if bool(rx.fullmatch(ch)) != bool(f & bits[name]):
                bad += 1
                print("table: U+%04X %s: regex %s, table %s" % (c, name, bool(rx.fullmatch(ch)), bool(f & bits[name])))
        if bool(f & 2) != ch.isspace():
            bad += 1
            print("table: U+%04X isspace differs" % c)
        if c != 0x3A3:
            mine = "".join(chr(x) for x in lower[c] if x) if c in lower else ch
            if mine != ch.lower():
                bad += 1
                print("table: U+%04X lower differs" % c)
    print("tables: %d differences over the code points assigned in both Unicode versions" % bad)
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--tables", action="store_true")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "clip-tokenizer"))
    a = ap.parse_args()
    vocab, merges = os.path.join(a.data, "vocab.json"), os.path.join(a.data, "merges.txt")
    bad = check_tables() if a.tables else 0

    ref = Reference(vocab, merges)
    drv = Driver(vocab, merges)
    rng = random.Random(a.seed)
    records, wants = [], []
    for _ in range(a.count):
        p = random_prompt(rng)
        records.append((p.encode("utf-8"), 10 ** 6))
        wants.append(ref.encode(p))
    for _ in range(max(1, a.count // 30)):
        w = long_word(rng)
        full = ref.encode(w)
        end, near = 0, []
        for i, t in enumerate(full):
            end += len(ref_token(ref, t).replace("</w>", ""))  # one character per original byte
            if any(abs(end - wb) < 64 for wb in (WINDOW, 2 * WINDOW)):
                near.append(i + 1)
        for m in near:
            records.append((w.encode("utf-8"), m))
            wants.append(full[:m])
    got = drv.run(records)
    drv.close()
    mism = 0
    for (p, m), g, want in zip(records, got, wants):
        if g != want:
            mism += 1
            if mism <= 5:
                print("MISMATCH (max %d) %r\n  C:      %s\n  Python: %s" % (m, p[:200], str(g)[:300], str(want)[:300]))
    print("%d prompts, %d mismatches" % (len(records), mism))
    return 1 if mism or bad else 0


_inv = {}


def ref_token(ref, tid):
    if not _inv:
        _inv.update({v: k for k, v in ref.vocab.items()})
    return _inv[tid]


if __name__ == "__main__":
    sys.exit(main())
