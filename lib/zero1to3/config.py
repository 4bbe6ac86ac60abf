"""Stage configurations and the schema of every stage's parameter group, checked before anything runs.

Values live in `params.yaml` (and, identically, in each notebook's `parameters` cell); these
classes only name and check them. Each config is a frozen dataclass with a docstring per field; it
is also a pydantic schema (`extra="forbid"`, strict types), so a typo, a wrong type or an
out-of-range value is an error naming the key, the value and the rule, both when the stage runner
builds a group's config (`stage_config`, before the notebook starts and before anything is written) and
when a notebook builds the config.

Why one long module: every stage's config and params schema, each field documented, in one place (one config
story); splitting them would scatter what `params.yaml` means.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, TypeVar

import pydantic
import pydantic.dataclasses
from pydantic import AfterValidator, ConfigDict, Field

_C = TypeVar("_C", bound="_FromDict")
_STRICT = ConfigDict(extra="forbid", strict=True)  # unknown keys and wrong types are errors, nothing is coerced

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
PolarDeg = Annotated[float, Field(ge=0, le=180)]
SetName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
"""A split or evaluation set (`train`, `test`, `zero_shot`, `gso`, ...): lowercase letters, digits and `_`, as it
becomes part of metric keys (`<set>/<method>/...`)."""


class ParamsError(ValueError):
    """A parameter group that does not fit its schema; the message names every bad `group.key`."""


class _FromDict:
    @classmethod
    def from_dict(cls: type[_C], values: dict[str, Any], where: str | None = None) -> _C:
        """Build the config from a mapping, checking keys, types and ranges.

        Raises:
            ParamsError: one line per problem, naming `where.key` (`where` defaults to the class name),
                the value and the rule; unknown keys list the valid ones.
        """
        where = where or cls.__name__
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ParamsError(f"{where}: unknown keys {unknown}; valid keys: {names}")
        missing = [n for n in names if n not in values]
        if missing:
            raise ParamsError(f"{where}: missing keys {missing}; all of {names} are required")
        try:
            return cls(**values)
        except pydantic.ValidationError as err:
            raise ParamsError(format_errors(err, where)) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serialisable; entries such as `RenderConfig.sources` become dicts)."""
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump()
    return [_plain(v) for v in value] if isinstance(value, list) else value


