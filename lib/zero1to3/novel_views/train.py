"""Stage 02: train the view-conditioned latent diffusion model (and, at tiny scale, its VAE first).

The loop is the paper's (docs/conventions.md#training-objective-and-recipe): pairs of views of one object; the target
view's latent is
noised and denoised by the UNet, conditioned on the input view (its latent concatenated, its CLIP
embedding joined with the relative pose through `cc_projection`); condition dropout for
classifier-free guidance; AdamW with `cc_projection` at 10x the learning rate; linear warm-up; EMA
weights for sampling. accelerate runs it: one process on the CPU here, `accelerate launch` across
GPUs (mixed precision, gradient accumulation) elsewhere, with no code change.

Runs are resumable: every `checkpoint_every` steps the full state (weights, optimiser, EMA,
learning-rate schedule, the generators of data and noise, the loss history) is written atomically;
a rerun with the same settings continues from the last checkpoint and ends exactly where an
uninterrupted run ends. A checkpoint is resumed only if it was made from the same inputs: its
settings and the fingerprint of what the run consumed (the starting weights of every component,
the VAE included; the training views and cameras; their latents) must equal this run's; otherwise
the run says why in one line and starts afresh. Checkpoints load with `weights_only=True` (plain
tensors and containers; a pickle that would run code is refused). A non-finite loss stops the run
and names the step.

What the stage shows about the run (the loss probe, previews, tables, metrics) is in `diagnostics`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch import Tensor

from zero1to3.config import FinetuneConfig, TinyModelSizes
from zero1to3.core import checkpoints, files, fingerprint, workers
from zero1to3.core import progress as zprogress
from zero1to3.dataset import data
from zero1to3.model import builders, conditioning, encoders, schedulers
from zero1to3.model.autoencoder import LatentTable
from zero1to3.model.components import ACCEPTED_CLASS_NAMES, Zero123Components, from_sd_image_variations

logger = logging.getLogger(__name__)


CHECKPOINT_DIR = "checkpoints"


STEP_PREFIX, CALLBACK_PREFIX = "step", "callback"  # checkpoints/step_NNNNNN.pt and the callback's state beside it


MODEL_DIR = "model"


TRAINING_RECORD = "training.json"  # in the model folder: config, inputs fingerprint, camera range, history


RESUMABLE_CHANGES = ("max_steps", "checkpoint_every")  # settings a run may resume under with new values


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What `fit` returns."""

    components: Zero123Components
    """The trained components, EMA weights in place (what sampling uses)."""
    history: list[dict[str, float]]
    """One row per optimiser step: step, loss, learning rate, seconds."""
    resumed_from_step: int
    """0 for a fresh run, else the checkpoint step the run continued from."""


