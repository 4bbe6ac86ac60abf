"""Stage 04: single-image 3D reconstruction by Score Jacobian Chaining (paper Sec. 4.6;
docs/conventions.md#sjc-reconstruction), the "system".

The split is threestudio's: `voxel.VoxelField` is the geometry (what a point is), `raymarch` the renderer
(rays to pixels), `guidance.score` the diffusion prior (score of a rendered latent), and this module the
loop: cameras, losses, optimiser, checkpoints. One iteration (docs/conventions.md#sjc-score-and-losses), with `y` a
rendered latent image:

    1. cameras: the input view at its own centre, `views_per_iteration` random views around the object,
       and a near view of each random view (eye + 0.05 * random unit vector; all look at the origin)
    2. render all of them in one batch: latents y_in, y, y_near and expected depths d_in, d, d_near
    3. score: grad = eps_hat - xi of y seen from the relative pose input -> random (CFG 100, t ~ U[10, 969])
    4. losses (weights `lambda_<name>` in `SJCConfig`):
         loss_sds          = 1/2 sum (y - sg(y - grad))^2 / B        d/dy = grad (guidance.surrogate_loss)
         loss_input        = mean (y_in - z_in)^2                     z_in = scaled VAE latent of the input view
         loss_input_mask   = mean (opacity_in - alpha_in)^2           alpha_in = input alpha, area-downsampled
         loss_near_view    = mean |y_near - y| + mean |d_near - d|
         loss_depth_smooth = 0.1 TV(d_in) + [i >= depth_smooth_start * n] TV(d)
         loss_emptiness    = mean log(1 + emptiness_scale * w)        over the random views' sample weights
    5. Adamax step on the density and feature grids (the paper: lr 0.05 for both)

Deviations from the official code, each chosen for a 2-core CPU and our data:

* The input-view loss is computed **in latent space** (`loss_input`) plus an opacity-to-alpha term
  (`loss_input_mask`); the paper decodes the rendered latent through the VAE and takes an RGB MSE x 1e4.
  The decoder's forward and backward would cost more than the rest of an iteration together, and the
  mask term pins the silhouette directly (the white background latent alone leaves it ambiguous).
* The input camera stays at its own radius and angles (the paper rescales it to radius 2), and random
  cameras follow our renderer: cube-normalised directions over the polar band of the data (default the
  whole sphere), radius U(1.5, 2.2) (the paper: U(1.8, 2.2), z > -0.5).
* The box is `[-bound, bound]^3` around the unit-cube-normalised object (bound 0.6 rather than 1), the
  grid is 48^3 (not 100^3), rendered latents are the model's 16x16 (not 32x32), 2 random views are scored
  per iteration (not 1) and the run is 900 iterations (not 10,000); the learning rate is the paper's 0.05.
* The depth-smoothness weight is 100x below the paper's relative to the input loss (see `SJCConfig`).
* `loss_emptiness` penalises log(1 + 10 w) as threestudio/SJC's `emptiness_loss`; the paper's run has it off.
* The torch thread count is set for the loop (`num_threads`, restored afterwards).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, UInt8
from torch import Tensor

from zero1to3 import cameras
from zero1to3.config import SJCConfig  # noqa: F401  (stage 04's config; `sjc.SJCConfig` for notebooks)
from zero1to3.core import checkpoints, fingerprint
from zero1to3.core import progress as zprogress
from zero1to3.dataset import data
from zero1to3.model.components import Zero123Components
from zero1to3.sjc import guidance, raymarch, voxel

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "sjc"  # <checkpoint_dir>/sjc_NNNNNN.pt
INPUT_DEPTH_SMOOTH_FACTOR = 0.1  # the paper's input-view depth TV is 0.1 x depth_smooth_weight
# (docs/conventions.md#sjc-score-and-losses)


@dataclasses.dataclass(frozen=True)
class SJCResult:
    """What `reconstruct` returns."""

    field: voxel.VoxelField
    """The optimised field (density and latent features)."""
    history: list[dict[str, float]]
    """One row per iteration: `iteration`, `loss` (weighted total), every `loss_<name>` (unweighted),
    `timestep`, `seconds`."""
    seconds: float
    """Wall time of this call (set-up included; a resumed run counts only its own part)."""
    resumed_from: int
    """0 for a fresh run, else the checkpoint iteration the run continued from."""


@dataclasses.dataclass(frozen=True)
class _InputView:
    cond: guidance.InputViewConditioning
    latent: Float[Tensor, "C h w"]  # scaled latent z_in of the input view (the target of loss_input)
    mask: Float[Tensor, "h w"]  # input alpha, area-averaged to the latent size
    background: Float[Tensor, "h w C"]  # scaled latent of a white image, composited behind the field


def _encode_input(components: Zero123Components, rgba: UInt8[np.ndarray, "H W 4"]) -> _InputView:
    size = int(components.vae.config.sample_size)
    if rgba.shape[:2] != (size, size):
        raise ValueError(f"`input_rgba` must be {size}x{size} (the model's image size), got {rgba.shape[:2]}")
    image = data.to_model_images(rgba)[None].to(components.vae.device)  # (1, 3, H, W) in [-1, 1] on white
    cond = guidance.encode_input_view(components, image)
    latent = components.vae.config.scaling_factor * cond.concat_latents[0]  # (C, h, w): mode, not a sample
    alpha = torch.from_numpy(rgba[..., 3].astype(np.float32) / 255.0)[None, None]
    mask = F.interpolate(alpha, size=latent.shape[-2:], mode="area")[0, 0].to(latent.device)  # (h, w)
    return _InputView(cond, latent, mask, guidance.white_latent(components).permute(1, 2, 0))


def sample_cameras(
    input_center: Float[np.ndarray, "3"], cfg: SJCConfig, rng: np.random.Generator
) -> Float[np.ndarray, "V 3"]:
    """Camera centres of one iteration: the input view first, unchanged, then `views_per_iteration` random ones.

    Random views follow our renderer (`cameras.sample_camera_positions`): cube-normalised directions in the
    polar band, radius U(radius_min, radius_max). All cameras look at the origin (`cameras.look_at`).
    """
    random_views = cameras.sample_camera_positions(
        cfg.views_per_iteration, rng, cfg.radius_min, cfg.radius_max, cfg.polar_min_deg, cfg.polar_max_deg
    )
    return np.concatenate([np.asarray(input_center, np.float64)[None], random_views])  # (1 + B, 3)


def near_cameras(
    centers: Float[np.ndarray, "B 3"], offset: float, rng: np.random.Generator
) -> Float[np.ndarray, "B 3"]:
    """Eyes moved by `offset` in a uniformly random direction (the paper's `sample_near_eye`)."""
    direction = rng.standard_normal(centers.shape)
    return centers + offset * direction / np.linalg.norm(direction, axis=-1, keepdims=True)


def render_views(
    field: voxel.VoxelField,
    centers: Float[np.ndarray, "V 3"],
    size: int,
    samples_per_ray: int,
    background: Float[Tensor, "h w C"] | float,
    background_depth: float,
) -> raymarch.RenderOutput:
    """Render the field from cameras at `centers` looking at the origin: features `(V, size, size, C)`."""
    rays = raymarch.rays_from_camera(cameras.look_at(centers), size)  # (V, size, size, 3)
    device = field.density_raw.device
    rays = raymarch.Rays(rays.origins.to(device), rays.directions.to(device))
    return raymarch.render_rays(field, rays, samples_per_ray, background=background, background_depth=background_depth)


def total_variation(depth: Float[Tensor, "*B h w"]) -> Float[Tensor, ""]:
    """TV(d) = 1/2 (mean |d_x| + mean |d_y|) over the last two axes (SJC `my3d.py`)."""
    return 0.5 * (
        (depth[..., :, 1:] - depth[..., :, :-1]).abs().mean() + (depth[..., 1:, :] - depth[..., :-1, :]).abs().mean()
    )


def sjc_losses(
    field: voxel.VoxelField,
    components: Zero123Components,
    inp: _InputView,
    input_center: Float[np.ndarray, "3"],
    cfg: SJCConfig,
    iteration: int,
    rng: np.random.Generator,
    generator: torch.Generator,
    use_pose: bool,
) -> tuple[dict[str, Tensor], Tensor]:
    """One iteration's `loss_<name>` terms (unweighted, module docstring) and the score's timesteps."""
    b, size = cfg.views_per_iteration, inp.latent.shape[-1]
    centers = sample_cameras(input_center, cfg, rng)  # (1 + B, 3): input first
    near = near_cameras(centers[1:], cfg.near_view_offset, rng)  # (B, 3)
    out = render_views(
        field, np.concatenate([centers, near]), size, cfg.samples_per_ray, inp.background, cfg.background_depth
    )
    latents = out.features.permute(0, 3, 1, 2)  # (1 + 2B, C, h, w)
    y_in, y, y_near = latents[:1], latents[1 : 1 + b], latents[1 + b :]
    d_in, d, d_near = out.depth[:1], out.depth[1 : 1 + b], out.depth[1 + b :]
    poses = torch.from_numpy(cameras.relative_pose(np.broadcast_to(input_center, (b, 3)), centers[1:]))
    s = guidance.score(
        components,
        inp.cond,
        y.detach(),
        poses.to(y.device),
        cfg.guidance_scale,
        (cfg.timestep_min, cfg.timestep_max),
        generator,
        use_pose=use_pose,
    )
    depth_smooth = INPUT_DEPTH_SMOOTH_FACTOR * total_variation(d_in)
    if iteration >= cfg.depth_smooth_start * cfg.iterations:
        depth_smooth = depth_smooth + total_variation(d)
    losses = {
        "loss_sds": guidance.surrogate_loss(y, s.grad) / b,  # per view: lambda_sds does not depend on B
        "loss_input": F.mse_loss(y_in[0], inp.latent),
        "loss_input_mask": F.mse_loss(out.opacity[0], inp.mask),
        "loss_near_view": (y_near - y).abs().mean() + (d_near - d).abs().mean(),
        "loss_depth_smooth": depth_smooth,
    }
    if cfg.lambda_emptiness > 0:
        losses["loss_emptiness"] = torch.log1p(cfg.emptiness_scale * out.weights[1 : 1 + b]).mean()
    return losses, s.timesteps


@contextlib.contextmanager
def _torch_threads(num_threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def input_center(polar_deg: float, azimuth_deg: float, radius: float) -> Float[np.ndarray, " 3"]:
    """The input camera's centre from its spherical coordinates in degrees, as stage 04 (from a render's
    `meta.json`) and `reconstruct` (from the command line) both compute it: the same angles give the same bits,
    so the same run. (A render's `w2c` gives the centre within a few 1e-16, which is enough to set SJC's 900
    chaotic iterations on another course.)"""
    return cameras.spherical_to_cartesian(np.radians(polar_deg), np.radians(azimuth_deg), radius)


def render_input_center(views: data.ObjectViews, view: int) -> Float[np.ndarray, " 3"]:
    """`input_center` of view `view` of a render of stage 01, from the angles its `meta.json` records."""
    meta = views.meta
    return input_center(meta["polar_deg"][view], meta["azimuth_deg"][view], meta["radius"][view])


def run_identity(
    components: Zero123Components,
    rgba: np.ndarray,
    center: np.ndarray,
    cfg: SJCConfig,
    seed: int,
    use_pose: bool,
    prior_fingerprint: str | None = None,
) -> dict[str, Any]:
    """Everything a reconstruction depends on, as plain values: a checkpoint or a finished result is reused
    only if its identity equals this one. The prior model and the input view enter by fingerprint; the
    config by value, all but `checkpoint_every`. `prior_fingerprint`: the components' fingerprint, if the
    caller has it already (hashing paper-scale weights takes seconds)."""
    digest = hashlib.sha256(np.ascontiguousarray(rgba).tobytes() + np.asarray(center, np.float64).tobytes())
    config = {k: v for k, v in cfg.to_dict().items() if k != "checkpoint_every"}
    prior = prior_fingerprint or fingerprint.components_fingerprint(components)
    return {
        "config": config,
        "seed": seed,
        "use_pose": use_pose,
        "input_sha256": digest.hexdigest(),
        "prior_fingerprint": prior,
    }


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The newest `sjc_NNNNNN.pt` in `checkpoint_dir`, if any."""
    return checkpoints.latest(checkpoint_dir, CHECKPOINT_PREFIX)


def field_from_state(state: dict[str, Tensor], cfg: SJCConfig, feature_dim: int) -> voxel.VoxelField:
    """The field `reconstruct` optimised under `cfg`, rebuilt on the CPU from its state dict.

    The one loader behind both field files, which differ on disk and stay so: stage 04's `<id>.field.pt` is the
    bare state dict (`reconstruction.load_field`, config from params), the `reconstruct` command's `field.pt`
    holds it under "field" beside the run's identity and config (`image_to_3d.load_field`).
    """
    field = voxel.VoxelField(cfg.resolution, feature_dim, cfg.bound, cfg.density_shift)
    field.load_state_dict(state)
    return field


def reconstruct(
    components: Zero123Components,
    input_rgba: UInt8[np.ndarray, "H W 4"],
    input_center: Float[np.ndarray, "3"],
    cfg: SJCConfig,
    seed: int,
    use_pose: bool = True,
    checkpoint_dir: Path | None = None,
    progress: bool = True,
    identity: dict[str, Any] | None = None,
) -> SJCResult:
    """Optimise a voxel field of latents so that every view of it scores well under the model (SJC).

    Args:
        components: The view-conditioned model (frozen; `use_pose=False` expects the no-pose baseline).
        input_rgba: The input view as rendered (alpha 0 off the object), at the model's image size.
        input_center: Camera centre of the input view in the normalised frame (it looks at the origin).
        cfg: The run's settings.
        seed: Seeds the field's initial features, the cameras and the score's timesteps and noise.
        use_pose: False scores without the pose (the paper's SJC-I analogue, with the no-pose model).
        checkpoint_dir: Checkpoint every `cfg.checkpoint_every` iterations and at the end, and resume
            from the newest checkpoint there; the resumed run ends equal to an uninterrupted one.
        progress: Show a tqdm bar.
        identity: This run's `run_identity`, if the caller computed it already (it hashes the prior's weights);
            only checkpoints use it.

    Raises:
        FloatingPointError: a loss or gradient is not finite (names the iteration).
    """
    tick = time.perf_counter()
    with _torch_threads(cfg.num_threads):
        # 1. Check inputs
        input_center = np.asarray(input_center, np.float64)
        if not np.abs(input_center).max() > cfg.bound:
            raise ValueError(f"`input_center` {input_center.tolist()} lies inside the field's box (bound {cfg.bound})")
        if identity is None and checkpoint_dir is not None:
            identity = run_identity(components, input_rgba, input_center, cfg, seed, use_pose)

        # 2. Encode the input view once: conditioning, target latent, mask, white background
        inp = _encode_input(components, input_rgba)

        # 3. Field, optimiser (Adamax as the paper), generators
        generator = torch.Generator().manual_seed(seed)  # field init, then the score's timesteps and noise
        field = voxel.VoxelField(
            cfg.resolution,
            inp.latent.shape[0],
            cfg.bound,
            cfg.density_shift,
            feature_init_std=cfg.feature_init_std,
            generator=generator,
        )
        field = field.to(inp.latent.device)
        optimizer = torch.optim.Adamax(
            [
                {"params": [field.density_raw, field.density_log_scale], "lr": cfg.lr_density},
                {"params": [field.features_raw], "lr": cfg.lr_features},
            ]
        )
        rng = np.random.default_rng(seed)  # cameras
        history: list[dict[str, float]] = []

        # 4. Resume from the newest checkpoint of the same run (same prior, input, seed and config), else afresh
        start = 0
        last = latest_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
        state, same = fingerprint.load_saved(last, checkpoints.load, {"identity": identity})
        if state is not None and not same:
            logger.warning(
                "SJC checkpoints in %s belong to another run (%s differ): starting afresh",
                checkpoint_dir,
                ", ".join(fingerprint.differences(identity, state.get("identity") or {})),
            )
            checkpoints.remove(checkpoint_dir, CHECKPOINT_PREFIX)
            state = None
        if state is not None:
            field.load_state_dict(state["field"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])
            rng.bit_generator.state = state["camera_rng"]
            history, start = state["history"], state["iteration"]
            logger.info("resuming SJC from %s (iteration %d of %d)", last, start, cfg.iterations)

        # 5. The loop
        weights = {
            f"loss_{f.name[len('lambda_') :]}": getattr(cfg, f.name)
            for f in dataclasses.fields(cfg)
            if f.name.startswith("lambda_")
        }
        bar = zprogress.bar(
            range(start, cfg.iterations),
            initial=start,
            total=cfg.iterations,
            desc="sjc",
            unit="it",
            disable=not progress,
            mininterval=2,
        )
        for i in bar:
            step_tick = time.perf_counter()
            losses, timesteps = sjc_losses(field, components, inp, input_center, cfg, i, rng, generator, use_pose)
            loss = sum(weights[k] * v for k, v in losses.items())
            if not torch.isfinite(loss):
                terms = {k: v.item() for k, v in losses.items()}
                raise FloatingPointError(f"non-finite SJC loss {loss.item()} at iteration {i + 1}; terms: {terms}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # a sum is non-finite iff an element is (or the sum overflows): ~10x cheaper than isfinite().all()
            if not all(torch.isfinite(p.grad.sum()) for p in field.parameters() if p.grad is not None):
                raise FloatingPointError(f"non-finite gradient of the field at iteration {i + 1}; stopping the run")
            optimizer.step()
            row = {
                "iteration": i + 1,
                "loss": loss.item(),
                **{k: v.item() for k, v in losses.items()},
                "timestep": timesteps.mean().item(),
                "seconds": time.perf_counter() - step_tick,
            }
            history.append(row)
            bar.set_postfix(
                {"loss": f"{row['loss']:.3g}"} | {k.removeprefix("loss_"): f"{row[k]:.2g}" for k in losses},
                refresh=False,
            )
            if checkpoint_dir is not None and ((i + 1) % cfg.checkpoint_every == 0 or i + 1 == cfg.iterations):
                checkpoints.save(
                    checkpoint_dir,
                    CHECKPOINT_PREFIX,
                    i + 1,
                    {
                        "iteration": i + 1,
                        "identity": identity,
                        "field": field.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(),
                        "camera_rng": rng.bit_generator.state,
                        "history": history,
                    },
                )
        bar.close()
    return SJCResult(field, history, time.perf_counter() - tick, start)


@torch.no_grad()
def render_images(
    field: voxel.VoxelField,
    components: Zero123Components,
    centers: Float[np.ndarray, "F 3"],
    samples_per_ray: int = 64,
    background_depth: float = 10.0,
) -> dict[str, np.ndarray]:
    """The field seen from cameras at `centers` (looking at the origin), decoded to images.

    Returns:
        `rgb` `(F, H, W, 3)` in [0, 1], decoded by the VAE from the rendered latents on the white
        background latent; `depth` and `opacity` `(F, h, w)` at the latent resolution.
    """
    background = guidance.white_latent(components)  # (C, h, w)
    out = render_views(
        field,
        np.asarray(centers, np.float64),
        background.shape[-1],
        samples_per_ray,
        background.permute(1, 2, 0),
        background_depth,
    )
    rgb = guidance.decode(components, out.features.permute(0, 3, 1, 2))  # (F, 3, H, W) in [0, 1]
    return {
        "rgb": rgb.permute(0, 2, 3, 1).cpu().numpy(),
        "depth": out.depth.cpu().numpy(),
        "opacity": out.opacity.cpu().numpy(),
    }


def render_turntable(
    field: voxel.VoxelField,
    components: Zero123Components,
    num_frames: int,
    radius: float,
    polar_deg: float,
    samples_per_ray: int = 64,
    background_depth: float = 10.0,
) -> dict[str, np.ndarray]:
    """`render_images` around the object at a fixed radius and polar angle, azimuth from 0 in equal steps."""
    if num_frames < 1:
        raise ValueError(f"`num_frames` must be >= 1, got {num_frames}")
    azimuth_rad = np.linspace(0.0, 2.0 * np.pi, num_frames, endpoint=False)
    centers = cameras.spherical_to_cartesian(np.radians(polar_deg), azimuth_rad, radius)  # (F, 3)
    return render_images(field, components, centers, samples_per_ray, background_depth)
