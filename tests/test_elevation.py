from types import SimpleNamespace

import numpy as np
import pytest
import torch

from zero1to3 import cameras, elevation

torch.set_num_threads(1)
AZIMUTHS_DEG = np.array([0.0, 90.0, 180.0, 270.0])  # the input, then `AZIMUTH_OFFSETS_DEG`


def _box_silhouettes(polar_deg, size=32):
    """Silhouettes of a flat box with a knob, seen from `polar_deg` at the estimator's azimuths and distance."""
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform(-1, 1, (20000, 3)) * [0.45, 0.25, 0.12],
                             rng.uniform(-1, 1, (5000, 3)) * 0.1 + [0.3, 0.2, 0.2]])  # fmt: skip
    centers = cameras.spherical_to_cartesian(np.radians(polar_deg), np.radians(AZIMUTHS_DEG), elevation.RADIUS)
    masks = np.zeros((len(centers), size, size), bool)
    for k, w2c in enumerate(cameras.c2w_to_w2c(cameras.look_at(centers))):
        uv, _ = cameras.project_points(points, w2c, size)
        col, row = np.floor(uv).astype(int).T
        ok = (col >= 0) & (col < size) & (row >= 0) & (row < size)
        masks[k, row[ok], col[ok]] = True
    return masks


@pytest.mark.parametrize("true_deg", [60.0, 90.0, 120.0])
def test_silhouettes_of_one_solid_are_most_consistent_at_their_true_polar_angle(true_deg):
    masks = _box_silhouettes(true_deg)
    scores = [elevation.consistency(masks, cameras.spherical_to_cartesian(np.radians(p), np.radians(AZIMUTHS_DEG),
                                                                          elevation.RADIUS))
              for p in elevation.CANDIDATES_DEG]  # fmt: skip
    assert elevation.CANDIDATES_DEG[int(np.argmax(scores))] == true_deg
    assert max(scores) > 0.95 and min(scores) < 0.9


def test_estimate_is_a_candidate_repeatable_with_the_seed(dummy_components, red_disc_rgba):
    run = lambda seed: elevation.estimate_polar(  # noqa: E731
        dummy_components, red_disc_rgba, torch.Generator().manual_seed(seed), num_steps=2, candidates_deg=(45.0, 90.0)
    )
    first = run(0)
    assert first.polar_deg in (45.0, 90.0) and first.views.shape == (3, 32, 32, 3)
    assert 0.0 <= first.scores.min() and first.scores.max() <= 1.0
    np.testing.assert_array_equal(run(0).scores, first.scores)


def test_estimate_checks_its_input(dummy_components, red_disc_rgba):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"`input_rgba` must be \(32, 32, 4\)"):
        elevation.estimate_polar(dummy_components, red_disc_rgba[:16, :16], g)
    with pytest.raises(ValueError, match=r"must lie in \(0, 180\)"):
        elevation.estimate_polar(dummy_components, red_disc_rgba, g, candidates_deg=(0.0, 90.0))


def test_evaluate_reports_the_error_against_always_answering_the_mean(dummy_components, monkeypatch):
    truth = {"a": 30.0, "b": 90.0, "c": 120.0}
    answers = iter([37.5, 90.0, 112.5])  # what the (stubbed) estimator answers, object by object

    def load_object(data_dir, oid):
        center = cameras.spherical_to_cartesian(np.radians(truth[oid]), 0.0, 1.8)
        return SimpleNamespace(rgba=np.zeros((1, 32, 32, 4), np.uint8), camera_centers=center[None])

    monkeypatch.setattr(elevation.data, "load_object", load_object)
    monkeypatch.setattr(elevation, "estimate_polar", lambda *args: SimpleNamespace(polar_deg=next(answers)))
    out = elevation.evaluate(dummy_components, "data", list(truth), 0, seed=0)
    np.testing.assert_allclose(out["true_deg"], list(truth.values()))
    assert out["estimate_deg"] == [37.5, 90.0, 112.5]
    assert out["mae_deg"] == pytest.approx(5.0)
    assert out["baseline_mae_deg"] == pytest.approx(np.abs(np.array([30, 90, 120]) - 80.0).mean())
    with pytest.raises(ValueError, match="`object_ids` is empty"):
        elevation.evaluate(dummy_components, "data", [], 0, seed=0)
