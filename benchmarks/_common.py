"""What several benchmarks share: synthetic multi-view sets, and the timing of bare optimiser steps.

Not a benchmark itself. A benchmark run as `python benchmarks/<name>.py` has this folder first on `sys.path`, so
it imports this file as `import _common`; a test loads it by path (`conftest.load_script`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from zero1to3 import cameras
from zero1to3.dataset import data


def synthetic_views(
    num_objects: int, num_views: int, size: int, seed: int, square_alpha: bool = False
) -> data.MultiViewSet:
    """Random pixels and random cameras (`cameras.sample_camera_positions`), the same for the same `seed`.

    `square_alpha`: the alpha is opaque only inside a centred square of random size per view and transparent
    around it, as renders are (bench_vae: white around the object); else it is random as the colours (bench_train:
    only the shapes and the step's cost matter).
    """
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, size=(num_objects, num_views, size, size, 4), dtype=np.uint8)
    if square_alpha:
        rgba[..., 3] = 0
        half = rng.integers(size // 8, size // 2, size=(num_objects, num_views))
        for (o, v), h in np.ndenumerate(half):
            rgba[o, v, size // 2 - h : size // 2 + h, size // 2 - h : size // 2 + h, 3] = 255
    centers = cameras.sample_camera_positions(num_objects * num_views, rng).reshape(num_objects, num_views, 3)
    return data.MultiViewSet([f"o{i}" for i in range(num_objects)], rgba, centers)


def optimizer_step_times(
    optimizer: torch.optim.Optimizer, loss_fn: Callable[[], torch.Tensor], steps: int
) -> list[float]:
    """Seconds of each of `steps` bare training steps: `loss_fn()` (forward), backward, `optimizer.step()`.

    A benchmark's floor: the same networks' step with nothing of the loop around it (data, logging, EMA).
    """
    times = []
    for _ in range(steps):
        tick = time.perf_counter()
        loss = loss_fn()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - tick)
    return times
