"""Turn a low-resolution probability map into a soft alpha and a hard mask at the photo's size.

The model predicts at S x S (S is 128 to 256 px), far below a 2000 x 3000 photo. ``refine_mask``
upsamples the map with a fast guided filter (He and Sun, "Fast Guided Filter",
2015, built on He, Sun and Tang, "Guided Image Filtering", ECCV 2010).
In each window the output is a linear function of the photo's RGB. Its edges
therefore follow the photo's edges instead of the blocky bilinear ones. The linear
coefficients are fitted at the map's resolution and applied at a working resolution
of at most 768 px on the long side, and only the final uint8 alpha is scaled to the
full photo size. The working size trades edge detail for speed and was chosen on
synthetic photos. tests/bench/bench.py times the refinement of four 2000 x 3000 photos,
but no script in this repository measures its edge quality.

Then a cleanup on the hard mask removes specks and fills pin holes, both measured
as a fraction of the product's area. Holes above that size (the inside of a bag
handle) and holes open to the image border stay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

ALPHA_MASK_LEVEL = 128
"""Alpha values at or above this level are on the hard mask, and only those."""
ALPHA_GAIN = 4.0
"""Slope of alpha against probability around the threshold; the soft band spans 1 / ALPHA_GAIN in probability."""

_UPSCALE_TILE = 64
"""Side, in working-resolution pixels, of the tiles that _upscale_by_integer_factor resizes separately."""


@dataclass(frozen=True)
class RefineSettings:
    """Parameters of refine_mask.

    Attributes:
        work_long_side: long side, in pixels, of the working resolution; photos are
            shrunk by an integer factor until their long side is at most this.
        radius: guided filter window radius, in coefficient pixels.
        eps: guided filter regularization, for RGB in 0-1; larger gives a smoother
            output that follows weaker photo edges less.
        speck_fraction: mask components smaller than this fraction of the mask area
            are removed; the largest component is always kept.
        hole_fraction: holes smaller than this fraction of the mask area are filled,
            unless they touch the image border.
    """

    work_long_side: int = 768
    radius: int = 2
    eps: float = 1e-3
    speck_fraction: float = 0.01
    hole_fraction: float = 0.01


@dataclass(frozen=True)
class RefinedMask:
    """Product matte of one photo.

    Attributes:
        alpha: (H, W) uint8 soft alpha, 0-255; alpha >= ALPHA_MASK_LEVEL exactly on mask.
        mask: (H, W) bool, True on the product.
    """

    alpha: NDArray[np.uint8]
    mask: NDArray[np.bool_]


def refine_mask(
    image: NDArray[np.uint8],
    probs: NDArray[np.float32],
    *,
    threshold: float = 0.5,
    settings: RefineSettings = RefineSettings(),
) -> RefinedMask:
    """Upsample a probability map to the photo's size along the photo's edges, then clean it.

    The soft alpha is the refined probability stretched around ``threshold`` (see
    _soft_alpha): lowering the threshold grows both the mask and the visible cutout.

    Args:
        image: (H, W, 3) uint8 RGB photo.
        probs: (h, w) float32 product probability, 0-1, covering the same field of
            view as image at a lower resolution (the photo's region of the
            letterboxed map, from crop_placement).
        threshold: probability at or above which a pixel is product, 0-1.
        settings: filter and cleanup parameters.
    Returns:
        RefinedMask at (H, W); all zeros when no pixel reaches the threshold.
    Raises:
        ValueError: image or probs has the wrong shape or dtype, or threshold is outside [0, 1].
    """
    _check_inputs(image, probs, threshold)
    height, width = image.shape[:2]

    factor = math.ceil(max(height, width) / settings.work_long_side)
    work_image = _shrink_by_integer_factor(image, factor)
    refined = guided_upsample(work_image, probs, radius=settings.radius, eps=settings.eps)
    raw_mask = refined >= threshold
    if not raw_mask.any():
        return _empty_result(height, width)

    cleaned = clean_mask(raw_mask, speck_fraction=settings.speck_fraction, hole_fraction=settings.hole_fraction)
    work_alpha = _soft_alpha(refined, raw_mask, cleaned, threshold)
    alpha = work_alpha if factor <= 1 else _upscale_by_integer_factor(work_alpha, factor, height, width)
    return RefinedMask(alpha=alpha, mask=alpha >= ALPHA_MASK_LEVEL)


CONFIDENCE_MARGIN = 0.25
"""Distance in probability from the threshold to the two levels that mask_confidence compares."""


def mask_confidence(probs: NDArray[np.float32], threshold: float = 0.5) -> float:
    """Score how little the mask would change if the threshold moved, as a proxy for its quality.

    The score is the area above threshold + CONFIDENCE_MARGIN over the area above threshold -
    CONFIDENCE_MARGIN, both levels kept inside (0, 1). A map that is near 0 or 1 everywhere
    gives a mask whose outline does not depend on the exact threshold, and scores near 1. A
    map with wide regions of middling probability scores low. Segment Anything's mask
    generator ranks masks by the same ratio on logits (calculate_stability_score).

    Args:
        probs: (h, w) float32 product probability of one photo at the model's resolution, 0-1.
        threshold: the mask threshold, 0-1.
    Returns:
        Score in [0, 1]; 1.0 when no pixel reaches the lower level, since the map then shows
        no product at all.
    """
    low = max(threshold - CONFIDENCE_MARGIN, 0.01)
    high = min(threshold + CONFIDENCE_MARGIN, 0.99)
    loose = int(np.count_nonzero(probs >= low))
    if loose == 0:
        return 1.0
    return int(np.count_nonzero(probs >= high)) / loose


def upsample_bilinear(probs: NDArray[np.float32], height: int, width: int) -> NDArray[np.float32]:
    """Baseline upsampling: bilinear interpolation of the map, ignoring the photo.

    Args:
        probs: (h, w) float32, 0-1.
        height, width: output size in pixels.
    Returns:
        (height, width) float32, 0-1.
    """
    resized = Image.fromarray(np.ascontiguousarray(probs, dtype=np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def guided_upsample(
    guide: NDArray[np.uint8], probs: NDArray[np.float32], *, radius: int, eps: float
) -> NDArray[np.float32]:
    """Upsample probs to the guide's size with a fast color guided filter.

    Args:
        guide: (h, w, 3) uint8 RGB at the output resolution.
        probs: (hp, wp) float32, 0-1, same field of view as guide.
        radius: window radius in coefficient pixels.
        eps: regularization of the per-window linear fit, for RGB in 0-1.
    Returns:
        (h, w) float32, 0-1.
    """
    height, width = guide.shape[:2]
    # The coefficients are fitted at the map's own resolution, or at the guide's where that is smaller.
    fit_height = min(height, probs.shape[0])
    fit_width = min(width, probs.shape[1])
    fit_guide = (
        np.asarray(Image.fromarray(guide).resize((fit_width, fit_height), Image.Resampling.BOX), dtype=np.float32)
        / 255.0
    )
    fit_probs = upsample_bilinear(probs, fit_height, fit_width)

    slopes, offset = _fit_color_guided_filter(fit_guide, fit_probs, radius, eps)

    # The slopes are fitted for RGB in 0-1; scaling them by 1/255 first lets them multiply the uint8 guide directly.
    refined = _resize_float(offset, height, width)
    for channel in range(3):
        channel_term = _resize_float(slopes[:, :, channel] * np.float32(1.0 / 255.0), height, width)
        channel_term *= guide[:, :, channel]
        refined += channel_term
    return np.clip(refined, 0.0, 1.0, out=refined)


def _fit_color_guided_filter(
    guide: NDArray[np.float32], target: NDArray[np.float32], radius: int, eps: float
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Fit target ~ slopes . guide + offset in every window, then average over windows.

    Args:
        guide: (h, w, 3) float32 RGB, 0-1.
        target: (h, w) float32.
        radius: window radius in pixels.
        eps: added to the diagonal of each window's RGB covariance.
    Returns:
        slopes (h, w, 3) float32 and offset (h, w) float32: the window-averaged
        coefficients, so that output = sum(slopes * guide) + offset.
    """
    red, green, blue = guide[:, :, 0], guide[:, :, 1], guide[:, :, 2]
    products = np.stack(
        [
            red,
            green,
            blue,
            target,
            red * target,
            green * target,
            blue * target,
            red * red,
            red * green,
            red * blue,
            green * green,
            green * blue,
            blue * blue,
        ],
        axis=-1,
    )
    means = box_mean(products, radius).astype(np.float64)
    mean_rgb, mean_target = means[:, :, 0:3], means[:, :, 3]
    covariance_target = means[:, :, 4:7] - mean_rgb * mean_target[:, :, None]

    # Symmetric 3 x 3 RGB covariance per pixel, regularized, inverted by its adjugate.
    rr = means[:, :, 7] - mean_rgb[:, :, 0] ** 2 + eps
    rg = means[:, :, 8] - mean_rgb[:, :, 0] * mean_rgb[:, :, 1]
    rb = means[:, :, 9] - mean_rgb[:, :, 0] * mean_rgb[:, :, 2]
    gg = means[:, :, 10] - mean_rgb[:, :, 1] ** 2 + eps
    gb = means[:, :, 11] - mean_rgb[:, :, 1] * mean_rgb[:, :, 2]
    bb = means[:, :, 12] - mean_rgb[:, :, 2] ** 2 + eps
    inverse_rows = (
        (gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb),
        (gb * rb - rg * bb, rr * bb - rb * rb, rb * rg - rr * gb),
        (rg * gb - gg * rb, rb * rg - rr * gb, rr * gg - rg * rg),
    )
    determinant = rr * inverse_rows[0][0] + rg * inverse_rows[0][1] + rb * inverse_rows[0][2]
    slopes = np.stack(
        [sum(row[c] * covariance_target[:, :, c] for c in range(3)) / determinant for row in inverse_rows], axis=-1
    )
    offset = mean_target - np.sum(slopes * mean_rgb, axis=-1)

    coefficients = box_mean(np.concatenate([slopes, offset[:, :, None]], axis=-1).astype(np.float32), radius)
    return coefficients[:, :, :3], coefficients[:, :, 3]


