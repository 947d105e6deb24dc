"""segment_set on generated photos: geometry, thresholds and input checks.

Tests marked ``model`` run the committed model and check only what holds for any
weights (shapes, ranges, consistency), because the model is retrained over time.
The others use a stand-in segmenter with a known output to check the geometry.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from handler.categories import UnknownCategoryError
from handler.letterbox import crop_placement, letterbox
from handler.pipeline import FLAT_PHOTO_STD, InvalidThresholdError, SetResult, TooManyImagesError, is_flat, mask_bbox, segment_set
from handler.refine import mask_confidence
from handler.segmenter import DEFAULT_MODEL_PATH, Segmenter

PHOTO_SIZES = [(300, 200), (180, 320), (128, 128), (60, 400)]
RED = (200, 30, 40)


class RedDetector:
    """Stand-in segmenter: probability 1 on strongly red square pixels, 0 elsewhere."""

    name = "red-detector"
    version = "test"
    input_size = 96
    max_views = 4

    def __init__(self) -> None:
        self.category_ids: list[int] = []
        self.view_counts: list[int] = []

    def predict(self, squares: NDArray[np.uint8], *, category_id: int = 0) -> NDArray[np.float32]:
        self.category_ids.append(category_id)
        self.view_counts.append(len(squares))
        red, green = squares[..., 0].astype(int), squares[..., 1].astype(int)
        return ((red > 150) & (green < 100)).astype(np.float32)


def photo_with_red_box(height: int, width: int, box: tuple[int, int, int, int], seed: int) -> NDArray[np.uint8]:
    """Light noisy photo with a red rectangle at box = (x0, y0, x1, y1), x1 and y1 exclusive."""
    rng = np.random.default_rng(seed)
    photo = np.clip(rng.normal(230.0, 5.0, (height, width, 3)), 0, 255).astype(np.uint8)
    x0, y0, x1, y1 = box
    photo[y0:y1, x0:x1] = RED
    return photo


def boxed_set() -> tuple[list[NDArray[np.uint8]], list[tuple[int, int, int, int]]]:
    boxes = [(40, 60, 160, 250), (100, 30, 300, 150), (0, 0, 64, 128), (150, 10, 250, 50)]
    photos = [photo_with_red_box(h, w, box, seed) for seed, ((h, w), box) in enumerate(zip(PHOTO_SIZES, boxes, strict=True))]
    return photos, boxes


def textured_set() -> list[NDArray[np.uint8]]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for height, width in PHOTO_SIZES]


@pytest.fixture(scope="module")
def model() -> Segmenter:
    return Segmenter.from_path(DEFAULT_MODEL_PATH, threads=1)


def check_view_consistency(result: SetResult, photos: list[NDArray[np.uint8]]) -> None:
    assert len(result.views) == len(photos)
    for photo, view in zip(photos, result.views, strict=True):
        height, width = photo.shape[:2]
        assert view.mask.shape == (height, width)
        assert view.mask.dtype == np.uint8
        assert set(np.unique(view.mask).tolist()) <= {0, 255}
        assert view.alpha.shape == (height, width)
        assert view.cutout.shape == (height, width, 4)
        np.testing.assert_array_equal(view.cutout[:, :, 3], view.alpha)
        np.testing.assert_array_equal(view.mask == 255, view.alpha >= 128)
        assert view.coverage == pytest.approx(np.count_nonzero(view.mask) / (height * width))
        assert view.empty == (view.coverage == 0.0)
        assert 0.0 <= view.confidence <= 1.0
        if view.bbox is None:
            assert view.empty
        else:
            x0, y0, x1, y1 = view.bbox
            assert 0 <= x0 < x1 <= width
            assert 0 <= y0 < y1 <= height
            assert view.bbox == mask_bbox(view.mask > 0)


@pytest.mark.model
def test_segment_set_views_at_each_photo_size(model: Segmenter) -> None:
    photos = textured_set()

    result = segment_set(photos, model)

    check_view_consistency(result, photos)
    for view in result.views:
        assert view.square_image.shape == (model.input_size, model.input_size, 3)
        assert view.square_probs.shape == (model.input_size, model.input_size)
        assert view.square_probs.min() >= 0.0
        assert view.square_probs.max() <= 1.0
    assert (result.model_name, result.model_version) == (model.name, model.version)
    assert set(result.timings_ms) == {"preprocess", "infer", "consensus", "refine", "colors"}
    assert all(value >= 0.0 for value in result.timings_ms.values())


@pytest.mark.model
def test_segment_set_threshold_zero_covers_and_one_shrinks(model: Segmenter) -> None:
    photos = textured_set()[:2]

    everything = segment_set(photos, model, threshold=0.0)
    middle = segment_set(photos, model, threshold=0.5)
    strictest = segment_set(photos, model, threshold=1.0)

    for result in (everything, middle, strictest):
        check_view_consistency(result, photos)
    for full, half, strict in zip(everything.views, middle.views, strictest.views, strict=True):
        assert full.coverage == 1.0
        assert full.bbox == (0, 0, full.mask.shape[1], full.mask.shape[0])
        assert strict.coverage <= half.coverage <= full.coverage
    assert sum(percent for percent in (c.percentage for c in everything.colors)) == 100


@pytest.mark.model
def test_segment_set_single_photo_and_category_hint(model: Segmenter) -> None:
    photos = textured_set()[:1]

    result = segment_set(photos, model, category="  T_Shirt ")

    assert result.category == "top"
    check_view_consistency(result, photos)


def test_segment_set_masks_follow_red_boxes() -> None:
    photos, boxes = boxed_set()

    result = segment_set(photos, RedDetector())  # type: ignore[arg-type]  # duck-typed stand-in

    check_view_consistency(result, photos)
    for view, (x0, y0, x1, y1) in zip(result.views, boxes, strict=True):
        truth = np.zeros(view.mask.shape, dtype=bool)
        truth[y0:y1, x0:x1] = True
        predicted = view.mask > 0
        iou = (predicted & truth).sum() / (predicted | truth).sum()
        assert iou > 0.95, (view.bbox, (x0, y0, x1, y1))
        assert view.bbox is not None
        assert np.abs(np.subtract(view.bbox, (x0, y0, x1, y1))).max() <= 3
    assert result.colors
    assert result.colors[0].rgb == pytest.approx(RED, abs=12)


class UnsureRedDetector(RedDetector):
    """Stand-in segmenter: the red detector's map scaled to probability 0.6 on red pixels."""

    def predict(self, squares: NDArray[np.uint8], *, category_id: int = 0) -> NDArray[np.float32]:
        return super().predict(squares, category_id=category_id) * np.float32(0.6)


