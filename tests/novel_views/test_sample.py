import dataclasses

import pytest
import torch

from zero1to3.model import conditioning, encoders
from zero1to3.novel_views import sample

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


def official_ddim(components, images, poses, num_steps, guidance_scale, eta, generator):
    """The paper's DDIM sampler written from its formulas (docs/conventions.md#ddim-schedule), independently of
    diffusers' scheduler.

    Timesteps tau = range(0, T, c) + 1 (c = T // S) with the largest dropped; abar_prev of tau_i is abar of
    tau_{i-1}, and abar_0 for the first; sigma = eta sqrt((1 - abar_prev) / (1 - abar)) sqrt(1 - abar / abar_prev).
    """
    abar = components.scheduler.alphas_cumprod
    tau = [t + 1 for t in range(0, 1000, 1000 // num_steps)]
    alphas, alphas_prev = abar[tau], torch.cat([abar[:1], abar[tau[:-1]]])
    with torch.no_grad():
        clip = encoders.encode_clip_image(components.image_encoder, components.feature_extractor, images)
        concat = encoders.encode_condition_latents(components.vae, images)
        cond = conditioning.build_conditioning(clip, poses, concat, components.cc_projection)
        x = torch.randn(concat.shape, generator=generator)
        for i in reversed(range(len(tau) - 1)):  # the largest candidate is never visited
            a, a_prev = alphas[i], alphas_prev[i]
            sigma = eta * ((1 - a_prev) / (1 - a)).sqrt() * (1 - a / a_prev).sqrt()
            eps = conditioning.guided_prediction(components.unet, x, torch.tensor(tau[i]), cond, guidance_scale)
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
            x = (
                a_prev.sqrt() * x0
                + (1 - a_prev - sigma**2).sqrt() * eps
                + sigma * torch.randn(x.shape, generator=generator)
            )
    return x


@pytest.mark.parametrize(("num_steps", "eta", "guidance_scale"), [(10, 0.0, 3.0), (7, 1.0, 1.0), (48, 1.0, 3.0)])
def test_official_schedule_samples_as_the_papers_sampler(
    dummy_components_epsilon, dummy_inputs, num_steps, eta, guidance_scale
):
    images, poses = dummy_inputs
    ours = run(
        dummy_components_epsilon,
        images,
        poses,
        num_steps=num_steps,
        eta=eta,
        guidance_scale=guidance_scale,
        schedule="official",
    )
    ref = official_ddim(
        dummy_components_epsilon, images, poses, num_steps, guidance_scale, eta, torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(ours.latents, ref, rtol=1e-4, atol=1e-5)


def test_the_models_schedule_is_the_default_and_a_bad_one_is_named(dummy_components_epsilon, dummy_inputs):
    images, poses = dummy_inputs
    official = dataclasses.replace(dummy_components_epsilon, ddim_schedule="official")
    a = run(official, images, poses, num_steps=10)
    assert torch.equal(
        a.latents, run(dummy_components_epsilon, images, poses, num_steps=10, schedule="official").latents
    )
    assert not torch.equal(a.latents, run(official, images, poses, num_steps=10, schedule="diffusers").latents)
    with pytest.raises(ValueError, match="schedule"):
        run(official, images, poses, schedule="ldm")
    with pytest.raises(ValueError, match="num_steps >= 2"):
        run(official, images, poses, num_steps=1)


def test_noise_streams_draw_each_groups_rows_from_its_own_generator():
    shape = torch.Size((6, 4, 2, 2))
    whole = sample.noise_streams(torch.Generator().manual_seed(3), 6)(shape)
    torch.testing.assert_close(whole, torch.randn(shape, generator=torch.Generator().manual_seed(3)), rtol=0, atol=0)
    one = sample.noise_streams([torch.Generator().manual_seed(3)], 6)(shape)
    torch.testing.assert_close(one, whole, rtol=0, atol=0)
    draw = sample.noise_streams([torch.Generator().manual_seed(s) for s in (5, 3, 7)], 6)
    first, second = draw(shape), draw(shape)
    for k, s in enumerate((5, 3, 7)):  # group k: what its generator alone draws for its 2 rows, twice in a row
        alone = sample.noise_streams(torch.Generator().manual_seed(s), 2)
        torch.testing.assert_close(first[2 * k : 2 * k + 2], alone(torch.Size((2, 4, 2, 2))), rtol=0, atol=0)
        torch.testing.assert_close(second[2 * k : 2 * k + 2], alone(torch.Size((2, 4, 2, 2))), rtol=0, atol=0)
    with pytest.raises(ValueError, match="6 rows does not split into 4 equal groups"):
        sample.noise_streams([torch.Generator()] * 4, 6)
