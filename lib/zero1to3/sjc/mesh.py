"""Meshes from an SJC field, the one home of mesh export: stage 04's plain mesh and the `reconstruct` command's
coloured one, with one error (`EmptyMeshError`) and one file writer (`write_file`).

Stage 04 (`export_mesh`): `voxel.extract_mesh` on the field's raw density upsampled x2, one `.ply` per object.

The `reconstruct` command (`coloured_mesh`, `write`): density queried on a grid, filtered, eroded, marched,
coloured by projection. Shape (the paper's recipe, docs/conventions.md#mesh-recipe, every step an option of
`MeshSettings`; `PAPER_MESH` sets the paper's values):

    1. query the density on a `grid_size`^3 grid of nodes over the field's box (trilinear in the raw density,
       then activated, as the paper's x2 upsampling)
    2. mean filter (`smooth_kernel`^3), then the iso-level = `threshold_mean_factor` x the mean density
    3. grey erosion (`erosion_kernel`^3), then marching cubes at that level (`voxel.extract_mesh`)

Colour: the field holds **latents**, not colours, and a latent is only a colour once the VAE decodes a whole
latent image. So the field is rendered and decoded from `COLOUR_VIEWS` cameras around the object, and every
vertex takes the weighted mean of its colour in those images: weight = visibility (its distance to the eye
against the rendered depth, a soft test) x opacity there x how squarely the view faces its normal.

Meshes are written in the normalised frame of the dataset (Z up, object in [-0.5, 0.5]^3), as `.glb`, `.obj`
and `.ply` with vertex colours. glTF viewers assume Y up: the object lies on its back there (rotate it by -90°
about X to stand it up).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import trimesh
from jaxtyping import Float, UInt8

from zero1to3 import cameras
from zero1to3.core import files
from zero1to3.model.components import Zero123Components
from zero1to3.sjc import system, voxel

# Cameras the colours are taken from: 8 azimuths at 3 polar angles, plus straight above and below. Every
# surface point of a star-shaped object is seen squarely by one of them. Polar 0/180 are nudged off the pole.
COLOUR_VIEW_POLARS_DEG = (45.0, 90.0, 135.0)
COLOUR_VIEW_AZIMUTHS = 8
COLOUR_VIEW_RADIUS = 1.85  # the middle of the renders' camera distances (1.5-2.2)
# Soft visibility: a vertex further than this behind the rendered depth (world units, ~2 voxels of the default
# 48^3 field in a 1.2-wide box) is taken as hidden in that view.
VISIBILITY_TOLERANCE = 0.05
MIN_FACING = 0.05  # weight floor of a view seen edge-on, so a vertex seen only grazing still gets a colour
# Stage 04's iso-level = 1.5 x the mean density after a 3^3 mean filter: the best of 1, 1.25, 1.5, 2 over the
# default runs on duck and mug (measured). The paper's 8 x mean suits its box, 8x the object's volume; ours is tight.
MESH_THRESHOLD_MEAN_FACTOR = 1.5
MESH_SMOOTH_KERNEL = 3
MESH_SUFFIXES = ("glb", "obj", "ply")  # what `write` writes; stage 04 writes one of `.ply` and `.obj`


class EmptyMeshError(ValueError):
    """No surface at the requested iso-level; the message says what the density spans (and what to try)."""


@dataclasses.dataclass(frozen=True)
class MeshSettings:
    """How a field becomes a mesh. The defaults are stage 04's (`export_mesh`); `PAPER_MESH` is the paper's."""

    grid_size: int | None = None
    """Nodes per axis of the grid the density is queried on; None: twice the field's resolution, as stage 04."""
    threshold_mean_factor: float = MESH_THRESHOLD_MEAN_FACTOR
    """Iso-level as a multiple of the mean density after the mean filter (the paper: 8; ours: 1.5, measured)."""
    smooth_kernel: int = MESH_SMOOTH_KERNEL
    """Side of the mean filter, odd (the paper: 7 on its 199^3 grid; 1 = off)."""
    erosion_kernel: int = 1
    """Side of the grey erosion, odd (the paper: 5; 1 = off)."""

    def __post_init__(self) -> None:
        if self.grid_size is not None and not 8 <= self.grid_size <= 512:
            raise ValueError(f"`grid_size` must be in [8, 512] nodes per axis, got {self.grid_size}")
        if not (np.isfinite(self.threshold_mean_factor) and self.threshold_mean_factor > 0):
            raise ValueError(f"`threshold_mean_factor` must be a positive number, got {self.threshold_mean_factor}")
        for name in ("smooth_kernel", "erosion_kernel"):
            voxel.check_odd_kernel(name, getattr(self, name))


