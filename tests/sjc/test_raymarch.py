import math

import numpy as np
import pytest
import torch

from zero1to3 import cameras
from zero1to3.sjc import raymarch

torch.set_num_threads(1)


def constant_field(sigma: float, colour: list[float]):
    """A homogeneous medium: the same density and features everywhere."""
    c = torch.tensor(colour, dtype=torch.float64)

    def field(points):
        return torch.full(points.shape[:-1], sigma, dtype=points.dtype), c.to(points.dtype).expand(
            *points.shape[:-1], len(colour)
        )

    return field


def x_ray(origin_x: float = -3.0) -> raymarch.Rays:
    """One ray along +X through the box centre, in float64 for tight analytic comparisons."""
    return raymarch.Rays(
        origins=torch.tensor([[origin_x, 0.0, 0.0]], dtype=torch.float64),
        directions=torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64),
    )


# --- compositing -------------------------------------------------------------------------------


def test_empty_medium_is_transparent():
    background = torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64)
    out = raymarch.render_rays(
        constant_field(0.0, [1.0, 0.0, 0.0]), x_ray(), 16, bound=1.0, background=background, background_depth=10.0
    )
    assert out.opacity.item() == 0.0
    torch.testing.assert_close(out.features[0], background)
    assert out.depth.item() == pytest.approx(10.0)  # all of the ray reaches the background


def test_fully_opaque_first_sample_takes_everything():
    sigma = torch.tensor([[1e6, 3.0, 5.0, 0.0]])
    deltas = torch.full((1, 4), 0.1)
    t = torch.tensor([[2.05, 2.15, 2.25, 2.35]])
    values = torch.tensor([[[0.9, 0.1], [0.0, 1.0], [0.5, 0.5], [0.3, 0.3]]])
    weights = raymarch.volume_render_weights(sigma, deltas)
    torch.testing.assert_close(weights, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(raymarch.composite(weights, values, background=7.0), values[:, 0])
    assert (weights * t).sum().item() == pytest.approx(2.05)  # expected depth = the first sample's t


@pytest.mark.parametrize("sigma", [0.3, 1.5, 6.0])
def test_uniform_medium_matches_the_analytic_slab(sigma):
    # Ray from x = -3 along +X crosses the box [-1, 1]^3 on t in [a, b] = [2, 4], length L = 2.
    a, b, length = 2.0, 4.0, 2.0
    colour, background = [0.25, 0.5, 1.0], 0.1
    out = raymarch.render_rays(constant_field(sigma, colour), x_ray(), 512, bound=1.0, background=background)
    expected_opacity = 1.0 - math.exp(-sigma * length)  # exact for equal bins: sum sigma delta = sigma L
    assert out.opacity.item() == pytest.approx(expected_opacity, rel=1e-12)
    expected_features = [expected_opacity * c + (1 - expected_opacity) * background for c in colour]
    np.testing.assert_allclose(out.features[0].numpy(), expected_features, rtol=1e-12)
    # E[t] = int_a^b t sigma exp(-sigma (t - a)) dt = a - b exp(-sigma L) + (1 - exp(-sigma L)) / sigma
    expected_depth = a - b * math.exp(-sigma * length) + (1 - math.exp(-sigma * length)) / sigma
    assert out.depth.item() == pytest.approx(expected_depth, rel=1e-4)  # midpoint rule, 512 bins


def test_weights_have_finite_gradients_when_opaque():
    sigma = torch.tensor([[1e4, 1e4, 1.0]], requires_grad=True)
    weights = raymarch.volume_render_weights(sigma, torch.full((1, 3), 0.5))
    weights.sum().backward()
    assert torch.isfinite(sigma.grad).all()


def test_composite_accepts_per_ray_background():
    weights = torch.tensor([[0.25, 0.25], [0.0, 0.0]])
    values = torch.ones(2, 2, 1)
    background = torch.tensor([[2.0], [3.0]])
    torch.testing.assert_close(raymarch.composite(weights, values, background), torch.tensor([[1.5], [3.0]]))


# --- ray-box intersection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "direction", "expected"),
    [
        ([-3.0, 0.0, 0.0], [1.0, 0.0, 0.0], (2.0, 4.0)),  # axis-parallel hit
        ([0.0, 0.0, 5.0], [0.0, 0.0, -1.0], (4.0, 6.0)),  # from above
        ([0.0, 0.0, 0.0], [0.0, 1.0, 0.0], (0.0, 1.0)),  # starting at the centre
        ([0.5, 0.2, -0.3], [-1.0, 0.0, 0.0], (0.0, 1.5)),  # starting inside, axis-parallel
        ([-2.0, -2.0, -2.0], [1.0, 1.0, 1.0], (math.sqrt(3.0), 3 * math.sqrt(3.0))),  # through two corners
        ([-3.0, 0.5, 1.0], [1.0, 0.0, 0.0], (2.0, 4.0)),  # grazing along an edge (|y|, |z| <= 1) still hits
    ],
)
def test_intersect_aabb_hits(origin, direction, expected):
    o = torch.tensor([origin], dtype=torch.float64)
    d = torch.tensor([direction], dtype=torch.float64)
    d = d / d.norm(dim=-1, keepdim=True)
    t_near, t_far, hit = raymarch.intersect_aabb(o, d, 1.0)
    assert hit.item()
    assert (t_near.item(), t_far.item()) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("origin", "direction"),
    [
        ([-3.0, 2.0, 0.0], [1.0, 0.0, 0.0]),  # axis-parallel, outside the y slab
        ([3.0, 0.0, 0.0], [1.0, 0.0, 0.0]),  # box behind the origin
        ([-3.0, 0.0, 0.0], [0.0, 0.0, 1.0]),  # passes beside the box
        ([-2.0, -2.0, 0.0], [1.0, -1.0, 0.0]),  # diagonal, away from it
        ([-3.0, 0.0, 0.0], [1.0, 1.0, 0.0]),  # diagonal, misses the corner region
    ],
)
def test_intersect_aabb_misses(origin, direction):
    o = torch.tensor([origin])
    d = torch.nn.functional.normalize(torch.tensor([direction]), dim=-1)
    t_near, t_far, hit = raymarch.intersect_aabb(o, d, 1.0)
    assert not hit.item()
    assert t_near.item() == t_far.item() == 0.0  # an empty segment: zero-length samples downstream


