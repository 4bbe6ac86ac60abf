"""What stages 03-05 pass to each other: the held-out view sets, the samples drawn for them, the meshes.

Stage 03 draws novel views of every held-out object (test split and zero-shot set) from one input
view and saves them with the ground truth beside them (`save_samples`); stage 04 reconstructs a
subset of the same objects from the same input view and writes meshes (`mesh_path`); stage 05 reads
both back. Keeping the layout here, in one place, is what lets each stage be rerun on its own.

    data/samples/<set>.npz          input/target views and cameras, one uint8 array per method
    data/sjc/<method>/<id>.ply      reconstructed mesh in the dataset's normalised frame
    data/sjc/<method>/<id>.json     its loss history and timing
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int, UInt8

from zero1to3 import data, files

logger = logging.getLogger(__name__)

SJC_METHODS = {"sjc": True, "sjc_i": False}
"""Reconstruction methods -> whether the prior reads the pose (SJC-I: the no-pose baseline as prior)."""


@dataclasses.dataclass(frozen=True)
class HeldOutViews:
    """One input view and several target views per object, with their camera centres."""

    object_ids: list[str]
    input_view: int
    target_views: Int[np.ndarray, " T"]
    input_rgba: UInt8[np.ndarray, "N H W 4"]
    target_rgba: UInt8[np.ndarray, "N T H W 4"]
    input_centers: Float[np.ndarray, "N 3"]
    target_centers: Float[np.ndarray, "N T 3"]


def held_out_views(data_dir: str | Path, object_ids: list[str], input_view: int, num_targets: int) -> HeldOutViews:
    """The input view `input_view` of each object and the next `num_targets` views (cyclically) as targets.

    Cameras were drawn at random per view (stage 01), so "the next views" are a random set of
    viewpoints relative to the input, different for each object.
    """
    views = data.load_multiview(data_dir, object_ids)
    num_views = views.rgba.shape[1]
    if not 0 <= input_view < num_views:
        raise ValueError(f"`input_view` must be in 0..{num_views - 1}, got {input_view}")
    if not 1 <= num_targets < num_views:
        raise ValueError(f"`num_targets` must be in 1..{num_views - 1} (the other views), got {num_targets}")
    targets = (input_view + 1 + np.arange(num_targets)) % num_views
    return HeldOutViews(
        list(object_ids), input_view, targets, views.rgba[:, input_view], views.rgba[:, targets],
        views.camera_centers[:, input_view], views.camera_centers[:, targets],
    )  # fmt: skip


def save_samples(path: str | Path, views: HeldOutViews, predictions: dict[str, UInt8[np.ndarray, "N T H W 3"]]) -> Path:
    """Write the views and each method's generated images to one `.npz` (atomically)."""
    expected = views.target_rgba.shape[:-1] + (3,)
    for name, images in predictions.items():
        if images.shape != expected or images.dtype != np.uint8:
            raise ValueError(f"predictions[{name!r}] must be uint8 {expected}, got {images.dtype} {images.shape}")
    arrays = {f"pred_{name}": images for name, images in predictions.items()}
    fields = {f.name: getattr(views, f.name) for f in dataclasses.fields(views)}
    fields["object_ids"] = np.array(fields["object_ids"])
    fields["input_view"] = np.array(fields["input_view"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **fields, **arrays)
    tmp.replace(path)
    return path


def load_samples(path: str | Path) -> tuple[HeldOutViews, dict[str, np.ndarray]]:
    """Read back what `save_samples` wrote: the views and `{method: (N, T, H, W, 3) uint8}`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no samples at {path}: run stage 03 first (`dvc repro sample`)")
    with np.load(path) as npz:
        loaded = {k: npz[k] for k in npz.files}
    predictions = {k.removeprefix("pred_"): v for k, v in loaded.items() if k.startswith("pred_")}
    fields = {f.name: loaded[f.name] for f in dataclasses.fields(HeldOutViews)}
    fields["object_ids"] = [str(s) for s in fields["object_ids"]]
    fields["input_view"] = int(fields["input_view"])
    return HeldOutViews(**fields), predictions


def mesh_path(sjc_dir: str | Path, method: str, object_id: str) -> Path:
    """Where stage 04 writes `method`'s mesh of `object_id` (stage 05 reads it from here)."""
    if method not in SJC_METHODS:
        raise ValueError(f"unknown reconstruction method {method!r}; methods: {list(SJC_METHODS)}")
    return Path(sjc_dir) / method / f"{object_id}.ply"


def save_run_record(path: str | Path, record: dict[str, Any]) -> None:
    """A reconstruction's history and timing beside its mesh."""
    files.write_json_atomic(Path(path), record)


def load_run_record(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def save_gif(frames: Float[np.ndarray, "*shape"], path: str | Path, fps: float = 8.0, scale: int = 2) -> Path:
    """A looping animated GIF of `(F, H, W, 3)` frames in [0, 1], upscaled `scale` x (nearest) for display."""
    import imageio.v3 as iio

    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"`frames` must be (F, H, W, 3), got {frames.shape}")
    big = np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, (np.clip(big, 0.0, 1.0) * 255).round().astype(np.uint8), duration=1000.0 / fps, loop=0)
    return path


