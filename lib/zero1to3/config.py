"""Stage configurations: frozen dataclasses, one per stage, with a docstring per field.

Values live in `params.yaml` (and, identically, in each notebook's `parameters` cell); these
classes only name and check them. `from_dict` rejects unknown keys, naming the valid ones, so a
typo in `params.yaml` is an error rather than a silently ignored knob.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

_C = TypeVar("_C", bound="_FromDict")


class _FromDict:
    @classmethod
    def from_dict(cls: type[_C], values: dict[str, Any]) -> _C:
        """Build the config from a mapping; unknown or missing keys are errors that list the valid ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid keys: {names}")
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError(f"missing {cls.__name__} keys {missing}; all of {names} are required")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serialisable)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RenderConfig(_FromDict):
    """Stage 01: render the multi-view dataset."""

    seed: int
    """Seeds the split and every object's cameras and lighting."""
    num_train: int
    """Procedural objects in the training split."""
    num_val: int
    """Procedural objects in the validation split."""
    num_test: int
    """Procedural objects in the test split (held out)."""
    zero_shot: list[str]
    """Named everyday objects rendered for zero-shot evaluation (keys of `objects.ZERO_SHOT_OBJECTS`)."""
    num_views: int
    """Views rendered per object (the paper renders 12)."""
    resolution_px: int
    """Square image size in pixels (the paper renders 512 and trains at 256)."""
    samples_per_pixel: int
    """Cycles path-tracing samples per pixel (the paper uses 128, denoised)."""
    radius_min: float
    """Smallest camera distance to the object centre (paper: 1.5)."""
    radius_max: float
    """Largest camera distance (paper: 2.2)."""
    polar_min_deg: float
    """Camera polar angles are kept in [polar_min_deg, polar_max_deg]; 0-180 is the paper's whole sphere."""
    polar_max_deg: float
    """Upper end of the polar band, in degrees from +Z."""
    num_workers: int
    """Render processes (each runs Blender); the CPU's cores are shared between them."""
    data_dir: str
    """Where renders (`renders/<object>/`) and the split manifest (`manifest.json`) go."""
    results_dir: str
    """Where figures (`render/`) and metrics (`metrics/render.json`) go."""

    def __post_init__(self) -> None:
        if self.num_views < 1:
            raise ValueError(f"`num_views` must be >= 1, got {self.num_views}")
        if self.resolution_px < 8:
            raise ValueError(f"`resolution_px` must be >= 8, got {self.resolution_px}")
        if self.samples_per_pixel < 1:
            raise ValueError(f"`samples_per_pixel` must be >= 1, got {self.samples_per_pixel}")
        if self.num_workers < 1:
            raise ValueError(f"`num_workers` must be >= 1, got {self.num_workers}")

    def render_settings(self) -> dict[str, Any]:
        """The fields that change an object's images: a finished object is reused only if they match."""
        keys = ("seed", "num_views", "resolution_px", "samples_per_pixel", "radius_min", "radius_max")
        return {k: getattr(self, k) for k in keys} | {"polar_deg": [self.polar_min_deg, self.polar_max_deg]}


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(_FromDict):
    """Stage 02: train (tiny scale) or fine-tune (paper scale) the view-conditioned model."""

    seed: int
    """Seeds model init, pair sampling, noise, timesteps and condition dropout."""
    use_pose: bool
    """False trains the no-pose baseline: the same model and recipe with the pose input always zero."""
    prediction_type: str
    """What the UNet predicts: `epsilon` (the paper), `v_prediction` or `sample`."""
    batch_size: int
    """Pairs per optimiser step (per process)."""
    gradient_accumulation_steps: int
    """Micro-batches accumulated into one optimiser step."""
    max_steps: int
    """Optimiser steps; the run ends there (an interrupted run resumes and ends at the same step)."""
    learning_rate: float
    """AdamW learning rate of the UNet (and of the image encoder when it is trained)."""
    cc_projection_lr_multiplier: float
    """`cc_projection` learns this many times faster (the paper: 10)."""
    weight_decay: float
    """AdamW weight decay (the paper: 0.01)."""
    warmup_steps: int
    """Linear learning-rate warm-up from 0 (the paper: 100)."""
    max_grad_norm: float
    """Gradient clipping threshold (global L2 norm)."""
    ema_decay: float
    """Decay of the EMA weights used for sampling (the paper: 0.9999, far too slow for short runs)."""
    cfg_dropout_prob: float
    """Probability of each of the paper's three condition-dropout cases (the paper: 0.05)."""
    train_image_encoder: bool
    """Train the CLIP image encoder jointly (tiny scale, from scratch) or keep it frozen (the paper)."""
    checkpoint_every: int
    """Steps between resumable checkpoints."""
    mixed_precision: str
    """accelerate mixed precision: `no` on CPU, `fp16`/`bf16` on GPUs."""
