"""The score that Score Jacobian Chaining chains into the 3D field (paper Sec. 3.5;
docs/conventions.md#sjc-score-and-losses).

A view rendered from the field is a latent image `y` (the field stores latent features, as the
paper's). It is noised at a random timestep, the view-conditioned model predicts the noise under
classifier-free guidance at a high scale (the paper: 100), and the difference between the
predicted and the injected noise is the gradient sent back into the field:

    z_t = sqrt(abar_t) y + sqrt(1 - abar_t) xi,          xi ~ N(0, I)
    eps_hat = eps_u + s (eps_c - eps_u)                  (one batched UNet call)
    grad_y = eps_hat - xi                                (the paper's `var_red` form, unit weighting)

This equals the paper's `(D - y) / sigma` with the denoised `D = z - sigma eps_hat` in its
variance-exploding notation (`z = y + sigma xi`, sigma^2 = (1 - abar) / abar): D - y = sigma (xi -
eps_hat), and the paper applies `y.backward(-grad)`. Models trained to predict v or x0 are
converted to the epsilon they imply first.
"""

from __future__ import annotations

import dataclasses

import torch
from jaxtyping import Float
from torch import Tensor

from zero1to3.model import conditioning, encoders, schedulers
from zero1to3.model.components import Zero123Components

PAPER_GUIDANCE_SCALE = 100.0  # `sd.scale` of run_zero123.py: SJC guides far harder than sampling (3)
PAPER_TIMESTEP_RANGE = (10, 969)  # `us[30:-10]` of the 1000-step schedule (docs/conventions.md#sjc-score-and-losses)


@dataclasses.dataclass(frozen=True)
class InputViewConditioning:
    """What the score needs from the input view, computed once per object."""

    clip_embeds: Float[Tensor, "1 D"]
    """Projected CLIP embedding of the input view."""
    concat_latents: Float[Tensor, "1 C h w"]
    """Unscaled posterior mean of the input view (concatenated to the noisy latent)."""


@dataclasses.dataclass(frozen=True)
class ScoreOutput:
    """Result of `score`."""

    grad: Float[Tensor, "B C h w"]
    """d(loss)/d(latents) to chain into the field: eps_hat - xi."""
    timesteps: Float[Tensor, "B"]
    """The timesteps drawn."""


@torch.no_grad()
def white_latent(components: Zero123Components) -> Float[Tensor, "C h w"]:
    """Scaled latent of an all-white image: the background SJC composites its field on
    (docs/conventions.md#sjc-field-and-renderer)."""
    size = int(components.vae.config.sample_size)
    white = torch.ones(1, 3, size, size, device=components.vae.device)
    return components.vae.config.scaling_factor * encoders.encode_condition_latents(components.vae, white)[0]


@torch.no_grad()
def decode(components: Zero123Components, latents: Float[Tensor, "B C h w"]) -> Float[Tensor, "B 3 H W"]:
    """Scaled latents (rendered by the field) -> images in [0, 1], by the model's VAE decoder."""
    images = encoders.decode_latents(components.vae, latents.to(components.vae.device))
    return (images.clamp(-1.0, 1.0) + 1.0) / 2.0


@torch.no_grad()
def encode_input_view(components: Zero123Components, image: Float[Tensor, "1 3 H W"]) -> InputViewConditioning:
    """CLIP embedding and concat latent of the input view (in [-1, 1] on white)."""
    image = image.to(components.unet.device)
    clip = encoders.encode_clip_image(components.image_encoder, components.feature_extractor, image)
    return InputViewConditioning(clip, encoders.encode_condition_latents(components.vae, image))


def epsilon_from_output(
    output: Float[Tensor, "B C h w"],
    z_t: Float[Tensor, "B C h w"],
    alpha_bar: Float[Tensor, "B"],
    prediction_type: str,
) -> Float[Tensor, "B C h w"]:
    """The noise a model output implies, for any prediction type.

    With z_t = a z0 + b eps (a = sqrt(abar), b = sqrt(1 - abar)): v = a eps - b z0, so
    eps = a v + b z_t; an x0 prediction gives eps = (z_t - a x0) / b.
    """
    a = alpha_bar.sqrt()[:, None, None, None]
    b = (1.0 - alpha_bar).sqrt()[:, None, None, None]
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return a * output + b * z_t
    if prediction_type == "sample":
        return (z_t - a * output) / b
    raise ValueError(f"`prediction_type` must be one of {schedulers.PREDICTION_TYPES}, got {prediction_type!r}")


@torch.no_grad()
def score(
    components: Zero123Components,
    cond: InputViewConditioning,
    latents: Float[Tensor, "B C h w"],
    poses: Float[Tensor, "B 4"],
    guidance_scale: float,
    timestep_range: tuple[int, int],
    generator: torch.Generator,
    use_pose: bool = True,
) -> ScoreOutput:
    """SJC's score of rendered latents seen from `poses` relative to the input view (see the module docstring).

    Args:
        components: The view-conditioned model (EMA weights).
        cond: The input view's conditioning (`encode_input_view`).
        latents: Rendered latent images (treated as scaled latents z0, as the paper does).
        poses: Relative pose input view -> rendered view, `cameras.relative_pose`.
        guidance_scale: Classifier-free guidance weight (the paper: 100).
        timestep_range: Inclusive range of the uniform timestep draw (the paper: 10..969).
        generator: Draws the timestep and the noise xi (CPU generator).
        use_pose: False scores with the no-pose baseline (the paper's SJC-I analogue).
    """
    lo, hi = timestep_range
    num_train = components.scheduler.config.num_train_timesteps
    if not 0 <= lo <= hi < num_train:
        raise ValueError(f"`timestep_range` must satisfy 0 <= lo <= hi < {num_train}, got {timestep_range}")
    device, bsz = latents.device, latents.shape[0]
    t = torch.randint(lo, hi + 1, (bsz,), generator=generator)
    xi = torch.randn(latents.shape, generator=generator).to(device)
    alpha_bar = components.scheduler.alphas_cumprod[t].to(device=device, dtype=latents.dtype)  # (B,)
    z_t = alpha_bar.sqrt()[:, None, None, None] * latents + (1.0 - alpha_bar).sqrt()[:, None, None, None] * xi

    clip = cond.clip_embeds.expand(bsz, -1)
    concat = cond.concat_latents.expand(bsz, -1, -1, -1)
    c = conditioning.build_conditioning(clip, poses, concat, components.cc_projection, use_pose=use_pose)
    out = conditioning.guided_prediction(components.unet, z_t, t.to(device), c, guidance_scale)
    eps_hat = epsilon_from_output(out, z_t, alpha_bar, components.scheduler.config.prediction_type)
    return ScoreOutput(eps_hat - xi, t.to(torch.float32))


def surrogate_loss(latents: Float[Tensor, "B C h w"], grad: Float[Tensor, "B C h w"]) -> Float[Tensor, ""]:
    """A loss whose gradient with respect to `latents` is exactly `grad` (the score is not differentiated).

    L = 1/2 * sum (y - sg(y - g))^2  =>  dL/dy = y - (y - g) = g, with sg = stop-gradient; the
    value itself is 1/2 * sum g^2 and carries no meaning. Autograd then chains g through the
    renderer into the field: dL/dtheta = g . dy/dtheta (the "Jacobian chaining").
    """
    target = (latents - grad).detach()
    return 0.5 * ((latents - target) ** 2).sum()
