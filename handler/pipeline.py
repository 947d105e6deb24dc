"""Segment the product shown in a set of 1 to 4 photos and extract its colors (pure, no AWS).

Steps: letterbox every photo to the model's square, set aside the photos that are
one flat color (they get empty masks), one model call for the other photos together,
reweigh their maps by color agreement between the views (handler.consensus), refine
each view's map back to the photo's own size, then cluster the colors of the product
pixels of all views together.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from handler.categories import CATEGORY_NAMES, resolve_category
from handler.colors import Color, product_colors
from handler.consensus import color_consensus
from handler.imaging import make_cutout
from handler.letterbox import Placement, crop_placement, letterbox
from handler.refine import mask_confidence, refine_mask
from handler.segmenter import Segmenter

FLAT_PHOTO_STD = 2.5
"""Largest standard deviation of a channel, in levels 0-255, of a photo that counts as flat.

A flat photo, such as a blank upload, a solid fill or a lossy-compressed blank, cannot show
a product. So it gets an empty mask at any threshold and stays out of the model's set, where
it would change the other views. Measured with Pillow's encoders: a one-color WebP at quality
5 has a standard deviation of about 2 levels, and a light gradient backdrop (250 to 225 from
top to bottom) about 7 levels, so the model decides there. A fine weave of +-15 levels stays
above the limit because is_flat reads the photo's own pixels, not the letterboxed square.