def box_mean(values: NDArray[np.float32], radius: int) -> NDArray[np.float32]:
    """Mean over the (2 radius + 1)^2 window around each pixel, via cumulative sums.

    Windows are clipped at the image border and averaged over the pixels inside.

    Args:
        values: (h, w) or (h, w, C) float32; channels are filtered independently.
        radius: window radius in pixels, at least 0.
    Returns:
        float32 array of the same shape as values.
    """
    summed = _window_sum_axis(_window_sum_axis(values.astype(np.float64), radius, axis=0), radius, axis=1)
    counts = np.outer(_window_counts(values.shape[0], radius), _window_counts(values.shape[1], radius))
    if values.ndim == 3:
        counts = counts[:, :, None]
    return (summed / counts).astype(np.float32)


def _window_sum_axis(values: NDArray[np.float64], radius: int, axis: int) -> NDArray[np.float64]:
    """Sum over index - radius .. index + radius along axis 0 or 1, clipped at the ends."""
    moved = np.moveaxis(values, axis, 0)
    length = moved.shape[0]
    # padded[k] is the sum of moved[:clip(k - radius, 0, length)], so the window sum at i is
    # padded[i + 2 radius + 1] - padded[i] without any index arithmetic per element.
    padded = np.empty((length + 2 * radius + 1, *moved.shape[1:]), dtype=np.float64)
    padded[: radius + 1] = 0.0
    np.cumsum(moved, axis=0, out=padded[radius + 1 : radius + 1 + length])
    padded[radius + 1 + length :] = padded[radius + length]
    summed = padded[2 * radius + 1 :] - padded[:length]
    return np.moveaxis(summed, 0, axis)


