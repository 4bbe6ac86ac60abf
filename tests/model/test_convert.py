"""Tests for `zero1to3.convert`: a tiny zero123-style `.ckpt`, written by hand, converts exactly.

The checkpoint is written from tiny diffusers components with the *inverse* key mapping, written
here independently of the library's tables (diffusers -> LDM / OpenAI-CLIP names,
docs/conventions.md#checkpoint-conversion).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from test_checkpoints import _RunsCode, write_lightning_1x
from torch import Tensor

from zero1to3.config import TinyModelSizes
from zero1to3.model import builders, convert, encoders
from zero1to3.model.components import Zero123Components

torch.set_num_threads(1)

# Covers both upsampler positions: level 2 (lowest) has attention -> `output_blocks.N.2.conv`;
# level 1 has none -> `output_blocks.N.1.conv`. Level 0 has attention at full resolution.
SIZES = TinyModelSizes(
    image_size=32,
    latent_channels=4,
    vae_block_out_channels=(32, 32, 32),
    vae_layers_per_block=2,
    unet_block_out_channels=(32, 64, 64),
    unet_layers_per_block=2,
    unet_cross_attention_levels=(0, 2),
    unet_num_heads=2,
    clip_hidden_size=32,
    clip_num_layers=2,
    clip_num_heads=4,
    clip_patch_size=8,
    clip_projection_dim=32,
    norm_num_groups=32,
)
N = SIZES.unet_layers_per_block
LEVELS = len(SIZES.unet_block_out_channels)
RESNET = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
]


def ldm_unet_key(key: str, attn_up: list[bool]) -> str:
    """diffusers UNet2DConditionModel name -> LDM `openaimodel.UNetModel` name."""

    def resnet(rest: str) -> str:
        for new, old in RESNET:
            if rest.startswith(new + "."):
                return old + rest[len(new) :]
        return rest

    fixed = {
        "conv_in.": "input_blocks.0.0.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
    }
    for new, old in fixed.items():
        if key.startswith(new):
            return old + key[len(new) :]
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        block = 1 + i * (N + 1) + j
        return f"input_blocks.{block}.0.{resnet(rest)}" if kind == "resnets" else f"input_blocks.{block}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{(int(m[1]) + 1) * (N + 1)}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d)\.(.*)", key):
        return f"middle_block.{2 * int(m[1])}.{resnet(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        k, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        block = k * (N + 1) + j
        return f"output_blocks.{block}.0.{resnet(rest)}" if kind == "resnets" else f"output_blocks.{block}.1.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        k = int(m[1])
        return f"output_blocks.{k * (N + 1) + N}.{2 if attn_up[k] else 1}.conv.{m[2]}"
    raise AssertionError(f"test mapping does not cover {key}")


def ldm_vae_key(key: str, value: Tensor) -> tuple[str, Tensor]:
    """diffusers AutoencoderKL name -> LDM first-stage name (attention Linear -> 1x1 conv)."""
    levels = len(SIZES.vae_block_out_channels)
    key = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
    key = re.sub(r"mid_block\.resnets\.(\d)", lambda m: f"mid.block_{int(m[1]) + 1}", key)
    if ".mid_block.attentions.0." in key:
        key = key.replace("mid_block.attentions.0.", "mid.attn_1.")
        for new, old in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
            key = key.replace(f"attn_1.{new}.", f"attn_1.{old}.")
        if value.ndim == 2:
            value = value[:, :, None, None]
    key = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", key)
    key = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", key)
    key = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.", key)
    key = re.sub(
        r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample.", key
    )
    return key, value


def openai_clip_state(encoder: torch.nn.Module) -> dict[str, Tensor]:
    """CLIPVisionModelWithProjection -> OpenAI CLIP `visual.` names (in_proj stacks q, k, v; proj = W^T)."""
    sd = encoder.state_dict()
    emb, out = "vision_model.embeddings.", {}
    out["class_embedding"] = sd[emb + "class_embedding"]
    out["conv1.weight"] = sd[emb + "patch_embedding.weight"]
    out["positional_embedding"] = sd[emb + "position_embedding.weight"]
    out["proj"] = sd["visual_projection.weight"].T.contiguous()
    for name in ("weight", "bias"):
        out[f"ln_pre.{name}"] = sd[f"vision_model.pre_layrnorm.{name}"]
        out[f"ln_post.{name}"] = sd[f"vision_model.post_layernorm.{name}"]
    for i in range(SIZES.clip_num_layers):
        layer, res = f"vision_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for name in ("weight", "bias"):
            qkv = [sd[f"{layer}self_attn.{p}_proj.{name}"] for p in "qkv"]
            out[f"{res}attn.in_proj_{name}"] = torch.cat(qkv, dim=0)
            for new, old in (
                ("self_attn.out_proj", "attn.out_proj"),
                ("layer_norm1", "ln_1"),
                ("layer_norm2", "ln_2"),
                ("mlp.fc1", "mlp.c_fc"),
                ("mlp.fc2", "mlp.c_proj"),
            ):
                out[f"{res}{old}.{name}"] = sd[f"{layer}{new}.{name}"]
    return out


@pytest.fixture(scope="module")
def source() -> Zero123Components:
    return builders.build_tiny_components(SIZES, seed=0)


@pytest.fixture(scope="module")
def ckpt_state(source: Zero123Components) -> dict[str, Tensor]:
    """A zero123-style state dict: raw UNet = source + 1, EMA UNet = source (the one to prefer)."""
    attn_up = [t.startswith("CrossAttn") for t in source.unet.config.up_block_types]
    state: dict[str, Tensor] = {}
    for key, value in source.unet.state_dict().items():
        ldm = "diffusion_model." + ldm_unet_key(key, attn_up)
        state["model." + ldm] = value + 1.0
        state["model_ema." + ldm.replace(".", "")] = value.clone()
    state["model_ema.decay"], state["model_ema.num_updates"] = torch.tensor(0.9999), torch.tensor(10)
    for key, value in source.vae.state_dict().items():
        ldm, value = ldm_vae_key(key, value)
        state["first_stage_model." + ldm] = value.clone()
    for key, value in openai_clip_state(source.image_encoder).items():
        state["cond_stage_model.model.visual." + key] = value.clone()
    # Text leftovers of OpenAI CLIP stay in the released files (docs/conventions.md#checkpoint-conversion); they must
    # be ignored.
    state["cond_stage_model.model.token_embedding.weight"] = torch.zeros(10, 32)
    state["cond_stage_model.model.logit_scale"] = torch.tensor(4.6)
    state["cc_projection.weight"] = source.cc_projection.projection.weight.detach().clone() + 0.01
    state["cc_projection.bias"] = torch.full((32,), 0.5)
    state["betas"] = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64).float() ** 2
    return state


def _write(tmp_path: Path, state: dict[str, Tensor], name: str = "tiny.ckpt") -> Path:
    path = tmp_path / name
    torch.save({"state_dict": state, "global_step": 105000, "epoch": 3}, path)
    return path


def _convert(path: Path, **kwargs: object) -> Zero123Components:
    return convert.load_zero123_ckpt(path, unet_num_heads=2, clip_num_heads=4, latent_size=8, **kwargs)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_converted_checkpoint_matches_source(
    source: Zero123Components, ckpt_state: dict[str, Tensor], tmp_path: Path
) -> None:
    conv = _convert(_write(tmp_path, ckpt_state))
    assert conv.unet.config.block_out_channels == (32, 64, 64)
    assert conv.unet.config.down_block_types == source.unet.config.down_block_types
    assert conv.unet.config.up_block_types == source.unet.config.up_block_types
    assert conv.vae.config.block_out_channels == (32, 32, 32) and conv.image_encoder.config.image_size == 32
    assert _same(conv.unet, source.unet)  # the EMA copy was preferred
    assert _same(conv.vae, source.vae)
    assert _same(conv.image_encoder, source.image_encoder)
    assert torch.equal(conv.cc_projection.projection.bias, torch.full((32,), 0.5))
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    x = torch.randn(2, 8, 8, 8, generator=g)
    ctx = torch.randn(2, 1, 32, generator=g)
    t = torch.tensor([5, 900])
    with torch.no_grad():
        for comp in (conv, source):
            comp_out = (
                comp.unet(x, t, encoder_hidden_states=ctx).sample,
                comp.vae.decode(encoders.encode_condition_latents(comp.vae, images)).sample,
                encoders.encode_clip_image(comp.image_encoder, comp.feature_extractor, images),
            )
            if comp is conv:
                converted_out = comp_out
    for a, b in zip(converted_out, comp_out, strict=True):
        assert torch.equal(a, b)


def test_raw_weights_when_ema_is_not_wanted(
    source: Zero123Components, ckpt_state: dict[str, Tensor], tmp_path: Path
) -> None:
    conv = _convert(_write(tmp_path, ckpt_state), use_ema=False)
    assert torch.equal(conv.unet.conv_out.bias, source.unet.conv_out.bias + 1.0)
    no_ema = {k: v for k, v in ckpt_state.items() if not k.startswith("model_ema.")}
    assert _same(
        _convert(_write(tmp_path, no_ema, "raw.ckpt")).unet, _convert(_write(tmp_path, ckpt_state), use_ema=False).unet
    )
    with pytest.raises(convert.CheckpointKeyError, match="use_ema=True"):
        _convert(_write(tmp_path, no_ema, "raw.ckpt"), use_ema=True)


@pytest.mark.parametrize(
    "key",
    [
        "model.diffusion_model.out.2.bias",
        "model_ema.diffusion_modeloutput_blocks22convweight",
        "model.diffusion_model.output_blocks.5.1.conv.bias",
        "first_stage_model.decoder.up.0.block.2.conv1.weight",
        "first_stage_model.encoder.mid.attn_1.q.weight",
        "cond_stage_model.model.visual.transformer.resblocks.1.attn.in_proj_bias",
        "cond_stage_model.model.visual.proj",
        "cc_projection.bias",
        "model.diffusion_model.input_blocks.0.0.weight",
    ],
)
def test_a_missing_key_is_named(ckpt_state: dict[str, Tensor], tmp_path: Path, key: str) -> None:
    assert key in ckpt_state
    path = _write(tmp_path, {k: v for k, v in ckpt_state.items() if k != key})
    with pytest.raises(convert.CheckpointKeyError, match=re.escape(key)) as err:
        _convert(path)
    assert str(path) in str(err.value)


def test_unexpected_and_misshaped_keys_are_named(ckpt_state: dict[str, Tensor], tmp_path: Path) -> None:
    extra = "cond_stage_model.model.visual.transformer.resblocks.0.attn.extra_weight"
    with pytest.raises(convert.CheckpointKeyError, match=re.escape(extra)):
        _convert(_write(tmp_path, ckpt_state | {extra: torch.zeros(3)}))
    key = "first_stage_model.quant_conv.bias"
    with pytest.raises(convert.CheckpointKeyError, match=re.escape(key)):
        _convert(_write(tmp_path, ckpt_state | {key: torch.zeros(3)}))


def test_other_noise_schedules_and_non_checkpoints_are_refused(ckpt_state: dict[str, Tensor], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="betas"):
        _convert(_write(tmp_path, ckpt_state | {"betas": torch.linspace(1e-4, 0.02, 1000)}))
    torch.save({"weights": 1}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="state_dict"):
        _convert(tmp_path / "other.ckpt")
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        _convert(tmp_path / "missing.ckpt")


def test_a_lightning_1x_checkpoint_converts_without_lightning(
    source: Zero123Components, ckpt_state: dict[str, Tensor], tmp_path: Path
) -> None:
    """The released files pickle Lightning's callback classes; they load safely, as inert placeholders."""
    write_lightning_1x(tmp_path / "105000.ckpt", ckpt_state)
    conv = _convert(tmp_path / "105000.ckpt")
    assert _same(conv.unet, source.unet) and _same(conv.vae, source.vae)
    assert conv.ddim_schedule == "official"  # released weights sample with the paper's sampler


def test_a_planted_object_is_refused_and_never_runs(ckpt_state: dict[str, Tensor], tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write_lightning_1x(tmp_path / "evil.ckpt", ckpt_state, extra={"payload": _RunsCode(marker)})
    with pytest.raises(ValueError, match=r"io.open.*weights alone"):
        _convert(tmp_path / "evil.ckpt")
    assert not marker.exists()


@pytest.mark.parametrize(
    "key",
    [
        "model.diffusion_model.input_blocks.1.0.extra.weight",
        "model.diffusion_model.label_emb.0.weight",
        "first_stage_model.encoder.extra.weight",
    ],
)
def test_a_key_diffusers_would_drop_or_misplace_is_named(
    ckpt_state: dict[str, Tensor], tmp_path: Path, key: str
) -> None:
    with pytest.raises(convert.CheckpointKeyError, match=re.escape(key)):
        _convert(_write(tmp_path, ckpt_state | {key: torch.zeros(3)}))