def training_step(
    components: Zero123Components,
    batch: data.PairBatch,
    latents: LatentTable,
    cfg: FinetuneConfig,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """The paper's loss on one batch of pairs (docs/conventions.md#training-objective-and-recipe); returns
    `{"loss_diffusion": ...}`.

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
        clip = encoders.encode_clip_image(
            components.image_encoder, components.feature_extractor, batch.input_images.to(device)
        )
    drop_clip, drop_concat = conditioning.sample_dropout_masks(bsz, generator, cfg.cfg_dropout_prob)
    cond = conditioning.build_conditioning(
        clip,
        batch.pose.to(device),
        concat,
        components.cc_projection,
        drop_clip.to(device),
        drop_concat.to(device),
        use_pose=cfg.use_pose,
    )
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
        raise ValueError(f"`prediction_type` must be one of {schedulers.PREDICTION_TYPES}, got {cfg.prediction_type!r}")
    # 4. Denoise and compare: mean over (C, h, w) and batch of the squared error
    # (docs/conventions.md#training-objective-and-recipe).
    unet_in = conditioning.unet_input(z_t, cond.concat_latents)  # (B, 2C, h, w)
    pred = components.unet(unet_in, timesteps, encoder_hidden_states=cond.encoder_hidden_states).sample
    return {"loss_diffusion": F.mse_loss(pred.float(), target.float())}


def build_components(
    scale: str, tiny_sizes: dict[str, Any], weights_path: str, prediction_type: str, seed: int
) -> Zero123Components:
    """The stage's starting point: `tiny` components from scratch, or `paper` components from a local path.

    `paper` reads, by what `weights_path` holds: a released zero123 `.ckpt` (converted), a
    Zero-1-to-3 diffusers folder (`model_index.json` naming it), or Stable Diffusion image-variations
    in diffusers layout (turned into Zero-1-to-3 as the paper's starting point). Nothing is downloaded.
    """
    if scale == "tiny":
        return builders.build_tiny_components(TinyModelSizes.from_dict(tiny_sizes, "tiny_model"), seed, prediction_type)
    if scale != "paper":
        raise ValueError(f"`scale` must be 'tiny' or 'paper', got {scale!r}")
    path = Path(weights_path)
    if not weights_path or not path.exists():
        raise FileNotFoundError(
            f"scale 'paper' needs `weights_path`: a local folder with sd-image-variations in diffusers layout "
            f"(unet/, vae/, image_encoder/, ...), a Zero-1-to-3 diffusers folder, or a zero123 .ckpt file; "
            f"got {weights_path!r}, which does not exist. Place the weights there and set `weights_path`."
        )
    if path.suffix == ".ckpt":
        from zero1to3.model import convert  # paper scale only; keeps the converter out of the tiny study's stage deps

        return convert.load_zero123_ckpt(path, prediction_type=prediction_type)
    index = path / "model_index.json"
    if index.is_file() and json.loads(index.read_text()).get("_class_name") in ACCEPTED_CLASS_NAMES:
        return Zero123Components.load_pretrained(path)
    return from_sd_image_variations(path, torch.Generator().manual_seed(seed), prediction_type)


def _trainable(components: Zero123Components, cfg: FinetuneConfig) -> dict[str, torch.nn.Module]:
    trained = {"unet": components.unet, "cc_projection": components.cc_projection}
    if cfg.train_image_encoder:
        trained["image_encoder"] = components.image_encoder
    return trained


def _ema_modules(components: Zero123Components, cfg: FinetuneConfig) -> list[torch.nn.Module]:
    # The paper keeps an EMA of the UNet only (cc_projection is not averaged; CLIP is frozen). A
    # jointly trained image encoder co-adapts with the UNet, so it is averaged with it.
    return [components.unet] + ([components.image_encoder] if cfg.train_image_encoder else [])


def fit(
    components: Zero123Components,
    views: data.MultiViewSet,
    latents: LatentTable,
    cfg: FinetuneConfig,
    out_dir: str | Path,
    progress: bool = True,
    on_checkpoint: Callable[[Zero123Components, int], None] | None = None,
) -> FitResult:
    """Train `components` on pairs from `views` for `cfg.max_steps` steps, resuming from `out_dir`.

    Writes `out_dir/checkpoints/step_NNNNNN.pt` every `cfg.checkpoint_every` steps and, at the end,
    the EMA model as a folder (`out_dir/model/`, `Zero123Components.load_pretrained` reads it) with
    the training config and history in `out_dir/model/training.json`. `on_checkpoint` is called
    with the EMA components after each checkpoint (e.g. to draw validation images); if it has
    `state_dict`/`load_state_dict`, its state is saved beside the checkpoint and restored on resume, so
    what it gathered before a kill is not lost.
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
    components.to(accelerator.device)  # the frozen ones too (a frozen CLIP encodes every batch), not only prepared
    for name, module in components.modules().items():
        module.requires_grad_(name in trained)
        module.train(name in trained)
    groups = [
        {
            "params": [p for n, m in trained.items() if n != "cc_projection" for p in m.parameters()],
            "lr": cfg.learning_rate,
        },
        {
            "params": list(components.cc_projection.parameters()),
            "lr": cfg.learning_rate * cfg.cc_projection_lr_multiplier,
        },
    ]
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    lr_schedule = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=cfg.warmup_steps)
    ema = EMAModel([p for m in _ema_modules(components, cfg) for p in m.parameters()], decay=cfg.ema_decay)
    prepared = accelerator.prepare(*trained.values(), optimizer)
    optimizer = prepared[-1]
    history: list[dict[str, float]] = []

    # Resume from the last checkpoint made with the same settings from the same inputs, else start afresh.
    inputs = inputs_fingerprint(components, views, latents)
    start_step = 0
    state = _resumable_state(out_dir, cfg, inputs)
    if state is not None:
        for name, module in trained.items():
            accelerator.unwrap_model(module).load_state_dict(state["modules"][name])
        getattr(optimizer, "optimizer", optimizer).load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        ema.load_state_dict(state["ema"])
        data_gen.set_state(state["data_generator"])
        noise_gen.set_state(state["noise_generator"])
        history, start_step = state["history"], state["step"]
        logger.info("resuming from %s (step %d of %d)", latest_checkpoint(out_dir), start_step, cfg.max_steps)
        if on_checkpoint is not None:
            _resume_callback(on_checkpoint, out_dir, start_step, components, cfg, ema, accelerator)

    bar = zprogress.bar(
        range(start_step, cfg.max_steps),
        initial=start_step,
        total=cfg.max_steps,
        desc="train",
        unit="step",
        disable=not progress or not accelerator.is_local_main_process,
        mininterval=5,
    )
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
        row = {
            "step": step + 1,
            "loss": loss.item(),
            "lr": lr_schedule.get_last_lr()[0],
            "seconds": time.perf_counter() - tick,
        }
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)  # printed at the bar's own interval
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.max_steps:
            if accelerator.is_main_process:
                _save_checkpoint(
                    out_dir,
                    step + 1,
                    cfg,
                    inputs,
                    trained,
                    optimizer,
                    lr_schedule,
                    ema,
                    data_gen,
                    noise_gen,
                    history,
                    accelerator,
                )
            if on_checkpoint is not None:
                with _ema_weights(ema, _ema_modules(components, cfg)):
                    on_checkpoint(components, step + 1)
                if accelerator.is_main_process and hasattr(on_checkpoint, "state_dict"):
                    _save_callback_state(out_dir, step + 1, on_checkpoint.state_dict())
            row["seconds"] = time.perf_counter() - tick  # the step's share of the run: checkpoint and callback too

    # The final model: EMA weights in place, saved as a folder with the training record.
    ema.copy_to([p for m in _ema_modules(components, cfg) for p in m.parameters()])
    for module in components.eval().modules().values():
        module.requires_grad_(False)
    if accelerator.is_main_process:
        radii = np.linalg.norm(views.camera_centers, axis=-1)
        record = {
            "config": cfg.to_dict(),
            "inputs_fingerprint": inputs,
            "camera_radius": [float(radii.min()), float(radii.max())],  # the pose offsets the model has seen
            "history": history,
        }
        saved = _same_run_saved(out_dir, record) if start_step == cfg.max_steps else None
        if saved is not None:  # resumed from the last checkpoint: the folder already holds this model
            history = saved["history"]
            logger.info("%s already holds this run's model: left as it is", out_dir / MODEL_DIR)
        else:
            with files.atomic_folder(out_dir / MODEL_DIR) as folder:  # the folder is replaced whole, never mixed
                components.save_pretrained(folder)
                files.write_json_atomic(folder / TRAINING_RECORD, record)
    return FitResult(components, history, start_step)


