"""Product colors from masked photos: k-means in CIELAB, named and grouped into families.

``product_colors`` is what shops facet their catalogue by. It samples the same number of
pixels from every view, so a 24 MP photo does not outvote a 1 MP one. It skips pixels near
the mask border and clusters in CIELAB. Clusters closer than a CIEDE2000 threshold are
merged and minor ones dropped. A dithered view (a GIF or palette PNG that paints one color as
a mix of palette pixels) is clustered a second time on window means, and the result with
fewer colors is kept. NOTE: a dithered image saved again as JPEG has thousands of colors,
so it is not recognized and keeps its palette colors. ``legacy_colors`` keeps the older
service's algorithm for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from handler.color_space import color_family, delta_e_2000, lab_to_srgb, nearest_color_name, srgb_to_lab
from handler.kmeans import kmeans

MAX_CLUSTERS = 8
"""k of the k-means run; merging and dropping then decide how many colors remain."""

PIXELS_PER_VIEW = 6000
"""Pixels sampled from each non-empty view; every view weighs the same in the pool."""

MERGE_DELTA_E = 8.0
"""Clusters whose centers are closer than this CIEDE2000 difference become one color."""

MERGE_NOISE_MAX_DELTA_E = 25.0
"""Clusters up to this far apart merge when no density valley separates them."""

VALLEY_SLAB = 0.2
"""Width of the slabs ``_has_valley`` counts in, as a fraction of the center distance."""

VALLEY_RATIO = 0.5
"""A midpoint slab under this fraction of the sparser center slab counts as a valley."""

MIN_SHARE = 0.05
"""Clusters under this share of the sampled pixels are folded into the nearest kept color."""

EDGE_MARGIN_PX = 3
"""Pixels this close to the mask border (Chebyshev distance) are left out of the sample."""

EDGE_MARGIN_PER_LONG_SIDE = 0.001
"""Margin grows with the photo: at least this fraction of the long side, in pixels."""

MIN_INTERIOR_FRACTION = 0.1
"""Below this fraction of the mask surviving the edge margin, the whole mask is sampled."""

DITHER_LEVELS = 24
"""Neighbours within this many levels on every RGB channel count as the same color."""

DITHER_MIN_SHARE = 0.05
"""Share of sampled pixels with under 3 same-colored neighbours of 8 at which a view looks dithered.

Measured: dithered palette images 0.03 to 0.66. Photos reach it too: 17% of 240 garments in
street photos did (median 0.009, 90th percentile 0.12), fine prints and knits above all.
PALETTE_MAX_COLORS separates those from palette images.
"""

PALETTE_MAX_COLORS = 256
"""A view counts as dithered only when its sampled pixels take at most this many distinct colors.

