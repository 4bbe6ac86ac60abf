"""Estimating the input view's polar angle with the model itself (`reconstruct --polar-deg auto`).

Two estimators. **The probe** (what `auto` uses when the model folder has one, as stage 02 writes it): a ridge
regression from the model's own CLIP image embedding (the conditioning it was trained with) to the camera's polar
angle as (cos, sin), fitted on every view of the training objects (`fit_probe`) and stored beside the weights
(`elevation_probe.json`). Measured with the default study's model (`benchmarks/eval_elevation.py`), it beats always
answering the renders' mean angle, where the consistency estimator below does not.

**The consistency estimator** (the fallback for a model folder without a probe, e.g. converted paper weights).
Zero-1-to-3 conditions on *relative* cameras, so the views it draws do not depend on where the input
camera is; but whether those views fit together as one object does. The estimate (in the spirit of
One-2-3-45's elevation estimation for zero123, with silhouettes in place of feature matches):

    1. draw the object from `azimuth_offsets_deg` around the input (same polar, same distance)
    2. take each view's silhouette (the input's alpha; the drawn views' pixels off white)
    3. for each candidate polar angle p, place the cameras at polar p and those azimuths, and score how
       consistent the silhouettes are: the share of each silhouette's pixels whose ray meets the visual hull
       of the *other* views (1 when all silhouettes come from one solid seen from these cameras)
    4. answer the candidate with the best score

Cameras are at `radius` (default the middle of the renders' 1.5-2.2) looking at the origin, the framing the
model was trained on. `evaluate` measures the estimate on renders, whose true polar angles are known,
against always answering their mean polar angle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float, UInt8

from zero1to3 import cameras
from zero1to3.core import files
from zero1to3.dataset import data
from zero1to3.model import encoders
from zero1to3.model.components import Zero123Components
from zero1to3.novel_views import sample
from zero1to3.single_image import inputs
from zero1to3.sjc import raymarch

AZIMUTH_OFFSETS_DEG = (90.0, 180.0, 270.0)  # a quarter turn apart: each view sees what the others' silhouettes hide
CANDIDATES_DEG = tuple(float(p) for p in np.arange(15.0, 166.0, 7.5))  # 21 candidates; 0/180 see only one face
RADIUS = 1.85  # the middle of the renders' camera distances (1.5-2.2): the framing the model was trained on
HULL_BOUND = 0.75  # half side of the box rays are sampled in: the unit-cube object and some slack for framing
SCORE_SIZE_PX = 32  # silhouettes are scored at this size: the hull test is cubic in it, 32 px keeps it < 1 s
RAY_SAMPLES = 48
PROBE_FILE = "elevation_probe.json"  # beside the weights in a model folder
PROBE_RIDGE = 10.0  # chosen among 1, 10, 100 on the default study's model; the three were within 1 degree


@dataclasses.dataclass(frozen=True)
class PolarEstimate:
    """What `estimate_polar` returns."""

    polar_deg: float
    """The best candidate."""
    candidates_deg: Float[np.ndarray, " K"]
    """Every candidate tried."""
    scores: Float[np.ndarray, " K"]
    """Silhouette consistency of each candidate, in [0, 1] (higher: more consistent)."""
    views: Float[np.ndarray, "A H W 3"]
    """The views drawn around the input, in [0, 1]."""


def silhouette(image: Float[np.ndarray, "H W 3"]) -> Bool[np.ndarray, "H W"]:
    """Pixels of a drawn view that are off white by more than the input preparation's background tolerance."""
    return np.linalg.norm(1.0 - image, axis=-1) > inputs.BACKGROUND_TOLERANCE


def _downsample(mask: Bool[np.ndarray, "H W"], size: int) -> Bool[np.ndarray, "s s"]:
    """Area-downsample a square mask: a pixel is in when at least half of what it covers is."""
    f = mask.shape[0] // size
    if f * size != mask.shape[0]:
        raise ValueError(f"mask size {mask.shape[0]} is not a multiple of {size}")
    return mask.reshape(size, f, size, f).mean(axis=(1, 3)) >= 0.5