def _same_run_saved(out_dir: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """The model folder's record if that folder was written by this very run, else None.

    "This very run": the same config, inputs, camera range and loss at every step; only the step timings may
    differ, and they do when a finished run is resumed from its last checkpoint (saved before its step's timing
    was final). Leaving that folder untouched keeps its bytes, so DVC sees an unchanged model and stages 03-05
    do not rerun after a code change that retrains nothing.
    """
    path = out_dir / MODEL_DIR / TRAINING_RECORD
    if not path.is_file():
        return None
    saved = files.read_json(path)

    def untimed(rec: dict[str, Any]) -> dict[str, Any]:
        return rec | {"history": [{k: v for k, v in row.items() if k != "seconds"} for row in rec.get("history", [])]}

    return saved if untimed(saved) == untimed(json.loads(json.dumps(record))) else None


@dataclasses.dataclass
class FitJob:
    """The arguments of one `fit` call, for `fit_side_by_side`."""

    components: Zero123Components
    views: data.MultiViewSet
    latents: LatentTable
    cfg: FinetuneConfig
    out_dir: Path
    on_checkpoint: Callable[[Zero123Components, int], None] | None = None


def fit_side_by_side(jobs: dict[str, FitJob], num_workers: int, progress: bool = True) -> dict[str, FitResult]:
    """`fit` every job (e.g. the model and its no-pose baseline), `num_workers` at a time in processes of their own.

    With `num_workers` 1 the jobs run one after the other in this process, each as `fit` with all of torch's threads.
    With more, each job trains in a spawned process with `cores // num_workers` threads: the tiny networks are too
    small to keep two threads busy, so two runs side by side on two cores, a thread each, finish sooner than one after
    the other (README, Speed). A job's `on_checkpoint` runs in its worker, and its state (`state_dict`) is loaded back
    into the caller's callback at the end. Workers die with this process (`workers.die_with_parent`); every run
    checkpoints and resumes as `fit` does, so a killed stage continues where each run was. Floating-point sums run
    in another order with another thread count: results are deterministic for a given `num_workers`, not across them.

    Raises:
        Whatever a job raised (the other jobs are stopped; their checkpoints stay).
    """
    if num_workers < 1:
        raise ValueError(f"`num_workers` must be >= 1, got {num_workers}")
    if num_workers == 1 or len(jobs) == 1:
        return {
            name: fit(j.components, j.views, j.latents, j.cfg, j.out_dir, progress, j.on_checkpoint)
            for name, j in jobs.items()
        }
    results = {}
    with workers.process_pool(min(num_workers, len(jobs))) as pool:
        futures = {name: pool.submit(_fit_job, job, progress) for name, job in jobs.items()}
        for name, future in futures.items():
            results[name], callback = future.result()
            if hasattr(jobs[name].on_checkpoint, "load_state_dict"):
                jobs[name].on_checkpoint.load_state_dict(callback.state_dict())
    return results


def _fit_job(job: FitJob, progress: bool) -> tuple[FitResult, Any]:
    result = fit(job.components, job.views, job.latents, job.cfg, job.out_dir, progress, job.on_checkpoint)
    return result, job.on_checkpoint


def inputs_fingerprint(components: Zero123Components, views: data.MultiViewSet, latents: LatentTable) -> str:
    """Fingerprint of what a run consumes: starting weights and configs of every component, views, latents."""
    hasher = fingerprint.Hasher().value("components", fingerprint.components_fingerprint(components))
    hasher.value("object_ids", views.object_ids).array("rgba", views.rgba).array("centers", views.camera_centers)
    return hasher.array("latent_mean", latents.mean).array("latent_std", latents.std).hexdigest()


def _resumable_state(out_dir: Path, cfg: FinetuneConfig, inputs: str) -> dict[str, Any] | None:
    """The newest checkpoint's state if this run may continue it; else `None`, stale checkpoints removed.

    A checkpoint is continued only if its inputs fingerprint and its settings equal this run's (only the
    run's length and checkpoint spacing may change: they leave the trajectory as it is, the learning
    rate being constant after warm-up, so a finished run can be extended) and it is not past `max_steps`.
    """
    state, same_inputs = fingerprint.load_saved(
        latest_checkpoint(out_dir), checkpoints.load, {"inputs_fingerprint": inputs}
    )
    if state is None:
        return None
    differences = fingerprint.differences(state["config"], cfg.to_dict(), ignore=RESUMABLE_CHANGES)
    reason = None
    if not same_inputs:
        reason = (
            f"made from other inputs (weights, VAE, views or latents; fingerprint "
            f"{fingerprint.short(str(state.get('inputs_fingerprint')))} vs {fingerprint.short(inputs)} now)"
        )
    elif differences:
        reason = f"written with other settings (checkpoint, now): {differences}"
    elif state["step"] > cfg.max_steps:
        reason = f"at step {state['step']}, past max_steps={cfg.max_steps}"
    if reason is None:
        return state
    logger.warning("checkpoints in %s were %s: starting afresh", out_dir / CHECKPOINT_DIR, reason)
    for prefix in (STEP_PREFIX, CALLBACK_PREFIX):
        checkpoints.remove(out_dir / CHECKPOINT_DIR, prefix)
    return None


def _save_callback_state(out_dir: Path, step: int, state: dict[str, Any]) -> None:
    """The `on_checkpoint` callback's state beside the checkpoint of `step` (what a resumed run restores)."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    checkpoints.write(checkpoints.path_for(folder, CALLBACK_PREFIX, step), state)
    kept = {p.name.removeprefix(f"{STEP_PREFIX}_") for p in folder.glob(f"{STEP_PREFIX}_*.pt")}
    for old in folder.glob(f"{CALLBACK_PREFIX}_*.pt"):  # only beside the checkpoints still kept
        if old.name.removeprefix(f"{CALLBACK_PREFIX}_") not in kept:
            old.unlink()


def _load_callback_state(out_dir: Path, step: int) -> tuple[int, dict[str, Any]] | None:
    """`(its step, state)` of the callback's state saved with the checkpoint of `step`, else of the newest one saved
    before it; None if there is none."""
    saved = {
        int(p.stem.removeprefix(f"{CALLBACK_PREFIX}_")): p
        for p in (Path(out_dir) / CHECKPOINT_DIR).glob(f"{CALLBACK_PREFIX}_*.pt")
    }
    earlier = [s for s in saved if s <= step]
    return (max(earlier), checkpoints.load(saved[max(earlier)])) if earlier else None


def _resume_callback(
    on_checkpoint: Callable[[Zero123Components, int], None],
    out_dir: Path,
    step: int,
    components: Zero123Components,
    cfg: FinetuneConfig,
    ema: EMAModel,
    accelerator: Accelerator,
) -> None:
    """Restore the callback as it was after the checkpoint of `step` (e.g. the previews drawn before a kill).

    A kill between the checkpoint and its callback leaves the callback's state of an earlier checkpoint only: that
    one is restored and the callback runs again for `step`, so the resumed run ends as an uninterrupted one.
    """
    if not hasattr(on_checkpoint, "state_dict"):
        return
    saved = _load_callback_state(out_dir, step)
    if saved is not None and hasattr(on_checkpoint, "load_state_dict"):
        on_checkpoint.load_state_dict(saved[1])
    if saved is None or saved[0] < step:
        logger.info("running the checkpoint callback of step %d again: the run stopped before it had finished", step)
        with _ema_weights(ema, _ema_modules(components, cfg)):
            on_checkpoint(components, step)
        if accelerator.is_main_process:
            _save_callback_state(out_dir, step, on_checkpoint.state_dict())


def run_seconds(history: list[dict[str, float]]) -> float:
    """Wall time of a whole run from its history (steps, checkpoints and callbacks; a resumed run included)."""
    return float(sum(row["seconds"] for row in history))


def reuse_line(models_dir: str | Path, vae_reused: bool, runs: dict[str, FitResult]) -> str:
    """`progress.reuse_line` of the stage: the cached VAE (`autoencoder.fit_vae_cached`) and each `fit` run
    (`{name: result}`) that continued from a checkpoint, finished or not."""
    parts = ["the VAE"] if vae_reused else []
    for name, run in runs.items():
        steps = len(run.history)  # every step of the run, the resumed ones included
        if run.resumed_from_step == steps > 0:
            parts.append(f"{name} (finished run, {steps} steps)")
        elif run.resumed_from_step:
            parts.append(f"{name} (resumed at step {run.resumed_from_step} of {steps})")
    return zprogress.reuse_line(parts, f"`{Path(models_dir).as_posix()}/`")


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest `step_NNNNNN.pt` in `out_dir/checkpoints/`, if any."""
    return checkpoints.latest(Path(out_dir) / CHECKPOINT_DIR, STEP_PREFIX)


def _save_checkpoint(
    out_dir, step, cfg, inputs, trained, optimizer, lr_schedule, ema, data_gen, noise_gen, history, acc
):
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the optimiser
    state = {
        "step": step,
        "config": cfg.to_dict(),
        "inputs_fingerprint": inputs,
        "modules": {name: acc.unwrap_model(m).state_dict() for name, m in trained.items()},
        "optimizer": inner.state_dict(),
        "lr_schedule": lr_schedule.state_dict(),
        "ema": ema.state_dict(),
        "data_generator": data_gen.get_state(),
        "noise_generator": noise_gen.get_state(),
        "history": history,
    }
    checkpoints.save(Path(out_dir) / CHECKPOINT_DIR, STEP_PREFIX, step, state)


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


def save_history(path: str | Path, history: list[dict[str, float]]) -> None:
    """Write a loss history as JSON (plot data for `dvc plots`)."""
    files.write_bytes_atomic(path, json.dumps(history).encode())
