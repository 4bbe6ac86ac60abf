"""The Zero-1-to-3 components: one class holding them, saved and loaded strictly (ecosystem classes throughout).

Components are the diffusers / transformers classes the checkpoints circulate in: `AutoencoderKL`,
`UNet2DConditionModel` (8 input channels), `CLIPVisionModelWithProjection` (+ `CLIPImageProcessor`),
a `DDPMScheduler`, and the paper's `conditioning.CCProjection`. On disk they use the diffusers folder
layout of the converted zero123 checkpoints: `unet/ vae/ image_encoder/ feature_extractor/ scheduler/
cc_projection/` and a top-level `model_index.json`. The original single-file `.ckpt` is converted by
`zero1to3.model.convert.load_zero123_ckpt`.

The builders (`builders`) make the same layout from sizes; `schedulers` and `encoders` hold the schedules and the
encode/decode helpers that the components are used with.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from zero1to3.config import TinyModelSizes  # noqa: F401  (the sizes' config; `models.TinyModelSizes` for callers)
from zero1to3.core import progress
from zero1to3.core.files import atomic_folder, write_json_atomic
from zero1to3.model import encoders, schedulers
from zero1to3.model.conditioning import POSE_DIM, CCProjection

logger = logging.getLogger(__name__)


FORMAT_NAME = "Zero123Components"


# Folder layouts we read: ours, and the converted zero123 folders (diffusers community pipeline).
ACCEPTED_CLASS_NAMES = (FORMAT_NAME, "Zero1to3StableDiffusionPipeline")


CC_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


# Byte alignment of the memory torch allocates on the CPU (c10's gAlignment). Loaded tensors are moved to
# memory of their own when they are not on it (`_in_own_memory`).
MEMORY_ALIGNMENT = 64


def expand_conv_in(unet: UNet2DConditionModel, concat_channels: int | None = None) -> UNet2DConditionModel:
    """Widen `conv_in` for the concatenated input-view latent, new channels zero (paper Sec. 3.2;
    docs/conventions.md#hybrid-conditioning-and-initialisation).

    Channels 0..C-1 keep the pretrained weights and take the noisy latent; the new channels C..2C-1
    take the input-view latent and start at zero, so the expanded UNet computes exactly what the
    original did until training moves them (docs/conventions.md#hybrid-conditioning-and-initialisation). Updates
    `unet.config.in_channels`.

    Args:
        unet: A UNet whose `in_channels` equals its `out_channels` (not yet expanded).
        concat_channels: Channels appended (default: `in_channels`, i.e. 4 -> 8).

    Returns:
        The same `unet`, modified in place.
    """
    old = unet.conv_in
    in_ch, out_ch = unet.config.in_channels, unet.config.out_channels
    if in_ch != out_ch:
        raise ValueError(f"`unet` has in_channels={in_ch} != out_channels={out_ch}: is conv_in already expanded?")
    extra = in_ch if concat_channels is None else concat_channels
    if extra < 1:
        raise ValueError(f"`concat_channels` must be >= 1, got {extra}")
    new = nn.Conv2d(in_ch + extra, old.out_channels, old.kernel_size, old.stride, old.padding)
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :in_ch] = old.weight  # (C_out, in_ch, k, k): the noisy-latent channels
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_ch + extra)
    return unet


@dataclasses.dataclass(frozen=True)
class Zero123Components:
    """Everything the Zero-1-to-3 model is made of; the denoising loop lives in `sample.py`."""

    vae: AutoencoderKL
    """Image <-> latent autoencoder (frozen in the paper)."""
    unet: UNet2DConditionModel
    """Denoiser with 2C input channels: noisy latent, then input-view latent."""
    image_encoder: CLIPVisionModelWithProjection
    """CLIP image encoder; its `image_embeds` feed `cc_projection` (frozen in the paper)."""
    cc_projection: CCProjection
    """Linear([clip | pose]) -> context (paper Sec. 3.2)."""
    scheduler: DDPMScheduler
    """Training noise schedule (its config also builds the DDIM sampler)."""
    feature_extractor: CLIPImageProcessor
    """CLIP preprocessing constants (input size, mean, std)."""
    ddim_schedule: str = "diffusers"
    """DDIM timesteps sampling visits unless told otherwise (`DDIM_SCHEDULES`): "official" for paper-scale and
    released weights, "diffusers" for the tiny study's models. Recorded in `model_index.json`."""

    def __post_init__(self) -> None:
        if self.ddim_schedule not in schedulers.DDIM_SCHEDULES:
            raise ValueError(f"`ddim_schedule` must be one of {schedulers.DDIM_SCHEDULES}, got {self.ddim_schedule!r}")

    def modules(self) -> dict[str, nn.Module]:
        """The four networks by name."""
        return {
            "vae": self.vae,
            "unet": self.unet,
            "image_encoder": self.image_encoder,
            "cc_projection": self.cc_projection,
        }

    def eval(self) -> Zero123Components:
        """Put every network in eval mode (in place) and return self, as `nn.Module.eval`."""
        for module in self.modules().values():
            module.eval()
        return self

    def to(self, device: str | torch.device) -> Zero123Components:
        """Move every network to `device` (in place) and return self."""
        for module in self.modules().values():
            module.to(device)
        return self

    def summary(self) -> dict[str, Any]:
        """Our config, recorded in `model_index.json`: sizes a reader needs without loading weights."""
        return {
            "image_size": int(self.image_encoder.config.image_size),
            "vae_sample_size": int(self.vae.config.sample_size),
            "latent_size": int(self.unet.config.sample_size),
            "latent_channels": int(self.unet.config.out_channels),
            "clip_dim": self.cc_projection.clip_dim,
            "pose_dim": self.cc_projection.config["pose_dim"],
            "prediction_type": self.scheduler.config.prediction_type,
            "vae_scaling_factor": float(self.vae.config.scaling_factor),
            "ddim_schedule": self.ddim_schedule,
            "num_parameters": {k: sum(p.numel() for p in m.parameters()) for k, m in self.modules().items()},
        }

    def save_pretrained(self, folder: str | Path) -> None:
        """Write the diffusers-format folder (safetensors weights, one subfolder per component), atomically.

        The folder is built beside `folder` and moved into place whole (`files.atomic_folder`): an error
        or a kill part-way leaves the previous folder as it was, never one that loads with two saves'
        weights mixed. The old folder is replaced, not merged: files a caller keeps in it (stage 02's
        `training.json`) must be written again after the save, or inside the same `atomic_folder` block.
        """
        with atomic_folder(folder) as tmp:
            self._write_folder(tmp)

    def _write_folder(self, folder: Path) -> None:
        """Write every component into the (new, empty) `folder`."""
        self.unet.save_pretrained(folder / "unet")
        self.vae.save_pretrained(folder / "vae")
        with progress.library_bars():  # text under papermill, not a frozen widget
            self.image_encoder.save_pretrained(folder / "image_encoder")
        self.feature_extractor.save_pretrained(folder / "feature_extractor")
        self.scheduler.save_pretrained(folder / "scheduler")
        cc_dir = folder / "cc_projection"
        cc_dir.mkdir(exist_ok=True)
        # Same config keys as the circulating converted folders (in_channel = D + 4, out_channel = D).
        cc = self.cc_projection
        write_json_atomic(
            cc_dir / "config.json",
            {"_class_name": "CCProjection", "in_channel": cc.clip_dim + 4, "out_channel": cc.clip_dim},
        )
        save_file({k: v.detach().cpu().contiguous() for k, v in cc.state_dict().items()}, str(cc_dir / CC_WEIGHTS[0]))
        write_json_atomic(
            folder / "model_index.json",
            {
                "_class_name": FORMAT_NAME,
                "_diffusers_version": diffusers.__version__,
                "vae": ["diffusers", "AutoencoderKL"],
                "unet": ["diffusers", "UNet2DConditionModel"],
                "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
                "feature_extractor": ["transformers", "CLIPImageProcessor"],
                "scheduler": ["diffusers", type(self.scheduler).__name__],
                "cc_projection": ["zero1to3", "CCProjection"],
                "zero1to3": self.summary() | {"clip_preprocessing": encoders.CLIP_PREPROCESSING_NOTE},
            },
        )

    @classmethod
    def load_pretrained(cls, folder: str | Path) -> Zero123Components:
        """Load a folder written by `save_pretrained` (or a converted zero123 diffusers folder), exactly.

        Strict: every tensor of every component must come from the folder's weights, with the shape its
        config gives. A missing, unexpected or mis-shaped tensor, an unreadable weights file, or a
        scheduler whose `prediction_type` disagrees with the one `model_index.json` records is a
        `ValueError` naming the files; nothing is randomly initialised. The DDIM schedule is the one
        `model_index.json` records; a folder without one is ours from before it was recorded ("diffusers", as
        its model was scored) or a converted zero123 folder ("official", the released weights' sampler).
        """
        folder = Path(folder)
        index_path = _require(folder, "model_index.json", "write it with Zero123Components.save_pretrained")
        index = json.loads(index_path.read_text())
        if index.get("_class_name") not in ACCEPTED_CLASS_NAMES:
            raise ValueError(
                f"{index_path} has _class_name={index.get('_class_name')!r}; accepted: {ACCEPTED_CLASS_NAMES}"
            )
        hint = "save the components with Zero123Components.save_pretrained"
        vae, unet, encoder, extractor, scheduler = _load_sd_parts(folder, hint)
        _check_prediction_type(index_path, index, folder / "scheduler" / "scheduler_config.json", scheduler)
        cc = _load_cc_projection(folder / "cc_projection", hint)
        dims = {
            "cc_projection out_channel": cc.clip_dim,
            "image_encoder projection_dim": encoder.config.projection_dim,
            "unet cross_attention_dim": unet.config.cross_attention_dim,
        }
        if len(set(dims.values())) > 1:
            raise ValueError(f"{folder}: the components disagree on the embedding width, must be equal: {dims}")
        default = "diffusers" if index["_class_name"] == FORMAT_NAME else "official"
        schedule = index.get("zero1to3", {}).get("ddim_schedule", default)
        if schedule not in schedulers.DDIM_SCHEDULES:
            raise ValueError(f"{index_path} records ddim_schedule={schedule!r}; accepted: {schedulers.DDIM_SCHEDULES}")
        return cls(
            vae=vae.eval(),
            unet=unet.eval(),
            image_encoder=encoder.eval(),
            cc_projection=cc.eval(),
            scheduler=scheduler,
            feature_extractor=extractor,
            ddim_schedule=schedule,
        )


def from_sd_image_variations(
    folder: str | Path, generator: torch.Generator | None = None, prediction_type: str | None = None
) -> Zero123Components:
    """Zero-1-to-3 components initialised from Stable Diffusion image-variations (paper Sec. 3.2,
    docs/conventions.md#hybrid-conditioning-and-initialisation).

    Reads a LOCAL diffusers folder (`unet/ vae/ image_encoder/ feature_extractor/ scheduler/`, as
    lambdalabs/sd-image-variations-diffusers), expands the UNet's `conv_in` with zero channels and adds a
    new `CCProjection` of width = the CLIP projection dim; it samples with the official DDIM schedule, as the
    paper's models. Nothing is downloaded; a missing file is an error.

    Args:
        folder: The sd-image-variations diffusers folder.
        generator: Draws the pose columns of the new `CCProjection`.
        prediction_type: Override of the scheduler's `prediction_type` (None keeps the folder's).
    """
    folder = Path(folder)
    vae, unet, encoder, extractor, scheduler = _load_sd_parts(
        folder, "place the sd-image-variations diffusers folder there"
    )
    if prediction_type is not None:
        if prediction_type not in schedulers.PREDICTION_TYPES:
            raise ValueError(f"`prediction_type` must be one of {schedulers.PREDICTION_TYPES}, got {prediction_type!r}")
        scheduler = DDPMScheduler.from_config(scheduler.config, prediction_type=prediction_type)
    clip_dim = int(encoder.config.projection_dim)
    if unet.config.cross_attention_dim != clip_dim:
        raise ValueError(
            f"{folder}: unet cross_attention_dim={unet.config.cross_attention_dim} must equal the "
            f"image_encoder projection_dim={clip_dim}"
        )
    cc = CCProjection(clip_dim, generator=generator)
    return Zero123Components(
        vae=vae.eval(),
        unet=expand_conv_in(unet).eval(),
        image_encoder=encoder.eval(),
        cc_projection=cc.eval(),
        scheduler=scheduler,
        feature_extractor=extractor,
        ddim_schedule="official",
    )


def _require(folder: Path, relative: str, hint: str, alternatives: tuple[str, ...] = ()) -> Path:
    """`folder / relative` (or the first existing alternative name beside it), else a FileNotFoundError."""
    for name in (relative, *alternatives):
        if (folder / name).is_file():
            return folder / name
    also = f" (or {', '.join(str(folder / a) for a in alternatives)})" if alternatives else ""
    raise FileNotFoundError(f"expected {folder / relative}{also}: {hint}")


def _load_weights(subfolder: Path, hint: str) -> tuple[Path, dict[str, Tensor]]:
    """The path and state dict of `subfolder`'s diffusers weight file (safetensors, or a legacy .bin)."""
    path = _require(subfolder, CC_WEIGHTS[0], hint, alternatives=CC_WEIGHTS[1:])
    try:
        if path.suffix == ".safetensors":
            return path, load_file(str(path))
        return path, torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        size = path.stat().st_size
        raise ValueError(f"cannot read the weights {path} ({size} bytes): {_first_sentence(err)}; {hint}") from err


def _load_cc_projection(subfolder: Path, hint: str) -> CCProjection:
    """The `CCProjection` of `subfolder` (config.json + weights), its tensors checked against the config."""
    config_path = _require(subfolder, "config.json", hint)
    config = json.loads(config_path.read_text())
    try:
        out_channel, in_channel = int(config["out_channel"]), int(config["in_channel"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{config_path} must give integer `in_channel` and `out_channel`, got {config}") from err
    if out_channel < 1 or in_channel != out_channel + POSE_DIM:
        raise ValueError(
            f"{config_path}: in_channel must be out_channel + {POSE_DIM} with out_channel >= 1, got {config}"
        )
    cc = CCProjection(out_channel)
    path, state = _load_weights(subfolder, hint)
    expected = {k: tuple(v.shape) for k, v in cc.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        raise ValueError(
            f"{path} does not fit {config_path}: it holds {got or 'no tensors'}, expected {expected} "
            f"(Linear(in_channel={in_channel} -> out_channel={out_channel}))"
        )
    cc.load_state_dict(state, strict=True)  # copies into cc's own (aligned) tensors
    return cc


def _check_prediction_type(
    index_path: Path, index: dict[str, Any], scheduler_path: Path, scheduler: DDPMScheduler
) -> None:
    """The scheduler must predict what the model was saved predicting (folders without our summary: no check)."""
    saved = index.get("zero1to3", {}).get("prediction_type")
    loaded = scheduler.config.prediction_type
    if saved is not None and saved != loaded:
        raise ValueError(
            f"{scheduler_path} has prediction_type={loaded!r} but {index_path} records that the model was saved "
            f"with prediction_type={saved!r}: the UNet predicts {saved!r}, so sampling with {loaded!r} would be "
            "wrong; restore the scheduler config (or save the model again)"
        )


def _first_sentence(err: BaseException) -> str:
    """The first sentence of an error message, on one line (library messages go on with advice we do not need)."""
    text = " ".join(str(err).split())
    return text.split(". ")[0] if text else type(err).__name__


def _load_checked(
    cls: type[AutoencoderKL | UNet2DConditionModel | CLIPVisionModelWithProjection],
    subfolder: Path,
    weights: Path,
    **kwargs: Any,
) -> Any:
    """`cls.from_pretrained(subfolder)`, strictly: a missing, unexpected or mis-shaped tensor is a ValueError.

    diffusers and transformers only log missing tensors (and randomly initialise them) and unexpected ones;
    their loading info lets us refuse them. The error names the config and the weights file.
    """
    config = subfolder / "config.json"
    try:
        with progress.library_bars():  # text under papermill, not a frozen widget
            model, info = cls.from_pretrained(subfolder, local_files_only=True, output_loading_info=True, **kwargs)
    except (ValueError, RuntimeError, OSError, SafetensorError) as err:  # diffusers raises on a mis-shaped tensor
        raise ValueError(f"cannot load {weights} with {config}: {_first_sentence(err)}") from err
    problems = []
    for label, keys in (
        ("missing from the weights", info.get("missing_keys")),
        ("in the weights but not in the model", info.get("unexpected_keys")),
    ):
        keys = sorted(keys or ())
        if keys:
            problems.append(f"{len(keys)} tensors {label} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})")
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        shapes = ", ".join(f"{key} {tuple(ckpt)} vs {tuple(want)}" for key, ckpt, want in mismatched[:3])
        problems.append(f"{len(mismatched)} tensors of another shape than the config gives ({shapes})")
    problems += [" ".join(str(m).split()) for m in info.get("error_msgs") or ()]
    if problems:
        raise ValueError(
            f"{weights} does not match {config}: {'; '.join(problems)}; the config and the weights must come "
            "from the same save (nothing is randomly initialised)"
        )
    return _in_own_memory(model)


def _in_own_memory(module: nn.Module) -> nn.Module:
    """`module` with every parameter and buffer on memory of its own, aligned as torch allocates it (in place).

    safetensors hands out tensors where they lie in the file's buffer, many of them not `MEMORY_ALIGNMENT`-byte
    aligned; some CPU kernels round differently on such memory (measured: the CLIP `visual_projection`
    Linear, 1.9e-7 in the image embedding, which 900 SJC iterations carry into another field). A model
    that reaches a worker pickled sits in fresh memory, so without this the same weights computed other
    bits in stage 04's workers than in the process that loaded them (`reconstruct`, stage 03). Copied once
    here, every caller computes the same bits.
    """
    with torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.data_ptr() % MEMORY_ALIGNMENT:
                tensor.data = tensor.data.clone(memory_format=torch.contiguous_format)
    return module


def _load_sd_parts(
    folder: Path, hint: str
) -> tuple[AutoencoderKL, UNet2DConditionModel, CLIPVisionModelWithProjection, CLIPImageProcessor, DDPMScheduler]:
    """Check every file first (so the error names it), then load the SD-layout components from `folder`, strictly."""
    weights = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
    found = {}
    for sub in ("unet", "vae"):
        _require(folder, f"{sub}/config.json", hint)
        found[sub] = _require(folder, f"{sub}/{weights[0]}", hint, alternatives=(f"{sub}/{weights[1]}",))
    _require(folder, "image_encoder/config.json", hint)
    found["image_encoder"] = _require(
        folder, "image_encoder/model.safetensors", hint, alternatives=("image_encoder/pytorch_model.bin",)
    )
    _require(folder, "feature_extractor/preprocessor_config.json", hint)
    _require(folder, "scheduler/scheduler_config.json", hint)
    vae = _load_checked(AutoencoderKL, folder / "vae", found["vae"])
    unet = _load_checked(UNet2DConditionModel, folder / "unet", found["unet"])
    # ignore_mismatched_sizes=True: transformers then lists mis-shaped tensors in the loading info (which
    # _load_checked turns into an error naming them) instead of raising a message that names no file.
    encoder = _load_checked(
        CLIPVisionModelWithProjection,
        folder / "image_encoder",
        found["image_encoder"],
        dtype=torch.float32,
        ignore_mismatched_sizes=True,
    )
    extractor = CLIPImageProcessor.from_pretrained(folder / "feature_extractor", local_files_only=True)
    # Whatever sampler the folder ships (PNDM, DDIM), training needs the DDPM forward process on its betas.
    scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(folder / "scheduler", local_files_only=True))
    return vae, unet, encoder, extractor, scheduler