class ObjectSourceEntry(pydantic.BaseModel):
    """One entry of `render.sources`: a folder (or list file) of meshes feeding one split or evaluation set.

    Read by `render.config_sources` with `objects.folder_sources`; relative paths are relative to the repository
    root (where the stages run). Only `color_rgba` may be left out.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    path: str
    """A folder of meshes, or a text file listing mesh paths (one a line, relative to the file; `#` comments)."""
    glob: str
    """The folder's meshes, e.g. `*.glb` (Objaverse) or `*/meshes/model.obj` (Google Scanned Objects); "" for a
    list file (its lines name the meshes)."""
    up_axis: Literal["Y", "Z"]
    """The files' up axis: `Z` is kept, `Y` (glTF's convention) is turned to Z."""
    prefix: Annotated[str, Field(pattern=r"^[a-z0-9_]*$")]
    """Put before every object id (e.g. `gso_`) so that two sources cannot clash; "" for none."""
    split: SetName
    """`train`, `val`, `test`, `zero_shot`, or a named evaluation set of its own (e.g. `gso`)."""
    color_rgba: Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=4, max_length=4)] | None = None
    """A flat colour for untextured meshes (e.g. STL); left out or null keeps textures and vertex colours."""


class EverydayCounts(pydantic.BaseModel):
    """`render.everyday`: how many procedural everyday objects stage 01 writes and renders."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    train: NonNegativeInt
    """Added to the training split, beside the random URDF shapes."""
    test: NonNegativeInt
    """Held out as the named evaluation set `every_test` (never trained on)."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class RenderConfig(_FromDict):
    """Stage 01: render the multi-view dataset."""

    seed: int
    """Seeds the split and every object's cameras and lighting."""
    num_train: NonNegativeInt
    """Procedural objects in the training split."""
    num_val: NonNegativeInt
    """Procedural objects in the validation split."""
    num_test: NonNegativeInt
    """Procedural objects in the test split (held out)."""
    everyday: EverydayCounts
    """Procedural everyday objects (`everyday.py`: mugs, chairs, cars..., parts in their own colours, with a front and
    an up): how many to train on and to hold out."""
    zero_shot: list[str]
    """Named everyday objects rendered for zero-shot evaluation (keys of `objects.ZERO_SHOT_OBJECTS`)."""
    sources: list[ObjectSourceEntry]
    """Your own objects: folders or list files of meshes, each feeding a split or a named evaluation set
    (`ObjectSourceEntry`); [] renders the built-in objects only."""
    num_views: PositiveInt
    """Views rendered per object (the paper renders 12)."""
    resolution_px: Annotated[int, Field(ge=8)]
    """Square image size in pixels (the paper renders 512 and trains at 256)."""
    samples_per_pixel: PositiveInt
    """Cycles path-tracing samples per pixel (the paper uses 128, denoised)."""
    radius_min: PositiveFloat
    """Smallest camera distance to the object centre (paper: 1.5)."""
    radius_max: PositiveFloat
    """Largest camera distance (paper: 2.2)."""
    polar_min_deg: PolarDeg
    """Camera polar angles are kept in [polar_min_deg, polar_max_deg]; 0-180 is the paper's whole sphere."""
    polar_max_deg: PolarDeg
    """Upper end of the polar band, in degrees from +Z."""
    data_dir: str
    """Where renders (`renders/<object>/`) and the split manifest (`manifest.json`) go."""
    results_dir: str
    """Where figures (`render/`) and metrics (`metrics/render.json`) go."""

    def __post_init__(self) -> None:
        # The unit cube's corners lie sqrt(3)/2 from its centre: a nearer camera would sit inside the object.
        if not 3**0.5 / 2 < self.radius_min <= self.radius_max:
            raise ValueError(
                f"need sqrt(3)/2 < radius_min <= radius_max (cameras outside the unit cube), got "
                f"radius_min={self.radius_min}, radius_max={self.radius_max}"
            )
        if not self.polar_min_deg < self.polar_max_deg:
            raise ValueError(f"need polar_min_deg < polar_max_deg, got {self.polar_min_deg} and {self.polar_max_deg}")

    def render_settings(self) -> dict[str, Any]:
        """The fields that change an object's images: a finished object is reused only if they match."""
        keys = ("seed", "num_views", "resolution_px", "samples_per_pixel", "radius_min", "radius_max")
        return {k: getattr(self, k) for k in keys} | {"polar_deg": [self.polar_min_deg, self.polar_max_deg]}


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class FinetuneConfig(_FromDict):
    """Stage 02: train (tiny scale) or fine-tune (paper scale) the view-conditioned model."""

    seed: int
    """Seeds model init, pair sampling, noise, timesteps and condition dropout."""
    use_pose: bool
    """False trains the no-pose baseline: the same model and recipe with the pose input always zero."""
    prediction_type: Literal["epsilon", "v_prediction", "sample"]
    """What the UNet predicts: `epsilon` (the paper), `v_prediction` or `sample`."""
    batch_size: PositiveInt
    """Pairs per optimiser step (per process)."""
    gradient_accumulation_steps: PositiveInt
    """Micro-batches accumulated into one optimiser step."""
    max_steps: PositiveInt
    """Optimiser steps; the run ends there (an interrupted run resumes and ends at the same step)."""
    learning_rate: PositiveFloat
    """AdamW learning rate of the UNet (and of the image encoder when it is trained)."""
    cc_projection_lr_multiplier: PositiveFloat
    """`cc_projection` learns this many times faster (the paper: 10)."""
    weight_decay: NonNegativeFloat
    """AdamW weight decay (the paper: 0.01)."""
    warmup_steps: NonNegativeInt
    """Linear learning-rate warm-up from 0 (the paper: 100)."""
    max_grad_norm: PositiveFloat
    """Gradient clipping threshold (global L2 norm)."""
    ema_decay: Annotated[float, Field(ge=0, lt=1)]
    """Decay of the EMA weights used for sampling (the paper: 0.9999, far too slow for short runs)."""
    cfg_dropout_prob: Annotated[float, Field(ge=0, le=1 / 3)]
    """Probability of each of the paper's three condition-dropout cases (the paper: 0.05)."""
    train_image_encoder: bool
    """Train the CLIP image encoder jointly (tiny scale, from scratch) or keep it frozen (the paper)."""
    checkpoint_every: PositiveInt
    """Steps between resumable checkpoints."""
    mixed_precision: Literal["no", "fp16", "bf16"]
    """accelerate mixed precision: `no` on CPU, `fp16`/`bf16` on GPUs."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class TinyModelSizes(_FromDict):
    """Sizes of randomly initialised components for CPU training from scratch and for tests."""

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str | None = None) -> TinyModelSizes:
        """As every config's `from_dict`; the channel lists of `params.yaml` become the tuples the fields hold."""
        return super().from_dict({k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}, where)

    image_size: PositiveInt
    """Square input image size in pixels (VAE input and CLIP input)."""
    latent_channels: PositiveInt
    """VAE latent channels (4 as in SD)."""
    vae_block_out_channels: tuple[PositiveInt, ...]
    """VAE channels per level; the latent is image_size / 2**(levels - 1) wide."""
    vae_layers_per_block: PositiveInt
    """ResNet blocks per VAE encoder level."""
    unet_block_out_channels: tuple[PositiveInt, ...]
    """UNet channels per level."""
    unet_layers_per_block: PositiveInt
    """ResNet blocks per UNet down level."""
    unet_cross_attention_levels: tuple[NonNegativeInt, ...]
    """UNet levels (0 = full latent resolution) with transformer blocks; keep attention at <= 16x16 on CPU."""
    unet_num_heads: PositiveInt
    """Attention heads in every UNet transformer block (diffusers' SD1 `attention_head_dim`)."""
    clip_hidden_size: PositiveInt
    """Width of the CLIP vision transformer."""
    clip_num_layers: PositiveInt
    """Transformer layers of the CLIP vision model."""
    clip_num_heads: PositiveInt
    """Attention heads of the CLIP vision model."""
    clip_patch_size: PositiveInt
    """CLIP patch size in pixels."""
    clip_projection_dim: PositiveInt
    """CLIP embedding width D = cc_projection width = UNet cross_attention_dim."""
    norm_num_groups: PositiveInt
    """GroupNorm groups in the UNet and the VAE (must divide every channel count)."""

    @property
    def latent_size(self) -> int:
        """Latent width: the VAE downsamples by 2 at every level but the last."""
        return self.image_size // 2 ** (len(self.vae_block_out_channels) - 1)


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class SJCConfig(_FromDict):
    """Stage 04: reconstruct one object from one view by SJC.

    The values in `params.yaml` take ~40 s per object on 2 CPU cores with the tiny model
    (benchmarks/bench_sjc.py) and were tuned a little for volume IoU on two zero-shot objects (duck, mug);
    weights are relative (Adamax is scale-free per parameter, so only the ratios of the `lambda_<name>` matter).
    """

    iterations: int
    """Optimiser steps (the paper: 10,000 on a GPU; the study takes 600 for time, docs/speed.md)."""
    resolution: int
    """Voxel grid nodes per axis (the paper: 100); 48^3 with 2 views beat 64^3 with 1 view in IoU at equal time."""
    bound: float
    """Half side of the field's box in the normalised frame; objects lie in [-0.5, 0.5]^3."""
    density_shift: float
    """`shift` in sigma = softplus(raw exp(s) + shift) (the paper: -1)."""
    feature_init_std: float
    """The latent feature grid starts as N(0, std^2) (the paper: 1)."""
    samples_per_ray: int
    """Samples per ray in the box (~1 per voxel; the paper steps half a voxel)."""
    lr_density: float
    """Adamax learning rate of the density grid and its log-scale (the paper: 0.05)."""
    lr_features: float
    """Adamax learning rate of the latent feature grid (the paper: 0.05)."""
    guidance_scale: float
    """Classifier-free guidance weight of the score (the paper: 100)."""
    timestep_min: int
    """Smallest diffusion timestep drawn for the score (the paper: 10)."""
    timestep_max: Annotated[int, Field(le=999)]
    """Largest diffusion timestep drawn, inclusive (the paper: 969)."""
    views_per_iteration: int
    """Random views scored per iteration, each with its near view (the paper: 1; 2 averages the noisy score)."""
    radius_min: float
    """Smallest distance of a random camera to the origin (our renders: 1.5)."""
    radius_max: float
    """Largest distance of a random camera (our renders: 2.2)."""
    polar_min_deg: PolarDeg
    """Random cameras keep polar angles in [polar_min_deg, polar_max_deg] (our renders: the whole sphere)."""
    polar_max_deg: PolarDeg
    """Upper end of the random cameras' polar band, degrees from +Z."""
    near_view_offset: float
    """A near view's eye is its random view's eye + this x a random unit vector (the paper: 0.05)."""
    background_depth: float
    """Depth of the transmitted part of a ray (the paper: 10); enters the depth losses."""
    lambda_sds: float
    """Weight of `loss_sds`, the chained score (Adamax is scale-free: only the ratios of the weights matter)."""
    lambda_input: float
    """Weight of `loss_input`, the latent MSE at the input camera (the paper: 1e4 on its RGB MSE)."""
    lambda_input_mask: float
    """Weight of `loss_input_mask`, the opacity-to-alpha MSE at the input camera (as `lambda_input`)."""
    lambda_near_view: float
    """Weight of `loss_near_view` (the paper's run: 1e4)."""
    lambda_depth_smooth: float
    """Weight of `loss_depth_smooth` (the paper: 1e4, which here emptied the field: with background depth 10,
    every silhouette edge costs TV, and the densest voxel stayed at 2.9; measured)."""
    depth_smooth_start: float
    """Fraction of the run after which the random views' depth TV is on (the paper: 0.5)."""
    lambda_emptiness: float
    """Weight of `loss_emptiness` (the paper's run: 0, off)."""
    emptiness_scale: float
    """`k` in log(1 + k w) of the emptiness loss (SJC's `emptiness_scale`: 10)."""
    num_threads: int
    """torch intra-op threads during the loop (restored after): 2 threads on a shared 2-core CPU measured 50x slower."""
    checkpoint_every: int
    """Iterations between resumable checkpoints (when `reconstruct` gets a `checkpoint_dir`)."""

    def __post_init__(self) -> None:
        positive = (
            "iterations",
            "resolution",
            "samples_per_ray",
            "views_per_iteration",
            "num_threads",
            "checkpoint_every",
            "bound",
            "radius_min",
            "lr_density",
            "lr_features",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")
        for name in (f.name for f in dataclasses.fields(self) if f.name.startswith("lambda_")):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}")
        if self.resolution < 2:
            raise ValueError(f"`resolution` must be >= 2, got {self.resolution}")
        if not 0 <= self.timestep_min <= self.timestep_max:
            raise ValueError(f"need 0 <= timestep_min <= timestep_max, got {self.timestep_min}, {self.timestep_max}")
        if not self.bound * 3**0.5 < self.radius_min <= self.radius_max:
            raise ValueError(
                f"need bound * sqrt(3) < radius_min <= radius_max (cameras outside the box), got bound={self.bound}, "
                f"radius_min={self.radius_min}, radius_max={self.radius_max}"
            )
        if not 0.0 <= self.depth_smooth_start <= 1.0:
            raise ValueError(f"`depth_smooth_start` must lie in [0, 1], got {self.depth_smooth_start}")


