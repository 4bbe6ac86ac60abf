"""Benchmark stage 02's training loop at the default `tiny` config against a bare training step.

Ours: `train.fit` (pair sampling, latent lookup, condition dropout, accelerate, clipping, EMA,
history) on a synthetic multi-view set with the default sizes and batch. Bare: the same networks'
forward/backward/AdamW on random tensors of the same shapes, nothing else. Bar: ours reaches at
least 90% of the bare step's samples/s; peak RSS under 4 GiB.

    python benchmarks/bench_train.py [--steps 60] [--out results/benchmarks/train.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import tempfile

import torch
import torch.nn.functional as F

import _common
from zero1to3 import stages
from zero1to3.config import FinetuneConfig
from zero1to3.core import files
from zero1to3.model import autoencoder, conditioning, encoders
from zero1to3.model.components import Zero123Components
from zero1to3.novel_views import train

WARMUP = 10  # steps left out of the timing (oneDNN kernel selection, allocator warm-up)


def bare_steps(components: Zero123Components, cfg: FinetuneConfig, steps: int) -> list[float]:
    """Forward/backward/AdamW of the same trained networks on random tensors: the floor for our loop."""
    unet, clip, cc = components.unet, components.image_encoder, components.cc_projection
    params = [p for m in (unet, clip, cc) for p in m.parameters()]
    for m in (unet, clip, cc):
        m.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate)
    size, lat = int(clip.config.image_size), int(unet.config.sample_size)
    g = torch.Generator().manual_seed(0)

    def loss_fn() -> torch.Tensor:
        images = torch.rand(cfg.batch_size, 3, size, size, generator=g) * 2 - 1
        z_t, concat = torch.randn(2, cfg.batch_size, 4, lat, lat, generator=g)
        embeds = encoders.encode_clip_image(clip, components.feature_extractor, images)
        context = cc(embeds, torch.randn(cfg.batch_size, 4, generator=g))[:, None]
        t = torch.randint(1000, (cfg.batch_size,), generator=g)
        pred = unet(conditioning.unet_input(z_t, concat), t, encoder_hidden_states=context).sample
        return F.mse_loss(pred, torch.randn_like(pred))

    return _common.optimizer_step_times(optimizer, loss_fn, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="results/benchmarks/train.json")
    args = parser.parse_args()
    group = stages.load_params(args.params)["finetune"]  # the default tiny config
    cfg = FinetuneConfig.from_dict(
        group["training"] | {"seed": 0, "use_pose": True, "max_steps": args.steps, "checkpoint_every": 10**9}
    )
    build = lambda: train.build_components("tiny", group["tiny_model"], "", cfg.prediction_type, 0)  # noqa: E731
    components = build()
    views = _common.synthetic_views(40, 12, int(group["tiny_model"]["image_size"]), 0)
    latents = autoencoder.encode_views(components.vae, views)
    with tempfile.TemporaryDirectory() as tmp:
        result = train.fit(components, views, latents, cfg, tmp, progress=False)
    ours = statistics.median(row["seconds"] for row in result.history[WARMUP:])
    bare = statistics.median(bare_steps(build(), cfg, args.steps)[WARMUP:])
    out = {
        "seconds_per_step": round(ours, 4),
        "samples_per_second": round(cfg.batch_size / ours, 1),
        "bare_seconds_per_step": round(bare, 4),
        "bare_samples_per_second": round(cfg.batch_size / bare, 1),
        "fraction_of_bare": round(bare / ours, 3),
        "bar_fraction_of_bare": 0.9,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "bar_peak_rss_gib": 4.0,
        "batch_size": cfg.batch_size,
        "steps_timed": args.steps - WARMUP,
        "config": dataclasses.asdict(cfg) | {"tiny_model": group["tiny_model"]},
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0],
        },
    }
    print(json.dumps({k: v for k, v in out.items() if k != "config"}, indent=2))
    files.write_json_atomic(args.out, out)


if __name__ == "__main__":
    main()
