/* taesd.h — AutoencoderTiny (TAESD, madebyollin/taesd) as diffusers builds it
 * from its config.json (src/diffusers/models/autoencoders/autoencoder_tiny.py,
 * vae.py EncoderTiny / DecoderTiny, unets/unet_2d_blocks.py
 * AutoencoderTinyBlock).
 *
 * The fast stand-in for the KL VAE decoder: plain 3x3 convolutions, ReLU and
 * nearest-neighbour upsampling, no normalisation and no attention. Both halves
 * are one nn.Sequential, `decoder.layers` / `encoder.layers`, and we keep that
 * shape: a flat list of layers whose index N is the N of the checkpoint keys
 * (decoder.layers.N.*) and of the dump names (vae.decoder.layers.N).
 *
 *   decode:  z ─► tanh(z/3)*3 ─► conv(latent→C) ─► ReLU
 *                 ─► for each level i: num_decoder_blocks[i] blocks,
 *                    then (all but the last level) nearest ×usf upsample and a
 *                    3x3 conv C→C without bias; the last level's conv is C→out
 *                    with bias
 *                 ─► x*2 - 1                              image in about [-1, 1]
 *   encode:  image ─► (x+1)/2 ─► conv(in→C) (level 0) or stride-2 conv C→C
 *                    without bias (levels 1..), each followed by
 *                    num_encoder_blocks[i] blocks ─► conv(C→latent)
 *   block:   relu(conv.4(relu(conv.2(relu(conv.0(x))))) + x)
 *
 * Scaling: AutoencoderTiny's scaling_factor is 1.0, so the SD/SDXL pipelines
 * hand it the UNet-space latents unchanged (latents / 1.0);
 * latent_magnitude / latent_shift belong to AutoencoderTiny.scale_latents,
 * which no pipeline calls on the decode path, and are not read. */
#ifndef ONESTEP_TAESD_H
#define ONESTEP_TAESD_H

#include "../weights/model_dir.h"
#include "arena.h"
#include "dump.h"
#include "ops.h"

#define TAESD_MAX_LEVELS 8
#define TAESD_MAX_BLOCKS 32   /* one entry of num_decoder_blocks / num_encoder_blocks */
#define TAESD_MAX_LAYERS 300  /* TAESD_MAX_LEVELS * (TAESD_MAX_BLOCKS + 3) + 3, so any valid config fits */

enum taesd_kind {
    TAESD_CONV,     /* nn.Conv2d, 3x3, padding 1, stride 1 or 2, bias or not */
    TAESD_RELU,     /* nn.ReLU (act_fn): no weights, not dumped */
    TAESD_UPSAMPLE, /* nn.Upsample(scale_factor=usf, mode="nearest"): not dumped */
    TAESD_BLOCK,    /* AutoencoderTinyBlock */
};

/* AutoencoderTinyBlock(C, C): conv = Sequential(Conv 0, act 1, Conv 2, act 3,
 * Conv 4), skip = Identity (in == out in every TAESD: see taesd.c), fuse = ReLU. */
struct taesd_block {
    const struct tensor *conv_0_w, *conv_0_b, *conv_2_w, *conv_2_b, *conv_4_w, *conv_4_b;
};

struct taesd_layer {
    enum taesd_kind kind;
    int in_ch, out_ch; /* conv and block; for the others the channel count flowing through */
    int stride;        /* conv */
    const struct tensor *weight, *bias; /* conv; bias may be NULL */
    struct taesd_block block;
};

struct taesd_stack {
    int n;
    struct taesd_layer layers[TAESD_MAX_LAYERS];
};

struct taesd {
    /* ---- config.json (absent keys take AutoencoderTiny's defaults) ---- */
    int in_channels, out_channels, latent_channels;
    int dec_levels, enc_levels;
    int decoder_block_out_channels[TAESD_MAX_LEVELS], num_decoder_blocks[TAESD_MAX_LEVELS];
    int encoder_block_out_channels[TAESD_MAX_LEVELS], num_encoder_blocks[TAESD_MAX_LEVELS];
    int upsampling_scaling_factor;
    /* The pipeline decodes latents / scaling_factor (1.0 for every TAESD). */
    float scaling_factor;

    /* Image pixels per latent pixel: usf^(dec_levels-1) for the decoder, 2^(enc_levels-1)
     * for the encoder. 8 for every real TAESD. diffusers' pipelines use
     * 2^(len(block_out_channels)-1) as vae_scale_factor, which is the same
     * number whenever upsampling_scaling_factor is 2. */
    int factor, enc_factor;
    int has_encoder; /* the checkpoint has encoder.* (every published TAESD does) */

    struct taesd_stack decoder, encoder;
};

/* Read c->config, validate it, bind decoder.layers.* (and encoder.layers.*
 * when the checkpoint has any encoder tensor) with shape checks, and fail if
 * the checkpoint has tensors the config does not explain. t points into c:
 * keep c open while t is used. t is large (two layer tables): allocate it,
 * don't put it on a small stack. */
int taesd_load(struct taesd *t, struct component *c, struct os_err *err);

/* z: host [latent_channels x h x w] = latents / scaling_factor (the suite's
 * vae.decode.input). img: host [out_channels x h*factor x w*factor] in about
 * [-1, 1], not clamped. Dumps vae.decode.input, vae.decoder.clamp,
 * vae.decoder.layers.N for every conv and block layer, vae.decode.output. */
int taesd_decode(const struct taesd *t, const struct ops *o, struct arena *a, const float *z, int h, int w,
                 float *img, const struct dump_hook *d, struct os_err *err);

/* img: host [in_channels x H x W] in [-1, 1], H and W multiples of
 * enc_factor. latents: host [latent_channels x H/enc_factor x W/enc_factor]:
 * AutoencoderTiny.encode(...).latents, which the img2img pipelines multiply by
 * scaling_factor (1.0). Needs has_encoder. Dumps vae.encoder.layers.N. */
int taesd_encode(const struct taesd *t, const struct ops *o, struct arena *a, const float *img, int H, int W,
                 float *latents, const struct dump_hook *d, struct os_err *err);

#endif
