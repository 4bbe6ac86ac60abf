"""Benchmark stage 04: iterations per second of `system.reconstruct` at the default `SJCConfig`.

Runs the whole default reconstruction once (every iteration: three 16x16 latent renders of the 64^3 field
with backward, one batched CFG UNet call, Adamax) with the tiny model: the trained one in
`models/finetune/pose/model` if present, else random weights of the `finetune.tiny_model` sizes in
params.yaml (the speed is the same). The input is view 0 of `data/renders/duck` if present, else a
synthetic disc. Bar: at least 20 iterations/s on the 2-core machine, i.e. ~40 s per object.

Another process may be using the same cores: the 1-minute load average before and after the run is
recorded beside the figures, and the median per-iteration time is reported beside the wall-clock rate.

    python benchmarks/bench_sjc.py [--iterations N] [--out results/benchmarks/system.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
from pathlib import Path

import numpy as np

from zero1to3 import cameras, stages
from zero1to3.config import TinyModelSizes
from zero1to3.core import files, repro
from zero1to3.dataset import data
from zero1to3.model import builders
from zero1to3.model.components import Zero123Components
from zero1to3.sjc import system

BAR_ITERATIONS_PER_SECOND = 20.0
WARMUP = 10  # iterations left out of the median (oneDNN kernel selection, allocator warm-up)
MODEL_DIR = Path("models/finetune/pose/model")


def load_components(params: Path) -> tuple[Zero123Components, str]:
    if (MODEL_DIR / "model_index.json").is_file():
        return Zero123Components.load_pretrained(MODEL_DIR), str(MODEL_DIR)
    sizes = stages.load_params(params)["finetune"]["tiny_model"]
    sizes = TinyModelSizes.from_dict(sizes)
    return builders.build_tiny_components(sizes, seed=0, prediction_type="v_prediction"), "random tiny_model weights"


def input_view(size: int) -> tuple[np.ndarray, np.ndarray, str]:
    if (data.object_dir("data", "duck") / "meta.json").is_file():
        views = data.load_object("data", "duck")
        if views.rgba.shape[1] == size:
            return views.rgba[0], views.camera_centers[0], "data/renders/duck view 0"
    v, u = np.mgrid[:size, :size]
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[(u - size / 2) ** 2 + (v - size / 2) ** 2 < (size / 3) ** 2] = (200, 40, 40, 255)
    return rgba, cameras.spherical_to_cartesian(np.radians(70.0), np.radians(30.0), 1.8), "synthetic disc"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=None, help="override the default iteration count")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="results/benchmarks/system.json")
    args = parser.parse_args()
    cfg = system.SJCConfig.from_dict(stages.load_params(args.params)["sjc"]["config"])
    if args.iterations is not None:
        cfg = dataclasses.replace(cfg, iterations=args.iterations)
    components, model = load_components(Path(args.params))
    rgba, center, source = input_view(int(components.vae.config.sample_size))
    load_before = os.getloadavg()
    result = system.reconstruct(components, rgba, center, cfg, seed=0, progress=False)
    load_after = os.getloadavg()
    seconds = [row["seconds"] for row in result.history]
    median = statistics.median(seconds[WARMUP:])
    out = {
        "iterations_per_second": round(len(seconds) / sum(seconds), 2),
        "iterations_per_second_median": round(1.0 / median, 2),
        "seconds_per_object": round(result.seconds, 1),
        "bar_iterations_per_second": BAR_ITERATIONS_PER_SECOND,
        "bar_met": len(seconds) / sum(seconds) >= BAR_ITERATIONS_PER_SECOND,
        "iterations": cfg.iterations,
        "model": model,
        "input": source,
        "final_loss_input": round(result.history[-1]["loss_input"], 5),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "config": cfg.to_dict(),
        "environment": repro.environment_info(),
    }
    print(json.dumps({k: v for k, v in out.items() if k not in ("config", "environment")}, indent=2))
    met = "met" if out["bar_met"] else "NOT met"
    print(
        f"bar {BAR_ITERATIONS_PER_SECOND} it/s: {met} ({out['iterations_per_second']} it/s, load {load_before[0]:.2f})"
    )
    files.write_json_atomic(args.out, out)


if __name__ == "__main__":
    main()
