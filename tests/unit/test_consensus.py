import numpy as np
import pytest

from handler.consensus import ConsensusSettings, color_bins, color_consensus, placement_masks
from handler.letterbox import Placement

SIZE = 32
RED, BLUE, WHITE = (200, 30, 30), (30, 40, 200), (250, 250, 250)
WHOLE = Placement(top=0, left=0, height=SIZE, width=SIZE)


def packshot() -> tuple[np.ndarray, np.ndarray]:
    """A red square on white, with the model sure of it."""
    image = np.full((SIZE, SIZE, 3), WHITE, np.uint8)
    image[8:24, 8:24] = RED
    probs = np.zeros((SIZE, SIZE), np.float32)
    probs[8:24, 8:24] = 1.0
    return image, probs


def outfit() -> tuple[np.ndarray, np.ndarray]:
    """A red top over blue trousers on white, the model unsure of both (0.6)."""
    image = np.full((SIZE, SIZE, 3), WHITE, np.uint8)
    image[4:14, 8:24] = RED
    image[14:30, 10:22] = BLUE
    probs = np.zeros((SIZE, SIZE), np.float32)
    probs[4:14, 8:24] = 0.6
    probs[14:30, 10:22] = 0.6
    return image, probs


def run(views, settings=None, placements=None):
    squares = np.stack([image for image, _ in views])
    probs = np.stack([p for _, p in views])
    return color_consensus(squares, placements or [WHOLE] * len(views), probs, settings or ConsensusSettings())


def test_consensus_follows_packshot_color():
    adjusted = run([packshot(), outfit()])
    assert adjusted[1][4:14, 8:24].min() > 0.6
    assert adjusted[1][14:30, 10:22].max() < 0.5


def detail_crop() -> tuple[np.ndarray, np.ndarray]:
    """A red garment filling the frame below a white band of 4 rows, the model unsure of it (0.4)."""
    image = np.full((SIZE, SIZE, 3), RED, np.uint8)
    image[:4] = WHITE
    probs = np.full((SIZE, SIZE), 0.4, np.float32)
    probs[:4] = 0.0
    return image, probs


def test_consensus_raises_product_filling_the_frame():
    adjusted = run([packshot(), detail_crop()])
    assert adjusted[1][4:].min() > 0.5


def test_consensus_linear_background_misses_filling_product():
    # Weighted by 1 - p, the unsure red pixels make up most of the crop's background histogram.
    adjusted = run([packshot(), detail_crop()], ConsensusSettings(background_power=1.0))
    assert adjusted[1][4:].max() < 0.5


def unsure_outfit() -> tuple[np.ndarray, np.ndarray]:
    """The outfit of outfit(), the model undecided everywhere on it (0.5)."""
    image, probs = outfit()
    return image, np.where(probs > 0, np.float32(0.5), probs)


def test_consensus_trusts_sharp_reference_more():
    weighted = run([packshot(), unsure_outfit(), outfit()])
    equal = run([packshot(), unsure_outfit(), outfit()], ConsensusSettings(reference_power=0.0))
    blue = (slice(14, 30), slice(10, 22))
    assert weighted[2][blue].max() < equal[2][blue].min()
    assert weighted[2][blue].max() < 0.5


def test_consensus_faint_view_barely_counts():
    green = np.full((SIZE, SIZE, 3), (40, 160, 60), np.uint8)
    faint = (green, np.full((SIZE, SIZE), 0.2, np.float32))  # no pixel reaches 0.25: no product shown

    with_faint = run([faint, packshot(), outfit()])
    without = run([packshot(), outfit()])

    np.testing.assert_allclose(with_faint[2], without[1], atol=1e-3)


def test_consensus_strength_zero_unchanged():
    views = [packshot(), outfit()]
    adjusted = run(views, ConsensusSettings(strength=0.0))
    np.testing.assert_array_equal(adjusted, np.stack([p for _, p in views]))


def test_consensus_outside_placement_unchanged():
    image, probs = outfit()
    probs[:2] = 0.7
    band = Placement(top=2, left=0, height=SIZE - 2, width=SIZE)
    adjusted = run([packshot(), (image, probs)], placements=[WHOLE, band])
    np.testing.assert_array_equal(adjusted[1][:2], probs[:2])
    assert not np.array_equal(adjusted[1][2:], probs[2:])


def test_consensus_ignores_empty_view():
    empty = (np.full((SIZE, SIZE, 3), BLUE, np.uint8), np.zeros((SIZE, SIZE), np.float32))
    without = run([packshot(), outfit()])
    with_empty = run([empty, packshot(), outfit()])
    np.testing.assert_allclose(with_empty[1:], without, atol=1e-6)


def test_consensus_single_view():
    (adjusted,) = run([outfit()])
    assert adjusted.dtype == np.float32
    assert adjusted.min() >= 0.0
    assert adjusted.max() <= 1.0
    # Its own product colors are rarer in its background than in its product, so they gain.
    assert adjusted[4:14, 8:24].min() > 0.6


def test_color_bins_range():
    squares = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(color_bins(squares, 8), [[0, 511, 7 * 64]])


def test_placement_masks_region():
    masks = placement_masks([Placement(top=1, left=2, height=3, width=4)], 8)
    assert masks.sum() == 12
    assert masks[0, 1, 2]
    assert not masks[0, 0, 2]


@pytest.mark.parametrize(
    ("squares", "probs", "count"),
    [
        (np.zeros((1, SIZE, SIZE), np.uint8), np.zeros((1, SIZE, SIZE), np.float32), 1),
        (np.zeros((1, SIZE, SIZE, 3), np.uint8), np.zeros((1, SIZE, SIZE), np.float64), 1),
        (np.zeros((1, SIZE, SIZE, 3), np.uint8), np.zeros((1, SIZE, SIZE), np.float32), 2),
    ],
)
def test_consensus_bad_inputs_raise(squares, probs, count):
    with pytest.raises(ValueError, match="expected"):
        color_consensus(squares, [WHOLE] * count, probs)