def test_intersect_aabb_agrees_with_point_tests():
    gen = torch.Generator().manual_seed(0)
    o = 3.0 * (2 * torch.rand(2000, 3, generator=gen, dtype=torch.float64) - 1)
    d = torch.nn.functional.normalize(torch.randn(2000, 3, generator=gen, dtype=torch.float64), dim=-1)
    d[:300, 0] = 0.0  # some rays parallel to a face
    d = torch.nn.functional.normalize(d, dim=-1)
    bound = 0.8
    t_near, t_far, hit = raymarch.intersect_aabb(o, d, bound)
    assert torch.isfinite(t_near).all() and torch.isfinite(t_far).all()
    # brute force: dense points along each ray, which of them lie in the box
    t = torch.linspace(0.0, 10.0, 20001, dtype=torch.float64)
    inside = ((o[:, None] + t[None, :, None] * d[:, None]).abs() <= bound).all(dim=-1)  # (R, T)
    brute_hit = inside.any(dim=1)
    assert (hit == brute_hit).float().mean() > 0.998  # grazing rays may differ by the brute-force step
    both = hit & brute_hit
    first = t[inside.float().argmax(dim=1)]
    last = t[(inside.float() * torch.arange(len(t))).argmax(dim=1)]
    np.testing.assert_allclose(t_near[both].numpy(), first[both].numpy(), atol=1e-3)
    np.testing.assert_allclose(t_far[both].numpy(), last[both].numpy(), atol=1e-3)


# --- camera rays -------------------------------------------------------------------------------


def test_rays_through_projected_points_hit_them():
    eye = cameras.spherical_to_cartesian(math.radians(70.0), math.radians(-35.0), 2.0)
    c2w = cameras.look_at(eye)
    w2c = cameras.c2w_to_w2c(c2w)
    size = 32
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(100, 3))
    uv, depth = cameras.project_points(points, w2c, size)
    rays = raymarch.rays_at_pixels(c2w, torch.from_numpy(uv), size)
    to_point = torch.from_numpy(points) - rays.origins
    along = (to_point * rays.directions).sum(-1)
    off_ray = (to_point - along[:, None] * rays.directions).norm(dim=-1)
    assert off_ray.max().item() < 1e-9
    assert (along > 0).all()
    # depth along -Z = distance along the ray times cos(angle to the optical axis)
    optical_axis = -torch.from_numpy(c2w[:3, 2])
    np.testing.assert_allclose((along * (rays.directions @ optical_axis)).numpy(), depth, rtol=1e-9)


