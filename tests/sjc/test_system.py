import contextlib
import dataclasses
import logging
import math

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from zero1to3 import cameras
from zero1to3.model import builders
from zero1to3.sjc import guidance, system, voxel

torch.set_num_threads(1)

# A reduced config (nerfstudio's set_reduced_config): the real loop on a 12^3 grid and 8x8 latents.
DEFAULT = system.SJCConfig.from_dict(yaml.safe_load((REPO / "params.yaml").read_text())["sjc"]["config"])
SMALL = dataclasses.replace(DEFAULT, iterations=3, resolution=12, samples_per_ray=12, checkpoint_every=2)
INPUT_CENTER = cameras.spherical_to_cartesian(math.radians(70.0), math.radians(30.0), 1.7)
LOSS_TERMS = {"loss_sds", "loss_input", "loss_input_mask", "loss_near_view", "loss_depth_smooth"}


class _Killed(Exception):
    """Stands in for the process being killed mid-run."""


@pytest.fixture(scope="module")
def run(dummy_components, red_disc_rgba):
    return lambda cfg=SMALL, seed=0, **kw: system.reconstruct(
        dummy_components, red_disc_rgba, INPUT_CENTER, cfg, seed, progress=False, **kw
    )


@pytest.fixture(scope="module")
def result(run):
    return run()


def _state(field):
    return {k: v.detach().clone() for k, v in field.state_dict().items()}


def _assert_same_fields(a, b):
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), f"{key} differs"


def test_three_iterations_of_the_real_loop_log_every_term(result):
    assert len(result.history) == 3 and result.resumed_from == 0 and result.seconds > 0
    for i, row in enumerate(result.history, start=1):
        assert row["iteration"] == i
        assert LOSS_TERMS <= set(row) and "loss_emptiness" not in row  # lambda_emptiness = 0: not computed
        assert all(math.isfinite(row[k]) for k in LOSS_TERMS | {"loss", "seconds"})
        assert SMALL.timestep_min <= row["timestep"] <= SMALL.timestep_max
    field = result.field
    assert isinstance(field, voxel.VoxelField) and field.resolution == SMALL.resolution and field.bound == SMALL.bound
    assert field.density_raw.abs().max() > 0  # the optimiser moved the density off its zero init


def test_same_seed_same_field_other_seed_other_field(run, result):
    _assert_same_fields(run().field, result.field)
    assert [r["loss"] for r in run().history] == [r["loss"] for r in result.history]
    assert not torch.equal(run(seed=1).field.density_raw, result.field.density_raw)


def test_emptiness_term_is_logged_when_weighted(run):
    history = run(dataclasses.replace(SMALL, iterations=1, lambda_emptiness=1.0)).history
    assert math.isfinite(history[0]["loss_emptiness"])


def test_no_pose_baseline_runs_and_differs(run, result):
    baseline = run(use_pose=False)
    assert len(baseline.history) == 3
    assert not torch.equal(baseline.field.features_raw, result.field.features_raw)


