"""Evaluate `--polar-deg auto`: the elevation estimator's error on renders whose polar angles are known.

For the test and zero-shot objects of `data/manifest.json`, the estimator (`elevation.estimate_polar`) looks at
view `--input-view` of each and answers a polar angle; the mean absolute error in degrees is written beside
the error of always answering the mean true polar angle of the same objects (an oracle constant). Takes
~2.5 s per object with the tiny model on one core (measured with an older model of `models/finetune`).

    python benchmarks/eval_elevation.py [--model models/finetune/pose/model] [--out results/benchmarks/elevation.json]

The figure beside the JSON (`elevation.png`) shows each object's estimates against its true polar angle.

Two estimators (`elevation.py`): the **probe** `auto` uses, a ridge regression from the model's own CLIP image
embedding to the camera's polar angle, read from the model folder (stage 02 fits it on every view of the training
objects) or, for a folder without one, fitted here the same way; and the **consistency** estimator, `auto`'s fallback
for a folder without a probe. Both are compared with the oracle constant per object (paired, 95% bootstrap CI of the
reduction in absolute error; positive: the estimator is better).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from zero1to3.core import figures, files
from zero1to3.dataset import data
from zero1to3.evaluation import bootstrap
from zero1to3.model.components import Zero123Components
from zero1to3.single_image import elevation


def against_mean(true: list[float], estimate: list[float], seed: int) -> dict[str, float]:
    """Paired comparison with the oracle constant: mean reduction in absolute error (positive: estimate better)."""
    true_a = np.asarray(true)
    constant = np.abs(true_a.mean() - true_a)
    return bootstrap.paired_difference(constant, np.abs(np.asarray(estimate) - true_a), seed=seed)


def estimates_figure(report: dict[str, dict]) -> plt.Figure:
    """Per set, each object's estimate (y) against its true polar angle (x), both estimators, and the constant."""
    sets = [name for name in ("test", "zero_shot") if name in report]
    fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 4.2), squeeze=False)
    for ax, name in zip(axes[0], sets, strict=True):
        found, true = report[name], np.asarray(report[name]["true_deg"])
        for key, mae, label, marker in (
            ("estimate_deg", "mae_deg", "consistency", "o"),
            ("probe_estimate_deg", "probe_mae_deg", "probe (auto)", "^"),
        ):
            ax.scatter(true, found[key], s=14, marker=marker, label=f"{label}: MAE {found[mae]:.1f}°")
        ax.axhline(
            true.mean(), color="grey", ls="--", lw=0.8, label=f"always the mean: MAE {found['baseline_mae_deg']:.1f}°"
        )
        ax.plot([0, 180], [0, 180], color="grey", lw=0.8)
        ax.set(
            xlim=(0, 180),
            ylim=(0, 180),
            xlabel="true polar angle (°)",
            ylabel="estimate (°)",
            title=f"{name} ({len(true)} objects)",
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/finetune/pose/model")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--input-view", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N objects of each set")
    parser.add_argument("--out", default="results/benchmarks/elevation.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    components = Zero123Components.load_pretrained(args.model).eval()
    split = data.read_manifest(args.data_dir)["split"]
    probe, source = elevation.load_probe(args.model, components.cc_projection.clip_dim), "the model folder"
    if probe is None:
        train = data.load_multiview(args.data_dir, split["train"])
        probe, source = elevation.fit_probe(components, train), "fitted here"
    report = {"probe": {"ridge": probe.ridge, "train_views": probe.train_views, "source": source}}
    for set_name in ("test", "zero_shot"):
        ids = split[set_name][: args.limit]
        found = elevation.evaluate(components, args.data_dir, ids, args.input_view, args.seed)
        views = data.load_multiview(args.data_dir, ids)
        probed = probe.predict(elevation.image_features(components, views.rgba[:, args.input_view])).tolist()
        found |= {
            "probe_estimate_deg": probed,
            "probe_mae_deg": float(np.mean(np.abs(np.asarray(probed) - np.asarray(found["true_deg"])))),
            "vs_mean": against_mean(found["true_deg"], found["estimate_deg"], args.seed),
            "probe_vs_mean": against_mean(found["true_deg"], probed, args.seed),
        }
        report[set_name] = found
        for name, mae, cmp in (
            ("consistency", found["mae_deg"], found["vs_mean"]),
            ("probe", found["probe_mae_deg"], found["probe_vs_mean"]),
        ):
            print(
                f"{set_name} ({len(ids)} objects): {name} MAE {mae:.1f} deg, always-the-mean "
                f"{found['baseline_mae_deg']:.1f} deg; reduction {cmp['mean_difference']:+.1f} "
                f"[{cmp['ci_low']:+.1f}, {cmp['ci_high']:+.1f}]"
            )
    files.write_json_atomic(args.out, report)
    figures.save_figure(estimates_figure(report), Path(args.out).with_suffix(".png"))


if __name__ == "__main__":
    main()