def mesh_snapshots(
    mesh_file: str | Path, azimuths_deg: list[float], elevation_deg: float = 20.0, size_px: int = 96
) -> Float[np.ndarray, "K H W 3"]:
    """Shaded pictures of a mesh from several azimuths (matplotlib, headless), `(K, H, W, 3)` in [0, 1].

    The axes span the unit cube [-0.5, 0.5]^3 of the normalised frame, Z up, so a reconstruction
    and its ground truth drawn this way share scale and orientation. A missing or empty mesh
    gives blank white pictures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import trimesh
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    mesh = trimesh.load(mesh_file, force="mesh") if Path(mesh_file).is_file() else None
    light = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    shots = []
    for azimuth in azimuths_deg:
        fig = plt.figure(figsize=(size_px / 100, size_px / 100), dpi=100)
        ax = fig.add_axes([0, 0, 1, 1], projection="3d")
        if mesh is not None and len(mesh.faces):
            shade = 0.35 + 0.65 * np.clip(mesh.face_normals @ light, 0.0, 1.0)
            colours = np.stack([shade * 0.55, shade * 0.7, shade * 0.9, np.ones_like(shade)], axis=1)
            ax.add_collection3d(Poly3DCollection(mesh.vertices[mesh.faces], facecolors=colours, linewidths=0))
        for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            setter(-0.5, 0.5)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=elevation_deg, azim=azimuth)
        ax.set_axis_off()
        fig.canvas.draw()
        shots.append(np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0)
        plt.close(fig)
    return np.stack(shots)


# ---------------------------------------------------------------------------------------------------------------
# Figure rows for the notebooks (`figures.image_grid` takes `{row label: (K, H, W, 3) in [0, 1]}`)

METHOD_LABELS = {"zero123": "ours", "no_pose": "no pose", "shuffled_pose": "shuffled pose"}


def comparison_rows(
    views: HeldOutViews, predictions: dict[str, UInt8[np.ndarray, "N T H W 3"]], indices: list[int]
) -> dict[str, Float[np.ndarray, "K H W 3"]]:
    """Per object: a row of the input then the true targets, then one row per method (a blank under the input)."""
    rows = {}
    for i in indices:
        oid = views.object_ids[i]
        truth = np.concatenate([data.composite_on_white(views.input_rgba[i])[None], data.composite_on_white(
            views.target_rgba[i])])  # fmt: skip
        rows[f"{oid}: input | truth"] = truth
        for method, images in predictions.items():
            rows[f"{oid}: {METHOD_LABELS.get(method, method)}"] = np.concatenate(
                [np.ones_like(truth[:1]), images[i] / 255.0]
            )
    return rows


def sampler_sweep_row(
    components: Any, views: HeldOutViews, index: int, scales: list[float], seeds: list[int], sampler: dict[str, Any]
) -> Float[np.ndarray, "K H W 3"]:
    """Input and first true target of object `index`, then its first target drawn at each (guidance scale, seed)."""
    from zero1to3 import pipeline

    if len(scales) != len(seeds):
        raise ValueError(f"one seed per guidance scale: {len(scales)} scales, {len(seeds)} seeds")
    cells = [data.composite_on_white(views.input_rgba[index]), data.composite_on_white(views.target_rgba[index, 0])]
    for scale, seed in zip(scales, seeds, strict=True):
        out = pipeline.generate_views(
            components, views.input_rgba[index : index + 1], views.input_centers[index : index + 1],
            views.target_centers[index : index + 1, :1], [views.object_ids[index]], sampler["ddim_steps"], scale,
            sampler["eta"], seed, progress=False,
        )  # fmt: skip
        cells.append(out[0, 0] / 255.0)
    return np.stack(cells)


def camera_sliders(pipe: Any, views: HeldOutViews, sampler: dict[str, Any], seed: int) -> Any:
    """Sliders for polar, azimuth and radius offsets that redraw the view (Jupyter; under papermill: one draw)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def draw(obj: str, polar: float, azimuth: float, radius: float) -> None:
        i = views.object_ids.index(obj)
        out = pipe(data.to_model_images(views.input_rgba[i])[None], polar_deg=[polar], azimuth_deg=[azimuth],
                   radius=[radius], num_inference_steps=sampler["ddim_steps"], guidance_scale=sampler["guidance_scale"],
                   eta=sampler["eta"], generator=torch.Generator().manual_seed(seed))  # fmt: skip
        fig, axes = plt.subplots(1, 2, figsize=(4, 2))
        shown = [data.composite_on_white(views.input_rgba[i]), out.array[0]]
        for ax, img, title in zip(axes, shown, ["input", "view"], strict=True):
            ax.imshow(img)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        plt.show()

    return widgets.interact(draw, obj=views.object_ids, polar=(-90.0, 90.0, 5.0), azimuth=(-180.0, 180.0, 10.0),
                            radius=(-0.5, 0.5, 0.05))  # fmt: skip


