/* vae.h — AutoencoderKL, the VAE of SD 1.x/2.x, SD-Turbo, SDXL and SDXL-Turbo,
 * as diffusers builds it from vae/config.json
 * (src/diffusers/models/autoencoders/autoencoder_kl.py, vae.py).
 *
 *   decode:  z ─► post_quant_conv ─► Decoder ─► image in about [-1, 1]
 *            Decoder = conv_in ─► mid_block ─► up_blocks ─► GroupNorm+SiLU ─► conv_out
 *   encode:  image ─► Encoder ─► quant_conv ─► moments = [mean, logvar]
 *            Encoder = conv_in ─► down_blocks ─► mid_block ─► GroupNorm+SiLU ─► conv_out
 *
 * Every spatial level halves (encoder) or doubles (decoder) the size, so the
 * latent is 2^(levels-1) = v->factor times smaller than the image (8 for
 * every real checkpoint: four levels).
 *
 * Precision: everything runs in float32 through the ops table. A checkpoint
 * stored in f16 (the usual ".fp16" variant) is read through the exact
 * f16 -> f32 widening of tensor.h, so it decodes to the very bits an f32
 * checkpoint holding the same values gives. Nothing is ever rounded to half
 * precision: the SDXL VAE's activations exceed the f16 range (65504) and turn
 * into inf/NaN — black images — in ports that compute it in f16; diffusers
 * avoids that with force_upcast (which we need not read: we are always f32).
 * tests/test_vae.c checks both points. */
#ifndef ONESTEP_VAE_H
#define ONESTEP_VAE_H

#include "../weights/model_dir.h"
#include "arena.h"
#include "blocks.h"
#include "dump.h"
#include "ops.h"

#define VAE_MAX_LEVELS 8      /* len(block_out_channels); real VAEs have 4 */
#define VAE_MAX_LAYERS 8      /* layers_per_block; real VAEs have 2 */
#define VAE_MAX_LATENT_CH 64  /* latent_channels; 4 for SD/SDXL, 16 for SD3/Flux */

/* diffusers' Attention as UNetMidBlock2D builds it for the VAE: GroupNorm, then
 * one head of dimension C (attention_head_dim = C) over the H*W pixels as
 * tokens, to_q/to_k/to_v/to_out.0 Linear layers with bias, plus the residual. */
struct vae_attention {
    int ch, groups;
    float eps;
    const struct tensor *group_norm_w, *group_norm_b;
    const struct tensor *to_q_w, *to_q_b, *to_k_w, *to_k_b, *to_v_w, *to_v_b;
    const struct tensor *to_out_0_w, *to_out_0_b;
};

/* UNetMidBlock2D with num_layers 1: resnets.0, attentions.0 (unless
 * mid_block_add_attention is false), resnets.1. */
struct vae_mid_block {
    struct resnet resnets[2];
    int has_attention;
    struct vae_attention attentions_0;
};

/* DownEncoderBlock2D: layers_per_block resnets, then (all but the last level)
 * a Downsample2D with F.pad(0, 1, 0, 1) and padding 0. */
struct vae_down_block {
    int nresnets, has_downsampler;
    struct resnet resnets[VAE_MAX_LAYERS];
    struct downsample downsamplers_0;
};

/* UpDecoderBlock2D: layers_per_block + 1 resnets, then (all but the last
 * level) a nearest-2x Upsample2D with a 3x3 conv. */
struct vae_up_block {
    int nresnets, has_upsampler;
    struct resnet resnets[VAE_MAX_LAYERS + 1];
    struct upsample upsamplers_0;
};

struct vae_decoder {
    struct conv conv_in;
    struct vae_mid_block mid_block;
    struct vae_up_block up_blocks[VAE_MAX_LEVELS];
    const struct tensor *conv_norm_out_w, *conv_norm_out_b;
    struct conv conv_out;
};

struct vae_encoder {
    struct conv conv_in;
    struct vae_down_block down_blocks[VAE_MAX_LEVELS];
    struct vae_mid_block mid_block;
    const struct tensor *conv_norm_out_w, *conv_norm_out_b;
    struct conv conv_out; /* -> 2 * latent_channels (double_z) */
};