# The paper's mesh export (docs/conventions.md#mesh-recipe, `vox.export_mesh`): its 100^3 field upsampled x2 (199
# nodes per axis), 7^3 mean filter, threshold = 8 x mean density, 5^3 grey erosion.
PAPER_MESH = MeshSettings(grid_size=199, threshold_mean_factor=8.0, smooth_kernel=7, erosion_kernel=5)


@torch.no_grad()
def density_on_grid(field: voxel.VoxelField, grid_size: int) -> Float[torch.Tensor, "N N N"]:
    """The field's density at `grid_size`^3 nodes spanning its box, corner nodes on the faces, indexed (z, y, x)."""
    axis = torch.linspace(-field.bound, field.bound, grid_size, device=field.density_raw.device)
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    density, _ = field.query(torch.stack([x, y, z], dim=-1).reshape(-1, 3))  # (N^3,)
    return density.reshape(grid_size, grid_size, grid_size)


def extract(field: voxel.VoxelField, settings: MeshSettings) -> trimesh.Trimesh:
    """Steps 1-3 of the module docstring: the field's surface, in its own (the normalised) frame.

    Raises:
        EmptyMeshError: nothing crosses the iso-level (the message says what to try).
    """
    grid_size = settings.grid_size or 2 * (field.resolution - 1) + 1  # stage 04's x2 upsampling, same nodes
    density = density_on_grid(field, grid_size)
    mesh = voxel.extract_mesh(
        density,
        threshold_mean_factor=settings.threshold_mean_factor,
        smooth_kernel=settings.smooth_kernel,
        erosion_kernel=settings.erosion_kernel,
        bound=field.bound,
    )
    if len(mesh.faces) == 0:
        raise EmptyMeshError(
            f"the field has no surface at {settings.threshold_mean_factor:g} x its mean density (density spans "
            f"[{density.min().item():.3g}, {density.max().item():.3g}], mean {density.mean().item():.3g}); try a "
            "lower threshold (e.g. --mesh-threshold 1.0), more iterations, or check that the input shows one object"
        )
    return mesh


def colour_cameras() -> Float[np.ndarray, "V 3"]:
    """Centres of the `COLOUR_VIEWS` cameras (module constants), all looking at the origin."""
    azimuth_rad = np.linspace(0.0, 2.0 * np.pi, COLOUR_VIEW_AZIMUTHS, endpoint=False)
    rings = [
        cameras.spherical_to_cartesian(np.radians(p), azimuth_rad, COLOUR_VIEW_RADIUS) for p in COLOUR_VIEW_POLARS_DEG
    ]
    poles = cameras.spherical_to_cartesian(np.radians([1.0, 179.0]), np.zeros(2), COLOUR_VIEW_RADIUS)
    return np.concatenate([*rings, poles])  # (V, 3)


