"""Benchmark stage 02's VAE training step at the default `tiny` config against a bare step, and CPU settings.

Ours: `autoencoder.fit_vae` (batch sampling, compositing, encode, posterior sample, decode, MSE + KL, AdamW,
history) on synthetic views of the default size, or on stage 01's renders with `--data-dir`. Bare: the same
fresh VAE's forward/backward/AdamW on one fixed batch, nothing else: on random pixels, and on a batch of the
views themselves (white background: a test of whether image content, e.g. denormal numbers, changes the
step's cost). Settings (`--settings`): the bare step on the views with `torch.set_flush_denormal(True)`, in
channels_last memory format, and with oneDNN (mkldnn) off, each on a fresh VAE in the same process, so that
their ratios to the plain bare step are comparable within one run. Every VAE starts from the same seed.

    python benchmarks/bench_vae.py [--steps 30] [--settings] [--data-dir data] [--out results/benchmarks/vae.json]

Run it on an otherwise idle machine: two processes on two cores make every figure meaningless.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import resource
import statistics
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

import _common
from zero1to3 import stages
from zero1to3.config import TinyModelSizes
from zero1to3.core import files
from zero1to3.dataset import data
from zero1to3.model import autoencoder, builders

WARMUP = 5  # steps left out of the timing (oneDNN kernel selection, allocator warm-up)


def render_views(data_dir: str, num_objects: int) -> data.MultiViewSet:
    """The first `num_objects` training objects of stage 01's renders in `data_dir`."""
    ids = data.read_manifest(data_dir)["split"]["train"][:num_objects]
    return data.load_multiview(data_dir, ids)


@contextlib.contextmanager
def setting(name: str) -> Iterator[Callable[[torch.nn.Module, torch.Tensor], tuple[torch.nn.Module, torch.Tensor]]]:
    """Apply one CPU setting for the duration; yields how to prepare the VAE and batch for it."""
    same = lambda vae, x: (vae, x)  # noqa: E731
    if name == "default":
        yield same
    elif name == "flush_denormal":
        torch.set_flush_denormal(True)
        try:
            yield same
        finally:
            torch.set_flush_denormal(False)
    elif name == "channels_last":
        yield lambda vae, x: (
            vae.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    elif name == "mkldnn_off":
        before = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            yield same
        finally:
            torch.backends.mkldnn.enabled = before
    else:
        raise ValueError(f"unknown setting {name!r}")


def bare_steps(
    vae: torch.nn.Module, x: torch.Tensor, kl_weight: float, learning_rate: float, steps: int
) -> list[float]:
    """Forward/backward/AdamW of `vae` on the fixed batch `x`: the floor for `fit_vae`'s step."""
    vae.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=learning_rate)
    g = torch.Generator().manual_seed(0)

    def loss_fn() -> torch.Tensor:
        posterior = vae.encode(x).latent_dist
        loss = F.mse_loss(vae.decode(posterior.sample(generator=g)).sample, x)
        return loss + kl_weight * posterior.kl().mean() / math.prod(posterior.mean.shape[1:])

    return _common.optimizer_step_times(optimizer, loss_fn, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--settings", action="store_true", help="also time flush-denormal, channels_last, no oneDNN")
    parser.add_argument("--data-dir", default="", help="stage 01's data folder: time on its renders")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="results/benchmarks/vae.json")
    args = parser.parse_args()
    if args.steps <= WARMUP:
        parser.error(f"--steps must exceed the {WARMUP} warm-up steps")
    group = stages.load_params(args.params)["finetune"]
    sizes, vae_cfg = TinyModelSizes.from_dict(group["tiny_model"], "tiny_model"), group["vae"]
    new_vae = lambda: builders.build_tiny_components(sizes, 0).vae  # noqa: E731  (the same start every time)
    if args.data_dir:
        views = render_views(args.data_dir, 40)
    else:  # white around a square of random pixels, as renders are white around the object
        views = _common.synthetic_views(40, 12, sizes.image_size, 0, square_alpha=True)
    batch = int(vae_cfg["batch_size"])
    timed = lambda times: statistics.median(times[WARMUP:])  # noqa: E731

    history = autoencoder.fit_vae(
        new_vae(),
        views,
        args.steps,
        batch,
        vae_cfg["learning_rate"],
        vae_cfg["kl_weight"],
        torch.Generator().manual_seed(0),
        progress=False,
    )
    ours = timed([row["seconds"] for row in history])
    flat = views.rgba.reshape(-1, *views.rgba.shape[2:])
    pick = np.random.default_rng(0).choice(len(flat), batch, replace=False)
    batches = {
        "views": data.to_model_images(flat[pick]),
        "random": torch.rand(batch, 3, sizes.image_size, sizes.image_size, generator=torch.Generator().manual_seed(0))
        * 2
        - 1,
    }
    bare = {}
    for name, x in batches.items():
        bare[name] = timed(bare_steps(new_vae(), x, vae_cfg["kl_weight"], vae_cfg["learning_rate"], args.steps))
    settings = {}
    for name in ("flush_denormal", "channels_last", "mkldnn_off") if args.settings else ():
        with setting(name) as prepare:
            vae, x = prepare(new_vae(), batches["views"])
            settings[name] = timed(bare_steps(vae, x, vae_cfg["kl_weight"], vae_cfg["learning_rate"], args.steps))

    out = {
        "seconds_per_step": round(ours, 4),
        "bare_seconds_per_step": round(bare["views"], 4),
        "fraction_of_bare": round(bare["views"] / ours, 3),
        "bare_random_pixels_seconds_per_step": round(bare["random"], 4),
        "settings_seconds_per_step": {k: round(v, 4) for k, v in settings.items()},
        "settings_fraction_of_bare": {k: round(bare["views"] / v, 3) for k, v in settings.items()},
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "views": f"renders in {args.data_dir}" if args.data_dir else "synthetic",
        "batch_size": batch,
        "steps_timed": args.steps - WARMUP,
        "statistic": "median seconds per step",
        "tiny_model": group["tiny_model"],
        "vae": vae_cfg,
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0],
        },
    }
    print({k: v for k, v in out.items() if k not in ("tiny_model", "vae")})
    files.write_json_atomic(args.out, out)


if __name__ == "__main__":
    main()