@pytest.mark.parametrize("detector", [RedDetector(), UnsureRedDetector()], ids=["sure", "unsure"])
def test_segment_set_confidence_scores_final_map(detector: RedDetector) -> None:
    photos, _ = boxed_set()

    result = segment_set(photos, detector, threshold=0.45)  # type: ignore[arg-type]  # duck-typed stand-in

    # The score is taken on the map after the color consensus, over the photo's own region.
    for photo, view in zip(photos, result.views, strict=True):
        _, placement = letterbox(photo, detector.input_size)
        assert view.confidence == mask_confidence(crop_placement(view.square_probs, placement), 0.45)


def test_segment_set_decisive_map_full_confidence() -> None:
    photos, _ = boxed_set()

    result = segment_set(photos, RedDetector())  # type: ignore[arg-type]  # duck-typed stand-in

    assert [view.confidence for view in result.views] == [1.0] * len(photos)


def test_segment_set_leaves_photos_unchanged() -> None:
    photos, _ = boxed_set()
    copies = [photo.copy() for photo in photos]

    segment_set(photos, RedDetector())  # type: ignore[arg-type]  # duck-typed stand-in

    for photo, copy in zip(photos, copies, strict=True):
        np.testing.assert_array_equal(photo, copy)


def test_segment_set_photo_without_product_is_empty() -> None:
    photos, _ = boxed_set()
    plain = np.full((120, 90, 3), 230, dtype=np.uint8)

    result = segment_set([photos[0], plain], RedDetector())  # type: ignore[arg-type]  # duck-typed stand-in

    assert not result.views[0].empty
    assert result.views[1].empty
    assert result.views[1].bbox is None
    assert result.views[1].coverage == 0.0
    assert not result.views[1].cutout[:, :, 3].any()


def test_segment_set_all_empty_gives_no_colors() -> None:
    plain = np.full((120, 90, 3), 230, dtype=np.uint8)

    result = segment_set([plain], RedDetector())  # type: ignore[arg-type]  # duck-typed stand-in

    assert result.views[0].empty
    assert result.colors == ()


def test_segment_set_flat_photo_gets_empty_mask() -> None:
    """A solid red frame is all product to the stand-in, but a flat photo shows no product."""
    photos, _ = boxed_set()
    flat_red = np.full((150, 100, 3), RED, dtype=np.uint8)

    result = segment_set([photos[0], flat_red], RedDetector())  # type: ignore[arg-type]  # duck-typed stand-in

    assert not result.views[0].empty
    assert result.views[1].empty
    assert result.views[1].bbox is None
    assert not result.views[1].alpha.any()
    assert not result.views[1].square_probs.any()
    assert result.colors
    assert result.colors[0].percentage == 100


def test_segment_set_flat_photo_empty_at_threshold_zero() -> None:
    flat_red = np.full((150, 100, 3), RED, dtype=np.uint8)

    result = segment_set([flat_red], RedDetector(), threshold=0.0)  # type: ignore[arg-type]  # duck-typed stand-in

    assert result.views[0].empty
    assert result.views[0].coverage == 0.0
    assert result.colors == ()


