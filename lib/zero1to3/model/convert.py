"""Convert an original zero123 Lightning `.ckpt` into our diffusers/transformers components
(docs/conventions.md#checkpoint-conversion).

The released checkpoints are single files whose `state_dict` holds the LDM-named UNet
(`model.diffusion_model.`, EMA copy under `model_ema.` with the dots removed), the VAE
(`first_stage_model.`), OpenAI CLIP (`cond_stage_model.model.visual.`) and `cc_projection.*`
(docs/conventions.md#checkpoint-conversion). Every group's architecture is inferred from the tensor shapes, so a tiny
checkpoint
converts as well as the 105k one; what shapes cannot tell (head counts, GroupNorm groups, the
latent size) is passed in. diffusers renames the UNet and the VAE (its single-file converters,
`convert_ldm_unet_checkpoint` / `convert_ldm_vae_checkpoint`, on the loaded state dict: no config
file, no download); our own table renames OpenAI CLIP's visual tower and `cc_projection`, which no
library converts (docs/conventions.md#checkpoint-conversion). Every group is then loaded strictly: a missing,
unexpected or mis-shaped
key is an error naming the LDM key and the file (diffusers' converters skip what they do not know).

The file is read safely by default (`checkpoints.load_lightning`): Lightning 1.x pickles its callback
classes into the checkpoint, and those load as inert placeholders without `pytorch_lightning`.

Why one long module: the whole key map of the official checkpoint sits together, so one test checks it against
the official code end to end.
"""

from __future__ import annotations

import logging
import math
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
from torch import Tensor, nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from zero1to3.core import checkpoints
from zero1to3.model.components import Zero123Components
from zero1to3.model.conditioning import CCProjection
from zero1to3.model.encoders import SD_VAE_SCALING_FACTOR, clip_image_processor
from zero1to3.model.schedulers import BETA_END, BETA_START, NUM_TRAIN_TIMESTEPS, make_noise_scheduler

logger = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
EMA_PREFIX = "model_ema."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.model.visual."


class CheckpointKeyError(ValueError):
    """A key of the checkpoint is missing, unexpected or of the wrong shape."""


def load_zero123_ckpt(
    path: str | Path,
    use_ema: bool | None = None,
    unet_num_heads: int = 8,
    clip_num_heads: int | None = None,
    norm_num_groups: int = 32,
    latent_size: int = 32,
    prediction_type: str = "epsilon",
) -> Zero123Components:
    """Our components from an original zero123 `.ckpt` (docs/conventions.md#checkpoint-conversion).

    Args:
        path: The Lightning checkpoint (a dict with 'state_dict').
        use_ema: Take the UNet from the EMA copy (`model_ema.`) as the original demo does; None: when present.
        unet_num_heads: Heads of every UNet transformer (zero123: 8; not visible in shapes).
        clip_num_heads: CLIP heads; None applies OpenAI's rule width // 64 (16 for ViT-L/14).
        norm_num_groups: GroupNorm groups of the UNet and VAE (32 in SD).
        latent_size: UNet `sample_size` (32 for the paper's 256 px images).
        prediction_type: Parameterisation the checkpoint was trained with (the paper: epsilon).

    The file is read by `checkpoints.load_lightning`: tensors and containers, with Lightning/omegaconf/`main`
    classes as inert placeholders; nothing in it runs, and anything else it names is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"expected the zero123 checkpoint at {path}; download e.g. 105000.ckpt and place it there"
        )
    try:
        ckpt = checkpoints.load_lightning(path)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{err}. If you trust the file, load it where the classes it names are installed, save its weights "
            "alone (torch.save({'state_dict': ...}, new_path)) and convert that file"
        ) from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        found = sorted(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a Lightning checkpoint: expected a dict with 'state_dict', found {found}")
    sd: dict[str, Tensor] = ckpt["state_dict"]
    _check_betas(sd, path)
    unet = _convert_unet(sd, path, use_ema, unet_num_heads, norm_num_groups, latent_size)
    vae = _convert_vae(sd, path, norm_num_groups, latent_size)
    encoder = _convert_clip(sd, path, clip_num_heads)
    weight = _get(sd, "cc_projection.weight", path)
    cc = CCProjection(int(weight.shape[0]))
    _load_strict(
        cc,
        {"projection.weight": weight, "projection.bias": _get(sd, "cc_projection.bias", path)},
        {"projection.weight": "cc_projection.weight", "projection.bias": "cc_projection.bias"},
        path,
    )
    if unet.config.cross_attention_dim != cc.clip_dim or encoder.config.projection_dim != cc.clip_dim:
        raise ValueError(
            f"{path}: cc_projection width {cc.clip_dim} must equal the CLIP projection dim "
            f"{encoder.config.projection_dim} and the UNet context dim {unet.config.cross_attention_dim}"
        )
    return Zero123Components(
        vae=vae.eval(),
        unet=unet.eval(),
        image_encoder=encoder.eval(),
        cc_projection=cc.eval(),
        scheduler=make_noise_scheduler(prediction_type),
        feature_extractor=clip_image_processor(int(encoder.config.image_size)),
        ddim_schedule="official",  # the released weights were made and shown with the official sampler
    )


def _get(sd: dict[str, Tensor], key: str, path: Path) -> Tensor:
    if key not in sd:
        raise CheckpointKeyError(f"missing key {key!r} in {path}")
    return sd[key]


def _indices(sd: dict[str, Tensor], prefix: str) -> list[int]:
    """Sorted distinct integers n of keys `prefix + n + '.'...`."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in sd if (m := pattern.match(k))})


