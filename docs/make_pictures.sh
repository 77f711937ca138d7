#!/bin/sh
# docs/make_pictures.sh — make the pictures of docs/ (docs/img/*.png).
#
#   sh docs/make_pictures.sh        from the repository root, after `make`
#   sh docs/make_pictures.sh DIR    write them to DIR instead (tests/test_docs.c
#                                   does, and checks they equal docs/img/)
#
# The model is tiny-sdxl, written by ./mkmodel with random weights: the
# pictures show the shapes and the flow of a generation, not what a trained
# model draws (docs/how-it-works.md says what the real weights show). The
# reference backend makes the same bits on every machine, so the pictures
# are reproducible byte for byte. mkmodel needs the CLIP vocabulary (see
# weights/configs/README.md).
set -eu
out=${1:-docs/img}
work=$(mktemp -d "${TMPDIR:-/tmp}/onestep-pictures-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

./mkmodel --model tiny-sdxl --layout diffusers --dtype f32 --out "$work/tiny-sdxl" >/dev/null
mkdir -p "$work/preview" "$work/png" "$out"
./onestep -m "$work/tiny-sdxl" -p "a photo of a cat sitting on a windowsill, golden hour" \
    -W 128 -H 128 --steps 4 -s 42 --backend ref \
    --dump "$work/run.safetensors" --preview "$work/preview" -o "$work/final.png" 2>/dev/null
./dumpviz "$work/run.safetensors" -o "$work/png" >/dev/null

# the tensors the text shows, under their dump names
for t in prompt_embeds latents.noise latents.init unet.conv_in unet.mid_block \
         step1.noise_pred step1.pred_original_sample step1.noise step1.latents \
         step2.pred_original_sample step3.pred_original_sample step4.pred_original_sample \
         latents.final vae.decoder.up_blocks.1 image.uint8; do
    cp "$work/png/$t.png" "$out/$t.png"
done
# each step's x0 prediction, decoded by the VAE (onestep --preview)
for k in 1 2 3 4; do
    cp "$work/preview/step-$k.png" "$out/preview.step$k.png"
done
echo "docs/make_pictures.sh: $(ls "$out" | wc -l) pictures in $out"