# ---------------------------------------------------------------------------------------------------------------
# The schema of each stage's parameter group: what `python -m zero1to3 run <stage>` checks before the notebook
# starts. Groups that are a config (render) or hold one (finetune.training, finetune.tiny_model, sjc.config) are
# checked by that config's own fields and rules; the rest of each group is described here.


class _Group(pydantic.BaseModel):
    """A stage's parameter group as a frozen, validated object (`stage_config` builds it)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class VAEParams(_Group):
    """Stage 02 at tiny scale: the VAE trained first, then frozen."""

    steps: NonNegativeInt
    batch_size: PositiveInt
    learning_rate: PositiveFloat
    kl_weight: NonNegativeFloat


class PreviewParams(_Group):
    """Stage 02: held-out pairs drawn at every checkpoint."""

    pairs: PositiveInt
    ddim_steps: PositiveInt
    guidance_scale: Annotated[float, Field(ge=1)]


class FinetuneParams(_Group):
    """Stage 02's group."""

    seed: int
    scale: Literal["tiny", "paper"]
    weights_path: str
    tiny_model: dict[str, Any]
    vae: VAEParams
    training: dict[str, Any]
    workers: PositiveInt
    """Processes training the model and the no-pose baseline side by side (`train.fit_side_by_side`); 1: one after
    the other (paper scale on one GPU)."""
    preview: PreviewParams
    probe_pairs: PositiveInt
    data_dir: str
    models_dir: str
    results_dir: str