def _has_prefix(sd: dict[str, Tensor], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in sd)


def _check_betas(sd: dict[str, Tensor], path: Path) -> None:
    """The stored DDPM buffers must be the schedule we rebuild (docs/conventions.md#model-and-noise-schedule); a
    different one is an error."""
    if "betas" not in sd:
        return
    ours = torch.linspace(BETA_START**0.5, BETA_END**0.5, NUM_TRAIN_TIMESTEPS, dtype=torch.float64) ** 2
    theirs = sd["betas"].double()
    if theirs.shape != ours.shape or not torch.allclose(theirs, ours, rtol=1e-4, atol=1e-7):
        raise ValueError(
            f"{path}: 'betas' is not the paper's scaled-linear schedule ({BETA_START}..{BETA_END}, "
            f"{NUM_TRAIN_TIMESTEPS} steps); this converter does not support other schedules"
        )


def _rename(key: str, pairs: list[tuple[str, str]]) -> str | None:
    """Apply the longest matching (source prefix, target prefix) pair; exact pairs have no trailing dot."""
    best = None
    for src, dst in pairs:
        if (key == src or (src.endswith(".") and key.startswith(src))) and (best is None or len(src) > len(best[0])):
            best = (src, dst)
    return None if best is None else best[1] + key[len(best[0]) :]


def _load_strict(
    model: nn.Module,
    converted: dict[str, Tensor],
    source: dict[str, str],
    path: Path,
    inverse: list[tuple[str, str]] | None = None,
) -> None:
    """Load `converted` into `model`, every key and shape checked; errors name the checkpoint key.

    `source` maps each converted key to the checkpoint key it came from; `inverse` (target -> source
    prefix pairs) names the checkpoint key a missing parameter would have come from.
    """
    expected = model.state_dict()
    for key in expected:
        if key not in converted:
            wanted = _rename(key, inverse or []) or key
            raise CheckpointKeyError(f"missing key {wanted!r} in {path} (needed for {type(model).__name__}.{key})")
        if converted[key].shape != expected[key].shape:
            raise CheckpointKeyError(
                f"key {source[key]!r} in {path} has shape {tuple(converted[key].shape)}; "
                f"{type(model).__name__}.{key} needs {tuple(expected[key].shape)}"
            )
    for key in converted:
        if key not in expected:
            raise CheckpointKeyError(
                f"unexpected key {source[key]!r} in {path} (maps to {key}, which {type(model).__name__} does not have)"
            )
    model.load_state_dict({k: v.float() for k, v in converted.items()}, strict=True)


