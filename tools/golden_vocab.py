#!/usr/bin/env python3
"""golden_vocab.py - the small CLIP-format BPE vocabulary of golden/.

The golden runs must not depend on files outside this repository, and the
real CLIP vocabulary (1.5 MB) is not committed. So the golden models carry a
vocabulary of our own: the same layout as CLIP's (vocab.json: the 256 byte
symbols in bytes_to_unicode order, the same 256 with "</w>", one entry per
merge, <|startoftext|>, <|endoftext|>; merges.txt: "#version: 0.2" then the
merges in rank order), learned here by plain BPE (Sennrich et al. 2016,
"Neural Machine Translation of Rare Words with Subword Units", Algorithm 1)
on the short corpus below, so that the golden prompts exercise multi-step
merges, whole-word tokens and byte fallback like the real tokenizer does.

Deterministic: the most frequent pair wins, ties go to the smallest pair in
code-point order, and a pair whose result already exists (another split of
the same string) is skipped, because a CLIP vocabulary makes every symbol by
exactly one merge (ref/tokenizer.c refuses anything else).

    python3 tools/golden_vocab.py golden/vocab
"""
import json
import os
import re
import sys

CORPUS = """
a photo of a cat sitting on a windowsill in the golden hour light
a red fox in the snow, cinematic shot, soft light, film grain
a watercolor painting of a lighthouse at dawn with soft pastel colors
an astronaut riding a horse on the moon, highly detailed, sharp focus
a cozy cafe in the old town at night, oil painting, warm light
the quick brown fox jumps over the lazy dog near the river bank
portrait of an old sailor with a grey beard, photo, studio lighting
a small house on a hill under a starry sky, digital painting
"""

MERGES = 300  # far more than the corpus supports: training stops when no pair occurs twice


def bytes_to_unicode():
    """CLIP's printable stand-ins for the 256 byte values, in vocab order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs], dict(zip(bs, (chr(c) for c in cs)))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: golden_vocab.py OUTDIR")
    out = sys.argv[1]
    order, byte_char = bytes_to_unicode()

    words = {}
    for w in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", CORPUS.lower()):
        syms = tuple(byte_char[b] for b in w.encode("utf-8"))
        syms = syms[:-1] + (syms[-1] + "</w>",)
        words[syms] = words.get(syms, 0) + 1

    vocab = order + [c + "</w>" for c in order]
    known = set(vocab)
    merges = []
    while len(merges) < MERGES:
        pairs = {}
        for syms, f in words.items():
            for a, b in zip(syms, syms[1:]):
                if a + b not in known:
                    pairs[(a, b)] = pairs.get((a, b), 0) + f
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        a, b = best
        merges.append(best)
        vocab.append(a + b)
        known.add(a + b)
        merged = {}
        for syms, f in words.items():
            s, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    s.append(a + b)
                    i += 2
                else:
                    s.append(syms[i])
                    i += 1
            merged[tuple(s)] = merged.get(tuple(s), 0) + f
        words = merged
    vocab += ["<|startoftext|>", "<|endoftext|>"]

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    print(f"{out}: {len(vocab)} tokens, {len(merges)} merges")


if __name__ == "__main__":
    main()
