"""Tests for `zero1to3.models`: conv_in expansion, building, saving/loading and the latent helpers."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import PNDMScheduler, UNet2DConditionModel
from safetensors.torch import save_file

from conftest import REPO
from zero1to3.config import TinyModelSizes
from zero1to3.model import builders, encoders, schedulers
from zero1to3.model.components import MEMORY_ALIGNMENT, Zero123Components, expand_conv_in, from_sd_image_variations
from zero1to3.model.conditioning import CCProjection

torch.set_num_threads(1)


@pytest.fixture
def components(dummy_components_epsilon: Zero123Components) -> Zero123Components:
    return dummy_components_epsilon  # conftest.py's shared epsilon-prediction dummy model, under a short name


def _unet_call(unet: UNet2DConditionModel, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randn(x.shape[0], 1, unet.config.cross_attention_dim, generator=g)
    t = torch.tensor([10, 600][: x.shape[0]])
    with torch.no_grad():
        return unet(x, t, encoder_hidden_states=ctx).sample


def _unet4(components: Zero123Components, seed: int = 1) -> UNet2DConditionModel:
    """An SD-like 4-channel UNet of the dummy architecture."""
    torch.manual_seed(seed)
    return UNet2DConditionModel.from_config({**components.unet.config, "in_channels": 4}).eval()


def test_expanded_unet_with_zero_input_view_equals_original(components: Zero123Components) -> None:
    unet4 = _unet4(components)
    unet8 = expand_conv_in(copy.deepcopy(unet4))
    assert unet8.config.in_channels == 8 and unet8.conv_in.in_channels == 8
    assert torch.equal(unet8.conv_in.weight[:, 4:], torch.zeros_like(unet8.conv_in.weight[:, 4:]))
    assert torch.equal(unet8.conv_in.weight[:, :4], unet4.conv_in.weight)
    noisy = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = _unet_call(unet4, noisy)
    got = _unet_call(unet8, torch.cat([noisy, torch.zeros_like(noisy)], dim=1))  # noisy first, input view second
    assert torch.equal(got, expected)


def test_expand_conv_in_refuses_an_expanded_unet(components: Zero123Components) -> None:
    with pytest.raises(ValueError, match="in_channels=8 != out_channels=4"):
        expand_conv_in(copy.deepcopy(components.unet))


def test_dummy_components_are_deterministic_and_leave_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a, b, c = builders.build_dummy_components(0), builders.build_dummy_components(0), builders.build_dummy_components(1)
    assert torch.equal(state, torch.random.get_rng_state())
    for name in a.modules():
        sa, sb, sc = (x.modules()[name].state_dict() for x in (a, b, c))
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert not torch.equal(a.unet.conv_in.weight, c.unet.conv_in.weight)
    assert a.unet.config.in_channels == 8 and a.unet.config.out_channels == 4
    assert a.unet.config.sample_size == 8 and a.unet.config.cross_attention_dim == 32
    assert a.cc_projection.clip_dim == a.image_encoder.config.projection_dim == 32


def test_tiny_components_have_the_measured_sizes() -> None:
    # The study's default tiny sizes, as params.yaml gives them (not a copy that could drift).
    tiny = yaml.safe_load((REPO / "params.yaml").read_text())["finetune"]["tiny_model"]
    sizes = TinyModelSizes.from_dict(tiny)
    comp = builders.build_tiny_components(sizes, seed=0, prediction_type="v_prediction")
    assert sizes.latent_size == 16 and comp.unet.config.sample_size == 16
    assert comp.unet.config.down_block_types == ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    assert comp.unet.config.up_block_types == ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    assert comp.scheduler.config.prediction_type == "v_prediction"
    images = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        latents = encoders.encode_condition_latents(comp.vae, images)
        embeds = encoders.encode_clip_image(comp.image_encoder, comp.feature_extractor, images)
    assert latents.shape == (1, 4, 16, 16) and embeds.shape == (1, 128)
    bad = dict(sizes.__dict__, unet_block_out_channels=(32, 44, 64))  # 44: no group count divides it
    with pytest.raises(ValueError, match="norm_num_groups"):
        builders.build_tiny_components(TinyModelSizes(**bad), seed=0)


def test_noise_scheduler_prediction_type_and_schedule() -> None:
    for kind in schedulers.PREDICTION_TYPES:
        assert schedulers.make_noise_scheduler(kind).config.prediction_type == kind
    with pytest.raises(ValueError, match="prediction_type"):
        schedulers.make_noise_scheduler("x0")
    sched = schedulers.make_noise_scheduler()
    assert sched.alphas_cumprod[0].item() == pytest.approx(0.99915, abs=1e-6)  #
    # docs/conventions.md#model-and-noise-schedule
    assert sched.alphas_cumprod[-1].item() == pytest.approx(0.00466, abs=1e-5)
    assert not schedulers.make_ddim_scheduler(sched).config.set_alpha_to_one  # last step's abar_prev = abar_0


def official_ddim_timesteps(num_steps: int, num_train: int = 1000) -> list[int]:
    """The paper's sampler, as its code reads (docs/conventions.md#ddim-schedule): range(0, T, T // S) + 1, the largest
    dropped, from the top."""
    candidates = [t + 1 for t in range(0, num_train, num_train // num_steps)]
    return candidates[:-1][::-1]


def test_official_ddim_schedule_is_the_papers_sampler() -> None:
    assert (
        schedulers.ddim_timesteps(50, "official")[:2] == [961, 941]
        and len(schedulers.ddim_timesteps(50, "official")) == 49
    )
    assert schedulers.ddim_timesteps(10, "official")[0] == 801 and len(schedulers.ddim_timesteps(75, "official")) == 76
    for num_steps in range(2, 1001):
        assert schedulers.ddim_timesteps(num_steps, "official") == official_ddim_timesteps(num_steps), num_steps
    with pytest.raises(ValueError, match="num_steps >= 2"):  # one candidate, dropped: the official runs no step
        schedulers.ddim_timesteps(1, "official")


def test_diffusers_ddim_schedule_is_ddim_schedulers_own() -> None:
    ddim = schedulers.make_ddim_scheduler(schedulers.make_noise_scheduler())
    for num_steps in (1, 7, 10, 30, 50, 75, 200, 999):
        ddim.set_timesteps(num_steps)
        assert schedulers.ddim_timesteps(num_steps, "diffusers") == ddim.timesteps.tolist(), num_steps
    assert schedulers.ddim_timesteps(50, "diffusers")[0] == 981
    for bad, match in (({"schedule": "ldm"}, "schedule"), ({"num_steps": 0}, "num_steps")):
        with pytest.raises(ValueError, match=match):
            schedulers.ddim_timesteps(**({"num_steps": 50, "schedule": "official"} | bad))


def test_ddim_sampler_steps_by_the_stride_over_the_schedule() -> None:
    noise = schedulers.make_noise_scheduler()
    for schedule in schedulers.DDIM_SCHEDULES:
        sampler = schedulers.make_ddim_sampler(noise, 50, schedule, "cpu")
        assert sampler.timesteps.tolist() == schedulers.ddim_timesteps(50, schedule)
        assert sampler.num_inference_steps == 50  # step() goes from t to t - 1000 // 50


def test_the_ddim_schedule_is_recorded_with_the_model(components: Zero123Components, tmp_path: Path) -> None:
    assert components.ddim_schedule == "diffusers"  # the tiny study's models keep the schedule they were scored with
    official = dataclasses.replace(components, ddim_schedule="official")
    official.save_pretrained(tmp_path / "model")
    assert Zero123Components.load_pretrained(tmp_path / "model").ddim_schedule == "official"
    index_path = tmp_path / "model" / "model_index.json"
    index = json.loads(index_path.read_text())
    del index["zero1to3"]["ddim_schedule"]
    index_path.write_text(json.dumps(index))  # one of our folders from before the schedule was recorded
    assert Zero123Components.load_pretrained(tmp_path / "model").ddim_schedule == "diffusers"
    index_path.write_text(json.dumps(index | {"_class_name": "Zero1to3StableDiffusionPipeline"}))  # released weights
    assert Zero123Components.load_pretrained(tmp_path / "model").ddim_schedule == "official"
    index["zero1to3"]["ddim_schedule"] = "karras"
    index_path.write_text(json.dumps(index))
    with pytest.raises(ValueError, match="karras"):
        Zero123Components.load_pretrained(tmp_path / "model")
    with pytest.raises(ValueError, match="ddim_schedule"):
        dataclasses.replace(components, ddim_schedule="karras")


def test_paper_components_have_the_papers_architecture() -> None:
    comp = builders.build_paper_components(seed=0, device="meta")  # shapes only: no memory, no init cost
    counts = comp.summary()["num_parameters"]
    assert round(counts["unet"] / 1e6, 1) == 859.5  # SD-v1's UNet with 8 input channels
    assert round(counts["vae"] / 1e6, 1) == 83.7 and round(counts["image_encoder"] / 1e6, 1) == 304.0
    assert counts["cc_projection"] == 772 * 768 + 768
    assert tuple(comp.unet.conv_in.weight.shape) == (320, 8, 3, 3)  # the distinctive key,
    # docs/conventions.md#checkpoint-conversion
    assert comp.unet.config.sample_size == 32 and comp.vae.config.sample_size == 256
    assert comp.image_encoder.config.image_size == comp.feature_extractor.size["height"] == 224
    assert comp.ddim_schedule == "official" and comp.scheduler.config.prediction_type == "epsilon"


def test_saved_feature_extractor_squashes_as_the_official_embedder(components: Zero123Components) -> None:
    """The folder's processor frames an image as the model saw it: squashed to the encoder size, no centre crop.

    Only the resampling filter differs from the official path (antialiased, half-pixel centres); the bound is
    the one `encoders.CLIP_PREPROCESSING_NOTE` writes into `model_index.json`.
    """
    import numpy as np
    import torch.nn.functional as F

    extractor = encoders.clip_image_processor(32)
    assert extractor.do_center_crop is False and extractor.size["height"] == extractor.size["width"] == 32
    g = torch.Generator().manual_seed(0)
    for shape in ((256, 256), (48, 32)):  # square, and one a centre crop would cut
        image = F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=shape, mode="bilinear", align_corners=False)
        pixels = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # (H, W, 3)
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        official = (F.interpolate(x, size=(32, 32), mode="bicubic", align_corners=True, antialias=False) + 1) / 2
        mean, std = (torch.tensor(v)[None, :, None, None] for v in (extractor.image_mean, extractor.image_std))
        saved = extractor(images=[pixels], return_tensors="pt")["pixel_values"] * std + mean  # back to [0, 1]
        assert saved.shape == official.shape
        assert (saved - official).abs().max() < 0.15 and (saved - official).abs().mean() < 0.02, shape


def _outputs(comp: Zero123Components) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    with torch.no_grad():
        embeds = encoders.encode_clip_image(comp.image_encoder, comp.feature_extractor, images)
        context = comp.cc_projection(embeds, torch.randn(2, 4, generator=g))
        latents = encoders.encode_condition_latents(comp.vae, images)
        noisy = torch.randn(latents.shape, generator=g)
        eps = _unet_call(comp.unet, torch.cat([noisy, latents], dim=1))
        decoded = encoders.decode_latents(comp.vae, latents)
    return [embeds, context, latents, eps, decoded]


def test_save_load_round_trip_is_exact(components: Zero123Components, tmp_path: Path) -> None:
    components.save_pretrained(tmp_path / "model")
    for sub in ("unet", "vae", "image_encoder", "feature_extractor", "scheduler", "cc_projection"):
        assert (tmp_path / "model" / sub).is_dir()
    loaded = Zero123Components.load_pretrained(tmp_path / "model")
    for name, module in components.modules().items():
        ref, got = module.state_dict(), loaded.modules()[name].state_dict()
        assert ref.keys() == got.keys(), name
        assert all(torch.equal(ref[k], got[k]) for k in ref), name
    for a, b in zip(_outputs(components), _outputs(loaded), strict=True):
        assert torch.equal(a, b)
    public = [k for k in components.scheduler.config if not k.startswith("_")]
    assert {k: loaded.scheduler.config[k] for k in public} == {k: components.scheduler.config[k] for k in public}
    assert torch.equal(loaded.scheduler.alphas_cumprod, components.scheduler.alphas_cumprod)
    assert loaded.feature_extractor.image_mean == components.feature_extractor.image_mean
    assert loaded.summary() == components.summary()


def test_a_loaded_model_computes_what_its_pickled_copy_in_a_worker_computes(
    components: Zero123Components, tmp_path: Path
) -> None:
    """Stage 04's workers get the model pickled, in fresh memory; `reconstruct` computes with the loaded one.

    safetensors leaves most tensors off torch's alignment, where some CPU kernels round differently, so the
    two disagreed in the last bits (and SJC ended in another field). Loaded tensors must sit where a
    pickled copy's do: aligned, each in memory of its own, computing the same bits.
    """
    components.save_pretrained(tmp_path / "model")
    loaded = Zero123Components.load_pretrained(tmp_path / "model")
    unaligned = [
        f"{name}.{key}"
        for name, module in loaded.modules().items()
        for key, tensor in (*module.named_parameters(), *module.named_buffers())
        if tensor.data_ptr() % MEMORY_ALIGNMENT
    ]
    assert not unaligned, f"{len(unaligned)} loaded tensors are not {MEMORY_ALIGNMENT}-byte aligned"
    in_worker = pickle.loads(pickle.dumps(loaded))
    for a, b in zip(_outputs(loaded), _outputs(in_worker), strict=True):
        assert torch.equal(a, b)


def test_load_pretrained_names_a_missing_file(components: Zero123Components, tmp_path: Path) -> None:
    components.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "cc_projection" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="cc_projection/diffusion_pytorch_model.safetensors"):
        Zero123Components.load_pretrained(tmp_path / "model")


def _assert_same_weights(a: Zero123Components, b: Zero123Components) -> None:
    for name, module in a.modules().items():
        ref, got = module.state_dict(), b.modules()[name].state_dict()
        assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref), name


def test_a_failed_save_leaves_the_previous_model_whole(
    components: Zero123Components, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "model"
    components.save_pretrained(folder)  # model A
    other = builders.build_dummy_components(seed=1)  # model B: every tensor differs from A's
    assert not torch.equal(other.unet.conv_in.weight, components.unet.conv_in.weight)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    # B's UNet and VAE are written before the image encoder fails (in place, they would replace A's).
    monkeypatch.setattr(other.image_encoder, "save_pretrained", disk_full)
    with pytest.raises(OSError, match="No space left"):
        other.save_pretrained(folder)
    _assert_same_weights(components, Zero123Components.load_pretrained(folder))  # exactly A
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left beside it
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["unet", "vae", "image_encoder", "feature_extractor", "scheduler", "cc_projection", "model_index.json"]
    )
    monkeypatch.undo()
    other.save_pretrained(folder)  # a save that completes replaces the folder whole
    _assert_same_weights(other, Zero123Components.load_pretrained(folder))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def _edit_json(path: Path, **changes: object) -> None:
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


@pytest.mark.parametrize(
    ("component", "weights", "changes", "match"),
    [
        ("image_encoder", "model.safetensors", {"num_hidden_layers": 3}, "16 tensors missing from the weights"),
        ("image_encoder", "model.safetensors", {"num_hidden_layers": 1}, "16 tensors in the weights but not in"),
        ("image_encoder", "model.safetensors", {"projection_dim": 16}, r"another shape.*visual_projection.weight"),
        ("vae", "diffusion_pytorch_model.safetensors", {"layers_per_block": 2}, "tensors missing from the weights"),
        ("vae", "diffusion_pytorch_model.safetensors", {"block_out_channels": [64, 64, 64]}, "expected shape"),
        ("unet", "diffusion_pytorch_model.safetensors", {"transformer_layers_per_block": 2}, "tensors missing from"),
    ],
    ids=["clip-more-layers", "clip-fewer-layers", "clip-other-shape", "vae-more-layers", "vae-wider", "unet-more"],
)
def test_a_config_that_does_not_match_its_weights_is_an_error_naming_both_files(
    components: Zero123Components, tmp_path: Path, component: str, weights: str, changes: dict, match: str
) -> None:
    folder = tmp_path / "model"
    components.save_pretrained(folder)
    _edit_json(folder / component / "config.json", **changes)
    with pytest.raises(ValueError, match=match) as info:
        Zero123Components.load_pretrained(folder)
    message = str(info.value)
    assert str(folder / component / weights) in message and str(folder / component / "config.json") in message


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({}, r"\(0 bytes\)"),
        (
            {"projection.weight": torch.zeros(16, 20), "projection.bias": torch.zeros(16)},
            r"does not fit .*config.json: it holds .*\(16, 20\).*expected .*\(32, 36\)",
        ),
        ({"projection.weight": torch.zeros(32, 36)}, r"does not fit .*expected .*projection.bias"),
    ],
    ids=["zero-bytes", "wrong-size", "missing-bias"],
)
def test_bad_cc_projection_weights_name_the_file_and_what_was_expected(
    components: Zero123Components, tmp_path: Path, weights: dict, match: str
) -> None:
    folder = tmp_path / "model"
    components.save_pretrained(folder)
    path = folder / "cc_projection" / "diffusion_pytorch_model.safetensors"
    if weights:
        save_file(weights, str(path))
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError, match=match) as info:
        Zero123Components.load_pretrained(folder)
    assert str(path) in str(info.value)


def test_a_scheduler_edited_to_another_prediction_type_is_an_error(
    components: Zero123Components, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    components.save_pretrained(folder)  # epsilon
    scheduler_config = folder / "scheduler" / "scheduler_config.json"
    _edit_json(scheduler_config, prediction_type="v_prediction")
    with pytest.raises(ValueError, match="prediction_type='v_prediction'.*prediction_type='epsilon'") as info:
        Zero123Components.load_pretrained(folder)
    assert str(scheduler_config) in str(info.value) and str(folder / "model_index.json") in str(info.value)
    # A folder converted from elsewhere records no summary: its scheduler is taken as it is.
    index = json.loads((folder / "model_index.json").read_text())
    del index["zero1to3"]
    (folder / "model_index.json").write_text(json.dumps(index))
    assert Zero123Components.load_pretrained(folder).scheduler.config.prediction_type == "v_prediction"


@pytest.fixture
def sd_image_variations(components: Zero123Components, tmp_path: Path) -> tuple[Path, UNet2DConditionModel]:
    """A tiny folder in the sd-image-variations diffusers layout (4-channel UNet, PNDM scheduler)."""
    folder = tmp_path / "sd-image-variations"
    unet4 = _unet4(components)
    unet4.save_pretrained(folder / "unet")
    components.vae.save_pretrained(folder / "vae")
    components.image_encoder.save_pretrained(folder / "image_encoder")
    components.feature_extractor.save_pretrained(folder / "feature_extractor")
    PNDMScheduler.from_config(components.scheduler.config).save_pretrained(folder / "scheduler")
    return folder, unet4


def test_from_sd_image_variations(sd_image_variations: tuple[Path, UNet2DConditionModel]) -> None:
    folder, unet4 = sd_image_variations
    comp = from_sd_image_variations(folder, generator=torch.Generator().manual_seed(0))
    assert comp.unet.config.in_channels == 8
    weight = comp.unet.conv_in.weight
    assert torch.equal(weight[:, 4:], torch.zeros_like(weight[:, 4:]))
    assert torch.equal(weight[:, :4], unet4.conv_in.weight)
    assert isinstance(comp.cc_projection, CCProjection) and comp.cc_projection.clip_dim == 32
    assert torch.equal(comp.cc_projection.projection.weight[:, :32], torch.eye(32))
    assert comp.scheduler.config.beta_schedule == "scaled_linear"
    v = from_sd_image_variations(folder, prediction_type="v_prediction")
    assert v.scheduler.config.prediction_type == "v_prediction"


@pytest.mark.parametrize(
    "missing",
    [
        "unet/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "image_encoder/model.safetensors",
        "feature_extractor/preprocessor_config.json",
        "scheduler/scheduler_config.json",
    ],
)
def test_from_sd_image_variations_names_the_missing_file(
    sd_image_variations: tuple[Path, UNet2DConditionModel], missing: str
) -> None:
    folder, _ = sd_image_variations
    (folder / missing).unlink()
    with pytest.raises(FileNotFoundError, match=f"expected {folder / missing}.*sd-image-variations"):
        from_sd_image_variations(folder)


def test_from_sd_image_variations_missing_subfolder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="unet/config.json"):
        from_sd_image_variations(tmp_path / "nowhere")


def test_latent_helpers_follow_the_paper_scaling(components: Zero123Components) -> None:
    vae = components.vae
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        posterior = vae.encode(images).latent_dist
        cond = encoders.encode_condition_latents(vae, images)
        target = encoders.encode_target_latents(vae, images, torch.Generator().manual_seed(5))
        again = encoders.encode_target_latents(vae, images, torch.Generator().manual_seed(5))
        decoded = encoders.decode_latents(vae, target)
        reference = vae.decode(target / 0.18215).sample
    assert torch.equal(cond, posterior.mean)  # unscaled mean (docs/conventions.md#latent-scaling)
    noise = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(target, 0.18215 * (posterior.mean + posterior.std * noise))
    assert torch.equal(target, again)
    assert torch.equal(decoded, reference)


def test_encode_clip_image_normalises_like_clip(components: Zero123Components) -> None:
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mean = torch.tensor(encoders.CLIP_MEAN)[None, :, None, None]
    std = torch.tensor(encoders.CLIP_STD)[None, :, None, None]
    with torch.no_grad():
        got = encoders.encode_clip_image(components.image_encoder, components.feature_extractor, images)
        ref = components.image_encoder(pixel_values=((images + 1) / 2 - mean) / std).image_embeds
        resized = encoders.encode_clip_image(
            components.image_encoder, components.feature_extractor, torch.zeros(1, 3, 48, 48)
        )
    torch.testing.assert_close(got, ref)
    assert got.shape == (2, 32) and resized.shape == (1, 32)
