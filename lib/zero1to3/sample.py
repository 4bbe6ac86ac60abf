"""Stage 03: novel views from one image and a relative camera, by DDIM with classifier-free guidance.

The denoising loop is written out under numbered steps, in the diffusers manner. The paper's
sampler (spec 4.4-4.5): the conditional branch is `cc_projection([CLIP(x) | pose])` plus the input
view's latent concatenated; the unconditional branch is a zero context and a zero latent; both run
in one batched UNet call and are mixed as `out_u + s * (out_c - out_u)`; DDIM with `eta` (the paper
uses eta = 1), starting from Gaussian noise drawn from the caller's generator.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm import tqdm

from zero1to3 import conditioning, models


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
    components: models.Zero123Components,
    input_images: Float[Tensor, "B 3 H W"],
    poses: Float[Tensor, "P 4"],  # P == B, checked below with a message that says so
    num_steps: int,
    guidance_scale: float,
    eta: float,
    generator: torch.Generator,
    use_pose: bool = True,
    progress: bool = False,
) -> SampleOutput:
    """Generate the view of each input image seen from its relative pose.

    Args:
        components: The model (EMA weights, as the paper samples).
        input_images: Input views in [-1, 1] on white (`data.to_model_images`).
        poses: `[d_polar_rad, sin d_azimuth, cos d_azimuth, d_radius]` per image (`cameras.relative_pose`).
        num_steps: DDIM steps.
        guidance_scale: Classifier-free guidance weight s; 1 disables guidance (no unconditional pass).
        eta: DDIM stochasticity (0 deterministic DDIM, 1 the paper's DDPM-like setting).
        generator: Draws the initial noise and DDIM's per-step noise (CPU generator).
        use_pose: False samples the no-pose baseline (its pose input is always zero).
        progress: Show a progress bar over the denoising steps.
    """
    # 1. Check inputs
    if input_images.shape[0] != poses.shape[0]:
        raise ValueError(f"need one pose per input image: {input_images.shape[0]} images, {poses.shape[0]} poses")
    if num_steps < 1:
        raise ValueError(f"`num_steps` must be >= 1, got {num_steps}")
    if guidance_scale < 0:
        raise ValueError(f"`guidance_scale` must be >= 0, got {guidance_scale}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"`eta` must be in [0, 1], got {eta}")
    size = int(components.vae.config.sample_size)
    if tuple(input_images.shape[-2:]) != (size, size):
        raise ValueError(f"`input_images` must be {size}x{size} for this model, got {tuple(input_images.shape[-2:])}")
    device = components.unet.device
    images, poses = input_images.to(device), poses.to(device)
    do_cfg = guidance_scale != 1.0

    # 2. Encode conditioning: CLIP + pose -> context; the input view's unscaled posterior mean -> concat.
    clip = models.encode_clip_image(components.image_encoder, components.feature_extractor, images)
    concat = models.encode_condition_latents(components.vae, images)
    cond = conditioning.build_conditioning(clip, poses, concat, components.cc_projection, use_pose=use_pose)
    if do_cfg:
        uncond = conditioning.unconditional_conditioning(cond)
        context = torch.cat([uncond.encoder_hidden_states, cond.encoder_hidden_states])  # (2B, 1, D)
        concat_in = torch.cat([uncond.concat_latents, cond.concat_latents])  # (2B, C, h, w)
    else:
        context, concat_in = cond.encoder_hidden_states, cond.concat_latents

    # 3. Set timesteps
    scheduler = models.make_ddim_scheduler(components.scheduler)
    scheduler.set_timesteps(num_steps, device=device)

    # 4. Prepare the initial noise
    latents = torch.randn(concat.shape, generator=generator).to(device) * scheduler.init_noise_sigma

    # 5. Denoising loop with classifier-free guidance
    for t in tqdm(scheduler.timesteps, desc="ddim", disable=not progress, leave=False):
        model_in = torch.cat([latents, latents]) if do_cfg else latents
        unet_in = conditioning.unet_input(scheduler.scale_model_input(model_in, t), concat_in)
        out = components.unet(unet_in, t, encoder_hidden_states=context).sample
        if do_cfg:
            out_uncond, out_cond = out.chunk(2)
            out = out_uncond + guidance_scale * (out_cond - out_uncond)
        latents = scheduler.step(out, t, latents, eta=eta, generator=generator).prev_sample

    # 6. Decode to images in [0, 1]
    decoded = models.decode_latents(components.vae, latents)
    return SampleOutput(((decoded + 1.0) / 2.0).clamp(0.0, 1.0), latents, poses)


class CheckpointPreviews:
    """Draws the same held-out pairs at every training checkpoint (pass it as `train.fit(on_checkpoint=...)`).

    Keeps `images[step]` as `(N, H, W, 3)` arrays in [0, 1], for a figure of validation views over training.
    """

    def __init__(
        self,
        input_images: Float[Tensor, "N 3 H W"],
        poses: Float[Tensor, "N 4"],
        num_steps: int,
        guidance_scale: float,
        seed: int,
        use_pose: bool = True,
    ) -> None:
        self.input_images, self.poses = input_images, poses
        self.num_steps, self.guidance_scale, self.seed, self.use_pose = num_steps, guidance_scale, seed, use_pose
        self.images: dict[int, np.ndarray] = {}

    def __call__(self, components: models.Zero123Components, step: int) -> None:
        was_training = {name: m.training for name, m in components.modules().items()}
        for module in components.modules().values():
            module.eval()
        out = sample_novel_views(
            components, self.input_images, self.poses, self.num_steps, self.guidance_scale, eta=1.0,
            generator=torch.Generator().manual_seed(self.seed), use_pose=self.use_pose,
        )  # fmt: skip
        self.images[step] = out.images.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
        for name, module in components.modules().items():
            module.train(was_training[name])

    def state_dict(self) -> dict[str, Any]:
        """The images drawn so far (`train.fit` stores them beside each checkpoint, so a resumed run keeps them)."""
        return {"images": {step: torch.from_numpy(images) for step, images in self.images.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the images of a killed run's checkpoints."""
        self.images = {int(step): images.numpy() for step, images in state["images"].items()}
