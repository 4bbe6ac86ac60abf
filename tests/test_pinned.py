"""Pinned output slices (diffusers' `expected_slice` pattern): a library upgrade or a refactor that changes numbers
fails here, by name, instead of passing silently.

Every value comes from a tiny seeded model or fixed inputs, one thread: conftest.py's shared `dummy_components`,
`dummy_inputs` and `red_disc_rgba` (a change to those shows here). The tolerance (1e-4) absorbs the last bits that
differ between CPUs and BLAS builds; anything larger is a real change in what the code computes. When a change is
intended, regenerate the slice, and say why in the commit.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import trimesh
import yaml

from conftest import REPO
from zero1to3 import cameras
from zero1to3.evaluation import bootstrap, pixel_metrics, shape_metrics
from zero1to3.novel_views import sample
from zero1to3.sjc import guidance, system

torch.set_num_threads(1)
ATOL = 1e-4


def test_sampler_slice(dummy_components, dummy_inputs) -> None:
    images, poses = dummy_inputs
    out = sample.sample_novel_views(dummy_components, images, poses, 4, 3.0, 1.0, torch.Generator().manual_seed(0))
    expected_images = [
        0.533189,
        0.590808,
        0.609441,
        0.687801,
        1.0,
        1.0,
        0.722007,
        0.512540,
        0.606647,
        0.436327,
        0.256049,
        0.359040,
    ]
    expected_latents = [-0.439935, -0.100320, 1.921235, -0.355432]
    np.testing.assert_allclose(out.images[0, :, 16, 14:18].flatten().numpy(), expected_images, atol=ATOL)
    np.testing.assert_allclose(out.latents[1, 0, 3, :4].numpy(), expected_latents, atol=ATOL)


def test_sjc_score_slice(dummy_components, dummy_inputs) -> None:
    images, poses = dummy_inputs
    cond = guidance.encode_input_view(dummy_components, images[:1])
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    out = guidance.score(dummy_components, cond, latents, poses, 100.0, (10, 969), torch.Generator().manual_seed(2))
    assert out.timesteps.tolist() == [178.0, 217.0]
    np.testing.assert_allclose(out.grad[0, 0, 4, :4].numpy(), [9.491778, 0.693300, 5.937851, 5.288111], atol=1e-3)


def test_sjc_steps_slice(dummy_components, red_disc_rgba) -> None:
    default = system.SJCConfig.from_dict(yaml.safe_load((REPO / "params.yaml").read_text())["sjc"]["config"])
    cfg = dataclasses.replace(default, iterations=3, resolution=12, samples_per_ray=12, checkpoint_every=2)
    center = cameras.spherical_to_cartesian(math.radians(70.0), math.radians(30.0), 1.7)
    result = system.reconstruct(dummy_components, red_disc_rgba, center, cfg, 0, progress=False)
    last = result.history[-1]
    expected = {
        "loss_input": 0.00281526,
        "loss_input_mask": 0.11359775,
        "loss_near_view": 0.08184178,
        "loss_depth_smooth": 0.60366756,
    }
    for key, value in expected.items():
        assert last[key] == pytest.approx(value, rel=1e-3), key
    assert last["loss_sds"] == pytest.approx(8970.039, rel=1e-3)
    state = result.field.state_dict()
    np.testing.assert_allclose(
        state["density_raw"].flatten()[:4].numpy(), [-0.001425, -0.114923, -0.123603, -0.080752], atol=ATOL
    )
    np.testing.assert_allclose(
        state["features_raw"].flatten()[:4].numpy(), [-1.021241, -1.026750, -0.364239, -0.364189], atol=ATOL
    )
    assert float(state["density_log_scale"]) == pytest.approx(0.0539599, abs=ATOL)


def test_image_metric_values() -> None:
    rng = np.random.default_rng(0)
    pred, target = rng.random((2, 16, 16, 3)), rng.random((2, 16, 16, 3))
    target[:, :4] = 1.0
    pred[:, -4:] = 1.0
    image = pixel_metrics.image_metrics(pred, target)
    assert image["psnr"] == pytest.approx(6.098423, abs=1e-5)
    assert image["ssim"] == pytest.approx(0.026613, abs=1e-5)
    assert pixel_metrics.foreground_psnr(pred, target)["foreground_psnr"] == pytest.approx(6.090170, abs=1e-5)
    assert pixel_metrics.silhouette_iou(pred, target)["silhouette_iou"] == pytest.approx(0.499020, abs=1e-5)


def test_shape_and_statistics_values() -> None:
    box, sphere = trimesh.creation.box((0.6, 0.5, 0.4)), trimesh.creation.icosphere(3, 0.3)
    assert shape_metrics.chamfer_distance(box, sphere, 2000, seed=0)["chamfer"] == pytest.approx(0.0440602, abs=1e-6)
    assert shape_metrics.volumetric_iou(box, sphere, 32)["volume_iou"] == pytest.approx(0.6470588, abs=1e-6)
    values = np.random.default_rng(0).normal(size=20)
    ci = bootstrap.bootstrap_ci(values, 1000, seed=0)
    assert (ci["ci_low"], ci["ci_high"]) == pytest.approx((-0.5634371, 0.1772590), abs=1e-6)
    paired = bootstrap.paired_difference(values, values * 0.5, 1000, seed=0)
    assert (paired["ci_low"], paired["ci_high"]) == pytest.approx((-0.2817186, 0.0886295), abs=1e-6)