GIF and PNG-8 store at most 256 colors, while the 6000 samples of a JPEG photo take thousands.
A flat drawing saved as JPEG can stay under it, which the color count in product_colors covers.
"""

SMOOTHING_RADIUS = 1
"""Window radius, in pixels, of the means a dithered view is clustered on a second time."""

LEGACY_PALETTE_SIZE = 5
LEGACY_MIN_RATIO = 1.0 / 8.0
LEGACY_MAX_PIXELS = 250_000


@dataclass(frozen=True)
class Color:
    """One color of a product.

    Attributes:
        hex: "#rrggbb", lowercase sRGB.
        rgb: sRGB channels, 0-255.
        lab: CIELAB (D65) of rgb, rounded to 0.1.
        percentage: share of the product in percent; the colors of a product sum to 100.
        name: nearest name in handler/data/color_names.json by CIEDE2000.
        family: one of handler.color_space.FAMILIES.
    """

    hex: str
    rgb: tuple[int, int, int]
    lab: tuple[float, float, float]
    percentage: int
    name: str
    family: str

    def to_dict(self) -> dict[str, object]:
        """Return the color as JSON-ready plain types."""
        return {
            "hex": self.hex,
            "rgb": list(self.rgb),
            "lab": list(self.lab),
            "percentage": self.percentage,
            "name": self.name,
            "family": self.family,
        }


# ---------------------------------------------------------------------------
# product colors


def product_colors(
    images: Sequence[NDArray[np.uint8]],
    masks: Sequence[NDArray[np.bool_]],
    *,
    max_colors: int = 5,
    seed: int = 0,
) -> tuple[Color, ...]:
    """Find the main colors of a product seen in one or more views.

    Args:
        images: V photos, each (H, W, 3) uint8 RGB, 0-255; sizes may differ between views.
        masks: V masks, each (H, W) bool, True on the product, same H, W as its photo.
        max_colors: most colors returned, 1 to MAX_CLUSTERS.
        seed: seeds sampling and k-means; the same input and seed give the same colors.
    Returns:
        Up to max_colors colors, largest share first, percentages summing to exactly 100;
        an empty tuple when every mask is empty or there are no views.
    Raises:
        ValueError: images and masks differ in count, a view has the wrong shape or dtype,
            or max_colors is out of range.
    Limitations:
        Each non-empty view gives PIXELS_PER_VIEW pixels, so a color under about 1% of the
        product can be missed, and a view whose mask caught only a sliver of the product
        weighs as much as a full view. Clusters under MIN_SHARE are folded into their
        nearest color, so a small logo or trim is not reported.
    """
    _check_views(images, masks)
    if not 1 <= max_colors <= MAX_CLUSTERS:
        raise ValueError(f"expected max_colors in 1..{MAX_CLUSTERS}, got {max_colors}")

    rng = np.random.default_rng(seed)
    points = [_sample_points(mask, rng) for mask in masks]
    pixels = [image[rows, cols] for image, (rows, cols) in zip(images, points, strict=True)]
    if sum(view.shape[0] for view in pixels) == 0:
        return ()
    colors = _cluster_colors(np.concatenate(pixels), max_colors, seed)

    dithered = [_looks_dithered(image, mask, rows, cols) for image, mask, (rows, cols) in zip(images, masks, points, strict=True)]
    if any(dithered):
        smoothed = [
            _window_mean(image, mask, rows, cols, SMOOTHING_RADIUS) if flag else view
            for image, mask, (rows, cols), view, flag in zip(images, masks, points, pixels, dithered, strict=True)
        ]
        smoothed_colors = _cluster_colors(np.concatenate(smoothed), max_colors, seed)
        # Dithering adds palette colors that the window means remove. A real pattern of 1 px
        # stripes, or sharp stripes saved as JPEG, look dithered too, but their window means
        # add blends, so they keep the first result.
        if len(smoothed_colors) < len(colors):
            colors = smoothed_colors
    return colors


def _cluster_colors(pixels: NDArray[np.uint8], max_colors: int, seed: int) -> tuple[Color, ...]:
    """Cluster (N, 3) uint8 RGB pixels, N >= 1, into at most max_colors colors summing to 100%."""
    lab = srgb_to_lab(pixels)
    centers, labels = kmeans(lab, MAX_CLUSTERS, seed=seed)
    centers, shares = _merge_similar_clusters(lab, labels, centers.shape[0])
    centers, shares = _keep_major_clusters(centers, shares, max_colors)
    percentages = _largest_remainder_percentages(shares)
    return tuple(_make_color(center, percent) for center, percent in zip(centers, percentages, strict=True))


def _check_views(images: Sequence[NDArray[np.uint8]], masks: Sequence[NDArray[np.bool_]]) -> None:
    """Raise ValueError unless images and masks pair up as (H, W, 3) uint8 and (H, W) bool."""
    if len(images) != len(masks):
        raise ValueError(f"expected one mask per image, got {len(images)} images and {len(masks)} masks")
    for index, (image, mask) in enumerate(zip(images, masks, strict=True)):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"view {index}: expected (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        if mask.shape != image.shape[:2] or mask.dtype != np.bool_:
            raise ValueError(
                f"view {index}: expected {image.shape[:2]} bool mask matching the image, got {mask.shape} {mask.dtype}"
            )


def _sample_points(mask: NDArray[np.bool_], rng: np.random.Generator) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Sample PIXELS_PER_VIEW product pixels of one view, away from the mask border.

    Candidates lie on a regular grid over the photo, spaced so that about twice
    PIXELS_PER_VIEW fall on the product. The sample is drawn from them, with replacement
    only when the product has fewer pixels than PIXELS_PER_VIEW.

    Returns:
        rows and cols, each (PIXELS_PER_VIEW,) intp, or each (0,) when the mask is empty.
    """
    mask_pixels = int(np.count_nonzero(mask))
    if mask_pixels == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)

    stride = max(1, int(math.sqrt(mask_pixels / (2 * PIXELS_PER_VIEW))))
    offset = stride // 2
    rows, cols = np.nonzero(mask[offset::stride, offset::stride])
    if stride > 1 and rows.shape[0] < PIXELS_PER_VIEW // 4:
        # A grid can step over thin or scattered shapes, so take every mask pixel then.
        rows, cols = np.nonzero(mask)
    else:
        rows, cols = rows * stride + offset, cols * stride + offset

    margin = max(EDGE_MARGIN_PX, round(EDGE_MARGIN_PER_LONG_SIDE * max(mask.shape)))
    interior = _is_interior(mask, rows, cols, margin)
    if np.count_nonzero(interior) >= MIN_INTERIOR_FRACTION * rows.shape[0]:
        rows, cols = rows[interior], cols[interior]
    # Otherwise the product is thinner than two margins, like a strap, so its border stays.

    picked = rng.choice(rows.shape[0], size=PIXELS_PER_VIEW, replace=rows.shape[0] < PIXELS_PER_VIEW)
    return rows[picked], cols[picked]


