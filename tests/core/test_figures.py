import dataclasses

import numpy as np
import pytest
import trimesh
from PIL import Image

from zero1to3 import cameras
from zero1to3.core import figures
from zero1to3.dataset import data


def fake_object(object_id: str, num_views: int = 3) -> data.ObjectViews:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 255, size=(num_views, 16, 16, 4), dtype=np.uint8)
    eye = cameras.sample_camera_positions(num_views, rng)
    polar, azimuth, radius = cameras.cartesian_to_spherical(eye)
    meta = {"polar_deg": np.degrees(polar).tolist(), "azimuth_deg": np.degrees(azimuth).tolist()}
    return data.ObjectViews(object_id, rgba, cameras.c2w_to_w2c(cameras.look_at(eye)), meta | {"radius": radius})


def test_figures_save_as_png_at_fixed_dpi(tmp_path):
    views = [fake_object("a"), fake_object("b", 2)]
    images = {v.object_id: data.composite_on_white(v.rgba) for v in views}
    sheet = figures.save_figure(
        figures.contact_sheet(images, {v.object_id: v.meta["polar_deg"] for v in views}), tmp_path / "sheet.png"
    )
    centers = {v.object_id: v.camera_centers for v in views}
    cams = figures.save_figure(figures.camera_positions(centers, size_in=4.0), tmp_path / "c" / "cams.png")
    hist = figures.save_figure(
        figures.polar_histogram(np.array([10.0, 90.0]), np.array([1.5, 2.0])), tmp_path / "h.png"
    )
    assert Image.open(cams).size == (4 * figures.DPI, 4 * figures.DPI)
    for path in (sheet, hist):
        assert Image.open(path).format == "PNG"


def test_gif_has_every_frame_upscaled(tmp_path):
    frames = np.zeros((3, 4, 5, 3))
    frames[1] = 1.0
    path = figures.save_gif(frames, tmp_path / "orbit.gif", scale=2)
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (10, 8)
        gif.seek(1)
        assert np.asarray(gif.convert("RGB")).min() == 255
    with pytest.raises(ValueError, match=r"\(F, H, W, 3\)"):
        figures.save_gif(frames[0], tmp_path / "bad.gif")


def test_mesh_snapshots_show_the_mesh_and_blank_for_none(tmp_path):
    path = tmp_path / "box.ply"
    trimesh.creation.box(extents=(0.6, 0.6, 0.6)).export(path)
    shots = figures.mesh_snapshots(path, [0.0, 90.0], size_px=64)
    assert shots.shape == (2, 64, 64, 3)
    assert (shots.min(axis=-1) < 0.9).mean() > 0.1  # the box covers a good part of the picture
    blank = figures.mesh_snapshots(tmp_path / "missing.ply", [0.0], size_px=64)
    assert blank.min() > 0.99


@dataclasses.dataclass
class _Views:
    object_ids: list
    input_rgb: np.ndarray
    target_rgb: np.ndarray


def _views(n=3, t=2, size=4):
    rng = np.random.default_rng(0)
    return _Views([f"object_{i}" for i in range(n)], rng.random((n, size, size, 3)), rng.random((n, t, size, size, 3)))


def test_comparison_rows_put_input_and_truth_above_each_method():
    views = _views()
    pred = np.full((3, 2, 4, 4, 3), 255, np.uint8)
    rows = figures.comparison_rows(views, {"zero123": pred, "no_pose": pred // 2}, [2])
    assert list(rows) == ["object_2: input | truth", "object_2: ours", "object_2: no pose"]
    np.testing.assert_array_equal(rows["object_2: input | truth"][0], views.input_rgb[2])
    np.testing.assert_array_equal(rows["object_2: input | truth"][1:], views.target_rgb[2])
    assert rows["object_2: ours"].min() == 1.0 and rows["object_2: no pose"][1:].max() == pytest.approx(127 / 255)
    picked = figures.best_worst_rows(
        views, {"zero123": pred, "no_pose": pred}, np.array([1.0, 2.0, 3.5]), {"best": np.array([2]), "worst": [0]}
    )
    assert list(picked)[0] == "best (3.5) object_2: input | truth" and "worst (1.0) object_0: ours" in picked


def test_turntable_rows_line_up_at_the_image_size():
    spin = {"rgb": np.zeros((3, 8, 8, 3)), "depth": np.linspace(1, 2, 3 * 4).reshape(3, 2, 2)}
    shots = np.ones((3, 16, 16, 3))
    rows = figures.turntable_rows("duck", np.zeros((8, 8, 3)), spin, shots, shots * 0.5)
    assert list(rows) == ["duck: input, field", "duck: depth", "duck: mesh", "duck: true mesh"]
    assert all(row.shape == (4, 8, 8, 3) for row in rows.values())
    assert rows["duck: depth"][1:].max() == pytest.approx(1.0) and rows["duck: true mesh"][1:].max() == 0.5


def test_row_labels_fit_inside_the_figure():
    rows = {"a_rather_long_object_name: input | truth": np.zeros((9, 4, 4, 3)), "x": np.zeros((2, 4, 4, 3))}
    rows |= {f"row {i}": np.zeros((9, 4, 4, 3)) for i in range(30)}  # tall, as stage 03's: the title must still fit
    fig = figures.image_grid(rows, cell_in=0.7, title="t")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[::9]:
        box = ax.yaxis.label.get_window_extent(renderer)
        assert box.x0 >= 0, f"label {ax.get_ylabel()!r} is clipped on the left"
    title = fig._suptitle.get_window_extent(renderer)
    assert title.y0 >= fig.axes[0].get_window_extent(renderer).y1, "the title overlaps the first row"
    assert title.y1 <= fig.bbox.y1, "the title is cut at the top"


def test_curves_bars_and_scatter_draw_what_they_are_given(tmp_path):
    history = [{"step": s, "loss": 1.0 / s} for s in range(1, 101)]
    fig = figures.loss_curves({"pose": history, "no_pose": history[:50]})
    assert [line.get_label() for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")] == [
        "pose",
        "no_pose",
    ]
    bars = figures.time_bars({"vae": 120.0, "model": 600.0})
    assert [round(p.get_width(), 3) for p in bars.axes[0].patches] == [2.0, 10.0]
    ours = {"test": np.array([20.0, 21.0])}
    scatter = figures.per_object_scatter(ours, {"test": {"no_pose": np.array([19.0, 22.0])}}, "fg PSNR (dB)")
    offsets = scatter.axes[0].collections[0].get_offsets()
    np.testing.assert_array_equal(offsets, [[19.0, 20.0], [22.0, 21.0]])
    assert Image.open(figures.save_figure(scatter, tmp_path / "s.png")).format == "PNG"


def test_angle_breakdown_plots_each_methods_mean_and_interval_per_bin():
    cell = lambda m: {"mean": m, "ci_low": m - 1.0, "ci_high": m + 0.5}  # noqa: E731
    stats = {
        "test": {
            "0_45": {"zero123": {"fg_psnr": cell(20.0), "silhouette_iou": cell(0.8)}},
            "45_90": {"zero123": {"fg_psnr": cell(18.0), "silhouette_iou": cell(0.7)}},
        }
    }
    fig = figures.angle_breakdown(stats)
    ax = fig.axes[0]
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), [20.0, 18.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0-45°", "45-90°"]
    bars = ax.collections[0].get_segments()  # the error bars: from ci_low to ci_high
    np.testing.assert_allclose([seg[:, 1] for seg in bars], [[19.0, 20.5], [17.0, 18.5]])
