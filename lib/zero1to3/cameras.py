"""Cameras: the one place where the project's camera convention is defined.

Convention (used by every stage, and by the files stage 01 writes):

* **World.** Blender's world frame, right-handed, **+Z up**. Every object is normalised into the
  unit cube: its axis-aligned bounding box is centred at the origin and its longest side is 1, so
  it lies inside [-0.5, 0.5]^3 (Zero-1-to-3 `normalize_scene`, docs/conventions.md#dataset-rendering).
* **Spherical coordinates** of a point (usually a camera centre), about the origin:

  - `polar` is the angle from +Z: 0 = straight above, 90 deg = the equator, 180 deg = below.
    Zero-1-to-3 works in polar angles; **elevation = 90 deg - polar**.
  - `azimuth` is `atan2(y, x)`: counter-clockwise seen from above, 0 along +X, in (-180, 180].
  - `radius` is the distance to the origin, in world units.

  Angles carry their unit in their names (`polar_deg`, `azimuth_rad`).
* **Camera frame.** Blender/OpenGL: camera +X right, +Y up, the camera looks along its **-Z**.
  Cameras are roll-free look-ats of the origin: camera +Y leans towards world +Z.
* **Matrices.** `c2w` is the 4x4 camera-to-world matrix (columns: camera axes and centre in the
  world). The matrix stage 01 saves beside each view (`NNN.npy`) is the paper's: the **3x4
  world-to-camera** `[R | t]` with `R = Rc^T`, `t = -Rc^T C`
  (docs/conventions.md#camera-frames-and-spherical-coordinates). Recover the centre with
  `C = -R^T t`. Mistaking it for camera-to-world is the classic error (zero123 issues #14, #32).
* **Intrinsics.** Pinhole, square pixels, principal point at the image centre, field of view
  `FOV_DEG` (Blender lens 35 mm on a 32 mm sensor, as the paper's renders). Pixel coordinates are
  `(u, v)` with u to the right and v **down**; pixel (row i, column j) covers u in [j, j+1).
* **Relative pose** (the paper's conditioning, docs/conventions.md#relative-pose-encoding): from a conditioning view to
a target
  view, `[d_polar_rad, sin d_azimuth, cos d_azimuth, d_radius]` with `d_polar = polar_target -
  polar_cond` (positive: the target looks from lower down), `d_azimuth = azimuth_target -
  azimuth_cond` and `d_radius = radius_target - radius_cond`.
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import Float

# Blender camera of the paper's renders: 35 mm lens on a 32 mm sensor -> 2 atan(16/35) = 49.13 deg.
LENS_MM = 35.0
SENSOR_MM = 32.0
FOV_DEG = math.degrees(2.0 * math.atan(0.5 * SENSOR_MM / LENS_MM))

# Paper's camera distances (blender_script.py: radius_min=1.5, radius_max=2.2).
PAPER_RADIUS_MIN = 1.5
PAPER_RADIUS_MAX = 2.2

WORLD_UP = np.array([0.0, 0.0, 1.0])


def spherical_to_cartesian(
    polar_rad: Float[np.ndarray, "*N"] | float,
    azimuth_rad: Float[np.ndarray, "*N"] | float,
    radius: Float[np.ndarray, "*N"] | float,
) -> Float[np.ndarray, "*N 3"]:
    """Point at `(polar, azimuth, radius)` in world coordinates (Z up)."""
    polar_rad, azimuth_rad, radius = np.broadcast_arrays(
        np.asarray(polar_rad, float), np.asarray(azimuth_rad, float), np.asarray(radius, float)
    )
    sin_p = np.sin(polar_rad)
    return np.stack(
        [radius * sin_p * np.cos(azimuth_rad), radius * sin_p * np.sin(azimuth_rad), radius * np.cos(polar_rad)],
        axis=-1,
    )


def cartesian_to_spherical(
    xyz: Float[np.ndarray, "*N 3"],
) -> tuple[Float[np.ndarray, "*N"], Float[np.ndarray, "*N"], Float[np.ndarray, "*N"]]:
    """`(polar_rad, azimuth_rad, radius)` of points, as the paper's `cartesian_to_spherical`."""
    xyz = np.asarray(xyz, float)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    radius = np.sqrt(x * x + y * y + z * z)
    polar_rad = np.arctan2(np.sqrt(x * x + y * y), z)
    azimuth_rad = np.arctan2(y, x)
    return np.asarray(polar_rad), np.asarray(azimuth_rad), np.asarray(radius)


