#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/seed-*).

    python3 tools/gen_fuzz_seeds.py [SUITE_DIR [CLIP_TOKENIZER_DIR]]

Seeds are small, valid (or nearly valid) examples of each input, so libFuzzer
starts from the structure real files have instead of discovering "{" and the
PNG signature by itself. Regression inputs of findings are committed next to
them under other names (crash-*, regress-*) and are not touched here.
Needs Pillow for the JPEG/PNG variants. Rerunning rewrites the same bytes.
"""
import io
import json
import os
import struct
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")
SUITE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "conformance")
CLIPTOK = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "..", "shared", "clip-tokenizer")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- safetensors ----
SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors(tensors, meta=None, pad=0):
    """tensors: list of (name, dtype, shape); data bytes are a counting pattern."""
    header, data = {}, b""
    for name, dt, shape in tensors:
        n = 1
        for s in shape:
            n *= s
        nbytes = n * SIZES[dt]
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + nbytes]}
        data += bytes((i * 37 + 11) & 0x7F for i in range(nbytes))
    if meta is not None:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode() + b" " * pad
    return struct.pack("<Q", len(h)) + h + data


write("safetensors", "basic", safetensors(
    [("a.f32", "F32", [2, 3]), ("a.f16", "F16", [6]), ("a.bf16", "BF16", [6]), ("ids", "I64", [3]),
     ("empty", "F32", [0]), ("scalar", "F32", [])], {"format": "pt"}))
write("safetensors", "dtypes", safetensors(
    [(dt.lower(), dt, [2, 1]) for dt in SIZES], None, pad=5))
write("safetensors", "model-like", safetensors(
    [("decoder.conv_in.weight", "F16", [4, 2, 3, 3]), ("decoder.conv_in.bias", "F16", [4]),
     ("decoder.mid_block.attentions.0.to_q.weight", "F32", [4, 4]),
     ("text_model.embeddings.position_ids", "I64", [1, 5])],
    {"format": "pt", "modelspec.title": "tiny"}))
write("safetensors", "empty-header", struct.pack("<Q", 2) + b"{}")
write("safetensors", "max-dims", safetensors([("x", "U8", [1, 1, 1, 1, 1, 1, 1, 2])]))

# ---- JSON ----
for rel in ["model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
            "scheduler/scheduler_config.json", "tokenizer/tokenizer_config.json",
            "tokenizer/special_tokens_map.json"]:
    p = os.path.join(SUITE, "sd-turbo-tiny", rel)
    if os.path.exists(p):
        with open(p, "rb") as f:
            write("json", rel.replace("/", "-"), f.read())
write("json", "escapes", '{"s": "a\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude80\\u0000", "e": ""}')
write("json", "numbers", '[0, -0, 1, -1, 9223372036854775807, -9223372036854775808, 9223372036854775808, '
                         '1.5, -2.5e-3, 1E400, 4.9e-324, 0.1e1, 123456789012345678901234567890]')
write("json", "nested", '{"a": [{"b": [null, true, false, {"c": {}}]}, []], "d": {"e": [[[[1]]]]}}')
write("json", "config-types", '{"block_out_channels": [320, 640], "attention_head_dim": 8, '
                              '"norm_eps": 1e-05, "flip_sin_to_cos": true, "act_fn": "silu", "x": null}')

# ---- tokenizer prompts ----
cases_path = os.path.join(CLIPTOK, "tokenizer_cases.json")
if os.path.exists(cases_path):
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    for i, c in enumerate(cases[:40]):
        write("tokenizer", "case%02d" % i, c["prompt"])
write("tokenizer", "specials", "<|startoftext|>a cat<|endoftext|> dog <|ENDOFTEXT|>'s 're")
write("tokenizer", "nul", b"a\x00b \x00\x00 cat")
write("tokenizer", "unicode", "Caf\u00e9 \u0130stanbul \u03a3\u03a3 \u00df \u732b \U0001F680 \u0345 x\u200by")
write("tokenizer", "long-word", "a" * 400)

# ---- images ----
def png(w, h, color_type, raw, interlace=0):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


for name in ["init_64x64.png"]:
    p = os.path.join(SUITE, "init_images", name)
    if os.path.exists(p):
        with open(p, "rb") as f:
            write("image", name, f.read())
try:
    from PIL import Image
except ImportError:
    Image = None
if Image is not None:
    rgb = Image.new("RGB", (13, 7))
    rgb.putdata([((x * 19) & 255, (y * 37) & 255, (x * y * 5) & 255) for y in range(7) for x in range(13)])

    def save(img, fmt, **kw):
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        return b.getvalue()

    write("image", "rgb.png", save(rgb, "PNG"))
    write("image", "gray.png", save(rgb.convert("L"), "PNG"))
    write("image", "palette.png", save(rgb.convert("P"), "PNG"))
    write("image", "gray16.png", save(rgb.convert("I;16"), "PNG"))
    write("image", "baseline.jpg", save(rgb, "JPEG", quality=80))
    write("image", "progressive.jpg", save(rgb, "JPEG", quality=80, progressive=True))
    write("image", "gray.jpg", save(rgb.convert("L"), "JPEG", quality=80))
    write("image", "subsampled.jpg", save(rgb.resize((16, 16)), "JPEG", quality=50, subsampling=2))
# Adam7-interlaced 4x4 RGB (Pillow does not write interlaced PNGs): passes 1, 4,
# 5, 6, 7 are 1x1, 1x1, 2x1, 2x2, 4x2 pixels, each row with a filter byte.
passes = [(1, 1), (1, 1), (2, 1), (2, 2), (4, 2)]
raw = b"".join((b"\x00" + bytes((17 * k + i) & 255 for i in range(3 * pw))) * ph for k, (pw, ph) in enumerate(passes))
write("image", "adam7.png", png(4, 4, 2, raw, interlace=1))
write("image", "filters.png", png(3, 5, 2, b"".join(bytes([f]) + bytes(range(f, f + 9)) for f in range(5))))
