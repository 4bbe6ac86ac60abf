"""The Blender scene of stage 01, run inside a worker process: Cycles set up once per worker, then one object
imported, lit, and rendered from random views, with its cameras written beside the PNGs.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

from zero1to3 import cameras
from zero1to3.config import RenderConfig
from zero1to3.core import files, workers
from zero1to3.dataset import objects

logger = logging.getLogger(__name__)


META_NAME = "meta.json"


MESH_NAME = "mesh.obj"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


PNG_METADATA_CHUNKS = (b"tEXt", b"zTXt", b"iTXt", b"tIME")


def sample_views(cfg: RenderConfig, rng: np.random.Generator) -> np.ndarray:
    """An object's camera-to-world matrices, `(num_views, 4, 4)`, drawn from its generator."""
    eye = cameras.sample_camera_positions(
        cfg.num_views, rng, cfg.radius_min, cfg.radius_max, cfg.polar_min_deg, cfg.polar_max_deg
    )
    return cameras.look_at(eye)


def sample_lighting(rng: np.random.Generator) -> dict[str, float]:
    """Per-object lighting: a sun from the upper hemisphere plus grey ambient light from the world.

    The paper randomises a large area light once per object (docs/conventions.md#dataset-rendering); a sun with random
    direction and strength plays that role here, and the ambient term keeps views from below
    (the paper's sampler covers the whole sphere) from going black.
    """
    return {
        "sun_elevation_deg": float(rng.uniform(30.0, 80.0)),
        "sun_azimuth_deg": float(rng.uniform(0.0, 360.0)),
        "sun_strength": float(rng.uniform(2.5, 4.0)),
        "ambient_strength": float(rng.uniform(0.35, 0.6)),
    }


def mesh_sha256(source: objects.ObjectSource) -> str | None:
    """SHA-256 of the object's mesh file (a finished render is reused only while its mesh is unchanged); None if it
    cannot be read (the render then reports why, as an object error)."""
    try:
        return hashlib.sha256(Path(source.mesh_path).read_bytes()).hexdigest()
    except OSError:
        return None


WORKER: dict[str, Any] = {}


def init_worker(cfg: RenderConfig, threads: int, parent_pid: int) -> None:
    workers.die_with_parent(parent_pid)
    # Blender prints a line per saved frame from C; silence the worker's stdout (stderr still shows errors).
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    import bpy  # noqa: F401  (imported here only: bpy is heavy and global)

    WORKER["cfg"] = cfg
    WORKER["scene"] = _setup_scene(cfg, threads)


def _setup_scene(cfg: RenderConfig, threads: int) -> Any:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = cfg.samples_per_pixel
    scene.cycles.use_adaptive_sampling = False  # fixed work per pixel: deterministic and predictable
    scene.cycles.use_denoising = False  # OIDN costs more than it buys at 64 px
    scene.cycles.seed = 0
    scene.cycles.max_bounces = 4
    scene.cycles.diffuse_bounces = 1  # paper: diffuse 1, glossy 1 (docs/conventions.md#dataset-rendering)
    scene.cycles.glossy_bounces = 1
    scene.render.threads_mode = "FIXED"
    scene.render.threads = threads
    # Keep the object's BVH and shaders from one view to the next (only the camera moves): the same pixels, measured
    # on 529 views, in 15% less time (docs/speed.md).
    scene.render.use_persistent_data = True
    scene.render.resolution_x = scene.render.resolution_y = cfg.resolution_px
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True  # alpha 0 wherever no geometry is hit
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    scene.view_settings.view_transform = "Standard"  # keep the objects' colours (AgX/Filmic desaturate)
    # No metadata in the PNGs (Blender writes date, time, render time, ... by default): identical
    # pixels must give identical files, or DVC sees new renders and reruns every later stage. Cycles
    # adds its own timings regardless of these switches; `strip_png_metadata` removes those.
    for name in [n for n in dir(scene.render) if n.startswith("use_stamp")]:
        setattr(scene.render, name, False)

    cam_data = bpy.data.cameras.new("camera")
    cam_data.lens = cameras.LENS_MM
    cam_data.sensor_width = cameras.SENSOR_MM
    cam_data.sensor_fit = "AUTO"
    cam_data.clip_start, cam_data.clip_end = 0.01, 100.0
    camera = bpy.data.objects.new("camera", cam_data)
    scene.collection.objects.link(camera)
    scene.camera = camera

    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", type="SUN"))
    scene.collection.objects.link(sun)

    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    scene.world = world
    return scene