def _looks_dithered(
    image: NDArray[np.uint8], mask: NDArray[np.bool_], rows: NDArray[np.intp], cols: NDArray[np.intp]
) -> bool:
    """Tell whether a view is a dithered palette image: few distinct colors, many lone pixels.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool.
        rows, cols: (N,) sampled pixel coordinates; N = 0 gives False.
    Returns:
        True when the points take at most PALETTE_MAX_COLORS distinct colors and at least
        DITHER_MIN_SHARE of them have under 3 neighbours within DITHER_LEVELS on every channel.
    """
    if rows.shape[0] == 0:
        return False
    center = image[rows, cols].astype(np.int16)
    if np.unique(center, axis=0).shape[0] > PALETTE_MAX_COLORS:
        return False
    height, width = mask.shape
    alike = np.zeros(rows.shape[0], dtype=np.int8)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            near = image[np.clip(rows + dy, 0, height - 1), np.clip(cols + dx, 0, width - 1)].astype(np.int16)
            alike += np.abs(near - center).max(axis=1) <= DITHER_LEVELS
    return bool(np.count_nonzero(alike < 3) >= DITHER_MIN_SHARE * rows.shape[0])


def _window_mean(
    image: NDArray[np.uint8], mask: NDArray[np.bool_], rows: NDArray[np.intp], cols: NDArray[np.intp], radius: int
) -> NDArray[np.uint8]:
    """Average the mask pixels in the (2 radius + 1)-pixel square window around each point.

    Pixels outside the mask are left out, so a point on a thin strap does not take on the
    background's color. Every point is on the mask, so no window is empty.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool.
        rows, cols: (N,) pixel coordinates, each on the mask.
        radius: window radius in pixels, 0 for the pixels themselves.
    Returns:
        (N, 3) uint8 RGB, rounded means.
    """
    height, width = mask.shape
    total = np.zeros((rows.shape[0], 3), dtype=np.float64)
    count = np.zeros(rows.shape[0], dtype=np.float64)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            near_rows = np.clip(rows + dy, 0, height - 1)
            near_cols = np.clip(cols + dx, 0, width - 1)
            inside = mask[near_rows, near_cols]
            total += image[near_rows, near_cols] * inside[:, None]
            count += inside
    return np.round(total / count[:, None]).astype(np.uint8)


