"""Tests for `zero1to3.conditioning`: the paper's hybrid conditioning, its init and its CFG dropout."""

from __future__ import annotations

import math

import pytest
import torch

from zero1to3.model.conditioning import (
    POSE_DIM,
    CCProjection,
    Conditioning,
    build_conditioning,
    sample_dropout_masks,
    unconditional_conditioning,
    unet_input,
)

torch.set_num_threads(1)
D = 32  # test-scale CLIP width


def _inputs(batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, D, generator=g),
        torch.randn(batch, POSE_DIM, generator=g),
        torch.randn(batch, 4, 8, 8, generator=g),
    )


def test_cc_projection_init_passes_clip_through_at_zero_pose() -> None:
    cc = CCProjection(D, generator=torch.Generator().manual_seed(0))
    clip, _, _ = _inputs()
    assert torch.equal(cc.projection.bias, torch.zeros(D))
    assert torch.equal(cc.projection.weight[:, :D], torch.eye(D))
    with torch.no_grad():
        out = cc(clip, torch.zeros(4, POSE_DIM))
    torch.testing.assert_close(out, clip, rtol=0, atol=1e-6)


def test_cc_projection_pose_columns_use_default_linear_init() -> None:
    cc = CCProjection(768, generator=torch.Generator().manual_seed(0))
    pose_cols = cc.projection.weight.detach()[:, 768:]
    bound = 1.0 / math.sqrt(772)  # PyTorch's default Linear init, not zero
    # (docs/conventions.md#hybrid-conditioning-and-initialisation)
    assert pose_cols.abs().max() <= bound
    assert pose_cols.abs().max() > 0.9 * bound
    assert pose_cols.std().item() == pytest.approx(bound / math.sqrt(3.0), rel=0.05)  # std of U(-b, b)


def test_cc_projection_init_is_deterministic_for_a_generator() -> None:
    a = CCProjection(D, generator=torch.Generator().manual_seed(3))
    b = CCProjection(D, generator=torch.Generator().manual_seed(3))
    c = CCProjection(D, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.projection.weight, b.projection.weight)
    assert not torch.equal(a.projection.weight, c.projection.weight)


def test_cc_projection_config_round_trip() -> None:
    a = CCProjection(D)
    b = CCProjection.from_config(a.config)
    b.load_state_dict(a.state_dict())
    assert b.clip_dim == D and torch.equal(a.projection.weight, b.projection.weight)
    with pytest.raises(ValueError, match="pose_dim"):
        CCProjection.from_config({"clip_dim": D, "pose_dim": 3})
    with pytest.raises(ValueError, match="clip_dim"):
        CCProjection(0)


def test_dropout_rates_follow_the_paper_table() -> None:
    n, p = 100_000, 0.05
    drop_clip, drop_concat = sample_dropout_masks(n, torch.Generator().manual_seed(0), p=p)
    shares = {
        "clip only": (drop_clip & ~drop_concat).float().mean().item(),
        "both": (drop_clip & drop_concat).float().mean().item(),
        "concat only": (~drop_clip & drop_concat).float().mean().item(),
        "neither": (~drop_clip & ~drop_concat).float().mean().item(),
    }
    # sd of a 5 % share over 100k draws is 0.0007; 0.004 is about 6 sd.
    for case in ("clip only", "both", "concat only"):
        assert shares[case] == pytest.approx(p, abs=0.004), (case, shares)
    assert shares["neither"] == pytest.approx(1 - 3 * p, abs=0.006), shares


def test_dropout_follows_thresholds_of_r() -> None:
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    drop_clip, drop_concat = sample_dropout_masks(1000, g1, p=0.1)
    r = torch.rand(1000, generator=g2)  # the same draws
    assert torch.equal(drop_clip, r < 0.2)
    assert torch.equal(drop_concat, (r >= 0.1) & (r < 0.3))


def test_dropout_is_deterministic_for_a_seed() -> None:
    a = sample_dropout_masks(512, torch.Generator().manual_seed(1))
    b = sample_dropout_masks(512, torch.Generator().manual_seed(1))
    c = sample_dropout_masks(512, torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not (torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]))


@pytest.mark.parametrize("p", [-0.1, 0.34])
def test_dropout_rejects_bad_probability(p: float) -> None:
    with pytest.raises(ValueError, match="`p`"):
        sample_dropout_masks(4, torch.Generator(), p=p)


def test_build_conditioning_shapes_and_values() -> None:
    cc = CCProjection(D, generator=torch.Generator().manual_seed(0))
    clip, pose, latents = _inputs()
    with torch.no_grad():
        cond = build_conditioning(clip, pose, latents, cc)
        expected = cc.projection(torch.cat([clip, pose], dim=1))  # [clip | pose] order
    assert isinstance(cond, Conditioning)
    assert cond.encoder_hidden_states.shape == (4, 1, D)
    torch.testing.assert_close(cond.encoder_hidden_states[:, 0], expected, rtol=0, atol=0)
    assert torch.equal(cond.concat_latents, latents)


def test_dropout_zeroes_clip_before_projection_and_keeps_pose() -> None:
    cc = CCProjection(D, generator=torch.Generator().manual_seed(0))
    clip, pose, latents = _inputs()
    drop_clip = torch.tensor([True, False, True, False])
    drop_concat = torch.tensor([False, False, True, True])
    with torch.no_grad():
        cond = build_conditioning(clip, pose, latents, cc, drop_clip=drop_clip, drop_concat=drop_concat)
        null = cc(torch.zeros(4, D), pose)  # training null: W[:, D:] T + b, not zero
        full = cc(clip, pose)
    ctx = cond.encoder_hidden_states[:, 0]
    torch.testing.assert_close(ctx[drop_clip], null[drop_clip], rtol=0, atol=0)
    torch.testing.assert_close(ctx[~drop_clip], full[~drop_clip], rtol=0, atol=0)
    assert ctx[drop_clip].abs().sum() > 0  # the pose still passes through
    assert torch.equal(cond.concat_latents[drop_concat], torch.zeros(2, 4, 8, 8))
    assert torch.equal(cond.concat_latents[~drop_concat], latents[~drop_concat])


def test_pose_free_baseline_is_zero_pose() -> None:
    cc = CCProjection(D, generator=torch.Generator().manual_seed(0))
    clip, pose, latents = _inputs()
    with torch.no_grad():
        baseline = build_conditioning(clip, pose, latents, cc, use_pose=False)
        zero_pose = build_conditioning(clip, torch.zeros_like(pose), latents, cc)
    assert torch.equal(baseline.encoder_hidden_states, zero_pose.encoder_hidden_states)
    # With the identity init and zero pose the context is the CLIP embedding itself.
    torch.testing.assert_close(baseline.encoder_hidden_states[:, 0], clip, rtol=0, atol=1e-6)


def test_unconditional_conditioning_is_zero_context_and_zero_concat() -> None:
    cc = CCProjection(D)
    clip, pose, latents = _inputs()
    with torch.no_grad():
        uncond = unconditional_conditioning(build_conditioning(clip, pose, latents, cc))
    assert torch.equal(uncond.encoder_hidden_states, torch.zeros(4, 1, D))
    assert torch.equal(uncond.concat_latents, torch.zeros(4, 4, 8, 8))


def test_unet_input_puts_noisy_latent_first() -> None:
    noisy, concat = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    x = unet_input(noisy, concat)
    assert x.shape == (2, 8, 8, 8)
    assert torch.equal(x[:, :4], noisy) and torch.equal(x[:, 4:], concat)
