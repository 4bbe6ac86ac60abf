"""Stage 01: render the multi-view dataset with Blender Cycles (bpy), as the paper does.

Per object (docs/conventions.md#dataset-rendering): normalise the mesh into the unit cube, light it (randomised once per
object), render `num_views` random views as RGBA PNG on a transparent background, and save for
each view the paper's 3x4 world-to-camera matrix. Layout of `data_dir`:

    manifest.json                 split lists, per-object status (ok / failed + error), settings
    renders/<object_id>/
        000.png ... NNN.png       RGBA, alpha 0 off the object
        000.npy ... NNN.npy       3x4 world-to-camera (Blender camera axes, see `cameras`)
        mesh.obj (+ .mtl, texture) the normalised mesh as rendered (ground truth for 3D metrics)
        meta.json                 spherical coordinates per view, lighting, settings, the mesh file's SHA-256
    everyday/<category>_NNNN.ply  the procedural everyday objects (`everyday.py`), written by `everyday_sources`

Identical settings write byte-identical files (no timings or dates in any of them): `data/renders`
and the manifest are DVC outputs, and a changed hash would rerun every later stage.

Each object is rendered into `<object_id>.partial/` and swapped into place when complete (the old
folder, if any, is renamed aside to `<object_id>.replaced/` first and removed after), so a killed run
leaves no half-written object under its final name, and an object is only replaced by a render that
succeeded. A rerun skips finished objects whose settings and mesh file (by SHA-256) match and redoes the rest, so
an edited mesh, or an edit to the everyday objects' generator, renders again.

Sharding (a cluster's job array over a large object list): job K of N (`python -m zero1to3 render --shard K/N`)
renders `objects.shard` K-1 of the object list into the same `renders/` and writes `manifest.shard-K-of-N.json`
instead of the manifest; `merge_manifests` (`render --merge N`) then writes the manifest the unsharded run would
have written, and removes the shard files.

Blender runs in worker processes, never in the caller (a notebook kernel stays free of Blender's
global state); a worker dies with the process that started it. An error about an object's mesh
skips that object; any other error (disk full, permissions, a crashed worker) stops the stage.

This module is the crash-safe, multi-process render loop (recovery after a kill, workers that die with their
parent); the Blender scene that each worker sets up and renders with is `scene`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from zero1to3.config import ObjectSourceEntry, RenderConfig
from zero1to3.core import files
from zero1to3.core import progress as zprogress
from zero1to3.dataset import everyday, objects, scene
from zero1to3.dataset.data import MANIFEST_NAME, RENDERS_DIR

logger = logging.getLogger(__name__)


PARTIAL_SUFFIX = ".partial"


"""An object being rendered; removed by the next run if a kill leaves it behind."""


REPLACED_SUFFIX = ".replaced"


"""An object's previous folder during the swap; put back by the next run if a kill leaves it alone."""


SHOWN_ERRORS = 3


"""Failures quoted in the error raised when every object failed."""


"""PNG chunks that carry text and time, not pixels: Cycles writes its render times there."""


EVERYDAY_DIR = "everyday"


"""Under `data_dir`: the procedural everyday objects' meshes (`everyday_sources`)."""


EVERYDAY_PREFIX = "every_"


EVERYDAY_TEST_SET = "every_test"


"""The named evaluation set of the held-out everyday objects."""


class RenderError(RuntimeError):
    """The render stage stopped: every object failed, or an error not caused by an object occurred."""


@dataclasses.dataclass(frozen=True)
class ObjectResult:
    """What happened to one object."""

    object_id: str
    status: str
    """`ok` (rendered now), `cached` (finished earlier with the same settings) or `failed`."""
    error: str | None
    seconds: float
    """Time the object took to render in this run (0 when `cached`: timings are not stored with the data)."""
    views: int
    """Views rendered by this run (0 when cached or failed)."""


