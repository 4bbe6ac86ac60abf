import numpy as np
import pytest
from PIL import Image

from zero1to3 import inputs


def disc_rgba(size=96, centre=(30, 60), radius=12, color=(200, 30, 30)):
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[inside] = (*color, 255)
    return Image.fromarray(rgba, "RGBA"), inside


def test_rgba_off_centre_object_is_recentred_and_framed():
    image, _ = disc_rgba()
    out = inputs.prepare_input(image, 64, object_fraction=0.5)
    rows, cols = np.nonzero(out.mask)
    assert abs(rows.mean() - 31.5) < 1.0 and abs(cols.mean() - 31.5) < 1.0  # centred
    assert abs((rows.max() - rows.min() + 1) - 32) <= 1  # longer side = half the frame
    np.testing.assert_allclose(out.image[0, 0], [1, 1, 1])  # background white
    np.testing.assert_allclose(out.image[32, 32], [200 / 255, 30 / 255, 30 / 255], atol=0.02)


def test_rgb_on_a_plain_background_gets_a_mask():
    rgb = np.full((80, 80, 3), 90, np.uint8)  # plain grey backdrop
    rgb[20:40, 30:70] = (20, 160, 40)
    out = inputs.prepare_input(Image.fromarray(rgb, "RGB"), 32, object_fraction=0.75)
    assert out.source_mask[20:40, 30:70].all() and out.source_mask.sum() == 20 * 40
    np.testing.assert_allclose(out.image[0, 0], [1, 1, 1])  # the grey became white
    rows, cols = np.nonzero(out.mask)
    assert cols.max() - cols.min() + 1 == 24  # 0.75 * 32 along the longer (horizontal) side


def test_framing_fraction_of_renders():
    views = np.zeros((3, 64, 64, 4), np.uint8)
    views[0, 10:42, 10:20, 3] = 255  # 32 px tall
    views[1, 0:16, 0:16, 3] = 255  # 16 px
    views[2, 5:53, 5:10, 3] = 255  # 48 px
    assert inputs.framing_fraction(views) == 0.5


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p: Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(p), ValueError, "no object found"),
        (lambda p: Image.new("RGB", (8, 40), (255, 255, 255)).save(p), ValueError, "at least 16 px"),
        (lambda p: p.write_bytes(b"not an image at all"), ValueError, "accepted: PNG"),
        (
            lambda p: Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(p),
            ValueError,
            "not a plain background",
        ),
    ],
    ids=["empty", "tiny", "unreadable", "busy-background"],
)
def test_bad_inputs_say_what_is_wrong(tmp_path, make, error, match):
    path = tmp_path / "input.png"
    make(path)
    with pytest.raises(error, match=match):
        inputs.prepare_input(path, 64, object_fraction=0.6)


def test_missing_file_and_bad_fraction(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        inputs.prepare_input(tmp_path / "nope.png", 64, 0.6)
    with pytest.raises(ValueError, match="object_fraction"):
        inputs.prepare_input(disc_rgba()[0], 64, 1.5)
