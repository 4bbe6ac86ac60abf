import warnings

import numpy as np
import pytest
from PIL import Image

from zero1to3.single_image import inputs


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


def test_a_directory_is_not_an_image_file(tmp_path):
    with pytest.raises(IsADirectoryError, match=f"input image {tmp_path} is a directory, not an image file"):
        inputs.load_image(tmp_path)


def test_a_huge_image_is_refused_with_its_size_and_the_limit(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (14000, 14000), 1).save(path)  # 196 Mpx, beyond Pillow's hard limit (2 x MAX_IMAGE_PIXELS)
    with pytest.raises(ValueError, match=r"huge.png is too large \(14000x14000 px = 196,000,000 pixels\), over the "):
        inputs.prepare_input(path, 64, 0.6)


def test_an_image_over_the_limit_but_under_pillows_hard_limit_is_refused_too(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    disc_rgba(size=40)[0].save(path)  # 1,600 px: Pillow only warns between the limit and twice the limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning is not shown on top of the error
        with pytest.raises(ValueError, match=r"too large \(40x40 px = 1,600 pixels\), over the limit of 1,000 pixels"):
            inputs.load_image(path)
    assert Image.MAX_IMAGE_PIXELS == 1000  # reading the size did not change the limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1600)
    assert inputs.load_image(path).size == (40, 40)


def grey_disc(size=64):
    """A dark disc on white, 8-bit greyscale, and the same picture as 16-bit."""
    yy, xx = np.mgrid[:size, :size]
    grey = np.full((size, size), 255, np.uint8)
    grey[(yy - 30) ** 2 + (xx - 34) ** 2 <= 144] = 60
    return Image.fromarray(grey, "L"), grey.astype(np.uint16) * 257  # 255 -> 65535


def test_a_16_bit_greyscale_png_works_like_its_8_bit_version(tmp_path):
    eight, sixteen = grey_disc()
    path = tmp_path / "grey16.png"
    Image.fromarray(sixteen).save(path)
    assert Image.open(path).mode == "I;16"
    expected = inputs.prepare_input(eight, 32, object_fraction=0.6)
    assert expected.mask.any()
    for image in (path, Image.fromarray(sixteen.astype(np.int32), "I")):  # "I": how some Pillow versions decode it
        got = inputs.prepare_input(image, 32, object_fraction=0.6)
        np.testing.assert_array_equal(got.image, expected.image)
        np.testing.assert_array_equal(got.source_mask, expected.source_mask)


def test_a_32_bit_image_beyond_16_bit_values_is_refused():
    values = np.full((40, 40), 70000, np.int32)
    with pytest.raises(ValueError, match=r"mode 'I' image must hold 16-bit values in \[0, 65535\], got \[70000"):
        inputs.prepare_input(Image.fromarray(values, "I"), 32, 0.6)