def test_segment_set_flat_photo_kept_out_of_model() -> None:
    detector = RedDetector()
    photos, _ = boxed_set()
    flat_white = np.full((120, 90, 3), 255, dtype=np.uint8)

    segment_set([flat_white, photos[1], flat_white], detector)  # type: ignore[arg-type]  # duck-typed stand-in
    segment_set([flat_white, flat_white], detector)  # type: ignore[arg-type]  # duck-typed stand-in

    assert detector.view_counts == [1]


def test_segment_set_noisy_red_photo_not_flat() -> None:
    """Noise above the flat limit leaves the stand-in's output in place."""
    rng = np.random.default_rng(2)
    noisy = np.clip(np.full((150, 100, 3), RED, np.float32) + rng.normal(0, 2 * FLAT_PHOTO_STD, (150, 100, 3)), 0, 255).astype(np.uint8)

    result = segment_set([noisy], RedDetector())  # type: ignore[arg-type]  # duck-typed stand-in

    assert result.views[0].coverage == 1.0


def test_is_flat_stray_pixel_and_step() -> None:
    flat = np.full((300, 200, 3), 200, dtype=np.uint8)
    assert is_flat(flat)

    stray = flat.copy()
    stray[150, 100] = 0
    assert is_flat(stray)

    step = flat.copy()
    step[:150, :, 2] += int(2 * FLAT_PHOTO_STD) + 1
    assert not is_flat(step)


def test_is_flat_fine_weave_large_photo() -> None:
    """A 2000 px weave of +-15 levels averages out in the model's square but is not flat."""
    rows, cols = np.mgrid[:2000, :2000]
    weave = (128 + 15 * np.sign(np.sin(rows) * np.sin(cols))).astype(np.uint8)

    assert not is_flat(np.repeat(weave[..., None], 3, axis=2))


@pytest.mark.model
def test_segment_set_blank_upload_changes_nothing(model: Segmenter) -> None:
    photos = textured_set()[:2]
    blank = np.full((300, 200, 3), 255, dtype=np.uint8)

    alone = segment_set(photos, model)
    with_blank = segment_set([*photos, blank], model, threshold=0.0)
    with_blank_default = segment_set([*photos, blank], model)

    assert with_blank.views[2].empty
    assert with_blank.views[2].coverage == 0.0
    for before, after in zip(alone.views, with_blank_default.views[:2], strict=True):
        np.testing.assert_array_equal(before.mask, after.mask)
    assert alone.colors == with_blank_default.colors


def test_segment_set_colors_off_skips_clustering() -> None:
    photos, _ = boxed_set()

    with_colors = segment_set(photos[:2], RedDetector())  # type: ignore[arg-type]  # duck-typed stand-in
    without = segment_set(photos[:2], RedDetector(), colors=False)  # type: ignore[arg-type]  # duck-typed stand-in

    assert with_colors.colors != ()
    assert without.colors == ()
    assert "colors" not in without.timings_ms
    for view_with, view_without in zip(with_colors.views, without.views, strict=True):
        np.testing.assert_array_equal(view_with.mask, view_without.mask)


def test_segment_set_category_alias_sent_as_id() -> None:
    detector = RedDetector()
    photos, _ = boxed_set()

    segment_set(photos[:1], detector, category="sneakers")  # type: ignore[arg-type]  # duck-typed stand-in
    segment_set(photos[:1], detector)  # type: ignore[arg-type]  # duck-typed stand-in

    assert detector.category_ids == [5, 0]


@pytest.mark.parametrize("count", [0, 5, 6])
def test_segment_set_wrong_photo_count_raises(count: int) -> None:
    photos = [np.full((20, 20, 3), 230, dtype=np.uint8)] * count

    with pytest.raises(TooManyImagesError, match=f"Received {count} images"):
        segment_set(photos, RedDetector())  # type: ignore[arg-type]  # duck-typed stand-in


@pytest.mark.parametrize("threshold", [-0.1, 1.01, float("nan"), float("inf")])
def test_segment_set_threshold_outside_unit_range_raises(threshold: float) -> None:
    photos, _ = boxed_set()

    with pytest.raises(InvalidThresholdError, match="Threshold"):
        segment_set(photos[:1], RedDetector(), threshold=threshold)  # type: ignore[arg-type]  # duck-typed stand-in


def test_segment_set_unknown_category_raises() -> None:
    photos, _ = boxed_set()

    with pytest.raises(UnknownCategoryError, match="spaceship"):
        segment_set(photos[:1], RedDetector(), category="spaceship")  # type: ignore[arg-type]  # duck-typed stand-in


def test_segment_set_grayscale_photo_raises() -> None:
    with pytest.raises(ValueError, match="image at index 0"):
        segment_set([np.zeros((20, 20), dtype=np.uint8)], RedDetector())  # type: ignore[arg-type]  # duck-typed stand-in


def test_mask_bbox_exclusive_corners() -> None:
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True

    assert mask_bbox(mask) == (3, 2, 9, 5)
    assert mask_bbox(np.zeros((4, 4), dtype=bool)) is None
