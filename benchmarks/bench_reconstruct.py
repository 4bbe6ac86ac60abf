"""Benchmark `python -m zero1to3 reconstruct`: its wall time from the command line, and its mesh against stage 04's.

For the first `--objects` zero-shot objects stage 04 reconstructs (`params.yaml`'s `sjc.objects_per_set`), the
command runs twice on the object's input render, each in a fresh output folder, as a user would run it:

- **as stage 04** (`--keep-framing` and the render's true camera): the same code path, model, seed and config as
  stage 04's SJC, so its mesh should score the volumetric IoU of stage 04's mesh of that object
  (`data/sjc/sjc/<id>.ply`); both are scored against the true mesh as stage 05 scores them;
- **as a user** (the image framed again and `--polar-deg auto`): the wall time a user waits, estimate included.

Bar (issue 14): each run under 120 s on the 2-core machine, and the first run's IoU at least stage 04's. Run it on
an idle machine after `dvc repro sjc` (it needs stage 02's model and stage 04's meshes).

    python benchmarks/bench_reconstruct.py [--objects 1] [--out results/benchmarks/reconstruct.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from zero1to3 import cameras, data, evaluate, files, outputs, repro

BAR_SECONDS = 120.0


def run_command(image: Path, out_dir: Path, model: Path, extra: list[str]) -> dict[str, object]:
    """Run the command in a subprocess; its wall time (model loading included) and its `reconstruction.json`."""
    command = [sys.executable, "-m", "zero1to3", "reconstruct", str(image), "--out", str(out_dir),
               "--model", str(model)]  # fmt: skip
    tick = time.perf_counter()
    done = subprocess.run(command + extra, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - tick
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command + extra)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    record = json.loads((out_dir / "reconstruction.json").read_text())
    return {"command": " ".join(["python", *command[1:], *extra]), "wall_seconds": round(seconds, 1),
            "record_seconds": {k: round(v, 1) for k, v in record["seconds"].items()},
            "sjc_seconds": round(record["sjc_seconds"], 1), "camera": record["camera"],
            "within_bar": seconds < BAR_SECONDS}  # fmt: skip


def iou(mesh_file: Path, truth: Path, object_id: str, seed: int) -> float:
    """Volumetric IoU against the true mesh, as stage 05 scores it (a missing mesh scores 0)."""
    scores = evaluate.reconstruction_scores({"sjc": {object_id: mesh_file}}, {object_id: truth}, seed=seed)
    return float(scores["sjc"]["volumetric_iou"][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1, help="how many of stage 04's zero-shot objects")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="results/benchmarks/reconstruct.json")
    args = parser.parse_args()
    params = yaml.safe_load(Path(args.params).read_text())
    group, evaluate_seed = params["sjc"], params["evaluate"]["seed"]
    data_dir, sjc_dir, view = Path(group["data_dir"]), Path(group["data_dir"]) / "sjc", int(group["input_view"])
    model = Path(group["models_dir"]) / "pose" / "model"  # stage 04's prior, as its notebook loads it
    count = min(args.objects, group["objects_per_set"]["zero_shot"])
    object_ids = data.read_manifest(data_dir)["split"]["zero_shot"][:count]
    load_before = os.getloadavg()
    rows = []
    for oid in object_ids:
        image, truth = data.object_dir(data_dir, oid) / f"{view:03d}.png", data.object_dir(data_dir, oid) / "mesh.obj"
        stage_mesh = outputs.mesh_path(sjc_dir, "sjc", oid)
        if not stage_mesh.with_suffix(".json").is_file():
            raise FileNotFoundError(f"stage 04 has no reconstruction of {oid} at {stage_mesh}: run `dvc repro sjc`")
        polar, azimuth, radius = cameras.cartesian_to_spherical(data.load_object(data_dir, oid).camera_centers[view])
        polar_deg, azimuth_deg = float(np.degrees(polar)), float(np.degrees(azimuth))
        true_camera = ["--keep-framing", f"--polar-deg={polar_deg!r}", f"--azimuth-deg={azimuth_deg!r}",
                       f"--radius={float(radius)!r}"]  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            as_stage = run_command(image, Path(tmp) / "as_stage04", model, true_camera)
            as_stage["volumetric_iou"] = iou(Path(tmp) / "as_stage04" / "mesh.ply", truth, oid, evaluate_seed)
            as_user = run_command(image, Path(tmp) / "as_user", model, ["--polar-deg", "auto"])
            as_user["volumetric_iou"] = iou(Path(tmp) / "as_user" / "mesh.ply", truth, oid, evaluate_seed)
        stage_iou = iou(stage_mesh, truth, oid, evaluate_seed)
        rows.append({"object_id": oid, "true_polar_deg": round(polar_deg, 2),
                     "stage04_volumetric_iou": stage_iou, "as_stage04": as_stage, "as_user": as_user,
                     "iou_at_least_stage04": as_stage["volumetric_iou"] >= stage_iou - 1e-9})  # fmt: skip
        print(
            f"{oid}: as stage 04 {as_stage['wall_seconds']} s, IoU {as_stage['volumetric_iou']:.3f} "
            f"(stage 04: {stage_iou:.3f}); as a user (auto: polar {as_user['camera']['polar_deg']:.1f}, "
            f"true {polar_deg:.1f}) {as_user['wall_seconds']} s, IoU {as_user['volumetric_iou']:.3f}"
        )
    out = {
        "bar_seconds": BAR_SECONDS,
        "bar_met": all(r["as_stage04"]["within_bar"] and r["as_user"]["within_bar"] and r["iou_at_least_stage04"]
                       for r in rows),
        "objects": rows, "model": model.as_posix(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "environment": repro.environment_info(),
    }  # fmt: skip
    print(f"bar (each run < {BAR_SECONDS:.0f} s, IoU >= stage 04's): {'met' if out['bar_met'] else 'NOT met'}")
    files.write_json_atomic(args.out, out)


if __name__ == "__main__":
    main()
