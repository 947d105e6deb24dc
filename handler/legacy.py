"""Rendering of the older service's ``/predict`` response (pure).

The older service returned one RGBA PNG: the four photos letterboxed to 128 px on white and tiled
2 x 2 into 256 x 256, product pixels opaque and all others transparent. Tile order is row-major:
photo 0 top left, 1 top right, 2 bottom left, 3 bottom right. Missing photos leave white,
transparent tiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from handler.letterbox import PAD_VALUE, letterbox, letterbox_mask

TILE_SIZE = 128
GRID_SIDE = 2


def render_legacy_grid(images: Sequence[NDArray[np.uint8]], masks: Sequence[NDArray[np.bool_]]) -> NDArray[np.uint8]:
    """Tile up to four photos with their masks as alpha, the way the older service did.

    Args:
        images: 0 to 4 photos, each (H, W, 3) uint8 RGB.
        masks: one (H, W) bool mask per photo, True on the product, same H, W as its photo.
    Returns:
        (256, 256, 4) uint8 RGBA; alpha is 255 on product pixels and 0 elsewhere, padding included.
    Raises:
        ValueError: more than four photos, a different number of masks, or a mask whose size
            differs from its photo.
    """
    if len(images) > GRID_SIDE * GRID_SIDE or len(images) != len(masks):
        raise ValueError(f"expected up to 4 photos and one mask each, got {len(images)} photos and {len(masks)} masks")
    side = TILE_SIZE * GRID_SIDE
    grid = np.zeros((side, side, 4), dtype=np.uint8)
    grid[..., :3] = PAD_VALUE

    for index, (image, mask) in enumerate(zip(images, masks, strict=True)):
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask {index} has shape {mask.shape}, expected {image.shape[:2]}")
        square, _ = letterbox(image, TILE_SIZE)
        alpha = letterbox_mask(mask.astype(bool), TILE_SIZE)
        top, left = (index // GRID_SIDE) * TILE_SIZE, (index % GRID_SIDE) * TILE_SIZE
        grid[top : top + TILE_SIZE, left : left + TILE_SIZE, :3] = square
        grid[top : top + TILE_SIZE, left : left + TILE_SIZE, 3] = np.where(alpha, 255, 0)
    return grid
