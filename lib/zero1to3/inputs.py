"""Preparing a user's own image as a model input: object on white, centred, framed like the training renders.

The model only knows objects that float on white, centred, filling a certain share of the frame
(the renders of stage 01). A photo has to be brought there first (spec 4.2 describes the paper's
demo: background removal, crop to the object, resize, pad onto white):

1. **Foreground.** An RGBA image uses its alpha. An RGB image must have a plain background: its
   colour is read off the image border and every pixel far enough from it is foreground.
2. **On white.** The object is alpha-composited onto white.
3. **Framing.** The object's bounding box is cropped, scaled so that its longer side is
   `object_fraction` of the output size, and pasted at the centre of a white square.

Anything it cannot handle (unreadable file, tiny image, busy background, no object) is a
`ValueError` that says what was wrong and what is accepted.
"""

from __future__ import annotations

import dataclasses
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
    """Open an image file, with an error that names the file and the accepted formats."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input image {path} does not exist")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read {path} as an image ({err}); accepted: PNG (RGBA or RGB), JPEG, WebP") from err
    return image


def foreground(image: Image.Image) -> tuple[Float[np.ndarray, "H W 3"], Float[np.ndarray, "H W"]]:
    """RGB in [0, 1] and a soft foreground alpha in [0, 1] (step 1 of the module docstring)."""
    if min(image.size) < MIN_SIZE_PX:
        raise ValueError(f"the image is {image.size[0]}x{image.size[1]} px; at least {MIN_SIZE_PX} px a side is needed")
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
