#!/bin/sh
# weights/download.sh — fetch SD-Turbo or SDXL-Turbo from the Hugging Face hub.
#
#   weights/download.sh sd-turbo            diffusers layout, fp16 weights -> weights/sd-turbo/
#   weights/download.sh sdxl-turbo          -> weights/sdxl-turbo/
#   weights/download.sh --single sd-turbo   the hub's single file -> weights/sd_turbo.safetensors,
#                                           plus the tokenizer vocabulary -> weights/clip-tokenizer/
#
# Only the files the engine reads are fetched (configs, tokenizer files,
# one weights file per component). Downloads resume (curl -C -) into
# FILE.part and are checked against the size the hub reports (and, for the
# weights, the sha256 it reports) before they are moved into place, so an
# interrupted run is simply run again.
#
# Environment: HF_TOKEN (sent as a bearer token if set), HF_ENDPOINT (a hub
# mirror, default https://huggingface.co).
set -eu

usage() {
    cat <<'EOF'
usage: weights/download.sh [--single] [--fp32] [--dest DIR] [--dry-run] MODEL

  MODEL       sd-turbo (stabilityai/sd-turbo) or sdxl-turbo (stabilityai/sdxl-turbo)
  --single    the single-file checkpoint (sd_turbo.safetensors, fp32, 5.2 GB;
              sd_xl_turbo_1.0_fp16.safetensors, 6.9 GB) instead of the diffusers
              directory, plus vocab.json + merges.txt into DIR/clip-tokenizer/
  --fp32      full-precision weights (diffusers: the non-.fp16 files, about twice the
              size; --single sdxl-turbo: sd_xl_turbo_1.0.safetensors)
  --dest DIR  where to put them (default: weights/MODEL for a directory, weights/ for --single)
  --dry-run   print what would be fetched and where, fetch nothing
  -h, --help  this text

Environment: HF_TOKEN (bearer token), HF_ENDPOINT (mirror, default https://huggingface.co).
EOF
}

die() {
    echo "download.sh: $*" >&2
    exit 1
}

model='' single=0 fp32=0 dest='' dry=0
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help)
        usage
        exit 0
        ;;
    --single) single=1 ;;
    --fp32) fp32=1 ;;
    --dry-run) dry=1 ;;
    --dest)
        [ $# -ge 2 ] || { echo "download.sh: --dest needs a directory (see --help)" >&2; exit 2; }
        dest=$2
        shift
        ;;
    --dest=*) dest=${1#--dest=} ;;
    -*)
        echo "download.sh: unknown option \"$1\" (see --help)" >&2
        exit 2
        ;;
    *)
        [ -z "$model" ] || { echo "download.sh: one model at a time (\"$model\" and \"$1\")" >&2; exit 2; }
        model=$1
        ;;
    esac
    shift
done
if [ -z "$model" ]; then
    usage >&2
    exit 2
fi

case "$model" in
sd-turbo)
    repo=stabilityai/sd-turbo
    texts=text_encoder
    tokenizers=tokenizer
    single_file=sd_turbo.safetensors # the hub has no fp16 single file for sd-turbo
    ;;
sdxl-turbo)
    repo=stabilityai/sdxl-turbo
    texts="text_encoder text_encoder_2"
    tokenizers="tokenizer tokenizer_2"
    if [ $fp32 = 1 ]; then single_file=sd_xl_turbo_1.0.safetensors; else single_file=sd_xl_turbo_1.0_fp16.safetensors; fi
    ;;
*)
    echo "download.sh: unknown model \"$model\" (known: sd-turbo, sdxl-turbo)" >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
