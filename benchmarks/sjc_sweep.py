"""Sweep stage 04's SJC settings against the study's 3D target: does SJC beat SJC-I?

For each variant (overrides of `params.yaml`'s `sjc.config`) every object stage 04 reconstructs (its
`objects_per_set`, or `--objects`) is reconstructed with both priors, as stage 04 does it (`reconstruction.
reconstruct_object`: stage 02's model for SJC, its no-pose baseline for SJC-I, the same seed), scored against the
true mesh as stage 05 scores it (volumetric IoU, Chamfer), and SJC is paired with SJC-I per object (mean difference,
95% bootstrap interval), per set and over all objects.

Each variant runs `reconstruction.reconstruct_objects` as stage 04 does, with `--workers` processes of one torch
thread each (the 2-core machine: 2), into `--work/<variant>/`. Every run is resumable where it was: a finished mesh
made from the same prior, input, seed and config is reused, a killed one resumes from its checkpoints. A variant
without overrides starts from copies of stage 04's finished runs (`data/sjc/`, only read), which are reused when
they were made from the same models and settings, so `default` costs nothing after a study.

    python benchmarks/sjc_sweep.py run --variants default,g10,g3 [--objects test=8,zero_shot=7] \\
        [--work .sweep/sjc] [--out results/benchmarks/sjc_sweep.json] [--workers 2]
    python benchmarks/sjc_sweep.py run --variant mine guidance_scale=20 lambda_input=1000 ...

Variants by name are in `VARIANTS`; `--variant NAME KEY=VALUE ...` adds one of your own. `--out` keeps the rows
of variants an earlier run wrote there when they were made on the same objects with the same models (each row records
the models' fingerprints), so variants can be measured one session at a time; other earlier rows are dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from zero1to3 import stages
from zero1to3.config import SJCConfig
from zero1to3.core import files, fingerprint, outputs, repro
from zero1to3.dataset import data
from zero1to3.evaluation import bootstrap, evaluate
from zero1to3.model.components import Zero123Components
from zero1to3.sjc import reconstruction

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},  # stage 04's settings (SJC's guidance 100)
    "g30": {"guidance_scale": 30.0},
    "g10": {"guidance_scale": 10.0},
    "g3": {"guidance_scale": 3.0},  # threestudio's zero123 guidance scale
    "input1e3": {"lambda_input": 1.0e3, "lambda_input_mask": 1.0e3},  # the input view pins the field less
    "t600": {"timestep_max": 600},  # no scores from almost pure noise
    "i600": {"iterations": 600},  # two thirds of the time (stage 04's minutes, `reconstruct`'s 2-minute bar)
}


def parse_variant(spec: list[str]) -> tuple[str, dict[str, Any]]:
    """`[NAME, KEY=VALUE, ...]` -> (name, overrides); values are numbers, or read as YAML (booleans, lists)."""
    name, *pairs = spec
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"variant {name!r}: {pair!r} is not KEY=VALUE")
        overrides[key] = _number_or_yaml(value)
    return name, overrides


def _number_or_yaml(text: str) -> Any:
    """`20` -> 20, `1e3` -> 1000.0 (YAML would read a string), anything else as YAML (`true`, `[1, 2]`)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return yaml.safe_load(text)


def variant_config(base: dict[str, Any], overrides: dict[str, Any]) -> SJCConfig:
    """Stage 04's config with `overrides`, one torch thread (each worker has a core of its own)."""
    unknown = set(overrides) - set(base)
    if unknown:
        raise ValueError(f"unknown sjc.config keys {sorted(unknown)}; keys: {sorted(base)}")
    return SJCConfig.from_dict(base | overrides | {"num_threads": 1})


def _identity(record: Path) -> dict[str, Any] | None:
    """The run identity a finished run's record holds (None: no record, or not one of ours)."""
    try:
        identity = outputs.load_run_record(record).get("identity")
    except (OSError, ValueError, AttributeError):
        return None
    return identity if isinstance(identity, dict) else None


def seed_from_stage04(stage04_dir: Path, work: Path, object_ids: list[str], priors: dict[str, str]) -> int:
    """Copy stage 04's finished runs of `object_ids` into `work`; the number of runs copied.

    A run is copied when it was made with today's prior (`priors`: each method's model fingerprint) and `work`
    holds no run of the same identity: absent, or stale (made from an older model, say), which the copy replaces.
    Nothing else is touched. `reconstruct_object` reuses a copy only if it was made from the same prior, input,
    seed and config, so a copy is never wrong; these rules keep it from being useless, and a stale run of the
    variant's own from costing a reconstruction that stage 04 has already made.
    """
    copied = 0
    for method in outputs.SJC_METHODS:
        for oid in object_ids:
            source, target = outputs.mesh_path(stage04_dir, method, oid), outputs.mesh_path(work, method, oid)
            record, field = source.with_suffix(".json"), source.with_suffix(".field.pt")
            identity = _identity(record)
            if identity is None or not field.is_file() or identity.get("prior_fingerprint") != priors.get(method):
                continue  # unfinished, or made with another model than today's
            if _identity(target.with_suffix(".json")) == identity:
                continue  # the same run is there already
            target.parent.mkdir(parents=True, exist_ok=True)
            for path in (source, field, record):  # the record last: it marks the run finished
                if path.is_file():
                    shutil.copy2(path, target.parent / path.name)
            copied += 1
    return copied


