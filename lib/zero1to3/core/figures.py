"""Figures: each function returns a matplotlib Figure (or image rows, a GIF, mesh pictures) from plain arrays.

`save_figure` writes a figure at a fixed size and dpi. Images are `(..., H, W, 3)` floats in [0, 1], already
composited on white; row builders take anything with `object_ids`, `input_rgb` and `target_rgb`
(`outputs.HeldOutViews`), so this module reads no files and knows no stage.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Protocol, runtime_checkable

import matplotlib.pyplot as plt
import numpy as np
import trimesh
from jaxtyping import Float, Int, UInt8
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from PIL import Image

from zero1to3.core import files

DPI = 120
LABEL_FONT_SIZE = 7
LABEL_CHAR_IN = 0.06  # width of one label character at LABEL_FONT_SIZE, inches (generous: labels must not clip)
METHOD_LABELS = {"zero123": "ours", "no_pose": "no pose", "shuffled_pose": "shuffled pose", "copy_input": "copy input"}


@runtime_checkable
class ViewRows(Protocol):
    """Input and true target views of several objects (`outputs.HeldOutViews` is one)."""

    object_ids: list[str]

    @property
    def input_rgb(self) -> np.ndarray: ...  # (N, H, W, 3) in [0, 1]

    @property
    def target_rgb(self) -> np.ndarray: ...  # (N, T, H, W, 3) in [0, 1]


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save `fig` as PNG at `DPI` (the figure's own size), creating folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})  # no version stamp: same figure, same bytes
    return path


def contact_sheet(
    images: dict[str, Float[np.ndarray, "V H W 3"]],
    polar_deg: dict[str, list[float]],
    max_views: int = 12,
    cell_in: float = 0.9,
) -> Figure:
    """One row per object (`{object id: its views}`), one column per view, each titled with its polar angle."""
    num_views = min(max_views, max(len(v) for v in images.values()))
    fig, axes = plt.subplots(
        len(images), num_views, figsize=(cell_in * num_views + 0.8, cell_in * len(images)), squeeze=False
    )
    for row, (object_id, views) in enumerate(images.items()):
        polar = polar_deg.get(object_id, [])
        for col in range(num_views):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_linewidth(0.3)
            if col < len(views):
                ax.imshow(views[col], interpolation="nearest")
                if col < len(polar):
                    ax.set_title(f"{polar[col]:.0f}°", fontsize=5, pad=1)
        axes[row, 0].set_ylabel(object_id, fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle("Renders (title: camera polar angle from +Z)", fontsize=8)
    fig.subplots_adjust(left=0.1, right=0.99, top=0.9, bottom=0.01, wspace=0.05, hspace=0.25)
    return fig


def camera_positions(centers: dict[str, Float[np.ndarray, "V 3"]], size_in: float = 5.0) -> Figure:
    """Camera centres of several objects (`{object id: centres}`) around the unit cube, with each viewing ray."""
    fig = plt.figure(figsize=(size_in, size_in))
    ax = fig.add_subplot(projection="3d")
    for a, b in itertools.combinations(itertools.product([-0.5, 0.5], repeat=3), 2):
        if np.sum(np.abs(np.subtract(a, b)) > 0) == 1:  # cube edges differ in exactly one coordinate
            ax.plot(*zip(a, b, strict=True), color="0.4", linewidth=0.6)
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    for i, (object_id, eyes) in enumerate(centers.items()):
        ax.scatter(*eyes.T, s=10, color=colors[i % 10], label=object_id, depthshade=False)
        for c in eyes:  # a short segment towards the origin: where the camera looks
            ax.plot(*np.stack([c, 0.8 * c]).T, color=colors[i % 10], linewidth=0.6)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z (up)")
    ax.tick_params(labelsize=6)
    lim = 2.3
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_zlim(-lim, lim)
    ax.set_box_aspect((1, 1, 1))
    ax.legend(fontsize=6, loc="upper left")
    ax.set_title("Camera centres around the unit cube", fontsize=9)
    return fig


def polar_histogram(polar_deg: np.ndarray, radius: np.ndarray, size_in: float = 6.0) -> Figure:
    """Histograms of every rendered view's polar angle and camera distance."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(size_in, size_in / 2.4))
    ax0.hist(polar_deg, bins=36, range=(0, 180), color="C0")
    ax0.set_xlabel("polar angle from +Z (deg)")
    ax0.set_title("elevation = 90° - polar", fontsize=8)
    ax0.set_ylabel("views")
    ax1.hist(radius, bins=20, color="C1")
    ax1.set_xlabel("camera distance (world units)")
    fig.tight_layout()
    return fig