def best_worst_rows(
    views: HeldOutViews, predictions: dict[str, np.ndarray], values: np.ndarray, picks: dict[str, np.ndarray],
    methods: tuple[str, ...] = ("zero123", "no_pose"),
) -> dict[str, Float[np.ndarray, "K H W 3"]]:  # fmt: skip
    """`comparison_rows` for picked objects, labelled with the pick ("best"/"worst") and the object's value."""
    rows = {}
    for label, indices in picks.items():
        chosen = comparison_rows(views, {m: predictions[m] for m in methods}, [int(i) for i in indices])
        for key, row in chosen.items():
            oid = key.split(":")[0]
            rows[f"{label} ({values[views.object_ids.index(oid)]:.1f}) {key}"] = row
    return rows


def encoder_features(components: Any) -> Any:
    """`(N, H, W, 3)` images in [0, 1] -> `(N, D)` projected embeddings of the model's own image encoder.

    The offline Fréchet stand-in for FID (`metrics.frechet_feature_distance(..., name="tiny_clip")`).
    """
    from zero1to3 import models

    @torch.no_grad()
    def features(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(images)).float().permute(0, 3, 1, 2) * 2.0 - 1.0
        out = [models.encode_clip_image(components.image_encoder, components.feature_extractor, x[i : i + 256])
               for i in range(0, len(x), 256)]  # fmt: skip
        return torch.cat(out).numpy()

    return features


# ---------------------------------------------------------------------------------------------------------------
# Stage 04: one reconstruction, resumable, with its record


