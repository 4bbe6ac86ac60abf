import numpy as np
import pytest

from zero1to3.dataset import data


def test_composite_on_white_known_values():
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 255, 0], [0, 0, 0, 128]]], np.uint8)
    out = data.composite_on_white(rgba)
    np.testing.assert_allclose(out[0, 0], [1, 0, 0])  # opaque red stays red
    np.testing.assert_allclose(out[0, 1], [1, 1, 1])  # transparent becomes white, whatever its RGB
    np.testing.assert_allclose(out[0, 2], [1 - 128 / 255] * 3, atol=1e-6)  # half-transparent black is grey


def test_missing_manifest_and_object_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="run stage 01"):
        data.read_manifest(tmp_path)
    with pytest.raises(FileNotFoundError, match="urdf_001"):
        data.load_object(tmp_path, "urdf_001")


def fake_set(num_objects=3, num_views=4, size=8):
    from zero1to3 import cameras

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(num_objects, num_views, size, size, 4), dtype=np.uint8)
    centers = cameras.sample_camera_positions(num_objects * num_views, rng).reshape(num_objects, num_views, 3)
    return data.MultiViewSet([f"o{i}" for i in range(num_objects)], rgba, centers)


def test_pairs_are_two_distinct_views_of_one_object_with_their_relative_pose():
    import torch

    from zero1to3 import cameras

    views = fake_set()
    batch = data.sample_pairs(views, 512, torch.Generator().manual_seed(0))
    assert batch.input_images.shape == (512, 3, 8, 8) and batch.pose.shape == (512, 4)
    assert torch.all(batch.input_view != batch.target_view)
    o, s, t = batch.object_index.numpy(), batch.input_view.numpy(), batch.target_view.numpy()
    expected = cameras.relative_pose(views.camera_centers[o, s], views.camera_centers[o, t])
    np.testing.assert_allclose(batch.pose.numpy(), expected)
    np.testing.assert_allclose(batch.target_images[0].numpy(), data.to_model_images(views.rgba[o[0], t[0]]).numpy())
    # Every ordered pair of distinct views is drawn, about equally often (4 * 3 = 12 pairs).
    counts = np.bincount(s * 4 + t, minlength=16)[[i * 4 + j for i in range(4) for j in range(4) if i != j]]
    assert counts.min() > 512 / 12 * 0.5


def test_pairs_are_deterministic_for_a_generator_seed():
    import torch

    a = data.sample_pairs(fake_set(), 16, torch.Generator().manual_seed(3))
    b = data.sample_pairs(fake_set(), 16, torch.Generator().manual_seed(3))
    assert torch.equal(a.pose, b.pose) and torch.equal(a.target_images, b.target_images)


def test_model_images_are_on_white_in_minus_one_to_one():
    rgba = np.zeros((2, 4, 4, 4), np.uint8)  # fully transparent
    out = data.to_model_images(rgba)
    assert out.shape == (2, 3, 4, 4)
    assert torch_all_close(out, 1.0)


def torch_all_close(t, value):
    return bool((t - value).abs().max() < 1e-6)


def test_pairs_need_two_views():
    import torch

    with pytest.raises(ValueError, match="at least 2 views"):
        data.sample_pairs(fake_set(num_views=1), 4, torch.Generator())