def test_killed_and_resumed_run_ends_equal_to_an_uninterrupted_one(run, tmp_path, monkeypatch):
    cfg = dataclasses.replace(SMALL, iterations=5, checkpoint_every=2)
    uninterrupted = run(cfg)
    real_score, calls = guidance.score, []

    def score_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # during iteration 4: the checkpoint of iteration 2 is the newest
            raise _Killed
        return real_score(*args, **kwargs)

    monkeypatch.setattr(guidance, "score", score_then_die)
    with pytest.raises(_Killed):
        run(cfg, checkpoint_dir=tmp_path)
    monkeypatch.setattr(guidance, "score", real_score)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sjc_000002.pt"]  # atomic: no temp file left behind

    resumed = run(cfg, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 2
    _assert_same_fields(resumed.field, uninterrupted.field)
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(resumed.history) == strip(uninterrupted.history)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sjc_000004.pt", "sjc_000005.pt"]

    # Other settings never resume this run's state: the run says so and starts afresh.
    other = dataclasses.replace(cfg, lr_features=0.01)
    with caplog_at_warning() as records:
        fresh = run(other, checkpoint_dir=tmp_path)
    assert fresh.resumed_from == 0 and any("starting afresh" in r for r in records)
    _assert_same_fields(fresh.field, run(other).field)


def test_checkpoints_of_another_prior_are_not_resumed(dummy_components, red_disc_rgba, tmp_path):
    """A retrained model (other weights, same settings) never continues the old field."""
    cfg = dataclasses.replace(SMALL, iterations=2, checkpoint_every=1)
    system.reconstruct(dummy_components, red_disc_rgba, INPUT_CENTER, cfg, 0, checkpoint_dir=tmp_path, progress=False)
    retrained = builders.build_dummy_components(seed=1, prediction_type="v_prediction")
    again = system.reconstruct(retrained, red_disc_rgba, INPUT_CENTER, cfg, 0, checkpoint_dir=tmp_path, progress=False)
    assert again.resumed_from == 0
    same = system.reconstruct(retrained, red_disc_rgba, INPUT_CENTER, cfg, 0, checkpoint_dir=tmp_path, progress=False)
    assert same.resumed_from == 2  # its own checkpoints are resumed


def test_a_planted_pickle_checkpoint_is_refused(dummy_components, red_disc_rgba, tmp_path):
    """The newest `sjc_*.pt` is loaded with weights_only=True; code in a pickle never runs."""
    marker = tmp_path / "ran"
    _plant_pickle(tmp_path / "sjc_999999.pt", marker)
    with pytest.raises(Exception, match="sjc_999999.pt"):
        system.reconstruct(
            dummy_components, red_disc_rgba, INPUT_CENTER, SMALL, 0, checkpoint_dir=tmp_path, progress=False
        )
    assert not marker.exists()


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling this creates a file: stands in for any shell command


def _plant_pickle(path, marker):
    torch.save({"iteration": 1, "payload": _RunsCode(marker)}, path)


@contextlib.contextmanager
def caplog_at_warning():
    """Collect the messages the package logs at WARNING or above inside the block."""
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("zero1to3")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def test_non_finite_loss_stops_and_names_the_iteration(run, monkeypatch):
    real_score, calls = guidance.score, []

    def nan_at_second_call(*args, **kwargs):
        calls.append(1)
        out = real_score(*args, **kwargs)
        return guidance.ScoreOutput(out.grad * float("nan"), out.timesteps) if len(calls) == 2 else out

    monkeypatch.setattr(guidance, "score", nan_at_second_call)
    with pytest.raises(FloatingPointError, match="iteration 2"):
        run()


def test_cameras_put_the_input_view_first_at_its_own_radius():
    cfg = dataclasses.replace(SMALL, views_per_iteration=5)
    centers = system.sample_cameras(INPUT_CENTER, cfg, np.random.default_rng(0))
    assert centers.shape == (6, 3)
    np.testing.assert_array_equal(centers[0], INPUT_CENTER)  # radius 1.7, its own angles
    radius = np.linalg.norm(centers[1:], axis=-1)
    assert np.all((radius >= cfg.radius_min) & (radius <= cfg.radius_max)), radius
    near = system.near_cameras(centers[1:], cfg.near_view_offset, np.random.default_rng(1))
    np.testing.assert_allclose(np.linalg.norm(near - centers[1:], axis=-1), cfg.near_view_offset)


def test_field_from_state_rebuilds_the_field_of_a_config():
    """Both field files (stage 04's bare state dict, `reconstruct`'s under "field") load through it."""
    generator = torch.Generator().manual_seed(0)
    field = voxel.VoxelField(SMALL.resolution, 4, SMALL.bound, SMALL.density_shift, None, 1.0, generator)
    rebuilt = system.field_from_state(field.state_dict(), SMALL, 4)
    assert (rebuilt.resolution, rebuilt.bound) == (SMALL.resolution, SMALL.bound)
    assert rebuilt.density_shift == SMALL.density_shift
    for key, value in field.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[key], value, rtol=0, atol=0)


def test_turntable_decodes_frames(dummy_components, result):
    frames = system.render_turntable(
        result.field, dummy_components, num_frames=2, radius=2.0, polar_deg=60.0, samples_per_ray=8
    )
    assert frames["rgb"].shape == (2, 32, 32, 3) and frames["depth"].shape == frames["opacity"].shape == (2, 8, 8)
    assert frames["rgb"].min() >= 0.0 and frames["rgb"].max() <= 1.0
    first = system.render_images(result.field, dummy_components, INPUT_CENTER[None], samples_per_ray=8)
    again = system.render_images(
        result.field, dummy_components, np.concatenate([INPUT_CENTER[None]] * 2), samples_per_ray=8
    )
    assert first["rgb"].shape == (1, 32, 32, 3)
    np.testing.assert_allclose(again["rgb"][1], first["rgb"][0], atol=1e-5)  # a camera's image is its own


def test_config_round_trips_and_rejects_unknown_missing_or_bad_values():
    cfg = DEFAULT
    assert system.SJCConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="missing keys"):  # every value comes from params.yaml: no hidden defaults
        system.SJCConfig.from_dict({"iterations": 7})
    with pytest.raises(ValueError, match=r"unknown keys \['guidance_sclae'\]"):
        system.SJCConfig.from_dict(cfg.to_dict() | {"guidance_sclae": 3.0})
    with pytest.raises(ValueError, match="timestep_min"):
        dataclasses.replace(cfg, timestep_min=500, timestep_max=100)
    with pytest.raises(ValueError, match="radius_min"):
        dataclasses.replace(cfg, radius_min=0.9)  # a camera inside the box


def test_input_size_and_camera_are_checked(dummy_components, red_disc_rgba):
    with pytest.raises(ValueError, match="32x32"):
        system.reconstruct(dummy_components, red_disc_rgba[:16, :16], INPUT_CENTER, SMALL, 0, progress=False)
    with pytest.raises(ValueError, match="inside the field's box"):
        system.reconstruct(dummy_components, red_disc_rgba, np.array([0.1, 0.0, 0.2]), SMALL, 0, progress=False)