def loss_curves(histories: dict[str, list[dict[str, float]]], key: str = "loss", size_in: float = 6.0) -> Figure:
    """Training losses of several runs against the step, raw (faint) and smoothed (solid), log scale."""
    fig, ax = plt.subplots(figsize=(size_in, size_in / 1.8))
    for i, (name, history) in enumerate(histories.items()):
        steps = np.array([row["step"] for row in history])
        values = np.array([row[key] for row in history])
        window = max(1, len(values) // 50)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(steps, values, color=f"C{i}", alpha=0.2, linewidth=0.6)
        ax.plot(steps[window - 1 :], smooth, color=f"C{i}", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.legend()
    fig.tight_layout()
    return fig


def image_grid(rows: dict[str, np.ndarray], cell_in: float = 0.8, title: str = "") -> Figure:
    """Rows of images (each `(N, H, W, 3)` in [0, 1]) labelled by their key; e.g. input / truth / models."""
    num_cols = max(len(images) for images in rows.values())
    label_in = LABEL_CHAR_IN * max(len(name) for name in rows) + 0.1  # the left margin holds the longest label
    width = cell_in * num_cols + label_in + 0.1
    fig, axes = plt.subplots(len(rows), num_cols, figsize=(width, cell_in * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c in range(num_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(np.clip(images[c], 0.0, 1.0), interpolation="nearest")
        axes[r, 0].set_ylabel(name, fontsize=LABEL_FONT_SIZE, rotation=0, ha="right", va="center")
    height = cell_in * len(rows)
    if title:  # pinned 0.08 in below the top edge, above the first row (which starts 0.35 in down)
        fig.suptitle(title, fontsize=8, y=1.0 - 0.08 / height, va="top")
    top = 1.0 - (0.35 if title else 0.02) / height
    fig.subplots_adjust(left=label_in / width, right=1.0 - 0.05 / width, top=top, bottom=0.01, wspace=0.04, hspace=0.06)
    return fig


def time_bars(seconds: dict[str, float], size_in: float = 6.0) -> Figure:
    """Where the time went: one horizontal bar per part, in minutes."""
    fig, ax = plt.subplots(figsize=(size_in, 0.4 * len(seconds) + 0.8))
    names = list(seconds)
    minutes = [seconds[n] / 60.0 for n in names]
    ax.barh(names, minutes, color="C0")
    for y, m in enumerate(minutes):
        ax.text(m, y, f" {m:.1f} min", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("minutes")
    ax.set_xlim(0, max(minutes + [1e-3]) * 1.25)
    fig.tight_layout()
    return fig


def per_object_scatter(
    ours: dict[str, Float[np.ndarray, " N"]], others: dict[str, dict[str, Float[np.ndarray, " N"]]], metric: str
) -> Figure:
    """Per set, each object's value for ours (y) against each other method (x); above the diagonal ours is better.

    Args:
        ours: `{set name: (N,) values}` of our model.
        others: `{set name: {method: (N,) values}}`, the same objects in the same order.
        metric: The metric's name, for the axes.
    """
    fig, axes = plt.subplots(1, len(ours), figsize=(5 * len(ours), 4), squeeze=False)
    for ax, (name, values) in zip(axes[0], ours.items(), strict=True):
        for (method, theirs), marker in zip(others[name].items(), itertools.cycle("o^xsd"), strict=False):
            ax.scatter(theirs, values, s=14, marker=marker, label=METHOD_LABELS.get(method, method))
        lims = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
        ax.plot(lims, lims, color="grey", lw=0.8)
        ax.set(
            xlabel=f"other method, {metric}",
            ylabel=f"ours, {metric}",
            title=f"{name}: per object (above the line: ours better)",
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def angle_breakdown(
    stats: dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]],
    metrics: tuple[str, ...] = ("fg_psnr", "silhouette_iou"),
) -> Figure:
    """Each method's mean (with its 95% interval) against the angle between input and target camera.

    Args:
        stats: `{set: {bin label "low_high": {method: {metric: {"mean", "ci_low", "ci_high"}}}}}`
            (`evaluate.summary_stats` of each bin of `evaluate.scores_by_angle`).
        metrics: One column of panels per metric; one row per set.
    """
    fig, axes = plt.subplots(len(stats), len(metrics), figsize=(4.2 * len(metrics), 3.2 * len(stats)), squeeze=False)
    for r, (name, bins) in enumerate(stats.items()):
        labels = list(bins)
        x = np.arange(len(labels))
        methods = list(dict.fromkeys(m for per_bin in bins.values() for m in per_bin))
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            for k, method in enumerate(methods):
                values = [bins[b].get(method, {}).get(metric, {}) for b in labels]
                mean = np.array([v.get("mean", np.nan) for v in values])
                low = np.array([v.get("ci_low", np.nan) for v in values])
                high = np.array([v.get("ci_high", np.nan) for v in values])
                err = np.stack([mean - low, high - mean])  # (2, bins): distances below and above the mean
                ax.errorbar(
                    x + 0.06 * (k - (len(methods) - 1) / 2),
                    mean,
                    yerr=err,
                    marker="o",
                    ms=3,
                    capsize=2,
                    label=METHOD_LABELS.get(method, method),
                )
            ax.set_xticks(x, [f"{b.replace('_', '-')}°" for b in labels])
            ax.set(xlabel="angle between input and target camera", ylabel=metric, title=f"{name}: {metric}")
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def save_gif(frames: Float[np.ndarray, "*shape"], path: str | Path, fps: float = 8.0, scale: int = 2) -> Path:
    """A looping animated GIF of frames in [0, 1], upscaled `scale` x (nearest) for display; written atomically."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"`frames` must be (F, H, W, 3), got {frames.shape}")
    if scale < 1 or fps <= 0:
        raise ValueError(f"need `scale` >= 1 and `fps` > 0, got {scale}, {fps}")
    big = np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)
    pictures = [Image.fromarray(f) for f in (np.clip(big, 0.0, 1.0) * 255).round().astype(np.uint8)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=1000.0 / fps, loop=0)
    path = Path(path)
    files.write_bytes_atomic(path, buffer.getvalue())
    return path


def mesh_snapshots(
    mesh_file: str | Path, azimuths_deg: list[float], elevation_deg: float = 20.0, size_px: int = 96
) -> Float[np.ndarray, "K H W 3"]:
    """Shaded pictures of a mesh from several azimuths (matplotlib's Agg canvas), `(K, H, W, 3)` in [0, 1].

    The axes span the unit cube [-0.5, 0.5]^3 of the normalised frame, Z up, so a reconstruction
    and its ground truth drawn this way share scale and orientation. A missing or empty mesh
    gives blank white pictures. Drawn off-screen: the notebook's plotting backend is left alone.
    """
    mesh = trimesh.load(mesh_file, force="mesh") if Path(mesh_file).is_file() else None
    light = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    shots = []
    for azimuth in azimuths_deg:
        fig = Figure(figsize=(size_px / 100, size_px / 100), dpi=100)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes([0, 0, 1, 1], projection="3d")
        if mesh is not None and len(mesh.faces):
            shade = 0.35 + 0.65 * np.clip(mesh.face_normals @ light, 0.0, 1.0)
            colours = np.stack([shade * 0.55, shade * 0.7, shade * 0.9, np.ones_like(shade)], axis=1)
            ax.add_collection3d(Poly3DCollection(mesh.vertices[mesh.faces], facecolors=colours, linewidths=0))
        for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            setter(-0.5, 0.5)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=elevation_deg, azim=azimuth)
        ax.set_axis_off()
        canvas.draw()
        shots.append(np.asarray(canvas.buffer_rgba())[..., :3] / 255.0)
    return np.stack(shots)


# ---------------------------------------------------------------------------------------------------------------
# Image rows for `image_grid` (`{row label: (K, H, W, 3) in [0, 1]}`)


def comparison_rows(
    views: ViewRows, predictions: dict[str, UInt8[np.ndarray, "N T H W 3"]], indices: list[int]
) -> dict[str, Float[np.ndarray, "K H W 3"]]:
    """Per object: a row of the input then the true targets, then one row per method (a blank under the input)."""
    inputs, targets = views.input_rgb, views.target_rgb
    rows = {}
    for i in indices:
        oid = views.object_ids[i]
        truth = np.concatenate([inputs[i][None], targets[i]])
        rows[f"{oid}: input | truth"] = truth
        for method, images in predictions.items():
            rows[f"{oid}: {METHOD_LABELS.get(method, method)}"] = np.concatenate(
                [np.ones_like(truth[:1]), images[i] / 255.0]
            )
    return rows


def best_worst_rows(
    views: ViewRows,
    predictions: dict[str, UInt8[np.ndarray, "N T H W 3"]],
    values: Float[np.ndarray, " N"],
    picks: dict[str, Int[np.ndarray, " P"] | list[int]],
    methods: tuple[str, ...] = ("zero123", "no_pose"),
) -> dict[str, Float[np.ndarray, "K H W 3"]]:
    """`comparison_rows` for picked objects (`{"best": indices, "worst": indices}`), labelled with the pick and
    the object's value."""
    rows = {}
    for label, indices in picks.items():
        chosen = comparison_rows(views, {m: predictions[m] for m in methods}, [int(i) for i in indices])
        for key, row in chosen.items():
            oid = key.split(":")[0]
            rows[f"{label} ({values[views.object_ids.index(oid)]:.1f}) {key}"] = row
    return rows


def turntable_rows(
    object_id: str,
    input_rgb: Float[np.ndarray, "H W 3"],
    spin: dict[str, np.ndarray],
    mesh_shots: Float[np.ndarray, "F S S 3"],
    truth_shots: Float[np.ndarray, "F S S 3"],
) -> dict[str, Float[np.ndarray, "K H W 3"]]:
    """Rows of the stage 04 figure: the input then the field's turntable, its depth, the mesh, the true mesh.

    `spin` is `sjc.render_turntable`'s output. Depth is shown near = dark, far = light, scaled per object;
    every picture is resized (nearest) to the image size so the rows line up.
    """
    size = input_rgb.shape[0]

    def fit(images: np.ndarray) -> np.ndarray:  # (F, h, w[, 3]) -> (F, size, size, 3), nearest
        idx = (np.arange(size) * images.shape[1] / size).astype(int)
        images = images[:, idx][:, :, idx]
        return images if images.ndim == 4 else np.repeat(images[..., None], 3, axis=-1)

    depth = spin["depth"] / max(float(spin["depth"].max()), 1e-6)
    blank = np.ones((1, size, size, 3))
    return {
        f"{object_id}: input, field": np.concatenate([input_rgb[None], fit(spin["rgb"])]),
        f"{object_id}: depth": np.concatenate([blank, fit(depth)]),
        f"{object_id}: mesh": np.concatenate([blank, fit(mesh_shots)]),
        f"{object_id}: true mesh": np.concatenate([blank, fit(truth_shots)]),
    }