NOTE: a small object on a flat background does not lift the deviation much. A 30 px dark
square in a 2000 x 2000 frame (0.02% of it) is at the limit, and a smaller one is called flat.
"""
FLAT_SAMPLE_SIDE = 512
"""is_flat reads every k-th row and column, k chosen so that at most this many remain per side."""


class TooManyImagesError(ValueError):
    """The set has no photo or more photos than the model takes at once."""


class InvalidThresholdError(ValueError):
    """The mask threshold is not a number in [0, 1]."""


@dataclass(frozen=True)
class ViewResult:
    """Segmentation of one photo of the set.

    Attributes:
        mask: (H, W) uint8, 255 on the product and 0 elsewhere, at the photo's size.
        alpha: (H, W) uint8 soft alpha, 0-255; alpha >= 128 exactly where mask is 255.
        image: (H, W, 3) uint8 RGB photo as the caller passed it (not a copy).
        bbox: (x0, y0, x1, y1) pixel box around the mask, x1 and y1 exclusive; None when empty.
        coverage: fraction of the photo's pixels on the mask, 0-1.
        confidence: handler.refine.mask_confidence of the model's map of the photo, 0-1.
            Low values flag masks worth a person's review; 1.0 for a flat photo.
        empty: True when the mask has no pixel.
        square_image: (S, S, 3) uint8 RGB letterboxed photo the model saw.
        square_probs: (S, S) float32 product probability in the square frame, 0-1: the
            model's, after the color consensus, and all 0 for a flat photo (see
            FLAT_PHOTO_STD); the mask is refined from it.
    """

    mask: NDArray[np.uint8]
    alpha: NDArray[np.uint8]
    image: NDArray[np.uint8]
    bbox: tuple[int, int, int, int] | None
    coverage: float
    confidence: float
    empty: bool
    square_image: NDArray[np.uint8]
    square_probs: NDArray[np.float32]

    @property
    def cutout(self) -> NDArray[np.uint8]:
        """(H, W, 4) uint8 RGBA photo with alpha as its alpha channel, built anew on each access.

        Built on demand so that a set's full-size cutouts are not all held at once: the
        response encodes one view's PNG at a time.
        """
        return make_cutout(self.image, self.alpha)


@dataclass(frozen=True)
class SetResult:
    """Segmentation and colors of one product set.

    Attributes:
        views: one ViewResult per input photo, in input order.
        colors: product colors over all views, largest share first; empty when every mask is
            empty or when segment_set ran with colors=False.
        category: vocabulary name of the category hint, or None.
        threshold: probability threshold used for the masks.
        model_name, model_version: identity of the model from its metadata.
        timings_ms: milliseconds spent in preprocess, infer, consensus, refine and colors; colors is
            absent when segment_set ran with colors=False.
    """

    views: tuple[ViewResult, ...]
    colors: tuple[Color, ...]
    category: str | None
    threshold: float
    model_name: str
    model_version: str
    timings_ms: dict[str, float]


def segment_set(
    images: Sequence[NDArray[np.uint8]],
    segmenter: Segmenter,
    *,
    threshold: float = 0.5,
    category: str | None = None,
    colors: bool = True,
) -> SetResult:
    """Segment one product across its photos and extract its colors.

    Args:
        images: 1 to segmenter.max_views photos of the same product, each
            (H, W, 3) uint8 RGB; sizes may differ between photos.
        segmenter: the loaded model.
        threshold: refined probability at or above which a pixel is product, 0-1.
        category: category name or alias hinting what the product is; None for no hint.
        colors: False skips the color clustering, for callers that use only the masks;
            the result's colors are then an empty tuple.
    Returns:
        SetResult with one view per photo, each at that photo's own size.
    Raises:
        TooManyImagesError: images is empty or longer than segmenter.max_views.
        InvalidThresholdError: threshold is not a number in [0, 1].
        UnknownCategoryError: category matches no vocabulary name or alias.
        ValueError: a photo is not (H, W, 3) uint8.
    """
    _check_request(images, segmenter.max_views, threshold)
    hint = resolve_category(category)
    hint_id = 0 if hint is None else CATEGORY_NAMES.index(hint)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    letterboxed = [letterbox(image, segmenter.input_size) for image in images]
    squares = np.stack([square for square, _ in letterboxed])
    placements = [placement for _, placement in letterboxed]
    flat = [is_flat(image) for image in images]
    timings["preprocess"] = _elapsed_ms(started)

    square_probs = product_maps(
        squares, placements, flat, lambda model_squares: segmenter.predict(model_squares, category_id=hint_id), timings=timings
    )

    started = time.perf_counter()
    views = []
    for image, (square, placement), probs, is_flat_photo in zip(images, letterboxed, square_probs, flat, strict=True):
        if is_flat_photo:
            views.append(_empty_view(image, square, probs))
        else:
            views.append(_refine_view(image, square, probs, crop_placement(probs, placement), threshold))
    timings["refine"] = _elapsed_ms(started)

    product_palette: tuple[Color, ...] = ()
    if colors:
        started = time.perf_counter()
        product_palette = product_colors(list(images), [view.mask > 0 for view in views])
        timings["colors"] = _elapsed_ms(started)

    return SetResult(
        views=tuple(views),
        colors=product_palette,
        category=hint,
        threshold=float(threshold),
        model_name=segmenter.name,
        model_version=segmenter.version,
        timings_ms=timings,
    )


def product_maps(
    squares: NDArray[np.uint8],
    placements: Sequence[Placement],
    flat: Sequence[bool],
    predict: Callable[[NDArray[np.uint8]], NDArray[np.float32]],
    *,
    consensus: bool = True,
    timings: dict[str, float] | None = None,
) -> NDArray[np.float32]:
    """Run the model once on the photos that are not flat, as one set, then the color consensus.

    Args:
        squares: (V, S, S, 3) uint8 RGB letterboxed photos.
        placements: where each photo lies inside its square.
        flat: True for the photos that is_flat found flat; they stay out of the model's set.
        predict: the model, mapping (K, S, S, 3) uint8 squares to (K, S, S) float32 probabilities.
        consensus: reweigh the model's maps with handler.consensus.color_consensus.
        timings: when given, receives the milliseconds of "infer" and "consensus".
    Returns:
        (V, S, S) float32 product probabilities, 0-1, all 0 on flat photos.
    """
    model_views = [index for index, is_flat_photo in enumerate(flat) if not is_flat_photo]
    square_probs = np.zeros(squares.shape[:3], np.float32)

    started = time.perf_counter()
    model_probs = predict(squares[model_views]) if model_views else None
    infer_ms = _elapsed_ms(started)

    started = time.perf_counter()
    if model_probs is not None:
        if consensus:
            model_probs = color_consensus(squares[model_views], [placements[index] for index in model_views], model_probs)
        square_probs[model_views] = model_probs
    if timings is not None:
        timings["infer"], timings["consensus"] = infer_ms, _elapsed_ms(started)
    return square_probs


def _refine_view(
    image: NDArray[np.uint8],
    square: NDArray[np.uint8],
    square_probs: NDArray[np.float32],
    photo_probs: NDArray[np.float32],
    threshold: float,
) -> ViewResult:
    """Build one ViewResult from the model's map of the photo's region."""
    refined = refine_mask(image, photo_probs, threshold=threshold)
    area = int(np.count_nonzero(refined.mask))
    return ViewResult(
        mask=refined.mask.astype(np.uint8) * np.uint8(255),
        alpha=refined.alpha,
        image=image,
        bbox=mask_bbox(refined.mask),
        coverage=area / refined.mask.size,
        confidence=mask_confidence(photo_probs, threshold),
        empty=area == 0,
        square_image=square,
        square_probs=square_probs,
    )


def _empty_view(image: NDArray[np.uint8], square: NDArray[np.uint8], square_probs: NDArray[np.float32]) -> ViewResult:
    """Build the ViewResult of a photo that shows no product: no mask at any threshold."""
    return ViewResult(
        mask=np.zeros(image.shape[:2], np.uint8),
        alpha=np.zeros(image.shape[:2], np.uint8),
        image=image,
        bbox=None,
        coverage=0.0,
        confidence=1.0,
        empty=True,
        square_image=square,
        square_probs=square_probs,
    )


def is_flat(image: NDArray[np.uint8]) -> bool:
    """Tell whether a photo is one flat color: no channel's standard deviation exceeds FLAT_PHOTO_STD.

    Args:
        image: (H, W, 3) uint8 RGB photo. Every k-th row and column is read (see
            FLAT_SAMPLE_SIDE), without averaging, so fine texture counts in full.
    """
    step = max(1, math.ceil(max(image.shape[:2]) / FLAT_SAMPLE_SIDE))
    sample = image[::step, ::step].reshape(-1, 3).astype(np.float32)
    return bool(sample.std(axis=0).max() <= FLAT_PHOTO_STD)


def mask_bbox(mask: NDArray[np.bool_]) -> tuple[int, int, int, int] | None:
    """Return the (x0, y0, x1, y1) box around the True pixels, x1 and y1 exclusive; None when none.

    Args:
        mask: (H, W) bool.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _check_request(images: Sequence[NDArray[np.uint8]], max_views: int, threshold: float) -> None:
    if not 1 <= len(images) <= max_views:
        raise TooManyImagesError(f"Received {len(images)} images; between 1 and {max_views} are accepted per set.")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
        raise InvalidThresholdError(f"Threshold {threshold!r} is not a number; expected a value in [0, 1].")
    if not 0.0 <= threshold <= 1.0:
        raise InvalidThresholdError(f"Threshold {threshold} is outside [0, 1]; expected a value in [0, 1].")
    for index, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
            raise ValueError(f"image at index {index}: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
