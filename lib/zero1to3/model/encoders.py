"""Encoding into the model's inputs and back: VAE latents of the input and target views, decoding, and the CLIP image
embedding with the official preprocessing (and the image processor saved beside a model).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from jaxtyping import Float
from torch import Tensor
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from zero1to3.config import TinyModelSizes  # noqa: F401  (the sizes' config; `models.TinyModelSizes` for callers)

logger = logging.getLogger(__name__)


# SD-v1 VAE latent scale (docs/conventions.md#latent-scaling): makes the diffusion target roughly unit variance.
SD_VAE_SCALING_FACTOR = 0.18215


# OpenAI CLIP normalisation (docs/conventions.md#clip-preprocessing).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)


CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# What the saved `feature_extractor` can and cannot reproduce, written into `model_index.json` beside it.
CLIP_PREPROCESSING_NOTE = (
    "feature_extractor squashes to the encoder size with bicubic resampling and no centre crop, as the official "
    "FrozenCLIPImageEmbedder; it resamples with antialiasing and half-pixel centres (PIL/torchvision), the official "
    "with torch bicubic, align_corners=True, no antialias, so a resized image's pixel values differ near edges (up "
    "to ~0.15 in [0, 1] at a hard edge, ~0.003 on average, 256 -> 224 px). zero1to3.models.encode_clip_image is "
    "the official path exactly and reads only image_mean/image_std."
)


PIL_BICUBIC = 3  # PIL.Image.Resampling.BICUBIC, as transformers' `resample` takes it


def clip_image_processor(image_size: int) -> CLIPImageProcessor:
    """The CLIP preprocessing saved with a model, as near the official one as an image processor gets.

    The official embedder (docs/conventions.md#clip-preprocessing) squashes any input to the encoder's square size (no
    centre crop), bicubic,
    then normalises with OpenAI CLIP's mean and std; this processor does the same, so another pipeline that loads
    the folder frames an image as the model saw it. Only the resampling filter differs (`CLIP_PREPROCESSING_NOTE`;
    the tests bound the difference). Our own path, `encode_clip_image`, reads only the mean and std from it.
    """
    return CLIPImageProcessor(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        resample=PIL_BICUBIC,
        do_center_crop=False,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )


def encode_condition_latents(vae: AutoencoderKL, images: Float[Tensor, "B 3 H W"]) -> Float[Tensor, "B C h w"]:
    """Concat latent of the input view: the **unscaled** posterior mean E(x).mode()
    (docs/conventions.md#latent-scaling).

    Args:
        vae: The autoencoder.
        images: Input views in [-1, 1].
    """
    return vae.encode(images).latent_dist.mode()


def encode_target_latents(
    vae: AutoencoderKL, images: Float[Tensor, "B 3 H W"], generator: torch.Generator
) -> Float[Tensor, "B C h w"]:
    """Diffusion target z_0 = scaling_factor * a posterior sample (docs/conventions.md#latent-scaling).

    Args:
        vae: The autoencoder.
        images: Target views in [-1, 1].
        generator: Draws the posterior sample z = mean + std * n.
    """
    return vae.config.scaling_factor * vae.encode(images).latent_dist.sample(generator=generator)


def decode_latents(vae: AutoencoderKL, latents: Float[Tensor, "B C h w"]) -> Float[Tensor, "B 3 H W"]:
    """Images in [-1, 1] (unclamped) from scaled latents z_0: D(z_0 / scaling_factor)
    (docs/conventions.md#latent-scaling)."""
    return vae.decode(latents / vae.config.scaling_factor).sample


def encode_clip_image(
    image_encoder: CLIPVisionModelWithProjection,
    feature_extractor: CLIPImageProcessor,
    images: Float[Tensor, "B 3 H W"],
) -> Float[Tensor, "B D"]:
    """Projected CLIP embedding (`image_embeds`, not L2-normalised) of images in [-1, 1], as the paper
    (docs/conventions.md#clip-preprocessing).

    Preprocessing on tensors as the original: squash-resize to the encoder's input size (bicubic,
    align_corners=True, no antialias; no centre crop), map to [0, 1], normalise with the CLIP mean/std.
    """
    size = int(image_encoder.config.image_size)
    x = images
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=True, antialias=False)
    x = (x + 1.0) / 2.0
    mean = torch.tensor(feature_extractor.image_mean, device=x.device, dtype=x.dtype)[None, :, None, None]
    std = torch.tensor(feature_extractor.image_std, device=x.device, dtype=x.dtype)[None, :, None, None]
    return image_encoder(pixel_values=(x - mean) / std).image_embeds  # (B, D)
