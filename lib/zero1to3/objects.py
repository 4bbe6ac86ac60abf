"""The objects we render: where they come from, how they are split, and how a mesh is normalised.

Source: `pybullet_data`, shipped inside the `pybullet` wheel, so no dataset comes from a hub.

* **Training distribution**: the 1,000 procedurally generated `random_urdfs/NNN` objects, each an
  OBJ with a flat colour given by its URDF. They stand in for Objaverse at our scale.
* **Zero-shot set**: named everyday objects from the same package (duck, teddy, bunny, mug, ...).
  They are never trained on; they play the role of the paper's Google Scanned Objects / RTMV.

The split is made by object (never by view), from a seeded permutation, and written to the
manifest by stage 01 (`data/manifest.json`), so every later stage reads the same lists.
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import trimesh

NUM_RANDOM_URDFS = 1000

SPLITS = ("train", "val", "test", "zero_shot")


@dataclasses.dataclass(frozen=True)
class ObjectSource:
    """One object to render."""

    object_id: str
    """Stable name, used as the folder name of its renders (`urdf_042`, `duck`)."""
    mesh_path: Path
    """The mesh file (OBJ)."""
    color_rgba: tuple[float, float, float, float] | None
    """Flat base colour; `None` keeps the mesh's own (textured) materials."""
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Per-axis scale from the URDF, applied before normalisation (matters only if non-uniform)."""
    up_axis: str = "Z"
    """The file's up axis: `Z` (kept) or `Y` (rotated +90 deg about X so that file +Y becomes world +Z)."""


# Everyday objects of pybullet_data, never trained on. `None` colour = keep the file's texture.
# Up axes from looking at the renders: the duck, teddy and bunny are modelled Y-up.
ZERO_SHOT_OBJECTS: dict[str, tuple[str, tuple[float, float, float, float] | None, str]] = {
    "duck": ("duck.obj", None, "Y"),
    "teddy": ("teddy2_VHACD_CHs.obj", (0.72, 0.45, 0.25, 1.0), "Y"),
    "bunny": ("bunny.obj", (0.55, 0.50, 0.45, 1.0), "Y"),  # not white: it would vanish on white
    "mug": ("objects/mug.obj", (0.90, 0.20, 0.20, 1.0), "Z"),
    "torus": ("torus/torus_textured.obj", None, "Z"),
    "lego": ("lego/lego.obj", (0.10, 0.45, 0.85, 1.0), "Z"),
    "soccerball": ("soccerball.obj", None, "Z"),
}


def pybullet_data_dir() -> Path:
    """Folder of the `pybullet_data` package (installed with `pybullet`)."""
    import pybullet_data

    return Path(pybullet_data.getDataPath())


def random_urdf_source(index: int, data_dir: Path | None = None) -> ObjectSource:
    """The procedural object `random_urdfs/NNN`, with its URDF colour and scale."""
    if not 0 <= index < NUM_RANDOM_URDFS:
        raise ValueError(f"`index` must be in [0, {NUM_RANDOM_URDFS}), got {index}")
    folder = (data_dir or pybullet_data_dir()) / "random_urdfs" / f"{index:03d}"
    visual = ET.parse(folder / f"{index:03d}.urdf").getroot().find("./link/visual")
    mesh = visual.find("./geometry/mesh")
    color = visual.find("./material/color")
    scale = tuple(float(s) for s in mesh.get("scale", "1 1 1").split())
    rgba = tuple(float(c) for c in color.get("rgba").split()) if color is not None else (0.8, 0.8, 0.8, 1.0)
    return ObjectSource(f"urdf_{index:03d}", folder / mesh.get("filename"), rgba, scale)


def zero_shot_source(name: str, data_dir: Path | None = None) -> ObjectSource:
    """A named everyday object of the zero-shot set."""
    if name not in ZERO_SHOT_OBJECTS:
        raise ValueError(f"unknown zero-shot object {name!r}; valid names: {sorted(ZERO_SHOT_OBJECTS)}")
    rel_path, rgba, up_axis = ZERO_SHOT_OBJECTS[name]
    return ObjectSource(name, (data_dir or pybullet_data_dir()) / rel_path, rgba, up_axis=up_axis)


