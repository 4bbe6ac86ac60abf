"""Preparing a user's own image as a model input: object on white, centred, framed like the training renders.

The model only knows objects that float on white, centred, filling a certain share of the frame
(the renders of stage 01). A photo has to be brought there first (docs/conventions.md#input-images describes the paper's
demo: background removal, crop to the object, resize, pad onto white):

1. **Foreground.** An RGBA image uses its alpha. An RGB image must have a plain background: its
   colour is read off the image border and every pixel far enough from it is foreground.
2. **On white.** The object is alpha-composited onto white.
3. **Framing.** The object's bounding box is cropped, scaled so that its longer side is
   `object_fraction` of the output size, and pasted at the centre of a white square.

A 16-bit greyscale image is scaled to 8 bits first (Pillow would clip it to white). Anything it
cannot handle (a directory, an unreadable file, an image over the pixel limit, a tiny image, a busy
background, no object) is an error that says what was wrong and what is accepted.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
from jaxtyping import Bool, Float, UInt8
from PIL import Image, UnidentifiedImageError

MIN_SIZE_PX = 16
BACKGROUND_TOLERANCE = 0.12  # colour distance (in [0, 1] RGB) beyond which a pixel is foreground
MAX_BORDER_SPREAD = 0.08  # a border whose colours vary more than this is not a plain background


@dataclasses.dataclass(frozen=True)
class PreparedInput:
    """A model-ready input view."""

    image: Float[np.ndarray, "S S 3"]
    """The object on white, centred and framed, in [0, 1]."""
    mask: Bool[np.ndarray, "S S"]
    """Where the object is, in the prepared image."""
    source_mask: Bool[np.ndarray, "H W"]
    """Where the object was found in the original image."""


def load_image(path: str | Path) -> Image.Image:
    """Open an image file, with an error that names the file and what is accepted.

    Images over Pillow's decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`, about 89 megapixels;
    Pillow itself only warns up to twice that) are refused before they are decoded: the model sees at most a
    few hundred pixels a side, and decoding one costs gigabytes of memory. Downscale such an image first.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"input image {path} is a directory, not an image file; give the path of one image")
    if not path.is_file():
        raise FileNotFoundError(f"input image {path} does not exist")
    limit = Image.MAX_IMAGE_PIXELS
    unreadable = f"cannot read {path} as an image ({{}}); accepted: PNG (RGBA or RGB), JPEG, WebP"
    try:
        with warnings.catch_warnings():  # over the limit Pillow only warns; we refuse below with our own message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)  # reads the header only
    except Image.DecompressionBombError as err:  # beyond twice the limit Pillow refuses before we can look
        raise _too_large(path, _header_size(path), limit) from err
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(unreadable.format(err)) from err
    if limit is not None and image.width * image.height > limit:
        size = image.size
        image.close()
        raise _too_large(path, size, limit)
    try:
        image.load()
    except OSError as err:
        raise ValueError(unreadable.format(err)) from err
    return image


def _too_large(path: Path, size: tuple[int, int], limit: int) -> ValueError:
    """The error for an image over the pixel limit: its size, the limit and what to do."""
    width, height = size
    return ValueError(
        f"input image {path} is too large ({width}x{height} px = {width * height:,} pixels), over the limit of "
        f"{limit:,} pixels (about {math.isqrt(limit):,} px a side); downscale it first, e.g. to 1024 px a side"
    )


def _header_size(path: Path) -> tuple[int, int]:
    """Width and height of an image Pillow refused to open as a decompression bomb, read from its header."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # Image.open only reads the header: no pixels are decoded here
    try:
        with Image.open(path) as image:
            return image.size
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale (modes "I;16*", and "I" as Pillow decodes 16-bit files) scaled to 8-bit "L": 65535 -> 255.

    Pillow's own `convert` clips such values at 255 instead of scaling them, which turns almost any 16-bit
    image white. Other modes are returned as they are.
    """
    if not (image.mode.startswith("I;16") or image.mode == "I"):
        return image
    values = np.asarray(image, np.float64)  # (H, W)
    lo, hi = float(values.min()), float(values.max())
    if lo < 0 or hi > 65535:
        raise ValueError(
            f"a mode {image.mode!r} image must hold 16-bit values in [0, 65535], got [{lo:g}, {hi:g}]; "
            "save it as an 8- or 16-bit PNG"
        )
    return Image.fromarray(np.round(values * (255.0 / 65535.0)).astype(np.uint8), "L")  # 257 * v -> v exactly