def _window_counts(length: int, radius: int) -> NDArray[np.float64]:
    index = np.arange(length)
    return (np.minimum(index + radius, length - 1) - np.maximum(index - radius, 0) + 1).astype(np.float64)


def clean_mask(mask: NDArray[np.bool_], *, speck_fraction: float, hole_fraction: float) -> NDArray[np.bool_]:
    """Remove small mask components and fill small enclosed holes.

    Components are 8-connected and holes 4-connected, so that a diagonal line of
    pixels both joins the product and closes a hole.

    Args:
        mask: (h, w) bool.
        speck_fraction: components smaller than this fraction of the mask area go,
            except the largest component.
        hole_fraction: background regions smaller than this fraction of the mask
            area that do not touch the image border are filled.
    Returns:
        (h, w) bool, a new array.
    """
    area = int(mask.sum())
    if area == 0:
        return mask.copy()

    rows, starts, ends = _row_runs(mask)
    components = _label_runs(rows, starts, ends, diagonal=True)
    component_area = np.bincount(components, weights=ends - starts)
    small = component_area < speck_fraction * area
    small[np.argmax(component_area)] = False
    cleaned = mask.copy()
    if small.any():
        removed = small[components]
        cleaned &= ~_paint_runs(mask.shape, rows[removed], starts[removed], ends[removed])

    rows, starts, ends = _row_runs(~cleaned)
    regions = _label_runs(rows, starts, ends, diagonal=False)
    region_area = np.bincount(regions, weights=ends - starts)
    touches_border = np.zeros(region_area.shape, dtype=bool)
    on_border = (rows == 0) | (rows == mask.shape[0] - 1) | (starts == 0) | (ends == mask.shape[1])
    touches_border[regions[on_border]] = True
    pin_holes = ~touches_border & (region_area < hole_fraction * area)
    if pin_holes.any():
        filled = pin_holes[regions]
        cleaned |= _paint_runs(mask.shape, rows[filled], starts[filled], ends[filled])
    return cleaned