def consistency(masks: Bool[np.ndarray, "V S S"], centers: Float[np.ndarray, "V 3"]) -> float:
    """Mean over views of the share of a view's silhouette pixels whose ray meets the hull of the other views."""
    size = masks.shape[-1]
    w2c = cameras.c2w_to_w2c(cameras.look_at(centers))  # (V, 3, 4)
    rays = raymarch.rays_from_camera(cameras.look_at(centers), size, dtype=torch.float64)
    shares = []
    for k in range(len(centers)):
        inside = masks[k]
        if not inside.any():
            shares.append(0.0)
            continue
        o, d = rays.origins[k][torch.from_numpy(inside)].numpy(), rays.directions[k][torch.from_numpy(inside)].numpy()
        dist = np.linalg.norm(centers[k])
        t = np.linspace(dist - np.sqrt(3) * HULL_BOUND, dist + np.sqrt(3) * HULL_BOUND, RAY_SAMPLES)
        points = (o[:, None] + t[None, :, None] * d[:, None]).reshape(-1, 3)  # (P * T, 3)
        hit = np.ones(len(points), bool)
        for j in range(len(centers)):
            if j == k:
                continue
            uv, depth = cameras.project_points(points, w2c[j], size)
            col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
            ok = (depth > 0) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
            hit &= ok & masks[j][np.clip(row, 0, size - 1), np.clip(col, 0, size - 1)]
        shares.append(float(hit.reshape(-1, RAY_SAMPLES).any(axis=1).mean()))
    return float(np.mean(shares))


def estimate_polar(
    components: Zero123Components,
    input_rgba: UInt8[np.ndarray, "S S 4"],
    generator: torch.Generator,
    num_steps: int = 20,
    guidance_scale: float = 3.0,
    azimuth_offsets_deg: tuple[float, ...] = AZIMUTH_OFFSETS_DEG,
    candidates_deg: tuple[float, ...] = CANDIDATES_DEG,
    radius: float = RADIUS,
    use_pose: bool = True,
) -> PolarEstimate:
    """The input view's polar angle in degrees, estimated as the module docstring says.

    Args:
        components: The view-conditioned model.
        input_rgba: The input view, framed as the renders (alpha: the object), at the model's image size.
        generator: Draws the views' noise.
        num_steps: DDIM steps per drawn view (eta 1, as the paper samples).
        guidance_scale: Classifier-free guidance of the drawn views.
        azimuth_offsets_deg: Where the views are drawn, relative to the input.
        candidates_deg: The polar angles tried.
        radius: Camera distance assumed for every view.
        use_pose: False for the no-pose baseline (its views ignore the offsets: expect a poor estimate).
    """
    size = int(components.vae.config.sample_size)
    if input_rgba.shape != (size, size, 4):
        raise ValueError(f"`input_rgba` must be ({size}, {size}, 4) for this model, got {input_rgba.shape}")
    if not azimuth_offsets_deg or not candidates_deg:
        raise ValueError("need at least one azimuth offset and one candidate polar angle")
    if not all(0.0 < p < 180.0 for p in candidates_deg):
        raise ValueError(f"candidate polar angles must lie in (0, 180) degrees, got {candidates_deg}")
    # 1. Views around the input (relative poses: no polar or distance change)
    d_az = np.radians(np.asarray(azimuth_offsets_deg, np.float64))
    poses = np.stack([np.zeros_like(d_az), np.sin(d_az), np.cos(d_az), np.zeros_like(d_az)], axis=-1)  # (A, 4)
    images = data.to_model_images(input_rgba)[None].expand(len(d_az), -1, -1, -1)  # (A, 3, S, S)
    out = sample.sample_novel_views(
        components,
        images.to(components.unet.device),
        torch.from_numpy(poses.astype(np.float32)).to(components.unet.device),
        num_steps,
        guidance_scale,
        1.0,
        generator,
        use_pose=use_pose,
    )
    views = out.images.permute(0, 2, 3, 1).cpu().numpy()  # (A, S, S, 3)

    # 2. Silhouettes at the scoring size
    score_size = min(SCORE_SIZE_PX, size)
    masks = [input_rgba[..., 3] >= 128] + [silhouette(v) for v in views]
    masks = np.stack([_downsample(m, score_size) for m in masks])  # (1 + A, s, s)

    # 3. Score each candidate polar angle; 4. keep the best
    azimuth_rad = np.concatenate([[0.0], d_az])
    scores = np.array(
        [consistency(masks, cameras.spherical_to_cartesian(np.radians(p), azimuth_rad, radius)) for p in candidates_deg]
    )
    best = int(np.argmax(scores))
    return PolarEstimate(float(candidates_deg[best]), np.asarray(candidates_deg, np.float64), scores, views)


