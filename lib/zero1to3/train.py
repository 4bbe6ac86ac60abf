"""Stage 02: train the view-conditioned latent diffusion model (and, at tiny scale, its VAE first).

The loop is the paper's (spec 3.2-3.5): pairs of views of one object; the target view's latent is
noised and denoised by the UNet, conditioned on the input view (its latent concatenated, its CLIP
embedding joined with the relative pose through `cc_projection`); condition dropout for
classifier-free guidance; AdamW with `cc_projection` at 10x the learning rate; linear warm-up; EMA
weights for sampling. accelerate runs it: one process on the CPU here, `accelerate launch` across
GPUs (mixed precision, gradient accumulation) elsewhere, with no code change.

Runs are resumable: every `checkpoint_every` steps the full state (weights, optimiser, EMA,
learning-rate schedule, the generators of data and noise, the loss history) is written atomically;
a rerun with the same settings continues from the last checkpoint and ends exactly where an
uninterrupted run ends. A non-finite loss stops the run and names the step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import AutoencoderKL
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from jaxtyping import Float
from torch import Tensor
from tqdm import tqdm

from zero1to3 import conditioning, data, files, models
from zero1to3.config import FinetuneConfig

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
MODEL_DIR = "model"
KEEP_CHECKPOINTS = 2


@dataclasses.dataclass(frozen=True)
class LatentTable:
    """The VAE posterior of every view, computed once: the VAE is frozen while the UNet trains."""

    mean: Float[Tensor, "N V C h w"]
    """Posterior mean (unscaled): the concatenated input-view latent (spec 8.1)."""
    std: Float[Tensor, "N V C h w"]
    """Posterior standard deviation: target latents are `scaling_factor * (mean + std * n)`."""


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What `fit` returns."""

    components: models.Zero123Components
    """The trained components, EMA weights in place (what sampling uses)."""
    history: list[dict[str, float]]
    """One row per optimiser step: step, loss, learning rate, seconds."""
    resumed_from_step: int
    """0 for a fresh run, else the checkpoint step the run continued from."""


@torch.no_grad()
def encode_views(vae: AutoencoderKL, views: data.MultiViewSet, batch_size: int = 64) -> LatentTable:
    """Posterior mean and std of every view of `views` (composited on white, in [-1, 1])."""
    num_objects, num_views = views.rgba.shape[:2]
    flat = views.rgba.reshape(num_objects * num_views, *views.rgba.shape[2:])  # (N*V, H, W, 4)
    means, stds = [], []
    for start in range(0, len(flat), batch_size):
        posterior = vae.encode(data.to_model_images(flat[start : start + batch_size])).latent_dist
        means.append(posterior.mean)
        stds.append(posterior.std)
    mean, std = torch.cat(means), torch.cat(stds)  # (N*V, C, h, w)
    return LatentTable(mean.reshape(num_objects, num_views, *mean.shape[1:]), std.reshape(num_objects, num_views,
                       *std.shape[1:]))  # fmt: skip


