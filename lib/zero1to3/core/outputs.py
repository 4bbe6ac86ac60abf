"""What stages 03-05 hand each other: the held-out view sets, the samples drawn for them, the reconstructions.

Stage 03 draws novel views of every held-out object (test split and zero-shot set) from one input
view and saves them with the ground truth beside them (`save_samples`); stage 04 reconstructs a
subset of the same objects from the same input view (`reconstruction.py`) and writes meshes where
`mesh_path` says; stage 05 reads both back. Keeping the layout here, in one place, is what lets each
stage be rerun on its own.

    data/samples/<set>.npz                input/target views and cameras, one uint8 array per method
    data/sjc/<method>/<id>.ply            reconstructed mesh in the dataset's normalised frame
    data/sjc/<method>/<id>.json           its record: identity, loss history, timing, mesh error
    data/sjc/<method>/<id>.field.pt       the voxel field (state dict), for turntables
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float, Int, UInt8

from zero1to3.core import files
from zero1to3.dataset import data

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

    @property
    def input_rgb(self) -> Float[np.ndarray, "N H W 3"]:
        """The input views composited on white, in [0, 1] (as the model and the figures see them)."""
        return data.composite_on_white(self.input_rgba)

    @property
    def target_rgb(self) -> Float[np.ndarray, "N T H W 3"]:
        """The true target views composited on white, in [0, 1]."""
        return data.composite_on_white(self.target_rgba)


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
        list(object_ids),
        input_view,
        targets,
        views.rgba[:, input_view],
        views.rgba[:, targets],
        views.camera_centers[:, input_view],
        views.camera_centers[:, targets],
    )


def samples_path(data_dir: str | Path, set_name: str) -> Path:
    """Where stage 03 writes the samples of one held-out set (stage 05 reads them from here)."""
    return Path(data_dir) / "samples" / f"{set_name}.npz"


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


def load_samples(path: str | Path) -> tuple[HeldOutViews, dict[str, UInt8[np.ndarray, "N T H W 3"]]]:
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
    """Where stage 04 writes `method`'s mesh of `object_id` (stage 05 reads it from here).

    The record (`.json`), the field (`.field.pt`) and, while it trains, the checkpoints (`.checkpoints/`)
    sit beside it under the same stem.
    """
    if method not in SJC_METHODS:
        raise ValueError(f"unknown reconstruction method {method!r}; methods: {list(SJC_METHODS)}")
    return Path(sjc_dir) / method / f"{object_id}.ply"


def reconstructed_ids(sjc_dir: str | Path) -> list[str]:
    """The objects with a record of any method under `sjc_dir`, sorted."""
    return sorted({p.stem for method in SJC_METHODS for p in (Path(sjc_dir) / method).glob("*.json")})


def save_run_record(path: str | Path, record: dict[str, Any]) -> None:
    """A reconstruction's identity, history and timing beside its mesh (atomically)."""
    files.write_json_atomic(Path(path), record)


def load_run_record(path: str | Path) -> dict[str, Any]:
    """What `save_run_record` wrote."""
    return files.read_json(path)
