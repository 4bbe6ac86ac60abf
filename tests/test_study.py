import json

import numpy as np
import pytest
from PIL import Image

from zero1to3 import study


def _fake_render(root, object_id, num_views=4, size=8):
    """The files `data.load_object` reads: one RGBA PNG and one world-to-camera matrix per view."""
    from zero1to3 import cameras

    folder = root / "renders" / object_id
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"settings": {"num_views": num_views}}))
    rng = np.random.default_rng(len(object_id))
    for v in range(num_views):
        rgba = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
        Image.fromarray(rgba, "RGBA").save(folder / f"{v:03d}.png")
        centre = cameras.spherical_to_cartesian(np.radians(30.0 + 10 * v), np.radians(40.0 * v), 1.5 + 0.1 * v)
        np.save(folder / f"{v:03d}.npy", cameras.c2w_to_w2c(cameras.look_at(centre)))


@pytest.fixture
def data_dir(tmp_path):
    for oid in ("a", "bb"):
        _fake_render(tmp_path, oid)
    return tmp_path


def test_held_out_views_take_the_next_views_as_targets(data_dir):
    views = study.held_out_views(data_dir, ["a", "bb"], input_view=3, num_targets=2)
    np.testing.assert_array_equal(views.target_views, [0, 1])  # cyclic after view 3 of 4
    assert views.input_rgba.shape == (2, 8, 8, 4) and views.target_rgba.shape == (2, 2, 8, 8, 4)
    first = np.asarray(Image.open(data_dir / "renders" / "bb" / "000.png"))
    np.testing.assert_array_equal(views.target_rgba[1, 0], first)
    assert np.linalg.norm(views.input_centers[0]) == pytest.approx(1.8)
    with pytest.raises(ValueError, match=r"`num_targets` must be in 1\.\.3"):
        study.held_out_views(data_dir, ["a"], input_view=0, num_targets=4)
    with pytest.raises(ValueError, match=r"`input_view` must be in 0\.\.3"):
        study.held_out_views(data_dir, ["a"], input_view=4, num_targets=1)


def test_samples_round_trip_and_shape_check(data_dir, tmp_path):
    views = study.held_out_views(data_dir, ["a", "bb"], input_view=0, num_targets=3)
    pred = np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    path = study.save_samples(tmp_path / "s" / "test.npz", views, {"zero123": pred, "no_pose": pred[::-1]})
    back, predictions = study.load_samples(path)
    assert back.object_ids == ["a", "bb"] and back.input_view == 0
    np.testing.assert_array_equal(back.target_rgba, views.target_rgba)
    np.testing.assert_array_equal(back.target_centers, views.target_centers)
    assert sorted(predictions) == ["no_pose", "zero123"]
    np.testing.assert_array_equal(predictions["no_pose"], pred[::-1])
    assert not list(path.parent.glob("*.tmp*"))
    with pytest.raises(ValueError, match=r"predictions\['bad'\] must be uint8 \(2, 3, 8, 8, 3\)"):
        study.save_samples(tmp_path / "x.npz", views, {"bad": pred[:, :2]})
    with pytest.raises(FileNotFoundError, match="dvc repro sample"):
        study.load_samples(tmp_path / "missing.npz")


def test_mesh_paths_and_methods(tmp_path):
    assert study.mesh_path(tmp_path, "sjc_i", "duck") == tmp_path / "sjc_i" / "duck.ply"
    assert study.SJC_METHODS == {"sjc": True, "sjc_i": False}
    with pytest.raises(ValueError, match="unknown reconstruction method 'nerf'"):
        study.mesh_path(tmp_path, "nerf", "duck")


def test_gif_has_every_frame_upscaled(tmp_path):
    frames = np.zeros((3, 4, 5, 3))
    frames[1] = 1.0
    path = study.save_gif(frames, tmp_path / "orbit.gif", scale=2)
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (10, 8)
        gif.seek(1)
        assert np.asarray(gif.convert("RGB")).min() == 255
    with pytest.raises(ValueError, match=r"\(F, H, W, 3\)"):
        study.save_gif(frames[0], tmp_path / "bad.gif")


def test_mesh_snapshots_show_the_mesh_and_blank_for_none(tmp_path):
    import trimesh

    path = tmp_path / "box.ply"
    trimesh.creation.box(extents=(0.6, 0.6, 0.6)).export(path)
    shots = study.mesh_snapshots(path, [0.0, 90.0], size_px=64)
    assert shots.shape == (2, 64, 64, 3)
    assert (shots.min(axis=-1) < 0.9).mean() > 0.1  # the box covers a good part of the picture
    blank = study.mesh_snapshots(tmp_path / "missing.ply", [0.0], size_px=64)
    assert blank.min() > 0.99


def test_a_finished_reconstruction_is_reused_only_for_the_same_prior_and_input(tmp_path):
    """Issue 11, item 2: a retrained model (or another input view) reconstructs afresh; the same one is reused."""
    import dataclasses
    import math

    import torch
    import yaml

    from conftest import REPO
    from zero1to3 import cameras, models, sjc

    torch.set_num_threads(1)
    values = yaml.safe_load((REPO / "params.yaml").read_text())["sjc"]["config"]
    cfg = dataclasses.replace(sjc.SJCConfig.from_dict(values), iterations=2, resolution=12, samples_per_ray=12)
    center = cameras.spherical_to_cartesian(math.radians(70.0), math.radians(30.0), 1.7)
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (200, 40, 40, 255)
    mesh_file = study.mesh_path(tmp_path, "sjc", "box")
    settings = {"config": cfg.to_dict(), "seed": 0, "input_view": 0}
    prior = models.build_dummy_components(seed=0, prediction_type="v_prediction")

    def reconstruct(model, image):
        return study.reconstruct_object(model, True, image, center, cfg, 0, mesh_file, settings)

    first = reconstruct(prior, rgba)
    assert reconstruct(prior, rgba)["seconds"] == first["seconds"]  # reused: the same record
    retrained = models.build_dummy_components(seed=1, prediction_type="v_prediction")
    second = reconstruct(retrained, rgba)
    assert second["seconds"] != first["seconds"]
    assert second["identity"]["prior_fingerprint"] != first["identity"]["prior_fingerprint"]
    other_input = rgba.copy()
    other_input[8:24, 8:24, 0] = 40
    third = reconstruct(retrained, other_input)
    assert third["identity"]["input_sha256"] != second["identity"]["input_sha256"]