class SamplerParams(_Group):
    """DDIM with classifier-free guidance, as the paper samples."""

    ddim_steps: PositiveInt
    guidance_scale: Annotated[float, Field(ge=1)]
    eta: Annotated[float, Field(ge=0, le=1)]


def _held_out(name: str) -> str:
    if name == "train":
        raise ValueError("`train` is not held out: name `val`, `test`, `zero_shot` or an evaluation set of yours")
    return name


HeldOutSet = Annotated[SetName, AfterValidator(_held_out)]
"""A held-out set of the manifest: `val`, `test`, `zero_shot`, or a named evaluation set from `render.sources`.
Whether the manifest has it is checked when the stage runs (`stages.check_sets`), not here."""


class SampleParams(_Group):
    """Stage 03's group: novel views of every held-out object, and the figures of the sampler."""

    seed: int
    """Seeds every sample (per object, so results do not depend on batching)."""
    models_dir: str
    """Stage 02's model (`pose/model`) and no-pose baseline (`no_pose/model`)."""
    sets: Annotated[list[HeldOutSet], Field(min_length=1)]
    """Held-out sets to sample: `val`, `test`, `zero_shot` or a named evaluation set of the manifest."""
    input_view: NonNegativeInt
    """The view each object is seen from."""
    num_targets: PositiveInt
    """Target views per object: the next views of the dataset, at their random cameras."""
    sampler: SamplerParams
    """DDIM steps, guidance scale and eta (the paper's: 50, 3, 1)."""
    pose_shift: PositiveInt
    """Shuffled-pose control: each target is drawn with the pose of the target this many places on."""
    showcase: list[str]
    """Objects of the orbit, guidance and variation figures."""
    orbit_frames: PositiveInt
    """Azimuth steps of a full orbit at the input's elevation."""
    guidance_scales: Annotated[list[Annotated[float, Field(ge=1)]], Field(min_length=1)]
    """Sweep of the guidance figure."""
    num_variations: PositiveInt
    """Samples of one view with different seeds."""
    data_dir: str
    """Stage 01's renders; samples go to `<data_dir>/samples`."""
    results_dir: str
    """Figures go to `<results_dir>/sample`."""