def reconstruct_object(
    prior: Any, use_pose: bool, rgba: UInt8[np.ndarray, "H W 4"], center: Float[np.ndarray, " 3"], cfg: Any,
    seed: int, mesh_file: Path, settings: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Reconstruct one object by SJC unless it was done before from the same inputs; write mesh, field, record.

    A finished reconstruction is reused only if its record has the same `settings` and the same run identity
    (`sjc.run_identity`: the prior model's fingerprint, the input view, seed, method and config); any change,
    a retrained model included, reconstructs afresh. The field is checkpointed under `<mesh>.checkpoints/`
    while it trains (a killed run resumes there) and the checkpoints are removed once the mesh and record are
    written. A field without a surface is recorded with its error (stage 05 counts it as a failure) rather
    than raised.
    """
    import shutil

    from zero1to3 import sjc

    mesh_file = Path(mesh_file)
    record_file, field_file = mesh_file.with_suffix(".json"), mesh_file.with_suffix(".field.pt")
    identity = sjc.run_identity(prior, rgba, center, cfg, seed, use_pose)
    if record_file.is_file() and field_file.is_file():
        record = load_run_record(record_file)
        if record.get("settings") == settings and record.get("identity") == identity:
            return record
        logger.info("%s was made from other inputs or settings: reconstructing afresh", record_file)
    checkpoints = mesh_file.with_suffix(".checkpoints")
    result = sjc.reconstruct(
        prior, rgba, center, cfg, seed, use_pose=use_pose, checkpoint_dir=checkpoints, identity=identity
    )
    mesh_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        sjc.export_mesh(result.field, mesh_file)
        error = None
    except sjc.EmptyMeshError as err:
        mesh_file.unlink(missing_ok=True)
        error = str(err)
    files.write_bytes_atomic(field_file, _state_bytes(result.field))
    record = {"settings": settings, "identity": identity, "seconds": result.seconds, "history": result.history,
              "mesh_error": error}  # fmt: skip
    save_run_record(record_file, record)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return record


def _state_bytes(module: torch.nn.Module) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getvalue()


def load_field(field_file: str | Path, cfg: Any, latent_channels: int) -> Any:
    """The voxel field `reconstruct_object` saved beside a mesh, rebuilt with the run's `SJCConfig`."""
    from zero1to3 import voxel

    field_file = Path(field_file)
    if not field_file.is_file():
        raise FileNotFoundError(f"no saved field at {field_file}: run stage 04 first (`dvc repro sjc`)")
    field = voxel.VoxelField(cfg.resolution, latent_channels, cfg.bound, cfg.density_shift)
    field.load_state_dict(torch.load(field_file, map_location="cpu", weights_only=True))
    return field


def turntable_rows(
    object_id: str, input_rgba: UInt8[np.ndarray, "H W 4"], spin: dict[str, np.ndarray],
    mesh_shots: Float[np.ndarray, "F S S 3"], truth_shots: Float[np.ndarray, "F S S 3"],
) -> dict[str, Float[np.ndarray, "K H W 3"]]:  # fmt: skip
    """Rows of the stage 04 figure: the input then the field's turntable, its depth, the mesh, the true mesh.

    Depth is shown near = dark, far = light, scaled per object; every picture is resized (nearest) to the
    image size so the rows line up.
    """
    size = input_rgba.shape[0]

    def fit(images: np.ndarray) -> np.ndarray:  # (F, h, w[, 3]) -> (F, size, size, 3), nearest
        idx = (np.arange(size) * images.shape[1] / size).astype(int)
        images = images[:, idx][:, :, idx]
        return images if images.ndim == 4 else np.repeat(images[..., None], 3, axis=-1)

    depth = spin["depth"] / max(float(spin["depth"].max()), 1e-6)
    blank = np.ones((1, size, size, 3))
    return {
        f"{object_id}: input, field": np.concatenate([data.composite_on_white(input_rgba)[None], fit(spin["rgb"])]),
        f"{object_id}: depth": np.concatenate([blank, fit(depth)]),
        f"{object_id}: mesh": np.concatenate([blank, fit(mesh_shots)]),
        f"{object_id}: true mesh": np.concatenate([blank, fit(truth_shots)]),
    }


def frechet_distances(
    samples: dict[str, tuple[HeldOutViews, dict[str, np.ndarray]]], features: Any, name: str = "tiny_clip"
) -> dict[str, float]:
    """Fréchet distance of each method's views to the true views, in `features` space, per set and pooled.

    Keys `<set>/<method>` (sets with more images than feature dimensions only: below that the covariance is
    singular and the distance meaningless) and `all/<method>` over every set together. The `copy_input`
    control (the input view, once per target) is included.
    """
    from zero1to3 import metrics

    pools: dict[str, dict[str, list[np.ndarray]]] = {}
    for views, predictions in samples.values():
        truth = data.composite_on_white(views.target_rgba).reshape(-1, *views.target_rgba.shape[-3:-1], 3)
        copies = np.repeat(data.composite_on_white(views.input_rgba), views.target_rgba.shape[1], axis=0)
        methods = {m: p.reshape(truth.shape) / 255.0 for m, p in predictions.items()} | {"copy_input": copies}
        for method, images in methods.items():
            pool = pools.setdefault(method, {"pred": [], "truth": []})
            pool["pred"].append(images)
            pool["truth"].append(truth)
    dim = features(pools[next(iter(pools))]["truth"][0][:2]).shape[1]
    out = {}
    for method, pool in pools.items():
        parts = list(zip(samples, pool["pred"], pool["truth"], strict=True))
        parts.append(("all", np.concatenate(pool["pred"]), np.concatenate(pool["truth"])))
        for set_name, pred, truth in parts:
            if len(truth) > dim:
                out[f"{set_name}/{method}"] = metrics.frechet_feature_distance(pred, truth, features, name)[
                    f"frechet_{name}"]  # fmt: skip
    return out
