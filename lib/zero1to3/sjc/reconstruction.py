"""Stage 04's orchestration: reconstruct held-out objects by SJC and SJC-I, resumably, and show the results.

`system.reconstruct` is the method (one field from one view); this module runs it over objects and methods
with a record per run (`reconstruct_object`: reused only when made from the same prior, input, seed and
config), reads the fields back (`load_field`), draws turntables next to the true meshes
(`turntable_figure_rows`) and sums up the stage (`stage_metrics`). Files go where `outputs.mesh_path` says.
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float, UInt8

from zero1to3.config import SJCConfig
from zero1to3.core import checkpoints, figures, fingerprint, outputs, workers
from zero1to3.core import progress as zprogress
from zero1to3.dataset import data
from zero1to3.evaluation import pixel_metrics
from zero1to3.model.components import Zero123Components
from zero1to3.sjc import mesh, system, voxel

logger = logging.getLogger(__name__)

_WORKER_PRIORS: dict[str, Zero123Components] = {}  # in a worker of `reconstruct_objects`: its priors

Record = dict[str, Any]
"""What `reconstruct_object` writes beside a mesh: settings, identity, seconds, history, mesh_error. The record it
returns also says how much of it this call took over from an earlier run (`resumed_from`, never written): the
iterations of a finished reconstruction reused whole, a checkpoint's iteration, or 0."""


def reconstruct_object(
    prior: Zero123Components,
    use_pose: bool,
    rgba: UInt8[np.ndarray, "H W 4"],
    center: Float[np.ndarray, " 3"],
    cfg: SJCConfig,
    seed: int,
    mesh_file: str | Path,
    settings: dict[str, Any],
) -> Record:
    """Reconstruct one object by SJC unless it was done before from the same inputs; write mesh, field, record.

    A finished reconstruction is reused only if its record has the same `settings` and the same run identity
    (`system.run_identity`: the prior model's fingerprint, the input view, seed, method and config); any change,
    a retrained model included, reconstructs afresh. The returned record's `resumed_from` says what was reused
    (`Record`). The field is checkpointed under `<mesh>.checkpoints/`
    while it trains (a killed run resumes there) and the checkpoints are removed once the mesh and record are
    written. A field without a surface is recorded with its error (stage 05 counts it as a failure) rather
    than raised.
    """
    mesh_file = Path(mesh_file)
    record_file, field_file = mesh_file.with_suffix(".json"), mesh_file.with_suffix(".field.pt")
    identity = system.run_identity(prior, rgba, center, cfg, seed, use_pose)
    record, same = None, False
    if field_file.is_file():
        expected = {"settings": settings, "identity": identity}
        record, same = fingerprint.load_saved(record_file, outputs.load_run_record, expected)
    if same:
        return record | {"resumed_from": len(record["history"])}
    if record is not None:
        logger.info("%s was made from other inputs or settings: reconstructing afresh", record_file)
    checkpoint_dir = mesh_file.with_suffix(".checkpoints")
    result = system.reconstruct(
        prior, rgba, center, cfg, seed, use_pose=use_pose, checkpoint_dir=checkpoint_dir, identity=identity
    )
    mesh_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        mesh.export_mesh(result.field, mesh_file)
        error = None
    except mesh.EmptyMeshError as err:
        mesh_file.unlink(missing_ok=True)
        error = str(err)
    checkpoints.write(field_file, result.field.state_dict())  # stage 04's field file: the bare state dict
    record = {
        "settings": settings,
        "identity": identity,
        "seconds": result.seconds,
        "history": result.history,
        "mesh_error": error,
    }
    outputs.save_run_record(record_file, record)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return record | {"resumed_from": result.resumed_from}


def reconstruct_objects(
    priors: dict[str, Zero123Components],
    data_dir: str | Path,
    object_ids: list[str],
    input_view: int,
    cfg: SJCConfig,
    seed: int,
    sjc_dir: str | Path,
    num_workers: int = 1,
) -> dict[str, dict[str, Record]]:
    """Every object by every method (`{method: prior}`, methods of `outputs.SJC_METHODS`): `{method: {id: record}}`.

    Each object is reconstructed from its view `input_view`, with the same seed for every method, so SJC and
    SJC-I differ only in their prior. With `num_workers` > 1 the runs go to that many spawned processes (which die
    with this one), each with `cores // num_workers` torch threads: SJC runs on `cfg.num_threads` threads (1 by
    default: the tiny networks cannot keep two busy), so two workers use both cores of a 2-core machine and take
    half the time. Every run is the same computation either way (same seed, same thread count), so the records
    and meshes do not depend on `num_workers`. CPU only: priors on a GPU need `num_workers` 1.
    """
    unknown = set(priors) - set(outputs.SJC_METHODS)
    if unknown:
        raise ValueError(f"unknown reconstruction methods {sorted(unknown)}; methods: {list(outputs.SJC_METHODS)}")
    if num_workers < 1:
        raise ValueError(f"`num_workers` must be >= 1, got {num_workers}")
    settings = {"config": cfg.to_dict(), "seed": seed, "input_view": input_view}
    jobs = [(method, oid) for oid in object_ids for method in priors]
    if num_workers == 1:
        done = {}
        for oid in zprogress.bar(object_ids, desc="objects", unit="object"):
            for method, prior in priors.items():
                done[method, oid] = _reconstruct_job(
                    prior, method, oid, data_dir, input_view, cfg, seed, sjc_dir, settings
                )
    else:
        done = _reconstruct_in_workers(priors, jobs, num_workers, data_dir, input_view, cfg, seed, sjc_dir, settings)
    return {method: {oid: done[method, oid] for oid in object_ids} for method in priors}