endpoint=${HF_ENDPOINT:-https://huggingface.co}
variant=.fp16
[ $fp32 = 1 ] && variant=

# "remote-path local-path" lines, local paths relative to $root.
if [ $single = 1 ]; then
    root=${dest:-$here}
    list="$single_file $single_file
tokenizer/vocab.json clip-tokenizer/vocab.json
tokenizer/merges.txt clip-tokenizer/merges.txt"
else
    root=${dest:-$here/$model}
    list="model_index.json model_index.json
scheduler/scheduler_config.json scheduler/scheduler_config.json
unet/config.json unet/config.json
unet/diffusion_pytorch_model$variant.safetensors unet/diffusion_pytorch_model$variant.safetensors
vae/config.json vae/config.json
vae/diffusion_pytorch_model$variant.safetensors vae/diffusion_pytorch_model$variant.safetensors"
    for t in $texts; do
        list="$list
$t/config.json $t/config.json
$t/model$variant.safetensors $t/model$variant.safetensors"
    done
    for t in $tokenizers; do
        for f in merges.txt special_tokens_map.json tokenizer_config.json vocab.json; do
            list="$list
$t/$f $t/$f"
        done
    done
fi

if [ $dry = 1 ]; then
    echo "$model: would fetch from $endpoint/$repo into $root:"
    echo "$list" | while read -r remote local; do
        echo "  $endpoint/$repo/resolve/main/$remote -> $root/$local"
    done
    exit 0
fi

command -v curl >/dev/null 2>&1 || die "curl is needed (apt-get install curl)"

fetch() {
    if [ -n "${HF_TOKEN:-}" ]; then
        curl -H "Authorization: Bearer $HF_TOKEN" "$@"
    else
        curl "$@"
    fi
}

# "SIZE SHA256" of a remote file from a HEAD request. For LFS files (the
# weights) the hub's first hop says x-linked-size and x-linked-etag (the
# file's sha256); otherwise the last content-length is the size and the
# checksum is unknown ("-").
remote_info() {
    fetch -fsSIL --retry 3 "$1" | tr -d '\r"' |
        awk 'tolower($1) == "x-linked-size:" { l = $2 } tolower($1) == "content-length:" { c = $2 }
             tolower($1) == "x-linked-etag:" { e = $2 }
             END { if (length(e) != 64 || e !~ /^[0-9a-f]+$/) e = "-"; print (l != "" ? l : c), e }'
}

file_size() {
    wc -c <"$1" | tr -d ' '
}

mkdir -p "$root" || die "cannot create $root"
echo "$model: $endpoint/$repo -> $root"
n=0
while read -r remote local; do
    url="$endpoint/$repo/resolve/main/$remote"
    out="$root/$local"
    part="$out.part"
    info=$(remote_info "$url") || die "$url: the hub did not answer (no network, or a gated repo without HF_TOKEN?)"
    size=${info% *}
    sha=${info#* }
    case "$size" in '' | *[!0-9]*) die "$url: the hub gave no file size" ;; esac
    if [ -f "$out" ] && [ "$(file_size "$out")" = "$size" ]; then
        echo "  have $local ($size bytes)"
        n=$((n + 1))
        continue
    fi
    mkdir -p "$(dirname "$out")"
    # a .part longer than the file cannot be resumed: start over
    if [ -f "$part" ] && [ "$(file_size "$part")" -gt "$size" ]; then rm -f "$part"; fi
    if [ ! -f "$part" ] || [ "$(file_size "$part")" -lt "$size" ]; then
        echo "  fetching $local ($size bytes)"
        fetch -fL --progress-bar --retry 3 -C - -o "$part" "$url" || die "$url: download failed; run again to resume"
    fi
    got=$(file_size "$part")
    [ "$got" = "$size" ] || die "$local: got $got bytes, the hub says $size; run again to resume"
    if [ "$sha" != - ] && command -v sha256sum >/dev/null 2>&1; then
        sum=$(sha256sum "$part" | cut -d' ' -f1)
        if [ "$sum" != "$sha" ]; then
            rm -f "$part"
            die "$local: sha256 $sum, the hub says $sha; the download was removed, run again"
        fi
    fi
    mv -f "$part" "$out"
    n=$((n + 1))
done <<EOF
$list
EOF

echo "$model: $n files in $root"
if [ $single = 1 ]; then
    echo "use: ./onestep -m $root/$single_file (vocabulary in $root/clip-tokenizer)"
else
    echo "use: ./onestep -m $root"
fi
