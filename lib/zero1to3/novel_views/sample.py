"""Stage 03: novel views from one image and a relative camera, by DDIM with classifier-free guidance.

The denoising loop is written out under numbered steps, in the diffusers manner. The paper's
sampler (docs/conventions.md#sampling-novel-views): the conditional branch is `cc_projection([CLIP(x) | pose])` plus
the input
view's latent concatenated; the unconditional branch is a zero context and a zero latent; both run
in one batched UNet call and are mixed as `out_u + s * (out_c - out_u)`; DDIM with `eta` (the paper
uses eta = 1), starting from Gaussian noise drawn from the caller's generator. Which timesteps DDIM visits
is the model's `ddim_schedule` unless the caller names one: "official" (the paper's sampler: S = 50 runs
49 steps from t = 961) or "diffusers" (50 from t = 981); `schedulers.DDIM_SCHEDULES` says why both exist.
"""

from __future__ import annotations

import dataclasses

import torch
from jaxtyping import Float
from torch import Tensor

from zero1to3.core import progress as zprogress
from zero1to3.model import conditioning, encoders, schedulers
from zero1to3.model.components import Zero123Components


@dataclasses.dataclass(frozen=True)
class SampleOutput:
    """Result of `sample_novel_views`."""

    images: Float[Tensor, "B 3 H W"]
    """Generated views in [0, 1]."""
    latents: Float[Tensor, "B C h w"]
    """Final scaled latents z_0 (before decoding)."""
    poses: Float[Tensor, "B 4"]
    """The relative poses they were generated for."""


@torch.no_grad()
def sample_novel_views(
    components: Zero123Components,
    input_images: Float[Tensor, "B 3 H W"],
    poses: Float[Tensor, "P 4"],  # P == B, checked below with a message that says so
    num_steps: int,
    guidance_scale: float,
    eta: float,
    generator: torch.Generator | list[torch.Generator],
    use_pose: bool = True,
    progress: bool = False,
    schedule: str | None = None,
) -> SampleOutput:
    """Generate the view of each input image seen from its relative pose.

    Args:
        components: The model (EMA weights, as the paper samples).
        input_images: Input views in [-1, 1] on white (`data.to_model_images`).
        poses: `[d_polar_rad, sin d_azimuth, cos d_azimuth, d_radius]` per image (`cameras.relative_pose`).
        num_steps: DDIM steps.
        guidance_scale: Classifier-free guidance weight s; 1 disables guidance (no unconditional pass).
        eta: DDIM stochasticity (0 deterministic DDIM, 1 the paper's DDPM-like setting).
        generator: Draws the initial noise and DDIM's per-step noise (CPU generator). A list of K generators splits
            the batch into K equal groups of rows, each drawing its own noise from its own generator: group k's
            noise is what a call with its rows alone and generator k would draw, so several objects sample in one
            batch with the noise each would get on its own (`noise_streams`).
        use_pose: False samples the no-pose baseline (its pose input is always zero).
        progress: Show a progress bar over the denoising steps.
        schedule: DDIM timesteps, "official" or "diffusers" (`schedulers.DDIM_SCHEDULES`); None: the model's
            `ddim_schedule`.
    """
    # 1. Check inputs
    if input_images.shape[0] != poses.shape[0]:
        raise ValueError(f"need one pose per input image: {input_images.shape[0]} images, {poses.shape[0]} poses")
    noise = noise_streams(generator, input_images.shape[0])
    if num_steps < 1:
        raise ValueError(f"`num_steps` must be >= 1, got {num_steps}")
    if guidance_scale < 0:
        raise ValueError(f"`guidance_scale` must be >= 0, got {guidance_scale}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"`eta` must be in [0, 1], got {eta}")
    schedule = components.ddim_schedule if schedule is None else schedule
    schedulers.ddim_timesteps(num_steps, schedule, int(components.scheduler.config.num_train_timesteps))  # raises
    size = int(components.vae.config.sample_size)
    if tuple(input_images.shape[-2:]) != (size, size):
        raise ValueError(f"`input_images` must be {size}x{size} for this model, got {tuple(input_images.shape[-2:])}")
    device = components.unet.device
    images, poses = input_images.to(device), poses.to(device)

    # 2. Encode conditioning: CLIP + pose -> context; the input view's unscaled posterior mean -> concat.
    clip = encoders.encode_clip_image(components.image_encoder, components.feature_extractor, images)
    concat = encoders.encode_condition_latents(components.vae, images)
    cond = conditioning.build_conditioning(clip, poses, concat, components.cc_projection, use_pose=use_pose)

    # 3. Set timesteps (the initial noise is x at the first of them)
    scheduler = schedulers.make_ddim_sampler(components.scheduler, num_steps, schedule, device)

    # 4. Prepare the initial noise
    latents = noise(concat.shape).to(device) * scheduler.init_noise_sigma

    # 5. Denoising loop with classifier-free guidance (both branches in one UNet call; scale 1: conditional only)
    for t in zprogress.bar(scheduler.timesteps, desc="ddim", disable=not progress, leave=False):
        model_in = scheduler.scale_model_input(latents, t)
        out = conditioning.guided_prediction(components.unet, model_in, t, cond, guidance_scale)
        step_noise = noise(out.shape, out.dtype).to(device) if eta > 0 else None  # as diffusers' step draws it
        latents = scheduler.step(out, t, latents, eta=eta, variance_noise=step_noise).prev_sample

    # 6. Decode to images in [0, 1]
    decoded = encoders.decode_latents(components.vae, latents)
    return SampleOutput(((decoded + 1.0) / 2.0).clamp(0.0, 1.0), latents, poses)


def noise_streams(generator: torch.Generator | list[torch.Generator], batch: int):
    """A function `shape -> Gaussian noise of that shape` whose rows come from the generators in equal groups.

    One generator draws the whole batch (`torch.randn(shape, generator=...)`, as diffusers' `randn_tensor` does on
    the CPU). K generators each draw the rows of their own group, `shape[0] // K` of them, so a group's stream is
    the same whichever other groups share the batch.
    """
    generators = generator if isinstance(generator, list) else [generator]
    if not generators or batch % len(generators):
        raise ValueError(f"the batch of {batch} rows does not split into {len(generators)} equal groups of generator")
    rows = batch // len(generators)

    def draw(shape: torch.Size, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.cat([torch.randn((rows, *shape[1:]), generator=g, dtype=dtype) for g in generators])

    return draw
