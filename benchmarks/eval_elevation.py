"""Evaluate `--polar-deg auto`: the elevation estimator's error on renders whose polar angles are known.

For the test and zero-shot objects of `data/manifest.json`, the estimator (`elevation.estimate_polar`) looks at
view `--input-view` of each and answers a polar angle; the mean absolute error in degrees is written beside
the error of always answering the mean true polar angle of the same objects (an oracle constant). Takes
~2.5 s per object with the tiny model on one core (measured with an older model of `models/finetune`).

    python benchmarks/eval_elevation.py [--model models/finetune/pose/model] [--out results/benchmarks/elevation.json]
"""

from __future__ import annotations

import argparse

import torch

from zero1to3 import data, elevation, files, models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/finetune/pose/model")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--input-view", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/benchmarks/elevation.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    components = models.Zero123Components.load_pretrained(args.model).eval()
    split = data.read_manifest(args.data_dir)["split"]
    report = {}
    for set_name in ("test", "zero_shot"):
        report[set_name] = elevation.evaluate(components, args.data_dir, split[set_name], args.input_view, args.seed)
        print(f"{set_name}: MAE {report[set_name]['mae_deg']:.1f} deg, always-the-mean "
              f"{report[set_name]['baseline_mae_deg']:.1f} deg ({len(split[set_name])} objects)")  # fmt: skip
    files.write_json_atomic(args.out, report)


if __name__ == "__main__":
    main()
