"""Write a small folder of meshes in the layouts people ship, for the README's "Your own objects" example.

    python scripts/example_meshes.py quick/own_objects/meshes

Layout (every kind `objects.folder_sources` reads, and one broken file):

    gso/<name>/meshes/model.obj   OBJ + MTL + texture, as Google Scanned Objects ships them (Z up)
    objaverse/<uid>.glb           glTF binary with an embedded texture, as an Objaverse subset (Y up)
    scans/<name>.ply              PLY with vertex colours (Z up); `broken.ply` cannot be read (reported, skipped)
    scans/<name>.stl              STL, no colour at all (a flat colour comes from `render.sources`)

The shapes are trimesh primitives with a checker texture or a colour gradient, so that views from different
cameras differ; seeded, so the files are the same on every run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image


def _checker(colour_a: tuple[int, int, int], colour_b: tuple[int, int, int], cells: int = 4) -> Image.Image:
    """A 64 px checker texture of two colours."""
    board = np.kron(np.indices((cells, cells)).sum(axis=0) % 2, np.ones((64 // cells, 64 // cells)))  # (64, 64)
    return Image.fromarray(np.where(board[..., None] > 0, colour_a, colour_b).astype(np.uint8))


def _textured(mesh: trimesh.Trimesh, image: Image.Image) -> trimesh.Trimesh:
    """The mesh with UVs from its vertices' x and height (a planar projection) and `image` as its texture."""
    lo, hi = mesh.bounds
    uv = (mesh.vertices[:, [0, 2]] - lo[[0, 2]]) / np.maximum(hi - lo, 1e-9)[[0, 2]]
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=image)
    return mesh


def _gradient(mesh: trimesh.Trimesh, bottom: tuple[int, int, int], top: tuple[int, int, int]) -> trimesh.Trimesh:
    """Vertex colours from `bottom` to `top` along the height (Z)."""
    z = mesh.vertices[:, 2]
    t = ((z - z.min()) / max(np.ptp(z), 1e-9))[:, None]  # (V, 1)
    rgb = (1 - t) * np.asarray(bottom) + t * np.asarray(top)
    mesh.visual.vertex_colors = np.concatenate([rgb, np.full_like(t, 255)], axis=1).astype(np.uint8)
    return mesh


def write_example_meshes(root: str | Path) -> Path:
    """Write the example folder (see the module docstring) under `root`; returns `root`."""
    root = Path(root)
    gso = {
        "red_box": _textured(trimesh.creation.box((1.0, 0.6, 0.4)), _checker((200, 40, 30), (240, 220, 200))),
        "blue_can": _textured(trimesh.creation.cylinder(0.3, 1.0, sections=24), _checker((30, 60, 180), (230, 230, 0))),
        "green_wedge": _textured(trimesh.creation.cone(0.5, 0.8, sections=4), _checker((40, 150, 60), (20, 20, 20))),
    }
    for name, mesh in gso.items():
        folder = root / "gso" / name / "meshes"
        folder.mkdir(parents=True, exist_ok=True)
        mesh.export(folder / "model.obj")  # writes material.mtl and material_0.png beside it
    # glTF is Y-up: the tall side of each of these lies along Y in the file.
    tower = trimesh.creation.box((0.3, 1.0, 0.5))
    spire = trimesh.creation.cone(0.35, 1.0, sections=16)
    spire.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))  # Z-up cone -> Y-up
    (root / "objaverse").mkdir(parents=True, exist_ok=True)
    _textured(tower, _checker((250, 160, 20), (90, 40, 140))).export(root / "objaverse" / "3f2a9c01.glb")
    _textured(spire, _checker((20, 160, 170), (240, 240, 240))).export(root / "objaverse" / "7b11e0d4.glb")
    (root / "scans").mkdir(parents=True, exist_ok=True)
    _gradient(trimesh.creation.icosphere(2), (20, 120, 40), (200, 230, 60)).export(root / "scans" / "ball.ply")
    _gradient(trimesh.creation.capsule(0.8, 0.25), (120, 30, 120), (240, 150, 60)).export(root / "scans" / "pill.ply")
    (root / "scans" / "broken.ply").write_text("ply\nformat ascii 1.0\nelement vertex 3\nend_header\n0 0\n")
    ring = trimesh.creation.annulus(0.3, 0.5, 0.2, sections=32)
    ring.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # stand it on its edge
    ring.export(root / "scans" / "ring.stl")
    return root


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} OUT_FOLDER")
    print(f"wrote {write_example_meshes(sys.argv[1])}")
