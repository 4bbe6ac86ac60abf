import math

import numpy as np
import pytest
import torch
import trimesh

from zero1to3 import cameras
from zero1to3.sjc import mesh, voxel

torch.set_num_threads(1)


def _sphere_field(resolution=17, radius=0.35, bound=0.6):
    """A field dense inside a sphere of `radius` (raw density 4 inside, -4 outside) and zero features."""
    field = voxel.VoxelField(resolution, 4, bound)
    r = field.node_coordinates().norm(dim=-1)  # (D, H, W)
    with torch.no_grad():
        field.density_raw[0, 0] = torch.where(r < radius, 4.0, -4.0)
    return field


def test_density_on_the_doubled_grid_is_stage_04s_upsampled_density():
    """The default grid (2x the field's) has the nodes of stage 04's x2 trilinear upsampling: the same mesh."""
    field = _sphere_field()
    grid = mesh.density_on_grid(field, 2 * (field.resolution - 1) + 1)
    upsampled = field.activate_density(voxel._resample(field.density_raw[0, 0], 2))
    torch.testing.assert_close(grid, upsampled, atol=1e-5, rtol=1e-5)
    ours = mesh.extract(field, mesh.MeshSettings())
    theirs = voxel.extract_mesh(field, threshold_mean_factor=1.5, upsample=2, smooth_kernel=3)
    assert len(ours.faces) == len(theirs.faces)
    np.testing.assert_allclose(ours.bounds, theirs.bounds, atol=1e-4)


def test_a_sphere_comes_out_closed_at_its_radius_on_any_grid():
    for grid_size in (24, 45):
        m = mesh.extract(_sphere_field(), mesh.MeshSettings(grid_size=grid_size, threshold_mean_factor=1.0))
        radii = np.linalg.norm(m.vertices, axis=1)
        assert m.is_watertight and abs(np.median(radii) - 0.35) < 0.06, (grid_size, np.median(radii))


def test_the_papers_recipe_on_a_solid_sphere():
    """`PAPER_MESH` (199^3 grid, 7^3 mean filter, 8 x mean, 5^3 erosion) keeps a converged, off-centre ball whole."""
    centre, radius = np.array([0.2, -0.1, 0.05]), 0.5  # off-centre, so any axis swap or flip would move the mesh
    field = voxel.VoxelField(48, 1, bound=1.0)
    inside = (field.node_coordinates() - torch.tensor(centre, dtype=torch.float32)).norm(dim=-1) < radius
    with torch.no_grad():  # occupancy-like raw density: ~50 inside the sphere, ~0 outside, as a converged field
        field.density_raw[0, 0] = torch.where(inside, 51.0, -8.0)
    m = mesh.extract(field, mesh.PAPER_MESH)
    assert m.is_watertight and m.volume > 0
    np.testing.assert_allclose(m.vertices.mean(axis=0), centre, atol=0.02)
    # smoothing + 8x-mean threshold + erosion shrink it somewhat, but it stays a ball of about that size
    distance = np.linalg.norm(m.vertices - centre, axis=1)
    assert 0.3 < distance.min() and distance.max() < radius + 0.02


def test_an_empty_field_is_an_error_that_says_what_to_try():
    field = voxel.VoxelField(9, 4, 0.6)  # uniform fog: nothing crosses any level
    with pytest.raises(mesh.EmptyMeshError, match=r"no surface at 1.5 x its mean density.*--mesh-threshold"):
        mesh.extract(field, mesh.MeshSettings())


