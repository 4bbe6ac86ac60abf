"""Ray marching: the renderer of stage 04 (SJC), i.e. how rays become pixels. Pure functions.

Cameras follow `cameras.py` exactly: `c2w` is a 4x4 camera-to-world matrix, camera +X right, +Y up,
looking along -Z; pixel `(u, v)` has v **down** and pixel (row i, column j) is centred at
`(j + 0.5, i + 0.5)`; focal length `f = (size/2) / tan(fov/2)`. The ray through `(u, v)` has the
camera-frame direction `((u - size/2) / f, -(v - size/2) / f, -1)`, which `cameras.project_points`
maps back to `(u, v)`.

Volume rendering (Max 1995; NeRF Eq. 3), notation `code -> paper`: `sigma -> sigma_k` (density at
sample k), `deltas -> delta_k` (length of the ray interval sample k stands for), `weights -> w_k`:

    alpha_k = 1 - exp(-sigma_k delta_k)                            opacity of interval k
    T_k     = prod_{j<k} (1 - alpha_j) = exp(-sum_{j<k} sigma_j delta_j)   transmittance to it
    w_k     = T_k alpha_k,   opacity = sum_k w_k = 1 - T_{S}
    C       = sum_k w_k c_k + (1 - opacity) c_background
    depth   = sum_k w_k t_k + (1 - opacity) t_background

Samples split the ray's segment inside the box into `num_samples` equal bins and `delta_k` is the
bin width, so `sum_k sigma delta_k = sigma L` exactly for a uniform medium of length L.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from zero1to3.cameras import FOV_DEG

# Optical depth beyond which light is treated as fully absorbed: exp(-60) = 9e-27 (see volume_render_weights).
MAX_OPTICAL_DEPTH = 60.0


@dataclass(frozen=True)
class Rays:
    """A bundle of rays in world coordinates."""

    origins: Float[Tensor, "*R 3"]
    """Ray origins (the camera centre for camera rays)."""
    directions: Float[Tensor, "*R 3"]
    """Unit directions; the ray is `origin + t * direction`, so t is a distance in world units."""


@dataclass(frozen=True)
class RenderOutput:
    """What `render_rays` returns, per ray."""

    features: Float[Tensor, "*R C"]
    """Composited features (colour or latent), background included."""
    opacity: Float[Tensor, "*R"]
    """Accumulated alpha `sum_k w_k` in [0, 1]."""
    depth: Float[Tensor, "*R"]
    """Expected ray distance `sum_k w_k t_k + (1 - opacity) background_depth`."""
    weights: Float[Tensor, "*R S"]
    """Compositing weights `w_k` of every sample (for regularisers such as the emptiness loss)."""
    t: Float[Tensor, "*R S"]
    """Ray distance of every sample."""


def _as_tensor(c2w: Float[Tensor, "*B 4 4"] | Float[np.ndarray, "*B 4 4"]) -> Float[Tensor, "*B 4 4"]:
    return c2w.double() if isinstance(c2w, Tensor) else torch.from_numpy(np.asarray(c2w, dtype=np.float64))


def _pixel_directions_camera(uv: Float[Tensor, "*P 2"], size_px: int, fov_deg: float) -> Float[Tensor, "*P 3"]:
    """Unnormalised camera-frame directions through image points `(u, v)` (v down, looking along -Z)."""
    if size_px < 1:
        raise ValueError(f"`size_px` must be a positive number of pixels, got {size_px}")
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"`fov_deg` must lie in (0, 180), got {fov_deg}")
    f = 0.5 * size_px / math.tan(0.5 * math.radians(fov_deg))  # focal length in pixels, as cameras.focal_length_px
    x = (uv[..., 0] - 0.5 * size_px) / f
    y = -(uv[..., 1] - 0.5 * size_px) / f  # image v points down, camera +Y up
    return torch.stack([x, y, -torch.ones_like(x)], dim=-1)


def rays_at_pixels(
    c2w: Float[Tensor, "4 4"] | Float[np.ndarray, "4 4"],
    uv: Float[Tensor, "*P 2"],
    size_px: int,
    fov_deg: float = FOV_DEG,
) -> Rays:
    """Rays of one camera through arbitrary image points `(u, v)` (pixel centres are at +0.5)."""
    c2w_t = _as_tensor(c2w).to(uv.device)
    d_cam = _pixel_directions_camera(uv.double(), size_px, fov_deg)  # (*P, 3)
    d = d_cam @ c2w_t[:3, :3].T  # rotate into the world: d_world = R d_cam
    d = d / d.norm(dim=-1, keepdim=True)
    o = c2w_t[:3, 3].expand_as(d)
    return Rays(origins=o.to(uv.dtype).contiguous(), directions=d.to(uv.dtype))


def rays_from_camera(
    c2w: Float[Tensor, "*B 4 4"] | Float[np.ndarray, "*B 4 4"],
    size_px: int,
    fov_deg: float = FOV_DEG,
    dtype: torch.dtype = torch.float32,
) -> Rays:
    """One ray per pixel centre of a square `size_px` image, for one or a batch of cameras.

    Returns:
        Rays with origins and unit directions of shape `(*B, size_px, size_px, 3)`, indexed
        `[..., row i, column j, :]` through pixel centre `(u, v) = (j + 0.5, i + 0.5)`.
    """
    c2w_t = _as_tensor(c2w)
    centres = torch.arange(size_px, dtype=torch.float64, device=c2w_t.device) + 0.5
    v, u = torch.meshgrid(centres, centres, indexing="ij")  # (H, W) each: row index -> v, column -> u
    d_cam = _pixel_directions_camera(torch.stack([u, v], dim=-1), size_px, fov_deg)  # (H, W, 3)
    d = torch.einsum("...ij,hwj->...hwi", c2w_t[..., :3, :3], d_cam)  # (*B, H, W, 3)
    d = d / d.norm(dim=-1, keepdim=True)
    o = c2w_t[..., None, None, :3, 3].expand_as(d)  # (*B, H, W, 3)
    return Rays(origins=o.to(dtype).contiguous(), directions=d.to(dtype))


def intersect_aabb(
    origins: Float[Tensor, "*R 3"],
    directions: Float[Tensor, "*R 3"],
    bound: float,
    near: float = 0.0,
) -> tuple[Float[Tensor, "*R"], Float[Tensor, "*R"], Bool[Tensor, "*R"]]:
    """Where rays cross the box `[-bound, bound]^3` (slab method), from distance `near` on.

    Per axis a, the ray is inside the slab for t between (-bound - o_a)/d_a and (bound - o_a)/d_a;
    the box is the intersection of the three slabs: t_near = max_a t_min_a, t_far = min_a t_max_a.
    An axis with d_a = 0 constrains nothing if |o_a| <= bound and excludes the ray otherwise (no
    0/0 = NaN). Rays starting inside the box get t_near = near.

    Returns:
        `(t_near, t_far, hit)`; for missed rays `t_near = t_far = near`, so their samples have zero
        length and zero weight without any masking downstream.
    """
    if not bound > 0:
        raise ValueError(f"`bound` must be positive (the box is [-bound, bound]^3), got {bound}")
    parallel = directions == 0  # (*R, 3)
    safe_d = torch.where(parallel, torch.ones_like(directions), directions)
    t1 = (-bound - origins) / safe_d
    t2 = (bound - origins) / safe_d
    inside_slab = origins.abs() <= bound
    inf = torch.full_like(origins, math.inf)
    t_min = torch.where(parallel, torch.where(inside_slab, -inf, inf), torch.minimum(t1, t2))  # (*R, 3)
    t_max = torch.where(parallel, torch.where(inside_slab, inf, -inf), torch.maximum(t1, t2))
    t_near = t_min.amax(dim=-1).clamp_min(near)
    t_far = t_max.amin(dim=-1)
    hit = (t_far > t_near) & torch.isfinite(t_far)  # a zero direction vector never hits
    t_near = torch.where(hit, t_near, torch.full_like(t_near, near))
    t_far = torch.where(hit, t_far, t_near)
    return t_near, t_far, hit


def sample_along_rays(
    t_near: Float[Tensor, "*R"],
    t_far: Float[Tensor, "*R"],
    num_samples: int,
    generator: torch.Generator | None = None,
) -> tuple[Float[Tensor, "*R S"], Float[Tensor, "*R S"]]:
    """Sample distances in `[t_near, t_far]`: one per equal bin, stratified or at bin midpoints.

    Bin k covers `[t_near + k delta, t_near + (k + 1) delta]` with `delta = (t_far - t_near) / S`.
    With a `generator` each sample is uniform in its bin (stratified; NeRF Eq. 2), otherwise it is
    the bin's midpoint (deterministic, as the paper's jitter-free marcher). Randomness comes only
    from the passed generator.

    Returns:
        `(t, deltas)`: sample distances and the bin width each sample stands for.
    """
    if num_samples < 1:
        raise ValueError(f"`num_samples` must be at least 1, got {num_samples}")
    length = (t_far - t_near).clamp_min(0.0)
    delta = length / num_samples  # (*R,)
    k = torch.arange(num_samples, dtype=t_near.dtype, device=t_near.device)  # (S,)
    if generator is None:
        offset = torch.full((*t_near.shape, num_samples), 0.5, dtype=t_near.dtype, device=t_near.device)
    else:
        offset = torch.rand((*t_near.shape, num_samples), generator=generator, dtype=t_near.dtype, device=t_near.device)
    t = t_near[..., None] + (k + offset) * delta[..., None]  # (*R, S)
    return t, delta[..., None].expand_as(t)


def volume_render_weights(sigma: Float[Tensor, "*R S"], deltas: Float[Tensor, "*R S"]) -> Float[Tensor, "*R S"]:
    """Compositing weights `w_k = T_k alpha_k` of samples front to back (module docstring)."""
    tau = sigma * deltas  # optical thickness of each interval, sigma_k delta_k
    # exp(-x) for x beyond ~87 is a float32 subnormal (or underflows), which CPUs compute tens of times
    # slower; behind an opaque surface most samples are there. Capping x at MAX_OPTICAL_DEPTH changes
    # alpha and T by < 1e-26, far below float32 resolution, and only zeroes gradients of that size.
    # alpha_k = 1 - exp(-sigma_k delta_k), as -expm1 so thin samples keep their precision
    alpha = -torch.expm1(-tau.clamp_max(MAX_OPTICAL_DEPTH))
    # T_k = exclusive cumprod of (1 - alpha_j) = exp(-exclusive cumsum of tau_j): the same number, but
    # the sum form keeps gradients finite when some alpha_j -> 1 (cumprod's backward divides by 1 - alpha_j).
    # sum_{j<k} tau_j, shifted rather than cumsum - tau (which cancels catastrophically after a huge tau_k)
    tau_before = torch.cat([torch.zeros_like(tau[..., :1]), torch.cumsum(tau[..., :-1], dim=-1)], dim=-1)
    transmittance = torch.exp(-tau_before.clamp_max(MAX_OPTICAL_DEPTH))
    return transmittance * alpha


def composite(
    weights: Float[Tensor, "*R S"],
    values: Float[Tensor, "*R S C"],
    background: float | Float[Tensor, "*bg C"] | None = None,
) -> Float[Tensor, "*R C"]:
    """`sum_k w_k c_k`, plus `(1 - sum_k w_k) background` if a background is given.

    `background` is a constant (every channel), a per-channel vector `(C,)`, or per-ray values
    broadcastable to `(*R, C)` (e.g. a background image).
    """
    out = (weights[..., None] * values).sum(dim=-2)  # (*R, C)
    if background is None:
        return out
    opacity = weights.sum(dim=-1, keepdim=True)  # (*R, 1)
    return out + (1.0 - opacity) * background


def render_rays(
    field: Callable[[Tensor], tuple[Tensor, Tensor]],
    rays: Rays,
    num_samples: int,
    bound: float | None = None,
    generator: torch.Generator | None = None,
    background: float | Float[Tensor, "*bg C"] | None = None,
    background_depth: float = 0.0,
    near: float = 0.0,
) -> RenderOutput:
    """Volume-render a field along rays inside its box.

    Args:
        field: maps world points `(N, 3)` to `(density (N,), features (N, C))`, e.g. a `VoxelField`.
        rays: the rays, any batch shape `*R`.
        num_samples: samples per ray, spread over the ray's segment inside the box.
        bound: half side of the box to march through; defaults to `field.bound`.
        generator: stratified sampling if given, bin midpoints otherwise.
        background: composited behind the field (None: nothing, i.e. black / zero features).
        background_depth: depth assigned to the transmitted part of each ray (the paper: 10).
        near: rays start at this distance from their origins.
    """
    # 1. Box segment of each ray
    if bound is None:
        bound = getattr(field, "bound", None)
        if bound is None:
            raise ValueError("`bound` is required when `field` has no `bound` attribute")
    t_near, t_far, _ = intersect_aabb(rays.origins, rays.directions, bound, near=near)

    # 2. Sample points and query the field
    t, deltas = sample_along_rays(t_near, t_far, num_samples, generator=generator)  # (*R, S) each
    points = rays.origins[..., None, :] + t[..., None] * rays.directions[..., None, :]  # (*R, S, 3)
    density, feats = field(points.reshape(-1, 3))  # (N,), (N, C) with N = prod(*R) * S
    density = density.reshape(t.shape)  # (*R, S)
    feats = feats.reshape(*t.shape, feats.shape[-1])  # (*R, S, C)

    # 3. Composite
    weights = volume_render_weights(density, deltas)
    opacity = weights.sum(dim=-1)
    features = composite(weights, feats, background)
    depth = (weights * t).sum(dim=-1) + (1.0 - opacity) * background_depth
    return RenderOutput(features=features, opacity=opacity, depth=depth, weights=weights, t=t)
