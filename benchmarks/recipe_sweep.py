"""Stage 02's recipe as an experiment on a GPU: how far from "copy the input view" is the model, by training steps?

The default study trains on 2 CPU cores for about 18 minutes per model; whether a longer or wider recipe would beat
copy-the-input is a question of trend, which a GPU answers in minutes. Each variant below is the
default recipe (params.yaml's finetune group) with a few fields changed; it trains with `train.fit`, the study's own
loop, and at each milestone step samples the 60 test objects' six target views from input view 0 with the
study's sampler (DDIM 50, guidance 3, eta 1; batched here, so the noise differs from stage 03's per-object draws),
and scores them with `evaluate.novel_view_scores` (which adds copy-the-input). Variants run as parallel processes
on one GPU until a wall-clock deadline; each milestone is a JSON line, so whatever finishes is kept.

    python benchmarks/recipe_sweep.py pack --out .sweep/views.npz             # here: the renders, packed to travel
    python benchmarks/recipe_sweep.py run --views .sweep/views.npz --out DIR --minutes 6   # on the GPU machine
    python benchmarks/recipe_sweep.py summarize DIR/milestones.jsonl --out results/finetune/recipe_sweep.json

The VAE is trained once (params' settings, on the union of the run's training sets) and shared, so every variant
sees the same latents; the baseline of a variant (`*_nopose`) has the same recipe with the pose zeroed, as the
study's.

Training objects are a lever too: `pack --extra every=DIR` adds a second data folder's `train` and `test`
splits as the sets `every_train` and `every_test` (e.g. the procedural everyday objects of
`lib/zero1to3/everyday.py`, rendered by stage 01's code into DIR), and the `mix_*` and `every_*` variants train on
them. `run --eval-sets test,every_test,zero_shot` scores every milestone on each named set (default: `test`).

    python benchmarks/recipe_sweep.py everyday --count 400 --num-test 60 --out .sweep/every_data   # meshes, renders
    python benchmarks/recipe_sweep.py pack --extra every=.sweep/every_data --out .sweep/views.npz
    python benchmarks/recipe_sweep.py run --variants b32_pose,b32_nopose,mix_pose,mix_nopose \
        --eval-sets test,every_test,zero_shot --out DIR --minutes 8
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from zero1to3 import cameras
from zero1to3.config import FinetuneConfig, RenderConfig, TinyModelSizes
from zero1to3.core import checkpoints
from zero1to3.dataset import data, objects, render
from zero1to3.dataset import everyday as everyday_objects
from zero1to3.evaluation import evaluate
from zero1to3.model import autoencoder, builders
from zero1to3.model.components import Zero123Components
from zero1to3.novel_views import sample, train

MILESTONES = (500, 1000, 2000, 4000, 6000, 8000, 12000, 16000, 24000, 32000, 48000, 64000)
INPUT_VIEW, NUM_TARGETS = 0, 6  # as stage 03 (params.yaml's sample group)
SAMPLER = {"num_steps": 50, "guidance_scale": 3.0, "eta": 1.0}

URDF, MIXED, EVERYDAY = ("train",), ("train", "every_train"), ("every_train",)
# name -> (changes to params' `training` group, changes to `tiny_model`, the packed sets it trains on)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]] = {
    "b32_pose": ({}, {}, URDF),
    "b32_nopose": ({"use_pose": False}, {}, URDF),
    "b128_pose": ({"batch_size": 128}, {}, URDF),
    "b128_nopose": ({"batch_size": 128, "use_pose": False}, {}, URDF),
    "wide_b32_pose": ({}, {"unet_block_out_channels": [64, 128, 128]}, URDF),
    "mix_pose": ({}, {}, MIXED),  # the random URDF shapes and the everyday objects
    "mix_nopose": ({"use_pose": False}, {}, MIXED),
    "every_pose": ({}, {}, EVERYDAY),
    "every_nopose": ({"use_pose": False}, {}, EVERYDAY),
}


REPO = Path(__file__).resolve().parents[1]


def _params() -> dict[str, Any]:
    return yaml.safe_load((REPO / "params.yaml").read_text())["finetune"]


def pack(data_dir: str, out: str, extra: dict[str, str] | None = None) -> None:
    """Renders in one compressed file (the GPU machine has no Blender and no data): `data_dir`'s `train`, `test` and
    `zero_shot` sets, and each `extra` folder's `train` and `test` as `<name>_train`, `<name>_test`."""
    folders = [(data_dir, "", ("train", "test", "zero_shot"))]
    folders += [(folder, f"{name}_", ("train", "test")) for name, folder in (extra or {}).items()]
    arrays: dict[str, Any] = {}
    for folder, prefix, names in folders:
        split = data.read_manifest(folder)["split"]
        for name in names:
            if not split.get(name):
                continue
            views = data.load_multiview(folder, split[name])
            key = prefix + name
            arrays |= {
                f"{key}_rgba": views.rgba,
                f"{key}_centers": views.camera_centers,
                f"{key}_ids": np.array(views.object_ids),
            }
            print(f"{key}: {len(views.object_ids)} objects from {folder}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"packed into {out}")


def everyday(out: str, count: int, num_test: int, seed: int = 0, workers: int = 1) -> None:
    """Write `count` procedural everyday objects (lib/zero1to3/everyday.py) and render them with params.yaml's
    render settings into `out`, `num_test` of them (a seeded draw) as `test`, the rest as `train`."""
    everyday_objects.write_everyday_objects(Path(out) / "meshes", count, seed)
    sources = objects.folder_sources(Path(out) / "meshes", "*.ply", "Z", prefix="every_")
    ids = [s.object_id for s in sources]
    test = set(np.random.default_rng(seed).permutation(ids)[:num_test].tolist())
    split = {"train": [i for i in ids if i not in test], "test": [i for i in ids if i in test]}
    group = yaml.safe_load((REPO / "params.yaml").read_text())["render"]
    cfg = RenderConfig.from_dict(
        group
        | {
            "data_dir": out,
            "num_train": 0,
            "num_val": 0,
            "num_test": 0,
            "everyday": {"train": 0, "test": 0},
            "zero_shot": [],
        }
    )
    summary = render.render_objects(sources, split, cfg, num_workers=workers)
    print(
        f"{len(summary.split['train'])} train and {len(summary.split['test'])} test objects in {summary.manifest_path}"
    )


def _views(packed: Any, name: str) -> data.MultiViewSet:
    if f"{name}_rgba" not in packed:
        raise KeyError(f"the packed views hold no set {name!r} (they hold {sorted(_set_names(packed))}): pack it")
    return data.MultiViewSet([str(i) for i in packed[f"{name}_ids"]], packed[f"{name}_rgba"], packed[f"{name}_centers"])


def _set_names(packed: Any) -> set[str]:
    return {key.removesuffix("_rgba") for key in packed.files if key.endswith("_rgba")}


def _joined(parts: list[data.MultiViewSet]) -> data.MultiViewSet:
    """One set of all objects of `parts`, in order."""
    return data.MultiViewSet(
        [i for p in parts for i in p.object_ids],
        np.concatenate([p.rgba for p in parts]),
        np.concatenate([p.camera_centers for p in parts]),
    )


def _train_sets(variants: list[str]) -> list[str]:
    """Every training set the variants use, in first-use order (the shared VAE trains on all of them)."""
    return list(dict.fromkeys(name for v in variants for name in VARIANTS[v][2]))


def _components(tiny_changes: dict[str, Any], params: dict[str, Any]) -> Zero123Components:
    sizes = TinyModelSizes.from_dict(params["tiny_model"] | tiny_changes, "tiny_model")
    return builders.build_tiny_components(sizes, params["seed"], params["training"]["prediction_type"])


class MilestoneScores:
    """`train.fit`'s checkpoint callback: at each milestone, sample the test views and append their scores."""

    def __init__(
        self, variant: str, sets: dict[str, data.MultiViewSet], log: Path, use_pose: bool, milestones: list[int]
    ) -> None:
        self.variant, self.log, self.use_pose, self.started = variant, log, use_pose, time.perf_counter()
        self.milestones = set(milestones)
        self.sets = {name: _EvalSet(views) for name, views in sets.items()}

    def __call__(self, components: Zero123Components, step: int) -> None:
        if step not in self.milestones:
            return
        components.eval()
        tick = time.perf_counter()
        seconds = tick - self.started  # training time to this milestone: sampling and scoring are not counted
        for name, s in self.sets.items():
            out = sample.sample_novel_views(
                components,
                s.images,
                s.pose,
                generator=torch.Generator().manual_seed(0),
                use_pose=self.use_pose,
                **SAMPLER,
            )
            rgb = (out.images.permute(0, 2, 3, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
            views = rgb.reshape(len(s.ids), NUM_TARGETS, *rgb.shape[1:])
            scores = evaluate.novel_view_scores({"model": views}, s.target_rgba, s.input_rgba, s.ids)
            row = {
                "variant": self.variant,
                "set": name,
                "step": step,
                "seconds": seconds,
                "scores": {m: {k: v.tolist() for k, v in per.items()} for m, per in scores.items()},
            }
            with self.log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{self.variant} step {step} {name}: fg PSNR {np.mean(scores['model']['fg_psnr']):.2f} dB "
                f"(copy input {np.mean(scores['copy_input']['fg_psnr']):.2f})",
                flush=True,
            )
        for module in (components.unet, components.image_encoder, components.cc_projection):
            module.train()  # back to training (fit put the trained ones in train mode)
        components.vae.eval()
        self.started += time.perf_counter() - tick

    def state_dict(self) -> dict[str, float]:
        """The training seconds so far: `train.fit` saves them beside each checkpoint, so a resumed run counts on."""
        return {"training_seconds": time.perf_counter() - self.started}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.started = time.perf_counter() - state["training_seconds"]


class _EvalSet:
    """One evaluation set's inputs (view `INPUT_VIEW`), targets (the next `NUM_TARGETS` views) and relative poses."""

    def __init__(self, views: data.MultiViewSet) -> None:
        targets = (INPUT_VIEW + 1 + np.arange(NUM_TARGETS)) % views.rgba.shape[1]
        self.ids, self.input_rgba = views.object_ids, views.rgba[:, INPUT_VIEW]
        self.target_rgba = views.rgba[:, targets]
        centers = views.camera_centers
        inputs = np.broadcast_to(centers[:, INPUT_VIEW, None], centers[:, targets].shape)
        self.pose = torch.from_numpy(cameras.relative_pose(inputs, centers[:, targets]).reshape(-1, 4))
        self.images = data.to_model_images(self.input_rgba)[:, None].expand(-1, NUM_TARGETS, -1, -1, -1).flatten(0, 1)


def worker(
    variant: str, views_path: str, work: str, log: str, milestones: list[int], num_test: int, eval_sets: list[str]
) -> None:
    params, (training_changes, tiny_changes, train_sets) = _params(), VARIANTS[variant]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    packed = np.load(views_path)
    train_views = _joined([_views(packed, name) for name in train_sets])
    sets = {name: _test_views(packed, name, num_test) for name in eval_sets}
    components = _components(tiny_changes, params)
    shared = torch.load(Path(work) / "vae.pt", weights_only=True)
    components.vae.load_state_dict(shared["state_dict"])
    components.vae.register_to_config(scaling_factor=shared["scaling_factor"])
    components.to("cuda" if torch.cuda.is_available() else "cpu")
    latents = autoencoder.LatentTable(
        torch.cat([shared["latents"][name]["mean"] for name in train_sets]),
        torch.cat([shared["latents"][name]["std"] for name in train_sets]),
    )
    run_fields = {
        "seed": params["seed"],
        "use_pose": True,
        "max_steps": milestones[-1],
        "checkpoint_every": min(500, milestones[0]),
    }
    cfg = FinetuneConfig.from_dict(params["training"] | run_fields | training_changes)
    callback = MilestoneScores(variant, sets, Path(log), cfg.use_pose, milestones)
    train.fit(components, train_views, latents, cfg, Path(work) / variant, progress=False, on_checkpoint=callback)


def _flat_views(views: data.MultiViewSet) -> np.ndarray:
    return views.rgba.reshape(-1, *views.rgba.shape[2:])


def _test_views(packed: Any, name: str, num_test: int) -> data.MultiViewSet:
    views = _views(packed, name)
    return data.MultiViewSet(views.object_ids[:num_test], views.rgba[:num_test], views.camera_centers[:num_test])


def run(
    views_path: str,
    out: str,
    minutes: float,
    variants: list[str],
    milestones: str,
    num_test: int,
    vae_steps: int | None,
    eval_sets: Sequence[str] = ("test",),
    threads: int = 2,
    work: str | Path = "/tmp/recipe_sweep",
    vae_file: str | None = None,
) -> None:
    """Train the shared VAE (or load `vae_file`, a stage-02 VAE cache), then every variant in parallel until the
    deadline. Checkpoints go to `work`: a rerun with the same `work` resumes every variant where it stopped."""
    params, work, out_dir = _params(), Path(work), Path(out)
    work.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + 60 * minutes
    packed = np.load(views_path)
    train_sets = _train_sets(variants)
    parts = {name: _views(packed, name) for name in train_sets}
    train_views = _joined(list(parts.values()))
    for name in eval_sets:
        _views(packed, name)  # every evaluation set is packed: fail here, not in the workers
    device = "cuda" if torch.cuda.is_available() else "cpu"
    vae = _components({}, params).vae.to(device)
    tick, vae_cfg = time.perf_counter(), params["vae"]
    if vae_file is None:
        history = autoencoder.fit_vae(
            vae,
            train_views,
            vae_steps or vae_cfg["steps"],
            vae_cfg["batch_size"],
            vae_cfg["learning_rate"],
            vae_cfg["kl_weight"],
            torch.Generator().manual_seed(params["seed"]),
            progress=False,
        )
    else:  # e.g. stage 02's (models/finetune/vae/vae.pt): trained on the URDF training objects only
        state = checkpoints.load(vae_file)
        vae.load_state_dict(state["state_dict"])
        vae.register_to_config(scaling_factor=float(state["scaling_factor"]))
        vae.eval().requires_grad_(False)
        history = state["history"]
    tables = {name: autoencoder.encode_views(vae, views) for name, views in parts.items()}
    latents = {name: {"mean": t.mean, "std": t.std} for name, t in tables.items()}
    colour = {
        name: autoencoder.colour_metrics(vae, _flat_views(_test_views(packed, name, num_test)))
        for name in dict.fromkeys(["test", *eval_sets])
    }
    torch.save(
        {
            "state_dict": {k: v.cpu() for k, v in vae.state_dict().items()},
            "latents": latents,
            "scaling_factor": float(vae.config.scaling_factor),
        },
        work / "vae.pt",
    )
    info = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "vae_seconds": time.perf_counter() - tick,
        "vae_final_loss": history[-1]["loss_recon"],
        "vae_test": colour,
        "vae_file": vae_file,
        "vae_train_sets": {name: len(views.object_ids) for name, views in parts.items()},
    }
    (out_dir / "vae.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info), flush=True)
    log = out_dir / "milestones.jsonl"
    command = [
        sys.executable,
        __file__,
        "worker",
        str(views_path),
        str(work),
        str(log),
        milestones,
        str(num_test),
        ",".join(eval_sets),
    ]
    procs = {
        v: subprocess.Popen(
            command[:3] + [v] + command[3:],
            stdout=(out_dir / f"{v}.log").open("a"),
            stderr=subprocess.STDOUT,
            env=os.environ | {"OMP_NUM_THREADS": str(threads)},
        )
        for v in variants
    }
    while time.perf_counter() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(5)
    for name, p in procs.items():
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        print(f"{name}: exit {p.wait()}", flush=True)


def summarize(log: str, out: str, seed: int = 0) -> None:
    """Per variant and milestone: fg PSNR and silhouette IoU against copy-the-input and the no-pose twin."""
    rows = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    by_key = {(r["variant"], r.get("set", "test"), r["step"]): r for r in rows}  # runs before sets scored `test` only
    table = []
    for (variant, name, step), row in sorted(by_key.items()):
        scores = {m: {k: np.asarray(v) for k, v in per.items()} for m, per in row["scores"].items()}
        twin = by_key.get((variant.replace("_pose", "_nopose"), name, step)) if variant.endswith("_pose") else None
        if twin is not None:
            scores["no_pose"] = {k: np.asarray(v) for k, v in twin["scores"]["model"].items()}
        others = ["copy_input"] + (["no_pose"] if twin is not None else [])
        comparisons = evaluate.paired_comparisons(scores, "model", others, ["fg_psnr", "silhouette_iou"], seed=seed)
        table.append(
            {
                "variant": variant,
                "set": name,
                "step": step,
                "seconds": row["seconds"],
                "fg_psnr": float(np.mean(scores["model"]["fg_psnr"])),
                "silhouette_iou": float(np.mean(scores["model"]["silhouette_iou"])),
                "comparisons": [
                    {k: c[k] for k in ("other", "metric", "mean_difference", "ci_low", "ci_high")} for c in comparisons
                ],
            }
        )
    Path(out).write_text(json.dumps(table, indent=2))
    for r in table:
        diffs = "  ".join(
            f"vs {c['other']} {c['metric']} {c['mean_difference']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}]"
            for c in r["comparisons"]
        )
        print(f"{r['variant']:>14} {r['set']:>10} {r['step']:>6} {r['seconds']:7.0f}s fg {r['fg_psnr']:.2f} {diffs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--out", default=".sweep/views.npz")
    p.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another data folder: its train and test splits become the sets NAME_train, NAME_test",
    )
    p = sub.add_parser("everyday")
    p.add_argument("--out", default=".sweep/every_data")
    p.add_argument("--count", type=int, default=400)
    p.add_argument("--num-test", type=int, default=60)
    p.add_argument("--workers", type=int, default=1)
    p = sub.add_parser("run")
    p.add_argument("--views", default=".sweep/views.npz")
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--milestones", default=",".join(map(str, MILESTONES)))
    p.add_argument("--num-test", type=int, default=60)
    p.add_argument("--vae-steps", type=int, default=None, help="default: params.yaml's (a smoke test uses a few)")
    p.add_argument("--eval-sets", default="test", help="packed sets scored at every milestone, e.g. test,zero_shot")
    p.add_argument("--threads", type=int, default=2, help="torch threads per variant (a CPU run: cores / variants)")
    p.add_argument("--work", default="/tmp/recipe_sweep", help="checkpoints; a rerun with the same folder resumes")
    p.add_argument("--vae", default=None, help="a stage-02 VAE cache (models/finetune/vae/vae.pt) instead of training")
    p = sub.add_parser("worker")
    p.add_argument("variant")
    p.add_argument("views")
    p.add_argument("work")
    p.add_argument("log")
    p.add_argument("milestones")
    p.add_argument("num_test", type=int)
    p.add_argument("eval_sets")
    p = sub.add_parser("summarize")
    p.add_argument("log")
    p.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "pack":
        extra = dict(item.split("=", 1) for item in args.extra)
        pack(args.data_dir, args.out, extra)
    elif args.command == "everyday":
        everyday(args.out, args.count, args.num_test, workers=args.workers)
    elif args.command == "run":
        run(
            args.views,
            args.out,
            args.minutes,
            args.variants.split(","),
            args.milestones,
            args.num_test,
            args.vae_steps,
            args.eval_sets.split(","),
            args.threads,
            args.work,
            args.vae,
        )
    elif args.command == "worker":
        worker(
            args.variant,
            args.views,
            args.work,
            args.log,
            [int(m) for m in args.milestones.split(",")],
            args.num_test,
            args.eval_sets.split(","),
        )
    else:
        summarize(args.log, args.out)


if __name__ == "__main__":
    main()
