"""Reading the rendered dataset: the manifest, one object's views and cameras, images on white."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int, UInt8
from PIL import Image

from zero1to3 import cameras

MANIFEST_NAME = "manifest.json"
RENDERS_DIR = "renders"


@dataclasses.dataclass(frozen=True)
class ObjectViews:
    """All rendered views of one object."""

    object_id: str
    rgba: UInt8[np.ndarray, "V H W 4"]
    """The renders as saved: RGBA, alpha 0 off the object."""
    w2c: Float[np.ndarray, "V 3 4"]
    """The paper's 3x4 world-to-camera matrix of each view."""
    meta: dict[str, Any]
    """`meta.json`: spherical coordinates per view, lighting, render settings."""

    @property
    def camera_centers(self) -> Float[np.ndarray, "V 3"]:
        return cameras.camera_center(self.w2c)


def read_manifest(data_dir: str | Path) -> dict[str, Any]:
    """The split manifest stage 01 wrote (`<data_dir>/manifest.json`)."""
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no dataset manifest at {path}; run stage 01 first (`dvc repro render`)")
    return json.loads(path.read_text())


def object_dir(data_dir: str | Path, object_id: str) -> Path:
    """Folder of one object's renders."""
    return Path(data_dir) / RENDERS_DIR / object_id


def load_object(data_dir: str | Path, object_id: str) -> ObjectViews:
    """Load every view (RGBA) and camera matrix of one rendered object."""
    folder = object_dir(data_dir, object_id)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"object {object_id!r} has no finished renders in {folder} (missing meta.json)")
    meta = json.loads(meta_path.read_text())
    num_views = meta["settings"]["num_views"]
    rgba = np.stack([np.asarray(Image.open(folder / f"{i:03d}.png").convert("RGBA")) for i in range(num_views)])
    w2c = np.stack([np.load(folder / f"{i:03d}.npy") for i in range(num_views)])
    return ObjectViews(object_id, rgba, w2c, meta)


def composite_on_white(rgba: UInt8[np.ndarray, "*B H W 4"]) -> Float[np.ndarray, "*B H W 3"]:
    """Alpha-composite RGBA renders onto white, as float in [0, 1] (proper compositing,
    docs/conventions.md#training-pairs)."""
    rgba = np.asarray(rgba, np.float32) / 255.0
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + (1.0 - alpha)


def view_angles(data_dir: str | Path, object_ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polar angle (deg), azimuth (deg) and radius of every view of `object_ids`, from their meta.json."""
    polar, azimuth, radius = [], [], []
    for oid in object_ids:
        meta = json.loads((object_dir(data_dir, oid) / "meta.json").read_text())
        polar += meta["polar_deg"]
        azimuth += meta["azimuth_deg"]
        radius += meta["radius"]
    return np.asarray(polar), np.asarray(azimuth), np.asarray(radius)


@dataclasses.dataclass(frozen=True)
class MultiViewSet:
    """Every view of a list of objects, in memory (the tiny study's whole split fits easily)."""

    object_ids: list[str]
    rgba: UInt8[np.ndarray, "N V H W 4"]
    camera_centers: Float[np.ndarray, "N V 3"]


@dataclasses.dataclass(frozen=True)
class PairBatch:
    """Training pairs: two views of one object and the relative pose between them (paper Sec. 3.1)."""

    input_images: Float[torch.Tensor, "B 3 H W"]
    """Conditioning view, composited on white, in [-1, 1]."""
    target_images: Float[torch.Tensor, "B 3 H W"]
    """View to generate, same format."""
    pose: Float[torch.Tensor, "B 4"]
    """`[d_polar_rad, sin d_azimuth, cos d_azimuth, d_radius]` from the input camera to the target camera."""
    object_index: Int[torch.Tensor, "B"]
    input_view: Int[torch.Tensor, "B"]
    target_view: Int[torch.Tensor, "B"]


def load_multiview(data_dir: str | Path, object_ids: list[str]) -> MultiViewSet:
    """Load all views and camera centres of `object_ids` (e.g. a split from the manifest)."""
    if not object_ids:
        raise ValueError("`object_ids` is empty: nothing to load")
    loaded = [load_object(data_dir, oid) for oid in object_ids]
    shapes = {v.rgba.shape for v in loaded}
    if len(shapes) != 1:
        raise ValueError(f"objects were rendered with different view counts or sizes: {sorted(shapes)}")
    return MultiViewSet(
        list(object_ids), np.stack([v.rgba for v in loaded]), np.stack([v.camera_centers for v in loaded])
    )


def to_model_images(rgba: UInt8[np.ndarray, "*B H W 4"]) -> Float[torch.Tensor, "*B 3 H W"]:
    """Renders as the model sees them: composited on white, channels first, scaled to [-1, 1]."""
    rgb = torch.from_numpy(composite_on_white(rgba))  # (*B, H, W, 3) in [0, 1]
    return rgb.movedim(-1, -3) * 2.0 - 1.0


def sample_pairs(
    views: MultiViewSet, batch_size: int, generator: torch.Generator, objects: Int[torch.Tensor, "B"] | None = None
) -> PairBatch:
    """Draw `batch_size` (input, target) pairs: a uniform object, then an ordered pair of distinct views.

    As the paper's data loader (docs/conventions.md#training-pairs): input and target are two different views of the
    same
    object, drawn uniformly and afresh each time; the pose is relative, input -> target. Passing
    `objects` fixes which object each pair comes from (the views are still drawn).
    """
    num_objects, num_views = views.rgba.shape[:2]
    if num_views < 2:
        raise ValueError(f"pairs need at least 2 views per object, the set has {num_views}")
    obj = torch.randint(num_objects, (batch_size,), generator=generator) if objects is None else objects
    src = torch.randint(num_views, (batch_size,), generator=generator)
    # A distinct target: shift by 1..V-1 (uniform over the other views).
    tgt = (src + 1 + torch.randint(num_views - 1, (batch_size,), generator=generator)) % num_views
    o, s, t = obj.numpy(), src.numpy(), tgt.numpy()
    pose = cameras.relative_pose(views.camera_centers[o, s], views.camera_centers[o, t])
    return PairBatch(
        to_model_images(views.rgba[o, s]), to_model_images(views.rgba[o, t]), torch.from_numpy(pose), obj, src, tgt
    )
