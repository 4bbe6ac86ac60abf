"""Benchmark `python -m zero1to3 reconstruct`: its wall time from the command line, and its mesh against stage 04's.

For the first `--objects` zero-shot objects stage 04 reconstructs (`params.yaml`'s `system.objects_per_set`), the
command runs twice on the object's input render, each in a fresh output folder, as a user would run it:

- **as stage 04** (`--keep-framing` and the angles of the render's `meta.json`): the same code path, model, seed and
  config as stage 04's SJC, so its mesh should score the volumetric IoU of stage 04's mesh of that object
  (`data/sjc/sjc/<id>.ply`); both are scored against the true mesh as stage 05 scores them;
- **as a user** (the image framed again and `--polar-deg auto`): the wall time a user waits, estimate included.

Each runs `--repeats` times (this machine's speed drifts by a quarter from one hour to the next), and before every run
a fixed reference workload (`reference_seconds`: the tiny UNet's forward and backward, one thread, as SJC runs it) is
timed, so that a slow run can be told from a slow machine. Bar: the median run under 120 s on the 2-core
machine, and the stage-04 run's IoU at least stage 04's; every run's time is reported. The IoU is judged only when the
command's run identity (`system.run_identity`: settings, seed, input, model) equals stage 04's; otherwise the keys that
differ are reported. Run it on an idle machine after `dvc repro sjc` (it needs stage 02's model and stage 04's meshes).
To time the command at the study's settings on a machine with only `make quick`'s study (the same networks, so the
same work; stage 04's meshes there are of another config, so the IoU is not judged), point it there:
`--data-dir quick/data --models-dir quick/models/finetune`.

    python benchmarks/bench_reconstruct.py [--objects 1] [--repeats 3] [--out results/benchmarks/reconstruct.json]
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
import torch

from zero1to3 import stages
from zero1to3.core import files, fingerprint, outputs, repro
from zero1to3.dataset import data
from zero1to3.evaluation import evaluate
from zero1to3.model.components import Zero123Components

BAR_SECONDS = 120.0


def reference_seconds(model: Path, steps: int = 50) -> float:
    """A fixed workload on this machine now: `steps` forward+backward passes of the model's UNet at SJC's batch
    (2 views with and without conditioning), one thread, as SJC runs it."""
    components = Zero123Components.load_pretrained(model)
    unet, before = components.unet, torch.get_num_threads()
    size, channels = unet.config.sample_size, unet.config.in_channels
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, channels, size, size, generator=generator, requires_grad=True)
    context = torch.randn(4, 1, unet.config.cross_attention_dim, generator=generator)
    torch.set_num_threads(1)
    try:
        tick = time.perf_counter()
        for _ in range(steps):
            unet(x, torch.full((4,), 500), encoder_hidden_states=context).sample.sum().backward()
        return round(time.perf_counter() - tick, 2)
    finally:
        torch.set_num_threads(before)


def run_command(image: Path, out_dir: Path, model: Path, params: Path, extra: list[str]) -> dict[str, object]:
    """Run the command in a subprocess; its wall time (model loading included) and its `reconstruction.json`."""
    command = [
        sys.executable,
        "-m",
        "zero1to3",
        "reconstruct",
        str(image),
        "--out",
        str(out_dir),
        "--model",
        str(model),
        "--params",
        str(params),
    ]
    reference = reference_seconds(model)
    tick = time.perf_counter()
    done = subprocess.run(command + extra, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - tick
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command + extra)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    record = json.loads((out_dir / "reconstruction.json").read_text())
    return {
        "command": " ".join(["python", *command[1:], *extra]),
        "wall_seconds": round(seconds, 1),
        "reference_seconds": reference,
        "record_seconds": {k: round(v, 1) for k, v in record["seconds"].items()},
        "sjc_seconds": round(record["sjc_seconds"], 1),
        "camera": record["camera"],
        "within_bar": seconds < BAR_SECONDS,
        "identity": record["identity"],
    }


def iou(mesh_file: Path, truth: Path, object_id: str, seed: int) -> float:
    """Volumetric IoU against the true mesh, as stage 05 scores it (a missing mesh scores 0)."""
    scores = evaluate.reconstruction_scores({"sjc": {object_id: mesh_file}}, {object_id: truth}, seed=seed)
    return float(scores["sjc"]["volumetric_iou"][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1, help="how many of stage 04's zero-shot objects")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command (the median meets the bar)")
    parser.add_argument("--params", default="params.yaml", help="stage 04's params (or profiles/quick.yaml)")
    parser.add_argument("--data-dir", help="renders and stage 04's meshes (default: the params' system.data_dir)")
    parser.add_argument("--models-dir", help="stage 02's models (default: the params' system.models_dir)")
    parser.add_argument("--out", default="results/benchmarks/reconstruct.json")
    args = parser.parse_args()
    params = stages.load_params(args.params)
    group, evaluate_seed = params["sjc"], params["evaluate"]["seed"]
    group |= {k: v for k, v in (("data_dir", args.data_dir), ("models_dir", args.models_dir)) if v}
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
        meta = data.load_object(data_dir, oid).meta  # the angles stage 04 takes the input camera from
        polar_deg, azimuth_deg, radius = (float(meta[key][view]) for key in ("polar_deg", "azimuth_deg", "radius"))
        true_camera = [
            "--keep-framing",
            f"--polar-deg={polar_deg!r}",
            f"--azimuth-deg={azimuth_deg!r}",
            f"--radius={radius!r}",
        ]
        runs: dict[str, list[dict[str, object]]] = {"as_stage04": [], "as_user": []}
        for repeat in range(args.repeats):
            for name, extra in (("as_stage04", true_camera), ("as_user", ["--polar-deg", "auto"])):
                with tempfile.TemporaryDirectory() as tmp:
                    run = run_command(image, Path(tmp) / name, model, Path(args.params), extra)
                    run["volumetric_iou"] = iou(Path(tmp) / name / "mesh.ply", truth, oid, evaluate_seed)
                runs[name].append(run)
                print(
                    f"{oid} {name} run {repeat + 1}: {run['wall_seconds']} s (reference workload "
                    f"{run['reference_seconds']} s), IoU {run['volumetric_iou']:.3f}",
                    flush=True,
                )
        stage_iou = iou(stage_mesh, truth, oid, evaluate_seed)
        # Same identity, same run: then (and only then) the IoU must be stage 04's. Another params file than
        # stage 04 ran with (e.g. the study's settings on `make quick`'s stage 04) times the command all the same.
        stage_identity = outputs.load_run_record(stage_mesh.with_suffix(".json"))["identity"]
        differs = sorted(
            {k for r in runs["as_stage04"] for k in fingerprint.differences(r.pop("identity"), stage_identity)}
        )
        for r in runs["as_user"]:
            r.pop("identity")
        summary = {
            name: {
                "median_wall_seconds": float(np.median([r["wall_seconds"] for r in rs])),
                "max_wall_seconds": max(r["wall_seconds"] for r in rs),
                "runs_within_bar": sum(r["within_bar"] for r in rs),
                "runs": len(rs),
            }
            for name, rs in runs.items()
        }
        same_iou = all(r["volumetric_iou"] >= stage_iou - 1e-9 for r in runs["as_stage04"]) if not differs else None
        rows.append(
            {
                "object_id": oid,
                "true_polar_deg": round(polar_deg, 2),
                "stage04_volumetric_iou": stage_iou,
                "same_run_as_stage04": not differs,
                "run_differs_from_stage04_in": differs,
                **runs,
                "summary": summary,
                "iou_at_least_stage04": same_iou,
            }
        )
        if differs:
            print(f"{oid}: not stage 04's run (differs in {', '.join(differs)}): its IoU is not stage 04's to match")
        print(
            f"{oid}: median {summary['as_stage04']['median_wall_seconds']} s as stage 04, "
            f"{summary['as_user']['median_wall_seconds']} s as a user; stage 04's IoU {stage_iou:.3f}"
        )
    out = {
        "bar_seconds": BAR_SECONDS,
        "time_bar_met": all(s["median_wall_seconds"] < BAR_SECONDS for r in rows for s in r["summary"].values()),
        "iou_bar_met": all(r["iou_at_least_stage04"] for r in rows)
        if all(r["same_run_as_stage04"] for r in rows)
        else None,  # None: not stage 04's runs, nothing to compare
        "objects": rows,
        "model": model.as_posix(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "environment": repro.environment_info(),
    }
    out["bar_met"] = out["time_bar_met"] and out["iou_bar_met"] is True
    verdict = {True: "met", False: "NOT met", None: "not judged (not stage 04's run)"}
    print(
        f"time bar (median run < {BAR_SECONDS:.0f} s): {verdict[out['time_bar_met']]}; "
        f"IoU bar (>= stage 04's): {verdict[out['iou_bar_met']]}"
    )
    files.write_json_atomic(args.out, out)


if __name__ == "__main__":
    main()