def _reconstruct_job(
    prior: Zero123Components | None,
    method: str,
    oid: str,
    data_dir: str | Path,
    input_view: int,
    cfg: SJCConfig,
    seed: int,
    sjc_dir: str | Path,
    settings: dict[str, Any],
) -> Record:
    """One run of `reconstruct_objects` (`prior` None: this worker's prior of `method`)."""
    prior = _WORKER_PRIORS[method] if prior is None else prior
    views = data.load_object(data_dir, oid)
    return reconstruct_object(
        prior,
        outputs.SJC_METHODS[method],
        views.rgba[input_view],
        system.render_input_center(views, input_view),
        cfg,
        seed,
        outputs.mesh_path(sjc_dir, method, oid),
        settings,
    )


def _reconstruct_in_workers(
    priors: dict[str, Zero123Components],
    jobs: list[tuple[str, str]],
    num_workers: int,
    data_dir: str | Path,
    input_view: int,
    cfg: SJCConfig,
    seed: int,
    sjc_dir: str | Path,
    settings: dict[str, Any],
) -> dict[tuple[str, str], Record]:
    done = {}
    with workers.process_pool(min(num_workers, len(jobs)), _set_worker_priors, (priors,)) as pool:
        futures = {
            pool.submit(_reconstruct_job, None, method, oid, data_dir, input_view, cfg, seed, sjc_dir, settings): (
                method,
                oid,
            )
            for method, oid in jobs
        }
        for future in zprogress.bar(as_completed(futures), total=len(futures), desc="sjc runs", unit="run"):
            done[futures[future]] = future.result()
    return done


def _set_worker_priors(priors: dict[str, Zero123Components]) -> None:
    _WORKER_PRIORS.update(priors)


def load_field(field_file: str | Path, cfg: SJCConfig, latent_channels: int) -> voxel.VoxelField:
    """The voxel field `reconstruct_object` saved beside a mesh, rebuilt with the run's `SJCConfig`."""
    field_file = Path(field_file)
    if not field_file.is_file():
        raise FileNotFoundError(f"no saved field at {field_file}: run stage 04 first (`dvc repro sjc`)")
    return system.field_from_state(checkpoints.load(field_file), cfg, latent_channels)


def turntable_figure_rows(
    prior: Zero123Components,
    method: str,
    data_dir: str | Path,
    sjc_dir: str | Path,
    object_ids: list[str],
    input_view: int,
    cfg: SJCConfig,
    num_frames: int,
) -> dict[str, Float[np.ndarray, "K H W 3"]]:
    """`figures.turntable_rows` of each object: the field turning (from 60° polar at the input's distance), its
    depth, the extracted mesh and the true mesh from the same azimuths."""
    azimuths = list(np.linspace(0.0, 360.0, num_frames, endpoint=False))
    rows = {}
    for oid in object_ids:
        views, mesh_file = data.load_object(data_dir, oid), outputs.mesh_path(sjc_dir, method, oid)
        field = load_field(mesh_file.with_suffix(".field.pt"), cfg, prior.unet.config.out_channels)
        radius = float(views.meta["radius"][input_view])
        spin = system.render_turntable(field, prior, num_frames, radius=radius, polar_deg=60.0)
        shots = [
            figures.mesh_snapshots(f, azimuths, elevation_deg=30.0, size_px=64)
            for f in (mesh_file, data.object_dir(data_dir, oid) / "mesh.obj")
        ]
        rows |= figures.turntable_rows(oid, data.composite_on_white(views.rgba[input_view]), spin, *shots)
    return rows