def render_object(source: objects.ObjectSource, out_dir: Path, cfg: RenderConfig) -> dict[str, Any]:
    """Render one object's views into `out_dir` (runs in a worker that has bpy). Returns its meta."""
    import bpy
    from mathutils import Euler, Matrix

    scene = WORKER["scene"]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    # 1. Mesh: normalised once with trimesh and saved; Blender renders exactly that file.
    mesh = objects.load_normalised_mesh(source)
    mesh.export(out_dir / MESH_NAME)
    for obj in [o for o in scene.objects if o.type == "MESH"]:
        bpy.data.objects.remove(obj, do_unlink=True)
    for block in (bpy.data.meshes, bpy.data.materials, bpy.data.images):
        for item in [b for b in block if b.users == 0]:
            block.remove(item)
    bpy.ops.wm.obj_import(filepath=str(out_dir / MESH_NAME), forward_axis="Y", up_axis="Z")  # file axes = world
    imported = [o for o in scene.objects if o.type == "MESH"]
    if not imported:
        raise objects.MeshError(f"{source.object_id}: Blender imported no mesh from {out_dir / MESH_NAME}")
    if source.color_rgba is None:
        _use_vertex_colours(bpy, imported, source.object_id)
    else:
        material = bpy.data.materials.new(f"{source.object_id}_flat")
        material.use_nodes = True
        bsdf = material.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = source.color_rgba
        bsdf.inputs["Roughness"].default_value = 0.8
        for obj in imported:
            obj.data.materials.clear()
            obj.data.materials.append(material)

    # 2. Lighting and cameras from the object's own generator (independent of render order).
    rng = objects.object_seed(cfg.seed, source.object_id)
    c2w = sample_views(cfg, rng)
    light = sample_lighting(rng)
    sun = scene.objects["sun"]
    sun.data.energy = light["sun_strength"]
    # A sun shines along its local -Z; tilt it so it comes from the drawn elevation and azimuth.
    sun.rotation_euler = Euler(
        (math.radians(90.0 - light["sun_elevation_deg"]), 0.0, math.radians(light["sun_azimuth_deg"] + 90.0)), "XYZ"
    )
    background = scene.world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    background.inputs["Strength"].default_value = light["ambient_strength"]

    # 3. Views.
    camera = scene.camera
    for i, pose in enumerate(c2w):
        camera.matrix_world = Matrix(pose.tolist())
        scene.render.filepath = str(out_dir / f"{i:03d}.png")
        bpy.ops.render.render(write_still=True)
        strip_png_metadata(Path(scene.render.filepath))
        np.save(out_dir / f"{i:03d}.npy", cameras.c2w_to_w2c(pose))

    polar, azimuth, radius = cameras.cartesian_to_spherical(c2w[:, :3, 3])
    meta = {
        "object_id": source.object_id,
        "settings": cfg.render_settings(),
        "fov_deg": cameras.FOV_DEG,
        "color_rgba": source.color_rgba,
        "mesh_sha256": mesh_sha256(source),
        "lighting": light,
        "polar_deg": np.degrees(polar).tolist(),
        "azimuth_deg": np.degrees(azimuth).tolist(),
        "radius": radius.tolist(),
    }  # no timings: identical settings must write identical bytes
    files.write_json_atomic(out_dir / META_NAME, meta)  # written last: marks the object complete
    return meta


def _use_vertex_colours(bpy: Any, imported: list[Any], object_id: str) -> None:
    """Give a mesh without materials but with vertex colours (a coloured PLY) a material that shows them."""
    for obj in imported:
        if len(obj.data.materials) or not len(obj.data.color_attributes):
            continue
        material = bpy.data.materials.new(f"{object_id}_vertex_colours")
        material.use_nodes = True
        nodes = material.node_tree.nodes
        attribute = nodes.new("ShaderNodeVertexColor")  # the "Color Attribute" node
        attribute.layer_name = obj.data.color_attributes[0].name
        bsdf = nodes["Principled BSDF"]
        material.node_tree.links.new(attribute.outputs["Color"], bsdf.inputs["Base Color"])
        bsdf.inputs["Roughness"].default_value = 0.8
        obj.data.materials.append(material)


def strip_png_metadata(path: Path) -> None:
    """Rewrite a PNG without its text and time chunks (pixels and every other chunk kept byte for byte)."""
    data = path.read_bytes()
    if data[:8] != PNG_SIGNATURE:
        raise ValueError(f"{path} is not a PNG file (it starts with {data[:8]!r})")
    kept, pos = [data[:8]], 8
    while pos < len(data):  # chunk = length (4 bytes, big-endian), type (4), data (length), CRC (4)
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 12 + length
        if data[pos + 4 : pos + 8] not in PNG_METADATA_CHUNKS:
            kept.append(data[pos:end])
        pos = end
    path.write_bytes(b"".join(kept))
