"""Guided upsampling, mask cleanup and the soft alpha, on synthetic maps and photos."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from handler.letterbox import crop_placement, fit_inside_square, letterbox_mask
from handler.refine import (
    ALPHA_MASK_LEVEL,
    RefineSettings,
    box_mean,
    clean_mask,
    mask_confidence,
    refine_mask,
    upsample_bilinear,
)
from handler.refine import _upscale_by_integer_factor as upscale_by_integer_factor

SIZE = 160


def synthetic_product(height: int, width: int, *, seed: int = 0) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """A red garment-like shape with a square cut-out on a noisy light-gray background.

    Returns:
        (H, W, 3) uint8 photo and (H, W) bool true product mask.
    """
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    draw.ellipse((width * 0.2, height * 0.15, width * 0.8, height * 0.85), fill=255)
    draw.rectangle((width * 0.45, height * 0.4, width * 0.55, height * 0.5), fill=0)
    truth = np.asarray(canvas) > 0

    rng = np.random.default_rng(seed)
    photo = np.full((height, width, 3), 225, dtype=np.float32) + rng.normal(0.0, 6.0, (height, width, 3))
    photo[truth] = np.array([160, 40, 50], dtype=np.float32) + rng.normal(0.0, 6.0, (int(truth.sum()), 3))
    return np.clip(photo, 0, 255).astype(np.uint8), truth


def model_like_probs(truth: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Probability map like the model's: the truth at S x S, blurred, cut back to the photo's region."""
    square = letterbox_mask(truth, SIZE).astype(np.float32)
    blurred = box_mean(box_mean(square, 1), 1)
    return crop_placement(blurred, fit_inside_square(truth.shape[0], truth.shape[1], SIZE))


def reference_components(mask: NDArray[np.bool_], *, diagonal: bool) -> list[list[tuple[int, int]]]:
    """Connected components by breadth-first search, for checking the run-based labeling."""
    height, width = mask.shape
    seen = np.zeros_like(mask)
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if diagonal:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    components = []
    for row, col in zip(*np.nonzero(mask), strict=True):
        if seen[row, col]:
            continue
        seen[row, col] = True
        queue, pixels = deque([(row, col)]), []
        while queue:
            y, x = queue.popleft()
            pixels.append((y, x))
            for dy, dx in steps:
                ny, nx = y + dy, x + dx
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        components.append(pixels)
    return components


def reference_clean(mask: NDArray[np.bool_], speck_fraction: float, hole_fraction: float) -> NDArray[np.bool_]:
    area = int(mask.sum())
    cleaned = mask.copy()
    components = reference_components(mask, diagonal=True)
    largest = max(range(len(components)), key=lambda index: len(components[index]))
    for index, pixels in enumerate(components):
        if index != largest and len(pixels) < speck_fraction * area:
            for y, x in pixels:
                cleaned[y, x] = False
    height, width = mask.shape
    for pixels in reference_components(~cleaned, diagonal=False):
        on_border = any(y in (0, height - 1) or x in (0, width - 1) for y, x in pixels)
        if not on_border and len(pixels) < hole_fraction * area:
            for y, x in pixels:
                cleaned[y, x] = True
    return cleaned


def square_mask(height: int = 100, width: int = 100) -> NDArray[np.bool_]:
    mask = np.zeros((height, width), dtype=bool)
    mask[20:80, 20:80] = True
    return mask


def test_refine_mask_edges_closer_to_truth_than_bilinear() -> None:
    photo, truth = synthetic_product(900, 600)
    probs = model_like_probs(truth)

    refined = refine_mask(photo, probs)
    bilinear = upsample_bilinear(probs, 900, 600) >= 0.5

    # Boundary error: mislabeled pixels per pixel of true boundary length.
    boundary = truth ^ np.roll(truth, 1, axis=0) | truth ^ np.roll(truth, 1, axis=1)
    refined_error = (refined.mask ^ truth).sum() / boundary.sum()
    bilinear_error = (bilinear ^ truth).sum() / boundary.sum()
    assert refined_error < 0.5 * bilinear_error, (refined_error, bilinear_error)
    assert refined_error < 1.0


def test_refine_mask_large_photo_worked_at_reduced_resolution() -> None:
    photo, truth = synthetic_product(2400, 1600, seed=3)

    refined = refine_mask(photo, model_like_probs(truth), settings=RefineSettings(work_long_side=600))

    assert refined.mask.shape == truth.shape
    assert (refined.mask ^ truth).mean() < 0.01


def test_refine_mask_alpha_matches_mask() -> None:
    photo, truth = synthetic_product(300, 200)

    refined = refine_mask(photo, model_like_probs(truth))

    np.testing.assert_array_equal(refined.mask, refined.alpha >= ALPHA_MASK_LEVEL)
    assert refined.alpha.dtype == np.uint8
    assert refined.alpha[truth].mean() > 240
    assert refined.alpha[~truth].mean() < 15