def input_view_scores(
    priors: dict[str, Zero123Components],
    data_dir: str | Path,
    sjc_dir: str | Path,
    object_ids: list[str],
    input_view: int,
    cfg: SJCConfig,
) -> dict[str, dict[str, dict[str, float]]]:
    """How well each saved field reproduces what it was given: its render from the input camera, decoded by the
    prior's VAE, against the input view on white. `{method: {id: {"psnr", "fg_psnr"}}}`.

    The field is fitted to this view (`loss_input`, `loss_input_mask`), so a low score means the fit failed; the
    VAE's own round trip bounds it from above.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method, prior in priors.items():
        out[method] = {}
        for oid in object_ids:
            views, mesh_file = data.load_object(data_dir, oid), outputs.mesh_path(sjc_dir, method, oid)
            field = load_field(mesh_file.with_suffix(".field.pt"), cfg, prior.unet.config.out_channels)
            center = system.render_input_center(views, input_view)[None]
            rendered = system.render_images(field, prior, center, cfg.samples_per_ray, cfg.background_depth)["rgb"]
            truth = data.composite_on_white(views.rgba[input_view])[None]
            out[method][oid] = {
                "psnr": pixel_metrics.image_metrics(rendered, truth)["psnr"],
                "fg_psnr": pixel_metrics.foreground_psnr(rendered, truth)["foreground_psnr"],
            }
    return out


def input_view_lines(input_scores: dict[str, dict[str, dict[str, float]]]) -> str:
    """One markdown line per method: mean PSNR and foreground PSNR of the fields' renders from the input camera."""
    lines = []
    for method, per_object in input_scores.items():
        psnr = np.mean([v["psnr"] for v in per_object.values()])
        fg = np.mean([v["fg_psnr"] for v in per_object.values()])
        lines.append(
            f"- {method}: {psnr:.1f} dB PSNR, {fg:.1f} dB foreground PSNR from the input camera "
            f"({len(per_object)} objects)"
        )
    return "\n".join(lines)


def loss_histories(records: dict[str, dict[str, Record]], object_ids: list[str]) -> dict[str, list[dict[str, float]]]:
    """`{"<method> <id>": history}` of the given objects, with `step` = iteration (for `figures.loss_curves`)."""
    return {
        f"{method} {oid}": [{"step": row["iteration"]} | row for row in recs[oid]["history"]]
        for method, recs in records.items()
        for oid in object_ids
    }


def stage_metrics(
    records: dict[str, dict[str, Record]],
    cfg: SJCConfig,
    input_scores: dict[str, dict[str, dict[str, float]]] | None = None,
) -> dict[str, float | int]:
    """Stage 04's metrics: mean seconds per object, objects and empty meshes per method, iterations, and (given
    `input_view_scores`) the mean PSNR and foreground PSNR of the fields' renders from the input camera."""
    metrics: dict[str, float | int] = {}
    for method, recs in records.items():
        metrics[f"{method}/seconds_per_object"] = float(np.mean([r["seconds"] for r in recs.values()]))
    for method, recs in records.items():
        metrics[f"{method}/num_objects"] = len(recs)
    for method, recs in records.items():
        metrics[f"{method}/num_empty"] = sum(r["mesh_error"] is not None for r in recs.values())
    for method, per_object in (input_scores or {}).items():
        for key in ("psnr", "fg_psnr"):
            values = [v[key] for v in per_object.values() if np.isfinite(v[key])]
            if values:
                metrics[f"{method}/input_view_{key}"] = float(np.mean(values))
    metrics["iterations"] = cfg.iterations
    return metrics


def summary_lines(records: dict[str, dict[str, Record]]) -> str:
    """One markdown line per method: mean and max seconds per object, and how many fields had no surface."""
    lines = []
    for method, recs in records.items():
        seconds = [r["seconds"] for r in recs.values()]
        empty = sum(r["mesh_error"] is not None for r in recs.values())
        lines.append(
            f"- {method}: {np.mean(seconds):.0f} s per object (max {np.max(seconds):.0f} s), {empty} without a surface"
        )
    return "\n".join(lines)


def reuse_line(records: dict[str, dict[str, Record]], sjc_dir: str | Path) -> str:
    """`progress.reuse_line` of `reconstruct_objects`' records: finished reconstructions reused whole, and runs
    continued from a checkpoint, per method."""
    parts = []
    for method, recs in records.items():
        finished = sum(0 < r["resumed_from"] == len(r["history"]) for r in recs.values())
        resumed = sum(0 < r["resumed_from"] < len(r["history"]) for r in recs.values())
        counts = [f"{finished} finished"] * bool(finished) + [f"{resumed} checkpointed"] * bool(resumed)
        parts += [f"{' and '.join(counts)} of {len(recs)} {method} objects"] if counts else []
    return zprogress.reuse_line(parts, f"`{Path(sjc_dir).as_posix()}/`")
