"""How far this machine's study lands from the committed one: the spread behind `evaluate.REPRODUCTION_TOLERANCE`.

Needs this machine's stage 01 renders and stage 02 model (`dvc repro finetune`, or a killed `make study` once
`models/finetune/pose/model` exists). Draws our model's views of every held-out object exactly as stage 03 does
(same seeds; ours and ours with shuffled poses, plus the no-pose baseline when its model exists), scores them as
stage 05 does, and compares with the committed per-object scores (`git show <rev>:results/evaluate/per_object.json`):
per method and metric the mean now and then and the mean absolute per-object difference, and per paired comparison
the shift of the mean difference and of each interval end, with both verdicts. Also the final pose-model loss
against the committed `results/metrics/finetune.json`. Writes `results/benchmarks/reproduction_drift.json`.

    python benchmarks/reproduction_drift.py [--rev HEAD] [--out results/benchmarks/reproduction_drift.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np

from zero1to3 import stages
from zero1to3.core import files, outputs, repro
from zero1to3.dataset import data
from zero1to3.evaluation import evaluate
from zero1to3.novel_views import pipeline

METRICS = ["psnr", "fg_psnr", "ssim", "silhouette_iou"]


def committed_json(rev: str, path: str) -> dict:
    """A JSON file as committed at `rev`."""
    out = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    if out.returncode:
        raise FileNotFoundError(f"{path} is not committed at {rev}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def drift_of_set(name: str, samplers: dict, group: dict, committed_rows: list[dict]) -> dict:
    """Scores now vs committed for one held-out set, per method and per paired comparison."""
    split = data.read_manifest(group["data_dir"])["split"]
    views = outputs.held_out_views(group["data_dir"], split[name], group["input_view"], group["num_targets"])
    if views.object_ids != [row["object"] for row in committed_rows]:
        raise ValueError(f"{name}: the held-out objects differ from the committed run's; compare like with like")
    sampler = group["sampler"]
    predictions = {
        method: pipeline.generate_views(
            pipe.components,
            views.input_rgba,
            views.input_centers,
            views.target_centers,
            views.object_ids,
            sampler["ddim_steps"],
            sampler["guidance_scale"],
            sampler["eta"],
            group["seed"],
            use_pose=use_pose,
            pose_shift=shift,
        )
        for method, (pipe, use_pose, shift) in samplers.items()
    }
    now = evaluate.novel_view_scores(predictions, views.target_rgba, views.input_rgba, views.object_ids)
    then = {m: {k: np.array([row[f"{m}/{k}"] for row in committed_rows]) for k in METRICS} for m in now}
    out: dict = {"num_objects": len(views.object_ids), "methods": {}, "comparisons": {}}
    for method in now:
        for metric in METRICS:
            a, b = np.asarray(now[method][metric]), then[method][metric]
            out["methods"][f"{method}/{metric}"] = {
                "now": float(a.mean()),
                "committed": float(b.mean()),
                "mean_abs_object_difference": float(np.abs(a - b).mean()),
            }
    others = [m for m in now if m != "zero123"]
    rows_now = evaluate.paired_comparisons(now, "zero123", others, METRICS, seed=0)
    rows_then = evaluate.paired_comparisons(then, "zero123", others, METRICS, seed=0)
    for a, b in zip(rows_now, rows_then, strict=True):
        shift = max(abs(a[k] - b[k]) for k in ("mean_difference", "ci_low", "ci_high"))
        out["comparisons"][f"{a['reference']}_vs_{a['other']}/{a['metric']}"] = {
            "now": [a["mean_difference"], a["ci_low"], a["ci_high"]],
            "committed": [b["mean_difference"], b["ci_low"], b["ci_high"]],
            "largest_shift": shift,
            "verdict_now": a["verdict"],
            "verdict_committed": b["verdict"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="the commit whose results to compare with (default: HEAD)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="results/benchmarks/reproduction_drift.json")
    args = parser.parse_args()
    group = stages.load_params(args.params)["sample"]
    models_dir = Path(group["models_dir"])
    model = pipeline.Zero123Pipeline.from_pretrained(models_dir / "pose" / "model")
    samplers = {"zero123": (model, True, 0), "shuffled_pose": (model, True, group["pose_shift"])}
    if (models_dir / "no_pose" / "model").is_dir():
        samplers["no_pose"] = (pipeline.Zero123Pipeline.from_pretrained(models_dir / "no_pose" / "model"), False, 0)
    committed = committed_json(args.rev, "results/evaluate/per_object.json")
    history = json.loads((models_dir / "pose" / "model" / "training.json").read_text())["history"]
    report: dict = {
        "rev": args.rev,
        "final_loss_pose": {
            "now": float(np.mean([row["loss"] for row in history[-100:]])),  # as train.finetune_metrics
            "committed": committed_json(args.rev, "results/metrics/finetune.json")["final_loss_pose"],
        },
        "sets": {},
        "environment": repro.environment_info(),
    }
    for name in group["sets"]:
        tick = time.perf_counter()
        report["sets"][name] = drift_of_set(name, samplers, group, committed[name]) | {
            "seconds": time.perf_counter() - tick
        }
        worst = max(report["sets"][name]["comparisons"].items(), key=lambda kv: kv[1]["largest_shift"])
        print(f"{name}: largest shift {worst[1]['largest_shift']:.4f} ({worst[0]})")
    files.write_json_atomic(args.out, report)
    print(f"final pose loss {report['final_loss_pose']['now']:.5f} vs {report['final_loss_pose']['committed']:.5f}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
