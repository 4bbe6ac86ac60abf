import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from zero1to3 import cameras
from zero1to3.dataset import data
from zero1to3.single_image import elevation

torch.set_num_threads(1)
AZIMUTHS_DEG = np.array([0.0, 90.0, 180.0, 270.0])  # the input, then `AZIMUTH_OFFSETS_DEG`


def _box_silhouettes(polar_deg, size=32):
    """Silhouettes of a flat box with a knob, seen from `polar_deg` at the estimator's azimuths and distance."""
    rng = np.random.default_rng(0)
    points = np.concatenate(
        [rng.uniform(-1, 1, (20000, 3)) * [0.45, 0.25, 0.12], rng.uniform(-1, 1, (5000, 3)) * 0.1 + [0.3, 0.2, 0.2]]
    )
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
    scores = [
        elevation.consistency(
            masks, cameras.spherical_to_cartesian(np.radians(p), np.radians(AZIMUTHS_DEG), elevation.RADIUS)
        )
        for p in elevation.CANDIDATES_DEG
    ]
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


# ---------------------------------------------------------------------------------------------------------------
# The probe


def _angles_and_features(n, seed, dim=6):
    """Polar angles and features that hold (cos, sin) of them, plus noise features."""
    rng = np.random.default_rng(seed)
    polar = rng.uniform(10.0, 170.0, n)
    rad = np.radians(polar)
    features = np.concatenate([np.stack([np.cos(rad), np.sin(rad)], 1), rng.normal(size=(n, dim - 2))], axis=1)
    return polar, features


def test_probe_reads_the_angle_out_of_features_that_hold_it():
    polar, features = _angles_and_features(400, seed=0)
    probe = elevation.fit_probe_to_features(features, polar, ridge=1.0)
    test_polar, test_features = _angles_and_features(100, seed=1)
    estimate = probe.predict(test_features)
    assert np.all((estimate >= 0.0) & (estimate <= 180.0))
    assert np.abs(estimate - test_polar).mean() < 3.0  # the constant's error is ~40 degrees
    shuffled = elevation.fit_probe_to_features(features, np.random.default_rng(2).permutation(polar), ridge=1.0)
    assert np.abs(shuffled.predict(test_features) - test_polar).mean() > 20.0  # no signal, no read-out
    with pytest.raises(ValueError, match=r"\(6,\) embeddings"):
        probe.predict(test_features[:, :4])
    with pytest.raises(ValueError, match="N >= 2"):
        elevation.fit_probe_to_features(features[:1], polar[:1])


def test_probe_round_trips_through_the_model_folder_and_bad_files_are_named(tmp_path):
    polar, features = _angles_and_features(50, seed=0)
    probe = elevation.fit_probe_to_features(features, polar)
    assert elevation.load_probe(tmp_path) is None  # a folder without a probe: the consistency estimator
    path = elevation.save_probe(probe, tmp_path)
    loaded = elevation.load_probe(tmp_path, feature_dim=6)
    assert loaded.fingerprint() == probe.fingerprint() and loaded.train_views == 50
    np.testing.assert_array_equal(loaded.predict(features), probe.predict(features))
    with pytest.raises(ValueError, match="another model"):
        elevation.load_probe(tmp_path, feature_dim=8)
    path.write_text('{"mean": [0.0]}')
    with pytest.raises(ValueError, match=f"{path.name} is not an elevation probe"):
        elevation.load_probe(tmp_path)
    path.write_text(json.dumps(probe.to_dict() | {"weights": [[0.0, 1.0]]}))
    with pytest.raises(ValueError, match="malformed"):
        elevation.load_probe(tmp_path)


def test_probe_of_a_model_fits_on_its_embeddings_and_reports_its_error(dummy_components, red_disc_rgba):
    centers = cameras.spherical_to_cartesian(
        np.radians([[40.0, 80.0, 120.0], [60.0, 100.0, 140.0]]), np.radians([[0.0, 90.0, 180.0]] * 2), 1.8
    )
    rgba = np.stack([np.stack([np.roll(red_disc_rgba, 3 * k, axis=0) for k in range(3)])] * 2)  # (2, 3, 32, 32, 4)
    views = data.MultiViewSet(["a", "b"], rgba, centers)
    probe = elevation.fit_probe(dummy_components, views)
    assert probe.train_views == 6 and len(probe.mean) == dummy_components.cc_projection.clip_dim
    found = elevation.estimate_polar_by_probe(dummy_components, probe, red_disc_rgba)
    assert 0.0 <= found <= 180.0 and found == elevation.estimate_polar_by_probe(dummy_components, probe, red_disc_rgba)
    error = elevation.probe_error(dummy_components, probe, views)
    assert error["views"] == 6 and error["mean_angle_mae_deg"] == pytest.approx(30.0)  # |40..140 - 90| averaged
    assert error["mae_deg"] >= 0.0
