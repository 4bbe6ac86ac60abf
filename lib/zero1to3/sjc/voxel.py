"""Voxel field: the geometry of stage 04 (Score Jacobian Chaining), i.e. what a point in space is.

A dense density grid (1 channel) and a dense feature grid (C channels: 4 for the SD latents the
paper renders, 3 for RGB) over the axis-aligned box `[-bound, bound]^3` in **world coordinates**
(the project's frame, `cameras.py`: Z up). The paper's field is 100^3 in `[-1, 1]^3`
(docs/conventions.md#sjc-field-and-renderer).

Grid layout and lookup (the one place this is decided):

* Grids are stored `(1, C, D, H, W)` with `D, H, W` indexing world **z, y, x**. `F.grid_sample`
  reads its coordinate triple as `(x, y, z)` -> `(W, H, D)`, so normalised world points `p / bound`
  are passed to it unchanged: no axis reordering anywhere.
* `align_corners=True`: the grid's corner nodes lie **on** the box faces. Node `i` along an axis
  of `n` nodes sits at `-bound + i * 2 bound / (n - 1)`. The field is then defined by interpolation
  over the whole closed box without padding, and marching-cubes vertices map back to the world by
  the same affine map. (The official code uses `align_corners=False`, node centres at
  `-bound + (i + 0.5) * 2 bound / n`, but maps mesh vertices as `i / n - 0.5`: half a voxel off.)
* Outside the box the field is empty (density 0); features there are the border values.

Density (docs/conventions.md#sjc-field-and-renderer, `vox.py compute_density_feats`):  sigma = softplus(raw * exp(s) +
shift), with
`raw` initialised to 0, the learnable log-scale `s` initialised to 0 and the paper's `shift = -1`.
At initialisation sigma = softplus(-1) = 0.313 everywhere: a faint fog that the optimiser carves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from jaxtyping import Float
from skimage import measure
from torch import Tensor, nn

logger = logging.getLogger(__name__)

# The paper's density shift (docs/conventions.md#sjc-field-and-renderer): softplus(-1) = 0.31, so the initial fog is
# thin but has gradient.
PAPER_DENSITY_SHIFT = -1.0


class VoxelField(nn.Module):
    """Dense density + feature grids over `[-bound, bound]^3`, looked up trilinearly.

    Args:
        resolution: nodes per axis (the grids are `resolution^3`); at least 2.
        feature_dim: channels of the feature grid (4 for SD latents as the paper, 3 for RGB).
        bound: half side of the box, in world units (the paper: 1.0).
        density_shift: `shift` in `sigma = softplus(raw * exp(s) + shift)` (the paper: -1).
        feature_activation: applied to the interpolated features (e.g. `torch.sigmoid` for RGB);
            None renders the raw features, as the paper does for latents.
        feature_init_std: the feature grid starts as N(0, std^2) (the paper: 1.0); 0 starts at zeros.
        generator: draws the initial features; required when `feature_init_std > 0`.
    """

    def __init__(
        self,
        resolution: int,
        feature_dim: int = 4,
        bound: float = 1.0,
        density_shift: float = PAPER_DENSITY_SHIFT,
        feature_activation: Callable[[Tensor], Tensor] | None = None,
        feature_init_std: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if resolution < 2:
            raise ValueError(f"`resolution` must be at least 2 (nodes on both box faces), got {resolution}")
        if feature_dim < 1:
            raise ValueError(f"`feature_dim` must be at least 1, got {feature_dim}")
        if not bound > 0:
            raise ValueError(f"`bound` must be positive (the box is [-bound, bound]^3), got {bound}")
        if feature_init_std < 0:
            raise ValueError(f"`feature_init_std` must be >= 0, got {feature_init_std}")
        if feature_init_std > 0 and generator is None:
            raise ValueError(
                f"`feature_init_std`={feature_init_std} draws random features: pass a `generator` "
                "(randomness is explicit in this project), or use feature_init_std=0"
            )
        self.resolution = resolution
        self.feature_dim = feature_dim
        self.bound = float(bound)
        self.density_shift = float(density_shift)
        self.feature_activation = feature_activation
        shape = (resolution, resolution, resolution)  # (D, H, W) = world (z, y, x)
        self.density_raw = nn.Parameter(torch.zeros(1, 1, *shape))
        features = torch.zeros(1, feature_dim, *shape)
        if feature_init_std > 0:
            features = feature_init_std * torch.randn(features.shape, generator=generator)
        self.features_raw = nn.Parameter(features)
        # learnable log-scale s of the raw density (the paper's `d_scale`, initialised to 0 so exp(s) = 1)
        self.density_log_scale = nn.Parameter(torch.zeros(()))

    @property
    def voxel_size(self) -> float:
        """Spacing between grid nodes in world units, `2 bound / (resolution - 1)`."""
        return 2.0 * self.bound / (self.resolution - 1)

    def activate_density(self, raw: Float[Tensor, "*N"]) -> Float[Tensor, "*N"]:
        """sigma = softplus(raw * exp(s) + shift): non-negative, smooth, and never without gradient."""
        return F.softplus(raw * torch.exp(self.density_log_scale) + self.density_shift)

    def query(self, points: Float[Tensor, "*N 3"]) -> tuple[Float[Tensor, "*N"], Float[Tensor, "*N C"]]:
        """Density and features at world points (density 0 outside the box)."""
        batch_shape = points.shape[:-1]
        points = points.to(self.density_raw.dtype)  # grid_sample needs the grid's dtype
        grid = (points / self.bound).reshape(1, -1, 1, 1, 3)  # (1, N, 1, 1, 3), (x, y, z) -> (W, H, D)
        kw = {"mode": "bilinear", "align_corners": True, "padding_mode": "border"}  # bilinear on 5-D = trilinear
        # One lookup of both grids: the same numbers and gradients as two (channels are interpolated independently),
        # for one pass over the points' corners instead of two; the 3-D lookup's backward dominates an SJC step.
        both = F.grid_sample(torch.cat([self.density_raw, self.features_raw], dim=1), grid, **kw)  # (1, 1+C, N, 1, 1)
        raw, feats = both[:, :1], both[:, 1:]
        density = self.activate_density(raw.reshape(batch_shape))
        inside = (points.abs() <= self.bound).all(dim=-1)
        density = torch.where(inside, density, torch.zeros_like(density))
        feats = feats.reshape(self.feature_dim, -1).T.reshape(*batch_shape, self.feature_dim)  # (*N, C)
        if self.feature_activation is not None:
            feats = self.feature_activation(feats)
        return density, feats

    def forward(self, points: Float[Tensor, "*N 3"]) -> tuple[Float[Tensor, "*N"], Float[Tensor, "*N C"]]:
        """Same as `query`, so the field is a callable `points -> (density, features)`."""
        return self.query(points)

    def density_grid(self) -> Float[Tensor, "D H W"]:
        """Activated density at the grid nodes, indexed (z, y, x) as stored."""
        return self.activate_density(self.density_raw[0, 0])

    def node_coordinates(self) -> Float[Tensor, "D H W 3"]:
        """World (x, y, z) of every grid node, indexed (z, y, x) as stored."""
        axis = torch.linspace(-self.bound, self.bound, self.resolution, device=self.density_raw.device)
        z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
        return torch.stack([x, y, z], dim=-1)


def _resample(volume: Float[Tensor, "D H W"], factor: int) -> Float[Tensor, "D2 H2 W2"]:
    """Trilinear upsampling that keeps the corner nodes on the box faces: n nodes -> (n - 1) * factor + 1."""
    if factor == 1:
        return volume
    size = tuple((n - 1) * factor + 1 for n in volume.shape)
    return F.interpolate(volume[None, None], size=size, mode="trilinear", align_corners=True)[0, 0]


def check_odd_kernel(name: str, value: int) -> None:
    """A `ValueError` naming `name` unless `value` is an odd filter side >= 1 (1 = the filter is off)."""
    if value < 1 or value % 2 == 0:
        raise ValueError(f"`{name}` must be an odd kernel size >= 1 (1 = off), got {value}")


@torch.no_grad()
def extract_mesh(
    source: VoxelField | Float[Tensor, "D H W"],
    threshold: float | None = None,
    threshold_mean_factor: float | None = None,
    upsample: int = 1,
    smooth_kernel: int = 1,
    erosion_kernel: int = 1,
    bound: float | None = None,
    close: bool = True,
) -> trimesh.Trimesh:
    """Iso-surface of a density field by marching cubes, with vertices in world coordinates.

    Follows the paper's recipe as options (docs/conventions.md#mesh-recipe; `mesh.PAPER_MESH` holds its values):
    upsample, activate, mean-filter, pick the threshold, grey-erode, march. Unlike the paper, vertices stay in
    the field's own frame (Z up, box `[-bound, bound]^3`), so the mesh compares directly with a
    ground-truth mesh in the world.

    Args:
        source: a `VoxelField` (its raw density is upsampled before the activation, as the paper),
            or an activated density grid indexed (z, y, x) with corner nodes on the box faces.
        threshold: absolute iso-level of the density.
        threshold_mean_factor: iso-level = factor x mean density after smoothing (the paper: 8).
            Give exactly one of `threshold` and `threshold_mean_factor`.
        upsample: trilinear upsampling factor of the grid (the paper: 2; 1 = off).
        smooth_kernel: side of the cubic mean filter, odd (the paper: 7; 1 = off). Zero padding
            at the box faces, as the paper's `avg_pool3d`.
        erosion_kernel: side of the cubic grey erosion (min filter), odd (the paper: 5; 1 = off).
        bound: half side of the box; required for a density grid, taken from a field.
        close: pad the grid with one empty layer so surfaces cut by the box faces are closed; the
            caps are clamped onto the faces.

    Returns:
        The mesh (outward-facing triangles), possibly empty if nothing crosses the threshold.
    """
    # 1. Check the options, then the density on the (upsampled) grid
    if upsample < 1:
        raise ValueError(f"`upsample` must be an integer factor >= 1, got {upsample}")
    check_odd_kernel("smooth_kernel", smooth_kernel)
    check_odd_kernel("erosion_kernel", erosion_kernel)
    if (threshold is None) == (threshold_mean_factor is None):
        raise ValueError(
            f"give exactly one of `threshold` ({threshold}) and `threshold_mean_factor` ({threshold_mean_factor})"
        )
    if isinstance(source, VoxelField):
        if bound is not None and bound != source.bound:
            raise ValueError(f"`bound`={bound} contradicts the field's bound {source.bound}; leave it None")
        bound = source.bound
        density = source.activate_density(_resample(source.density_raw[0, 0].float(), upsample))
    else:
        if bound is None or not bound > 0:
            raise ValueError(f"a density grid needs a positive `bound` (its box is [-bound, bound]^3), got {bound}")
        if min(source.shape) < 2:
            raise ValueError(f"the density grid needs at least 2 nodes per axis, got shape {tuple(source.shape)}")
        density = _resample(source.float(), upsample)

    if not torch.isfinite(density).all():
        raise ValueError("the density contains non-finite values (NaN or inf); cannot extract a surface")

    # 2. Mean filter (stride 1, zero padding, so the grid keeps its size and node positions)
    if smooth_kernel > 1:
        density = F.avg_pool3d(density[None, None], smooth_kernel, stride=1, padding=smooth_kernel // 2)[0, 0]

    # 3. Threshold: absolute, or k x the mean of the smoothed density (the paper's k = 8, before erosion)
    level = float(threshold) if threshold is not None else float(threshold_mean_factor) * density.mean().item()

    # 4. Grey erosion = min filter = -maxpool(-x); max_pool3d's implicit padding never wins the max
    if erosion_kernel > 1:
        density = -F.max_pool3d(-density[None, None], erosion_kernel, stride=1, padding=erosion_kernel // 2)[0, 0]

    # 5. Marching cubes on the grid transposed to (x, y, z), so vertex columns are world x, y, z.
    # A permutation of the *index* axes only; the world frame is not reordered (it is already Z up).
    volume = density.permute(2, 1, 0).cpu().double().numpy()  # (W, H, D) = (x, y, z)
    lo, hi = float(volume.min()), float(volume.max())
    if not lo < level < hi:
        logger.warning("threshold %.4g not inside the density range (%.4g, %.4g): empty mesh", level, lo, hi)
        return trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64))
    spacing = tuple(2.0 * bound / (n - 1) for n in volume.shape)  # world units between nodes, per axis
    pad = 1 if close else 0
    volume = np.pad(volume, pad, mode="constant", constant_values=lo - 1.0)  # below the level: empty
    verts, faces, _, _ = measure.marching_cubes(volume, level=level, spacing=spacing)

    # 6. Index space -> world: node i (before padding) sits at -bound + i * spacing
    verts = verts - np.asarray(spacing) * pad - bound
    if close:
        verts = np.clip(verts, -bound, bound)  # caps of surfaces cut by the box lie on its faces
    # In a right-handed (x, y, z) index space skimage's triangle normals (right-hand rule) point to
    # the high side, i.e. into a dense object; reverse the winding so they point out of it.
    return trimesh.Trimesh(vertices=verts, faces=faces[:, ::-1], process=True)
