"""The autoencoder side of the model: latents of every view, and (tiny scale) training a VAE from scratch.

At paper scale the VAE is Stable Diffusion's, frozen. At tiny scale nothing pretrained exists
offline, so a small `AutoencoderKL` is trained first on single views and then frozen; either way the
posterior of every training view is computed once (`encode_views`) and the diffusion model trains on
that table (docs/conventions.md#latent-scaling: the input view's unscaled posterior mean is concatenated; the target is
the
scaled posterior sample).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from jaxtyping import Float, UInt8
from torch import Tensor

from zero1to3.core import checkpoints, fingerprint
from zero1to3.core import progress as zprogress
from zero1to3.dataset import data
from zero1to3.evaluation import pixel_metrics

logger = logging.getLogger(__name__)

VAE_CACHE_FILE = "vae.pt"  # in the cache folder: the trained VAE, its scaling factor, history and identity


@dataclasses.dataclass(frozen=True)
class LatentTable:
    """The VAE posterior of every view, computed once: the VAE is frozen while the UNet trains."""

    mean: Float[Tensor, "N V C h w"]
    """Posterior mean (unscaled): the concatenated input-view latent (docs/conventions.md#latent-scaling)."""
    std: Float[Tensor, "N V C h w"]
    """Posterior standard deviation: target latents are `scaling_factor * (mean + std * n)`."""


@torch.no_grad()
def encode_views(vae: AutoencoderKL, views: data.MultiViewSet, batch_size: int = 64) -> LatentTable:
    """Posterior mean and std of every view of `views` (composited on white, in [-1, 1]), on the CPU.

    The VAE runs where it lives (a GPU at paper scale); the table stays on the CPU, where pairs are indexed.
    """
    num_objects, num_views = views.rgba.shape[:2]
    flat = views.rgba.reshape(num_objects * num_views, *views.rgba.shape[2:])  # (N*V, H, W, 4)
    means, stds = [], []
    for start in range(0, len(flat), batch_size):
        posterior = vae.encode(data.to_model_images(flat[start : start + batch_size]).to(vae.device)).latent_dist
        means.append(posterior.mean.cpu())
        stds.append(posterior.std.cpu())
    mean, std = torch.cat(means), torch.cat(stds)  # (N*V, C, h, w)
    return LatentTable(
        mean.reshape(num_objects, num_views, *mean.shape[1:]), std.reshape(num_objects, num_views, *std.shape[1:])
    )


def fit_vae(
    vae: AutoencoderKL,
    views: data.MultiViewSet,
    steps: int,
    batch_size: int,
    learning_rate: float,
    kl_weight: float,
    generator: torch.Generator,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train a small VAE on single views (tiny scale: nothing pretrained exists offline), in place.

    Loss: mean squared reconstruction error + `kl_weight` x KL(q(z|x) || N(0, I)) per latent element.
    Afterwards the latent scaling factor is set to 1 / std of the scaled latents, as SD's 0.18215
    was chosen for its VAE, so that diffusion sees unit-variance targets. Returns the loss history.
    """
    vae.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=learning_rate)
    num_objects, num_views = views.rgba.shape[:2]
    history = []
    for step in zprogress.bar(range(steps), desc="vae", unit="step", disable=not progress, mininterval=5):
        tick = time.perf_counter()
        obj = torch.randint(num_objects, (batch_size,), generator=generator)
        view = torch.randint(num_views, (batch_size,), generator=generator)
        x = data.to_model_images(views.rgba[obj.numpy(), view.numpy()]).to(vae.device)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=generator)).sample
        loss_recon = F.mse_loss(recon, x)
        loss_kl = posterior.kl().mean() / math.prod(posterior.mean.shape[1:])
        loss = loss_recon + kl_weight * loss_kl
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite VAE loss {loss.item()} at step {step + 1}; stopping")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(
            {
                "step": step + 1,
                "loss_recon": loss_recon.item(),
                "loss_kl": loss_kl.item(),
                "seconds": time.perf_counter() - tick,
            }
        )
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        table = encode_views(vae, views)
        sample_std = torch.sqrt(table.mean.var() + (table.std**2).mean()).item()
    vae.register_to_config(scaling_factor=1.0 / sample_std)
    return history


def fit_vae_cached(
    vae: AutoencoderKL,
    views: data.MultiViewSet,
    steps: int,
    batch_size: int,
    learning_rate: float,
    kl_weight: float,
    seed: int,
    cache_dir: str | Path,
    progress: bool = True,
) -> tuple[list[dict[str, float]], bool]:
    """`fit_vae`, unless `cache_dir` holds the result of the same training; returns `(history, reused)`.

    The same training means the same starting VAE (weights and config), the same views and cameras, and the
    same settings and seed. The cached weights, latent scaling factor and loss history are then loaded into
    `vae` in place (frozen, as `fit_vae` leaves it), so a rerun of stage 02, or a notebook opened after one,
    skips the VAE's minutes. Anything else trains afresh and replaces the cache (atomically). The cache holds
    what this machine computed: training is deterministic here, so the reuse equals a retraining.
    """
    identity = fingerprint.Hasher().value(
        "vae", fingerprint.modules_fingerprint({"vae": vae}, {"vae": fingerprint.plain_config(vae.config)})
    )
    identity.value("object_ids", views.object_ids).array("rgba", views.rgba).array("centers", views.camera_centers)
    identity.value(
        "settings",
        {
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "kl_weight": kl_weight,
            "seed": seed,
        },
    )
    digest = identity.hexdigest()
    path = Path(cache_dir) / VAE_CACHE_FILE
    state, same = fingerprint.load_saved(path, checkpoints.load, {"identity": digest})
    if same:
        vae.load_state_dict(state["state_dict"])
        vae.register_to_config(scaling_factor=float(state["scaling_factor"]))
        vae.eval().requires_grad_(False)
        logger.info("VAE reused from %s (same start, views, settings and seed)", path)
        return state["history"], True
    if state is not None:
        logger.info(
            "VAE in %s was trained from other inputs (%s vs %s now): training afresh",
            path,
            fingerprint.short(str(state.get("identity"))),
            fingerprint.short(digest),
        )
    history = fit_vae(
        vae, views, steps, batch_size, learning_rate, kl_weight, torch.Generator().manual_seed(seed), progress=progress
    )
    checkpoints.write(
        path,
        {
            "identity": digest,
            "state_dict": vae.state_dict(),
            "scaling_factor": float(vae.config.scaling_factor),
            "history": history,
        },
    )
    return history, False


@torch.no_grad()
def vae_reconstructions(vae: AutoencoderKL, rgba: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Views on white and their VAE reconstructions (posterior mean decoded), `(N, H, W, 3)` in [0, 1]."""
    x = data.to_model_images(rgba)
    recon = torch.cat(
        [
            vae.decode(vae.encode(x[i : i + batch_size].to(vae.device)).latent_dist.mode()).sample.cpu()
            for i in range(0, len(x), batch_size)
        ]
    )
    to_hwc = lambda t: ((t + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).numpy()  # noqa: E731
    return {"view": to_hwc(x), "VAE reconstruction": to_hwc(recon)}


@torch.no_grad()
def colour_metrics(vae: AutoencoderKL, rgba: UInt8[np.ndarray, "N H W 4"], batch_size: int = 64) -> dict[str, float]:
    """How much of the views survives the autoencoder: PSNR, foreground PSNR and the share of colour kept.

    Each view's posterior mean is decoded and clamped to [-1, 1], as the diffusion model's latents are. Chroma is
    max - min over RGB per pixel (0 for grey), averaged over the truth's foreground pixels
    (`metrics.foreground_mask`); `chroma_kept` is the reconstructions' average over the truth's, 1 when
    every colour survives, near 0 when the autoencoder returns grey.
    """
    recon = vae_reconstructions(vae, rgba, batch_size)["VAE reconstruction"].astype(np.float64)
    truth = data.composite_on_white(rgba).astype(np.float64)
    mask = pixel_metrics.foreground_mask(truth)
    chroma = lambda images: images.max(axis=-1) - images.min(axis=-1)  # noqa: E731
    truth_chroma = float(chroma(truth)[mask].mean()) if mask.any() else 0.0
    kept = float(chroma(recon)[mask].mean()) / truth_chroma if truth_chroma > 0 else float("nan")
    return {
        "psnr": pixel_metrics.image_metrics(recon, truth)["psnr"],
        "fg_psnr": pixel_metrics.foreground_psnr(recon, truth)["foreground_psnr"],
        "chroma_kept": kept,
    }