def look_at(
    eye: Float[np.ndarray, "*N 3"],
    target: Float[np.ndarray, "3"] | None = None,
) -> Float[np.ndarray, "*N 4 4"]:
    """Roll-free camera-to-world matrices of cameras at `eye` looking at `target` (default: origin).

    Camera -Z points at the target; camera +X is horizontal (perpendicular to world +Z) and
    camera +Y leans towards world +Z, as Blender's TRACK_TO(-Z, up Y). Straight above or below
    the target the horizontal direction is undefined; we then take camera +X = world +X, the
    limit of approaching the pole along azimuth -90 deg, so the matrix stays a rotation.
    """
    eye = np.asarray(eye, float)
    target = np.zeros(3) if target is None else np.asarray(target, float)
    forward = target - eye  # (*N, 3): the viewing direction, camera -Z
    norm = np.linalg.norm(forward, axis=-1, keepdims=True)
    if np.any(norm < 1e-12):
        raise ValueError(f"`eye` must differ from `target` ({target.tolist()}); got a camera at the target")
    forward = forward / norm
    right = np.cross(forward, WORLD_UP)  # (*N, 3): camera +X
    right_norm = np.linalg.norm(right, axis=-1, keepdims=True)
    at_pole = right_norm[..., 0] < 1e-9
    right = np.where(at_pole[..., None], np.array([1.0, 0.0, 0.0]), right / np.maximum(right_norm, 1e-12))
    up = np.cross(right, forward)  # camera +Y
    c2w = np.zeros(eye.shape[:-1] + (4, 4))
    c2w[..., :3, 0] = right
    c2w[..., :3, 1] = up
    c2w[..., :3, 2] = -forward
    c2w[..., :3, 3] = eye
    c2w[..., 3, 3] = 1.0
    return c2w


def c2w_to_w2c(c2w: Float[np.ndarray, "*N 4 4"]) -> Float[np.ndarray, "*N 3 4"]:
    """The paper's saved matrix: 3x4 world-to-camera `[R | t]`, `R = Rc^T`, `t = -Rc^T C`."""
    c2w = np.asarray(c2w, float)
    rot = np.swapaxes(c2w[..., :3, :3], -1, -2)  # (*N, 3, 3)
    t = -np.einsum("...ij,...j->...i", rot, c2w[..., :3, 3])
    return np.concatenate([rot, t[..., None]], axis=-1)


def w2c_to_c2w(w2c: Float[np.ndarray, "*N 3 4"]) -> Float[np.ndarray, "*N 4 4"]:
    """Invert a 3x4 world-to-camera matrix into a 4x4 camera-to-world matrix."""
    w2c = np.asarray(w2c, float)
    if w2c.shape[-2:] != (3, 4):
        raise ValueError(f"`w2c` must have shape (..., 3, 4), got {w2c.shape}")
    rot_t = np.swapaxes(w2c[..., :3, :3], -1, -2)
    c2w = np.zeros(w2c.shape[:-2] + (4, 4))
    c2w[..., :3, :3] = rot_t
    c2w[..., :3, 3] = camera_center(w2c)
    c2w[..., 3, 3] = 1.0
    return c2w


def camera_center(w2c: Float[np.ndarray, "*N 3 4"]) -> Float[np.ndarray, "*N 3"]:
    """Camera centre in world coordinates, `C = -R^T t`."""
    w2c = np.asarray(w2c, float)
    return -np.einsum("...ji,...j->...i", w2c[..., :3, :3], w2c[..., :3, 3])


def focal_length_px(size_px: int, fov_deg: float = FOV_DEG) -> float:
    """Focal length in pixels of a square image `size_px` wide with field of view `fov_deg`."""
    return 0.5 * size_px / math.tan(0.5 * math.radians(fov_deg))


def intrinsics(size_px: int, fov_deg: float = FOV_DEG) -> Float[np.ndarray, "3 3"]:
    """Pinhole matrix K for a square image (principal point at the centre, v pointing down)."""
    f = focal_length_px(size_px, fov_deg)
    return np.array([[f, 0.0, size_px / 2.0], [0.0, f, size_px / 2.0], [0.0, 0.0, 1.0]])


