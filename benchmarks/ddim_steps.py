"""What the study's DDIM step count costs in quality: our model's views at two step counts, paired per object.

Needs stage 01's renders and stage 02's model. Draws our model's views of every held-out object of params.yaml's
`sample.sets` as stage 03 does (same input view, targets, seeds, guidance and eta), once at each of the two step
counts, scores them as stage 05 does, and compares the two per object (mean difference and 95% bootstrap CI) for
foreground PSNR, PSNR, SSIM and silhouette IoU. Also the seconds each took. Writes `results/benchmarks/ddim_steps.json`.

    python benchmarks/ddim_steps.py [--steps 25 50] [--out results/benchmarks/ddim_steps.json]

Run it on an otherwise idle machine when its times matter.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from zero1to3 import stages
from zero1to3.core import files, outputs
from zero1to3.dataset import data
from zero1to3.evaluation import bootstrap, evaluate
from zero1to3.novel_views import pipeline

METRICS = ["fg_psnr", "psnr", "ssim", "silhouette_iou"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs=2, default=[25, 50], metavar=("FEWER", "MORE"))
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="results/benchmarks/ddim_steps.json")
    args = parser.parse_args()
    group = stages.load_params(args.params)["sample"]
    model = pipeline.Zero123Pipeline.from_pretrained(Path(group["models_dir"]) / "pose" / "model")
    split = data.read_manifest(group["data_dir"])["split"]
    sampler, out = group["sampler"], {"steps": args.steps, "sampler": group["sampler"], "sets": {}}
    for name in group["sets"]:
        views = outputs.held_out_views(group["data_dir"], split[name], group["input_view"], group["num_targets"])
        scores, seconds = {}, {}
        for steps in args.steps:
            tick = time.perf_counter()
            held_out = (views.input_rgba, views.input_centers, views.target_centers, views.object_ids, steps)
            images = pipeline.generate_views(
                model.components, *held_out, sampler["guidance_scale"], sampler["eta"], group["seed"], progress=False
            )
            seconds[steps] = round(time.perf_counter() - tick, 1)
            truth = (views.target_rgba, views.input_rgba, views.object_ids)
            scores[steps] = evaluate.novel_view_scores({"model": images}, *truth)["model"]
        fewer, more = args.steps
        out["sets"][name] = {
            "objects": len(views.object_ids),
            "seconds": seconds,
            "mean": {m: {s: float(np.mean(scores[s][m])) for s in args.steps} for m in METRICS},
            f"{fewer}_minus_{more}": {
                m: bootstrap.paired_difference(scores[fewer][m], scores[more][m], seed=group["seed"]) for m in METRICS
            },
        }
        row = out["sets"][name][f"{fewer}_minus_{more}"]["fg_psnr"]
        print(
            f"{name}: fg PSNR {out['sets'][name]['mean']['fg_psnr'][fewer]:.2f} dB at {fewer} steps, "
            f"{out['sets'][name]['mean']['fg_psnr'][more]:.2f} at {more}; difference {row['mean_difference']:+.2f} "
            f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]; {seconds}"
        )
    files.write_json_atomic(args.out, out)
    print(json.dumps({k: v for k, v in out.items() if k != "sets"}))


if __name__ == "__main__":
    main()
