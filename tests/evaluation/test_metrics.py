"""Metrics: analytic values for images, masks, meshes and statistics; LPIPS/FID never run without real weights."""

from __future__ import annotations

import math
import socket
import urllib.request

import numpy as np
import pytest
import torch
import trimesh

from zero1to3.evaluation import bootstrap, perceptual, pixel_metrics, shape_metrics


def _image(h: int = 16, w: int = 16, value: float = 1.0) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.float64)


def _square(h: int, top: int, left: int, side: int, color: tuple[float, float, float]) -> np.ndarray:
    """White image with one solid square: known masks and known errors."""
    image = _image(h, h)
    image[top : top + side, left : left + side] = color
    return image


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download or socket connection fails the test loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    import cleanfid.downloads_helper

    monkeypatch.setattr(cleanfid.downloads_helper, "check_download_inception", refuse)


# --- full-image metrics -------------------------------------------------------------------------------------------


def test_identical_images_give_inf_psnr_and_ssim_one() -> None:
    image = np.random.default_rng(0).uniform(0.0, 1.0, size=(2, 16, 16, 3))
    out = pixel_metrics.image_metrics(image, image.copy())
    assert out["psnr"] == math.inf and out["mse"] == 0.0
    assert out["ssim"] == pytest.approx(1.0)


def test_uniform_shift_gives_analytic_psnr() -> None:
    target = np.random.default_rng(1).uniform(0.0, 0.9, size=(32, 32, 3))
    out = pixel_metrics.image_metrics(target + 0.1, target)
    # MSE = 0.1^2, so PSNR = 10 log10(1 / 0.01) = 20 dB
    assert out["mse"] == pytest.approx(0.01)
    assert out["psnr"] == pytest.approx(20.0)
    assert out["ssim"] < 1.0


def test_batch_is_mean_of_images_and_tiny_images_shrink_ssim_window() -> None:
    target = np.full((2, 5, 5, 3), 0.5)
    pred = np.stack([target[0] + 0.1, target[1] + 0.01])
    out = pixel_metrics.image_metrics(pred, target)
    assert out["psnr"] == pytest.approx((20.0 + 40.0) / 2)
    assert (
        pixel_metrics.ssim_window(5, 5) == 5
        and pixel_metrics.ssim_window(4, 9) == 3
        and pixel_metrics.ssim_window(64, 32) == 7
    )
    with pytest.raises(ValueError, match="at least 3x3"):
        pixel_metrics.ssim_window(2, 8)


def test_bad_images_are_rejected_naming_the_argument() -> None:
    # the jaxtyping hook (tests) raises a TypeError first; without it, the function's own ValueError
    with pytest.raises((ValueError, TypeError)):
        pixel_metrics.image_metrics(_image(8, 8), _image(8, 9))
    with pytest.raises(ValueError, match=r"`pred` must be finite and in \[0, 1\]"):
        pixel_metrics.image_metrics(_image(8, 8, 1.5), _image(8, 8))


# --- foreground metrics -------------------------------------------------------------------------------------------


def test_foreground_mask_uses_any_channel_below_threshold() -> None:
    image = _image(1, 4)
    image[0, 1] = (1.0, 1.0, 0.0)  # saturated yellow: foreground though its mean is 0.67
    image[0, 2] = (0.88, 0.88, 0.88)  # the spike's grey predicted background: not foreground at 0.8
    image[0, 3] = (0.5, 0.5, 0.5)
    assert pixel_metrics.foreground_mask(image).tolist() == [[False, True, False, True]]
    assert pixel_metrics.foreground_mask(image, threshold=0.95).tolist() == [[False, True, True, True]]
    with pytest.raises(ValueError, match="`threshold`"):
        pixel_metrics.foreground_mask(image, threshold=0.0)


