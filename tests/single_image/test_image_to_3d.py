import dataclasses
import json

import numpy as np
import pytest
import torch
import trimesh
import yaml
from PIL import Image

from conftest import REPO, disc_rgba
from zero1to3 import cameras
from zero1to3.core import checkpoints
from zero1to3.model import builders
from zero1to3.single_image import elevation, image_to_3d
from zero1to3.sjc import guidance, mesh, reconstruction, system

torch.set_num_threads(1)

DEFAULT = system.SJCConfig.from_dict(yaml.safe_load((REPO / "params.yaml").read_text())["sjc"]["config"])
SMALL = dataclasses.replace(DEFAULT, iterations=4, resolution=12, samples_per_ray=12, checkpoint_every=2)
LOW = mesh.MeshSettings(threshold_mean_factor=1.0)  # a 4-iteration field is faint: a low iso-level finds it


class _Killed(Exception):
    """Stands in for the process being killed mid-run."""


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "photo.png"
    disc_rgba().save(path)
    return path


def _run(components, image, out, **kw):
    kw = {"cfg": SMALL, "seed": 0, "mesh_settings": LOW, "turntable_frames": 3, "progress": False} | kw
    return image_to_3d.reconstruct_image(components, image, out, **kw)


def _field_state(out):
    return checkpoints.load(out / image_to_3d.FIELD_FILE)["field"]


def test_one_image_gives_a_coloured_mesh_a_turntable_and_a_record(dummy_components, image_path, tmp_path):
    out = tmp_path / "out"
    result = _run(dummy_components, image_path, out)
    names = {
        "input.png",
        "mesh.glb",
        "mesh.obj",
        "mesh.ply",
        "turntable.gif",
        "turntable.png",
        "field.pt",
        "reconstruction.json",
    }
    assert {p.name for p in out.iterdir()} == names  # checkpoints removed once the field is saved
    assert result.trained and result.polar_deg == image_to_3d.DEFAULT_POLAR_DEG
    glb = trimesh.load(out / "mesh.glb", force="mesh")
    assert len(glb.faces) == len(result.mesh.faces) > 0 and glb.visual.vertex_colors.shape[1] == 4
    assert Image.open(out / "turntable.gif").n_frames == 3
    assert Image.open(out / "turntable.png").size == (3 * 32, 2 * 32)  # colour over depth
    record = json.loads((out / "reconstruction.json").read_text())
    assert record["identity"]["prior_fingerprint"] == record["prior_fingerprint"]
    assert record["settings"]["config"]["iterations"] == 4 and record["camera"]["radius"] == pytest.approx(1.85)
    assert set(record["final_losses"]) >= {"loss", "loss_sds", "loss_input"} and record["seconds"]["total"] > 0

    again = _run(dummy_components, image_path, out)  # same run: the field is re-exported, not retrained
    assert not again.trained and len(again.mesh.faces) == len(result.mesh.faces)


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(dummy_components, image_path, tmp_path, monkeypatch):
    _run(dummy_components, image_path, tmp_path / "whole")
    real_score, calls = guidance.score, []

    def score_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # during iteration 3: the checkpoint of iteration 2 is the newest
            raise _Killed
        return real_score(*args, **kwargs)

    monkeypatch.setattr(guidance, "score", score_then_die)
    out = tmp_path / "killed"
    with pytest.raises(_Killed):
        _run(dummy_components, image_path, out)
    monkeypatch.setattr(guidance, "score", real_score)
    assert not (out / "reconstruction.json").exists() and not (out / "field.pt").exists()  # nothing looks finished
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["sjc_000002.pt"]

    resumed = _run(dummy_components, image_path, out)
    assert resumed.trained and resumed.record["resumed_from"] == 2
    whole, ends = _field_state(tmp_path / "whole"), _field_state(out)
    assert all(torch.equal(whole[k], ends[k]) for k in whole)