@pytest.mark.parametrize(
    ("height", "width"), [(300, 200), (200, 300), (257, 257), (1, 40), (40, 1), (5, 3), (1500, 900)]
)
def test_refine_mask_output_has_photo_shape(height: int, width: int) -> None:
    photo, truth = synthetic_product(height, width)

    refined = refine_mask(photo, model_like_probs(truth))

    assert refined.alpha.shape == (height, width)
    assert refined.mask.shape == (height, width)


def test_refine_mask_empty_map_gives_empty_mask() -> None:
    photo, _ = synthetic_product(300, 200)

    refined = refine_mask(photo, np.zeros((160, 107), dtype=np.float32))

    assert not refined.mask.any()
    assert not refined.alpha.any()
    assert refined.mask.shape == (300, 200)


def test_refine_mask_threshold_zero_covers_everything() -> None:
    photo, truth = synthetic_product(300, 200)

    refined = refine_mask(photo, model_like_probs(truth), threshold=0.0)

    assert refined.mask.all()


def test_refine_mask_higher_threshold_gives_smaller_mask() -> None:
    photo, truth = synthetic_product(300, 200)
    probs = model_like_probs(truth)

    areas = [int(refine_mask(photo, probs, threshold=t).mask.sum()) for t in (0.2, 0.5, 0.8, 1.0)]

    assert areas == sorted(areas, reverse=True)
    assert areas[0] > areas[-1]


def test_refine_mask_far_speck_removed() -> None:
    photo, truth = synthetic_product(400, 300)
    probs = model_like_probs(truth).copy()
    probs[2:4, 2:4] = 1.0  # a 2 x 2 model speck in the corner, far from the product

    refined = refine_mask(photo, probs)

    assert not refined.mask[:30, :30].any()
    assert (refined.mask ^ truth).mean() < 0.02


def test_refine_mask_far_middling_region_transparent() -> None:
    photo, truth = synthetic_product(400, 300)
    probs = model_like_probs(truth).copy()
    probs[2:12, 2:12] = 0.45  # under the threshold but inside the soft band, far from the product

    refined = refine_mask(photo, probs)

    assert not refined.alpha[:30, :30].any()
    assert ((refined.alpha > 0) & ~refined.mask).any()  # the soft band along the product's edge stays


def test_refine_mask_wide_edge_ramp_kept() -> None:
    photo, truth = synthetic_product(400, 300)
    probs = model_like_probs(truth).copy()
    ring = (box_mean(probs, 6) > 0.01) & (probs < 0.45)
    probs[ring] = 0.45  # a ramp 6 map pixels (15 photo pixels) wide around the product

    refined = refine_mask(photo, probs)

    ring_in_photo = np.asarray(Image.fromarray(ring).resize((300, 400), Image.Resampling.NEAREST))
    beyond_8_pixels = box_mean(refined.mask.astype(np.float32), 8) == 0
    assert (refined.alpha[ring_in_photo & beyond_8_pixels] > 0).mean() > 0.3


def test_refine_mask_invalid_threshold_raises() -> None:
    photo, truth = synthetic_product(30, 20)

    with pytest.raises(ValueError, match="threshold"):
        refine_mask(photo, model_like_probs(truth), threshold=1.5)


def test_refine_mask_wrong_image_shape_raises() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        refine_mask(np.zeros((30, 20), dtype=np.uint8), np.zeros((16, 10), dtype=np.float32))


def test_clean_mask_specks_removed() -> None:
    mask = square_mask()
    mask[2, 2] = True
    mask[90:93, 90:93] = True

    cleaned = clean_mask(mask, speck_fraction=0.01, hole_fraction=0.01)

    np.testing.assert_array_equal(cleaned, square_mask())


def test_clean_mask_large_second_part_kept() -> None:
    mask = square_mask()
    mask[85:95, 5:25] = True  # 200 pixels, 5% of the 3600-pixel square

    cleaned = clean_mask(mask, speck_fraction=0.01, hole_fraction=0.01)

    np.testing.assert_array_equal(cleaned, mask)


def test_clean_mask_diagonal_neighbour_is_part_of_product() -> None:
    mask = square_mask()
    mask[80, 80] = True  # touches the square's corner pixel (79, 79) only diagonally

    cleaned = clean_mask(mask, speck_fraction=0.5, hole_fraction=0.01)

    assert cleaned[80, 80]


def test_clean_mask_pin_holes_filled() -> None:
    mask = square_mask()
    mask[40:42, 40:42] = False
    mask[60, 30] = False

    cleaned = clean_mask(mask, speck_fraction=0.01, hole_fraction=0.01)

    np.testing.assert_array_equal(cleaned, square_mask())


def test_clean_mask_large_hole_kept() -> None:
    mask = square_mask()
    mask[35:65, 35:65] = False  # 900 pixels, a third of the product

    cleaned = clean_mask(mask, speck_fraction=0.01, hole_fraction=0.01)

    np.testing.assert_array_equal(cleaned, mask)


