"""Letterbox round trip: a photo's region cut back out of the square matches the photo."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from handler.letterbox import PAD_VALUE, Placement, crop_placement, letterbox

SIZE = 160


def four_color_photo(height: int, width: int) -> NDArray[np.uint8]:
    """Photo split into four colored quadrants (red, green / blue, black), no white pixel."""
    photo = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = max(1, height // 2), max(1, width // 2)
    photo[:top, :left] = (200, 0, 0)
    photo[:top, left:] = (0, 200, 0)
    photo[top:, :left] = (0, 0, 200)
    photo[top:, left:] = (20, 20, 20)
    return photo


def crop_image(square: NDArray[np.uint8], placement: Placement) -> NDArray[np.uint8]:
    """Apply crop_placement to a (size, size, 3) image; its hint names float32 maps, but it only slices."""
    return crop_placement(square, placement)  # type: ignore[arg-type,return-value]  # slicing keeps uint8


@pytest.mark.parametrize(
    ("height", "width"),
    [(3000, 2000), (900, 1600), (500, 500), (300, 1), (1, 300), (7, 5), (160, 160), (2000, 2001)],
)
def test_letterbox_crop_placement_round_trip(height: int, width: int) -> None:
    photo = four_color_photo(height, width)

    square, placement = letterbox(photo, SIZE)
    region = crop_placement(square[:, :, 0].astype(np.float32), placement)

    # The scaled photo keeps the aspect ratio, fills the long side and is centred.
    assert square.shape == (SIZE, SIZE, 3)
    assert max(placement.height, placement.width) == SIZE
    assert region.shape == (placement.height, placement.width)
    assert abs(placement.height * width - placement.width * height) <= max(height, width)
    assert abs(2 * placement.top + placement.height - SIZE) <= 1
    assert abs(2 * placement.left + placement.width - SIZE) <= 1

    # Every pixel outside the placement is padding, and no pixel inside is.
    inside = np.zeros((SIZE, SIZE), dtype=bool)
    inside[placement.top : placement.top + placement.height, placement.left : placement.left + placement.width] = True
    assert (square[~inside] == PAD_VALUE).all()
    assert (square[inside].min(axis=-1) < PAD_VALUE).all()

    # Scaled back to the photo's size, the region shows each quadrant where the photo has it.
    restored = np.asarray(
        Image.fromarray(crop_image(square, placement)).resize((width, height), Image.Resampling.NEAREST),
        dtype=np.int16,
    )
    assert restored.shape == photo.shape
    rows = sorted({height // 4, (3 * height) // 4})
    cols = sorted({width // 4, (3 * width) // 4})
    for row in rows:
        for col in cols:
            assert np.abs(restored[row, col] - photo[row, col]).max() <= 60, (row, col)


def test_letterbox_one_pixel_wide_photo() -> None:
    photo = four_color_photo(400, 1)

    square, placement = letterbox(photo, SIZE)

    assert (placement.height, placement.width) == (SIZE, 1)
    assert placement.left == (SIZE - 1) // 2
    assert crop_image(square, placement).shape == (SIZE, 1, 3)


def test_letterbox_rejects_grayscale() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        letterbox(np.zeros((10, 10), dtype=np.uint8), SIZE)
