import pytest
import torch

from zero1to3 import sample

torch.set_num_threads(1)


def run(components, images, poses, seed=0, **kw):
    args = dict(num_steps=4, guidance_scale=3.0, eta=1.0) | kw
    return sample.sample_novel_views(components, images, poses, generator=torch.Generator().manual_seed(seed), **args)


def test_output_is_deterministic_for_a_seed_and_in_range(dummy_components, dummy_inputs):
    images, poses = dummy_inputs
    a, b = run(dummy_components, images, poses), run(dummy_components, images, poses)
    c = run(dummy_components, images, poses, seed=1)
    assert a.images.shape == (2, 3, 32, 32) and a.latents.shape == (2, 4, 8, 8)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)
    assert a.images.min() >= 0 and a.images.max() <= 1


def test_guidance_scale_one_is_the_conditional_prediction(dummy_components, dummy_inputs):
    images, poses = dummy_inputs
    plain = run(dummy_components, images, poses, guidance_scale=1.0, eta=0.0)
    mixed = run(dummy_components, images, poses, guidance_scale=1.0 + 1e-7, eta=0.0)  # goes through the CFG mix
    torch.testing.assert_close(plain.latents, mixed.latents, atol=1e-4, rtol=1e-4)
    guided = run(dummy_components, images, poses, guidance_scale=3.0, eta=0.0)
    assert not torch.allclose(plain.latents, guided.latents, atol=1e-4)


def test_pose_changes_the_view_unless_the_baseline_ignores_it(dummy_components, dummy_inputs):
    images, poses = dummy_inputs
    other = poses.flip(0)
    assert not torch.equal(run(dummy_components, images, poses).latents, run(dummy_components, images, other).latents)
    no_pose = run(dummy_components, images, poses, use_pose=False).latents
    assert torch.equal(no_pose, run(dummy_components, images, other, use_pose=False).latents)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"num_steps": 0}, "num_steps"), ({"guidance_scale": -1.0}, "guidance_scale"), ({"eta": 2.0}, "eta")],
)
def test_bad_arguments_name_the_argument(dummy_components, dummy_inputs, kwargs, match):
    images, poses = dummy_inputs
    with pytest.raises(ValueError, match=match):
        run(dummy_components, images, poses, **kwargs)


def test_mismatched_inputs_are_explained(dummy_components, dummy_inputs):
    images, poses = dummy_inputs
    with pytest.raises(ValueError, match="one pose per input image"):
        sample.sample_novel_views(dummy_components, images, poses[:1], 2, 3.0, 1.0, torch.Generator())
    small = torch.zeros(2, 3, 16, 16)
    with pytest.raises(ValueError, match="32x32"):
        sample.sample_novel_views(dummy_components, small, poses, 2, 3.0, 1.0, torch.Generator())