def test_foreground_psnr_and_iou_on_known_squares() -> None:
    # target: 4x4 square at (2, 2); prediction: 4x4 square at (2, 4), same colour -> overlap 4x2 = 8, union 24
    target = _square(16, 2, 2, 4, (0.2, 0.2, 0.2))
    pred = _square(16, 2, 4, 4, (0.2, 0.2, 0.2))
    assert pixel_metrics.silhouette_iou(pred, target)["silhouette_iou"] == pytest.approx(8 / 24)
    fg = pixel_metrics.foreground_psnr(pred, target)
    # the 16 non-overlapping union pixels differ by 0.8 in every channel, the 8 overlap pixels by 0
    mse = 16 * 0.8**2 / 24
    assert fg["foreground_mse"] == pytest.approx(mse)
    assert fg["foreground_psnr"] == pytest.approx(10 * math.log10(1 / mse))
    assert fg["foreground_fraction"] == pytest.approx(24 / 256) and fg["foreground_empty"] == 0.0
    # full-image PSNR is much higher: the 232 white pixels agree perfectly (the spike's finding)
    assert pixel_metrics.image_metrics(pred, target)["psnr"] > fg["foreground_psnr"] + 10


def test_empty_masks_have_documented_values() -> None:
    white = _image(16, 16)
    target = _square(16, 2, 2, 4, (0.2, 0.4, 0.6))
    both_empty = pixel_metrics.foreground_psnr(white, white.copy())
    assert both_empty == {
        "foreground_psnr": math.inf,
        "foreground_mse": 0.0,
        "foreground_fraction": 0.0,
        "foreground_empty": 1.0,
    }
    assert pixel_metrics.silhouette_iou(white, white.copy())["silhouette_iou"] == 1.0
    # all-white prediction of a real object: IoU 0, finite foreground PSNR
    assert pixel_metrics.silhouette_iou(white, target)["silhouette_iou"] == 0.0
    assert math.isfinite(pixel_metrics.foreground_psnr(white, target)["foreground_psnr"])
    # in a batch, the empty image is counted and left out of the foreground mean
    batch = pixel_metrics.foreground_psnr(np.stack([white, white]), np.stack([white, target]))
    assert batch["foreground_empty"] == 1.0
    assert batch["foreground_psnr"] == pytest.approx(pixel_metrics.foreground_psnr(white, target)["foreground_psnr"])


# --- LPIPS and FID: real weights or unavailable -------------------------------------------------------------------


def test_lpips_unavailable_without_backbone_file(monkeypatch: pytest.MonkeyPatch, tmp_path, no_network) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert perceptual.lpips_backbone_path("alex") == expected
    model = perceptual.build_lpips("alex")
    assert isinstance(model, perceptual.MetricUnavailable)
    assert model.name == "lpips" and model.file_to_place == str(expected) and str(expected) in model.reason
    image = _image(32, 32, 0.5)
    assert perceptual.lpips_metrics(image, image, model) is model
    assert model.to_dict()["status"] == "unavailable"
    with pytest.raises(ValueError, match="`net`"):
        perceptual.lpips_backbone_path("resnet")


def test_lpips_loads_backbone_from_a_placed_file(monkeypatch: pytest.MonkeyPatch, tmp_path, no_network) -> None:
    # A stand-in file with torchvision's layout (features only; seeded values, not ImageNet): exercises the loading.
    import torchvision

    torch.manual_seed(0)
    features = {k: v for k, v in torchvision.models.alexnet().state_dict().items() if k.startswith("features.")}
    path = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir(parents=True)
    torch.save(features, path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="sha256"):  # not the real file: refused when the hash is checked
        perceptual.build_lpips("alex")
    model = perceptual.build_lpips("alex", verify_hash=False)
    assert isinstance(model, perceptual.LpipsModel) and model.backbone_file == path
    assert torch.equal(getattr(model.net.net.slice2, "3").weight, features["features.3.weight"])
    rng = np.random.default_rng(2)
    image = rng.uniform(0.0, 1.0, size=(2, 32, 32, 3))
    assert perceptual.lpips_metrics(image, image, model)["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert perceptual.lpips_metrics(image, 1.0 - image, model)["lpips"] > 0.0


def test_fid_unavailable_without_the_wheel(monkeypatch: pytest.MonkeyPatch, tmp_path, no_network) -> None:
    monkeypatch.setattr(perceptual, "fid_weights_path", lambda: None)
    inception = perceptual.build_fid_inception()
    assert isinstance(inception, perceptual.MetricUnavailable) and inception.name == "fid"
    assert perceptual.FID_PACKAGE_PIN in inception.reason
    images = np.full((3, 16, 16, 3), 0.5)
    assert perceptual.fid_metrics(images, images, inception) is inception
    user_path = tmp_path / "elsewhere" / "inception-2015-12-05.pt"
    assert perceptual.build_fid_inception(user_path).file_to_place == str(user_path)


def test_fid_rejects_a_torchscript_file_that_is_not_the_standard_inception(tmp_path) -> None:
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3))), str(path))
    with pytest.raises(ValueError, match="not the inception-2015-12-05 network"):
        perceptual.build_fid_inception(path)


