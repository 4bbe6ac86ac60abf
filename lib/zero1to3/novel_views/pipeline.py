"""Stage 03 for users: novel views of one image as a diffusers-style pipeline, and the study's batch generator.

* `Zero123Pipeline`: image + relative camera in degrees -> PIL images, with the diffusers contract
  (`from_pretrained` / `save_pretrained` / `to` / `__call__` returning a `*PipelineOutput`). The
  denoising loop is not here: it is `sample.sample_novel_views`, which the pipeline calls once.
* `generate_views`: the study's batch generator over many objects (stage 03 notebook), seeded per object;
  `sampler_sweep_row` and `camera_sliders` for the notebook's figures. The `sample` command is in `cli.py`.

Why not a `diffusers.DiffusionPipeline` subclass: its `save_pretrained` only saves components whose
class derives from a known loadable base (`ModelMixin`, `PreTrainedModel`, ...). Our `CCProjection`
is a plain `nn.Module`, so diffusers logs "cannot be saved" and writes `cc_projection: [null, null]`:
the paper's pose projection would be silently dropped. Saving and loading therefore go through
`Zero123Components`, whose folder is the diffusers layout stage 02 writes.

Why one long module: the diffusers-style pipeline checks every argument with a message naming it, and those
checks are most of it; the denoising loop itself is `sample.py`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, UInt8
from PIL import Image
from torch import Tensor

from zero1to3 import cameras
from zero1to3.core import outputs
from zero1to3.core import progress as zprogress
from zero1to3.dataset import data, objects
from zero1to3.model import schedulers
from zero1to3.model.components import Zero123Components
from zero1to3.novel_views import sample
from zero1to3.single_image import inputs

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "models/finetune/pose/model"  # stage 02's pose-conditioned model (its no-pose twin: .../no_pose/model)
# Share of the frame the object's longer side takes: `inputs.framing_fraction` of the stage-01 renders
# (0.625 for train, test and zero-shot objects alike, 40 of 64 px). The paper's demo uses 200/256 = 0.78
# (docs/conventions.md#input-images), which is larger than its own renders; we match the renders the model was trained
# on.
DEFAULT_OBJECT_FRACTION = 0.625
TRAINING_RECORD = "training.json"  # stage 02 writes it into the model folder (train.fit)
# Camera distances of the training views when the model folder does not record them (released weights):
# the paper's renders (blender_script.py), so radius offsets within +-0.7.
PAPER_CAMERA_RADIUS = (cameras.PAPER_RADIUS_MIN, cameras.PAPER_RADIUS_MAX)
RADIUS_TOLERANCE = 1e-6  # float slack on the range's ends: 1.9 - 1.6 = 0.29999999999999982
TensorImage = Float[Tensor, "*b 3 h w"]
PoseValues = float | Sequence[float] | np.ndarray


@dataclasses.dataclass(frozen=True)
class Zero123PipelineOutput:
    """Result of `Zero123Pipeline.__call__`: one image per target pose."""

    images: list[Image.Image]
    """Generated views as RGB PIL images."""
    array: Float[np.ndarray, "B H W 3"]
    """The same views as floats in [0, 1]."""
    poses: Float[Tensor, "B 4"]
    """Relative poses `[d_polar_rad, sin d_az, cos d_az, d_radius]` they were generated for."""


def pose_from_degrees(polar_deg: PoseValues, azimuth_deg: PoseValues, radius: PoseValues = 0.0) -> Float[Tensor, "B 4"]:
    """Relative pose embedding from camera offsets in degrees, as `cameras.relative_pose` (paper Sec. 3.2).

    `polar_deg` > 0 moves the camera down (towards +polar), `azimuth_deg` > 0 turns it counter-clockwise
    seen from above, `radius` > 0 moves it away; all are target minus input. Scalars repeat to the length
    of the sequences, which must share one length.
    """
    polar, azimuth, radius = _pose_columns(polar_deg, azimuth_deg, radius)
    d_az = np.radians(azimuth)
    pose = np.stack([np.radians(polar), np.sin(d_az), np.cos(d_az), radius], axis=-1)  # (B, 4)
    return torch.from_numpy(pose.astype(np.float32))


class Zero123Pipeline:
    """Zero-1-to-3 novel-view synthesis: one image and relative cameras in, the views from there out.

    Holds `Zero123Components` in eval mode. A saved model already holds the EMA weights (stage 02
    saves the EMA copy), which is what the paper samples with.
    """

    def __init__(
        self,
        components: Zero123Components,
        camera_radius: tuple[float, float] = PAPER_CAMERA_RADIUS,
        camera_radius_source: str = "the paper's renders",
    ) -> None:
        """Wrap `components` (their networks are put in eval mode, in place).

        Args:
            components: The model.
            camera_radius: Smallest and largest camera distance of the training views; radius offsets
                beyond their difference are refused (the model never saw them).
            camera_radius_source: Where `camera_radius` comes from, for error messages.
        """
        lo, hi = _check_camera_radius(camera_radius, camera_radius_source)
        self._components = components.eval()
        self.camera_radius = (lo, hi)
        self.camera_radius_source = camera_radius_source

    @property
    def radius_offset_limit(self) -> float:
        """Largest |radius offset| accepted: the spread of the training views' camera distances."""
        return self.camera_radius[1] - self.camera_radius[0]

    @classmethod
    def from_components(
        cls, components: Zero123Components, camera_radius: tuple[float, float] = PAPER_CAMERA_RADIUS
    ) -> Zero123Pipeline:
        """Wrap components already in memory (puts their networks in eval mode, in place).

        Args:
            components: The model.
            camera_radius: Camera distances of its training views (default: the paper's, 1.5-2.2).
        """
        source = "the paper's renders" if camera_radius == PAPER_CAMERA_RADIUS else "from_components(camera_radius=...)"
        return cls(components, camera_radius, source)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> Zero123Pipeline:
        """Load a model folder written by stage 02 (`models/finetune/{pose,no_pose}/model`) or `save_pretrained`.

        The accepted radius offsets come from the folder's `training.json` (`camera_radius`, written by
        stage 02); a folder without one (released weights) gets the paper's camera distances, 1.5-2.2.
        """
        folder = Path(folder)
        components = Zero123Components.load_pretrained(folder)
        record = training_record(folder)
        if record.get("camera_radius") is None:
            return cls(components)
        source = f"camera_radius in {folder / TRAINING_RECORD}"
        return cls(components, _check_camera_radius(record["camera_radius"], source), source)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write the components in the diffusers folder layout that `from_pretrained` reads."""
        self._components.save_pretrained(folder)

    @property
    def components(self) -> Zero123Components:
        return self._components

    @property
    def device(self) -> torch.device:
        return self._components.unet.device

    @property
    def image_size(self) -> int:
        """Square input/output size in pixels."""
        return int(self._components.vae.config.sample_size)

    def to(self, device: str | torch.device) -> Zero123Pipeline:
        """Move every network to `device` (in place) and return self."""
        self._components.to(device)
        return self

    def check_inputs(
        self,
        image: Image.Image | str | Path | TensorImage,
        polar_deg: PoseValues,
        azimuth_deg: PoseValues,
        radius: PoseValues,
        num_inference_steps: int,
        guidance_scale: float,
        eta: float,
        schedule: str | None = None,
    ) -> None:
        """Raise a `ValueError` naming the argument, the value and what is accepted."""
        max_steps = int(self._components.scheduler.config.num_train_timesteps)
        if not 1 <= num_inference_steps <= max_steps:
            raise ValueError(f"`num_inference_steps` must be in [1, {max_steps}], got {num_inference_steps}")
        schedule = self._components.ddim_schedule if schedule is None else schedule
        try:
            schedulers.ddim_timesteps(num_inference_steps, schedule, max_steps)
        except ValueError as err:  # the schedule's own rule, said with this method's argument names
            raise ValueError(f"`schedule`={schedule!r}, `num_inference_steps`={num_inference_steps}: {err}") from None
        if not (math.isfinite(guidance_scale) and guidance_scale >= 1.0):
            # CFG: eps_uncond + s * (eps_cond - eps_uncond). s = 1 is the conditional model alone; s < 1 moves
            # towards the unconditional model, which sees neither the input image nor the pose (s = 0: only it).
            raise ValueError(
                f"`guidance_scale` must be a finite number >= 1, got {guidance_scale}: 1 is the conditional model "
                "alone (no guidance) and larger values guide harder; below 1 the prediction leans towards the "
                "unconditional model, which ignores the input image and the pose (0 is purely unconditional)"
            )
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"`eta` must be in [0, 1] (0 = deterministic DDIM, 1 = the paper's), got {eta}")
        polar, _, rad = _pose_columns(polar_deg, azimuth_deg, radius)
        if np.abs(polar).max() > 180.0:
            raise ValueError(f"`polar_deg` must lie in [-180, 180] (a difference of polar angles), got {polar_deg}")
        limit = self.radius_offset_limit
        if np.abs(rad).max() > limit + RADIUS_TOLERANCE:
            lo, hi = self.camera_radius
            raise ValueError(
                f"`radius` must lie in [{-limit:.3g}, {limit:.3g}], got {radius}: the model was trained on camera "
                f"distances {lo:.3g}-{hi:.3g} ({self.camera_radius_source}), so larger offsets were never seen"
            )
        if isinstance(image, Tensor):
            size = self.image_size
            if image.ndim not in (3, 4) or (image.ndim == 4 and image.shape[0] != 1):
                raise ValueError(
                    f"a tensor `image` must be one image, (3, H, W) or (1, 3, H, W), got shape {tuple(image.shape)}; "
                    "several target poses of one image go in `polar_deg`/`azimuth_deg`/`radius`"
                )
            if tuple(image.shape[-2:]) != (size, size):
                raise ValueError(
                    f"a tensor `image` must be {size}x{size} for this model, got {tuple(image.shape[-2:])}; "
                    "pass a PIL image or a path instead to have it framed and resized"
                )
            lo, hi = float(image.min()), float(image.max())
            if lo < -1.0 - 1e-4 or hi > 1.0 + 1e-4:
                raise ValueError(
                    f"a tensor `image` must hold values in [-1, 1], got [{lo:.3f}, {hi:.3f}] (from [0, 1]: x * 2 - 1)"
                )
        elif not isinstance(image, Image.Image | str | Path):
            raise ValueError(f"`image` must be a PIL image, a path or a tensor in [-1, 1], got {type(image).__name__}")

    def prepare_image(
        self, image: Image.Image | str | Path | TensorImage, object_fraction: float = DEFAULT_OBJECT_FRACTION
    ) -> Float[Tensor, "1 3 S S"]:
        """The model input in [-1, 1]: a PIL image or path is framed on white (`inputs.prepare_input`)."""
        if isinstance(image, Tensor):
            return image.reshape(1, *image.shape[-3:]).float()
        prepared = inputs.prepare_input(image, self.image_size, object_fraction)
        return torch.from_numpy(prepared.image).permute(2, 0, 1)[None] * 2.0 - 1.0  # (1, 3, S, S)

    @torch.no_grad()
    def __call__(
        self,
        image: Image.Image | str | Path | TensorImage,
        polar_deg: PoseValues,
        azimuth_deg: PoseValues,
        radius: PoseValues = 0.0,
        num_inference_steps: int = 50,
        guidance_scale: float = 3.0,
        eta: float = 1.0,
        generator: torch.Generator | None = None,
        use_pose: bool = True,
        progress: bool = False,
        object_fraction: float = DEFAULT_OBJECT_FRACTION,
        schedule: str | None = None,
    ) -> Zero123PipelineOutput:
        """Generate the view of `image` from each relative camera.

        Args:
            image: A PIL image or path (RGBA with transparent background, or RGB on a plain backdrop),
                or an already prepared tensor in [-1, 1] of shape (3, S, S) or (1, 3, S, S).
            polar_deg: Polar offset(s) of the target camera in degrees; > 0 looks from lower down.
            azimuth_deg: Azimuth offset(s) in degrees; > 0 turns counter-clockwise seen from above.
            radius: Distance offset(s) in scene units; > 0 moves away.
            num_inference_steps: DDIM steps.
            guidance_scale: Classifier-free guidance weight; 1 disables guidance.
            eta: DDIM stochasticity (1 = the paper's setting).
            generator: CPU generator for all noise; None uses one seeded with 0 (no global RNG state).
            use_pose: False samples the no-pose baseline (pose input zero).
            progress: Show a progress bar over the denoising steps.
            object_fraction: For PIL/path inputs, the share of the frame the object's longer side takes
                (default: as in the training renders).
            schedule: DDIM timesteps: "official" (the paper's sampler) or "diffusers" (`schedulers.DDIM_SCHEDULES`);
                None: the model's own (`components.ddim_schedule`: official for released and paper-scale weights).
        """
        # 1. Check inputs
        self.check_inputs(image, polar_deg, azimuth_deg, radius, num_inference_steps, guidance_scale, eta, schedule)

        # 2. Prepare the input view: framed on white, in [-1, 1]
        input_image = self.prepare_image(image, object_fraction)

        # 3. Relative poses from degrees, one input copy per pose
        poses = pose_from_degrees(polar_deg, azimuth_deg, radius)
        input_images = input_image.expand(poses.shape[0], -1, -1, -1)  # (B, 3, S, S)

        # 4. Denoise (DDIM + classifier-free guidance, sample.py)
        generator = torch.Generator().manual_seed(0) if generator is None else generator
        out = sample.sample_novel_views(
            self._components,
            input_images,
            poses,
            num_inference_steps,
            guidance_scale,
            eta,
            generator,
            use_pose=use_pose,
            progress=progress,
            schedule=schedule,
        )

        # 5. To numpy and PIL
        array = out.images.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
        images = [Image.fromarray(view) for view in to_uint8(array)]
        return Zero123PipelineOutput(images=images, array=array, poses=out.poses.cpu())


def to_uint8(images: Float[np.ndarray, "*B H W 3"]) -> UInt8[np.ndarray, "*B H W 3"]:
    """Images in [0, 1] as uint8, rounded (the paper truncates; rounding is unbiased)."""
    return (np.clip(images, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def generate_views(
    components: Zero123Components,
    input_rgba: UInt8[np.ndarray, "N H W 4"],
    input_centers: Float[np.ndarray, "N 3"],
    target_centers: Float[np.ndarray, "N T 3"],
    object_ids: list[str],
    num_steps: int,
    guidance_scale: float,
    eta: float,
    seed: int,
    use_pose: bool = True,
    pose_shift: int = 0,
    progress: bool = True,
    objects_per_call: int = 8,
) -> UInt8[np.ndarray, "N T H W 3"]:
    """Each object's T target views from its input view, `objects_per_call` objects to one `sample_novel_views` call.

    The noise of object i is drawn from its own generator, seeded by `objects.object_seed_value(seed, object_ids[i])`
    (`sample.noise_streams`), so its views do not depend on which other objects are in the call, or their order, up
    to floating-point rounding: a UNet batch of another size may sum in another order. With `objects_per_call` 1
    each object is sampled alone, bit for bit as before batching. The tiny model's UNet is too small to keep two cores
    busy with one object's batch; eight objects at a time halve stage 03's time (docs/speed.md).

    Args:
        components: The model (put in eval mode here).
        input_rgba: Each object's input view as rendered (RGBA, composited on white here).
        input_centers: Camera centre of each input view (world coordinates).
        target_centers: Camera centres of the views to generate.
        object_ids: Names of the objects (seed the noise).
        num_steps: DDIM steps.
        guidance_scale: Classifier-free guidance weight.
        eta: DDIM stochasticity.
        seed: The stage's seed.
        use_pose: False samples the no-pose baseline.
        pose_shift: The "shuffled pose" control: k != 0 rolls each object's target poses by k along T
            (`np.roll`), so view j is generated with view (j - k) mod T's pose; images stay in target order.
        progress: Show a progress bar over the objects.
        objects_per_call: Objects sampled together in one batch (a fixed number, so results repeat on one machine).

    Returns:
        The generated views, uint8 RGB, in target order.
    """
    n, size = input_rgba.shape[0], int(components.vae.config.sample_size)
    if not len(object_ids) == input_centers.shape[0] == target_centers.shape[0] == n:
        raise ValueError(
            f"need one entry per object: {len(object_ids)} object_ids, {n} input images, "
            f"{input_centers.shape[0]} input centres, {target_centers.shape[0]} target-centre rows"
        )
    if input_rgba.shape[1:3] != (size, size):
        raise ValueError(f"`input_rgba` must be {size}x{size} for this model, got {input_rgba.shape[1:3]}")
    if objects_per_call < 1:
        raise ValueError(f"`objects_per_call` must be >= 1, got {objects_per_call}")
    components.eval()
    num_targets = target_centers.shape[1]
    out = np.zeros((n, num_targets, size, size, 3), np.uint8)
    chunks = [range(s, min(s + objects_per_call, n)) for s in range(0, n, objects_per_call)]
    bar = zprogress.bar(total=n, desc="objects", disable=not progress)
    for chunk in chunks:
        poses = [
            cameras.relative_pose(np.broadcast_to(input_centers[i], target_centers[i].shape), target_centers[i])
            for i in chunk
        ]
        poses = [np.roll(p, pose_shift, axis=0) for p in poses]  # (T, 4) each; pose_shift=0 leaves it as is
        images = torch.cat([data.to_model_images(input_rgba[i])[None].expand(num_targets, -1, -1, -1) for i in chunk])
        result = sample.sample_novel_views(
            components,
            images,  # (k T, 3, S, S): each object's input view, once per target
            torch.from_numpy(np.ascontiguousarray(np.concatenate(poses))),
            num_steps,
            guidance_scale,
            eta,
            [torch.Generator().manual_seed(objects.object_seed_value(seed, object_ids[i])) for i in chunk],
            use_pose=use_pose,
        )
        views = to_uint8(result.images.permute(0, 2, 3, 1).cpu().numpy())  # (k T, S, S, 3)
        out[chunk.start : chunk.stop] = views.reshape(len(chunk), num_targets, size, size, 3)
        bar.update(len(chunk))
    bar.close()
    return out


def sampler_sweep_row(
    components: Zero123Components,
    views: outputs.HeldOutViews,
    index: int,
    scales: list[float],
    seeds: list[int],
    num_steps: int,
    eta: float,
) -> Float[np.ndarray, "K H W 3"]:
    """Input and first true target of object `index`, then its first target drawn at each (guidance scale, seed)."""
    if len(scales) != len(seeds):
        raise ValueError(f"one seed per guidance scale: {len(scales)} scales, {len(seeds)} seeds")
    cells = [data.composite_on_white(views.input_rgba[index]), data.composite_on_white(views.target_rgba[index, 0])]
    for scale, seed in zip(scales, seeds, strict=True):
        out = generate_views(
            components,
            views.input_rgba[index : index + 1],
            views.input_centers[index : index + 1],
            views.target_centers[index : index + 1, :1],
            [views.object_ids[index]],
            num_steps,
            scale,
            eta,
            seed,
            progress=False,
        )
        cells.append(out[0, 0] / 255.0)
    return np.stack(cells)


def camera_sliders(
    pipe: Zero123Pipeline, views: outputs.HeldOutViews, num_steps: int, guidance_scale: float, eta: float, seed: int
) -> Any:
    """Sliders for polar, azimuth and radius offsets that redraw the view, in a Jupyter frontend.

    Elsewhere (papermill, nbconvert: `progress.widget_frontend` is False) no widget is made, since nothing could
    move it: the view at the sliders' start (first object, no offset) is drawn once, with a line saying where the
    sliders work. Widgets under papermill only add their state to the executed notebook, and their comm traffic
    once left a run waiting on a kernel that had gone idle.
    """
    import matplotlib.pyplot as plt

    def draw(obj: str, polar: float, azimuth: float, radius: float) -> None:
        i = views.object_ids.index(obj)
        out = pipe(
            data.to_model_images(views.input_rgba[i])[None],
            polar_deg=[polar],
            azimuth_deg=[azimuth],
            radius=[radius],
            num_inference_steps=num_steps,
            guidance_scale=guidance_scale,
            eta=eta,
            generator=torch.Generator().manual_seed(seed),
        )
        fig, axes = plt.subplots(1, 2, figsize=(4, 2))
        shown = [data.composite_on_white(views.input_rgba[i]), out.array[0]]
        for ax, img, title in zip(axes, shown, ["input", "view"], strict=True):
            ax.imshow(img)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        plt.show()

    if not zprogress.widget_frontend():
        print("The camera sliders appear when this notebook runs in JupyterLab (`make lab`); the view at no offset:")
        draw(views.object_ids[0], 0.0, 0.0, 0.0)
        return None
    import ipywidgets as widgets  # Jupyter only: the pipeline itself never needs a widget toolkit

    limit = round(pipe.radius_offset_limit, 2)
    return widgets.interact(
        draw,
        obj=views.object_ids,
        polar=(-90.0, 90.0, 5.0),
        azimuth=(-180.0, 180.0, 10.0),
        radius=(-limit, limit, 0.05),
    )


def warn_if_trained_without_pose(folder: Path, no_pose: bool) -> None:
    """Stage 02's no-pose model never saw a pose: sampling it with one is not the baseline (say so)."""
    if not no_pose and training_record(folder).get("config", {}).get("use_pose") is False:
        logger.warning("%s was trained without poses (training.json: use_pose false); pass --no-pose", folder)


def training_record(folder: Path) -> dict[str, Any]:
    """The model folder's `training.json` (stage 02's record), or {} when there is none (released weights)."""
    path = folder / TRAINING_RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); stage 02 writes it, or delete it") from err
    if not isinstance(record, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(record).__name__}")
    return record


def _check_camera_radius(value: Any, source: str) -> tuple[float, float]:
    """`[min, max]` camera distances as two floats with 0 < min <= max, or a ValueError naming `source`."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"camera_radius ({source}) must be [min, max], two numbers, got {value!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo <= hi):
        raise ValueError(f"camera_radius ({source}) must be [min, max] with 0 < min <= max, got {value!r}")
    return lo, hi


def _pose_columns(
    polar_deg: PoseValues, azimuth_deg: PoseValues, radius: PoseValues
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three pose offsets as float arrays of one length B (scalars repeated), or a ValueError."""
    columns = {}
    for name, value in (("polar_deg", polar_deg), ("azimuth_deg", azimuth_deg), ("radius", radius)):
        try:
            column = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"`{name}` must be a number or a sequence of numbers, got {value!r}") from err
        if column.ndim > 1:
            raise ValueError(f"`{name}` must be a number or a 1-D sequence, got shape {column.shape}")
        if column.ndim == 1 and column.size == 0:
            raise ValueError(f"`{name}` is an empty sequence: give at least one value")
        if not np.isfinite(column).all():
            raise ValueError(f"`{name}` must be finite, got {value!r}")
        columns[name] = column
    lengths = {name: c.size for name, c in columns.items() if c.ndim == 1}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"pose sequences must have the same length (a single number repeats), got lengths "
            f"{', '.join(f'{k}={v}' for k, v in lengths.items())}"
        )
    batch = max(lengths.values(), default=1)
    polar, azimuth, rad = (np.broadcast_to(c, (batch,)) for c in columns.values())
    return polar, azimuth, rad
