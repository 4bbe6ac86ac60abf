"""Reading the rendered dataset: the manifest, one object's views and cameras, images on white."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float, UInt8
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
    """Alpha-composite RGBA renders onto white, as float in [0, 1] (proper compositing, spec pitfall 8)."""
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
