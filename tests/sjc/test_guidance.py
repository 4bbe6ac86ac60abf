import pytest
import torch

from zero1to3.sjc import guidance

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cond(dummy_components):
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return guidance.encode_input_view(dummy_components, image)


def test_surrogate_loss_gradient_is_the_score():
    g = torch.Generator().manual_seed(1)
    latents = torch.randn(2, 4, 8, 8, generator=g, requires_grad=True)
    grad = torch.randn(2, 4, 8, 8, generator=g)
    guidance.surrogate_loss(latents, grad).backward()
    torch.testing.assert_close(latents.grad, grad, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_epsilon_from_any_prediction_type(kind):
    g = torch.Generator().manual_seed(2)
    z0, eps = torch.randn(2, 2, 4, 5, 5, generator=g)
    alpha_bar = torch.tensor([0.9, 0.2])
    a, b = alpha_bar.sqrt()[:, None, None, None], (1 - alpha_bar).sqrt()[:, None, None, None]
    z_t = a * z0 + b * eps
    output = {"epsilon": eps, "v_prediction": a * eps - b * z0, "sample": z0}[kind]
    torch.testing.assert_close(guidance.epsilon_from_output(output, z_t, alpha_bar, kind), eps, atol=1e-5, rtol=1e-5)


def test_score_is_deterministic_and_shaped(dummy_components, cond):
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    poses = torch.randn(3, 4, generator=torch.Generator().manual_seed(4))

    def run(seed):
        return guidance.score(
            dummy_components, cond, latents, poses, 100.0, (10, 969), torch.Generator().manual_seed(seed)
        )

    a, b, c = run(0), run(0), run(1)
    assert a.grad.shape == latents.shape and a.timesteps.shape == (3,)
    assert torch.equal(a.grad, b.grad) and not torch.equal(a.grad, c.grad)
    assert torch.all((a.timesteps >= 10) & (a.timesteps <= 969))


def test_guidance_scale_one_is_the_conditional_score_and_baseline_ignores_pose(dummy_components, cond):
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    poses = torch.randn(2, 4, generator=torch.Generator().manual_seed(6))
    other = poses.flip(0)

    def run(p, s, use_pose=True):
        generator = torch.Generator().manual_seed(0)
        return guidance.score(dummy_components, cond, latents, p, s, (500, 500), generator, use_pose).grad

    assert not torch.equal(run(poses, 3.0), run(other, 3.0))
    assert torch.equal(run(poses, 3.0, False), run(other, 3.0, False))
    # At scale 0 the score is the unconditional one, which cannot depend on the pose.
    torch.testing.assert_close(run(poses, 0.0), run(other, 0.0))


def test_bad_timestep_range_is_explained(dummy_components, cond):
    with pytest.raises(ValueError, match="timestep_range"):
        guidance.score(
            dummy_components, cond, torch.zeros(1, 4, 8, 8), torch.zeros(1, 4), 3.0, (10, 1000), torch.Generator()
        )
