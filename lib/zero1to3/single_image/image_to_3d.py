"""One image to a coloured mesh: the library side of `python -m zero1to3 reconstruct IMAGE --out DIR`.

The paper's promise, for a user's own picture. `reconstruct_image` runs the same SJC as stage 04
(`system.reconstruct`: same config, same seed, same code), from an input camera the user gives or the model
estimates (`elevation`: the model folder's probe, else silhouette consistency), and writes into one folder:

    input.png              the prepared input view (the object on white, framed as the renders)
    mesh.glb/.obj/.ply     the coloured mesh in the normalised frame, Z up (`mesh.py`)
    turntable.gif/.png     the field turning: an animation of its colour, and a strip of colour over depth
    field.pt               the optimised field with its run identity: a rerun re-exports without retraining
    polar_estimate.json    `--polar-deg auto`'s estimate, reused by a rerun with the same model and image
    reconstruction.json    settings, model fingerprint, timings, final losses: written last
    checkpoints/           while SJC runs: a killed run resumes there (removed once field.pt is written)

Nothing is reused across a change of model, image, camera, seed or config: `field.pt` and the
checkpoints carry `system.run_identity`, and a run whose identity differs starts afresh, first removing the
stale outputs. Mesh and turntable options are not part of the identity: changing them re-exports only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from jaxtyping import Float, UInt8
from PIL import Image

from zero1to3.config import SJCConfig
from zero1to3.core import checkpoints, figures, files, fingerprint
from zero1to3.model.components import Zero123Components
from zero1to3.novel_views import pipeline
from zero1to3.single_image import elevation, inputs
from zero1to3.sjc import mesh, system, voxel

logger = logging.getLogger(__name__)

# The renders' cameras cover the whole sphere (polar mean 92°, median 93° over the test and zero-shot views):
# the typical input is seen from the side. A photo taken from above needs a smaller value, or `auto`.
DEFAULT_POLAR_DEG = 90.0
TURNTABLE_POLAR_DEG = 60.0  # looking down a little, as stage 04's turntables: top and sides both show
GIF_FRAME_MS = 150
FIELD_FILE, RECORD_FILE, ESTIMATE_FILE = "field.pt", "reconstruction.json", "polar_estimate.json"
OUTPUTS = (
    "input.png",
    "mesh.glb",
    "mesh.obj",
    "mesh.ply",
    "turntable.gif",
    "turntable.png",
    FIELD_FILE,
    ESTIMATE_FILE,
    RECORD_FILE,
)


@dataclasses.dataclass(frozen=True)
class ImageReconstruction:
    """What `reconstruct_image` returns."""

    mesh: trimesh.Trimesh | None
    """The coloured mesh (as written to `mesh.*`); None when the field had no surface and `require_mesh` was off."""
    record: dict[str, Any]
    """The content of `reconstruction.json`."""
    files: dict[str, Path]
    """Everything written, by name (`mesh.glb`, `turntable.gif`, ...)."""
    polar_deg: float
    """The input camera's polar angle used (given, or estimated)."""
    trained: bool
    """False when a finished field of the same run was found in the folder and only re-exported."""


def prepare_rgba(
    image: Image.Image | str | Path, size_px: int, object_fraction: float | None
) -> UInt8[np.ndarray, "S S 4"]:
    """The input view as SJC takes it: RGB on white and an alpha, at the model's size.

    `object_fraction`: framed as the renders (`inputs.prepare_input`, what `sample` does); None keeps the
    image's own framing (it must already be `size_px` square, e.g. a render of stage 01, whose own alpha
    is kept exactly: then the run is stage 04's).
    """
    if not isinstance(image, Image.Image):
        image = inputs.load_image(image)
    if object_fraction is not None:
        prepared = inputs.prepare_input(image, size_px, object_fraction)
        alpha = prepared.mask[..., None].astype(np.float32)
        return (np.concatenate([prepared.image, alpha], axis=-1) * 255.0).round().astype(np.uint8)
    if image.size != (size_px, size_px):
        raise ValueError(
            f"keeping its framing, the image must be {size_px}x{size_px} px (the model's), got "
            f"{image.size[0]}x{image.size[1]}; let it be framed instead"
        )
    rgb, alpha = inputs.foreground(image)
    if not (alpha > 0.5).any():
        raise ValueError("no object found: the foreground mask is empty (fully transparent, or all background colour)")
    return (np.concatenate([rgb, alpha[..., None]], axis=-1) * 255.0).round().astype(np.uint8)


