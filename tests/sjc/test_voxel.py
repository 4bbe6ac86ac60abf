import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zero1to3 import cameras
from zero1to3.sjc import raymarch, voxel

torch.set_num_threads(1)


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


def field_with_density(density: torch.Tensor, bound: float = 1.0) -> voxel.VoxelField:
    """A field whose activated node densities equal `density` (indexed z, y, x)."""
    field = voxel.VoxelField(density.shape[0], feature_dim=1, bound=bound)
    with torch.no_grad():
        field.density_raw[0, 0] = inverse_softplus(density.clamp_min(1e-4)) - field.density_shift
    return field


def sphere_density(resolution: int, centre, radius: float, bound: float = 1.0) -> torch.Tensor:
    """Density falling linearly with distance from the centre, equal to 1 on the sphere, on the (z, y, x) grid."""
    field = voxel.VoxelField(resolution, feature_dim=1, bound=bound)
    r = (field.node_coordinates().double() - torch.tensor(centre, dtype=torch.float64)).norm(dim=-1)
    return 2.0 - r / radius


# --- lookup ------------------------------------------------------------------------------------


def test_initial_density_is_softplus_of_the_shift():
    field = voxel.VoxelField(8, feature_dim=4)
    density, features = field.query(torch.zeros(5, 3))
    torch.testing.assert_close(density, torch.full((5,), math.log1p(math.exp(-1.0))))
    assert features.shape == (5, 4)


def test_nodes_are_on_the_box_faces_and_axes_are_not_swapped():
    # one raw value at stored index (z, y, x) = (0, 1, 3) of a 4^3 grid in [-2, 2]^3
    field = voxel.VoxelField(4, feature_dim=2, bound=2.0)
    with torch.no_grad():
        field.density_raw[0, 0, 0, 1, 3] = 5.0
        field.features_raw[0, :, 0, 1, 3] = torch.tensor([7.0, -7.0])
    spacing = 4.0 / 3.0
    assert field.voxel_size == pytest.approx(spacing)
    node = torch.tensor([[-2.0 + 3 * spacing, -2.0 + 1 * spacing, -2.0 + 0 * spacing]])  # world (x, y, z)
    torch.testing.assert_close(field.node_coordinates()[0, 1, 3], node[0])
    density, features = field.query(node)
    assert density.item() == pytest.approx(torch.nn.functional.softplus(torch.tensor(4.0)).item())
    torch.testing.assert_close(features[0], torch.tensor([7.0, -7.0]))
    # the neighbouring nodes along each world axis keep the initial value
    for step in ([-spacing, 0, 0], [0, spacing, 0], [0, 0, spacing]):
        d, _ = field.query(node + torch.tensor(step))
        assert d.item() == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-5)