def test_clean_mask_gap_at_image_border_kept() -> None:
    mask = np.zeros((50, 50), dtype=bool)
    mask[:, :30] = True
    mask[0:2, 10:12] = False  # a small notch open to the top border

    cleaned = clean_mask(mask, speck_fraction=0.01, hole_fraction=0.01)

    np.testing.assert_array_equal(cleaned, mask)


def test_clean_mask_empty_mask_stays_empty() -> None:
    cleaned = clean_mask(np.zeros((10, 10), dtype=bool), speck_fraction=0.01, hole_fraction=0.01)

    assert not cleaned.any()


@pytest.mark.parametrize("seed", range(6))
def test_clean_mask_matches_flood_fill_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((40, 50)) < 0.55

    cleaned = clean_mask(mask, speck_fraction=0.02, hole_fraction=0.02)

    np.testing.assert_array_equal(cleaned, reference_clean(mask, 0.02, 0.02))


def test_box_mean_matches_brute_force_with_clipped_windows() -> None:
    values = np.random.default_rng(0).random((9, 13)).astype(np.float32)
    radius = 2
    expected = np.empty_like(values)
    for row in range(9):
        for col in range(13):
            window = values[max(0, row - radius) : row + radius + 1, max(0, col - radius) : col + radius + 1]
            expected[row, col] = window.mean()

    np.testing.assert_allclose(box_mean(values, radius), expected, atol=1e-6)


def test_box_mean_channels_filtered_independently() -> None:
    values = np.random.default_rng(1).random((8, 6, 3)).astype(np.float32)

    stacked = box_mean(values, 1)

    for channel in range(3):
        np.testing.assert_allclose(stacked[:, :, channel], box_mean(values[:, :, channel], 1), atol=1e-6)


def test_upsample_bilinear_shape_and_range() -> None:
    probs = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)

    upsampled = upsample_bilinear(probs, 30, 20)

    assert upsampled.shape == (30, 20)
    assert upsampled.dtype == np.float32
    assert upsampled.min() >= 0.0
    assert upsampled.max() <= 1.0
    assert upsampled[0, 0] < 0.1
    assert upsampled[0, -1] > 0.9


@pytest.mark.parametrize(
    ("low_height", "low_width", "factor", "height", "width"),
    [(150, 100, 4, 600, 400), (150, 100, 4, 597, 399), (101, 67, 3, 301, 200), (5, 3, 7, 29, 20), (1, 1, 2, 2, 1)],
)
def test_upscale_by_integer_factor_equals_one_bilinear_resize(
    low_height: int, low_width: int, factor: int, height: int, width: int
) -> None:
    # GIVEN a map with flat 0 and 255 areas, a random patch and a smooth ramp
    rng = np.random.default_rng(low_height)
    values = np.zeros((low_height, low_width), dtype=np.uint8)
    values[low_height // 4 : 3 * low_height // 4, low_width // 4 :] = 255
    values[: low_height // 3, : low_width // 3] = rng.integers(0, 256, (low_height // 3, low_width // 3))
    values[-1, :] = np.linspace(0, 255, low_width).astype(np.uint8)

    # WHEN it is upscaled tile by tile
    upscaled = upscale_by_integer_factor(values, factor, height, width)

    # THEN it matches one Pillow resize of the whole map over the same source box, to within
    # one level on under 0.5% of the pixels (Pillow 13.0 rounds a few tile pixels differently)
    expected = np.asarray(
        Image.fromarray(values).resize(
            (width, height), Image.Resampling.BILINEAR, box=(0, 0, width / factor, height / factor)
        )
    )
    difference = np.abs(upscaled.astype(np.int16) - expected.astype(np.int16))
    assert upscaled.shape == (height, width)
    assert difference.max() <= 1
    assert np.count_nonzero(difference) <= 0.005 * difference.size


def test_mask_confidence_decisive_map_is_one() -> None:
    probs = np.zeros((32, 32), dtype=np.float32)
    probs[8:24, 8:24] = 0.97

    assert mask_confidence(probs) == 1.0


def test_mask_confidence_middling_band() -> None:
    # GIVEN a 16 x 16 sure core inside a 24 x 24 square at probability 0.4
    probs = np.zeros((32, 32), dtype=np.float32)
    probs[4:28, 4:28] = 0.4
    probs[8:24, 8:24] = 0.97

    # THEN the score is the core's area over the square's
    assert mask_confidence(probs) == pytest.approx(256 / 576)
    # AND at threshold 0.3 the 0.4 ring is below the upper level 0.55 too
    assert mask_confidence(probs, threshold=0.3) == pytest.approx(256 / 576)
    # AND at threshold 0.7 the lower level 0.45 excludes the ring
    assert mask_confidence(probs, threshold=0.7) == 1.0


def test_mask_confidence_empty_map_is_one() -> None:
    assert mask_confidence(np.full((16, 16), 0.1, dtype=np.float32)) == 1.0


def test_mask_confidence_levels_clamped() -> None:
    # At threshold 1 the upper level is 0.99, not 1.25, so a map at 0.995 counts as sure.
    probs = np.full((8, 8), 0.995, dtype=np.float32)

    assert mask_confidence(probs, threshold=1.0) == 1.0