def _convert_group(
    sd: dict[str, Tensor], prefix: str, pairs: list[tuple[str, str]], path: Path
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Rename every key under `prefix` with `pairs`; a key no pair covers is an error."""
    converted, source = {}, {}
    for key, value in sd.items():
        if not key.startswith(prefix):
            continue
        new = _rename(key[len(prefix) :], pairs)
        if new is None:
            raise CheckpointKeyError(f"unexpected key {key!r} in {path}: no diffusers counterpart")
        converted[new], source[new] = value, key
    return converted, source


def _diffusers_rename(
    convert: Callable[[dict[str, Tensor], Any], dict[str, Tensor]],
    sd: dict[str, Tensor],
    prefix: str,
    model: nn.Module,
    path: Path,
) -> tuple[dict[str, Tensor], dict[str, str], list[tuple[str, str]]]:
    """Rename the `prefix` group of `sd` with diffusers' converter `convert`, keeping track of every key.

    Returns the converted tensors; for each converted key, the checkpoint key it came from; and (diffusers
    prefix, checkpoint prefix) pairs learnt from those, which name the checkpoint key a missing tensor
    would have come from. A checkpoint key the converter did not use is an error (it drops unknown ones).
    """
    group = {k: v for k, v in sd.items() if k.startswith(prefix)}
    keys = list(group)
    # Provenance: the same conversion run on tags (key i -> a one-element tensor holding i, of the key's rank,
    # so diffusers' reshapes apply to it too) says which checkpoint key each converted key came from.
    tags = {k: torch.full((1,) * v.ndim, float(i), dtype=torch.float64) for i, (k, v) in enumerate(group.items())}
    try:
        converted, tagged = convert(group, model.config), convert(tags, model.config)
    except KeyError as err:  # diffusers reads a few keys by indexing (an upsampler's bias)
        raise CheckpointKeyError(f"missing key {prefix + str(err.args[0])!r} in {path}") from None
    source = {new: keys[int(tag.reshape(-1)[0])] for new, tag in tagged.items() if tag is not None}
    converted = {new: value for new, value in converted.items() if value is not None}  # None: read with .get
    unused = sorted(set(keys) - set(source.values()))
    if unused:
        raise CheckpointKeyError(f"unexpected key {unused[0]!r} in {path}: no diffusers counterpart")
    expected = model.state_dict()
    misplaced = sorted(source[k] for k in converted if k not in expected)
    if misplaced:  # renamed into a module the model does not have (before the EMA copy is looked up)
        raise CheckpointKeyError(f"unexpected key {misplaced[0]!r} in {path}: {type(model).__name__} has no such part")
    inverse = {}
    for new, old in source.items():  # "d.norm1.weight" <- "e.in_layers.0.weight" gives "d.norm1." <- "e.in_layers.0."
        new_parts, old_parts = new.split("."), old.split(".")
        while len(new_parts) > 1 and len(old_parts) > 1 and new_parts[-1] == old_parts[-1]:
            new_parts.pop(), old_parts.pop()
        inverse[".".join(new_parts) + "."] = ".".join(old_parts) + "."
    return converted, source, list(inverse.items())


def _convert_unet(
    sd: dict[str, Tensor], path: Path, use_ema: bool | None, num_heads: int, groups: int, latent_size: int
) -> UNet2DConditionModel:
    """UNet2DConditionModel from `model.diffusion_model.` (values from `model_ema.` when chosen)."""
    p = UNET_PREFIX
    conv_in = _get(sd, p + "input_blocks.0.0.weight", path)
    n_in, n_out = _indices(sd, p + "input_blocks."), _indices(sd, p + "output_blocks.")
    levels = 1 + sum(f"{p}input_blocks.{i}.0.op.weight" in sd for i in n_in)
    n = len(n_out) // levels - 1
    if n < 1 or len(n_out) != levels * (n + 1) or len(n_in) != levels * (n + 1):
        raise CheckpointKeyError(
            f"{path}: {len(n_in)} input_blocks and {len(n_out)} output_blocks do not form an "
            f"LDM UNet of {levels} levels"
        )
    channels = [
        int(_get(sd, f"{p}input_blocks.{1 + i * (n + 1)}.0.out_layers.3.weight", path).shape[0]) for i in range(levels)
    ]
    # A level has transformers when anything is stored under `.1.` of its first block (so that a missing
    # transformer weight is reported as missing rather than changing the inferred architecture).
    attn_down = [_has_prefix(sd, f"{p}input_blocks.{1 + i * (n + 1)}.1.") for i in range(levels)]
    attn_up = [_has_prefix(sd, f"{p}output_blocks.{k * (n + 1)}.1.") for k in range(levels)]  # upsamplers: last block
    mid_proj_in = _get(sd, p + "middle_block.1.proj_in.weight", path)
    context_dim = int(_get(sd, p + "middle_block.1.transformer_blocks.0.attn2.to_k.weight", path).shape[1])
    depth = len(_indices(sd, p + "middle_block.1.transformer_blocks."))
    unet = UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=int(conv_in.shape[1]),
        out_channels=int(_get(sd, p + "out.2.weight", path).shape[0]),
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn_down),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in attn_up),
        block_out_channels=tuple(channels),
        layers_per_block=n,
        cross_attention_dim=context_dim,
        attention_head_dim=num_heads,
        norm_num_groups=groups,
        transformer_layers_per_block=depth,
        use_linear_projection=mid_proj_in.ndim == 2,  # SD2-style linear proj_in; SD1/zero123 use 1x1 convs
        time_embedding_dim=int(_get(sd, p + "time_embed.0.weight", path).shape[0]),
    )
    converted, source, inverse = _diffusers_rename(convert_ldm_unet_checkpoint, sd, p, unet, path)
    has_ema = any(k.startswith(EMA_PREFIX + "diffusion_model") for k in sd)
    if use_ema and not has_ema:
        raise CheckpointKeyError(f"use_ema=True but {path} has no '{EMA_PREFIX}diffusion_model*' keys")
    if has_ema if use_ema is None else use_ema:
        # LitEma stores each parameter under its name with the dots removed (docs/conventions.md#checkpoint-conversion).
        for new, old in source.items():
            ema_key = EMA_PREFIX + ("diffusion_model." + old[len(p) :]).replace(".", "")
            converted[new] = _get(sd, ema_key, path)
            source[new] = ema_key
        logger.info("UNet weights taken from the EMA copy in %s", path)
    _load_strict(unet, converted, source, path, inverse=inverse)
    return unet


def _convert_vae(sd: dict[str, Tensor], path: Path, groups: int, latent_size: int) -> AutoencoderKL:
    """AutoencoderKL from `first_stage_model.` (docs/conventions.md#checkpoint-conversion)."""
    p = VAE_PREFIX
    conv_in = _get(sd, p + "encoder.conv_in.weight", path)
    levels = len(_indices(sd, p + "encoder.down."))
    lpb = len(_indices(sd, p + "encoder.down.0.block."))
    if levels < 1 or lpb < 1:
        raise CheckpointKeyError(f"{path}: found {levels} VAE encoder levels with {lpb} blocks; expected an LDM VAE")
    channels = tuple(int(_get(sd, f"{p}encoder.down.{i}.block.0.conv2.weight", path).shape[0]) for i in range(levels))
    vae = AutoencoderKL(
        in_channels=int(conv_in.shape[1]),
        out_channels=int(_get(sd, p + "decoder.conv_out.weight", path).shape[0]),
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=channels,
        layers_per_block=lpb,
        latent_channels=int(_get(sd, p + "post_quant_conv.weight", path).shape[0]),
        norm_num_groups=groups,
        sample_size=latent_size * 2 ** (levels - 1),
        scaling_factor=SD_VAE_SCALING_FACTOR,
        mid_block_add_attention=_has_prefix(sd, f"{p}encoder.mid.attn_1."),
    )
    # diffusers also squeezes the mid-block attention's 1x1 convs to the Linear layers AutoencoderKL has.
    converted, source, inverse = _diffusers_rename(convert_ldm_vae_checkpoint, sd, p, vae, path)
    _load_strict(vae, converted, source, path, inverse=inverse)
    return vae


def _convert_clip(sd: dict[str, Tensor], path: Path, num_heads: int | None) -> CLIPVisionModelWithProjection:
    """CLIPVisionModelWithProjection from OpenAI CLIP's `visual.` weights (docs/conventions.md#checkpoint-conversion);
    text leftovers are dropped."""
    p = CLIP_PREFIX
    conv1 = _get(sd, p + "conv1.weight", path)
    width, patch = int(conv1.shape[0]), int(conv1.shape[-1])
    tokens = int(_get(sd, p + "positional_embedding", path).shape[0]) - 1  # minus the class token
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise CheckpointKeyError(f"{path}: {p}positional_embedding has {tokens} patch positions, not a square")
    heads = width // 64 if num_heads is None else num_heads  # OpenAI CLIP: heads = width // 64
    if heads < 1 or width % heads:
        raise ValueError(f"CLIP width {width} in {path} is not divisible by num_heads={heads}; pass `clip_num_heads`")
    layers = len(_indices(sd, p + "transformer.resblocks."))
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=width,
            patch_size=patch,
            image_size=grid * patch,
            num_channels=int(conv1.shape[1]),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
            intermediate_size=int(_get(sd, p + "transformer.resblocks.0.mlp.c_fc.weight", path).shape[0]),
            projection_dim=int(_get(sd, p + "proj", path).shape[1]),
        )
    )
    emb = "vision_model.embeddings."
    pairs = [
        ("class_embedding", emb + "class_embedding"),
        ("conv1.weight", emb + "patch_embedding.weight"),
        ("positional_embedding", emb + "position_embedding.weight"),
        ("proj", "visual_projection.weight"),
        ("ln_pre.", "vision_model.pre_layrnorm."),
        ("ln_post.", "vision_model.post_layernorm."),
    ]
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        pairs += [
            (src + a, dst + b)
            for a, b in (
                ("ln_1.", "layer_norm1."),
                ("ln_2.", "layer_norm2."),
                ("mlp.c_fc.", "mlp.fc1."),
                ("mlp.c_proj.", "mlp.fc2."),
                ("attn.out_proj.", "self_attn.out_proj."),
                ("attn.in_proj_weight", "self_attn.qkv.weight"),
                ("attn.in_proj_bias", "self_attn.qkv.bias"),
            )
        ]
    converted, source = _convert_group(sd, p, pairs, path)
    converted["visual_projection.weight"] = converted["visual_projection.weight"].T  # x @ proj -> Linear: W = proj^T
    for key in [k for k in converted if ".self_attn.qkv." in k]:  # in_proj stacks [q; k; v] along dim 0
        value, origin = converted.pop(key), source.pop(key)
        for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0), strict=True):
            converted[key.replace("qkv", name)], source[key.replace("qkv", name)] = part, origin
    inverse = [(d, p + s) for s, d in pairs]
    inverse += [(d.replace("qkv", n), p + s) for s, d in pairs if "qkv" in d for n in ("q_proj", "k_proj", "v_proj")]
    _load_strict(encoder, converted, source, path, inverse=inverse)
    return encoder