def test_query_matches_the_grid_at_every_node_and_interpolates_between():
    field = voxel.VoxelField(5, feature_dim=3, feature_init_std=1.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        field.density_raw.normal_(generator=torch.Generator().manual_seed(1))
    nodes = field.node_coordinates()
    density, features = field.query(nodes)
    torch.testing.assert_close(density, field.density_grid())
    torch.testing.assert_close(features, field.features_raw[0].permute(1, 2, 3, 0))
    # half-way between two nodes along x: raw is the mean (trilinear = linear along one axis)
    mid = 0.5 * (nodes[2, 3, 1] + nodes[2, 3, 2])
    _, f_mid = field.query(mid[None])
    torch.testing.assert_close(f_mid[0], 0.5 * (field.features_raw[0, :, 2, 3, 1] + field.features_raw[0, :, 2, 3, 2]))


def test_one_lookup_of_both_grids_gives_the_numbers_and_gradients_of_one_lookup_each():
    """`query` samples density and features in one `grid_sample` call (faster); SJC's fields stay bit for bit
    what two calls give, so a run's field does not depend on that choice."""
    g = torch.Generator().manual_seed(0)
    field = voxel.VoxelField(9, feature_dim=4, bound=0.6, feature_init_std=1.0, generator=g)
    with torch.no_grad():
        field.density_raw.normal_(generator=g)
    points = 1.4 * torch.rand(2000, 3, generator=g) - 0.7  # inside and beyond the box
    density, feats = field.query(points)
    weights_d, weights_f = torch.randn(density.shape, generator=g), torch.randn(feats.shape, generator=g)
    grads = torch.autograd.grad((density * weights_d).sum() + (feats * weights_f).sum(), list(field.parameters()))

    kw = {"mode": "bilinear", "align_corners": True, "padding_mode": "border"}
    grid = (points / field.bound).reshape(1, -1, 1, 1, 3)
    raw = F.grid_sample(field.density_raw, grid, **kw).reshape(-1)
    inside = (points.abs() <= field.bound).all(dim=-1)
    ref_density = torch.where(inside, field.activate_density(raw), torch.zeros_like(raw))
    ref_feats = F.grid_sample(field.features_raw, grid, **kw).reshape(4, -1).T
    ref_grads = torch.autograd.grad(
        (ref_density * weights_d).sum() + (ref_feats * weights_f).sum(), list(field.parameters())
    )
    assert torch.equal(density, ref_density) and torch.equal(feats, ref_feats)
    assert all(torch.equal(a, b) for a, b in zip(grads, ref_grads, strict=True))


def test_outside_the_box_is_empty():
    field = voxel.VoxelField(4, feature_dim=1, bound=0.5)
    density, _ = field.query(torch.tensor([[0.6, 0.0, 0.0], [0.0, 0.0, -0.51], [0.5, 0.5, 0.5]]))
    assert density[0] == 0 and density[1] == 0 and density[2] > 0


def test_feature_activation_and_seeded_init():
    a = voxel.VoxelField(
        4, 3, feature_activation=torch.sigmoid, feature_init_std=1.0, generator=torch.Generator().manual_seed(0)
    )
    b = voxel.VoxelField(4, 3, feature_init_std=1.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.features_raw, b.features_raw)
    p = torch.tensor([[0.1, 0.2, -0.3]])
    torch.testing.assert_close(a.query(p)[1], torch.sigmoid(b.query(p)[1]))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="generator"):
        voxel.VoxelField(4, feature_init_std=1.0)
    with pytest.raises(ValueError, match="resolution"):
        voxel.VoxelField(1)
    with pytest.raises(ValueError, match="threshold"):
        voxel.extract_mesh(voxel.VoxelField(4), threshold=1.0, threshold_mean_factor=8.0)
    with pytest.raises(ValueError, match="bound"):
        voxel.extract_mesh(torch.ones(4, 4, 4), threshold=0.5)
    with pytest.raises(ValueError, match="smooth_kernel"):
        voxel.extract_mesh(voxel.VoxelField(4), threshold=0.5, smooth_kernel=4)
    with pytest.raises(ValueError, match="non-finite"):
        voxel.extract_mesh(torch.full((4, 4, 4), float("nan")), threshold=0.5, bound=1.0)


# --- marching cubes ----------------------------------------------------------------------------

CENTRE, RADIUS = (0.2, -0.1, 0.05), 0.5  # off-centre, so any axis swap or flip would move the mesh


def check_sphere_mesh(mesh, centre=CENTRE, radius=RADIUS, rel=0.02):
    assert mesh.is_watertight
    assert mesh.volume > 0  # outward-facing triangles
    assert mesh.area == pytest.approx(4 * math.pi * radius**2, rel=rel)
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * radius**3, rel=rel)
    dist = np.linalg.norm(mesh.vertices - np.asarray(centre), axis=1)
    np.testing.assert_allclose(dist, radius, atol=0.01)  # world coordinates, no axis reordering
    np.testing.assert_allclose(mesh.vertices.mean(axis=0), centre, atol=0.01)


