import math

import numpy as np
import pytest

from zero1to3 import cameras


def test_fov_is_the_papers_blender_camera():
    assert cameras.FOV_DEG == pytest.approx(49.134, abs=1e-3)  # 2 atan(16 / 35)


@pytest.mark.parametrize(
    ("polar_deg", "azimuth_deg", "expected"),
    [
        (0.0, 0.0, [0.0, 0.0, 2.0]),  # straight above
        (90.0, 0.0, [2.0, 0.0, 0.0]),  # equator, along +X
        (90.0, 90.0, [0.0, 2.0, 0.0]),  # azimuth is counter-clockwise from +X seen from above
        (180.0, 0.0, [0.0, 0.0, -2.0]),  # straight below
        (60.0, -90.0, [0.0, -2.0 * math.sin(math.radians(60)), 1.0]),
    ],
)
def test_spherical_known_values(polar_deg, azimuth_deg, expected):
    xyz = cameras.spherical_to_cartesian(math.radians(polar_deg), math.radians(azimuth_deg), 2.0)
    np.testing.assert_allclose(xyz, expected, atol=1e-12)


def test_spherical_round_trip():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(500, 3))
    polar, azimuth, radius = cameras.cartesian_to_spherical(xyz)
    assert np.all((polar >= 0) & (polar <= np.pi))
    assert np.all((azimuth > -np.pi - 1e-12) & (azimuth <= np.pi))
    np.testing.assert_allclose(cameras.spherical_to_cartesian(polar, azimuth, radius), xyz, atol=1e-12)


def test_look_at_is_a_roll_free_rotation_looking_at_the_origin():
    rng = np.random.default_rng(1)
    eye = cameras.sample_camera_positions(200, rng)
    c2w = cameras.look_at(eye)
    rot = c2w[:, :3, :3]
    np.testing.assert_allclose(rot @ np.swapaxes(rot, 1, 2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
    forward = -rot[:, :, 2]  # camera looks along its -Z
    np.testing.assert_allclose(forward, -eye / np.linalg.norm(eye, axis=1, keepdims=True), atol=1e-12)
    assert np.all(np.abs(rot[:, 2, 0]) < 1e-12)  # camera +X is horizontal: no roll
    assert np.all(rot[:, 2, 1] >= 0)  # camera +Y leans towards world +Z
    np.testing.assert_allclose(c2w[:, :3, 3], eye)


def test_look_at_is_defined_at_the_poles():
    for z in (2.0, -2.0):
        c2w = cameras.look_at(np.array([0.0, 0.0, z]))
        rot = c2w[:3, :3]
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(-rot[:, 2], [0, 0, -np.sign(z)], atol=1e-12)


def test_look_at_rejects_a_camera_at_the_target():
    with pytest.raises(ValueError, match="eye"):
        cameras.look_at(np.zeros(3))


def test_w2c_is_the_inverse_of_c2w_and_recovers_the_centre():
    rng = np.random.default_rng(2)
    eye = cameras.sample_camera_positions(50, rng)
    c2w = cameras.look_at(eye)
    w2c = cameras.c2w_to_w2c(c2w)
    assert w2c.shape == (50, 3, 4)
    w2c_h = np.concatenate([w2c, np.broadcast_to([[[0, 0, 0, 1.0]]], (50, 1, 4))], axis=1)
    np.testing.assert_allclose(w2c_h @ c2w, np.broadcast_to(np.eye(4), (50, 4, 4)), atol=1e-12)
    np.testing.assert_allclose(cameras.camera_center(w2c), eye, atol=1e-12)
    np.testing.assert_allclose(cameras.w2c_to_c2w(w2c), c2w, atol=1e-12)


def test_project_points_centre_and_known_offset():
    size = 64
    w2c = cameras.c2w_to_w2c(cameras.look_at(np.array([2.0, 0.0, 0.0])))  # on +X, looking towards -X
    f = cameras.focal_length_px(size)
    # The origin lands on the image centre; world +Z (up) goes up the image (smaller v); looking
    # towards -X with Z up, world +Y is on the camera's right (larger u).
    uv, depth = cameras.project_points(np.array([[0, 0, 0], [0, 0, 0.5], [0, 0.5, 0]], float), w2c, size)
    np.testing.assert_allclose(uv[0], [32, 32], atol=1e-9)
    np.testing.assert_allclose(uv[1], [32, 32 - f * 0.5 / 2.0], atol=1e-9)
    np.testing.assert_allclose(uv[2], [32 + f * 0.5 / 2.0, 32], atol=1e-9)
    np.testing.assert_allclose(depth, [2.0, 2.0, 2.0], atol=1e-12)


def test_relative_pose_with_itself_is_identity_embedding():
    rng = np.random.default_rng(3)
    eye = cameras.sample_camera_positions(20, rng)
    np.testing.assert_allclose(cameras.relative_pose(eye, eye), np.tile([0, 0, 1, 0], (20, 1)), atol=1e-6)


def test_relative_pose_known_values():
    cond = cameras.spherical_to_cartesian(math.radians(60), math.radians(10), 1.5)
    target = cameras.spherical_to_cartesian(math.radians(90), math.radians(100), 2.0)
    emb = cameras.relative_pose(cond, target)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(emb, [math.radians(30), 1.0, 0.0, 0.5], atol=1e-6)
    # The same pose from the saved world-to-camera matrices.
    w2c = cameras.c2w_to_w2c(cameras.look_at(np.stack([cond, target])))
    np.testing.assert_allclose(cameras.relative_pose_from_w2c(w2c[0], w2c[1]), emb, atol=1e-6)


def test_relative_pose_azimuth_wraps_through_sin_cos():
    cond = cameras.spherical_to_cartesian(math.radians(90), math.radians(170), 2.0)
    target = cameras.spherical_to_cartesian(math.radians(90), math.radians(-170), 2.0)  # +20 deg across the seam
    np.testing.assert_allclose(
        cameras.relative_pose(cond, target)[1:3], [math.sin(math.radians(20)), math.cos(math.radians(20))], atol=1e-6
    )


def test_sampler_matches_the_paper_distribution():
    rng = np.random.default_rng(4)
    eye = cameras.sample_camera_positions(20000, rng)
    polar, _, radius = cameras.cartesian_to_spherical(eye)
    assert radius.min() >= 1.5 and radius.max() <= 2.2
    elevation = 90 - np.degrees(polar)
    # docs/conventions.md#dataset-rendering: simulated elevation percentiles -58, -33, 0, +33, +58 deg (cube-normalised
    # directions).
    np.testing.assert_allclose(np.percentile(elevation, [5, 25, 50, 75, 95]), [-58, -33, 0, 33, 58], atol=2.5)
    assert elevation.min() < -80 and elevation.max() > 80  # whole sphere, below the object included


def test_sampler_band_and_determinism():
    eye = cameras.sample_camera_positions(300, np.random.default_rng(5), polar_min_deg=60, polar_max_deg=100)
    polar_deg = np.degrees(cameras.cartesian_to_spherical(eye)[0])
    assert polar_deg.min() >= 60 and polar_deg.max() <= 100
    again = cameras.sample_camera_positions(300, np.random.default_rng(5), polar_min_deg=60, polar_max_deg=100)
    np.testing.assert_array_equal(eye, again)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_views": 0}, "num_views"),
        ({"radius_min": 3.0}, "radius_min"),
        ({"polar_min_deg": 120, "polar_max_deg": 100}, "polar_min_deg"),
    ],
)
def test_sampler_rejects_bad_arguments(kwargs, match):
    args = {"num_views": 4, "rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(ValueError, match=match):
        cameras.sample_camera_positions(**args)
