"""Command line: `python -m zero1to3 run <stage>` runs a stage's notebook; `render`, `sample` and `reconstruct`
serve users.

`run` is `zero1to3.stages` (what `dvc repro` calls, as `python -m zero1to3.stages <stage>`), so that an edit here
reruns no stage. `render --shard K/N` renders one shard of stage 01's object list (a cluster job array) and
`render --merge N` joins the shards' manifests; then `run render` (or `dvc repro`) reuses every rendered object.
`sample IMAGE ...` generates the view of one image from a relative camera with `pipeline.Zero123Pipeline`;
`reconstruct IMAGE --out DIR` turns it into a coloured mesh by stage 04's SJC (`image_to_3d.reconstruct_image`),
with stage 04's settings read from the params file (`stages.read_params`). Imports of torch and the model code are
inside these commands' functions: `run` only starts a kernel, and loading torch first would add seconds to every
stage's start for nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zero1to3 import config, stages
from zero1to3.core import files
from zero1to3.stages import read_params

RECONSTRUCT_LOCK = ".zero1to3-reconstruct.lock"  # in --out while a `reconstruct` run writes there
GIF_FRAME_MS = 200  # `sample --azimuth-sweep`: a 12-view turntable loops in 2.4 s, slow enough to follow

logger = logging.getLogger(__name__)


class OutputBusyError(OSError):
    """Another run of a command is writing the same output."""


@contextlib.contextmanager
def one_writer(folder: Path, lock_name: str, command: str, output: Path | None = None) -> Iterator[Path]:
    """Hold the output `folder`, or one `output` in it, for this run alone until the block ends (lock `lock_name`).

    Creates `folder` if needed, proving it writable before any model loads, and takes an exclusive `flock` on
    `folder / lock_name`, which records this process's id. A second run gets `OutputBusyError` naming the output and
    the holder, at once. The lock file is removed when the block ends, and so is `folder` if this run created it
    and wrote nothing else into it (a run that failed early leaves no empty folder).
    """
    from zero1to3.single_image import image_to_3d

    created = not folder.exists()
    image_to_3d.check_writable(folder)  # creates it, or an OSError naming it
    path = folder / lock_name
    while True:  # a lock taken on a file another run removed in between is no lock: take it again
        try:
            handle = path.open("a+")
        except OSError as err:
            raise OSError(f"cannot write to the output folder {folder}: {err.strerror or err}") from err
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process"
            handle.close()
            raise OutputBusyError(
                f"{output or folder} is being written by another `zero1to3 {command}` run ({holder}): "
                "wait for it to finish, or pass another --out"
            ) from None
        try:
            if os.path.samestat(os.fstat(handle.fileno()), path.stat()):  # still the file at `path`
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield folder
    finally:
        path.unlink(missing_ok=True)  # still holding the lock: a run waiting on this file retries on a new one
        handle.close()
        if created and not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zero1to3", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one pipeline stage's notebook (`python -m zero1to3.stages`, as dvc does)")
    stages.add_run_arguments(run)
    render = sub.add_parser("render", help="render one shard of stage 01's objects, or merge the shards' manifests")
    add_render_arguments(render)
    sample = sub.add_parser("sample", help="generate novel views of one image (see `sample --help`)")
    reconstruct = sub.add_parser("reconstruct", help="one image to a coloured 3D mesh (see `reconstruct --help`)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sample"]:  # only these commands load torch and diffusers; `run` starts a kernel instead
        add_sample_arguments(sample)
    elif argv[:1] == ["reconstruct"]:
        add_reconstruct_arguments(reconstruct)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "run":
        return stages.run_command(args)
    elif args.command == "render":
        return render_command(args)
    elif args.command == "sample":
        return sample_command(args)
    elif args.command == "reconstruct":
        return reconstruct_command(args)
    return 0


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `python -m zero1to3 render`."""
    parser.description = (
        "Render stage 01's objects on many machines: job K of N renders shard K/N into the same data folder and "
        "writes manifest.shard-K-of-N.json; a last step merges the N shard manifests into the manifest an unsharded "
        "run writes. Then `python -m zero1to3 run render` (or dvc repro) reuses every object and makes the figures."
    )
    parser.add_argument("--params", default="params.yaml", help="params file whose `render` group is used")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--shard", metavar="K/N", help="render shard K of N, 1 <= K <= N (e.g. $SLURM_ARRAY_TASK_ID/N)")
    what.add_argument("--merge", metavar="N", help="merge the N shard manifests (every job done) into the manifest")
    parser.add_argument("--workers", type=int, default=1, help="Blender processes sharing the cores (images unchanged)")


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` (1-based, as a job array counts) to `(index, count)` = `(K - 1, N)` for `render.render_dataset`.

    Raises:
        ValueError: not two integers `K/N`, or K outside 1..N.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"--shard must be K/N, two whole numbers such as 3/16, got {text!r}")
    k, n = int(match[1]), int(match[2])
    if not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 <= K <= N, got K={k}, N={n}")
    return k - 1, n


def parse_count(text: str) -> int:
    """`--merge N`: the number of shards, a whole number >= 1."""
    if not re.fullmatch(r"\s*\d+\s*", text) or int(text) < 1:
        raise ValueError(f"--merge N needs the number of shards, a whole number >= 1, got {text!r}")
    return int(text)


def render_command(args: argparse.Namespace) -> int:
    """Run `render --shard` or `render --merge`; a user error is one line on stderr and exit 2.

    Paths in the params file (`data_dir`, `render.sources`) are relative to the repository root, as in `run`.
    """
    from zero1to3.dataset import render  # numpy, trimesh: only this command needs them

    try:
        shard = parse_shard(args.shard) if args.shard is not None else None
        count = parse_count(args.merge) if args.merge is not None else None
        cfg = config.RenderConfig.from_dict(read_params(args.params, "render"))
        with contextlib.chdir(files.find_project_root()):
            if shard is None:
                merged = render.merge_manifests(cfg.data_dir, count)
                logger.info("merged %d shard manifests into %s; now `python -m zero1to3 run render`", count, merged)
                return 0
            summary = render.render_dataset(cfg, shard=shard, num_workers=args.workers)
    except (OSError, ValueError) as err:
        print(f"zero1to3 render: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except render.RenderError as err:  # every object of the shard failed, or the environment (disk, a worker)
        print(f"zero1to3 render: {err}", file=sys.stderr)
        return 1
    done = [r for r in summary.results if r.status != "failed"]
    logger.info(
        "shard %d/%d: %d objects (%d views rendered now), %d failed; wrote %s",
        shard[0] + 1,
        shard[1],
        len(done),
        summary.views_rendered,
        len(summary.failed),
        summary.manifest_path,
    )
    return 0


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `python -m zero1to3 sample`."""
    from zero1to3.novel_views import (
        pipeline,  # torch and diffusers: only this command needs them (`run` starts a kernel)
    )

    model, fraction = pipeline.DEFAULT_MODEL, pipeline.DEFAULT_OBJECT_FRACTION

    parser.description = "Generate the view of IMAGE from a camera moved by the given offsets (Zero-1-to-3)."
    parser.add_argument("image", help="input image: RGBA with a transparent background, or RGB on a plain backdrop")
    parser.add_argument("--model", default=model, help=f"model folder from stage 02 (default: {model})")
    parser.add_argument("--polar-deg", type=float, default=0.0, help="polar offset in degrees; > 0 looks from lower")
    parser.add_argument("--azimuth-deg", type=float, default=0.0, help="azimuth offset in degrees (counter-clockwise)")
    parser.add_argument(
        "--radius",
        type=float,
        default=0.0,
        help="distance offset in scene units; > 0 moves away; within the training range (paper's: +-0.7)",
    )
    parser.add_argument(
        "--azimuth-sweep",
        type=int,
        default=0,
        metavar="N",
        help="N views at azimuths --azimuth-deg + k*360/N: --out gets them as one strip, OUT.gif animates them",
    )
    parser.add_argument("--out", required=True, help="output PNG path")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (default: 50)")
    parser.add_argument(
        "--guidance-scale", type=float, default=3.0, help="classifier-free guidance, >= 1 (1: none; default: 3.0)"
    )
    parser.add_argument("--eta", type=float, default=1.0, help="DDIM eta in [0, 1] (default: 1.0, the paper's)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    parser.add_argument("--no-pose", action="store_true", help="sample with a zero pose (the no-pose baseline model)")
    parser.add_argument(
        "--object-fraction",
        type=float,
        default=fraction,
        help=f"share of the frame the object's longer side takes (default: {fraction}, as the renders)",
    )


def sample_command(args: argparse.Namespace) -> int:
    """Run `sample`; a user error (missing model, unreadable image, bad value) is one line on stderr and exit 2."""
    try:
        written = _sample(args)
    except (OSError, ValueError) as err:
        print(f"zero1to3 sample: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    logger.info("wrote %s", ", ".join(str(p) for p in written))
    return 0


def _sample(args: argparse.Namespace) -> list[Path]:
    from zero1to3.single_image import inputs

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png path, got {out}")
    if args.azimuth_sweep < 0:
        raise ValueError(f"--azimuth-sweep must be >= 0 (0: a single view), got {args.azimuth_sweep}")
    image = inputs.load_image(args.image)  # a missing or unreadable image fails before the weights load
    with one_writer(out.parent, f".{out.name}.lock", "sample", out):  # writable and ours before the weights load
        return _sample_into(args, out, image)


def _sample_into(args: argparse.Namespace, out: Path, image: Any) -> list[Path]:
    import numpy as np
    import torch
    from PIL import Image

    from zero1to3.core import figures
    from zero1to3.novel_views import pipeline

    try:
        pipe = pipeline.Zero123Pipeline.from_pretrained(args.model)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err} (stage 02 writes {pipeline.DEFAULT_MODEL}; or pass --model FOLDER)") from err
    pipeline.warn_if_trained_without_pose(Path(args.model), args.no_pose)
    try:
        prepared = pipe.prepare_image(image, args.object_fraction)
    except ValueError as err:
        raise ValueError(f"{args.image}: {err}") from err
    n = args.azimuth_sweep
    azimuth = [args.azimuth_deg + k * 360.0 / n for k in range(n)] if n else args.azimuth_deg
    result = pipe(
        prepared,
        args.polar_deg,
        azimuth,
        args.radius,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        eta=args.eta,
        generator=torch.Generator().manual_seed(args.seed),
        use_pose=not args.no_pose,
        progress=True,
    )
    if not n:
        _write_image(out, result.images[0])
        return [out]
    strip = Image.fromarray(np.concatenate(pipeline.to_uint8(result.array), axis=1))  # (S, N * S, 3): left to right
    _write_image(out, strip)
    gif = figures.save_gif(result.array, out.with_suffix(".gif"), fps=1000.0 / GIF_FRAME_MS, scale=1)
    return [out, gif]


def add_reconstruct_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `python -m zero1to3 reconstruct`."""
    from zero1to3.novel_views import pipeline  # torch and diffusers: only the user commands need them
    from zero1to3.single_image import image_to_3d
    from zero1to3.sjc import mesh

    model, polar, fraction = pipeline.DEFAULT_MODEL, image_to_3d.DEFAULT_POLAR_DEG, pipeline.DEFAULT_OBJECT_FRACTION
    stage04 = mesh.MeshSettings()
    parser.description = (
        "Reconstruct the object in IMAGE as a coloured mesh by Score Jacobian Chaining with the view-conditioned "
        "model (stage 04's method and settings). A rerun with the same --out resumes or re-exports."
    )
    parser.add_argument("image", help="input image: RGBA with a transparent background, or RGB on a plain backdrop")
    parser.add_argument("--out", required=True, help="output folder (mesh.glb/.obj/.ply, turntable, field, record)")
    parser.add_argument("--model", default=model, help=f"model folder, as `sample` takes (default: {model})")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda for paper-scale weights")
    parser.add_argument(
        "--polar-deg",
        default=str(polar),
        help=f"polar angle of the input camera in degrees, 0 = from above, 90 = from the side (default: {polar:g}, "
        "the renders' typical view), or 'auto' to estimate it with the model",
    )
    parser.add_argument("--azimuth-deg", type=float, default=0.0, help="azimuth of the input camera (turns the result)")
    parser.add_argument("--radius", type=float, default=None, help="input camera distance (default: mid-range, 1.85)")
    parser.add_argument("--params", default=None, help="params file whose `sjc` group is used (default: the study's)")
    parser.add_argument("--iterations", type=int, default=None, help="SJC iterations (default: the params file's)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the params file's sjc.seed)")
    parser.add_argument(
        "--object-fraction",
        type=float,
        default=fraction,
        help=f"share of the frame the object's longer side takes (default: {fraction}, as the renders)",
    )
    parser.add_argument(
        "--keep-framing",
        action="store_true",
        help="use the image as it is (a render at the model's size): with its true camera, stage 04's run exactly",
    )
    parser.add_argument("--no-pose", action="store_true", help="use the no-pose baseline model (SJC-I)")
    mesh_options = [
        ("--mesh-grid", int, None, "nodes per axis the density is queried on (default: 2x the field's, as stage 04)"),
        (
            "--mesh-threshold",
            float,
            stage04.threshold_mean_factor,
            "iso-level as a multiple of the mean density (default: %(default)s; the paper: 8)",
        ),
        ("--mesh-smooth", int, stage04.smooth_kernel, "mean filter size, odd (default: %(default)s; the paper: 7)"),
        ("--mesh-erosion", int, stage04.erosion_kernel, "grey erosion size, odd (default: %(default)s; the paper: 5)"),
    ]
    for flag, kind, default, help_text in mesh_options:
        parser.add_argument(flag, type=kind, default=default, help=help_text)
    parser.add_argument("--turntable-frames", type=int, default=12, help="frames of the turntable (default: 12)")


def reconstruct_command(args: argparse.Namespace) -> int:
    """Run `reconstruct`; a user error is one line on stderr and exit 2 (nothing in --out looks finished)."""
    try:
        result = _reconstruct(args)
    except (OSError, ValueError) as err:
        print(f"zero1to3 reconstruct: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    camera = result.record["camera"]
    how = "estimated" if camera["polar_estimated"] else "given"
    logger.info(
        "input camera: polar %.1f deg (%s), azimuth %.1f deg, radius %.2f",
        camera["polar_deg"],
        how,
        camera["azimuth_deg"],
        camera["radius"],
    )
    logger.info("wrote %s", ", ".join(str(p) for p in result.files.values()))
    return 0


def _reconstruct(args: argparse.Namespace) -> Any:
    import dataclasses
    import math

    import torch

    from zero1to3.single_image import image_to_3d, inputs
    from zero1to3.sjc import mesh

    # 1. Everything that needs no weights: settings, camera, image, output folder
    group = read_params(args.params or files.find_project_root() / "params.yaml", "sjc")
    cfg = config.SJCConfig.from_dict(group["config"])
    if args.iterations is not None:
        cfg = dataclasses.replace(cfg, iterations=args.iterations)  # checked again by the config
    seed = group["seed"] if args.seed is None else args.seed
    polar: float | str = args.polar_deg.strip().lower()
    if polar != "auto":
        try:
            polar = float(polar)
        except ValueError:
            raise ValueError(f"--polar-deg must be a number in [0, 180] or 'auto', got {args.polar_deg!r}") from None
    radius = 0.5 * (cfg.radius_min + cfg.radius_max) if args.radius is None else args.radius
    image_to_3d.check_camera(polar, args.azimuth_deg, radius, cfg)
    if not (math.isfinite(args.object_fraction) and 0.05 <= args.object_fraction <= 1.0):
        raise ValueError(f"--object-fraction must be in [0.05, 1], got {args.object_fraction}")
    settings = mesh.MeshSettings(args.mesh_grid, args.mesh_threshold, args.mesh_smooth, args.mesh_erosion)
    image = inputs.load_image(args.image)  # missing, a folder, unreadable, too large: before the weights load
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA device is available here; use --device cpu")
    with one_writer(Path(args.out), RECONSTRUCT_LOCK, "reconstruct"):  # one run per --out, before the weights load
        return _reconstruct_into(args, image, cfg, seed, polar, radius, settings)


def _reconstruct_into(
    args: argparse.Namespace, image: Any, cfg: Any, seed: int, polar: float | str, radius: float, settings: Any
) -> Any:
    from zero1to3.novel_views import pipeline
    from zero1to3.single_image import elevation, image_to_3d
    from zero1to3.sjc import mesh

    # 2. The model
    try:
        pipe = pipeline.Zero123Pipeline.from_pretrained(args.model)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err} (stage 02 writes {pipeline.DEFAULT_MODEL}; or pass --model FOLDER)") from err
    pipeline.warn_if_trained_without_pose(Path(args.model), args.no_pose)
    components = pipe.to(args.device).components
    probe = None
    if polar == "auto":
        probe = elevation.load_probe(args.model, components.cc_projection.clip_dim)
        if probe is None:
            logger.warning(
                "%s has no %s (stage 02 writes one): estimating the polar angle by silhouette "
                "consistency, which is less accurate",
                args.model,
                elevation.PROBE_FILE,
            )

    # 3. Reconstruct; errors about the image name it
    try:
        return image_to_3d.reconstruct_image(
            components,
            image,
            args.out,
            cfg,
            seed,
            polar_deg=polar,
            azimuth_deg=args.azimuth_deg,
            radius=radius,
            object_fraction=None if args.keep_framing else args.object_fraction,
            mesh_settings=settings,
            use_pose=not args.no_pose,
            turntable_frames=args.turntable_frames,
            model_name=str(args.model),
            image_name=str(args.image),
            elevation_probe=probe,
        )
    except mesh.EmptyMeshError as err:
        raise mesh.EmptyMeshError(f"{err}; the field is kept in {args.out}: a rerun re-exports it") from err


def _write_image(path: Path, image: Any) -> None:
    """A PIL image as PNG, atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    files.write_bytes_atomic(path, buffer.getvalue())


if __name__ == "__main__":
    sys.exit(main())
