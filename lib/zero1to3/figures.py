"""Figures: each function returns a matplotlib Figure; `save_figure` writes it at a fixed size and dpi."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from zero1to3 import data

DPI = 120


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save `fig` as PNG at `DPI` (the figure's own size), creating folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})  # no version stamp: same figure, same bytes
    return path


def contact_sheet(views: list[data.ObjectViews], max_views: int = 12, cell_in: float = 0.9) -> Figure:
    """One row per object, one column per view, composited on white; the object id labels each row."""
    num_views = min(max_views, max(len(v.rgba) for v in views))
    fig, axes = plt.subplots(
        len(views), num_views, figsize=(cell_in * num_views + 0.8, cell_in * len(views)), squeeze=False
    )
    for row, obj in enumerate(views):
        images = data.composite_on_white(obj.rgba)
        polar = obj.meta.get("polar_deg", [])
        for col in range(num_views):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_linewidth(0.3)
            if col < len(images):
                ax.imshow(images[col], interpolation="nearest")
                if col < len(polar):
                    ax.set_title(f"{polar[col]:.0f}°", fontsize=5, pad=1)
        axes[row, 0].set_ylabel(obj.object_id, fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle("Renders (title: camera polar angle from +Z)", fontsize=8)
    fig.subplots_adjust(left=0.1, right=0.99, top=0.9, bottom=0.01, wspace=0.05, hspace=0.25)
    return fig


def camera_positions(views: list[data.ObjectViews], size_in: float = 5.0) -> Figure:
    """Camera centres of several objects in 3D around the unit cube, with each camera's viewing ray."""
    fig = plt.figure(figsize=(size_in, size_in))
    ax = fig.add_subplot(projection="3d")
    for a, b in itertools.combinations(itertools.product([-0.5, 0.5], repeat=3), 2):
        if np.sum(np.abs(np.subtract(a, b)) > 0) == 1:  # cube edges differ in exactly one coordinate
            ax.plot(*zip(a, b, strict=True), color="0.4", linewidth=0.6)
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    for i, obj in enumerate(views):
        centers = obj.camera_centers
        ax.scatter(*centers.T, s=10, color=colors[i % 10], label=obj.object_id, depthshade=False)
        for c in centers:  # a short segment towards the origin: where the camera looks
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
    fig, axes = plt.subplots(len(rows), num_cols, figsize=(cell_in * num_cols + 1.0, cell_in * len(rows)),
                             squeeze=False)  # fmt: skip
    for r, (name, images) in enumerate(rows.items()):
        for c in range(num_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(np.clip(images[c], 0.0, 1.0), interpolation="nearest")
        axes[r, 0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.subplots_adjust(left=0.12, right=0.99, top=0.9 if title else 0.99, bottom=0.01, wspace=0.04, hspace=0.06)
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