def check_camera(polar_deg: float | str, azimuth_deg: float, radius: float, cfg: SJCConfig) -> None:
    """A `ValueError` naming the value and the rule for an input camera SJC cannot use."""
    if polar_deg != "auto" and not (isinstance(polar_deg, int | float) and 0.0 <= polar_deg <= 180.0):
        raise ValueError(
            f"--polar-deg must be a number in [0, 180] (0: from straight above) or 'auto', got {polar_deg}"
        )
    if not math.isfinite(azimuth_deg):
        raise ValueError(f"--azimuth-deg must be a finite number, got {azimuth_deg}")
    if not (math.isfinite(radius) and cfg.radius_min <= radius <= cfg.radius_max):
        raise ValueError(
            f"--radius must lie in [{cfg.radius_min}, {cfg.radius_max}] (the random cameras' range, "
            f"within what the model was trained on), got {radius}"
        )


def check_writable(out_dir: str | Path) -> Path:
    """Create `out_dir` if needed and prove it writable, or raise an `OSError` naming it."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as err:
        raise OSError(f"cannot write to the output folder {out_dir}: {err.strerror or err}") from err
    return out_dir


def reconstruct_image(
    components: Zero123Components,
    image: Image.Image | str | Path,
    out_dir: str | Path,
    cfg: SJCConfig,
    seed: int,
    polar_deg: float | str = DEFAULT_POLAR_DEG,
    azimuth_deg: float = 0.0,
    radius: float | None = None,
    object_fraction: float | None = pipeline.DEFAULT_OBJECT_FRACTION,
    mesh_settings: mesh.MeshSettings | None = None,
    use_pose: bool = True,
    turntable_frames: int = 12,
    progress: bool = True,
    model_name: str = "",
    image_name: str | None = None,
    require_mesh: bool = True,
    elevation_probe: elevation.ElevationProbe | None = None,
) -> ImageReconstruction:
    """Reconstruct the object in `image` as a coloured mesh by SJC; resumable in `out_dir` (module docstring).

    Args:
        components: The view-conditioned model (stage 02's, or paper-scale weights on a GPU).
        image: A PIL image or a path: RGBA with a transparent background, or RGB on a plain backdrop.
        out_dir: The output folder (created; a rerun with the same inputs resumes or re-exports there).
        cfg: SJC settings (stage 04's: `params.yaml`'s `system.config`).
        seed: Seeds the field, the cameras and the score (and `auto`'s drawn views).
        polar_deg: The input camera's polar angle in degrees (90: from the side), or "auto" to estimate it.
        azimuth_deg: The input camera's azimuth; it only turns the result about Z (0: the camera on +X).
        radius: The input camera's distance; None: the middle of `cfg`'s random cameras' range.
        object_fraction: The share of the frame the object is scaled to (default: as the renders, what `sample`
            does); None keeps the image as it is (a render of stage 01: the run is then stage 04's).
        mesh_settings: Grid size, threshold and filters of the mesh (None: stage 04's, `mesh.MeshSettings()`).
        use_pose: False for the no-pose baseline model (SJC-I).
        turntable_frames: Frames of the turntable GIF and strip.
        progress: Show progress bars.
        model_name: Where the model came from, for the record.
        image_name: How errors about the image and the record name it (default: its path).
        require_mesh: False records a field without a surface (`mesh_error` in the record, no `mesh.*` files)
            instead of raising, as stage 04 does for its objects.
        elevation_probe: How `auto` estimates the polar angle: the model's probe (`elevation.load_probe` of its
            folder); None: by silhouette consistency (`elevation.estimate_polar`, less accurate).

    Raises:
        mesh.EmptyMeshError: the field has no surface at the threshold (the field is kept: rerun with another
            `mesh_settings` to re-export it).
    """
    tick = time.perf_counter()
    # 1. Check inputs, prepare the image
    radius = 0.5 * (cfg.radius_min + cfg.radius_max) if radius is None else float(radius)
    mesh_settings = mesh.MeshSettings() if mesh_settings is None else mesh_settings
    check_camera(polar_deg, azimuth_deg, radius, cfg)
    if turntable_frames < 1:
        raise ValueError(f"`turntable_frames` must be >= 1, got {turntable_frames}")
    out_dir = check_writable(out_dir)
    image_name = image_name or (str(image) if isinstance(image, str | Path) else "the input image")
    try:
        rgba = prepare_rgba(image, int(components.vae.config.sample_size), object_fraction)
    except ValueError as err:
        raise ValueError(f"{image_name}: {err}") from err
    written = {"input.png": _write_png(out_dir / "input.png", rgba)}
    prior = fingerprint.components_fingerprint(components)

    # 2. The input camera (estimated polar angle: reused from the folder when model, image and seed match)
    estimate_seconds, estimated, estimator = 0.0, polar_deg == "auto", None
    if estimated:
        estimate_tick = time.perf_counter()
        polar_deg, estimator = _estimate(components, rgba, seed, prior, use_pose, out_dir, elevation_probe)
        written[ESTIMATE_FILE] = out_dir / ESTIMATE_FILE
        estimate_seconds = time.perf_counter() - estimate_tick
    center = system.input_center(polar_deg, azimuth_deg, radius)  # (3,), as stage 04's
    identity = system.run_identity(components, rgba, center, cfg, seed, use_pose, prior_fingerprint=prior)

    # 3. The field: a finished one of this very run, else SJC (resuming from its checkpoints)
    field, sjc_record = _load_field(out_dir / FIELD_FILE, identity, components)
    trained = field is None
    if trained:
        _remove_stale(out_dir, keep={"input.png", ESTIMATE_FILE})
        result = system.reconstruct(
            components,
            rgba,
            center,
            cfg,
            seed,
            use_pose=use_pose,
            progress=progress,
            checkpoint_dir=out_dir / "checkpoints",
            identity=identity,
        )
        field, last = result.field, result.history[-1]
        sjc_record = {
            "sjc_seconds": result.seconds,
            "resumed_from": result.resumed_from,
            "final_losses": {k: v for k, v in last.items() if k.startswith("loss")},
        }
        _save_field(out_dir / FIELD_FILE, field, identity, sjc_record)
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    written[FIELD_FILE] = out_dir / FIELD_FILE

    # 4. Mesh and turntable (re-exported every run: they depend on options outside the identity)
    (out_dir / RECORD_FILE).unlink(missing_ok=True)  # a kill below must not leave a record of other options
    export_tick = time.perf_counter()
    try:
        coloured, mesh_error = mesh.coloured_mesh(field, components, mesh_settings, cfg.samples_per_ray), None
        written |= {p.name: p for p in mesh.write(coloured, out_dir).values()}
    except mesh.EmptyMeshError as err:
        if require_mesh:
            raise
        coloured, mesh_error = None, str(err)
        _remove_stale(out_dir, keep=set(OUTPUTS) - {"mesh.glb", "mesh.obj", "mesh.ply"})
    spin = system.render_turntable(
        field, components, turntable_frames, radius, TURNTABLE_POLAR_DEG, cfg.samples_per_ray, cfg.background_depth
    )
    written |= write_turntable(spin, out_dir)

    # 5. The record, last: its presence says the folder is complete
    record = {
        "image": image_name,
        "model": model_name,
        "prior_fingerprint": prior,
        "camera": {
            "polar_deg": float(polar_deg),
            "azimuth_deg": float(azimuth_deg),
            "radius": radius,
            "polar_estimated": estimated,
            "polar_estimator": estimator,
        },
        "settings": {
            "config": cfg.to_dict(),
            "seed": seed,
            "use_pose": use_pose,
            "object_fraction": object_fraction,
            "mesh": dataclasses.asdict(mesh_settings),
            "turntable_frames": turntable_frames,
        },
        "identity": identity,
        "trained_this_run": trained,
        **sjc_record,
        "mesh": None
        if coloured is None
        else {
            "vertices": len(coloured.vertices),
            "faces": len(coloured.faces),
            "watertight": bool(coloured.is_watertight),
        },
        "mesh_error": mesh_error,
        "seconds": {
            "polar_estimate": estimate_seconds,
            "export": time.perf_counter() - export_tick,
            "total": time.perf_counter() - tick,
        },
    }
    files.write_json_atomic(out_dir / RECORD_FILE, record)
    written[RECORD_FILE] = out_dir / RECORD_FILE
    return ImageReconstruction(coloured, record, written, float(polar_deg), trained)


def write_turntable(spin: dict[str, np.ndarray], out_dir: Path) -> dict[str, Path]:
    """`turntable.gif` (colour) and `turntable.png` (colour frames over depth frames, near = dark)."""
    rgb = spin["rgb"]  # (F, H, W, 3)
    size = rgb.shape[1]
    idx = np.arange(size) * spin["depth"].shape[1] // size  # nearest upsampling of the latent-size depth
    depth = spin["depth"][:, idx][:, :, idx]
    near, far = float(depth.min()), float(np.percentile(depth, 99))
    grey = np.clip((depth - near) / max(far - near, 1e-6), 0.0, 1.0)
    strip = np.concatenate(
        [np.concatenate(list(rgb), axis=1), np.concatenate(list(grey), axis=1)[..., None].repeat(3, axis=-1)], axis=0
    )  # (2H, F * W, 3)
    gif = figures.save_gif(rgb, out_dir / "turntable.gif", fps=1000.0 / GIF_FRAME_MS, scale=2)
    png = _write_png(out_dir / "turntable.png", (np.clip(strip, 0.0, 1.0) * 255).round().astype(np.uint8))
    return {"turntable.gif": gif, "turntable.png": png}


def load_field(field_file: str | Path, components: Zero123Components) -> voxel.VoxelField:
    """The field `reconstruct_image` saved, rebuilt from the config stored with it."""
    state = checkpoints.load(field_file)
    cfg = SJCConfig.from_dict(state["config"])
    field = system.field_from_state(state["field"], cfg, int(components.unet.config.out_channels))
    return field.to(components.vae.device)


def _load_field(
    path: Path, identity: dict[str, Any], components: Zero123Components
) -> tuple[voxel.VoxelField | None, dict[str, Any]]:
    state, same = fingerprint.load_saved(path, checkpoints.load, {"identity": identity})
    if state is None:
        return None, {}
    if not same:
        logger.info("%s belongs to another run (model, image, camera, seed or config differ): starting afresh", path)
        return None, {}
    logger.info("%s is this run's finished field: re-exporting it", path)
    return load_field(path, components), state["sjc_record"]


def _save_field(path: Path, field: voxel.VoxelField, identity: dict[str, Any], sjc_record: dict[str, Any]) -> None:
    config = identity["config"] | {"checkpoint_every": 1}  # the identity drops it; any value rebuilds the field
    checkpoints.write(
        path, {"field": field.state_dict(), "identity": identity, "config": config, "sjc_record": sjc_record}
    )


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    """Remove the outputs of an earlier, different run, so none is mistaken for this run's."""
    for name in OUTPUTS:
        if name not in keep:
            (out_dir / name).unlink(missing_ok=True)


def _estimate(
    components: Zero123Components,
    rgba: np.ndarray,
    seed: int,
    prior: str,
    use_pose: bool,
    out_dir: Path,
    probe: elevation.ElevationProbe | None,
) -> tuple[float, str]:
    """The polar angle by the probe, or by `elevation.estimate_polar`, or the folder's stored estimate of the same
    model, image, seed and estimator; and the estimator's name."""
    estimator = "consistency" if probe is None else "probe"
    how = [elevation.CANDIDATES_DEG, elevation.AZIMUTH_OFFSETS_DEG] if probe is None else [probe.fingerprint()]
    key = hashlib.sha256(json.dumps([prior, seed, use_pose, estimator, *how]).encode() + rgba.tobytes()).hexdigest()
    path = out_dir / ESTIMATE_FILE
    stored, same = fingerprint.load_saved(path, files.read_json, {"key": key})
    if same:
        logger.info("polar angle estimated before (%s): %.1f degrees", path, stored["polar_deg"])
        return float(stored["polar_deg"]), estimator
    if probe is None:
        found = elevation.estimate_polar(components, rgba, torch.Generator().manual_seed(seed), use_pose=use_pose)
        polar_deg, details = (
            found.polar_deg,
            {"scores": found.scores.tolist(), "candidates_deg": found.candidates_deg.tolist()},
        )
    else:
        polar_deg, details = elevation.estimate_polar_by_probe(components, probe, rgba), {}
    logger.info(
        "estimated polar angle of the input camera (%s): %.1f degrees (elevation %.1f)",
        estimator,
        polar_deg,
        90.0 - polar_deg,
    )
    files.write_json_atomic(path, {"key": key, "polar_deg": polar_deg, "estimator": estimator, **details})
    return polar_deg, estimator


def _write_png(path: Path, pixels: UInt8[np.ndarray, "H W C"] | Float[np.ndarray, "H W C"]) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels)).save(buffer, format="PNG")
    files.write_bytes_atomic(path, buffer.getvalue())
    return path