def test_another_model_or_seed_never_reuses_the_folder(dummy_components, image_path, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = _run(dummy_components, image_path, out)
    retrained = builders.build_dummy_components(seed=1, prediction_type="v_prediction")
    second = _run(retrained, image_path, out)
    assert second.trained and second.record["prior_fingerprint"] != first.record["prior_fingerprint"]

    # A run of other settings killed early leaves no stale result that looks finished.
    def die(*args, **kwargs):
        raise _Killed

    monkeypatch.setattr(guidance, "score", die)
    with pytest.raises(_Killed):
        _run(retrained, image_path, out, seed=1)
    assert not any((out / name).exists() for name in ("reconstruction.json", "field.pt", "mesh.glb", "turntable.gif"))


def test_keeping_a_renders_framing_and_camera_is_stage_04s_run(dummy_components, red_disc_rgba, tmp_path):
    """The same code path: a render of stage 01 given with its recorded angles is stage 04's run, the same identity
    (so a finished run is reused by either) and the same field. The centre its `w2c` gives differs from the
    angles' in the last bits, which changes the identity's hash (not the field: float32 drops them)."""
    polar_deg, azimuth_deg, radius = 128.2825595783578, 124.27243613312444, 1.9530404494234677  # the duck's
    folder = tmp_path / "data" / "renders" / "disc"
    folder.mkdir(parents=True)
    meta = {"settings": {"num_views": 1}, "polar_deg": [polar_deg], "azimuth_deg": [azimuth_deg], "radius": [radius]}
    (folder / "meta.json").write_text(json.dumps(meta))
    Image.fromarray(np.asarray(red_disc_rgba), "RGBA").save(folder / "000.png")
    w2c = cameras.c2w_to_w2c(cameras.look_at(system.input_center(polar_deg, azimuth_deg, radius)))
    np.save(folder / "000.npy", w2c)
    assert not np.array_equal(cameras.camera_center(w2c), system.input_center(polar_deg, azimuth_deg, radius))

    records = reconstruction.reconstruct_objects(
        {"sjc": dummy_components}, tmp_path / "data", ["disc"], 0, SMALL, 0, tmp_path / "stage04"
    )
    ours = _run(
        dummy_components,
        folder / "000.png",
        tmp_path / "ours",
        polar_deg=polar_deg,
        azimuth_deg=azimuth_deg,
        radius=radius,
        object_fraction=None,
    )
    assert records["sjc"]["disc"]["identity"] == ours.record["identity"]
    stage04 = torch.load(tmp_path / "stage04" / "sjc" / "disc.field.pt", weights_only=True)
    assert all(torch.equal(stage04[k], v) for k, v in _field_state(tmp_path / "ours").items())


def test_an_empty_field_keeps_the_field_and_a_rerun_re_exports_it(dummy_components, image_path, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(mesh.EmptyMeshError, match="--mesh-threshold"):
        _run(dummy_components, image_path, out, mesh_settings=mesh.MeshSettings(threshold_mean_factor=50.0))
    assert (out / "field.pt").exists() and not (out / "reconstruction.json").exists()
    assert not _run(dummy_components, image_path, out).trained
    recorded = _run(
        dummy_components,
        image_path,
        out,
        mesh_settings=mesh.MeshSettings(threshold_mean_factor=50.0),
        require_mesh=False,
    )
    assert recorded.mesh is None and "no surface" in recorded.record["mesh_error"]
    assert not (out / "mesh.glb").exists() and (out / "reconstruction.json").exists()


def test_auto_polar_is_estimated_once_and_stored(dummy_components, image_path, tmp_path, monkeypatch):
    out = tmp_path / "out"
    cfg = dataclasses.replace(SMALL, iterations=1)
    first = _run(dummy_components, image_path, out, polar_deg="auto", cfg=cfg)
    stored = json.loads((out / "polar_estimate.json").read_text())
    assert first.polar_deg == stored["polar_deg"] and first.record["camera"]["polar_estimated"]
    monkeypatch.setattr(image_to_3d.elevation, "estimate_polar", lambda *a, **k: pytest.fail("estimated again"))
    assert _run(dummy_components, image_path, out, polar_deg="auto", cfg=cfg).polar_deg == first.polar_deg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"polar_deg": float("nan")}, r"--polar-deg must be a number in \[0, 180\]"),
        ({"polar_deg": 200.0}, r"--polar-deg must be a number in \[0, 180\]"),
        ({"azimuth_deg": float("inf")}, "--azimuth-deg must be a finite number"),
        ({"radius": 0.5}, r"--radius must lie in \[1.5, 2.2\]"),
        ({"object_fraction": None}, "must be 32x32 px"),  # a 48 px photo cannot keep its framing
    ],
)
def test_bad_cameras_and_images_are_refused_before_anything_runs(dummy_components, image_path, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _run(dummy_components, image_path, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out" / "reconstruction.json").exists()


def test_auto_polar_uses_the_models_probe_and_another_probe_estimates_again(
    dummy_components, image_path, tmp_path, monkeypatch
):
    out, cfg = tmp_path / "out", dataclasses.replace(SMALL, iterations=1)
    dim = dummy_components.cc_projection.clip_dim
    rng = np.random.default_rng(0)
    probes = [elevation.fit_probe_to_features(rng.normal(size=(20, dim)), rng.uniform(20, 160, 20)) for _ in "ab"]
    monkeypatch.setattr(image_to_3d.elevation, "estimate_polar", lambda *a, **k: pytest.fail("consistency used"))
    first = _run(dummy_components, image_path, out, polar_deg="auto", cfg=cfg, elevation_probe=probes[0])
    assert first.record["camera"]["polar_estimator"] == "probe"
    assert first.polar_deg == pytest.approx(
        elevation.estimate_polar_by_probe(dummy_components, probes[0], first_input(out))
    )
    assert json.loads((out / "polar_estimate.json").read_text())["estimator"] == "probe"
    other = _run(dummy_components, image_path, out, polar_deg="auto", cfg=cfg, elevation_probe=probes[1])
    assert other.polar_deg != first.polar_deg  # not the stored estimate of the other probe


def first_input(out):
    """The prepared input view `reconstruct_image` wrote, as the RGBA array it estimated from."""
    return np.asarray(Image.open(out / "input.png"))