def training_step(
    components: models.Zero123Components,
    batch: data.PairBatch,
    latents: LatentTable,
    cfg: FinetuneConfig,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """The paper's loss on one batch of pairs (spec 3.2-3.3); returns `{"loss_diffusion": ...}`.

    Notation (variable -> paper): `z0` -> z, the target view's scaled latent; `t` -> t; `noise` ->
    epsilon; `z_t` -> z_t = sqrt(abar_t) z + sqrt(1 - abar_t) epsilon; `cond` -> c(x, R, T).
    """
    device = components.unet.device
    o, s, t_view = batch.object_index, batch.input_view, batch.target_view
    bsz = len(o)
    # 1. Latents: the input view's unscaled posterior mean is concatenated; the target is a scaled sample.
    concat = latents.mean[o, s].to(device)
    mean, std = latents.mean[o, t_view], latents.std[o, t_view]  # (B, C, h, w)
    z0 = components.vae.config.scaling_factor * (mean + std * torch.randn(mean.shape, generator=generator))
    z0 = z0.to(device)
    # 2. Conditioning with the paper's dropout for classifier-free guidance.
    with torch.set_grad_enabled(cfg.train_image_encoder and torch.is_grad_enabled()):
        clip = models.encode_clip_image(
            components.image_encoder, components.feature_extractor, batch.input_images.to(device)
        )
    drop_clip, drop_concat = conditioning.sample_dropout_masks(bsz, generator, cfg.cfg_dropout_prob)
    cond = conditioning.build_conditioning(
        clip, batch.pose.to(device), concat, components.cc_projection, drop_clip.to(device), drop_concat.to(device),
        use_pose=cfg.use_pose,
    )  # fmt: skip
    # 3. Forward diffusion at a uniform timestep.
    scheduler = components.scheduler
    timesteps = torch.randint(scheduler.config.num_train_timesteps, (bsz,), generator=generator).to(device)
    noise = torch.randn(z0.shape, generator=generator).to(device)
    z_t = scheduler.add_noise(z0, noise, timesteps)
    if cfg.prediction_type == "epsilon":
        target = noise
    elif cfg.prediction_type == "v_prediction":
        target = scheduler.get_velocity(z0, noise, timesteps)
    elif cfg.prediction_type == "sample":
        target = z0
    else:
        raise ValueError(f"`prediction_type` must be one of {models.PREDICTION_TYPES}, got {cfg.prediction_type!r}")
    # 4. Denoise and compare: mean over (C, h, w) and batch of the squared error (spec 3.3).
    unet_in = conditioning.unet_input(z_t, cond.concat_latents)  # (B, 2C, h, w)
    pred = components.unet(unet_in, timesteps, encoder_hidden_states=cond.encoder_hidden_states).sample
    return {"loss_diffusion": F.mse_loss(pred.float(), target.float())}


def _trainable(components: models.Zero123Components, cfg: FinetuneConfig) -> dict[str, torch.nn.Module]:
    trained = {"unet": components.unet, "cc_projection": components.cc_projection}
    if cfg.train_image_encoder:
        trained["image_encoder"] = components.image_encoder
    return trained


def _ema_modules(components: models.Zero123Components, cfg: FinetuneConfig) -> list[torch.nn.Module]:
    # The paper keeps an EMA of the UNet only (cc_projection is not averaged; CLIP is frozen). A
    # jointly trained image encoder co-adapts with the UNet, so it is averaged with it.
    return [components.unet] + ([components.image_encoder] if cfg.train_image_encoder else [])


def fit(
    components: models.Zero123Components,
    views: data.MultiViewSet,
    latents: LatentTable,
    cfg: FinetuneConfig,
    out_dir: str | Path,
    progress: bool = True,
    on_checkpoint: Callable[[models.Zero123Components, int], None] | None = None,
) -> FitResult:
    """Train `components` on pairs from `views` for `cfg.max_steps` steps, resuming from `out_dir`.

    Writes `out_dir/checkpoints/step_NNNNNN.pt` every `cfg.checkpoint_every` steps and, at the end,
    the EMA model as a folder (`out_dir/model/`, `Zero123Components.load_pretrained` reads it) with
    the training config and history in `out_dir/model/training.json`. `on_checkpoint` is called
    with the EMA components after each checkpoint (e.g. to draw validation images).
    """
    out_dir = Path(out_dir)
    if components.scheduler.config.prediction_type != cfg.prediction_type:
        raise ValueError(
            f"`prediction_type` is {cfg.prediction_type!r} but the components' scheduler says "
            f"{components.scheduler.config.prediction_type!r}; build the components with the same one"
        )
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.gradient_accumulation_steps
    )
    data_gen = torch.Generator().manual_seed(cfg.seed + accelerator.process_index)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 10_000 + accelerator.process_index)
    trained = _trainable(components, cfg)
    for name, module in components.modules().items():
        module.requires_grad_(name in trained)
        module.train(name in trained)
    groups = [
        {"params": [p for n, m in trained.items() if n != "cc_projection" for p in m.parameters()],
         "lr": cfg.learning_rate},
        {"params": list(components.cc_projection.parameters()),
         "lr": cfg.learning_rate * cfg.cc_projection_lr_multiplier},
    ]  # fmt: skip
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    lr_schedule = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=cfg.warmup_steps)
    ema = EMAModel([p for m in _ema_modules(components, cfg) for p in m.parameters()], decay=cfg.ema_decay)
    prepared = accelerator.prepare(*trained.values(), optimizer)
    optimizer = prepared[-1]
    history: list[dict[str, float]] = []

    # Resume from the last checkpoint written with the same settings.
    start_step = 0
    last = latest_checkpoint(out_dir)
    if last is not None:
        state = torch.load(last, map_location="cpu", weights_only=False)
        if state["config"] != cfg.to_dict():
            raise ValueError(
                f"checkpoint {last} was written with other settings; delete {out_dir / CHECKPOINT_DIR} to start "
                f"over or restore them. Differences: {_diff(state['config'], cfg.to_dict())}"
            )
        for name, module in trained.items():
            accelerator.unwrap_model(module).load_state_dict(state["modules"][name])
        getattr(optimizer, "optimizer", optimizer).load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        ema.load_state_dict(state["ema"])
        data_gen.set_state(state["data_generator"])
        noise_gen.set_state(state["noise_generator"])
        history, start_step = state["history"], state["step"]
        logger.info("resuming from %s (step %d of %d)", last, start_step, cfg.max_steps)

    bar = tqdm(range(start_step, cfg.max_steps), initial=start_step, total=cfg.max_steps, desc="train",
               unit="step", disable=not progress or not accelerator.is_local_main_process, mininterval=5)  # fmt: skip
    for step in bar:
        tick = time.perf_counter()
        for _ in range(cfg.gradient_accumulation_steps):
            with accelerator.accumulate(*trained.values()):
                batch = data.sample_pairs(views, cfg.batch_size, data_gen)
                loss = training_step(components, batch, latents, cfg, noise_gen)["loss_diffusion"]
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {loss.item()} at step {step + 1}; stopping the run")
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    params = [p for m in trained.values() for p in m.parameters()]
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        lr_schedule.step()
        ema.step([p for m in _ema_modules(components, cfg) for p in m.parameters()])
        row = {"step": step + 1, "loss": loss.item(), "lr": lr_schedule.get_last_lr()[0],
               "seconds": time.perf_counter() - tick}  # fmt: skip
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.max_steps:
            if accelerator.is_main_process:
                _save_checkpoint(out_dir, step + 1, cfg, trained, optimizer, lr_schedule, ema, data_gen, noise_gen,
                                 history, accelerator)  # fmt: skip
            if on_checkpoint is not None:
                with _ema_weights(ema, _ema_modules(components, cfg)):
                    on_checkpoint(components, step + 1)

    # The final model: EMA weights in place, saved as a folder with the training record.
    ema.copy_to([p for m in _ema_modules(components, cfg) for p in m.parameters()])
    for module in components.modules().values():
        module.requires_grad_(False)
        module.eval()
    if accelerator.is_main_process:
        components.save_pretrained(out_dir / MODEL_DIR)
        files.write_json_atomic(out_dir / MODEL_DIR / "training.json", {"config": cfg.to_dict(), "history": history})
    return FitResult(components, history, start_step)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest `step_NNNNNN.pt` in `out_dir/checkpoints/`, if any."""
    found = sorted((Path(out_dir) / CHECKPOINT_DIR).glob("step_*.pt"))
    return found[-1] if found else None


def _save_checkpoint(out_dir, step, cfg, trained, optimizer, lr_schedule, ema, data_gen, noise_gen, history, acc):
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the optimiser
    state = {
        "step": step,
        "config": cfg.to_dict(),
        "modules": {name: acc.unwrap_model(m).state_dict() for name, m in trained.items()},
        "optimizer": inner.state_dict(),
        "lr_schedule": lr_schedule.state_dict(),
        "ema": ema.state_dict(),
        "data_generator": data_gen.get_state(),
        "noise_generator": noise_gen.get_state(),
        "history": history,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    folder = Path(out_dir) / CHECKPOINT_DIR
    files.write_bytes_atomic(folder / f"step_{step:06d}.pt", buffer.getvalue())
    for old in sorted(folder.glob("step_*.pt"))[:-KEEP_CHECKPOINTS]:
        old.unlink()


@contextlib.contextmanager
def _ema_weights(ema: EMAModel, modules: list[torch.nn.Module]) -> Iterator[None]:
    """EMA weights in the modules inside the block; the trained weights restored on exit."""
    params = [p for m in modules for p in m.parameters()]
    ema.store(params)
    ema.copy_to(params)
    try:
        yield
    finally:
        ema.restore(params)


def _diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


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
    for step in tqdm(range(steps), desc="vae", unit="step", disable=not progress, mininterval=5):
        obj = torch.randint(num_objects, (batch_size,), generator=generator)
        view = torch.randint(num_views, (batch_size,), generator=generator)
        x = data.to_model_images(views.rgba[obj.numpy(), view.numpy()])
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
        history.append({"step": step + 1, "loss_recon": loss_recon.item(), "loss_kl": loss_kl.item()})
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        table = encode_views(vae, views)
        sample_std = torch.sqrt(table.mean.var() + (table.std**2).mean()).item()
    vae.register_to_config(scaling_factor=1.0 / sample_std)
    return history


def save_history(path: str | Path, history: list[dict[str, float]]) -> None:
    """Write a loss history as JSON (plot data for `dvc plots`)."""
    files.write_bytes_atomic(path, json.dumps(history).encode())