def test_marching_cubes_on_an_analytic_sphere_grid():
    density = sphere_density(48, CENTRE, RADIUS)
    check_sphere_mesh(voxel.extract_mesh(density, threshold=1.0, bound=1.0))
    check_sphere_mesh(voxel.extract_mesh(density, threshold=1.0, bound=1.0, upsample=2))


def test_marching_cubes_on_a_field_and_a_scaled_box():
    bound = 1.5
    centre = tuple(bound * c for c in CENTRE)
    field = field_with_density(sphere_density(40, centre, 0.6, bound=bound).float(), bound=bound)
    check_sphere_mesh(voxel.extract_mesh(field, threshold=1.0), centre=centre, radius=0.6)


def test_surface_cut_by_the_box_is_closed_on_its_face():
    # a sphere of radius 0.48 centred on the face x = 1: half of it lies in the box. (A radius with
    # grid nodes exactly on the level set, e.g. 0.5 with node (1, 0.3, 0.4), makes degenerate triangles.)
    density = sphere_density(41, (1.0, 0.0, 0.0), 0.48)
    mesh = voxel.extract_mesh(density, threshold=1.0, bound=1.0)
    assert mesh.is_watertight
    assert mesh.vertices[:, 0].max() == pytest.approx(1.0)
    assert mesh.volume == pytest.approx(0.5 * 4 / 3 * math.pi * 0.48**3, rel=0.02)
    open_mesh = voxel.extract_mesh(density, threshold=1.0, bound=1.0, close=False)
    assert not open_mesh.is_watertight


def test_threshold_outside_the_range_gives_an_empty_mesh():
    mesh = voxel.extract_mesh(sphere_density(16, CENTRE, RADIUS), threshold=100.0, bound=1.0)
    assert len(mesh.vertices) == 0 and len(mesh.faces) == 0


# --- fitting: renderer + field recover a sphere from its views ---------------------------------


def sphere_views(rays: raymarch.Rays, centre: torch.Tensor, radius: float, sigma: float):
    """Exact opacity of a homogeneous ball: 1 - exp(-sigma x chord length)."""
    oc = rays.origins - centre
    b = (rays.directions * oc).sum(-1)
    c = (oc * oc).sum(-1) - radius**2
    chord = 2.0 * torch.sqrt((b * b - c).clamp_min(0.0))  # |t2 - t1| of |o + t d - centre| = radius
    return 1.0 - torch.exp(-sigma * chord)


def test_field_fitted_to_sphere_views_recovers_the_sphere():
    # 4 fresh random views per step (16x16, radius 2-2.5), opacity + colour loss; analytic targets.
    centre, radius, sigma = torch.tensor([0.1, -0.05, 0.0]), 0.5, 10.0
    colour, white = torch.tensor([0.8, 0.3, 0.1]), torch.ones(3)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    field = voxel.VoxelField(32, feature_dim=3, feature_activation=torch.sigmoid)
    opt = torch.optim.Adam(field.parameters(), lr=0.1)
    for _ in range(300):
        eyes = cameras.sample_camera_positions(4, rng, radius_min=2.0, radius_max=2.5)
        rays = raymarch.rays_from_camera(cameras.look_at(eyes), 16)
        out = raymarch.render_rays(field, rays, 32, generator=gen, background=white)
        opacity = sphere_views(rays, centre, radius, sigma)
        target_rgb = opacity[..., None] * colour + (1 - opacity[..., None]) * white
        loss = F.mse_loss(out.opacity, opacity) + F.mse_loss(out.features, target_rgb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01

    axis = torch.linspace(-1.0, 1.0, 48)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    with torch.no_grad():
        density, features = field.query(points)
    predicted, truth = density > sigma / 2, (points - centre).norm(dim=-1) < radius
    iou = (predicted & truth).sum().item() / (predicted | truth).sum().item()
    assert iou > 0.9, f"volumetric IoU {iou:.3f}"
    inner = (points - centre).norm(dim=-1) < radius - 0.1
    torch.testing.assert_close(features[inner].mean(0), colour, atol=0.1, rtol=0)