def make_split(num_train: int, num_val: int, num_test: int, zero_shot: list[str], seed: int) -> dict[str, list[str]]:
    """Split the procedural objects by object into train/val/test, plus the named zero-shot set.

    A seeded permutation of the 1,000 `random_urdfs` is cut into consecutive blocks: val first,
    then test, then train. Changing `num_train` therefore never moves an object into or out of
    the held-out sets, so results at different training scales stay comparable.
    """
    for name, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        if value < 0:
            raise ValueError(f"`{name}` must be >= 0, got {value}")
    if num_train + num_val + num_test > NUM_RANDOM_URDFS:
        raise ValueError(
            f"num_train + num_val + num_test = {num_train + num_val + num_test} exceeds the "
            f"{NUM_RANDOM_URDFS} procedural objects available"
        )
    for name in zero_shot:
        if name not in ZERO_SHOT_OBJECTS:
            raise ValueError(f"unknown zero-shot object {name!r}; valid names: {sorted(ZERO_SHOT_OBJECTS)}")
    order = np.random.default_rng(seed).permutation(NUM_RANDOM_URDFS)
    ids = [f"urdf_{i:03d}" for i in order]
    return {
        "val": ids[:num_val],
        "test": ids[num_val : num_val + num_test],
        "train": ids[num_val + num_test : num_val + num_test + num_train],
        "zero_shot": list(zero_shot),
    }


def source_for(object_id: str, data_dir: Path | None = None) -> ObjectSource:
    """The `ObjectSource` of an object id from a split (`urdf_NNN` or a zero-shot name)."""
    if object_id.startswith("urdf_"):
        return random_urdf_source(int(object_id.removeprefix("urdf_")), data_dir)
    return zero_shot_source(object_id, data_dir)


def display_path(path: Path) -> str:
    """A mesh path as shown in messages and the manifest: relative to pybullet_data when it lies there."""
    try:
        return "pybullet_data/" + Path(path).relative_to(pybullet_data_dir()).as_posix()
    except ValueError:
        return str(path)


def _object_seed_sequence(seed: int, object_id: str) -> np.random.SeedSequence:
    """The one per-object seed: the id enters through its crc32, mixed with the stage seed by numpy's SeedSequence."""
    if seed < 0:
        raise ValueError(f"`seed` must be >= 0, got {seed}")
    return np.random.SeedSequence([seed, zlib.crc32(object_id.encode())])


def object_seed(seed: int, object_id: str) -> np.random.Generator:
    """The object's own numpy generator: depends on the stage seed and the id, not on order or batching."""
    return np.random.default_rng(_object_seed_sequence(seed, object_id))


def object_seed_value(seed: int, object_id: str) -> int:
    """The same per-object seed as one 64-bit integer, for a torch generator (`torch.Generator().manual_seed`)."""
    return int(_object_seed_sequence(seed, object_id).generate_state(1, np.uint64)[0])


class MeshError(ValueError):
    """A mesh file that cannot be read or holds no usable surface."""


def load_normalised_mesh(source: ObjectSource) -> trimesh.Trimesh:
    """Load an object's mesh and normalise it into the unit cube (spec 1.2, `normalize_scene`).

    Applies the URDF scale and the up-axis rotation, then scales by 1 / (longest side of the
    axis-aligned bounding box) and centres the box at the origin: the object lies in
    [-0.5, 0.5]^3 with its longest side exactly 1. Textures (UVs and images) are kept.

    Raises:
        MeshError: the file is missing, unreadable, empty, non-finite or flat in every direction.
    """
    try:
        loaded = trimesh.load(source.mesh_path, force="mesh", process=False)
    except Exception as err:  # trimesh raises many types for bad files; we name the file and keep the cause
        raise MeshError(
            f"{source.object_id}: cannot read mesh {display_path(source.mesh_path)}: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.vertices) == 0 or len(loaded.faces) == 0:
        raise MeshError(f"{source.object_id}: mesh {display_path(source.mesh_path)} holds no triangles")
    mesh = loaded
    if not np.all(np.isfinite(mesh.vertices)):
        raise MeshError(f"{source.object_id}: mesh {display_path(source.mesh_path)} has non-finite vertex coordinates")
    transform = np.diag([*source.scale, 1.0])
    if source.up_axis == "Y":
        transform = trimesh.transformations.rotation_matrix(math.pi / 2, [1, 0, 0]) @ transform
    elif source.up_axis != "Z":
        raise ValueError(f"`up_axis` must be 'Y' or 'Z', got {source.up_axis!r}")
    mesh.apply_transform(transform)
    return normalise_to_unit_cube(mesh, source.object_id)


def normalise_to_unit_cube(mesh: trimesh.Trimesh, name: str = "mesh") -> trimesh.Trimesh:
    """Centre the bounding box at the origin and scale its longest side to 1 (in place; returned)."""
    lo, hi = mesh.bounds
    extent = float(np.max(hi - lo))
    if not extent > 1e-9:
        raise MeshError(f"{name}: mesh has zero extent (all vertices coincide)")
    mesh.apply_translation(-(lo + hi) / 2.0)
    mesh.apply_scale(1.0 / extent)
    return mesh
