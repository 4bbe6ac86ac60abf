"""Building components from sizes: the study's tiny model from scratch, the paper-scale layout, and the test-scale
dummy (diffusers' `get_dummy_components` scale).
"""

from __future__ import annotations

import logging

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from zero1to3.config import TinyModelSizes  # noqa: F401  (the sizes' config; `models.TinyModelSizes` for callers)
from zero1to3.model import encoders, schedulers
from zero1to3.model.components import Zero123Components
from zero1to3.model.conditioning import CCProjection

logger = logging.getLogger(__name__)


# Test-scale sizes (diffusers' get_dummy_components scale): a forward pass takes milliseconds.
DUMMY_SIZES = TinyModelSizes(
    image_size=32,
    latent_channels=4,
    vae_block_out_channels=(32, 32, 32),
    vae_layers_per_block=1,
    unet_block_out_channels=(32, 64),
    unet_layers_per_block=2,
    unet_cross_attention_levels=(1,),
    unet_num_heads=2,
    clip_hidden_size=32,
    clip_num_layers=2,
    clip_num_heads=4,
    clip_patch_size=8,
    clip_projection_dim=32,
    norm_num_groups=32,
)


def build_tiny_components(sizes: TinyModelSizes, seed: int, prediction_type: str = "epsilon") -> Zero123Components:
    """Randomly initialised components of the given sizes, deterministic for `seed`.

    Trained from scratch, there are no pretrained 4-channel weights to preserve, so the UNet is built
    with 2C input channels and default init rather than expanded with zeros.
    """
    for name in ("unet_block_out_channels", "vae_block_out_channels"):
        bad = [c for c in getattr(sizes, name) if c % sizes.norm_num_groups]
        if bad:
            raise ValueError(
                f"`{name}` {getattr(sizes, name)} has {bad} not divisible by norm_num_groups={sizes.norm_num_groups}"
            )
    levels = len(sizes.unet_block_out_channels)
    if any(not 0 <= i < levels for i in sizes.unet_cross_attention_levels):
        raise ValueError(
            f"`unet_cross_attention_levels` {sizes.unet_cross_attention_levels} must lie in 0..{levels - 1}"
        )
    if sizes.image_size % sizes.clip_patch_size:
        raise ValueError(
            f"`image_size` {sizes.image_size} must be divisible by `clip_patch_size` {sizes.clip_patch_size}"
        )
    down = tuple(
        "CrossAttnDownBlock2D" if i in sizes.unet_cross_attention_levels else "DownBlock2D" for i in range(levels)
    )
    up = tuple(b.replace("Down", "Up") for b in reversed(down))
    with torch.random.fork_rng(devices=[]):  # leave the global RNG as we found it
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=sizes.latent_size,
            in_channels=2 * sizes.latent_channels,
            out_channels=sizes.latent_channels,
            down_block_types=down,
            up_block_types=up,
            block_out_channels=sizes.unet_block_out_channels,
            layers_per_block=sizes.unet_layers_per_block,
            cross_attention_dim=sizes.clip_projection_dim,
            attention_head_dim=sizes.unet_num_heads,
            norm_num_groups=sizes.norm_num_groups,
        )
        n_vae = len(sizes.vae_block_out_channels)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n_vae,
            up_block_types=("UpDecoderBlock2D",) * n_vae,
            block_out_channels=sizes.vae_block_out_channels,
            layers_per_block=sizes.vae_layers_per_block,
            latent_channels=sizes.latent_channels,
            norm_num_groups=sizes.norm_num_groups,
            sample_size=sizes.image_size,
            scaling_factor=encoders.SD_VAE_SCALING_FACTOR,
        )
        encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                image_size=sizes.image_size,
                patch_size=sizes.clip_patch_size,
                hidden_size=sizes.clip_hidden_size,
                intermediate_size=4 * sizes.clip_hidden_size,
                num_hidden_layers=sizes.clip_num_layers,
                num_attention_heads=sizes.clip_num_heads,
                projection_dim=sizes.clip_projection_dim,
                hidden_act="quick_gelu",
            )
        )
        cc = CCProjection(sizes.clip_projection_dim)
    return _assemble(vae, unet, encoder, cc, prediction_type, sizes.image_size)


def _assemble(
    vae: AutoencoderKL,
    unet: UNet2DConditionModel,
    encoder: CLIPVisionModelWithProjection,
    cc: CCProjection,
    prediction_type: str,
    image_size: int,
    ddim_schedule: str = Zero123Components.ddim_schedule,
) -> Zero123Components:
    """Freshly built networks as components, in eval mode, with the noise scheduler and the CLIP image processor:
    what every builder of random components returns."""
    return Zero123Components(
        vae=vae.eval(),
        unet=unet.eval(),
        image_encoder=encoder.eval(),
        cc_projection=cc.eval(),
        scheduler=schedulers.make_noise_scheduler(prediction_type),
        feature_extractor=encoders.clip_image_processor(image_size),
        ddim_schedule=ddim_schedule,
    )


# The paper's architecture (docs/conventions.md#model-and-noise-schedule): SD-v1 UNet with 8 input channels at 32x32
# latents, SD's VAE at
# 256 px, OpenAI CLIP ViT-L/14's vision tower at 224 px. Random weights at this size are for benchmarks and
# shape checks; real weights come from `from_sd_image_variations` or `convert.load_zero123_ckpt`.
PAPER_IMAGE_SIZE = 256


PAPER_UNET = dict(
    sample_size=32,
    in_channels=8,
    out_channels=4,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    cross_attention_dim=768,
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    attention_head_dim=8,  # SD1: 8 heads
)


PAPER_VAE = dict(
    sample_size=PAPER_IMAGE_SIZE,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    scaling_factor=encoders.SD_VAE_SCALING_FACTOR,
)


PAPER_CLIP = dict(
    image_size=224,
    patch_size=14,
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    projection_dim=768,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
)


def build_paper_components(
    seed: int, device: str | torch.device = "cpu", prediction_type: str = "epsilon"
) -> Zero123Components:
    """Randomly initialised components at the paper's full size (`PAPER_UNET`, `PAPER_VAE`, `PAPER_CLIP`).

    Built directly on `device` (a `torch.device` context), so a GPU run needs no CPU copy of its 1.2 B
    parameters; on "meta" they take no memory at all (shape checks). Deterministic for `seed` on one device.
    """
    device = torch.device(device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), device:  # leave the global RNG as we found it
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**PAPER_UNET)
        vae = AutoencoderKL(**PAPER_VAE)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**PAPER_CLIP))
        cc = CCProjection(PAPER_CLIP["projection_dim"])
    return _assemble(vae, unet, encoder, cc, prediction_type, PAPER_CLIP["image_size"], ddim_schedule="official")


def build_dummy_components(seed: int = 0, prediction_type: str = "epsilon") -> Zero123Components:
    """Test-scale components (`DUMMY_SIZES`: 32 px images, 8x8x4 latents), deterministic for `seed`."""
    return build_tiny_components(DUMMY_SIZES, seed=seed, prediction_type=prediction_type)
