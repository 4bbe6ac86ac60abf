"""The tiny-scale VAE: training lowers the reconstruction error and sets a unit-variance latent scale."""

import numpy as np
import pytest
import torch
from test_train import fake_views

from zero1to3.model import autoencoder, builders

torch.set_num_threads(1)


def test_vae_training_lowers_the_reconstruction_error_and_sets_the_scale():
    components = builders.build_dummy_components(seed=0)  # its own: fit_vae trains the VAE in place
    views = fake_views(num_objects=2, num_views=2)
    history = autoencoder.fit_vae(
        components.vae,
        views,
        steps=30,
        batch_size=4,
        learning_rate=2e-3,
        kl_weight=1e-4,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    first = np.mean([h["loss_recon"] for h in history[:5]])
    last = np.mean([h["loss_recon"] for h in history[-5:]])
    assert last < first
    table = autoencoder.encode_views(components.vae, views)
    scaled = components.vae.config.scaling_factor * (table.mean + table.std * torch.randn(table.mean.shape))
    assert 0.7 < scaled.std().item() < 1.3  # unit-variance diffusion targets


def test_reconstructions_are_images_in_unit_range(dummy_components_epsilon):
    out = autoencoder.vae_reconstructions(dummy_components_epsilon.vae, fake_views().rgba[:, 0])
    assert set(out) == {"view", "VAE reconstruction"}
    assert out["view"].shape == out["VAE reconstruction"].shape == (3, 32, 32, 3)
    assert out["VAE reconstruction"].min() >= 0 and out["VAE reconstruction"].max() <= 1


def test_colour_metrics_measure_the_chroma_the_round_trip_keeps(dummy_components_epsilon):
    from zero1to3.dataset import data
    from zero1to3.evaluation import pixel_metrics

    rgba = fake_views().rgba[:, 0]  # (3, 32, 32, 4) coloured objects
    vae = dummy_components_epsilon.vae
    scores = autoencoder.colour_metrics(vae, rgba, batch_size=2)  # batches must not change the answer
    recon = autoencoder.vae_reconstructions(vae, rgba)["VAE reconstruction"].astype(np.float64)
    truth = data.composite_on_white(rgba).astype(np.float64)
    mask = pixel_metrics.foreground_mask(truth)
    chroma = lambda x: (x.max(axis=-1) - x.min(axis=-1))[mask].mean()  # noqa: E731
    assert scores["chroma_kept"] == pytest.approx(chroma(recon) / chroma(truth), rel=1e-5)
    assert scores["fg_psnr"] == pytest.approx(pixel_metrics.foreground_psnr(recon, truth)["foreground_psnr"], abs=1e-4)


def test_a_vae_trained_from_the_same_inputs_is_reused_and_any_change_retrains(tmp_path, monkeypatch):
    views = fake_views(num_objects=2, num_views=2)
    args = dict(steps=3, batch_size=2, learning_rate=1e-3, kl_weight=1e-6, seed=0, cache_dir=tmp_path, progress=False)
    first = builders.build_dummy_components(seed=0).vae
    history, reused = autoencoder.fit_vae_cached(first, views, **args)
    assert not reused and len(history) == 3 and (tmp_path / autoencoder.VAE_CACHE_FILE).is_file()

    calls = []
    real_fit = autoencoder.fit_vae
    monkeypatch.setattr(autoencoder, "fit_vae", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    again = builders.build_dummy_components(seed=0).vae  # the same start
    history_again, reused = autoencoder.fit_vae_cached(again, views, **args)
    assert reused and not calls and history_again == history
    assert again.config.scaling_factor == first.config.scaling_factor
    for (name, a), (_, b) in zip(first.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert not any(p.requires_grad for p in again.parameters()) and not again.training

    for change in ({"steps": 4}, {"seed": 1}):  # other settings: trained afresh, the cache replaced
        _, reused = autoencoder.fit_vae_cached(builders.build_dummy_components(seed=0).vae, views, **args | change)
        assert not reused
    _, reused = autoencoder.fit_vae_cached(builders.build_dummy_components(seed=1).vae, views, **args | {"seed": 1})
    assert not reused  # another starting VAE
    other_views = fake_views(num_objects=3, num_views=2)
    _, reused = autoencoder.fit_vae_cached(
        builders.build_dummy_components(seed=1).vae, other_views, **args | {"seed": 1}
    )
    assert not reused and len(calls) == 4