def _is_interior(
    mask: NDArray[np.bool_], rows: NDArray[np.intp], cols: NDArray[np.intp], margin: int
) -> NDArray[np.bool_]:
    """Tell which mask pixels lie at least margin pixels inside the mask border.

    Tests the square ring at Chebyshev distance margin around each pixel. That equals a
    square erosion for any outside region reaching past the ring (the background), but
    misses a hole narrower than the ring. The photo's own edge does not count as a border:
    a product cut off by the frame keeps its pixels along the frame.

    Returns:
        (N,) bool, True where every ring pixel is in the mask.
    """
    height, width = mask.shape
    steps = range(-margin, margin + 1)
    ring = [(-margin, d) for d in steps] + [(margin, d) for d in steps]
    ring += [(d, -margin) for d in steps[1:-1]] + [(d, margin) for d in steps[1:-1]]
    interior = np.ones(rows.shape[0], dtype=bool)
    for dy, dx in ring:
        interior &= mask[np.clip(rows + dy, 0, height - 1), np.clip(cols + dx, 0, width - 1)]
    return interior


def _merge_similar_clusters(
    lab: NDArray[np.float64], labels: NDArray[np.int64], cluster_count: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Merge clusters that look the same or that split one noisy color.

    Repeatedly merges the closest pair of centers by CIEDE2000 that is under MERGE_DELTA_E
    apart. A pair up to MERGE_NOISE_MAX_DELTA_E apart merges too when no density valley
    separates it (see ``_has_valley``), because k-means cuts a textured or noisy color into
    several clusters with no gap between them.

    Args:
        lab: (N, 3) float64 Lab points.
        labels: (N,) int64 cluster of each point, in [0, cluster_count).
        cluster_count: number of clusters.
    Returns:
        centers (M, 3) float64 Lab, the mean of their points, and shares (M,) summing to 1.
    """
    members = [lab[labels == i] for i in range(cluster_count)]
    members = [points for points in members if points.shape[0] > 0]
    while len(members) > 1:
        centers = np.array([points.mean(axis=0) for points in members])
        distance = delta_e_2000(centers[:, None, :], centers[None, :, :])
        pairs = sorted(
            (float(distance[i, j]), i, j)
            for i in range(len(members))
            for j in range(i + 1, len(members))
            if distance[i, j] < MERGE_NOISE_MAX_DELTA_E
        )
        merge = next(
            (
                (i, j)
                for dist, i, j in pairs
                if dist < MERGE_DELTA_E or not _has_valley(members[i], members[j], centers[i], centers[j])
            ),
            None,
        )
        if merge is None:
            break
        first, second = merge
        members[first] = np.concatenate([members[first], members[second]])
        del members[second]

    centers = np.array([points.mean(axis=0) for points in members])
    shares = np.array([points.shape[0] for points in members], dtype=np.float64)
    return centers, shares / shares.sum()


def _has_valley(
    first: NDArray[np.float64],
    second: NDArray[np.float64],
    first_center: NDArray[np.float64],
    second_center: NDArray[np.float64],
) -> bool:
    """Tell whether the points of two clusters thin out between their centers.

    Projects both clusters onto the line through the centers (0 at the first, 1 at the
    second) and compares the point count in a slab of width VALLEY_SLAB around the
    midpoint with the counts around each center. Two separate colors leave the middle
    nearly empty; one color cut in two by k-means is densest there.

    Args:
        first, second: (N1, 3) and (N2, 3) float64 Lab points.
        first_center, second_center: (3,) float64 Lab centers, not equal.
    Returns:
        True when the midpoint count is under VALLEY_RATIO times the smaller center count.
    """
    axis = second_center - first_center
    points = np.concatenate([first, second])
    position = (points - first_center) @ axis / float(axis @ axis)
    half = VALLEY_SLAB / 2.0
    middle = np.count_nonzero(np.abs(position - 0.5) < half)
    ends = min(np.count_nonzero(np.abs(position) < half), np.count_nonzero(np.abs(position - 1.0) < half))
    return bool(middle < VALLEY_RATIO * ends)


def _keep_major_clusters(
    centers: NDArray[np.float64], shares: NDArray[np.float64], max_colors: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Keep the largest clusters of at least MIN_SHARE, at most max_colors of them.

    Each dropped cluster's share goes to the kept center nearest to it by CIEDE2000,
    while kept centers stay where they are.

    Returns:
        centers (M, 3) Lab and shares (M,) summing to 1, largest share first, M >= 1.
    """
    order = np.argsort(-shares, kind="stable")
    kept = [i for i in order[:max_colors] if shares[i] >= MIN_SHARE] or [int(order[0])]
    dropped = [i for i in order if i not in kept]
    kept_shares = shares[kept].copy()
    for index in dropped:
        nearest = int(np.argmin(delta_e_2000(centers[kept], centers[index])))
        kept_shares[nearest] += shares[index]
    regrouped = np.argsort(-kept_shares, kind="stable")
    return centers[kept][regrouped], kept_shares[regrouped] / kept_shares.sum()


def _largest_remainder_percentages(shares: NDArray[np.float64]) -> list[int]:
    """Round shares (K,) summing to 1 to integer percentages summing to exactly 100.

    Each share gets its floor, then the points left go one each to the largest remainders.
    """
    scaled = shares * 100.0 / shares.sum()
    floors = np.floor(scaled).astype(int)
    remainders = scaled - floors
    for index in np.argsort(-remainders, kind="stable")[: 100 - int(floors.sum())]:
        floors[index] += 1
    return [int(p) for p in floors]


def _make_color(lab_center: NDArray[np.float64], percentage: int) -> Color:
    """Build a Color from a Lab cluster center; lab, name and family describe its sRGB value."""
    rgb = lab_to_srgb(lab_center)
    lab = srgb_to_lab(rgb)
    red, green, blue = (int(v) for v in rgb)
    return Color(
        hex=f"#{red:02x}{green:02x}{blue:02x}",
        rgb=(red, green, blue),
        lab=(round(float(lab[0]), 1), round(float(lab[1]), 1), round(float(lab[2]), 1)),
        percentage=percentage,
        name=nearest_color_name(lab),
        family=color_family(lab),
    )


# ---------------------------------------------------------------------------
# legacy algorithm


def legacy_colors(images: Sequence[NDArray[np.uint8]], masks: Sequence[NDArray[np.bool_]]) -> tuple[Color, ...]:
    """Find colors the way the older service did, kept only to compare against.

    Pools the product pixels of all views (a large photo weighs more), quantizes them to
    LEGACY_PALETTE_SIZE colors with Pillow's median cut in RGB, and drops colors with
    fewer than LEGACY_MIN_RATIO times the pixels of the largest. Border pixels are kept.

    Args:
        images: V photos, each (H, W, 3) uint8 RGB, 0-255.
        masks: V masks, each (H, W) bool, True on the product.
    Returns:
        Colors as in product_colors, largest first, percentages summing to 100; empty
        when every mask is empty.
    Raises:
        ValueError: as in product_colors.
    Limitations:
        Pools at most LEGACY_MAX_PIXELS pixels, taking every n-th product pixel, which
        keeps the old weighting by resolution.
    """
    _check_views(images, masks)
    total = sum(int(np.count_nonzero(mask)) for mask in masks)
    if total == 0:
        return ()
    step = max(1, math.ceil(total / LEGACY_MAX_PIXELS))
    pixels = np.concatenate([image[mask][::step] for image, mask in zip(images, masks, strict=True)])

    quantized = Image.fromarray(pixels[None, :, :]).quantize(
        colors=LEGACY_PALETTE_SIZE, method=Image.Quantize.MEDIANCUT
    )
    palette = np.array(quantized.getpalette() or [], dtype=np.uint8)[: 3 * LEGACY_PALETTE_SIZE].reshape(-1, 3)
    counts = np.bincount(np.asarray(quantized).ravel(), minlength=palette.shape[0])[: palette.shape[0]]
    kept = np.flatnonzero(counts >= LEGACY_MIN_RATIO * counts.max())
    kept = kept[np.argsort(-counts[kept], kind="stable")]
    percentages = _largest_remainder_percentages(counts[kept] / counts[kept].sum())
    return tuple(_make_color(srgb_to_lab(palette[i]), percent) for i, percent in zip(kept, percentages, strict=True))
