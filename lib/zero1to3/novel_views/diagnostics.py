"""What stage 02 shows about training: the held-out loss probe, previews drawn at every checkpoint, the parameter
table, loss histories, and the stage's metrics.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from zero1to3.config import FinetuneConfig
from zero1to3.dataset import data
from zero1to3.model.autoencoder import LatentTable
from zero1to3.model.components import Zero123Components
from zero1to3.novel_views import sample, train

logger = logging.getLogger(__name__)


@torch.no_grad()
def probe_loss(
    components: Zero123Components,
    views: data.MultiViewSet,
    latents: LatentTable,
    cfg: FinetuneConfig,
    num_pairs: int,
    seed: int,
) -> dict[str, float]:
    """Held-out diffusion loss with the true, shuffled and zero pose, at fixed pairs, timesteps and noise.

    A steadier signal of whether a model uses the pose than sampled images after a short run (see
    `shared/reference/learning-spike.md`): a model that reads the pose scores lower with the true
    pose than with a shuffled one. No condition dropout; every variant sees identical noise.
    """
    probe_cfg = dataclasses.replace(cfg, cfg_dropout_prob=0.0)
    components.eval()
    batch = data.sample_pairs(views, num_pairs, torch.Generator().manual_seed(seed))
    shuffle = torch.randperm(num_pairs, generator=torch.Generator().manual_seed(seed + 1))
    variants = {
        "true_pose": batch,
        "shuffled_pose": dataclasses.replace(batch, pose=batch.pose[shuffle]),
        "zero_pose": dataclasses.replace(batch, pose=torch.zeros_like(batch.pose)),
    }
    out = {}
    for name, pairs in variants.items():
        generator = torch.Generator().manual_seed(seed + 2)  # the same timesteps and noise for every variant
        out[f"heldout_loss_{name}"] = train.training_step(components, pairs, latents, probe_cfg, generator)[
            "loss_diffusion"
        ].item()
    return out


def parameter_table(components: Zero123Components) -> str:
    """Markdown table of parameter counts per component (and which are trained at this scale)."""
    counts = components.summary()["num_parameters"]
    rows = ["| component | parameters |", "| --- | ---: |"]
    rows += [f"| {name} | {count / 1e6:.2f} M |" for name, count in counts.items()]
    rows.append(f"| **total** | **{sum(counts.values()) / 1e6:.2f} M** |")
    return "\n".join(rows)


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

    def __call__(self, components: Zero123Components, step: int) -> None:
        was_training = {name: m.training for name, m in components.modules().items()}
        components.eval()
        out = sample.sample_novel_views(
            components,
            self.input_images,
            self.poses,
            self.num_steps,
            self.guidance_scale,
            eta=1.0,
            generator=torch.Generator().manual_seed(self.seed),
            use_pose=self.use_pose,
        )
        self.images[step] = out.images.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
        for name, module in components.modules().items():
            module.train(was_training[name])

    def state_dict(self) -> dict[str, Any]:
        """The images drawn so far (`train.fit` stores them beside each checkpoint, so a resumed run keeps them)."""
        return {"images": {step: torch.from_numpy(images) for step, images in self.images.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the images of a killed run's checkpoints."""
        self.images = {int(step): images.numpy() for step, images in state["images"].items()}


def preview_pairs(views: data.MultiViewSet, num_pairs: int, seed: int) -> data.PairBatch:
    """Fixed held-out pairs for the checkpoint previews: one from each of the first objects (cycling if few)."""
    objects = torch.arange(num_pairs) % len(views.object_ids)
    return data.sample_pairs(views, num_pairs, torch.Generator().manual_seed(seed), objects=objects)


def preview_rows(
    pairs: data.PairBatch, with_pose: dict[int, np.ndarray], no_pose: dict[int, np.ndarray]
) -> dict[str, np.ndarray]:
    """Figure rows: input, truth, the model at every checkpoint, the baseline at its last checkpoint."""
    to_hwc = lambda t: ((t + 1.0) / 2.0).permute(0, 2, 3, 1).numpy()  # noqa: E731
    rows = {"input": to_hwc(pairs.input_images), "truth": to_hwc(pairs.target_images)}
    rows |= {f"pose, step {step}": images for step, images in sorted(with_pose.items())}
    if no_pose:
        last = max(no_pose)
        rows[f"no pose, step {last}"] = no_pose[last]
    return rows


def merge_histories(histories: dict[str, list[dict[str, float]]]) -> list[dict[str, float]]:
    """One row per step with each run's loss as a column (plot data for `dvc plots`)."""
    by_step: dict[int, dict[str, float]] = {}
    for name, history in histories.items():
        for row in history:
            by_step.setdefault(int(row["step"]), {"step": int(row["step"])})[name.replace(" ", "_")] = row["loss"]
    return [by_step[k] for k in sorted(by_step)]


def probe_table(probe: dict[str, dict[str, float]]) -> str:
    """Markdown table of `probe_loss` results per model."""
    columns = ["true_pose", "shuffled_pose", "zero_pose"]
    rows = ["| model | true pose | shuffled pose | zero pose |", "| --- | ---: | ---: | ---: |"]
    for name, values in probe.items():
        rows.append(f"| {name} | " + " | ".join(f"{values[f'heldout_loss_{c}']:.5f}" for c in columns) + " |")
    return "\n".join(rows)


def finetune_metrics(
    result: train.FitResult,
    baseline: train.FitResult,
    probe: dict[str, dict[str, float]],
    seconds: dict[str, float],
    vae_history: list[dict[str, float]],
    vae_scores: dict[str, float] | None = None,
    tail: int = 100,
) -> dict[str, float]:
    """Flat metrics of the stage: final losses (mean of the last `tail` steps), steps, probe, minutes, and the
    autoencoder's held-out round trip (`autoencoder.colour_metrics`) as `vae_heldout_<name>`."""
    final = lambda h: float(np.mean([row["loss"] for row in h[-tail:]]))  # noqa: E731
    metrics = {
        "steps": len(result.history),
        "final_loss_pose": final(result.history),
        "final_loss_no_pose": final(baseline.history),
        "seconds_per_step_pose": float(np.mean([row["seconds"] for row in result.history])),
    }
    for model, values in probe.items():
        for key, value in values.items():
            metrics[f"{key}_{model.replace(' ', '_')}"] = value
    if vae_history:
        metrics["vae_final_recon_mse"] = float(np.mean([row["loss_recon"] for row in vae_history[-20:]]))
    metrics |= {f"vae_heldout_{name}": value for name, value in (vae_scores or {}).items() if np.isfinite(value)}
    metrics |= {
        f"minutes_{name.replace(' ', '_').replace('(', '').replace(')', '')}": s / 60 for name, s in seconds.items()
    }
    return metrics