def evaluate(
    components: Zero123Components,
    data_dir: str | Path,
    object_ids: list[str],
    input_view: int,
    seed: int,
    num_steps: int = 20,
    guidance_scale: float = 3.0,
) -> dict[str, object]:
    """The estimator on renders whose polar angles are known: per-object estimates and the errors.

    The noise of each object is seeded by `seed` alone (the same for every object); `num_steps` and
    `guidance_scale` are `estimate_polar`'s.

    Returns:
        `object_ids`, `true_deg`, `estimate_deg` (lists, one per object), and `mae_deg` (mean absolute error
        of the estimator) beside `baseline_mae_deg` (always answering the mean true polar angle of these
        very objects: an oracle constant, the hardest constant to beat).
    """
    if not object_ids:
        raise ValueError("`object_ids` is empty: nothing to evaluate")
    true, estimate = [], []
    for oid in object_ids:
        views = data.load_object(data_dir, oid)
        polar_rad, _, _ = cameras.cartesian_to_spherical(views.camera_centers[input_view])
        true.append(float(np.degrees(polar_rad)))
        found = estimate_polar(
            components, views.rgba[input_view], torch.Generator().manual_seed(seed), num_steps, guidance_scale
        )
        estimate.append(found.polar_deg)
    true_a, est_a = np.asarray(true), np.asarray(estimate)
    return {
        "object_ids": list(object_ids),
        "true_deg": true,
        "estimate_deg": estimate,
        "mae_deg": float(np.abs(est_a - true_a).mean()),
        "baseline_mae_deg": float(np.abs(true_a.mean() - true_a).mean()),
    }


# ----------------------------------------------------------------------------------------------------------------
# The probe: a linear read-out of the model's image embedding


@dataclasses.dataclass(frozen=True)
class ElevationProbe:
    """Ridge regression from standardised image embeddings to (cos, sin) of the polar angle (`fit_probe`)."""

    mean: Float[np.ndarray, " D"]
    """Per-feature mean of the training embeddings."""
    scale: Float[np.ndarray, " D"]
    """Per-feature standard deviation (plus 1e-6) of the training embeddings."""
    weights: Float[np.ndarray, "D1 2"]
    """Regression weights, the last row the intercept."""
    ridge: float
    """The ridge penalty it was fitted with."""
    train_views: int
    """How many views it was fitted on."""

    def predict(self, features: Float[np.ndarray, "N D"]) -> Float[np.ndarray, " N"]:
        """Polar angles in degrees, in [0, 180], of views with these embeddings."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.mean):
            raise ValueError(f"the probe reads ({len(self.mean)},) embeddings, got features of shape {features.shape}")
        design = np.concatenate([(features - self.mean) / self.scale, np.ones((len(features), 1))], axis=1)
        cos, sin = (design @ self.weights).T
        return np.degrees(np.arctan2(np.maximum(sin, 0.0), cos))

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "ridge": self.ridge,
            "train_views": self.train_views,
        }

    def fingerprint(self) -> str:
        """A hash of the probe: an estimate made with another probe is not reused."""
        return hashlib.sha256(json.dumps(self.to_dict()).encode()).hexdigest()[:16]


def fit_probe_to_features(
    features: Float[np.ndarray, "N D"], polar_deg: Float[np.ndarray, " N"], ridge: float = PROBE_RIDGE
) -> ElevationProbe:
    """Ridge regression of (cos, sin) of `polar_deg` on standardised `features`, in closed form."""
    features, polar_deg = np.asarray(features, np.float64), np.asarray(polar_deg, np.float64)
    if features.ndim != 2 or len(features) != len(polar_deg) or len(features) < 2:
        raise ValueError(f"need (N, D) features and (N,) angles with N >= 2, got {features.shape}, {polar_deg.shape}")
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-6
    design = np.concatenate([(features - mean) / scale, np.ones((len(features), 1))], axis=1)
    targets = np.stack([np.cos(np.radians(polar_deg)), np.sin(np.radians(polar_deg))], axis=1)
    weights = np.linalg.solve(design.T @ design + ridge * np.eye(design.shape[1]), design.T @ targets)
    return ElevationProbe(mean, scale, weights, float(ridge), len(features))


@torch.no_grad()
def image_features(
    components: Zero123Components, rgba: UInt8[np.ndarray, "N S S 4"], batch_size: int = 256
) -> Float[np.ndarray, "N D"]:
    """The model's CLIP image embedding (its conditioning) of views, as the probe reads them."""
    device = components.image_encoder.device
    out = []
    for start in range(0, len(rgba), batch_size):
        images = data.to_model_images(rgba[start : start + batch_size]).to(device)
        out.append(encoders.encode_clip_image(components.image_encoder, components.feature_extractor, images).cpu())
    return torch.cat(out).double().numpy()