def _row_runs(mask: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """Horizontal runs of True pixels, in row-major order.

    Returns:
        (rows, starts, ends), each (N,): run i covers mask[rows[i], starts[i]:ends[i]].
    """
    height, width = mask.shape
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, ends = np.nonzero(steps == -1)
    return rows, starts, ends


def _label_runs(
    rows: NDArray[np.intp], starts: NDArray[np.intp], ends: NDArray[np.intp], *, diagonal: bool
) -> NDArray[np.intp]:
    """Group runs into connected components.

    Args:
        rows, starts, ends: runs from _row_runs.
        diagonal: join runs that touch only at a corner (8-connectivity).
    Returns:
        (N,) component index per run, 0..K-1.
    """
    count = rows.size
    if count == 0:
        return np.zeros(0, dtype=np.intp)

    # Keys that sort runs by (row, column); a row of runs occupies its own key range.
    stride = int(ends.max()) + 2
    slack = 1 if diagonal else 0
    start_keys = rows * stride + starts
    end_keys = rows * stride + ends
    next_row = (rows + 1) * stride
    first = np.searchsorted(end_keys, next_row + starts - slack, side="right")
    stop = np.searchsorted(start_keys, next_row + ends + slack, side="left")
    touching = np.maximum(stop - first, 0)
    upper = np.repeat(np.arange(count), touching)
    offsets = np.arange(upper.size) - np.repeat(np.cumsum(touching) - touching, touching)
    lower = np.repeat(first, touching) + offsets

    # Min-label propagation over the touching pairs, with pointer jumping to converge fast.
    labels = np.arange(count)
    while True:
        smallest = np.minimum(labels[upper], labels[lower])
        updated = labels.copy()
        np.minimum.at(updated, upper, smallest)
        np.minimum.at(updated, lower, smallest)
        updated = updated[updated]
        if np.array_equal(updated, labels):
            break
        labels = updated
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


def _paint_runs(
    shape: tuple[int, ...], rows: NDArray[np.intp], starts: NDArray[np.intp], ends: NDArray[np.intp]
) -> NDArray[np.bool_]:
    """Draw runs into a new (h, w) bool mask."""
    height, width = shape
    steps = np.zeros((height, width + 1), dtype=np.int8)
    steps[rows, starts] = 1
    steps[rows, ends] = -1
    return np.cumsum(steps, axis=1, dtype=np.int8)[:, :width] > 0


def _soft_alpha(
    refined: NDArray[np.float32], raw_mask: NDArray[np.bool_], cleaned: NDArray[np.bool_], threshold: float
) -> NDArray[np.uint8]:
    """Map refined probabilities to uint8 alpha with threshold at the mask level.

    Alpha rises linearly from 0 at threshold - 0.5 / ALPHA_GAIN to 255 at
    threshold + 0.5 / ALPHA_GAIN. The background is fully transparent and the
    product fully opaque, with a soft band only where the probability crosses the
    threshold. Removed specks become 0 and filled holes 255; every other pixel is
    clamped to its side of ALPHA_MASK_LEVEL. Off the mask, a pixel keeps its alpha
    only when a path of pixels with alpha above 0 joins it to the mask. The band
    then fades the product's edge as far as the map's ramp reaches, and a region
    of middling probability apart from the product (an arm beside trousers) does
    not show as a faint ghost in the cutout.
    """
    stretched = (refined - np.float32(threshold)) * np.float32(ALPHA_GAIN) + np.float32(0.5)
    shifted = np.clip(stretched, 0.0, 1.0) * np.float32(255.0)
    alpha = np.rint(shifted).astype(np.uint8)
    np.maximum(alpha, ALPHA_MASK_LEVEL, out=alpha, where=cleaned)
    np.minimum(alpha, ALPHA_MASK_LEVEL - 1, out=alpha, where=~cleaned)
    alpha[raw_mask & ~cleaned] = 0
    alpha[cleaned & ~raw_mask] = 255
    alpha[~_joined_to_mask(alpha > 0, cleaned)] = 0
    return alpha


def _joined_to_mask(visible: NDArray[np.bool_], mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Return (h, w) bool: the pixels of visible in an 8-connected component that contains a pixel of mask.

    Args:
        visible: (h, w) bool, a superset of mask.
        mask: (h, w) bool.
    """
    rows, starts, ends = _row_runs(visible)
    components = _label_runs(rows, starts, ends, diagonal=True)
    if components.size == 0:
        return visible.copy()
    # A run contains a mask pixel when the mask's running count rises between its start and end.
    mask_count = np.zeros((mask.shape[0], mask.shape[1] + 1), dtype=np.int64)
    np.cumsum(mask, axis=1, out=mask_count[:, 1:])
    run_has_mask = mask_count[rows, ends] > mask_count[rows, starts]
    keep = np.zeros(int(components.max()) + 1, dtype=bool)
    keep[components[run_has_mask]] = True
    joined = keep[components]
    return _paint_runs(visible.shape, rows[joined], starts[joined], ends[joined])


def _shrink_by_integer_factor(image: NDArray[np.uint8], factor: int) -> NDArray[np.uint8]:
    """Box-average image over factor x factor blocks.

    Returns:
        (ceil(H / factor), ceil(W / factor), 3) uint8 RGB; a block cut by the bottom or
        right border averages the pixels it has. The image itself when factor <= 1.
    """
    if factor <= 1:
        return image
    return np.asarray(Image.fromarray(image).reduce(factor))


def _upscale_by_integer_factor(values: NDArray[np.uint8], factor: int, height: int, width: int) -> NDArray[np.uint8]:
    """Bilinearly upscale a map made by _shrink_by_integer_factor back to (height, width).

    Each input pixel is the block of factor x factor output pixels it was averaged from,
    so the last row and column may extend past height and width and are cut.
    """
    low_height, low_width = values.shape
    low_image = Image.fromarray(values)
    upscaled = np.empty((height, width), dtype=np.uint8)
    # A bilinear output pixel depends on the 2 x 2 input pixels around it, so a tile whose
    # input values, plus a 1-pixel margin, are all one value upscales to that value. Pillow
    # resizes only the other tiles. Given the source box, it uses the same neighbours and
    # weights as one resize of the whole map. Pillow 12.3 gives an identical result; Pillow 13.0
    # rounds a few pixels by one level differently (a unit test checks both bounds).
    for top in range(0, low_height, _UPSCALE_TILE):
        for left in range(0, low_width, _UPSCALE_TILE):
            bottom, right = min(top + _UPSCALE_TILE, low_height), min(left + _UPSCALE_TILE, low_width)
            out_rows = slice(top * factor, min(bottom * factor, height))
            out_cols = slice(left * factor, min(right * factor, width))
            neighbourhood = values[max(top - 1, 0) : bottom + 1, max(left - 1, 0) : right + 1]
            lowest = neighbourhood.min()
            if lowest == neighbourhood.max():
                upscaled[out_rows, out_cols] = lowest
                continue
            source_box = (left, top, out_cols.stop / factor, out_rows.stop / factor)
            tile_size = (out_cols.stop - out_cols.start, out_rows.stop - out_rows.start)
            upscaled[out_rows, out_cols] = np.asarray(
                low_image.resize(tile_size, Image.Resampling.BILINEAR, box=source_box)
            )
    return upscaled


def _resize_float(values: NDArray[np.float32], height: int, width: int) -> NDArray[np.float32]:
    resized = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.array(resized, dtype=np.float32)


def _empty_result(height: int, width: int) -> RefinedMask:
    return RefinedMask(alpha=np.zeros((height, width), dtype=np.uint8), mask=np.zeros((height, width), dtype=bool))


def _check_inputs(image: NDArray[np.uint8], probs: NDArray[np.float32], threshold: float) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
        raise ValueError(f"expected (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if probs.ndim != 2 or min(probs.shape) < 1 or not np.issubdtype(probs.dtype, np.floating):
        raise ValueError(f"expected (h, w) float probability map, got {probs.shape} {probs.dtype}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"expected threshold in [0, 1], got {threshold}")
