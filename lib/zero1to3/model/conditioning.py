"""Conditioning: the paper's additions to image-conditioned Stable Diffusion, each named and cited.

Zero-1-to-3 (Liu et al., ICCV 2023, Sec. 3.2 "Hybrid conditioning";
docs/conventions.md#hybrid-conditioning-and-initialisation) conditions the UNet on
the input view in two ways at once:

* **cross-attention**: the CLIP image embedding of the input view, concatenated with the relative
  pose `[d_polar_rad, sin d_az, cos d_az, d_radius]` (`cameras.relative_pose`), projected back to
  the CLIP width by `CCProjection` and fed as a one-token context;
* **channel concatenation**: the VAE latent of the input view (unscaled posterior mean,
docs/conventions.md#latent-scaling),
  concatenated to the noisy latent along the channels (`unet_input`).

Classifier-free guidance needs a model that also works unconditioned: during training parts of the
conditioning are dropped (`sample_dropout_masks`, docs/conventions.md#classifier-free-guidance); at inference the
unconditional
branch is a zero context and zero concat latent (`unconditional_conditioning`,
docs/conventions.md#classifier-free-guidance).

The project's "no pose" baseline is the same model whose pose input is always zero
(`build_conditioning(..., use_pose=False)`), not a separate class.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

POSE_DIM = 4
"""Length of the relative-pose vector `[d_polar_rad, sin d_az, cos d_az, d_radius]` (paper Sec. 3.2)."""

CFG_DROPOUT_PROB = 0.05
"""`uncond` of the paper's config: each of the three dropout cases happens with this probability
(docs/conventions.md#classifier-free-guidance)."""


class CCProjection(nn.Module):
    """`cc_projection` of the paper: Linear(clip_dim + 4 -> clip_dim) on `[clip_embedding | pose]`.

    Init (docs/conventions.md#hybrid-conditioning-and-initialisation): identity on the CLIP columns, so that at the
    start of fine-tuning the
    context equals the CLIP embedding the image-conditioned SD was trained on; PyTorch's default
    Linear init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the 4 pose columns (not zero: the pose must move
    the output from the first step); zero bias.
    """

    def __init__(self, clip_dim: int, generator: torch.Generator | None = None) -> None:
        """Build the projection.

        Args:
            clip_dim: Width D of the CLIP image embedding (768 for ViT-L/14; small in tests).
            generator: Draws the pose columns; None uses torch's global generator, as `nn.Linear` does.
        """
        super().__init__()
        if clip_dim < 1:
            raise ValueError(f"`clip_dim` must be a positive int, got {clip_dim}")
        self.clip_dim = clip_dim
        self.projection = nn.Linear(clip_dim + POSE_DIM, clip_dim)
        with torch.no_grad():
            # nn.Linear's default (kaiming_uniform with a=sqrt(5)) is U(-b, b) with b = 1/sqrt(fan_in);
            # redrawn here from `generator` so the init is reproducible without global RNG state.
            bound = 1.0 / math.sqrt(clip_dim + POSE_DIM)
            nn.init.uniform_(self.projection.weight, -bound, bound, generator=generator)
            self.projection.weight[:, :clip_dim] = torch.eye(clip_dim)  # identity on the CLIP part
            self.projection.bias.zero_()

    @property
    def config(self) -> dict[str, int]:
        """What is needed to rebuild the module before loading its weights."""
        return {"clip_dim": self.clip_dim, "pose_dim": POSE_DIM}

    @classmethod
    def from_config(cls, config: dict[str, int]) -> CCProjection:
        """Rebuild from `config` (weights are loaded separately with `load_state_dict`)."""
        if config.get("pose_dim", POSE_DIM) != POSE_DIM:
            raise ValueError(f"`pose_dim` must be {POSE_DIM} (the paper's pose vector), got {config['pose_dim']}")
        return cls(int(config["clip_dim"]))

    def forward(self, clip_embeds: Float[Tensor, "B D"], pose: Float[Tensor, "B 4"]) -> Float[Tensor, "B D"]:
        """Project `[clip_embeds | pose]` (B, D + 4) to the context width D."""
        if clip_embeds.shape[-1] != self.clip_dim:
            raise ValueError(f"`clip_embeds` must have width clip_dim={self.clip_dim}, got {clip_embeds.shape[-1]}")
        return self.projection(torch.cat([clip_embeds, pose], dim=-1))  # (B, D + 4) -> (B, D)


@dataclasses.dataclass(frozen=True)
class Conditioning:
    """The two conditioning inputs of the Zero-1-to-3 UNet for one batch."""

    encoder_hidden_states: Float[Tensor, "B 1 D"]
    """Cross-attention context: one token, `cc_projection([clip | pose])`."""
    concat_latents: Float[Tensor, "B C h w"]
    """Input-view latent concatenated after the noisy latent (unscaled VAE posterior mean)."""


def sample_dropout_masks(
    batch_size: int, generator: torch.Generator, p: float = CFG_DROPOUT_PROB
) -> tuple[Bool[Tensor, "B"], Bool[Tensor, "B"]]:
    """Per-sample condition dropout for classifier-free guidance, the paper's table
    (docs/conventions.md#classifier-free-guidance).

    With r ~ U[0, 1) per sample: r < p drops the CLIP part only; p <= r < 2p drops CLIP and the concat
    latent; 2p <= r < 3p drops the concat latent only; otherwise both are kept. The pose is never dropped.

    Args:
        batch_size: Number of samples B.
        generator: Source of r; the masks live on its device.
        p: Probability of each of the three cases (the paper's `uncond` = 0.05).

    Returns:
        `(drop_clip, drop_concat)`, boolean masks of shape (B,).
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    if not 0.0 <= p <= 1.0 / 3.0:
        raise ValueError(f"`p` must be in [0, 1/3] (three disjoint cases of probability p), got {p}")
    r = torch.rand(batch_size, generator=generator, device=generator.device)  # (B,)
    drop_clip = r < 2.0 * p  # cases 1 and 2
    drop_concat = (r >= p) & (r < 3.0 * p)  # cases 2 and 3
    return drop_clip, drop_concat


def build_conditioning(
    clip_embeds: Float[Tensor, "B D"],
    pose: Float[Tensor, "B 4"],
    input_latents: Float[Tensor, "B C h w"],
    cc_projection: CCProjection,
    drop_clip: Bool[Tensor, "B"] | None = None,
    drop_concat: Bool[Tensor, "B"] | None = None,
    use_pose: bool = True,
) -> Conditioning:
    """Hybrid conditioning of the paper (Sec. 3.2; docs/conventions.md#hybrid-conditioning-and-initialisation), with
    optional CFG dropout.

    Context `c = cc_projection([e * (1 - drop_clip) | T])`: the CLIP part is zeroed *before* the
    projection and the pose T is always kept, so the training null is `W[:, D:] T + b`, not zero.
    Concat latent `z_in * (1 - drop_concat)`.

    Args:
        clip_embeds: Projected CLIP image embeddings of the input views (`image_embeds`).
        pose: Relative poses `[d_polar_rad, sin d_az, cos d_az, d_radius]` (`cameras.relative_pose`).
        input_latents: Unscaled VAE posterior means of the input views (`models.encode_condition_latents`).
        cc_projection: The pose projection.
        drop_clip: Where True, the CLIP embedding is replaced by zeros (None: keep all).
        drop_concat: Where True, the concat latent is replaced by zeros (None: keep all).
        use_pose: False gives the pose-free baseline: the pose input is always zero.

    Returns:
        The context (B, 1, D) and concat latents (B, C, h, w).
    """
    if not use_pose:
        pose = torch.zeros_like(pose)  # baseline: same model, no camera information
    if drop_clip is not None:
        clip_embeds = torch.where(drop_clip[:, None], torch.zeros_like(clip_embeds), clip_embeds)
    if drop_concat is not None:
        input_latents = torch.where(drop_concat[:, None, None, None], torch.zeros_like(input_latents), input_latents)
    context = cc_projection(clip_embeds, pose)[:, None, :]  # (B, 1, D): a single cross-attention token
    return Conditioning(encoder_hidden_states=context, concat_latents=input_latents)


def unconditional_conditioning(cond: Conditioning) -> Conditioning:
    """Unconditional branch for classifier-free guidance at inference, as the paper's demo
    (docs/conventions.md#classifier-free-guidance).

    Zero concat latent and a **zero projected** context. This is not the training null
    `cc_projection([0, T])` (docs/conventions.md#classifier-free-guidance): we keep the paper's choice. The training
    null is
    `build_conditioning` with `drop_clip` and `drop_concat` all True.
    """
    return Conditioning(
        encoder_hidden_states=torch.zeros_like(cond.encoder_hidden_states),
        concat_latents=torch.zeros_like(cond.concat_latents),
    )


def unet_input(
    noisy_latents: Float[Tensor, "B C h w"], concat_latents: Float[Tensor, "B C h w"]
) -> Float[Tensor, "B C2 h w"]:
    """UNet input of the paper: noisy latent in channels 0..C-1, input-view latent in C..2C-1
    (docs/conventions.md#hybrid-conditioning-and-initialisation)."""
    return torch.cat([noisy_latents, concat_latents], dim=1)  # (B, 2C, h, w)


def guided_prediction(
    unet: nn.Module,
    noisy_latents: Float[Tensor, "B C h w"],
    timesteps: Tensor,
    cond: Conditioning,
    guidance_scale: float,
) -> Float[Tensor, "B C h w"]:
    """The UNet's output under classifier-free guidance, `out_u + s (out_c - out_u)`
    (docs/conventions.md#classifier-free-guidance), in one batched call.

    The unconditional branch is `unconditional_conditioning(cond)`; both branches run as one batch of 2B.
    At `guidance_scale` 1 the mix is the conditional output alone, so only that branch runs. Sampling
    (`sample.sample_novel_views`) and SJC's score (`guidance.score`) both call this.

    Args:
        unet: The Zero-1-to-3 UNet (2C input channels).
        noisy_latents: z_t, already scaled for the scheduler's input if it needs that.
        timesteps: A scalar timestep for the whole batch, or one per sample, `(B,)`.
        cond: The conditional branch (`build_conditioning`).
        guidance_scale: The weight s.
    """
    if guidance_scale == 1.0:
        unet_in = unet_input(noisy_latents, cond.concat_latents)
        return unet(unet_in, timesteps, encoder_hidden_states=cond.encoder_hidden_states).sample
    uncond = unconditional_conditioning(cond)
    unet_in = unet_input(
        torch.cat([noisy_latents, noisy_latents]), torch.cat([uncond.concat_latents, cond.concat_latents])
    )
    context = torch.cat([uncond.encoder_hidden_states, cond.encoder_hidden_states])  # (2B, 1, D)
    t = torch.cat([timesteps, timesteps]) if timesteps.ndim else timesteps
    out_uncond, out_cond = unet(unet_in, t, encoder_hidden_states=context).sample.chunk(2)
    return out_uncond + guidance_scale * (out_cond - out_uncond)
