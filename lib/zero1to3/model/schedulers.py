"""Noise and DDIM schedules of the paper's latent diffusion: the training scheduler, the DDIM sampler, and the two
timestep schedules (the official code's and diffusers').
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from zero1to3.config import TinyModelSizes  # noqa: F401  (the sizes' config; `models.TinyModelSizes` for callers)

logger = logging.getLogger(__name__)


# Noise schedule of the paper (docs/conventions.md#model-and-noise-schedule): 1000 steps, LDM "linear" = diffusers
# "scaled_linear",
# betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2.
NUM_TRAIN_TIMESTEPS = 1000


BETA_START = 0.00085


BETA_END = 0.012


BETA_SCHEDULE = "scaled_linear"


PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def make_noise_scheduler(prediction_type: str = "epsilon", **overrides: Any) -> DDPMScheduler:
    """Training noise scheduler with the paper's schedule; `prediction_type` is epsilon / v_prediction / sample."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"`prediction_type` must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    config = dict(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        beta_start=BETA_START,
        beta_end=BETA_END,
        beta_schedule=BETA_SCHEDULE,
        prediction_type=prediction_type,
        clip_sample=False,
    )
    return DDPMScheduler(**(config | overrides))


def make_ddim_scheduler(noise_scheduler: DDPMScheduler | DDIMScheduler) -> DDIMScheduler:
    """DDIM sampler on the same betas, set up for parity with the original (docs/conventions.md#ddim-schedule).

    `steps_offset=1` gives the paper's timesteps `1 + k * (1000 // S)`; `set_alpha_to_one=False` makes
    the last step's alpha_bar_prev = alpha_bar_0 (docs/conventions.md#ddim-schedule); no clipping. Which of those
    timesteps are
    visited is the schedule's choice: `make_ddim_sampler`.
    """
    return DDIMScheduler.from_config(noise_scheduler.config, steps_offset=1, clip_sample=False, set_alpha_to_one=False)


# DDIM timestep schedules. Both step from t to t - c with c = T // S (T = 1000 training steps, S = requested
# steps) over timesteps 1 + k c, and treat the initial noise as x at the first one; they differ in which k:
#   "official"  the paper's sampler (ldm/models/diffusion/ddim.py, docs/conventions.md#ddim-schedule): every k with k c
# < T, then the
#               largest dropped (`timesteps[:-1]`), i.e. ceil(T / c) - 1 steps. S = 50: 49 steps from t = 961;
#               S = 10: 9 from 801; S = 75: 76 from 976. Released weights and paper-scale models sample with it.
#   "diffusers" DDIMScheduler's "leading" spacing: k = 0 .. S - 1, exactly S steps. S = 50: 50 from t = 981.
#               The tiny study's models were trained and scored with it, so they keep it (their committed
#               results stay reproducible). The two agree where ceil(T / c) = S + 1 (S = 7, 30, ...).
DDIM_SCHEDULES = ("official", "diffusers")


def ddim_timesteps(num_steps: int, schedule: str, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> list[int]:
    """The timesteps a DDIM run of `num_steps` visits under `schedule` (see `DDIM_SCHEDULES`), first to last."""
    if schedule not in DDIM_SCHEDULES:
        raise ValueError(f"`schedule` must be one of {DDIM_SCHEDULES}, got {schedule!r}")
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"`num_steps` must be in [1, {num_train_timesteps}], got {num_steps}")
    c = num_train_timesteps // num_steps
    count = num_steps if schedule == "diffusers" else -(-num_train_timesteps // c) - 1  # ceil(T / c) - 1
    if count < 1:
        raise ValueError(
            f"the official schedule with `num_steps`={num_steps} visits no timestep (it drops the largest of its "
            "candidates, and 1 step has only one); use num_steps >= 2"
        )
    steps = [1 + k * c for k in reversed(range(count))]
    if steps[0] >= num_train_timesteps:
        raise ValueError(
            f"the {schedule} schedule with `num_steps`={num_steps} would start at t = {steps[0]}, beyond the "
            f"{num_train_timesteps} training timesteps; use fewer steps"
        )
    return steps


def make_ddim_sampler(
    noise_scheduler: DDPMScheduler | DDIMScheduler, num_steps: int, schedule: str, device: str | torch.device
) -> DDIMScheduler:
    """A DDIM scheduler (`make_ddim_scheduler`) set to visit `ddim_timesteps(num_steps, schedule)`.

    `set_timesteps(num_steps)` fixes the stride T // S that `step` uses to find the previous timestep; the
    visited list is then replaced by the schedule's (for "diffusers" it is the same list).
    """
    scheduler = make_ddim_scheduler(noise_scheduler)
    steps = ddim_timesteps(num_steps, schedule, int(scheduler.config.num_train_timesteps))
    scheduler.set_timesteps(num_steps, device=device)
    scheduler.timesteps = torch.tensor(steps, dtype=torch.long, device=device)
    return scheduler