def test_fid_feeds_clean_fid_inputs_to_the_network(tmp_path) -> None:
    # Plumbing only: a stand-in trunk records what clean-fid's Inception would receive after InceptionFeatures.
    seen = []

    class MeanColour(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((tuple(x.shape), float(x.min()), float(x.max())))
            return x.mean(dim=(2, 3)).repeat(1, 683)[:, :2048]  # (N, 2048)

    net = perceptual.InceptionFeatures(MeanColour())
    inception = perceptual.FidInception(net=net, weights_file=tmp_path / "stand-in.pt")
    images = np.random.default_rng(5).uniform(0.0, 1.0, size=(6, 16, 16, 3))
    out = perceptual.fid_metrics(images, images.copy(), inception)
    assert out["fid"] == pytest.approx(0.0, abs=1e-6)
    # (x - 128) / 128 of [0, 255] pixels: the network sees [-1, 0.9921875]
    assert seen[0][0] == (6, 3, 299, 299) and -1.0 <= seen[0][1] and seen[0][2] <= 0.9921875 + 1e-6
    with pytest.raises(ValueError, match="299"):
        net(torch.zeros(1, 3, 64, 64))


def test_frechet_distance_matches_clean_fid_and_stays_exact_below_the_dimension() -> None:
    from cleanfid.fid import fid_from_feats

    rng = np.random.default_rng(8)
    a = rng.normal(size=(60, 5)) @ rng.normal(size=(5, 5))
    b = rng.normal(loc=0.3, size=(45, 5)) @ rng.normal(size=(5, 5))
    assert perceptual.frechet_distance(a, b) == pytest.approx(float(fid_from_feats(a, b)), rel=1e-8)
    assert perceptual.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # 4 and 6 samples in 50 dimensions: singular covariances. Checked against the eigenvalues of S_a S_b.
    c, d = rng.normal(size=(4, 50)), rng.normal(size=(6, 50))
    sa, sb = np.cov(c, rowvar=False), np.cov(d, rowvar=False)
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvals(sa @ sb).real, 0.0, None)).sum()
    expected = np.sum((c.mean(0) - d.mean(0)) ** 2) + np.trace(sa) + np.trace(sb) - 2.0 * tr_sqrt
    assert perceptual.frechet_distance(c, d) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="N, M >= 2"):
        perceptual.frechet_distance(c[:1], d)


@pytest.fixture(scope="module")
def fid_inception() -> perceptual.FidInception:
    inception = perceptual.build_fid_inception()
    if isinstance(inception, perceptual.MetricUnavailable):
        pytest.skip(inception.reason)
    return inception


