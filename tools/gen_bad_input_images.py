#!/usr/bin/env python3
"""Write the JPEGs tests/test_bad_input.c needs and cannot make itself
(the C side has no JPEG encoder): tests/bad_input/

    init_64x64.jpg   the suite's init_images/init_64x64.png as a baseline JPEG:
                     a good img2img input; the test truncates it for a bad one
    cmyk_8x8.jpg     an Adobe CMYK JPEG, which onestep refuses

    python3 tools/gen_bad_input_images.py [SUITE_DIR]      (needs Pillow)
"""
import os
import sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "conformance")
OUT = os.path.join(ROOT, "tests", "bad_input")
os.makedirs(OUT, exist_ok=True)
im = Image.open(os.path.join(SUITE, "init_images", "init_64x64.png")).convert("RGB")
im.save(os.path.join(OUT, "init_64x64.jpg"), "JPEG", quality=90)
im.resize((8, 8)).convert("CMYK").save(os.path.join(OUT, "cmyk_8x8.jpg"), "JPEG", quality=90)
