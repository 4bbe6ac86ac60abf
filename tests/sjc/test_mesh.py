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


def test_an_empty_field_is_an_error_that_says_what_to_try():
    field = voxel.VoxelField(9, 4, 0.6)  # uniform fog: nothing crosses any level
    with pytest.raises(mesh.EmptyMeshError, match=r"no surface at 1.5 x its mean density.*--mesh-threshold"):
        mesh.extract(field, mesh.MeshSettings())


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