def test_shipped_inception_is_the_standard_network_behind_clean_fids_interface(fid_inception, tmp_path) -> None:
    from cleanfid.fid import get_folder_features
    from PIL import Image

    assert fid_inception.weights_file.name == "default_1.pt"
    rng = np.random.default_rng(9)
    images = rng.uniform(0.0, 1.0, size=(3, 24, 24, 3))
    ours = perceptual.fid_features(images, fid_inception)
    assert ours.shape == (3, 2048) and ours.min() >= 0.0  # pool3 follows a ReLU
    for i, im in enumerate(images):  # the same images through clean-fid's own folder pipeline, our net as its extractor
        Image.fromarray(np.round(im * 255.0).astype(np.uint8)).save(tmp_path / f"{i}.png")
    theirs = get_folder_features(
        str(tmp_path),
        model=fid_inception.net,
        num_workers=0,
        batch_size=3,
        device=torch.device("cpu"),
        mode="clean",
        verbose=False,
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_st_lpips_unavailable_without_the_wheel(monkeypatch: pytest.MonkeyPatch, no_network) -> None:
    with pytest.raises(ValueError, match="`net`"):
        perceptual.st_lpips_weights_path("squeeze")
    monkeypatch.setattr(perceptual, "st_lpips_weights_path", lambda net="alex": None)
    model = perceptual.build_st_lpips()
    assert isinstance(model, perceptual.MetricUnavailable) and model.name == "st_lpips"
    image = np.full((8, 8, 3), 0.5)
    assert perceptual.st_lpips_metrics(image, image, model) is model


def test_st_lpips_loads_every_tensor_and_tolerates_a_one_pixel_shift(no_network) -> None:
    model = perceptual.build_st_lpips("alex")
    if isinstance(model, perceptual.MetricUnavailable):
        pytest.skip(model.reason)
    state = torch.load(model.weights_file, map_location="cpu", weights_only=True)
    assert torch.equal(model.net.lin0.model[1].weight, state["lin0.model.1.weight"])
    assert torch.equal(model.net.lins[4].model[1].weight, state["lin4.model.1.weight"])
    target = np.ones((2, 32, 32, 3))
    target[:, 8:24, 8:24] = [0.2, 0.4, 0.8]
    same = perceptual.st_lpips_metrics(target, target.copy(), model)["st_lpips"]
    shifted = perceptual.st_lpips_metrics(np.roll(target, 1, axis=2), target, model)["st_lpips"]
    white = perceptual.st_lpips_metrics(np.ones_like(target), target, model)["st_lpips"]
    assert same == pytest.approx(0.0, abs=1e-6) and 0.0 < shifted < white


def test_st_lpips_scores_images_smaller_than_its_trunk_accepts(no_network) -> None:
    model = perceptual.build_st_lpips("alex")
    if isinstance(model, perceptual.MetricUnavailable):
        pytest.skip(model.reason)
    target = np.ones((2, 16, 16, 3))  # the smoke study's renders; the trunk alone fails below about 24 px
    target[:, 4:12, 4:12] = [0.2, 0.4, 0.8]
    same = perceptual.st_lpips_metrics(target, target.copy(), model)["st_lpips"]
    white = perceptual.st_lpips_metrics(np.ones_like(target), target, model)["st_lpips"]
    assert same == pytest.approx(0.0, abs=1e-6) and white > 0.01


def test_st_lpips_rejects_a_state_dict_with_a_missing_tensor(tmp_path) -> None:
    path = perceptual.st_lpips_weights_path("alex")
    if path is None:
        pytest.skip("stlpips-pytorch is not installed")
    state = torch.load(path, map_location="cpu", weights_only=True)
    del state["net.slice1.1.filt"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="net.slice1.1.filt"):
        perceptual.build_st_lpips("alex", weights_path=tmp_path / "partial.pth")


def test_frechet_feature_distance_is_named_and_analytic() -> None:
    rng = np.random.default_rng(3)
    target = rng.uniform(0.2, 0.8, size=(40, 8, 8, 3))

    def mean_colour(x: np.ndarray) -> np.ndarray:
        return x.mean(axis=(1, 2))  # (N, 3)

    # shifting every image by 0.1 shifts the mean feature by 0.1 per dimension, covariance unchanged: d^2 = 3 * 0.01
    out = perceptual.frechet_feature_distance(target + 0.1, target, mean_colour, name="mean_colour")
    assert list(out) == ["frechet_mean_colour"]
    assert out["frechet_mean_colour"] == pytest.approx(0.03, abs=1e-5)
    with pytest.raises(ValueError, match="`name`"):
        perceptual.frechet_feature_distance(target, target, mean_colour, name="FID")


# --- 3D -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spheres() -> tuple[trimesh.Trimesh, trimesh.Trimesh]:
    return trimesh.creation.icosphere(subdivisions=4, radius=0.25), trimesh.creation.icosphere(
        subdivisions=4, radius=0.4
    )


def test_chamfer_of_concentric_spheres_is_radius_gap(spheres) -> None:
    small, large = spheres
    out = shape_metrics.chamfer_distance(small, large, num_points=5000, seed=0)
    # every nearest point on a concentric sphere lies along the radius: d = 0.4 - 0.25 = 0.15 in both directions
    assert out["chamfer"] == pytest.approx(0.15, abs=2e-3)
    assert out["chamfer_sum"] == pytest.approx(0.30, abs=4e-3)
    assert out["chamfer_squared"] == pytest.approx(2 * 0.15**2, abs=1e-3)
    assert out == shape_metrics.chamfer_distance(small, large, num_points=5000, seed=0)  # deterministic for a seed


def test_chamfer_of_identical_meshes_is_sampling_floor(spheres) -> None:
    # two independent 5,000-point samples of one sphere (area 2.0): spacing ~ sqrt(2.0 / 5000) = 0.02
    out = shape_metrics.chamfer_distance(spheres[1], spheres[1].copy(), num_points=5000, seed=1)
    assert 0.0 < out["chamfer"] < 0.02
    empty = shape_metrics.chamfer_distance(trimesh.Trimesh(), spheres[1], seed=0)
    assert empty["chamfer"] == math.inf
    with pytest.raises(ValueError, match="`gt_mesh` has no surface"):
        shape_metrics.chamfer_distance(spheres[1], trimesh.Trimesh(), seed=0)


def test_volumetric_iou_of_spheres(spheres) -> None:
    small, large = spheres
    out = shape_metrics.volumetric_iou(small, large, resolution=48, bound=0.5)
    assert out["volume_iou"] == pytest.approx((0.25 / 0.4) ** 3, abs=0.02)
    assert out["gt_volume"] == pytest.approx(4 / 3 * math.pi * 0.4**3, rel=0.03)
    assert shape_metrics.volumetric_iou(large, large.copy(), resolution=32)["volume_iou"] == 1.0
    assert shape_metrics.volumetric_iou(trimesh.Trimesh(), large, resolution=16)["volume_iou"] == 0.0
    with pytest.raises(ValueError, match="`gt_mesh` has no faces"):
        shape_metrics.volumetric_iou(large, trimesh.Trimesh(), resolution=16)


def test_volumetric_iou_tolerates_holes(spheres) -> None:
    holey = spheres[1].copy()
    keep = np.ones(len(holey.faces), dtype=bool)
    keep[::37] = False  # punch 139 holes
    holey.update_faces(keep)
    assert not holey.is_watertight
    assert shape_metrics.volumetric_iou(holey, spheres[1], resolution=32)["volume_iou"] > 0.99


# --- statistics ---------------------------------------------------------------------------------------------------


def test_bootstrap_ci_contains_true_mean_and_is_deterministic() -> None:
    values = np.random.default_rng(4).normal(loc=2.0, scale=1.0, size=200)
    ci = bootstrap.bootstrap_ci(values, num_resamples=4000, confidence=0.95, seed=0)
    assert ci["ci_low"] < 2.0 < ci["ci_high"]
    # the width is close to the normal-theory 2 * 1.96 * sd / sqrt(n)
    assert ci["ci_high"] - ci["ci_low"] == pytest.approx(2 * 1.96 * values.std(ddof=1) / math.sqrt(200), rel=0.15)
    assert ci == bootstrap.bootstrap_ci(values, num_resamples=4000, confidence=0.95, seed=0)
    assert ci != bootstrap.bootstrap_ci(values, num_resamples=4000, confidence=0.95, seed=1)
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap.bootstrap_ci([1.0, math.inf], seed=0)


def test_paired_difference_on_known_arrays() -> None:
    a = np.array([3.0, 5.0, 4.0, 6.0])
    b = np.array([2.0, 5.0, 5.0, 3.0])  # a - b = [1, 0, -1, 3]: mean 0.75, sd sqrt(8.75 / 3)
    out = bootstrap.paired_difference(a, b, num_resamples=2000, seed=0)
    assert out["mean_difference"] == pytest.approx(0.75)
    assert out["std_difference"] == pytest.approx(math.sqrt(8.75 / 3))
    assert out["standard_error"] == pytest.approx(math.sqrt(8.75 / 3) / 2)
    assert out["num_a_greater"] == 2.0 and out["num_objects"] == 4.0
    assert -1.0 <= out["ci_low"] < 0.75 < out["ci_high"] <= 3.0
    with pytest.raises(ValueError, match="one value per object"):
        bootstrap.paired_difference(list(a), list(b[:3]), seed=0)


def test_unavailable_record_writes_the_home_folder_as_tilde(monkeypatch, tmp_path):
    monkeypatch.setattr(perceptual.Path, "home", classmethod(lambda cls: tmp_path))
    record = perceptual.build_lpips(backbone_path=tmp_path / "hub" / "alexnet.pth").to_dict()
    assert record["file_to_place"] == "~/hub/alexnet.pth" and str(tmp_path) not in record["reason"]
    assert "~/hub/alexnet.pth" in record["reason"]