@pytest.mark.parametrize("suffix", ["ply", "obj"])
def test_export_mesh_of_an_analytic_sphere_round_trips(tmp_path, suffix):
    # Off-centre sphere, so a swapped or flipped axis would move the centroid: raw density linear in the
    # distance, crossing the iso-level softplus(0) = ln 2 exactly on the sphere.
    centre, r = np.array([0.12, -0.05, 0.18]), 0.3
    field = voxel.VoxelField(48, 4, bound=0.6)
    with torch.no_grad():
        dist = (field.node_coordinates() - torch.tensor(centre, dtype=torch.float32)).norm(dim=-1)
        field.density_raw[0, 0] = -field.density_shift + 20.0 * (r - dist)
    path = tmp_path / f"sphere.{suffix}"
    exported = mesh.export_mesh(field, path, threshold=math.log(2.0), smooth_kernel=1)
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.faces) == len(exported.faces) and loaded.is_watertight
    assert loaded.volume == pytest.approx(4 / 3 * math.pi * r**3, rel=0.02)
    assert loaded.area == pytest.approx(4 * math.pi * r**2, rel=0.03)
    np.testing.assert_allclose(loaded.center_mass, centre, atol=2e-3)


def test_export_mesh_of_an_empty_field_raises_and_writes_nothing(tmp_path):
    field = voxel.VoxelField(8, 4, bound=0.6)  # uniform fog softplus(-1) = 0.31 everywhere
    with pytest.raises(mesh.EmptyMeshError, match="no surface"):
        mesh.export_mesh(field, tmp_path / "empty.ply", threshold=10.0)
    with pytest.raises(mesh.EmptyMeshError, match="no surface"):  # the default: 1.5 x the (uniform) mean
        mesh.export_mesh(field, tmp_path / "empty.ply")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=".ply or .obj"):
        mesh.export_mesh(field, tmp_path / "mesh.stl")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grid_size": 4}, r"`grid_size` must be in \[8, 512\]"),
        ({"threshold_mean_factor": float("nan")}, "`threshold_mean_factor` must be a positive number"),
        ({"smooth_kernel": 2}, "`smooth_kernel` must be an odd kernel size"),
        ({"erosion_kernel": 0}, "`erosion_kernel` must be an odd kernel size"),
    ],
)
def test_mesh_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mesh.MeshSettings(**kwargs)


def test_each_vertex_takes_the_colour_of_the_views_that_face_it():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    centers = np.array([[1.85, 0.0, 0.0], [-1.85, 0.0, 0.0]])  # a red view from +X, a blue one from -X
    images = np.zeros((2, 32, 32, 3))
    images[0, ..., 0] = 1.0
    images[1, ..., 2] = 1.0
    depth = np.full((2, 8, 8), 10.0)  # nothing in front of any vertex
    colours = mesh.vertex_colours(sphere, images, depth, np.ones((2, 8, 8)), centers)
    assert colours.shape == (len(sphere.vertices), 4) and colours.dtype == np.uint8
    front, back = sphere.vertices[:, 0] > 0.2, sphere.vertices[:, 0] < -0.2
    assert (colours[front, 0] > 200).all() and (colours[front, 2] < 40).all()
    assert (colours[back, 2] > 200).all() and (colours[back, 0] < 40).all()
    # a vertex hidden behind the rendered surface in the red view takes the blue view's colour
    hidden = np.full((2, 8, 8), 10.0)
    hidden[0] = 1.0  # the red view's surface is 1 unit from its eye: every vertex is behind it
    colours = mesh.vertex_colours(sphere, images, hidden, np.ones((2, 8, 8)), centers)
    assert (colours[front, 2] > 200).all()


def test_colour_cameras_surround_the_object_outside_the_box():
    centers = mesh.colour_cameras()
    polar, _, radius = cameras.cartesian_to_spherical(centers)
    np.testing.assert_allclose(radius, mesh.COLOUR_VIEW_RADIUS)
    assert np.degrees(polar).min() < 5 and np.degrees(polar).max() > 175


def test_written_meshes_keep_their_vertex_colours(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=1, radius=0.3)
    sphere.visual.vertex_colors = np.tile([[10, 200, 30, 255]], (len(sphere.vertices), 1)).astype(np.uint8)
    written = mesh.write(sphere, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.glb", "mesh.obj", "mesh.ply"]
    for suffix in ("ply", "glb"):
        back = trimesh.load(written[suffix], force="mesh")
        assert len(back.faces) == len(sphere.faces)
        np.testing.assert_array_equal(back.visual.vertex_colors[0], [10, 200, 30, 255])
