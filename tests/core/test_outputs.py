import json

import numpy as np
import pytest
from PIL import Image

from zero1to3.core import outputs
from zero1to3.dataset import data


def _fake_render(root, object_id, num_views=4, size=8):
    """The files `data.load_object` reads: one RGBA PNG and one world-to-camera matrix per view."""
    from zero1to3 import cameras

    folder = root / "renders" / object_id
    folder.mkdir(parents=True)
    polar, azimuth, radius = (
        [30.0 + 10 * v for v in range(num_views)],
        [40.0 * v for v in range(num_views)],
        [1.5 + 0.1 * v for v in range(num_views)],
    )
    meta = {"settings": {"num_views": num_views}, "polar_deg": polar, "azimuth_deg": azimuth, "radius": radius}
    (folder / "meta.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(len(object_id))
    for v in range(num_views):
        rgba = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
        Image.fromarray(rgba, "RGBA").save(folder / f"{v:03d}.png")
        centre = cameras.spherical_to_cartesian(np.radians(polar[v]), np.radians(azimuth[v]), radius[v])
        np.save(folder / f"{v:03d}.npy", cameras.c2w_to_w2c(cameras.look_at(centre)))


@pytest.fixture
def data_dir(tmp_path):
    for oid in ("a", "bb"):
        _fake_render(tmp_path, oid)
    return tmp_path


def test_held_out_views_take_the_next_views_as_targets(data_dir):
    views = outputs.held_out_views(data_dir, ["a", "bb"], input_view=3, num_targets=2)
    np.testing.assert_array_equal(views.target_views, [0, 1])  # cyclic after view 3 of 4
    assert views.input_rgba.shape == (2, 8, 8, 4) and views.target_rgba.shape == (2, 2, 8, 8, 4)
    first = np.asarray(Image.open(data_dir / "renders" / "bb" / "000.png"))
    np.testing.assert_array_equal(views.target_rgba[1, 0], first)
    assert np.linalg.norm(views.input_centers[0]) == pytest.approx(1.8)
    with pytest.raises(ValueError, match=r"`num_targets` must be in 1\.\.3"):
        outputs.held_out_views(data_dir, ["a"], input_view=0, num_targets=4)
    with pytest.raises(ValueError, match=r"`input_view` must be in 0\.\.3"):
        outputs.held_out_views(data_dir, ["a"], input_view=4, num_targets=1)


def test_samples_round_trip_and_shape_check(data_dir, tmp_path):
    views = outputs.held_out_views(data_dir, ["a", "bb"], input_view=0, num_targets=3)
    pred = np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    path = outputs.save_samples(tmp_path / "s" / "test.npz", views, {"zero123": pred, "no_pose": pred[::-1]})
    back, predictions = outputs.load_samples(path)
    assert back.object_ids == ["a", "bb"] and back.input_view == 0
    np.testing.assert_array_equal(back.target_rgba, views.target_rgba)
    np.testing.assert_array_equal(back.target_centers, views.target_centers)
    assert sorted(predictions) == ["no_pose", "zero123"]
    np.testing.assert_array_equal(predictions["no_pose"], pred[::-1])
    assert not list(path.parent.glob("*.tmp*"))
    with pytest.raises(ValueError, match=r"predictions\['bad'\] must be uint8 \(2, 3, 8, 8, 3\)"):
        outputs.save_samples(tmp_path / "x.npz", views, {"bad": pred[:, :2]})
    with pytest.raises(FileNotFoundError, match="dvc repro sample"):
        outputs.load_samples(tmp_path / "missing.npz")


def test_mesh_paths_and_methods(tmp_path):
    assert outputs.mesh_path(tmp_path, "sjc_i", "duck") == tmp_path / "sjc_i" / "duck.ply"
    assert outputs.SJC_METHODS == {"sjc": True, "sjc_i": False}
    with pytest.raises(ValueError, match="unknown reconstruction method 'nerf'"):
        outputs.mesh_path(tmp_path, "nerf", "duck")


def test_views_on_white_and_reconstructed_ids(data_dir, tmp_path):
    views = outputs.held_out_views(data_dir, ["a", "bb"], input_view=0, num_targets=2)
    np.testing.assert_array_equal(views.input_rgb, data.composite_on_white(views.input_rgba))
    assert views.target_rgb.shape == (2, 2, 8, 8, 3) and 0.0 <= views.target_rgb.min() <= views.target_rgb.max() <= 1.0
    assert outputs.samples_path(tmp_path, "test") == tmp_path / "samples" / "test.npz"
    for method, oid in (("sjc", "duck"), ("sjc_i", "duck"), ("sjc_i", "box")):
        outputs.save_run_record(outputs.mesh_path(tmp_path, method, oid).with_suffix(".json"), {"seconds": 1.0})
    assert outputs.reconstructed_ids(tmp_path) == ["box", "duck"]
    assert outputs.load_run_record(tmp_path / "sjc" / "duck.json") == {"seconds": 1.0}