def test_pixel_centre_rays_project_back_to_their_pixel():
    c2w = cameras.look_at(np.array([1.2, -1.5, 0.7]))
    size = 16
    rays = raymarch.rays_from_camera(c2w, size, dtype=torch.float64)
    assert rays.origins.shape == rays.directions.shape == (size, size, 3)
    torch.testing.assert_close(rays.directions.norm(dim=-1), torch.ones(size, size, dtype=torch.float64))
    points = (rays.origins + 1.7 * rays.directions).reshape(-1, 3).numpy()
    uv, _ = cameras.project_points(points, cameras.c2w_to_w2c(c2w), size)
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    np.testing.assert_allclose(uv[:, 0], cols.reshape(-1) + 0.5, atol=1e-9)  # u: column, to the right
    np.testing.assert_allclose(uv[:, 1], rows.reshape(-1) + 0.5, atol=1e-9)  # v: row, downwards


def test_centre_ray_of_a_look_at_camera_passes_through_the_origin():
    eye = cameras.spherical_to_cartesian(math.radians(40.0), math.radians(120.0), 2.2)
    rays = raymarch.rays_from_camera(cameras.look_at(eye), 17, dtype=torch.float64)  # odd: a centre pixel
    o, d = rays.origins[8, 8], rays.directions[8, 8]
    torch.testing.assert_close(d, -o / o.norm())
    # top row of the image looks upwards (+Z), left column to camera -X
    assert rays.directions[0, 8, 2] > d[2]
    c2w = cameras.look_at(eye)
    assert (rays.directions[8, 0] - d) @ torch.from_numpy(c2w[:3, 0]) < 0


def test_batched_cameras_match_single_ones():
    eyes = cameras.spherical_to_cartesian(np.radians([30.0, 100.0]), np.radians([0.0, 200.0]), 2.0)
    c2w = cameras.look_at(eyes)
    batch = raymarch.rays_from_camera(c2w, 8)
    assert batch.directions.shape == (2, 8, 8, 3)
    for i in range(2):
        single = raymarch.rays_from_camera(torch.from_numpy(c2w[i]), 8)
        torch.testing.assert_close(batch.directions[i], single.directions)
        torch.testing.assert_close(batch.origins[i], single.origins)


# --- sampling ----------------------------------------------------------------------------------


def test_stratified_sampling_is_deterministic_given_the_seed():
    t_near, t_far = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([2.0, 1.5, 2.0])
    a, _ = raymarch.sample_along_rays(t_near, t_far, 8, generator=torch.Generator().manual_seed(3))
    b, _ = raymarch.sample_along_rays(t_near, t_far, 8, generator=torch.Generator().manual_seed(3))
    c, _ = raymarch.sample_along_rays(t_near, t_far, 8, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_samples_stay_in_their_bins():
    t_near, t_far = torch.tensor([1.0, 0.5]), torch.tensor([3.0, 0.5])  # the second segment is empty
    t, deltas = raymarch.sample_along_rays(t_near, t_far, 4, generator=torch.Generator().manual_seed(0))
    edges = torch.linspace(1.0, 3.0, 5)
    assert ((t[0] >= edges[:-1]) & (t[0] <= edges[1:])).all()
    torch.testing.assert_close(deltas[0], torch.full((4,), 0.5))
    assert (deltas[1] == 0).all() and (t[1] == 0.5).all()
    mid, _ = raymarch.sample_along_rays(t_near, t_far, 4)
    torch.testing.assert_close(mid[0], torch.tensor([1.25, 1.75, 2.25, 2.75]))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_samples"):
        raymarch.sample_along_rays(torch.zeros(1), torch.ones(1), 0)
    with pytest.raises(ValueError, match="bound"):
        raymarch.intersect_aabb(torch.zeros(1, 3), torch.ones(1, 3), 0.0)
    with pytest.raises(ValueError, match="bound"):
        raymarch.render_rays(constant_field(1.0, [0.0]), x_ray(), 4)


def test_transmittance_is_exact_after_a_huge_optical_depth():
    # a thin sample, an opaque one, then more: T must still see the thin sample (no cumsum - tau cancellation)
    sigma = torch.tensor([[1e-3, 1e7, 1.0]])
    weights = raymarch.volume_render_weights(sigma, torch.ones(1, 3))
    expected = torch.tensor([[1 - math.exp(-1e-3), math.exp(-1e-3), 0.0]])
    torch.testing.assert_close(weights, expected, rtol=1e-6, atol=1e-9)
