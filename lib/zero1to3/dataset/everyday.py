"""Procedural everyday objects: mugs, bottles, chairs, cars..., each part in its own colour, written as PLY meshes.

Stage 01 renders them beside pybullet's random URDF shapes (`render.everyday.train` of them to train on,
`render.everyday.test` held out as the set `every_test`; `render.everyday_sources`). The random shapes have one
flat colour and no front or up, so one view says little about the others and the pose has little to add; these
objects have what the paper's Objaverse training set has and the random shapes lack: parts that sit on one side
(a mug's handle, a chair's back, a car's windscreen, a house's door), faces of different colours, and the symmetries
of made things (lathe-turned bottles, four table legs), so that what a novel view shows depends on the camera and can
be predicted from one view (measured: docs/recipe-experiments.md).

Every object is `trimesh` primitives and surfaces of revolution, one flat colour per part (vertex colours, parts
unwelded so colours stay sharp), Z up, seeded: the same `seed` and `count` write the same bytes. Files are
`<folder>/<category>_<nnnn>.ply`; `objects.folder_sources` reads them (`*.ply`, up axis Z), and
`objects.normalize_mesh` centres and scales each into the unit cube as any other source. Their categories overlap
the zero-shot set's (a YCB mug is still never trained on, as Objaverse holds mugs and GSO is the paper's zero-shot set).
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh
from trimesh.creation import annulus, box, cone, cylinder, icosphere, revolve, torus
from trimesh.transformations import rotation_matrix, translation_matrix

Part = tuple[trimesh.Trimesh, np.ndarray]  # a mesh and its RGB colour in [0, 255]


def colour(rng: np.random.Generator, saturation: tuple[float, float] = (0.35, 0.9)) -> np.ndarray:
    """A random colour of a made thing: any hue, moderate to strong saturation, neither black nor white."""
    rgb = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*saturation), rng.uniform(0.35, 0.95))
    return np.round(np.asarray(rgb) * 255)


def neutral(rng: np.random.Generator) -> np.ndarray:
    """A grey, black-ish or white-ish colour (metal, glass, wheels)."""
    return np.full(3, round(rng.uniform(0.12, 0.9) * 255))


def moved(mesh: trimesh.Trimesh, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> trimesh.Trimesh:
    """`mesh` translated by (x, y, z)."""
    return mesh.apply_transform(translation_matrix([x, y, z]))


def turned(mesh: trimesh.Trimesh, angle: float, axis: tuple[float, float, float]) -> trimesh.Trimesh:
    """`mesh` rotated by `angle` radians about `axis` through the origin."""
    return mesh.apply_transform(rotation_matrix(angle, axis))


def block(size: tuple[float, float, float], at: tuple[float, float, float]) -> trimesh.Trimesh:
    """A box of `size`, centred at `at`."""
    return moved(box(size), *at)


def rod(radius: float, height: float, at: tuple[float, float, float], sections: int = 16) -> trimesh.Trimesh:
    """A vertical cylinder of `radius` and `height`, centred at `at`."""
    return moved(cylinder(radius, height, sections=sections), *at)


def lathe(profile: list[tuple[float, float]], sections: int = 32) -> trimesh.Trimesh:
    """Surface of revolution about Z of a (radius, height) profile, from bottom to top."""
    return revolve(np.asarray(profile, dtype=float), sections=sections)


def prism(length: float, width: float, height: float, z: float) -> trimesh.Trimesh:
    """A gable roof: a triangular prism along X, `width` wide at its base (at height `z`), ridge `height` above."""
    x, y = length / 2, width / 2
    vertices = [(-x, -y, z), (-x, y, z), (-x, 0, z + height), (x, -y, z), (x, y, z), (x, 0, z + height)]
    faces = [(0, 2, 1), (3, 4, 5), (0, 3, 5), (0, 5, 2), (1, 2, 5), (1, 5, 4), (0, 1, 4), (0, 4, 3)]
    mesh = trimesh.Trimesh(vertices, faces)
    mesh.fix_normals()
    return mesh


def mug(rng: np.random.Generator) -> list[Part]:
    r, h = rng.uniform(0.3, 0.45), rng.uniform(0.6, 1.0)
    body = moved(annulus(r * 0.85, r, h, sections=32), z=h / 2)
    bottom = rod(r, 0.06, (0, 0, 0.03), sections=32)
    handle = turned(torus(h * 0.25, 0.045, major_sections=24, minor_sections=8), np.pi / 2, (1, 0, 0))
    handle = moved(handle, x=r + h * 0.12, z=h * 0.55)
    c, band_colour = colour(rng), colour(rng)
    band = moved(annulus(r * 0.99, r * 1.02, h * rng.uniform(0.15, 0.35), sections=32), z=h * rng.uniform(0.3, 0.7))
    return [(body, c), (bottom, c), (handle, colour(rng) if rng.uniform() < 0.5 else c), (band, band_colour)]


def bottle(rng: np.random.Generator) -> list[Part]:
    r, h, neck = rng.uniform(0.2, 0.35), rng.uniform(0.9, 1.6), rng.uniform(0.07, 0.12)
    shoulder = h * rng.uniform(0.55, 0.75)
    body = lathe([(0, 0), (r, 0), (r, shoulder), (neck, h * 0.88), (neck, h), (0, h)])
    cap = rod(neck * 1.15, h * 0.08, (0, 0, h))
    label_height = shoulder * rng.uniform(0.3, 0.6)
    label = moved(annulus(r * 0.99, r * 1.02, label_height, sections=32), z=shoulder * 0.45)
    sticker = block((0.02, r * 0.8, label_height * 0.5), (r * 1.03, 0, shoulder * 0.45))  # a logo on one side
    return [(body, colour(rng)), (cap, colour(rng)), (label, colour(rng)), (sticker, colour(rng))]


def package(rng: np.random.Generator) -> list[Part]:
    size = rng.uniform(0.3, 1.0, size=3)
    body = moved(box(size), z=size[2] / 2)
    body.unmerge_vertices()
    sides = [colour(rng) for _ in range(3)]  # front/back, left/right, top/bottom; the front differs from the back
    front = colour(rng)
    normals = body.face_normals
    face_colours = np.stack([front if n[0] > 0.5 else sides[int(np.argmax(np.abs(n)))] for n in normals])
    triangles = [trimesh.Trimesh(body.vertices[f], [[0, 1, 2]], process=False) for f in body.faces]
    return list(zip(triangles, face_colours, strict=True))


def table(rng: np.random.Generator) -> list[Part]:
    w, d, h = rng.uniform(0.8, 1.4), rng.uniform(0.5, 1.0), rng.uniform(0.5, 0.9)
    top = colour(rng)
    legs = colour(rng) if rng.uniform() < 0.5 else top
    parts = [(block((w, d, 0.06), (0, 0, h)), top)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append((block((0.06, 0.06, h), (sx * (w / 2 - 0.06), sy * (d / 2 - 0.06), h / 2)), legs))
    if rng.uniform() < 0.5:  # a drawer on one side
        parts.append((block((w * 0.4, 0.02, h * 0.12), (0, -d / 2, h - h * 0.1)), colour(rng)))
    return parts


def chair(rng: np.random.Generator) -> list[Part]:
    w, h, back = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.7)
    seat, frame = colour(rng), colour(rng)
    parts = [(block((w, w, 0.06), (0, 0, h)), seat), (block((w, 0.05, back), (0, w / 2 - 0.025, h + back / 2)), seat)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append((block((0.05, 0.05, h), (sx * (w / 2 - 0.03), sy * (w / 2 - 0.03), h / 2)), frame))
    if rng.uniform() < 0.5:  # armrests
        for sx in (-1, 1):
            parts.append((block((0.05, w, 0.04), (sx * (w / 2 - 0.025), 0, h + 0.2)), frame))
    return parts


def lamp(rng: np.random.Generator) -> list[Part]:
    h, shade_r = rng.uniform(0.8, 1.4), rng.uniform(0.25, 0.4)
    metal = neutral(rng)
    base = rod(rng.uniform(0.15, 0.25), 0.05, (0, 0, 0.025), sections=32)
    pole = rod(0.025, h, (0, 0, h / 2))
    shade_h = shade_r * rng.uniform(0.8, 1.3)
    shade = lathe([(shade_r, h - shade_h * 0.6), (shade_r * 0.55, h + shade_h * 0.4)])
    parts = [(base, metal), (pole, metal), (shade, colour(rng))]
    if rng.uniform() < 0.5:  # a switch on one side of the base
        parts.append((block((0.06, 0.04, 0.04), (0.18, 0, 0.06)), colour(rng)))
    return parts


def bowl(rng: np.random.Generator) -> list[Part]:
    r, h = rng.uniform(0.4, 0.6), rng.uniform(0.2, 0.4)
    t = np.linspace(0, np.pi / 2, 8)
    outer = [(r * np.sin(a) + 0.05, h * (1 - np.cos(a))) for a in t]
    inner = [(max(r * np.sin(a) - 0.03, 0.0), h * (1 - np.cos(a)) + 0.03) for a in t[::-1]]
    shell = lathe([(0.0, 0.0)] + outer + inner[:-1] + [(0.0, 0.03)])
    return [(shell, colour(rng)), (moved(annulus(r * 1.0, r * 1.06, 0.03, sections=32), z=h * 0.9), colour(rng))]


def vase(rng: np.random.Generator) -> list[Part]:
    h = rng.uniform(0.8, 1.5)
    z = np.linspace(0, h, 9)
    radii = 0.15 + 0.25 * np.abs(np.sin(rng.uniform(0.5, 3.0) * z / h * np.pi + rng.uniform(0, np.pi)))
    body = lathe([(0.0, 0.0)] + [(float(r), float(zz)) for r, zz in zip(radii, z, strict=True)] + [(0.0, h)])
    parts = [(body, colour(rng))]
    if rng.uniform() < 0.6:  # a painted motif on one side
        k = int(rng.integers(2, 7))
        motif = moved(icosphere(1, radius=0.06), x=float(radii[k]) + 0.02, z=float(z[k]))
        parts.append((motif, colour(rng)))
    return parts


def hammer(rng: np.random.Generator) -> list[Part]:
    length, head = rng.uniform(0.8, 1.2), rng.uniform(0.3, 0.5)
    handle = turned(cylinder(0.04, length, sections=12), np.pi / 2, (0, 1, 0))
    grip = moved(turned(cylinder(0.05, length * 0.35, sections=12), np.pi / 2, (0, 1, 0)), x=-length * 0.3)
    block_head = block((0.1, head, 0.1), (length / 2, 0, 0))
    claw = moved(turned(cone(0.05, 0.15, sections=8), -np.pi / 2, (1, 0, 0)), x=length / 2, y=head / 2)
    return [(handle, colour(rng)), (grip, colour(rng)), (block_head, neutral(rng)), (claw, neutral(rng))]


def car(rng: np.random.Generator) -> list[Part]:
    length, w, h = rng.uniform(1.0, 1.6), rng.uniform(0.5, 0.7), rng.uniform(0.25, 0.4)
    paint, glass, rubber = colour(rng), neutral(rng), np.full(3, 30.0)
    cab_l = length * rng.uniform(0.4, 0.6)
    parts = [
        (block((length, w, h), (0, 0, h / 2 + 0.12)), paint),
        (block((cab_l, w * 0.9, h * 0.8), (-length * 0.08, 0, h + 0.12 + h * 0.4)), paint),
        (block((0.02, w * 0.8, h * 0.6), (-length * 0.08 + cab_l / 2 + 0.01, 0, h + 0.12 + h * 0.4)), glass),
    ]
    for sx in (-1, 1):
        for sy in (-1, 1):
            wheel = turned(cylinder(0.13, 0.08, sections=16), np.pi / 2, (1, 0, 0))
            parts.append((moved(wheel, sx * length * 0.32, sy * w / 2, 0.13), rubber))
    parts.append((block((0.02, w * 0.6, 0.06), (length / 2 + 0.01, 0, h * 0.6 + 0.12)), colour(rng)))  # grille
    return parts


def house(rng: np.random.Generator) -> list[Part]:
    w, d, h = rng.uniform(0.8, 1.2), rng.uniform(0.6, 1.0), rng.uniform(0.5, 0.8)
    roof_h = rng.uniform(0.25, 0.5)
    roof = prism(w + 0.1, d + 0.1, roof_h, z=h)
    parts = [
        (block((w, d, h), (0, 0, h / 2)), colour(rng, (0.1, 0.5))),
        (roof, colour(rng)),
        (block((w * 0.18, 0.02, h * 0.55), (rng.uniform(-0.25, 0.25) * w, -d / 2 - 0.01, h * 0.275)), colour(rng)),
    ]
    for x in rng.uniform(-0.35, 0.35, size=int(rng.integers(1, 3))) * w:  # windows on the front
        parts.append((block((0.14, 0.02, 0.14), (x, -d / 2 - 0.01, h * 0.7)), neutral(rng)))
    return parts


def teapot(rng: np.random.Generator) -> list[Part]:
    r = rng.uniform(0.35, 0.5)
    body = icosphere(2, radius=r).apply_scale([1, 1, rng.uniform(0.7, 1.0)])
    c = colour(rng)
    spout = moved(turned(cone(0.08, r * 1.1, sections=12), np.pi / 3, (0, 1, 0)), x=r * 0.8, z=0.0)
    handle = moved(turned(torus(r * 0.4, 0.04, major_sections=20, minor_sections=8), np.pi / 2, (1, 0, 0)), x=-r * 1.05)
    lid = moved(icosphere(1, radius=0.06), z=r * 0.95)
    return [(body, c), (spout, c), (handle, c), (lid, colour(rng))]


def stool(rng: np.random.Generator) -> list[Part]:
    r, h = rng.uniform(0.25, 0.4), rng.uniform(0.5, 0.8)
    legs = colour(rng)
    parts = [(rod(r, 0.07, (0, 0, h), sections=32), colour(rng))]
    n = int(rng.integers(3, 5))
    for a in np.arange(n) * 2 * np.pi / n:
        parts.append((rod(0.03, h, (0.7 * r * np.cos(a), 0.7 * r * np.sin(a), h / 2)), legs))
    return parts


def shelf(rng: np.random.Generator) -> list[Part]:
    w, d, h = rng.uniform(0.6, 1.0), rng.uniform(0.25, 0.4), rng.uniform(0.8, 1.4)
    wood, t = colour(rng, (0.2, 0.6)), 0.04
    parts = [(block((t, d, h), (sx * (w / 2 - t / 2), 0, h / 2)), wood) for sx in (-1, 1)]
    parts.append((block((w, 0.02, h), (0, d / 2 - 0.01, h / 2)), wood))  # the back panel
    levels = int(rng.integers(2, 5))
    for k in range(levels + 1):
        z = k * (h - t) / levels + t / 2
        parts.append((block((w, d, t), (0, 0, z)), wood))
        if k < levels:  # books on the shelf, standing from the left
            x = -w / 2 + t
            while x < w / 2 - t - 0.08 and rng.uniform() < 0.9:
                bw, bh = rng.uniform(0.03, 0.08), rng.uniform(0.5, 0.9) * (h - t) / levels
                parts.append((block((bw, d * 0.8, bh), (x + bw / 2, 0, z + t / 2 + bh / 2)), colour(rng)))
                x += bw + 0.005
    return parts


def fruit(rng: np.random.Generator) -> list[Part]:
    r = rng.uniform(0.3, 0.45)
    body = icosphere(2, radius=r).apply_scale([1, rng.uniform(0.9, 1.1), rng.uniform(0.8, 1.3)])
    top = body.bounds[1, 2]
    stem = rod(0.02, 0.12, (0, 0, top + 0.04), sections=8)
    leaf = moved(icosphere(1, radius=0.1).apply_scale([1.0, 0.4, 0.1]), x=0.08, z=top + 0.06)
    return [(body, colour(rng)), (stem, np.array([90.0, 60.0, 30.0])), (leaf, np.array([60.0, 140.0, 40.0]))]


CATEGORIES: dict[str, Callable[[np.random.Generator], list[Part]]] = {
    f.__name__: f
    for f in (mug, bottle, package, table, chair, lamp, bowl, vase, hammer, car, house, teapot, stool, shelf, fruit)
}


def assemble(parts: list[Part]) -> trimesh.Trimesh:
    """One mesh of all parts, each part's vertices coloured with its colour (parts are not welded together)."""
    meshes = []
    for mesh, rgb in parts:
        mesh = mesh.copy()
        mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.append(rgb, 255).astype(np.uint8))
        meshes.append(mesh)
    return trimesh.util.concatenate(meshes)


def write_everyday_objects(out: str | Path, count: int, seed: int = 0) -> list[Path]:
    """Write `count` objects, the categories in turn, each from its own seeded generator; returns the files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(CATEGORIES)
    written = []
    for index in range(count):
        category = names[index % len(names)]
        rng = np.random.default_rng([seed, index])
        mesh = assemble(CATEGORIES[category](rng))
        mesh = turned(mesh, rng.uniform(0, 2 * np.pi), (0, 0, 1))  # no category faces the same way every time
        path = out / f"{category}_{index:04d}.ply"
        mesh.export(path)
        written.append(path)
    return written
