"""Letterbox geometry shared by training and inference.

The model receives every photo scaled to fit a square of ``size`` pixels and padded
with a constant color. Training builds its inputs with these functions, so the
serving pipeline and the model agree on the frame by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

ScalarT = TypeVar("ScalarT", bound=np.generic)

PAD_VALUE = 255
"""Padding level of all three channels: white, as on a studio packshot."""


@dataclass(frozen=True)
class Placement:
    """Position and size of a photo inside the letterboxed square, in square pixels.

    Attributes:
        top: first row of the photo inside the square.
        left: first column of the photo inside the square.
        height: rows the scaled photo covers, at least 1.
        width: columns the scaled photo covers, at least 1.
    """

    top: int
    left: int
    height: int
    width: int


def fit_inside_square(height: int, width: int, size: int) -> Placement:
    """Compute where a height x width photo lands when fit, centred, in a size x size square.

    Args:
        height: photo rows, at least 1.
        width: photo columns, at least 1.
        size: side of the square in pixels, at least 1.
    Returns:
        Placement of the scaled photo; its long side equals size.
    Raises:
        ValueError: a dimension is below 1.
    """
    if height < 1 or width < 1 or size < 1:
        raise ValueError(f"expected positive height, width and size, got {height}, {width}, {size}")
    scale = size / max(height, width)
    scaled_h = min(size, max(1, round(height * scale)))
    scaled_w = min(size, max(1, round(width * scale)))
    return Placement(top=(size - scaled_h) // 2, left=(size - scaled_w) // 2, height=scaled_h, width=scaled_w)


def letterbox(image: NDArray[np.uint8], size: int) -> tuple[NDArray[np.uint8], Placement]:
    """Scale a photo to fit a square and pad the rest with white.

    Args:
        image: (H, W, 3) uint8 RGB, 0-255.
        size: side of the output square in pixels.
    Returns:
        (size, size, 3) uint8 RGB square, and the Placement of the photo inside it.
    Raises:
        ValueError: image is not (H, W, 3) uint8.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    placement = fit_inside_square(image.shape[0], image.shape[1], size)
    scaled = Image.fromarray(image).resize(
        (placement.width, placement.height), Image.Resampling.BILINEAR, reducing_gap=2.0
    )
    square = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    square[placement.top : placement.top + placement.height, placement.left : placement.left + placement.width] = (
        np.asarray(scaled)
    )
    return square, placement


def letterbox_mask(mask: NDArray[np.bool_], size: int) -> NDArray[np.bool_]:
    """Scale a mask the way ``letterbox`` scales its photo; padding is False.

    Args:
        mask: (H, W) bool.
        size: side of the output square in pixels.
    Returns:
        (size, size) bool.
    """
    placement = fit_inside_square(mask.shape[0], mask.shape[1], size)
    scaled = Image.fromarray(mask.astype(np.uint8) * 255).resize(
        (placement.width, placement.height), Image.Resampling.BILINEAR
    )
    square = np.zeros((size, size), dtype=bool)
    square[placement.top : placement.top + placement.height, placement.left : placement.left + placement.width] = (
        np.asarray(scaled) >= 128
    )
    return square


def crop_placement(square_map: NDArray[ScalarT], placement: Placement) -> NDArray[ScalarT]:
    """Cut the photo's region out of a letterboxed (size, size) map.

    Args:
        square_map: (size, size) map in the letterboxed frame, any dtype (float32 for probabilities).
        placement: where the photo lies, from ``letterbox``.
    Returns:
        (placement.height, placement.width) view of the photo's region, same dtype; writes go
        through to square_map.
    """
    return square_map[
        placement.top : placement.top + placement.height, placement.left : placement.left + placement.width
    ]