struct vae {
    /* ---- vae/config.json (absent keys take AutoencoderKL's defaults) ---- */
    int in_channels, out_channels, latent_channels;
    int levels;                               /* len(block_out_channels) */
    int block_out_channels[VAE_MAX_LEVELS];
    int layers_per_block, norm_num_groups;
    int use_quant_conv, use_post_quant_conv, mid_block_add_attention;
    /* Latent scaling, applied by the pipeline, not here. The SD and SDXL
     * pipelines decode latents / scaling_factor (0.18215 SD 1.x/2.x, 0.13025
     * SDXL) and img2img encodes to sample * scaling_factor. When latents_mean
     * and latents_std are both set, the SDXL pipelines decode
     * latents * std / scaling_factor + mean and encode
     * (sample - mean) * scaling_factor / std (pipeline_stable_diffusion_xl.py,
     * ..._img2img.py); SD/SDXL checkpoints have them null. shift_factor
     * (SD3/Flux: latents / scaling_factor + shift_factor) is read for
     * completeness: diffusers' SD/SDXL pipelines never use it. */
    float scaling_factor;
    int has_shift_factor;
    float shift_factor;
    int has_latents_mean_std;
    float latents_mean[VAE_MAX_LATENT_CH], latents_std[VAE_MAX_LATENT_CH];

    int factor; /* 2^(levels-1): image pixels per latent pixel along each axis */
    int has_encoder;

    /* ---- weights (pointers into the component's mapping) ---- */
    struct conv post_quant_conv; /* 1x1, latent -> latent (when use_post_quant_conv) */
    struct vae_decoder decoder;
    struct vae_encoder encoder;  /* bound only with with_encoder */
    struct conv quant_conv;      /* 1x1, 2*latent -> 2*latent (with the encoder, when use_quant_conv) */
};

/* Read c->config, validate it, bind the decoder's tensors (and with
 * with_encoder the encoder's and quant_conv's) with shape checks, and fail if
 * the checkpoint holds tensors the config does not explain. Without the
 * encoder its tensors (encoder.*, quant_conv.*) are accepted unread:
 * text2img never needs them. Attention weights under the old names
 * query/key/value/proj_attn are accepted too (diffusers renames them at load,
 * modeling_utils.py _convert_deprecated_attention_blocks). The vae keeps
 * pointers into c: keep c open while using it. */
int vae_load(struct vae *v, struct component *c, int with_encoder, struct os_err *err);

/* z: host [latent_channels x h x w], already divided by scaling_factor (the
 * suite's vae.decode.input). img: host [out_channels x h*factor x w*factor],
 * about [-1, 1], not clamped. Dumps vae.decode.input, vae.post_quant_conv,
 * vae.decoder.conv_in, vae.decoder.mid_block, vae.decoder.up_blocks.i and
 * vae.decode.output. */
int vae_decode(const struct vae *v, const struct ops *o, struct arena *a, const float *z, int h, int w, float *img,
               const struct dump_hook *d, struct os_err *err);

/* img: host [in_channels x H x W] in [-1, 1] (pixels / 127.5 - 1), H and W
 * multiples of factor. moments: host [2*latent_channels x H/factor x W/factor],
 * the mean's channels then the logvar's (unclamped: diffusers'
 * DiagonalGaussianDistribution clamps logvar to [-30, 20] when it samples).
 * Needs a vae loaded with_encoder. Dumps vae.encoder.conv_in,
 * vae.encoder.down_blocks.i, vae.encoder.mid_block, vae.encoder.conv_out and
 * vae.quant_conv. */
int vae_encode(const struct vae *v, const struct ops *o, struct arena *a, const float *img, int H, int W,
               float *moments, const struct dump_hook *d, struct os_err *err);

/* diffusers' VaeImageProcessor.postprocess to 8-bit RGB: per value, in float32,
 * round(clamp(x / 2 + 0.5, 0, 1) * 255) with round-half-to-even (numpy), and
 * CHW planes to interleaved HWC. img: [3 x H x W]; rgb: [H x W x 3]. NaN
 * becomes 0. */
void vae_to_uint8(const float *img, int H, int W, unsigned char *rgb);

#endif