def merge_earlier(
    earlier: dict[str, Any] | None, variants: dict[str, Any], sets: dict[str, list[str]], priors: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """This run's variant rows, plus the rows of an earlier `--out` that still compare with them; the names dropped.

    An earlier row is kept (marked `from_earlier_run`) when it is of a variant this run did not run, on the same
    objects and with the same prior models (`priors`, the fingerprints each row records): then its IoUs pair with
    this run's. Any other earlier row is dropped, by name, rather than set beside numbers it does not compare with.
    """
    merged, dropped = dict(variants), []
    for name, row in ((earlier or {}).get("variants") or {}).items():
        if name in variants:
            continue
        if earlier.get("sets") == sets and row.get("priors") == priors:
            merged[name] = {**row, "from_earlier_run": True}
        else:
            dropped.append(name)
    return merged, dropped


def summarize(
    meshes: dict[str, dict[str, Path]], sets: dict[str, list[str]], data_dir: Path, seed: int
) -> dict[str, Any]:
    """IoU and Chamfer of both methods per object, and SJC - SJC-I paired per set and over all objects."""
    truth = {oid: data.object_dir(data_dir, oid) / "mesh.obj" for ids in sets.values() for oid in ids}
    scores = evaluate.reconstruction_scores(meshes, truth, seed=seed)
    order = list(truth)
    out: dict[str, Any] = {
        "per_object": {
            m: {k: {oid: float(x) for oid, x in zip(order, v, strict=True)} for k, v in s.items()}
            for m, s in scores.items()
        }
    }
    for name, ids in {**sets, "all": order}.items():
        iou = {m: np.array([out["per_object"][m]["volumetric_iou"][oid] for oid in ids]) for m in meshes}
        row: dict[str, Any] = {f"iou_{m}": float(v.mean()) for m, v in iou.items()}
        if len(ids) >= 2:
            row["iou_sjc_minus_sjc_i"] = bootstrap.paired_difference(iou["sjc"], iou["sjc_i"], seed=seed)
        out[name] = row
    return out


def run(args: argparse.Namespace) -> None:
    params = stages.load_params(args.params)
    group = params["sjc"]
    data_dir, seed, view = Path(group["data_dir"]), int(group["seed"]), int(group["input_view"])
    counts = group["objects_per_set"]
    if args.objects:
        counts = {name: int(count) for name, _, count in (item.partition("=") for item in args.objects.split(","))}
    split = data.read_manifest(data_dir)["split"]
    sets = {name: split[name][: int(count)] for name, count in counts.items()}
    variants = {name: VARIANTS[name] for name in args.variants.split(",") if name} if args.variants else {}
    variants |= dict(parse_variant(spec) for spec in args.variant or [])
    configs = {name: variant_config(group["config"], overrides) for name, overrides in variants.items()}
    work = Path(args.work)
    object_ids = list(dict.fromkeys(oid for ids in sets.values() for oid in ids))
    priors = {
        method: Zero123Components.load_pretrained(Path(group["models_dir"]) / folder / "model")
        for method, folder in (("sjc", "pose"), ("sjc_i", "no_pose"))
    }
    fingerprints = {m: fingerprint.components_fingerprint(prior) for m, prior in priors.items()}
    meshes, seconds = {}, {}
    for v in variants:
        if not variants[v]:
            copied = seed_from_stage04(data_dir / "sjc", work / v, object_ids, fingerprints)
            print(f"{v}: {copied} finished runs copied from stage 04 (reused if made from the same models)", flush=True)
        print(f"variant {v}: {variants[v] or 'stage 04 as it is'}", flush=True)
        records = reconstruction.reconstruct_objects(
            priors, data_dir, object_ids, view, configs[v], seed, work / v, num_workers=args.workers
        )
        meshes[v] = {m: {oid: outputs.mesh_path(work / v, m, oid) for oid in object_ids} for m in priors}
        seconds[v] = sum(r["seconds"] for runs in records.values() for r in runs.values() if not r["resumed_from"])
        for m, runs in records.items():
            for oid, r in runs.items():
                if r["mesh_error"]:
                    print(f"{v} {m} {oid}: no mesh ({r['mesh_error']})", flush=True)
    evaluate_seed = int(params["evaluate"]["seed"])
    rows = {
        v: {
            "overrides": variants[v],
            "sjc_seconds_this_run": round(seconds[v], 1),
            "priors": fingerprints,
            **summarize(meshes[v], sets, data_dir, evaluate_seed),
        }
        for v in variants
    }
    earlier = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else None
    rows, dropped = merge_earlier(earlier, rows, sets, fingerprints)
    if dropped:
        print(f"{args.out}: dropped {', '.join(dropped)} (other objects or models than this run's)", flush=True)
    result = {
        "variants": rows,
        "sets": sets,
        "workers": args.workers,
        "load_average": list(os.getloadavg()),
        "environment": repro.environment_info(),
    }
    files.write_json_atomic(args.out, result)
    print("| variant | set | IoU SJC | IoU SJC-I | SJC - SJC-I [95% CI] |\n| --- | --- | ---: | ---: | --- |")
    for v, row in result["variants"].items():
        for name in [*sets, "all"]:
            s, d = row[name], row[name].get("iou_sjc_minus_sjc_i")
            ci = f"{d['mean_difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" if d else "-"
            print(f"| {v} | {name} | {s['iou_sjc']:.3f} | {s['iou_sjc_i']:.3f} | {ci} |")
    print(f"wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--variants", default="default", help=f"names from VARIANTS: {', '.join(VARIANTS)}")
    p.add_argument("--variant", nargs="+", action="append", metavar="NAME KEY=VALUE", help="a variant of your own")
    p.add_argument("--objects", default="", help="SET=COUNT,... (default: stage 04's objects_per_set)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--work", default=".sweep/sjc")
    p.add_argument("--out", default="results/benchmarks/sjc_sweep.json")
    args = parser.parse_args()
    run(args)


if __name__ == "__main__":
    main()