@dataclasses.dataclass(frozen=True)
class RenderSummary:
    """Result of `render_dataset`."""

    manifest_path: Path
    split: dict[str, list[str]]
    """Objects per split that rendered successfully."""
    requested: dict[str, list[str]]
    """Objects per split that were asked for (failed ones included)."""
    results: list[ObjectResult]
    seconds: float

    @property
    def failed(self) -> list[ObjectResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def views_rendered(self) -> int:
        return sum(r.views for r in self.results)


def render_dataset(
    cfg: RenderConfig,
    progress: bool = True,
    extra_sources: dict[str, list[objects.ObjectSource]] | None = None,
    shard: tuple[int, int] | None = None,
    num_workers: int = 1,
) -> RenderSummary:
    """Render every object of the split given by `cfg` (its everyday objects and `sources` included), plus
    `extra_sources`; write the manifest.

    Args:
        extra_sources: Set name -> objects (`objects.folder_sources`), after those of `cfg.sources`: appended to
            `train`/`val`/`test`, or a named evaluation set of its own (`objects.add_sources`).
        shard: `(index, count)`: render only `objects.shard(index, count)` of the object list and write a shard
            manifest (`merge_manifests` joins them).
        num_workers: Blender processes sharing the CPU's cores (`render_objects`).
    """
    split = objects.make_split(cfg.num_train, cfg.num_val, cfg.num_test, list(cfg.zero_shot), cfg.seed)
    extra = everyday_sources(cfg)
    for name, group in [*config_sources(cfg.sources).items(), *(extra_sources or {}).items()]:
        extra.setdefault(name, []).extend(group)
    split = objects.add_sources(split, extra)
    by_id = {s.object_id: s for group in extra.values() for s in group}
    sources = [by_id[oid] if oid in by_id else objects.source_for(oid) for ids in split.values() for oid in ids]
    return render_objects(sources, split, cfg, progress=progress, shard=shard, num_workers=num_workers)


def everyday_sources(cfg: RenderConfig) -> dict[str, list[objects.ObjectSource]]:
    """The procedural everyday objects of `cfg`, as `objects.add_sources` takes them.

    Writes `everyday.train + everyday.test` of them (`everyday.write_everyday_objects`, seeded by `cfg.seed`:
    the same bytes every run) into `<data_dir>/everyday/`, removing meshes of an earlier, larger count; then draws
    `everyday.test` (seeded) as the set `every_test` and puts the rest in `train`. Ids are `every_<file stem>`.
    """
    count = cfg.everyday.train + cfg.everyday.test
    if count == 0:
        return {}
    folder = Path(cfg.data_dir) / EVERYDAY_DIR
    written = set(everyday.write_everyday_objects(folder, count, cfg.seed))
    for stale in folder.glob("*.ply"):
        if stale not in written:
            stale.unlink()
    sources = objects.folder_sources(folder, "*.ply", "Z", prefix=EVERYDAY_PREFIX)
    ids = [s.object_id for s in sources]
    held_out = set(np.random.default_rng(cfg.seed).permutation(ids)[: cfg.everyday.test].tolist())
    return {
        "train": [s for s in sources if s.object_id not in held_out],
        EVERYDAY_TEST_SET: [s for s in sources if s.object_id in held_out],
    }


def config_sources(entries: list[ObjectSourceEntry]) -> dict[str, list[objects.ObjectSource]]:
    """`render.sources` as `objects.add_sources` takes them: set name -> its objects, in the entries' order.

    Every folder and list file is listed (and checked, `objects.folder_sources`) before anything renders.

    Raises:
        ValueError: a list file with a `glob` (its lines name the meshes), or a folder without one; or any error of
            `objects.folder_sources` (an empty folder, an unsupported format, clashing ids), naming the entry.
        FileNotFoundError: a path that is neither a folder nor a file, or a listed mesh that does not exist.
    """
    extra: dict[str, list[objects.ObjectSource]] = {}
    for i, entry in enumerate(entries):
        where, path = f"render.sources[{i}] ({entry.path})", Path(entry.path)
        if path.is_file() and entry.glob:
            raise ValueError(f"{where}: a list file names its meshes itself, so `glob` must be '', got {entry.glob!r}")
        if path.is_dir() and not entry.glob:
            raise ValueError(f"{where}: a folder needs a `glob` of its meshes, e.g. '*.glb' or '*/meshes/model.obj'")
        color = None if entry.color_rgba is None else tuple(entry.color_rgba)
        try:
            found = objects.folder_sources(path, entry.glob, entry.up_axis, color, entry.prefix)
        except (ValueError, FileNotFoundError) as err:
            raise type(err)(f"{where}: {err}") from err
        extra.setdefault(entry.split, []).extend(found)
    return extra


def shard_manifest_name(index: int, count: int) -> str:
    """The manifest file of shard `index` (0-based) of `count`: `manifest.shard-K-of-N.json`, K = index + 1."""
    return f"{Path(MANIFEST_NAME).stem}.shard-{index + 1}-of-{count}.json"


def render_objects(
    sources: list[objects.ObjectSource],
    split: dict[str, list[str]],
    cfg: RenderConfig,
    progress: bool = True,
    shard: tuple[int, int] | None = None,
    num_workers: int = 1,
) -> RenderSummary:
    """Render `sources` into `cfg.data_dir`, resuming finished objects, and write the manifest.

    An object whose mesh is unusable (`is_object_error`) is logged, recorded in the manifest with its
    error and left out of the split lists; nothing new of it is left on disk (a folder rendered
    earlier with other settings stays as it was); the run goes on.

    With `shard = (index, count)` only `objects.shard(index, count)` of `sources` is rendered, and the manifest goes to
    `shard_manifest_name(index, count)` with the whole requested split beside it, for `merge_manifests`.

    Raises:
        RenderError: every object failed (then neither the renders nor the manifest are changed),
            or an error not caused by an object occurred (disk full, permissions, a crashed worker).
    """
    start = time.perf_counter()
    if shard is not None:
        keep = set(objects.shard([s.object_id for s in sources], *shard))
        sources = [s for s in sources if s.object_id in keep]
    renders = Path(cfg.data_dir) / RENDERS_DIR
    renders.mkdir(parents=True, exist_ok=True)
    _recover_interrupted(renders)

    settings = cfg.render_settings()
    todo, results = [], []
    for source in sources:
        if _is_finished(renders / source.object_id, settings, scene.mesh_sha256(source)):
            results.append(ObjectResult(source.object_id, "cached", None, 0.0, 0))
        else:
            todo.append(source)
    if todo:
        results += _render_all(todo, renders, cfg, progress, num_workers)
    if results and all(r.status == "failed" for r in results):
        raise RenderError(_all_failed_message(results, renders))

    status = {r.object_id: r for r in results}
    ok_split = {
        name: [oid for oid in ids if oid in status and status[oid].status != "failed"] for name, ids in split.items()
    }
    manifest: dict[str, Any] = {
        "settings": settings,
        "split": ok_split,
        "failed": {r.object_id: r.error for r in results if r.status == "failed"},
        "objects": {
            # "ok" whether rendered now or reused: the manifest describes the data, not this run, so a
            # resumed render writes the same file as an uninterrupted one (and later stages do not rerun).
            s.object_id: {
                "mesh_path": objects.display_path(s.mesh_path),
                "status": "failed" if status[s.object_id].status == "failed" else "ok",
            }
            for s in sources
        },
    }
    manifest_path = Path(cfg.data_dir) / MANIFEST_NAME
    if shard is not None:
        manifest |= {"shard": [shard[0] + 1, shard[1]], "requested": split}
        manifest_path = Path(cfg.data_dir) / shard_manifest_name(*shard)
    files.write_json_atomic(manifest_path, manifest)
    order = {s.object_id: i for i, s in enumerate(sources)}
    results.sort(key=lambda r: order[r.object_id])
    return RenderSummary(manifest_path, ok_split, split, results, time.perf_counter() - start)


def merge_manifests(data_dir: str | Path, count: int) -> Path:
    """Join the `count` shard manifests in `data_dir` into the manifest an unsharded run writes; remove them.

    Raises:
        FileNotFoundError: a shard's manifest is missing (its job has not finished, or failed).
        ValueError: the shards were rendered with different settings or different object lists.
    """
    data_dir = Path(data_dir)
    paths = [data_dir / shard_manifest_name(i, count) for i in range(count)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"cannot merge {count} shards in {data_dir}: missing {missing} (unfinished jobs?)")
    shards = [json.loads(p.read_text()) for p in paths]
    first = shards[0]
    for path, m in zip(paths, shards, strict=True):
        if m["settings"] != first["settings"] or m["requested"] != first["requested"]:
            raise ValueError(f"{path.name} was rendered with other settings or objects than {paths[0].name}")
    objects_ = {oid: rec for m in shards for oid, rec in m["objects"].items()}
    failed = {oid: err for m in shards for oid, err in m["failed"].items()}
    requested = first["requested"]
    order = [oid for ids in requested.values() for oid in ids]
    unrendered = [oid for oid in order if oid not in objects_]
    if unrendered:
        raise ValueError(f"the {count} shards leave {len(unrendered)} objects unrendered, first {unrendered[0]}")
    manifest = {
        "settings": first["settings"],
        "split": {name: [oid for oid in ids if oid not in failed] for name, ids in requested.items()},
        "failed": {oid: failed[oid] for oid in order if oid in failed},
        "objects": {oid: objects_[oid] for oid in order},
    }
    out = data_dir / MANIFEST_NAME
    files.write_json_atomic(out, manifest)
    for path in paths:
        path.unlink()
    return out


def _render_all(
    todo: list[objects.ObjectSource], renders: Path, cfg: RenderConfig, progress: bool, num_workers: int
) -> list[ObjectResult]:
    """Render `todo` in worker processes; object errors come back as `failed` results, others stop the run."""
    if num_workers < 1:
        raise ValueError(f"`num_workers` must be >= 1, got {num_workers}")
    # Blender uses all threads it is given; split the cores between the worker processes.
    threads = max(1, (os.cpu_count() or 1) // num_workers)
    results = []
    # A fresh interpreter per worker (bpy must not be forked). Unlike multiprocessing.Pool, an
    # executor whose worker dies raises BrokenProcessPool instead of respawning it forever.
    with ProcessPoolExecutor(
        min(num_workers, len(todo)),
        mp.get_context("spawn"),
        initializer=scene.init_worker,
        initargs=(cfg, threads, os.getpid()),
    ) as pool:
        jobs: dict[Future, objects.ObjectSource] = {pool.submit(_render_one_safe, (s, str(renders))): s for s in todo}
        bar = zprogress.bar(
            as_completed(jobs), total=len(jobs), desc="render", unit="obj", mininterval=10, disable=not progress
        )
        for job in bar:
            try:
                result = job.result()
            except Exception as err:  # not about the object (see `is_object_error`): stop the stage
                pool.shutdown(wait=True, cancel_futures=True)
                _remove_partials(renders)
                source = jobs[job]
                raise RenderError(
                    f"rendering stopped at object {source.object_id} ({objects.display_path(source.mesh_path)}) "
                    f"by an error that is not about the object, so no object is skipped for it: "
                    f"{type(err).__name__}: {err}"
                ) from err
            if result.status == "failed":
                logger.warning("object %s failed and is skipped: %s", result.object_id, result.error)
            results.append(result)
    return results


def _all_failed_message(results: list[ObjectResult], renders: Path) -> str:
    """The error when no object rendered: how many, the first errors, and that nothing was changed."""
    shown = "\n".join(f"  {r.object_id}: {r.error}" for r in results[:SHOWN_ERRORS])
    more = f"\n  ... and {len(results) - SHOWN_ERRORS} more" if len(results) > SHOWN_ERRORS else ""
    return (
        f"all {len(results)} objects failed to render, so {renders} and the manifest are left as they were; "
        f"first errors:\n{shown}{more}"
    )


def _is_finished(folder: Path, settings: dict[str, Any], mesh_digest: str | None) -> bool:
    """Whether `folder` holds an object finished earlier with `settings` from a mesh file of SHA-256 `mesh_digest`
    (it is never changed here)."""
    meta_path = folder / scene.META_NAME
    if not meta_path.is_file():  # not rendered, or an object folder without its meta (e.g. written by hand)
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:  # damaged by hand: render again (the folder is replaced only on success)
        return False
    same = mesh_digest is not None and meta.get("settings") == settings and meta.get("mesh_sha256") == mesh_digest
    return same and all(
        (folder / f"{i:03d}.{ext}").is_file() for i in range(settings["num_views"]) for ext in ("png", "npy")
    )


def _recover_interrupted(renders: Path) -> None:
    """Undo what a killed run left half done: remove `.partial` objects, put `.replaced` ones back."""
    _remove_partials(renders)
    for aside in renders.glob(f"*{REPLACED_SUFFIX}"):
        final = aside.with_name(aside.name.removesuffix(REPLACED_SUFFIX))
        if final.exists():  # killed after the new folder arrived: the old one is garbage
            _remove(aside)
        else:  # killed between the two renames: the old object is still the valid one
            os.replace(aside, final)


def _remove_partials(renders: Path) -> None:
    for partial in renders.glob(f"*{PARTIAL_SUFFIX}"):
        _remove(partial)


def _remove(path: Path) -> None:
    """Remove a folder or a file."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _swap_into_place(new: Path, final: Path) -> None:
    """Move the finished folder `new` to `final`, replacing what is there: old aside, new in, old removed.

    A kill at any point leaves either the old object or the new one under `final` (or the old one
    under `<final>.replaced`, which `_recover_interrupted` puts back).
    """
    aside = final.with_name(final.name + REPLACED_SUFFIX)
    if final.exists():
        os.replace(final, aside)
    os.replace(new, final)
    if aside.exists():
        _remove(aside)


def is_object_error(err: BaseException) -> bool:
    """Whether `err` is about the object being rendered (skip it) rather than the environment (stop).

    Object errors: a mesh that cannot be read, holds no triangles or non-finite vertices, or that
    Blender imports nothing from (all `objects.MeshError`; trimesh's parse errors are wrapped in it).
    Anything else (OSError such as a full disk or a read-only folder, a crashed worker, a bug) would
    fail for every object alike, so skipping objects for it would only empty the dataset.
    """
    return isinstance(err, objects.MeshError)


def _render_one_safe(job: tuple[objects.ObjectSource, str]) -> ObjectResult:
    """Render one object and swap it into place; an object error becomes a `failed` result, others raise."""
    source, renders = job
    start = time.perf_counter()
    partial = Path(renders) / f"{source.object_id}{PARTIAL_SUFFIX}"
    try:
        meta = scene.render_object(source, partial, scene.WORKER["cfg"])
        _swap_into_place(partial, Path(renders) / source.object_id)
    except Exception as err:  # classified below: skip the object, or stop the stage (nothing is substituted)
        shutil.rmtree(partial, ignore_errors=True)
        if not is_object_error(err):
            raise
        return ObjectResult(source.object_id, "failed", f"{type(err).__name__}: {err}", time.perf_counter() - start, 0)
    return ObjectResult(source.object_id, "ok", None, time.perf_counter() - start, len(meta["polar_deg"]))


def dataset_metrics(summary: RenderSummary, cfg: RenderConfig) -> dict[str, float]:
    """Flat counts and render cost of the dataset, for `results/metrics/render.json`.

    The counts describe the dataset, so a resumed run reports the same ones as an uninterrupted run.
    The cost (`render_ms_per_view`) is measured on the objects rendered by this run and is left out
    when every object was reused: timings are kept out of the data, whose bytes must not change.
    """
    done = [r for r in summary.results if r.status != "failed"]
    views = cfg.num_views * len(done)
    rendered = [r for r in summary.results if r.status == "ok"]
    metrics: dict[str, float] = {f"objects_{name}": len(ids) for name, ids in summary.split.items()}
    metrics["objects_train_everyday"] = sum(oid.startswith(EVERYDAY_PREFIX) for oid in summary.split.get("train", []))
    metrics |= {
        "objects_failed": len(summary.failed),
        "views_per_object": cfg.num_views,
        "views_total": views,
        "resolution_px": cfg.resolution_px,
        "samples_per_pixel": cfg.samples_per_pixel,
    }
    if rendered:
        metrics["render_ms_per_view"] = round(1000.0 * sum(r.seconds for r in rendered) / summary.views_rendered, 2)
    return metrics


def summary_table(summary: RenderSummary, cfg: RenderConfig) -> str:
    """A short markdown table of the dataset: objects and views per split."""
    rows = ["| split | objects | views | failed |", "| --- | ---: | ---: | ---: |"]
    for name, ids in summary.split.items():
        failed = len(summary.requested[name]) - len(ids)
        rows.append(f"| {name} | {len(ids)} | {len(ids) * cfg.num_views} | {failed} |")
    rows.append(
        f"\n{cfg.resolution_px} px RGBA, {cfg.samples_per_pixel} samples/pixel, camera distance "
        f"{cfg.radius_min}-{cfg.radius_max}, polar {cfg.polar_min_deg:g}-{cfg.polar_max_deg:g} deg; "
        f"{summary.views_rendered} views rendered in {summary.seconds:.0f} s this run "
        f"({len([r for r in summary.results if r.status == 'cached'])} objects reused)."
    )
    return "\n".join(rows)