class SJCParams(_Group):
    """Stage 04's group: SJC and SJC-I reconstructions of held-out objects."""

    seed: int
    """Seeds every reconstruction (the same for SJC and SJC-I)."""
    models_dir: str
    """Stage 02's model (the SJC prior) and no-pose baseline (the SJC-I prior)."""
    objects_per_set: Annotated[dict[HeldOutSet, NonNegativeInt], Field(min_length=1)]
    """Reconstruct the first this many objects (in the manifest's order) of each held-out set, e.g.
    `{zero_shot: 7, test: 8}`."""
    input_view: NonNegativeInt
    """The one view each object is reconstructed from (stage 03's too)."""
    config: dict[str, Any]
    """The `SJCConfig` of every run (checked as one)."""
    workers: PositiveInt
    """Runs at a time, each in a process of its own (`reconstruction.reconstruct_objects`); 1 for priors on a GPU."""
    showcase: list[str]
    """Objects shown turning."""
    turntable_frames: PositiveInt
    """Frames of each turntable."""
    data_dir: str
    """Renders in; meshes, records and checkpoints out to `<data_dir>/sjc`."""
    results_dir: str
    """Figures go to `<results_dir>/sjc`."""


class EvaluateParams(_Group):
    """Stage 05's group: scores, paired comparisons and the report."""

    seed: int
    """Seeds the bootstrap resampling and the Chamfer surface samples."""
    sets: Annotated[list[HeldOutSet], Field(min_length=1)]
    """Held-out sets to score, each sampled by stage 03 (`sample.sets`), side by side in every table."""
    reference: str
    """The method every other is compared with, paired per object."""
    metrics: Annotated[
        list[Literal["psnr", "fg_psnr", "ssim", "silhouette_iou", "lpips", "st_lpips"]], Field(min_length=1)
    ]
    """Novel-view metrics, paired per object (lpips joins when its weights exist; st_lpips needs stlpips-pytorch)."""
    num_resamples: PositiveInt
    """Bootstrap resamples of every confidence interval."""
    lpips_weights: str
    """Optional torchvision AlexNet weights file for LPIPS ("": the torch hub cache)."""
    best_worst: NonNegativeInt
    """Objects in the best/worst figure."""
    models_dir: str
    """Stage 02's model: its image encoder gives the offline Fréchet features."""
    paper_results: str
    """The paper's tables, printed beside ours."""
    data_dir: str
    """Stage 03's samples and stage 04's meshes are under here."""
    results_dir: str
    """Metrics, figures and RESULTS.md."""