def fit_probe(components: Zero123Components, views: data.MultiViewSet, ridge: float = PROBE_RIDGE) -> ElevationProbe:
    """The probe of this model, fitted on every view of `views` (stage 02: the training objects)."""
    rgba = views.rgba.reshape(-1, *views.rgba.shape[2:])
    polar_rad = cameras.cartesian_to_spherical(views.camera_centers.reshape(-1, 3))[0]
    return fit_probe_to_features(image_features(components, rgba), np.degrees(polar_rad), ridge)


def estimate_polar_by_probe(
    components: Zero123Components, probe: ElevationProbe, input_rgba: UInt8[np.ndarray, "S S 4"]
) -> float:
    """The input view's polar angle in degrees, read out of the model's embedding of it by `probe`."""
    return float(probe.predict(image_features(components, input_rgba[None]))[0])


def save_probe(probe: ElevationProbe, model_dir: str | Path) -> Path:
    """Write `probe` into a model folder as `PROBE_FILE` (atomically); returns its path."""
    path = Path(model_dir) / PROBE_FILE
    files.write_json_atomic(path, probe.to_dict())
    return path


def load_probe(model_dir: str | Path, feature_dim: int | None = None) -> ElevationProbe | None:
    """The probe stored in a model folder, or None if it has none; a malformed file is a `ValueError` naming it.

    `feature_dim`: the model's embedding width (`Zero123Components.summary()["clip_dim"]`), checked when given.
    """
    path = Path(model_dir) / PROBE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        arrays = [np.asarray(raw[key], np.float64) for key in ("mean", "scale", "weights")]
        probe = ElevationProbe(*arrays, ridge=float(raw["ridge"]), train_views=int(raw["train_views"]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not an elevation probe ({err}): remove it, or rerun stage 02") from err
    dim = len(probe.mean)
    if probe.scale.shape != (dim,) or probe.weights.shape != (dim + 1, 2) or not np.all(np.isfinite(probe.weights)):
        raise ValueError(
            f"{path} is malformed: mean {probe.mean.shape}, scale {probe.scale.shape}, weights "
            f"{probe.weights.shape} (expected (D,), (D,), (D + 1, 2), finite)"
        )
    if feature_dim is not None and dim != feature_dim:
        raise ValueError(
            f"{path} reads {dim}-d embeddings but the model's are {feature_dim}-d: it belongs to "
            "another model; remove it, or rerun stage 02"
        )
    return probe


def probe_error(components: Zero123Components, probe: ElevationProbe, views: data.MultiViewSet) -> dict[str, float]:
    """The probe's mean absolute error in degrees on every view of `views` (`mae_deg`), beside always answering
    these views' own mean polar angle (`mean_angle_mae_deg`: an oracle constant, the hardest one to beat)."""
    rgba = views.rgba.reshape(-1, *views.rgba.shape[2:])
    true = np.degrees(cameras.cartesian_to_spherical(views.camera_centers.reshape(-1, 3))[0])
    estimate = probe.predict(image_features(components, rgba))
    return {
        "mae_deg": float(np.abs(estimate - true).mean()),
        "mean_angle_mae_deg": float(np.abs(true.mean() - true).mean()),
        "views": len(true),
    }