def project_points(
    points: Float[np.ndarray, "P 3"], w2c: Float[np.ndarray, "3 4"], size_px: int, fov_deg: float = FOV_DEG
) -> tuple[Float[np.ndarray, "P 2"], Float[np.ndarray, "P"]]:
    """Project world points into a view: pixel coordinates `(u, v)` (v down) and depth along -Z."""
    cam = np.asarray(points, float) @ np.asarray(w2c, float)[:, :3].T + np.asarray(w2c, float)[:, 3]  # (P, 3)
    depth = -cam[:, 2]  # OpenGL camera looks along -Z
    f = focal_length_px(size_px, fov_deg)
    u = size_px / 2.0 + f * cam[:, 0] / depth
    v = size_px / 2.0 - f * cam[:, 1] / depth  # camera +Y is up, image v is down
    return np.stack([u, v], axis=-1), depth


def sample_camera_positions(
    num_views: int,
    rng: np.random.Generator,
    radius_min: float = PAPER_RADIUS_MIN,
    radius_max: float = PAPER_RADIUS_MAX,
    polar_min_deg: float = 0.0,
    polar_max_deg: float = 180.0,
) -> Float[np.ndarray, "V 3"]:
    """Random camera centres as the paper's renderer draws them (docs/conventions.md#dataset-rendering), optionally in
    a band.

    The paper normalises a vector drawn uniformly in the cube [-1, 1]^3 (so directions are denser
    towards the cube's diagonals, not uniform on the sphere) and scales it to a radius drawn from
    U(radius_min, radius_max). With the default polar range that is the paper's distribution over
    the whole sphere; a narrower `[polar_min_deg, polar_max_deg]` band (as later Zero123 variants
    use) keeps the paper's draws that fall inside it (rejection sampling).
    """
    if num_views < 1:
        raise ValueError(f"`num_views` must be at least 1, got {num_views}")
    if not 0.0 < radius_min <= radius_max:
        raise ValueError(f"need 0 < radius_min <= radius_max, got radius_min={radius_min}, radius_max={radius_max}")
    if not 0.0 <= polar_min_deg < polar_max_deg <= 180.0:
        raise ValueError(
            f"need 0 <= polar_min_deg < polar_max_deg <= 180, got polar_min_deg={polar_min_deg}, "
            f"polar_max_deg={polar_max_deg}"
        )
    out = np.empty((0, 3))
    while len(out) < num_views:
        v = rng.uniform(-1.0, 1.0, size=(2 * num_views, 3))
        v = v[np.linalg.norm(v, axis=1) > 1e-6]
        direction = v / np.linalg.norm(v, axis=1, keepdims=True)
        radius = rng.uniform(radius_min, radius_max, size=(len(direction), 1))
        polar_deg = np.degrees(np.arccos(np.clip(direction[:, 2], -1.0, 1.0)))
        keep = (polar_deg >= polar_min_deg) & (polar_deg <= polar_max_deg)
        out = np.concatenate([out, direction[keep] * radius[keep]])
    return out[:num_views]


def relative_pose(
    cond_xyz: Float[np.ndarray, "*N 3"], target_xyz: Float[np.ndarray, "*N 3"]
) -> Float[np.ndarray, "*N 4"]:
    """Zero-1-to-3 relative pose `[d_polar_rad, sin d_azimuth, cos d_azimuth, d_radius]` (paper Sec. 3.2).

    From camera centres in world coordinates; `d_x = x_target - x_cond`. The embedding of a view
    with itself is `[0, 0, 1, 0]`. Roll is not represented: all our cameras are roll-free.
    """
    polar_c, azimuth_c, radius_c = cartesian_to_spherical(cond_xyz)
    polar_t, azimuth_t, radius_t = cartesian_to_spherical(target_xyz)
    d_azimuth = azimuth_t - azimuth_c
    return np.stack([polar_t - polar_c, np.sin(d_azimuth), np.cos(d_azimuth), radius_t - radius_c], axis=-1).astype(
        np.float32
    )


def relative_pose_from_w2c(
    cond_w2c: Float[np.ndarray, "*N 3 4"], target_w2c: Float[np.ndarray, "*N 3 4"]
) -> Float[np.ndarray, "*N 4"]:
    """`relative_pose` from the saved 3x4 world-to-camera matrices of the two views."""
    return relative_pose(camera_center(cond_w2c), camera_center(target_w2c))
