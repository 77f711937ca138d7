#!/usr/bin/env python3
"""mklora.py — a synthetic kohya-layout LoRA for a UNet, for measuring what
merging one costs (load time, memory): docs/performance.md, "LoRA merge".

    tools/mklora.py weights/synthetic/sd-turbo/unet/diffusion_pytorch_model.fp16.safetensors \
        scratch/sd-lora.safetensors --rank 64

Every 2-D / 4-D weight of the modules LCM-LoRA adapts (attention q/k/v/out,
feed-forward, proj_in/out, resnet convolutions and time projections,
down/upsamplers) gets lora_down [rank, in(, kh, kw)], lora_up [out, rank(, 1, 1)]
and alpha = rank, f16 values N(0, 0.01^2) from --seed. With rank 64 this is the
shape of the published LCM-LoRAs: 278 modules, 136 MB for SD 2.x; 788 modules,
394 MB for SDXL. Only the header of the UNet file is read (numpy, no torch).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

ADAPTED = ('attn1', 'attn2', 'ff.net', 'proj_in', 'proj_out', 'conv1', 'conv2', 'conv_shortcut', 'time_emb_proj',
           'downsamplers', 'upsamplers')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('unet', help='the UNet safetensors file whose weights the LoRA adapts')
    ap.add_argument('out', help='the LoRA file to write (must not exist)')
    ap.add_argument('--rank', type=int, default=64)
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    if a.rank < 1:
        sys.exit(f'mklora: --rank {a.rank}: must be at least 1')
    if os.path.exists(a.out):
        sys.exit(f'mklora: {a.out}: exists')
    try:
        with open(a.unet, 'rb') as f:
            n = struct.unpack('<Q', f.read(8))[0]
            if n > 100 << 20:
                raise ValueError(f'header length {n}')
            header = json.loads(f.read(n))
    except (OSError, struct.error, ValueError) as e:
        sys.exit(f'mklora: {a.unet}: not a readable safetensors file ({e})')

    rng = np.random.default_rng(a.seed)
    entries, blobs, offset = {}, [], 0
    keys = [k for k in sorted(header) if k != '__metadata__' and k.endswith('.weight')
            and len(header[k]['shape']) in (2, 4) and any(s in k for s in ADAPTED)]
    for k in keys:
        shape = header[k]['shape']
        module = 'lora_unet_' + k[:-len('.weight')].replace('.', '_')
        down = (rng.standard_normal([a.rank] + shape[1:]) * 0.01).astype(np.float16)
        up = (rng.standard_normal([shape[0], a.rank] + ([1, 1] if len(shape) == 4 else [])) * 0.01).astype(np.float16)
        for name, arr in ((module + '.lora_down.weight', down), (module + '.lora_up.weight', up),
                          (module + '.alpha', np.array(a.rank, dtype=np.float16))):
            b = arr.tobytes()
            entries[name] = {'dtype': 'F16', 'shape': list(arr.shape), 'data_offsets': [offset, offset + len(b)]}
            blobs.append(b)
            offset += len(b)
    head = json.dumps(entries).encode()
    head += b' ' * ((8 - len(head) % 8) % 8)
    tmp = a.out + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, a.out)
    print(f'{a.out}: {len(keys)} modules, rank {a.rank}, {offset / 1e6:.1f} MB')


if __name__ == '__main__':
    main()