def foreground(image: Image.Image) -> tuple[Float[np.ndarray, "H W 3"], Float[np.ndarray, "H W"]]:
    """RGB in [0, 1] and a soft foreground alpha in [0, 1] (step 1 of the module docstring)."""
    if min(image.size) < MIN_SIZE_PX:
        raise ValueError(f"the image is {image.size[0]}x{image.size[1]} px; at least {MIN_SIZE_PX} px a side is needed")
    image = to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), np.float32) / 255.0
        if rgba[..., 3].min() < 1.0:  # a real alpha channel: trust it
            return rgba[..., :3], rgba[..., 3]
    rgb = np.asarray(image.convert("RGB"), np.float32) / 255.0
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])  # (4 sides, 3)
    background = np.median(border, axis=0)
    spread = float(np.median(np.linalg.norm(border - background, axis=1)))
    if spread > MAX_BORDER_SPREAD:
        raise ValueError(
            f"the image border is not a plain background (median colour spread {spread:.3f} > {MAX_BORDER_SPREAD}); "
            "give an RGBA image with the background made transparent, or a photo on a plain backdrop"
        )
    alpha = (np.linalg.norm(rgb - background, axis=-1) > BACKGROUND_TOLERANCE).astype(np.float32)
    return rgb, alpha


def prepare_input(image: Image.Image | str | Path, size_px: int, object_fraction: float) -> PreparedInput:
    """Foreground, composite on white, recentre and rescale (see the module docstring).

    Args:
        image: A PIL image or a path to one.
        size_px: Output size (the model's input size).
        object_fraction: Longer side of the object's box as a share of the output (renders: `framing_fraction`).
    """
    if not 0.05 <= object_fraction <= 1.0:
        raise ValueError(f"`object_fraction` must be in [0.05, 1], got {object_fraction}")
    if not isinstance(image, Image.Image):
        image = load_image(image)
    rgb, alpha = foreground(image)
    source_mask = alpha > 0.5
    if not source_mask.any():
        raise ValueError("no object found: the foreground mask is empty (fully transparent, or all background colour)")
    on_white = rgb * alpha[..., None] + (1.0 - alpha[..., None])  # (H, W, 3)
    rows, cols = np.nonzero(source_mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    crop = np.concatenate([on_white, alpha[..., None]], axis=-1)[top:bottom, left:right]  # (h, w, 4)
    scale = object_fraction * size_px / max(crop.shape[0], crop.shape[1])
    new_h, new_w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    resized = (
        np.asarray(
            Image.fromarray((crop * 255).round().astype(np.uint8), "RGBA").resize((new_w, new_h), Image.LANCZOS),
            np.float32,
        )
        / 255.0
    )
    canvas = np.ones((size_px, size_px, 3), np.float32)
    mask = np.zeros((size_px, size_px), bool)
    y0, x0 = (size_px - new_h) // 2, (size_px - new_w) // 2
    canvas[y0 : y0 + new_h, x0 : x0 + new_w] = resized[..., :3]
    mask[y0 : y0 + new_h, x0 : x0 + new_w] = resized[..., 3] > 0.5
    return PreparedInput(canvas, mask, source_mask)


def framing_fraction(rgba: UInt8[np.ndarray, "N H W 4"]) -> float:
    """Median share of the frame that the longer side of the object's box takes in renders (alpha > 0)."""
    fractions = []
    for view in rgba:
        rows, cols = np.nonzero(view[..., 3] > 0)
        if len(rows):
            fractions.append(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) / view.shape[0])
    if not fractions:
        raise ValueError("no view shows an object (every alpha is 0)")
    return float(np.median(fractions))