def vertex_colours(
    mesh: trimesh.Trimesh,
    images: Float[np.ndarray, "V H W 3"],
    depth: Float[np.ndarray, "V h w"],
    opacity: Float[np.ndarray, "V h w"],
    centers: Float[np.ndarray, "V 3"],
) -> UInt8[np.ndarray, "P 4"]:
    """Each vertex's weighted mean colour over views of the field (module docstring), as RGBA uint8.

    `images` at the image size, `depth` (distance along the ray) and `opacity` at the latent size, as
    `system.render_images` returns them for cameras at `centers` looking at the origin.
    """
    verts, normals = np.asarray(mesh.vertices), np.asarray(mesh.vertex_normals)
    w2c = cameras.c2w_to_w2c(cameras.look_at(centers))  # (V, 3, 4)
    size, small = images.shape[1], depth.shape[1]
    total, weight_sum = np.zeros((len(verts), 3)), np.zeros(len(verts))
    for k in range(len(centers)):
        uv, _ = cameras.project_points(verts, w2c[k], size)  # (P, 2) in image pixels
        col = np.clip(np.floor(uv[:, 0]).astype(int), 0, size - 1)
        row = np.clip(np.floor(uv[:, 1]).astype(int), 0, size - 1)
        r, c = row * small // size, col * small // size  # the same pixel at the latent size
        to_eye = centers[k] - verts  # (P, 3)
        distance = np.linalg.norm(to_eye, axis=1)
        hidden_by = np.maximum(distance - depth[k, r, c], 0.0)  # how far behind the rendered surface
        facing = np.maximum((normals * to_eye).sum(axis=1) / distance, MIN_FACING)
        w = np.exp(-((hidden_by / VISIBILITY_TOLERANCE) ** 2)) * opacity[k, r, c] * facing
        total += w[:, None] * images[k, row, col]
        weight_sum += w
    rgb = total / np.maximum(weight_sum, 1e-12)[:, None]
    alpha = np.ones((len(verts), 1))
    return (np.clip(np.concatenate([rgb, alpha], axis=1), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def coloured_mesh(
    field: voxel.VoxelField, components: Zero123Components, settings: MeshSettings, samples_per_ray: int
) -> trimesh.Trimesh:
    """`extract`, then `vertex_colours` from the field decoded by the model's VAE from `colour_cameras()`."""
    mesh = extract(field, settings)
    centers = colour_cameras()
    views = system.render_images(field, components, centers, samples_per_ray)
    mesh.visual.vertex_colors = vertex_colours(mesh, views["rgb"], views["depth"], views["opacity"], centers)
    return mesh


def write_file(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """`mesh` written atomically to `path`, in the format its suffix names (`.glb`, `.obj`, `.ply`)."""
    path = Path(path)
    data = mesh.export(file_type=path.suffix.lower().lstrip("."))
    files.write_bytes_atomic(path, data.encode() if isinstance(data, str) else data)
    return path


def write(mesh: trimesh.Trimesh, out_dir: str | Path, stem: str = "mesh") -> dict[str, Path]:
    """`<stem>.glb`, `.obj` and `.ply` with vertex colours in `out_dir`, each written atomically."""
    return {suffix: write_file(mesh, Path(out_dir) / f"{stem}.{suffix}") for suffix in MESH_SUFFIXES}


def export_mesh(
    field: voxel.VoxelField,
    path: str | Path,
    threshold: float | None = None,
    threshold_mean_factor: float | None = None,
    upsample: int = 2,
    smooth_kernel: int = MESH_SMOOTH_KERNEL,
    erosion_kernel: int = 1,
) -> trimesh.Trimesh:
    """Stage 04's mesh: marching cubes on the field's density, written to `path` (`.ply` or `.obj`, atomically).

    Vertices are in the field's frame, which is the dataset's normalised frame (Z up, the object in
    [-0.5, 0.5]^3), so the mesh compares directly with `data/renders/<id>/mesh.obj`. The options are
    `voxel.extract_mesh`'s (`PAPER_MESH` holds the paper's); with neither `threshold` (absolute density) nor
    `threshold_mean_factor` given, the iso-level is `MESH_THRESHOLD_MEAN_FACTOR` x mean density.

    Raises:
        EmptyMeshError: nothing crosses the iso-level; no file is written.
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("ply", "obj"):
        raise ValueError(f"`path` must end in .ply or .obj, got {path.name!r}")
    if threshold is None and threshold_mean_factor is None:
        threshold_mean_factor = MESH_THRESHOLD_MEAN_FACTOR
    options = {"upsample": upsample, "smooth_kernel": smooth_kernel, "erosion_kernel": erosion_kernel}
    mesh = voxel.extract_mesh(field, threshold=threshold, threshold_mean_factor=threshold_mean_factor, **options)
    if len(mesh.faces) == 0:
        density = field.density_grid()
        raise EmptyMeshError(
            f"no surface at threshold={threshold} (mean factor {threshold_mean_factor}): the density spans "
            f"[{density.min().item():.4g}, {density.max().item():.4g}]; nothing written to {path}"
        )
    write_file(mesh, path)
    return mesh
