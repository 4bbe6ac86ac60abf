import numpy as np
from PIL import Image

from zero1to3 import cameras, data, figures


def fake_object(object_id: str, num_views: int = 3) -> data.ObjectViews:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 255, size=(num_views, 16, 16, 4), dtype=np.uint8)
    eye = cameras.sample_camera_positions(num_views, rng)
    polar, azimuth, radius = cameras.cartesian_to_spherical(eye)
    meta = {"polar_deg": np.degrees(polar).tolist(), "azimuth_deg": np.degrees(azimuth).tolist()}
    return data.ObjectViews(object_id, rgba, cameras.c2w_to_w2c(cameras.look_at(eye)), meta | {"radius": radius})


def test_figures_save_as_png_at_fixed_dpi(tmp_path):
    views = [fake_object("a"), fake_object("b", 2)]
    sheet = figures.save_figure(figures.contact_sheet(views), tmp_path / "sheet.png")
    cams = figures.save_figure(figures.camera_positions(views, size_in=4.0), tmp_path / "c" / "cams.png")
    hist = figures.save_figure(
        figures.polar_histogram(np.array([10.0, 90.0]), np.array([1.5, 2.0])), tmp_path / "h.png"
    )
    assert Image.open(cams).size == (4 * figures.DPI, 4 * figures.DPI)
    for path in (sheet, hist):
        assert Image.open(path).format == "PNG"
