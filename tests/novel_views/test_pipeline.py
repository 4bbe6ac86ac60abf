"""Tests for `zero1to3.pipeline`: the pipeline contract and the per-object batch generator (`sample`: test_cli)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import disc_rgba
from zero1to3 import cameras
from zero1to3.core import outputs
from zero1to3.dataset import data, objects
from zero1to3.model import builders, schedulers
from zero1to3.novel_views import pipeline, sample
from zero1to3.single_image import inputs

torch.set_num_threads(1)

STEPS = 3  # DDIM steps: enough to run every branch of the loop, fast on the dummy model


@pytest.fixture(scope="module")
def pipe(dummy_components) -> pipeline.Zero123Pipeline:
    return pipeline.Zero123Pipeline.from_components(dummy_components)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, pipe) -> str:
    folder = tmp_path_factory.mktemp("model") / "model"
    pipe.save_pretrained(folder)
    return str(folder)


def input_tensor(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def run(pipe, image=None, polar=(0.0, 30.0), azimuth=(90.0, -45.0), seed=0, **kw):
    image = input_tensor() if image is None else image
    args = dict(num_inference_steps=STEPS, guidance_scale=3.0, eta=1.0) | kw
    return pipe(image, list(polar), list(azimuth), generator=torch.Generator().manual_seed(seed), **args)


def test_output_is_deterministic_for_a_seed_and_well_formed(pipe):
    a, b, c = run(pipe), run(pipe), run(pipe, seed=1)
    assert a.array.shape == (2, 32, 32, 3) and a.array.dtype == np.float32
    assert 0.0 <= a.array.min() and a.array.max() <= 1.0
    assert len(a.images) == 2 and all(im.size == (32, 32) and im.mode == "RGB" for im in a.images)
    np.testing.assert_array_equal(np.asarray(a.images[1]), pipeline.to_uint8(a.array[1]))
    np.testing.assert_array_equal(a.array, b.array)
    assert not np.array_equal(a.array, c.array)
    assert torch.equal(a.poses, pipeline.pose_from_degrees([0.0, 30.0], [90.0, -45.0]))


def test_the_pipeline_is_sample_novel_views_and_scale_one_is_the_conditional_path(pipe):
    poses = pipeline.pose_from_degrees([0.0, 30.0], [90.0, -45.0])
    for scale in (1.0, 3.0):
        ours = run(pipe, guidance_scale=scale)
        loop = sample.sample_novel_views(
            pipe.components,
            input_tensor().expand(2, -1, -1, -1),
            poses,
            STEPS,
            scale,
            1.0,
            torch.Generator().manual_seed(0),
        )
        np.testing.assert_array_equal(ours.array, loop.images.permute(0, 2, 3, 1).numpy())
    plain = run(pipe, guidance_scale=1.0, eta=0.0)  # no unconditional pass at all
    mixed = run(pipe, guidance_scale=1.0 + 1e-7, eta=0.0)  # through the CFG mix, with weight ~1 on the conditional
    np.testing.assert_allclose(plain.array, mixed.array, atol=1e-4)
    assert not np.allclose(plain.array, run(pipe, guidance_scale=3.0, eta=0.0).array, atol=1e-3)


def test_the_schedule_reaches_the_denoising_loop(pipe):
    poses = pipeline.pose_from_degrees([0.0, 30.0], [90.0, -45.0])
    views = {}
    for schedule in schedulers.DDIM_SCHEDULES:
        views[schedule] = run(pipe, num_inference_steps=10, schedule=schedule).array
        loop = sample.sample_novel_views(
            pipe.components,
            input_tensor().expand(2, -1, -1, -1),
            poses,
            10,
            3.0,
            1.0,
            torch.Generator().manual_seed(0),
            schedule=schedule,
        )
        np.testing.assert_array_equal(views[schedule], loop.images.permute(0, 2, 3, 1).numpy())
    assert not np.array_equal(views["official"], views["diffusers"])
    np.testing.assert_array_equal(run(pipe, num_inference_steps=10).array, views["diffusers"])  # the tiny model's


def test_save_and_load_round_trip_gives_identical_images(pipe, saved_model):
    loaded = pipeline.Zero123Pipeline.from_pretrained(saved_model)
    assert all(not m.training for m in loaded.components.modules().values())
    np.testing.assert_array_equal(run(pipe).array, run(loaded).array)


def test_networks_are_put_in_eval_mode():
    components = builders.build_dummy_components(seed=1)
    components.unet.train()
    pipe = pipeline.Zero123Pipeline.from_components(components)
    assert pipe.components is components and not components.unet.training
    assert pipe.to("cpu") is pipe and pipe.device.type == "cpu" and pipe.image_size == 32


@pytest.mark.parametrize(
    ("cond_deg", "delta"),
    [
        ((60.0, 30.0, 1.8), (20.0, -45.0, 0.2)),
        ((100.0, 170.0, 2.0), (-30.0, 30.0, -0.1)),
        ((45.0, -90.0, 1.5), (0, 0, 0)),
    ],
    ids=["down-and-right", "across-the-azimuth-seam", "identity"],
)
def test_pose_from_degrees_is_cameras_relative_pose(cond_deg, delta):
    """The pose the pipeline builds from offsets equals the pose of two real cameras that far apart."""
    polar, azimuth, radius = cond_deg
    cond = cameras.spherical_to_cartesian(np.radians(polar), np.radians(azimuth), radius)
    target = cameras.spherical_to_cartesian(
        np.radians(polar + delta[0]), np.radians(azimuth + delta[1]), radius + delta[2]
    )
    expected = cameras.relative_pose(cond, target)
    ours = pipeline.pose_from_degrees(*delta)
    assert ours.shape == (1, 4)
    np.testing.assert_allclose(ours[0].numpy(), expected, atol=1e-5)


def test_a_batch_of_poses_for_one_image(pipe):
    out = run(pipe, polar=(0.0, 10.0, -20.0), azimuth=[90.0] * 3, radius=0.1)
    assert len(out.images) == 3 and out.array.shape == (3, 32, 32, 3)
    assert torch.equal(out.poses, pipeline.pose_from_degrees([0.0, 10.0, -20.0], 90.0, 0.1))
    single = pipe(input_tensor(), 30.0, 90.0, num_inference_steps=STEPS)  # scalars: one view
    assert single.array.shape == (1, 32, 32, 3)


def test_pil_and_path_inputs_are_framed_as_prepare_input(pipe, tmp_path):
    image = disc_rgba()
    image.save(tmp_path / "disc.png")
    prepared = inputs.prepare_input(image, 32, pipeline.DEFAULT_OBJECT_FRACTION).image
    tensor = torch.from_numpy(prepared).permute(2, 0, 1)[None] * 2 - 1
    expected = run(pipe, image=tensor).array
    np.testing.assert_array_equal(run(pipe, image=image).array, expected)
    np.testing.assert_array_equal(run(pipe, image=tmp_path / "disc.png").array, expected)
    assert not np.array_equal(run(pipe, image=image, object_fraction=0.9).array, expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_inference_steps": 0}, r"`num_inference_steps` must be in \[1, 1000\], got 0"),
        ({"guidance_scale": -1.0}, r"`guidance_scale` must be a finite number >= 1, got -1.0"),
        ({"guidance_scale": 0.0}, r"`guidance_scale` must be a finite number >= 1, got 0.0: 1 is the conditional"),
        ({"guidance_scale": 0.5}, r">= 1, got 0.5.*ignores the input image and the pose"),
        ({"eta": 2.0}, r"`eta` must be in \[0, 1\].*got 2.0"),
        ({"image": torch.zeros(1, 3, 16, 16)}, r"must be 32x32 for this model, got \(16, 16\)"),
        ({"image": torch.zeros(2, 3, 32, 32)}, r"must be one image.*got shape \(2, 3, 32, 32\)"),
        ({"image": torch.full((3, 32, 32), 2.0)}, r"values in \[-1, 1\], got \[2.000, 2.000\]"),
        ({"polar": [0.0, 10.0, 20.0], "azimuth": [0.0, 10.0]}, "same length.*polar_deg=3, azimuth_deg=2"),
        ({"polar": [], "azimuth": 0.0}, "`polar_deg` is an empty sequence"),
        ({"polar": 200.0, "azimuth": 0.0}, r"`polar_deg` must lie in \[-180, 180\]"),
        ({"radius": 1e6}, r"`radius` must lie in \[-0.7, 0.7\], got 1000000.0: .*1.5-2.2 \(the paper's renders\)"),
        ({"radius": [0.0, -0.71]}, r"`radius` must lie in \[-0.7, 0.7\], got \[0.0, -0.71\]"),
        ({"schedule": "ldm"}, r"`schedule`='ldm'.*must be one of \('official', 'diffusers'\)"),
        ({"schedule": "official", "num_inference_steps": 1}, r"`schedule`='official'.*num_steps >= 2"),
    ],
    ids=[
        "steps",
        "guidance",
        "guidance-0",
        "guidance-0.5",
        "eta",
        "image-size",
        "image-batch",
        "image-range",
        "pose-lengths",
        "empty",
        "polar",
        "radius",
        "radius-negative",
        "schedule",
        "schedule-steps",
    ],
)
def test_check_inputs_explains_what_is_wrong(pipe, kwargs, match):
    kw = {"image": input_tensor(), "polar": [0.0, 30.0], "azimuth": [90.0, -45.0]} | kwargs
    args = dict(num_inference_steps=STEPS, guidance_scale=3.0, eta=1.0) | {
        k: v for k, v in kw.items() if k not in ("image", "polar", "azimuth")
    }
    with pytest.raises(ValueError, match=match):
        pipe(kw["image"], kw["polar"], kw["azimuth"], **args)


def test_radius_offsets_up_to_the_paper_range_are_accepted(pipe):
    assert pipe.camera_radius == (1.5, 2.2) and pipe.radius_offset_limit == pytest.approx(0.7)
    pipe.check_inputs(input_tensor(), [0.0, 0.0], [0.0, 0.0], [0.7, -0.7], STEPS, 1.0, 1.0)


def test_the_radius_range_comes_from_the_model_folders_training_record(pipe, tmp_path):
    folder = tmp_path / "model"
    pipe.save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps({"camera_radius": [1.6, 1.9]}))  # as train.fit writes it
    loaded = pipeline.Zero123Pipeline.from_pretrained(folder)
    assert loaded.camera_radius == (1.6, 1.9) and loaded.radius_offset_limit == pytest.approx(0.3)
    loaded.check_inputs(input_tensor(), 0.0, 0.0, 0.3, STEPS, 3.0, 1.0)  # 1.9 - 1.6 = 0.2999...98: still accepted
    with pytest.raises(ValueError, match=r"`radius` must lie in \[-0.3, 0.3\], got 0.35.*distances 1.6-1.9") as err:
        loaded.check_inputs(input_tensor(), 0.0, 0.0, 0.35, STEPS, 3.0, 1.0)
    assert str(folder / "training.json") in str(err.value)
    (folder / "training.json").write_text(json.dumps({"config": {}}))  # a record without the key: the paper's range
    assert pipeline.Zero123Pipeline.from_pretrained(folder).camera_radius == (1.5, 2.2)
    (folder / "training.json").write_text(json.dumps({"camera_radius": [2.2, 1.5]}))
    with pytest.raises(
        ValueError, match=r"camera_radius \(camera_radius in .*training.json\) must be .*0 < min <= max"
    ):
        pipeline.Zero123Pipeline.from_pretrained(folder)


def views(num_objects: int = 3, num_targets: int = 3):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(num_objects, 32, 32, 4), dtype=np.uint8)
    centers = cameras.sample_camera_positions(num_objects * (num_targets + 1), rng).reshape(num_objects, -1, 3)
    return rgba, centers[:, 0], centers[:, 1:]


def generate(components, rgba, inp, tgt, ids, **kw):
    args = dict(num_steps=STEPS, guidance_scale=3.0, eta=1.0, seed=0, progress=False) | kw
    return pipeline.generate_views(components, rgba, inp, tgt, ids, **args)


def test_generate_views_per_object_independent_of_the_other_objects(pipe):
    rgba, inp, tgt = views()
    ids = ["a", "b", "c"]
    full = generate(pipe.components, rgba, inp, tgt, ids, objects_per_call=1)
    assert full.shape == (3, 3, 32, 32, 3) and full.dtype == np.uint8
    order = [2, 0]  # a subset, in another order
    part = generate(pipe.components, rgba[order], inp[order], tgt[order], [ids[i] for i in order], objects_per_call=1)
    np.testing.assert_array_equal(part, full[order])
    batched = generate(pipe.components, rgba[order], inp[order], tgt[order], [ids[i] for i in order])
    assert np.abs(batched.astype(int) - full[order]).max() <= 1  # one call for both: rounding only
    assert not np.array_equal(generate(pipe.components, rgba, inp, tgt, ids, seed=1), full)


def test_generate_views_one_object_per_call_is_each_objects_own_sampling(pipe):
    rgba, inp, tgt = views()
    ids = ["a", "b", "c"]
    alone = generate(pipe.components, rgba, inp, tgt, ids, objects_per_call=1)
    for i, object_id in enumerate(ids):  # the loop before batching: one call, one generator per object
        poses = cameras.relative_pose(np.broadcast_to(inp[i], tgt[i].shape), tgt[i])
        images = data.to_model_images(rgba[i])[None].expand(len(poses), -1, -1, -1)
        generator = torch.Generator().manual_seed(objects.object_seed_value(0, object_id))
        own = sample.sample_novel_views(pipe.components, images, torch.from_numpy(poses), STEPS, 3.0, 1.0, generator)
        np.testing.assert_array_equal(alone[i], pipeline.to_uint8(own.images.permute(0, 2, 3, 1).numpy()))


def test_generate_views_batched_objects_match_each_sampled_alone(pipe):
    rgba, inp, tgt = views(num_objects=5)
    ids = list("abcde")
    alone = generate(pipe.components, rgba, inp, tgt, ids, objects_per_call=1).astype(int)
    for per_call in (2, 5):  # a last, smaller call; all in one
        batched = generate(pipe.components, rgba, inp, tgt, ids, objects_per_call=per_call).astype(int)
        assert np.abs(batched - alone).max() <= 1  # the UNet's batch may round differently, not the noise
    with pytest.raises(ValueError, match="objects_per_call"):
        generate(pipe.components, rgba, inp, tgt, ids, objects_per_call=0)


def test_pose_shift_is_the_rolled_poses_in_target_order(pipe):
    rgba, inp, tgt = views(num_objects=1, num_targets=3)
    plain = generate(pipe.components, rgba, inp, tgt, ["a"])
    shifted = generate(pipe.components, rgba, inp, tgt, ["a"], pose_shift=1)
    assert not np.array_equal(shifted, plain)
    # Same as asking for the rolled targets directly: view j is generated with view j-1's pose.
    np.testing.assert_array_equal(shifted, generate(pipe.components, rgba, inp, np.roll(tgt, 1, axis=1), ["a"]))
    np.testing.assert_array_equal(generate(pipe.components, rgba, inp, tgt, ["a"], pose_shift=3), plain)


def test_generate_views_checks_counts_and_size(pipe):
    rgba, inp, tgt = views()
    with pytest.raises(ValueError, match="2 object_ids, 3 input images"):
        generate(pipe.components, rgba, inp, tgt, ["a", "b"])
    with pytest.raises(ValueError, match="must be 32x32"):
        generate(pipe.components, np.zeros((3, 16, 16, 4), np.uint8), inp, tgt, ["a", "b", "c"])


def test_camera_sliders_outside_a_frontend_draw_once_and_make_no_widget(pipe, monkeypatch, capsys) -> None:
    import matplotlib.pyplot as plt

    rgba = np.zeros((2, 32, 32, 4), np.uint8)
    rgba[:, 8:24, 8:24] = [200, 40, 40, 255]
    views = outputs.HeldOutViews(
        ["a", "b"], 0, np.array([1]), rgba, rgba[:, None], np.zeros((2, 3)), np.zeros((2, 1, 3))
    )
    drawn = []
    monkeypatch.setattr(plt, "show", lambda: drawn.append(plt.gcf()))
    assert pipeline.camera_sliders(pipe, views, STEPS, 3.0, 1.0, seed=0) is None  # papermill's case: no widget
    assert len(drawn) == 1 and "JupyterLab" in capsys.readouterr().out