STAGE_SCHEMAS: dict[str, type] = {
    "render": RenderConfig,
    "finetune": FinetuneParams,
    "sample": SampleParams,
    "sjc": SJCParams,
    "evaluate": EvaluateParams,
}


def stage_config(stage: str, values: Any) -> RenderConfig | FinetuneParams | SampleParams | SJCParams | EvaluateParams:
    """The one way a stage's parameter group becomes its config: checked against the stage's schema, nested
    configs included (`finetune.tiny_model`, `finetune.training`, `sjc.config`), every problem reported at once,
    and returned frozen. `python -m zero1to3 run <stage>` calls it before the notebook starts.

    Raises:
        ParamsError: one line per problem, each naming `stage.key[.key]`, the value and the rule
            (an unknown or missing key, a wrong type, a value out of range, a rule between fields).
    """
    if stage not in STAGE_SCHEMAS:
        raise ValueError(f"unknown stage {stage!r}; stages: {list(STAGE_SCHEMAS)}")
    if not isinstance(values, dict):
        raise ParamsError(f"{stage}: must be a mapping of keys to values, got {type(values).__name__}")
    schema = STAGE_SCHEMAS[stage]
    if dataclasses.is_dataclass(schema):
        return schema.from_dict(values, where=stage)
    problems, group = [], None
    try:
        group = schema.model_validate(values)
    except pydantic.ValidationError as err:
        problems.append(format_errors(err, stage))
    for check in _nested_checks(stage, values):  # the configs inside the group, checked even if the rest is wrong
        try:
            check()
        except ParamsError as err:
            problems.append(str(err))
    if problems:
        raise ParamsError("\n".join(problems))
    return group


def _nested_checks(stage: str, values: dict[str, Any]) -> list[Any]:
    """Checks of the configs a group holds (those of its mappings that are mappings at all)."""
    checks = []
    if stage == "finetune":
        tiny, training = values.get("tiny_model"), values.get("training")
        if isinstance(tiny, dict):
            checks.append(lambda: TinyModelSizes.from_dict(tiny, where=f"{stage}.tiny_model"))
        if isinstance(training, dict):
            checks.append(lambda: _check_training(stage, training, values.get("seed")))
    elif stage == "sjc" and isinstance(values.get("config"), dict):
        checks.append(lambda: SJCConfig.from_dict(values["config"], where=f"{stage}.config"))
    return checks


def _check_training(stage: str, training: dict[str, Any], seed: Any) -> None:
    set_by_stage = {"seed": seed if isinstance(seed, int) else 0, "use_pose": True}
    clash = sorted(set(training) & set(set_by_stage))
    if clash:
        raise ParamsError(f"{stage}.training: {clash} are set by the stage (seed: the group's seed), not here")
    FinetuneConfig.from_dict(training | set_by_stage, where=f"{stage}.training")


def format_errors(err: pydantic.ValidationError, where: str) -> str:
    """One line per error: `where.key.key: <rule> (got <value>)`."""
    lines = []
    for e in err.errors(include_url=False):
        loc = ".".join([where, *(str(p) for p in e["loc"])])
        message = e["msg"]
        if e["type"] == "extra_forbidden":
            message = "unknown key"
        elif e["type"] == "missing":
            message = "missing key"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        # A rule between fields (a `__post_init__` check) has no key of its own; its message names the fields.
        got = "" if e["type"] == "missing" or not e["loc"] else f" (got {e['input']!r})"
        lines.append(f"{loc}: {message}{got}")
    return "\n".join(lines)
